//! `kill -9` of `cargo xtask run` while retrieval is running, then a re-run: it completes,
//! ingestion is not repeated, and no half-written artifact is used.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

/// A scratch directory of a running `retrieve.bm25`, if one exists.
fn bm25_scratch(data: &Path) -> bool {
    std::fs::read_dir(data.join("cache/retrieve.bm25"))
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        })
        .unwrap_or(false)
}

#[test]
fn killed_run_resumes_from_the_last_completed_stage() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // All 1,109 SciFact queries and a deep top-k make retrieval long enough to be killed in.
    let pipeline = std::fs::read_to_string(repo.join("pipelines/scifact-bm25.yaml"))
        .unwrap()
        .replace("split: test", "split: train\n      all_queries: true")
        .replace("top_k: 1000", "top_k: 2000")
        .replace(
            "../data/scifact",
            &repo.join("data/scifact").display().to_string(),
        );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let data = dir.path().join("data");

    let mut child = xtask()
        .args([
            "run",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !bm25_scratch(&data) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "retrieval never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        bm25_scratch(&data),
        "the killed stage left its scratch directory"
    );

    let out = xtask()
        .args([
            "run",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("removed 1 scratch directory"), "{log}");
    let line = |id: &str| {
        log.lines()
            .find(|l| l.contains(&format!(" {id} ")))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("scifact").contains("cached"), "{log}");
    assert!(log.contains("> bm25"), "{log}");
    assert!(log.contains("> eval"), "{log}");
    assert!(!bm25_scratch(&data));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nDCG@10"), "{stdout}");
}
