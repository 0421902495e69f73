//! `train.adapter` and `score.adapter` as the runner calls them, on synthetic embeddings:
//! outputs, determinism, the run input, and input errors.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rrra_adapter::stages::{ScoreAdapterParams, TrainAdapterParams};
use rrra_adapter::{ScoreAdapter, TrainAdapter};
use rrra_common::artifact::{read_rows, write_rows};
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::records::{Candidate, RunRow, Scored};
use rrra_common::stage::{Stage, StageContext};
use rrra_encoder::Backend;
use rrra_testkit::StageRun;

const DIM: usize = 8;

/// 12 queries, 30 docs each: doc 0 a labelled positive near the query, docs 1..30 ranked
/// negatives. Writes candidates, query and doc embeddings; returns their paths.
fn fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut unit = |center: Option<&[f32]>, noise: f32| -> Vec<f32> {
        let v: Vec<f32> = (0..DIM)
            .map(|i| center.map_or(0.0, |c| c[i]) + noise * rng.random_range(-1.0f32..1.0))
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let (queries, docs) = (dir.join("q.parquet"), dir.join("d.parquet"));
    let mut qs = EmbeddingSink::create(&queries, DIM).unwrap();
    let mut ds = EmbeddingSink::create(&docs, DIM).unwrap();
    let mut rows = Vec::new();
    for q in 0..12 {
        let qv = unit(None, 1.0);
        qs.push(&format!("q{q}"), &qv).unwrap();
        let mut scored: Vec<(String, f64)> = (0..30)
            .map(|d| {
                let dv = unit(Some(&qv), if d == 0 { 0.3 } else { 1.5 });
                let id = format!("q{q}d{d}");
                ds.push(&id, &dv).unwrap();
                let s = qv.iter().zip(&dv).map(|(a, b)| f64::from(a * b)).sum();
                (id, s)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (rank, (id, s)) in scored.into_iter().enumerate() {
            rows.push(Candidate {
                query_id: format!("q{q}"),
                positive: id.ends_with("d0"),
                doc_id: id,
                rank: rank as u32 + 1,
                score: s,
            });
        }
    }
    qs.finish().unwrap();
    ds.finish().unwrap();
    let candidates = dir.join("c.parquet");
    write_rows(&candidates, rows).unwrap();
    (candidates, queries, docs)
}

fn ctx(inputs: &[(&str, &Path)], out: &Path, seed: u64) -> StageContext<'static> {
    StageRun::in_dir(out)
        .inputs(inputs.iter().copied())
        .seed(seed)
        .context()
}

fn train(dir: &Path, name: &str, seed: u64, c: &Path, q: &Path, d: &Path) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let params = TrainAdapterParams {
        epochs: 3,
        batch_size: 64,
        pool: 20,
        k_p: 3,
        ..Default::default()
    };
    let report = TrainAdapter::run(
        &params,
        &ctx(
            &[("candidates", c), ("queries", q), ("docs", d)],
            &out,
            seed,
        ),
    )
    .unwrap();
    // 12 positives and 12 × 20 pooled negatives.
    assert_eq!(report.metrics["pairs"], 12.0 * 21.0);
    assert_eq!(report.metrics["parameters"], {
        let (d, h) = (DIM as f64, DIM as f64);
        3.0 * d * h + h + 2.0 * h + h * d + d + (3.0 + 3.0 * d) * 4.0 + 4.0
    });
    out.join("adapter")
}

fn score(dir: &Path, name: &str, inputs: &[(&str, &Path)]) -> rrra_common::Result<Vec<Scored>> {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let c = ctx(inputs, &out, 0);
    ScoreAdapter::run(
        &ScoreAdapterParams {
            batch_size: 50,
            ..Default::default()
        },
        &c,
    )?;
    read_rows::<Scored>(&c.output("scored"))
}

#[test]
fn trained_adapters_score_candidates_and_runs_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (c, q, d) = fixture(dir.path());
    let a1 = train(dir.path(), "a1", 5, &c, &q, &d);
    let a2 = train(dir.path(), "a2", 5, &c, &q, &d);
    let a3 = train(dir.path(), "a3", 6, &c, &q, &d);
    assert!(a1.join("adapter.bpk").is_file() && a1.join("adapter.json").is_file());
    for file in ["adapter.bpk", "adapter.json"] {
        let bytes = |a: &Path| std::fs::read(a.join(file)).unwrap();
        assert_eq!(bytes(&a1), bytes(&a2), "same seed, same {file} bytes");
        assert_ne!(bytes(&a1), bytes(&a3), "another seed, another {file}");
    }

    let s1 = score(
        dir.path(),
        "s1",
        &[
            ("adapter", &a1),
            ("candidates", &c),
            ("queries", &q),
            ("docs", &d),
        ],
    )
    .unwrap();
    let s2 = score(
        dir.path(),
        "s2",
        &[
            ("adapter", &a2),
            ("candidates", &c),
            ("queries", &q),
            ("docs", &d),
        ],
    )
    .unwrap();
    let s3 = score(
        dir.path(),
        "s3",
        &[
            ("adapter", &a3),
            ("candidates", &c),
            ("queries", &q),
            ("docs", &d),
        ],
    )
    .unwrap();
    assert_eq!(s1, s2, "same seed, same adapter and scores");
    assert_ne!(s1, s3, "another seed, another adapter");
    // Every candidate row, in input order, with scores in range.
    let input = read_rows::<Candidate>(&c).unwrap();
    assert_eq!(s1.len(), input.len());
    for (s, c) in s1.iter().zip(&input) {
        assert_eq!(&s.candidate, c);
        assert!((0.0..=1.0).contains(&s.s_fn), "{s:?}");
        assert!((0.0..=1.0 + 1e-6).contains(&s.p_rel), "{s:?}");
        assert!(s.qa_score.abs() <= 1.0 + 1e-6, "{s:?}");
    }
    // Positives look more relevant to the adapter than negatives on average.
    let mean = |pos: bool| {
        let v: Vec<f64> = s1
            .iter()
            .filter(|s| s.candidate.positive == pos)
            .map(|s| s.p_rel)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean(true) > mean(false),
        "{} vs {}",
        mean(true),
        mean(false)
    );

    // A run scores the same pairs the same way; its rows are never positives.
    let run = dir.path().join("run.parquet");
    write_rows(
        &run,
        input.iter().map(|c| RunRow {
            query_id: c.query_id.clone(),
            doc_id: c.doc_id.clone(),
            rank: c.rank,
            score: c.score,
        }),
    )
    .unwrap();
    let from_run = score(
        dir.path(),
        "s4",
        &[
            ("adapter", &a1),
            ("run", &run),
            ("queries", &q),
            ("docs", &d),
        ],
    )
    .unwrap();
    for (r, s) in from_run.iter().zip(&s1) {
        assert!(!r.candidate.positive);
        assert_eq!((r.qa_score, r.s_fn, r.p_rel), (s.qa_score, s.s_fn, s.p_rel));
    }

    // The vectors are read from sidecars written beside the embeddings; the
    // pool's scratch files go with the run.
    for e in [&q, &d] {
        let name = e.file_name().unwrap().to_string_lossy();
        assert!(e.with_file_name(format!("{name}.f32")).is_file(), "{name}");
    }
    let work = a1.parent().unwrap().join("work");
    assert!(work.is_dir() && std::fs::read_dir(&work).unwrap().next().is_none());
    // Embeddings rewritten (each vector reversed) are read anew, not through the old
    // sidecar: the same seed trains another adapter.
    let (ids, values, dim) = rrra_common::embeddings::read_all(&d).unwrap();
    let mut sink = EmbeddingSink::create(&d, dim).unwrap();
    for (id, v) in ids.iter().zip(values.chunks(dim)) {
        let reversed: Vec<f32> = v.iter().rev().copied().collect();
        sink.push(id, &reversed).unwrap();
    }
    sink.finish().unwrap();
    let a4 = train(dir.path(), "a4", 5, &c, &q, &d);
    let bytes = |a: &Path| std::fs::read(a.join("adapter.bpk")).unwrap();
    assert_ne!(bytes(&a1), bytes(&a4));
}

#[test]
fn input_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (c, q, d) = fixture(dir.path());
    let a = train(dir.path(), "a", 1, &c, &q, &d);
    let both = score(
        dir.path(),
        "e1",
        &[
            ("adapter", &a),
            ("candidates", &c),
            ("run", &c),
            ("queries", &q),
            ("docs", &d),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(both.contains("exactly one"), "{both}");
    // Query vectors where document vectors are expected: no vector for the documents.
    let missing = score(
        dir.path(),
        "e2",
        &[
            ("adapter", &a),
            ("candidates", &c),
            ("queries", &q),
            ("docs", &q),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("q.parquet") && missing.contains("no vector for document \"q0d"),
        "{missing}"
    );
    let bad = dir.path().join("nothing");
    std::fs::create_dir_all(&bad).unwrap();
    let err = score(
        dir.path(),
        "e3",
        &[
            ("adapter", &bad),
            ("candidates", &c),
            ("queries", &q),
            ("docs", &d),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("adapter.json"), "{err}");
}

#[test]
fn params_pick_a_backend_and_a_step_budget_and_only_pool_vectors_are_read() {
    let bad = |p: TrainAdapterParams| TrainAdapter::check(&p).unwrap_err();
    // The backend is typed: serde refuses an unknown name (the runner adds the param's
    // path), and a default `cpu` stays out of the serialised params (the cache key).
    let unknown =
        serde_json::from_value::<TrainAdapterParams>(serde_json::json!({"backend": "gpu"}))
            .unwrap_err()
            .to_string();
    assert!(
        unknown.contains("gpu") && unknown.contains("wgpu"),
        "{unknown}"
    );
    let key = |p: TrainAdapterParams| serde_json::to_value(p).unwrap();
    assert_eq!(key(TrainAdapterParams::default()).get("backend"), None);
    let wgpu = TrainAdapterParams {
        backend: Backend::Wgpu,
        ..Default::default()
    };
    assert_eq!(key(wgpu.clone())["backend"], "wgpu");
    if !cfg!(feature = "wgpu") {
        let missing = bad(wgpu);
        assert!(
            missing.contains("param backend") && missing.contains("feature `wgpu`"),
            "{missing}"
        );
        let score_missing = ScoreAdapter::check(&ScoreAdapterParams {
            backend: Backend::Wgpu,
            ..Default::default()
        })
        .unwrap_err();
        assert!(score_missing.contains("param backend"), "{score_missing}");
    }
    assert!(
        bad(TrainAdapterParams {
            max_steps: Some(0),
            ..Default::default()
        })
        .contains("max_steps")
    );

    // Document vectors of the pool only: the rank-30 negatives (beyond a pool of 20) have
    // none, and training does not need them. Two steps of a 3-epoch run: one epoch's loss.
    let dir = tempfile::tempdir().unwrap();
    let (c, q, d) = fixture(dir.path());
    let pool_docs = dir.path().join("pool-docs.parquet");
    let mut sink = EmbeddingSink::create(&pool_docs, DIM).unwrap();
    let far: std::collections::HashSet<String> = read_rows::<Candidate>(&c)
        .unwrap()
        .into_iter()
        .filter(|c| c.rank == 30)
        .map(|c| c.doc_id)
        .collect();
    assert_eq!(far.len(), 12);
    rrra_common::embeddings::for_each_block(&d, |ids, block| {
        for (id, v) in ids.iter().zip(block.chunks(DIM)) {
            if !far.contains(id) {
                sink.push(id, v).unwrap();
            }
        }
        Ok(())
    })
    .unwrap();
    sink.finish().unwrap();
    let out = dir.path().join("budget");
    std::fs::create_dir_all(&out).unwrap();
    let params = TrainAdapterParams {
        max_steps: Some(2),
        batch_size: 64,
        pool: 20,
        ..Default::default()
    };
    let inputs = [
        ("candidates", c.as_path()),
        ("queries", &q),
        ("docs", &pool_docs),
    ];
    TrainAdapter::run(&params, &ctx(&inputs, &out, 1)).unwrap();
    let saved = rrra_adapter::saved::SavedAdapter::read(&out.join("adapter")).unwrap();
    assert_eq!(saved.summary.unwrap().epoch_loss.len(), 1);
    // A pool of 30 needs them.
    let out = dir.path().join("all");
    std::fs::create_dir_all(&out).unwrap();
    let params = TrainAdapterParams { pool: 30, ..params };
    let err = TrainAdapter::run(&params, &ctx(&inputs, &out, 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no vector for document"), "{err}");
}
