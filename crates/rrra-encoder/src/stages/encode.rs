//! `encode.bert`: a corpus or a query set in, an embeddings artifact out. Pooling,
//! normalisation, length and prompts are the model's own settings (its sentence-transformers
//! files, [`crate::settings`]) unless a param sets them.

use std::path::{Path, PathBuf};

use rrra_common::artifact::parquet_rows;
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::parts::{Parts, concat_embeddings, for_each_batch_in};
use rrra_common::records::{Doc, Query};
use rrra_common::schema::ArtifactKind::{Corpus, Embeddings, Model, Queries};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

use crate::fetch::model_of;
use crate::settings::{Resolved, Role};
use crate::tokenize::TextTokenizer;
use crate::{Backend, Encoder, EncoderOptions, ModelSource, Pooling, Precision, doc_text};

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
    pub backend: Backend,
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
            backend: Backend::default(),
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
    backend: Backend,
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
            backend: self.backend,
            precision: self.precision,
            prefix: self.prefix.as_deref().or(known.map(|_| "")),
            sort_window: self.sort_window,
        }
        .serialize(serializer)
    }
}

impl EncodeParams {
    /// The model files hashed into the cache key: a folder model's model files and
    /// sentence-transformers files (a known id pins its files by sha256, a Hub id names its
    /// revision; both are in the params).
    fn sources_of_model(&self) -> Vec<PathBuf> {
        ModelSource::parse(&self.model, Path::new("")).key_files()
    }

    /// The settings in the params alone (what `check` can verify before a model is read).
    fn check_params(&self) -> Result<(), String> {
        self.backend.check_compiled()?;
        self.precision.check(self.backend)?;
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
        Ok(())
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
        p.check_params()
    }
    fn sources(p: &EncodeParams) -> Vec<PathBuf> {
        p.sources_of_model()
    }

    fn run(p: &EncodeParams, ctx: &StageContext<'_>) -> rrra_common::Result<StageReport> {
        let invalid = |e: crate::Error| rrra_common::Error::Invalid(e.to_string());
        p.check_params().map_err(rrra_common::Error::Invalid)?;
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
            backend: p.backend,
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
