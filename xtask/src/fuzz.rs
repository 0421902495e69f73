//! `cargo xtask fuzz`: builds and runs the fuzz campaign of `crates/rrra-fuzz`, passing
//! its arguments through (`--minutes N`, `--target T`, ...).

use std::process::Command;

use anyhow::{Context, Result, bail};

pub fn fuzz(release: bool, args: &[String]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "--package", "rrra-fuzz"]);
    if release {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args);
    let st = cmd.status().context("starting cargo run -p rrra-fuzz")?;
    if !st.success() {
        bail!("the fuzz campaign reported findings or failed ({st})");
    }
    Ok(())
}
