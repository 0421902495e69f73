//! `run --executor ray`: plan the parts of split stages, run their tasks as Ray Core tasks
//! through the Python driver `deploy/ray/rrra_ray.py` (Ray has no Rust API), collect, and
//! repeat until every stage is done. The local executor needs none of this.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use rrra_runner::Executor;

/// Where and how the Ray tasks run.
pub(crate) struct Ray {
    /// A running cluster's address; `None` starts a local instance.
    pub address: Option<String>,
    /// CPUs of the local instance.
    pub cpus: Option<u32>,
    /// The Python with `ray` installed.
    pub python: Option<PathBuf>,
}

/// Calls `run` with `Plan`, then with `Collect` while it plans more: after each plan, the
/// tasks of the index it returns run on Ray.
pub(crate) fn run(
    ray: &Ray,
    run: &mut dyn FnMut(Executor) -> Result<Option<PathBuf>>,
) -> Result<()> {
    let mut executor = Executor::Plan;
    while let Some(index) = run(executor)? {
        submit(ray, &index)?;
        executor = Executor::Collect;
    }
    Ok(())
}

/// Runs every task of `index` on Ray and waits for them.
fn submit(ray: &Ray, index: &Path) -> Result<()> {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/ray/rrra_ray.py");
    let python = ray
        .python
        .clone()
        .or_else(|| std::env::var_os("RRRA_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"));
    let exe = std::env::current_exe().context("finding this program for exec-part")?;
    let mut cmd = Command::new(&python);
    cmd.arg(&driver).arg(index).arg("--exec").arg(&exe);
    if let Some(address) = &ray.address {
        cmd.args(["--address", address]);
    }
    if let Some(cpus) = ray.cpus {
        cmd.args(["--num-cpus", &cpus.to_string()]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("starting {} (is ray installed?)", python.display()))?;
    if !status.success() {
        bail!(
            "the Ray driver {} failed ({status}) on {}",
            driver.display(),
            index.display()
        );
    }
    Ok(())
}
