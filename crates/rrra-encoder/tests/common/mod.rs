//! Helpers shared by the encoder's integration tests.

use std::path::Path;

/// all-MiniLM-L6-v2, fetched once into the test target's temporary folder.
pub fn model_dir() -> &'static Path {
    rrra_testkit::minilm(env!("CARGO_TARGET_TMPDIR"))
}

/// The cosine of an rrra embedding and a reference one.
pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * y).sum();
    let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}
