//! MS MARCO passage TSVs: `collection.tsv` (`pid\ttext`) and `queries.*.tsv` (`qid\ttext`).
//! Exactly two tab-separated fields a line, taken verbatim (no quoting, no trimming); the
//! text may be empty, the id may not. Passages have no title: [`Doc::title`] is empty.

use std::path::Path;

use rrra_common::records::{Doc, Query};
use rrra_common::{Error, Result};

use crate::ids::IdIndex;
use crate::lines::{Lines, exact, nonempty};

/// Streams `collection.tsv` into `sink` and returns the number of passages. With `ids`, each
/// pid is recorded there and a duplicate is an error.
pub fn read_msmarco_collection(
    path: &Path,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        let (id, text) = id_text(path, n, line, "pid")?;
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("doc", path, n, id)?;
        }
        sink(Doc {
            id: id.to_owned(),
            title: String::new(),
            text: text.to_owned(),
        })?;
        count += 1;
    }
    nonempty(path, count, "passage")
}

/// Streams a `queries.*.tsv` into `sink` (`answers: None`) and returns the number of
/// queries. With `ids`, each qid is recorded there and a duplicate is an error.
pub fn read_msmarco_queries(
    path: &Path,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Query) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        let (id, text) = id_text(path, n, line, "qid")?;
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("query", path, n, id)?;
        }
        sink(Query {
            id: id.to_owned(),
            text: text.to_owned(),
            answers: None,
        })?;
        count += 1;
    }
    nonempty(path, count, "query")
}

fn id_text<'a>(path: &Path, n: u64, line: &'a str, id_name: &str) -> Result<(&'a str, &'a str)> {
    match exact::<2>(line.split('\t')) {
        Ok(["", _]) => Err(Error::input(
            path,
            n,
            format!("expected a non-empty {id_name} in the first field"),
        )),
        Ok([id, text]) => Ok((id, text)),
        Err(found) => Err(Error::input(
            path,
            n,
            format!("expected 2 tab-separated fields ({id_name}, text), found {found}"),
        )),
    }
}
