//! The error type of the library crates. Input errors always name the file and, where there
//! is one, the 1-based line (or record) and what was expected.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input data: names the file, the line or record, and what was expected.
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Input {
        file: PathBuf,
        line: Option<u64>,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Anything else a stage rejects (bad parameter combination, inconsistent inputs).
    #[error("{0}")]
    Invalid(String),
    /// A split stage stopped before its merge because parts are left to other processes
    /// (see [`crate::parts::Mode`]); not a failure of the stage.
    #[error("{} of {} parts of {} are left to other processes", .0.missing.len(), .0.count(), .0.dir.display())]
    Deferred(Box<crate::parts::Split>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An input error at `file:line`.
    pub fn input(file: &Path, line: u64, message: impl Into<String>) -> Self {
        Error::Input {
            file: file.to_path_buf(),
            line: Some(line),
            message: message.into(),
        }
    }

    /// An input error about a whole file (empty file, wrong layout).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Error::Input {
            file: file.to_path_buf(),
            line: None,
            message: message.into(),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
