//! What every `resample.*` stage shares: the ports, the per-pair budget and its params
//! (declared once by [`pool_params!`]), reading a candidates (or scored) file one query at a
//! time with its pool cut to size, and the sampling loop that writes `examples`.
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
use rrra_common::schema::ArtifactKind::{Candidates, Corpus, Examples, Scored as ScoredKind};
use rrra_common::stage::{Port, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::sampling::{
    PoolEntry, Weighting, draw_uniform_excluding, draw_without_replacement, pair_rng, top_ranked,
};

pub(crate) const DEFAULT_N_NEG: usize = 7;
pub(crate) const DEFAULT_POOL: usize = 200;

/// The pool samplers read mined `candidates`, or `scored` candidates (the same rows with the
/// adapter's scores, which they ignore), so that a pipeline swaps `resample.rrra` for a
/// baseline by changing `kind` alone.
pub(crate) const POOL_INPUTS: &[Port] = &[
    Port::optional("candidates", Candidates),
    Port::optional("scored", ScoredKind),
    Port::optional("corpus", Corpus),
];
pub(crate) const OUTPUTS: &[Port] = &[Port::required("examples", Examples)];

/// What a sampler draws per pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) n_neg: usize,
    pub(crate) n_rand: usize,
    pub(crate) pool: usize,
}

impl Budget {
    /// The range checks every pool sampler's params share.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.pool == 0 {
            return Err("param pool must be at least 1".into());
        }
        if self.n_neg + self.n_rand == 0 {
            return Err("params n_neg and n_rand are both 0: no negatives to draw".into());
        }
        Ok(())
    }
}

/// Declares a pool sampler's params struct: the budget fields every sampler shares
/// (`n_neg`, `n_rand`, `pool`: same names, docs and defaults) first, then the sampler's own
/// fields, each with its default (`pub a: f64 = 200.0`). Derives what stage params need
/// (`serde(default, deny_unknown_fields)`, `JsonSchema`), `Default`, and `budget()`. A macro
/// rather than a `#[serde(flatten)]`ed budget struct, because serde does not support
/// `flatten` together with `deny_unknown_fields`.
macro_rules! pool_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Hard negatives drawn per (query, positive) pair.
            pub n_neg: usize,
            /// Random corpus negatives appended per pair (needs input `corpus` when > 0).
            pub n_rand: usize,
            /// Only the `pool` best-ranked non-positive candidates of a query are used.
            pub pool: usize,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    n_neg: $crate::stages::pool::DEFAULT_N_NEG,
                    n_rand: 0,
                    pool: $crate::stages::pool::DEFAULT_POOL,
                    $( $field: $default, )*
                }
            }
        }

        impl $name {
            /// The negatives drawn per pair.
            pub(crate) fn budget(&self) -> $crate::stages::pool::Budget {
                $crate::stages::pool::Budget {
                    n_neg: self.n_neg,
                    n_rand: self.n_rand,
                    pool: self.pool,
                }
            }
        }
    };
}
pub(crate) use pool_params;

/// How a pool sampler picks its `n_neg` hard negatives among the weighted pool
/// (`resample.margin`'s `mode`; the other samplers always sample).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MarginMode {
    /// Weighted draws without replacement (uniformly at random among equal weights).
    #[default]
    Sample,
    /// The best-ranked candidates of nonzero weight.
    Top,
}

/// Which score of a `scored` input is the false-negative likelihood `s_fn`.
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

/// How a stage picks a pair's negatives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule {
    /// `n_neg` hard negatives from the pool by `weighting`, picked as `mode` says.
    Pool {
        weighting: Weighting,
        mode: MarginMode,
    },
    /// `n_neg` random corpus documents, no pool.
    Random,
}

/// One resampling stage, ready to run on a [`StageContext`].
pub(crate) struct Sampler {
    /// The stage's kind, for messages.
    pub(crate) kind: &'static str,
    pub(crate) budget: Budget,
    pub(crate) rule: Rule,
    /// RRRA's choice of adapter score (input `scored` required); `None` for the baselines,
    /// which pool from whichever of `candidates` and `scored` is connected.
    pub(crate) rrra_score: Option<FnScore>,
    /// Part size in queries (see `resample.rrra`'s `part_queries`).
    pub(crate) part_queries: Option<u64>,
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

/// Calls `f` per query of a candidates file (`fn_score` `None`) or scored file (`fn_score`
/// naming the score taken as `s_fn`), in file order, with its pool cut to `pool`.
fn for_each_query(
    path: &Path,
    pool: usize,
    fn_score: Option<FnScore>,
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
    match fn_score {
        None => for_each_batch::<Candidate>(path, |batch| {
            batch.into_iter().try_for_each(|c| push((c, 0.0)))
        })?,
        Some(which) => for_each_batch::<Scored>(path, |batch| {
            batch.into_iter().try_for_each(|s| {
                let likelihood = match which {
                    FnScore::Ca => s.s_fn,
                    FnScore::Head => s.p_rel,
                };
                push((s.candidate, likelihood))
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

pub(super) fn dot(a: &[f32], b: &[f32]) -> f64 {
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

impl Sampler {
    /// Runs the stage: per (query, positive) pair, hard negatives by `rule` from the pool,
    /// then `n_rand` random corpus negatives.
    pub(crate) fn run(&self, ctx: &StageContext<'_>) -> Result<StageReport> {
        let Sampler {
            kind,
            budget,
            rule,
            rrra_score,
            part_queries,
        } = *self;
        // `None`: input `candidates`, no adapter scores.
        let fn_score = match (
            rrra_score,
            ctx.optional_input("candidates"),
            ctx.optional_input("scored"),
        ) {
            (Some(which), _, _) => Some(which),
            (None, Some(_), None) => None,
            (None, None, Some(_)) => Some(FnScore::Ca),
            _ => {
                return Err(Error::Invalid(format!(
                    "{kind} needs exactly one of the inputs \"candidates\" and \"scored\""
                )));
            }
        };
        let candidates = ctx.input(match fn_score {
            None => "candidates",
            Some(_) => "scored",
        })?;
        let (n_hard, n_random, pool) = match rule {
            Rule::Random => (0, budget.n_neg, 0),
            Rule::Pool { .. } => (budget.n_neg, budget.n_rand, budget.pool),
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
        let vectors = if let Rule::Pool {
            weighting: Weighting::TriSampler { .. },
            ..
        } = rule
        {
            let path = need_input(
                ctx,
                kind,
                "embeddings",
                "the corpus embeddings, for s(d+, d_i)",
            )?;
            let mut needed = HashSet::new();
            for_each_query(candidates, pool, fn_score, |g| {
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
            for_each_query(candidates, pool, fn_score, |g| {
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
                        Rule::Pool { weighting, mode } => {
                            let entries = pool_entries(&g, positive, vectors.as_ref())?;
                            let weights = weighting.weights(&entries, positive.score);
                            if !weights.is_empty() && !weights.iter().any(|&x| x > 0.0) {
                                tally.starved += 1;
                            }
                            match mode {
                                MarginMode::Top => top_ranked(&weights, n_hard),
                                MarginMode::Sample => {
                                    draw_without_replacement(&weights, n_hard, &mut rng)
                                }
                            }
                        }
                    };
                    let mut negatives: Vec<String> =
                        hard.iter().map(|&i| g.pool[i].doc_id.clone()).collect();
                    tally.hard += hard.len() as u64;
                    tally.hard_rank_sum +=
                        hard.iter().map(|&i| f64::from(g.pool[i].rank)).sum::<f64>();
                    if let Some(ids) = &corpus {
                        let excluded: Vec<usize> = g
                            .positives
                            .iter()
                            .map(|c| c.doc_id.as_str())
                            .chain(negatives.iter().map(String::as_str))
                            .filter_map(|id| ids.binary_search_by(|x| x.as_str().cmp(id)).ok())
                            .collect();
                        let random =
                            draw_uniform_excluding(ids.len(), n_random, &excluded, &mut rng);
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
                for_each_query(candidates, pool, fn_score, |_| {
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
