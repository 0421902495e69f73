//! Executes a validated pipeline against the cache: each stage in topological order is
//! either found Fresh in the cache and skipped, or computed into a scratch directory that
//! is renamed into the cache only once every output and the manifest are written. A run
//! killed at any moment therefore resumes from the last completed stage. Cached entries
//! are checked by size and mtime; those a computed stage reads are re-hashed first, and a
//! damaged entry is reported with its path and recomputed.
//!
//! [`run_with`] can leave the parts of split stages to other processes:
//! [`Executor::Plan`] writes their tasks ([`crate::tasks`]) and stops before them;
//! [`Executor::Collect`] merges the parts once every one is done and goes on.
//! One run at a time holds a cache; a second waits for the lock ([`Event::Waiting`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rrra_common::artifact::{artifact_rows, hash_path, stamp_path};
use rrra_common::manifest::{Host, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, OutputEntry};
use rrra_common::parts::{Mode, Split, with_mode};
use rrra_common::progress::Progress;
use rrra_common::stage::{StageContext, output_path};

use crate::cache::{Archived, Cache, Check, Entry, KeyParts};
use crate::pipeline::{Pipeline, StageNode};
use crate::tasks::Resources;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    // The cause is part of the message and not a `source`, so that a printed error chain
    // (`{:#}`) does not repeat it.
    #[error("stage {id:?} ({kind}): {error}")]
    Stage {
        id: String,
        kind: &'static str,
        error: rrra_common::Error,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot take the cache lock {}", .0.display())]
    Locked(PathBuf),
    #[error("stage {id:?}: part(s) {} of {parts} not done (no part file in {}); run their tasks (listed in {}) and collect again", list(.missing), dir.display(), index.display())]
    PartsMissing {
        id: String,
        missing: Vec<usize>,
        parts: usize,
        dir: PathBuf,
        index: PathBuf,
    },
    #[error(transparent)]
    Task(#[from] crate::tasks::TaskError),
}

/// `0, 3, 4` (at most 20 listed).
fn list(parts: &[usize]) -> String {
    let mut s: Vec<String> = parts.iter().take(20).map(usize::to_string).collect();
    if parts.len() > 20 {
        s.push(format!("... ({} in all)", parts.len()));
    }
    s.join(", ")
}

/// Where the parts of split stages are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Executor {
    /// Here, in this process (the default).
    #[default]
    Local,
    /// Elsewhere: compute every stage that needs no missing part, write the tasks of the
    /// parts not done, and stop before the stages that wait on them.
    Plan,
    /// Merge the parts of planned stages (refusing while one is not done), then go on as
    /// `Plan` does.
    Collect,
}

/// What [`run_with`] left for other processes.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The index file: one task file a line.
    pub index: PathBuf,
    /// The task files of the parts not done.
    pub tasks: Vec<PathBuf>,
    /// The stages whose parts are planned, by id.
    pub stages: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |error| RunError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What happened to one stage, reported as the run goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Scratch directories of interrupted runs were removed.
    Swept(usize),
    /// Scratch files and folders of killed part tasks (`exec-part`) were removed.
    SweptParts(usize),
    /// Another run holds the cache lock (this path); this one waits for it.
    Waiting(&'a Path),
    Cached {
        id: &'a str,
        kind: &'a str,
    },
    /// A cache entry was found damaged and is being recomputed; `reason` names the
    /// entry's path and what is wrong.
    Damaged {
        id: &'a str,
        reason: String,
    },
    Started {
        id: &'a str,
        kind: &'a str,
    },
    Finished {
        id: &'a str,
        kind: &'a str,
        manifest: &'a Manifest,
    },
    /// A split stage stopped before its merge: `missing` of its `parts` are left to other
    /// processes ([`Executor::Plan`] / [`Executor::Collect`]).
    Deferred {
        id: &'a str,
        kind: &'a str,
        missing: usize,
        parts: usize,
    },
}

/// The completed state of one stage.
#[derive(Debug, Clone)]
pub struct Done {
    pub id: String,
    pub kind: &'static str,
    /// Whether this run computed it (false: taken from the cache).
    pub ran: bool,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Freshness of a stage, as `cargo xtask status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its outputs for the current config and inputs are in the cache and intact.
    Fresh,
    /// It completed before, but its config, inputs or files changed since.
    Stale,
    /// It never completed.
    Missing,
}

/// A stage's cache key, with the input and source hashes that went into it.
type Keyed = (String, BTreeMap<String, String>, BTreeMap<String, String>);

/// Computes the cache key of `node`, given its upstream stages' manifests; `None` while an
/// input is not computed yet.
fn key_of(
    p: &Pipeline,
    node: &StageNode,
    done: &[Option<Done>],
) -> Result<Option<Keyed>, RunError> {
    key_with(p, node, done, &BTreeMap::new())
}

/// [`key_of`], with a source that is not on this machine taken to have the hash
/// `recorded` gives it (as an archived manifest recorded it), if it gives one.
fn key_with(
    p: &Pipeline,
    node: &StageNode,
    done: &[Option<Done>],
    recorded: &BTreeMap<String, String>,
) -> Result<Option<Keyed>, RunError> {
    let mut inputs = BTreeMap::new();
    for e in &node.inputs {
        let Some(up) = &done[e.from_stage] else {
            return Ok(None);
        };
        let out = &up.manifest.outputs[&e.from_port];
        inputs.insert(e.port.clone(), out.blake3.clone());
    }
    let mut sources = BTreeMap::new();
    for s in &node.prepared.sources {
        let path = p.base_dir.join(s);
        let name = s.to_string_lossy().into_owned();
        let hash = match recorded.get(&name) {
            Some(hash) if !path.exists() => hash.clone(),
            _ => hash_path(&path).map_err(|error| RunError::Stage {
                id: node.id.clone(),
                kind: node.stage.kind(),
                error,
            })?,
        };
        sources.insert(name, hash);
    }
    let key = KeyParts {
        kind: node.stage.kind(),
        version: node.stage.version(),
        params: &node.prepared.params,
        seed: node.stage.seeded().then_some(p.seed),
        inputs: &inputs,
        sources: &sources,
    }
    .key();
    Ok(Some((key, inputs, sources)))
}

/// Runs every stage of `p` whose outputs are not Fresh in the cache under `data_dir`.
///
/// A cached entry is taken after a quick check (size and mtime, see [`Check::Quick`]);
/// before a stage is computed, the entries it reads are re-hashed in full, and one found
/// damaged is reported ([`Event::Damaged`], naming its path) and recomputed first. A
/// stage that fails leaves no scratch folder behind.
pub fn run(
    p: &Pipeline,
    data_dir: &Path,
    progress: &dyn Progress,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Done>, RunError> {
    let (done, _) = run_with(
        p,
        data_dir,
        Executor::Local,
        &Resources::default(),
        progress,
        on,
    )?;
    Ok(done
        .into_iter()
        .map(|d| d.expect("every stage done"))
        .collect())
}

/// [`run`] with the parts of split stages computed by `executor`; `resources` go into
/// planned tasks (`gpus` 0 there: 1 for a stage whose `backend` param is not `cpu`).
/// Returns each stage's state (`None`: waits on planned parts) and, when parts were left
/// to other processes, what was planned.
pub fn run_with(
    p: &Pipeline,
    data_dir: &Path,
    executor: Executor,
    resources: &Resources,
    progress: &dyn Progress,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<(Vec<Option<Done>>, Option<Planned>), RunError> {
    let cache = Cache::new(data_dir);
    std::fs::create_dir_all(cache.root()).map_err(io(cache.root()))?;
    let lock_path = cache.root().join(".lock");
    // A read-only cache may still serve a fully cached run: without a lock file to take,
    // nothing can be written either, and a stage that must run fails naming its path.
    let lock = match File::create(&lock_path) {
        Ok(lock) => Some(lock),
        Err(e) if read_only(&e) => File::open(&lock_path).ok(),
        Err(e) => return Err(io(&lock_path)(e)),
    };
    if let Some(lock) = &lock
        && lock.try_lock().is_err()
    {
        on(Event::Waiting(&lock_path));
        lock.lock()
            .map_err(|_| RunError::Locked(lock_path.clone()))?;
    }
    let swept = cache.sweep_temp().map_err(io(cache.root()))?;
    if swept > 0 {
        on(Event::Swept(swept));
    }
    let swept = crate::tasks::sweep_scratch(cache.root()).map_err(io(cache.root()))?;
    if swept > 0 {
        on(Event::SweptParts(swept));
    }

    let mut runner = Runner {
        p,
        cache: &cache,
        progress,
        on,
        done: Vec::with_capacity(p.stages.len()),
        verified: Vec::with_capacity(p.stages.len()),
    };
    let mode = match executor {
        Executor::Local => Mode::Local,
        Executor::Plan | Executor::Collect => Mode::Defer,
    };
    let mut deferred: Vec<(usize, String, Split)> = Vec::new();
    for (at, node) in p.stages.iter().enumerate() {
        let Some((key, ..)) = key_of(p, node, &runner.done)? else {
            // It waits on a stage whose parts are left to other processes.
            runner.done.push(None);
            runner.verified.push(false);
            continue;
        };
        let kind = node.stage.kind();
        match cache.check(kind, &key, Check::Quick) {
            Entry::Fresh(manifest) => {
                (runner.on)(Event::Cached { id: &node.id, kind });
                cache.restamp(kind, &key, &manifest);
                record(&cache, &p.name, &node.id, &key)?;
                runner.done.push(Some(Done {
                    id: node.id.clone(),
                    kind,
                    ran: false,
                    dir: cache.entry_dir(kind, &key),
                    manifest: *manifest,
                }));
                runner.verified.push(false);
                continue;
            }
            Entry::Corrupt(reason) => runner.discard(at, &key, reason)?,
            Entry::Missing => {}
        }
        runner.done.push(None);
        runner.verified.push(false);
        match with_mode(mode, || runner.compute(at)) {
            Err(RunError::Stage {
                error: rrra_common::Error::Deferred(split),
                ..
            }) if mode == Mode::Defer => {
                (runner.on)(Event::Deferred {
                    id: &node.id,
                    kind,
                    missing: split.missing.len(),
                    parts: split.count(),
                });
                deferred.push((at, key, *split));
            }
            other => other?,
        }
    }
    let planned = if deferred.is_empty() {
        None
    } else {
        Some(plan(
            p,
            &cache,
            &runner.done,
            &deferred,
            executor,
            resources,
        )?)
    };
    drop(lock);
    Ok((runner.done, planned))
}

/// Writes the tasks of the parts not done of the `deferred` stages and the index file;
/// under [`Executor::Collect`], refuses first when a stage planned before has parts not done.
fn plan(
    p: &Pipeline,
    cache: &Cache,
    done: &[Option<Done>],
    deferred: &[(usize, String, Split)],
    executor: Executor,
    resources: &Resources,
) -> Result<Planned, RunError> {
    let root = std::path::absolute(cache.root()).map_err(io(cache.root()))?;
    let index = crate::tasks::index_path(&root, &p.name);
    if executor == Executor::Collect {
        for (at, key, split) in deferred {
            let node = &p.stages[*at];
            let work = cache.work_dir(node.stage.kind(), key);
            if work.join("tasks").is_dir() {
                return Err(RunError::PartsMissing {
                    id: node.id.clone(),
                    missing: split.missing.clone(),
                    parts: split.count(),
                    dir: split.dir.clone(),
                    index,
                });
            }
        }
    }
    let mut tasks = Vec::new();
    let mut stages = Vec::new();
    for (at, key, split) in deferred {
        let node = &p.stages[*at];
        let kind = node.stage.kind();
        let work = std::path::absolute(cache.work_dir(kind, key)).map_err(io(cache.root()))?;
        let split = Split {
            dir: std::path::absolute(&split.dir).map_err(io(&split.dir))?,
            ..split.clone()
        };
        let inputs = input_files(node, done)
            .into_iter()
            .map(|(port, f)| Ok((port, std::path::absolute(&f).map_err(io(&f))?)))
            .collect::<Result<BTreeMap<_, _>, RunError>>()?;
        let gpu = node
            .prepared
            .params
            .get("backend")
            .and_then(|b| b.as_str())
            .is_some_and(|b| b != "cpu");
        for &part in &split.missing {
            let range = split.range(part);
            let task = crate::tasks::Task {
                format: crate::tasks::TASK_FORMAT,
                pipeline: p.name.clone(),
                stage_id: node.id.clone(),
                kind: kind.to_string(),
                version: node.stage.version(),
                cache_key: key.clone(),
                params: node.prepared.raw.clone(),
                seed: p.seed,
                inputs: inputs.clone(),
                base_dir: std::path::absolute(&p.base_dir).map_err(io(&p.base_dir))?,
                cache_dir: root.clone(),
                work_dir: work.clone(),
                part,
                parts: split.count(),
                unit: split.unit.clone(),
                start: range.start,
                end: range.end,
                output: split.file(part),
                done: crate::tasks::task_dir(&work, part).join("done.json"),
                resources: Resources {
                    gpus: resources.gpus.max(u32::from(gpu)),
                    ..resources.clone()
                },
            };
            tasks.push(task.write()?);
        }
        stages.push(node.id.clone());
    }
    crate::tasks::write_index(&index, &tasks)?;
    Ok(Planned {
        index,
        tasks,
        stages,
    })
}

/// Input port → artifact file of `node`, whose inputs are done.
fn input_files(node: &StageNode, done: &[Option<Done>]) -> BTreeMap<String, PathBuf> {
    node.inputs
        .iter()
        .map(|e| {
            let up = done[e.from_stage].as_ref().expect("inputs run first");
            let file = &up.manifest.outputs[&e.from_port].file;
            (e.port.clone(), up.dir.join(file))
        })
        .collect()
}

/// Whether an I/O error says that the file system (or the folder) cannot be written.
fn read_only(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
    )
}

/// Records a completed stage in the pipeline's state file; on a read-only cache (a fully
/// cached run) there is nothing to record and no error.
fn record(cache: &Cache, pipeline: &str, id: &str, key: &str) -> Result<(), RunError> {
    match cache.record(pipeline, id, key) {
        Err(e) if read_only(&e) => Ok(()),
        other => other.map_err(io(cache.root())),
    }
}

/// The state of one `run`: stages done so far (by position) and which of their entries
/// were re-hashed in full (or computed) by this run.
struct Runner<'r> {
    p: &'r Pipeline,
    cache: &'r Cache,
    progress: &'r dyn Progress,
    on: &'r mut dyn FnMut(Event<'_>),
    done: Vec<Option<Done>>,
    verified: Vec<bool>,
}

impl Runner<'_> {
    /// Reports a damaged entry of stage `at` and removes it.
    fn discard(&mut self, at: usize, key: &str, reason: String) -> Result<(), RunError> {
        let node = &self.p.stages[at];
        (self.on)(Event::Damaged {
            id: &node.id,
            reason,
        });
        let dir = self.cache.entry_dir(node.stage.kind(), key);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// Computes stage `at` (whose entry is missing), after re-hashing the entries it reads
    /// and recomputing any found damaged.
    fn compute(&mut self, at: usize) -> Result<(), RunError> {
        let node = &self.p.stages[at];
        for e in &node.inputs {
            self.verify(e.from_stage)?;
        }
        let (key, inputs, sources) = key_of(self.p, node, &self.done)?.expect("inputs run first");
        let kind = node.stage.kind();
        (self.on)(Event::Started { id: &node.id, kind });
        let manifest = execute(
            self.p,
            node,
            self.cache,
            &key,
            inputs,
            sources,
            &self.done,
            self.progress,
        )?;
        (self.on)(Event::Finished {
            id: &node.id,
            kind,
            manifest: &manifest,
        });
        record(self.cache, &self.p.name, &node.id, &key)?;
        self.done[at] = Some(Done {
            id: node.id.clone(),
            kind,
            ran: true,
            dir: self.cache.entry_dir(kind, &key),
            manifest,
        });
        self.verified[at] = true;
        Ok(())
    }

    /// Re-hashes the entry of completed stage `at` once per run; recomputes it if damaged.
    fn verify(&mut self, at: usize) -> Result<(), RunError> {
        if self.verified[at] {
            return Ok(());
        }
        let node = &self.p.stages[at];
        let kind = node.stage.kind();
        let done = self.done[at].as_ref().expect("inputs run first");
        let key = done.manifest.cache_key.clone();
        match self.cache.check(kind, &key, Check::Full) {
            Entry::Fresh(_) => self.verified[at] = true,
            Entry::Corrupt(reason) => {
                self.discard(at, &key, reason)?;
                self.compute(at)?;
            }
            Entry::Missing => {
                let dir = self.cache.entry_dir(kind, &key);
                (self.on)(Event::Damaged {
                    id: &node.id,
                    reason: format!("{}: the entry disappeared during the run", dir.display()),
                });
                self.compute(at)?;
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn execute(
    p: &Pipeline,
    node: &StageNode,
    cache: &Cache,
    key: &str,
    inputs: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
    done: &[Option<Done>],
    progress: &dyn Progress,
) -> Result<Manifest, RunError> {
    let kind = node.stage.kind();
    let tmp = cache.temp_dir(kind, key);
    let work = cache.work_dir(kind, key);
    let result = compute_into(
        p, node, cache, key, inputs, sources, done, progress, &tmp, &work,
    );
    if result.is_err() {
        // No scratch is left behind; the work folder stays only if it holds checkpoints
        // to resume from (`remove_dir` fails on a non-empty folder).
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir(&work);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn compute_into(
    p: &Pipeline,
    node: &StageNode,
    cache: &Cache,
    key: &str,
    inputs: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
    done: &[Option<Done>],
    progress: &dyn Progress,
    tmp: &Path,
    work: &Path,
) -> Result<Manifest, RunError> {
    let kind = node.stage.kind();
    let stage_err = |error| RunError::Stage {
        id: node.id.clone(),
        kind,
        error,
    };
    std::fs::create_dir_all(tmp).map_err(io(tmp))?;
    std::fs::create_dir_all(work).map_err(io(work))?;
    let ctx = StageContext {
        inputs: input_files(node, done),
        out_dir: tmp.to_path_buf(),
        work_dir: work.to_path_buf(),
        base_dir: p.base_dir.clone(),
        cache_dir: cache.root().to_path_buf(),
        seed: p.seed,
        progress,
    };
    let start = Instant::now();
    reset_peak_rss();
    let mut report = node.prepared.run(&ctx).map_err(stage_err)?;
    let elapsed_s = start.elapsed().as_secs_f64();
    if let Some(mb) = peak_rss_mb() {
        report.metrics.insert("peak_rss_mb".into(), mb);
    }

    let mut outputs = BTreeMap::new();
    for port in node.stage.outputs() {
        let file = output_path(tmp, port);
        if !file.exists() {
            return Err(stage_err(rrra_common::Error::Invalid(format!(
                "the stage did not write its output {:?}",
                port.name
            ))));
        }
        let bytes = std::fs::metadata(&file).map_err(io(&file))?.len();
        outputs.insert(
            port.name.to_string(),
            OutputEntry {
                file: file
                    .file_name()
                    .expect("output has a name")
                    .to_string_lossy()
                    .into_owned(),
                kind: port.kind,
                schema_version: port.kind.version(),
                rows: artifact_rows(&file).map_err(stage_err)?,
                bytes,
                blake3: hash_path(&file).map_err(stage_err)?,
                stamp: Some(stamp_path(&file).map_err(stage_err)?),
            },
        );
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        stage_id: node.id.clone(),
        kind: kind.to_string(),
        kind_version: node.stage.version(),
        cache_key: key.to_string(),
        params: node.prepared.params.clone(),
        seed: node.stage.seeded().then_some(p.seed),
        inputs,
        sources,
        outputs,
        report,
        elapsed_s,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        rrra_version: env!("CARGO_PKG_VERSION").to_string(),
        host: Some(Host::detect()),
    };
    manifest
        .write(&tmp.join(MANIFEST_FILE))
        .map_err(stage_err)?;
    let dir = cache.entry_dir(kind, key);
    std::fs::rename(tmp, &dir).map_err(io(&dir))?;
    std::fs::remove_dir_all(work).map_err(io(work))?;
    Ok(manifest)
}

/// What `status` found for one stage.
#[derive(Debug, Clone)]
pub struct StageStatus {
    pub state: State,
    /// Its cache key, when its inputs are cached (else it waits on them).
    pub key: Option<String>,
    /// Why its entry was found damaged (the entry's path and what is wrong), if it was.
    pub damage: Option<String>,
}

/// The freshness of every stage, in the pipeline's order, with its key when computable
/// (a quick check: size and mtime).
pub fn status(p: &Pipeline, data_dir: &Path) -> Result<Vec<(State, Option<String>)>, RunError> {
    Ok(inspect(p, data_dir, Check::Quick)?
        .into_iter()
        .map(|s| (s.state, s.key))
        .collect())
}

/// Each stage's state and, for a damaged entry, what is damaged; `how` says whether the
/// outputs are re-hashed ([`Check::Full`]: `status --verify`). A damaged entry is Stale.
pub fn inspect(p: &Pipeline, data_dir: &Path, how: Check) -> Result<Vec<StageStatus>, RunError> {
    let cache = Cache::new(data_dir);
    let last = cache.last_keys(&p.name);
    let mut done: Vec<Option<Done>> = Vec::with_capacity(p.stages.len());
    let mut states = Vec::with_capacity(p.stages.len());
    for node in &p.stages {
        let key = key_of(p, node, &done)?.map(|(k, ..)| k);
        let mut damage = None;
        let fresh = key
            .as_deref()
            .and_then(|k| match cache.check(node.stage.kind(), k, how) {
                Entry::Fresh(m) => Some(*m),
                Entry::Corrupt(reason) => {
                    damage = Some(reason);
                    None
                }
                Entry::Missing => None,
            });
        let state = match (&fresh, last.contains_key(&node.id) || damage.is_some()) {
            (Some(_), _) => State::Fresh,
            (None, true) => State::Stale,
            (None, false) => State::Missing,
        };
        done.push(fresh.map(|manifest| Done {
            id: node.id.clone(),
            kind: node.stage.kind(),
            ran: false,
            dir: cache.entry_dir(node.stage.kind(), key.as_deref().expect("fresh has a key")),
            manifest,
        }));
        states.push(StageStatus { state, key, damage });
    }
    Ok(states)
}

/// A completed stage's entry, found by [`find`].
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Taken from the results archive (which may lack the larger outputs), not the cache.
    pub archived: bool,
}

/// Each stage's completed entry: from the cache under `data_dir` (a quick check), else the
/// results archive at `archive` ([`Cache::archive`], checked with [`Check::Kept`]), else
/// `None`. Keys chain through archived manifests as through cached ones, so a stage whose
/// inputs were left out of the archive is still found. The two may hold different chains
/// (a float stage recomputed on another CPU has other bytes, so the stages after it have
/// other keys): the pipeline is resolved cache-first and archive-first, and each stage is
/// taken from the first resolution that finds it. Each entry is then consistent with its
/// own inputs, though two stages may have been computed from different chains. A stage
/// whose source files are not on this machine takes their hashes from its archived
/// entries' manifests ([`recorded_keys`]), so a clone without the data reads the archive.
pub fn find(
    p: &Pipeline,
    data_dir: &Path,
    archive: Option<&Path>,
) -> Result<Vec<Option<Found>>, RunError> {
    let cache = (Cache::new(data_dir), Check::Quick, false);
    let Some(archive) = archive else {
        return chain(p, &[cache]);
    };
    let archive = (Cache::at(archive), Check::Kept, true);
    let cache_first = chain(p, &[cache.clone(), archive.clone()])?;
    let archive_first = chain(p, &[archive, cache])?;
    Ok(cache_first
        .into_iter()
        .zip(archive_first)
        .map(|(c, a)| c.or(a))
        .collect())
}

/// Each stage's entry in the first of `sources` (a cache, how it is checked, whether it
/// is an archive) that holds it under the key its inputs found give.
fn chain(p: &Pipeline, sources: &[(Cache, Check, bool)]) -> Result<Vec<Option<Found>>, RunError> {
    let mut done: Vec<Option<Done>> = Vec::with_capacity(p.stages.len());
    let mut archived = Vec::with_capacity(p.stages.len());
    for node in &p.stages {
        let kind = node.stage.kind();
        let keys = match key_of(p, node, &done) {
            Ok(key) => key.map(|(key, ..)| key).into_iter().collect(),
            Err(e) => match recorded_keys(p, node, &done, sources) {
                keys if keys.is_empty() => return Err(e),
                keys => keys,
            },
        };
        let hit = keys.iter().find_map(|key| {
            sources.iter().find_map(|(cache, how, from_archive)| {
                match cache.check(kind, key, *how) {
                    Entry::Fresh(manifest) => {
                        Some((cache.entry_dir(kind, key), *manifest, *from_archive))
                    }
                    _ => None,
                }
            })
        });
        archived.push(hit.as_ref().is_some_and(|(.., a)| *a));
        done.push(hit.map(|(dir, manifest, _)| Done {
            id: node.id.clone(),
            kind,
            ran: false,
            dir,
            manifest,
        }));
    }
    Ok(done
        .into_iter()
        .zip(archived)
        .map(|(d, archived)| {
            d.map(|d| Found {
                dir: d.dir,
                manifest: d.manifest,
                archived,
            })
        })
        .collect())
}

/// The keys `node` has with the source hashes that the archived entries of its kind in
/// `sources` recorded, for a stage whose source files are not on this machine (a clone
/// without the data): an entry counts when its recorded hashes give its own key, so it was
/// computed from this stage's params and inputs and from sources with those hashes.
fn recorded_keys(
    p: &Pipeline,
    node: &StageNode,
    done: &[Option<Done>],
    sources: &[(Cache, Check, bool)],
) -> Vec<String> {
    let archives = sources.iter().filter(|(.., from_archive)| *from_archive);
    let entries = archives
        .filter_map(|(cache, ..)| std::fs::read_dir(cache.root().join(node.stage.kind())).ok())
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'));
    entries
        .filter_map(|e| Manifest::read(&e.path().join(MANIFEST_FILE)).ok())
        .filter_map(|m| match key_with(p, node, done, &m.sources) {
            Ok(Some((key, ..))) if key == m.cache_key => Some(key),
            _ => None,
        })
        .collect()
}

/// Copies every stage of `p` that is complete in the cache under `data_dir` into the
/// results archive at `to` ([`Cache::archive`]: manifests, and metrics files of at most
/// `max_bytes`); returns each copied stage's id with what was done.
pub fn archive(
    p: &Pipeline,
    data_dir: &Path,
    to: &Path,
    max_bytes: u64,
) -> Result<Vec<(String, Archived)>, RunError> {
    let cache = Cache::new(data_dir);
    let archive = Cache::at(to);
    let mut done = Vec::new();
    for (node, found) in p.stages.iter().zip(find(p, data_dir, None)?) {
        let Some(found) = found else { continue };
        let kind = node.stage.kind();
        let what = cache
            .archive(
                kind,
                &found.manifest.cache_key,
                &found.manifest,
                &archive,
                max_bytes,
            )
            .map_err(io(&archive.entry_dir(kind, &found.manifest.cache_key)))?;
        done.push((node.id.clone(), what));
    }
    Ok(done)
}

/// Resets the process's peak resident set size (Linux `/proc/self/clear_refs`), so that
/// [`peak_rss_mb`] after a stage measures that stage alone; a no-op elsewhere.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since the last reset, in MiB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
