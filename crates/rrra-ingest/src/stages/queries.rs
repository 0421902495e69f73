//! `ingest.queries`: a query file in one of the [`QueryFormat`]s.

use super::{report, required};
use crate::IdIndex;
use crate::mapped::{QueryFields, Table, TableFormat};
use crate::source::{Source, local_sources};
use crate::trec::TopicField;
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::Query;
use rrra_common::schema::ArtifactKind::Queries;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The query file formats.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QueryFormat {
    /// `qid\tquery` (MS MARCO, TREC topics as TSV).
    #[default]
    Msmarco,
    /// BEIR `queries.jsonl`.
    Beir,
    /// DPR `*.qa.tsv` (question, Python list of answers).
    DprQa,
    /// TREC topics (`<top>`, `<num>`, `<title>`, `<desc>`, `<narr>`); `topic_fields`
    /// chooses the fields that form the query text.
    TrecTopics,
    /// JSON Lines with the field mapping `fields`.
    Jsonl,
    /// CSV with the field mapping `fields` (column names from the header, see `header`).
    Csv,
    /// TSV with the field mapping `fields`.
    Tsv,
    /// Parquet with the field mapping `fields`.
    Parquet,
}

pub(crate) fn write_queries(ctx: &StageContext<'_>, file: &Path, p: &QueriesParams) -> Result<u64> {
    let mut sink = ParquetSink::<Query>::create(&ctx.output("queries"))?;
    let mut ids = IdIndex::new();
    let push = |q: Query| sink.push(q);
    let table = |format| Table {
        format,
        header: p.header,
    };
    let n = match p.format {
        QueryFormat::Msmarco => crate::read_msmarco_queries(file, Some(&mut ids), push)?,
        QueryFormat::Beir => crate::read_beir_queries(file, Some(&mut ids), push)?,
        QueryFormat::DprQa => crate::read_dpr_qa_tsv(file, push)?,
        QueryFormat::TrecTopics => {
            crate::read_trec_topics(file, &p.topic_fields, Some(&mut ids), push)?
        }
        QueryFormat::Jsonl | QueryFormat::Csv | QueryFormat::Tsv | QueryFormat::Parquet => {
            let format = match p.format {
                QueryFormat::Jsonl => TableFormat::Jsonl,
                QueryFormat::Csv => TableFormat::Csv,
                QueryFormat::Tsv => TableFormat::Tsv,
                _ => TableFormat::Parquet,
            };
            crate::read_mapped_queries(file, table(format), &p.fields, Some(&mut ids), push)?
        }
    };
    sink.finish()?;
    Ok(n)
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueriesParams {
    /// The query file (relative to the pipeline file).
    pub path: Source,
    /// The file format.
    pub format: QueryFormat,
    /// Field names for `jsonl`, `csv`, `tsv` and `parquet`.
    pub fields: QueryFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns (else fields
    /// are 1-based column numbers).
    pub header: bool,
    /// For `trec_topics`: the fields whose text, joined, is the query.
    pub topic_fields: Vec<TopicField>,
}

impl Default for QueriesParams {
    fn default() -> Self {
        QueriesParams {
            path: Source::default(),
            format: QueryFormat::default(),
            fields: QueryFields::default(),
            header: true,
            topic_fields: vec![TopicField::Title],
        }
    }
}

/// `ingest.queries`: one query file.
pub struct IngestQueries;

impl Stage for IngestQueries {
    type Params = QueriesParams;
    const KIND: &'static str = "ingest.queries";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "a query file: msmarco TSV, BEIR jsonl, DPR qa.tsv, TREC topics, or mapped jsonl/csv/tsv/parquet";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("queries", Queries)] }
    }
    fn check(p: &QueriesParams) -> Result<(), String> {
        if p.format == QueryFormat::TrecTopics && p.topic_fields.is_empty() {
            return Err("param topic_fields must name at least one of title, desc, narr".into());
        }
        required(&[("path", &p.path)])
    }
    fn sources(p: &QueriesParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &QueriesParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let n = write_queries(ctx, &p.path.resolve(ctx)?, p)?;
        Ok(report(&[("queries", n)]))
    }
}
