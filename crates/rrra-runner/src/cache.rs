//! The artifact cache. A stage's outputs live in `<data_dir>/cache/<kind>/<key>/` with a
//! manifest. The key is a blake3 hash over a versioned, canonical JSON of the stage kind,
//! its implementation version, its params, the seed (for seeded stages), the hashes of its
//! input artifacts and of its source files: stable across runs, machines and Rust versions
//! (no std `Hash`). An entry is [`Entry::Fresh`] only if every output file still matches
//! the hash in its manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rrra_common::artifact::hash_path;
use rrra_common::manifest::{MANIFEST_FILE, Manifest};
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

/// The state of one cache entry.
#[derive(Debug)]
pub enum Entry {
    /// Present, and every output matches its manifest hash.
    Fresh(Box<Manifest>),
    /// Present but damaged (a file missing or changed); it must be recomputed.
    Corrupt(String),
    Missing,
}

impl Cache {
    pub fn new(data_dir: &Path) -> Self {
        Cache {
            root: data_dir.join("cache"),
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

    /// A scratch directory for a stage being computed; renamed to [`Cache::entry_dir`].
    pub fn temp_dir(&self, kind: &str, key: &str) -> PathBuf {
        self.root
            .join(kind)
            .join(format!(".tmp-{key}-{}", std::process::id()))
    }

    /// Checks the entry `kind/key`, re-hashing every output file.
    pub fn check(&self, kind: &str, key: &str) -> Entry {
        let dir = self.entry_dir(kind, key);
        let manifest_path = dir.join(MANIFEST_FILE);
        if !dir.exists() {
            return Entry::Missing;
        }
        let manifest = match Manifest::read(&manifest_path) {
            Ok(m) => m,
            Err(e) => return Entry::Corrupt(e.to_string()),
        };
        if manifest.cache_key != key {
            return Entry::Corrupt(format!("manifest is for key {}", manifest.cache_key));
        }
        for (port, out) in &manifest.outputs {
            let file = dir.join(&out.file);
            match hash_path(&file) {
                Ok(h) if h == out.blake3 => {}
                Ok(_) => return Entry::Corrupt(format!("output {port} does not match its hash")),
                Err(e) => return Entry::Corrupt(e.to_string()),
            }
        }
        Entry::Fresh(Box::new(manifest))
    }

    /// Removes scratch directories left by interrupted runs.
    pub fn sweep_temp(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        let Ok(kinds) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        for kind in kinds.flatten() {
            let Ok(entries) = std::fs::read_dir(kind.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
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
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&keys)?)?;
        std::fs::rename(tmp, path)
    }
}

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
