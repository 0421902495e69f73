//! Reading a pipeline's cached results: the fresh entry of each stage and the entries
//! feeding a stage's inputs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rrra_common::manifest::Manifest;
use rrra_runner::Pipeline;
use rrra_runner::pipeline::Edge;

/// A fresh stage's cache entry.
pub(super) struct Entry {
    pub(super) id: String,
    pub(super) kind: &'static str,
    pub(super) dir: PathBuf,
    pub(super) manifest: Manifest,
    /// Read from the results archive, which keeps only the small outputs.
    pub(super) archived: bool,
}

impl Entry {
    pub(super) fn output(&self, port: &str) -> PathBuf {
        self.dir.join(&self.manifest.outputs[port].file)
    }
}

/// The fresh entries of a pipeline's stages, from the cache, else from the results
/// archive `archive` (`None` for stages in neither).
pub(super) fn entries(
    p: &Pipeline,
    data_dir: &Path,
    archive: Option<&Path>,
) -> Result<Vec<Option<Entry>>> {
    Ok(p.stages
        .iter()
        .zip(rrra_runner::find(p, data_dir, archive)?)
        .map(|(node, found)| {
            found.map(|f| Entry {
                id: node.id.clone(),
                kind: node.stage.kind(),
                dir: f.dir,
                manifest: f.manifest,
                archived: f.archived,
            })
        })
        .collect())
}

/// The entries of stage `at` in every seed's entries (`None` unless every seed has it).
pub(super) fn in_every_seed(per_seed: &[Vec<Option<Entry>>], at: usize) -> Option<Vec<&Entry>> {
    per_seed.iter().map(|all| all[at].as_ref()).collect()
}

/// The edge into input `port` of stage `at`.
pub(super) fn edge<'p>(p: &'p Pipeline, at: usize, port: &str) -> Option<&'p Edge> {
    p.stages[at].inputs.iter().find(|e| e.port == port)
}

/// The entry feeding input `port` of stage `at`.
pub(super) fn upstream<'e>(
    p: &Pipeline,
    all: &'e [Option<Entry>],
    at: usize,
    port: &str,
) -> Option<(&'e Entry, String)> {
    let edge = edge(p, at, port)?;
    Some((all[edge.from_stage].as_ref()?, edge.from_port.clone()))
}
