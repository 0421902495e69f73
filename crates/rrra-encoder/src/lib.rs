//! Dense text encoders for rrra: BERT in burn ([`Encoder`]), loaded from Hugging Face
//! `config.json` + `tokenizer.json` + `model.safetensors` folders ([`resolve_model`] also
//! fetches known ids such as [`MINILM_L6`] and Hub ids such as `BAAI/bge-small-en-v1.5`),
//! with the folder's sentence-transformers settings ([`settings::ModelSettings`]), run on a
//! [`Backend`] chosen at run time.
//!
//! ```no_run
//! use rrra_common::progress::Silent;
//! use rrra_encoder::{Encoder, EncoderOptions, resolve_model};
//!
//! let dir = resolve_model("minilm-l6", "cache/models".as_ref(), &Silent)?;
//! let encoder = Encoder::load(&dir, EncoderOptions::default())?;
//! let vectors = encoder.encode(&["a query", "a document"], 32, &Silent)?;
//! assert_eq!(vectors.len(), 2 * encoder.dim());
//! # Ok::<(), rrra_encoder::Error>(())
//! ```

#[cfg(not(any(feature = "cpu", feature = "tch", feature = "wgpu")))]
compile_error!("rrra-encoder needs at least one backend feature: cpu, tch or wgpu");

mod backend;
mod encoder;
mod error;
pub mod export;
mod fetch;
pub mod finetune;
pub mod hub;
mod model;
pub mod precision;
pub mod settings;
pub mod stages;
mod tokenize;
pub mod train;

pub use backend::Backend;
pub use encoder::{Encoder, EncoderOptions, MODEL_FILES, Pooling, doc_text};
pub use error::{Error, Result};
pub use fetch::{KNOWN_MODELS, KnownModel, MINILM_L6, ModelSource, resolve_model};
pub use model::{BertConfig, HiddenAct};
pub use precision::Precision;
