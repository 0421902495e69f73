//! `retrieve.bm25`: BM25 over a corpus with English analysis, a ranked run out.

use rrra_common::Result;
use rrra_common::artifact::read_rows;
use rrra_common::records::{Doc, Query};
use rrra_common::schema::ArtifactKind::{Corpus, Queries, Run};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use super::write_run;
use crate::{Bm25Index, Bm25Params};

/// Params of `retrieve.bm25`.
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
