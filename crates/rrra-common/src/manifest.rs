//! The manifest written next to a stage's outputs: what made them (kind, version, params,
//! seed, input and source hashes: the stage config) and what they are (per output: kind,
//! schema version, rows, bytes, blake3, and a size/mtime stamp), and the [`Host`] that made
//! them: float kernels are picked by the CPU's SIMD level at run time, so the same seed gives
//! the same bytes on one machine but may not on another.

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
    /// The machine the stage ran on. Absent in manifests of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
}

/// The machine a stage ran on, as far as it decides the bytes of a float result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// `std::env::consts::ARCH`, e.g. `x86_64`.
    pub arch: String,
    /// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
    pub cpu: String,
    /// The highest SIMD level detected at run time, e.g. `x86-64-v3` (AVX2, FMA) or
    /// `x86-64-v4` (AVX-512): the level the CPU kernels dispatch on.
    pub simd: String,
}

impl Host {
    /// This machine.
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(key, _)| key.trim() == "model name")
                    .map(|(_, value)| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        Self {
            arch: std::env::consts::ARCH.to_string(),
            cpu,
            simd: simd_level().to_string(),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.cpu, self.arch, self.simd)
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_level() -> &'static str {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl")
    {
        "x86-64-v4"
    } else if has!("avx2") && has!("fma") && has!("bmi2") {
        "x86-64-v3"
    } else if has!("sse4.2") && has!("popcnt") {
        "x86-64-v2"
    } else {
        "x86-64"
    }
}

#[cfg(target_arch = "aarch64")]
fn simd_level() -> &'static str {
    if std::arch::is_aarch64_feature_detected!("sve") {
        "sve"
    } else {
        "neon"
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_level() -> &'static str {
    "scalar"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(host: Option<Host>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            stage_id: "s".into(),
            kind: "k".into(),
            kind_version: 1,
            cache_key: "key".into(),
            params: serde_json::json!({}),
            seed: Some(42),
            inputs: BTreeMap::new(),
            sources: BTreeMap::new(),
            outputs: BTreeMap::new(),
            report: StageReport::default(),
            elapsed_s: 1.0,
            created_unix: 0,
            rrra_version: "0".into(),
            host,
        }
    }

    #[test]
    fn host_round_trips_and_older_manifests_read_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let host = Host::detect();
        assert_eq!(host.arch, std::env::consts::ARCH);
        assert!(!host.cpu.is_empty() && !host.simd.is_empty());
        let with = manifest(Some(host));
        with.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), with);

        let without = manifest(None);
        without.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"host\""), "{text}");
        assert_eq!(Manifest::read(&path).unwrap(), without);
    }
}
