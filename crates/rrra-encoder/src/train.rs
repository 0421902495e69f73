//! Contrastive fine-tuning of the BERT bi-encoder (one tower shared by queries and
//! documents) with burn autodiff: InfoNCE over each example's positive, its sampled hard
//! negatives (optionally weighted in the denominator) and every other document of the
//! batch; AdamW with linear warm-up and decay; global gradient-norm clipping; gradient
//! caching so a large batch costs the memory of one chunk; checkpoints a killed run
//! resumes from, reaching the same weights as an uninterrupted run. An [`Auxiliary`]
//! objective (RRRA's joint stage 3) can be trained alongside on the same embeddings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Gradients, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rrra_common::progress::Progress;
use rrra_common::records::TrainLogRow;
use serde::{Deserialize, Serialize};

use crate::encoder::{MODEL_FILES, Pooling, embed_batch};
use crate::error::{Error, Result};
use crate::model::{Bert, BertConfig};
use crate::precision::Precision;
use crate::tokenize::TextTokenizer;
use crate::{Backend, ModelSource};

/// Logits of masked-out columns (another positive of the same query): far below any
/// cosine / temperature, without the NaNs an infinity could bring into the backward pass.
const MASKED_LOGIT: f32 = -1.0e4;

/// Default `checkpoint_secs`: at most one checkpoint every 5 min.
pub const DEFAULT_CHECKPOINT_SECS: f64 = 300.0;

fn is_default_checkpoint_secs(secs: &f64) -> bool {
    *secs == DEFAULT_CHECKPOINT_SECS
}

/// How a fine-tuning run is set up: the params of `train.biencoder` (and the `encoder`
/// params of `train.joint`), consumed as they are by [`train`] and saved beside the trained
/// model (`rrra_train.json`). What a run adds to them, the seed and the settings resolved
/// from the starting model, is a [`RunSettings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The starting model when no `model` input is connected: a known id, a folder or a
    /// Hugging Face id `ORG/NAME[@REVISION]` (as `encode.bert`'s `model`).
    pub model: String,
    /// `cpu` (default), `tch` or `wgpu`, among those compiled in.
    pub backend: Backend,
    /// Float type of the matrix products: `fp32` (default) or `bf16` on backend `tch`
    /// (autocast-style: fp32 master weights, optimiser state, layer norms, softmax and
    /// loss). Left out of the cache key at fp32.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    #[schemars(extend("default" = "fp32"))]
    pub precision: Precision,
    /// Examples (query, positive, negatives) per optimiser step (in-batch negatives come
    /// from the same batch).
    pub batch_size: usize,
    /// Texts per forward/backward pass; below the texts of a batch, gradient caching is
    /// used: embeddings first without gradients, then chunk by chunk with them (same
    /// gradients, memory of one chunk).
    pub chunk_size: usize,
    /// Passes over the examples.
    pub epochs: usize,
    /// Examples per query in each epoch, at most: each epoch draws that many of a query's
    /// examples at random (seeded by the run's seed and the epoch), so a collection with
    /// many judged documents a query (NFCorpus: ~40) trains on a budget while every
    /// positive still gets its turn over the epochs. Unset: every example, every epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_query: Option<usize>,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// Fraction of the steps with a linearly rising learning rate (then linear decay).
    pub warmup_ratio: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// InfoNCE temperature τ (scores are cosines when normalised).
    pub temperature: f64,
    /// Global gradient-norm clipping; 0 turns it off.
    pub max_grad_norm: f64,
    /// Hard negatives used per example, at most (the first ones of each example).
    pub max_negatives: usize,
    /// Use the examples' per-negative weights in the InfoNCE denominator.
    pub use_weights: bool,
    /// Save a checkpoint (that a killed run resumes from) every this many steps (and at
    /// the end); 0: only at the end.
    pub checkpoint_every: usize,
    /// Checkpoint no more often than this many seconds (steps or time, whichever is
    /// rarer). Left out of the cache key at its default, as it changes no output.
    #[serde(skip_serializing_if = "is_default_checkpoint_secs")]
    #[schemars(extend("default" = DEFAULT_CHECKPOINT_SECS))]
    pub checkpoint_secs: f64,
    /// Tokens per query in training.
    pub query_max_len: usize,
    /// Tokens per document in training.
    pub max_len: usize,
    /// `max_seq_length` written into the exported sentence-transformers folder: the length
    /// the model is meant to encode with (training may truncate shorter, for speed). Unset:
    /// the starting model's `max_seq_length`, else 256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_max_len: Option<usize>,
    /// `mean` or `cls`. Unset: the starting model's Pooling module, else mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    /// Train and export L2-normalised embeddings. Unset: whether the starting model has a
    /// Normalize module, else true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: crate::MINILM_L6.into(),
            backend: Backend::default(),
            precision: Precision::Fp32,
            batch_size: 32,
            chunk_size: 64,
            epochs: 1,
            per_query: None,
            lr: 2e-5,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            temperature: 0.05,
            max_grad_norm: 1.0,
            max_negatives: 7,
            use_weights: true,
            checkpoint_every: 20,
            checkpoint_secs: DEFAULT_CHECKPOINT_SECS,
            query_max_len: 64,
            max_len: 256,
            export_max_len: None,
            pooling: None,
            normalize: None,
        }
    }
}

impl TrainConfig {
    /// The range checks of `train.biencoder` (and of stages that train through it); the
    /// errors name the params.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.backend.check_compiled()?;
        self.precision.check_training(self.backend)?;
        if self.batch_size == 0
            || self.chunk_size == 0
            || self.epochs == 0
            || self.per_query == Some(0)
            || self.export_max_len.is_some_and(|n| n < 2)
        {
            return Err(
                "params batch_size, chunk_size, epochs and per_query must be >= 1, export_max_len >= 2"
                    .into(),
            );
        }
        if !(self.checkpoint_secs >= 0.0 && self.checkpoint_secs.is_finite()) {
            return Err("param checkpoint_secs must be a finite number >= 0".into());
        }
        if !(self.temperature > 0.0 && self.lr > 0.0 && (0.0..=1.0).contains(&self.warmup_ratio)) {
            return Err("params temperature and lr must be > 0, warmup_ratio in [0, 1]".into());
        }
        Ok(())
    }

    /// The model files hashed into the cache key (a folder model's).
    pub fn sources(&self) -> Vec<PathBuf> {
        ModelSource::parse(&self.model, Path::new("")).key_files()
    }

    /// The run's settings as `rrra_train.json`'s `config` and a checkpoint record them: the
    /// params that shape the training (not the model's source, backend or export length,
    /// nor how often checkpoints are written), the pooling and normalisation `run` resolved,
    /// and the seed. This is the layout of the config struct these params were once copied
    /// into, kept so that the saved file's bytes and checkpoints written before stay valid.
    pub fn recorded(&self, run: &RunSettings) -> serde_json::Value {
        const NOT_RECORDED: [&str; 4] = ["model", "backend", "checkpoint_secs", "export_max_len"];
        let serde_json::Value::Object(params) =
            serde_json::to_value(self).expect("params serialise")
        else {
            unreachable!("a struct serialises to an object")
        };
        let mut out: serde_json::Map<String, serde_json::Value> = params
            .into_iter()
            .filter(|(k, _)| !NOT_RECORDED.contains(&k.as_str()))
            .collect();
        out.insert("pooling".into(), serde_json::json!(run.pooling));
        out.insert("normalize".into(), run.normalize.into());
        out.insert("seed".into(), run.seed.into());
        serde_json::Value::Object(out)
    }
}

/// What a run adds to its [`TrainConfig`]: the seed, and the embedding settings (the
/// config's where set, else the starting model's, else rrra's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSettings {
    /// Seeds the example order of every epoch.
    pub seed: u64,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised (scores are then cosines).
    pub normalize: bool,
}

/// One training example, as indices into [`TrainData`]'s texts.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainExample {
    pub query: usize,
    pub positive: usize,
    pub negatives: Vec<usize>,
    pub weights: Option<Vec<f32>>,
}

/// The texts and examples of a run.
#[derive(Debug, Clone, Default)]
pub struct TrainData {
    pub queries: Vec<String>,
    pub docs: Vec<String>,
    pub examples: Vec<TrainExample>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps: usize,
    /// The step the run started from (0 unless it resumed from a checkpoint).
    pub resumed_at: usize,
    pub log: Vec<TrainLogRow>,
    pub seconds: f64,
}

/// What a checkpoint records beside the weights and optimiser state.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    /// [`TrainConfig::recorded`]: a checkpoint of other settings is not resumed from.
    config: serde_json::Value,
    /// `(step, epoch, loss, lr, samples_per_s)` of every step so far.
    log: Vec<(u32, u32, f64, f64, f64)>,
}

const CHECKPOINT: &str = "checkpoint";

/// A second objective trained with the encoder on each batch's embeddings, `L_con + L_aux`
/// (RRRA's joint stage 3: the adapter's loss through the encoder). An implementation owns
/// its parameters and optimiser; the encoder's gradient clipping does not touch them.
pub trait Auxiliary {
    /// Puts its parameters on the training `device` (an autodiff device), from the
    /// checkpoint folder `resume` when the encoder resumes from one.
    fn init(&mut self, device: &Device, resume: Option<&Path>) -> Result<()>;
    /// The loss of one batch, built on `q` (`[b, d]`, the batch's queries) and `d`
    /// (`[n, d]`, its documents) so that the encoder receives its gradient.
    fn loss(&mut self, batch: &BatchView<'_>, q: Tensor<2>, d: Tensor<2>) -> Tensor<1>;
    /// Takes its parameters' gradients out of `grads` and steps its optimiser;
    /// `lr_factor` is the encoder's schedule at this step (warm-up then decay, in `[0, 1]`).
    fn step(&mut self, grads: &mut Gradients, lr_factor: f64);
    /// Writes its parameters and optimiser state into a checkpoint folder.
    fn save(&self, dir: &Path) -> Result<()>;
}

/// What an [`Auxiliary`] sees of one batch, as indices into [`TrainData`].
pub struct BatchView<'a> {
    /// The query of each row of `q`.
    pub queries: &'a [usize],
    /// The document of each row of `d`.
    pub docs: &'a [usize],
    /// Per query row, the rows of `d` that are its own: its positive first, then its hard
    /// negatives.
    pub own: &'a [std::ops::Range<usize>],
}

/// Fine-tunes the model in `model_dir` (the starting model `config.model` names, resolved)
/// on `data` (with `aux`'s objective added, if given) and returns the trained encoder.
/// Checkpoints go to `work_dir/checkpoint`; if one of the same settings is there, training
/// resumes from it.
pub fn train(
    model_dir: &Path,
    config: &TrainConfig,
    run: &RunSettings,
    data: &TrainData,
    work_dir: &Path,
    progress: &dyn Progress,
    mut aux: Option<&mut dyn Auxiliary>,
) -> Result<(Trained, TrainSummary)> {
    config.check().map_err(Error::Invalid)?;
    validate(data)?;
    for file in MODEL_FILES {
        if !model_dir.join(file).is_file() {
            return Err(Error::model(
                &model_dir.join(file),
                "missing from the model folder",
            ));
        }
    }
    let bert_config = BertConfig::from_file(&model_dir.join("config.json"))?;
    for len in [config.max_len, config.query_max_len] {
        if len < 2 || len > bert_config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "max_len {len} is out of range: 2 to {}",
                bert_config.max_position_embeddings
            )));
        }
    }
    let tokenizer = model_dir.join("tokenizer.json");
    let query_tok = TextTokenizer::from_file(&tokenizer, config.query_max_len)?;
    let doc_tok = TextTokenizer::from_file(&tokenizer, config.max_len)?;
    let backend = config.backend;
    let device = backend.device()?.autodiff();
    let mut model = Bert::load(
        &bert_config,
        &model_dir.join("model.safetensors"),
        &device,
        backend == Backend::Tch,
    )?
    .with_precision(config.precision);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_epsilon(1e-6)
        .init();

    let per_epoch = epoch_order(data, config.per_query, run.seed, 0)
        .len()
        .div_ceil(config.batch_size);
    let total = per_epoch * config.epochs;
    let mut log = Vec::with_capacity(total);
    let checkpoint = work_dir.join(CHECKPOINT);
    let mut start = 0;
    let recorded = config.recorded(run);
    let state = read_checkpoint(&checkpoint, &recorded)?;
    if let Some(aux) = aux.as_deref_mut() {
        aux.init(&device, state.as_ref().map(|_| checkpoint.as_path()))?;
    }
    if let Some(state) = state {
        let path = checkpoint.join("model.bpk");
        let mut store = BurnpackStore::from_file(&path);
        model
            .load_from(&mut store)
            .map_err(|e| Error::model(&path, format!("bad checkpoint: {e}")))?;
        let path = checkpoint.join("optim.bpk");
        optim = optim
            .load(&path)
            .map_err(|e| Error::model(&path, format!("bad checkpoint: {e}")))?;
        start = state.step;
        log = state
            .log
            .into_iter()
            .map(|(step, epoch, loss, lr, samples_per_s)| TrainLogRow {
                step,
                epoch,
                loss,
                lr,
                samples_per_s,
            })
            .collect();
    }

    let positives = positives_by_query(data);
    let task = progress.task("train", Some(total as u64));
    task.inc(start as u64);
    let clock = Instant::now();
    let mut last_checkpoint = Instant::now();
    let towers = Towers {
        query: &query_tok,
        doc: &doc_tok,
        device: &device,
        config,
        run,
    };
    let mut order: Vec<usize> = Vec::new();
    let mut order_epoch = usize::MAX;
    for step in start..total {
        let epoch = step / per_epoch;
        if epoch != order_epoch {
            order = epoch_order(data, config.per_query, run.seed, epoch);
            order_epoch = epoch;
        }
        let within = step % per_epoch;
        let rows =
            &order[within * config.batch_size..((within + 1) * config.batch_size).min(order.len())];
        let tick = Instant::now();
        let batch = Batch::new(data, rows, config, &positives);
        let lr = learning_rate(config, step, total);
        let aux_step = aux.as_deref_mut().map(|a| (a, lr / config.lr));
        let (loss, mut grads) = towers.gradients(&model, &batch, data, aux_step)?;
        if config.max_grad_norm > 0.0 {
            clip_global_norm(&model, &mut grads, config.max_grad_norm);
        }
        model = optim.step(lr, model, grads);
        log.push(TrainLogRow {
            step: (step + 1) as u32,
            epoch: epoch as u32,
            loss,
            lr,
            samples_per_s: rows.len() as f64 / tick.elapsed().as_secs_f64().max(1e-9),
        });
        report_step(task.as_ref(), &log, total);
        let done = step + 1;
        let due = config.checkpoint_every > 0
            && done % config.checkpoint_every == 0
            && last_checkpoint.elapsed().as_secs_f64() >= config.checkpoint_secs;
        if done == total || due {
            last_checkpoint = Instant::now();
            write_checkpoint(
                &checkpoint,
                &model,
                &optim,
                &recorded,
                done,
                &log,
                aux.as_deref(),
            )?;
        }
        task.inc(1);
    }
    let summary = TrainSummary {
        steps: total,
        resumed_at: start,
        log,
        seconds: clock.elapsed().as_secs_f64(),
    };
    Ok((
        Trained {
            model: model.valid(),
            config: bert_config,
        },
        summary,
    ))
}

/// Steps the live loss is averaged over.
const LOSS_WINDOW: usize = 10;

/// Reports the step just logged: loss (and its mean over the last [`LOSS_WINDOW`] steps),
/// learning rate and examples/s, as the task's message and a `tracing` event.
fn report_step(task: &dyn rrra_common::progress::Task, log: &[TrainLogRow], total: usize) {
    let Some(last) = log.last() else { return };
    let window = &log[log.len().saturating_sub(LOSS_WINDOW)..];
    let mean = window.iter().map(|r| r.loss).sum::<f64>() / window.len() as f64;
    task.set_message(&format!(
        "step {}/{total} epoch {} loss {:.4} (mean of last {} {mean:.4}) lr {:.2e} {:.1} examples/s",
        last.step,
        last.epoch,
        last.loss,
        window.len(),
        last.lr,
        last.samples_per_s
    ));
    tracing::info!(
        step = last.step,
        epoch = last.epoch,
        loss = last.loss,
        mean_loss = mean,
        lr = last.lr,
        examples_per_s = last.samples_per_s,
        "train step"
    );
    if !last.loss.is_finite() {
        tracing::warn!(step = last.step, "training loss is {}", last.loss);
    }
}

/// A trained model, ready to be exported ([`crate::export`]).
pub struct Trained {
    pub(crate) model: Bert,
    pub(crate) config: BertConfig,
}

fn validate(data: &TrainData) -> Result<()> {
    if data.examples.is_empty() {
        return Err(Error::Invalid("no training examples".into()));
    }
    for (i, e) in data.examples.iter().enumerate() {
        if let Some(w) = &e.weights
            && (w.len() != e.negatives.len() || w.iter().any(|&x| !(x >= 0.0 && x.is_finite())))
        {
            return Err(Error::Invalid(format!(
                "example {i}: weights must be finite, >= 0 and one per negative ({} weights, {} negatives)",
                w.len(),
                e.negatives.len()
            )));
        }
    }
    Ok(())
}

/// The examples of `epoch`, in order: every example (or at most `per_query` of each
/// query's, drawn first), in a seeded shuffle, the same on every run. Every epoch has the
/// same number of examples.
fn epoch_order(data: &TrainData, per_query: Option<usize>, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = match per_query {
        None => (0..data.examples.len()).collect(),
        Some(k) => {
            let mut by_query: Vec<Vec<usize>> = vec![Vec::new(); data.queries.len()];
            for (i, e) in data.examples.iter().enumerate() {
                by_query[e.query].push(i);
            }
            by_query
                .into_iter()
                .flat_map(|mut examples| {
                    examples.shuffle(&mut rng);
                    examples.truncate(k);
                    examples
                })
                .collect()
        }
    };
    order.shuffle(&mut rng);
    order
}

/// Linear warm-up from 0 over `warmup_ratio` of the steps, then linear decay to 0 (as
/// sentence-transformers' `WarmupLinear`); `step` is 0-based.
fn learning_rate(config: &TrainConfig, step: usize, total: usize) -> f64 {
    let warmup = (config.warmup_ratio * total as f64).ceil() as usize;
    let factor = if step < warmup {
        step as f64 / warmup as f64
    } else {
        ((total - step) as f64 / (total - warmup).max(1) as f64).max(0.0)
    };
    config.lr * factor
}

fn positives_by_query(data: &TrainData) -> HashMap<usize, HashSet<usize>> {
    let mut out: HashMap<usize, HashSet<usize>> = HashMap::new();
    for e in &data.examples {
        out.entry(e.query).or_default().insert(e.positive);
    }
    out
}

/// The texts and targets of one step: example `i` scores its query against every document
/// of the batch; its label is its own positive; other positives of its query are masked.
struct Batch {
    queries: Vec<usize>,
    docs: Vec<usize>,
    labels: Vec<i64>,
    /// `[queries, docs]` row-major: true where the column is masked for the row.
    mask: Vec<bool>,
    /// `[queries, docs]`: log of the weight of each column for each row (0 = weight 1).
    log_weights: Vec<f32>,
    /// Per row, its own columns: its positive, then its hard negatives.
    own: Vec<std::ops::Range<usize>>,
}

impl Batch {
    fn new(
        data: &TrainData,
        rows: &[usize],
        config: &TrainConfig,
        positives: &HashMap<usize, HashSet<usize>>,
    ) -> Self {
        let mut docs = Vec::new();
        let mut labels = Vec::with_capacity(rows.len());
        // Column ranges of each example's own hard negatives, with their weights.
        let mut own = Vec::with_capacity(rows.len());
        for &r in rows {
            let e = &data.examples[r];
            labels.push(docs.len() as i64);
            docs.push(e.positive);
            let n = e.negatives.len().min(config.max_negatives);
            let first = docs.len();
            docs.extend_from_slice(&e.negatives[..n]);
            let weights = e
                .weights
                .as_ref()
                .filter(|_| config.use_weights)
                .map(|w| w[..n].to_vec());
            own.push((first, weights));
        }
        let ends = labels
            .iter()
            .skip(1)
            .map(|&l| l as usize)
            .chain([docs.len()]);
        let ranges = labels
            .iter()
            .zip(ends)
            .map(|(&label, end)| label as usize..end)
            .collect();
        let (b, n) = (rows.len(), docs.len());
        let mut mask = vec![false; b * n];
        let mut log_weights = vec![0f32; b * n];
        for (i, &r) in rows.iter().enumerate() {
            let e = &data.examples[r];
            let pos = &positives[&e.query];
            for (j, d) in docs.iter().enumerate() {
                if j as i64 != labels[i] && pos.contains(d) {
                    mask[i * n + j] = true;
                }
            }
            if let (first, Some(weights)) = &own[i] {
                for (k, &w) in weights.iter().enumerate() {
                    let j = first + k;
                    if w > 0.0 {
                        log_weights[i * n + j] = w.ln();
                    } else {
                        mask[i * n + j] = true;
                    }
                }
            }
        }
        Batch {
            queries: rows.iter().map(|&r| data.examples[r].query).collect(),
            docs,
            labels,
            mask,
            log_weights,
            own: ranges,
        }
    }

    fn view(&self) -> BatchView<'_> {
        BatchView {
            queries: &self.queries,
            docs: &self.docs,
            own: &self.own,
        }
    }

    /// InfoNCE of query embeddings `q` `[b, d]` against document embeddings `d` `[n, d]`.
    fn loss(&self, q: Tensor<2>, d: Tensor<2>, temperature: f64) -> Tensor<1> {
        let device = q.device();
        let (b, n) = (self.queries.len(), self.docs.len());
        let mask =
            Tensor::<2, Bool>::from_data(TensorData::new(self.mask.clone(), [b, n]), &device);
        let log_w =
            Tensor::<2>::from_data(TensorData::new(self.log_weights.clone(), [b, n]), &device);
        let labels =
            Tensor::<2, Int>::from_data(TensorData::new(self.labels.clone(), [b, 1]), &device);
        let logits = q.matmul(d.transpose()).div_scalar(temperature) + log_w;
        let logits = logits.mask_fill(mask, MASKED_LOGIT);
        log_softmax(logits, 1).gather(1, labels).mean().neg()
    }
}

/// The two tokenisers of the shared tower and the run's settings.
struct Towers<'a> {
    query: &'a TextTokenizer,
    doc: &'a TextTokenizer,
    device: &'a Device,
    config: &'a TrainConfig,
    run: &'a RunSettings,
}

impl Towers<'_> {
    /// The loss of `batch` and the gradients of the model's parameters; `aux`, with the
    /// step's learning-rate factor, adds its loss and takes its own step.
    fn gradients(
        &self,
        model: &Bert,
        batch: &Batch,
        data: &TrainData,
        aux: Option<(&mut (dyn Auxiliary + '_), f64)>,
    ) -> Result<(f64, GradientsParams)> {
        let queries: Vec<&str> = batch
            .queries
            .iter()
            .map(|&i| data.queries[i].as_str())
            .collect();
        let docs: Vec<&str> = batch.docs.iter().map(|&i| data.docs[i].as_str()).collect();
        let c = self.config;
        let chunk = c.chunk_size;
        // The whole objective on embeddings `q`, `d`: its value and its gradients, after
        // `aux` has taken its own out and stepped.
        let objective = |q: Tensor<2>, d: Tensor<2>| {
            let mut loss = batch.loss(q.clone(), d.clone(), c.temperature);
            let aux = aux.map(|(a, factor)| {
                loss = loss.clone() + a.loss(&batch.view(), q, d);
                (a, factor)
            });
            let value = loss.clone().into_scalar::<f32>() as f64;
            let mut grads = loss.backward();
            if let Some((a, factor)) = aux {
                a.step(&mut grads, factor);
            }
            (value, grads)
        };
        if queries.len() <= chunk && docs.len() <= chunk {
            // Everything fits in one pass: plain backpropagation.
            let q = self.embed(model, self.query, &queries)?;
            let d = self.embed(model, self.doc, &docs)?;
            let (value, mut grads) = objective(q, d);
            return Ok((value, GradientsParams::from_module(&mut grads, model)));
        }
        // Gradient caching (Gao et al. 2021): embed without a graph, take the gradient of
        // the loss with respect to the embeddings, then backpropagate it chunk by chunk.
        let frozen = model.valid();
        let inner = self.device.clone().inner();
        // One chunking per side, shared by both passes.
        let q_chunks = length_chunks(self.query, &queries, chunk)?;
        let d_chunks = length_chunks(self.doc, &docs, chunk)?;
        let q = self.embed_chunks(&frozen, self.query, &queries, &q_chunks, &inner)?;
        let d = self.embed_chunks(&frozen, self.doc, &docs, &d_chunks, &inner)?;
        let dim = q.len() / queries.len();
        let leaf = |v: Vec<f32>, rows: usize| {
            Tensor::<2>::from_data(TensorData::new(v, [rows, dim]), self.device).require_grad()
        };
        let (q, d) = (leaf(q, queries.len()), leaf(d, docs.len()));
        let (value, mut grads) = objective(q.clone(), d.clone());
        let mut rows = |t: &Tensor<2>| -> Result<Vec<f32>> {
            t.grad_remove(&mut grads)
                .expect("leaf requires grad")
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Invalid(format!("reading gradients: {e:?}")))
        };
        let (gq, gd) = (rows(&q)?, rows(&d)?);
        let mut acc = GradientsAccumulator::new();
        for (tok, texts, chunks, grad) in [
            (self.query, &queries, &q_chunks, gq),
            (self.doc, &docs, &d_chunks, gd),
        ] {
            for idx in chunks {
                let part: Vec<&str> = idx.iter().map(|&i| texts[i]).collect();
                let g: Vec<f32> = idx
                    .iter()
                    .flat_map(|&i| grad[i * dim..(i + 1) * dim].iter().copied())
                    .collect();
                let g = Tensor::<2>::from_data(TensorData::new(g, [idx.len(), dim]), self.device);
                let e = self.embed(model, tok, &part)?;
                let surrogate = (e * g).sum();
                acc.accumulate(
                    model,
                    GradientsParams::from_grads(surrogate.backward(), model),
                );
            }
        }
        Ok((value, acc.grads()))
    }

    fn embed(&self, model: &Bert, tok: &TextTokenizer, texts: &[&str]) -> Result<Tensor<2>> {
        let batch = tok.batch(texts.to_vec())?;
        Ok(embed_batch(
            model,
            batch,
            self.device,
            self.run.pooling,
            self.run.normalize,
        ))
    }

    /// Embeddings of `texts` (row-major, input order) computed chunk by chunk on `device`.
    fn embed_chunks(
        &self,
        model: &Bert,
        tok: &TextTokenizer,
        texts: &[&str],
        chunks: &[Vec<usize>],
        device: &Device,
    ) -> Result<Vec<f32>> {
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for idx in chunks {
            let part: Vec<&str> = idx.iter().map(|&i| texts[i]).collect();
            let e = embed_batch(
                model,
                tok.batch(part)?,
                device,
                self.run.pooling,
                self.run.normalize,
            );
            let dim = e.dims()[1];
            let v = e
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Invalid(format!("reading embeddings: {e:?}")))?;
            for (row, &i) in v.chunks_exact(dim).zip(idx) {
                out[i] = row.to_vec();
            }
        }
        Ok(out.concat())
    }
}

/// Indices of `texts` in chunks of at most `chunk`, longest first, so that each chunk pads
/// to similar lengths.
fn length_chunks(tok: &TextTokenizer, texts: &[&str], chunk: usize) -> Result<Vec<Vec<usize>>> {
    let lengths = tok.lengths(texts)?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    Ok(order.chunks(chunk).map(<[usize]>::to_vec).collect())
}

/// Scales every gradient so that their joint L2 norm is at most `max_norm` (as torch's
/// `clip_grad_norm_`; burn's own clipping works per tensor).
fn clip_global_norm(model: &Bert, grads: &mut GradientsParams, max_norm: f64) {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.total += g.powi_scalar(2).sum().into_scalar::<f32>() as f64;
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: 0.0 };
    model.visit(&mut norm);
    let total = norm.total.sqrt();
    if total > max_norm {
        model.visit(&mut Scale {
            grads,
            factor: max_norm / (total + 1e-6),
        });
    }
}

fn read_checkpoint(dir: &Path, recorded: &serde_json::Value) -> Result<Option<CheckpointState>> {
    let path = dir.join("state.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .map_err(|e| Error::model(&path, format!("bad checkpoint state: {e}")))?;
    // A checkpoint of other settings is not resumed from (the cache key normally rules
    // this out; a library caller may reuse a work directory).
    Ok((state.config == *recorded).then_some(state))
}

/// Writes the checkpoint to a scratch folder, then swaps it in: a kill leaves either the
/// previous checkpoint or the new one.
fn write_checkpoint(
    dir: &Path,
    model: &Bert,
    optim: &ModuleOptimizer,
    recorded: &serde_json::Value,
    step: usize,
    log: &[TrainLogRow],
    aux: Option<&dyn Auxiliary>,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let path = tmp.join("model.bpk");
    let mut store = BurnpackStore::from_file(&path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::model(&path, format!("cannot write checkpoint: {e}")))?;
    let path = tmp.join("optim.bpk");
    optim
        .save(&path)
        .map_err(|e| Error::model(&path, format!("cannot write checkpoint: {e}")))?;
    if let Some(aux) = aux {
        aux.save(&tmp)?;
    }
    let state = CheckpointState {
        step,
        config: recorded.clone(),
        log: log
            .iter()
            .map(|r| (r.step, r.epoch, r.loss, r.lr, r.samples_per_s))
            .collect(),
    };
    let path = tmp.join("state.json");
    std::fs::write(
        &path,
        serde_json::to_string(&state).expect("state serialises"),
    )
    .map_err(|e| Error::io(&path, e))?;
    let old: PathBuf = dir.with_extension("old");
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 queries with 5, 1 and 3 examples.
    fn data() -> TrainData {
        let example = |query| TrainExample {
            query,
            positive: 0,
            negatives: vec![],
            weights: None,
        };
        TrainData {
            queries: vec!["a".into(), "b".into(), "c".into()],
            docs: vec!["d".into()],
            examples: [0, 0, 1, 0, 2, 2, 0, 2, 0].map(example).to_vec(),
        }
    }

    #[test]
    fn an_epoch_draws_at_most_per_query_examples_of_each_query() {
        let data = data();
        let mut all = epoch_order(&data, None, 7, 0);
        all.sort_unstable();
        assert_eq!(all, (0..9).collect::<Vec<_>>(), "unset: every example");
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..30 {
            let order = epoch_order(&data, Some(2), 7, epoch);
            assert_eq!(order, epoch_order(&data, Some(2), 7, epoch), "seeded");
            let mut per = [0; 3];
            for &i in &order {
                per[data.examples[i].query] += 1;
            }
            assert_eq!(per, [2, 1, 2], "epoch {epoch}: {order:?}");
            seen.extend(order);
        }
        assert_eq!(seen.len(), 9, "over the epochs every example gets its turn");
    }
}
