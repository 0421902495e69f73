//! Training the adapter on frozen embeddings (stage 2 of METHOD.md) and scoring pairs.
//!
//! Loss per batch: `CE_w + norm_weight · L_norm + pull_weight · L_pull`.
//! - `CE_w`: cross-entropy of the four-class head, each pair weighted by its class weight
//!   (`N / (K n_k)` over the `K` classes present when balanced, averaging 1 over the pairs).
//! - `L_norm`: [`crate::model::l_norm`], keeping `a` on the segment between `c` and `q`.
//! - `L_pull` (our addition; `pull_weight = 0` gives METHOD.md's loss alone): the
//!   class-weighted squared error of `s_fn` against 1 for labelled positives and 0 for TN
//!   pairs; FP pairs, where unlabelled relevant documents hide, get no target. It gives the
//!   intended geometry (a suspected false negative turns towards `q`) a direct signal rather
//!   than only the head's gradient through three cosine features.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rrra_common::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::labels::Class;
use crate::model::{AdapterConfig, AdapterNet, l_norm, s_fn};

/// How to train an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub hidden: usize,
    pub epochs: usize,
    /// Stop after this many steps in all (`None`: every epoch to the end).
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub norm_weight: f64,
    pub pull_weight: f64,
    /// Weigh classes by inverse frequency (else all 1).
    pub balanced: bool,
    pub seed: u64,
}

/// One labelled pair: query row and document row of [`Vectors`], and its [`Class`]. Plain
/// `u32`s (12 bytes), so a pool can live in a memory-mapped scratch file.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolPair {
    pub query: u32,
    pub doc: u32,
    class: u32,
}

impl PoolPair {
    pub fn new(query: u32, doc: u32, class: Class) -> Self {
        PoolPair {
            query,
            doc,
            class: class as u32,
        }
    }

    pub fn class(&self) -> Class {
        Class::ALL[self.class as usize]
    }
}

/// Frozen vectors, row-major, `dim` wide: in memory or memory-mapped
/// ([`rrra_common::vectors::VectorFile::values`]).
#[derive(Debug, Clone, Copy)]
pub struct Vectors<'a> {
    pub dim: usize,
    pub queries: &'a [f32],
    pub docs: &'a [f32],
}

impl Vectors<'_> {
    /// The query and document rows of `pairs` (query row, document row), `[n, d]` each,
    /// copied into tensors on `device`: only a batch's rows leave the (mapped) vectors.
    fn gather(
        &self,
        pairs: impl Iterator<Item = (u32, u32)>,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        let d = self.dim;
        let (mut q, mut c) = (Vec::new(), Vec::new());
        for (i, j) in pairs {
            let (i, j) = (i as usize, j as usize);
            q.extend_from_slice(&self.queries[i * d..(i + 1) * d]);
            c.extend_from_slice(&self.docs[j * d..(j + 1) * d]);
        }
        (matrix(q, d, device), matrix(c, d, device))
    }
}

/// Frozen vectors and the labelled pairs over them.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'a> {
    pub vectors: Vectors<'a>,
    pub pairs: &'a [PoolPair],
}

impl Pairs<'_> {
    /// Pairs per class, in [`Class`] order.
    pub fn class_counts(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for p in self.pairs {
            n[p.class() as usize] += 1;
        }
        n
    }
}

/// What training measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Mean loss per epoch.
    pub epoch_loss: Vec<f64>,
    pub class_weights: [f64; 4],
    pub class_counts: [usize; 4],
    /// Mean `s_fn` per class on the training pairs after training.
    pub mean_s_fn: [f64; 4],
    pub parameters: usize,
    /// Wall time of training: reported in the stage's metrics, not saved with the adapter
    /// (a saved adapter's bytes depend only on what trained it).
    #[serde(skip)]
    pub seconds: f64,
}

/// Class weights: `N / (K n_k)` with `K` the classes present (balanced), or 1; a class with
/// no pairs gets 0. Balanced weights average 1 over the pairs.
pub fn class_weights(counts: [usize; 4], balanced: bool) -> [f64; 4] {
    let total: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&n| n > 0).count() as f64;
    counts.map(|n| match (n, balanced) {
        (0, _) => 0.0,
        (_, false) => 1.0,
        (n, true) => total as f64 / (present * n as f64),
    })
}

/// A row-major `[values.len() / dim, dim]` matrix on `device`, taking the values.
fn matrix(values: Vec<f32>, dim: usize, device: &Device) -> Tensor<2> {
    let rows = values.len() / dim;
    Tensor::from_data(TensorData::new(values, [rows, dim]), device)
}

fn column(values: Vec<f32>, device: &Device) -> Tensor<2> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n, 1]), device)
}

/// The adapter's loss on `n` pairs (`q`, `c` `[n, d]`) of the given classes, `CE_w +
/// norm_weight · L_norm + pull_weight · L_pull` (module docs), `weights` per class.
pub fn loss(
    net: &AdapterNet,
    q: Tensor<2>,
    c: Tensor<2>,
    classes: &[Class],
    weights: &[f64; 4],
    config: &TrainConfig,
) -> Tensor<1> {
    let device = q.device();
    let labels = Tensor::<2, Int>::from_data(
        TensorData::new(
            classes.iter().map(|&k| k as i64).collect::<Vec<_>>(),
            [classes.len(), 1],
        ),
        &device,
    );
    let w = column(
        classes
            .iter()
            .map(|&k| weights[k as usize] as f32)
            .collect(),
        &device,
    );
    let out = net.forward(q.clone(), c.clone());
    let mut loss = log_softmax(out.logits, 1)
        .gather(1, labels)
        .mul(w.clone())
        .sum()
        .neg()
        .div_scalar(classes.len() as f64);
    if config.norm_weight > 0.0 {
        let norm = l_norm(q, c, out.a).mean();
        loss = loss.add(norm.mul_scalar(config.norm_weight));
    }
    if config.pull_weight > 0.0 {
        let target = column(
            classes
                .iter()
                .map(|k| f32::from(u8::from(k.gold())))
                .collect(),
            &device,
        );
        let mask = column(
            classes
                .iter()
                .map(|&k| f32::from(u8::from(k != Class::Fp)))
                .collect(),
            &device,
        );
        let mw = mask.mul(w);
        let denom = mw.clone().sum().clamp_min(1e-8);
        let err = s_fn(out.cos_ac, out.cos_qc).sub(target);
        let pull = err.clone().mul(err).mul(mw).sum().div(denom);
        loss = loss.add(pull.mul_scalar(config.pull_weight));
    }
    loss
}

/// Trains an adapter on `data` on `device` (any backend's; autodiff is added here). The
/// vectors stay where they are (they are frozen): each batch copies its rows onto the
/// device, and only those rows enter the graph. `order` (one entry per pair, overwritten)
/// holds the shuffled order of each epoch: the caller decides where it lives.
pub fn train(
    data: Pairs<'_>,
    order: &mut [u32],
    config: &TrainConfig,
    device: &Device,
    progress: &dyn Progress,
) -> (AdapterNet, AdapterConfig, TrainSummary) {
    let clock = std::time::Instant::now();
    let base = device.clone().inner();
    let autodiff = base.clone().autodiff();
    let shape = AdapterConfig {
        dim: data.vectors.dim,
        hidden: config.hidden,
    };
    let mut net = AdapterNet::new(&shape, config.seed, &autodiff);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let counts = data.class_counts();
    let weights = class_weights(counts, config.balanced);
    let Pairs { vectors, pairs } = data;
    assert_eq!(order.len(), pairs.len(), "one order entry per pair");
    for (i, o) in order.iter_mut().enumerate() {
        *o = u32::try_from(i).expect("fewer than 2^32 pairs");
    }
    let steps = pairs.len().div_ceil(config.batch_size) * config.epochs;
    let steps = config.max_steps.map_or(steps, |m| m.min(steps));
    let task = progress.task("train adapter (steps)", Some(steps as u64));
    let mut epoch_loss = Vec::with_capacity(config.epochs);
    let mut step = 0;
    for epoch in 0..config.epochs {
        if step == steps {
            break;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(
            config.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        order.shuffle(&mut rng);
        let (mut sum, mut seen) = (0.0, 0);
        for rows in order.chunks(config.batch_size).take(steps - step) {
            let batch = rows.iter().map(|&r| pairs[r as usize]);
            let (q, c) = vectors.gather(batch.clone().map(|p| (p.query, p.doc)), &base);
            let classes: Vec<Class> = batch.map(|p| p.class()).collect();
            let loss = loss(&net, q.autodiff(), c.autodiff(), &classes, &weights, config);
            let n = rows.len() as f64;
            sum += f64::from(loss.clone().into_scalar::<f32>()) * n;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(config.lr, net, grads);
            task.inc(1);
            (step, seen) = (step + 1, seen + rows.len());
        }
        epoch_loss.push(sum / seen.max(1) as f64);
    }
    drop(task);
    let net = net.valid();
    let mut mean_s_fn = [0.0; 4];
    for chunk in pairs.chunks(4096) {
        let scores = score_rows(
            &net,
            &vectors,
            chunk.iter().map(|p| (p.query, p.doc)),
            &base,
        );
        for (p, s) in chunk.iter().zip(&scores) {
            mean_s_fn[p.class() as usize] += f64::from(s.s_fn);
        }
    }
    for (m, &n) in mean_s_fn.iter_mut().zip(&counts) {
        *m /= n.max(1) as f64;
    }
    let summary = TrainSummary {
        epoch_loss,
        class_weights: weights,
        class_counts: counts,
        mean_s_fn,
        parameters: net.parameters(),
        seconds: clock.elapsed().as_secs_f64(),
    };
    (net, shape, summary)
}

/// The adapter's scores of one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScores {
    /// `cos(q, a)`.
    pub qa: f32,
    /// False-negative likelihood in `[0, 1]`.
    pub s_fn: f32,
    /// Head probability of the gold classes (TP + FN).
    pub p_rel: f32,
}

/// Scores every pair of `data` (classes are ignored), in order, `batch` pairs at a time on
/// `device`, calling `done` with the pairs of each finished batch.
pub fn score(
    net: &AdapterNet,
    data: &Pairs<'_>,
    batch: usize,
    device: &Device,
    done: &mut dyn FnMut(u64),
) -> Vec<PairScores> {
    let mut out = Vec::with_capacity(data.pairs.len());
    for pairs in data.pairs.chunks(batch.max(1)) {
        let rows = pairs.iter().map(|p| (p.query, p.doc));
        out.extend(score_rows(net, &data.vectors, rows, device));
        done(pairs.len() as u64);
    }
    out
}

/// The scores of one batch of pairs (query row, document row of `vectors`), on `device`.
pub fn score_rows(
    net: &AdapterNet,
    vectors: &Vectors<'_>,
    pairs: impl Iterator<Item = (u32, u32)>,
    device: &Device,
) -> Vec<PairScores> {
    let (q, c) = vectors.gather(pairs, device);
    let o = net.forward(q, c);
    let probs = softmax(o.logits, 1);
    let p_rel = probs.narrow(1, 0, 2).sum_dim(1);
    let vec = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32 tensor");
    let (qa, s, p) = (vec(o.cos_qa), vec(s_fn(o.cos_ac, o.cos_qc)), vec(p_rel));
    (0..qa.len())
        .map(|i| PairScores {
            qa: qa[i],
            s_fn: s[i],
            p_rel: p[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rrra_common::progress::Silent;

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
                    queries: &self.queries,
                    docs: &self.docs,
                },
                pairs: &self.pairs,
            }
        }

        fn train(&self, config: &TrainConfig) -> (AdapterNet, AdapterConfig, TrainSummary) {
            let mut order = vec![0; self.pairs.len()];
            train(self.data(), &mut order, config, &cpu(), &Silent)
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

    fn config(seed: u64) -> TrainConfig {
        TrainConfig {
            hidden: 16,
            epochs: 30,
            max_steps: None,
            batch_size: 128,
            lr: 3e-3,
            weight_decay: 0.0,
            norm_weight: 1.0,
            pull_weight: 1.0,
            balanced: true,
            seed,
        }
    }

    #[test]
    fn training_lowers_the_loss_and_scores_hidden_positives_higher() {
        let (toy, hidden) = toy(1);
        let (net, _, summary) = toy.train(&config(5));
        let data = toy.data();
        let first = summary.epoch_loss[0];
        let last = *summary.epoch_loss.last().unwrap();
        assert!(last < 0.8 * first, "loss {first} -> {last}");
        let scores = score(&net, &data, 100, &cpu(), &mut |_| {});
        let mean = |want: bool| {
            let v: Vec<f64> = scores
                .iter()
                .zip(data.pairs)
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
        let mut c = config(9);
        c.epochs = 2;
        let run = || toy.train(&c).0;
        let a = score(&run(), &toy.data(), 64, &cpu(), &mut |_| {});
        let b = score(&run(), &toy.data(), 64, &cpu(), &mut |_| {});
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
}
