//! Parity with pytrec_eval on seeded synthetic runs: every per-query value within 1e-6 and the
//! same evaluated queries. Needs Python with pytrec_eval (`pip install pytrec-eval-terrier`;
//! interpreter from `RRRA_PYTHON`, else `python3`); without it the test fails.

use rrra_common::records::{Qrel, RunRow};
use rrra_eval::SplitMix64;
use rrra_eval::{Measure, Qrels, Run, evaluate, write_trec_qrels_file, write_trec_run_file};
use rrra_testkit::pytrec::{compare_with_reference, pytrec_eval_per_query};

const MEASURES: &[&str] = &[
    "ndcg_cut.1",
    "ndcg_cut.3",
    "ndcg_cut.5",
    "ndcg_cut.10",
    "ndcg_cut.20",
    "P.1",
    "P.5",
    "P.10",
    "recall.1",
    "recall.5",
    "recall.10",
    "recall.100",
    "map",
    "recip_rank",
    "recip_rank.1",
    "recip_rank.3",
    "recip_rank.10",
];

/// How a scenario draws scores.
#[derive(Clone, Copy, Debug)]
enum Scores {
    /// Four distinct values: ties everywhere.
    Coarse,
    /// 1 plus multiples of 1e-9: distinct as f64, tied as f32 (trec_eval 9 keeps floats).
    BelowF32,
    /// Uniform in [0, 1): almost no ties.
    Continuous,
    /// Signed zeros, negatives, and values beyond f32's range.
    Extremes,
}

impl Scores {
    fn draw(self, rng: &mut SplitMix64) -> f64 {
        match self {
            Scores::Coarse => rng.below(4) as f64 * 0.5,
            Scores::BelowF32 => 1.0 + rng.below(5) as f64 * 1e-9 + rng.below(2) as f64 * 1e-6,
            Scores::Continuous => rng.unit_f64(),
            Scores::Extremes => [0.0, -0.0, -1.5, 1e39, 3e38, -1e39, 2.5][rng.below(7) as usize],
        }
    }
}

/// Document ids whose byte order differs from a naive order: case, digits, prefixes and
/// non-ASCII.
fn doc_pool() -> Vec<String> {
    let mut pool = Vec::new();
    for i in 0..12 {
        for prefix in ["d", "D", "d0", "doc-", "é", "z"] {
            pool.push(format!("{prefix}{i}"));
        }
    }
    pool.push("日本".to_owned());
    pool
}

/// A seeded scenario: qrels and run rows over 60 queries, some only judged, some only run.
fn scenario(seed: u64, scores: Scores) -> (Vec<Qrel>, Vec<RunRow>) {
    let mut rng = SplitMix64::new(seed);
    let pool = doc_pool();
    let mut qrels = Vec::new();
    let mut run = Vec::new();
    for q in 0..60 {
        let query_id = format!("q{q}");
        let mut docs = pool.clone();
        // Fisher-Yates: the first draws are distinct documents.
        for i in (1..docs.len()).rev() {
            docs.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let judged = 1 + rng.below(15) as usize;
        let kind = q % 10;
        if kind != 0 {
            // kind 0: run only (not judged).
            for doc in &docs[..judged] {
                let relevance = match kind {
                    1 => 0,                                      // judged, nothing relevant
                    2 => -1,                                     // only negative grades
                    _ if rng.below(20) == 0 => -1,               // some unjudged-in-pool
                    _ => [0, 0, 1, 2, 3][rng.below(5) as usize], // graded
                };
                qrels.push(Qrel {
                    query_id: query_id.clone(),
                    doc_id: doc.clone(),
                    relevance,
                });
            }
        }
        if kind != 9 {
            // kind 9: judged only (not run). Rankings from 1 to 60 documents overlap the
            // judged ones; short rankings fall below the cutoffs.
            let retrieved = 1 + rng.below(60) as usize;
            let offset = rng.below(judged as u64 + 1) as usize;
            for doc in docs.iter().skip(offset).take(retrieved) {
                run.push(RunRow {
                    query_id: query_id.clone(),
                    doc_id: doc.clone(),
                    rank: 1, // ignored by evaluation
                    score: scores.draw(&mut rng),
                });
            }
        }
    }
    (qrels, run)
}

#[test]
fn per_query_values_match_pytrec_eval() {
    let measures: Vec<Measure> = MEASURES.iter().map(|m| m.parse().unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let scenarios = [
        Scores::Coarse,
        Scores::BelowF32,
        Scores::Continuous,
        Scores::Extremes,
    ];
    for (i, scores) in scenarios.into_iter().enumerate() {
        let (qrel_rows, run_rows) = scenario(1000 + i as u64, scores);
        let qrels = Qrels::from_rows(qrel_rows).unwrap();
        let run = Run::from_rows(run_rows).unwrap();
        let qrels_path = dir.path().join(format!("{i}.qrels"));
        let run_path = dir.path().join(format!("{i}.run"));
        write_trec_qrels_file(&qrels, &qrels_path).unwrap();
        write_trec_run_file(&run, "synthetic", &run_path).unwrap();
        for threshold in [1, 2] {
            let ours = evaluate(&qrels, &run, &measures, threshold);
            // Queries 0, 10, ... are run only and 9, 19, ... judged only: 48 are evaluated.
            assert_eq!(ours.query_ids().len(), 48, "{scores:?}");
            let reference = pytrec_eval_per_query(&qrels_path, &run_path, MEASURES, threshold)
                .unwrap_or_else(|e| panic!("{e}"));
            if let Err(e) = compare_with_reference(&ours, &reference, 1e-6) {
                panic!("scenario {scores:?}, relevance level {threshold}: {e}");
            }
        }
    }
}
