//! The manifest written next to a stage's outputs: what made them (kind, version, params,
//! seed, input and source hashes: the stage config) and what they are (per output: kind,
//! schema version, rows, bytes, blake3, and a size/mtime stamp).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::schema::ArtifactKind;
use crate::stage::StageReport;
use crate::{Error, Result};

/// Version of the manifest layout itself.
pub const MANIFEST_FORMAT: u32 = 1;
/// File name of the manifest inside an output directory.
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputEntry {
    pub file: String,
    pub kind: ArtifactKind,
    pub schema_version: u32,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
    /// [`crate::artifact::stamp_path`] of the output when its hash was taken: a cached
    /// re-run compares it (a `stat`, no read) and re-hashes only when it differs. Absent in
    /// manifests of older runs, which are then re-hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub stage_id: String,
    pub kind: String,
    pub kind_version: u32,
    pub cache_key: String,
    pub params: serde_json::Value,
    pub seed: Option<u64>,
    /// Input port → blake3 of the artifact connected to it.
    pub inputs: BTreeMap<String, String>,
    /// Source file (as named in params) → blake3 of its bytes.
    pub sources: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, OutputEntry>,
    pub report: StageReport,
    pub elapsed_s: f64,
    pub created_unix: u64,
    pub rrra_version: String,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(path, format!("bad manifest: {e}")))
    }

    /// Writes the manifest (temp file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("manifest serialises");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}
