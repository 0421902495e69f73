//! Columnar reading of the pair artifacts (`candidates`, `run`, `scored`) for stages that
//! touch hundreds of millions of rows. Ids are interned once into dictionaries
//! ([`Interner`]), or rows are not kept at all: [`for_each_pair_batch`] hands out one Arrow
//! record batch at a time, borrowed, and [`for_each_query_group`] one query's rows at a
//! time (keeping a 128-bit hash of each query id done, 16 B a query, to refuse a query
//! whose rows resume later). Vectors are read through [`crate::vectors`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{Float64Type, UInt32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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

/// One row of a query's group (see [`for_each_query_group`]), owned.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// 1-based row number in the file, for error messages.
    pub record: usize,
    pub doc_id: String,
    pub rank: u32,
    pub score: f64,
    pub positive: bool,
    /// `qa_score`, `s_fn`, `p_rel` of a `scored` artifact (zeros otherwise).
    pub adapter: [f64; 3],
}

/// Calls `f(query_id, rows)` once per query of the pair artifact `path` of `kind`, queries
/// and rows in file order, holding one query's rows at a time (plus the ids of the queries
/// done). Fails, naming the record, when a query's rows are not contiguous (every pair
/// artifact the stages write groups its rows by query). Returns the number of queries.
pub fn for_each_query_group(
    path: &Path,
    kind: ArtifactKind,
    mut f: impl FnMut(&str, &[GroupRow]) -> Result<()>,
) -> Result<usize> {
    // blake3 of each finished query id, truncated to 128 bits (a collision is ~2^-64 at
    // 10^10 queries): O(queries) at 16 B each rather than the ids themselves.
    let key = |q: &str| -> u128 {
        let h = blake3::hash(q.as_bytes());
        u128::from_le_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
    };
    let mut done: HashSet<u128> = HashSet::new();
    let mut current: Option<String> = None;
    let mut rows: Vec<GroupRow> = Vec::new();
    let mut record = 0usize;
    for_each_pair_batch(path, kind, |b| {
        for i in 0..b.len() {
            record += 1;
            let query_id = b.query_id.value(i);
            if current.as_deref() != Some(query_id) {
                if let Some(q) = current.take() {
                    f(&q, &rows)?;
                    rows.clear();
                    done.insert(key(&q));
                }
                if done.contains(&key(query_id)) {
                    return Err(Error::file(
                        path,
                        format!(
                            "record {record}: rows of query {query_id:?} resume after other queries' rows; \
                             expected each query's rows contiguous"
                        ),
                    ));
                }
                current = Some(query_id.to_string());
            }
            rows.push(GroupRow {
                record,
                doc_id: b.doc_id.value(i).to_string(),
                rank: b.rank[i],
                score: b.score[i],
                positive: b.positive(i),
                adapter: b.adapter.map_or([0.0; 3], |a| [a[0][i], a[1][i], a[2][i]]),
            });
        }
        Ok(())
    })?;
    if let Some(q) = current.take() {
        f(&q, &rows)?;
        done.insert(key(&q));
    }
    Ok(done.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::write_rows;
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
    fn query_groups_are_handed_out_whole_and_a_resumed_query_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        // More rows than a record batch, so a group spans two batches.
        let mut rows: Vec<Candidate> = (0..BATCH_ROWS as u32 + 5)
            .map(|r| cand("q1", &format!("d{r}"), r, r == 3))
            .collect();
        rows.push(cand("q2", "x", 1, false));
        write_rows(&path, rows.clone()).unwrap();
        let mut seen = Vec::new();
        let n = for_each_query_group(&path, ArtifactKind::Candidates, |q, g| {
            seen.push((
                q.to_string(),
                g.len(),
                g.iter().filter(|r| r.positive).count(),
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            seen,
            [("q1".into(), BATCH_ROWS + 5, 1), ("q2".into(), 1, 0)]
        );
        rows.push(cand("q1", "late", 9, false));
        write_rows(&path, rows).unwrap();
        let err = for_each_query_group(&path, ArtifactKind::Candidates, |_, _| Ok(())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("record {}", BATCH_ROWS + 7)), "{msg}");
        assert!(
            msg.contains("query \"q1\"") && msg.contains("c.parquet"),
            "{msg}"
        );
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
        let mut rows = Vec::new();
        for_each_query_group(&path, ArtifactKind::Run, |_, g| {
            rows.extend_from_slice(g);
            Ok(())
        })
        .unwrap();
        assert_eq!((rows[0].positive, rows[0].score), (false, 2.0));
        // The wrong kind is refused, naming the file.
        let err = for_each_query_group(&path, ArtifactKind::Candidates, |_, _| Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("expected a candidates artifact"),
            "{err}"
        );
        assert!(err.to_string().contains("r.parquet"), "{err}");
    }
}
