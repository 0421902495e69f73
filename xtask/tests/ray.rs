//! `run --executor ray` on a local Ray instance (2 CPUs): `encode.bert` and `mine.dense` of
//! a small SciFact pipeline, each in 4 parts, give the local run's blake3; and with one
//! part's process killed (SIGKILL) mid-part, Ray retries it and the result is the same.
//! Skipped, saying so, when the Python of `RRRA_PYTHON` (else `.venv`) cannot import ray.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The model folder the integration tests share.
const MODELS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/rrra-encoder-models");

fn python() -> PathBuf {
    std::env::var_os("RRRA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

fn ray_missing() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import ray"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: {} cannot import ray (pip install ray into it, or set RRRA_PYTHON)",
            python().display()
        );
    }
    !ok
}

fn xtask(file: &Path, data: &Path, ray: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("run").arg(file).arg("--data-dir").arg(data);
    if ray {
        cmd.args(["--executor", "ray", "--ray-cpus", "2"])
            .arg("--python")
            .arg(python());
    }
    cmd
}

/// The pid of an `exec-part` of part `part` of `encode.bert` in progress in `data`'s cache:
/// its private output folder `.exec-<part>-<host>-<pid>-<n>`.
fn exec_part_pid(data: &Path, part: usize) -> Option<u32> {
    let kind = data.join("cache/encode.bert");
    for work in std::fs::read_dir(kind).ok()?.flatten() {
        for e in std::fs::read_dir(work.path()).ok()?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(&format!(".exec-{part:05}-")) {
                let mut fields = rest.rsplitn(3, '-');
                let _n = fields.next();
                return fields.next()?.parse().ok();
            }
        }
    }
    None
}

#[test]
fn ray_parts_give_the_local_bytes_and_a_killed_part_is_retried() {
    if ray_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = rrra_tests::tiny_split(dir.path(), Path::new(MODELS));
    let local = dir.path().join("local");
    assert!(xtask(&file, &local, false).status().unwrap().success());
    let local = rrra_tests::cached_hashes(&local);
    assert_eq!(local.len(), 4);

    let data = dir.path().join("ray");
    let out = xtask(&file, &data, true).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ray: 4 of 4 parts done"), "{err}");
    assert_eq!(rrra_tests::cached_hashes(&data), local);

    // Kill part 2's process while it encodes: Ray retries the task.
    let data = dir.path().join("ray-killed");
    let run = xtask(&file, &data, true)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let pid = loop {
        if let Some(pid) = exec_part_pid(&data, 2) {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "part 2 never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(String::from_utf8_lossy(&cmdline).contains("exec-part"));
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        killed.success(),
        "part 2's process {pid} was gone before the kill"
    );
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(rrra_tests::cached_hashes(&data), local);
}
