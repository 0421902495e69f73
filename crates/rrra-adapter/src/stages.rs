//! The `train.adapter` and `score.adapter` pipeline stages.
//!
//! `train.adapter` reads mined `candidates` of training queries (positives and the top-K
//! pool, as `mine.*` writes them) with the frozen query and document embeddings, labels
//! every pair TP/FN/FP/TN ([`crate::labels`]), trains the adapter and writes an `adapter`
//! folder (`adapter.bpk` weights, `adapter.json` with shape, params and training summary).
//! `score.adapter` applies it to `candidates` or to a `run` (e.g. a test top-K for
//! reranking) and writes `scored` rows in input order.

use std::collections::HashMap;
use std::path::Path;

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use rrra_common::artifact::{ParquetSink, read_rows};
use rrra_common::embeddings;
use rrra_common::records::{Candidate, RunRow, Scored, split_pool};
use rrra_common::schema::ArtifactKind::{
    Adapter, Candidates, Embeddings, Run, Scored as ScoredKind,
};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::labels::{Class, label_query};
use crate::model::{AdapterConfig, AdapterNet};
use crate::train::{Pairs, TrainConfig, TrainSummary, score, train};

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
}

impl Default for TrainAdapterParams {
    fn default() -> Self {
        TrainAdapterParams {
            hidden: 0,
            k_p: 10,
            pool: 200,
            epochs: 3,
            batch_size: 512,
            lr: 1e-3,
            weight_decay: 0.01,
            norm_weight: 1.0,
            pull_weight: 1.0,
            balanced: true,
        }
    }
}

impl TrainAdapterParams {
    /// The training config for embeddings `dim` wide.
    pub fn config(&self, dim: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            hidden: if self.hidden == 0 { dim } else { self.hidden },
            epochs: self.epochs,
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
    const VERSION: u32 = 1;
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
        if p.epochs == 0 || p.batch_size == 0 || p.pool == 0 {
            return Err("params epochs, batch_size and pool must be at least 1".into());
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
        Ok(())
    }
    fn run(p: &TrainAdapterParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let candidates = read_rows::<Candidate>(ctx.input("candidates")?)?;
        let (rows, classes) = labelled_pool(candidates, p.k_p, p.pool)?;
        let data = pairs(ctx, &rows, Some(&classes))?;
        let config = p.config(data.dim, ctx.seed);
        let (net, shape, summary) = train(&data, &config, ctx.progress);
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

/// The rows a training run uses (each query's positives and its `pool` best-ranked
/// negatives, queries contiguous) and their classes.
pub fn labelled_pool(
    candidates: Vec<Candidate>,
    k_p: u32,
    pool: usize,
) -> Result<(Vec<Candidate>, Vec<Class>)> {
    let mut groups: Vec<Vec<Candidate>> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for c in candidates {
        let i = *at.entry(c.query_id.clone()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(c);
    }
    let (mut rows, mut classes) = (Vec::new(), Vec::new());
    for g in groups {
        if !g.iter().any(|c| c.positive) {
            return Err(Error::Invalid(format!(
                "candidates of query {:?}: no positive; expected mine.* output with judged positives",
                g[0].query_id
            )));
        }
        let (pos, neg) = split_pool(g, pool, |c| c);
        let g: Vec<Candidate> = pos.into_iter().chain(neg).collect();
        classes.extend(label_query(&g, k_p));
        rows.extend(g);
    }
    Ok((rows, classes))
}

/// Vectors of the ids in `wanted`, from an embeddings file: `(row of id, values, dim)`.
fn load_vectors(
    path: &Path,
    wanted: &HashMap<&str, ()>,
) -> Result<(HashMap<String, u32>, Vec<f32>, usize)> {
    let (mut index, mut values) = (HashMap::new(), Vec::new());
    let dim = embeddings::for_each_block(path, |ids, block| {
        let dim = block.len() / ids.len().max(1);
        for (i, id) in ids.iter().enumerate() {
            if wanted.contains_key(id.as_str()) {
                if index.insert(id.clone(), index.len() as u32).is_some() {
                    return Err(Error::file(path, format!("id {id:?} has two vectors")));
                }
                values.extend_from_slice(&block[i * dim..(i + 1) * dim]);
            }
        }
        Ok(())
    })?;
    Ok((index, values, dim))
}

/// The frozen vectors and pairs of `rows` (classes default to TN when not given).
fn pairs(ctx: &StageContext<'_>, rows: &[Candidate], classes: Option<&[Class]>) -> Result<Pairs> {
    let query_ids: HashMap<&str, ()> = rows.iter().map(|c| (c.query_id.as_str(), ())).collect();
    let doc_ids: HashMap<&str, ()> = rows.iter().map(|c| (c.doc_id.as_str(), ())).collect();
    let (q_path, d_path) = (ctx.input("queries")?, ctx.input("docs")?);
    let (q_index, queries, q_dim) = load_vectors(q_path, &query_ids)?;
    let (d_index, docs, d_dim) = load_vectors(d_path, &doc_ids)?;
    if q_dim != d_dim {
        return Err(Error::Invalid(format!(
            "query vectors are {q_dim} wide but document vectors {d_dim}; expected one encoder's embeddings"
        )));
    }
    let lookup = |index: &HashMap<String, u32>, id: &str, path: &Path, what: &str| {
        index.get(id).copied().ok_or_else(|| {
            Error::file(path, format!("no vector for {what} {id:?}; expected every {what} of the candidates to be embedded"))
        })
    };
    let pairs = rows
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok((
                lookup(&q_index, &c.query_id, q_path, "query")?,
                lookup(&d_index, &c.doc_id, d_path, "document")?,
                classes.map_or(Class::Tn, |k| k[i]),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Pairs {
        dim: q_dim,
        queries,
        docs,
        pairs,
    })
}

/// Writes an adapter folder: `adapter.bpk` weights and `adapter.json`.
pub fn save_adapter(dir: &Path, net: &AdapterNet, saved: &SavedAdapter) -> Result<()> {
    let path = dir.join(WEIGHTS);
    net.save_into(&mut BurnpackStore::from_file(&path).overwrite(true))
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

/// Loads an adapter folder (as `train.adapter` writes it) onto the CPU.
pub fn load_adapter(dir: &Path) -> Result<AdapterNet> {
    SavedAdapter::read(dir)?.load_net(dir, &Device::flex())
}

/// Params of `score.adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreAdapterParams {
    /// Pairs per forward pass.
    pub batch_size: usize,
}

impl Default for ScoreAdapterParams {
    fn default() -> Self {
        ScoreAdapterParams { batch_size: 4096 }
    }
}

/// `score.adapter`: the adapter's QA-score, `s_fn` and `p_rel` for every pair of a
/// `candidates` or `run` input (exactly one connected; run rows get `positive = false`).
pub struct ScoreAdapter;

impl Stage for ScoreAdapter {
    type Params = ScoreAdapterParams;
    const KIND: &'static str = "score.adapter";
    const VERSION: u32 = 1;
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
        Ok(())
    }
    fn run(p: &ScoreAdapterParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let rows: Vec<Candidate> =
            match (ctx.optional_input("candidates"), ctx.optional_input("run")) {
                (Some(path), None) => read_rows::<Candidate>(path)?,
                (None, Some(path)) => read_rows::<RunRow>(path)?
                    .into_iter()
                    .map(|r| Candidate {
                        query_id: r.query_id,
                        doc_id: r.doc_id,
                        rank: r.rank,
                        score: r.score,
                        positive: false,
                    })
                    .collect(),
                _ => {
                    return Err(Error::Invalid(
                        "score.adapter needs exactly one of the inputs \"candidates\" and \"run\""
                            .into(),
                    ));
                }
            };
        let net = load_adapter(ctx.input("adapter")?)?;
        let data = pairs(ctx, &rows, None)?;
        let clock = std::time::Instant::now();
        let task = ctx
            .progress
            .task("score adapter (pairs)", Some(rows.len() as u64));
        let scores = score(&net, &data, p.batch_size, &mut |n| task.inc(n));
        drop(task);
        let seconds = clock.elapsed().as_secs_f64();
        let queries = rows
            .iter()
            .map(|c| c.query_id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let mut sink = ParquetSink::<Scored>::create(&ctx.output("scored"))?;
        for (candidate, s) in rows.into_iter().zip(scores) {
            sink.push(Scored {
                candidate,
                qa_score: f64::from(s.qa),
                s_fn: f64::from(s.s_fn),
                p_rel: f64::from(s.p_rel),
            })?;
        }
        let n = sink.finish()?;
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
            .into(),
            table: None,
        })
    }
}
