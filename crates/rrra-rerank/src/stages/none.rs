//! `rerank.none`: the first-stage order kept (cut at `depth`), the ablation swap-in for
//! `rerank.adapter`.

use rrra_common::Result;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use super::{INPUTS, OUTPUTS, rerank};

/// Params of `rerank.none`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NoRerankParams {
    /// Keep each query's `depth` best first-stage documents; 0 keeps all.
    pub depth: u32,
}

/// `rerank.none`.
pub struct RerankNone;

impl Stage for RerankNone {
    type Params = NoRerankParams;
    const KIND: &'static str = "rerank.none";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "keep the first-stage order (ablation swap-in for rerank.adapter)";

    fn inputs() -> &'static [Port] {
        INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn run(p: &NoRerankParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        rerank(ctx, p.depth, |base, _| base)
    }
}
