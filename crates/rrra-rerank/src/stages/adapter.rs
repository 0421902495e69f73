//! `rerank.adapter`: each query's top `depth` reordered by `s_RR = s_base · s_adapter^λ`.

use rrra_common::Result;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use super::{INPUTS, OUTPUTS, rerank};
use crate::s_rr;

/// Params of `rerank.adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterRerankParams {
    /// Exponent of the adapter score; 0 keeps the first-stage order.
    pub lambda: f64,
    /// Rerank (and keep) each query's `depth` best first-stage documents; 0 keeps all.
    pub depth: u32,
}

impl Default for AdapterRerankParams {
    fn default() -> Self {
        AdapterRerankParams {
            lambda: 1.0,
            depth: 0,
        }
    }
}

/// `rerank.adapter`.
pub struct RerankAdapter;

impl Stage for RerankAdapter {
    type Params = AdapterRerankParams;
    const KIND: &'static str = "rerank.adapter";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "rerank a scored top-K by s_base · s_adapter^λ";

    fn inputs() -> &'static [Port] {
        INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &AdapterRerankParams) -> Result<(), String> {
        if !(p.lambda >= 0.0 && p.lambda.is_finite()) {
            return Err(format!(
                "param lambda must be finite and >= 0, got {}",
                p.lambda
            ));
        }
        Ok(())
    }
    fn run(p: &AdapterRerankParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let lambda = p.lambda;
        rerank(ctx, p.depth, |base, qa| s_rr(base, qa, lambda))
    }
}
