//! `ingest.smart`: a SMART-format test collection (Cranfield, CISI, CACM).

use super::beir::IngestBeir;
use super::{report, required, sink_into, spinner};
use crate::source::{Source, local_sources};
use crate::{IdIndex, QueryIds, SmartQrels};
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmartParams {
    /// The documents as SMART `.I` records (`cran.all.1400`, `CISI.ALL`, `cacm.all`).
    pub corpus: Source,
    /// The queries as SMART `.I` records (`cran.qry`, `CISI.QRY`) or TREC-style `<DOC>`
    /// topic blocks (`topics.cacm.txt`), told apart by the first line.
    pub queries: Source,
    /// The qrels (`cranqrel`, `CISI.REL`, `qrels.cacm.txt`).
    pub qrels: Source,
    /// `field` (the ids written in the query file) or `ordinal` (1-based positions; what
    /// Cranfield's `cranqrel` uses).
    pub query_ids: QueryIds,
    /// `auto` (from the first line), `cranfield`, `cisi` or `trec`.
    pub qrels_format: SmartQrels,
    /// Prepended to the `.I` numbers to form doc ids (`"CACM-"` for CACM's qrels).
    pub doc_id_prefix: String,
}

/// `ingest.smart`: a SMART-format test collection (Cranfield, CISI, CACM). Every query of
/// the query file is kept, judged or not; every judgement must name a known query and doc.
/// Grades: see [`crate::read_smart_qrels`].
pub struct IngestSmart;

impl Stage for IngestSmart {
    type Params = SmartParams;
    const KIND: &'static str = "ingest.smart";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "SMART test collection (.I records; Cranfield, CISI, CACM)";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &SmartParams) -> Result<(), String> {
        required(&[
            ("corpus", &p.corpus),
            ("queries", &p.queries),
            ("qrels", &p.qrels),
        ])?;
        if p.doc_id_prefix.contains(char::is_whitespace) {
            return Err("param doc_id_prefix must not contain whitespace".into());
        }
        Ok(())
    }
    fn sources(p: &SmartParams) -> Vec<PathBuf> {
        local_sources([&p.corpus, &p.queries, &p.qrels])
    }

    fn run(p: &SmartParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let mut docs = IdIndex::new();
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "corpus");
        let n_docs = crate::read_smart_corpus(
            &p.corpus.resolve(ctx)?,
            &p.doc_id_prefix,
            Some(&mut docs),
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        drop(task);

        let mut ids = IdIndex::new();
        let mut queries = ParquetSink::<Query>::create(&ctx.output("queries"))?;
        let n_queries = crate::read_smart_queries(
            &p.queries.resolve(ctx)?,
            p.query_ids,
            Some(&mut ids),
            |q| queries.push(q),
        )?;
        queries.finish()?;

        let mut judged = BTreeSet::new();
        let mut relevant = 0;
        let mut qrels = ParquetSink::<Qrel>::create(&ctx.output("qrels"))?;
        let n_qrels = crate::read_smart_qrels(
            &p.qrels.resolve(ctx)?,
            p.qrels_format,
            Some(&ids),
            Some(&docs),
            |q| {
                relevant += u64::from(q.relevance > 0);
                if !judged.contains(&q.query_id) {
                    judged.insert(q.query_id.clone());
                }
                qrels.push(q)
            },
        )?;
        qrels.finish()?;
        Ok(report(&[
            ("docs", n_docs),
            ("queries", n_queries),
            ("judged_queries", judged.len() as u64),
            ("qrels", n_qrels),
            ("relevant", relevant),
        ]))
    }
}
