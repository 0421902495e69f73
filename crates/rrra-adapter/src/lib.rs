//! The RRRA false-negative adapter (METHOD.md, "The adapter").
//!
//! Given a query embedding `q` and a candidate embedding `c`, the adapter computes
//! `a = c + MLP([q − c; q ⊙ c; q + c])` (last layer zero-initialised, so `a = c` at start)
//! and a four-class head over `[cos(q,a), cos(q,c), cos(a,c), z]` predicting TP/FN/FP/TN
//! labels built from the stage-1 ranking ([`labels`], over a query's pool: [`pool`]). It is
//! trained on frozen embeddings ([`train`], configured by the `train.adapter` params
//! themselves, [`TrainAdapterParams`]), saved as a folder ([`saved`]), and scores pairs
//! with the QA-score `cos(q, a)` (reranking) and the false-negative likelihood `s_fn`
//! (resampling). Stages ([`stages`], one kind per file): `train.adapter`, `score.adapter`.
//!
//! The adapter runs on the backend its `backend:` param names ([`backend`]), chosen as the
//! encoder's ([`rrra_encoder::Backend`]: burn's pure-Rust `flex` CPU backend by default;
//! `tch` and `wgpu` behind rrra-encoder's cargo features). It is a few hundred thousand
//! parameters over precomputed vectors, but at MS MARCO scale (~10⁸ pairs) an accelerator
//! pays.

pub mod backend;
pub mod labels;
pub mod model;
pub mod pool;
pub mod saved;
pub mod stages;
pub mod train;

pub use labels::{Class, label};
pub use model::{AdapterConfig, AdapterNet};
pub use saved::{SavedAdapter, load_adapter, save_adapter};
pub use stages::{ScoreAdapter, TrainAdapter};
pub use train::TrainAdapterParams;
