//! The task contract: one `task.json` per part of a split stage, so that other processes
//! (a Slurm job array, a Kubernetes Indexed Job, Ray tasks) compute the parts and the
//! runner merges them. A task names everything the part needs: the stage (id, kind,
//! version, params as written, seed, cache key), its input artifacts, the part (index, unit
//! range, part file) and the resources it asks for. [`exec_part`] runs the unchanged stage
//! code on that part alone ([`rrra_common::parts::Mode::Only`]): the part file is written to
//! a file of its own and renamed into place, then `done.json` is written last. Running a
//! task twice, or twice at once, is harmless.
//!
//! Files: `<cache>/<kind>/.work-<key>/tasks/part-NNNNN/{task.json,done.json}`; the plan's
//! index, `<cache>/pipelines/<pipeline>.tasks`, lists the task files not done, one a line
//! (line `i` is array index `i`). A killed `exec-part` leaves scratch named for its host
//! and pid in the work folder; [`sweep_scratch`] removes it once that process is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rrra_common::parts::{Mode, scratch_host, scratch_tag, scratch_tag_pid, with_mode};
use rrra_common::progress::Progress;
use rrra_common::stage::StageContext;
use serde::{Deserialize, Serialize};

/// The format of `task.json`; a task of another format is refused.
pub const TASK_FORMAT: u32 = 1;

/// What a task asks of the machine that runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores.
    pub cpus: u32,
    /// GPUs (a scheduler gives each task its own, e.g. Ray's `CUDA_VISIBLE_DEVICES`).
    pub gpus: u32,
    /// Memory in MiB, when known.
    pub memory_mb: Option<u64>,
}

/// One part of a split stage, as `task.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// [`TASK_FORMAT`].
    pub format: u32,
    /// The pipeline's name and the stage's id in it.
    pub pipeline: String,
    pub stage_id: String,
    /// The stage kind and its implementation version (a build of another version refuses
    /// the task).
    pub kind: String,
    pub version: u32,
    /// The cache key of the entry the parts make up.
    pub cache_key: String,
    /// The params as written in the pipeline (part sizes included).
    pub params: serde_json::Value,
    /// The pipeline seed.
    pub seed: u64,
    /// Input port → artifact file.
    pub inputs: BTreeMap<String, PathBuf>,
    /// The folder relative paths in params resolve against.
    pub base_dir: PathBuf,
    /// The cache root (shared models live under it).
    pub cache_dir: PathBuf,
    /// The cache entry's work folder, which holds the parts.
    pub work_dir: PathBuf,
    /// The part: index, count, unit and the units `[start, end)` it covers.
    pub part: usize,
    pub parts: usize,
    pub unit: String,
    pub start: u64,
    pub end: u64,
    /// The part file it writes.
    pub output: PathBuf,
    /// The marker written after the part file.
    pub done: PathBuf,
    /// What it asks of the machine.
    pub resources: Resources,
}

/// What `done.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneMarker {
    /// The part and its file, with the file's size and blake3.
    pub part: usize,
    pub output: PathBuf,
    pub bytes: u64,
    pub blake3: String,
    /// The host and process that computed it.
    pub host: String,
    pub pid: u32,
    /// Seconds from the stage's start (model loading included) to the part file.
    pub elapsed_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("task {}: {error}", path.display())]
    Stage {
        path: PathBuf,
        error: rrra_common::Error,
    },
    #[error("{0}")]
    Index(String),
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> TaskError {
    TaskError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Writes `bytes` to `path` through a temp file of this process, renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TaskError> {
    let tmp = path.with_extension(format!("{}.tmp", scratch_tag()));
    std::fs::write(&tmp, bytes).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

/// The folder of part `i`'s task under a work folder.
pub fn task_dir(work_dir: &Path, part: usize) -> PathBuf {
    work_dir.join("tasks").join(format!("part-{part:05}"))
}

/// The index file of `pipeline`'s planned tasks under the cache root.
pub fn index_path(cache_root: &Path, pipeline: &str) -> PathBuf {
    cache_root
        .join("pipelines")
        .join(format!("{pipeline}.tasks"))
}

impl Task {
    /// Reads and checks a `task.json`.
    pub fn read(path: &Path) -> Result<Task, TaskError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let task: Task = serde_json::from_str(&text)
            .map_err(|e| file_err(path, format!("not a task file: {e}")))?;
        if task.format != TASK_FORMAT {
            return Err(file_err(
                path,
                format!(
                    "task format {} (this build reads format {TASK_FORMAT})",
                    task.format
                ),
            ));
        }
        Ok(task)
    }

    /// Writes the task to `<task_dir>/task.json` (temp file, then rename); returns its path.
    pub fn write(&self) -> Result<PathBuf, TaskError> {
        let dir = self.done.parent().expect("done.json has a folder");
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let path = dir.join("task.json");
        let json = serde_json::to_vec_pretty(self).expect("a task serialises");
        write_atomic(&path, &json)?;
        Ok(path)
    }
}

/// What [`exec_part`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executed {
    /// It computed the part.
    Computed,
    /// The part was done already (its `done.json` and part file exist).
    AlreadyDone,
}

/// Runs the task in `path`: the stage's code on its part only, then `done.json`.
pub fn exec_part(path: &Path, progress: &dyn Progress) -> Result<Executed, TaskError> {
    let task = Task::read(path)?;
    if task.done.is_file() && task.output.is_file() {
        return Ok(Executed::AlreadyDone);
    }
    let stage = crate::registry::lookup(&task.kind)
        .ok_or_else(|| file_err(path, format!("unknown stage kind {:?}", task.kind)))?;
    if stage.version() != task.version {
        return Err(file_err(
            path,
            format!(
                "{} is version {} in this build, the task was planned with version {}",
                task.kind,
                stage.version(),
                task.version
            ),
        ));
    }
    let prepared = stage
        .prepare(&task.params)
        .map_err(|e| file_err(path, format!("params: {}", e.message)))?;
    let start = Instant::now();
    // The stage writes nothing to its output folder before its merge, which a part run
    // never reaches; the folder is this process's own and removed afterwards.
    let out_dir = task
        .work_dir
        .join(format!(".exec-{:05}-{}", task.part, scratch_tag()));
    std::fs::create_dir_all(&out_dir).map_err(|e| file_err(&out_dir, e))?;
    let ctx = StageContext {
        inputs: task.inputs.clone(),
        out_dir: out_dir.clone(),
        base_dir: task.base_dir.clone(),
        cache_dir: task.cache_dir.clone(),
        work_dir: task.work_dir.clone(),
        seed: task.seed,
        progress,
    };
    let result = with_mode(Mode::Only(task.part), || prepared.run(&ctx));
    let _ = std::fs::remove_dir_all(&out_dir);
    let stage_err = |error| TaskError::Stage {
        path: path.to_path_buf(),
        error,
    };
    match result {
        Err(rrra_common::Error::Deferred(split)) => {
            if split.file(task.part) != task.output || !task.output.is_file() {
                return Err(file_err(
                    path,
                    format!(
                        "the stage wrote its parts to {}, not {}",
                        split.dir.display(),
                        task.output.display()
                    ),
                ));
            }
        }
        Err(e) => return Err(stage_err(e)),
        Ok(_) => {
            return Err(file_err(
                path,
                "the stage ran unsplit (its params set no part size)",
            ));
        }
    }
    let marker = DoneMarker {
        part: task.part,
        output: task.output.clone(),
        bytes: std::fs::metadata(&task.output)
            .map_err(|e| file_err(&task.output, e))?
            .len(),
        blake3: rrra_common::artifact::hash_file(&task.output).map_err(stage_err)?,
        host: crate::cache::host_name(),
        pid: std::process::id(),
        elapsed_s: start.elapsed().as_secs_f64(),
    };
    write_atomic(
        &task.done,
        &serde_json::to_vec_pretty(&marker).expect("a marker serialises"),
    )?;
    Ok(Executed::Computed)
}

/// The array index of this process from the scheduler's variable (`SLURM_ARRAY_TASK_ID`,
/// else `JOB_COMPLETION_INDEX`), read through `var`.
pub fn array_index(var: impl Fn(&str) -> Option<String>) -> Result<usize, TaskError> {
    for name in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Some(value) = var(name) {
            return value
                .trim()
                .parse()
                .map_err(|_| TaskError::Index(format!("{name}={value:?} is not an array index")));
        }
    }
    Err(TaskError::Index(
        "neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set".into(),
    ))
}

/// The task file on line `index` (0-based) of the plan's index file.
pub fn task_at(index_file: &Path, index: usize) -> Result<PathBuf, TaskError> {
    let text = std::fs::read_to_string(index_file).map_err(|e| file_err(index_file, e))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.get(index).map(PathBuf::from).ok_or_else(|| {
        file_err(
            index_file,
            format!("array index {index} is past its {} tasks", lines.len()),
        )
    })
}

/// Writes `index` listing `tasks` (temp file, then rename).
pub fn write_index(index: &Path, tasks: &[PathBuf]) -> Result<(), TaskError> {
    let dir = index.parent().expect("the index has a folder");
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let mut text = String::new();
    for t in tasks {
        text.push_str(&t.to_string_lossy());
        text.push('\n');
    }
    write_atomic(index, text.as_bytes())
}

/// The process that owns `name` when it is scratch an `exec-part` of host `host` writes
/// (each carries a [`scratch_tag`] `<host>-<pid>-<n>`): `.exec-NNNNN-<tag>` (its output
/// folder), `part-NNNNN.<tag>.parquet[.tmp]` (its part file, being written) and
/// `<stem>.<tag>.tmp` (a task file or marker, being written).
fn scratch_pid(name: &str, host: &str) -> Option<u32> {
    let tag_pid = |tag: &str| scratch_tag_pid(tag, host);
    if let Some(rest) = name.strip_prefix(".exec-") {
        let (part, tag) = rest.split_once('-')?;
        part.parse::<usize>().ok()?;
        return tag_pid(tag);
    }
    name.split('.').find_map(tag_pid)
}

/// Removes the scratch of `exec-part`s of this host whose process is gone (killed, or its
/// machine's task was), found in the work folders `<cache_root>/<kind>/.work-<key>/`; the
/// scratch of a live process, or of another host, stays. Returns how many files and
/// folders it removed.
pub fn sweep_scratch(cache_root: &Path) -> std::io::Result<usize> {
    let host = scratch_host();
    let mut removed = 0;
    let Ok(kinds) = std::fs::read_dir(cache_root) else {
        return Ok(0);
    };
    for kind in kinds.flatten() {
        let Ok(entries) = std::fs::read_dir(kind.path()) else {
            continue;
        };
        for work in entries.flatten() {
            if work.file_name().to_string_lossy().starts_with(".work-") {
                // The work folder, its `parts/<name>/` and `tasks/part-NNNNN/` folders.
                removed += sweep_dir(&work.path(), &host, 3)?;
            }
        }
    }
    Ok(removed)
}

fn sweep_dir(dir: &Path, host: &str, depth: usize) -> std::io::Result<usize> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        match scratch_pid(&e.file_name().to_string_lossy(), host) {
            Some(pid) if !crate::cache::process_alive(pid) => {
                let gone = if is_dir {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match gone {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            None if is_dir && depth > 1 => removed += sweep_dir(&path, host, depth - 1)?,
            _ => {}
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_array_index_comes_from_slurm_or_kubernetes_and_is_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            array_index(env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap(),
            3
        );
        assert_eq!(
            array_index(env(&[("JOB_COMPLETION_INDEX", "0")])).unwrap(),
            0
        );
        let err = array_index(env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(
            err.to_string().contains("SLURM_ARRAY_TASK_ID=\"x\""),
            "{err}"
        );
        assert!(array_index(env(&[])).is_err());

        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("p.tasks");
        write_index(
            &index,
            &[PathBuf::from("/a/task.json"), "/b/task.json".into()],
        )
        .unwrap();
        assert_eq!(task_at(&index, 1).unwrap(), Path::new("/b/task.json"));
        let err = task_at(&index, 2).unwrap_err().to_string();
        assert!(err.contains("past its 2 tasks"), "{err}");
    }
}
