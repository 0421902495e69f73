//! The rerank stages on small `scored` inputs: orders, depth cuts, bad records.

use rrra_common::artifact::{read_rows, write_rows};
use rrra_common::records::{Candidate, Scored};
use rrra_common::stage::Stage;
use rrra_testkit::StageRun;

use super::*;
use crate::{s_rr, unit};

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

/// Runs stage `S` on `rows` as its `scored` input; its output run, or the error.
fn run_stage_result<S: Stage>(params: &S::Params, rows: Vec<Scored>) -> Result<Vec<RunRow>> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("scored.parquet");
    write_rows(&input, rows).unwrap();
    let run = StageRun::in_dir(dir.path()).input("scored", input);
    run.run::<S>(params)?;
    read_rows::<RunRow>(&run.output("run"))
}

fn run_stage<S: Stage>(params: &S::Params, rows: Vec<Scored>) -> Vec<RunRow> {
    run_stage_result::<S>(params, rows).unwrap()
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
    run_stage_result::<RerankAdapter>(&AdapterRerankParams::default(), rows)
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
