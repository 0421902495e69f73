//! TREC text formats: run files (`qid Q0 docid rank score tag`) and qrels files
//! (`qid 0 docid grade`), written in evaluation order.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rrra_common::{Error, Result};

use crate::qrels::Qrels;
use crate::run::Run;

/// Fails on a field that would not survive whitespace splitting.
fn check_field(what: &str, value: &str) -> io::Result<()> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TREC format: {what} {value:?} is empty or holds whitespace"),
        ));
    }
    Ok(())
}

/// Writes `run` as a TREC run: queries in byte order, each query's documents in evaluation
/// order with ranks 1, 2, ... and the scores as given (shortest text that reads back exactly).
/// Ids and `tag` must be non-empty and free of whitespace.
pub fn write_trec_run(run: &Run, tag: &str, mut out: impl Write) -> io::Result<()> {
    check_field("run tag", tag)?;
    for (query_id, docs) in run.rankings() {
        check_field("query id", query_id)?;
        for (i, doc) in docs.iter().enumerate() {
            check_field("document id", &doc.doc_id)?;
            writeln!(
                out,
                "{query_id} Q0 {} {} {} {tag}",
                doc.doc_id,
                i + 1,
                doc.score
            )?;
        }
    }
    out.flush()
}

/// Writes `qrels` as a TREC qrels file: queries and documents in byte order.
pub fn write_trec_qrels(qrels: &Qrels, mut out: impl Write) -> io::Result<()> {
    for query_id in qrels.query_ids() {
        check_field("query id", query_id)?;
        for (doc_id, grade) in qrels.judgements(query_id).into_iter().flatten() {
            check_field("document id", doc_id)?;
            writeln!(out, "{query_id} 0 {doc_id} {grade}")?;
        }
    }
    out.flush()
}

/// [`write_trec_run`] to a new file at `path`.
pub fn write_trec_run_file(run: &Run, tag: &str, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    write_trec_run(run, tag, BufWriter::new(file)).map_err(|e| Error::io(path, e))
}

/// [`write_trec_qrels`] to a new file at `path`.
pub fn write_trec_qrels_file(qrels: &Qrels, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    write_trec_qrels(qrels, BufWriter::new(file)).map_err(|e| Error::io(path, e))
}
