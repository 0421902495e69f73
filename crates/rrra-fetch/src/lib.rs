//! Checksum-pinned downloads into a content-addressed cache folder (`<cache>/downloads/`).
//!
//! [`fetch`] downloads a URL (`http`, `https` or `file`) once: the bytes go to
//! `<key>.part`, where `key` is `sha256-<hex>` (or `md5-<hex>` when only an MD5 is
//! published). An interrupted transfer resumes from the `.part` file with an HTTP `Range`
//! request, in the same run (a few attempts) or the next one. The whole file is hashed
//! before it is used: a wrong hash is an error naming the URL, the expected and the actual
//! hash, and the `.part` file is deleted, so nothing is cached. A verified file is moved
//! into a staging folder, unpacked there when it is an archive (`.zip`, `.tar`,
//! `.tar.gz`, told apart by their magic bytes), and the folder is renamed to `<key>/`:
//! a `<key>/` folder is always complete. A plain `.gz` file stays compressed (rrra's
//! readers decompress it while reading).
//!
//! A URL without a pinned hash is downloaded once, cached under its actual sha256, and
//! refused with an error that names that hash, so the user can check it and pin it.

mod transfer;
mod unpack;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rrra_common::progress::Progress;
use sha2::Digest;

/// What went wrong while fetching; every variant names the URL or the file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server refused or the connection failed.
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    /// The downloaded bytes do not have the pinned hash.
    #[error(
        "{url}: the download has {algo} {actual}, expected {expected}: the file changed upstream \
         or the transfer was corrupted; nothing was cached"
    )]
    Checksum {
        url: String,
        algo: &'static str,
        expected: String,
        actual: String,
    },
    /// No hash was pinned: the file was downloaded and cached under its actual sha256.
    #[error(
        "{url}: no checksum is pinned for this file (none is published); the file downloaded \
         has sha256 {sha256}: check it, then pin it with `sha256: {sha256}` (it is cached \
         under that hash and will not be downloaded again)"
    )]
    Unpinned { url: String, sha256: String },
    /// The server kept closing the connection before the end of the file.
    #[error(
        "{url}: the transfer stopped at {got} of {} bytes after {attempts} attempts; \
         run again to resume from {}",
        expected.map_or("?".to_string(), |t| t.to_string()),
        part.display()
    )]
    Truncated {
        url: String,
        got: u64,
        expected: Option<u64>,
        attempts: u32,
        part: PathBuf,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An archive that cannot be unpacked.
    #[error("{}: {message}", path.display())]
    Archive { path: PathBuf, message: String },
    /// A malformed request (URL scheme, hash syntax).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = FetchError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file to download and the hashes it must have.
#[derive(Debug, Clone, Copy)]
pub struct Download<'a> {
    /// `http://`, `https://` or `file://` (followed by an absolute path, not percent-decoded).
    pub url: &'a str,
    /// Lowercase or uppercase hex; preferred as the cache key.
    pub sha256: Option<&'a str>,
    /// Lowercase or uppercase hex; checked too when given.
    pub md5: Option<&'a str>,
    /// Extra request headers (some hosts want an API version header for range requests).
    pub headers: &'a [(&'a str, &'a str)],
}

/// A downloaded, verified file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The file as served.
    pub file: PathBuf,
    /// Its content: the unpacked folder of an archive, else `file` itself.
    pub root: PathBuf,
}

/// Downloads `d` into `downloads` (created if missing) unless it is there already, checks
/// its hash, unpacks archives, and returns where it lies. Progress reports bytes.
pub fn fetch(downloads: &Path, d: &Download<'_>, progress: &dyn Progress) -> Result<Fetched> {
    let sha256 = d.sha256.map(|h| hex_hash(h, 64, "sha256")).transpose()?;
    let md5 = d.md5.map(|h| hex_hash(h, 32, "md5")).transpose()?;
    fs::create_dir_all(downloads).map_err(io(downloads))?;
    let key = match (&sha256, &md5) {
        (Some(h), _) => format!("sha256-{h}"),
        (None, Some(h)) => format!("md5-{h}"),
        (None, None) => return fetch_unpinned(downloads, d, progress),
    };
    if let Some(done) = complete(&downloads.join(&key))? {
        return Ok(done);
    }
    let part = downloads.join(format!("{key}.part"));
    transfer::download(d, &part, progress)?;
    let digest = hash_file(&part)?;
    for (algo, expected, actual) in [
        ("sha256", &sha256, &digest.sha256),
        ("md5", &md5, &digest.md5),
    ] {
        if let Some(expected) = expected
            && expected != actual
        {
            fs::remove_file(&part).map_err(io(&part))?;
            return Err(FetchError::Checksum {
                url: d.url.to_string(),
                algo,
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    finalize(downloads, &key, &part, &file_name(d.url), progress)
}

/// A URL with no pinned hash: downloaded once, cached under its sha256, then refused with
/// [`FetchError::Unpinned`]. A note `url-<hash>.sha256` remembers the hash, so a second
/// call does not download again.
fn fetch_unpinned(downloads: &Path, d: &Download<'_>, progress: &dyn Progress) -> Result<Fetched> {
    let url_key = format!("url-{}", &blake3::hash(d.url.as_bytes()).to_hex()[..32]);
    let note = downloads.join(format!("{url_key}.sha256"));
    if let Ok(sha256) = fs::read_to_string(&note)
        && complete(&downloads.join(format!("sha256-{}", sha256.trim())))?.is_some()
    {
        return Err(FetchError::Unpinned {
            url: d.url.to_string(),
            sha256: sha256.trim().to_string(),
        });
    }
    let part = downloads.join(format!("{url_key}.part"));
    transfer::download(d, &part, progress)?;
    let sha256 = hash_file(&part)?.sha256;
    let key = format!("sha256-{sha256}");
    if complete(&downloads.join(&key))?.is_some() {
        fs::remove_file(&part).map_err(io(&part))?;
    } else {
        finalize(downloads, &key, &part, &file_name(d.url), progress)?;
    }
    write_atomic(&note, sha256.as_bytes())?;
    Err(FetchError::Unpinned {
        url: d.url.to_string(),
        sha256,
    })
}

/// Moves a verified `.part` into a staging folder, unpacks it there when it is an archive,
/// and renames the folder to `<downloads>/<key>`.
fn finalize(
    downloads: &Path,
    key: &str,
    part: &Path,
    name: &str,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let done = downloads.join(key);
    let staging = downloads.join(format!(".staging-{key}-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io(&staging))?;
    // The archive's folder has this name; a file called so gets another.
    let name = if name == unpack::UNPACKED {
        "download"
    } else {
        name
    };
    let file = staging.join(name);
    fs::rename(part, &file).map_err(io(part))?;
    unpack::unpack(&file, &staging.join(unpack::UNPACKED), progress)?;
    if let Err(e) = fs::rename(&staging, &done) {
        // Another process finished the same download first: keep its copy.
        if complete(&done)?.is_none() {
            return Err(io(&done)(e));
        }
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    complete(&done)?.ok_or_else(|| FetchError::Invalid(format!("{} is empty", done.display())))
}

/// The download in a finished `<key>/` folder, if there is one.
fn complete(done: &Path) -> Result<Option<Fetched>> {
    let entries = match fs::read_dir(done) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(done)(e)),
    };
    let mut file = None;
    for entry in entries {
        let entry = entry.map_err(io(done))?;
        if entry.file_name() != unpack::UNPACKED {
            file = Some(entry.path());
        }
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let unpacked = done.join(unpack::UNPACKED);
    let root = if unpacked.is_dir() {
        unpacked
    } else {
        file.clone()
    };
    Ok(Some(Fetched { file, root }))
}

/// The last path segment of a URL, reduced to `[A-Za-z0-9._-]`; `download` if none.
pub fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "download".into()
    } else {
        clean
    }
}

fn hex_hash(hash: &str, len: usize, algo: &str) -> Result<String> {
    if hash.len() == len && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash.to_ascii_lowercase())
    } else {
        Err(FetchError::Invalid(format!(
            "{algo} must be {len} hexadecimal digits, found {hash:?}"
        )))
    }
}

/// The sha256 and MD5 of a file, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub md5: String,
}

/// Hashes a file in one streaming pass.
pub fn hash_file(path: &Path) -> Result<Digests> {
    let mut file = fs::File::open(path).map_err(io(path))?;
    let mut sha = sha2::Sha256::new();
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok(Digests {
        sha256: format!("{:x}", sha.finalize()),
        md5: format!("{:x}", md5.finalize()),
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_last_path_segment() {
        assert_eq!(
            file_name("https://h/a/psgs_w100.tsv.gz?x=1"),
            "psgs_w100.tsv.gz"
        );
        assert_eq!(file_name("https://h/"), "download");
        assert_eq!(file_name("file:///tmp/a b.zip"), "ab.zip");
        assert_eq!(file_name("https://h/.."), "download");
    }

    #[test]
    fn hashes_must_be_hex_of_the_right_length() {
        assert_eq!(hex_hash("ABCDEF01", 8, "x").unwrap(), "abcdef01");
        assert!(hex_hash("abc", 8, "x").is_err());
        assert!(hex_hash("zzzzzzzz", 8, "x").is_err());
    }
}
