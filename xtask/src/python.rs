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

/// Creates `.venv` and installs the pinned requirements, unless already installed.
fn ensure_venv() -> Result<PathBuf> {
    let root = root();
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    let wanted = root.join("tests/python/requirements.txt");
    let stamp = venv.join("rrra-requirements.txt");
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
    std::fs::write(&stamp, requirements)?;
    Ok(python)
}

/// Runs `cargo <sub> --workspace <args>` with `RRRA_PYTHON` pointing at the reference venv.
pub fn cargo_with_reference(sub: &str, args: &[String]) -> Result<()> {
    let python = ensure_venv()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(
        Command::new(cargo)
            .current_dir(root())
            .arg(sub)
            .arg("--workspace")
            .args(args)
            .env("RRRA_PYTHON", python),
    )
}
