//! Helpers shared by the encoder's benchmark examples.

use std::path::PathBuf;

use rrra_common::progress::Silent;
use rrra_encoder::resolve_model;

/// The model `name` (a known name or a local folder), cached under `$RRRA_MODEL_CACHE`, else
/// under the system's temporary folder.
pub fn model(name: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cache = std::env::var_os("RRRA_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rrra-encoder-models"));
    Ok(resolve_model(name, &cache, &Silent)?)
}
