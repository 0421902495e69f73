//! The stage contract: a stage kind has a name, a version, typed params, named input and
//! output ports, and an execute step that reads input artifacts and writes output artifacts
//! into a directory the runner provides (and later renames into the cache).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;
use crate::schema::ArtifactKind;
use crate::{Error, Result};

/// A named, typed input or output of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub kind: ArtifactKind,
    pub optional: bool,
}

impl Port {
    pub const fn required(name: &'static str, kind: ArtifactKind) -> Self {
        Port {
            name,
            kind,
            optional: false,
        }
    }
    pub const fn optional(name: &'static str, kind: ArtifactKind) -> Self {
        Port {
            name,
            kind,
            optional: true,
        }
    }
}

/// What a stage measured while running; saved in its manifest and shown to the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// Numbers such as rows written, items/s, or evaluation results.
    pub metrics: BTreeMap<String, f64>,
    /// A table (plain text) for a person to read, printed after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Everything a stage may touch while it runs.
pub struct StageContext<'a> {
    /// Input port name → artifact file.
    pub inputs: BTreeMap<String, PathBuf>,
    /// Directory the outputs go to (a temporary directory the runner renames when done).
    pub out_dir: PathBuf,
    /// Directory relative paths in params resolve against (the pipeline file's directory).
    pub base_dir: PathBuf,
    /// The cache root, for things shared across entries (downloaded models live in
    /// `<cache_dir>/models`).
    pub cache_dir: PathBuf,
    /// A directory private to this stage's cache key that survives an interrupted run
    /// (checkpoints go here); the runner removes it once the stage completes.
    pub work_dir: PathBuf,
    /// The pipeline seed (every stage gets it; only seeded stages have it in their cache key).
    pub seed: u64,
    pub progress: &'a dyn Progress,
}

impl StageContext<'_> {
    /// The file of a required input port.
    pub fn input(&self, port: &str) -> Result<&Path> {
        self.optional_input(port)
            .ok_or_else(|| Error::Invalid(format!("input {port:?} is not connected")))
    }

    pub fn optional_input(&self, port: &str) -> Option<&Path> {
        self.inputs.get(port).map(PathBuf::as_path)
    }

    /// Where the Parquet output port `port` is written.
    pub fn output(&self, port: &str) -> PathBuf {
        output_file(&self.out_dir, port)
    }

    /// The directory a directory-kind output port (a model) is written to; created empty.
    pub fn output_dir(&self, port: &str) -> Result<PathBuf> {
        let dir = self.out_dir.join(port);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    /// A path from the params, resolved against the pipeline file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// The file name of Parquet output `port` inside a stage's output directory.
pub fn output_file(dir: &Path, port: &str) -> PathBuf {
    dir.join(format!("{port}.parquet"))
}

/// Where output `port` lives inside a stage's output directory: a Parquet file, or a
/// folder for directory kinds.
pub fn output_path(dir: &Path, port: &Port) -> PathBuf {
    if port.kind.is_directory() {
        dir.join(port.name)
    } else {
        output_file(dir, port.name)
    }
}

/// One implementation of a stage role. Implementations are chosen by the runner's closed
/// registry of kinds; a pipeline swaps one for another by changing `kind`.
pub trait Stage: Send + Sync + 'static {
    /// Parameters: deserialised from the pipeline's `params` with defaults filled in and
    /// unknown fields rejected (`#[serde(default, deny_unknown_fields)]`). Their canonical
    /// JSON form is part of the cache key.
    type Params: DeserializeOwned + Serialize + Send + Sync;
    /// The `kind` name used in pipeline files, e.g. `retrieve.bm25`.
    const KIND: &'static str;
    /// Bumped whenever the implementation changes its outputs, so old cache entries go stale.
    const VERSION: u32;
    /// One line for `--help`-style listings.
    const ABOUT: &'static str;
    /// Whether the pipeline seed affects the outputs (and so belongs in the cache key).
    const SEEDED: bool = false;

    fn inputs() -> &'static [Port];
    fn outputs() -> &'static [Port];

    /// Checks params beyond their types (ranges, combinations).
    fn check(_params: &Self::Params) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Files outside the cache that the stage reads (relative to the pipeline directory);
    /// their content hashes are part of the cache key.
    fn sources(_params: &Self::Params) -> Vec<PathBuf> {
        Vec::new()
    }

    fn run(params: &Self::Params, ctx: &StageContext<'_>) -> Result<StageReport>;
}
