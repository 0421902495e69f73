//! Parts computed elsewhere: `run --executor plan` writes one task per part, a loop standing
//! in for a Slurm array runs each task from `SLURM_ARRAY_TASK_ID` and the plan's index
//! (twice for one part: harmless), `--executor collect` refuses while a part is missing and
//! then merges: `encode.bert` and `mine.dense` give the local run's blake3. And two runner
//! processes on one cache: the second waits for the first's lock, each stage is computed
//! once, and every entry verifies. And an `exec-part` killed mid-part leaves scratch named
//! for its host and pid, which the next run on the cache removes; the sweep leaves a live
//! process's and another host's scratch alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rrra_common::parts::scratch_host;
use rrra_common::progress::Silent;
use rrra_runner::tasks::{
    Executed, Resources, array_index, exec_part, sweep_scratch, task_at, task_dir,
};
use rrra_runner::{Check, Event, Executor, Pipeline, RunError, State};

fn pipeline(dir: &Path) -> Pipeline {
    let model = rrra_testkit::minilm(env!("CARGO_TARGET_TMPDIR"));
    Pipeline::load(&rrra_tests::tiny_split(dir, model)).unwrap()
}

/// Stage id → (output port → blake3) of a finished run.
fn hashes(done: &[Option<rrra_runner::Done>]) -> BTreeMap<String, BTreeMap<String, String>> {
    done.iter()
        .flatten()
        .map(|d| {
            let outs = d.manifest.outputs.iter();
            (
                d.id.clone(),
                outs.map(|(k, o)| (k.clone(), o.blake3.clone())).collect(),
            )
        })
        .collect()
}

fn run_with(
    p: &Pipeline,
    data: &Path,
    executor: Executor,
) -> Result<(Vec<Option<rrra_runner::Done>>, Option<rrra_runner::Planned>), RunError> {
    rrra_runner::run_with(
        p,
        data,
        executor,
        &Resources::default(),
        &Silent,
        &mut |_| {},
    )
}

/// The array job: task `i` of the index from `SLURM_ARRAY_TASK_ID=i`.
fn array_task(index: &Path, i: usize) -> Executed {
    let var = |name: &str| (name == "SLURM_ARRAY_TASK_ID").then(|| i.to_string());
    let task = task_at(index, array_index(var).unwrap()).unwrap();
    exec_part(&task, &Silent).unwrap()
}

#[test]
fn plan_array_tasks_and_collect_give_the_local_runs_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let (local, planned) = run_with(&p, &dir.path().join("local"), Executor::Local).unwrap();
    assert!(planned.is_none());
    let local = hashes(&local);

    let data = dir.path().join("split");
    // Plan: ingest and the unsplit query encoding run here; the documents' 4 parts are
    // planned, and mining, which needs them, waits.
    let (done, planned) = run_with(&p, &data, Executor::Plan).unwrap();
    let planned = planned.expect("parts are planned");
    assert_eq!(planned.stages, ["docs"]);
    assert_eq!(planned.tasks.len(), 4);
    let ids: Vec<bool> = done.iter().map(Option::is_some).collect();
    assert_eq!(ids, [true, false, true, false]);
    let task = rrra_runner::tasks::Task::read(&planned.tasks[3]).unwrap();
    assert_eq!(
        (task.part, task.parts, task.start, task.end),
        (3, 4, 240, 300)
    );
    assert_eq!(task.unit, "rows");

    // Three of four array tasks ran: collect refuses and names the missing part.
    for i in 0..3 {
        assert_eq!(array_task(&planned.index, i), Executed::Computed);
    }
    assert_eq!(array_task(&planned.index, 1), Executed::AlreadyDone);
    let err = run_with(&p, &data, Executor::Collect).unwrap_err();
    assert!(
        matches!(&err, RunError::PartsMissing { id, missing, .. } if id == "docs" && missing == &[3]),
        "{err}"
    );
    assert!(err.to_string().contains("part(s) 3 of 4 not done"), "{err}");

    // The last part, then collect: the documents merge and mining's parts are planned.
    assert_eq!(array_task(&planned.index, 3), Executed::Computed);
    let (_, planned) = run_with(&p, &data, Executor::Collect).unwrap();
    let planned = planned.expect("mining is planned");
    assert_eq!(planned.stages, ["mine"]);
    assert_eq!(planned.tasks.len(), 4);
    // A part run twice at once (a retried task whose first try still runs) is harmless.
    std::thread::scope(|s| {
        let a = s.spawn(|| array_task(&planned.index, 0));
        let b = s.spawn(|| array_task(&planned.index, 0));
        a.join().unwrap();
        b.join().unwrap();
    });
    for i in 1..4 {
        array_task(&planned.index, i);
    }
    let (done, planned) = run_with(&p, &data, Executor::Collect).unwrap();
    assert!(planned.is_none());
    assert_eq!(hashes(&done), local, "the collected artifacts differ");
    let states = rrra_runner::inspect(&p, &data, Check::Full).unwrap();
    assert!(states.iter().all(|s| s.state == State::Fresh));
}

/// The child of the two-runner test: runs the pipeline in `RRRA_RUNNER_CHILD`'s `data`,
/// logging events to `log-<name>`; the first child holds each stage a while.
#[test]
#[ignore = "a child process of the two-runner test, started by it"]
fn runner_child() {
    let dir = PathBuf::from(std::env::var("RRRA_RUNNER_CHILD").unwrap());
    let name = std::env::var("RRRA_RUNNER_NAME").unwrap();
    let p = Pipeline::load(&dir.join("tiny-split.yaml")).unwrap();
    let mut log = String::new();
    let slow = name == "first";
    rrra_runner::run(&p, &dir.join("data"), &Silent, &mut |e| match e {
        Event::Waiting(_) => log.push_str("waiting\n"),
        Event::Started { id, .. } => {
            log.push_str(&format!("started {id}\n"));
            if slow {
                std::fs::write(dir.join("first-started"), b"").unwrap();
                std::thread::sleep(Duration::from_millis(700));
            }
        }
        Event::Cached { id, .. } => log.push_str(&format!("cached {id}\n")),
        _ => {}
    })
    .unwrap();
    std::fs::write(dir.join(format!("log-{name}")), log).unwrap();
}

#[test]
fn two_runners_on_one_cache_compute_each_stage_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let child = |name: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "runner_child", "--nocapture"])
            .env("RRRA_RUNNER_CHILD", dir.path())
            .env("RRRA_RUNNER_NAME", name)
            .spawn()
            .unwrap()
    };
    let mut first = child("first");
    let start = Instant::now();
    while !dir.path().join("first-started").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "first never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut second = child("second");
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let log = |n: &str| std::fs::read_to_string(dir.path().join(format!("log-{n}"))).unwrap();
    let (first, second) = (log("first"), log("second"));
    let ids: Vec<&str> = p.stages.iter().map(|s| s.id.as_str()).collect();
    for id in &ids {
        assert!(first.contains(&format!("started {id}\n")), "{first}");
        assert!(second.contains(&format!("cached {id}\n")), "{second}");
    }
    assert!(second.starts_with("waiting\n"), "{second}");
    assert!(!second.contains("started"), "{second}");
    let states = rrra_runner::inspect(&p, &dir.path().join("data"), Check::Full).unwrap();
    assert!(states.iter().all(|s| s.state == State::Fresh));
}

/// The child of the killed-part test: runs the task in `RRRA_EXEC_PART_TASK`.
#[test]
#[ignore = "a child process of the killed-part test, started by it"]
fn exec_part_child() {
    let task = PathBuf::from(std::env::var("RRRA_EXEC_PART_TASK").unwrap());
    exec_part(&task, &Silent).unwrap();
}

/// The scratch of process `pid` in the work folders under `kind`: names holding `-<pid>-`.
fn scratch_of(kind: &Path, pid: u32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![kind.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name()
                .to_string_lossy()
                .contains(&format!("-{pid}-"))
            {
                found.push(e.path());
            } else if e.path().is_dir() {
                dirs.push(e.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_killed_exec_parts_scratch_is_swept_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let data = dir.path().join("data");
    let (_, planned) = run_with(&p, &data, Executor::Plan).unwrap();
    let planned = planned.expect("parts are planned");
    let kind = data.join("cache/encode.bert");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "exec_part_child", "--nocapture"])
        .env("RRRA_EXEC_PART_TASK", &planned.tasks[0])
        .spawn()
        .unwrap();
    // Mid-part: its output folder and its part file being written.
    let start = Instant::now();
    let scratch = loop {
        let found = scratch_of(&kind, child.id());
        if found
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".parquet.tmp"))
        {
            break found;
        }
        assert!(child.try_wait().unwrap().is_none(), "the part finished");
        assert!(start.elapsed() < Duration::from_secs(120), "no part file");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let names: Vec<String> = scratch
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with(".exec-00000-"), "{names:?}");
    assert!(names[1].starts_with("part-00000."), "{names:?}");

    // The next run (a collect, refused: every part is missing) removes it first.
    let mut swept = 0;
    let err = rrra_runner::run_with(
        &p,
        &data,
        Executor::Collect,
        &Resources::default(),
        &Silent,
        &mut |e| {
            if let Event::SweptParts(n) = e {
                swept = n;
            }
        },
    )
    .unwrap_err();
    assert!(matches!(err, RunError::PartsMissing { .. }), "{err}");
    assert_eq!(swept, 2);
    for f in &scratch {
        assert!(!f.exists(), "{} was left", f.display());
    }
    assert!(planned.tasks[0].is_file(), "the task file was removed");
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn the_sweep_removes_scratch_of_dead_processes_of_this_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let host = scratch_host();
    let (dead, live) = (dead_pid(), std::process::id());
    // Ended but not reaped yet (its parent, this test, has not waited): gone too.
    let mut zombie = Command::new("true").spawn().unwrap();
    let stat = format!("/proc/{}/stat", zombie.id());
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let work = dir.path().join("encode.bert/.work-0123456789abcdef0123");
    let parts = work.join("parts/embeddings");
    let task = task_dir(&work, 2);
    for d in [&parts, &task] {
        std::fs::create_dir_all(d).unwrap();
    }
    let swept = [
        work.join(format!(".exec-00002-{host}-{dead}-0")),
        parts.join(format!("part-00002.{host}-{dead}-1.parquet.tmp")),
        parts.join(format!("part-00003.{host}-{dead}-2.parquet")),
        task.join(format!("done.{host}-{dead}-3.tmp")),
        work.join(format!(".exec-00003-{host}-{}-0", zombie.id())),
    ];
    let kept = [
        // A live process's scratch, another host's, finished parts and task files,
        // and scratch outside a work folder (the cache's own sweep handles that).
        work.join(format!(".exec-00001-{host}-{live}-0")),
        work.join(format!(".exec-00001-{host}x-{dead}-0")),
        parts.join(format!("part-00001.other-{dead}-1.parquet.tmp")),
        parts.join("part-00000.parquet"),
        parts.join("layout.json"),
        task.join("task.json"),
        dir.path()
            .join(format!("encode.bert/.exec-00002-{host}-{dead}-0")),
    ];
    for p in swept.iter().chain(&kept) {
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".exec-")
        {
            std::fs::create_dir_all(p.join("inner")).unwrap();
        } else {
            std::fs::write(p, b"x").unwrap();
        }
    }
    assert_eq!(sweep_scratch(dir.path()).unwrap(), swept.len());
    for p in &swept {
        assert!(!p.exists(), "{} was left", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} was removed", p.display());
    }
    assert_eq!(sweep_scratch(dir.path()).unwrap(), 0);
    zombie.wait().unwrap();
}
