//! Embeddings artifacts: `id` and an f32 `vector` per row, every vector of a file `rrra.dim`
//! wide. Written in record batches and read back block by block, so neither side holds
//! more than one block of vectors.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float32Array, ListArray, RecordBatch, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Float32Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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

/// Calls `f(ids, vectors)` per block of rows (`vectors` row-major, `ids.len() × dim`);
/// returns the width.
pub fn for_each_block(
    path: &Path,
    mut f: impl FnMut(&[String], &[f32]) -> Result<()>,
) -> Result<usize> {
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
    let reader = builder.with_batch_size(BLOCK).build().map_err(pq(path))?;
    for batch in reader {
        let batch = batch?;
        let bad = |what: &str| Error::file(path, format!("embeddings: {what}"));
        let ids = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("id is not utf8"))?;
        let lists = batch
            .column(1)
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
        let values = &values.values()[start..start + lists.len() * dim];
        let ids: Vec<String> = (0..ids.len()).map(|i| ids.value(i).to_string()).collect();
        f(&ids, values)?;
    }
    Ok(dim)
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
}
