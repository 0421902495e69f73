//! Generic tables with a field mapping: JSON Lines, CSV (RFC 4180 quoting, quoted fields may
//! span lines), TSV (no quoting) and Parquet. A mapping names the field that holds each part
//! of a record (`id`, `text`, `title` of a document; `query_id`, `doc_id`, `relevance` of a
//! judgement); other fields are skipped without being built.
//!
//! JSON Lines fields are top-level keys; a string or an integer id is accepted (an integer
//! becomes its decimal string), `null` counts as missing. CSV and TSV files name their
//! columns in a header line; without one (`header: false`) fields are 1-based column
//! numbers (`"1"`, `"2"`). Parquet columns of any type are read through their string form
//! (Arrow's cast), in row groups, so memory stays at one batch of rows. Errors name the
//! file and the line (JSON Lines, CSV, TSV: where the record starts) or the 1-based row
//! (Parquet).

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::{Error, Result};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::IdIndex;
use crate::lines::{Lines, nonempty};

/// The layouts of a mapped table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    Jsonl,
    Csv,
    Tsv,
    Parquet,
}

/// How a table is laid out: its format and, for CSV and TSV, whether a header names the
/// columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub format: TableFormat,
    pub header: bool,
}

/// Streams the records of a table, handing `sink` the record's line (or row) and the
/// values of `columns`, in that order (`None`: absent or null). The first `required`
/// columns must exist in a CSV/TSV header or a Parquet schema. Returns the record count.
pub fn read_table(
    path: &Path,
    table: Table,
    columns: &[&str],
    required: usize,
    mut sink: impl FnMut(u64, Vec<Option<Value>>) -> Result<()>,
) -> Result<u64> {
    let count = match table.format {
        TableFormat::Jsonl => read_jsonl(path, columns, &mut sink)?,
        TableFormat::Csv | TableFormat::Tsv => {
            read_delimited(path, table, columns, required, &mut sink)?
        }
        TableFormat::Parquet => read_parquet(path, columns, required, &mut sink)?,
    };
    nonempty(path, count, "record")
}

/// The error for a required column that the header (at `line`) or schema lacks.
fn missing_columns(
    path: &Path,
    line: Option<u64>,
    columns: &[&str],
    required: usize,
    positions: &[Option<usize>],
    names: &[&str],
) -> Result<()> {
    match columns
        .iter()
        .zip(positions)
        .take(required)
        .find(|(_, p)| p.is_none())
    {
        Some((c, _)) => {
            let message = format!("expected a column {c:?}; the file has {names:?}");
            Err(match line {
                Some(n) => Error::input(path, n, message),
                None => Error::file(path, message),
            })
        }
        None => Ok(()),
    }
}

type Sink<'a> = dyn FnMut(u64, Vec<Option<Value>>) -> Result<()> + 'a;

/// Deserialises one JSON object, keeping the values of `columns` only.
struct Pick<'c>(&'c [&'c str]);

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Vec<Option<Value>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Vec<Option<Value>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![None; self.0.len()];
        while let Some(key) = map.next_key::<String>()? {
            match self.0.iter().position(|c| *c == key) {
                Some(i) => out[i] = Some(map.next_value::<Value>()?).filter(|v| !v.is_null()),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

fn read_jsonl(path: &Path, columns: &[&str], sink: &mut Sink<'_>) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        let mut de = serde_json::Deserializer::from_str(line);
        let values = Pick(columns)
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| {
                let msg = e.to_string();
                let msg = msg
                    .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                    .unwrap_or(&msg);
                Error::input(
                    path,
                    n,
                    format!("expected a JSON object: {msg} (column {})", e.column()),
                )
            })?;
        sink(n, values)?;
        count += 1;
    }
    Ok(count)
}

fn read_delimited(
    path: &Path,
    table: Table,
    columns: &[&str],
    required: usize,
    sink: &mut Sink<'_>,
) -> Result<u64> {
    let tsv = table.format == TableFormat::Tsv;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .quoting(!tsv)
        .has_headers(false)
        .flexible(true)
        .from_reader(crate::open::open_text(path)?);
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        let msg = match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => format!(
                "expected UTF-8 text, found an invalid byte sequence in field {}",
                err.field() + 1
            ),
            csv::ErrorKind::Io(io) => {
                return Error::io(path, std::io::Error::new(io.kind(), io.to_string()));
            }
            _ => format!("expected a {} record: {e}", if tsv { "TSV" } else { "CSV" }),
        };
        Error::input(path, line.max(1), msg)
    };
    let mut record = csv::StringRecord::new();
    let width;
    let positions: Vec<Option<usize>> = if table.header {
        if !reader.read_record(&mut record).map_err(csv_error)? {
            return Ok(0);
        }
        width = Some(record.len());
        let names: Vec<&str> = record.iter().collect();
        columns
            .iter()
            .map(|c| names.iter().position(|n| n == c))
            .collect()
    } else {
        width = None;
        columns
            .iter()
            .map(|c| match c.parse::<usize>() {
                Ok(i) if i >= 1 => Ok(Some(i - 1)),
                _ => Err(Error::file(
                    path,
                    format!("without a header, fields are 1-based column numbers; found {c:?}"),
                )),
            })
            .collect::<Result<_>>()?
    };
    if table.header {
        let names: Vec<&str> = record.iter().collect();
        let line = record.position().map_or(1, |p| p.line());
        missing_columns(path, Some(line), columns, required, &positions, &names)?;
    }
    let mut count = 0;
    while reader.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0) == Some("") {
            continue; // a blank line
        }
        if let Some(width) = width
            && record.len() != width
        {
            return Err(Error::input(
                path,
                line,
                format!(
                    "expected {width} fields as in the header, found {}",
                    record.len()
                ),
            ));
        }
        let values = positions
            .iter()
            .map(|p| {
                p.and_then(|i| record.get(i))
                    .map(|s| Value::String(s.to_string()))
            })
            .collect();
        sink(line, values)?;
        count += 1;
    }
    Ok(count)
}

fn read_parquet(
    path: &Path,
    columns: &[&str],
    required: usize,
    sink: &mut Sink<'_>,
) -> Result<u64> {
    if crate::open::is_gzip(path)? {
        return Err(Error::file(
            path,
            "a gzip-compressed Parquet file cannot be read in place: decompress it first",
        ));
    }
    let pq = |e: parquet::errors::ParquetError| Error::Parquet {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let fields = builder.schema().fields().clone();
    let positions: Vec<Option<usize>> = columns
        .iter()
        .map(|c| fields.iter().position(|f| f.name() == c))
        .collect();
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    missing_columns(path, None, columns, required, &positions, &names)?;
    let mut roots: Vec<usize> = positions.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(4096)
        .build()
        .map_err(pq)?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(Error::from)?;
        let arrays = positions
            .iter()
            .map(|p| {
                p.map(|i| {
                    let name = fields[i].name();
                    let col = batch.column_by_name(name).expect("projected column");
                    arrow::compute::cast(col, &DataType::Utf8).map_err(|e| {
                        Error::file(path, format!("column {name:?} cannot be read as text: {e}"))
                    })
                })
                .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        for r in 0..batch.num_rows() {
            row += 1;
            let values = arrays
                .iter()
                .map(|a| {
                    a.as_ref().and_then(|a| {
                        let s = a.as_string::<i32>();
                        (!s.is_null(r)).then(|| Value::String(s.value(r).to_string()))
                    })
                })
                .collect();
            sink(row, values)?;
        }
    }
    Ok(row)
}

/// Field names of a mapped corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DocFields {
    /// The document id field.
    pub id: String,
    /// The document text field.
    pub text: String,
    /// No title field: titles are empty.
    pub title: Option<String>,
}

impl Default for DocFields {
    fn default() -> Self {
        DocFields {
            id: "id".into(),
            text: "text".into(),
            title: None,
        }
    }
}

/// Field names of mapped queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueryFields {
    /// The query id field.
    pub id: String,
    /// The query text field.
    pub text: String,
}

impl Default for QueryFields {
    fn default() -> Self {
        QueryFields {
            id: "id".into(),
            text: "text".into(),
        }
    }
}

/// Field names of mapped judgements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QrelFields {
    /// The query id field.
    pub query_id: String,
    /// The document id field.
    pub doc_id: String,
    /// `null`: every listed pair is relevant (grade 1).
    pub relevance: Option<String>,
}

impl Default for QrelFields {
    fn default() -> Self {
        QrelFields {
            query_id: "query_id".into(),
            doc_id: "doc_id".into(),
            relevance: Some("relevance".into()),
        }
    }
}

/// A required id: a non-empty string or an integer.
pub(crate) fn id_value(path: &Path, n: u64, field: &str, v: Option<Value>) -> Result<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(num)) if num.is_i64() || num.is_u64() => Ok(num.to_string()),
        other => Err(Error::input(
            path,
            n,
            format!(
                "expected field {field:?} (a non-empty string or an integer){}",
                found(&other)
            ),
        )),
    }
}

/// A required string.
pub(crate) fn text_value(path: &Path, n: u64, field: &str, v: Option<Value>) -> Result<String> {
    match v {
        Some(Value::String(s)) => Ok(s),
        other => Err(Error::input(
            path,
            n,
            format!("expected field {field:?} (a string){}", found(&other)),
        )),
    }
}

fn found(v: &Option<Value>) -> String {
    match v {
        None => ", found none".into(),
        Some(Value::String(_)) => ", found an empty string".into(),
        Some(Value::Number(n)) => format!(", found the number {n}"),
        Some(Value::Bool(_)) => ", found a boolean".into(),
        Some(Value::Array(_)) => ", found an array".into(),
        Some(Value::Object(_)) => ", found an object".into(),
        Some(Value::Null) => ", found null".into(),
    }
}

/// Streams a mapped corpus into `sink`; with `ids`, a duplicate id is an error.
pub fn read_mapped_corpus(
    path: &Path,
    table: Table,
    fields: &DocFields,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    let mut columns = vec![fields.id.as_str(), fields.text.as_str()];
    columns.extend(fields.title.as_deref());
    read_table(path, table, &columns, 2, |n, values| {
        let mut values = values.into_iter();
        let id = id_value(path, n, &fields.id, values.next().flatten())?;
        let text = text_value(path, n, &fields.text, values.next().flatten())?;
        let title = match (&fields.title, values.next().flatten()) {
            (Some(name), v @ Some(_)) => text_value(path, n, name, v)?,
            _ => String::new(),
        };
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("doc", path, n, &id)?;
        }
        sink(Doc { id, title, text })
    })
}

/// Streams mapped queries into `sink` (`answers: None`); with `ids`, a duplicate is an error.
pub fn read_mapped_queries(
    path: &Path,
    table: Table,
    fields: &QueryFields,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Query) -> Result<()>,
) -> Result<u64> {
    read_table(path, table, &[&fields.id, &fields.text], 2, |n, values| {
        let mut values = values.into_iter();
        let id = id_value(path, n, &fields.id, values.next().flatten())?;
        let text = text_value(path, n, &fields.text, values.next().flatten())?;
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("query", path, n, &id)?;
        }
        sink(Query {
            id,
            text,
            answers: None,
        })
    })
}

/// Streams mapped judgements into `sink`. With `known_docs`, a judgement of a doc id not in
/// it is an error.
pub fn read_mapped_qrels(
    path: &Path,
    table: Table,
    fields: &QrelFields,
    known_docs: Option<&IdIndex>,
    mut sink: impl FnMut(Qrel) -> Result<()>,
) -> Result<u64> {
    let mut columns = vec![fields.query_id.as_str(), fields.doc_id.as_str()];
    columns.extend(fields.relevance.as_deref());
    let required = columns.len();
    read_table(path, table, &columns, required, |n, values| {
        let mut values = values.into_iter();
        let query_id = id_value(path, n, &fields.query_id, values.next().flatten())?;
        let doc_id = id_value(path, n, &fields.doc_id, values.next().flatten())?;
        let relevance = match &fields.relevance {
            None => 1,
            Some(name) => {
                let v = values.next().flatten();
                let parsed = match &v {
                    Some(Value::Number(num)) => num.as_i64().and_then(|r| i32::try_from(r).ok()),
                    Some(Value::String(s)) => s.trim().parse::<i32>().ok(),
                    _ => None,
                };
                parsed.ok_or_else(|| {
                    Error::input(
                        path,
                        n,
                        format!(
                            "expected field {name:?} (an integer relevance){}",
                            found(&v)
                        ),
                    )
                })?
            }
        };
        if let Some(known) = known_docs
            && !known.contains(&doc_id)
        {
            return Err(Error::input(
                path,
                n,
                format!("qrel for unknown doc {doc_id:?}: expected a doc id of the corpus"),
            ));
        }
        sink(Qrel {
            query_id,
            doc_id,
            relevance,
        })
    })
}
