//! Training on a toy problem: the loss falls, hidden positives score higher, a seed
//! reproduces the adapter, balanced class weights average one.

use super::*;
use rand::Rng;
use rrra_common::progress::Silent;

#[cfg(any(feature = "tch", feature = "wgpu"))]
mod backends;

fn cpu() -> Device {
    Device::flex()
}

/// Vectors and pairs, owned.
struct Toy {
    dim: usize,
    queries: Vec<f32>,
    docs: Vec<f32>,
    pairs: Vec<PoolPair>,
}

impl Toy {
    fn data(&self) -> Pairs<'_> {
        Pairs {
            vectors: Vectors {
                dim: self.dim,
                queries: Rows::Memory(&self.queries),
                docs: Rows::Memory(&self.docs),
            },
            pairs: PairList::Memory(&self.pairs),
        }
    }

    fn train(
        &self,
        params: &TrainAdapterParams,
        seed: u64,
    ) -> (AdapterNet, AdapterConfig, TrainSummary) {
        let mut order = vec![0; self.pairs.len()];
        let trim = Trimmer::new(&[]);
        train(
            self.data(),
            &mut order,
            params,
            seed,
            &cpu(),
            &Silent,
            &trim,
        )
        .unwrap()
    }
}

/// Queries and documents in 16-d where "relevant" documents lie close to their query;
/// some relevant documents are labelled (gold), others are hidden among the negatives.
fn toy(seed: u64) -> (Toy, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dim = 16;
    let unit = |v: Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let (mut queries, mut docs, mut pairs, mut hidden) = (vec![], vec![], vec![], vec![]);
    for qi in 0..60u32 {
        let q = unit((0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect());
        for j in 0..24 {
            let relevant = j < 4;
            let noise = if relevant { 0.6 } else { 1.6 };
            let d = unit(
                q.iter()
                    .map(|x| x + noise * rng.random_range(-1.0f32..1.0))
                    .collect(),
            );
            let id = (docs.len() / dim) as u32;
            docs.extend(d);
            // Two relevant documents are labelled; two stay hidden as "negatives".
            let gold = j < 2;
            let class = match (gold, j % 3 == 0) {
                (true, true) => Class::Tp,
                (true, false) => Class::Fn,
                (false, true) => Class::Fp,
                (false, false) => Class::Tn,
            };
            pairs.push(PoolPair::new(qi, id, class));
            hidden.push(relevant && !gold);
        }
        queries.extend(q);
    }
    (
        Toy {
            dim,
            queries,
            docs,
            pairs,
        },
        hidden,
    )
}

fn params() -> TrainAdapterParams {
    TrainAdapterParams {
        hidden: 16,
        epochs: 30,
        batch_size: 128,
        lr: 3e-3,
        weight_decay: 0.0,
        norm_weight: 1.0,
        pull_weight: 1.0,
        balanced: true,
        ..Default::default()
    }
}

#[test]
fn training_lowers_the_loss_and_scores_hidden_positives_higher() {
    let (toy, hidden) = toy(1);
    let (net, _, summary) = toy.train(&params(), 5);
    let data = toy.data();
    let first = summary.epoch_loss[0];
    let last = *summary.epoch_loss.last().unwrap();
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    let scores = score(&net, &data, 100, &cpu(), &mut |_| {}).unwrap();
    let mean = |want: bool| {
        let v: Vec<f64> = scores
            .iter()
            .zip(data.pairs.as_slice())
            .zip(&hidden)
            .filter(|((_, p), h)| !p.class().gold() && **h == want)
            .map(|((s, _), _)| f64::from(s.s_fn))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    // Among unlabelled pairs, the hidden relevant ones look more like false negatives.
    assert!(
        mean(true) > mean(false) + 0.05,
        "{} vs {}",
        mean(true),
        mean(false)
    );
    assert!(summary.mean_s_fn[Class::Tp as usize] > summary.mean_s_fn[Class::Tn as usize]);
    for s in &scores {
        assert!((0.0..=1.0).contains(&s.s_fn) && (0.0..=1.0 + 1e-6).contains(&s.p_rel));
    }
}

#[test]
fn same_seed_same_adapter() {
    let (toy, _) = toy(2);
    let mut p = params();
    p.epochs = 2;
    let run = || toy.train(&p, 9).0;
    let a = score(&run(), &toy.data(), 64, &cpu(), &mut |_| {}).unwrap();
    let b = score(&run(), &toy.data(), 64, &cpu(), &mut |_| {}).unwrap();
    assert_eq!(a, b);
}

#[test]
fn balanced_weights_average_one() {
    let w = class_weights([10, 30, 0, 60], true);
    assert_eq!(w[2], 0.0);
    let mean = (10.0 * w[0] + 30.0 * w[1] + 60.0 * w[3]) / 100.0;
    assert!((mean - 1.0).abs() < 1e-12);
    assert_eq!(class_weights([1, 2, 3, 4], false), [1.0; 4]);
}

/// The serialised params (part of the cache key, and `adapter.json`'s `params`) are those
/// `train.adapter` had before they also configured [`train`]: same names, same order,
/// `max_steps` and a `cpu` backend left out.
#[test]
fn default_params_serialise_as_before() {
    assert_eq!(
        serde_json::to_string(&TrainAdapterParams::default()).unwrap(),
        r#"{"hidden":0,"k_p":10,"pool":200,"epochs":3,"batch_size":512,"lr":0.001,"weight_decay":0.01,"norm_weight":1.0,"pull_weight":1.0,"balanced":true}"#
    );
    let wgpu = TrainAdapterParams {
        backend: Backend::Wgpu,
        max_steps: Some(7),
        ..Default::default()
    };
    let back: TrainAdapterParams =
        serde_json::from_str(&serde_json::to_string(&wgpu).unwrap()).unwrap();
    assert_eq!(back, wgpu);
}
