//! Executes a validated pipeline against the cache: each stage in topological order is
//! either found Fresh in the cache and skipped, or computed into a scratch directory that
//! is renamed into the cache only once every output and the manifest are written. A run
//! killed at any moment therefore resumes from the last completed stage.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rrra_common::artifact::{artifact_rows, hash_path};
use rrra_common::manifest::{MANIFEST_FILE, MANIFEST_FORMAT, Manifest, OutputEntry};
use rrra_common::progress::Progress;
use rrra_common::stage::{StageContext, output_path};

use crate::cache::{Cache, Entry, KeyParts};
use crate::pipeline::{Pipeline, StageNode};

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
    #[error("another rrra run holds the cache lock {}", .0.display())]
    Locked(PathBuf),
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
    Cached {
        id: &'a str,
        kind: &'a str,
    },
    /// A cache entry was found damaged and is being recomputed.
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
        let hash = hash_path(&path).map_err(|error| RunError::Stage {
            id: node.id.clone(),
            kind: node.stage.kind(),
            error,
        })?;
        sources.insert(s.to_string_lossy().into_owned(), hash);
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
pub fn run(
    p: &Pipeline,
    data_dir: &Path,
    progress: &dyn Progress,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Done>, RunError> {
    let cache = Cache::new(data_dir);
    std::fs::create_dir_all(cache.root()).map_err(io(cache.root()))?;
    let lock_path = cache.root().join(".lock");
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    lock.try_lock()
        .map_err(|_| RunError::Locked(lock_path.clone()))?;
    let swept = cache.sweep_temp().map_err(io(cache.root()))?;
    if swept > 0 {
        on(Event::Swept(swept));
    }

    let mut done: Vec<Option<Done>> = Vec::with_capacity(p.stages.len());
    for node in &p.stages {
        let (key, inputs, sources) = key_of(p, node, &done)?.expect("inputs run first");
        let kind = node.stage.kind();
        let dir = cache.entry_dir(kind, &key);
        match cache.check(kind, &key) {
            Entry::Fresh(manifest) => {
                on(Event::Cached { id: &node.id, kind });
                cache
                    .record(&p.name, &node.id, &key)
                    .map_err(io(cache.root()))?;
                done.push(Some(Done {
                    id: node.id.clone(),
                    kind,
                    ran: false,
                    dir,
                    manifest: *manifest,
                }));
                continue;
            }
            Entry::Corrupt(reason) => {
                on(Event::Damaged {
                    id: &node.id,
                    reason,
                });
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            Entry::Missing => {}
        }
        on(Event::Started { id: &node.id, kind });
        let manifest = execute(p, node, &cache, &key, inputs, sources, &done, progress)?;
        on(Event::Finished {
            id: &node.id,
            kind,
            manifest: &manifest,
        });
        cache
            .record(&p.name, &node.id, &key)
            .map_err(io(cache.root()))?;
        done.push(Some(Done {
            id: node.id.clone(),
            kind,
            ran: true,
            dir,
            manifest,
        }));
    }
    drop(lock);
    Ok(done
        .into_iter()
        .map(|d| d.expect("every stage done"))
        .collect())
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
    let stage_err = |error| RunError::Stage {
        id: node.id.clone(),
        kind,
        error,
    };
    let tmp = cache.temp_dir(kind, key);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let work = cache.work_dir(kind, key);
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let ctx = StageContext {
        inputs: node
            .inputs
            .iter()
            .map(|e| {
                let up = done[e.from_stage].as_ref().expect("inputs run first");
                let file = &up.manifest.outputs[&e.from_port].file;
                (e.port.clone(), up.dir.join(file))
            })
            .collect(),
        out_dir: tmp.clone(),
        work_dir: work.clone(),
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
        let file = output_path(&tmp, port);
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
    };
    manifest
        .write(&tmp.join(MANIFEST_FILE))
        .map_err(stage_err)?;
    let dir = cache.entry_dir(kind, key);
    std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
    std::fs::remove_dir_all(&work).map_err(io(&work))?;
    Ok(manifest)
}

/// The freshness of every stage, in the pipeline's order, with its key when computable.
pub fn status(p: &Pipeline, data_dir: &Path) -> Result<Vec<(State, Option<String>)>, RunError> {
    let cache = Cache::new(data_dir);
    let last = cache.last_keys(&p.name);
    let mut done: Vec<Option<Done>> = Vec::with_capacity(p.stages.len());
    let mut states = Vec::with_capacity(p.stages.len());
    for node in &p.stages {
        let key = key_of(p, node, &done)?.map(|(k, ..)| k);
        let fresh = key
            .as_deref()
            .and_then(|k| match cache.check(node.stage.kind(), k) {
                Entry::Fresh(m) => Some(*m),
                _ => None,
            });
        let state = match (&fresh, last.contains_key(&node.id)) {
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
        states.push((state, key));
    }
    Ok(states)
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
