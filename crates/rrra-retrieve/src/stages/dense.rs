//! `retrieve.dense`: exact inner-product top-k of query embeddings against corpus
//! embeddings, a ranked run out; optionally split by queries or by corpus rows.

use std::path::Path;

use rrra_common::embeddings;
use rrra_common::parts::{Parts, concat_rows, merge_top_k};
use rrra_common::records::RunRow;
use rrra_common::schema::ArtifactKind::{Embeddings, Run};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use super::write_run;
use crate::TopK;

/// Searches corpus rows `docs` (numbered from the start of the corpus, so ties keep corpus
/// order across parts) for `queries` (ids, row-major vectors, width) and writes their top-k
/// run to `out`. The search reads the corpus vectors only and keeps row numbers; the hits'
/// ids are then read in one pass over the id column (only theirs are held).
fn dense_search(
    ctx: &StageContext<'_>,
    top_k: usize,
    (query_ids, queries, dim): (&[String], &[f32], usize),
    (corpus, docs): (&Path, std::ops::Range<u64>),
    out: &Path,
) -> Result<()> {
    let corpus_dim = embeddings::width(corpus)?;
    if corpus_dim != dim {
        return Err(Error::file(
            corpus,
            format!("corpus vectors are {corpus_dim} wide, the query vectors {dim}"),
        ));
    }
    let mut top = TopK::new(query_ids.len(), dim, top_k)?;
    let task = ctx
        .progress
        .task("dense search (docs)", Some(docs.end - docs.start));
    let mut at = 0u64;
    embeddings::for_each_vector_block(corpus, |vectors| {
        let rows = (vectors.len() / dim) as u64;
        let (lo, hi) = (docs.start.max(at), docs.end.min(at + rows));
        if lo < hi {
            let (a, b) = ((lo - at) as usize, (hi - at) as usize);
            let first = u32::try_from(lo).map_err(|_| {
                Error::file(corpus, "more documents than u32 indices hold".to_string())
            })?;
            top.add_block(queries, &vectors[a * dim..b * dim], first)?;
            task.inc((b - a) as u64);
        }
        at += rows;
        Ok(())
    })?;
    drop(task);
    let hits = top.into_results();
    let ids = embeddings::RowIds::read(
        corpus,
        hits.iter().flatten().map(|&(doc, _)| u64::from(doc)),
    )?;
    write_run(out, query_ids.iter().map(String::as_str), hits, |doc| {
        ids.get(u64::from(doc))
            .ok_or_else(|| Error::file(corpus, format!("row {doc} was not read")))
    })?;
    Ok(())
}

/// Params of `retrieve.dense`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DenseParams {
    /// Documents kept per query.
    pub top_k: usize,
    /// Query split: cut the run into parts of this many queries (input rows), each
    /// written to the entry's work folder as it finishes (a killed run resumes at the first
    /// unfinished part) and concatenated. Unset: no split. Not in the cache key: the run
    /// does not depend on it.
    #[serde(skip_serializing)]
    pub part_queries: Option<u64>,
    /// Corpus split: search parts of this many corpus rows each, then merge the parts'
    /// top-k exactly (score descending, ties in corpus order). Unset: no split. Not in
    /// the cache key.
    #[serde(skip_serializing)]
    pub part_docs: Option<u64>,
}

impl Default for DenseParams {
    fn default() -> Self {
        DenseParams {
            top_k: 1000,
            part_queries: None,
            part_docs: None,
        }
    }
}

/// `retrieve.dense`: exact inner-product top-k of query embeddings against corpus
/// embeddings. The corpus is streamed block by block; the query × corpus score matrix never
/// exists, so memory is the queries, one block, and `queries × top_k` hits.
pub struct RetrieveDense;

impl Stage for RetrieveDense {
    type Params = DenseParams;
    const KIND: &'static str = "retrieve.dense";
    /// 2: a tile of one query (or one document) is scored as the same row in a larger
    /// tile (SGEMM's matrix-vector path summed in another order: last-bit differences).
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "exact inner-product top-k over embeddings, blocked";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("queries", Embeddings),
                Port::required("corpus", Embeddings),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("run", Run)] }
    }
    fn check(p: &DenseParams) -> Result<(), String> {
        if p.top_k == 0 {
            return Err("param top_k must be at least 1".into());
        }
        if p.part_queries.is_some() && p.part_docs.is_some() {
            return Err("set at most one of the params part_queries and part_docs".into());
        }
        if p.part_queries == Some(0) || p.part_docs == Some(0) {
            return Err("params part_queries and part_docs must be at least 1".into());
        }
        Ok(())
    }

    fn run(p: &DenseParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let (query_ids, queries, dim) = embeddings::read_all(ctx.input("queries")?)?;
        let corpus = ctx.input("corpus")?;
        let total = rrra_common::artifact::parquet_rows(corpus)?;
        let start = std::time::Instant::now();
        let out = ctx.output("run");
        let nq = query_ids.len() as u64;
        let search = |queries: &[f32], ids: &[String], docs: std::ops::Range<u64>, file: &Path| {
            dense_search(ctx, p.top_k, (ids, queries, dim), (corpus, docs), file)
        };
        let (rows, split) = match (p.part_queries, p.part_docs) {
            (Some(size), _) => {
                let parts = Parts::open(&ctx.work_dir, "run", "queries", size, nq)?;
                let done = parts.compute(ctx.progress, "retrieve.dense", |range, file| {
                    let (a, b) = (range.start as usize, range.end as usize);
                    search(&queries[a * dim..b * dim], &query_ids[a..b], 0..total, file)
                })?;
                (concat_rows::<RunRow>(&done.files, &out)?, Some(done))
            }
            (None, Some(size)) => {
                let parts = Parts::open(&ctx.work_dir, "run", "docs", size, total)?;
                let done = parts.compute(ctx.progress, "retrieve.dense", |range, file| {
                    search(&queries, &query_ids, range, file)
                })?;
                let rows = merge_top_k(&done.files, &query_ids, p.top_k, &out)?;
                (rows, Some(done))
            }
            (None, None) => {
                search(&queries, &query_ids, 0..total, &out)?;
                (rrra_common::artifact::parquet_rows(&out)?, None)
            }
        };
        let search_s = start.elapsed().as_secs_f64();
        Ok(StageReport {
            metrics: [
                ("docs".to_string(), total as f64),
                ("queries".to_string(), query_ids.len() as f64),
                (
                    "queries_per_s".to_string(),
                    query_ids.len() as f64 / search_s.max(1e-9),
                ),
                ("rows".to_string(), rows as f64),
            ]
            .into_iter()
            .chain(split.iter().flat_map(|done| done.metrics()))
            .collect(),
            table: None,
        })
    }
}
