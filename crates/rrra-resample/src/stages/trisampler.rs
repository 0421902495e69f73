//! `resample.trisampler`: TriSampler hard negatives, near the positive, closer to it than to
//! the query, within an angle.

use rrra_common::Result;
use rrra_common::schema::ArtifactKind::{Candidates, Corpus, Embeddings, Scored};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use super::pool::{MarginMode, OUTPUTS, Rule, Sampler, pool_params};
use crate::sampling::Weighting;

pool_params! {
    /// Params of `resample.trisampler`.
    pub struct TriSamplerParams {
        /// Widest angle, in degrees, between `acos s(q, d+)` and `acos s(q, d_i)`.
        pub theta_max_deg: f64 = 60.0,
    }
}

/// `resample.trisampler`: TriSampler,
/// `w = exp(-(s_i - s_pos)^2 / 4) · ReLU(s(d+, d_i) - s(q, d_i)) · 1[θ <= θ_max]`, with
/// `s(d+, d_i)` the inner product of the two documents' vectors in input `embeddings`.
pub struct ResampleTriSampler;

impl Stage for ResampleTriSampler {
    type Params = TriSamplerParams;
    const KIND: &'static str = "resample.trisampler";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "TriSampler hard negatives: near the positive, closer to it than to the query, in an angle";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::optional("candidates", Candidates),
                Port::optional("scored", Scored),
                Port::required("embeddings", Embeddings),
                Port::optional("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &TriSamplerParams) -> Result<(), String> {
        p.budget().check()?;
        if !(p.theta_max_deg > 0.0 && p.theta_max_deg <= 180.0) {
            return Err(format!(
                "param theta_max_deg must be in (0, 180], got {}",
                p.theta_max_deg
            ));
        }
        Ok(())
    }
    fn run(p: &TriSamplerParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        Sampler {
            kind: Self::KIND,
            budget: p.budget(),
            rule: Rule::Pool {
                weighting: Weighting::TriSampler {
                    theta_max_deg: p.theta_max_deg,
                },
                mode: MarginMode::Sample,
            },
            rrra_score: None,
            part_queries: None,
        }
        .run(ctx)
    }
}
