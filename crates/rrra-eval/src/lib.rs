//! Evaluation of ranked runs for rrra.
//!
//! * [`evaluate`]: trec_eval-exact nDCG@k, MRR(@k), Recall@k, P@k and MAP of a [`Run`]
//!   against [`Qrels`], per query and averaged, matching pytrec_eval.
//! * [`has_answer`] / [`answer_top_k`]: DPR's answer-match top-k accuracy.
//! * [`paired_t_test`] / [`randomisation_test`]: paired significance between two systems;
//!   [`detectable_difference`]: the smallest difference such a test would detect.
//! * [`detection`]: false-negative detection measures (ROC-AUC, P@k, R@k), over the
//!   packed [`hidden`] qrels.
//! * [`write_trec_run`] / [`write_trec_qrels`]: TREC text export.
//! * [`stages`]: the `eval.trec`, `eval.compare` and `eval.fn_detection` pipeline stages.

mod answers;
pub mod detection;
mod evaluate;
pub mod hidden;
mod measure;
mod qrels;
mod rng;
mod run;
mod significance;
pub mod stages;
mod trec;

pub use answers::{AnswerAccuracy, answer_top_k, has_answer};
pub use evaluate::{Evaluation, evaluate};
pub use measure::Measure;
pub use qrels::Qrels;
pub use rng::SplitMix64;
pub use run::{RankedDoc, Run};
pub use significance::{
    TTest, detectable_difference, paired_t_test, paired_values, randomisation_test,
};
pub use trec::{write_trec_qrels, write_trec_qrels_file, write_trec_run, write_trec_run_file};
