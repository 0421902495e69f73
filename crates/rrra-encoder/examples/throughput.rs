//! Measures `Encoder::encode` throughput on SciFact documents (title + text).
//!
//! usage: throughput [BACKEND=cpu] [DOCS=500] [BATCH=32] [MAX_LEN=256] [MODEL=minilm-l6]
//! [PRECISION=fp32] (`bf16`/`fp16` on `tch` only)
//!
//! Models are cached under `$RRRA_MODEL_CACHE`, else the system temporary directory.

use std::time::Instant;

use rrra_common::progress::Silent;
use rrra_encoder::{Backend, Encoder, EncoderOptions, Precision};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/scifact/corpus.jsonl"
);

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let backend: Backend = arg(0, "cpu").parse()?;
    let docs: usize = arg(1, "500").parse()?;
    let batch: usize = arg(2, "32").parse()?;
    let max_len: usize = arg(3, "256").parse()?;
    let dir = common::model(&arg(4, "minilm-l6"))?;
    let precision: Precision = serde_json::from_value(serde_json::json!(arg(5, "fp32")))?;

    let texts: Vec<String> = std::fs::read_to_string(CORPUS)?
        .lines()
        .take(docs)
        .map(|l| {
            let d: serde_json::Value = serde_json::from_str(l)?;
            Ok(format!(
                "{} {}",
                d["title"].as_str().unwrap_or(""),
                d["text"].as_str().unwrap_or("")
            ))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    let options = EncoderOptions {
        max_len,
        backend,
        precision,
        ..EncoderOptions::default()
    };
    let encoder = Encoder::load(&dir, options)?;
    // Warm-up (kernel compilation on wgpu, thread pools, allocator).
    encoder.encode(&texts[..batch.min(texts.len())], batch, &Silent)?;
    let start = Instant::now();
    let out = encoder.encode(&texts, batch, &Silent)?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.len(), texts.len() * encoder.dim());
    println!(
        "{backend} {precision} ({:?}): {} docs, batch {batch}, max_len {max_len}: {secs:.1} s, {:.2} docs/s",
        backend.device()?,
        texts.len(),
        texts.len() as f64 / secs
    );
    Ok(())
}
