//! `resample.margin`: positive-aware hard negatives (NV-Retriever TopK-PercPos).

use rrra_common::Result;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use super::pool::{MarginMode, OUTPUTS, POOL_INPUTS, Rule, Sampler, pool_params};
use crate::sampling::Weighting;

pool_params! {
    /// Params of `resample.margin`.
    pub struct MarginParams {
        /// A candidate is kept when `s_i < s_pos − (1 − r)·|s_pos|` (`r · s_pos` for a positive
        /// `s_pos`; below the positive, never above it, when `s_pos < 0`).
        pub r: f64 = 0.95,
        /// `sample` (uniform over the kept) or `top` (the best-ranked kept).
        pub mode: MarginMode = MarginMode::Sample,
    }
}

/// `resample.margin`: positive-aware negatives (NV-Retriever TopK-PercPos), candidates
/// scoring below `r` times the positive's score (for `s_pos < 0`, below
/// `s_pos − (1 − r)·|s_pos|`: see [`crate::sampling::Weighting::Margin`]).
pub struct ResampleMargin;

impl Stage for ResampleMargin {
    type Params = MarginParams;
    const KIND: &'static str = "resample.margin";
    // 2: the margin stays below the positive when s_pos < 0 (it kept s_i < r · s_pos).
    const VERSION: u32 = 2;
    const ABOUT: &'static str =
        "positive-aware hard negatives (TopK-PercPos), s_i < s_pos - (1 - r)|s_pos|";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        POOL_INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &MarginParams) -> Result<(), String> {
        p.budget().check()?;
        if !(p.r > 0.0 && p.r.is_finite()) {
            return Err(format!("param r must be finite and > 0, got {}", p.r));
        }
        Ok(())
    }
    fn run(p: &MarginParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        Sampler {
            kind: Self::KIND,
            budget: p.budget(),
            rule: Rule::Pool {
                weighting: Weighting::Margin { r: p.r },
                mode: p.mode,
            },
            rrra_score: None,
            part_queries: None,
        }
        .run(ctx)
    }
}
