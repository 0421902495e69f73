//! DPR biencoder training files: one top-level JSON array of records
//! `{question, answers, positive_ctxs, negative_ctxs, hard_negative_ctxs, dataset?}`, each
//! context `{title, text, passage_id?|psg_id?, score?, title_score?}`.
//!
//! The array is parsed streaming (one record in memory at a time), so 7 GB NQ train files
//! are fine. Required: `question` (string), `answers` (list of strings), `positive_ctxs`;
//! the two negative lists may be missing (empty, as DPR's own loader does); keys not listed
//! above are skipped. In a context `text` is required, a missing `title` is empty, and the
//! id is `passage_id`, else `psg_id` (string or integer), else [`DprContext::content_id`].
//!
//! Errors inside the array carry the 1-based record number in the line slot of
//! [`Error::Input`] and say "record N (1-based)", plus serde_json's line and column.

use std::fmt;
use std::io::BufRead as _;
use std::path::Path;

use rrra_common::{Error, Result};
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::lines::nonempty;

/// One question of a DPR biencoder file with its gold answers and contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DprRecord {
    pub question: String,
    pub answers: Vec<String>,
    pub positive_ctxs: Vec<DprContext>,
    pub negative_ctxs: Vec<DprContext>,
    pub hard_negative_ctxs: Vec<DprContext>,
}

/// One passage of a DPR record. `title` is empty when the source has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DprContext {
    pub id: String,
    pub title: String,
    pub text: String,
}

impl DprContext {
    /// The id of a context that has neither `passage_id` nor `psg_id`: `"h:"` and the first
    /// 16 bytes, as 32 lowercase hex digits, of the BLAKE3 hash of the title's byte length
    /// (u64 little-endian), the title and the text. Stable across runs and machines, equal
    /// for equal (title, text), and never equal to DPR's numeric ids.
    pub fn content_id(title: &str, text: &str) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(title.len() as u64).to_le_bytes());
        hasher.update(title.as_bytes());
        hasher.update(text.as_bytes());
        let hex = hasher.finalize().to_hex();
        format!("h:{}", &hex[..32])
    }
}

/// Streams the records of a DPR biencoder JSON file into `sink` and returns their number.
pub fn read_dpr_biencoder(
    path: &Path,
    mut sink: impl FnMut(DprRecord) -> Result<()>,
) -> Result<u64> {
    let mut reader = crate::open::open_text(path)?;
    if reader
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .is_empty()
    {
        return Err(Error::file(
            path,
            "empty file: expected a JSON array of DPR records",
        ));
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut state = State {
        sink: &mut sink,
        count: 0,
        in_array: false,
        sink_error: None,
    };
    let result = de.deserialize_seq(Records(&mut state));
    if let Some(e) = state.sink_error {
        return Err(e);
    }
    result.map_err(|e| {
        if state.in_array {
            let record = state.count + 1;
            Error::input(path, record, format!("in record {record} (1-based): {e}"))
        } else {
            Error::file(path, format!("expected a JSON array of DPR records: {e}"))
        }
    })?;
    de.end()
        .map_err(|e| Error::file(path, format!("expected nothing after the array: {e}")))?;
    nonempty(path, state.count, "DPR record")
}

/// What the array visitor reports back past serde's error type.
struct State<'s, F> {
    sink: &'s mut F,
    /// Records handed to the sink.
    count: u64,
    in_array: bool,
    sink_error: Option<Error>,
}

struct Records<'a, 's, F>(&'a mut State<'s, F>);

impl<'de, F: FnMut(DprRecord) -> Result<()>> Visitor<'de> for Records<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of DPR records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.in_array = true;
        while let Some(record) = seq.next_element_seed(RecordSeed)? {
            if let Err(e) = (self.0.sink)(record) {
                self.0.sink_error = Some(e);
                return Err(de::Error::custom("stopped by the sink"));
            }
            self.0.count += 1;
        }
        Ok(())
    }
}

/// A field's path within a record, for messages: `question`, `answers[3]`,
/// `positive_ctxs[2].text`.
#[derive(Clone, Copy)]
struct Field {
    key: &'static str,
    index: Option<usize>,
    sub: Option<&'static str>,
}

impl Field {
    fn top(key: &'static str) -> Self {
        Field {
            key,
            index: None,
            sub: None,
        }
    }

    fn at(self, index: usize) -> Self {
        Field {
            index: Some(index),
            ..self
        }
    }

    fn sub(self, sub: &'static str) -> Self {
        Field {
            sub: Some(sub),
            ..self
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.key)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        if let Some(sub) = self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// The keys read from records and contexts; the rest are skipped.
enum Key {
    Question,
    Answers,
    PositiveCtxs,
    NegativeCtxs,
    HardNegativeCtxs,
    Title,
    Text,
    PassageId,
    PsgId,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "question" => Key::Question,
            "answers" => Key::Answers,
            "positive_ctxs" => Key::PositiveCtxs,
            "negative_ctxs" => Key::NegativeCtxs,
            "hard_negative_ctxs" => Key::HardNegativeCtxs,
            "title" => Key::Title,
            "text" => Key::Text,
            "passage_id" => Key::PassageId,
            "psg_id" => Key::PsgId,
            _ => Key::Other,
        })
    }
}

/// Stores a field's value, rejecting a second occurrence of the key.
fn put<T, E: de::Error>(slot: &mut Option<T>, value: T, field: Field) -> Result<(), E> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(E::custom(format_args!("duplicate field \"{field}\""))),
    }
}

fn missing<E: de::Error>(field: Field, expected: &str) -> E {
    E::custom(format_args!("expected field \"{field}\" ({expected})"))
}

struct RecordSeed;

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = DprRecord;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<DprRecord, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed {
    type Value = DprRecord;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DPR record (JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DprRecord, A::Error> {
        let (mut question, mut answers) = (None, None);
        let (mut positive, mut negative, mut hard) = (None, None, None);
        while let Some(key) = map.next_key::<Key>()? {
            let (slot, field) = match key {
                Key::Question => {
                    let field = Field::top("question");
                    put(&mut question, map.next_value_seed(Str(field))?, field)?;
                    continue;
                }
                Key::Answers => {
                    let field = Field::top("answers");
                    put(&mut answers, map.next_value_seed(StrList(field))?, field)?;
                    continue;
                }
                Key::PositiveCtxs => (&mut positive, Field::top("positive_ctxs")),
                Key::NegativeCtxs => (&mut negative, Field::top("negative_ctxs")),
                Key::HardNegativeCtxs => (&mut hard, Field::top("hard_negative_ctxs")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            put(slot, map.next_value_seed(CtxList(field))?, field)?;
        }
        Ok(DprRecord {
            question: question.ok_or_else(|| missing(Field::top("question"), "string"))?,
            answers: answers.ok_or_else(|| missing(Field::top("answers"), "list of strings"))?,
            positive_ctxs: positive
                .ok_or_else(|| missing(Field::top("positive_ctxs"), "list of contexts"))?,
            negative_ctxs: negative.unwrap_or_default(),
            hard_negative_ctxs: hard.unwrap_or_default(),
        })
    }
}

/// A string field.
struct Str(Field);

impl<'de> DeserializeSeed<'de> for Str {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_string(self)
    }
}

impl Visitor<'_> for Str {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "field \"{}\" (string)", self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// A context id: a string, or an integer written as a string.
struct Id(Field);

impl<'de> DeserializeSeed<'de> for Id {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Id {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "field \"{}\" (string or integer)", self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A list of strings.
struct StrList(Field);

impl<'de> DeserializeSeed<'de> for StrList {
    type Value = Vec<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StrList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "field \"{}\" (list of strings)", self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element_seed(Str(self.0.at(out.len())))? {
            out.push(s);
        }
        Ok(out)
    }
}

/// A list of contexts.
struct CtxList(Field);

impl<'de> DeserializeSeed<'de> for CtxList {
    type Value = Vec<DprContext>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<DprContext>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CtxList {
    type Value = Vec<DprContext>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "field \"{}\" (list of contexts)", self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<DprContext>, A::Error> {
        let mut out = Vec::new();
        while let Some(ctx) = seq.next_element_seed(Ctx(self.0.at(out.len())))? {
            out.push(ctx);
        }
        Ok(out)
    }
}

/// One context, `self.0` being its place (`positive_ctxs[2]`).
struct Ctx(Field);

impl<'de> DeserializeSeed<'de> for Ctx {
    type Value = DprContext;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<DprContext, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Ctx {
    type Value = DprContext;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "field \"{}\" (context object)", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DprContext, A::Error> {
        let (mut title, mut text, mut passage_id, mut psg_id) = (None, None, None, None);
        while let Some(key) = map.next_key::<Key>()? {
            let (slot, field) = match key {
                Key::Title => (&mut title, self.0.sub("title")),
                Key::Text => (&mut text, self.0.sub("text")),
                Key::PassageId => {
                    let field = self.0.sub("passage_id");
                    put(&mut passage_id, map.next_value_seed(Id(field))?, field)?;
                    continue;
                }
                Key::PsgId => {
                    let field = self.0.sub("psg_id");
                    put(&mut psg_id, map.next_value_seed(Id(field))?, field)?;
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            put(slot, map.next_value_seed(Str(field))?, field)?;
        }
        let title: String = title.unwrap_or_default();
        let text: String = text.ok_or_else(|| missing(self.0.sub("text"), "string"))?;
        let id = passage_id
            .or(psg_id)
            .unwrap_or_else(|| DprContext::content_id(&title, &text));
        Ok(DprContext { id, title, text })
    }
}
