//! Tokenisation with the `tokenizers` crate from a `tokenizer.json`: any fixed padding in the
//! file is turned off, sequences are truncated at `max_len` (special tokens included) and
//! each batch is padded to its own longest sequence with an explicit padding mask.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// Texts per call to the tokenizer, to bound its working memory.
const LENGTH_CHUNK: usize = 1024;

/// A `tokenizer.json` set up for dynamic padding and truncation at `max_len`.
pub(crate) struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

/// A padded batch, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenBatch {
    pub(crate) batch: usize,
    pub(crate) seq: usize,
    pub(crate) ids: Vec<i64>,
    pub(crate) type_ids: Vec<i64>,
    /// `true` at padding positions.
    pub(crate) pad: Vec<bool>,
}

impl TextTokenizer {
    pub(crate) fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| Error::model(path, format!("not a tokenizer.json: {e}")))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::model(path, format!("cannot truncate at {max_len}: {e}")))?;
        Ok(TextTokenizer { inner, pad_id })
    }

    /// The token count of each text after truncation, special tokens included.
    pub(crate) fn lengths<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<usize>> {
        let mut lengths = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(LENGTH_CHUNK) {
            let inputs: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            let encodings = self
                .inner
                .encode_batch_fast(inputs, true)
                .map_err(|e| Error::Tokenizer(e.to_string()))?;
            lengths.extend(encodings.iter().map(|e| e.len()));
        }
        Ok(lengths)
    }

    /// Tokenises `texts` (in chunks, to bound the tokenizer's working memory) into
    /// compact per-text ids.
    pub(crate) fn tokenize(&self, texts: &[&str]) -> Result<Vec<Tokens>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(LENGTH_CHUNK) {
            let encodings = self
                .inner
                .encode_batch_fast(chunk.to_vec(), true)
                .map_err(|e| Error::Tokenizer(e.to_string()))?;
            out.extend(encodings.iter().map(|e| Tokens {
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
            }));
        }
        Ok(out)
    }

    /// Tokenises `texts` and pads them to the longest one.
    pub(crate) fn batch(&self, texts: Vec<&str>) -> Result<TokenBatch> {
        let tokens = self.tokenize(&texts)?;
        Ok(self.pad(&tokens.iter().collect::<Vec<_>>()))
    }

    /// Pads already tokenised texts to the longest one.
    pub(crate) fn pad(&self, rows: &[&Tokens]) -> TokenBatch {
        let batch = rows.len();
        let seq = rows.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut out = TokenBatch {
            batch,
            seq,
            ids: Vec::with_capacity(batch * seq),
            type_ids: Vec::with_capacity(batch * seq),
            pad: Vec::with_capacity(batch * seq),
        };
        for t in rows {
            let fill = seq - t.len();
            out.ids.extend(t.ids.iter().map(|&i| i64::from(i)));
            out.ids
                .extend(std::iter::repeat_n(i64::from(self.pad_id), fill));
            out.type_ids
                .extend(t.type_ids.iter().map(|&i| i64::from(i)));
            out.type_ids.extend(std::iter::repeat_n(0, fill));
            out.pad.extend(std::iter::repeat_n(false, t.len()));
            out.pad.extend(std::iter::repeat_n(true, fill));
        }
        out
    }
}

/// One text's token and token-type ids after truncation, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
}

impl Tokens {
    /// The token count.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

impl TokenBatch {
    /// Whether any position is padding.
    pub(crate) fn has_padding(&self) -> bool {
        self.pad.iter().any(|&p| p)
    }
}
