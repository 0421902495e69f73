//! An `examples` artifact (query id, positive id, sampled negative ids) joined with its
//! corpus and queries into the files other trainers read:
//! - sentence-transformers: columns `anchor`, `positive`, `negative` (one negative per row)
//!   or `negative_1` ... `negative_n`, Parquet or JSONL;
//! - FlagEmbedding: JSON lines `{"query", "pos": [..], "neg": [..]}`;
//! - Tevatron: JSON lines `{"query_id", "query", "positive_passages": [{"docid", "title",
//!   "text"}], "negative_passages": [..]}`.
//!
//! One record per example (a positive with the negatives drawn for it). Passage text for
//! sentence-transformers and FlagEmbedding is `title + " " + text`, as rrra encodes it;
//! Tevatron keeps title and text apart. Only the documents and queries the examples name
//! are kept from the corpus and queries (their id and text columns are read, then filtered).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use polars::prelude::*;

use crate::write::{TableFormat, write_frame};
use crate::{InspectError, Result, at, io_at, write_atomically};

/// The hard-negative formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardNegativeFormat {
    /// sentence-transformers anchor/positive/negative columns; Parquet or JSONL by the
    /// target's extension.
    SentenceTransformers,
    /// FlagEmbedding `{query, pos, neg}` JSON lines.
    FlagEmbedding,
    /// Tevatron JSON lines.
    Tevatron,
}

/// The artifacts an export reads.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub examples: &'a Path,
    pub corpus: &'a Path,
    pub queries: &'a Path,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records (rows or lines) written.
    pub records: usize,
    /// The fewest and most negatives an example has.
    pub negatives: (usize, usize),
    /// Negatives per row in the sentence-transformers columns (the fewest any example has).
    pub st_negatives: Option<usize>,
}

struct Example {
    query_id: String,
    positive_id: String,
    negatives: Vec<String>,
}

struct Passage {
    title: String,
    text: String,
}

impl Passage {
    fn joined(&self) -> String {
        if self.title.is_empty() {
            self.text.trim().to_string()
        } else {
            format!("{} {}", self.title, self.text).trim().to_string()
        }
    }
    fn tevatron(&self, id: &str) -> serde_json::Value {
        serde_json::json!({"docid": id, "title": self.title, "text": self.text})
    }
}

fn strings(path: &Path, df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let column = at(path, df.column(name).and_then(|c| c.str().cloned()))?;
    Ok(column
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let columns = ["query_id", "positive_id", "negatives"].map(String::from);
    let df = crate::read_parquet(path, Some(columns.to_vec()), None)?;
    let query_ids = strings(path, &df, "query_id")?;
    let positive_ids = strings(path, &df, "positive_id")?;
    let negatives = at(path, df.column("negatives").and_then(|c| c.list().cloned()))?;
    let mut out = Vec::with_capacity(df.height());
    for ((query_id, positive_id), negs) in query_ids
        .into_iter()
        .zip(positive_ids)
        .zip(negatives.series_iter())
    {
        let negs = match negs {
            Some(s) => at(path, s.str().cloned())?
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect(),
            None => Vec::new(),
        };
        out.push(Example {
            query_id,
            positive_id,
            negatives: negs,
        });
    }
    Ok(out)
}

/// Rows of the artifact at `path` whose `id_column` is one of `ids`, as id -> columns.
fn lookup(
    path: &Path,
    id_column: &str,
    columns: &[&str],
    ids: &HashSet<String>,
) -> Result<HashMap<String, Vec<String>>> {
    let mut read = vec![id_column.to_string()];
    read.extend(columns.iter().map(|c| c.to_string()));
    let df = crate::read_parquet(path, Some(read), None)?;
    let all_ids = at(path, df.column(id_column).and_then(|c| c.str().cloned()))?;
    let wanted: BooleanChunked = all_ids
        .iter()
        .map(|id| id.is_some_and(|id| ids.contains(id)))
        .collect();
    let df = at(path, df.filter(&wanted))?;
    let found = strings(path, &df, id_column)?;
    let values = columns
        .iter()
        .map(|c| strings(path, &df, c))
        .collect::<Result<Vec<_>>>()?;
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, values.iter().map(|v| v[i].clone()).collect()))
        .collect())
}

/// Writes the examples of `src` to `dst` in `format`.
pub fn export(src: Sources<'_>, dst: &Path, format: HardNegativeFormat) -> Result<Summary> {
    let examples = read_examples(src.examples)?;
    let doc_ids: HashSet<String> = examples
        .iter()
        .flat_map(|e| std::iter::once(&e.positive_id).chain(&e.negatives).cloned())
        .collect();
    let query_ids: HashSet<String> = examples.iter().map(|e| e.query_id.clone()).collect();

    let passages: HashMap<String, Passage> =
        lookup(src.corpus, "doc_id", &["title", "text"], &doc_ids)?
            .into_iter()
            .map(|(id, mut v)| {
                let text = v.pop().unwrap_or_default();
                let title = v.pop().unwrap_or_default();
                (id, Passage { title, text })
            })
            .collect();
    let queries: HashMap<String, String> = lookup(src.queries, "query_id", &["text"], &query_ids)?
        .into_iter()
        .map(|(id, mut v)| (id, v.pop().unwrap_or_default()))
        .collect();
    let passage = |id: &str, e: &Example| {
        passages.get(id).ok_or_else(|| InspectError::Invalid {
            path: src.corpus.to_path_buf(),
            message: format!(
                "the examples (query {:?}) name doc {id:?}, which this corpus lacks",
                e.query_id
            ),
        })
    };
    let query = |e: &Example| {
        queries
            .get(&e.query_id)
            .ok_or_else(|| InspectError::Invalid {
                path: src.queries.to_path_buf(),
                message: format!(
                    "the examples name query {:?}, which these queries lack",
                    e.query_id
                ),
            })
    };

    let counts = examples.iter().map(|e| e.negatives.len());
    let negatives = (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0));
    let mut summary = Summary {
        records: examples.len(),
        negatives,
        st_negatives: None,
    };
    match format {
        HardNegativeFormat::SentenceTransformers => {
            let table = match dst.extension().and_then(|e| e.to_str()) {
                Some("parquet") => TableFormat::Parquet,
                Some("jsonl") => TableFormat::Jsonl,
                _ => {
                    return Err(InspectError::Invalid {
                        path: dst.to_path_buf(),
                        message: "sentence-transformers files are .parquet or .jsonl".into(),
                    });
                }
            };
            let n = negatives.0;
            let mut columns: Vec<Vec<String>> = vec![Vec::with_capacity(examples.len()); 2 + n];
            for e in &examples {
                columns[0].push(query(e)?.clone());
                columns[1].push(passage(&e.positive_id, e)?.joined());
                for (k, id) in e.negatives.iter().take(n).enumerate() {
                    columns[2 + k].push(passage(id, e)?.joined());
                }
            }
            let names: Vec<String> = ["anchor".to_string(), "positive".to_string()]
                .into_iter()
                .chain((1..=n).map(|k| {
                    if n == 1 {
                        "negative".to_string()
                    } else {
                        format!("negative_{k}")
                    }
                }))
                .collect();
            let frame_columns = names
                .iter()
                .zip(columns)
                .map(|(name, values)| Column::new(name.as_str().into(), values))
                .collect();
            let mut df = at(dst, DataFrame::new(examples.len(), frame_columns))?;
            write_frame(&mut df, dst, table)?;
            summary.st_negatives = Some(n);
        }
        HardNegativeFormat::FlagEmbedding | HardNegativeFormat::Tevatron => {
            let mut lines = Vec::with_capacity(examples.len());
            for e in &examples {
                let pos = passage(&e.positive_id, e)?;
                let negs = e
                    .negatives
                    .iter()
                    .map(|id| passage(id, e).map(|p| (id, p)))
                    .collect::<Result<Vec<_>>>()?;
                let record = if format == HardNegativeFormat::FlagEmbedding {
                    serde_json::json!({
                        "query": query(e)?,
                        "pos": [pos.joined()],
                        "neg": negs.iter().map(|(_, p)| p.joined()).collect::<Vec<_>>(),
                    })
                } else {
                    serde_json::json!({
                        "query_id": e.query_id,
                        "query": query(e)?,
                        "positive_passages": [pos.tevatron(&e.positive_id)],
                        "negative_passages": negs.iter().map(|(id, p)| p.tevatron(id)).collect::<Vec<_>>(),
                    })
                };
                lines.push(record.to_string());
            }
            write_atomically(dst, |file| {
                let mut out = std::io::BufWriter::new(file);
                for line in &lines {
                    io_at(dst, writeln!(out, "{line}"))?;
                }
                io_at(dst, out.flush())
            })?;
        }
    }
    Ok(summary)
}
