//! Negative mining: for each training query with a judged positive, the `k` best documents of
//! a first-stage ranking that are not positives (the hard-negative pool), plus every judged
//! positive, as a `candidates` artifact. [`MineDense`] (`mine.dense`) ranks by exact inner
//! product of embeddings, [`MineBm25`] (`mine.bm25`) by BM25; both use the kernels of
//! `rrra-retrieve`.
//!
//! Contract of the rows ([`rrra_common::records::Candidate`]), per query:
//! - the ranking orders documents by score, descending, then by document number,
//!   ascending, so the output is deterministic: `mine.bm25` numbers documents by sorted id
//!   (byte order; it holds the corpus anyway), `mine.dense` by corpus row, like
//!   `retrieve.dense` (numbering by sorted id would need every corpus id in memory), so its
//!   ranking is `retrieve.dense`'s, ties included;
//! - it is searched to depth `k + P` (`P` = the query's positives); the first `k`
//!   non-positives are written with `positive = false` and `rank` = their 1-based rank in the
//!   ranking (positives counted);
//! - every positive is written with `positive = true`: its rank and score when within depth
//!   `k + P`, else `rank = 0` and its exact score for the query (so false-negative filters can
//!   compare it with the negatives');
//! - rows come in rank order, positives beyond the depth last (by document number).
//!
//! A positive is a judgement with `relevance >= relevance_threshold`. Queries without a
//! positive, and judged queries absent from the query input, are skipped and counted. A
//! positive judgement of a doc id the corpus lacks is an error naming both ids (a lower one is
//! counted and logged).
//!
//! The report's table summarises the positives' and the negatives' scores (and counts the
//! negatives that outscore a positive of their query); skipped queries are logged as
//! `tracing` warnings.

mod bm25;
mod dense;
mod pool;
mod summary;

pub use bm25::{MineBm25, MineBm25Params};
pub use dense::{MineDense, MineDenseParams};

#[cfg(test)]
mod testing;
