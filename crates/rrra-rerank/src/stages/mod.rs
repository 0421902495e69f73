//! The `rerank.*` pipeline stages, one kind per file: `rerank.adapter` ([`adapter`]) and
//! `rerank.none` ([`none`]); both stream the same `scored` input through [`rerank`].

use rrra_common::artifact::ParquetSink;
use rrra_common::columns::{GroupRow, for_each_query_group};
use rrra_common::records::RunRow;
use rrra_common::schema::ArtifactKind::{Run, Scored as ScoredKind};
use rrra_common::stage::{Port, StageContext, StageReport};
use rrra_common::{Error, Result};

mod adapter;
mod none;

pub use adapter::{AdapterRerankParams, RerankAdapter};
pub use none::{NoRerankParams, RerankNone};

const INPUTS: &[Port] = &[Port::required("scored", ScoredKind)];
const OUTPUTS: &[Port] = &[Port::required("run", Run)];

/// Per query: the `depth` best rows by first-stage score (then doc id), reordered by
/// `key(score, qa_score)` (ties by doc id), written with 1-based ranks and `key` as the
/// score. Queries in file order (each query's rows must be contiguous).
pub(super) fn rerank(
    ctx: &StageContext<'_>,
    depth: u32,
    key: impl Fn(f64, f64) -> f64,
) -> Result<StageReport> {
    let path = ctx.input("scored")?;
    let clock = std::time::Instant::now();
    let mut sink = ParquetSink::<RunRow>::create(&ctx.output("run"))?;
    let (mut moved, mut total) = (0u64, 0u64);
    let queries = for_each_query_group(path, ScoredKind, |query_id, rows| {
        if let Some(r) = rows
            .iter()
            .find(|r| !r.score.is_finite() || !r.adapter[0].is_finite())
        {
            return Err(Error::file(
                path,
                format!(
                    "record {}: query {query_id:?} doc {:?} has a non-finite score; expected finite scores",
                    r.record, r.doc_id
                ),
            ));
        }
        let mut order: Vec<&GroupRow> = rows.iter().collect();
        order.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.doc_id.cmp(&b.doc_id))
        });
        if depth > 0 {
            order.truncate(depth as usize);
        }
        let mut keyed: Vec<(f64, usize, &GroupRow)> = order
            .iter()
            .enumerate()
            .map(|(i, r)| (key(r.score, r.adapter[0]), i, *r))
            .collect();
        keyed.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.2.doc_id.cmp(&b.2.doc_id))
        });
        for (rank, (score, before, r)) in keyed.into_iter().enumerate() {
            moved += u64::from(before != rank);
            total += 1;
            sink.push(RunRow {
                query_id: query_id.to_string(),
                doc_id: r.doc_id.clone(),
                rank: rank as u32 + 1,
                score,
            })?;
        }
        Ok(())
    })?;
    sink.finish()?;
    let seconds = clock.elapsed().as_secs_f64();
    Ok(StageReport {
        metrics: [
            ("queries".to_string(), queries as f64),
            ("rows".to_string(), total as f64),
            (
                "moved_fraction".to_string(),
                moved as f64 / total.max(1) as f64,
            ),
            (
                "ms_per_query".to_string(),
                1000.0 * seconds / queries.max(1) as f64,
            ),
        ]
        .into(),
        table: None,
    })
}

#[cfg(test)]
mod tests;
