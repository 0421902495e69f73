//! Parquet reading and writing of artifacts, and content hashing.
//!
//! Files are zstd-compressed Parquet with the kind's schema. A [`ParquetSink`] writes to
//! `<path>.tmp` and renames into place on [`ParquetSink::finish`], so a reader never sees a
//! half-written file. Reading checks the kind and schema version stored in the file.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::schema::{KIND_KEY, VERSION_KEY};
use crate::table::Row;
use crate::{Error, Result};

/// Rows buffered before a record batch is written.
const BATCH_ROWS: usize = 8192;

fn pq_err(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// Streams rows of one kind into a Parquet file, one record batch at a time.
pub struct ParquetSink<R: Row> {
    writer: ArrowWriter<File>,
    buffer: Vec<R>,
    rows: u64,
    tmp: PathBuf,
    path: PathBuf,
}

impl<R: Row> ParquetSink<R> {
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = path.with_extension("parquet.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let writer =
            ArrowWriter::try_new(file, R::KIND.schema(), Some(props)).map_err(pq_err(&tmp))?;
        Ok(Self {
            writer,
            buffer: Vec::with_capacity(BATCH_ROWS),
            rows: 0,
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn push(&mut self, row: R) -> Result<()> {
        self.buffer.push(row);
        if self.buffer.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = R::to_batch(&self.buffer)?;
        self.writer.write(&batch).map_err(pq_err(&self.tmp))?;
        self.rows += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the footer, syncs, and renames the file into place. Returns the row count.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        let file = self.writer.into_inner().map_err(pq_err(&self.tmp))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// Writes all `rows` to `path` (temp file, then rename). Returns the row count.
pub fn write_rows<R: Row>(path: &Path, rows: impl IntoIterator<Item = R>) -> Result<u64> {
    let mut sink = ParquetSink::<R>::create(path)?;
    for row in rows {
        sink.push(row)?;
    }
    sink.finish()
}

/// Calls `f` with the rows of `path`, one record batch at a time, so memory stays bounded.
pub fn for_each_batch<R: Row>(path: &Path, mut f: impl FnMut(Vec<R>) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
    check_kind::<R>(path, builder.schema().metadata())?;
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(pq_err(path))?;
    read_batches(path, reader, &mut f)
}

/// Calls `f` with the rows of each record batch `reader` yields (`path` names errors).
pub(crate) fn read_batches<R: Row>(
    path: &Path,
    reader: ParquetRecordBatchReader,
    f: &mut impl FnMut(Vec<R>) -> Result<()>,
) -> Result<()> {
    for batch in reader {
        let batch = batch?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        R::from_batch(&batch, &mut rows).map_err(|e| Error::file(path, e.to_string()))?;
        f(rows)?;
    }
    Ok(())
}

/// Reads every row of `path`.
pub fn read_rows<R: Row>(path: &Path) -> Result<Vec<R>> {
    let mut all = Vec::new();
    for_each_batch::<R>(path, |mut rows| {
        all.append(&mut rows);
        Ok(())
    })?;
    Ok(all)
}

fn check_kind<R: Row>(path: &Path, metadata: &arrow::datatypes::Metadata) -> Result<()> {
    let kind = metadata.get(KIND_KEY).map(String::as_str);
    let version = metadata.get(VERSION_KEY).map(String::as_str);
    let want_version = R::KIND.version().to_string();
    if kind != Some(R::KIND.name()) || version != Some(want_version.as_str()) {
        return Err(Error::file(
            path,
            format!(
                "expected a {} artifact of schema version {}, found kind {} version {}",
                R::KIND,
                want_version,
                kind.unwrap_or("<none>"),
                version.unwrap_or("<none>")
            ),
        ));
    }
    Ok(())
}

/// The number of rows recorded in a Parquet file's footer.
pub fn parquet_rows(path: &Path) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
    Ok(builder.metadata().file_metadata().num_rows() as u64)
}

/// The blake3 hash of an artifact: of a file's bytes, or for a directory of its sorted
/// relative file names and their hashes. 64 hex digits.
pub fn hash_path(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return hash_file(path);
    }
    Ok(fold_dir(path, hash_file)?.to_hex().to_string())
}

/// A cheap fingerprint of an artifact's files that reads no content: `size:mtime_ns` of a
/// file, or for a directory a blake3 hash of its sorted relative file names with each
/// file's size and modification time. A changed fingerprint means the artifact must be
/// re-hashed; an equal one is taken as unchanged (as make and rsync do).
pub fn stamp_path(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return stamp_file(path);
    }
    Ok(format!("dir:{}", fold_dir(path, stamp_file)?.to_hex()))
}

/// A blake3 hash over a directory's sorted relative file names, each followed by what
/// `per_file` says of that file (its hash, or its stamp).
fn fold_dir(dir: &Path, per_file: fn(&Path) -> Result<String>) -> Result<blake3::Hash> {
    let mut files = Vec::new();
    list_files(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for rel in &files {
        hasher.update(rel.as_bytes());
        hasher.update(&[0]);
        hasher.update(per_file(&dir.join(rel))?.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hasher.finalize())
}

fn stamp_file(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = meta.modified().map_err(|e| Error::io(path, e))?;
    let ns = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{}:{ns}", meta.len()))
}

/// Rows of an artifact: the Parquet row count, or the number of files of a directory.
pub fn artifact_rows(path: &Path) -> Result<u64> {
    if path.is_dir() {
        let mut files = Vec::new();
        list_files(path, path, &mut files)?;
        return Ok(files.len() as u64);
    }
    parquet_rows(path)
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The blake3 hash of a file's bytes, as 64 hex digits.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap_rayon(path)
        .map_err(|e| Error::io(path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Doc, Qrel, Query};

    #[test]
    fn rows_round_trip_and_kind_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.parquet");
        let queries = vec![
            Query {
                id: "1".into(),
                text: "who? ünïcode".into(),
                answers: Some(vec!["a".into(), "b c".into()]),
            },
            Query {
                id: "2".into(),
                text: "what".into(),
                answers: None,
            },
        ];
        assert_eq!(write_rows(&path, queries.clone()).unwrap(), 2);
        assert!(!path.with_extension("parquet.tmp").exists());
        assert_eq!(read_rows::<Query>(&path).unwrap(), queries);
        let err = read_rows::<Doc>(&path).unwrap_err().to_string();
        assert!(err.contains("expected a corpus artifact"), "{err}");
        assert!(err.contains("found kind queries"), "{err}");
    }

    #[test]
    fn directory_hash_covers_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(model.join("1_Pooling")).unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        std::fs::write(model.join("1_Pooling/config.json"), "{\"a\":1}").unwrap();
        let first = hash_path(&model).unwrap();
        assert_eq!(artifact_rows(&model).unwrap(), 2);
        assert_eq!(first, hash_path(&model).unwrap());
        std::fs::write(model.join("1_Pooling/config.json"), "{\"a\":2}").unwrap();
        assert_ne!(first, hash_path(&model).unwrap());
        std::fs::rename(model.join("config.json"), model.join("other.json")).unwrap();
        std::fs::write(model.join("1_Pooling/config.json"), "{\"a\":1}").unwrap();
        assert_ne!(first, hash_path(&model).unwrap());
    }

    #[test]
    fn stamp_changes_with_size_or_mtime_and_reads_no_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.parquet");
        std::fs::write(&file, b"abcd").unwrap();
        let first = stamp_path(&file).unwrap();
        assert!(first.starts_with("4:"), "{first}");
        assert_eq!(first, stamp_path(&file).unwrap());
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        f.set_modified(later).unwrap();
        assert_ne!(first, stamp_path(&file).unwrap(), "mtime is part of it");
        let folder = dir.path().join("model");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("sub/x"), b"1").unwrap();
        let stamp = stamp_path(&folder).unwrap();
        std::fs::write(folder.join("sub/x"), b"12").unwrap();
        assert_ne!(
            stamp,
            stamp_path(&folder).unwrap(),
            "a file's size is part of it"
        );
        assert!(stamp_path(&dir.path().join("gone")).is_err());
    }

    #[test]
    fn large_files_stream_in_batches_and_hash_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qrels.parquet");
        let n = BATCH_ROWS * 2 + 5;
        let rows = (0..n).map(|i| Qrel {
            query_id: format!("q{}", i % 7),
            doc_id: format!("d{i}"),
            relevance: (i % 4) as i32,
        });
        write_rows(&path, rows).unwrap();
        let mut batches = 0;
        let mut total = 0;
        for_each_batch::<Qrel>(&path, |r| {
            batches += 1;
            total += r.len();
            Ok(())
        })
        .unwrap();
        assert_eq!((batches, total), (3, n));
        let first = hash_file(&path).unwrap();
        let again = dir.path().join("again.parquet");
        write_rows(
            &again,
            (0..n).map(|i| Qrel {
                query_id: format!("q{}", i % 7),
                doc_id: format!("d{i}"),
                relevance: (i % 4) as i32,
            }),
        )
        .unwrap();
        assert_eq!(first, hash_file(&again).unwrap(), "same rows, same bytes");
        assert_eq!(first.len(), 64);
    }
}
