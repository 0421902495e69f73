//! `resample.simans`: SimANS hard negatives, `p_i ∝ exp(-a (s_i - s_pos - b)^2)`.

use rrra_common::Result;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use super::pool::{MarginMode, OUTPUTS, POOL_INPUTS, Rule, Sampler, pool_params};
use crate::sampling::Weighting;

pool_params! {
    /// Params of `resample.simans`.
    pub struct SimansParams {
        /// Sharpness of `exp(-a (s_i - s_pos - b)^2)`. The paper's `a = 0.5` is for unnormalised
        /// dot products; our scores are cosines, whose gaps are some 20 times smaller, so the
        /// default is 200 = 0.5 / τ² with τ = 0.05, the training temperature: the same kernel on
        /// the logit scale `s / τ` the loss sees, a Gaussian of standard deviation
        /// `1 / sqrt(2a) = 0.05` in cosine. With `a = 0.5` on cosines every candidate weighs
        /// nearly the same (`exp(-0.5 · 0.3²) ≈ 0.96`).
        pub a: f64 = 200.0,
        /// Offset of the kernel's peak from the positive's score (cosine units; the paper's
        /// `b = 1.0` on NQ logits is about 0.05 here).
        pub b: f64 = 0.0,
    }
}

/// `resample.simans`: SimANS, `p_i ∝ exp(-a (s_i - s_pos - b)^2)` over the pool.
pub struct ResampleSimans;

impl Stage for ResampleSimans {
    type Params = SimansParams;
    const KIND: &'static str = "resample.simans";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "SimANS hard negatives, p ∝ exp(-a (s_i - s_pos - b)^2)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        POOL_INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &SimansParams) -> Result<(), String> {
        p.budget().check()?;
        if !(p.a >= 0.0 && p.a.is_finite()) {
            return Err(format!("param a must be finite and >= 0, got {}", p.a));
        }
        if !p.b.is_finite() {
            return Err(format!("param b must be finite, got {}", p.b));
        }
        Ok(())
    }
    fn run(p: &SimansParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        Sampler {
            kind: Self::KIND,
            budget: p.budget(),
            rule: Rule::Pool {
                weighting: Weighting::Simans { a: p.a, b: p.b },
                mode: MarginMode::Sample,
            },
            rrra_score: None,
            part_queries: None,
        }
        .run(ctx)
    }
}
