//! The `retrieve.*` pipeline stages: a corpus and queries in, a ranked run out.

use rrra_common::artifact::{ParquetSink, read_rows};
use rrra_common::embeddings;
use rrra_common::parts::{Parts, concat_rows, merge_top_k};
use rrra_common::records::{Doc, Query, RunRow};
use rrra_common::schema::ArtifactKind::{Corpus, Embeddings, Queries, Run};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::{Bm25Index, Bm25Params, TopK};

/// Writes per-query hits (best first) as a run file at `out`; returns the row count.
fn write_run<'a>(
    out: &std::path::Path,
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

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Bm25StageParams {
    /// BM25 term-frequency saturation.
    pub k1: f64,
    /// BM25 length normalisation (0: none, 1: full).
    pub b: f64,
    /// Documents kept per query.
    pub top_k: usize,
}

impl Default for Bm25StageParams {
    fn default() -> Self {
        let d = Bm25Params::default();
        Bm25StageParams {
            k1: f64::from(d.k1),
            b: f64::from(d.b),
            top_k: 1000,
        }
    }
}

/// `retrieve.bm25`: BM25 over `title + " " + text` with English analysis.
pub struct RetrieveBm25;

impl Stage for RetrieveBm25 {
    type Params = Bm25StageParams;
    const KIND: &'static str = "retrieve.bm25";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "BM25 (Lucene-style English analysis, k1, b, top_k)";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("corpus", Corpus),
                Port::required("queries", Queries),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("run", Run)] }
    }
    fn check(p: &Bm25StageParams) -> Result<(), String> {
        if !(p.k1 >= 0.0 && p.k1.is_finite()) {
            return Err(format!("param k1 must be >= 0, got {}", p.k1));
        }
        if !(0.0..=1.0).contains(&p.b) {
            return Err(format!("param b must be in [0, 1], got {}", p.b));
        }
        if p.top_k == 0 {
            return Err("param top_k must be at least 1".into());
        }
        Ok(())
    }

    fn run(p: &Bm25StageParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let docs = read_rows::<Doc>(ctx.input("corpus")?)?;
        let queries = read_rows::<Query>(ctx.input("queries")?)?;
        let start = std::time::Instant::now();
        let index = Bm25Index::from_docs(
            &docs,
            Bm25Params {
                k1: p.k1 as f32,
                b: p.b as f32,
            },
            ctx.progress,
        )?;
        let index_s = start.elapsed().as_secs_f64();
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        let start = std::time::Instant::now();
        let hits = index.search_batch(&texts, p.top_k, ctx.progress);
        let search_s = start.elapsed().as_secs_f64();
        let rows = write_run(
            &ctx.output("run"),
            queries.iter().map(|q| q.id.as_str()),
            hits,
            |doc| Ok(docs[doc as usize].id.as_str()),
        )?;
        Ok(StageReport {
            metrics: [
                ("docs".to_string(), docs.len() as f64),
                ("terms".to_string(), index.num_terms() as f64),
                ("index_s".to_string(), index_s),
                (
                    "queries_per_s".to_string(),
                    queries.len() as f64 / search_s.max(1e-9),
                ),
                ("rows".to_string(), rows as f64),
            ]
            .into(),
            table: None,
        })
    }
}

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
