//! Reranking over `scored` pairs (a first-stage run scored by `score.adapter`):
//! `rerank.adapter` orders each query's top `depth` by `s_RR = s_base · s_adapter^λ` with
//! `s_base = (1 + cos(q, c)) / 2` and `s_adapter = (1 + cos(q, a)) / 2` (METHOD.md,
//! "Reranking"); `rerank.none` keeps the first-stage order, the swap-in for ablations.
//! Both read the same input, so an ablation swaps only `kind`.
//!
//! The input is streamed one query at a time ([`rrra_common::columns::for_each_query_group`]) and each query's
//! ranking written before the next is read: memory holds one query's rows and the ids of
//! the queries done, whatever the number of rows.
//!
//! The two kinds are in [`stages`], one per file; the score mapping is here.

pub mod stages;

pub use stages::{AdapterRerankParams, NoRerankParams, RerankAdapter, RerankNone};

/// `(1 + cos) / 2`, a cosine mapped to `[0, 1]` (clamped against rounding).
pub fn unit(cos: f64) -> f64 {
    ((1.0 + cos) / 2.0).clamp(0.0, 1.0)
}

/// The reranking score of a pair with first-stage cosine `base` and QA-score `qa`.
pub fn s_rr(base: f64, qa: f64, lambda: f64) -> f64 {
    unit(base) * unit(qa).powf(lambda)
}
