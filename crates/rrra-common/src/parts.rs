//! Part-based outputs: a stage cuts its input into parts of a fixed number of units (rows,
//! queries, documents), computes each part into its own file under the cache entry's work
//! folder (`<work_dir>/parts/<name>/part-NNNNN.parquet`, written to a temp file and renamed),
//! and merges the parts into the output. Part boundaries depend only on the part size, never
//! on how many processes computed them, and a part file exists only complete: a killed run
//! resumes at the first missing part. [`Parts::compute`] skips the parts already on disk;
//! [`concat_rows`] and [`concat_embeddings`] stream the parts through one sink, so the
//! merged file has the record batches, row groups and therefore bytes of an unsplit run.
//!
//! Other processes may compute the parts: under [`with_mode`]`(`[`Mode::Defer`]`, ..)` a
//! stage whose parts are not all on disk stops with [`Error::Deferred`] describing them
//! (a [`Split`]) instead of computing them, and under [`Mode::Only`]`(i)` it computes part
//! `i` alone and stops the same way, leaving the merge to the runner.

use std::cell::Cell;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::artifact::{ParquetSink, read_batches};
use crate::embeddings::{EmbeddingSink, for_each_block};
use crate::progress::Progress;
use crate::records::RunRow;
use crate::table::Row;
use crate::{Error, Result};

/// The file in a parts folder that records how its parts were cut.
const LAYOUT: &str = "layout.json";

/// How a parts folder was cut; a folder cut differently is discarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    unit: String,
    size: u64,
    total: u64,
}

/// How [`Parts::compute`] treats the parts of this thread's stage run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Compute every missing part here (the default).
    #[default]
    Local,
    /// Compute nothing; when a part is missing, stop with [`Error::Deferred`].
    Defer,
    /// Compute part `i` only (unless on disk), then stop with [`Error::Deferred`].
    Only(usize),
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Local) };
}

/// Runs `f` with [`Parts::compute`] in `mode` on this thread (restored afterwards).
pub fn with_mode<T>(mode: Mode, f: impl FnOnce() -> T) -> T {
    struct Restore(Mode);
    impl Drop for Restore {
        fn drop(&mut self) {
            MODE.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MODE.with(|m| m.replace(mode)));
    f()
}

/// The parts of a stage left to other processes: what [`Error::Deferred`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// The parts folder (`<work_dir>/parts/<name>`).
    pub dir: PathBuf,
    /// The output the parts make up (the folder's name).
    pub name: String,
    /// What the parts count (`rows`, `queries`, ...).
    pub unit: String,
    /// Units per part.
    pub size: u64,
    /// Units in all.
    pub total: u64,
    /// The parts whose file is not on disk, in order.
    pub missing: Vec<usize>,
}

impl Split {
    /// The number of parts.
    pub fn count(&self) -> usize {
        self.total.div_ceil(self.size) as usize
    }

    /// The units of part `i`.
    pub fn range(&self, i: usize) -> Range<u64> {
        let start = i as u64 * self.size;
        start..(start + self.size).min(self.total)
    }

    /// The file of part `i`.
    pub fn file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("part-{i:05}.parquet"))
    }
}

/// The parts of one output: `total` units cut every `size` units.
#[derive(Debug, Clone)]
pub struct Parts {
    dir: PathBuf,
    layout: Layout,
}

/// What [`Parts::compute`] did.
#[derive(Debug, Clone)]
pub struct Computed {
    /// Every part's file, in order.
    pub files: Vec<PathBuf>,
    /// Parts found complete on disk (from an interrupted run) and not recomputed.
    pub cached: usize,
}

impl Computed {
    /// The report metrics of a split run: `parts` and `parts_cached`.
    pub fn metrics(&self) -> [(String, f64); 2] {
        [
            ("parts".to_string(), self.files.len() as f64),
            ("parts_cached".to_string(), self.cached as f64),
        ]
    }
}

impl Parts {
    /// The parts folder `<work_dir>/parts/<name>` for `total` units (`unit` names them, e.g.
    /// `rows`) cut every `size`. A folder left by a run that cut differently is emptied.
    pub fn open(work_dir: &Path, name: &str, unit: &str, size: u64, total: u64) -> Result<Self> {
        if size == 0 {
            return Err(Error::Invalid(format!(
                "part size of {name} must be at least 1 {unit}"
            )));
        }
        let dir = work_dir.join("parts").join(name);
        let layout = Layout {
            unit: unit.to_string(),
            size,
            total,
        };
        let file = dir.join(LAYOUT);
        let same = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Layout>(&b).ok())
            .is_some_and(|l| l == layout);
        if !same {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let tmp = dir.join(format!("{LAYOUT}.tmp"));
            let json = serde_json::to_vec(&layout).expect("a layout serialises");
            std::fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &file).map_err(|e| Error::io(&file, e))?;
        }
        Ok(Parts { dir, layout })
    }

    /// The number of parts (0 for an empty input).
    pub fn count(&self) -> usize {
        self.layout.total.div_ceil(self.layout.size) as usize
    }

    /// The units of part `i`.
    pub fn range(&self, i: usize) -> Range<u64> {
        let start = i as u64 * self.layout.size;
        start..(start + self.layout.size).min(self.layout.total)
    }

    /// The file of part `i`.
    pub fn file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("part-{i:05}.parquet"))
    }

    /// This output's parts, with `missing` ones.
    fn split(&self, missing: Vec<usize>) -> Split {
        Split {
            dir: self.dir.clone(),
            name: self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            unit: self.layout.unit.clone(),
            size: self.layout.size,
            total: self.layout.total,
            missing,
        }
    }

    /// Computes every part whose file is missing, in order: `f(range, file)` must write
    /// `file` atomically (the sinks write a temp file and rename). Each part runs inside a
    /// progress task labelled `"<label> part i/n"`. Under [`Mode::Defer`] or
    /// [`Mode::Only`] (see [`with_mode`]) it computes at most one part and returns
    /// [`Error::Deferred`] unless every part is on disk.
    pub fn compute(
        &self,
        progress: &dyn Progress,
        label: &str,
        mut f: impl FnMut(Range<u64>, &Path) -> Result<()>,
    ) -> Result<Computed> {
        let n = self.count();
        let mode = MODE.with(Cell::get);
        if mode != Mode::Local {
            if let Mode::Only(i) = mode {
                if i >= n {
                    return Err(Error::Invalid(format!(
                        "part {i} asked of {}, which has {n} parts",
                        self.dir.display()
                    )));
                }
                if !self.file(i).is_file() {
                    let range = self.range(i);
                    let task = progress.task(
                        &format!("{label} part {}/{n}", i + 1),
                        Some(range.end - range.start),
                    );
                    // Several processes may compute the same part (a retried task whose
                    // first try still runs): each writes its own file, renamed into place.
                    let own = self
                        .dir
                        .join(format!("part-{i:05}.{}.parquet", scratch_tag()));
                    f(range.clone(), &own)?;
                    std::fs::rename(&own, self.file(i)).map_err(|e| Error::io(&own, e))?;
                    task.inc(range.end - range.start);
                }
            }
            let missing: Vec<usize> = (0..n).filter(|&i| !self.file(i).is_file()).collect();
            if !missing.is_empty() || matches!(mode, Mode::Only(_)) {
                return Err(Error::Deferred(Box::new(self.split(missing))));
            }
        }
        let mut cached = 0;
        let mut files = Vec::with_capacity(n);
        for i in 0..n {
            let file = self.file(i);
            if file.is_file() {
                cached += 1;
            } else {
                let range = self.range(i);
                let task = progress.task(
                    &format!("{label} part {}/{n}", i + 1),
                    Some(range.end - range.start),
                );
                f(range.clone(), &file)?;
                task.inc(range.end - range.start);
            }
            files.push(file);
        }
        Ok(Computed { files, cached })
    }
}

/// `<host>-<pid>-<n>`, `n` counting the calls: names a file no other writer (another
/// host, process or thread) uses.
pub fn scratch_tag() -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", scratch_host(), std::process::id())
}

/// The pid in `tag` when it is a [`scratch_tag`] written on host `host` (`None` for
/// another host's tag, or text that is no tag).
pub fn scratch_tag_pid(tag: &str, host: &str) -> Option<u32> {
    let mut fields = tag.split('-');
    let (h, pid, n) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || h != host || n.parse::<u64>().is_err() {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` of this host is running (Linux `/proc`; a zombie, ended but not
/// reaped, is gone; elsewhere every other process is taken as gone).
pub fn process_alive(pid: u32) -> bool {
    pid == std::process::id()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // The state follows the command, which is in parentheses.
            stat.rsplit_once(") ")
                .is_none_or(|(_, rest)| !rest.starts_with('Z'))
        })
}

/// This machine's name (the kernel's, else `/etc/hostname`, `$HOSTNAME`, `$COMPUTERNAME`,
/// else `localhost`) for file names: characters outside `[A-Za-z0-9]` and `keep` become
/// `_`, so the name never holds the `-` that separates it from a pid.
pub fn host_label(keep: &[char]) -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || keep.contains(&c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// This machine's name as [`scratch_tag`] writes it: `[A-Za-z0-9_]` only (no `-` or `.`).
pub fn scratch_host() -> String {
    host_label(&[])
}

fn pq(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the rows of `files`, in order, to `out` through one [`ParquetSink`]; returns the
/// row count.
pub fn concat_rows<R: Row>(files: &[PathBuf], out: &Path) -> Result<u64> {
    let mut sink = ParquetSink::<R>::create(out)?;
    for file in files {
        crate::artifact::for_each_batch::<R>(file, |rows| {
            rows.into_iter().try_for_each(|r| sink.push(r))
        })?;
    }
    sink.finish()
}

/// Writes the vectors of `files` (each `dim` wide), in order, to `out` through one
/// [`EmbeddingSink`]; returns the row count.
pub fn concat_embeddings(files: &[PathBuf], out: &Path, dim: usize) -> Result<u64> {
    let mut sink = EmbeddingSink::create(out, dim)?;
    for file in files {
        let width = for_each_block(file, |ids, vectors| {
            for (id, v) in ids.iter().zip(vectors.chunks_exact(dim)) {
                sink.push(id, v)?;
            }
            Ok(())
        })?;
        if width != dim {
            return Err(Error::file(
                file,
                format!("part vectors are {width} wide, expected {dim}"),
            ));
        }
    }
    sink.finish()
}

/// Merges per-part top-`k` runs of a corpus split (part `i` searched documents before
/// part `i + 1`'s; each lists `query_ids` in order, a query's hits best first with equal
/// scores in document order) into the exact top-`k` of the whole corpus: by score
/// descending, equal scores in document order (earlier part first), ranks renumbered.
/// One query's hits per part are in memory at a time. Returns the row count.
pub fn merge_top_k(files: &[PathBuf], query_ids: &[String], k: usize, out: &Path) -> Result<u64> {
    let mut parts = files
        .iter()
        .map(|f| RowIter::<RunRow>::open(f).map(Iterator::peekable))
        .collect::<Result<Vec<_>>>()?;
    let mut sink = ParquetSink::<RunRow>::create(out)?;
    let mut hits: Vec<RunRow> = Vec::new();
    for query_id in query_ids {
        hits.clear();
        for part in parts.iter_mut() {
            while let Some(row) = part.next_if(|r| !matches!(r, Ok(r) if r.query_id != *query_id)) {
                hits.push(row?);
            }
        }
        // A stable sort keeps document order among equal scores.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        for (rank, mut row) in hits.drain(..).take(k).enumerate() {
            row.rank = rank as u32 + 1;
            sink.push(row)?;
        }
    }
    for (part, file) in parts.iter_mut().zip(files) {
        if let Some(row) = part.next() {
            return Err(Error::file(
                file,
                format!(
                    "part rows are not in the order of the queries (at query {:?})",
                    row?.query_id
                ),
            ));
        }
    }
    sink.finish()
}

/// Calls `f` with the rows `range` of `path`, in record batches of at most `batch` rows
/// (the first starting at `range.start`); pages before the range are skipped, not decoded.
pub fn for_each_batch_in<R: Row>(
    path: &Path,
    range: Range<u64>,
    batch: usize,
    mut f: impl FnMut(Vec<R>) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(path))?;
    let reader = builder
        .with_batch_size(batch.max(1))
        .with_offset(range.start as usize)
        .with_limit((range.end - range.start) as usize)
        .build()
        .map_err(pq(path))?;
    read_batches(path, reader, &mut f)
}

/// The rows of a Parquet file as an iterator (one record batch in memory at a time), for
/// merges that walk several files side by side.
pub struct RowIter<R: Row> {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    rows: std::vec::IntoIter<R>,
}

impl<R: Row> RowIter<R> {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(pq(path))?
            .build()
            .map_err(pq(path))?;
        Ok(RowIter {
            path: path.to_path_buf(),
            reader,
            rows: Vec::new().into_iter(),
        })
    }
}

impl<R: Row> Iterator for RowIter<R> {
    type Item = Result<R>;
    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(r) = self.rows.next() {
                return Some(Ok(r));
            }
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => return Some(Err(e.into())),
            };
            let mut rows = Vec::with_capacity(batch.num_rows());
            if let Err(e) = R::from_batch(&batch, &mut rows) {
                return Some(Err(Error::file(&self.path, e.to_string())));
            }
            self.rows = rows.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{hash_file, read_rows, write_rows};
    use crate::progress::Silent;
    use crate::records::Qrel;

    fn qrel(i: usize) -> Qrel {
        Qrel {
            query_id: format!("q{}", i % 13),
            doc_id: format!("d{i}"),
            relevance: (i % 3) as i32,
        }
    }

    #[test]
    fn parts_cut_at_fixed_units_and_concatenate_to_the_unsplit_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let n = 20_000u64;
        let input = dir.path().join("in.parquet");
        write_rows(&input, (0..n as usize).map(qrel)).unwrap();
        let whole = dir.path().join("whole.parquet");
        write_rows(&whole, read_rows::<Qrel>(&input).unwrap()).unwrap();

        let parts = Parts::open(dir.path(), "out", "rows", 6_000, n).unwrap();
        assert_eq!(parts.count(), 4);
        assert_eq!(parts.range(3), 18_000..20_000);
        let mut seen = Vec::new();
        let done = parts
            .compute(&Silent, "copy", |range, file| {
                seen.push(range.clone());
                let mut rows = Vec::new();
                for_each_batch_in::<Qrel>(&input, range, 1000, |mut b| {
                    rows.append(&mut b);
                    Ok(())
                })?;
                write_rows(file, rows).map(|_| ())
            })
            .unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[1], 6_000..12_000);
        let merged = dir.path().join("merged.parquet");
        assert_eq!(concat_rows::<Qrel>(&done.files, &merged).unwrap(), n);
        assert_eq!(hash_file(&merged).unwrap(), hash_file(&whole).unwrap());

        // A second pass finds every part on disk; another size starts over.
        let again = Parts::open(dir.path(), "out", "rows", 6_000, n).unwrap();
        let done = again
            .compute(&Silent, "copy", |_, _| panic!("recomputed"))
            .unwrap();
        assert_eq!(done.cached, 4);
        let other = Parts::open(dir.path(), "out", "rows", 7_000, n).unwrap();
        assert!(
            !other.file(0).exists(),
            "parts of another size are discarded"
        );
        assert!(Parts::open(dir.path(), "out", "rows", 0, n).is_err());
    }

    #[test]
    fn row_iter_yields_every_row_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.parquet");
        write_rows(&path, (0..9000).map(qrel)).unwrap();
        let rows: Vec<Qrel> = RowIter::open(&path).unwrap().map(Result::unwrap).collect();
        assert_eq!(rows, read_rows::<Qrel>(&path).unwrap());
    }
}
