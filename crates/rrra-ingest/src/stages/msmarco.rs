//! `ingest.msmarco`: the MS MARCO passage collection and queries TSVs (plus qrels).

use super::beir::IngestBeir;
use super::qrels::{QrelsParams, qrels_counts, write_qrels};
use super::queries::{QueriesParams, write_queries};
use super::{UnknownDocs, required, sink_into, spinner};
use crate::IdIndex;
use crate::source::{Source, local_sources};
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::Doc;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MsmarcoParams {
    /// `collection.tsv` (pid, passage).
    pub collection: Source,
    /// `queries.*.tsv` (qid, query).
    pub queries: Source,
    /// Qrels in TREC form (`qid iter pid grade`, tabs or spaces).
    pub qrels: Source,
    /// Judgements of documents the corpus lacks: `error` (reject the file), `keep` or `drop`.
    pub unknown_docs: UnknownDocs,
}

/// `ingest.msmarco`: MS MARCO passage TSV files and TREC qrels.
pub struct IngestMsmarco;

impl Stage for IngestMsmarco {
    type Params = MsmarcoParams;
    const KIND: &'static str = "ingest.msmarco";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "MS MARCO passage collection.tsv, queries TSV and TREC qrels";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &MsmarcoParams) -> Result<(), String> {
        required(&[
            ("collection", &p.collection),
            ("queries", &p.queries),
            ("qrels", &p.qrels),
        ])
    }
    fn sources(p: &MsmarcoParams) -> Vec<PathBuf> {
        local_sources([&p.collection, &p.queries, &p.qrels])
    }

    fn run(p: &MsmarcoParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let mut docs = IdIndex::new();
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "collection");
        let n_docs = crate::read_msmarco_collection(
            &p.collection.resolve(ctx)?,
            Some(&mut docs),
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        drop(task);
        let n_queries = write_queries(ctx, &p.queries.resolve(ctx)?, &QueriesParams::default())?;
        let qrels = QrelsParams::default();
        let n_qrels = write_qrels(
            ctx,
            &p.qrels.resolve(ctx)?,
            Some(&docs),
            p.unknown_docs,
            &qrels,
        )?;
        Ok(qrels_counts(
            vec![("docs", n_docs), ("queries", n_queries)],
            n_qrels,
            p.unknown_docs,
        ))
    }
}
