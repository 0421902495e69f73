//! Fine-tuning as a pipeline stage runs it, usable by other crates' stages (`train.joint`):
//! [`TrainParams`] (the params of `train.biencoder`), [`fine_tune`] (the starting model
//! resolved, the training loop of [`crate::train`], the export and the training log) and
//! [`load_training_data`] (the examples and the texts they name).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rrra_common::artifact::{for_each_batch, read_rows, write_rows};
use rrra_common::records::{Doc, Example, Query};
use rrra_common::stage::{StageContext, StageReport};
use serde::{Deserialize, Serialize};

use crate::export::export;
use crate::fetch::model_of;
use crate::settings::{ModelSettings, Resolved};
use crate::train::{Auxiliary, TrainConfig, TrainData, TrainExample, train};
use crate::{Backend, ModelSource, Pooling, Precision, doc_text};

/// Default `checkpoint_secs` of the training stages: at most one checkpoint every 5 min.
pub const DEFAULT_CHECKPOINT_SECS: f64 = 300.0;

fn is_default_checkpoint_secs(secs: &f64) -> bool {
    *secs == DEFAULT_CHECKPOINT_SECS
}

/// Params of `train.biencoder` (and the `encoder` params of `train.joint`).
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
            .check_training(Backend::from_param(&self.backend)?)?;
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

/// Fine-tunes on `data` as `train.biencoder` does (with `aux`'s objective added, if given),
/// exports the model and its training config into the `model` output and writes the `log`.
pub fn fine_tune(
    p: &TrainParams,
    ctx: &StageContext<'_>,
    data: &TrainData,
    aux: Option<&mut dyn Auxiliary>,
) -> rrra_common::Result<StageReport> {
    let invalid = |e: crate::Error| rrra_common::Error::Invalid(e.to_string());
    let backend = Backend::from_param(&p.backend).map_err(rrra_common::Error::Invalid)?;
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
