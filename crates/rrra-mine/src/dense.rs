//! `mine.dense`: pools from the exact inner-product ranking of query against corpus
//! embeddings (the blocked kernel of `rrra-retrieve`; the query × corpus score matrix never
//! exists). Documents are known by corpus row number, so equal scores rank in corpus order,
//! as in `retrieve.dense`. The corpus is read three times, a column at a time: the id
//! column for the rows of the doc ids the qrels judge, the vector column for the search,
//! and the id column again for the ids of the documents written. Memory: the query vectors
//! (twice), the judged doc ids, and `k + P` hits per mined query with their ids; nothing
//! per corpus document.
//!
//! A positive's score is the kernel's (f32 SGEMM) when it is within depth `k + P`, so it
//! agrees with the negatives' scores and ranks; otherwise it is `q · d` summed in f64 from
//! the embeddings.

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use rrra_common::artifact::parquet_rows;
use rrra_common::embeddings::{RowIds, for_each_vector_block, read_all, rows_of, width};
use rrra_common::parts::{Parts, concat_rows};
use rrra_common::records::Candidate;
use rrra_common::schema::ArtifactKind::{Candidates, Embeddings, Qrels};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use rrra_retrieve::TopK;
use serde::{Deserialize, Serialize};

use crate::pool::{Plan, PoolWriter, judged_docs, read_positives};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MineDenseParams {
    /// Negatives written per query.
    pub k: usize,
    /// The least relevance grade that makes a judgement a positive.
    pub relevance_threshold: i32,
    /// Cut the output into parts of this many queries (rows of the queries input), each
    /// written to the entry's work folder as it finishes (a killed run resumes at the first
    /// unfinished part) and concatenated. Unset: no split. Not in the cache key: the
    /// candidates do not depend on it.
    #[serde(skip_serializing)]
    pub part_queries: Option<u64>,
}

impl Default for MineDenseParams {
    fn default() -> Self {
        MineDenseParams {
            k: 200,
            relevance_threshold: 1,
            part_queries: None,
        }
    }
}

/// `mine.dense`: per query with a positive, the top-`k` non-positive documents by exact
/// inner product, and its positives (see the crate docs for the rows).
pub struct MineDense;

impl Stage for MineDense {
    type Params = MineDenseParams;
    const KIND: &'static str = "mine.dense";
    /// 2: equal scores rank in corpus order (was: by doc id, which needed every corpus id
    /// in memory), and a group of one query is scored as in a larger tile (was: SGEMM's
    /// matrix-vector path, whose last bits differed, so a query-split run could differ).
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "hard negatives: exact inner-product top-k non-positives per query";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("queries", Embeddings),
                Port::required("corpus", Embeddings),
                Port::required("qrels", Qrels),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("candidates", Candidates)] }
    }
    fn check(p: &MineDenseParams) -> Result<(), String> {
        if p.k == 0 {
            return Err("param k must be at least 1".into());
        }
        if p.part_queries == Some(0) {
            return Err("param part_queries must be at least 1".into());
        }
        Ok(())
    }

    fn run(p: &MineDenseParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let corpus = ctx.input("corpus")?;
        let total = parquet_rows(corpus)?;
        if u32::try_from(total).is_err() {
            return Err(Error::file(
                corpus,
                format!("{total} documents, at most {} can be mined", u32::MAX),
            ));
        }
        let queries_file = ctx.input("queries")?;
        let (query_ids, queries, dim) = read_all(queries_file)?;
        let corpus_dim = width(corpus)?;
        if dim != corpus_dim {
            return Err(Error::Invalid(format!(
                "query vectors are {dim} wide, corpus vectors {corpus_dim}"
            )));
        }
        let qrels = ctx.input("qrels")?;
        let judged = judged_docs(qrels)?;
        let rows = rows_of(corpus, judged.iter().map(String::as_str))?;
        let positives = read_positives(qrels, p.relevance_threshold, |id| {
            rows.get(id).map(|&row| row as u32)
        })?;
        drop(rows);
        drop(judged);
        let plan = Plan::new(
            query_ids.iter().map(String::as_str),
            positives,
            queries_file,
        )?;
        let inputs = Inputs {
            corpus,
            total,
            query_ids: &query_ids,
            queries: &queries,
            dim,
            plan: &plan,
        };
        let out = ctx.output("candidates");
        let Some(size) = p.part_queries else {
            return mine(p, ctx, &inputs, 0..query_ids.len(), &out);
        };
        let parts = Parts::open(
            &ctx.work_dir,
            "candidates",
            "queries",
            size,
            query_ids.len() as u64,
        )?;
        let done = parts.compute(ctx.progress, "mine.dense", |range, file| {
            mine(
                p,
                ctx,
                &inputs,
                range.start as usize..range.end as usize,
                file,
            )
            .map(|_| ())
        })?;
        let rows = concat_rows::<Candidate>(&done.files, &out)?;
        Ok(StageReport {
            metrics: [
                ("candidates".to_string(), rows as f64),
                ("queries_mined".to_string(), plan.mined.len() as f64),
                ("docs".to_string(), total as f64),
            ]
            .into_iter()
            .chain(done.metrics())
            .collect(),
            table: None,
        })
    }
}

/// What every part of a mining run shares.
struct Inputs<'a> {
    corpus: &'a Path,
    total: u64,
    query_ids: &'a [String],
    queries: &'a [f32],
    dim: usize,
    plan: &'a Plan,
}

/// Mines the queries at positions `range` of the queries input into `out`.
fn mine(
    p: &MineDenseParams,
    ctx: &StageContext<'_>,
    inputs: &Inputs<'_>,
    range: Range<usize>,
    out: &Path,
) -> Result<StageReport> {
    let Inputs {
        corpus,
        total,
        query_ids,
        queries,
        dim,
        plan,
    } = *inputs;
    let vector = |at: usize| &queries[at * dim..(at + 1) * dim];
    let selected = |m: &usize| range.contains(&plan.mined[*m].0);

    // One top-k per number of positives P, searched to depth k + P.
    let mut groups = Vec::new();
    for (num_positives, members) in plan.by_positives() {
        let members: Vec<usize> = members.into_iter().filter(selected).collect();
        if members.is_empty() {
            continue;
        }
        let vectors: Vec<f32> = members
            .iter()
            .flat_map(|&m| vector(plan.mined[m].0))
            .copied()
            .collect();
        let top = TopK::new(members.len(), dim, p.k + num_positives)?;
        groups.push((members, vectors, top));
    }
    // (positive's corpus row, mined query, positive slot) by row, for the exact scores.
    let mut wanted: Vec<(u32, usize, usize)> = Vec::new();
    let mut exact: Vec<Vec<f64>> = Vec::with_capacity(plan.mined.len());
    for (m, (_, positives)) in plan.mined.iter().enumerate() {
        if selected(&m) {
            wanted.extend(
                positives
                    .iter()
                    .enumerate()
                    .map(|(slot, &doc)| (doc, m, slot)),
            );
        }
        exact.push(vec![0.0; positives.len()]);
    }
    wanted.sort_unstable();

    let task = ctx.progress.task("mine dense (docs)", Some(total));
    let start = Instant::now();
    let (mut at, mut next) = (0u32, 0);
    for_each_vector_block(corpus, |block| {
        let nb = block.len() / dim;
        for (_, vectors, top) in &mut groups {
            top.add_block(vectors, block, at)?;
        }
        let end = at as usize + nb;
        while let Some(&(doc, m, slot)) = wanted.get(next).filter(|w| (w.0 as usize) < end) {
            let d = &block[(doc - at) as usize * dim..][..dim];
            let q = vector(plan.mined[m].0);
            exact[m][slot] = q
                .iter()
                .zip(d)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            next += 1;
        }
        at = u32::try_from(end)
            .map_err(|_| Error::file(corpus, "the corpus changed while it was read"))?;
        task.inc(nb as u64);
        Ok(())
    })?;
    drop(task);
    if next < wanted.len() {
        return Err(Error::file(corpus, "the corpus changed while it was read"));
    }
    let search_s = start.elapsed().as_secs_f64();

    let mut hits = vec![Vec::new(); plan.mined.len()];
    let mut mined = 0;
    for (members, _, top) in groups {
        for (m, found) in members.into_iter().zip(top.into_results()) {
            hits[m] = found;
            mined += 1;
        }
    }
    // The ids of the documents written: the hits and the positives.
    let ids = RowIds::read(
        corpus,
        hits.iter()
            .flatten()
            .map(|&(doc, _)| doc)
            .chain(wanted.iter().map(|w| w.0))
            .map(u64::from),
    )?;
    let doc_id = |doc: u32| {
        ids.get(u64::from(doc))
            .ok_or_else(|| Error::file(corpus, format!("row {doc} was not read")))
    };
    let mut writer = PoolWriter::create(out, p.k)?;
    for (m, (query, positives)) in plan.mined.iter().enumerate() {
        if selected(&m) {
            writer.push(&query_ids[*query], &hits[m], positives, doc_id, |slot| {
                exact[m][slot]
            })?;
        }
    }
    writer.finish(
        plan,
        &[
            ("docs", total as f64),
            ("queries_per_s", mined as f64 / search_s.max(1e-9)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{qrels, run_stage, write_embeddings};
    use rrra_common::records::Candidate;

    fn row(q: &str, d: &str, rank: u32, score: f64, positive: bool) -> Candidate {
        Candidate {
            query_id: q.into(),
            doc_id: d.into(),
            rank,
            score,
            positive,
        }
    }

    /// Corpus in an order where corpus position and doc id disagree on every tie.
    const CORPUS: [(&str, [f32; 2]); 7] = [
        ("d9", [-1.0, 0.0]),
        ("d3", [2.0, -1.0]),
        ("d1", [2.0, 5.0]),
        ("d0", [1.0, 1.0]),
        ("d5", [3.0, 0.0]),
        ("d2", [0.0, 7.0]),
        ("d4", [2.0, 2.0]),
    ];

    fn hand_made(
        k: usize,
        extra_qrels: &[(&str, &str, i32)],
    ) -> Result<(StageReport, Vec<Candidate>)> {
        let dir = tempfile::tempdir().unwrap();
        let corpus = write_embeddings(dir.path(), "corpus", &CORPUS);
        let queries = write_embeddings(
            dir.path(),
            "queries",
            &[
                ("q1", [1.0, 0.0]),
                ("q2", [0.0, 1.0]),
                ("q3", [1.0, 1.0]),
                ("q5", [1.0, -1.0]),
            ],
        );
        let mut judged = vec![
            ("q1", "d3", 1),
            ("q1", "d9", 2),
            ("q1", "d5", 0),
            ("q2", "d2", 1),
            ("q4", "d0", 1),
            ("q5", "d4", 0),
        ];
        judged.extend_from_slice(extra_qrels);
        let qrels = qrels(dir.path(), &judged);
        let params = MineDenseParams {
            k,
            ..MineDenseParams::default()
        };
        run_stage::<MineDense>(
            &params,
            &[("corpus", corpus), ("queries", queries), ("qrels", qrels)],
        )
    }

    #[test]
    fn hand_made_pools_are_exact() {
        let (report, rows) = hand_made(2, &[]).unwrap();
        // q1 = (1, 0): d5 3 | d3 2 (+), d1 2, d4 2 (ties in corpus order) | d0 1 | d2 0 |
        // d9 -1 (+); depth 2 + 2. d5 is judged 0, so it is a negative. q2 = (0, 1):
        // d2 7 (+) | d1 5 | d4 2; depth 3.
        assert_eq!(
            rows,
            [
                row("q1", "d5", 1, 3.0, false),
                row("q1", "d3", 2, 2.0, true),
                row("q1", "d1", 3, 2.0, false),
                row("q1", "d9", 0, -1.0, true),
                row("q2", "d2", 1, 7.0, true),
                row("q2", "d1", 2, 5.0, false),
                row("q2", "d4", 3, 2.0, false),
            ]
        );
        let m = &report.metrics;
        // q3 and q5 (only a grade-0 judgement) have no positive; q4 has no vector.
        assert_eq!(m["queries_mined"], 2.0);
        assert_eq!(m["queries_skipped"], 3.0);
        assert_eq!(m["queries_without_positives"], 2.0);
        assert_eq!(m["queries_absent"], 1.0);
        assert_eq!(m["candidates"], 7.0);
        assert_eq!(m["negatives"], 4.0);
        assert_eq!(m["mean_positives"], 1.5);
        // Of 3 positives, q1's d3 and q2's d2 are within rank 2.
        assert_eq!(m["positive_recall_at_k"], 2.0 / 3.0);
        assert_eq!(m["docs"], 7.0);
    }

    #[test]
    fn ties_go_to_the_earlier_corpus_row() {
        let (_, rows) = hand_made(4, &[]).unwrap();
        // q2 = (0, 1): d2 7 (+), d1 5, d4 2, d0 1, then d9 and d5 both 0: d9 comes first
        // (row 0) although its id sorts after d5's.
        let q2: Vec<(&str, u32)> = rows
            .iter()
            .filter(|r| r.query_id == "q2")
            .map(|r| (r.doc_id.as_str(), r.rank))
            .collect();
        assert_eq!(q2, [("d2", 1), ("d1", 2), ("d4", 3), ("d0", 4), ("d9", 5)]);
        // q1 stops at its 4th negative (d2 at rank 6 is not written); d9 (rank 7) is
        // beyond depth 4 + 2.
        let q1: Vec<(&str, u32, bool)> = rows
            .iter()
            .filter(|r| r.query_id == "q1")
            .map(|r| (r.doc_id.as_str(), r.rank, r.positive))
            .collect();
        assert_eq!(
            q1,
            [
                ("d5", 1, false),
                ("d3", 2, true),
                ("d1", 3, false),
                ("d4", 4, false),
                ("d0", 5, false),
                ("d9", 0, true),
            ]
        );
    }

    /// Two missed positives are written in corpus order (d9 before d2 in the corpus).
    #[test]
    fn missed_positives_come_last_in_corpus_order() {
        let (_, rows) = hand_made(1, &[("q5", "d2", 1), ("q5", "d9", 1)]).unwrap();
        // q5 = (1, -1): d3 3, d5 3 (rows 1, 4), d0 0, d4 0, d9 -1, d1 -3, d2 -7; depth
        // 1 + 2 = 3 holds one negative, d3.
        let q5: Vec<(&str, u32, f64, bool)> = rows
            .iter()
            .filter(|r| r.query_id == "q5")
            .map(|r| (r.doc_id.as_str(), r.rank, r.score, r.positive))
            .collect();
        assert_eq!(
            q5,
            [
                ("d3", 1, 3.0, false),
                ("d9", 0, -1.0, true),
                ("d2", 0, -7.0, true)
            ]
        );
    }

    #[test]
    fn small_corpus_gives_every_non_positive() {
        let (_, rows) = hand_made(50, &[]).unwrap();
        let q1 = rows.iter().filter(|r| r.query_id == "q1");
        assert_eq!(q1.clone().count(), 7);
        // d9 is last of 7, within depth 52: it has its rank now.
        assert!(
            q1.clone()
                .any(|r| r.doc_id == "d9" && r.rank == 7 && r.positive)
        );
        assert_eq!(q1.filter(|r| !r.positive).count(), 5);
    }

    #[test]
    fn unknown_relevant_doc_is_an_error_naming_both_ids_and_a_non_relevant_one_is_ignored() {
        let err = hand_made(2, &[("q7", "nope", 1)]).unwrap_err().to_string();
        assert!(
            err.contains(
                "query \"q7\" judges doc \"nope\" relevant (grade 1), but it is not in the corpus"
            ),
            "{err}"
        );
        let (_, with) = hand_made(2, &[("q1", "nope", 0)]).unwrap();
        let (_, without) = hand_made(2, &[]).unwrap();
        assert_eq!(with, without);
    }

    #[test]
    fn a_judged_doc_id_twice_in_the_corpus_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = write_embeddings(
            dir.path(),
            "corpus",
            &[("d1", [1.0, 0.0]), ("d2", [0.0, 1.0]), ("d1", [1.0, 1.0])],
        );
        let queries = write_embeddings(dir.path(), "queries", &[("q1", [1.0, 0.0])]);
        let inputs = |judged: &str| {
            [
                ("corpus", corpus.clone()),
                ("queries", queries.clone()),
                ("qrels", qrels(dir.path(), &[("q1", judged, 1)])),
            ]
        };
        let params = MineDenseParams::default();
        let err = run_stage::<MineDense>(&params, &inputs("d1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("corpus.parquet: duplicate doc id \"d1\""),
            "{err}"
        );
        // A duplicate no judgement names is ingest's to refuse; mining does not look.
        let (_, rows) = run_stage::<MineDense>(&params, &inputs("d2")).unwrap();
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn params_default_and_reject_unknown_fields_and_zero_k() {
        let p: MineDenseParams = serde_json::from_str("{}").unwrap();
        assert_eq!(p, MineDenseParams::default());
        assert_eq!((p.k, p.relevance_threshold), (200, 1));
        assert!(serde_json::from_str::<MineDenseParams>(r#"{"top_k": 5}"#).is_err());
        assert!(MineDense::check(&p).is_ok());
        let err = MineDense::check(&MineDenseParams { k: 0, ..p }).unwrap_err();
        assert!(err.contains("param k"), "{err}");
    }

    /// Small integers in {-2, ..., 2} from a seeded generator: every score is exact in f32,
    /// and ties are common.
    fn ints(n: usize, mut state: u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 5) as f32 - 2.0
            })
            .collect()
    }

    /// A corpus of more than one embeddings block, with ids in scrambled order, and several
    /// positives per query; checked against a naive full ranking.
    #[test]
    fn larger_corpus_matches_naive_ranking_and_is_deterministic() {
        let (nd, nq, dim, k) = (5000, 12, 4, 30);
        let dir = tempfile::tempdir().unwrap();
        let doc_vectors = ints(nd * dim, 1);
        let ids: Vec<String> = (0..nd).map(|i| format!("doc{}", (i * 7919) % nd)).collect();
        let corpus: Vec<(&str, &[f32])> = ids
            .iter()
            .zip(doc_vectors.chunks(dim))
            .map(|(id, v)| (id.as_str(), v))
            .collect();
        let query_vectors = ints(nq * dim, 2);
        let qids: Vec<String> = (0..nq).map(|i| format!("q{i}")).collect();
        let queries: Vec<(&str, &[f32])> = qids
            .iter()
            .zip(query_vectors.chunks(dim))
            .map(|(id, v)| (id.as_str(), v))
            .collect();
        // Query i judges 1 + i % 3 documents spread over the corpus.
        let mut judged = Vec::new();
        for (i, q) in qids.iter().enumerate() {
            for j in 0..=(i % 3) {
                judged.push((q.as_str(), ids[(i * 811 + j * 1777) % nd].as_str(), 1));
            }
        }
        let inputs = [
            ("corpus", write_embeddings(dir.path(), "corpus", &corpus)),
            ("queries", write_embeddings(dir.path(), "queries", &queries)),
            ("qrels", qrels(dir.path(), &judged)),
        ];
        let params = MineDenseParams {
            k,
            ..MineDenseParams::default()
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run_stage::<MineDense>(&params, &inputs).unwrap().1)
        };
        let rows = run(1);
        assert_eq!(rows, run(3), "output depends on the thread count");

        for (qi, q) in queries.iter().enumerate() {
            let positives: Vec<&str> = judged.iter().filter(|j| j.0 == q.0).map(|j| j.1).collect();
            let mut ranking: Vec<(&str, f64)> = corpus
                .iter()
                .map(|d| {
                    let s = q.1.iter().zip(d.1).map(|(a, b)| f64::from(a * b)).sum();
                    (d.0, s)
                })
                .collect();
            // Stable: equal scores stay in corpus order.
            ranking.sort_by(|a, b| b.1.total_cmp(&a.1));
            let depth = k + positives.len();
            let mut want: Vec<Candidate> = Vec::new();
            for (at, &(doc, score)) in ranking.iter().enumerate().take(depth) {
                let positive = positives.contains(&doc);
                if positive || want.iter().filter(|c| !c.positive).count() < k {
                    want.push(row(q.0, doc, at as u32 + 1, score, positive));
                }
            }
            let mut missed: Vec<&str> = positives
                .iter()
                .copied()
                .filter(|p| !want.iter().any(|c| c.doc_id == *p))
                .collect();
            missed.sort_unstable_by_key(|p| ids.iter().position(|id| id.as_str() == *p));
            for doc in missed {
                let score = ranking.iter().find(|r| r.0 == doc).unwrap().1;
                want.push(row(q.0, doc, 0, score, true));
            }
            let got: Vec<&Candidate> = rows.iter().filter(|r| r.query_id == q.0).collect();
            assert_eq!(got.len(), want.len(), "query {qi}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(*g, w, "query {qi}");
            }
            assert_eq!(got.iter().filter(|c| !c.positive).count(), k);
        }
    }
}
