//! A damaged cache on the shipped SciFact BM25 pipeline: a truncated Parquet file, a
//! bit flip that keeps size and mtime (bit rot), a missing manifest, and a manifest
//! pointing at a missing file. Each is detected (by `status`, by `status --verify`
//! = `inspect(Check::Full)`, or on read by the next stage), reported with the entry's
//! path, and recomputed by `run` without manual cleaning, to the same bytes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rrra_common::progress::Silent;
use rrra_runner::{Check, Event, Pipeline, State};

fn pipeline(k1: &str) -> Pipeline {
    rrra_tests::scifact_bm25_with_k1(k1)
}

/// What a run reported: stages started and damage found (id, reason).
#[derive(Default, Debug)]
struct Seen {
    started: Vec<String>,
    damaged: Vec<(String, String)>,
}

fn run(p: &Pipeline, data: &Path) -> Seen {
    let mut seen = Seen::default();
    rrra_runner::run(p, data, &Silent, &mut |e| match e {
        Event::Started { id, .. } => seen.started.push(id.to_string()),
        Event::Damaged { id, reason } => seen.damaged.push((id.to_string(), reason)),
        _ => {}
    })
    .unwrap();
    seen
}

/// The entry folder of stage `at` of `p`.
fn entry(p: &Pipeline, data: &Path, at: usize) -> PathBuf {
    let key = rrra_runner::status(p, data).unwrap()[at].1.clone().unwrap();
    data.join("cache").join(p.stages[at].stage.kind()).join(key)
}

fn states(p: &Pipeline, data: &Path, how: Check) -> Vec<(State, Option<String>)> {
    rrra_runner::inspect(p, data, how)
        .unwrap()
        .into_iter()
        .map(|s| (s.state, s.damage))
        .collect()
}

fn hash(path: &Path) -> String {
    rrra_common::artifact::hash_path(path).unwrap()
}

#[test]
fn truncated_parquet_is_found_by_status_and_recomputed_by_run() {
    let data = tempfile::tempdir().unwrap();
    let p = pipeline("0.9");
    run(&p, data.path());
    let dir = entry(&p, data.path(), 1);
    let file = dir.join("run.parquet");
    let before = hash(&file);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let found = states(&p, data.path(), Check::Quick);
    assert_eq!(found[0], (State::Fresh, None));
    let (state, damage) = &found[1];
    assert_eq!(*state, State::Stale);
    let damage = damage.as_deref().expect("the damage is reported");
    assert!(damage.contains(&dir.display().to_string()), "{damage}");
    assert!(damage.contains("does not match its hash"), "{damage}");

    let seen = run(&p, data.path());
    assert_eq!(
        seen.started,
        ["bm25"],
        "eval's inputs are byte-identical again"
    );
    assert_eq!(seen.damaged.len(), 1);
    assert!(seen.damaged[0].1.contains(&dir.display().to_string()));
    assert_eq!(hash(&file), before, "recomputed to the same bytes");
    assert!(
        states(&p, data.path(), Check::Full)
            .iter()
            .all(|s| *s == (State::Fresh, None))
    );
}

#[test]
fn bit_rot_under_the_same_size_and_mtime_is_found_by_verify_and_on_read() {
    let data = tempfile::tempdir().unwrap();
    let p = pipeline("0.9");
    run(&p, data.path());
    let dir = entry(&p, data.path(), 0);
    let file = dir.join("corpus.parquet");
    let before = hash(&file);
    // Flip one bit in place, then put the mtime back: what a failing disk does.
    let mtime: SystemTime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);

    // The quick check (a stat) cannot see it; --verify does.
    assert_eq!(
        states(&p, data.path(), Check::Quick)[0],
        (State::Fresh, None)
    );
    let verified = states(&p, data.path(), Check::Full);
    let damage = verified[0].1.as_deref().expect("verify finds it");
    assert!(
        damage.contains(&dir.display().to_string()) && damage.contains("corpus"),
        "{damage}"
    );

    // A fully cached run reads nothing and does no work...
    assert!(run(&p, data.path()).started.is_empty());
    // ... but a stage that must read the corpus re-hashes it first: the damage is found
    // on read, reported with the entry's path, and the ingest stage recomputed.
    let p2 = pipeline("1.2");
    let seen = run(&p2, data.path());
    assert_eq!(seen.damaged.len(), 1, "{seen:?}");
    assert_eq!(seen.damaged[0].0, "scifact");
    assert!(seen.damaged[0].1.contains(&dir.display().to_string()));
    assert_eq!(seen.started, ["scifact", "bm25", "eval"]);
    assert_eq!(hash(&file), before, "recomputed to the same bytes");
    assert!(
        states(&p2, data.path(), Check::Full)
            .iter()
            .all(|s| *s == (State::Fresh, None))
    );
}

#[test]
fn missing_manifest_and_missing_output_are_reported_and_recomputed() {
    let data = tempfile::tempdir().unwrap();
    let p = pipeline("0.9");
    run(&p, data.path());
    let ingest = entry(&p, data.path(), 0);
    let eval = entry(&p, data.path(), 2);
    std::fs::remove_file(ingest.join("manifest.json")).unwrap();
    std::fs::remove_file(eval.join("metrics.parquet")).unwrap();

    let found = rrra_runner::inspect(&p, data.path(), Check::Quick).unwrap();
    let first = found[0].damage.as_deref().unwrap();
    assert!(first.contains(&ingest.display().to_string()), "{first}");
    assert!(first.contains("manifest.json is missing"), "{first}");
    // Downstream keys wait on the damaged entry.
    assert!(found[1].key.is_none() && found[2].key.is_none());

    let seen = run(&p, data.path());
    assert_eq!(seen.started, ["scifact", "eval"], "{seen:?}");
    let reasons: Vec<&str> = seen.damaged.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("manifest.json is missing"));
    assert!(reasons[1].contains(&eval.display().to_string()));
    assert!(reasons[1].contains("output metrics (metrics.parquet) is missing"));
    assert!(
        states(&p, data.path(), Check::Full)
            .iter()
            .all(|s| *s == (State::Fresh, None))
    );
}

#[test]
fn a_cached_rerun_only_stats_and_restamps_a_touched_entry() {
    let data = tempfile::tempdir().unwrap();
    let p = pipeline("0.9");
    run(&p, data.path());
    let dir = entry(&p, data.path(), 1);
    let file = dir.join("run.parquet");
    let manifest =
        |d: &Path| rrra_common::manifest::Manifest::read(&d.join("manifest.json")).unwrap();
    let stamp = manifest(&dir).outputs["run"].stamp.clone().unwrap();
    assert!(stamp.starts_with(&format!("{}:", std::fs::metadata(&file).unwrap().len())));
    // A copy or `touch` changes the mtime only: the file is re-hashed, found intact,
    // and its new stamp recorded, so that the next check is a stat again.
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30))
        .unwrap();
    drop(f);
    let seen = run(&p, data.path());
    assert!(
        seen.started.is_empty() && seen.damaged.is_empty(),
        "{seen:?}"
    );
    let restamped = manifest(&dir).outputs["run"].stamp.clone().unwrap();
    assert_ne!(restamped, stamp);
    assert_eq!(restamped, rrra_common::artifact::stamp_path(&file).unwrap());
}
