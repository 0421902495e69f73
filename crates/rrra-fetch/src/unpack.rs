//! Archive unpacking, told by content rather than by name: ZIP (`PK\x03\x04`), tar
//! (`ustar` at byte 257) and gzip-compressed tar. A gzip file that does not hold a tar
//! archive, and anything else, is left as it is.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use rrra_common::progress::Progress;

use crate::{FetchError, Result, io};

/// The folder, next to the downloaded file, that holds an archive's members.
pub(crate) const UNPACKED: &str = "unpacked";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    Tar,
    TarGz,
    Plain,
}

fn kind(path: &Path) -> Result<Kind> {
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .map_err(io(path))?
        .take(512)
        .read_to_end(&mut head)
        .map_err(io(path))?;
    let is_tar = |h: &[u8]| h.len() >= 262 && &h[257..262] == b"ustar";
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Kind::Zip);
    }
    if is_tar(&head) {
        return Ok(Kind::Tar);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut inner = Vec::with_capacity(512);
        let decoder = MultiGzDecoder::new(File::open(path).map_err(io(path))?);
        // A corrupt stream is the reader's problem later; here it just is not a tar.
        let _ = decoder.take(512).read_to_end(&mut inner);
        if is_tar(&inner) {
            return Ok(Kind::TarGz);
        }
    }
    Ok(Kind::Plain)
}

/// Unpacks `file` into `dest` (created) when it is an archive; does nothing otherwise.
pub(crate) fn unpack(file: &Path, dest: &Path, progress: &dyn Progress) -> Result<()> {
    let archive_error = |message: String| FetchError::Archive {
        path: file.to_path_buf(),
        message,
    };
    let kind = kind(file)?;
    if kind == Kind::Plain {
        return Ok(());
    }
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let task = progress.task("unpack", None);
    match kind {
        Kind::Zip => {
            let mut zip = zip::ZipArchive::new(File::open(file).map_err(io(file))?)
                .map_err(|e| archive_error(format!("not a readable ZIP archive: {e}")))?;
            // `extract` refuses members whose names leave `dest`.
            zip.extract(dest)
                .map_err(|e| archive_error(format!("cannot unpack the ZIP archive: {e}")))?;
            task.inc(zip.len() as u64);
        }
        Kind::Tar | Kind::TarGz => {
            let reader: Box<dyn Read> = {
                let f = BufReader::new(File::open(file).map_err(io(file))?);
                if kind == Kind::TarGz {
                    Box::new(MultiGzDecoder::new(f))
                } else {
                    Box::new(f)
                }
            };
            let mut archive = tar::Archive::new(reader);
            for entry in archive
                .entries()
                .map_err(|e| archive_error(format!("not a readable tar archive: {e}")))?
            {
                let mut entry =
                    entry.map_err(|e| archive_error(format!("corrupt tar archive: {e}")))?;
                // `unpack_in` skips members whose paths leave `dest` (`..`, absolute).
                entry
                    .unpack_in(dest)
                    .map_err(|e| archive_error(format!("cannot unpack a member: {e}")))?;
                task.inc(1);
            }
        }
        Kind::Plain => {}
    }
    Ok(())
}
