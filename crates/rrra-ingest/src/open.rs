//! Opening a text input for the readers: gzip is decompressed transparently (recognised by
//! its magic bytes, whatever the file is called; concatenated members are read through), and
//! a leading UTF-8 byte-order mark is skipped, so line 1 starts at the first character.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use rrra_common::{Error, Result};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A buffered reader of the decoded text of `path`.
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (head, file) = peek(file, 2).map_err(|e| Error::io(path, e))?;
    let decoded: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            Cursor::new(head).chain(file),
        )))
    } else {
        Box::new(Cursor::new(head).chain(file))
    };
    let (head, rest) = peek(decoded, BOM.len()).map_err(|e| Error::io(path, e))?;
    let skip = if head == BOM { BOM.len() } else { 0 };
    let head = Cursor::new(head[skip..].to_vec());
    Ok(Box::new(BufReader::with_capacity(
        1 << 16,
        head.chain(rest),
    )))
}

/// Whether `path` starts with the gzip magic bytes.
pub(crate) fn is_gzip(path: &Path) -> Result<bool> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (head, _) = peek(file, 2).map_err(|e| Error::io(path, e))?;
    Ok(head.starts_with(&[0x1f, 0x8b]))
}

/// Reads up to `n` bytes (fewer only at the end) and hands back the reader too.
fn peek<R: Read>(mut reader: R, n: usize) -> std::io::Result<(Vec<u8>, R)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok((head, reader))
}
