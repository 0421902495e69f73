//! Embeddings artifacts: `id` and an f32 `vector` per row, every vector of a file `rrra.dim`
//! wide. Written in record batches and read back block by block, so neither side holds
//! more than one block of vectors. A search that knows documents by row number reads the
//! vector column alone, then the ids of its hits in a pass over the id column alone
//! ([`RowIds`], [`rows_of`]), so no reader holds every id.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float32Array, ListArray, RecordBatch, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Float32Type, Schema};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::schema::{ArtifactKind, DIM_KEY, KIND_KEY, VERSION_KEY};
use crate::{Error, Result};

/// Vectors per record batch.
const BLOCK: usize = 4096;

fn pq(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// Streams `(id, vector)` rows into an embeddings file (temp file, then rename).
pub struct EmbeddingSink {
    writer: ArrowWriter<File>,
    schema: Arc<Schema>,
    dim: usize,
    ids: Vec<String>,
    values: Vec<f32>,
    rows: u64,
    tmp: PathBuf,
    path: PathBuf,
}

impl EmbeddingSink {
    pub fn create(path: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Invalid(
                "embeddings need a width of at least 1".into(),
            ));
        }
        let base = ArtifactKind::Embeddings.schema();
        let metadata = base.metadata().clone().with(DIM_KEY, dim.to_string());
        let schema = Arc::new(Schema::new_with_metadata(base.fields().clone(), metadata));
        let tmp = path.with_extension("parquet.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(pq(&tmp))?;
        Ok(EmbeddingSink {
            writer,
            schema,
            dim,
            ids: Vec::with_capacity(BLOCK),
            values: Vec::with_capacity(BLOCK * dim),
            rows: 0,
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn push(&mut self, id: &str, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::Invalid(format!(
                "vector of {id:?} has {} values, expected {}",
                vector.len(),
                self.dim
            )));
        }
        self.ids.push(id.to_string());
        self.values.extend_from_slice(vector);
        if self.ids.len() >= BLOCK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let n = self.ids.len();
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(self.dim, n));
        let field = match self.schema.field(1).data_type() {
            DataType::List(f) => f.clone(),
            _ => unreachable!("vector is a list"),
        };
        let values = Float32Array::from(std::mem::take(&mut self.values));
        let vectors = ListArray::try_new(field, offsets, Arc::new(values), None)?;
        let ids: StringArray = self.ids.drain(..).map(Some).collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), vec![Arc::new(ids), Arc::new(vectors)])?;
        self.writer.write(&batch).map_err(pq(&self.tmp))?;
        self.rows += n as u64;
        self.values = Vec::with_capacity(BLOCK * self.dim);
        Ok(())
    }

    /// Writes the footer, syncs and renames into place; returns the row count.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        let file = self.writer.into_inner().map_err(pq(&self.tmp))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// Which columns of an embeddings file a reader decodes.
#[derive(Clone, Copy, PartialEq)]
enum Columns {
    Both,
    Ids,
    Vectors,
}

/// Opens embeddings file `path` (checking its kind, version and width) for reading
/// `columns` in blocks of [`BLOCK`] rows; returns the reader and the width.
fn open(path: &Path, columns: Columns) -> Result<(ParquetRecordBatchReader, usize)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(path))?;
    let meta = builder.schema().metadata();
    let kind = ArtifactKind::Embeddings;
    if meta.get(KIND_KEY).map(String::as_str) != Some(kind.name())
        || meta.get(VERSION_KEY) != Some(&kind.version().to_string())
    {
        return Err(Error::file(
            path,
            format!(
                "expected an embeddings artifact of schema version {}",
                kind.version()
            ),
        ));
    }
    let dim: usize = meta
        .get(DIM_KEY)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| Error::file(path, format!("missing or bad {DIM_KEY} metadata")))?;
    let roots: &[usize] = match columns {
        Columns::Both => &[0, 1],
        Columns::Ids => &[0],
        Columns::Vectors => &[1],
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BLOCK)
        .build()
        .map_err(pq(path))?;
    Ok((reader, dim))
}

/// The id column of a block read with [`Columns::Both`] or [`Columns::Ids`].
fn id_column<'b>(path: &Path, batch: &'b RecordBatch) -> Result<&'b StringArray> {
    batch
        .column(0)
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::file(path, "embeddings: id is not utf8"))
}

/// The vectors (row-major) of a block whose last column is the vector column.
fn vector_column<'b>(path: &Path, batch: &'b RecordBatch, dim: usize) -> Result<&'b [f32]> {
    let bad = |what: &str| Error::file(path, format!("embeddings: {what}"));
    let lists = batch
        .column(batch.num_columns() - 1)
        .as_list_opt::<i32>()
        .ok_or_else(|| bad("vector is not a list"))?;
    if lists
        .value_offsets()
        .windows(2)
        .any(|w| (w[1] - w[0]) as usize != dim)
    {
        return Err(bad(&format!("a vector is not {dim} wide")));
    }
    let start = lists.value_offsets()[0] as usize;
    let values = lists
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| bad("vector values are not f32"))?;
    Ok(&values.values()[start..start + lists.len() * dim])
}

/// Calls `f(ids, vectors)` per block of rows (`vectors` row-major, `ids.len() × dim`);
/// returns the width.
pub fn for_each_block(
    path: &Path,
    mut f: impl FnMut(&[String], &[f32]) -> Result<()>,
) -> Result<usize> {
    let (reader, dim) = open(path, Columns::Both)?;
    for batch in reader {
        let batch = batch?;
        let ids = id_column(path, &batch)?;
        let values = vector_column(path, &batch, dim)?;
        let ids: Vec<String> = (0..ids.len()).map(|i| ids.value(i).to_string()).collect();
        f(&ids, values)?;
    }
    Ok(dim)
}

/// The width of the vectors of embeddings file `path` (its metadata; no rows are read).
pub fn width(path: &Path) -> Result<usize> {
    open(path, Columns::Ids).map(|(_, dim)| dim)
}

/// Calls `f(vectors)` per block of rows (row-major, `dim` wide), reading the vector column
/// only; returns the width.
pub fn for_each_vector_block(
    path: &Path,
    mut f: impl FnMut(&[f32]) -> Result<()>,
) -> Result<usize> {
    let (reader, dim) = open(path, Columns::Vectors)?;
    for batch in reader {
        f(vector_column(path, &batch?, dim)?)?;
    }
    Ok(dim)
}

/// Calls `f(row, id)` for every row of an embeddings file in order, reading the id column
/// only (one block in memory); returns the row count.
fn for_each_id(path: &Path, mut f: impl FnMut(u64, &str) -> Result<()>) -> Result<u64> {
    let (reader, _) = open(path, Columns::Ids)?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch?;
        let ids = id_column(path, &batch)?;
        for i in 0..ids.len() {
            f(row, ids.value(i))?;
            row += 1;
        }
    }
    Ok(row)
}

/// The ids of some rows of an embeddings file (e.g. the hits of a search, which knows its
/// documents by row number): read in one pass over the id column, holding only the ids
/// asked for.
#[derive(Debug)]
pub struct RowIds {
    /// Ascending, distinct.
    rows: Vec<u64>,
    ids: Vec<String>,
}

impl RowIds {
    /// Reads the ids of `rows` (any order, repeats allowed) from `path`; a row beyond the
    /// file is an error.
    pub fn read(path: &Path, rows: impl IntoIterator<Item = u64>) -> Result<Self> {
        let mut rows: Vec<u64> = rows.into_iter().collect();
        rows.sort_unstable();
        rows.dedup();
        let mut ids = Vec::with_capacity(rows.len());
        let total = for_each_id(path, |row, id| {
            if rows.get(ids.len()) == Some(&row) {
                ids.push(id.to_string());
            }
            Ok(())
        })?;
        if let Some(&row) = rows.get(ids.len()) {
            return Err(Error::file(
                path,
                format!("has no row {row} (it has {total} rows)"),
            ));
        }
        Ok(RowIds { rows, ids })
    }

    /// The id of row `row`, if it was read.
    pub fn get(&self, row: u64) -> Option<&str> {
        let at = self.rows.binary_search(&row).ok()?;
        Some(&self.ids[at])
    }
}

/// The row of each of the ids `wanted` that the embeddings file `path` has, in one pass
/// over its id column (holding only `wanted`); an id the file has twice is an error.
pub fn rows_of<'w>(
    path: &Path,
    wanted: impl IntoIterator<Item = &'w str>,
) -> Result<HashMap<&'w str, u64>> {
    let wanted: HashSet<&str> = wanted.into_iter().collect();
    let mut found: HashMap<&str, u64> = HashMap::with_capacity(wanted.len());
    for_each_id(path, |row, id| {
        if let Some(&key) = wanted.get(id)
            && found.insert(key, row).is_some()
        {
            return Err(Error::file(path, format!("duplicate doc id {id:?}")));
        }
        Ok(())
    })?;
    Ok(found)
}

/// Every id and vector of an embeddings file, and the width.
pub fn read_all(path: &Path) -> Result<(Vec<String>, Vec<f32>, usize)> {
    let (mut ids, mut values) = (Vec::new(), Vec::new());
    let dim = for_each_block(path, |i, v| {
        ids.extend_from_slice(i);
        values.extend_from_slice(v);
        Ok(())
    })?;
    Ok((ids, values, dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let dim = 3;
        let n = BLOCK + 7;
        let mut sink = EmbeddingSink::create(&path, dim).unwrap();
        for i in 0..n {
            let v = [i as f32, -(i as f32), 0.5];
            sink.push(&format!("d{i}"), &v).unwrap();
        }
        assert!(sink.push("bad", &[1.0]).is_err());
        assert_eq!(sink.finish().unwrap(), n as u64);
        let (ids, values, d) = read_all(&path).unwrap();
        assert_eq!((ids.len(), values.len(), d), (n, n * dim, dim));
        assert_eq!(ids[BLOCK], format!("d{BLOCK}"));
        assert_eq!(
            &values[BLOCK * dim..BLOCK * dim + 3],
            &[BLOCK as f32, -(BLOCK as f32), 0.5]
        );
        let mut blocks = 0;
        for_each_block(&path, |_, _| {
            blocks += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(blocks, 2);
    }

    /// Rows `ids` of width 2 (row `i`: `[i, 1]`) as `dir/name.parquet`.
    fn write(dir: &Path, name: &str, ids: &[String]) -> PathBuf {
        let path = dir.join(format!("{name}.parquet"));
        let mut sink = EmbeddingSink::create(&path, 2).unwrap();
        for (i, id) in ids.iter().enumerate() {
            sink.push(id, &[i as f32, 1.0]).unwrap();
        }
        sink.finish().unwrap();
        path
    }

    #[test]
    fn vector_blocks_and_row_ids_read_one_column_each() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * BLOCK + 5;
        let ids: Vec<String> = (0..n).map(|i| format!("d{}", (i * 7) % n)).collect();
        let path = write(dir.path(), "e", &ids);
        let (_, all, _) = read_all(&path).unwrap();
        let mut vectors = Vec::new();
        let dim = for_each_vector_block(&path, |v| {
            vectors.extend_from_slice(v);
            Ok(())
        })
        .unwrap();
        assert_eq!((dim, vectors), (2, all));
        assert_eq!(width(&path).unwrap(), 2);

        let rows = [BLOCK as u64 + 3, 0, n as u64 - 1, 0, 17];
        let found = RowIds::read(&path, rows).unwrap();
        for row in rows {
            assert_eq!(found.get(row), Some(ids[row as usize].as_str()));
        }
        assert_eq!(found.get(1), None);
        assert_eq!(found.rows.len(), 4);
        let err = RowIds::read(&path, [3, n as u64]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("has no row {n} (it has {n} rows)")),
            "{err}"
        );
        assert!(RowIds::read(&path, []).unwrap().get(0).is_none());
    }

    #[test]
    fn rows_of_finds_the_wanted_ids_and_refuses_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let n = BLOCK + 9;
        let ids: Vec<String> = (0..n).map(|i| format!("d{}", n - i)).collect();
        let path = write(dir.path(), "e", &ids);
        let want = [ids[BLOCK + 2].as_str(), "nope", ids[1].as_str()];
        let found = rows_of(&path, want).unwrap();
        assert_eq!(
            found,
            HashMap::from([(want[0], BLOCK as u64 + 2), (want[2], 1)])
        );
        let mut dup = ids.clone();
        dup[BLOCK + 1] = "d5".into();
        let path = write(dir.path(), "dup", &dup);
        // Only a duplicate among the wanted ids is seen.
        assert!(rows_of(&path, ["d7"]).is_ok());
        let err = rows_of(&path, ["d5"]).unwrap_err().to_string();
        assert!(
            err.ends_with("dup.parquet: duplicate doc id \"d5\""),
            "{err}"
        );
    }
}
