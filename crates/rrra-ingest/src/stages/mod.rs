//! The pipeline stages of this crate, one kind per file (`kind: ingest.beir` lives in
//! `beir.rs`): the `ingest.*` stages each read source files in one format and write corpus /
//! queries / qrels / run artifacts (`corpus`, `pairs` and `trec` are for a user's own
//! data). `qrels.hide` (`hide.rs`) and `qrels.split` (`split.rs`) are not ingestion: they
//! transform qrels artifacts, and live here beside the qrels readers and the
//! [`crate::hide_relevant`] / [`crate::split_queries`] functions they run. What several
//! stages share (unknown-document policy, progress, report, param checks) is below.

mod beir;
mod corpus;
mod dpr;
mod hide;
mod msmarco;
mod pairs;
mod qrels;
mod queries;
mod smart;
mod split;
mod trec;
mod trec_run;

pub use beir::{BeirParams, IngestBeir};
pub use corpus::{CorpusFormat, CorpusParams, IngestCorpus};
pub use dpr::{DprParams, IngestDpr};
pub use hide::{HideParams, QrelsHide};
pub use msmarco::{IngestMsmarco, MsmarcoParams};
pub use pairs::{IngestPairs, PairsParams};
pub use qrels::{IngestQrels, QrelsFormat, QrelsParams};
pub use queries::{IngestQueries, QueriesParams, QueryFormat};
pub use smart::{IngestSmart, SmartParams};
pub use split::{QrelsSplit, SplitParams};
pub use trec::{IngestTrec, TrecParams};
pub use trec_run::{IngestTrecRun, RunParams};

use crate::source::Source;
use rrra_common::artifact::ParquetSink;
use rrra_common::progress::Task;
use rrra_common::stage::{StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What to do with a judgement of a document the corpus lacks (samples of a collection, such
/// as the DL19 sample that keeps no grade-0 passages, have such judgements by design).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDocs {
    /// Reject the file, naming the line.
    #[default]
    Error,
    /// Keep the judgement (it cannot be retrieved, but counts towards recall's denominator).
    Keep,
    /// Drop the judgement (the stage reports how many as `qrels_dropped`): for a corpus
    /// that lacks some judged documents, when downstream stages (mining, training) must
    /// find every judged document.
    Drop,
}

impl UnknownDocs {
    fn is_error(&self) -> bool {
        *self == UnknownDocs::Error
    }
}

pub(crate) fn spinner(ctx: &StageContext<'_>, label: &str) -> Box<dyn Task> {
    ctx.progress.task(label, None)
}

/// Copies records from a reader into a Parquet sink, reporting progress.
pub(crate) fn sink_into<R: rrra_common::table::Row>(
    sink: &mut ParquetSink<R>,
    task: &dyn Task,
) -> impl FnMut(R) -> Result<()> {
    move |row| {
        task.inc(1);
        sink.push(row)
    }
}

pub(crate) fn report(rows: &[(&str, u64)]) -> StageReport {
    StageReport {
        metrics: rows
            .iter()
            .map(|(k, v)| (k.to_string(), *v as f64))
            .collect(),
        table: None,
    }
}

/// Each param given and, when it is a download, well formed.
pub(crate) fn required(params: &[(&str, &Source)]) -> Result<(), String> {
    for (name, source) in params {
        if source.is_empty() {
            return Err(format!("param {name} is required"));
        }
        source.check(name)?;
    }
    Ok(())
}

/// The files under `path`: itself when it is a file, else every file below it (hidden
/// names skipped) in byte order of their paths.
pub(crate) fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::file(path, "empty folder: expected files to read"));
    }
    Ok(out)
}
