//! Parts computed elsewhere: `run --executor plan` writes one task per part, a loop standing
//! in for a Slurm array runs each task from `SLURM_ARRAY_TASK_ID` and the plan's index
//! (twice for one part: harmless), `--executor collect` refuses while a part is missing and
//! then merges: `encode.bert` and `mine.dense` give the local run's blake3. And two runner
//! processes on one cache: the second waits for the first's lock, each stage is computed
//! once, and every entry verifies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rrra_common::progress::Silent;
use rrra_runner::tasks::{Executed, Resources, array_index, exec_part, task_at};
use rrra_runner::{Check, Event, Executor, Pipeline, RunError, State};

/// The model folder the integration tests share.
const MODELS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/rrra-encoder-models");

fn pipeline(dir: &Path) -> Pipeline {
    Pipeline::load(&rrra_tests::tiny_split(dir, Path::new(MODELS))).unwrap()
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
