//! Reranking stages over `scored` pairs (a first-stage run scored by `score.adapter`):
//! `rerank.adapter` orders each query's top `depth` by `s_RR = s_base · s_adapter^λ` with
//! `s_base = (1 + cos(q, c)) / 2` and `s_adapter = (1 + cos(q, a)) / 2` (METHOD.md,
//! "Reranking"); `rerank.none` keeps the first-stage order, the swap-in for ablations.
//! Both read the same input, so an ablation swaps only `kind`.
//!
//! The input is streamed one query at a time ([`for_each_query_group`]) and each query's
//! ranking written before the next is read: memory holds one query's rows and the ids of
//! the queries done, whatever the number of rows.

use rrra_common::artifact::ParquetSink;
use rrra_common::columns::{GroupRow, for_each_query_group};
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

/// Per query: the `depth` best rows by first-stage score (then doc id), reordered by
/// `key(score, qa_score)` (ties by doc id), written with 1-based ranks and `key` as the
/// score. Queries in file order (each query's rows must be contiguous).
fn rerank(
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

    /// The context the runner would hand a stage reading `input` as its `scored` port.
    fn context(dir: &std::path::Path, input: std::path::PathBuf) -> StageContext<'static> {
        StageContext {
            inputs: BTreeMap::from([("scored".to_string(), input)]),
            out_dir: dir.to_path_buf(),
            base_dir: dir.to_path_buf(),
            cache_dir: dir.to_path_buf(),
            work_dir: dir.join("work"),
            seed: 0,
            progress: &Silent,
        }
    }

    fn run_stage<S: Stage>(params: &S::Params, rows: Vec<Scored>) -> Vec<RunRow> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("scored.parquet");
        write_rows(&input, rows).unwrap();
        let ctx = context(dir.path(), input);
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

    fn run_err(rows: Vec<Scored>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("scored.parquet");
        write_rows(&input, rows).unwrap();
        let ctx = context(dir.path(), input);
        RerankAdapter::run(&AdapterRerankParams::default(), &ctx)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_non_finite_score_and_a_resumed_query_name_their_record() {
        let mut bad = rows();
        bad[4].qa_score = f64::INFINITY;
        let err = run_err(bad);
        assert!(err.contains("record 5") && err.contains("\"y\""), "{err}");
        let mut split = rows();
        split.push(scored("q1", "late", 0.1, 0.1));
        let err = run_err(split);
        assert!(
            err.contains("record 6") && err.contains("query \"q1\"") && err.contains("contiguous"),
            "{err}"
        );
    }

    #[test]
    fn mapping_stays_in_the_unit_interval() {
        assert_eq!(unit(-1.0), 0.0);
        assert_eq!(unit(1.0 + 1e-7), 1.0);
        assert!((s_rr(0.0, 0.0, 1.0) - 0.25).abs() < 1e-12);
    }
}
