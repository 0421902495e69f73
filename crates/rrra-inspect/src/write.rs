//! `xtask export --format csv|jsonl|parquet`: any Parquet artifact as CSV, JSON lines or
//! Parquet for other tools. CSV has no list type, so list columns (an example's negatives,
//! an embedding's vector) become JSON array text there; JSONL and Parquet keep them as lists.

use std::path::Path;

use polars::prelude::*;

use crate::{Result, at, io_at, write_atomically};

/// The table formats an artifact is exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Jsonl,
    Parquet,
}

/// Writes the artifact at `src` to `dst` in `format`; returns the rows written.
pub fn export(src: &Path, dst: &Path, format: TableFormat) -> Result<usize> {
    let mut df = crate::read_parquet(src, None, None)?;
    write_frame(&mut df, dst, format)?;
    Ok(df.height())
}

/// Writes `df` to `dst` in `format`, through a temporary file.
pub fn write_frame(df: &mut DataFrame, dst: &Path, format: TableFormat) -> Result<()> {
    if format == TableFormat::Csv {
        *df = lists_as_json(df).map_err(|source| crate::InspectError::Polars {
            path: dst.to_path_buf(),
            source,
        })?;
    }
    write_atomically(dst, |file| {
        let written = match format {
            TableFormat::Csv => CsvWriter::new(&mut *file).include_header(true).finish(df),
            TableFormat::Jsonl => JsonWriter::new(&mut *file)
                .with_json_format(JsonFormat::JsonLines)
                .finish(df),
            TableFormat::Parquet => ParquetWriter::new(&mut *file)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(df)
                .map(|_| ()),
        };
        at(dst, written)?;
        io_at(dst, std::io::Write::flush(file))
    })
}

/// `df` with every list column replaced by its values' JSON array text.
fn lists_as_json(df: &DataFrame) -> PolarsResult<DataFrame> {
    let columns = df
        .columns()
        .iter()
        .map(|c| {
            if !matches!(c.dtype(), DataType::List(_)) {
                return Ok(c.clone());
            }
            let texts: StringChunked = c
                .list()?
                .series_iter()
                .map(|item| item.map(|s| json_array(&s)).transpose())
                .collect::<PolarsResult<_>>()?;
            Ok(texts.with_name(c.name().clone()).into_column())
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new(df.height(), columns)
}

fn json_array(s: &Series) -> PolarsResult<String> {
    let values: Vec<serde_json::Value> = if s.dtype() == &DataType::String {
        s.str()?
            .iter()
            .map(|v| v.map_or(serde_json::Value::Null, |v| v.into()))
            .collect()
    } else {
        s.cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.map_or(serde_json::Value::Null, |v| v.into()))
            .collect()
    };
    Ok(serde_json::Value::Array(values).to_string())
}
