//! Training pairs: one (query, positive[, negative]) record a line or row, in any
//! [`TableFormat`] (JSON Lines as sentence-transformers' anchor/positive/negative or
//! FlagEmbedding's `{query, pos: [..], neg: [..]}` write them; TSV with or without header).
//! In JSON Lines a positive or negative may be a list of strings.
//!
//! Each record yields a query, its passages as documents, and judgements (positive: 1,
//! negative: 0). Ids come from the id fields when mapped, else from the text: `q:` or `h:`
//! and the first 32 hex digits of the BLAKE3 hash of the text (documents use
//! [`DprContext::content_id`](crate::DprContext::content_id) with an empty title), so equal
//! texts share one id across records and runs. A query or document is written once; the
//! same id with another text is an error naming the line. A (query, document) pair
//! listed twice is judged once, the positive grade winning.
//!
//! Memory grows with the number of distinct ids and of judged pairs (ids and one hash
//! each), not with the text.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mapped::{Table, read_table, text_value};

/// Field names of a pairs file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PairFields {
    /// The query text field.
    pub query: String,
    /// The positive text field (a string or a list of strings).
    pub positive: String,
    /// Absent by default: pairs without negatives.
    pub negative: Option<String>,
    /// Ids given in the file instead of derived from the text.
    pub query_id: Option<String>,
    /// The positive's id field (absent: derived from its text).
    pub positive_id: Option<String>,
    /// The negative's id field (absent: derived from its text).
    pub negative_id: Option<String>,
}

impl Default for PairFields {
    fn default() -> Self {
        PairFields {
            query: "query".into(),
            positive: "positive".into(),
            negative: None,
            query_id: None,
            positive_id: None,
            negative_id: None,
        }
    }
}

/// A query or a document met for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairItem {
    Query(Query),
    Doc(Doc),
}

/// What a pairs file held besides its queries and documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairs {
    pub records: u64,
    /// One judgement per (query, document), in first-seen order.
    pub qrels: Vec<Qrel>,
}

fn query_id_of(text: &str) -> String {
    format!("q:{}", &blake3::hash(text.as_bytes()).to_hex()[..32])
}

/// Strings of a field that may hold one string or a list of them.
fn strings(path: &Path, n: u64, field: &str, v: Option<Value>) -> Result<Vec<String>> {
    match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| text_value(path, n, field, Some(item)))
            .collect(),
        Some(Value::Number(num)) => Ok(vec![num.to_string()]),
        other => Ok(vec![text_value(path, n, field, other)?]),
    }
}

/// Ids of a field that may hold one id or a list of them (strings or integers).
fn id_list(path: &Path, n: u64, field: &str, v: Option<Value>) -> Result<Vec<String>> {
    match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| crate::mapped::id_value(path, n, field, Some(item)))
            .collect(),
        other => Ok(vec![crate::mapped::id_value(path, n, field, other)?]),
    }
}

/// Keeps one text hash per id, to write each id once and reject an id with two texts.
#[derive(Default)]
struct Seen(HashMap<String, blake3::Hash>);

impl Seen {
    /// Whether `id` is new; an error when it was seen with another text.
    fn first(&mut self, path: &Path, n: u64, kind: &str, id: &str, text: &str) -> Result<bool> {
        let hash = blake3::hash(text.as_bytes());
        match self.0.entry(id.to_string()) {
            Entry::Occupied(e) if *e.get() == hash => Ok(false),
            Entry::Occupied(_) => Err(Error::input(
                path,
                n,
                format!("{kind} id {id:?} appears with two different texts"),
            )),
            Entry::Vacant(e) => {
                e.insert(hash);
                Ok(true)
            }
        }
    }
}

/// Streams a pairs file: `sink` gets every query and document the first time its id is
/// met; the judgements come back at the end.
pub fn read_pairs(
    path: &Path,
    table: Table,
    fields: &PairFields,
    mut sink: impl FnMut(PairItem) -> Result<()>,
) -> Result<Pairs> {
    let names = [
        Some(fields.query.as_str()),
        Some(fields.positive.as_str()),
        fields.negative.as_deref(),
        fields.query_id.as_deref(),
        fields.positive_id.as_deref(),
        fields.negative_id.as_deref(),
    ];
    let columns: Vec<&str> = names.iter().flatten().copied().collect();
    let slot = |i: usize| names[..i].iter().flatten().count();
    let (mut queries, mut docs) = (Seen::default(), Seen::default());
    let mut judged: HashMap<(String, String), usize> = HashMap::new();
    let mut qrels: Vec<Qrel> = Vec::new();
    let records = read_table(path, table, &columns, 2, |n, mut values| {
        let mut take = |i: usize| names[i].map(|_| values[slot(i)].take());
        let query = text_value(path, n, &fields.query, take(0).flatten())?;
        if query.trim().is_empty() {
            return Err(Error::input(
                path,
                n,
                format!("expected a non-empty query in field {:?}", fields.query),
            ));
        }
        let positives = strings(path, n, &fields.positive, take(1).flatten())?;
        if positives.is_empty() {
            return Err(Error::input(
                path,
                n,
                format!(
                    "expected at least one positive in field {:?}",
                    fields.positive
                ),
            ));
        }
        let negatives = match take(2) {
            Some(Some(v)) => strings(path, n, fields.negative.as_deref().unwrap_or(""), Some(v))?,
            _ => Vec::new(),
        };
        let query_id = match (take(3), &fields.query_id) {
            (Some(v), Some(name)) => crate::mapped::id_value(path, n, name, v)?,
            _ => query_id_of(&query),
        };
        let ids = |v: Option<Option<Value>>,
                   name: &Option<String>,
                   texts: &[String]|
         -> Result<Vec<String>> {
            match (v, name) {
                (Some(v), Some(name)) => {
                    let ids = id_list(path, n, name, v)?;
                    if ids.len() != texts.len() {
                        return Err(Error::input(
                            path,
                            n,
                            format!(
                                "expected field {name:?} to hold {} id(s), one per text, found {}",
                                texts.len(),
                                ids.len()
                            ),
                        ));
                    }
                    Ok(ids)
                }
                _ => Ok(texts
                    .iter()
                    .map(|t| crate::DprContext::content_id("", t))
                    .collect()),
            }
        };
        let positive_ids = ids(take(4), &fields.positive_id, &positives)?;
        let negative_ids = ids(take(5), &fields.negative_id, &negatives)?;
        if queries.first(path, n, "query", &query_id, &query)? {
            sink(PairItem::Query(Query {
                id: query_id.clone(),
                text: query,
                answers: None,
            }))?;
        }
        let all = positive_ids
            .into_iter()
            .zip(positives)
            .map(|(id, text)| (id, text, 1))
            .chain(
                negative_ids
                    .into_iter()
                    .zip(negatives)
                    .map(|(id, text)| (id, text, 0)),
            );
        for (doc_id, text, relevance) in all {
            if docs.first(path, n, "document", &doc_id, &text)? {
                sink(PairItem::Doc(Doc {
                    id: doc_id.clone(),
                    title: String::new(),
                    text,
                }))?;
            }
            match judged.entry((query_id.clone(), doc_id)) {
                Entry::Occupied(e) => {
                    let q = &mut qrels[*e.get()];
                    q.relevance = q.relevance.max(relevance);
                }
                Entry::Vacant(e) => {
                    qrels.push(Qrel {
                        query_id: query_id.clone(),
                        doc_id: e.key().1.clone(),
                        relevance,
                    });
                    e.insert(qrels.len() - 1);
                }
            }
        }
        Ok(())
    })?;
    Ok(Pairs { records, qrels })
}
