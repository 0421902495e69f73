//! The artifact cache. A stage's outputs live in `<data_dir>/cache/<kind>/<key>/` with a
//! manifest. The key is a blake3 hash over a versioned, canonical JSON of the stage kind,
//! its implementation version, its params, the seed (for seeded stages), the hashes of its
//! input artifacts and of its source files: stable across runs, machines and Rust versions
//! (no std `Hash`). An entry is [`Entry::Fresh`] only if every output file still matches
//! its manifest: by default its size and modification time ([`Check::Quick`], a `stat`
//! per file, so a cached re-run costs no reading however large the artifacts), re-hashing
//! a file fully only when those changed; under [`Check::Full`] every output is re-hashed.
//!
//! A results archive ([`Cache::archive`], `cargo xtask archive`) has the same layout and
//! keeps every entry's manifest with only its metrics files, so results can be committed
//! and reported after the cache is gone ([`Check::Kept`]).
//!
//! Scratch folders carry the host and the process id (`.tmp-<key>-<host>-<pid>`): two
//! runners never write into the same one, and [`Cache::sweep_temp`] removes only those of
//! this host whose process is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rrra_common::artifact::{hash_path, stamp_path};
use rrra_common::manifest::{MANIFEST_FILE, Manifest};
use rrra_common::schema::ArtifactKind;
use serde_json::Value;

/// Bump to invalidate every cache entry (a change of key layout or manifest meaning).
pub const CACHE_FORMAT: u32 = 1;

/// Hex digits of the key used in directory names (80 bits).
const KEY_DIGITS: usize = 20;

/// Serialises JSON with object keys sorted at every level, whatever map type serde_json
/// was built with.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<_, _> = map.iter().collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// What goes into a cache key.
pub struct KeyParts<'a> {
    pub kind: &'a str,
    pub version: u32,
    pub params: &'a Value,
    pub seed: Option<u64>,
    pub inputs: &'a BTreeMap<String, String>,
    pub sources: &'a BTreeMap<String, String>,
}

impl KeyParts<'_> {
    pub fn key(&self) -> String {
        let doc = serde_json::json!({
            "cache_format": CACHE_FORMAT,
            "kind": self.kind,
            "version": self.version,
            "params": self.params,
            "seed": self.seed,
            "inputs": self.inputs,
            "sources": self.sources,
        });
        let hash = blake3::hash(canonical_json(&doc).as_bytes()).to_hex();
        hash[..KEY_DIGITS].to_string()
    }
}

/// The cache under one data directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// How much of an entry [`Cache::check`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Size and mtime of each output against its manifest; a file whose stamp changed (or
    /// a manifest without stamps) is re-hashed.
    Quick,
    /// Every output re-hashed against its manifest hash.
    Full,
    /// As [`Check::Quick`] for the outputs present; an output left out of the entry is not
    /// damage. For results archives ([`Cache::archive`]), which keep every entry's manifest
    /// but only its metrics files.
    Kept,
}

/// What [`Cache::archive`] did with one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Archived {
    /// The archive already held the entry; nothing was copied.
    pub present: bool,
    /// Output files copied, and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// Outputs left out: all but metrics, and metrics over the size limit.
    pub left_out: usize,
}

/// The state of one cache entry.
#[derive(Debug)]
pub enum Entry {
    /// Present, and every output matches its manifest.
    Fresh(Box<Manifest>),
    /// Present but damaged (manifest missing or unreadable, a file missing or changed); it
    /// must be recomputed. The message names the entry's path and what is wrong.
    Corrupt(String),
    Missing,
}

impl Cache {
    pub fn new(data_dir: &Path) -> Self {
        Cache {
            root: data_dir.join("cache"),
        }
    }

    /// A cache laid out at `root` itself (a results archive).
    pub fn at(root: &Path) -> Self {
        Cache {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn entry_dir(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// A directory kept across interrupted runs of one key (training checkpoints); the
    /// runner removes it when the entry is complete. [`Cache::sweep_temp`] leaves it alone.
    pub fn work_dir(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(format!(".work-{key}"))
    }

    /// A scratch directory for a stage being computed by this process; renamed to
    /// [`Cache::entry_dir`]. Its name carries the host and the process id.
    pub fn temp_dir(&self, kind: &str, key: &str) -> PathBuf {
        self.root
            .join(kind)
            .join(format!(".tmp-{key}-{}-{}", host_name(), std::process::id()))
    }

    /// Checks the entry `kind/key` (see [`Check`]).
    pub fn check(&self, kind: &str, key: &str, how: Check) -> Entry {
        let dir = self.entry_dir(kind, key);
        let manifest_path = dir.join(MANIFEST_FILE);
        if !dir.exists() {
            return Entry::Missing;
        }
        let damaged = |what: String| Entry::Corrupt(format!("{}: {what}", dir.display()));
        let manifest = match Manifest::read(&manifest_path) {
            Ok(m) => m,
            Err(e) if !manifest_path.exists() => {
                return damaged(format!("{MANIFEST_FILE} is missing ({e})"));
            }
            Err(e) => return damaged(e.to_string()),
        };
        if manifest.cache_key != key {
            return damaged(format!("{MANIFEST_FILE} is for key {}", manifest.cache_key));
        }
        for (port, out) in &manifest.outputs {
            let file = dir.join(&out.file);
            if !file.exists() {
                if how == Check::Kept {
                    continue;
                }
                return damaged(format!("output {port} ({}) is missing", out.file));
            }
            if how != Check::Full && out.stamp.is_some() && stamp_path(&file).ok() == out.stamp {
                continue;
            }
            match hash_path(&file) {
                Ok(h) if h == out.blake3 => {}
                Ok(_) => {
                    return damaged(format!(
                        "output {port} ({}) does not match its hash",
                        out.file
                    ));
                }
                Err(e) => return damaged(e.to_string()),
            }
        }
        Entry::Fresh(Box::new(manifest))
    }

    /// Re-records the stamps of an entry whose outputs were just re-hashed intact (after a
    /// copy or `touch`), so that the next quick check is a `stat` again. Best effort: a
    /// read-only cache keeps its old stamps.
    pub fn restamp(&self, kind: &str, key: &str, manifest: &Manifest) {
        let dir = self.entry_dir(kind, key);
        let mut updated = manifest.clone();
        let mut changed = false;
        for out in updated.outputs.values_mut() {
            let stamp = stamp_path(&dir.join(&out.file)).ok();
            if stamp.is_some() && stamp != out.stamp {
                out.stamp = stamp;
                changed = true;
            }
        }
        if changed {
            let _ = updated.write(&dir.join(MANIFEST_FILE));
        }
    }

    /// Copies entry `kind/key` (whose manifest is `manifest`) into the results archive `to`,
    /// in the same layout: the manifest, and each `metrics` output of at most `max_bytes`
    /// (with its modification time, so its stamp still holds). The other outputs (the
    /// data, embeddings, runs, models: large, and the data not ours to publish) are left
    /// out; the manifest keeps their hashes, so the keys of the stages they feed still
    /// resolve there ([`Check::Kept`]). Written to a scratch folder, then renamed; an entry
    /// the archive already holds is left as it is.
    pub fn archive(
        &self,
        kind: &str,
        key: &str,
        manifest: &Manifest,
        to: &Cache,
        max_bytes: u64,
    ) -> std::io::Result<Archived> {
        let dest = to.entry_dir(kind, key);
        if dest.join(MANIFEST_FILE).exists() {
            return Ok(Archived {
                present: true,
                ..Archived::default()
            });
        }
        let from = self.entry_dir(kind, key);
        let scratch = to.temp_dir(kind, key);
        std::fs::create_dir_all(&scratch)?;
        let mut done = Archived::default();
        let copied = (|| {
            for out in manifest.outputs.values() {
                let src = from.join(&out.file);
                let meta = std::fs::metadata(&src)?;
                let metrics = out.kind == ArtifactKind::Metrics && meta.is_file();
                if !metrics || meta.len() > max_bytes {
                    done.left_out += 1;
                    continue;
                }
                let dst = scratch.join(&out.file);
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::copy(&src, &dst)?;
                std::fs::File::options()
                    .write(true)
                    .open(&dst)?
                    .set_modified(meta.modified()?)?;
                done.files += 1;
                done.bytes += meta.len();
            }
            manifest
                .write(&scratch.join(MANIFEST_FILE))
                .map_err(std::io::Error::other)?;
            if dest.exists() {
                std::fs::remove_dir_all(&dest)?;
            }
            std::fs::rename(&scratch, &dest)
        })();
        if copied.is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        copied.map(|()| done)
    }

    /// Removes scratch directories of interrupted runs of this host (those whose process
    /// is gone); scratch of other hosts, or of a live process, is left alone.
    pub fn sweep_temp(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        let Ok(kinds) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let host = host_name();
        for kind in kinds.flatten() {
            let Ok(entries) = std::fs::read_dir(kind.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(owner) = scratch_owner(&name)
                    && owner.host.is_none_or(|h| h == host)
                    && !process_alive(owner.pid)
                {
                    std::fs::remove_dir_all(e.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn state_file(&self, pipeline: &str) -> PathBuf {
        self.root.join("pipelines").join(format!("{pipeline}.json"))
    }

    /// The last completed key of each stage id of `pipeline` (for Stale vs Missing).
    pub fn last_keys(&self, pipeline: &str) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.state_file(pipeline))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Records that stage `id` of `pipeline` completed with `key`.
    pub fn record(&self, pipeline: &str, id: &str, key: &str) -> std::io::Result<()> {
        let mut keys = self.last_keys(pipeline);
        keys.insert(id.to_string(), key.to_string());
        let path = self.state_file(pipeline);
        std::fs::create_dir_all(path.parent().expect("state file has a parent"))?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_string_pretty(&keys)?)?;
        std::fs::rename(tmp, path)
    }
}

/// The host and process that own a scratch folder `.tmp-<key>-<host>-<pid>` (`host` is
/// `None` for the older `.tmp-<key>-<pid>` names, which are taken as this host's).
struct ScratchOwner<'a> {
    host: Option<&'a str>,
    pid: u32,
}

fn scratch_owner(name: &str) -> Option<ScratchOwner<'_>> {
    let rest = name.strip_prefix(".tmp-")?;
    let (key, owner) = rest.split_once('-')?;
    if key.len() != KEY_DIGITS {
        return None;
    }
    match owner.rsplit_once('-') {
        Some((host, pid)) => Some(ScratchOwner {
            host: Some(host),
            pid: pid.parse().ok()?,
        }),
        None => Some(ScratchOwner {
            host: None,
            pid: owner.parse().ok()?,
        }),
    }
}

/// This machine's name as used in scratch folder names: `[A-Za-z0-9.]`, other characters
/// replaced by `_` (so the name never holds the `-` that separates it from the pid).
pub fn host_name() -> String {
    rrra_common::parts::host_label(&['.'])
}

/// Whether process `pid` of this host is running (shared with the part scratch sweeps; the
/// cache lock makes the non-Linux answer, every other process gone, safe here).
pub(crate) use rrra_common::parts::process_alive;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = serde_json::json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": "s"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"s","z":[1,{"x":3,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn scratch_names_carry_host_and_pid_and_only_dead_local_ones_are_swept() {
        let data = tempfile::tempdir().unwrap();
        let cache = Cache::new(data.path());
        let key = "0123456789abcdef0123";
        let mine = cache.temp_dir("retrieve.bm25", key);
        let name = mine.file_name().unwrap().to_string_lossy().into_owned();
        let owner = scratch_owner(&name).unwrap();
        assert_eq!(owner.host, Some(host_name().as_str()));
        assert_eq!(owner.pid, std::process::id());
        // A process that has exited: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let kind = cache.root().join("retrieve.bm25");
        let host = host_name();
        let names = [
            format!(".tmp-{key}-{host}-{dead}"), // this host, dead: swept
            format!(".tmp-{key}-{dead}"),        // older name, dead: swept
            format!(".tmp-{key}-{host}-{}", std::process::id()), // live: kept
            format!(".tmp-{key}-other.host-{dead}"), // another host: kept
            format!(".work-{key}"),              // checkpoints: kept
        ];
        for n in &names {
            std::fs::create_dir_all(kind.join(n)).unwrap();
        }
        assert_eq!(cache.sweep_temp().unwrap(), 2);
        let left: Vec<bool> = names.iter().map(|n| kind.join(n).exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
    }

    #[test]
    fn key_changes_with_each_part_and_only_then() {
        let params = serde_json::json!({"k1": 0.9});
        let inputs: BTreeMap<String, String> = [("corpus".into(), "abc".into())].into();
        let sources = BTreeMap::new();
        let base = KeyParts {
            kind: "retrieve.bm25",
            version: 1,
            params: &params,
            seed: None,
            inputs: &inputs,
            sources: &sources,
        };
        let key = base.key();
        assert_eq!(key, KeyParts { ..base }.key());
        assert_eq!(key.len(), KEY_DIGITS);
        let other = serde_json::json!({"k1": 1.2});
        let changed = [
            KeyParts { version: 2, ..base }.key(),
            KeyParts {
                params: &other,
                ..base
            }
            .key(),
            KeyParts {
                seed: Some(1),
                ..base
            }
            .key(),
            KeyParts {
                kind: "retrieve.dense",
                ..base
            }
            .key(),
        ];
        for k in changed {
            assert_ne!(k, key);
        }
    }
}
