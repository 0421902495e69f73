//! End to end on the shipped SciFact data: a run computes every stage; a second run does no
//! stage work; changing one stage's params re-runs it and its descendants only; a damaged
//! artifact is recomputed; scratch directories of a killed run are swept.

use std::path::Path;

use rrra_common::progress::Silent;
use rrra_runner::{Event, Pipeline, State};

fn pipeline(k1: &str) -> Pipeline {
    rrra_tests::scifact_bm25_with_k1(k1)
}

/// Runs `p`, returning the ids of the stages that did work.
fn run(p: &Pipeline, data: &Path) -> Vec<String> {
    let mut ran = Vec::new();
    let done = rrra_runner::run(p, data, &Silent, &mut |e| {
        if let Event::Started { id, .. } = e {
            ran.push(id.to_string());
        }
    })
    .unwrap();
    assert_eq!(done.len(), p.stages.len());
    ran
}

#[test]
fn cached_stages_are_skipped_and_changes_rerun_descendants_only() {
    let data = tempfile::tempdir().unwrap();
    let p = pipeline("0.9");
    let states = |p: &Pipeline| -> Vec<State> {
        rrra_runner::status(p, data.path())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(states(&p), [State::Missing; 3]);
    assert_eq!(run(&p, data.path()), ["scifact", "bm25", "eval"]);
    assert_eq!(states(&p), [State::Fresh; 3]);
    assert!(
        run(&p, data.path()).is_empty(),
        "second run does no stage work"
    );

    let p2 = pipeline("1.2");
    assert_eq!(states(&p2), [State::Fresh, State::Stale, State::Stale]);
    assert_eq!(run(&p2, data.path()), ["bm25", "eval"]);
    // Both configurations stay cached side by side.
    assert!(run(&p, data.path()).is_empty());

    // Damage the run artifact: it is recomputed, not used.
    let states_before = rrra_runner::status(&p, data.path()).unwrap();
    let bm25_key = states_before[1].1.clone().unwrap();
    let run_file = data
        .path()
        .join("cache/retrieve.bm25")
        .join(&bm25_key)
        .join("run.parquet");
    let mut bytes = std::fs::read(&run_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&run_file, bytes).unwrap();
    assert_eq!(states(&p), [State::Fresh, State::Stale, State::Stale]);
    let mut damaged = Vec::new();
    rrra_runner::run(&p, data.path(), &Silent, &mut |e| {
        if let Event::Damaged { id, .. } = e {
            damaged.push(id.to_string());
        }
    })
    .unwrap();
    assert_eq!(damaged, ["bm25"]);
    assert_eq!(states(&p), [State::Fresh; 3]);
}

#[test]
fn scratch_of_an_interrupted_stage_is_swept_and_never_read() {
    let data = tempfile::tempdir().unwrap();
    let p = pipeline("0.9");
    let keys = rrra_runner::status(&p, data.path()).unwrap();
    assert!(keys[1].1.is_none(), "bm25's key waits on its inputs");
    assert_eq!(run(&p, data.path()), ["scifact", "bm25", "eval"]);
    let key = rrra_runner::status(&p, data.path()).unwrap()[1]
        .1
        .clone()
        .unwrap();
    // What a run killed inside bm25 leaves behind: a scratch dir with a partial file, and no entry.
    let entry = data.path().join("cache/retrieve.bm25").join(&key);
    std::fs::remove_dir_all(&entry).unwrap();
    let scratch = data
        .path()
        .join(format!("cache/retrieve.bm25/.tmp-{key}-99999"));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("run.parquet.tmp"), b"PAR1 half written").unwrap();
    let mut swept = 0;
    let mut ran = Vec::new();
    rrra_runner::run(&p, data.path(), &Silent, &mut |e| match e {
        Event::Swept(n) => swept = n,
        Event::Started { id, .. } => ran.push(id.to_string()),
        _ => {}
    })
    .unwrap();
    assert_eq!(swept, 1);
    assert!(!scratch.exists());
    assert_eq!(
        ran,
        ["bm25"],
        "eval's inputs are byte-identical, so it stays cached"
    );
}
