//! Streaming line access shared by the line-oriented readers: one reused byte buffer, UTF-8
//! checked per line (so the error names the line), `\n` or `\r\n` endings, blank lines
//! skipped, and a missing final newline accepted; gzip and a leading byte-order mark are
//! handled by [`open_text`](crate::open::open_text). Also the field splitters of the text
//! formats.

use std::io::BufRead;
use std::path::Path;

use rrra_common::{Error, Result};

/// The character encoding of a text file.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TextEncoding {
    /// UTF-8; an invalid byte sequence is an error naming the line.
    #[default]
    Utf8,
    /// ISO 8859-1: every byte is the character of the same code (older TREC collections).
    Latin1,
}

/// Reads a file line by line; memory is one line.
pub(crate) struct Lines<'p> {
    path: &'p Path,
    reader: Box<dyn BufRead + Send>,
    text: String,
    line: u64,
    encoding: TextEncoding,
}

impl<'p> Lines<'p> {
    pub(crate) fn open(path: &'p Path) -> Result<Self> {
        Ok(Lines {
            path,
            reader: crate::open::open_text(path)?,
            text: String::new(),
            line: 0,
            encoding: TextEncoding::Utf8,
        })
    }

    pub(crate) fn with_encoding(mut self, encoding: TextEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The next line that is not blank (whitespace only): its 1-based number and its text
    /// without the line terminator; `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        loop {
            // Reuse the allocation: bytes in, validated once, kept as the current line.
            let mut buf = std::mem::take(&mut self.text).into_bytes();
            buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io(self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if self.encoding == TextEncoding::Latin1 {
                self.text = buf.iter().map(|&b| char::from(b)).collect();
                if self.text.trim().is_empty() {
                    continue;
                }
                return Ok(Some((self.line, &self.text)));
            }
            self.text = String::from_utf8(buf).map_err(|e| {
                Error::input(
                    self.path,
                    self.line,
                    format!(
                        "expected UTF-8 text, found an invalid byte sequence at byte {} of the line",
                        e.utf8_error().valid_up_to() + 1
                    ),
                )
            })?;
            if !self.text.trim().is_empty() {
                return Ok(Some((self.line, &self.text)));
            }
        }
    }
}

/// `Ok(count)` when a reader produced records, else the empty-file error.
pub(crate) fn nonempty(path: &Path, count: u64, what: &str) -> Result<u64> {
    if count == 0 {
        Err(Error::file(
            path,
            format!("empty file: expected at least one {what}"),
        ))
    } else {
        Ok(count)
    }
}

/// Exactly `N` fields from `fields`, or the number found.
pub(crate) fn exact<'a, const N: usize>(
    mut fields: impl Iterator<Item = &'a str>,
) -> std::result::Result<[&'a str; N], usize> {
    let mut out = [""; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = fields.next().ok_or(i)?;
    }
    match fields.count() {
        0 => Ok(out),
        extra => Err(N + extra),
    }
}
