//! `run --executor ray`. On a Ray cluster the test starts (`ray start --head --port P
//! --num-cpus 2`, reached with `--address`): the shipped `pipelines/scifact.yaml`'s encode
//! and mine stages (`--only mine`: the two ingests, the documents' and the training
//! queries' encodings, the mining; the documents sorted in windows of 256 texts), the
//! documents' encoding and the mining each in 4 parts, give the blake3 of the local run of
//! the same file, which runs beside it. On a local Ray instance
//! (`--ray-cpus 2`) with a small SciFact pipeline: one part's `exec-part` is killed
//! (SIGKILL) mid-part, and so is the Ray worker process running another part; Ray retries
//! both, the result is the local run's, and the killed tries' part files are never merged.
//! Skipped, saying so, when the Python of `RRRA_PYTHON` (else `.venv`) cannot import ray.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rrra_testkit::{kill, python};

/// One Ray instance at a time: the tests share the 2 CPUs they give Ray.
static RAY: Mutex<()> = Mutex::new(());

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

fn xtask(file: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("run").arg(file).arg("--data-dir").arg(data);
    cmd
}

fn on_ray(mut cmd: Command) -> Command {
    cmd.args(["--executor", "ray", "--python"]).arg(python());
    cmd
}

/// Runs `cmd`, asserting success; returns its stderr.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{err}");
    err
}

/// Links the shared MiniLM folder into `data`'s model cache, so that a pipeline naming
/// `minilm-l6` finds it there instead of fetching it again.
fn share_model(data: &Path) {
    let model = rrra_testkit::minilm(env!("CARGO_TARGET_TMPDIR"));
    let models = data.join("cache/models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(model, models.join(model.file_name().unwrap())).unwrap();
}

/// A Ray head node on 127.0.0.1 (`ray start --head --block`, its processes this test's
/// children) with token authentication and a token of its own (`RAY_AUTH_MODE=token`,
/// `RAY_AUTH_TOKEN`: `ray start` turns authentication on when `~/.ray/auth_token` exists,
/// and a driver given an address must then be told); dropped, even on a failed assertion,
/// it is stopped with SIGTERM, on which Ray drains and ends every process of the node.
struct Cluster {
    head: Child,
    address: String,
    token: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("ray-head.log");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let token = format!("{nanos:032x}{:08x}", std::process::id());
        let head = Command::new(python())
            .env("RAY_AUTH_MODE", "token")
            .env("RAY_AUTH_TOKEN", &token)
            .args(["-m", "ray.scripts.scripts", "start", "--head", "--block"])
            .args(["--port", &port.to_string(), "--num-cpus", "2"])
            .args([
                "--node-ip-address",
                "127.0.0.1",
                "--include-dashboard=false",
            ])
            .arg("--disable-usage-stats")
            .arg("--temp-dir")
            .arg(dir.join("ray"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("ray-head.err")).unwrap())
            .spawn()
            .unwrap();
        let mut cluster = Cluster {
            head,
            address: format!("127.0.0.1:{port}"),
            token,
        };
        let start = Instant::now();
        loop {
            let out = std::fs::read_to_string(&log).unwrap_or_default()
                + &std::fs::read_to_string(dir.join("ray-head.err")).unwrap_or_default();
            if out.contains("Ray runtime started") {
                return cluster;
            }
            let exited = cluster.head.try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < Duration::from_secs(180),
                "ray start --head did not start ({exited:?}):\n{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Gives `cmd` (a run with `--address`) the cluster's token.
    fn authenticate(&self, cmd: &mut Command) {
        cmd.env("RAY_AUTH_MODE", "token")
            .env("RAY_AUTH_TOKEN", &self.token);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.head.id().to_string()])
            .status();
        let _ = self.head.wait();
    }
}

/// A child process killed, if still running, when dropped (a failed assertion included).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn scifact_encode_and_mine_in_4_parts_on_a_ray_cluster_give_the_local_bytes() {
    if ray_missing() {
        return;
    }
    let _ray = RAY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // The documents sort by length in windows of 256 texts in both runs (a part must hold
    // whole windows; the default window, 8192, is more than SciFact's 5,183 documents).
    let window = 256;
    // 4 parts each, of the documents and of the training queries (the mined queries:
    // those judged in the train qrels), counted in the shipped data.
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/scifact");
    let read = |f: &str| std::fs::read_to_string(data_dir.join(f)).unwrap();
    let n_docs = read("corpus.jsonl")
        .lines()
        .filter(|l| !l.is_empty())
        .count() as u64;
    let judged: std::collections::BTreeSet<String> = read("qrels/train.tsv")
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    let docs = n_docs.div_ceil(4).div_ceil(window) * window;
    let queries = (judged.len() as u64).div_ceil(4);
    assert_eq!(n_docs.div_ceil(docs), 4);
    let split = rrra_tests::scifact_yaml(dir.path(), "scifact-4.yaml", window, (docs, queries));
    // The local run (its parts computed here) goes on beside the Ray run.
    let local = dir.path().join("local");
    share_model(&local);
    let log = dir.path().join("local.log");
    let mut cmd = xtask(&split, &local);
    cmd.args(["--only", "mine"])
        .stderr(std::fs::File::create(&log).unwrap());
    let mut run = Running(Some(cmd.spawn().unwrap()));
    let cluster = Cluster::start(dir.path());
    let data = dir.path().join("ray");
    share_model(&data);
    let mut cmd = on_ray(xtask(&split, &data));
    cmd.args(["--only", "mine", "--address", &cluster.address]);
    cluster.authenticate(&mut cmd);
    let err = ok(&mut cmd);
    drop(cluster);
    // The documents' 4 tasks, then (after their merge) the mining's 4.
    assert_eq!(err.matches("ray: 4 of 4 parts done").count(), 2, "{err}");
    for id in ["docs", "mine"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("~ {id} "))
                    && l.ends_with("4 of 4 parts left to tasks")),
            "{err}"
        );
    }

    let status = run.0.take().unwrap().wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the local run failed:\n{log}");
    let hashes = rrra_tests::cached_hashes(&local);
    let ids: Vec<&str> = hashes.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["docs", "mine", "scifact", "scifact-train", "train-queries"]
    );
    assert_eq!(rrra_tests::cached_hashes(&data), hashes);
}

/// The pid of the `exec-part` computing part `part` of `encode.bert` in `data`'s cache, once
/// it writes its part file (`part-NNNNN.<host>-<pid>-<n>.parquet[.tmp]`, its own).
fn exec_part_writing(data: &Path, part: usize) -> Option<u32> {
    let pid_of = |name: &str| -> Option<u32> {
        let tag = name
            .strip_prefix(&format!("part-{part:05}."))?
            .split('.')
            .next()?;
        let mut fields = tag.split('-');
        let (_host, pid, _n) = (fields.next()?, fields.next()?, fields.next()?);
        pid.parse().ok()
    };
    let kind = data.join("cache/encode.bert");
    std::fs::read_dir(kind).ok()?.flatten().find_map(|work| {
        let parts = work.path().join("parts/embeddings");
        let files = std::fs::read_dir(parts).into_iter().flatten().flatten();
        files
            .filter_map(|e| pid_of(&e.file_name().to_string_lossy()))
            .next()
    })
}

/// Waits until an `exec-part` writes part `part`; returns its pid, after checking that
/// the part is not done (so a kill now is mid-part).
fn wait_for_part(data: &Path, part: usize) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = exec_part_writing(data, part) {
            let finished = data.join("cache/encode.bert").read_dir().unwrap().any(|w| {
                let file = format!("parts/embeddings/part-{part:05}.parquet");
                w.unwrap().path().join(file).exists()
            });
            assert!(!finished, "part {part} was done before the kill");
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(String::from_utf8_lossy(&cmdline).contains("exec-part"));
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "part {part} never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Field `i` (1-based, as `man proc` counts) of `/proc/PID/stat`.
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(i - 3).map(str::to_string)
}

/// The part and pid of each `encode.bert` try that Ray reported done (`ray: part k/N done
/// ... by exec-part pid P (.../encode.bert/.work-KEY/tasks/part-NNNNN/task.json)`).
fn encode_done_by(err: &str) -> Vec<(usize, u32)> {
    let mut done: Vec<(usize, u32)> = err
        .lines()
        .filter(|l| l.contains("/encode.bert/"))
        .filter_map(|l| {
            let pid = l.split("by exec-part pid ").nth(1)?.split(' ').next()?;
            let part = l.split("/part-").nth(1)?.get(..5)?;
            Some((part.parse().ok()?, pid.parse().ok()?))
        })
        .collect();
    done.sort();
    done
}

#[test]
fn a_killed_part_and_a_killed_ray_worker_are_retried_with_the_local_bytes() {
    if ray_missing() {
        return;
    }
    let _ray = RAY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let model = rrra_testkit::minilm(env!("CARGO_TARGET_TMPDIR"));
    let file = rrra_tests::tiny_split(dir.path(), model);
    let local = dir.path().join("local");
    ok(&mut xtask(&file, &local));
    let local = rrra_tests::cached_hashes(&local);
    assert_eq!(local.len(), 4);

    let data = dir.path().join("ray");
    let mut cmd = on_ray(xtask(&file, &data));
    let run = cmd
        .args(["--ray-cpus", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Part 0: its exec-part, mid-part. The Ray task fails; Ray runs it again.
    let child = wait_for_part(&data, 0);
    kill(child, "part 0's exec-part");
    // Part 2: the Ray worker process running its exec-part (the exec-part's parent),
    // mid-part. Ray retries the task on another worker; the exec-part dies with its
    // worker (the driver's PR_SET_PDEATHSIG), leaving its scratch part file unmerged.
    let orphan = wait_for_part(&data, 2);
    let worker: u32 = stat_field(orphan, 4).unwrap().parse().unwrap();
    let title = std::fs::read(format!("/proc/{worker}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&title).starts_with("ray::"),
        "the parent of exec-part {orphan} is not a Ray worker: {:?}",
        String::from_utf8_lossy(&title)
    );
    kill(worker, "part 2's Ray worker");
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The collect after the documents' tasks removed what the killed tries left: each its
    // output folder `.exec-NNNNN-<tag>` and its unfinished part file.
    assert!(
        err.contains("removed 4 scratch file(s) of killed part tasks"),
        "{err}"
    );
    // Gone, or a zombie nobody reaps: never running beside the retry to its end.
    let state = stat_field(orphan, 3);
    assert!(
        state.is_none() || state.as_deref() == Some("Z"),
        "{state:?}"
    );
    // Each part done once, none by a killed try.
    let done = encode_done_by(&err);
    let parts: Vec<usize> = done.iter().map(|d| d.0).collect();
    assert_eq!(parts, [0, 1, 2, 3], "{err}");
    assert!(
        done.iter().all(|&(_, pid)| pid != child && pid != orphan),
        "{err}"
    );
    assert_eq!(rrra_tests::cached_hashes(&data), local);
}
