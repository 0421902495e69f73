//! `qrels.hide`: not ingestion but a transformation of qrels artifacts (kept in this crate
//! beside the qrels readers): hides part of each query's relevant judgements for
//! false-negative detection experiments ([`crate::hide_relevant`]).

use super::report;
use crate::HideSpec;
use rrra_common::Result;
use rrra_common::records::Qrel;
use rrra_common::schema::ArtifactKind::Qrels;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HideParams {
    /// Share of each query's relevant judgements to hide, in `[0, 1]`, rounded down.
    pub fraction: f64,
    /// Relevant judgements of each query that always stay visible.
    pub min_visible: u32,
    /// The lowest grade that counts as relevant (`>= 1`).
    pub relevance_threshold: i32,
}

impl Default for HideParams {
    fn default() -> Self {
        HideParams {
            fraction: 0.5,
            min_visible: 1,
            relevance_threshold: 1,
        }
    }
}

/// `qrels.hide`: per query, hides a random `fraction` of the relevant judgements (keeping
/// at least `min_visible` of them), for false-negative detection experiments: `visible`
/// holds the rest (non-relevant judgements included), `hidden` the hidden ones. Seeded;
/// the draw for a query depends only on the seed, the query id and its relevant doc ids
/// (see [`crate::hide_relevant`]).
pub struct QrelsHide;

impl Stage for QrelsHide {
    type Params = HideParams;
    const KIND: &'static str = "qrels.hide";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "hide a random share of each query's relevant judgements";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const { &[Port::required("qrels", Qrels)] }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("visible", Qrels),
                Port::required("hidden", Qrels),
            ]
        }
    }
    fn check(p: &HideParams) -> Result<(), String> {
        if !(0.0..=1.0).contains(&p.fraction) {
            return Err(format!(
                "param fraction must be in [0, 1], found {}",
                p.fraction
            ));
        }
        if p.relevance_threshold < 1 {
            return Err(format!(
                "param relevance_threshold must be >= 1 (grades <= 0 are non-relevant), found {}",
                p.relevance_threshold
            ));
        }
        Ok(())
    }

    fn run(p: &HideParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let rows = rrra_common::artifact::read_rows::<Qrel>(ctx.input("qrels")?)?;
        let spec = HideSpec {
            fraction: p.fraction,
            min_visible: p.min_visible as usize,
            relevance_threshold: p.relevance_threshold,
        };
        let split = crate::hide_relevant(rows, &spec, ctx.seed);
        let hidden = split.hidden.len() as u64;
        rrra_common::artifact::write_rows(&ctx.output("visible"), split.visible)?;
        rrra_common::artifact::write_rows(&ctx.output("hidden"), split.hidden)?;
        Ok(report(&[
            ("queries", split.queries),
            ("relevant", split.relevant),
            ("hidden", hidden),
            ("visible", split.relevant - hidden),
        ]))
    }
}
