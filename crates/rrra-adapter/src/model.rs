//! The adapter network: `a = c + fc2(LayerNorm(GELU(fc1(z))))` with `z = [q − c; q ⊙ c;
//! q + c]` and `fc2` zero-initialised, and a linear four-class head over `[cos(q,a),
//! cos(q,c), cos(a,c), z]`. Also the two scores and the linear-normalisation loss.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Guards divisions by norms and by `1 − cos(q, c)`.
const EPS: f64 = 1e-8;

/// The shape of an adapter, saved as `adapter.json` next to its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Width of the embeddings it adapts.
    pub dim: usize,
    /// Width of the MLP's hidden layer (METHOD.md's default: `dim`).
    pub hidden: usize,
}

#[derive(Module, Debug)]
pub struct AdapterNet {
    fc1: Linear,
    norm: LayerNorm,
    fc2: Linear,
    head: Linear,
}

/// What one forward pass gives per pair (`[n, d]` or `[n, 1]`).
pub struct Output {
    /// The adapted candidate `a`.
    pub a: Tensor<2>,
    /// Class logits `[n, 4]` in [`crate::Class`] order.
    pub logits: Tensor<2>,
    /// `cos(q, a)`, the QA-score.
    pub cos_qa: Tensor<2>,
    /// `cos(a, c)`, the CA-score.
    pub cos_ac: Tensor<2>,
    /// `cos(q, c)`.
    pub cos_qc: Tensor<2>,
}

/// A `Linear` with weights uniform in `±1/sqrt(d_in)` drawn from `rng` (or zeros).
fn linear(rng: &mut ChaCha8Rng, d_in: usize, d_out: usize, zero: bool, device: &Device) -> Linear {
    let k = 1.0 / (d_in as f32).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        if zero {
            vec![0.0; n]
        } else {
            (0..n).map(|_| rng.random_range(-k..k)).collect()
        }
    };
    let weight = Tensor::<2>::from_data(TensorData::new(draw(d_in * d_out), [d_in, d_out]), device);
    let bias = Tensor::<1>::from_data(TensorData::new(draw(d_out), [d_out]), device);
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// Row-wise cosine of two `[n, d]` tensors, `[n, 1]`.
pub fn cosine(x: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
    let dot = x.clone().mul(y.clone()).sum_dim(1);
    let nx = x.clone().mul(x).sum_dim(1).sqrt();
    let ny = y.clone().mul(y).sum_dim(1).sqrt();
    dot.div(nx.mul(ny).clamp_min(EPS))
}

impl AdapterNet {
    /// A fresh adapter, its random weights drawn from `seed`; `fc2` is zero so `a = c`.
    pub fn new(config: &AdapterConfig, seed: u64, device: &Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (d, h) = (config.dim, config.hidden);
        AdapterNet {
            fc1: linear(&mut rng, 3 * d, h, false, device),
            norm: LayerNormConfig::new(h).init(device),
            fc2: linear(&mut rng, h, d, true, device),
            head: linear(&mut rng, 3 + 3 * d, 4, false, device),
        }
    }

    /// The adapter on `n` pairs of query and candidate vectors, both `[n, d]`.
    pub fn forward(&self, q: Tensor<2>, c: Tensor<2>) -> Output {
        let z = Tensor::cat(
            vec![
                q.clone().sub(c.clone()),
                q.clone().mul(c.clone()),
                q.clone().add(c.clone()),
            ],
            1,
        );
        let hidden = self.norm.forward(gelu(self.fc1.forward(z.clone())));
        let a = c.clone().add(self.fc2.forward(hidden));
        let cos_qa = cosine(q.clone(), a.clone());
        let cos_qc = cosine(q, c.clone());
        let cos_ac = cosine(a.clone(), c);
        let features = Tensor::cat(vec![cos_qa.clone(), cos_qc.clone(), cos_ac.clone(), z], 1);
        Output {
            a,
            logits: self.head.forward(features),
            cos_qa,
            cos_ac,
            cos_qc,
        }
    }

    /// Trainable parameters.
    pub fn parameters(&self) -> usize {
        self.num_params()
    }
}

/// The false-negative likelihood from the CA-score: how far `a` has turned from `c` towards
/// `q`, `(1 − cos(a, c)) / (1 − cos(q, c))` clipped to `[0, 1]` (0 when `a = c`, 1 when
/// `a` points like `q`). METHOD.md asks for `1 − sim(a, c)` mapped to `[0, 1]`; dividing by
/// the largest value it takes on the segment between `c` and `q` is our mapping.
pub fn s_fn(cos_ac: Tensor<2>, cos_qc: Tensor<2>) -> Tensor<2> {
    let num = cos_ac.neg().add_scalar(1.0);
    let den = cos_qc.neg().add_scalar(1.0).clamp_min(EPS);
    num.div(den).clamp(0.0, 1.0)
}

/// The linear-normalisation loss per pair, `min_{α∈[0,1]} ‖a − (α q + (1−α) c)‖²`, at the
/// closed-form minimiser `α* = clip(((a − c)·(q − c)) / ‖q − c‖², 0, 1)`; `[n, 1]`.
pub fn l_norm(q: Tensor<2>, c: Tensor<2>, a: Tensor<2>) -> Tensor<2> {
    let qc = q.sub(c.clone());
    let ac = a.sub(c);
    let alpha = ac
        .clone()
        .mul(qc.clone())
        .sum_dim(1)
        .div(qc.clone().mul(qc.clone()).sum_dim(1).clamp_min(EPS))
        .clamp(0.0, 1.0)
        .detach();
    let r = ac.sub(qc.mul(alpha));
    r.clone().mul(r).sum_dim(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(rows: &[Vec<f32>]) -> Tensor<2> {
        let d = rows[0].len();
        let flat: Vec<f32> = rows.concat();
        Tensor::from_data(TensorData::new(flat, [rows.len(), d]), &Device::flex())
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn random_rows(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect()
    }

    #[test]
    fn zero_initialised_last_layer_gives_a_equal_c() {
        let device = Device::flex();
        let net = AdapterNet::new(&AdapterConfig { dim: 8, hidden: 16 }, 7, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (q, c) = (random_rows(&mut rng, 5, 8), random_rows(&mut rng, 5, 8));
        let out = net.forward(tensor(&q), tensor(&c));
        assert_eq!(values(out.a), c.concat());
        // With a = c: cos(a, c) = 1, so s_fn = 0, and the QA-score is cos(q, c).
        let s = values(s_fn(out.cos_ac, out.cos_qc.clone()));
        assert!(s.iter().all(|&x| x.abs() < 1e-5), "{s:?}");
        let qa = values(out.cos_qa);
        for (x, y) in qa.iter().zip(values(out.cos_qc)) {
            assert!((x - y).abs() < 1e-6);
        }
        assert_eq!(
            net.parameters(),
            3 * 8 * 16 + 16 + 2 * 16 + 16 * 8 + 8 + (3 + 3 * 8) * 4 + 4
        );
    }

    #[test]
    fn same_seed_same_weights() {
        let device = Device::flex();
        let config = AdapterConfig { dim: 4, hidden: 4 };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (q, c) = (random_rows(&mut rng, 3, 4), random_rows(&mut rng, 3, 4));
        let logits = |seed| {
            values(
                AdapterNet::new(&config, seed, &device)
                    .forward(tensor(&q), tensor(&c))
                    .logits,
            )
        };
        assert_eq!(logits(3), logits(3));
        assert_ne!(logits(3), logits(4));
    }

    /// `‖a − (α q + (1−α) c)‖²` in f64.
    fn distance(q: &[f32], c: &[f32], a: &[f32], alpha: f64) -> f64 {
        q.iter()
            .zip(c)
            .zip(a)
            .map(|((&q, &c), &a)| {
                let p = alpha * f64::from(q) + (1.0 - alpha) * f64::from(c);
                (f64::from(a) - p).powi(2)
            })
            .sum()
    }

    #[test]
    fn closed_form_alpha_matches_a_brute_force_minimum() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 40;
        let (q, c) = (random_rows(&mut rng, n, 6), random_rows(&mut rng, n, 6));
        // Points near the segment, beyond either end, and far off it.
        let a: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                let t = -0.5 + 2.0 * i as f32 / n as f32;
                (0..6)
                    .map(|j| t * q[i][j] + (1.0 - t) * c[i][j] + rng.random_range(-0.3f32..0.3))
                    .collect()
            })
            .collect();
        let got = values(l_norm(tensor(&q), tensor(&c), tensor(&a)));
        let mut clipped = 0;
        for i in 0..n {
            let brute = (0..=100_000)
                .map(|k| distance(&q[i], &c[i], &a[i], k as f64 / 100_000.0))
                .fold(f64::INFINITY, f64::min);
            let rel = (f64::from(got[i]) - brute).abs() / brute.max(1e-6);
            assert!(
                rel < 1e-4,
                "pair {i}: closed form {} vs brute force {brute}",
                got[i]
            );
            let unclipped = brute < distance(&q[i], &c[i], &a[i], 0.0) - 1e-9
                && brute < distance(&q[i], &c[i], &a[i], 1.0) - 1e-9;
            clipped += usize::from(!unclipped);
        }
        assert!(
            clipped > 0 && clipped < n,
            "the cases cover both clipped and interior minima"
        );
    }

    #[test]
    fn s_fn_is_zero_at_c_and_one_at_q() {
        let q = vec![vec![1.0f32, 0.0]];
        let c = vec![vec![0.0f32, 1.0]];
        let mid = vec![vec![0.5f32, 0.5]];
        let s = |a: &Vec<Vec<f32>>| {
            values(s_fn(
                cosine(tensor(a), tensor(&c)),
                cosine(tensor(&q), tensor(&c)),
            ))[0]
        };
        assert!(s(&c).abs() < 1e-6);
        assert!((s(&q) - 1.0).abs() < 1e-6);
        // Halfway along the segment is 45° from both: 1 − cos 45°.
        assert!((s(&mid) - (1.0 - std::f32::consts::FRAC_1_SQRT_2)).abs() < 1e-5);
    }
}
