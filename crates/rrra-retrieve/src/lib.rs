//! Retrieval kernels of rrra: an English analyzer and in-memory BM25 index ([`bm25`]), and
//! exact blocked inner-product top-k over dense vectors ([`dense`]); the `retrieve.*` stages
//! ([`stages`]).

pub mod analyzer;
pub mod bm25;
pub mod dense;
pub mod stages;
mod topk;

pub use analyzer::Analyzer;
pub use bm25::{Bm25Index, Bm25Params};
pub use dense::{TopK, exact_top_k};
