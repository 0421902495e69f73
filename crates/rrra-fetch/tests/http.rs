//! Downloads from a tiny HTTP/1.1 server on 127.0.0.1 started inside each test (nothing
//! leaves the machine): a good download, a wrong checksum, transfers the server cuts short
//! (resumed with `Range`, or a clear error), archives and their members, unpinned URLs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rrra_common::progress::{Progress, Silent, Task};
use rrra_fetch::{Download, FetchError, fetch, hash_file};

/// How the server answers a path.
#[derive(Clone)]
enum Mode {
    /// The whole file, honouring `Range`.
    Normal,
    /// The first request gets only this many bytes (announcing the full length), then
    /// requests behave as `Normal`.
    CutFirst(usize),
    /// Every response stops after this many bytes of the body.
    CutAlways(usize),
}

/// (path, Range header) of every request, in order.
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Server {
    base: String,
    log: Log,
}

fn serve(files: Vec<(&str, Vec<u8>, Mode)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let files: HashMap<String, (Vec<u8>, Mode)> = files
        .into_iter()
        .map(|(p, b, m)| (p.to_string(), (b, m)))
        .collect();
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut served: HashMap<String, u32> = HashMap::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("range")
                {
                    range = Some(v.trim().to_string());
                }
            }
            seen.lock().unwrap().push((path.clone(), range.clone()));
            let Some((body, mode)) = files.get(&path) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let n = served.entry(path.clone()).or_default();
            *n += 1;
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(0);
            let rest = &body[start..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                    rest.len(),
                    start,
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
            };
            let send = match mode {
                Mode::Normal => rest.len(),
                Mode::CutFirst(k) if *n == 1 => (*k).min(rest.len()),
                Mode::CutFirst(_) => rest.len(),
                Mode::CutAlways(k) => (*k).min(rest.len()),
            };
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&rest[..send]);
            let _ = stream.flush();
            // Dropping the stream closes the connection, mid-body when cut.
        }
    });
    Server { base, log }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.log.lock().unwrap().clone()
    }
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, bytes).unwrap();
    hash_file(&f).unwrap().sha256
}

fn md5(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, bytes).unwrap();
    hash_file(&f).unwrap().md5
}

fn download<'a>(url: &'a str, sha256: Option<&'a str>) -> Download<'a> {
    Download {
        url,
        sha256,
        md5: None,
        headers: &[],
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Counts the bytes reported and remembers the announced totals.
#[derive(Default, Clone)]
struct Bytes {
    done: Arc<AtomicU64>,
    totals: Arc<Mutex<Vec<Option<u64>>>>,
}

impl Task for Bytes {
    fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
}

impl Progress for Bytes {
    fn task(&self, label: &str, total: Option<u64>) -> Box<dyn Task> {
        if label.starts_with("download") {
            self.totals.lock().unwrap().push(total);
            Box::new(self.clone())
        } else {
            Box::new(Bytes::default())
        }
    }
}

#[test]
fn a_good_download_is_verified_cached_and_not_fetched_again() {
    let body = payload(300_000);
    let server = serve(vec![("/data/corpus.tsv", body.clone(), Mode::Normal)]);
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("/data/corpus.tsv");
    let hash = sha256(&body);
    let bytes = Bytes::default();
    let got = fetch(cache.path(), &download(&url, Some(&hash)), &bytes).unwrap();
    assert_eq!(std::fs::read(&got.file).unwrap(), body);
    assert_eq!(got.root, got.file, "a plain file is its own root");
    assert_eq!(got.file.file_name().unwrap(), "corpus.tsv");
    assert_eq!(bytes.done.load(Ordering::SeqCst), body.len() as u64);
    assert_eq!(*bytes.totals.lock().unwrap(), vec![Some(body.len() as u64)]);
    assert_eq!(listing(cache.path()), vec![format!("sha256-{hash}")]);

    let again = fetch(cache.path(), &download(&url, Some(&hash)), &Silent).unwrap();
    assert_eq!(again, got);
    assert_eq!(
        server.requests().len(),
        1,
        "the second fetch is served from the cache"
    );
}

#[test]
fn a_wrong_checksum_is_a_clear_error_and_nothing_is_cached() {
    let body = payload(5_000);
    let server = serve(vec![("/f.bin", body.clone(), Mode::Normal)]);
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("/f.bin");
    let wrong = "ab".repeat(32);
    let err = fetch(cache.path(), &download(&url, Some(&wrong)), &Silent).unwrap_err();
    let actual = sha256(&body);
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    let msg = err.to_string();
    for part in [
        url.as_str(),
        wrong.as_str(),
        actual.as_str(),
        "nothing was cached",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    assert!(
        listing(cache.path()).is_empty(),
        "{:?}",
        listing(cache.path())
    );

    // A wrong MD5 is refused the same way.
    let err = fetch(
        cache.path(),
        &Download {
            url: &url,
            sha256: None,
            md5: Some(&"0".repeat(32)),
            headers: &[],
        },
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains(&md5(&body)), "{err}");
    assert!(listing(cache.path()).is_empty());
}

#[test]
fn a_cut_transfer_resumes_with_a_range_request() {
    let body = payload(200_000);
    let server = serve(vec![("/big.bin", body.clone(), Mode::CutFirst(70_000))]);
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("/big.bin");
    let hash = sha256(&body);
    let got = fetch(cache.path(), &download(&url, Some(&hash)), &Silent).unwrap();
    assert_eq!(std::fs::read(&got.file).unwrap(), body);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1, None);
    assert_eq!(requests[1].1.as_deref(), Some("bytes=70000-"));
}

#[test]
fn a_transfer_that_keeps_failing_is_a_clear_error_and_resumes_in_the_next_run() {
    let body = payload(100_000);
    let server = serve(vec![("/x.bin", body.clone(), Mode::CutAlways(10_000))]);
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("/x.bin");
    let hash = sha256(&body);
    let err = fetch(cache.path(), &download(&url, Some(&hash)), &Silent).unwrap_err();
    let FetchError::Truncated { got, expected, .. } = &err else {
        panic!("expected a truncation error, got {err}");
    };
    assert_eq!((*got, *expected), (30_000, Some(100_000)));
    let msg = err.to_string();
    assert!(msg.contains(&url) && msg.contains("30000 of 100000") && msg.contains(".part"));
    assert_eq!(
        listing(cache.path()),
        vec![format!("sha256-{hash}.part")],
        "only the partial file remains"
    );

    // The next run (here: a server that now sends everything) continues at byte 30000.
    let healthy = serve(vec![("/x.bin", body.clone(), Mode::Normal)]);
    let url2 = healthy.url("/x.bin");
    let got = fetch(cache.path(), &download(&url2, Some(&hash)), &Silent).unwrap();
    assert_eq!(std::fs::read(&got.file).unwrap(), body);
    assert_eq!(
        healthy.requests(),
        vec![("/x.bin".to_string(), Some("bytes=30000-".to_string()))]
    );
}

fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn archives_are_unpacked_and_their_members_reachable() {
    let members: &[(&str, &[u8])] = &[
        (
            "scifact/corpus.jsonl",
            b"{\"_id\": \"1\", \"text\": \"a\"}\n",
        ),
        ("scifact/qrels/test.tsv", b"query-id\tcorpus-id\tscore\n"),
    ];
    let tgz = tar_gz(members);
    let zip = zip_of(members);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"id\ttext\ttitle\n").unwrap();
        e.finish().unwrap()
    };
    let server = serve(vec![
        ("/s.tar.gz", tgz.clone(), Mode::Normal),
        ("/s.zip", zip.clone(), Mode::Normal),
        ("/p.tsv.gz", gz.clone(), Mode::Normal),
    ]);
    let cache = tempfile::tempdir().unwrap();
    for (path, bytes) in [("/s.tar.gz", &tgz), ("/s.zip", &zip)] {
        let url = server.url(path);
        let got = fetch(cache.path(), &download(&url, Some(&sha256(bytes))), &Silent).unwrap();
        assert_eq!(got.root, got.file.parent().unwrap().join("unpacked"));
        for (name, data) in members {
            assert_eq!(
                std::fs::read(got.root.join(name)).unwrap(),
                *data,
                "{path} {name}"
            );
        }
    }
    // A gzip file that is not a tar stays compressed: readers decompress it.
    let url = server.url("/p.tsv.gz");
    let got = fetch(cache.path(), &download(&url, Some(&sha256(&gz))), &Silent).unwrap();
    assert_eq!(got.root, got.file);
    assert_eq!(std::fs::read(&got.file).unwrap(), gz);
}

#[test]
fn an_unpinned_url_is_cached_under_its_hash_and_refused_with_that_hash() {
    let body = payload(4_000);
    let server = serve(vec![("/u.txt", body.clone(), Mode::Normal)]);
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("/u.txt");
    let hash = sha256(&body);
    for _ in 0..2 {
        let err = fetch(cache.path(), &download(&url, None), &Silent).unwrap_err();
        assert!(matches!(err, FetchError::Unpinned { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("sha256: {hash}")),
            "{err}"
        );
    }
    assert_eq!(server.requests().len(), 1, "downloaded once");
    // Pinned with the hash it named, it is used without downloading again.
    let got = fetch(cache.path(), &download(&url, Some(&hash)), &Silent).unwrap();
    assert_eq!(std::fs::read(got.file).unwrap(), body);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn md5_pins_file_urls_and_http_errors_are_named() {
    let body = payload(1_000);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("local.bin");
    std::fs::write(&file, &body).unwrap();
    let url = format!("file://{}", file.display());
    let cache = tempfile::tempdir().unwrap();
    let got = fetch(
        cache.path(),
        &Download {
            url: &url,
            sha256: None,
            md5: Some(&md5(&body)),
            headers: &[],
        },
        &Silent,
    )
    .unwrap();
    assert_eq!(std::fs::read(&got.file).unwrap(), body);
    assert!(
        got.file
            .starts_with(cache.path().join(format!("md5-{}", md5(&body))))
    );

    let server = serve(vec![]);
    let missing = server.url("/nope.zip");
    let err = fetch(
        cache.path(),
        &download(&missing, Some(&"0".repeat(64))),
        &Silent,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&missing) && err.to_string().contains("404"),
        "{err}"
    );
    let err = fetch(
        cache.path(),
        &download("ftp://x/y", Some(&"0".repeat(64))),
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unsupported URL scheme"), "{err}");
}
