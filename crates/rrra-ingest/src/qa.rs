//! DPR question-answer TSVs (`nq-test.qa.tsv`, `trivia-test.qa.tsv`):
//! `question\t['answer1', "answer2", ...]`, as DPR writes them with Python's `csv` module
//! (tab delimiter) and reads them back with `csv.reader` and `ast.literal_eval`.
//!
//! So a field that starts with `"` is CSV-quoted (`""` inside stands for `"`; it must end on
//! the same line), and the answer field is a Python list literal of string literals, single-
//! or double-quoted, with Python's escapes (`\\`, `\'`, `\"`, `\n`, `\t`, `\r`, `\a`, `\b`,
//! `\f`, `\v`, octal `\ooo`, `\xhh`, `\uhhhh`, `\Uhhhhhhhh`; an unknown escape such as `\d`
//! keeps its backslash, as in Python). String prefixes (`u''`, `r''`) and `\N{...}` are
//! rejected.
//!
//! Query ids are the 0-based index of the question among the non-blank lines ("0", "1",
//! ...), as in Anserini/Pyserini's `DprNqTopicReader`, so runs match theirs; error messages
//! still name the 1-based line.

use std::borrow::Cow;
use std::path::Path;

use rrra_common::records::Query;
use rrra_common::{Error, Result};

use crate::lines::{Lines, nonempty};

/// Streams a DPR `*.qa.tsv` into `sink` (`answers: Some(..)`) and returns the number of
/// questions.
pub fn read_dpr_qa_tsv(path: &Path, mut sink: impl FnMut(Query) -> Result<()>) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0u64;
    while let Some((n, line)) = lines.next_line()? {
        let fields = split_csv_tsv(line).map_err(|msg| Error::input(path, n, msg))?;
        let [question, answers] = fields.as_slice() else {
            return Err(Error::input(
                path,
                n,
                format!(
                    "expected 2 tab-separated fields (question, answer list), found {}",
                    fields.len()
                ),
            ));
        };
        let answers = parse_str_list(answers).map_err(|(at, msg)| {
            Error::input(path, n, format!("answer list, character {}: {msg}", at + 1))
        })?;
        sink(Query {
            id: count.to_string(),
            text: question.to_string(),
            answers: Some(answers),
        })?;
        count += 1;
    }
    nonempty(path, count, "question")
}

/// Splits one line into tab-separated fields with CSV quoting (Python `csv`, excel-tab).
pub(crate) fn split_csv_tsv(line: &str) -> std::result::Result<Vec<Cow<'_, str>>, String> {
    let mut fields = Vec::with_capacity(2);
    let mut rest = line;
    loop {
        let Some(body) = rest.strip_prefix('"') else {
            match rest.split_once('\t') {
                Some((field, after)) => {
                    fields.push(Cow::Borrowed(field));
                    rest = after;
                    continue;
                }
                None => {
                    fields.push(Cow::Borrowed(rest));
                    return Ok(fields);
                }
            }
        };
        let start = line.len() - rest.len() + 1;
        let mut value = String::new();
        let mut i = 0;
        loop {
            let Some(j) = body[i..].find('"') else {
                return Err(format!(
                    "expected a closing '\"' for the field quoted at column {start} \
                     (quoted fields cannot span lines)"
                ));
            };
            value.push_str(&body[i..i + j]);
            i += j + 1;
            if body[i..].starts_with('"') {
                value.push('"');
                i += 1;
            } else {
                break;
            }
        }
        fields.push(Cow::Owned(value));
        rest = &body[i..];
        if rest.is_empty() {
            return Ok(fields);
        }
        rest = rest.strip_prefix('\t').ok_or_else(|| {
            format!(
                "expected a tab or the end of the line after the closing '\"' at column {}",
                line.len() - rest.len()
            )
        })?;
    }
}

/// Parses a Python list of string literals, e.g. `['a', "b's", 'c\'d']`. On error returns
/// the character offset and what was expected there.
fn parse_str_list(s: &str) -> std::result::Result<Vec<String>, (usize, String)> {
    let mut p = Parser {
        chars: s.chars().collect(),
        pos: 0,
    };
    p.skip_ws();
    p.expect('[', "'[' opening the answer list")?;
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(']') {
            break;
        }
        out.push(p.string()?);
        p.skip_ws();
        if p.eat(']') {
            break;
        }
        p.expect(',', "',' or ']' after a string")?;
    }
    p.skip_ws();
    match p.peek() {
        None => Ok(out),
        Some(_) => Err(p.err("end of the field after ']'")),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.pos += 1;
        }
    }

    fn err(&self, expected: &str) -> (usize, String) {
        let found = match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "the end".to_owned(),
        };
        (self.pos, format!("expected {expected}, found {found}"))
    }

    fn expect(&mut self, c: char, expected: &str) -> std::result::Result<(), (usize, String)> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(expected))
        }
    }

    /// One single- or double-quoted string literal.
    fn string(&mut self) -> std::result::Result<String, (usize, String)> {
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.err("a quoted string")),
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(self.err(&format!("a closing {quote}"))),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => self.escape(&mut out)?,
                Some(c) => out.push(c),
            }
        }
    }

    /// The escape after a backslash, appended to `out`.
    fn escape(&mut self, out: &mut String) -> std::result::Result<(), (usize, String)> {
        let Some(c) = self.next() else {
            return Err(self.err("an escaped character after '\\'"));
        };
        let simple = match c {
            '\\' | '\'' | '"' => Some(c),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            return Ok(());
        }
        let code = match c {
            'x' => self.hex(2)?,
            'u' => self.hex(4)?,
            'U' => self.hex(8)?,
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or_default();
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                v
            }
            'N' => {
                self.pos -= 1;
                return Err(self.err("an escape other than \\N{...} (unsupported)"));
            }
            _ => {
                // Python keeps unknown escapes verbatim.
                out.push('\\');
                out.push(c);
                return Ok(());
            }
        };
        match char::from_u32(code) {
            Some(ch) => {
                out.push(ch);
                Ok(())
            }
            None => Err((
                self.pos,
                format!("expected an escape of a Unicode scalar value, found {code:#x}"),
            )),
        }
    }

    fn hex(&mut self, digits: usize) -> std::result::Result<u32, (usize, String)> {
        let mut v = 0;
        for _ in 0..digits {
            match self.peek().and_then(|d| d.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.pos += 1;
                }
                None => return Err(self.err(&format!("{digits} hex digits"))),
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals() {
        let ok: &[(&str, &[&str])] = &[
            ("[]", &[]),
            (" [ 'a' ] ", &["a"]),
            ("['a', \"b's\", 'c\\'d']", &["a", "b's", "c'd"]),
            ("['a',]", &["a"]),
            (
                r#"['back\\slash', "q\"uote", 'tab\there']"#,
                &["back\\slash", "q\"uote", "tab\there"],
            ),
            (
                r"['S\xc3o', '\u200e', '\U0001F600', '\101\0']",
                &["S\u{c3}o", "\u{200e}", "😀", "A\0"],
            ),
            (
                r"['\d', '\a\b\f\v\n\r']",
                &["\\d", "\u{7}\u{8}\u{c}\u{b}\n\r"],
            ),
            ("['Röntgen', \"இலங்கை\"]", &["Röntgen", "இலங்கை"]),
        ];
        for (input, want) in ok {
            assert_eq!(parse_str_list(input).unwrap(), *want, "{input}");
        }
        let bad: &[(&str, usize, &str)] = &[
            ("", 0, "expected '[' opening the answer list, found the end"),
            ("'a'", 0, "expected '['"),
            (
                "['a'",
                4,
                "expected ',' or ']' after a string, found the end",
            ),
            (
                "['a' 'b']",
                5,
                "expected ',' or ']' after a string, found '\\''",
            ),
            ("['a", 3, "expected a closing '"),
            ("[a]", 1, "expected a quoted string, found 'a'"),
            ("[u'a']", 1, "expected a quoted string, found 'u'"),
            ("['a'] x", 6, "expected end of the field after ']'"),
            (r"['\x4']", 5, "expected 2 hex digits, found '\\''"),
            (r"['\ud800']", 8, "Unicode scalar value, found 0xd800"),
            (r"['\N{DASH}']", 3, "unsupported"),
            ("['a\\", 4, "expected an escaped character"),
        ];
        for (input, at, msg) in bad {
            let (pos, got) = parse_str_list(input).unwrap_err();
            assert!(got.contains(msg), "{input}: {got}");
            assert_eq!(pos, *at, "{input}: {got}");
        }
    }

    #[test]
    fn csv_quoted_fields() {
        let ok: &[(&str, &[&str])] = &[
            ("q\t['a']", &["q", "['a']"]),
            (
                "\"say \"\"hi\"\"\"\t\"['\"\"x\"\"']\"",
                &["say \"hi\"", "['\"x\"']"],
            ),
            ("\"a\"\t", &["a", ""]),
            ("a\"b\tc", &["a\"b", "c"]),
            ("one", &["one"]),
        ];
        for (input, want) in ok {
            assert_eq!(split_csv_tsv(input).unwrap(), *want, "{input}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "q\t\"['a']",
                "expected a closing '\"' for the field quoted at column 3",
            ),
            (
                "\"q\"x\t['a']",
                "expected a tab or the end of the line after the closing '\"' at column 3",
            ),
        ];
        for (input, msg) in bad {
            let got = split_csv_tsv(input).unwrap_err();
            assert!(got.contains(msg), "{input}: {got}");
        }
    }
}
