//! The `encode.bert` pipeline stage: a corpus or a query set in, an embeddings artifact out.

use std::collections::HashMap;
use std::path::PathBuf;

use rrra_common::artifact::{for_each_batch, parquet_rows, read_rows, write_rows};
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::records::{Doc, Example, Query};
use rrra_common::schema::ArtifactKind::{Corpus, Embeddings, Examples, Model, Queries, TrainLog};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use crate::export::export;
use crate::train::{Auxiliary, TrainConfig, TrainData, TrainExample, train};
use crate::{Backend, Encoder, EncoderOptions, KNOWN_MODELS, MODEL_FILES, Pooling, resolve_model};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncodeParams {
    /// A known model id (`minilm-l6`) or a folder with config.json, tokenizer.json and
    /// model.safetensors (relative to the pipeline file).
    pub model: String,
    /// Tokens per text after truncation, special tokens included.
    pub max_len: usize,
    /// `mean` or `cls`.
    pub pooling: String,
    pub normalize: bool,
    pub batch_size: usize,
    /// `cpu` (default), `tch` or `wgpu`, among those compiled in.
    pub backend: String,
    /// Text put before every input (e.g. `"query: "` for E5-style models).
    pub prefix: String,
}

impl Default for EncodeParams {
    fn default() -> Self {
        EncodeParams {
            model: crate::MINILM_L6.into(),
            max_len: 256,
            pooling: "mean".into(),
            normalize: true,
            batch_size: 32,
            backend: Backend::default().name().into(),
            prefix: String::new(),
        }
    }
}

impl EncodeParams {
    fn is_known(&self) -> bool {
        KNOWN_MODELS.iter().any(|m| m.id == self.model)
    }

    /// The model files a folder model is read from (a known id pins its files by sha256,
    /// and the id is in the params).
    fn sources_of_model(&self) -> Vec<PathBuf> {
        if self.is_known() {
            return Vec::new();
        }
        MODEL_FILES
            .iter()
            .map(|f| PathBuf::from(&self.model).join(f))
            .collect()
    }

    fn options(&self) -> Result<EncoderOptions, String> {
        let backend = Backend::ALL
            .into_iter()
            .find(|b| b.name() == self.backend)
            .ok_or_else(|| {
                format!(
                    "param backend: unknown backend {:?} (cpu, tch, wgpu)",
                    self.backend
                )
            })?;
        if !backend.is_compiled() {
            return Err(format!(
                "param backend: {:?} is not compiled in; build with it: \
                 `cargo run --release -p xtask --features {} -- run FILE`",
                self.backend, self.backend
            ));
        }
        Ok(EncoderOptions {
            max_len: self.max_len,
            pooling: self
                .pooling
                .parse::<Pooling>()
                .map_err(|e| format!("param pooling: {e}"))?,
            normalize: self.normalize,
            backend,
        })
    }
}

/// `encode.bert`: embeds every document (`title + " " + text`, as BEIR does) or every query
/// with a BERT encoder.
pub struct EncodeBert;

impl Stage for EncodeBert {
    type Params = EncodeParams;
    const KIND: &'static str = "encode.bert";
    const VERSION: u32 = 1;
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
        p.options()?;
        if p.batch_size == 0 || p.max_len < 2 {
            return Err("params batch_size must be >= 1 and max_len >= 2".into());
        }
        Ok(())
    }
    fn sources(p: &EncodeParams) -> Vec<PathBuf> {
        p.sources_of_model()
    }

    fn run(p: &EncodeParams, ctx: &StageContext<'_>) -> rrra_common::Result<StageReport> {
        let invalid = |e: crate::Error| rrra_common::Error::Invalid(e.to_string());
        let options = p.options().map_err(rrra_common::Error::Invalid)?;
        let dir = if let Some(trained) = ctx.optional_input("model") {
            trained.to_path_buf()
        } else if p.is_known() {
            resolve_model(&p.model, &ctx.cache_dir.join("models"), ctx.progress).map_err(invalid)?
        } else {
            ctx.resolve(p.model.as_ref())
        };
        let encoder = Encoder::load(&dir, options).map_err(invalid)?;
        let (input, corpus) = match (ctx.optional_input("corpus"), ctx.optional_input("queries")) {
            (Some(c), None) => (c, true),
            (None, Some(q)) => (q, false),
            _ => {
                return Err(rrra_common::Error::Invalid(
                    "connect exactly one of the inputs corpus and queries".into(),
                ));
            }
        };
        let total = parquet_rows(input)?;
        let task = ctx.progress.task(
            if corpus {
                "encode corpus"
            } else {
                "encode queries"
            },
            Some(total),
        );
        let mut sink = EmbeddingSink::create(&ctx.output("embeddings"), encoder.dim())?;
        let start = std::time::Instant::now();
        let mut encode = |ids: Vec<String>, texts: Vec<String>| -> rrra_common::Result<()> {
            let vectors = encoder
                .encode(&texts, p.batch_size, &rrra_common::progress::Silent)
                .map_err(invalid)?;
            for (id, v) in ids.iter().zip(vectors.chunks_exact(encoder.dim())) {
                sink.push(id, v)?;
            }
            task.inc(ids.len() as u64);
            Ok(())
        };
        if corpus {
            for_each_batch::<Doc>(input, |docs| {
                let texts = docs.iter().map(|d| doc_text(d, &p.prefix)).collect();
                encode(docs.into_iter().map(|d| d.id).collect(), texts)
            })?;
        } else {
            for_each_batch::<Query>(input, |queries| {
                let texts = queries
                    .iter()
                    .map(|q| format!("{}{}", p.prefix, q.text))
                    .collect();
                encode(queries.into_iter().map(|q| q.id).collect(), texts)
            })?;
        }
        let rows = sink.finish()?;
        let secs = start.elapsed().as_secs_f64();
        Ok(StageReport {
            metrics: [
                ("rows".to_string(), rows as f64),
                ("dim".to_string(), encoder.dim() as f64),
                ("texts_per_s".to_string(), rows as f64 / secs.max(1e-9)),
            ]
            .into(),
            table: None,
        })
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    /// The starting model when no `model` input is connected: a known id or a folder.
    pub model: String,
    /// `cpu` (default), `tch` or `wgpu`, among those compiled in.
    pub backend: String,
    /// Examples per optimiser step (in-batch negatives come from the same batch).
    pub batch_size: usize,
    /// Texts per forward/backward pass; smaller than a batch's texts turns on gradient
    /// caching (same gradients, memory of one chunk).
    pub chunk_size: usize,
    pub epochs: usize,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub temperature: f64,
    pub max_grad_norm: f64,
    /// Hard negatives per example used, at most.
    pub max_negatives: usize,
    /// Use per-negative weights of the examples in the InfoNCE denominator.
    pub use_weights: bool,
    pub checkpoint_every: usize,
    /// Checkpoint no more often than this many seconds (steps or time, whichever is
    /// rarer). Left out of the cache key at its default, as it changes no output.
    #[serde(skip_serializing_if = "is_default_checkpoint_secs")]
    pub checkpoint_secs: f64,
    pub query_max_len: usize,
    pub max_len: usize,
    /// `max_seq_length` written into the exported sentence-transformers folder: the length
    /// the model is meant to encode with (training may truncate shorter, for speed).
    pub export_max_len: usize,
    pub pooling: String,
    pub normalize: bool,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: crate::MINILM_L6.into(),
            backend: Backend::default().name().into(),
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
            export_max_len: 256,
            pooling: "mean".into(),
            normalize: true,
        }
    }
}

impl TrainParams {
    /// The range checks of `train.biencoder` (and of stages that train through it).
    pub fn check(&self) -> Result<(), String> {
        let c = self.config(0)?;
        if c.batch_size == 0 || c.chunk_size == 0 || c.epochs == 0 || self.export_max_len < 2 {
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
        EncodeParams {
            model: self.model.clone(),
            ..EncodeParams::default()
        }
        .sources_of_model()
    }

    fn config(&self, seed: u64) -> Result<TrainConfig, String> {
        let encode = EncodeParams {
            model: self.model.clone(),
            max_len: self.max_len,
            pooling: self.pooling.clone(),
            normalize: self.normalize,
            backend: self.backend.clone(),
            ..EncodeParams::default()
        };
        let options = encode.options()?;
        Ok(TrainConfig {
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
            pooling: options.pooling,
            normalize: self.normalize,
            seed,
        })
    }
}

/// `train.biencoder`: contrastive fine-tuning of the encoder on training examples; writes
/// a sentence-transformers model folder and a per-step training log.
pub struct TrainBiencoder;

impl Stage for TrainBiencoder {
    type Params = TrainParams;
    const KIND: &'static str = "train.biencoder";
    const VERSION: u32 = 1;
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
    let config = p.config(ctx.seed).map_err(rrra_common::Error::Invalid)?;
    let backend: Backend = p.backend.parse().map_err(invalid)?;
    let base = if let Some(dir) = ctx.optional_input("model") {
        dir.to_path_buf()
    } else if KNOWN_MODELS.iter().any(|m| m.id == p.model) {
        resolve_model(&p.model, &ctx.cache_dir.join("models"), ctx.progress).map_err(invalid)?
    } else {
        ctx.resolve(p.model.as_ref())
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
        p.export_max_len,
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
