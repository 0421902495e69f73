//! TREC SGML: documents (`<DOC>` blocks, as the TREC disks behind Robust04 and the TREC
//! releases of Vaswani/NPL ship them) and ad hoc topics (`<top>` blocks).
//!
//! **Documents.** Each `<DOC> … </DOC>` holds one `<DOCNO>id</DOCNO>`. Its title is the
//! content of the title elements (`<TITLE>`, `<HEADLINE>`, `<HEAD>`, `<HL>` by default),
//! its text the content of the text elements (`<TEXT>` by default); a document without any
//! text element (NPL's TREC release puts the text straight after `<DOCNO>`) takes as text
//! everything else inside it. Other elements (`<DATE>`, `<BYLINE>`, …) and inline markup
//! (`<P>`, `<F P=102>`) are dropped, keeping their content. Tag names are matched without
//! regard to case; a tag must close on its line (a lone `<` is text). The five XML entities
//! (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`) are decoded; other entities stay as written.
//! In the text, whitespace collapses within each line and blank lines are dropped; in the
//! title all whitespace collapses to single spaces. A file holds any number of documents; text outside them, a document
//! without `<DOCNO>`, a nested `<DOC>` and a file ending inside a document are errors.
//!
//! **Topics.** Each `<top> … </top>` holds `<num> Number: 301`, `<title>`, `<desc>
//! Description:` and `<narr> Narrative:` fields, closed or not (a field runs to the next
//! tag). The labels `Number:`, `Topic:`, `Description:`, `Narrative:` are dropped and
//! whitespace collapses. The query text is the chosen fields joined by a space; an all-digit
//! number loses its leading zeros (`051` → `51`, as in TREC qrels).

use std::path::Path;

use rrra_common::records::{Doc, Query};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::ids::IdIndex;
use crate::lines::{Lines, TextEncoding, nonempty};

/// One piece of a line: text, or a tag (name upper-cased, without attributes).
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Open(String),
    Close(String),
}

/// Splits a line into text and tags. A `<` that does not start a tag (`<` + letter or
/// `</` + letter, closed by `>` on the line) is text.
fn pieces(line: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let bytes = line.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let rest = &line[i + 1..];
            let (closing, name_at) = match rest.strip_prefix('/') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            if name_at.starts_with(|c: char| c.is_ascii_alphabetic())
                && let Some(end) = rest.find('>')
            {
                if text_start < i {
                    out.push(Piece::Text(&line[text_start..i]));
                }
                let inner = &rest[..end];
                let inner = inner.strip_prefix('/').unwrap_or(inner);
                let name = inner
                    .split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                out.push(if closing {
                    Piece::Close(name)
                } else {
                    Piece::Open(name)
                });
                i += 1 + end + 1;
                text_start = i;
                continue;
            }
        }
        i += 1;
    }
    if text_start < line.len() {
        out.push(Piece::Text(&line[text_start..]));
    }
    out
}

/// Decodes the five XML entities; others stay as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn collapse(s: &str) -> String {
    decode_entities(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Each line's whitespace collapsed, blank lines dropped, joined by `\n`.
fn trim_lines(s: &str) -> String {
    let lines: Vec<String> = s
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    decode_entities(&lines.join("\n"))
}

/// Which elements give a document's title and text (names matched upper-cased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SgmlTags {
    /// Elements whose text forms the title (the first found).
    pub title: Vec<String>,
    /// Elements whose text forms the document text (joined).
    pub text: Vec<String>,
}

impl Default for SgmlTags {
    fn default() -> Self {
        SgmlTags {
            title: ["TITLE", "HEADLINE", "HEAD", "HL"]
                .map(String::from)
                .to_vec(),
            text: vec!["TEXT".into()],
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Other,
    DocNo,
    Title,
    Text,
}

/// The document being read.
struct OpenDoc {
    line: u64,
    docno: Option<String>,
    region: Region,
    /// The element that opened `region`, whose closing tag ends it.
    region_tag: String,
    docno_buf: String,
    title: String,
    text: String,
    other: String,
    has_text_element: bool,
}

impl OpenDoc {
    fn new(line: u64) -> Self {
        OpenDoc {
            line,
            docno: None,
            region: Region::Other,
            region_tag: String::new(),
            docno_buf: String::new(),
            title: String::new(),
            text: String::new(),
            other: String::new(),
            has_text_element: false,
        }
    }

    fn buffer(&mut self) -> &mut String {
        match self.region {
            Region::Other => &mut self.other,
            Region::DocNo => &mut self.docno_buf,
            Region::Title => &mut self.title,
            Region::Text => &mut self.text,
        }
    }
}

/// Streams the documents of a TREC SGML file (or its `.gz`) in `encoding` into `sink` and
/// returns their number. With `ids`, each DOCNO is recorded there and a duplicate is an
/// error.
pub fn read_trec_docs(
    path: &Path,
    tags: &SgmlTags,
    encoding: TextEncoding,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    let upper = |v: &[String]| v.iter().map(|t| t.to_ascii_uppercase()).collect::<Vec<_>>();
    let (title_tags, text_tags) = (upper(&tags.title), upper(&tags.text));
    let mut lines = Lines::open(path)?.with_encoding(encoding);
    let mut doc: Option<OpenDoc> = None;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        for piece in pieces(line) {
            let Some(d) = doc.as_mut() else {
                match piece {
                    Piece::Text(t) if t.trim().is_empty() => {}
                    Piece::Open(name) if name == "DOC" => doc = Some(OpenDoc::new(n)),
                    other => {
                        return Err(Error::input(
                            path,
                            n,
                            format!("expected <DOC> to start a document, found {}", show(&other)),
                        ));
                    }
                }
                continue;
            };
            match piece {
                Piece::Text(t) => {
                    let buf = d.buffer();
                    buf.push_str(t);
                }
                Piece::Open(name) if name == "DOC" => {
                    return Err(Error::input(
                        path,
                        n,
                        format!(
                            "expected </DOC> before the next <DOC> (the document opened at line {} is not closed)",
                            d.line
                        ),
                    ));
                }
                Piece::Close(name) if name == "DOC" => {
                    let d = doc.take().expect("open");
                    let id = d.docno.ok_or_else(|| {
                        Error::input(
                            path,
                            n,
                            format!(
                                "expected a <DOCNO> in the document opened at line {}",
                                d.line
                            ),
                        )
                    })?;
                    if let Some(ids) = ids.as_deref_mut() {
                        ids.insert("doc", path, d.line, &id)?;
                    }
                    let text = if d.has_text_element { d.text } else { d.other };
                    sink(Doc {
                        id,
                        title: collapse(&d.title),
                        text: trim_lines(&text),
                    })?;
                    count += 1;
                }
                Piece::Open(name) if name == "DOCNO" => {
                    if d.docno.is_some() {
                        return Err(Error::input(
                            path,
                            n,
                            "expected one <DOCNO> per document, found a second",
                        ));
                    }
                    d.region = Region::DocNo;
                    d.region_tag = name;
                }
                Piece::Close(name) if d.region == Region::DocNo && name == d.region_tag => {
                    let id = d.docno_buf.trim().to_string();
                    if id.is_empty() || id.contains(char::is_whitespace) {
                        return Err(Error::input(
                            path,
                            n,
                            format!("expected a non-empty DOCNO without spaces, found {id:?}"),
                        ));
                    }
                    d.docno = Some(id);
                    d.region = Region::Other;
                }
                Piece::Open(name) if d.region == Region::Other && title_tags.contains(&name) => {
                    d.region = Region::Title;
                    d.region_tag = name;
                    if !d.title.is_empty() {
                        d.title.push(' ');
                    }
                }
                Piece::Open(name) if d.region == Region::Other && text_tags.contains(&name) => {
                    d.region = Region::Text;
                    d.has_text_element = true;
                    d.region_tag = name;
                    if !d.text.is_empty() {
                        d.text.push('\n');
                    }
                }
                Piece::Close(name) if d.region != Region::Other && name == d.region_tag => {
                    d.region = Region::Other;
                }
                // Other markup: dropped, its content kept where it is.
                Piece::Open(_) | Piece::Close(_) => d.buffer().push(' '),
            }
        }
        if let Some(d) = doc.as_mut() {
            d.buffer().push('\n');
        }
    }
    if let Some(d) = doc {
        return Err(Error::file(
            path,
            format!(
                "the file ends inside the document opened at line {}: expected </DOC>",
                d.line
            ),
        ));
    }
    nonempty(path, count, "<DOC> document")
}

fn show(piece: &Piece<'_>) -> String {
    match piece {
        Piece::Text(t) => {
            let t: String = t.trim().chars().take(30).collect();
            format!("text {t:?}")
        }
        Piece::Open(n) => format!("<{n}>"),
        Piece::Close(n) => format!("</{n}>"),
    }
}

/// The fields of a TREC topic that can form the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopicField {
    Title,
    Desc,
    Narr,
}

impl TopicField {
    fn tag(self) -> &'static str {
        match self {
            TopicField::Title => "TITLE",
            TopicField::Desc => "DESC",
            TopicField::Narr => "NARR",
        }
    }
    fn label(self) -> &'static str {
        match self {
            TopicField::Title => "topic:",
            TopicField::Desc => "description:",
            TopicField::Narr => "narrative:",
        }
    }
}

struct OpenTopic {
    line: u64,
    field: Option<String>,
    /// (tag, text) in file order.
    fields: Vec<(String, String)>,
}

/// Streams the topics of a TREC topics file into `sink` (`answers: None`) and returns their
/// number; the query text joins `fields` in the order given. With `ids`, each number is
/// recorded there and a duplicate is an error.
pub fn read_trec_topics(
    path: &Path,
    fields: &[TopicField],
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Query) -> Result<()>,
) -> Result<u64> {
    if fields.is_empty() {
        return Err(Error::Invalid(
            "expected at least one topic field (title, desc, narr) to form the query text".into(),
        ));
    }
    let mut lines = Lines::open(path)?;
    let mut topic: Option<OpenTopic> = None;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        for piece in pieces(line) {
            let Some(t) = topic.as_mut() else {
                match piece {
                    Piece::Text(s) if s.trim().is_empty() => {}
                    Piece::Open(name) if name == "TOP" => {
                        topic = Some(OpenTopic {
                            line: n,
                            field: None,
                            fields: Vec::new(),
                        })
                    }
                    other => {
                        return Err(Error::input(
                            path,
                            n,
                            format!("expected <top> to start a topic, found {}", show(&other)),
                        ));
                    }
                }
                continue;
            };
            match piece {
                Piece::Text(s) => {
                    if let Some((_, text)) = t.fields.last_mut().filter(|_| t.field.is_some()) {
                        text.push_str(s);
                        text.push(' ');
                    }
                }
                Piece::Open(name) if name == "TOP" => {
                    return Err(Error::input(
                        path,
                        n,
                        format!(
                            "expected </top> before the next <top> (the topic opened at line {} is not closed)",
                            t.line
                        ),
                    ));
                }
                Piece::Close(name) if name == "TOP" => {
                    let t = topic.take().expect("open");
                    let query = finish_topic(path, n, t, fields)?;
                    if let Some(ids) = ids.as_deref_mut() {
                        ids.insert("query", path, n, &query.id)?;
                    }
                    sink(query)?;
                    count += 1;
                }
                Piece::Open(name) => {
                    t.fields.push((name.clone(), String::new()));
                    t.field = Some(name);
                }
                Piece::Close(_) => t.field = None,
            }
        }
    }
    if let Some(t) = topic {
        return Err(Error::file(
            path,
            format!(
                "the file ends inside the topic opened at line {}: expected </top>",
                t.line
            ),
        ));
    }
    nonempty(path, count, "<top> topic")
}

fn strip_label<'a>(text: &'a str, label: &str) -> &'a str {
    let t = text.trim_start();
    match t.get(..label.len()) {
        Some(head) if head.eq_ignore_ascii_case(label) => &t[label.len()..],
        _ => t,
    }
}

fn finish_topic(path: &Path, n: u64, t: OpenTopic, wanted: &[TopicField]) -> Result<Query> {
    let field = |tag: &str| {
        t.fields
            .iter()
            .filter(|(name, _)| name == tag)
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let num = collapse(strip_label(&field("NUM"), "number:"));
    if num.is_empty() || num.contains(' ') {
        return Err(Error::input(
            path,
            t.line,
            format!(
                "expected <num> with a topic number in the topic ending at line {n}, found {num:?}"
            ),
        ));
    }
    let id = if num.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = num.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }.to_string()
    } else {
        num
    };
    let mut parts = Vec::with_capacity(wanted.len());
    for f in wanted {
        let text = collapse(strip_label(&field(f.tag()), f.label()));
        if text.is_empty() {
            return Err(Error::input(
                path,
                t.line,
                format!(
                    "topic {id}: expected a non-empty <{}> (asked for by the query fields)",
                    f.tag().to_ascii_lowercase()
                ),
            ));
        }
        parts.push(text);
    }
    Ok(Query {
        id,
        text: parts.join(" "),
        answers: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_text_and_tags() {
        assert_eq!(
            pieces("<DOC><DOCNO> FT-1 </DOCNO>a < b <F P=102>x</f>"),
            vec![
                Piece::Open("DOC".into()),
                Piece::Open("DOCNO".into()),
                Piece::Text(" FT-1 "),
                Piece::Close("DOCNO".into()),
                Piece::Text("a < b "),
                Piece::Open("F".into()),
                Piece::Text("x"),
                Piece::Close("F".into()),
            ]
        );
        assert_eq!(pieces("1 <2"), vec![Piece::Text("1 <2")]);
    }

    #[test]
    fn entities_and_labels() {
        assert_eq!(
            decode_entities("AT&amp;T &lt;x&gt; &hyph;"),
            "AT&T <x> &hyph;"
        );
        assert_eq!(strip_label("  Number: 301", "number:").trim(), "301");
        assert_eq!(strip_label("Num 301", "number:"), "Num 301");
    }
}
