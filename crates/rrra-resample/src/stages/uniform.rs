//! `resample.uniform`: hard negatives uniform over a rank window of the mined pool.

use rrra_common::Result;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use super::pool::{MarginMode, OUTPUTS, POOL_INPUTS, Rule, Sampler, pool_params};
use crate::sampling::Weighting;

pool_params! {
    /// Params of `resample.uniform`.
    pub struct UniformParams {
        /// Lowest rank of the window (1-based, in the full ranking, positives counted).
        pub r_min: u32 = 1,
        /// Highest rank of the window.
        pub r_max: u32 = 200,
    }
}

/// `resample.uniform`: uniform over the pool candidates ranked in `[r_min, r_max]`.
pub struct ResampleUniform;

impl Stage for ResampleUniform {
    type Params = UniformParams;
    const KIND: &'static str = "resample.uniform";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "hard negatives uniform over a rank window of the mined pool";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        POOL_INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &UniformParams) -> Result<(), String> {
        p.budget().check()?;
        if p.r_min == 0 || p.r_min > p.r_max {
            return Err(format!(
                "params need 1 <= r_min <= r_max, got r_min {} and r_max {}",
                p.r_min, p.r_max
            ));
        }
        Ok(())
    }
    fn run(p: &UniformParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let weighting = Weighting::Uniform {
            r_min: p.r_min,
            r_max: p.r_max,
        };
        Sampler {
            kind: Self::KIND,
            budget: p.budget(),
            rule: Rule::Pool {
                weighting,
                mode: MarginMode::Sample,
            },
            rrra_score: None,
            part_queries: None,
        }
        .run(ctx)
    }
}
