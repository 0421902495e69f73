//! The error type of the encoder crate. Every variant says what failed and, where a person can
//! fix it, what to do.

use std::path::{Path, PathBuf};

/// What can go wrong while acquiring, loading or running an encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file exists but its content is not what a BERT encoder needs.
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    /// A model could not be fetched into the cache (pip missing, download failed, bad hash).
    #[error("cannot fetch model `{model}`: {message}")]
    Fetch { model: String, message: String },
    /// The tokenizer failed on some input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A parameter value is unknown or out of range (backend, pooling, max_len, batch size).
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn model(path: &Path, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl From<Error> for rrra_common::error::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { path, source } => rrra_common::error::Error::Io { path, source },
            Error::Model { path, message } => rrra_common::error::Error::Input {
                file: path,
                line: None,
                message,
            },
            other => rrra_common::error::Error::Invalid(other.to_string()),
        }
    }
}
