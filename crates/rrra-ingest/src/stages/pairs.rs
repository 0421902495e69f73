//! `ingest.pairs`: a user's (query, positive[, negative]) training pairs.

use super::beir::IngestBeir;
use super::{report, required, spinner};
use crate::mapped::{Table, TableFormat};
use crate::pairs::{PairFields, PairItem};
use crate::source::{Source, local_sources};
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PairsParams {
    /// The file: a path (relative to the pipeline file), `{url, sha256|md5, member}` or `{collection, member}`.
    pub path: Source,
    /// The file format: `jsonl`, `csv`, `tsv` or `parquet`.
    pub format: TableFormat,
    /// Field names of the query, positive and (optional) negative texts and ids.
    pub fields: PairFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns (else fields are
    /// 1-based column numbers).
    pub header: bool,
}

impl Default for PairsParams {
    fn default() -> Self {
        PairsParams {
            path: Source::default(),
            format: TableFormat::Jsonl,
            fields: PairFields::default(),
            header: true,
        }
    }
}

/// `ingest.pairs`: (query, positive[, negative]) training pairs → queries, a corpus of the
/// pair texts and qrels (positive 1, negative 0); see [`crate::read_pairs`] for ids.
pub struct IngestPairs;

impl Stage for IngestPairs {
    type Params = PairsParams;
    const KIND: &'static str = "ingest.pairs";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "(query, positive[, negative]) pairs in jsonl/csv/tsv/parquet -> corpus, queries, qrels";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &PairsParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &PairsParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &PairsParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let file = p.path.resolve(ctx)?;
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let mut queries = ParquetSink::<Query>::create(&ctx.output("queries"))?;
        let task = spinner(ctx, "pairs");
        let (mut n_docs, mut n_queries) = (0u64, 0u64);
        let table = Table {
            format: p.format,
            header: p.header,
        };
        let pairs = crate::read_pairs(&file, table, &p.fields, |item| match item {
            PairItem::Query(q) => {
                task.inc(1);
                n_queries += 1;
                queries.push(q)
            }
            PairItem::Doc(d) => {
                n_docs += 1;
                corpus.push(d)
            }
        })?;
        corpus.finish()?;
        queries.finish()?;
        let n_qrels = pairs.qrels.len() as u64;
        let positives = pairs.qrels.iter().filter(|q| q.relevance > 0).count() as u64;
        rrra_common::artifact::write_rows::<Qrel>(&ctx.output("qrels"), pairs.qrels)?;
        Ok(report(&[
            ("records", pairs.records),
            ("docs", n_docs),
            ("queries", n_queries),
            ("qrels", n_qrels),
            ("positives", positives),
        ]))
    }
}
