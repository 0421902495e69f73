//! Moving bytes into a `.part` file: `file://` by copying, `http(s)://` with ureq (rustls),
//! resuming an existing `.part` with `Range: bytes=N-` and retrying a transfer the server
//! cut short a few times before giving up with [`FetchError::Truncated`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use rrra_common::progress::{Progress, Task};

use crate::{Download, FetchError, Result, file_name, io};

/// Transfers of one file before a short one becomes an error.
const ATTEMPTS: u32 = 3;

/// Downloads `d.url` into `part`, continuing what `part` already holds.
pub(crate) fn download(d: &Download<'_>, part: &Path, progress: &dyn Progress) -> Result<()> {
    if let Some(path) = d.url.strip_prefix("file://") {
        return copy_local(Path::new(path), part, progress, &file_name(d.url));
    }
    if !(d.url.starts_with("http://") || d.url.starts_with("https://")) {
        return Err(FetchError::Invalid(format!(
            "{}: unsupported URL scheme: expected http://, https:// or file://",
            d.url
        )));
    }
    let agent = agent(d.url);
    let label = format!("download {}", file_name(d.url));
    let mut expected = None;
    let mut failure = None;
    for attempt in 1..=ATTEMPTS {
        let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        match attempt_once(&agent, d, part, have, progress, &label)? {
            Outcome::Complete => return Ok(()),
            Outcome::Short { total } => {
                expected = total;
                failure = None;
            }
            Outcome::Failed(e) => failure = Some(e),
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Err(FetchError::Truncated {
        url: d.url.to_string(),
        got: fs::metadata(part).map(|m| m.len()).unwrap_or(0),
        expected,
        attempts: ATTEMPTS,
        part: part.to_path_buf(),
    })
}

enum Outcome {
    Complete,
    /// The body ended before `total` bytes (unknown without a length).
    Short {
        total: Option<u64>,
    },
    /// The connection failed; worth another try.
    Failed(FetchError),
}

fn agent(url: &str) -> ureq::Agent {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .unwrap_or("");
    let loopback =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .http_status_as_error(false);
    if loopback {
        // A proxy from the environment must not see requests to this machine.
        config = config.proxy(None);
    }
    config.build().into()
}

fn http_error(d: &Download<'_>, message: impl std::fmt::Display) -> FetchError {
    FetchError::Http {
        url: d.url.to_string(),
        message: message.to_string(),
    }
}

fn attempt_once(
    agent: &ureq::Agent,
    d: &Download<'_>,
    part: &Path,
    have: u64,
    progress: &dyn Progress,
    label: &str,
) -> Result<Outcome> {
    let mut request = agent.get(d.url);
    for (name, value) in d.headers {
        request = request.header(*name, *value);
    }
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(e @ (ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed)) => {
            return Ok(Outcome::Failed(http_error(d, e)));
        }
        Err(e) => return Err(http_error(d, e)),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (start, total) = match status {
        200 => (0, header("content-length").and_then(|v| v.parse().ok())),
        206 => {
            let range = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&range).ok_or_else(|| {
                http_error(d, format!("206 with an unreadable Content-Range {range:?}"))
            })?;
            if start != have {
                return Err(http_error(
                    d,
                    format!("asked for bytes from {have}, the server sent bytes from {start}"),
                ));
            }
            (start, total)
        }
        // The part already holds the whole file (a run stopped before verifying it).
        416 if have > 0 => return Ok(Outcome::Complete),
        _ => {
            return Err(http_error(
                d,
                format!(
                    "HTTP {status} {}",
                    response.status().canonical_reason().unwrap_or("")
                ),
            ));
        }
    };
    let mut file = if start == 0 {
        File::create(part).map_err(io(part))?
    } else {
        OpenOptions::new()
            .append(true)
            .open(part)
            .map_err(io(part))?
    };
    let task = progress.task(label, total);
    task.inc(start);
    let mut body = response.into_body().into_reader();
    let written = copy(&mut body, &mut file, part, &*task);
    file.sync_all().map_err(io(part))?;
    let written = written?;
    let now = start + written.bytes;
    match total {
        Some(total) if now < total => Ok(Outcome::Short { total: Some(total) }),
        Some(total) if now > total => Err(http_error(
            d,
            format!("the server sent {now} bytes, more than the {total} it announced"),
        )),
        // Without a length, a read error is the only sign of a cut transfer.
        None if written.read_error.is_some() => Ok(Outcome::Short { total: None }),
        _ => Ok(Outcome::Complete),
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL); TOTAL may be `*`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

struct Copied {
    bytes: u64,
    /// The source failed before its end (a cut connection).
    read_error: Option<std::io::Error>,
}

/// Copies until the end or a read error; a write error is returned.
fn copy(from: &mut dyn Read, to: &mut File, path: &Path, task: &dyn Task) -> Result<Copied> {
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                return Ok(Copied {
                    bytes,
                    read_error: None,
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Ok(Copied {
                    bytes,
                    read_error: Some(e),
                });
            }
        };
        to.write_all(&buf[..n]).map_err(io(path))?;
        bytes += n as u64;
        task.inc(n as u64);
    }
}

fn copy_local(src: &Path, part: &Path, progress: &dyn Progress, name: &str) -> Result<()> {
    let mut from = File::open(src).map_err(io(src))?;
    let total = from.metadata().map_err(io(src))?.len();
    let mut to = File::create(part).map_err(io(part))?;
    let task = progress.task(&format!("copy {name}"), Some(total));
    let copied = copy(&mut from, &mut to, part, &*task)?;
    if let Some(e) = copied.read_error {
        return Err(io(src)(e));
    }
    to.sync_all().map_err(io(part))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
