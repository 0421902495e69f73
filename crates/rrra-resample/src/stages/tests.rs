//! Stage-level tests: small candidates, corpus and embeddings artifacts in a temp
//! directory, each `resample.*` stage run on them, the examples read back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rrra_common::Result;
use rrra_common::artifact::{read_rows, write_rows};
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::records::{Candidate, Doc, Example, Scored};
use rrra_common::stage::{Stage, StageReport};
use rrra_testkit::StageRun;

use super::pool::dot;
use super::*;
use crate::sampling::{PoolEntry, Weighting};

/// The angle (radians) of doc `i`'s unit vector in the fixture embeddings.
fn doc_angle(i: usize) -> f64 {
    0.15 * i as f64
}

fn doc(i: usize) -> String {
    format!("d{i:02}")
}

fn vector(i: usize) -> [f32; 3] {
    let a = doc_angle(i);
    [a.cos() as f32, a.sin() as f32, 0.0]
}

fn candidate(q: &str, i: usize, rank: u32, score: f64, positive: bool) -> Candidate {
    Candidate {
        query_id: q.into(),
        doc_id: doc(i),
        rank,
        score,
        positive,
    }
}

/// q1: positives d00 (rank 1) and d01 (outside the ranking), negatives d02..d11 at ranks
/// 2..11 scoring 0.95 - 0.05 i. q2: negatives d13..d17 around positive d12 at rank 3.
fn fixture_candidates() -> Vec<Candidate> {
    let mut rows = vec![candidate("q1", 0, 1, 0.9, true)];
    rows.extend((2..12).map(|i| candidate("q1", i, i as u32, 0.95 - 0.05 * i as f64, false)));
    rows.push(candidate("q1", 1, 0, 0.7, true));
    rows.extend([
        candidate("q2", 13, 1, 0.9, false),
        candidate("q2", 14, 2, 0.85, false),
        candidate("q2", 12, 3, 0.8, true),
        candidate("q2", 15, 4, 0.7, false),
        candidate("q2", 16, 5, 0.6, false),
        candidate("q2", 17, 6, 0.5, false),
    ]);
    rows
}

const CORPUS_LEN: usize = 20;

/// Writes the artifacts into `dir`: candidates `rows`, a corpus of d00..d19, and
/// embeddings of d00..d19 except `missing`.
fn write_inputs(dir: &Path, rows: Vec<Candidate>, missing: Option<usize>) -> Inputs {
    let candidates = dir.join("candidates.parquet");
    write_rows(&candidates, rows).unwrap();
    let corpus = dir.join("corpus.parquet");
    let docs = (0..CORPUS_LEN).map(|i| Doc {
        id: doc(i),
        title: String::new(),
        text: format!("text {i}"),
    });
    write_rows(&corpus, docs).unwrap();
    let embeddings = dir.join("embeddings.parquet");
    let mut sink = EmbeddingSink::create(&embeddings, 3).unwrap();
    for i in (0..CORPUS_LEN).filter(|&i| Some(i) != missing) {
        sink.push(&doc(i), &vector(i)).unwrap();
    }
    sink.finish().unwrap();
    Inputs {
        candidates,
        corpus,
        embeddings,
    }
}

struct Inputs {
    candidates: PathBuf,
    corpus: PathBuf,
    embeddings: PathBuf,
}

impl Inputs {
    fn ports(&self, names: &[&str]) -> Vec<(String, PathBuf)> {
        names
            .iter()
            .map(|&n| {
                let path = match n {
                    "candidates" => &self.candidates,
                    "corpus" => &self.corpus,
                    "embeddings" => &self.embeddings,
                    _ => unreachable!("no input {n}"),
                };
                (n.to_string(), path.clone())
            })
            .collect()
    }
}

/// Runs stage `S` and reads back its examples.
fn run_stage<S: Stage>(
    params: &S::Params,
    inputs: Vec<(String, PathBuf)>,
    seed: u64,
) -> Result<(StageReport, Vec<Example>)> {
    let out = tempfile::tempdir().unwrap();
    let run = StageRun::in_dir(out.path()).inputs(inputs).seed(seed);
    let report = run.run::<S>(params)?;
    let examples = read_rows::<Example>(&run.output("examples"))?;
    Ok((report, examples))
}

fn setup() -> (tempfile::TempDir, Inputs) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(dir.path(), fixture_candidates(), None);
    (dir, inputs)
}

fn positives_of(query: &str) -> Vec<String> {
    match query {
        "q1" => vec![doc(0), doc(1)],
        "q2" => vec![doc(12)],
        _ => unreachable!(),
    }
}

/// Rank of a q's pool doc in the fixture.
fn rank_of(query: &str, id: &str) -> Option<u32> {
    fixture_candidates()
        .into_iter()
        .find(|c| c.query_id == query && c.doc_id == id && !c.positive)
        .map(|c| c.rank)
}

/// Checks the pair order, that negatives are distinct and no positive, that the last
/// `n_rand` are corpus documents and the others pool candidates (at most `n_hard_max`);
/// returns the hard negatives of each example.
fn check_examples(examples: &[Example], n_hard_max: usize, n_rand: usize) -> Vec<Vec<String>> {
    let pairs: Vec<(&str, &str)> = examples
        .iter()
        .map(|e| (e.query_id.as_str(), e.positive_id.as_str()))
        .collect();
    assert_eq!(pairs, [("q1", "d00"), ("q1", "d01"), ("q2", "d12")]);
    let mut hard_sets = Vec::new();
    for e in examples {
        assert_eq!(e.weights, None);
        let distinct: HashSet<&String> = e.negatives.iter().collect();
        assert_eq!(distinct.len(), e.negatives.len(), "repeated: {e:?}");
        for p in positives_of(&e.query_id) {
            assert!(!e.negatives.contains(&p), "positive {p} drawn: {e:?}");
        }
        assert!(e.negatives.len() >= n_rand, "{e:?}");
        let (hard, random) = e.negatives.split_at(e.negatives.len() - n_rand);
        assert!(hard.len() <= n_hard_max, "{e:?}");
        for id in hard {
            assert!(
                rank_of(&e.query_id, id).is_some(),
                "{id} is not in the pool: {e:?}"
            );
        }
        for id in random {
            assert!((0..CORPUS_LEN).any(|i| doc(i) == *id), "{id} not in corpus");
        }
        hard_sets.push(hard.to_vec());
    }
    hard_sets
}

#[test]
fn uniform_draws_from_the_window_deterministically() {
    let (_dir, inputs) = setup();
    let params = UniformParams {
        n_neg: 3,
        r_min: 4,
        r_max: 8,
        ..Default::default()
    };
    let ports = inputs.ports(&["candidates"]);
    let (report, examples) = run_stage::<ResampleUniform>(&params, ports.clone(), 7).unwrap();
    for (e, hard) in examples.iter().zip(check_examples(&examples, 3, 0)) {
        assert_eq!(hard.len(), 3, "{e:?}");
        for id in &hard {
            let rank = rank_of(&e.query_id, id).unwrap();
            assert!((4..=8).contains(&rank), "{id} at rank {rank}");
        }
    }
    let again = run_stage::<ResampleUniform>(&params, ports.clone(), 7)
        .unwrap()
        .1;
    assert_eq!(examples, again, "same seed, same examples");
    let other = run_stage::<ResampleUniform>(&params, ports, 8).unwrap().1;
    assert_ne!(examples, other, "another seed, other draws");
    let m = &report.metrics;
    assert_eq!(m["queries"], 2.0);
    assert_eq!(m["examples"], 3.0);
    assert_eq!(m["mean_negatives"], 3.0);
    assert_eq!(m["short_fraction"], 0.0);
    let ranks: Vec<f64> = examples
        .iter()
        .flat_map(|e| {
            e.negatives
                .iter()
                .map(|id| f64::from(rank_of(&e.query_id, id).unwrap()))
        })
        .collect();
    let mean = ranks.iter().sum::<f64>() / ranks.len() as f64;
    assert!((m["mean_hard_rank"] - mean).abs() < 1e-12);
}

#[test]
fn pool_limits_the_candidates_and_random_negatives_are_appended() {
    let (_dir, inputs) = setup();
    let params = SimansParams {
        n_neg: 5,
        n_rand: 4,
        pool: 3,
        ..Default::default()
    };
    let ports = inputs.ports(&["candidates", "corpus"]);
    let (report, examples) = run_stage::<ResampleSimans>(&params, ports, 1).unwrap();
    let hard = check_examples(&examples, 3, 4);
    // q1's pool is ranks 2..4 (d02..d04), q2's ranks 1, 2, 4 (d13, d14, d15).
    for (e, hard) in examples.iter().zip(&hard) {
        let mut sorted = hard.clone();
        sorted.sort();
        let want = match e.query_id.as_str() {
            "q1" => vec![doc(2), doc(3), doc(4)],
            _ => vec![doc(13), doc(14), doc(15)],
        };
        assert_eq!(sorted, want, "the whole pool, since n_neg > pool");
    }
    assert_eq!(report.metrics["short_fraction"], 1.0);
    assert_eq!(report.metrics["mean_negatives"], 7.0);
}

#[test]
fn trisampler_draws_only_positive_weights() {
    let (_dir, inputs) = setup();
    let params = TriSamplerParams {
        n_neg: 5,
        n_rand: 1,
        ..Default::default()
    };
    let ports = inputs.ports(&["candidates", "embeddings", "corpus"]);
    let (report, examples) = run_stage::<ResampleTriSampler>(&params, ports, 3).unwrap();
    let hard = check_examples(&examples, 5, 1);
    let rows = fixture_candidates();
    let mut expected_short = 0;
    for (e, hard) in examples.iter().zip(&hard) {
        let positive = rows.iter().find(|c| c.doc_id == e.positive_id).unwrap();
        let pos_index: usize = e.positive_id[1..].parse().unwrap();
        let pool: Vec<&Candidate> = rows
            .iter()
            .filter(|c| c.query_id == e.query_id && !c.positive)
            .collect();
        let entries: Vec<PoolEntry> = pool
            .iter()
            .map(|c| {
                let i: usize = c.doc_id[1..].parse().unwrap();
                PoolEntry {
                    rank: c.rank,
                    score: c.score,
                    pos_sim: dot(&vector(pos_index), &vector(i)),
                    s_fn: 0.0,
                }
            })
            .collect();
        let w = Weighting::TriSampler {
            theta_max_deg: 60.0,
        }
        .weights(&entries, positive.score);
        let nonzero: Vec<&String> = pool
            .iter()
            .zip(&w)
            .filter(|&(_, &w)| w > 0.0)
            .map(|(c, _)| &c.doc_id)
            .collect();
        assert_eq!(
            hard.len(),
            nonzero.len().min(5),
            "{e:?}, nonzero {nonzero:?}"
        );
        assert!(hard.iter().all(|id| nonzero.contains(&id)), "{e:?}");
        expected_short += usize::from(nonzero.len() < 5);
    }
    // ReLU(s(d+, d_i) - s_i) > 0 for d02..d05 only with d00, d02..d07 with d01, all five
    // of q2's pool with d12: one pair of three is short.
    assert_eq!(expected_short, 1);
    assert_eq!(
        report.metrics["short_fraction"],
        expected_short as f64 / 3.0
    );
}

#[test]
fn margin_keeps_scores_below_r_times_the_positive() {
    let (_dir, inputs) = setup();
    let ports = inputs.ports(&["candidates"]);
    let top = MarginParams {
        n_neg: 2,
        r: 0.9,
        mode: MarginMode::Top,
        ..Default::default()
    };
    let (_, examples) = run_stage::<ResampleMargin>(&top, ports.clone(), 0).unwrap();
    check_examples(&examples, 2, 0);
    // q1/d00 (0.9): kept below 0.81 -> d03 (0.80) first; q1/d01 (0.7): below 0.63 -> d07;
    // q2/d12 (0.8): below 0.72 -> d15, d16.
    let got: Vec<Vec<String>> = examples.iter().map(|e| e.negatives.clone()).collect();
    assert_eq!(
        got,
        [
            vec![doc(3), doc(4)],
            vec![doc(7), doc(8)],
            vec![doc(15), doc(16)]
        ]
    );
    let sample = MarginParams {
        n_neg: 2,
        r: 0.9,
        ..Default::default()
    };
    let (_, examples) = run_stage::<ResampleMargin>(&sample, ports, 0).unwrap();
    for (e, hard) in examples.iter().zip(check_examples(&examples, 2, 0)) {
        assert_eq!(hard.len(), 2);
        let s_pos = fixture_candidates()
            .into_iter()
            .find(|c| c.doc_id == e.positive_id)
            .unwrap()
            .score;
        for id in &hard {
            let s = fixture_candidates()
                .into_iter()
                .find(|c| &c.doc_id == id)
                .unwrap()
                .score;
            assert!(s < 0.9 * s_pos, "{id} scores {s}, positive {s_pos}");
        }
    }
}

#[test]
fn random_draws_corpus_documents_that_are_not_positives() {
    let (_dir, inputs) = setup();
    let params = RandomParams { n_neg: 17 };
    let ports = inputs.ports(&["candidates", "corpus"]);
    let (report, examples) = run_stage::<ResampleRandom>(&params, ports, 5).unwrap();
    // q1 has 2 positives among 20 docs, so 18 are eligible; q2 19.
    for e in &examples {
        let distinct: HashSet<&String> = e.negatives.iter().collect();
        assert_eq!((distinct.len(), e.negatives.len()), (17, 17), "{e:?}");
        for p in positives_of(&e.query_id) {
            assert!(!e.negatives.contains(&p), "{e:?}");
        }
    }
    assert_eq!(report.metrics["short_fraction"], 0.0);
    assert!(!report.metrics.contains_key("mean_hard_rank"));
    let (report, examples) = run_stage::<ResampleRandom>(
        &RandomParams { n_neg: 19 },
        inputs.ports(&["candidates", "corpus"]),
        5,
    )
    .unwrap();
    let lens: Vec<usize> = examples.iter().map(|e| e.negatives.len()).collect();
    assert_eq!(lens, [18, 18, 19]);
    assert!((report.metrics["short_fraction"] - 2.0 / 3.0).abs() < 1e-12);
}

fn error_of<S: Stage>(params: &S::Params, inputs: Vec<(String, PathBuf)>) -> String {
    run_stage::<S>(params, inputs, 0).unwrap_err().to_string()
}

#[test]
fn a_query_without_positive_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = fixture_candidates();
    rows.retain(|c| c.doc_id != doc(12));
    let inputs = write_inputs(dir.path(), rows, None);
    let err = error_of::<ResampleSimans>(&Default::default(), inputs.ports(&["candidates"]));
    assert!(err.contains("query \"q2\""), "{err}");
    assert!(
        err.contains("expected at least one row with positive = true"),
        "{err}"
    );
}

#[test]
fn a_doc_missing_from_the_embeddings_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(dir.path(), fixture_candidates(), Some(14));
    let err = error_of::<ResampleTriSampler>(
        &Default::default(),
        inputs.ports(&["candidates", "embeddings"]),
    );
    assert!(err.contains("query \"q2\""), "{err}");
    assert!(err.contains("doc \"d14\" has no vector"), "{err}");
}

#[test]
fn missing_inputs_are_named() {
    let (_dir, inputs) = setup();
    let err = error_of::<ResampleTriSampler>(&Default::default(), inputs.ports(&["candidates"]));
    assert!(
        err.contains("resample.trisampler needs input \"embeddings\""),
        "{err}"
    );
    let params = UniformParams {
        n_rand: 2,
        ..Default::default()
    };
    let err = error_of::<ResampleUniform>(&params, inputs.ports(&["candidates"]));
    assert!(
        err.contains("resample.uniform needs input \"corpus\" (n_rand = 2"),
        "{err}"
    );
    let err = error_of::<ResampleRandom>(&Default::default(), inputs.ports(&["candidates"]));
    assert!(
        err.contains("resample.random needs input \"corpus\""),
        "{err}"
    );
}

#[test]
fn interleaved_or_duplicate_candidates_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = fixture_candidates();
    rows.push(candidate("q1", 19, 30, 0.1, false));
    let inputs = write_inputs(dir.path(), rows, None);
    let err = error_of::<ResampleMargin>(&Default::default(), inputs.ports(&["candidates"]));
    assert!(
        err.contains("query \"q1\": its rows are not contiguous"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut rows = fixture_candidates();
    rows.insert(1, candidate("q1", 5, 5, 0.7, false));
    let inputs = write_inputs(dir.path(), rows, None);
    let err = error_of::<ResampleMargin>(&Default::default(), inputs.ports(&["candidates"]));
    assert!(err.contains("doc \"d05\" appears twice"), "{err}");
}

#[test]
fn params_have_the_documented_defaults_and_are_checked() {
    let u: UniformParams = serde_json::from_str("{}").unwrap();
    assert_eq!(
        (u.n_neg, u.n_rand, u.pool, u.r_min, u.r_max),
        (7, 0, 200, 1, 200)
    );
    let s: SimansParams = serde_json::from_str("{}").unwrap();
    assert_eq!((s.a, s.b), (200.0, 0.0));
    let t: TriSamplerParams = serde_json::from_str("{}").unwrap();
    assert_eq!(t.theta_max_deg, 60.0);
    let m: MarginParams = serde_json::from_str(r#"{"mode": "top"}"#).unwrap();
    assert_eq!((m.r, m.mode), (0.95, MarginMode::Top));
    assert!(serde_json::from_str::<RandomParams>(r#"{"pool": 3}"#).is_err());
    assert!(serde_json::from_str::<SimansParams>(r#"{"alpha": 3}"#).is_err());
    let bad = UniformParams {
        r_min: 5,
        r_max: 4,
        ..Default::default()
    };
    assert!(ResampleUniform::check(&bad).unwrap_err().contains("r_min"));
    let empty = SimansParams {
        n_neg: 0,
        ..Default::default()
    };
    assert!(ResampleSimans::check(&empty).is_err());
}

/// The fixture candidates scored as `score.adapter` writes them, with `s_fn` 1 (certain
/// false negative) for the docs in `suspected` and 0 elsewhere.
fn write_scored(dir: &Path, suspected: &[usize]) -> PathBuf {
    let path = dir.join("scored.parquet");
    let rows = fixture_candidates().into_iter().map(|c| {
        let i: usize = c.doc_id[1..].parse().unwrap();
        let s_fn = if suspected.contains(&i) { 1.0 } else { 0.0 };
        Scored {
            candidate: c,
            qa_score: 0.0,
            s_fn,
            p_rel: 1.0 - s_fn,
        }
    });
    write_rows(&path, rows).unwrap();
    path
}

#[test]
fn rrra_never_draws_a_certain_false_negative_and_gamma_zero_is_simans() {
    let (dir, inputs) = setup();
    let scored = vec![(
        "scored".to_string(),
        write_scored(dir.path(), &[2, 3, 4, 13]),
    )];
    let params = RrraParams {
        n_neg: 4,
        a: 5.0,
        ..Default::default()
    };
    for seed in 0..20 {
        let (_, examples) = run_stage::<ResampleRrra>(&params, scored.clone(), seed).unwrap();
        for hard in check_examples(&examples, 4, 0) {
            for id in ["d02", "d03", "d04", "d13"] {
                assert!(!hard.iter().any(|h| h == id), "{id} drawn: {hard:?}");
            }
        }
    }
    // With gamma = 0 the adapter is ignored: the same draws as resample.simans.
    let flat = RrraParams {
        gamma: 0.0,
        ..params.clone()
    };
    let simans = SimansParams {
        n_neg: 4,
        a: 5.0,
        ..Default::default()
    };
    let (_, a) = run_stage::<ResampleRrra>(&flat, scored.clone(), 3).unwrap();
    let (_, b) = run_stage::<ResampleSimans>(&simans, inputs.ports(&["candidates"]), 3).unwrap();
    assert_eq!(a, b);
    // A baseline reads scored candidates as well (ignoring the adapter), so a pipeline
    // swaps resample.rrra for it by kind alone.
    let (_, c) = run_stage::<ResampleSimans>(&simans, scored.clone(), 3).unwrap();
    assert_eq!(c, b);
    let mut both = scored.clone();
    both.extend(inputs.ports(&["candidates"]));
    let err = run_stage::<ResampleSimans>(&simans, both, 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly one"), "{err}");
    // `fn_score: head` reads p_rel (here 1 - s_fn): now only the suspected docs are drawn.
    let head = RrraParams {
        fn_score: FnScore::Head,
        ..params
    };
    let (_, examples) = run_stage::<ResampleRrra>(&head, scored, 4).unwrap();
    for e in &examples {
        for id in &e.negatives {
            assert!(["d02", "d03", "d04", "d13"].contains(&id.as_str()), "{e:?}");
        }
    }
}

#[test]
fn rrra_rejects_a_false_negative_score_outside_the_unit_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scored.parquet");
    let rows = fixture_candidates().into_iter().map(|c| Scored {
        candidate: c,
        qa_score: 0.0,
        s_fn: 1.5,
        p_rel: 0.0,
    });
    write_rows(&path, rows).unwrap();
    let err = run_stage::<ResampleRrra>(
        &RrraParams::default(),
        vec![("scored".to_string(), path)],
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("q1") && err.contains("[0, 1]"), "{err}");
}

#[test]
fn underflowing_weights_are_counted_as_starved_pairs() {
    let (_dir, inputs) = setup();
    let ports = inputs.ports(&["candidates"]);
    // A kernel so sharp that every weight underflows to 0 (as SimANS's does on BM25-scale
    // score gaps): no hard negative can be drawn, and the report says why.
    let params = SimansParams {
        n_neg: 2,
        a: 1e9,
        b: 10.0,
        ..Default::default()
    };
    let (report, examples) = run_stage::<ResampleSimans>(&params, ports.clone(), 0).unwrap();
    assert!(examples.iter().all(|e| e.negatives.is_empty()));
    assert_eq!(report.metrics["zero_weight_fraction"], 1.0);
    assert_eq!(report.metrics["short_fraction"], 1.0);
    let (report, _) = run_stage::<ResampleSimans>(&SimansParams::default(), ports, 0).unwrap();
    assert_eq!(report.metrics["zero_weight_fraction"], 0.0);
}
