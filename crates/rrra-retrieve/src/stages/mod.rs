//! The `retrieve.*` pipeline stages, one kind per file: a corpus and queries in, a ranked
//! run out; `retrieve.bm25` ([`bm25`]) and `retrieve.dense` ([`dense`]). What they share,
//! writing the run, is here.

use std::path::Path;

use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::RunRow;

mod bm25;
mod dense;

pub use bm25::{Bm25StageParams, RetrieveBm25};
pub use dense::{DenseParams, RetrieveDense};

/// Writes per-query hits (best first) as a run file at `out`; returns the row count.
pub(super) fn write_run<'a>(
    out: &Path,
    query_ids: impl Iterator<Item = &'a str>,
    hits: Vec<Vec<(u32, f32)>>,
    doc_id: impl Fn(u32) -> Result<&'a str>,
) -> Result<u64> {
    let mut sink = ParquetSink::<RunRow>::create(out)?;
    for (query_id, hits) in query_ids.zip(hits) {
        for (rank, (doc, score)) in hits.into_iter().enumerate() {
            sink.push(RunRow {
                query_id: query_id.to_string(),
                doc_id: doc_id(doc)?.to_string(),
                rank: rank as u32 + 1,
                score: f64::from(score),
            })?;
        }
    }
    sink.finish()
}
