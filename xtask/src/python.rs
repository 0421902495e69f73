//! The Python reference tools (pytrec_eval, numpy, pyarrow, ...) that parity tests and
//! benchmarks compare rrra against, installed into `.venv` from the pinned
//! `tests/python/requirements.txt`; tests find the interpreter through `RRRA_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}

/// Creates `.venv` and installs the pinned requirements file `tests/python/<file>`, unless
/// already installed.
pub(crate) fn ensure_venv(file: &str) -> Result<PathBuf> {
    let root = root();
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    let wanted = root.join("tests/python").join(file);
    let stamp = venv.join(format!("rrra-{file}"));
    let requirements = std::fs::read_to_string(&wanted)
        .with_context(|| format!("reading {}", wanted.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str()) {
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("creating {}", venv.display());
        status(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("python3 with the venv module is needed for the reference tools")?;
    }
    eprintln!("installing {}", wanted.display());
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&wanted),
    )?;
    // The stamp of an included file no longer proves what is installed.
    for stale in [
        "rrra-requirements.txt",
        "rrra-bench-requirements.txt",
        "rrra-st-requirements.txt",
    ] {
        let _ = std::fs::remove_file(venv.join(stale));
    }
    std::fs::write(&stamp, requirements)?;
    Ok(python)
}

/// Runs `cargo <sub> <args>` (`--workspace` when no args name packages) with `RRRA_PYTHON`
/// pointing at the reference venv, set up from `requirements` (a file in `tests/python/`).
pub fn cargo_with_reference(sub: &str, requirements: &str, args: &[String]) -> Result<()> {
    cargo_with_python(sub, &ensure_venv(requirements)?, args)
}

/// Runs `cargo <sub> <args>` (`--workspace` when no args name packages) with `RRRA_PYTHON`
/// set to `python`.
fn cargo_with_python(sub: &str, python: &Path, args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root()).arg(sub);
    if !args.iter().any(|a| a == "-p" || a.starts_with("--package")) {
        cmd.arg("--workspace");
    }
    status(cmd.args(args).env("RRRA_PYTHON", python))
}

/// Runs the ignored test that loads an exported model in sentence-transformers, with
/// `python` (which must have it) or else with `.venv` after installing
/// `tests/python/st-requirements.txt` there.
pub fn sentence_transformers_test(python: Option<PathBuf>) -> Result<()> {
    let python = match python {
        Some(p) => p,
        None => ensure_venv("st-requirements.txt")?,
    };
    let args = [
        "-p",
        "rrra-encoder",
        "--test",
        "train",
        "--",
        "--ignored",
        "--exact",
        "export_loads_in_sentence_transformers_with_the_same_embeddings",
    ]
    .map(String::from);
    cargo_with_python("test", &python, &args)
}
