//! `ingest.qrels`: a qrels file in one of the [`QrelsFormat`]s, judged documents checked
//! against a connected corpus.

use super::{UnknownDocs, report, required};
use crate::IdIndex;
use crate::mapped::{QrelFields, Table, TableFormat};
use crate::source::{Source, local_sources};
use rrra_common::artifact::ParquetSink;
use rrra_common::records::{Doc, Qrel};
use rrra_common::schema::ArtifactKind::{Corpus, Qrels};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Writes the `qrels` output from `file`, checking each judged document against `docs`
/// (when given) as `unknown` says; returns (judgements written, judgements dropped).
pub(crate) fn write_qrels(
    ctx: &StageContext<'_>,
    file: &Path,
    docs: Option<&IdIndex>,
    unknown: UnknownDocs,
    p: &QrelsParams,
) -> Result<(u64, u64)> {
    let mut sink = ParquetSink::<Qrel>::create(&ctx.output("qrels"))?;
    let known = docs.filter(|_| unknown.is_error());
    let mut dropped = 0;
    let push = |q: Qrel| match docs {
        Some(docs) if unknown == UnknownDocs::Drop && !docs.contains(&q.doc_id) => {
            dropped += 1;
            Ok(())
        }
        _ => sink.push(q),
    };
    let n = match p.format {
        QrelsFormat::Auto => crate::read_qrels(file, known, push)?,
        QrelsFormat::Jsonl | QrelsFormat::Csv | QrelsFormat::Tsv | QrelsFormat::Parquet => {
            let format = match p.format {
                QrelsFormat::Jsonl => TableFormat::Jsonl,
                QrelsFormat::Csv => TableFormat::Csv,
                QrelsFormat::Tsv => TableFormat::Tsv,
                _ => TableFormat::Parquet,
            };
            let table = Table {
                format,
                header: p.header,
            };
            crate::read_mapped_qrels(file, table, &p.fields, known, push)?
        }
    };
    sink.finish()?;
    Ok((n - dropped, dropped))
}

/// The ingest report's counts, with `qrels_dropped` only under [`UnknownDocs::Drop`] (so
/// the other policies' manifests are unchanged).
pub(crate) fn qrels_counts(
    mut counts: Vec<(&str, u64)>,
    (kept, dropped): (u64, u64),
    unknown: UnknownDocs,
) -> StageReport {
    counts.push(("qrels", kept));
    if unknown == UnknownDocs::Drop {
        counts.push(("qrels_dropped", dropped));
    }
    report(&counts)
}

/// The qrels file formats.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QrelsFormat {
    /// TREC 4-column or BEIR TSV with header, told apart by the first line.
    #[default]
    Auto,
    /// JSON Lines with the field mapping `fields`.
    Jsonl,
    /// CSV with the field mapping `fields`.
    Csv,
    /// TSV with the field mapping `fields`.
    Tsv,
    /// Parquet with the field mapping `fields`.
    Parquet,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QrelsParams {
    /// The TREC qrels file (relative to the pipeline file).
    pub path: Source,
    /// Applies when a corpus is connected: judgements of documents it lacks.
    pub unknown_docs: UnknownDocs,
    /// The file format (`auto`: TREC or BEIR, told apart by the first line).
    pub format: QrelsFormat,
    /// Field names for `jsonl`, `csv`, `tsv` and `parquet` (`relevance: null`: all 1).
    pub fields: QrelFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns.
    pub header: bool,
}

impl Default for QrelsParams {
    fn default() -> Self {
        QrelsParams {
            path: Source::default(),
            unknown_docs: UnknownDocs::default(),
            format: QrelsFormat::default(),
            fields: QrelFields::default(),
            header: true,
        }
    }
}

/// `ingest.qrels`: a TREC or BEIR qrels file, checked against a corpus when one is connected.
pub struct IngestQrels;

impl Stage for IngestQrels {
    type Params = QrelsParams;
    const KIND: &'static str = "ingest.qrels";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "a qrels file (TREC 4-column, BEIR TSV, or mapped jsonl/csv/tsv/parquet)";

    fn inputs() -> &'static [Port] {
        const { &[Port::optional("corpus", Corpus)] }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("qrels", Qrels)] }
    }
    fn check(p: &QrelsParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &QrelsParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &QrelsParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let known = match (ctx.optional_input("corpus"), p.unknown_docs) {
            (Some(corpus), UnknownDocs::Error | UnknownDocs::Drop) => {
                let mut ids = IdIndex::new();
                rrra_common::artifact::for_each_batch::<Doc>(corpus, |docs| {
                    for d in docs {
                        ids.insert("doc", corpus, 0, &d.id)?;
                    }
                    Ok(())
                })?;
                Some(ids)
            }
            (None, UnknownDocs::Drop) => {
                return Err(Error::Invalid(
                    "param unknown_docs: drop needs the corpus input (to know which \
                     documents exist)"
                        .into(),
                ));
            }
            _ => None,
        };
        let n = write_qrels(
            ctx,
            &p.path.resolve(ctx)?,
            known.as_ref(),
            p.unknown_docs,
            p,
        )?;
        Ok(qrels_counts(Vec::new(), n, p.unknown_docs))
    }
}
