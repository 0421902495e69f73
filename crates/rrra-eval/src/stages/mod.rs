//! The `eval.*` pipeline stages, one kind per file: `eval.trec` ([`trec`]) scores a run
//! against qrels (and, for QA data, by answer match), `eval.compare` ([`compare`]) tests
//! whether two evaluated runs differ significantly, `eval.fn_detection` ([`fn_detection`])
//! measures how well scores find false negatives among mined negatives.

mod compare;
mod fn_detection;
mod trec;

pub use compare::{CompareParams, EvalCompare};
pub use fn_detection::{EvalFnDetection, FnDetectionParams};
pub use trec::{EvalTrec, TrecParams};
