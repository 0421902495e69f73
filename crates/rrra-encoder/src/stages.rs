//! The pipeline stages of the encoder: `encode.bert` (a corpus or a query set in, an
//! embeddings artifact out) and `train.biencoder` (contrastive fine-tuning, a model folder
//! out). Pooling, normalisation, length and prompts are the model's own settings (its
//! sentence-transformers files, [`crate::settings`]) unless a param sets them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rrra_common::artifact::{for_each_batch, parquet_rows, read_rows, write_rows};
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::parts::{Parts, concat_embeddings, for_each_batch_in};
use rrra_common::records::{Doc, Example, Query};
use rrra_common::schema::ArtifactKind::{Corpus, Embeddings, Examples, Model, Queries, TrainLog};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use crate::export::export;
use crate::settings::ModelSettings;
use crate::tokenize::TextTokenizer;
use crate::train::{Auxiliary, TrainConfig, TrainData, TrainExample, train};
use crate::{Backend, Encoder, EncoderOptions, ModelSource, Pooling, Precision};

/// rrra's settings where neither the params nor the model give one.
const DEFAULT_MAX_LEN: usize = 256;
const DEFAULT_POOLING: Pooling = Pooling::Mean;
const DEFAULT_NORMALIZE: bool = true;

/// Params of `encode.bert`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EncodeParams {
    /// The model when no `model` input is connected: a known id (`minilm-l6`), a folder with
    /// config.json, tokenizer.json and model.safetensors (relative to the pipeline file), or
    /// a Hugging Face id `ORG/NAME[@REVISION]` (e.g. `BAAI/bge-small-en-v1.5`), fetched into
    /// the Hub cache (`HF_HOME`; `HF_HUB_OFFLINE=1` uses the cache only).
    pub model: String,
    /// Tokens per text after truncation, special tokens included. Unset: the model's
    /// `max_seq_length` (sentence_bert_config.json), else 256.
    pub max_len: Option<usize>,
    /// `mean` or `cls`. Unset: the model's Pooling module (1_Pooling/config.json), else mean.
    pub pooling: Option<Pooling>,
    /// L2-normalise each embedding. Unset: whether the model has a Normalize module, else
    /// true.
    pub normalize: Option<bool>,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// `cpu` (default), `tch` or `wgpu`, among those compiled in.
    pub backend: String,
    /// Float type of the matrix products: `fp32` (default), or `bf16`/`fp16` on backend
    /// `tch` (autocast-style: fp32 weights, layer norms, softmax and pooling).
    pub precision: Precision,
    /// Text put before every input (e.g. `"query: "`). Unset: the model's prompt for the
    /// role (config_sentence_transformers.json: `query` for queries, `passage`/`document`
    /// for documents, else its default prompt), else none; `""` turns a prompt off.
    pub prefix: Option<String>,
    /// Texts sorted by length together (rows `[i·w, (i+1)·w)` of the input), so batches
    /// carry little padding. Which texts share a batch can move embeddings by an ulp, so
    /// this is part of the cache key when not the default 8192.
    pub sort_window: usize,
    /// Cut the output into parts of this many input rows (a multiple of `sort_window`),
    /// each written to the entry's work folder as it finishes, so a killed run resumes at
    /// the first unfinished part. Unset: one part. The embeddings do not depend on it (it
    /// is not in the cache key).
    pub part_rows: Option<u64>,
}

/// The default `sort_window`: one record batch of the input, as before the param existed.
const DEFAULT_SORT_WINDOW: usize = 8192;

impl Default for EncodeParams {
    fn default() -> Self {
        EncodeParams {
            model: crate::MINILM_L6.into(),
            max_len: None,
            pooling: None,
            normalize: None,
            batch_size: 32,
            backend: Backend::default().name().into(),
            precision: Precision::Fp32,
            prefix: None,
            sort_window: DEFAULT_SORT_WINDOW,
            part_rows: None,
        }
    }
}

/// The canonical form of [`EncodeParams`] (the cache key's params): a known model's own
/// settings are filled in where a param is unset, so that a pipeline naming `minilm-l6`
/// keeps the key it had when these params were plain values (256, mean, true, `""`).
#[derive(Serialize)]
struct CanonicalEncode<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pooling: Option<Pooling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
    batch_size: usize,
    backend: &'a str,
    /// Left out at fp32, so that keys from before the param stay.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    precision: Precision,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "is_default_sort_window")]
    sort_window: usize,
}

fn is_default_sort_window(w: &usize) -> bool {
    *w == DEFAULT_SORT_WINDOW
}

impl Serialize for EncodeParams {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let known = match ModelSource::parse(&self.model, Path::new("")) {
            ModelSource::Known(k) => Some(k),
            _ => None,
        };
        CanonicalEncode {
            model: &self.model,
            max_len: self.max_len.or(known.map(|k| k.max_len)),
            pooling: self.pooling.or(known.map(|k| k.pooling)),
            normalize: self.normalize.or(known.map(|k| k.normalize)),
            batch_size: self.batch_size,
            backend: &self.backend,
            precision: self.precision,
            prefix: self.prefix.as_deref().or(known.map(|_| "")),
            sort_window: self.sort_window,
        }
        .serialize(serializer)
    }
}

/// The backend named by a `backend` param, when it is compiled in.
fn backend_param(name: &str) -> Result<Backend, String> {
    let backend = Backend::ALL
        .into_iter()
        .find(|b| b.name() == name)
        .ok_or_else(|| format!("param backend: unknown backend {name:?} (cpu, tch, wgpu)"))?;
    if !backend.is_compiled() {
        return Err(format!(
            "param backend: {name:?} is not compiled in; build with it: \
             `cargo run --release -p xtask --features {name} -- run FILE`"
        ));
    }
    Ok(backend)
}

/// Which texts an encoder embeds: its prompts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Document,
}

/// How a model is run: explicit params over the model's own settings over rrra's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub max_len: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Put before each query.
    pub query_prompt: String,
    /// Put before each document.
    pub doc_prompt: String,
}

impl Resolved {
    /// Merges params (`None`: unset) with the model's `settings`.
    pub fn merge(
        max_len: Option<usize>,
        pooling: Option<Pooling>,
        normalize: Option<bool>,
        prefix: Option<&str>,
        settings: &ModelSettings,
    ) -> Resolved {
        let prompt = |own: &Option<String>| {
            prefix
                .map(str::to_string)
                .or_else(|| own.clone())
                .unwrap_or_default()
        };
        Resolved {
            max_len: max_len.or(settings.max_len).unwrap_or(DEFAULT_MAX_LEN),
            pooling: pooling.or(settings.pooling).unwrap_or(DEFAULT_POOLING),
            normalize: normalize
                .or(settings.normalize)
                .unwrap_or(DEFAULT_NORMALIZE),
            query_prompt: prompt(&settings.query_prompt),
            doc_prompt: prompt(&settings.doc_prompt),
        }
    }

    /// The prompt of `role`.
    pub fn prompt(&self, role: Role) -> &str {
        match role {
            Role::Query => &self.query_prompt,
            Role::Document => &self.doc_prompt,
        }
    }
}

/// The model folder of a stage and where it came from: the `model` input when connected
/// (a trained model: a folder with its sentence-transformers files), else the `model`
/// param, fetched if need be.
fn model_of(name: &str, ctx: &StageContext<'_>) -> rrra_common::Result<(PathBuf, ModelSource)> {
    if let Some(trained) = ctx.optional_input("model") {
        let dir = trained.to_path_buf();
        return Ok((dir.clone(), ModelSource::Folder(dir)));
    }
    let source = ModelSource::parse(name, &ctx.base_dir);
    let dir = source.fetch(&ctx.cache_dir.join("models"), ctx.progress)?;
    Ok((dir, source))
}

impl EncodeParams {
    /// The model files hashed into the cache key: a folder model's model files and
    /// sentence-transformers files (a known id pins its files by sha256, a Hub id names its
    /// revision; both are in the params).
    fn sources_of_model(&self) -> Vec<PathBuf> {
        ModelSource::parse(&self.model, Path::new("")).key_files()
    }

    /// The settings in the params alone (what `check` can verify before a model is read).
    fn check_params(&self) -> Result<Backend, String> {
        let backend = backend_param(&self.backend)?;
        self.precision.check(backend)?;
        if self.batch_size == 0 || self.max_len.is_some_and(|n| n < 2) {
            return Err("params batch_size must be >= 1 and max_len >= 2".into());
        }
        if self.sort_window == 0 {
            return Err("param sort_window must be at least 1".into());
        }
        if let Some(rows) = self.part_rows
            && (rows == 0 || !rows.is_multiple_of(self.sort_window as u64))
        {
            return Err(format!(
                "param part_rows ({rows}) must be a positive multiple of sort_window ({}), so \
                 that parts sort and batch their texts as an unsplit run does",
                self.sort_window
            ));
        }
        Ok(backend)
    }
}

/// `encode.bert`: embeds every document (`title + " " + text`, as BEIR does) or every query
/// with a BERT encoder.
pub struct EncodeBert;

impl Stage for EncodeBert {
    type Params = EncodeParams;
    const KIND: &'static str = "encode.bert";
    // v2: the patched burn-flex (vectorised erf in GELU, bias fused into the gemm) moves
    // embeddings by ~1e-7; the model folder's sentence-transformers settings apply.
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "BERT bi-encoder embeddings of a corpus or of queries";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::optional("corpus", Corpus),
                Port::optional("queries", Queries),
                Port::optional("model", Model),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("embeddings", Embeddings)] }
    }
    fn check(p: &EncodeParams) -> Result<(), String> {
        p.check_params().map(|_| ())
    }
    fn sources(p: &EncodeParams) -> Vec<PathBuf> {
        p.sources_of_model()
    }

    fn run(p: &EncodeParams, ctx: &StageContext<'_>) -> rrra_common::Result<StageReport> {
        let invalid = |e: crate::Error| rrra_common::Error::Invalid(e.to_string());
        let backend = p.check_params().map_err(rrra_common::Error::Invalid)?;
        let (input, role) = match (ctx.optional_input("corpus"), ctx.optional_input("queries")) {
            (Some(c), None) => (c, Role::Document),
            (None, Some(q)) => (q, Role::Query),
            _ => {
                return Err(rrra_common::Error::Invalid(
                    "connect exactly one of the inputs corpus and queries".into(),
                ));
            }
        };
        let (dir, source) = model_of(&p.model, ctx)?;
        let settings = source.settings(&dir)?;
        let resolved = Resolved::merge(
            p.max_len,
            p.pooling,
            p.normalize,
            p.prefix.as_deref(),
            &settings,
        );
        let options = EncoderOptions {
            max_len: resolved.max_len,
            pooling: resolved.pooling,
            normalize: resolved.normalize,
            backend,
            precision: p.precision,
        };
        let encoder = Encoder::load(&dir, options).map_err(invalid)?;
        // Counts the texts cut at max_len (a tokenizer of its own: the encoder's is private).
        let lengths = TextTokenizer::from_file(&dir.join("tokenizer.json"), resolved.max_len + 1)
            .map_err(invalid)?;
        let prompt = resolved.prompt(role).to_string();
        tracing::info!(
            model = %dir.display(),
            max_len = resolved.max_len,
            pooling = %resolved.pooling,
            normalize = resolved.normalize,
            prompt = %prompt,
            "encode.bert settings"
        );
        let total = parquet_rows(input)?;
        // Counted per encoder batch (a Parquet batch holds thousands of texts).
        let task: std::sync::Arc<dyn rrra_common::progress::Task> = ctx
            .progress
            .task(
                match role {
                    Role::Document => "encode corpus",
                    Role::Query => "encode queries",
                },
                Some(total),
            )
            .into();
        let counter = Forward(std::sync::Arc::clone(&task));
        let start = std::time::Instant::now();
        let mut truncated = 0u64;
        let dim = encoder.dim();
        // Encodes input rows `range` into `out`, `sort_window` texts per encoder call,
        // windows counted from the start of the input.
        let mut encode_range = |range: std::ops::Range<u64>, out: &Path| {
            let mut sink = EmbeddingSink::create(out, dim)?;
            let mut pending: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
            let mut encode = |ids: &mut Vec<String>,
                              texts: &mut Vec<String>,
                              all: bool|
             -> rrra_common::Result<()> {
                while texts.len() >= p.sort_window || (all && !texts.is_empty()) {
                    let n = texts.len().min(p.sort_window);
                    let window: Vec<String> = texts.drain(..n).collect();
                    truncated += lengths
                        .lengths(&window)
                        .map_err(invalid)?
                        .into_iter()
                        .filter(|&n| n > resolved.max_len)
                        .count() as u64;
                    let vectors = encoder
                        .encode(&window, p.batch_size, &counter)
                        .map_err(invalid)?;
                    for (id, v) in ids.drain(..n).zip(vectors.chunks_exact(dim)) {
                        sink.push(&id, v)?;
                    }
                }
                Ok(())
            };
            let (ids, texts) = &mut pending;
            match role {
                Role::Document => for_each_batch_in::<Doc>(input, range, p.sort_window, |docs| {
                    texts.extend(docs.iter().map(|d| doc_text(d, &prompt)));
                    ids.extend(docs.into_iter().map(|d| d.id));
                    encode(ids, texts, false)
                })?,
                Role::Query => {
                    for_each_batch_in::<Query>(input, range, p.sort_window, |queries| {
                        texts.extend(queries.iter().map(|q| format!("{prompt}{}", q.text)));
                        ids.extend(queries.into_iter().map(|q| q.id));
                        encode(ids, texts, false)
                    })?
                }
            }
            encode(ids, texts, true)?;
            sink.finish()
        };
        let out = ctx.output("embeddings");
        let (rows, split) = match p.part_rows {
            None => (encode_range(0..total, &out)?, None),
            Some(size) => {
                let parts = Parts::open(&ctx.work_dir, "embeddings", "rows", size, total)?;
                let done = parts.compute(ctx.progress, "encode.bert", |range, file| {
                    encode_range(range, file).map(|_| ())
                })?;
                (concat_embeddings(&done.files, &out, dim)?, Some(done))
            }
        };
        drop(counter);
        drop(task);
        if truncated > 0 {
            tracing::warn!(
                "encode.bert: {truncated} of {rows} texts ({:.1}%) were longer than max_len {} \
                 tokens and were truncated",
                100.0 * truncated as f64 / rows.max(1) as f64,
                resolved.max_len
            );
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(StageReport {
            metrics: [
                ("rows".to_string(), rows as f64),
                ("dim".to_string(), encoder.dim() as f64),
                ("texts_per_s".to_string(), rows as f64 / secs.max(1e-9)),
                ("truncated_texts".to_string(), truncated as f64),
            ]
            .into_iter()
            .chain(split.iter().flat_map(|done| done.metrics()))
            .collect(),
            table: None,
        })
    }
}

/// Hands the encoder's per-batch counts to the stage's task.
struct Forward(std::sync::Arc<dyn rrra_common::progress::Task>);

impl rrra_common::progress::Progress for Forward {
    fn task(&self, _label: &str, _total: Option<u64>) -> Box<dyn rrra_common::progress::Task> {
        Box::new(Forward(std::sync::Arc::clone(&self.0)))
    }
}

impl rrra_common::progress::Task for Forward {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

/// The text a document is encoded from: `title + " " + text` (as BEIR does), trimmed,
/// after `prefix`.
pub fn doc_text(d: &Doc, prefix: &str) -> String {
    let text = if d.title.is_empty() {
        d.text.clone()
    } else {
        format!("{} {}", d.title, d.text)
    };
    format!("{prefix}{}", text.trim())
}

/// Default `checkpoint_secs` of the training stages: at most one checkpoint every 5 min.
pub const DEFAULT_CHECKPOINT_SECS: f64 = 300.0;

fn is_default_checkpoint_secs(secs: &f64) -> bool {
    *secs == DEFAULT_CHECKPOINT_SECS
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    /// The starting model when no `model` input is connected: a known id, a folder or a
    /// Hugging Face id `ORG/NAME[@REVISION]` (as `encode.bert`'s `model`).
    pub model: String,
    /// `cpu` (default), `tch` or `wgpu`, among those compiled in.
    pub backend: String,
    /// Float type of the matrix products: `fp32` (default) or `bf16` on backend `tch`
    /// (autocast-style: fp32 master weights, optimiser state, layer norms, softmax and
    /// loss). Left out of the cache key at fp32.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    #[schemars(extend("default" = "fp32"))]
    pub precision: Precision,
    /// Examples per optimiser step (in-batch negatives come from the same batch).
    pub batch_size: usize,
    /// Texts per forward/backward pass; smaller than a batch's texts turns on gradient
    /// caching (same gradients, memory of one chunk).
    pub chunk_size: usize,
    /// Passes over the examples.
    pub epochs: usize,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// Fraction of the steps with a linearly rising learning rate (then linear decay).
    pub warmup_ratio: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Global gradient-norm clipping; 0 turns it off.
    pub max_grad_norm: f64,
    /// Hard negatives per example used, at most.
    pub max_negatives: usize,
    /// Use per-negative weights of the examples in the InfoNCE denominator.
    pub use_weights: bool,
    /// Save a checkpoint (that a killed run resumes from) every this many steps.
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

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: crate::MINILM_L6.into(),
            backend: Backend::default().name().into(),
            precision: Precision::Fp32,
            batch_size: 32,
            chunk_size: 64,
            epochs: 1,
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

impl TrainParams {
    /// The range checks of `train.biencoder` (and of stages that train through it).
    pub fn check(&self) -> Result<(), String> {
        self.precision
            .check_training(backend_param(&self.backend)?)?;
        let c = self.config(
            0,
            &Resolved::merge(None, None, None, None, &Default::default()),
        );
        if c.batch_size == 0
            || c.chunk_size == 0
            || c.epochs == 0
            || self.export_max_len.is_some_and(|n| n < 2)
        {
            return Err(
                "params batch_size, chunk_size and epochs must be >= 1, export_max_len >= 2".into(),
            );
        }
        if !(self.checkpoint_secs >= 0.0 && self.checkpoint_secs.is_finite()) {
            return Err("param checkpoint_secs must be a finite number >= 0".into());
        }
        if !(c.temperature > 0.0 && c.lr > 0.0 && (0.0..=1.0).contains(&c.warmup_ratio)) {
            return Err("params temperature and lr must be > 0, warmup_ratio in [0, 1]".into());
        }
        Ok(())
    }

    /// The model files hashed into the cache key (a folder model's).
    pub fn sources(&self) -> Vec<PathBuf> {
        ModelSource::parse(&self.model, Path::new("")).key_files()
    }

    /// The settings training runs with: the params over the starting model's `settings`.
    /// Training truncates at its own `max_len` and `query_max_len`; the model's length
    /// goes into the export.
    fn resolve(&self, settings: &ModelSettings) -> Resolved {
        Resolved::merge(
            self.export_max_len,
            self.pooling,
            self.normalize,
            None,
            settings,
        )
    }

    fn config(&self, seed: u64, resolved: &Resolved) -> TrainConfig {
        TrainConfig {
            batch_size: self.batch_size,
            chunk_size: self.chunk_size,
            epochs: self.epochs,
            lr: self.lr,
            warmup_ratio: self.warmup_ratio,
            weight_decay: self.weight_decay,
            temperature: self.temperature,
            max_grad_norm: self.max_grad_norm,
            max_negatives: self.max_negatives,
            use_weights: self.use_weights,
            checkpoint_every: self.checkpoint_every,
            checkpoint_secs: self.checkpoint_secs,
            query_max_len: self.query_max_len,
            max_len: self.max_len,
            pooling: resolved.pooling,
            normalize: resolved.normalize,
            seed,
            precision: self.precision,
        }
    }
}

/// `train.biencoder`: contrastive fine-tuning of the encoder on training examples; writes
/// a sentence-transformers model folder and a per-step training log.
pub struct TrainBiencoder;

impl Stage for TrainBiencoder {
    type Params = TrainParams;
    const KIND: &'static str = "train.biencoder";
    // v2: the patched burn-flex changes the forward pass by ~1e-7 (see encode.bert).
    const VERSION: u32 = 2;
    const ABOUT: &'static str =
        "InfoNCE fine-tuning of the bi-encoder (AdamW, warm-up, clipping, checkpoints)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("examples", Examples),
                Port::required("corpus", Corpus),
                Port::required("queries", Queries),
                Port::optional("model", Model),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("model", Model),
                Port::required("log", TrainLog),
            ]
        }
    }
    fn check(p: &TrainParams) -> Result<(), String> {
        p.check()
    }
    fn sources(p: &TrainParams) -> Vec<PathBuf> {
        p.sources()
    }

    fn run(p: &TrainParams, ctx: &StageContext<'_>) -> rrra_common::Result<StageReport> {
        let (data, _) = load_training_data(ctx)?;
        fine_tune(p, ctx, &data, None)
    }
}

/// Fine-tunes on `data` as `train.biencoder` does (with `aux`'s objective added, if given),
/// exports the model and its training config into the `model` output and writes the `log`.
pub fn fine_tune(
    p: &TrainParams,
    ctx: &StageContext<'_>,
    data: &TrainData,
    aux: Option<&mut dyn Auxiliary>,
) -> rrra_common::Result<StageReport> {
    let invalid = |e: crate::Error| rrra_common::Error::Invalid(e.to_string());
    let backend = backend_param(&p.backend).map_err(rrra_common::Error::Invalid)?;
    let (base, source) = model_of(&p.model, ctx)?;
    let resolved = p.resolve(&source.settings(&base)?);
    let config = p.config(ctx.seed, &resolved);
    tracing::info!(
        model = %base.display(),
        pooling = %resolved.pooling,
        normalize = resolved.normalize,
        query_prompt = %resolved.query_prompt,
        doc_prompt = %resolved.doc_prompt,
        "training settings"
    );
    // The model's prompts go before the texts, as encoding puts them.
    let prompted;
    let data = if resolved.query_prompt.is_empty() && resolved.doc_prompt.is_empty() {
        data
    } else {
        let prefix = |prompt: &str, texts: &[String]| -> Vec<String> {
            texts.iter().map(|t| format!("{prompt}{t}")).collect()
        };
        prompted = TrainData {
            queries: prefix(&resolved.query_prompt, &data.queries),
            docs: prefix(&resolved.doc_prompt, &data.docs),
            examples: data.examples.clone(),
        };
        &prompted
    };
    let (trained, summary) = train(
        &base,
        backend,
        &config,
        data,
        &ctx.work_dir,
        ctx.progress,
        aux,
    )
    .map_err(invalid)?;
    let out = ctx.output_dir("model")?;
    export(
        &trained,
        &base,
        &out,
        resolved.max_len,
        config.pooling,
        config.normalize,
    )
    .map_err(invalid)?;
    let saved = out.join("rrra_train.json");
    std::fs::write(
        &saved,
        serde_json::to_string_pretty(&serde_json::json!({"params": p, "config": config}))
            .expect("config serialises"),
    )
    .map_err(|e| rrra_common::Error::io(&saved, e))?;
    write_rows(&ctx.output("log"), summary.log.iter().cloned())?;
    let last = summary.log.last().map(|r| r.loss).unwrap_or(f64::NAN);
    let first = summary.log.first().map(|r| r.loss).unwrap_or(f64::NAN);
    let sps = summary.log[summary.resumed_at..]
        .iter()
        .map(|r| r.samples_per_s)
        .sum::<f64>()
        / (summary.steps - summary.resumed_at).max(1) as f64;
    Ok(StageReport {
        metrics: [
            ("examples".to_string(), data.examples.len() as f64),
            ("steps".to_string(), summary.steps as f64),
            ("resumed_at_step".to_string(), summary.resumed_at as f64),
            ("first_loss".to_string(), first),
            ("final_loss".to_string(), last),
            ("samples_per_s".to_string(), sps),
            ("train_seconds".to_string(), summary.seconds),
        ]
        .into(),
        table: None,
    })
}

/// The index in [`TrainData`] of each query and document id.
#[derive(Debug, Clone, Default)]
pub struct TrainIds {
    pub queries: HashMap<String, usize>,
    pub docs: HashMap<String, usize>,
}

/// Reads the examples and the texts they name (only those) from the stage's `examples`,
/// `corpus` and `queries` inputs.
pub fn load_training_data(ctx: &StageContext<'_>) -> rrra_common::Result<(TrainData, TrainIds)> {
    let examples_path = ctx.input("examples")?;
    let examples: Vec<Example> = read_rows(examples_path)?;
    let mut query_index: HashMap<String, usize> = HashMap::new();
    let mut doc_index: HashMap<String, usize> = HashMap::new();
    let index = |map: &mut HashMap<String, usize>, id: &str| -> usize {
        let n = map.len();
        *map.entry(id.to_string()).or_insert(n)
    };
    let mut out = TrainData::default();
    for e in &examples {
        out.examples.push(TrainExample {
            query: index(&mut query_index, &e.query_id),
            positive: index(&mut doc_index, &e.positive_id),
            negatives: e
                .negatives
                .iter()
                .map(|d| index(&mut doc_index, d))
                .collect(),
            weights: e.weights.clone(),
        });
    }
    out.queries = vec![String::new(); query_index.len()];
    out.docs = vec![String::new(); doc_index.len()];
    let mut seen_docs = 0;
    for_each_batch::<Doc>(ctx.input("corpus")?, |docs| {
        for d in docs {
            if let Some(&i) = doc_index.get(&d.id) {
                out.docs[i] = doc_text(&d, "");
                seen_docs += 1;
            }
        }
        Ok(())
    })?;
    let mut seen_queries = 0;
    for_each_batch::<Query>(ctx.input("queries")?, |queries| {
        for q in queries {
            if let Some(&i) = query_index.get(&q.id) {
                out.queries[i] = q.text;
                seen_queries += 1;
            }
        }
        Ok(())
    })?;
    let missing = |map: &HashMap<String, usize>, texts: &[String]| {
        map.iter()
            .filter(|(_, i)| texts[**i].is_empty())
            .map(|(id, _)| id.clone())
            .min()
    };
    if seen_docs < doc_index.len()
        && let Some(id) = missing(&doc_index, &out.docs)
    {
        return Err(rrra_common::Error::file(
            examples_path,
            format!("document {id:?} of the examples is not in the corpus input"),
        ));
    }
    if seen_queries < query_index.len()
        && let Some(id) = missing(&query_index, &out.queries)
    {
        return Err(rrra_common::Error::file(
            examples_path,
            format!("query {id:?} of the examples is not in the queries input"),
        ));
    }
    let ids = TrainIds {
        queries: query_index,
        docs: doc_index,
    };
    Ok((out, ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_known_model_keeps_the_canonical_params_it_had_as_plain_values() {
        // The params' canonical JSON (part of the cache key) before they became optional.
        let before = json!({
            "model": "minilm-l6", "max_len": 256, "pooling": "mean", "normalize": true,
            "batch_size": 32, "backend": Backend::default().name(), "prefix": ""
        });
        assert_eq!(
            serde_json::to_value(EncodeParams::default()).unwrap(),
            before
        );
        let explicit: EncodeParams = serde_json::from_value(before.clone()).unwrap();
        assert_eq!(serde_json::to_value(explicit).unwrap(), before);
        // Every param is in the canonical form (a new field must be added to it).
        let schema = serde_json::to_value(schemars::schema_for!(EncodeParams)).unwrap();
        let props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        for p in props {
            // `precision` is in it only when not fp32 (next test), `sort_window` only when
            // not the default, `part_rows` never (the output does not depend on it).
            assert!(
                before.get(p).is_some()
                    || ["precision", "sort_window", "part_rows"].contains(&p.as_str()),
                "param {p} is not in the canonical form"
            );
        }
    }

    #[test]
    fn precision_enters_the_keys_only_when_not_fp32_and_needs_tch() {
        let fp32 = json!({"model": "minilm-l6", "precision": "fp32"});
        let enc: EncodeParams = serde_json::from_value(fp32.clone()).unwrap();
        let train: TrainParams = serde_json::from_value(fp32).unwrap();
        assert_eq!(
            serde_json::to_value(&enc).unwrap(),
            serde_json::to_value(EncodeParams::default()).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&train).unwrap(),
            serde_json::to_value(TrainParams::default()).unwrap()
        );
        assert!(
            serde_json::to_value(&train)
                .unwrap()
                .get("precision")
                .is_none()
        );
        let half = json!({"precision": "bf16", "backend": "cpu"});
        let enc: EncodeParams = serde_json::from_value(half.clone()).unwrap();
        let train: TrainParams = serde_json::from_value(half).unwrap();
        assert_eq!(serde_json::to_value(&enc).unwrap()["precision"], "bf16");
        assert_eq!(serde_json::to_value(&train).unwrap()["precision"], "bf16");
        if Backend::Cpu.is_compiled() {
            for err in [EncodeBert::check(&enc), TrainBiencoder::check(&train)] {
                let err = err.unwrap_err();
                assert!(
                    err.contains("param precision") && err.contains("backend `cpu`"),
                    "{err}"
                );
            }
        }
        let fp16: TrainParams =
            serde_json::from_value(json!({"precision": "fp16", "backend": "tch"})).unwrap();
        if Backend::Tch.is_compiled() {
            assert!(TrainBiencoder::check(&fp16).unwrap_err().contains("fp16"));
        }
        let bad = serde_json::from_value::<EncodeParams>(json!({"precision": "half"}));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown variant `half`")
        );
    }

    #[test]
    fn unset_settings_of_other_models_stay_unset_in_the_key() {
        let p: EncodeParams =
            serde_json::from_value(json!({"model": "BAAI/bge-small-en-v1.5"})).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        for unset in ["max_len", "pooling", "normalize", "prefix"] {
            assert!(v.get(unset).is_none(), "{unset}: {v}");
        }
        let p: EncodeParams = serde_json::from_value(
            json!({"model": "BAAI/bge-small-en-v1.5", "pooling": "mean", "prefix": ""}),
        )
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!((&v["pooling"], &v["prefix"]), (&json!("mean"), &json!("")));
        let bad = serde_json::from_value::<EncodeParams>(json!({"pooling": "max"}));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown variant `max`")
        );
    }

    #[test]
    fn params_override_the_models_settings_which_override_the_defaults() {
        let model = ModelSettings {
            pooling: Some(Pooling::Cls),
            normalize: Some(false),
            max_len: Some(512),
            query_prompt: Some("query: ".into()),
            doc_prompt: Some("passage: ".into()),
        };
        let own = Resolved::merge(None, None, None, None, &model);
        assert_eq!(
            own,
            Resolved {
                max_len: 512,
                pooling: Pooling::Cls,
                normalize: false,
                query_prompt: "query: ".into(),
                doc_prompt: "passage: ".into(),
            }
        );
        let set = Resolved::merge(Some(128), Some(Pooling::Mean), Some(true), Some(""), &model);
        assert_eq!(
            (
                set.max_len,
                set.pooling,
                set.normalize,
                set.prompt(Role::Query)
            ),
            (128, Pooling::Mean, true, "")
        );
        let plain = Resolved::merge(None, None, None, None, &ModelSettings::default());
        assert_eq!(
            (
                plain.max_len,
                plain.pooling,
                plain.normalize,
                plain.prompt(Role::Document)
            ),
            (256, Pooling::Mean, true, "")
        );
    }
}
