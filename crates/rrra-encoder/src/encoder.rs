//! [`Encoder`]: a BERT model plus its tokenizer, turning texts into pooled (optionally
//! L2-normalised) embeddings in batches bucketed by token length.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rrra_common::progress::Progress;
use rrra_common::records::Doc;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Bert, BertConfig};
use crate::precision::Precision;
use crate::tokenize::{TextTokenizer, TokenBatch};

/// Texts tokenised (and length-sorted) together by [`Encoder::encode`]: large enough that
/// batches pad little, small enough that the ids stay small (~8 bytes a token).
const TOKENIZE_WINDOW: usize = 16 * 1024;

/// The files a model folder must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// How token states become one vector per text.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the non-padding tokens (special tokens included), as sentence-transformers.
    #[default]
    Mean,
    /// The state of the first (`[CLS]`) token.
    Cls,
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        })
    }
}

impl FromStr for Pooling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            _ => Err(Error::Invalid(format!("unknown pooling `{s}` (mean, cls)"))),
        }
    }
}

/// How an [`Encoder`] tokenises, pools and where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncoderOptions {
    /// Tokens per text after truncation, special tokens included; at most the model's
    /// `max_position_embeddings`.
    pub max_len: usize,
    pub pooling: Pooling,
    /// L2-normalise each embedding.
    pub normalize: bool,
    pub backend: Backend,
    /// The float type of the matrix products: half types on `tch` only.
    pub precision: Precision,
}

impl Default for EncoderOptions {
    /// `max_len` 256, mean pooling, normalised, default backend, fp32.
    fn default() -> Self {
        EncoderOptions {
            max_len: 256,
            pooling: Pooling::Mean,
            normalize: true,
            backend: Backend::default(),
            precision: Precision::Fp32,
        }
    }
}

/// A loaded text encoder. Use one per tower (query, document), or one for both.
pub struct Encoder {
    model: Bert,
    tokenizer: TextTokenizer,
    device: Device,
    options: EncoderOptions,
    dim: usize,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("options", &self.options)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Loads the model folder `dir` (`config.json`, `tokenizer.json`, `model.safetensors`;
    /// see [`crate::resolve_model`]) onto `options.backend`.
    pub fn load(dir: &Path, options: EncoderOptions) -> Result<Self> {
        for file in MODEL_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(Error::model(
                    &path,
                    format!(
                        "missing: a model folder needs {} (give a folder holding them or the id `{}`)",
                        MODEL_FILES.join(", "),
                        crate::fetch::MINILM_L6
                    ),
                ));
            }
        }
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        if options.max_len < 2 || options.max_len > config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "max_len {} is out of range: 2 to {} (max_position_embeddings of {})",
                options.max_len,
                config.max_position_embeddings,
                dir.display()
            )));
        }
        options
            .precision
            .check(options.backend)
            .map_err(Error::Invalid)?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), options.max_len)?;
        let device = options.backend.device()?;
        let additive_mask = options.backend == Backend::Tch;
        let model = Bert::load(
            &config,
            &dir.join("model.safetensors"),
            &device,
            additive_mask,
        )?
        .with_precision(options.precision);
        Ok(Encoder {
            model,
            tokenizer,
            device,
            options,
            dim: config.hidden_size,
        })
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn options(&self) -> &EncoderOptions {
        &self.options
    }

    /// Embeds `texts`: `texts.len() × dim` floats, row-major, in input order. Each text
    /// is tokenised once; texts are taken `TOKENIZE_WINDOW` (16384) at a time, sorted by token
    /// length within that window and run `batch_size` at a time, so memory is bounded by
    /// the window and the batch, not the input.
    pub fn encode<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        batch_size: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<f32>> {
        if batch_size == 0 {
            return Err(Error::Invalid("batch_size must be at least 1".into()));
        }
        let task = progress.task("encode", Some(texts.len() as u64));
        let mut out = vec![0f32; texts.len() * self.dim];
        for (w, window) in texts.chunks(TOKENIZE_WINDOW).enumerate() {
            let strs: Vec<&str> = window.iter().map(AsRef::as_ref).collect();
            let tokens = self.tokenizer.tokenize(&strs)?;
            // Longest first: the largest batch is allocated once, at the start.
            let mut order: Vec<usize> = (0..window.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].len()));
            for rows in order.chunks(batch_size) {
                let batch = self
                    .tokenizer
                    .pad(&rows.iter().map(|&i| &tokens[i]).collect::<Vec<_>>());
                let embeddings = self.embed(batch)?;
                for (row, &i) in embeddings.chunks_exact(self.dim).zip(rows) {
                    let i = w * TOKENIZE_WINDOW + i;
                    out[i * self.dim..(i + 1) * self.dim].copy_from_slice(row);
                }
                task.inc(rows.len() as u64);
            }
        }
        Ok(out)
    }

    /// Runs one padded batch through the model and pools it: `batch × dim` floats.
    fn embed(&self, batch: TokenBatch) -> Result<Vec<f32>> {
        embed_batch(
            &self.model,
            batch,
            &self.device,
            self.options.pooling,
            self.options.normalize,
        )
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Invalid(format!("reading embeddings back: {e:?}")))
    }
}

/// The pooled (optionally L2-normalised) embeddings `[batch, hidden]` of one padded batch;
/// tracked for gradients when `device` and `model` are autodiff.
pub(crate) fn embed_batch(
    model: &Bert,
    batch: TokenBatch,
    device: &Device,
    pooling: Pooling,
    normalize: bool,
) -> Tensor<2> {
    let has_padding = batch.has_padding();
    let TokenBatch {
        batch: n,
        seq,
        ids,
        type_ids,
        pad,
    } = batch;
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, seq]), device);
    let type_ids = Tensor::<2, Int>::from_data(TensorData::new(type_ids, [n, seq]), device);
    // No mask at all for a batch without padding (every batch of over-long texts).
    let pad =
        has_padding.then(|| Tensor::<2, Bool>::from_data(TensorData::new(pad, [n, seq]), device));

    let states = model.forward(ids, type_ids, pad.clone());
    let dim = states.dims()[2];
    let pooled: Tensor<2> = match (pooling, pad) {
        (Pooling::Cls, _) => states.slice([0..n, 0..1]).reshape([n, dim]),
        (Pooling::Mean, Some(pad)) => {
            let keep = pad.bool_not().float().unsqueeze_dim::<3>(2);
            let sum = (states * keep.clone()).sum_dim(1).reshape([n, dim]);
            sum / keep.sum_dim(1).reshape([n, 1])
        }
        (Pooling::Mean, None) => states.sum_dim(1).reshape([n, dim]).div_scalar(seq as f32),
    };
    if normalize {
        let norm = pooled
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        pooled / norm
    } else {
        pooled
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
