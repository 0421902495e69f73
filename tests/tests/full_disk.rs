//! A disk that fills, a file-size limit, and a read-only cache, on the shipped SciFact
//! BM25 pipeline: the stage that cannot write fails with an error naming the path and
//! the cause, leaves no scratch folder and no partial entry, every earlier entry stays
//! intact, and once space is back the run resumes from the stage that failed.
//!
//! The file-size test (`RLIMIT_FSIZE` in a child process, `SIGXFSZ` ignored) runs
//! anywhere on Unix. The full-disk and read-only tests mount a small tmpfs, which needs
//! root (CI runs as root); without the right to mount they say so and do nothing.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use rrra_common::progress::Silent;
use rrra_runner::{Check, Event, Pipeline, State};

fn pipeline(k1: &str) -> Pipeline {
    rrra_tests::scifact_bm25_with_k1(k1)
}

/// Runs `p`, returning the stages started, or the error.
fn run(p: &Pipeline, data: &Path) -> Result<Vec<String>, String> {
    let mut started = Vec::new();
    rrra_runner::run(p, data, &Silent, &mut |e| {
        if let Event::Started { id, .. } = e {
            started.push(id.to_string());
        }
    })
    .map(|_| started)
    .map_err(|e| e.to_string())
}

/// Scratch (`.tmp-*`) and work (`.work-*`) folders, and entry folders of `kind`.
fn leftovers(data: &Path, kind: &str) -> (Vec<String>, usize) {
    let mut scratch = Vec::new();
    let cache = data.join("cache");
    for k in std::fs::read_dir(&cache).unwrap().flatten() {
        if !k.path().is_dir() {
            continue;
        }
        for e in std::fs::read_dir(k.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || name.starts_with(".work-") {
                scratch.push(name);
            }
        }
    }
    let entries = std::fs::read_dir(cache.join(kind))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    (scratch, entries)
}

/// The states of `p`'s stages after re-hashing every cached output.
fn verified(p: &Pipeline, data: &Path) -> Vec<State> {
    rrra_runner::inspect(p, data, Check::Full)
        .unwrap()
        .into_iter()
        .map(|s| {
            assert!(s.damage.is_none(), "{:?}", s.damage);
            s.state
        })
        .collect()
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() { du(&e.path()) } else { m.len() }
        })
        .sum()
}

const CHILD: &str = "RRRA_FSIZE_CHILD";

#[test]
fn file_size_limit_fails_the_stage_cleanly_and_resumes() {
    if let Ok(data) = std::env::var(CHILD) {
        // In the child, under the limit: the BM25 run is the first file over it.
        match run(&pipeline("0.9"), Path::new(&data)) {
            Ok(started) => println!("CHILD-OK {started:?}"),
            Err(e) => println!("CHILD-ERROR {e}"),
        }
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut ingest_only = pipeline("0.9");
    ingest_only.restrict(&["scifact".into()]).unwrap();
    assert_eq!(run(&ingest_only, data.path()).unwrap(), ["scifact"]);

    let limit: u64 = 64 << 10;
    let output = unsafe {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "file_size_limit_fails_the_stage_cleanly_and_resumes",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, data.path())
            .pre_exec(move || {
                // Writes past the limit fail with EFBIG instead of killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let error = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD-ERROR ").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("the child did not fail: {stdout}"));
    let cache = data.path().join("cache").display().to_string();
    assert!(error.contains("stage \"bm25\""), "{error}");
    assert!(error.contains(&cache), "names the path: {error}");
    assert!(error.contains("File too large"), "names the cause: {error}");
    let (scratch, entries) = leftovers(data.path(), "retrieve.bm25");
    assert!(scratch.is_empty(), "{scratch:?}");
    assert_eq!(entries, 0, "no partial entry");
    assert_eq!(
        verified(&pipeline("0.9"), data.path()),
        [State::Fresh, State::Missing, State::Missing]
    );
    // Without the limit the run resumes at the stage that failed.
    assert_eq!(
        run(&pipeline("0.9"), data.path()).unwrap(),
        ["bm25", "eval"]
    );
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes`, or says why it cannot.
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        match st {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                eprintln!("cannot mount a tmpfs here ({other:?}): test skipped");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_the_stage_cleanly_and_a_read_only_cache_still_serves() {
    // Sizes of the entries, from a run on the ordinary disk.
    let reference = tempfile::tempdir().unwrap();
    run(&pipeline("0.9"), reference.path()).unwrap();
    let cache = reference.path().join("cache");
    let ingest = du(&cache.join("ingest.beir"));
    let bm25 = du(&cache.join("retrieve.bm25"));
    // Room for the ingest stage (and the lock and state files) and half of the BM25 run.
    let Some(disk) = Tmpfs::mount(ingest + bm25 / 2 + (64 << 10)) else {
        return;
    };
    let data = disk.path();
    let error = run(&pipeline("0.9"), data).unwrap_err();
    assert!(error.contains("stage \"bm25\""), "{error}");
    assert!(
        error.contains(&data.display().to_string()),
        "names the path: {error}"
    );
    assert!(
        error.contains("No space left on device"),
        "names the cause: {error}"
    );
    let (scratch, entries) = leftovers(data, "retrieve.bm25");
    assert!(scratch.is_empty(), "{scratch:?}");
    assert_eq!(entries, 0, "no partial entry");
    assert_eq!(
        verified(&pipeline("0.9"), data),
        [State::Fresh, State::Missing, State::Missing]
    );

    // Space is back: the run resumes at the stage that failed.
    disk.remount(&format!("size={}", 4 * (ingest + bm25) + (16 << 20)));
    assert_eq!(run(&pipeline("0.9"), data).unwrap(), ["bm25", "eval"]);

    // Read-only: a fully cached run is served; a stage that must run fails naming the path.
    disk.remount("ro");
    assert_eq!(run(&pipeline("0.9"), data).unwrap(), Vec::<String>::new());
    let error = run(&pipeline("1.2"), data).unwrap_err();
    assert!(
        error.contains(&data.display().to_string()),
        "names the path: {error}"
    );
    assert!(
        error.contains("Read-only file system"),
        "names the cause: {error}"
    );
    assert_eq!(verified(&pipeline("0.9"), data), [State::Fresh; 3]);
    disk.remount("rw");
    let (scratch, _) = leftovers(data, "retrieve.bm25");
    assert!(scratch.is_empty(), "{scratch:?}");
}
