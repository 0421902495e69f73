//! The `train.adapter` and `score.adapter` pipeline stages.
//!
//! `train.adapter` reads mined `candidates` of training queries (positives and the top-K
//! pool, as `mine.*` writes them) with the frozen query and document embeddings, labels
//! every pair TP/FN/FP/TN ([`crate::labels`]), trains the adapter and writes an `adapter`
//! folder (`adapter.bpk` weights, `adapter.json` with shape, params and training summary).
//! `score.adapter` applies it to `candidates` or to a `run` (e.g. a test top-K for
//! reranking) and writes `scored` rows in input order.
//!
//! Both read the vectors memory-mapped ([`rrra_common::vectors::VectorFile`]: a raw `f32`
//! sidecar of each embeddings artifact with an id index on disk), so no vector and no id
//! is held in anonymous memory; each batch copies its rows onto the `backend:` device.
//! `train.adapter` streams its candidates a query at a time and spills its pool, as
//! integers (12 bytes a pair), to a memory-mapped scratch file in its work folder, with the
//! shuffled order (4 bytes a pair) beside it. `score.adapter` streams: one pass counts the
//! queries, a second scores `batch_size` pairs at a time and writes as it goes.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Tensor};
use rrra_common::artifact::{ParquetSink, parquet_rows};
use rrra_common::columns::{GroupRow, Interner, for_each_pair_batch, for_each_query_group};
use rrra_common::parts::{Parts, concat_rows};
use rrra_common::records::{Candidate, Scored};
use rrra_common::residency::{FileMapped, trimmed};
use rrra_common::schema::ArtifactKind::{
    self, Adapter, Candidates, Embeddings, Run, Scored as ScoredKind,
};
use rrra_common::scratch::{Scratch, ScratchWriter};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::vectors::VectorFile;
use rrra_common::{Error, Result};
use rrra_encoder::Backend;
use serde::{Deserialize, Serialize};

use crate::labels::{Class, best_positive, classify};
use crate::model::{AdapterConfig, AdapterNet};
use crate::train::{Pairs, PoolPair, TrainConfig, TrainSummary, Vectors, score_rows, train};

const WEIGHTS: &str = "adapter.bpk";
const CONFIG: &str = "adapter.json";

/// Params of `train.adapter`.
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
    pub backend: String,
}

fn is_cpu(backend: &str) -> bool {
    backend == "cpu"
}

/// The device of a `backend:` param, or the error naming the param.
pub fn backend_device(backend: &str) -> Result<Device> {
    let invalid = |e: rrra_encoder::Error| Error::Invalid(format!("param backend: {e}"));
    let backend: Backend = backend.parse().map_err(invalid)?;
    backend.device().map_err(invalid)
}

/// Checks a `backend:` param: a known backend compiled into this build.
fn check_backend(backend: &str) -> Result<(), String> {
    backend
        .parse::<Backend>()
        .map(|_| ())
        .map_err(|e| format!("param backend: {e}"))
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
            backend: "cpu".into(),
        }
    }
}

impl TrainAdapterParams {
    /// The training config for embeddings `dim` wide.
    pub fn config(&self, dim: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            hidden: if self.hidden == 0 { dim } else { self.hidden },
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            norm_weight: self.norm_weight,
            pull_weight: self.pull_weight,
            balanced: self.balanced,
            seed,
        }
    }
}

/// What `adapter.json` holds: the shape, and how the adapter was trained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedAdapter {
    pub shape: AdapterConfig,
    pub params: Option<TrainAdapterParams>,
    pub seed: Option<u64>,
    pub summary: Option<TrainSummary>,
}

/// `train.adapter`: stage 2 of RRRA.
pub struct TrainAdapter;

impl Stage for TrainAdapter {
    type Params = TrainAdapterParams;
    const KIND: &'static str = "train.adapter";
    // Unchanged by columnar reading and `backend:` (cpu gives the same bytes).
    // v2: the patched burn-flex (bias fused into the gemm) can move outputs by an ulp.
    // v3: byte-reproducible folder (parameter ids in order; no wall time in adapter.json).
    const VERSION: u32 = 3;
    const ABOUT: &'static str =
        "train the false-negative adapter on frozen embeddings of mined candidates";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("candidates", Candidates),
                Port::required("queries", Embeddings),
                Port::required("docs", Embeddings),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("adapter", Adapter)] }
    }
    fn check(p: &TrainAdapterParams) -> Result<(), String> {
        if p.epochs == 0 || p.batch_size == 0 || p.pool == 0 || p.max_steps == Some(0) {
            return Err("params epochs, max_steps, batch_size and pool must be at least 1".into());
        }
        if !(p.lr > 0.0 && p.lr.is_finite()) {
            return Err(format!("param lr must be finite and > 0, got {}", p.lr));
        }
        for (name, v) in [
            ("weight_decay", p.weight_decay),
            ("norm_weight", p.norm_weight),
            ("pull_weight", p.pull_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("param {name} must be finite and >= 0, got {v}"));
            }
        }
        check_backend(&p.backend)
    }
    fn run(p: &TrainAdapterParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let device = backend_device(&p.backend)?;
        let (queries, docs) = vector_files(ctx)?;
        // The pool, spilled as row numbers of the vector files (lookups on disk).
        let mut spill = ScratchWriter::<PoolPair>::create(&ctx.work_dir, "pool-pairs.bin")?;
        let path = ctx.input("candidates")?;
        trimmed(&[&queries, &docs], || {
            for_each_pool(path, p.k_p, p.pool, |query, pool| {
                let q = queries.row_of(query, "query")?;
                for &(doc, class) in pool {
                    spill.push(PoolPair::new(q, docs.row_of(doc, "document")?, class))?;
                }
                Ok(())
            })
        })?;
        let pairs = spill.finish()?;
        let mut order = Scratch::<u32>::zeroed(&ctx.work_dir, "order.bin", pairs.as_slice().len())?;
        let data = Pairs {
            vectors: Vectors {
                dim: queries.dim(),
                queries: queries.values(),
                docs: docs.values(),
            },
            pairs: pairs.as_slice(),
        };
        let config = p.config(queries.dim(), ctx.seed);
        let (order, order_region) = order.values_and_region();
        let maps: [&dyn FileMapped; 4] = [&queries, &docs, &pairs, &order_region];
        let (net, shape, summary) =
            trimmed(&maps, || train(data, order, &config, &device, ctx.progress));
        let saved = SavedAdapter {
            shape,
            params: Some(p.clone()),
            seed: Some(ctx.seed),
            summary: Some(summary.clone()),
        };
        save_adapter(&ctx.output_dir("adapter")?, &net, &saved)?;
        Ok(train_report(&summary))
    }
}

fn train_report(s: &TrainSummary) -> StageReport {
    let mut metrics: std::collections::BTreeMap<String, f64> = [
        (
            "pairs".to_string(),
            s.class_counts.iter().sum::<usize>() as f64,
        ),
        ("parameters".to_string(), s.parameters as f64),
        ("seconds".to_string(), s.seconds),
        ("loss_first_epoch".to_string(), s.epoch_loss[0]),
        (
            "loss_last_epoch".to_string(),
            *s.epoch_loss.last().expect("epochs >= 1"),
        ),
    ]
    .into();
    let mut table = String::from("class  pairs  weight  mean s_fn\n");
    for c in Class::ALL {
        let i = c as usize;
        metrics.insert(format!("pairs_{}", c.name()), s.class_counts[i] as f64);
        metrics.insert(format!("mean_s_fn_{}", c.name()), s.mean_s_fn[i]);
        table.push_str(&format!(
            "{:<5}  {:>5}  {:>6.3}  {:>9.4}\n",
            c.name(),
            s.class_counts[i],
            s.class_weights[i],
            s.mean_s_fn[i]
        ));
    }
    StageReport {
        metrics,
        table: Some(table),
    }
}

/// The pairs a training run uses, ids interned: each query's positives (in file order)
/// then its `pool` best-ranked negatives (ties by doc id, as
/// [`rrra_common::records::split_pool`]), queries in order of first appearance, with
/// their classes.
#[derive(Debug, Clone)]
pub struct LabelledPool {
    pub queries: Interner,
    pub docs: Interner,
    /// `(query number, document number, class)` per pair.
    pub pairs: Vec<(u32, u32, Class)>,
}

/// Streams the `candidates` artifact `path` one query at a time
/// ([`for_each_query_group`]) and calls `f(query id, pool)` with each query's pool: its
/// positives (in file order) then its `pool` best-ranked negatives (ties by doc id, as
/// [`rrra_common::records::split_pool`]), each `(doc id, class)`. Fails, naming the file,
/// on a query without a positive.
pub fn for_each_pool(
    path: &Path,
    k_p: u32,
    pool: usize,
    mut f: impl FnMut(&str, &[(&str, Class)]) -> Result<()>,
) -> Result<()> {
    for_each_query_group(path, Candidates, |query, rows| {
        let (positives, mut negatives): (Vec<&GroupRow>, Vec<&GroupRow>) =
            rows.iter().partition(|r| r.positive);
        if positives.is_empty() {
            return Err(Error::file(
                path,
                format!(
                    "candidates of query {query:?}: no positive; expected mine.* output with judged positives"
                ),
            ));
        }
        negatives.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.doc_id.cmp(&b.doc_id)));
        negatives.truncate(pool);
        let best = best_positive(positives.iter().map(|r| r.score));
        let labelled: Vec<(&str, Class)> = positives
            .into_iter()
            .chain(negatives)
            .map(|r| {
                let class = classify(r.positive, r.rank, r.score, k_p, best);
                (r.doc_id.as_str(), class)
            })
            .collect();
        f(query, &labelled)
    })?;
    Ok(())
}

/// [`for_each_pool`] kept in memory with its ids interned (in order of first use), for
/// `train.joint`, which matches the pairs to its own training data.
pub fn labelled_pool(path: &Path, k_p: u32, pool: usize) -> Result<LabelledPool> {
    let (mut queries, mut docs) = (Interner::new(), Interner::new());
    let mut pairs = Vec::new();
    for_each_pool(path, k_p, pool, |query, labelled| {
        let q = queries.intern(query);
        for &(doc, class) in labelled {
            pairs.push((q, docs.intern(doc), class));
        }
        Ok(())
    })?;
    Ok(LabelledPool {
        queries,
        docs,
        pairs,
    })
}

/// The memory-mapped query and document vectors (inputs `queries`, `docs`; sidecars that
/// cannot sit beside them go to the work folder), checked to be equally wide.
fn vector_files(ctx: &StageContext<'_>) -> Result<(VectorFile, VectorFile)> {
    let q = VectorFile::open(ctx.input("queries")?, &ctx.work_dir)?;
    let d = VectorFile::open(ctx.input("docs")?, &ctx.work_dir)?;
    if q.dim() != d.dim() {
        return Err(Error::Invalid(format!(
            "query vectors are {} wide but document vectors {}; expected one encoder's embeddings",
            q.dim(),
            d.dim()
        )));
    }
    Ok((q, d))
}

/// Numbers parameters in visiting order: burn draws each `ParamId` at random and Burnpack
/// stores it, so without this two identically trained adapters differ in their bytes.
struct OrderedIds(u64);

impl ModuleMapper for OrderedIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), value, mapper)
    }
}

/// Writes an adapter folder: `adapter.bpk` weights and `adapter.json`. The same weights
/// and `saved` give the same bytes (parameter ids are renumbered in order).
pub fn save_adapter(dir: &Path, net: &AdapterNet, saved: &SavedAdapter) -> Result<()> {
    let path = dir.join(WEIGHTS);
    net.clone()
        .map(&mut OrderedIds(0))
        .save_into(&mut BurnpackStore::from_file(&path).overwrite(true))
        .map_err(|e| Error::file(&path, format!("cannot write adapter weights: {e}")))?;
    let path = dir.join(CONFIG);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(saved).expect("serialises"),
    )
    .map_err(|e| Error::io(&path, e))
}

impl SavedAdapter {
    /// Reads the `adapter.json` of an adapter folder.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("expected an adapter.json: {e}")))
    }

    /// The weights of folder `dir` (which this `adapter.json` describes), on `device`.
    pub fn load_net(&self, dir: &Path, device: &Device) -> Result<AdapterNet> {
        let mut net = AdapterNet::new(&self.shape, 0, device);
        let path = dir.join(WEIGHTS);
        net.load_from(&mut BurnpackStore::from_file(&path))
            .map_err(|e| Error::file(&path, format!("cannot load adapter weights: {e}")))?;
        Ok(net)
    }

    /// The params it was trained with (`dir` is its folder, for the error).
    pub fn trained_with(&self, dir: &Path) -> Result<&TrainAdapterParams> {
        self.params.as_ref().ok_or_else(|| {
            Error::file(
                &dir.join(CONFIG),
                "no training params; expected an adapter written by train.adapter",
            )
        })
    }
}

/// Loads an adapter folder (as `train.adapter` writes it) onto `device`.
pub fn load_adapter(dir: &Path, device: &Device) -> Result<AdapterNet> {
    SavedAdapter::read(dir)?.load_net(dir, device)
}

/// Params of `score.adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreAdapterParams {
    /// Pairs per forward pass.
    pub batch_size: usize,
    /// Where it scores, as `train.adapter`'s `backend:` (left out of the key when `cpu`).
    #[serde(skip_serializing_if = "is_cpu")]
    pub backend: String,
    /// Cut the output into parts of this many input pairs (a multiple of `batch_size`, so
    /// parts batch their pairs as an unsplit run does), each written to the entry's work
    /// folder as it finishes (a killed run resumes at the first unfinished part) and
    /// concatenated. Unset: no split. Not in the cache key: the scores do not depend on it.
    #[serde(skip_serializing)]
    pub part_rows: Option<u64>,
}

impl Default for ScoreAdapterParams {
    fn default() -> Self {
        ScoreAdapterParams {
            batch_size: 4096,
            backend: "cpu".into(),
            part_rows: None,
        }
    }
}

/// `score.adapter`: the adapter's QA-score, `s_fn` and `p_rel` for every pair of a
/// `candidates` or `run` input (exactly one connected; run rows get `positive = false`).
pub struct ScoreAdapter;

impl Stage for ScoreAdapter {
    type Params = ScoreAdapterParams;
    const KIND: &'static str = "score.adapter";
    // v2: the patched burn-flex (bias fused into the gemm) can move outputs by an ulp.
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "score candidates or a run with a trained adapter (QA-score, s_fn)";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("adapter", Adapter),
                Port::optional("candidates", Candidates),
                Port::optional("run", Run),
                Port::required("queries", Embeddings),
                Port::required("docs", Embeddings),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("scored", ScoredKind)] }
    }
    fn check(p: &ScoreAdapterParams) -> Result<(), String> {
        if p.batch_size == 0 {
            return Err("param batch_size must be at least 1".into());
        }
        if let Some(rows) = p.part_rows
            && (rows == 0 || !rows.is_multiple_of(p.batch_size as u64))
        {
            return Err(format!(
                "param part_rows ({rows}) must be a positive multiple of batch_size ({})",
                p.batch_size
            ));
        }
        check_backend(&p.backend)
    }
    fn run(p: &ScoreAdapterParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let (path, kind): (&Path, ArtifactKind) =
            match (ctx.optional_input("candidates"), ctx.optional_input("run")) {
                (Some(path), None) => (path, Candidates),
                (None, Some(path)) => (path, Run),
                _ => {
                    return Err(Error::Invalid(
                        "score.adapter needs exactly one of the inputs \"candidates\" and \"run\""
                            .into(),
                    ));
                }
            };
        let device = backend_device(&p.backend)?;
        let net = load_adapter(ctx.input("adapter")?, &device)?;
        let (q_file, d_file) = vector_files(ctx)?;
        let vectors = Vectors {
            dim: q_file.dim(),
            queries: q_file.values(),
            docs: d_file.values(),
        };
        // Pass 1: the distinct queries (a bit per query vector), each checked to have a
        // vector; documents are looked up as they are scored.
        let mut seen = vec![0u64; q_file.rows().div_ceil(64)];
        let mut last: Option<(String, u32)> = None;
        trimmed(&[&q_file], || {
            for_each_pair_batch(path, kind, |b| {
                for i in 0..b.len() {
                    let query_id = b.query_id.value(i);
                    if last.as_ref().is_none_or(|(q, _)| q != query_id) {
                        let r = q_file.row_of(query_id, "query")?;
                        seen[r as usize / 64] |= 1 << (r % 64);
                        last = Some((query_id.to_string(), r));
                    }
                }
                Ok(())
            })
        })?;
        let queries: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
        // Pass 2: score `batch_size` pairs at a time (across record batches, so the
        // forward passes do not depend on how the file is cut) and write as it goes.
        let clock = std::time::Instant::now();
        let total = parquet_rows(path)?;
        // Scores input pairs `range` into `out`.
        let score_range = |range: std::ops::Range<u64>, out: &Path| -> Result<u64> {
            let task = ctx
                .progress
                .task("score adapter (pairs)", Some(range.end - range.start));
            let mut sink = ParquetSink::<Scored>::create(out)?;
            let mut pending: Vec<(Candidate, (u32, u32))> = Vec::with_capacity(p.batch_size);
            let mut flush = |pending: &mut Vec<(Candidate, (u32, u32))>| -> Result<()> {
                let rows = pending.iter().map(|(_, at)| *at);
                let scores = score_rows(&net, &vectors, rows, &device);
                for ((candidate, _), s) in pending.drain(..).zip(scores) {
                    sink.push(Scored {
                        candidate,
                        qa_score: f64::from(s.qa),
                        s_fn: f64::from(s.s_fn),
                        p_rel: f64::from(s.p_rel),
                    })?;
                }
                Ok(())
            };
            let mut row = 0u64;
            let mut last: Option<(String, u32)> = None;
            for_each_pair_batch(path, kind, |b| {
                for i in 0..b.len() {
                    row += 1;
                    if !range.contains(&(row - 1)) {
                        continue;
                    }
                    let (query_id, doc_id) = (b.query_id.value(i), b.doc_id.value(i));
                    let q = match &last {
                        Some((q, r)) if q == query_id => *r,
                        _ => {
                            let r = q_file.row_of(query_id, "query")?;
                            last = Some((query_id.to_string(), r));
                            r
                        }
                    };
                    let at = (q, d_file.row_of(doc_id, "document")?);
                    let candidate = Candidate {
                        query_id: query_id.to_string(),
                        doc_id: doc_id.to_string(),
                        rank: b.rank[i],
                        score: b.score[i],
                        positive: b.positive(i),
                    };
                    pending.push((candidate, at));
                    if pending.len() == p.batch_size {
                        flush(&mut pending)?;
                        task.inc(p.batch_size as u64);
                    }
                }
                Ok(())
            })?;
            let rest = pending.len() as u64;
            flush(&mut pending)?;
            task.inc(rest);
            sink.finish()
        };
        let out = ctx.output("scored");
        let (n, split) = trimmed(&[&q_file, &d_file], || {
            Ok::<_, Error>(match p.part_rows {
                None => (score_range(0..total, &out)?, None),
                Some(size) => {
                    let parts = Parts::open(&ctx.work_dir, "scored", "pairs", size, total)?;
                    let done = parts.compute(ctx.progress, "score.adapter", |range, file| {
                        score_range(range, file).map(|_| ())
                    })?;
                    (concat_rows::<Scored>(&done.files, &out)?, Some(done))
                }
            })
        })?;
        let seconds = clock.elapsed().as_secs_f64();
        Ok(StageReport {
            metrics: [
                ("pairs".to_string(), n as f64),
                ("queries".to_string(), queries as f64),
                ("seconds".to_string(), seconds),
                (
                    "ms_per_query".to_string(),
                    1000.0 * seconds / queries.max(1) as f64,
                ),
                ("parameters".to_string(), net.parameters() as f64),
            ]
            .into_iter()
            .chain(split.iter().flat_map(|done| done.metrics()))
            .collect(),
            table: None,
        })
    }
}
