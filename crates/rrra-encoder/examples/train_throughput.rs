//! Measures `train` throughput (examples/s) and peak memory on SciFact train pairs, for the
//! training benchmark against sentence-transformers (`benches/train_vs_st.sh`).
//!
//! usage: train_throughput [STEPS=4] [BATCH=32] [MAX_LEN=128] [MODEL=minilm-l6]
//!
//! Each example is a SciFact train (claim, cited abstract) pair with one fixed "hard"
//! negative (another abstract); the first step is a warm-up and is not timed. Models are
//! cached under `$RRRA_MODEL_CACHE`, else the system temporary directory.

use std::collections::HashMap;

use rrra_common::progress::Silent;
use rrra_encoder::train::{RunSettings, TrainConfig, TrainData, TrainExample, train};
use rrra_encoder::{Backend, Pooling};

const SCIFACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/scifact");

fn jsonl(name: &str, field: &dyn Fn(&serde_json::Value) -> String) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("{SCIFACT}/{name}"))
        .unwrap_or_else(|e| panic!("{SCIFACT}/{name}: {e}"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (v["_id"].as_str().expect("_id").to_string(), field(&v))
        })
        .collect()
}

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let steps: usize = arg(0, "4").parse()?;
    let batch: usize = arg(1, "32").parse()?;
    let max_len: usize = arg(2, "128").parse()?;
    let model = common::model(&arg(3, "minilm-l6"))?;

    let text = |v: &serde_json::Value| v["text"].as_str().unwrap_or("").to_string();
    let doc_text = |v: &serde_json::Value| {
        format!(
            "{} {}",
            v["title"].as_str().unwrap_or(""),
            v["text"].as_str().unwrap_or("")
        )
    };
    let queries = jsonl("queries.jsonl", &text);
    let docs = jsonl("corpus.jsonl", &doc_text);
    let q_index: HashMap<&str, usize> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| (q.0.as_str(), i))
        .collect();
    let d_index: HashMap<&str, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.0.as_str(), i))
        .collect();
    let qrels = std::fs::read_to_string(format!("{SCIFACT}/qrels/train.tsv"))?;
    let examples: Vec<TrainExample> = qrels
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (q, d) = (f.next()?, f.next()?);
            let positive = d_index[d];
            Some(TrainExample {
                query: q_index[q],
                positive,
                negatives: vec![(positive + 2591) % docs.len()],
                weights: None,
            })
        })
        .take(steps * batch)
        .collect();
    let data = TrainData {
        queries: queries.into_iter().map(|q| q.1).collect(),
        docs: docs.into_iter().map(|d| d.1).collect(),
        examples,
    };
    let config = TrainConfig {
        backend: Backend::Cpu,
        batch_size: batch,
        // Three texts per example in one pass: plain backprop, as sentence-transformers.
        chunk_size: 3 * batch,
        epochs: 1,
        lr: 2e-5,
        warmup_ratio: 0.0,
        weight_decay: 0.01,
        temperature: 0.05,
        max_grad_norm: 1.0,
        max_negatives: 1,
        use_weights: false,
        checkpoint_every: 0,
        checkpoint_secs: 0.0,
        query_max_len: max_len,
        max_len,
        ..TrainConfig::default()
    };
    let run = RunSettings {
        seed: 1,
        pooling: Pooling::Mean,
        normalize: true,
    };
    let work = tempfile::tempdir()?;
    let (_, summary) = train(&model, &config, &run, &data, work.path(), &Silent, None)?;
    let timed = &summary.log[1..];
    let per_s = timed.len() as f64 * batch as f64
        / timed
            .iter()
            .map(|r| batch as f64 / r.samples_per_s)
            .sum::<f64>();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_mib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0);
    println!(
        "rrra train: batch {batch}, max_len {max_len}, {} timed steps: {per_s:.3} examples/s, peak RSS {peak_mib:.0} MiB, losses {:?}",
        timed.len(),
        summary
            .log
            .iter()
            .map(|r| (r.loss * 1e4).round() / 1e4)
            .collect::<Vec<_>>()
    );
    Ok(())
}
