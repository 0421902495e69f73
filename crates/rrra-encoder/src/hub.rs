//! Models named by Hugging Face Hub id (`BAAI/bge-small-en-v1.5`, optionally `@revision`),
//! resolved to a snapshot folder of the Hub cache that the Python `huggingface_hub` and the
//! `hf-hub` crate share (`<cache>/models--ORG--NAME/{refs/<revision>, snapshots/<commit>/…}`).
//!
//! The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
//! else `~/.cache/huggingface/hub`. A snapshot that already holds the files is used without
//! any network access; with `HF_HUB_OFFLINE=1` nothing else is tried. Otherwise the missing
//! files are downloaded through `hf-hub`'s blocking API (which honours `HF_ENDPOINT` and a
//! token saved by `huggingface-cli login`). Besides the weights, tokenizer and config, the
//! sentence-transformers files that describe pooling, normalisation, length and prompts are
//! fetched when the repository has them; files the repository lacks are recorded under
//! `.no_exist/<commit>/`, as `huggingface_hub` does, so a later run needs no network.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};
use rrra_common::progress::{Progress, Task};

use crate::encoder::MODEL_FILES;
use crate::error::{Error, Result};
use crate::settings::{MODULES_FILE, pooling_config_paths};

/// Files a sentence-transformers folder (or the exporter) reads besides [`MODEL_FILES`]:
/// fetched when the repository has them. The pooling config's path comes from
/// `modules.json`.
pub const OPTIONAL_FILES: [&str; 6] = [
    MODULES_FILE,
    crate::settings::SENTENCE_BERT_CONFIG,
    crate::settings::PROMPTS_CONFIG,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// A Hub model id with the revision to use (`main` unless given after `@`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `ORG/NAME`.
    pub repo: String,
    /// A branch, tag or commit hash.
    pub revision: String,
}

impl HubId {
    /// `ORG/NAME` or `ORG/NAME@REVISION` (each part of letters, digits, `-`, `_`, `.`, not
    /// starting with `.` or `-`); `None` for anything else (a path, a known id).
    pub fn parse(name: &str) -> Option<HubId> {
        let (repo, revision) = match name.split_once('@') {
            Some((repo, rev)) => (repo, rev),
            None => (name, "main"),
        };
        let (org, model) = repo.split_once('/')?;
        let part = |s: &str| {
            !s.is_empty()
                && !s.starts_with(['.', '-'])
                && !s.contains("..")
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let rev_ok = !revision.is_empty()
            && !revision.starts_with(['.', '/'])
            && !revision.contains("..")
            && revision
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        (part(org) && part(model) && rev_ok).then(|| HubId {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The repository's folder in the cache: `models--ORG--NAME`.
    pub fn folder_name(&self) -> String {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone()).folder_name()
    }
}

/// Whether `HF_HUB_OFFLINE` asks for no network access (`1`, `true`, `yes`, `on`).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The Hub cache folder, as `huggingface_hub` finds it (see the module documentation).
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(home) = var("HF_HOME") {
        return Ok(PathBuf::from(home).join("hub"));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(xdg).join("huggingface").join("hub"));
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home)
            .join(".cache")
            .join("huggingface")
            .join("hub")),
        None => Err(Error::Invalid(
            "cannot place the Hugging Face cache: set HF_HOME (or HF_HUB_CACHE)".into(),
        )),
    }
}

/// What the cache knows of one file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cached {
    Present(PathBuf),
    /// Recorded as absent from the repository at this commit.
    Absent,
    Unknown,
}

/// One repository's folder in the cache.
struct CachedRepo {
    root: PathBuf,
}

impl CachedRepo {
    /// The commit `revision` names: `refs/<revision>`, or the revision itself when it is a
    /// commit whose snapshot is present.
    fn commit(&self, revision: &str) -> Option<String> {
        if let Ok(text) = std::fs::read_to_string(self.root.join("refs").join(revision)) {
            let commit = text.trim().to_string();
            if !commit.is_empty() {
                return Some(commit);
            }
        }
        self.root
            .join("snapshots")
            .join(revision)
            .is_dir()
            .then(|| revision.to_string())
    }

    fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    fn lookup(&self, commit: &str, file: &str) -> Cached {
        let path = self.snapshot(commit).join(file);
        if path.is_file() {
            Cached::Present(path)
        } else if self.no_exist(commit, file).exists() {
            Cached::Absent
        } else {
            Cached::Unknown
        }
    }

    fn no_exist(&self, commit: &str, file: &str) -> PathBuf {
        self.root.join(".no_exist").join(commit).join(file)
    }

    fn mark_absent(&self, commit: &str, file: &str) -> Result<()> {
        let path = self.no_exist(commit, file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, b"").map_err(|e| Error::io(&path, e))
    }
}

/// The snapshot folder of `id` in the Hub cache `cache`, downloading what is missing unless
/// offline (see the module documentation).
pub fn resolve_hub(id: &HubId, cache: &Path, progress: &dyn Progress) -> Result<PathBuf> {
    let repo = CachedRepo {
        root: cache.join(id.folder_name()),
    };
    if let Some(commit) = repo.commit(&id.revision)
        && let Some(dir) = complete_snapshot(&repo, &commit, offline())
    {
        return Ok(dir);
    }
    let name = format!("{}@{}", id.repo, id.revision);
    if offline() {
        return Err(Error::Fetch {
            model: name,
            message: format!(
                "HF_HUB_OFFLINE is set and the Hugging Face cache {} has no snapshot of \
                 revision `{}` holding {}: download it where the Hub is reachable \
                 (`huggingface-cli download {}`, or run rrra there without HF_HUB_OFFLINE) \
                 and point HF_HOME or HF_HUB_CACHE at that cache",
                repo.root.display(),
                id.revision,
                MODEL_FILES.join(", "),
                id.repo
            ),
        });
    }
    download(id, &repo, cache, progress).map_err(|message| Error::Fetch {
        model: name,
        message,
    })
}

/// The snapshot folder when every file a model needs is settled in the cache: the model
/// files present, and each optional file present or recorded absent (or, `offline`, simply
/// not there).
fn complete_snapshot(repo: &CachedRepo, commit: &str, offline: bool) -> Option<PathBuf> {
    let settled = |file: &str, required: bool| match repo.lookup(commit, file) {
        Cached::Present(_) => true,
        Cached::Absent => !required,
        Cached::Unknown => offline && !required,
    };
    if !MODEL_FILES.iter().all(|f| settled(f, true)) {
        return None;
    }
    if !OPTIONAL_FILES.iter().all(|f| settled(f, false)) {
        return None;
    }
    let dir = repo.snapshot(commit);
    // The pooling config is named by modules.json; an unreadable modules.json is reported
    // when the settings are read.
    let pooling = pooling_config_paths(&dir).unwrap_or_default();
    pooling.iter().all(|f| settled(f, false)).then_some(dir)
}

/// Downloads the files of `id` the cache lacks; the error says what failed.
fn download(
    id: &HubId,
    repo: &CachedRepo,
    cache: &Path,
    progress: &dyn Progress,
) -> std::result::Result<PathBuf, String> {
    let mut builder = ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf()))
        .with_progress(false)
        .with_retries(3);
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder
        .build()
        .map_err(|e| format!("cannot set up the Hub client: {e}"))?;
    let remote = api.repo(Repo::with_revision(
        id.repo.clone(),
        RepoType::Model,
        id.revision.clone(),
    ));
    let hint = "check network access to the Hub (HF_ENDPOINT), the id and revision, and \
                for a gated model a token (`huggingface-cli login`); or set HF_HUB_OFFLINE=1 \
                to use a cache filled elsewhere";
    let info = remote
        .info()
        .map_err(|e| format!("cannot read the repository's file list: {e}; {hint}"))?;
    let listed = |file: &str| info.siblings.iter().any(|s| s.rfilename == file);
    let missing: Vec<&str> = MODEL_FILES.into_iter().filter(|f| !listed(f)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the repository has no {} at commit {}: rrra loads BERT-family checkpoints with \
             safetensors weights and a tokenizer.json",
            missing.join(", "),
            info.sha
        ));
    }
    let fetch = |file: &str| -> std::result::Result<(), String> {
        if let Cached::Present(_) = repo.lookup(&info.sha, file) {
            return Ok(());
        }
        if !listed(file) {
            return repo.mark_absent(&info.sha, file).map_err(|e| e.to_string());
        }
        remote
            .download_with_progress(file, Bytes::new(progress, &id.repo))
            .map(|_| ())
            .map_err(|e| format!("downloading {file}: {e}; {hint}"))
    };
    for file in MODEL_FILES.iter().chain(&OPTIONAL_FILES) {
        fetch(file)?;
    }
    let dir = repo.snapshot(&info.sha);
    for file in pooling_config_paths(&dir).map_err(|e| e.to_string())? {
        fetch(&file)?;
    }
    // A commit hash given as the revision has no ref of its own until a download wrote one.
    Ok(dir)
}

/// Reports a download's bytes through rrra's [`Progress`].
struct Bytes<'a> {
    progress: &'a dyn Progress,
    repo: &'a str,
    task: Option<Box<dyn Task>>,
}

impl<'a> Bytes<'a> {
    fn new(progress: &'a dyn Progress, repo: &'a str) -> Self {
        Bytes {
            progress,
            repo,
            task: None,
        }
    }
}

impl hf_hub::api::Progress for Bytes<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.task = Some(self.progress.task(
            &format!("download {}/{filename} (bytes)", self.repo),
            Some(size as u64),
        ));
    }
    fn update(&mut self, size: usize) {
        if let Some(task) = &self.task {
            task.inc(size as u64);
        }
    }
    fn finish(&mut self) {
        self.task = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_parse_with_an_optional_revision() {
        let id = HubId::parse("BAAI/bge-small-en-v1.5").unwrap();
        assert_eq!(
            (id.repo.as_str(), id.revision.as_str()),
            ("BAAI/bge-small-en-v1.5", "main")
        );
        assert_eq!(id.folder_name(), "models--BAAI--bge-small-en-v1.5");
        let id =
            HubId::parse("intfloat/e5-small-v2@ffb93f3bd4047442299a41ebb6fa998a38507c52").unwrap();
        assert_eq!(id.revision, "ffb93f3bd4047442299a41ebb6fa998a38507c52");
        for bad in [
            "minilm-l6",
            "../models/x",
            "./a/b",
            "/abs/path",
            "a/b/c",
            "a/",
            "/b",
            "a/b@",
            "a/b@../x",
            "a b/c",
        ] {
            assert_eq!(HubId::parse(bad), None, "{bad}");
        }
    }
}
