//! Reranking stages over `scored` pairs (a first-stage run scored by `score.adapter`):
//! `rerank.adapter` orders each query's top `depth` by `s_RR = s_base · s_adapter^λ` with
//! `s_base = (1 + cos(q, c)) / 2` and `s_adapter = (1 + cos(q, a)) / 2` (METHOD.md,
//! "Reranking"); `rerank.none` keeps the first-stage order, the swap-in for ablations.
//! Both read the same input, so an ablation swaps only `kind`.
//!
//! The input is read in columns (ids interned, [`rrra_common::columns`]): 24 bytes a row.

use rrra_common::artifact::ParquetSink;
use rrra_common::columns::{Interner, for_each_pair_batch};
use rrra_common::records::RunRow;
use rrra_common::schema::ArtifactKind::{Run, Scored as ScoredKind};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

const INPUTS: &[Port] = &[Port::required("scored", ScoredKind)];
const OUTPUTS: &[Port] = &[Port::required("run", Run)];

/// `(1 + cos) / 2`, a cosine mapped to `[0, 1]` (clamped against rounding).
pub fn unit(cos: f64) -> f64 {
    ((1.0 + cos) / 2.0).clamp(0.0, 1.0)
}

/// The reranking score of a pair with first-stage cosine `base` and QA-score `qa`.
pub fn s_rr(base: f64, qa: f64, lambda: f64) -> f64 {
    unit(base) * unit(qa).powf(lambda)
}

/// Params of `rerank.adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterRerankParams {
    /// Exponent of the adapter score; 0 keeps the first-stage order.
    pub lambda: f64,
    /// Rerank (and keep) each query's `depth` best first-stage documents; 0 keeps all.
    pub depth: u32,
}

impl Default for AdapterRerankParams {
    fn default() -> Self {
        AdapterRerankParams {
            lambda: 1.0,
            depth: 0,
        }
    }
}

/// Params of `rerank.none`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NoRerankParams {
    /// Keep each query's `depth` best first-stage documents; 0 keeps all.
    pub depth: u32,
}

/// `rerank.adapter`.
pub struct RerankAdapter;

impl Stage for RerankAdapter {
    type Params = AdapterRerankParams;
    const KIND: &'static str = "rerank.adapter";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "rerank a scored top-K by s_base · s_adapter^λ";

    fn inputs() -> &'static [Port] {
        INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &AdapterRerankParams) -> Result<(), String> {
        if !(p.lambda >= 0.0 && p.lambda.is_finite()) {
            return Err(format!(
                "param lambda must be finite and >= 0, got {}",
                p.lambda
            ));
        }
        Ok(())
    }
    fn run(p: &AdapterRerankParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let lambda = p.lambda;
        rerank(ctx, p.depth, |base, qa| s_rr(base, qa, lambda))
    }
}

/// `rerank.none`.
pub struct RerankNone;

impl Stage for RerankNone {
    type Params = NoRerankParams;
    const KIND: &'static str = "rerank.none";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "keep the first-stage order (ablation swap-in for rerank.adapter)";

    fn inputs() -> &'static [Port] {
        INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn run(p: &NoRerankParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        rerank(ctx, p.depth, |base, _| base)
    }
}

/// One row of the input: interned query and document, first-stage score, QA-score.
#[derive(Debug, Clone, Copy)]
struct Row {
    doc: u32,
    score: f64,
    qa: f64,
}

/// Per query: the `depth` best rows by first-stage score (then doc id), reordered by
/// `key(score, qa_score)` (ties by doc id), written with 1-based ranks and `key` as the
/// score. Queries in order of first appearance.
fn rerank(
    ctx: &StageContext<'_>,
    depth: u32,
    key: impl Fn(f64, f64) -> f64,
) -> Result<StageReport> {
    let path = ctx.input("scored")?;
    let (mut queries, mut docs) = (Interner::new(), Interner::new());
    let mut groups: Vec<Vec<Row>> = Vec::new();
    let mut record = 0usize;
    for_each_pair_batch(path, ScoredKind, |b| {
        let qa = b.adapter.expect("a scored artifact has adapter columns")[0];
        for (i, &qa) in qa.iter().enumerate() {
            record += 1;
            let (query_id, doc_id) = (b.query_id.value(i), b.doc_id.value(i));
            if !b.score[i].is_finite() || !qa.is_finite() {
                return Err(Error::file(
                    path,
                    format!(
                        "record {record}: query {query_id:?} doc {doc_id:?} has a non-finite score; expected finite scores"
                    ),
                ));
            }
            let q = queries.intern(query_id) as usize;
            if q == groups.len() {
                groups.push(Vec::new());
            }
            groups[q].push(Row {
                doc: docs.intern(doc_id),
                score: b.score[i],
                qa,
            });
        }
        Ok(())
    })?;
    let clock = std::time::Instant::now();
    let mut sink = ParquetSink::<RunRow>::create(&ctx.output("run"))?;
    let (mut moved, mut total) = (0u64, 0u64);
    let queries_seen = groups.len();
    for (q, mut g) in groups.into_iter().enumerate() {
        let doc = |r: &Row| docs.id(r.doc);
        g.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| doc(a).cmp(doc(b))));
        if depth > 0 {
            g.truncate(depth as usize);
        }
        let mut keyed: Vec<(f64, usize, &Row)> = g
            .iter()
            .enumerate()
            .map(|(i, r)| (key(r.score, r.qa), i, r))
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| doc(a.2).cmp(doc(b.2))));
        let query_id = queries.id(q as u32);
        for (rank, (score, before, r)) in keyed.into_iter().enumerate() {
            moved += u64::from(before != rank);
            total += 1;
            sink.push(RunRow {
                query_id: query_id.to_string(),
                doc_id: doc(r).to_string(),
                rank: rank as u32 + 1,
                score,
            })?;
        }
    }
    sink.finish()?;
    let seconds = clock.elapsed().as_secs_f64();
    Ok(StageReport {
        metrics: [
            ("queries".to_string(), queries_seen as f64),
            ("rows".to_string(), total as f64),
            (
                "moved_fraction".to_string(),
                moved as f64 / total.max(1) as f64,
            ),
            (
                "ms_per_query".to_string(),
                1000.0 * seconds / queries_seen.max(1) as f64,
            ),
        ]
        .into(),
        table: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rrra_common::artifact::{read_rows, write_rows};
    use rrra_common::progress::Silent;
    use rrra_common::records::{Candidate, Scored};

    use super::*;

    fn scored(q: &str, d: &str, score: f64, qa: f64) -> Scored {
        Scored {
            candidate: Candidate {
                query_id: q.into(),
                doc_id: d.into(),
                rank: 0,
                score,
                positive: false,
            },
            qa_score: qa,
            s_fn: 0.0,
            p_rel: 0.0,
        }
    }

    fn run_stage<S: Stage>(params: &S::Params, rows: Vec<Scored>) -> Vec<RunRow> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("scored.parquet");
        write_rows(&input, rows).unwrap();
        let ctx = StageContext {
            inputs: BTreeMap::from([("scored".to_string(), input)]),
            out_dir: dir.path().to_path_buf(),
            base_dir: dir.path().to_path_buf(),
            cache_dir: dir.path().to_path_buf(),
            work_dir: dir.path().join("work"),
            seed: 0,
            progress: &Silent,
        };
        S::run(params, &ctx).unwrap();
        read_rows::<RunRow>(&ctx.output("run")).unwrap()
    }

    fn docs(run: &[RunRow], q: &str) -> Vec<String> {
        run.iter()
            .filter(|r| r.query_id == q)
            .map(|r| r.doc_id.clone())
            .collect()
    }

    fn rows() -> Vec<Scored> {
        vec![
            scored("q1", "a", 0.80, 0.10),
            scored("q1", "b", 0.70, 0.90),
            scored("q1", "c", 0.60, 0.95),
            scored("q2", "x", 0.50, 0.50),
            scored("q2", "y", 0.40, 0.40),
        ]
    }

    #[test]
    fn adapter_scores_reorder_and_lambda_zero_keeps_the_first_stage_order() {
        let none = run_stage::<RerankNone>(&NoRerankParams { depth: 0 }, rows());
        assert_eq!(docs(&none, "q1"), ["a", "b", "c"]);
        let flat = run_stage::<RerankAdapter>(
            &AdapterRerankParams {
                lambda: 0.0,
                depth: 0,
            },
            rows(),
        );
        assert_eq!(docs(&flat, "q1"), ["a", "b", "c"]);
        let full = run_stage::<RerankAdapter>(
            &AdapterRerankParams {
                lambda: 1.0,
                depth: 0,
            },
            rows(),
        );
        // s_RR: a 0.9·0.55 = 0.495, b 0.85·0.95 = 0.8075, c 0.8·0.975 = 0.78.
        assert_eq!(docs(&full, "q1"), ["b", "c", "a"]);
        assert!((full[0].score - 0.85 * 0.95).abs() < 1e-12);
        assert_eq!(
            full.iter().map(|r| r.rank).collect::<Vec<_>>(),
            [1, 2, 3, 1, 2]
        );
        // A larger exponent weighs the adapter more: c overtakes b.
        let steep = run_stage::<RerankAdapter>(
            &AdapterRerankParams {
                lambda: 8.0,
                depth: 0,
            },
            rows(),
        );
        assert_eq!(docs(&steep, "q1"), ["c", "b", "a"]);
        assert_eq!(docs(&steep, "q2"), ["x", "y"]);
    }

    #[test]
    fn depth_keeps_the_first_stage_best() {
        let cut = run_stage::<RerankAdapter>(
            &AdapterRerankParams {
                lambda: 8.0,
                depth: 2,
            },
            rows(),
        );
        // c (first-stage third) is cut before reranking.
        assert_eq!(docs(&cut, "q1"), ["b", "a"]);
        let none = run_stage::<RerankNone>(&NoRerankParams { depth: 1 }, rows());
        assert_eq!(docs(&none, "q1"), ["a"]);
        assert_eq!(docs(&none, "q2"), ["x"]);
    }

    #[test]
    fn mapping_stays_in_the_unit_interval() {
        assert_eq!(unit(-1.0), 0.0);
        assert_eq!(unit(1.0 + 1e-7), 1.0);
        assert!((s_rr(0.0, 0.0, 1.0) - 0.25).abs() < 1e-12);
    }
}
