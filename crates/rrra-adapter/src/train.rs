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
use rrra_common::Result;
use rrra_common::progress::Progress;
use rrra_common::residency::Trimmer;
use rrra_common::scratch::Scratch;
use rrra_common::vectors::VectorFile;
use rrra_encoder::Backend;
use serde::{Deserialize, Serialize};

use crate::backend::is_cpu;
use crate::labels::Class;
use crate::model::{AdapterConfig, AdapterNet, l_norm, s_fn};

/// Params of `train.adapter`, consumed as they are by [`train`] (and by `train.joint`, which
/// reads them from the stage-2 adapter's `adapter.json`, where they are saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainAdapterParams {
    /// Hidden width of the MLP; 0 means the embedding width (METHOD.md's `3d → d → d`).
    pub hidden: usize,
    /// A candidate ranked in the top `k_p` counts as predicted relevant.
    pub k_p: u32,
    /// Only the `pool` best-ranked non-positive candidates of a query are used.
    pub pool: usize,
    /// Passes over the training pairs.
    pub epochs: usize,
    /// Stop after this many optimiser steps in all (a fixed budget at scale); absent: run
    /// every epoch to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Pairs per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Weight of the linear-normalisation loss.
    pub norm_weight: f64,
    /// Weight of the `s_fn` pull towards 1 (positives) and 0 (TN); 0 turns it off.
    pub pull_weight: f64,
    /// Inverse-frequency class weights in the cross-entropy (else all 1).
    pub balanced: bool,
    /// Where it trains: `cpu` (default), `tch` or `wgpu` (cargo features of rrra-encoder,
    /// as `encode.bert`'s `backend:`). Left out of the cache key and `adapter.json` when
    /// `cpu`, so adapters trained before the param existed stay cached.
    #[serde(skip_serializing_if = "is_cpu")]
    pub backend: Backend,
}

impl Default for TrainAdapterParams {
    fn default() -> Self {
        TrainAdapterParams {
            hidden: 0,
            k_p: 10,
            pool: 200,
            epochs: 3,
            max_steps: None,
            batch_size: 512,
            lr: 1e-3,
            weight_decay: 0.01,
            norm_weight: 1.0,
            pull_weight: 1.0,
            balanced: true,
            backend: Backend::Cpu,
        }
    }
}

impl TrainAdapterParams {
    /// Checks the params: counts at least 1, rates finite and in range, the backend
    /// compiled in. The error names the param.
    pub fn check(&self) -> Result<(), String> {
        if self.epochs == 0 || self.batch_size == 0 || self.pool == 0 || self.max_steps == Some(0) {
            return Err("params epochs, max_steps, batch_size and pool must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("param lr must be finite and > 0, got {}", self.lr));
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("norm_weight", self.norm_weight),
            ("pull_weight", self.pull_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("param {name} must be finite and >= 0, got {v}"));
            }
        }
        self.backend.check_compiled()
    }

    /// The MLP's hidden width for embeddings `dim` wide (`hidden`, or `dim` when 0).
    pub fn hidden_width(&self, dim: usize) -> usize {
        if self.hidden == 0 { dim } else { self.hidden }
    }
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

/// Where frozen vectors are read: rows in memory (row-major), or a [`VectorFile`] read row
/// by row with positional reads, so a batch's rows leave no mapped pages behind.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    Memory(&'a [f32]),
    File(&'a VectorFile),
}

impl Rows<'_> {
    /// Appends rows `rows` (`dim` values each) to `out`.
    fn read(&self, rows: Vec<u32>, dim: usize, out: &mut Vec<f32>) -> Result<()> {
        match self {
            Rows::Memory(values) => {
                for r in rows.into_iter().map(|r| r as usize) {
                    out.extend_from_slice(&values[r * dim..(r + 1) * dim]);
                }
                Ok(())
            }
            Rows::File(file) => file.read_rows(rows, out),
        }
    }
}

/// Frozen query and document vectors, `dim` wide.
#[derive(Debug, Clone, Copy)]
pub struct Vectors<'a> {
    pub dim: usize,
    pub queries: Rows<'a>,
    pub docs: Rows<'a>,
}

impl Vectors<'_> {
    /// The query and document rows of `pairs` (query row, document row), `[n, d]` each,
    /// copied into tensors on `device`: only a batch's rows are read.
    fn gather(
        &self,
        pairs: impl Iterator<Item = (u32, u32)>,
        device: &Device,
    ) -> Result<(Tensor<2>, Tensor<2>)> {
        let d = self.dim;
        let (rows_q, rows_c): (Vec<u32>, Vec<u32>) = pairs.unzip();
        let n = rows_q.len() * d;
        let (mut q, mut c) = (Vec::with_capacity(n), Vec::with_capacity(n));
        self.queries.read(rows_q, d, &mut q)?;
        self.docs.read(rows_c, d, &mut c)?;
        Ok((matrix(q, d, device), matrix(c, d, device)))
    }
}

/// Labelled pairs: in memory, or a [`Scratch`] file, swept in order through its mapping
/// and read at random with positional reads ([`Scratch::read`]).
#[derive(Clone, Copy)]
pub enum PairList<'a> {
    Memory(&'a [PoolPair]),
    File(&'a Scratch<PoolPair>),
}

impl PairList<'_> {
    /// The pairs in order, for sweeps (a file's mapping: pair a [`Trimmer`] with it).
    pub fn as_slice(&self) -> &[PoolPair] {
        match self {
            PairList::Memory(pairs) => pairs,
            PairList::File(file) => file.as_slice(),
        }
    }

    /// Pair `i`.
    fn get(&self, i: u32) -> Result<PoolPair> {
        match self {
            PairList::Memory(pairs) => Ok(pairs[i as usize]),
            PairList::File(file) => file.read(i as usize),
        }
    }
}

/// Pairs a sweep goes through between two [`Trimmer::swept`] calls.
const SWEEP: usize = 1 << 16;

/// Frozen vectors and the labelled pairs over them.
#[derive(Clone, Copy)]
pub struct Pairs<'a> {
    pub vectors: Vectors<'a>,
    pub pairs: PairList<'a>,
}

impl Pairs<'_> {
    /// Pairs per class, in [`Class`] order; the sweep is counted by `trim`.
    pub fn class_counts(&self, trim: &Trimmer<'_>) -> [usize; 4] {
        let mut n = [0; 4];
        for chunk in self.pairs.as_slice().chunks(SWEEP) {
            for p in chunk {
                n[p.class() as usize] += 1;
            }
            trim.swept(std::mem::size_of_val(chunk) as u64);
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
    params: &TrainAdapterParams,
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
    if params.norm_weight > 0.0 {
        let norm = l_norm(q, c, out.a).mean();
        loss = loss.add(norm.mul_scalar(params.norm_weight));
    }
    if params.pull_weight > 0.0 {
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
        loss = loss.add(pull.mul_scalar(params.pull_weight));
    }
    loss
}

/// Trains an adapter on `data` with `params` (`k_p`, `pool` and `backend` are the caller's:
/// they chose the pairs and `device`), initialised and shuffled from `seed`, on `device`
/// (any backend's; autodiff is added here). The
/// vectors stay where they are (they are frozen): each batch copies its rows onto the
/// device, and only those rows enter the graph. `order` (one entry per pair, overwritten)
/// holds the shuffled order of each epoch: the caller decides where it lives. `trim`
/// releases the maps of the pairs and the order (where they are files): each sweep through
/// them is counted, and each shuffle, which touches the whole order, is followed by a
/// release, so their mapped pages stay within the trimmer's budget outside the shuffles.
pub fn train(
    data: Pairs<'_>,
    order: &mut [u32],
    params: &TrainAdapterParams,
    seed: u64,
    device: &Device,
    progress: &dyn Progress,
    trim: &Trimmer<'_>,
) -> Result<(AdapterNet, AdapterConfig, TrainSummary)> {
    let clock = std::time::Instant::now();
    let base = device.clone().inner();
    let autodiff = base.clone().autodiff();
    let shape = AdapterConfig {
        dim: data.vectors.dim,
        hidden: params.hidden_width(data.vectors.dim),
    };
    let mut net = AdapterNet::new(&shape, seed, &autodiff);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(params.weight_decay as f32)
        .init();
    let counts = data.class_counts(trim);
    let weights = class_weights(counts, params.balanced);
    let Pairs { vectors, pairs } = data;
    let n_pairs = pairs.as_slice().len();
    assert_eq!(order.len(), n_pairs, "one order entry per pair");
    u32::try_from(n_pairs).expect("fewer than 2^32 pairs");
    for (c, chunk) in order.chunks_mut(SWEEP).enumerate() {
        let start = (c * SWEEP) as u32;
        for (i, o) in chunk.iter_mut().enumerate() {
            *o = start + i as u32;
        }
        trim.swept(std::mem::size_of_val(chunk) as u64);
    }
    let steps = n_pairs.div_ceil(params.batch_size) * params.epochs;
    let steps = params.max_steps.map_or(steps, |m| m.min(steps));
    let task = progress.task("train adapter (steps)", Some(steps as u64));
    let mut epoch_loss = Vec::with_capacity(params.epochs);
    let mut step = 0;
    for epoch in 0..params.epochs {
        if step == steps {
            break;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        order.shuffle(&mut rng);
        trim.release();
        let (mut sum, mut seen) = (0.0, 0);
        for rows in order.chunks(params.batch_size).take(steps - step) {
            trim.swept(std::mem::size_of_val(rows) as u64);
            let batch = rows
                .iter()
                .map(|&r| pairs.get(r))
                .collect::<Result<Vec<PoolPair>>>()?;
            let (q, c) = vectors.gather(batch.iter().map(|p| (p.query, p.doc)), &base)?;
            let classes: Vec<Class> = batch.iter().map(|p| p.class()).collect();
            let loss = loss(&net, q.autodiff(), c.autodiff(), &classes, &weights, params);
            let n = rows.len() as f64;
            sum += f64::from(loss.clone().into_scalar::<f32>()) * n;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(params.lr, net, grads);
            task.inc(1);
            (step, seen) = (step + 1, seen + rows.len());
        }
        epoch_loss.push(sum / seen.max(1) as f64);
    }
    drop(task);
    let net = net.valid();
    let mut mean_s_fn = [0.0; 4];
    for chunk in pairs.as_slice().chunks(4096) {
        let rows = chunk.iter().map(|p| (p.query, p.doc));
        let scores = score_rows(&net, &vectors, rows, &base)?;
        for (p, s) in chunk.iter().zip(&scores) {
            mean_s_fn[p.class() as usize] += f64::from(s.s_fn);
        }
        trim.swept(std::mem::size_of_val(chunk) as u64);
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
    Ok((net, shape, summary))
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
) -> Result<Vec<PairScores>> {
    let pairs = data.pairs.as_slice();
    let mut out = Vec::with_capacity(pairs.len());
    for pairs in pairs.chunks(batch.max(1)) {
        let rows = pairs.iter().map(|p| (p.query, p.doc));
        out.extend(score_rows(net, &data.vectors, rows, device)?);
        done(pairs.len() as u64);
    }
    Ok(out)
}

/// The scores of one batch of pairs (query row, document row of `vectors`), on `device`.
pub fn score_rows(
    net: &AdapterNet,
    vectors: &Vectors<'_>,
    pairs: impl Iterator<Item = (u32, u32)>,
    device: &Device,
) -> Result<Vec<PairScores>> {
    let (q, c) = vectors.gather(pairs, device)?;
    let o = net.forward(q, c);
    let probs = softmax(o.logits, 1);
    let p_rel = probs.narrow(1, 0, 2).sum_dim(1);
    let vec = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32 tensor");
    let (qa, s, p) = (vec(o.cos_qa), vec(s_fn(o.cos_ac, o.cos_qc)), vec(p_rel));
    Ok((0..qa.len())
        .map(|i| PairScores {
            qa: qa[i],
            s_fn: s[i],
            p_rel: p[i],
        })
        .collect())
}

#[cfg(test)]
mod tests;
