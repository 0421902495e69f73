//! `cargo xtask bench encode|train [ARGS]`: the encoder's CPU benchmarks against their
//! PyTorch peers, run back to back in one process tree so both see the same machine load.
//! The shell scripts in `crates/rrra-encoder/benches/` do the work and print the ratio:
//! `encode` runs `encode_vs_torch.sh [DOCS BATCH MAX_LEN THREADS BACKEND DEVICE]` (against
//! transformers), `train` runs `train_vs_st.sh [STEPS BATCH MAX_LEN THREADS]` (against
//! sentence-transformers). The peer runs in `$PYTHON` when set, else in `.venv` after
//! installing `tests/python/st-requirements.txt` there (torch, ~7 GB).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Which peer benchmark to run.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// Encoding throughput vs transformers.
    Encode,
    /// Training throughput and peak memory vs sentence-transformers.
    Train,
}

impl Peer {
    /// The peer named by `bench`'s first argument, if any.
    pub fn parse(arg: &str) -> Option<Peer> {
        match arg {
            "encode" => Some(Peer::Encode),
            "train" => Some(Peer::Train),
            _ => None,
        }
    }

    fn script(self) -> &'static str {
        match self {
            Peer::Encode => "encode_vs_torch.sh",
            Peer::Train => "train_vs_st.sh",
        }
    }
}

/// Runs `peer`'s script with `args`.
pub fn run(peer: Peer, args: &[String]) -> Result<()> {
    let python = match std::env::var_os("PYTHON") {
        Some(p) => PathBuf::from(p),
        None => crate::python::ensure_venv("st-requirements.txt")?,
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask is inside the workspace")?
        .to_path_buf();
    let script = root.join("crates/rrra-encoder/benches").join(peer.script());
    let st = Command::new("bash")
        .arg(&script)
        .args(args)
        .current_dir(&root)
        .env("PYTHON", &python)
        .status()
        .with_context(|| format!("starting {}", script.display()))?;
    if !st.success() {
        bail!("{} failed ({st})", script.display());
    }
    Ok(())
}
