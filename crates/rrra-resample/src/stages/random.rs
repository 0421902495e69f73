//! `resample.random`: random corpus negatives, no mined pool.

use rrra_common::Result;
use rrra_common::schema::ArtifactKind::{Candidates, Corpus};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use super::pool::{Budget, DEFAULT_N_NEG, OUTPUTS, Rule, Sampler};

/// Params of `resample.random`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RandomParams {
    /// Random corpus negatives per (query, positive) pair.
    pub n_neg: usize,
}

impl Default for RandomParams {
    fn default() -> Self {
        RandomParams {
            n_neg: DEFAULT_N_NEG,
        }
    }
}

/// `resample.random`: `n_neg` uniformly random corpus documents per pair, none of them a
/// positive of the query; the mined pool is not used.
pub struct ResampleRandom;

impl Stage for ResampleRandom {
    type Params = RandomParams;
    const KIND: &'static str = "resample.random";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "random corpus negatives (no mined pool)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("candidates", Candidates),
                Port::required("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &RandomParams) -> Result<(), String> {
        if p.n_neg == 0 {
            return Err("param n_neg must be at least 1".into());
        }
        Ok(())
    }
    fn run(p: &RandomParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        Sampler {
            kind: Self::KIND,
            budget: Budget {
                n_neg: p.n_neg,
                n_rand: 0,
                pool: 0,
            },
            rule: Rule::Random,
            rrra_score: None,
            part_queries: None,
        }
        .run(ctx)
    }
}
