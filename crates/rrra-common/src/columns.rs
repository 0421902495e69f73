//! Columnar reading of the pair artifacts (`candidates`, `run`, `scored`) for stages that
//! touch hundreds of millions of rows. Ids are interned once into dictionaries
//! ([`Interner`]); a row is then integers and numbers ([`PairColumns`], 21 bytes) instead
//! of two `String`s, or it is not kept at all: [`for_each_pair_batch`] hands out one Arrow
//! record batch at a time, borrowed. [`VectorTable`] reads from an embeddings file the
//! vectors of the interned ids only, one copy, in dictionary order.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{Float64Type, UInt32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::embeddings;
use crate::schema::{ArtifactKind, KIND_KEY, VERSION_KEY};
use crate::{Error, Result};

/// Rows per record batch handed out by [`for_each_pair_batch`].
const BATCH_ROWS: usize = 8192;

/// A dictionary of ids: each distinct id gets the next `u32`, in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of `id`, given it if it is new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).expect("fewer than 2^32 distinct ids");
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), i);
        i
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The id numbered `i`.
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One record batch of a pair artifact, borrowed from Arrow.
pub struct PairBatch<'a> {
    pub query_id: &'a StringArray,
    pub doc_id: &'a StringArray,
    pub rank: &'a [u32],
    pub score: &'a [f64],
    /// Judged positives (`candidates`, `scored`); `None` for a run.
    positive: Option<&'a BooleanArray>,
    /// `qa_score`, `s_fn`, `p_rel` of a `scored` artifact.
    pub adapter: Option<[&'a [f64]; 3]>,
}

impl PairBatch<'_> {
    pub fn len(&self) -> usize {
        self.rank.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rank.is_empty()
    }

    /// Whether row `i` is a judged positive (never, in a run).
    pub fn positive(&self, i: usize) -> bool {
        self.positive.is_some_and(|p| p.value(i))
    }
}

/// Calls `f` with each record batch of the pair artifact `path` of `kind` (`candidates`,
/// `run` or `scored`), in file order. Fails on another kind, a file of another kind or
/// schema version, or null values.
pub fn for_each_pair_batch(
    path: &Path,
    kind: ArtifactKind,
    mut f: impl FnMut(&PairBatch<'_>) -> Result<()>,
) -> Result<()> {
    if !matches!(
        kind,
        ArtifactKind::Candidates | ArtifactKind::Run | ArtifactKind::Scored
    ) {
        return Err(Error::Invalid(format!(
            "{kind} is not a pair artifact (candidates, run, scored)"
        )));
    }
    let pq = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let meta = builder.schema().metadata();
    let (found, version) = (meta.get(KIND_KEY), meta.get(VERSION_KEY));
    if found.map(String::as_str) != Some(kind.name())
        || version != Some(&kind.version().to_string())
    {
        return Err(Error::file(
            path,
            format!(
                "expected a {kind} artifact of schema version {}, found kind {} version {}",
                kind.version(),
                found.map_or("<none>", String::as_str),
                version.map_or("<none>", String::as_str)
            ),
        ));
    }
    let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(pq)?;
    for batch in reader {
        let b = batch?;
        let bad = |what: String| Error::file(path, what);
        let column = |name: &str| {
            let c = b
                .column_by_name(name)
                .ok_or_else(|| bad(format!("column {name:?} is missing")))?;
            if c.null_count() > 0 {
                return Err(bad(format!("column {name:?} has null values")));
            }
            Ok(c)
        };
        let strings = |name: &str| {
            column(name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| bad(format!("column {name:?} is not utf8")))
        };
        let f64s = |name: &str| {
            column(name)?
                .as_primitive_opt::<Float64Type>()
                .map(|a| &a.values()[..])
                .ok_or_else(|| bad(format!("column {name:?} is not float64")))
        };
        let positive = match kind {
            ArtifactKind::Run => None,
            _ => Some(
                column("positive")?
                    .as_boolean_opt()
                    .ok_or_else(|| bad("column \"positive\" is not boolean".into()))?,
            ),
        };
        let adapter = match kind {
            ArtifactKind::Scored => Some([f64s("qa_score")?, f64s("s_fn")?, f64s("p_rel")?]),
            _ => None,
        };
        f(&PairBatch {
            query_id: strings("query_id")?,
            doc_id: strings("doc_id")?,
            rank: column("rank")?
                .as_primitive_opt::<UInt32Type>()
                .map(|a| &a.values()[..])
                .ok_or_else(|| bad("column \"rank\" is not uint32".into()))?,
            score: f64s("score")?,
            positive,
            adapter,
        })?;
    }
    Ok(())
}

/// The rows of a pair artifact as columns; ids are numbers of two [`Interner`]s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairColumns {
    pub query: Vec<u32>,
    pub doc: Vec<u32>,
    pub rank: Vec<u32>,
    pub score: Vec<f64>,
    pub positive: Vec<bool>,
}

impl PairColumns {
    /// Reads every row of the pair artifact `path` of `kind`, interning its query ids into
    /// `queries` and its document ids into `docs`.
    pub fn read(
        path: &Path,
        kind: ArtifactKind,
        queries: &mut Interner,
        docs: &mut Interner,
    ) -> Result<Self> {
        let mut out = PairColumns::default();
        for_each_pair_batch(path, kind, |b| {
            for i in 0..b.len() {
                out.query.push(queries.intern(b.query_id.value(i)));
                out.doc.push(docs.intern(b.doc_id.value(i)));
                out.positive.push(b.positive(i));
            }
            out.rank.extend_from_slice(b.rank);
            out.score.extend_from_slice(b.score);
            Ok(())
        })?;
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.query.len()
    }

    pub fn is_empty(&self) -> bool {
        self.query.is_empty()
    }

    /// Row indices grouped by query, queries in order of first appearance (their interned
    /// numbers, when `queries` was empty before [`PairColumns::read`]), rows of a query in
    /// file order.
    pub fn groups(&self, num_queries: usize) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); num_queries];
        for (row, &q) in self.query.iter().enumerate() {
            groups[q as usize].push(row);
        }
        groups
    }
}

/// The vectors of an [`Interner`]'s ids, read from an embeddings file: row `i` is id `i`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorTable {
    pub dim: usize,
    pub values: Vec<f32>,
}

impl VectorTable {
    /// Reads the vector of every id of `ids` from the embeddings file `path` (ids it has
    /// that `ids` lacks are skipped). `what` names the ids in errors ("query",
    /// "document"). Fails when an id has no vector or two.
    pub fn read(path: &Path, ids: &Interner, what: &str) -> Result<Self> {
        let mut values: Vec<f32> = Vec::new();
        let mut seen = vec![false; ids.len()];
        let dim = embeddings::for_each_block(path, |block_ids, block| {
            let dim = block.len() / block_ids.len().max(1);
            if values.is_empty() && !ids.is_empty() {
                values = vec![0.0; ids.len() * dim];
            }
            for (j, id) in block_ids.iter().enumerate() {
                let Some(i) = ids.get(id) else { continue };
                let i = i as usize;
                if std::mem::replace(&mut seen[i], true) {
                    return Err(Error::file(path, format!("{what} {id:?} has two vectors")));
                }
                values[i * dim..(i + 1) * dim].copy_from_slice(&block[j * dim..(j + 1) * dim]);
            }
            Ok(())
        })?;
        if let Some(i) = seen.iter().position(|&s| !s) {
            return Err(Error::file(
                path,
                format!(
                    "no vector for {what} {:?}; expected every {what} of the pairs to be embedded",
                    ids.id(i as u32)
                ),
            ));
        }
        values.resize(ids.len() * dim, 0.0);
        Ok(VectorTable { dim, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::write_rows;
    use crate::embeddings::EmbeddingSink;
    use crate::records::{Candidate, RunRow};

    fn cand(q: &str, d: &str, rank: u32, positive: bool) -> Candidate {
        Candidate {
            query_id: q.into(),
            doc_id: d.into(),
            rank,
            score: f64::from(rank) / 10.0,
            positive,
        }
    }

    #[test]
    fn candidates_read_as_interned_columns_grouped_by_query() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let rows = vec![
            cand("q2", "a", 1, false),
            cand("q1", "b", 2, true),
            cand("q2", "b", 0, true),
            cand("q1", "c", 3, false),
        ];
        write_rows(&path, rows).unwrap();
        let (mut q, mut d) = (Interner::new(), Interner::new());
        let c = PairColumns::read(&path, ArtifactKind::Candidates, &mut q, &mut d).unwrap();
        assert_eq!((q.id(0), q.id(1), q.len()), ("q2", "q1", 2));
        assert_eq!(
            (d.get("a"), d.get("b"), d.get("c")),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(c.query, [0, 1, 0, 1]);
        assert_eq!(c.doc, [0, 1, 1, 2]);
        assert_eq!(c.rank, [1, 2, 0, 3]);
        assert_eq!(c.score, [0.1, 0.2, 0.0, 0.3]);
        assert_eq!(c.positive, [false, true, true, false]);
        assert_eq!(c.groups(q.len()), [vec![0, 2], vec![1, 3]]);
        // The wrong kind is refused, naming the file.
        let err = PairColumns::read(&path, ArtifactKind::Run, &mut q, &mut d).unwrap_err();
        assert!(err.to_string().contains("expected a run artifact"), "{err}");
        assert!(err.to_string().contains("c.parquet"), "{err}");
    }

    #[test]
    fn a_run_has_no_positives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let run = RunRow {
            query_id: "q".into(),
            doc_id: "d".into(),
            rank: 1,
            score: 2.0,
        };
        write_rows(&path, [run]).unwrap();
        let (mut q, mut d) = (Interner::new(), Interner::new());
        let c = PairColumns::read(&path, ArtifactKind::Run, &mut q, &mut d).unwrap();
        assert_eq!((c.positive, c.score), (vec![false], vec![2.0]));
    }

    #[test]
    fn vectors_of_interned_ids_in_dictionary_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let mut sink = EmbeddingSink::create(&path, 2).unwrap();
        for (id, v) in [("x", [1.0, 2.0]), ("y", [3.0, 4.0]), ("z", [5.0, 6.0])] {
            sink.push(id, &v).unwrap();
        }
        sink.finish().unwrap();
        let mut ids = Interner::new();
        ids.intern("z");
        ids.intern("x");
        let t = VectorTable::read(&path, &ids, "document").unwrap();
        assert_eq!((t.dim, t.values), (2, vec![5.0, 6.0, 1.0, 2.0]));
        ids.intern("w");
        let err = VectorTable::read(&path, &ids, "document").unwrap_err();
        assert!(
            err.to_string().contains("no vector for document \"w\""),
            "{err}"
        );
    }
}
