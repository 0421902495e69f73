//! `ingest.trec_run`: a TREC run file as a `run` artifact.

use super::{report, required};
use crate::source::{Source, local_sources};
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::RunRow;
use rrra_common::schema::ArtifactKind::Run;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RunParams {
    /// The TREC run file (relative to the pipeline file).
    pub path: Source,
}

/// `ingest.trec_run`: a TREC run file from another system, to evaluate or compare against.
pub struct IngestTrecRun;

impl Stage for IngestTrecRun {
    type Params = RunParams;
    const KIND: &'static str = "ingest.trec_run";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "a TREC run file (qid Q0 docid rank score tag)";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("run", Run)] }
    }
    fn check(p: &RunParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &RunParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &RunParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let mut sink = ParquetSink::<RunRow>::create(&ctx.output("run"))?;
        let n = crate::read_trec_run(&p.path.resolve(ctx)?, |r| sink.push(r))?;
        sink.finish()?;
        Ok(report(&[("rows", n)]))
    }
}
