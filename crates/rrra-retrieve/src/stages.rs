//! The `retrieve.*` pipeline stages: a corpus and queries in, a ranked run out.

use rrra_common::artifact::{ParquetSink, read_rows};
use rrra_common::embeddings;
use rrra_common::records::{Doc, Query, RunRow};
use rrra_common::schema::ArtifactKind::{Corpus, Embeddings, Queries, Run};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::{Bm25Index, Bm25Params, TopK};

/// Writes per-query hits (best first) as the `run` output; returns the row count.
fn write_run<'a>(
    ctx: &StageContext<'_>,
    query_ids: impl Iterator<Item = &'a str>,
    hits: Vec<Vec<(u32, f32)>>,
    doc_id: impl Fn(u32) -> &'a String,
) -> Result<u64> {
    let mut sink = ParquetSink::<RunRow>::create(&ctx.output("run"))?;
    for (query_id, hits) in query_ids.zip(hits) {
        for (rank, (doc, score)) in hits.into_iter().enumerate() {
            sink.push(RunRow {
                query_id: query_id.to_string(),
                doc_id: doc_id(doc).clone(),
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
        let rows = write_run(ctx, queries.iter().map(|q| q.id.as_str()), hits, |doc| {
            &docs[doc as usize].id
        })?;
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

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DenseParams {
    /// Documents kept per query.
    pub top_k: usize,
}

impl Default for DenseParams {
    fn default() -> Self {
        DenseParams { top_k: 1000 }
    }
}

/// `retrieve.dense`: exact inner-product top-k of query embeddings against corpus
/// embeddings. The corpus is streamed block by block; the query × corpus score matrix never
/// exists, so memory is the queries, one block, and `queries × top_k` hits.
pub struct RetrieveDense;

impl Stage for RetrieveDense {
    type Params = DenseParams;
    const KIND: &'static str = "retrieve.dense";
    const VERSION: u32 = 1;
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
        Ok(())
    }

    fn run(p: &DenseParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let (query_ids, queries, dim) = embeddings::read_all(ctx.input("queries")?)?;
        let corpus = ctx.input("corpus")?;
        let total = rrra_common::artifact::parquet_rows(corpus)?;
        let mut top = TopK::new(query_ids.len(), dim, p.top_k)?;
        let mut doc_ids: Vec<String> = Vec::with_capacity(total as usize);
        let task = ctx.progress.task("dense search (docs)", Some(total));
        let start = std::time::Instant::now();
        let corpus_dim = embeddings::for_each_block(corpus, |ids, vectors| {
            if vectors.len() != ids.len() * dim {
                return Err(Error::file(
                    corpus,
                    format!("corpus vectors are not {dim} wide like the queries"),
                ));
            }
            top.add_block(&queries, vectors, doc_ids.len() as u32)?;
            doc_ids.extend_from_slice(ids);
            task.inc(ids.len() as u64);
            Ok(())
        })?;
        drop(task);
        if corpus_dim != dim {
            return Err(Error::Invalid(format!(
                "query vectors are {dim} wide, corpus vectors {corpus_dim}"
            )));
        }
        let search_s = start.elapsed().as_secs_f64();
        let rows = write_run(
            ctx,
            query_ids.iter().map(String::as_str),
            top.into_results(),
            |doc| &doc_ids[doc as usize],
        )?;
        Ok(StageReport {
            metrics: [
                ("docs".to_string(), doc_ids.len() as f64),
                ("queries".to_string(), query_ids.len() as f64),
                (
                    "queries_per_s".to_string(),
                    query_ids.len() as f64 / search_s.max(1e-9),
                ),
                ("rows".to_string(), rows as f64),
            ]
            .into(),
            table: None,
        })
    }
}
