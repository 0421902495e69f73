//! BEIR JSON Lines: `corpus.jsonl` (`{"_id", "title", "text", ...}`) and `queries.jsonl`
//! (`{"_id", "text", ...}`), one JSON object a line. Other keys (`metadata`) are ignored.
//! `_id` may be a JSON string or an integer (some BEIR sets write numbers); either becomes
//! the id string. A missing or `null` title is the empty string.

use std::path::Path;

use rrra_common::records::{Doc, Query};
use rrra_common::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::ids::IdIndex;
use crate::lines::{Lines, nonempty};

/// The keys of a BEIR line that are read; other keys are skipped without building values.
#[derive(Deserialize)]
struct Line {
    #[serde(rename = "_id")]
    id: Option<Value>,
    title: Option<Value>,
    text: Option<Value>,
}

/// Streams `corpus.jsonl` into `sink`, one [`Doc`] per non-blank line, and returns the
/// number of documents. With `ids`, each id is recorded there and a duplicate is an error.
pub fn read_beir_corpus(
    path: &Path,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    while let Some((n, text)) = lines.next_line()? {
        let line = parse_line(path, n, text)?;
        let id = id_field(path, n, line.id)?;
        let title = match line.title {
            None => String::new(),
            title => string_field(path, n, "title", title)?,
        };
        let text = string_field(path, n, "text", line.text)?;
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("doc", path, n, &id)?;
        }
        sink(Doc { id, title, text })?;
        count += 1;
    }
    nonempty(path, count, "document")
}

/// Streams `queries.jsonl` into `sink` (`answers: None`) and returns the number of queries.
/// With `ids`, each id is recorded there and a duplicate is an error.
pub fn read_beir_queries(
    path: &Path,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Query) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    while let Some((n, text)) = lines.next_line()? {
        let line = parse_line(path, n, text)?;
        let id = id_field(path, n, line.id)?;
        let text = string_field(path, n, "text", line.text)?;
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("query", path, n, &id)?;
        }
        sink(Query {
            id,
            text,
            answers: None,
        })?;
        count += 1;
    }
    nonempty(path, count, "query")
}

fn parse_line(path: &Path, n: u64, text: &str) -> Result<Line> {
    if !text.trim_start().starts_with('{') {
        return Err(Error::input(path, n, "expected a JSON object"));
    }
    serde_json::from_str(text).map_err(|e| {
        // serde_json counts its own lines and columns within this one line.
        let msg = e.to_string();
        let msg = msg
            .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
            .unwrap_or(&msg);
        Error::input(
            path,
            n,
            format!("expected a JSON object: {msg} (column {})", e.column()),
        )
    })
}

fn id_field(path: &Path, n: u64, value: Option<Value>) -> Result<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(num)) if num.is_i64() || num.is_u64() => Ok(num.to_string()),
        other => Err(Error::input(
            path,
            n,
            format!(
                "expected field \"_id\" (non-empty string or integer){}",
                found(&other)
            ),
        )),
    }
}

fn string_field(path: &Path, n: u64, name: &str, value: Option<Value>) -> Result<String> {
    match value {
        Some(Value::String(s)) => Ok(s),
        other => Err(Error::input(
            path,
            n,
            format!("expected field {name:?} (string){}", found(&other)),
        )),
    }
}

/// ", found <kind>" for a present value of the wrong kind, nothing for a missing one.
fn found(value: &Option<Value>) -> String {
    let kind = match value {
        // `null` deserializes as `None`: a null field reads as a missing one.
        None | Some(Value::Null) => return String::new(),
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "an empty string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    };
    format!(", found {kind}")
}
