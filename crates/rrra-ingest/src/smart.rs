//! The classic SMART-format test collections (Cranfield, CISI, CACM, and the like):
//! documents and queries as `.I`-records, plus their three qrels layouts.
//!
//! **Records.** A record starts with a line `.I <number>`; then field markers, each a line
//! that is `.` + an upper-case letter, alone or followed by whitespace and text, and the
//! field's text on the lines after it up to the next marker. `.T` is the title, `.W` the text
//! (abstract, or the query); every other field (`.A` authors, `.B` bibliographic data, `.X`
//! cross-references, `.N`, `.K`, `.C`, ...) is skipped. A repeated field continues the one
//! before (Cranfield 576 and 578 have two `.W`; Cranfield 240 holds stray `.A`/`.B` lines
//! inside its abstract, so, as in every SMART reader, the rest of that abstract is skipped).
//! Lines of a field are joined with single spaces and runs of whitespace collapse to one
//! space. Ids are the `.I` number without leading zeros (`007` → `7`). Text before the first
//! `.I`, or between `.I` and the first marker, is an error.
//!
//! **Queries** are such records too, or TREC-style topic blocks (`<DOC>`, `<DOCNO> id
//! </DOCNO>`, text lines, `</DOC>`, as in Anserini's `topics.cacm.txt`), told apart by the
//! first non-blank line. The query text is `.T` then `.W` (CISI queries 58–112 are
//! abstracts with a title); a query without text is an error. Query ids are either the ids
//! written in the file or the 1-based positions of the queries in it ([`QueryIds`]):
//! Cranfield's `cran.qry` numbers its queries 001..365 with gaps, while `cranqrel` numbers
//! them 1..225 in file order.
//!
//! **Qrels** ([`SmartQrels`]), whitespace-separated, one judgement a line:
//! - `cranfield`: `qid docid code` with Cleverdon's codes 1 (complete answer), 2 (high
//!   relevance), 3 (useful), 4 (minimum interest), 5 (no interest), mapped to the grade
//!   `5 - code` so that higher is more relevant (4..0). `cranqrel` also holds 225 rows of
//!   code `-1`, one per query, which its readme leaves undefined; the document is each
//!   time the source paper the question was written from (query 1 "similarity laws ...
//!   aeroelastic models" → doc 486 "similarity laws for aerothermoelastic testing"), so
//!   it is kept as relevant, at the lowest relevant grade 1. (ir_datasets reads -1 as "no
//!   interest" and the codes the other way round; the readme shipped with the file is
//!   followed here.)
//! - `cisi`: `qid docid 0 0.000000`; every listed pair is relevant (grade 1).
//! - `trec`: `qid iter docid rel`, `rel` an integer grade (CACM's `qrels.cacm.txt`).
//! - `auto` decides from the first line: 3 fields → `cranfield`; 4 fields whose last is a
//!   decimal number with a point → `cisi`; 4 fields whose last is an integer → `trec`.
//!
//! All-digit ids in the qrels lose leading zeros too, so that they match the records.

use std::path::Path;

use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::ids::IdIndex;
use crate::lines::{Lines, exact, nonempty};

/// Where query ids come from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QueryIds {
    /// The id written in the file (`.I` or `<DOCNO>`), without leading zeros.
    #[default]
    Field,
    /// The 1-based position of the query in the file (Cranfield's `cranqrel` numbering).
    Ordinal,
}

/// The layouts of SMART collection qrels (see the module docs).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SmartQrels {
    /// Decided by the first line.
    #[default]
    Auto,
    /// `qid docid code`, Cleverdon codes 1..5 and -1.
    Cranfield,
    /// `qid docid 0 0.000000`, all relevant.
    Cisi,
    /// `qid iter docid rel`.
    Trec,
}

/// An id without leading zeros when it is all digits (`"007"` → `"7"`, `"000"` → `"0"`).
fn normalise_id(id: &str) -> &str {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = id.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    } else {
        id
    }
}

/// Appends the words of `line` to `out`, separated by single spaces.
fn push_words(out: &mut String, line: &str) {
    for word in line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// One record read from a SMART or topics file.
struct Record {
    /// The id as normalised from the file.
    id: String,
    /// The line it starts on.
    line: u64,
    title: String,
    text: String,
}

/// The field the lines of a record currently go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Right after `.I`: no marker yet.
    None,
    Title,
    Text,
    Skipped,
}

/// `(letter, rest of the line)` when `line` is a field marker.
fn marker(line: &str) -> Option<(u8, &str)> {
    let bytes = line.as_bytes();
    match bytes {
        [b'.', letter, rest @ ..]
            if letter.is_ascii_uppercase()
                && rest.first().is_none_or(|b| b.is_ascii_whitespace()) =>
        {
            Some((*letter, &line[2..]))
        }
        _ => None,
    }
}

/// Streams the `.I` records of `path` into `sink`; `what` names them in errors.
fn read_smart_records(
    path: &Path,
    what: &str,
    mut sink: impl FnMut(Record) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut current: Option<(Record, Field)> = None;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        match marker(line) {
            Some((b'I', rest)) => {
                if let Some((record, _)) = current.take() {
                    sink(record)?;
                    count += 1;
                }
                let id = match exact::<1>(rest.split_whitespace()) {
                    Ok([id]) if id.bytes().all(|b| b.is_ascii_digit()) => id,
                    _ => {
                        return Err(Error::input(
                            path,
                            n,
                            format!("expected \".I <number>\" starting a {what}, found {line:?}"),
                        ));
                    }
                };
                let record = Record {
                    id: normalise_id(id).to_owned(),
                    line: n,
                    title: String::new(),
                    text: String::new(),
                };
                current = Some((record, Field::None));
            }
            found => {
                let Some((record, field)) = current.as_mut() else {
                    return Err(Error::input(
                        path,
                        n,
                        format!("expected a {what} starting with \".I <number>\", found {line:?}"),
                    ));
                };
                let rest = match found {
                    Some((letter, rest)) => {
                        *field = match letter {
                            b'T' => Field::Title,
                            b'W' => Field::Text,
                            _ => Field::Skipped,
                        };
                        rest
                    }
                    None => line,
                };
                match field {
                    Field::None => {
                        return Err(Error::input(
                            path,
                            n,
                            format!(
                                "expected a field marker (.T, .W, .A, ...) after \".I {}\" on line {}, found {line:?}",
                                record.id, record.line
                            ),
                        ));
                    }
                    Field::Title => push_words(&mut record.title, rest),
                    Field::Text => push_words(&mut record.text, rest),
                    Field::Skipped => {}
                }
            }
        }
    }
    if let Some((record, _)) = current {
        sink(record)?;
        count += 1;
    }
    nonempty(path, count, what)
}

/// Streams the TREC-style topic blocks (`<DOC>`, `<DOCNO> id </DOCNO>`, text, `</DOC>`) of
/// `path` into `sink`. Ids may be any token; all-digit ones lose leading zeros.
fn read_topic_blocks(path: &Path, mut sink: impl FnMut(Record) -> Result<()>) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    // The open block and whether its <DOCNO> was seen.
    let mut current: Option<(Record, bool)> = None;
    let mut count = 0;
    while let Some((n, raw)) = lines.next_line()? {
        let line = raw.trim();
        match (line, current.as_mut()) {
            ("<DOC>", None) => {
                let record = Record {
                    id: String::new(),
                    line: n,
                    title: String::new(),
                    text: String::new(),
                };
                current = Some((record, false));
            }
            ("<DOC>", Some((record, _))) => {
                return Err(Error::input(
                    path,
                    n,
                    format!(
                        "expected </DOC> closing the topic opened on line {} before a new <DOC>",
                        record.line
                    ),
                ));
            }
            ("</DOC>", Some((record, has_id))) => {
                if !*has_id {
                    return Err(Error::input(
                        path,
                        n,
                        format!(
                            "expected <DOCNO> id </DOCNO> in the topic opened on line {}",
                            record.line
                        ),
                    ));
                }
                let (record, _) = current.take().expect("open topic");
                sink(record)?;
                count += 1;
            }
            (_, None) => {
                return Err(Error::input(
                    path,
                    n,
                    format!("expected <DOC> starting a topic, found {raw:?}"),
                ));
            }
            (_, Some((record, has_id))) if line.starts_with("<DOCNO>") => {
                let id = line
                    .strip_prefix("<DOCNO>")
                    .and_then(|s| s.strip_suffix("</DOCNO>"))
                    .map(str::trim)
                    .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace));
                match id {
                    Some(id) if !*has_id => {
                        record.id = normalise_id(id).to_owned();
                        *has_id = true;
                    }
                    Some(_) => {
                        return Err(Error::input(
                            path,
                            n,
                            format!(
                                "expected one <DOCNO> in the topic opened on line {}, found a second",
                                record.line
                            ),
                        ));
                    }
                    None => {
                        return Err(Error::input(
                            path,
                            n,
                            format!("expected \"<DOCNO> id </DOCNO>\" (one token), found {raw:?}"),
                        ));
                    }
                }
            }
            (_, Some((record, _))) => push_words(&mut record.text, line),
        }
    }
    if let Some((record, _)) = current {
        return Err(Error::input(
            path,
            record.line,
            "expected </DOC> closing this topic before the end of the file",
        ));
    }
    nonempty(path, count, "topic")
}

/// Streams the documents of a SMART file (`cran.all.1400`, `CISI.ALL`, `cacm.all`) into
/// `sink` and returns their number. Doc ids are `id_prefix` + the `.I` number (CACM's qrels
/// name documents `CACM-<n>`). With `ids`, each doc id is recorded there and a duplicate is
/// an error.
pub fn read_smart_corpus(
    path: &Path,
    id_prefix: &str,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    read_smart_records(path, "document", |r| {
        let id = format!("{id_prefix}{}", r.id);
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("doc", path, r.line, &id)?;
        }
        sink(Doc {
            id,
            title: r.title,
            text: r.text,
        })
    })
}

/// Streams the queries of a SMART query file (`.I` records) or of a TREC-style topics file
/// (`<DOC>` blocks) into `sink` (`answers: None`) and returns their number. With `ids`,
/// each query id is recorded there and a duplicate is an error.
pub fn read_smart_queries(
    path: &Path,
    query_ids: QueryIds,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Query) -> Result<()>,
) -> Result<u64> {
    let mut ordinal = 0u64;
    let push = |r: Record| {
        ordinal += 1;
        let id = match query_ids {
            QueryIds::Field => r.id,
            QueryIds::Ordinal => ordinal.to_string(),
        };
        let mut text = r.title;
        push_words(&mut text, &r.text);
        if text.is_empty() {
            return Err(Error::input(
                path,
                r.line,
                format!("query {id:?} has no text: expected a .W (or .T) field with words"),
            ));
        }
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("query", path, r.line, &id)?;
        }
        sink(Query {
            id,
            text,
            answers: None,
        })
    };
    match first_line(path)? {
        Some((_, line)) if marker(&line).is_some_and(|(letter, _)| letter == b'I') => {
            read_smart_records(path, "query", push)
        }
        Some((_, line)) if line.trim() == "<DOC>" => read_topic_blocks(path, push),
        Some((n, line)) => Err(Error::input(
            path,
            n,
            format!("expected a SMART query \".I <number>\" or a topic \"<DOC>\", found {line:?}"),
        )),
        None => Err(Error::file(path, "empty file: expected at least one query")),
    }
}

/// The first non-blank line of `path` and its number.
fn first_line(path: &Path) -> Result<Option<(u64, String)>> {
    let mut lines = Lines::open(path)?;
    Ok(lines.next_line()?.map(|(n, l)| (n, l.to_owned())))
}

/// The layout `auto` stands for, judged from the fields of the first line.
fn detect(path: &Path, n: u64, fields: &[&str]) -> Result<SmartQrels> {
    match fields {
        [_, _, _] => Ok(SmartQrels::Cranfield),
        [.., last] if fields.len() == 4 && last.parse::<i32>().is_ok() => Ok(SmartQrels::Trec),
        [.., last] if fields.len() == 4 && last.contains('.') && last.parse::<f64>().is_ok() => {
            Ok(SmartQrels::Cisi)
        }
        _ => Err(Error::input(
            path,
            n,
            format!(
                "cannot tell the qrels layout: expected 3 fields (cranfield: qid docid code), or 4 \
                 ending in a decimal (cisi: qid docid 0 0.000000) or an integer (trec: qid iter \
                 docid rel); found {} fields; set qrels_format",
                fields.len()
            ),
        )),
    }
}

/// The TREC-style grade of a Cleverdon relevance code (see the module docs).
fn cleverdon_grade(code: i32) -> Option<i32> {
    match code {
        1..=5 => Some(5 - code),
        -1 => Some(1),
        _ => None,
    }
}

/// Streams a SMART collection's qrels (see the module docs) into `sink` and returns the
/// number of judgements. With `known_queries` / `known_docs`, a judgement of a query or
/// document not in them is an error naming the line.
pub fn read_smart_qrels(
    path: &Path,
    format: SmartQrels,
    known_queries: Option<&IdIndex>,
    known_docs: Option<&IdIndex>,
    mut sink: impl FnMut(Qrel) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut format = format;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if format == SmartQrels::Auto {
            format = detect(path, n, &fields)?;
        }
        let wrong_count = |layout: &str| {
            Error::input(
                path,
                n,
                format!(
                    "expected {} whitespace-separated fields ({layout}), found {}",
                    layout.split(' ').count(),
                    fields.len()
                ),
            )
        };
        let (query_id, doc_id, relevance) = match format {
            SmartQrels::Cranfield => {
                let [q, d, code] = exact::<3>(fields.iter().copied())
                    .map_err(|_| wrong_count("qid docid code"))?;
                let grade = code.parse().ok().and_then(cleverdon_grade).ok_or_else(|| {
                    Error::input(
                        path,
                        n,
                        format!("expected a Cleverdon relevance code 1..5 or -1, found {code:?}"),
                    )
                })?;
                (q, d, grade)
            }
            SmartQrels::Cisi => {
                let [q, d, _, score] = exact::<4>(fields.iter().copied())
                    .map_err(|_| wrong_count("qid docid 0 0.000000"))?;
                if score.parse::<f64>().is_err() {
                    return Err(Error::input(
                        path,
                        n,
                        format!("expected a number in the 4th field, found {score:?}"),
                    ));
                }
                (q, d, 1)
            }
            SmartQrels::Trec => {
                let [q, _, d, rel] = exact::<4>(fields.iter().copied())
                    .map_err(|_| wrong_count("qid iter docid rel"))?;
                let grade = rel.parse::<i32>().map_err(|_| {
                    Error::input(
                        path,
                        n,
                        format!("expected an integer relevance, found {rel:?}"),
                    )
                })?;
                (q, d, grade)
            }
            SmartQrels::Auto => unreachable!("detected above"),
        };
        let (query_id, doc_id) = (normalise_id(query_id), normalise_id(doc_id));
        if let Some(known) = known_queries
            && !known.contains(query_id)
        {
            return Err(Error::input(
                path,
                n,
                format!(
                    "qrel for unknown query {query_id:?}: expected a query id of the queries \
                     (are the query ids numbered by position? see query_ids)"
                ),
            ));
        }
        if let Some(known) = known_docs
            && !known.contains(doc_id)
        {
            return Err(Error::input(
                path,
                n,
                format!(
                    "qrel for unknown doc {doc_id:?}: expected a doc id of the corpus \
                     (with its id prefix, if any)"
                ),
            ));
        }
        sink(Qrel {
            query_id: query_id.to_owned(),
            doc_id: doc_id.to_owned(),
            relevance,
        })?;
        count += 1;
    }
    nonempty(path, count, "judgement")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn docs(content: &str, prefix: &str) -> Result<Vec<Doc>> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "docs.all", content);
        let mut out = Vec::new();
        let n = read_smart_corpus(&path, prefix, Some(&mut IdIndex::new()), |d| {
            out.push(d);
            Ok(())
        })?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    fn queries(content: &str, query_ids: QueryIds) -> Result<Vec<(String, String)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "queries.qry", content);
        let mut out = Vec::new();
        read_smart_queries(&path, query_ids, Some(&mut IdIndex::new()), |q| {
            assert_eq!(q.answers, None);
            out.push((q.id, q.text));
            Ok(())
        })?;
        Ok(out)
    }

    fn qrels(content: &str, format: SmartQrels) -> Result<Vec<(String, String, i32)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "qrels", content);
        let mut queries = IdIndex::new();
        let mut docs = IdIndex::new();
        for (i, id) in ["1", "2"].into_iter().enumerate() {
            queries.insert("query", Path::new("q"), i as u64 + 1, id)?;
        }
        for (i, id) in ["1", "2", "3", "D-4"].into_iter().enumerate() {
            docs.insert("doc", Path::new("d"), i as u64 + 1, id)?;
        }
        let mut out = Vec::new();
        read_smart_qrels(&path, format, Some(&queries), Some(&docs), |q| {
            out.push((q.query_id, q.doc_id, q.relevance));
            Ok(())
        })?;
        Ok(out)
    }

    fn doc(id: &str, title: &str, text: &str) -> Doc {
        Doc {
            id: id.into(),
            title: title.into(),
            text: text.into(),
        }
    }

    /// The error's line and message; panics on success or another kind of error.
    fn input_error<T: std::fmt::Debug>(result: Result<T>) -> (Option<u64>, String) {
        match result {
            Err(Error::Input { line, message, .. }) => (line, message),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn documents_keep_title_and_text_and_skip_other_fields() {
        let content = ".I 1\r\n.T\r\nexperimental  investigation of a\r\nwing .\r\n.A\r\nbrenckman,m.\r\n\
                       .B\r\nj. ae. scs. 25, 1958, 324.\r\n.W\r\nan experimental study\r\n\r\n  of a wing .\r\n\
                       .X\r\n1\t5\t1\r\n.I 002\n.T \nTitle only\n.N\nCA581203\n\
                       .I 3\n.W\nfirst part\n.K\nkey, words\n.W\nsecond part .\n.C\n3.42";
        assert_eq!(
            docs(content, "").unwrap(),
            [
                doc(
                    "1",
                    "experimental investigation of a wing .",
                    "an experimental study of a wing ."
                ),
                doc("2", "Title only", ""),
                doc("3", "", "first part second part ."),
            ]
        );
        let prefixed = docs(".I 0410\n.W\nx\n", "CACM-").unwrap();
        assert_eq!(prefixed, [doc("CACM-410", "", "x")]);
    }

    #[test]
    fn markers_need_a_capital_and_whitespace_or_nothing_after() {
        let content = ".I 1\n.W\n.5 percent of .Also\n.w lower\n.T title on the marker line\n";
        assert_eq!(
            docs(content, "").unwrap(),
            [doc(
                "1",
                "title on the marker line",
                ".5 percent of .Also .w lower"
            )]
        );
    }

    #[test]
    fn malformed_documents() {
        let cases: &[(&str, u64, &str)] = &[
            (
                "text before\n.I 1\n.W\nx\n",
                1,
                "expected a document starting with \".I <number>\", found \"text before\"",
            ),
            (
                ".I 1\n.W\nx\n.I\n.W\ny\n",
                4,
                "expected \".I <number>\" starting a document, found \".I\"",
            ),
            (
                ".I 1\n.W\nx\n.I 2a\n",
                4,
                "expected \".I <number>\" starting a document, found \".I 2a\"",
            ),
            (
                ".I 1\n.W\nx\n.I 2 3\n",
                4,
                "expected \".I <number>\" starting a document, found \".I 2 3\"",
            ),
            (
                ".I 1\n.W\nx\n\n.I 2\nno marker\n",
                6,
                "expected a field marker (.T, .W, .A, ...) after \".I 2\" on line 5, found \"no marker\"",
            ),
            (
                ".I 1\n.W\nx\n.I 01\n.W\ny\n",
                4,
                "duplicate doc id \"1\": expected unique ids, first seen at line 1",
            ),
        ];
        for (content, line, message) in cases {
            assert_eq!(
                input_error(docs(content, "")),
                (Some(*line), message.to_string()),
                "{content:?}"
            );
        }
        assert_eq!(
            input_error(docs("\n \n", "")),
            (None, "empty file: expected at least one document".into())
        );
    }

    #[test]
    fn queries_by_field_or_ordinal() {
        let content = ".I 001\n.W\nwhat similarity laws\nmust be obeyed .\n\
                       .I 004\n.W\nheat conduction\n\
                       .I 58\n.T\nDirections in Networking\n.A\nAvram, H.D.\n.W\nBibliographic control\n.B\n1980";
        let by_field = queries(content, QueryIds::Field).unwrap();
        let by_ordinal = queries(content, QueryIds::Ordinal).unwrap();
        let texts = [
            "what similarity laws must be obeyed .",
            "heat conduction",
            "Directions in Networking Bibliographic control",
        ];
        for (got, ids) in [(by_field, ["1", "4", "58"]), (by_ordinal, ["1", "2", "3"])] {
            let want: Vec<(String, String)> = ids
                .iter()
                .zip(texts)
                .map(|(i, t)| (i.to_string(), t.to_string()))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn queries_as_topic_blocks() {
        let content = "<DOC>\n<DOCNO> 1 </DOCNO>\n\n\n What articles exist which deal with TSS\nfor IBM?\n\n \n</DOC>\n\
                       <DOC>\n<DOCNO>02</DOCNO>\nPrieve, B.\nPooch, U.\n</DOC>\n";
        let want = [
            ("1", "What articles exist which deal with TSS for IBM?"),
            ("2", "Prieve, B. Pooch, U."),
        ];
        let got = queries(content, QueryIds::Field).unwrap();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(i, t)| (i.to_string(), t.to_string()))
            .collect();
        assert_eq!(got, want);
        let ordinal = queries(content, QueryIds::Ordinal).unwrap();
        assert_eq!(ordinal[1].0, "2");
    }

    #[test]
    fn malformed_queries() {
        let cases: &[(&str, u64, &str)] = &[
            (
                ".I 1\n.W\nq\n.I 2\n.A\nsomeone\n",
                4,
                "query \"2\" has no text: expected a .W (or .T) field with words",
            ),
            (
                ".I 1\n.W\nq\n.I 001\n.W\nr\n",
                4,
                "duplicate query id \"1\": expected unique ids, first seen at line 1",
            ),
            (
                "1\twhat\n",
                1,
                "expected a SMART query \".I <number>\" or a topic \"<DOC>\", found \"1\\twhat\"",
            ),
            (
                "<DOC>\n<DOCNO> 1 </DOCNO>\ntext\n<DOC>\n",
                4,
                "expected </DOC> closing the topic opened on line 1 before a new <DOC>",
            ),
            (
                "<DOC>\ntext\n</DOC>\n",
                3,
                "expected <DOCNO> id </DOCNO> in the topic opened on line 1",
            ),
            (
                "<DOC>\n<DOCNO> 1 2 </DOCNO>\n",
                2,
                "expected \"<DOCNO> id </DOCNO>\" (one token), found \"<DOCNO> 1 2 </DOCNO>\"",
            ),
            (
                "<DOC>\n<DOCNO> 1 </DOCNO>\n<DOCNO> 2 </DOCNO>\n",
                3,
                "expected one <DOCNO> in the topic opened on line 1, found a second",
            ),
            (
                "<DOC>\n<DOCNO> 1 </DOCNO>\nq\n</DOC>\nstray\n",
                5,
                "expected <DOC> starting a topic, found \"stray\"",
            ),
            (
                "<DOC>\n<DOCNO> 1 </DOCNO>\nq\n</DOC>\n<DOC>\n<DOCNO> 2 </DOCNO>\nr\n",
                5,
                "expected </DOC> closing this topic before the end of the file",
            ),
            (
                "<DOC>\n<DOCNO> 1 </DOCNO>\n</DOC>\n",
                1,
                "query \"1\" has no text: expected a .W (or .T) field with words",
            ),
        ];
        for (content, line, message) in cases {
            assert_eq!(
                input_error(queries(content, QueryIds::Field)),
                (Some(*line), message.to_string()),
                "{content:?}"
            );
        }
        assert_eq!(
            input_error(queries("", QueryIds::Field)),
            (None, "empty file: expected at least one query".into())
        );
    }

    #[test]
    fn qrels_layouts_and_grades() {
        let row = |q: &str, d: &str, r: i32| (q.to_string(), d.to_string(), r);
        let cranfield = "1 1 1\n1 2 2 \n1 3 3\n2 1 4\n2 2 -1\n2 3 5\n";
        let want = [
            row("1", "1", 4),
            row("1", "2", 3),
            row("1", "3", 2),
            row("2", "1", 1),
            row("2", "2", 1),
            row("2", "3", 0),
        ];
        for format in [SmartQrels::Auto, SmartQrels::Cranfield] {
            assert_eq!(qrels(cranfield, format).unwrap(), want);
        }
        let cisi = "     1     2\t0\t0.000000\r\n     2     003\t0\t0.000000\r\n";
        let want = [row("1", "2", 1), row("2", "3", 1)];
        for format in [SmartQrels::Auto, SmartQrels::Cisi] {
            assert_eq!(qrels(cisi, format).unwrap(), want);
        }
        let trec = "1 Q0 D-4 1\n02 0 2 0\n";
        let want = [row("1", "D-4", 1), row("2", "2", 0)];
        for format in [SmartQrels::Auto, SmartQrels::Trec] {
            assert_eq!(qrels(trec, format).unwrap(), want);
        }
        // A numeric 4-column file read as TREC names other columns: the layout matters.
        assert_eq!(
            qrels("1 2 0 1\n", SmartQrels::Cisi).unwrap(),
            [row("1", "2", 1)]
        );
    }

    #[test]
    fn malformed_qrels() {
        use SmartQrels::{Auto, Cisi, Cranfield, Trec};
        let cases: &[(SmartQrels, &str, u64, &str)] = &[
            (
                Cranfield,
                "1 1 1\n1 2 0\n",
                2,
                "expected a Cleverdon relevance code 1..5 or -1, found \"0\"",
            ),
            (
                Cranfield,
                "1 1 high\n",
                1,
                "expected a Cleverdon relevance code 1..5 or -1, found \"high\"",
            ),
            (
                Auto,
                "1 1 1\n1 2 0 0.0\n",
                2,
                "expected 3 whitespace-separated fields (qid docid code), found 4",
            ),
            (
                Cisi,
                "1 1 0 0.000000\n1 2 0\n",
                2,
                "expected 4 whitespace-separated fields (qid docid 0 0.000000), found 3",
            ),
            (
                Cisi,
                "1 1 0 none\n",
                1,
                "expected a number in the 4th field, found \"none\"",
            ),
            (
                Trec,
                "1 0 1 1.5\n",
                1,
                "expected an integer relevance, found \"1.5\"",
            ),
            (
                Trec,
                "1 0 1\n",
                1,
                "expected 4 whitespace-separated fields (qid iter docid rel), found 3",
            ),
            (Auto, "1 0 1 x\n", 1, "cannot tell the qrels layout"),
            (Auto, "1 2\n", 1, "cannot tell the qrels layout"),
            (
                Auto,
                "1 1 1\n3 1 1\n",
                2,
                "qrel for unknown query \"3\": expected a query id of the queries (are the query ids numbered by position? see query_ids)",
            ),
            (
                Auto,
                "1 Q0 4 1\n",
                1,
                "qrel for unknown doc \"4\": expected a doc id of the corpus (with its id prefix, if any)",
            ),
        ];
        for (format, content, line, message) in cases {
            let (got_line, got) = input_error(qrels(content, *format));
            assert_eq!(got_line, Some(*line), "{content:?}");
            assert!(got.starts_with(message), "{content:?}: {got}");
        }
        assert_eq!(
            input_error(qrels("\n", Auto)),
            (None, "empty file: expected at least one judgement".into())
        );
    }
}
