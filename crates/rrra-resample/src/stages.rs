//! The `resample.*` pipeline stages: mined `candidates` in, one `examples` row per (query,
//! positive) pair out, with hard negatives drawn from the query's pool and optional random
//! corpus negatives appended.
//!
//! Candidates are streamed one query at a time, so each query's rows must be contiguous (as
//! `mine.*` writes them). A query's pool is its `pool` best-ranked non-positive rows (rank,
//! then doc id). Every pair has its own random stream ([`pair_rng`]), so the output depends
//! on the seed and the inputs only.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rrra_common::artifact::{ParquetSink, for_each_batch, parquet_rows};
use rrra_common::embeddings;
use rrra_common::parts::{Parts, concat_rows};
use rrra_common::records::{Candidate, Doc, Example, Scored, split_pool};
use rrra_common::schema::ArtifactKind::{
    Candidates, Corpus, Embeddings, Examples, Scored as ScoredKind,
};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::sampling::{
    Hardness, PoolEntry, Weighting, draw_uniform_excluding, draw_without_replacement, pair_rng,
    top_ranked,
};

const DEFAULT_N_NEG: usize = 7;
const DEFAULT_POOL: usize = 200;

/// The pool samplers read mined `candidates`, or `scored` candidates (the same rows with the
/// adapter's scores, which they ignore), so that a pipeline swaps `resample.rrra` for a
/// baseline by changing `kind` alone.
const POOL_INPUTS: &[Port] = &[
    Port::optional("candidates", Candidates),
    Port::optional("scored", ScoredKind),
    Port::optional("corpus", Corpus),
];
const OUTPUTS: &[Port] = &[Port::required("examples", Examples)];

/// What every pool sampler draws per pair.
#[derive(Debug, Clone, Copy)]
struct Budget {
    n_neg: usize,
    n_rand: usize,
    pool: usize,
}

fn check_budget(n_neg: usize, n_rand: usize, pool: usize) -> Result<(), String> {
    if pool == 0 {
        return Err("param pool must be at least 1".into());
    }
    if n_neg + n_rand == 0 {
        return Err("params n_neg and n_rand are both 0: no negatives to draw".into());
    }
    Ok(())
}

/// How a stage picks a pair's negatives.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `n_neg` weighted draws without replacement from the pool.
    Sample(Weighting),
    /// The `n_neg` best-ranked pool candidates of nonzero weight.
    Top(Weighting),
    /// `n_neg` random corpus documents, no pool.
    Random,
}

/// Params of `resample.uniform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UniformParams {
    /// Hard negatives drawn per (query, positive) pair.
    pub n_neg: usize,
    /// Random corpus negatives appended per pair (needs input `corpus` when > 0).
    pub n_rand: usize,
    /// Only the `pool` best-ranked non-positive candidates of a query are used.
    pub pool: usize,
    /// Lowest rank of the window (1-based, in the full ranking, positives counted).
    pub r_min: u32,
    /// Highest rank of the window.
    pub r_max: u32,
}

impl Default for UniformParams {
    fn default() -> Self {
        UniformParams {
            n_neg: DEFAULT_N_NEG,
            n_rand: 0,
            pool: DEFAULT_POOL,
            r_min: 1,
            r_max: 200,
        }
    }
}

/// `resample.uniform`: uniform over the pool candidates ranked in `[r_min, r_max]`.
pub struct ResampleUniform;

impl Stage for ResampleUniform {
    type Params = UniformParams;
    const KIND: &'static str = "resample.uniform";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "hard negatives uniform over a rank window of the mined pool";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        POOL_INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &UniformParams) -> Result<(), String> {
        check_budget(p.n_neg, p.n_rand, p.pool)?;
        if p.r_min == 0 || p.r_min > p.r_max {
            return Err(format!(
                "params need 1 <= r_min <= r_max, got r_min {} and r_max {}",
                p.r_min, p.r_max
            ));
        }
        Ok(())
    }
    fn run(p: &UniformParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let weighting = Weighting::Uniform {
            r_min: p.r_min,
            r_max: p.r_max,
        };
        let budget = Budget {
            n_neg: p.n_neg,
            n_rand: p.n_rand,
            pool: p.pool,
        };
        resample(Self::KIND, budget, Rule::Sample(weighting), None, None, ctx)
    }
}

/// Params of `resample.simans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SimansParams {
    /// Hard negatives drawn per (query, positive) pair.
    pub n_neg: usize,
    /// Random corpus negatives appended per pair (needs input `corpus` when > 0).
    pub n_rand: usize,
    /// Only the `pool` best-ranked non-positive candidates of a query are used.
    pub pool: usize,
    /// Sharpness of `exp(-a (s_i - s_pos - b)^2)`. The paper's `a = 0.5` is for unnormalised
    /// dot products; our scores are cosines, whose gaps are some 20 times smaller, so the
    /// default is 200 = 0.5 / τ² with τ = 0.05, the training temperature: the same kernel on
    /// the logit scale `s / τ` the loss sees, a Gaussian of standard deviation
    /// `1 / sqrt(2a) = 0.05` in cosine. With `a = 0.5` on cosines every candidate weighs
    /// nearly the same (`exp(-0.5 · 0.3²) ≈ 0.96`).
    pub a: f64,
    /// Offset of the kernel's peak from the positive's score (cosine units; the paper's
    /// `b = 1.0` on NQ logits is about 0.05 here).
    pub b: f64,
}

impl Default for SimansParams {
    fn default() -> Self {
        SimansParams {
            n_neg: DEFAULT_N_NEG,
            n_rand: 0,
            pool: DEFAULT_POOL,
            a: 200.0,
            b: 0.0,
        }
    }
}

/// `resample.simans`: SimANS, `p_i ∝ exp(-a (s_i - s_pos - b)^2)` over the pool.
pub struct ResampleSimans;

impl Stage for ResampleSimans {
    type Params = SimansParams;
    const KIND: &'static str = "resample.simans";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "SimANS hard negatives, p ∝ exp(-a (s_i - s_pos - b)^2)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        POOL_INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &SimansParams) -> Result<(), String> {
        check_budget(p.n_neg, p.n_rand, p.pool)?;
        if !(p.a >= 0.0 && p.a.is_finite()) {
            return Err(format!("param a must be finite and >= 0, got {}", p.a));
        }
        if !p.b.is_finite() {
            return Err(format!("param b must be finite, got {}", p.b));
        }
        Ok(())
    }
    fn run(p: &SimansParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let budget = Budget {
            n_neg: p.n_neg,
            n_rand: p.n_rand,
            pool: p.pool,
        };
        let weighting = Weighting::Simans { a: p.a, b: p.b };
        resample(Self::KIND, budget, Rule::Sample(weighting), None, None, ctx)
    }
}

/// Params of `resample.trisampler`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TriSamplerParams {
    /// Hard negatives drawn per (query, positive) pair.
    pub n_neg: usize,
    /// Random corpus negatives appended per pair (needs input `corpus` when > 0).
    pub n_rand: usize,
    /// Only the `pool` best-ranked non-positive candidates of a query are used.
    pub pool: usize,
    /// Widest angle, in degrees, between `acos s(q, d+)` and `acos s(q, d_i)`.
    pub theta_max_deg: f64,
}

impl Default for TriSamplerParams {
    fn default() -> Self {
        TriSamplerParams {
            n_neg: DEFAULT_N_NEG,
            n_rand: 0,
            pool: DEFAULT_POOL,
            theta_max_deg: 60.0,
        }
    }
}

/// `resample.trisampler`: TriSampler,
/// `w = exp(-(s_i - s_pos)^2 / 4) · ReLU(s(d+, d_i) - s(q, d_i)) · 1[θ <= θ_max]`, with
/// `s(d+, d_i)` the inner product of the two documents' vectors in input `embeddings`.
pub struct ResampleTriSampler;

impl Stage for ResampleTriSampler {
    type Params = TriSamplerParams;
    const KIND: &'static str = "resample.trisampler";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "TriSampler hard negatives: near the positive, closer to it than to the query, in an angle";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::optional("candidates", Candidates),
                Port::optional("scored", ScoredKind),
                Port::required("embeddings", Embeddings),
                Port::optional("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &TriSamplerParams) -> Result<(), String> {
        check_budget(p.n_neg, p.n_rand, p.pool)?;
        if !(p.theta_max_deg > 0.0 && p.theta_max_deg <= 180.0) {
            return Err(format!(
                "param theta_max_deg must be in (0, 180], got {}",
                p.theta_max_deg
            ));
        }
        Ok(())
    }
    fn run(p: &TriSamplerParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let budget = Budget {
            n_neg: p.n_neg,
            n_rand: p.n_rand,
            pool: p.pool,
        };
        let weighting = Weighting::TriSampler {
            theta_max_deg: p.theta_max_deg,
        };
        resample(Self::KIND, budget, Rule::Sample(weighting), None, None, ctx)
    }
}

/// How `resample.margin` picks among the kept candidates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MarginMode {
    /// Uniformly at random.
    #[default]
    Sample,
    /// The best-ranked ones.
    Top,
}

/// Params of `resample.margin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MarginParams {
    /// Hard negatives drawn per (query, positive) pair.
    pub n_neg: usize,
    /// Random corpus negatives appended per pair (needs input `corpus` when > 0).
    pub n_rand: usize,
    /// Only the `pool` best-ranked non-positive candidates of a query are used.
    pub pool: usize,
    /// A candidate is kept when `s_i < s_pos − (1 − r)·|s_pos|` (`r · s_pos` for a positive
    /// `s_pos`; below the positive, never above it, when `s_pos < 0`).
    pub r: f64,
    /// `sample` (uniform over the kept) or `top` (the best-ranked kept).
    pub mode: MarginMode,
}

impl Default for MarginParams {
    fn default() -> Self {
        MarginParams {
            n_neg: DEFAULT_N_NEG,
            n_rand: 0,
            pool: DEFAULT_POOL,
            r: 0.95,
            mode: MarginMode::Sample,
        }
    }
}

/// `resample.margin`: positive-aware negatives (NV-Retriever TopK-PercPos), candidates
/// scoring below `r` times the positive's score (for `s_pos < 0`, below
/// `s_pos − (1 − r)·|s_pos|`: see [`crate::sampling::Weighting::Margin`]).
pub struct ResampleMargin;

impl Stage for ResampleMargin {
    type Params = MarginParams;
    const KIND: &'static str = "resample.margin";
    // 2: the margin stays below the positive when s_pos < 0 (it kept s_i < r · s_pos).
    const VERSION: u32 = 2;
    const ABOUT: &'static str =
        "positive-aware hard negatives (TopK-PercPos), s_i < s_pos - (1 - r)|s_pos|";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        POOL_INPUTS
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &MarginParams) -> Result<(), String> {
        check_budget(p.n_neg, p.n_rand, p.pool)?;
        if !(p.r > 0.0 && p.r.is_finite()) {
            return Err(format!("param r must be finite and > 0, got {}", p.r));
        }
        Ok(())
    }
    fn run(p: &MarginParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let budget = Budget {
            n_neg: p.n_neg,
            n_rand: p.n_rand,
            pool: p.pool,
        };
        let weighting = Weighting::Margin { r: p.r };
        let rule = match p.mode {
            MarginMode::Sample => Rule::Sample(weighting),
            MarginMode::Top => Rule::Top(weighting),
        };
        resample(Self::KIND, budget, rule, None, None, ctx)
    }
}

/// Params of `resample.random`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RandomParams {
    /// Random corpus negatives per (query, positive) pair.
    pub n_neg: usize,
}

impl Default for RandomParams {
    fn default() -> Self {
        RandomParams {
            n_neg: DEFAULT_N_NEG,
        }
    }
}

/// `resample.random`: `n_neg` uniformly random corpus documents per pair, none of them a
/// positive of the query; the mined pool is not used.
pub struct ResampleRandom;

impl Stage for ResampleRandom {
    type Params = RandomParams;
    const KIND: &'static str = "resample.random";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "random corpus negatives (no mined pool)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("candidates", Candidates),
                Port::required("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &RandomParams) -> Result<(), String> {
        if p.n_neg == 0 {
            return Err("param n_neg must be at least 1".into());
        }
        Ok(())
    }
    fn run(p: &RandomParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let budget = Budget {
            n_neg: p.n_neg,
            n_rand: 0,
            pool: 0,
        };
        resample(Self::KIND, budget, Rule::Random, None, None, ctx)
    }
}

/// The hardness score of `resample.rrra`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HardnessKind {
    /// The SimANS weight with the stage's `a` and `b`.
    #[default]
    Simans,
    /// The first-stage score, min-max normalised over the pool.
    Minmax,
}

/// Which adapter score `resample.rrra` treats as the false-negative likelihood.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FnScore {
    /// `s_fn`, from the CA-score `cos(a, c)` (METHOD.md).
    #[default]
    Ca,
    /// `p_rel`, the class head's probability that the pair is labelled relevant.
    Head,
}

/// Params of `resample.rrra`: those of `resample.simans` plus `gamma`, `hardness` and
/// `fn_score`, so a pipeline that sets only the shared ones swaps the two by `kind` alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RrraParams {
    /// Hard negatives drawn per (query, positive) pair.
    pub n_neg: usize,
    /// Random corpus negatives appended per pair (needs input `corpus` when > 0).
    pub n_rand: usize,
    /// Only the `pool` best-ranked non-positive candidates of a query are used.
    pub pool: usize,
    /// Exponent of the false-negative discount `(1 - s_FN)^gamma`; 0 ignores the adapter.
    pub gamma: f64,
    /// `simans` (default) or `minmax`.
    pub hardness: HardnessKind,
    /// SimANS `a` of the hardness score (see `resample.simans`).
    pub a: f64,
    /// SimANS `b` of the hardness score.
    pub b: f64,
    /// `ca` (default: `s_fn`) or `head` (`p_rel`).
    pub fn_score: FnScore,
    /// Cut the output into parts of this many queries (in input order), each written to
    /// the entry's work folder as it finishes (a killed run resumes at the first unfinished
    /// part) and concatenated. Unset: no split. Not in the cache key: every pair draws from
    /// its own seeded stream, so the examples do not depend on it.
    #[serde(skip_serializing)]
    pub part_queries: Option<u64>,
}

impl Default for RrraParams {
    fn default() -> Self {
        RrraParams {
            n_neg: DEFAULT_N_NEG,
            n_rand: 0,
            pool: DEFAULT_POOL,
            gamma: 1.0,
            hardness: HardnessKind::Simans,
            a: 200.0,
            b: 0.0,
            fn_score: FnScore::Ca,
            part_queries: None,
        }
    }
}

/// `resample.rrra`: adapter-weighted resampling, `w_i = s_HN,i · (1 - s_FN,i)^gamma` over
/// the pool of a `scored` input (mined candidates scored by `score.adapter`).
pub struct ResampleRrra;

impl Stage for ResampleRrra {
    type Params = RrraParams;
    const KIND: &'static str = "resample.rrra";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "RRRA hard negatives, w = s_HN · (1 - s_FN)^γ from the adapter";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("scored", ScoredKind),
                Port::optional("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        OUTPUTS
    }
    fn check(p: &RrraParams) -> Result<(), String> {
        check_budget(p.n_neg, p.n_rand, p.pool)?;
        for (name, v) in [("gamma", p.gamma), ("a", p.a)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("param {name} must be finite and >= 0, got {v}"));
            }
        }
        if !p.b.is_finite() {
            return Err(format!("param b must be finite, got {}", p.b));
        }
        if p.part_queries == Some(0) {
            return Err("param part_queries must be at least 1".into());
        }
        Ok(())
    }
    fn run(p: &RrraParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let budget = Budget {
            n_neg: p.n_neg,
            n_rand: p.n_rand,
            pool: p.pool,
        };
        let hardness = match p.hardness {
            HardnessKind::Simans => Hardness::Simans { a: p.a, b: p.b },
            HardnessKind::Minmax => Hardness::MinMax,
        };
        let weighting = Weighting::Rrra {
            hardness,
            gamma: p.gamma,
        };
        resample(
            Self::KIND,
            budget,
            Rule::Sample(weighting),
            Some(p.fn_score),
            p.part_queries,
            ctx,
        )
    }
}

/// Where a stage's pools come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Input `candidates` (no adapter scores).
    Candidates,
    /// Input `scored`, with this score as `s_fn`.
    Scored(FnScore),
}

/// The file of input `port`, or an error saying which stage needs it and why.
fn need_input<'c>(
    ctx: &'c StageContext<'_>,
    kind: &str,
    port: &str,
    why: &str,
) -> Result<&'c Path> {
    ctx.optional_input(port).ok_or_else(|| {
        Error::Invalid(format!(
            "{kind} needs input {port:?} ({why}), but it is not connected"
        ))
    })
}

/// One query's candidates: its positives in file order and its pool in rank order.
struct QueryGroup {
    query_id: String,
    positives: Vec<Candidate>,
    pool: Vec<Candidate>,
    /// The false-negative likelihood of each pool entry (0 without adapter scores).
    pool_fn: Vec<f64>,
    rows: usize,
}

/// Calls `f` per query of a candidates (or scored) file, in file order, with its pool cut
/// to `pool`.
fn for_each_query(
    path: &Path,
    pool: usize,
    source: Source,
    mut f: impl FnMut(QueryGroup) -> Result<()>,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut rows: Vec<(Candidate, f64)> = Vec::new();
    let mut push = |row: (Candidate, f64)| -> Result<()> {
        if rows.first().is_some_and(|r| r.0.query_id != row.0.query_id) {
            f(group(std::mem::take(&mut rows), pool, &mut seen)?)?;
        }
        rows.push(row);
        Ok(())
    };
    match source {
        Source::Candidates => for_each_batch::<Candidate>(path, |batch| {
            batch.into_iter().try_for_each(|c| push((c, 0.0)))
        })?,
        Source::Scored(which) => for_each_batch::<Scored>(path, |batch| {
            batch.into_iter().try_for_each(|s| {
                let fn_score = match which {
                    FnScore::Ca => s.s_fn,
                    FnScore::Head => s.p_rel,
                };
                push((s.candidate, fn_score))
            })
        })?,
    }
    if !rows.is_empty() {
        f(group(rows, pool, &mut seen)?)?;
    }
    Ok(())
}

/// Validates one query's rows (non-empty, all of that query) and splits them.
fn group(
    rows: Vec<(Candidate, f64)>,
    pool: usize,
    seen: &mut HashSet<String>,
) -> Result<QueryGroup> {
    let query_id = rows[0].0.query_id.clone();
    let bad =
        |message: String| Error::Invalid(format!("candidates of query {query_id:?}: {message}"));
    if !seen.insert(query_id.clone()) {
        return Err(bad(
            "its rows are not contiguous; expected each query's rows together, as mine.* writes them"
                .into(),
        ));
    }
    let mut docs = HashSet::with_capacity(rows.len());
    for (row, s_fn) in &rows {
        if !(0.0..=1.0).contains(s_fn) {
            return Err(bad(format!(
                "doc {:?} has a false-negative score {s_fn}; expected a value in [0, 1]",
                row.doc_id
            )));
        }
        if !docs.insert(row.doc_id.as_str()) {
            return Err(bad(format!(
                "doc {:?} appears twice; expected one row per (query, doc)",
                row.doc_id
            )));
        }
        if !row.score.is_finite() {
            return Err(bad(format!(
                "doc {:?} has score {}; expected a finite score",
                row.doc_id, row.score
            )));
        }
        if !row.positive && row.rank == 0 {
            return Err(bad(format!(
                "negative doc {:?} has rank 0; expected its 1-based rank in the ranking",
                row.doc_id
            )));
        }
    }
    let n = rows.len();
    let (positives, negatives) = split_pool(rows, pool, |r| &r.0);
    if positives.is_empty() {
        return Err(bad(format!(
            "no positive among its {n} rows; expected at least one row with positive = true"
        )));
    }
    let (pool, pool_fn) = negatives.into_iter().unzip();
    Ok(QueryGroup {
        query_id,
        positives: positives.into_iter().map(|(c, _)| c).collect(),
        pool,
        pool_fn,
        rows: n,
    })
}

/// The sorted, distinct doc ids of a corpus.
fn corpus_ids(path: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for_each_batch::<Doc>(path, |docs| {
        ids.extend(docs.into_iter().map(|d| d.id));
        Ok(())
    })?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The vectors of the documents a stage needs, by id.
struct Vectors {
    index: HashMap<String, usize>,
    values: Vec<f32>,
    dim: usize,
}

impl Vectors {
    /// Reads the vectors of `needed` ids from an embeddings file, skipping the rest.
    fn load(path: &Path, needed: &HashSet<String>) -> Result<Self> {
        let mut index = HashMap::with_capacity(needed.len());
        let mut values = Vec::new();
        let dim = embeddings::for_each_block(path, |ids, block| {
            let dim = block.len() / ids.len().max(1);
            for (i, id) in ids.iter().enumerate() {
                if !needed.contains(id) {
                    continue;
                }
                if index.insert(id.clone(), index.len()).is_some() {
                    return Err(Error::file(path, format!("doc {id:?} has two vectors")));
                }
                values.extend_from_slice(&block[i * dim..(i + 1) * dim]);
            }
            Ok(())
        })?;
        Ok(Vectors { index, values, dim })
    }

    fn get(&self, query_id: &str, doc_id: &str) -> Result<&[f32]> {
        let row = self.index.get(doc_id).ok_or_else(|| {
            Error::Invalid(format!(
                "query {query_id:?}: doc {doc_id:?} has no vector in input \"embeddings\"; \
                 expected the corpus embeddings to cover every positive and pooled candidate"
            ))
        })?;
        Ok(&self.values[row * self.dim..(row + 1) * self.dim])
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// Running totals for the report.
#[derive(Default)]
struct Tally {
    queries: u64,
    examples: u64,
    negatives: u64,
    hard: u64,
    hard_rank_sum: f64,
    short: u64,
    /// Pairs whose pool had candidates but none of positive weight.
    starved: u64,
}

/// Runs one resampling stage: per (query, positive) pair, hard negatives by `rule` from
/// the pool, then `n_rand` random corpus negatives. `fn_score` is RRRA's choice of adapter
/// score (input `scored`); the baselines (`None`) pool from whichever of `candidates` and
/// `scored` is connected.
fn resample(
    kind: &str,
    budget: Budget,
    rule: Rule,
    fn_score: Option<FnScore>,
    part_queries: Option<u64>,
    ctx: &StageContext<'_>,
) -> Result<StageReport> {
    let source = match (
        fn_score,
        ctx.optional_input("candidates"),
        ctx.optional_input("scored"),
    ) {
        (Some(which), _, _) => Source::Scored(which),
        (None, Some(_), None) => Source::Candidates,
        (None, None, Some(_)) => Source::Scored(FnScore::Ca),
        _ => {
            return Err(Error::Invalid(format!(
                "{kind} needs exactly one of the inputs \"candidates\" and \"scored\""
            )));
        }
    };
    let candidates = ctx.input(match source {
        Source::Candidates => "candidates",
        Source::Scored(_) => "scored",
    })?;
    let (n_hard, n_random, pool) = match rule {
        Rule::Random => (0, budget.n_neg, 0),
        Rule::Sample(_) | Rule::Top(_) => (budget.n_neg, budget.n_rand, budget.pool),
    };
    let corpus = if n_random == 0 {
        None
    } else {
        let why = match rule {
            Rule::Random => "the documents its negatives are drawn from".to_string(),
            _ => format!("n_rand = {n_random} random corpus negatives are asked for"),
        };
        Some(corpus_ids(need_input(ctx, kind, "corpus", &why)?)?)
    };
    let vectors = if let Rule::Sample(Weighting::TriSampler { .. }) = rule {
        let path = need_input(
            ctx,
            kind,
            "embeddings",
            "the corpus embeddings, for s(d+, d_i)",
        )?;
        let mut needed = HashSet::new();
        for_each_query(candidates, pool, source, |g| {
            needed.extend(g.positives.into_iter().map(|c| c.doc_id));
            needed.extend(g.pool.into_iter().map(|c| c.doc_id));
            Ok(())
        })?;
        Some(Vectors::load(path, &needed)?)
    } else {
        None
    };

    let mut tally = Tally::default();
    // Writes the examples of the queries at positions `range` (in file order) to `out`.
    let mut write = |range: std::ops::Range<u64>, out: &Path| -> Result<()> {
        let mut sink = ParquetSink::<Example>::create(out)?;
        let task = ctx
            .progress
            .task("resample (candidate rows)", Some(parquet_rows(candidates)?));
        let mut at = 0u64;
        for_each_query(candidates, pool, source, |g| {
            at += 1;
            if !range.contains(&(at - 1)) {
                task.inc(g.rows as u64);
                return Ok(());
            }
            tally.queries += 1;
            for positive in &g.positives {
                let mut rng = pair_rng(ctx.seed, &g.query_id, &positive.doc_id);
                let hard = match rule {
                    Rule::Random => Vec::new(),
                    Rule::Sample(w) | Rule::Top(w) => {
                        let entries = pool_entries(&g, positive, vectors.as_ref())?;
                        let weights = w.weights(&entries, positive.score);
                        if !weights.is_empty() && !weights.iter().any(|&x| x > 0.0) {
                            tally.starved += 1;
                        }
                        match rule {
                            Rule::Top(_) => top_ranked(&weights, n_hard),
                            _ => draw_without_replacement(&weights, n_hard, &mut rng),
                        }
                    }
                };
                let mut negatives: Vec<String> =
                    hard.iter().map(|&i| g.pool[i].doc_id.clone()).collect();
                tally.hard += hard.len() as u64;
                tally.hard_rank_sum += hard.iter().map(|&i| f64::from(g.pool[i].rank)).sum::<f64>();
                if let Some(ids) = &corpus {
                    let excluded: Vec<usize> = g
                        .positives
                        .iter()
                        .map(|c| c.doc_id.as_str())
                        .chain(negatives.iter().map(String::as_str))
                        .filter_map(|id| ids.binary_search_by(|x| x.as_str().cmp(id)).ok())
                        .collect();
                    let random = draw_uniform_excluding(ids.len(), n_random, &excluded, &mut rng);
                    negatives.extend(random.into_iter().map(|i| ids[i].clone()));
                }
                let primary = match rule {
                    Rule::Random => negatives.len(),
                    _ => hard.len(),
                };
                tally.short += u64::from(primary < budget.n_neg);
                tally.examples += 1;
                tally.negatives += negatives.len() as u64;
                sink.push(Example {
                    query_id: g.query_id.clone(),
                    positive_id: positive.doc_id.clone(),
                    negatives,
                    weights: None,
                })?;
            }
            task.inc(g.rows as u64);
            Ok(())
        })?;
        drop(task);
        sink.finish().map(|_| ())
    };
    let out = ctx.output("examples");
    let split = match part_queries {
        None => {
            write(0..u64::MAX, &out)?;
            None
        }
        Some(size) => {
            let mut queries = 0u64;
            for_each_query(candidates, pool, source, |_| {
                queries += 1;
                Ok(())
            })?;
            let parts = Parts::open(&ctx.work_dir, "examples", "queries", size, queries)?;
            let done = parts.compute(ctx.progress, kind, &mut write)?;
            concat_rows::<Example>(&done.files, &out)?;
            Some(done)
        }
    };
    warn_if_starved(kind, &tally, budget.n_neg);
    let mut report = report(&tally);
    report
        .metrics
        .extend(split.iter().flat_map(|done| done.metrics()));
    Ok(report)
}

/// Logs, as `tracing` warnings, pairs that got fewer negatives than asked for and pools
/// whose every weight was 0 (e.g. SimANS or RRRA weights `exp(-a (s_i - s_pos - b)^2)`
/// underflowing on BM25-scale scores, whose differences are far larger than cosines').
fn warn_if_starved(kind: &str, t: &Tally, n_neg: usize) {
    if t.starved > 0 {
        tracing::warn!(
            "{kind}: for {} of {} (query, positive) pairs every candidate's weight was 0, so \
             no hard negative could be drawn: check that the sampler's scale suits the \
             scores (SimANS/RRRA `a` and `b` assume cosine-like scores; BM25 scores make \
             exp(-a (s_i - s_pos - b)^2) underflow)",
            t.starved,
            t.examples
        );
    }
    if t.short > 0 {
        tracing::warn!(
            "{kind}: {} of {} pairs ({:.1}%) got fewer than n_neg = {n_neg} negatives \
             (short_fraction in the report)",
            t.short,
            t.examples,
            100.0 * t.short as f64 / t.examples.max(1) as f64
        );
    }
}

/// The pool of a group as the weightings see it, for one positive: `pos_sim` is
/// `s(d+, d_i)` when vectors are given, else 0 (unused).
fn pool_entries(
    g: &QueryGroup,
    positive: &Candidate,
    vectors: Option<&Vectors>,
) -> Result<Vec<PoolEntry>> {
    let pos_vector = match vectors {
        Some(v) => Some(v.get(&g.query_id, &positive.doc_id)?),
        None => None,
    };
    g.pool
        .iter()
        .zip(&g.pool_fn)
        .map(|(c, &s_fn)| {
            let pos_sim = match (vectors, pos_vector) {
                (Some(v), Some(p)) => dot(p, v.get(&g.query_id, &c.doc_id)?),
                _ => 0.0,
            };
            Ok(PoolEntry {
                rank: c.rank,
                score: c.score,
                pos_sim,
                s_fn,
            })
        })
        .collect()
}

/// The stage report: `queries`, `examples`, `mean_negatives` (per example, random ones
/// included), `mean_hard_rank` (of the drawn hard negatives; absent when none was drawn)
/// and `short_fraction` (pairs that got fewer than `n_neg` hard negatives, or for
/// `resample.random` fewer than `n_neg` random ones).
fn report(t: &Tally) -> StageReport {
    let per_example = |x: f64| {
        if t.examples == 0 {
            0.0
        } else {
            x / t.examples as f64
        }
    };
    let mut metrics: std::collections::BTreeMap<String, f64> = [
        ("queries".to_string(), t.queries as f64),
        ("examples".to_string(), t.examples as f64),
        (
            "mean_negatives".to_string(),
            per_example(t.negatives as f64),
        ),
        ("short_fraction".to_string(), per_example(t.short as f64)),
        (
            "zero_weight_fraction".to_string(),
            per_example(t.starved as f64),
        ),
    ]
    .into();
    if t.hard > 0 {
        metrics.insert("mean_hard_rank".into(), t.hard_rank_sum / t.hard as f64);
    }
    StageReport {
        metrics,
        table: None,
    }
}

#[cfg(test)]
mod tests;
