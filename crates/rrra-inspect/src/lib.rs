//! Artifact inspection and export through polars, for `xtask show` and `xtask export`: any
//! Parquet artifact as a text table (columns, a `--where` filter, a head), written as CSV,
//! JSONL or Parquet, and an `examples` artifact with its corpus and queries written as the
//! hard-negative files other trainers read (sentence-transformers, FlagEmbedding, Tevatron).
//! polars stays inside this crate: callers pass paths and get text or files back. It is
//! polars' eager API: 0.55's lazy engine always builds its cloud I/O (tokio, reqwest,
//! rustls, ring), which reading local files does not need.

pub mod filter;
pub mod hard_negatives;
pub mod table;
pub mod write;

use std::path::{Path, PathBuf};

use polars::prelude::*;

pub use filter::Filter;
pub use hard_negatives::HardNegativeFormat;
pub use polars::prelude::DataFrame;
pub use table::View;
pub use write::TableFormat;

/// What can go wrong reading, filtering or writing an artifact.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("--where {expr:?}: {message}")]
    Where { expr: String, message: String },
    #[error("{}: {source}", path.display())]
    Polars {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

pub type Result<T, E = InspectError> = std::result::Result<T, E>;

/// Attaches `path` to a polars error.
pub(crate) fn at<T>(path: &Path, r: PolarsResult<T>) -> Result<T> {
    r.map_err(|source| InspectError::Polars {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn io_at<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|source| InspectError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn open(path: &Path) -> Result<std::fs::File> {
    if !path.is_file() {
        return Err(InspectError::Invalid {
            path: path.to_path_buf(),
            message: "no such Parquet file".into(),
        });
    }
    io_at(path, std::fs::File::open(path))
}

/// Reads a Parquet artifact: `columns` (all when `None`), rows `offset..offset + len` (all
/// when `None`).
pub fn read_parquet(
    path: &Path,
    columns: Option<Vec<String>>,
    slice: Option<(usize, usize)>,
) -> Result<DataFrame> {
    at(
        path,
        ParquetReader::new(open(path)?)
            .with_columns(columns)
            .with_slice(slice)
            .finish(),
    )
}

/// The rows of a Parquet artifact, from its footer.
pub fn count_rows(path: &Path) -> Result<usize> {
    at(path, ParquetReader::new(open(path)?).num_rows())
}

/// The column names of a Parquet artifact.
pub fn column_names(path: &Path) -> Result<Vec<String>> {
    let schema = at(path, ParquetReader::new(open(path)?).schema())?;
    Ok(schema.iter_names().map(|n| n.to_string()).collect())
}

/// Reads a CSV (`.csv`), JSON lines (`.jsonl`) or Parquet (`.parquet`) file into memory, by
/// its extension: how exports are read back.
pub fn read_table(path: &Path) -> Result<DataFrame> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let file = || io_at(path, std::fs::File::open(path));
    match ext {
        "parquet" => at(path, ParquetReader::new(file()?).finish()),
        "csv" => at(
            path,
            CsvReadOptions::default()
                .with_has_header(true)
                .into_reader_with_file_handle(file()?)
                .finish(),
        ),
        "jsonl" | "ndjson" => at(
            path,
            JsonReader::new(file()?)
                .with_json_format(JsonFormat::JsonLines)
                .finish(),
        ),
        _ => Err(InspectError::Invalid {
            path: path.to_path_buf(),
            message: "expected a .csv, .jsonl or .parquet file".into(),
        }),
    }
}

/// Writes through `<path>.tmp` and renames, so that a failed write leaves no partial file.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = io_at(&tmp, std::fs::File::create(&tmp))?;
    let written = write(&mut file).and_then(|()| io_at(&tmp, file.sync_all()));
    drop(file);
    match written {
        Ok(()) => io_at(path, std::fs::rename(&tmp, path)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
