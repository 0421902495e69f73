//! The adapter on every backend compiled in besides `cpu` (cargo features `tch`, `wgpu` of
//! rrra-adapter, passed to rrra-encoder): the cpu adapter's weights score the same pairs to
//! within float tolerance there, and training there from the same seed follows the cpu
//! run. Compiled only with such a feature:
//!
//! `cargo test -p rrra-adapter --features wgpu --lib backends` (Mesa lavapipe serves Vulkan
//! on a CPU-only machine: `apt-get install mesa-vulkan-drivers libvulkan1`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rrra_common::progress::Silent;
use rrra_encoder::Backend;

use super::Toy;
use crate::labels::Class;
use crate::saved::{SavedAdapter, save_adapter};
use crate::train::{PairScores, PoolPair, TrainAdapterParams, score, train};
use rrra_common::residency::Trimmer;

/// 40 queries with 16 candidates each in 32-d; the first two near the query are labelled.
fn toy() -> Toy {
    let (dim, mut rng) = (32, ChaCha8Rng::seed_from_u64(3));
    let mut unit = |center: Option<&[f32]>, noise: f32| -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|i| center.map_or(0.0, |c| c[i]) + noise * rng.random_range(-1.0f32..1.0))
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let (mut queries, mut docs, mut pairs) = (vec![], vec![], vec![]);
    for q in 0..40u32 {
        let qv = unit(None, 1.0);
        for j in 0..16 {
            let d = unit(Some(&qv), if j < 3 { 0.5 } else { 1.5 });
            let class = [Class::Tp, Class::Fn, Class::Fp][j.min(2)];
            let class = if j > 4 { Class::Tn } else { class };
            pairs.push(PoolPair::new(q, (docs.len() / dim) as u32, class));
            docs.extend(d);
        }
        queries.extend(qv);
    }
    Toy {
        dim,
        queries,
        docs,
        pairs,
    }
}

fn max_diff(a: &[PairScores], b: &[PairScores]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            [
                (x.qa - y.qa).abs(),
                (x.s_fn - y.s_fn).abs(),
                (x.p_rel - y.p_rel).abs(),
            ]
        })
        .fold(0.0, f32::max)
}

#[test]
fn other_backends_match_cpu() {
    let toy = toy();
    let data = toy.data();
    let mut order = vec![0; toy.pairs.len()];
    let params = TrainAdapterParams {
        epochs: 4,
        batch_size: 64,
        ..Default::default()
    };
    let cpu = Backend::Cpu.device().unwrap();
    let trim = Trimmer::new(&[]);
    let (net, shape, summary) = train(data, &mut order, &params, 17, &cpu, &Silent, &trim).unwrap();
    let on_cpu = score(&net, &data, 100, &cpu, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = SavedAdapter {
        shape,
        params: Some(params.clone()),
        seed: Some(17),
        summary: None,
    };
    save_adapter(dir.path(), &net, &saved).unwrap();
    let mut compared = 0;
    for backend in Backend::compiled() {
        if backend == Backend::Cpu {
            continue;
        }
        let device = backend.device().unwrap();
        // The cpu adapter's weights, scored there.
        let there = saved.load_net(dir.path(), &device).unwrap();
        let scores = score(&there, &data, 100, &device, &mut |_| {}).unwrap();
        let d = max_diff(&on_cpu, &scores);
        println!("{backend}: cpu weights, max score difference {d:e}");
        assert!(d < 1e-4, "{backend}: scores differ from cpu by {d}");
        // Trained there from the same seed: the same path up to rounding.
        let (net, _, s) = train(data, &mut order, &params, 17, &device, &Silent, &trim).unwrap();
        let trained = score(&net, &data, 100, &device, &mut |_| {}).unwrap();
        let d = max_diff(&on_cpu, &trained);
        println!(
            "{backend}: trained there, max score difference {d:e}, losses {:?} vs cpu {:?}",
            s.epoch_loss, summary.epoch_loss
        );
        assert!(
            d < 1e-2,
            "{backend}: trained adapter differs from cpu by {d}"
        );
        for (a, b) in s.epoch_loss.iter().zip(&summary.epoch_loss) {
            assert!(
                (a - b).abs() < 1e-3 * b.abs().max(1.0),
                "loss {a} vs cpu {b}"
            );
        }
        compared += 1;
    }
    assert!(compared > 0, "no backend besides cpu is compiled in");
}
