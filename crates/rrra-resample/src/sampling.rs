//! The sampling math, free of Parquet: per-candidate weights of each sampler
//! ([`Weighting`]), exact weighted draws without replacement
//! ([`draw_without_replacement`]), uniform draws from a corpus with exclusions
//! ([`draw_uniform_excluding`]) and the per-pair random stream ([`pair_rng`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One candidate of a pair's pool, as a weighting sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolEntry {
    /// 1-based rank in the full first-stage ranking.
    pub rank: u32,
    /// `s(q, d_i)`, the first-stage score (a cosine for dense mining).
    pub score: f64,
    /// `s(d+, d_i)`, the similarity of the candidate to the pair's positive. Only
    /// [`Weighting::TriSampler`] reads it; the other weightings ignore it.
    pub pos_sim: f64,
    /// The adapter's false-negative likelihood of the candidate, in `[0, 1]`. Only
    /// [`Weighting::Rrra`] reads it.
    pub s_fn: f64,
}

/// The hardness score `s_HN` in `[0, 1]` of [`Weighting::Rrra`] (`resample.rrra`'s
/// `hardness` param).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    /// The SimANS weight `exp(-a (s_i - s_pos - b)^2)`, with the weighting's `a` and `b`.
    #[default]
    Simans,
    /// The first-stage score min-max normalised over the pool (1 when all are equal).
    MinMax,
}

/// How a sampler weighs the candidates of a pool. Weights are unnormalised and `>= 0`;
/// a candidate of weight 0 is never drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// 1 when `r_min <= rank <= r_max`, else 0 (ANCE-style window over the full ranking).
    Uniform { r_min: u32, r_max: u32 },
    /// SimANS: `exp(-a (s_i - s_pos - b)^2)`.
    Simans { a: f64, b: f64 },
    /// TriSampler: `exp(-(s_i - s_pos)^2 / 4) * ReLU(s(d+, d_i) - s_i) * 1[theta <= theta_max]`,
    /// `theta = |acos(s_pos) - acos(s_i)|` (cosines clamped to `[-1, 1]`).
    TriSampler { theta_max_deg: f64 },
    /// Positive-aware margin (NV-Retriever TopK-PercPos): 1 when
    /// `s_i < s_pos - (1 - r) * |s_pos|`, else 0. That is `s_i < r * s_pos` for `s_pos >= 0`
    /// (the paper's rule); for `s_pos < 0`, where `r * s_pos` lies *above* the positive, the
    /// margin is kept below it, so a negative scoring higher than the positive is never kept.
    Margin { r: f64 },
    /// RRRA: `s_HN,i · (1 - s_FN,i)^gamma`; `a` and `b` are those of [`Hardness::Simans`]
    /// (unused by [`Hardness::MinMax`]).
    Rrra {
        hardness: Hardness,
        a: f64,
        b: f64,
        gamma: f64,
    },
}

impl Weighting {
    /// The weight of candidate `e` for a pair whose positive scores `s_pos = s(q, d+)`.
    /// For [`Hardness::MinMax`] the pool's score range is needed: use [`Weighting::weights`];
    /// here the range is taken as `[0, 1]`.
    pub fn weight(&self, e: &PoolEntry, s_pos: f64) -> f64 {
        self.weight_in(e, s_pos, (0.0, 1.0))
    }

    /// The weight of `e` in a pool whose first-stage scores span `range` (min, max).
    fn weight_in(&self, e: &PoolEntry, s_pos: f64, range: (f64, f64)) -> f64 {
        match *self {
            Weighting::Uniform { r_min, r_max } => indicator((r_min..=r_max).contains(&e.rank)),
            Weighting::Simans { a, b } => (-a * (e.score - s_pos - b).powi(2)).exp(),
            Weighting::TriSampler { theta_max_deg } => {
                let theta = (angle(s_pos) - angle(e.score)).abs();
                let relu = (e.pos_sim - e.score).max(0.0);
                (-(e.score - s_pos).powi(2) / 4.0).exp()
                    * relu
                    * indicator(theta <= theta_max_deg.to_radians())
            }
            Weighting::Margin { r } => indicator(e.score < margin_threshold(r, s_pos)),
            Weighting::Rrra {
                hardness,
                a,
                b,
                gamma,
            } => {
                let s_hn = match hardness {
                    Hardness::Simans => (-a * (e.score - s_pos - b).powi(2)).exp(),
                    Hardness::MinMax => {
                        let (lo, hi) = range;
                        if hi > lo {
                            ((e.score - lo) / (hi - lo)).clamp(0.0, 1.0)
                        } else {
                            1.0
                        }
                    }
                };
                s_hn * (1.0 - e.s_fn.clamp(0.0, 1.0)).powf(gamma)
            }
        }
    }

    /// The weights of a whole pool.
    pub fn weights(&self, pool: &[PoolEntry], s_pos: f64) -> Vec<f64> {
        let range = pool
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                (lo.min(e.score), hi.max(e.score))
            });
        pool.iter()
            .map(|e| self.weight_in(e, s_pos, range))
            .collect()
    }
}

/// The score a candidate must stay below in [`Weighting::Margin`]:
/// `s_pos - (1 - r) * |s_pos|`, equal to `r * s_pos` when `s_pos >= 0`.
pub fn margin_threshold(r: f64, s_pos: f64) -> f64 {
    s_pos - (1.0 - r) * s_pos.abs()
}

fn indicator(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The angle (radians) of a cosine, clamped into `acos`'s domain.
fn angle(cos: f64) -> f64 {
    cos.clamp(-1.0, 1.0).acos()
}

/// Draws up to `n` distinct indices with probability proportional to `weights`, in draw
/// order: the first is index `i` with probability `w_i / Σw`, each next one likewise among
/// those not yet drawn (sequential renormalised draws). Indices whose weight is not `> 0`
/// (zero, negative, NaN) are never drawn, so fewer than `n` come back when fewer have a
/// positive weight.
///
/// Exact, by Efraimidis–Spirakis keys in their exponential form: index `i` gets the key
/// `E_i / w_i` with `E_i ~ Exp(1)`, and the `n` smallest keys, in increasing order, are
/// distributed as the sequential draws.
pub fn draw_without_replacement<R: Rng + ?Sized>(
    weights: &[f64],
    n: usize,
    rng: &mut R,
) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut keyed: Vec<(f64, usize)> = weights
        .iter()
        .enumerate()
        .filter(|&(_, &w)| w > 0.0)
        .map(|(i, &w)| {
            // `1 - u` lies in (0, 1], so the exponential variate is finite.
            let e = -(1.0 - rng.random::<f64>()).ln();
            (e / w, i)
        })
        .collect();
    let by_key = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if n < keyed.len() {
        keyed.select_nth_unstable_by(n, by_key);
        keyed.truncate(n);
    }
    keyed.sort_unstable_by(by_key);
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// The first `n` indices whose weight is `> 0`: the top-ranked kept candidates of a pool
/// listed in rank order.
pub fn top_ranked(weights: &[f64], n: usize) -> Vec<usize> {
    weights
        .iter()
        .enumerate()
        .filter(|&(_, &w)| w > 0.0)
        .map(|(i, _)| i)
        .take(n)
        .collect()
}

/// Draws up to `n` distinct indices of `0..len`, uniformly and without replacement,
/// avoiding `excluded` (indices out of range are ignored); fewer come back when fewer are
/// eligible. Rejection sampling while at least half of `0..len` stays eligible after the
/// draws (so each try succeeds with probability `>= 1/2`), else a partial Fisher–Yates
/// shuffle of the eligible indices; both are exact.
pub fn draw_uniform_excluding<R: Rng + ?Sized>(
    len: usize,
    n: usize,
    excluded: &[usize],
    rng: &mut R,
) -> Vec<usize> {
    let mut excluded: Vec<usize> = excluded.iter().copied().filter(|&i| i < len).collect();
    excluded.sort_unstable();
    excluded.dedup();
    let available = len - excluded.len();
    let n = n.min(available);
    if (available - n) * 2 >= len {
        let mut drawn: Vec<usize> = Vec::with_capacity(n);
        while drawn.len() < n {
            let i = rng.random_range(0..len as u64) as usize;
            if excluded.binary_search(&i).is_err() && !drawn.contains(&i) {
                drawn.push(i);
            }
        }
        return drawn;
    }
    let mut eligible: Vec<usize> = (0..len)
        .filter(|i| excluded.binary_search(i).is_err())
        .collect();
    for j in 0..n {
        let k = rng.random_range(j as u64..eligible.len() as u64) as usize;
        eligible.swap(j, k);
    }
    eligible.truncate(n);
    eligible
}

/// The random stream of one (query, positive) pair: ChaCha8 seeded with the blake3 hash of
/// the pipeline seed and both ids, so a pair's draws depend on nothing else (not on the
/// order pairs are visited) and are identical on every platform and run.
pub fn pair_rng(seed: u64, query_id: &str, positive_id: &str) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"rrra-resample pair v1\0");
    hasher.update(&seed.to_le_bytes());
    for id in [query_id, positive_id] {
        hasher.update(&(id.len() as u64).to_le_bytes());
        hasher.update(id.as_bytes());
    }
    ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests;
