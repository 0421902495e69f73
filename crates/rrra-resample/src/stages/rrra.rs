//! `resample.rrra`: RRRA's adapter-weighted hard negatives, `w = s_HN · (1 - s_FN)^γ`.

use rrra_common::Result;
use rrra_common::schema::ArtifactKind::{Corpus, Scored};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use super::pool::{FnScore, MarginMode, OUTPUTS, Rule, Sampler, pool_params};
use crate::sampling::{Hardness, Weighting};

pool_params! {
    /// Params of `resample.rrra`: those of `resample.simans` plus `gamma`, `hardness` and
    /// `fn_score`, so a pipeline that sets only the shared ones swaps the two by `kind` alone.
    pub struct RrraParams {
        /// Exponent of the false-negative discount `(1 - s_FN)^gamma`; 0 ignores the adapter.
        pub gamma: f64 = 1.0,
        /// `simans` (default) or `minmax`.
        pub hardness: Hardness = Hardness::Simans,
        /// SimANS `a` of the hardness score (see `resample.simans`).
        pub a: f64 = 200.0,
        /// SimANS `b` of the hardness score.
        pub b: f64 = 0.0,
        /// `ca` (default: `s_fn`) or `head` (`p_rel`).
        pub fn_score: FnScore = FnScore::Ca,
        /// Cut the output into parts of this many queries (in input order), each written to
        /// the entry's work folder as it finishes (a killed run resumes at the first unfinished
        /// part) and concatenated. Unset: no split. Not in the cache key: every pair draws from
        /// its own seeded stream, so the examples do not depend on it.
        #[serde(skip_serializing)]
        pub part_queries: Option<u64> = None,
    }
}

/// `resample.rrra`: adapter-weighted resampling, `w_i = s_HN,i · (1 - s_FN,i)^gamma` over
/// the pool of a `scored` input (mined candidates scored by `score.adapter`).
pub struct ResampleRrra;

impl Stage for ResampleRrra {
    type Params = RrraParams;
    const KIND: &'static str = "resample.rrra";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "RRRA hard negatives, w = s_HN · (1 - s_FN)^γ from the adapter";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("scored", Scored),
                Port::optional("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &RrraParams) -> Result<(), String> {
        p.budget().check()?;
        for (name, v) in [("gamma", p.gamma), ("a", p.a)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("param {name} must be finite and >= 0, got {v}"));
            }
        }
        if !p.b.is_finite() {
            return Err(format!("param b must be finite, got {}", p.b));
        }
        if p.part_queries == Some(0) {
            return Err("param part_queries must be at least 1".into());
        }
        Ok(())
    }
    fn run(p: &RrraParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let weighting = Weighting::Rrra {
            hardness: p.hardness,
            a: p.a,
            b: p.b,
            gamma: p.gamma,
        };
        Sampler {
            kind: Self::KIND,
            budget: p.budget(),
            rule: Rule::Pool {
                weighting,
                mode: MarginMode::Sample,
            },
            rrra_score: Some(p.fn_score),
            part_queries: p.part_queries,
        }
        .run(ctx)
    }
}
