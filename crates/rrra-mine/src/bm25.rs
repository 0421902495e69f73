//! `mine.bm25`: pools from the BM25 ranking of `rrra-retrieve`'s index over
//! `title + " " + text` (the index `retrieve.bm25` builds, numbered by sorted doc id). The
//! ranking is of the whole corpus: documents that share no term with the query score 0 and
//! follow the matched ones by doc id, so every query gets `k` negatives when the corpus has
//! `k + P` documents (the report counts the queries so padded and the documents appended). A
//! positive's score is its exact BM25 score for the query.

use std::time::Instant;

use rrra_common::Result;
use rrra_common::artifact::read_rows;
use rrra_common::records::{Doc, Query};
use rrra_common::schema::ArtifactKind::{Candidates, Corpus, Qrels, Queries};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_retrieve::{Bm25Index, Bm25Params};
use serde::{Deserialize, Serialize};

use crate::pool::{DocIds, Plan, PoolWriter, read_positives};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MineBm25Params {
    /// BM25 term-frequency saturation.
    pub k1: f64,
    /// BM25 length normalisation (0: none, 1: full).
    pub b: f64,
    /// Negatives written per query.
    pub k: usize,
    /// The least relevance grade that makes a judgement a positive.
    pub relevance_threshold: i32,
}

impl Default for MineBm25Params {
    fn default() -> Self {
        MineBm25Params {
            k1: 0.9,
            b: 0.4,
            k: 200,
            relevance_threshold: 1,
        }
    }
}

/// `mine.bm25`: per query with a positive, the top-`k` non-positive documents by BM25, and
/// its positives (see the crate docs for the rows).
pub struct MineBm25;

impl Stage for MineBm25 {
    type Params = MineBm25Params;
    const KIND: &'static str = "mine.bm25";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "hard negatives: BM25 top-k non-positives per query (k1, b, k)";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("corpus", Corpus),
                Port::required("queries", Queries),
                Port::required("qrels", Qrels),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("candidates", Candidates)] }
    }
    fn check(p: &MineBm25Params) -> Result<(), String> {
        if !(p.k1 >= 0.0 && p.k1.is_finite()) {
            return Err(format!("param k1 must be >= 0, got {}", p.k1));
        }
        if !(0.0..=1.0).contains(&p.b) {
            return Err(format!("param b must be in [0, 1], got {}", p.b));
        }
        if p.k == 0 {
            return Err("param k must be at least 1".into());
        }
        Ok(())
    }

    fn run(p: &MineBm25Params, ctx: &StageContext<'_>) -> Result<StageReport> {
        let corpus = ctx.input("corpus")?;
        let mut docs = read_rows::<Doc>(corpus)?;
        // Index order = doc id order, so BM25's ties (lower index first) go by doc id.
        docs.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let ids = DocIds::new(docs.iter().map(|d| d.id.as_str()), corpus)?;
        let queries_file = ctx.input("queries")?;
        let queries = read_rows::<Query>(queries_file)?;
        let positives = read_positives(ctx.input("qrels")?, p.relevance_threshold, |id| {
            ids.index(id)
        })?;
        let plan = Plan::new(
            queries.iter().map(|q| q.id.as_str()),
            positives,
            queries_file,
        )?;

        let params = Bm25Params {
            k1: p.k1 as f32,
            b: p.b as f32,
        };
        let index = Bm25Index::from_docs(&docs, params, ctx.progress)?;
        let text = |m: usize| queries[plan.mined[m].0].text.as_str();
        let start = Instant::now();
        let mut hits = vec![Vec::new(); plan.mined.len()];
        // Queries whose matches do not reach depth k + P, and the documents appended.
        let mut padded = (0u64, 0u64);
        for (num_positives, members) in plan.by_positives() {
            let texts: Vec<&str> = members.iter().map(|&m| text(m)).collect();
            let found = index.search_batch(&texts, p.k + num_positives, ctx.progress);
            for (m, mut found) in members.into_iter().zip(found) {
                let added = append_unmatched(&mut found, p.k + num_positives, docs.len());
                padded.0 += u64::from(added > 0);
                padded.1 += added as u64;
                hits[m] = found;
            }
        }
        let search_s = start.elapsed().as_secs_f64();

        let mut writer = PoolWriter::create(&ctx.output("candidates"), p.k)?;
        for (m, (query, positives)) in plan.mined.iter().enumerate() {
            writer.push(
                &queries[*query].id,
                &hits[m],
                positives,
                |doc| Ok(ids.id(doc)),
                |slot| f64::from(index.score(text(m), positives[slot])),
            )?;
        }
        writer.finish(
            &plan,
            &[
                ("docs", ids.len() as f64),
                ("terms", index.num_terms() as f64),
                ("queries_padded", padded.0 as f64),
                ("unmatched_hits", padded.1 as f64),
                (
                    "queries_per_s",
                    plan.mined.len() as f64 / search_s.max(1e-9),
                ),
            ],
        )
    }
}

/// Extends `hits` (a query's BM25 search, best first) to `depth` with the documents it lacks,
/// which share no term with the query: score 0, by ascending index (doc id). Returns how
/// many it appended.
fn append_unmatched(hits: &mut Vec<(u32, f32)>, depth: usize, num_docs: usize) -> usize {
    if hits.len() >= depth {
        return 0;
    }
    let mut matched: Vec<u32> = hits.iter().map(|h| h.0).collect();
    matched.sort_unstable();
    let unmatched = (0..num_docs as u32).filter(|doc| matched.binary_search(doc).is_err());
    let before = hits.len();
    hits.extend(unmatched.take(depth - before).map(|doc| (doc, 0.0)));
    hits.len() - before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{qrels, run_stage};
    use rrra_common::artifact::write_rows;
    use rrra_common::progress::Silent;
    use rrra_common::records::Candidate;

    /// Corpus order differs from id order; d1 and d3 are the same text, so they tie.
    const CORPUS: [(&str, &str); 6] = [
        ("d3", "cats purr loudly"),
        ("d0", "the weather is nice"),
        ("d4", "cats cats cats"),
        ("d1", "cats purr loudly"),
        ("d2", "dogs bark at cats"),
        ("d5", "purr engines"),
    ];

    fn docs() -> Vec<Doc> {
        CORPUS
            .iter()
            .map(|&(id, text)| Doc {
                id: id.into(),
                title: String::new(),
                text: text.into(),
            })
            .collect()
    }

    fn mine(
        params: &MineBm25Params,
        judged: &[(&str, &str, i32)],
    ) -> Result<(StageReport, Vec<Candidate>)> {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus.parquet");
        write_rows(&corpus, docs()).unwrap();
        let queries = dir.path().join("queries.parquet");
        let query = |id: &str, text: &str| Query {
            id: id.into(),
            text: text.into(),
            answers: None,
        };
        write_rows(
            &queries,
            [
                query("q1", "cats purr"),
                query("q2", "barking dog"),
                query("q3", "nothing judged"),
            ],
        )
        .unwrap();
        let qrels = qrels(dir.path(), judged);
        run_stage::<MineBm25>(
            params,
            &[("corpus", corpus), ("queries", queries), ("qrels", qrels)],
        )
    }

    /// The BM25 scores of `query` by doc id, from an index over the corpus in file order.
    fn scores(query: &str) -> Vec<(String, f64)> {
        let docs = docs();
        let index = Bm25Index::from_docs(&docs, Bm25Params::default(), &Silent).unwrap();
        index
            .search(query, docs.len())
            .into_iter()
            .map(|(d, s)| (docs[d as usize].id.clone(), f64::from(s)))
            .collect()
    }

    fn rows_of<'a>(rows: &'a [Candidate], q: &str) -> Vec<(&'a str, u32, bool)> {
        rows.iter()
            .filter(|r| r.query_id == q)
            .map(|r| (r.doc_id.as_str(), r.rank, r.positive))
            .collect()
    }

    #[test]
    fn tiny_corpus_pools() {
        let judged = [
            ("q1", "d3", 1),
            ("q1", "d0", 1),
            ("q1", "d4", 0),
            ("q2", "d2", 1),
        ];
        let k2 = MineBm25Params {
            k: 2,
            ..MineBm25Params::default()
        };
        let (report, rows) = mine(&k2, &judged).unwrap();
        // q1 "cats purr": d1 = d3 (cats + purr; the tie goes to d1), d5 (purr), d4 (cats
        // x3), d2 (cats); d0 shares no term. Depth 2 + 2; d4 is judged 0, a negative.
        let q1 = scores("cats purr");
        let order: Vec<&str> = q1.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            order,
            ["d3", "d1", "d5", "d4", "d2"],
            "file order breaks the tie"
        );
        assert_eq!(
            rows_of(&rows, "q1"),
            [
                ("d1", 1, false),
                ("d3", 2, true),
                ("d5", 3, false),
                ("d0", 0, true)
            ]
        );
        let score =
            |scores: &[(String, f64)], doc: &str| scores.iter().find(|s| s.0 == doc).unwrap().1;
        let q1_rows: Vec<&Candidate> = rows.iter().filter(|r| r.query_id == "q1").collect();
        for r in &q1_rows[..3] {
            assert_eq!(r.score, score(&q1, &r.doc_id), "{r:?}");
        }
        assert_eq!(q1_rows[3].score, 0.0);
        // q2 "barking dog": only d2 matches; the negatives are unmatched documents, score 0,
        // by doc id.
        assert_eq!(
            rows_of(&rows, "q2"),
            [("d2", 1, true), ("d0", 2, false), ("d1", 3, false)]
        );
        assert_eq!(rows[4].score, score(&scores("barking dog"), "d2"));
        assert_eq!((rows[5].score, rows[6].score), (0.0, 0.0));
        let m = &report.metrics;
        assert_eq!(m["queries_mined"], 2.0);
        assert_eq!(m["queries_skipped"], 1.0);
        assert_eq!(m["negatives"], 4.0);
        assert_eq!(m["candidates"], 7.0);
        assert_eq!((m["queries_padded"], m["unmatched_hits"]), (1.0, 2.0));
        assert_eq!(m["mean_positives"], 1.5);
        assert_eq!(m["positive_recall_at_k"], 2.0 / 3.0);
        assert_eq!(m["docs"], 6.0);
    }

    #[test]
    fn positive_outside_the_depth_gets_its_exact_score() {
        // q1 with k = 1 and one positive d2: depth 2 holds d1 and d3; d2 (rank 5) is scored
        // on its own.
        let k1 = MineBm25Params {
            k: 1,
            ..MineBm25Params::default()
        };
        let (_, rows) = mine(&k1, &[("q1", "d2", 1)]).unwrap();
        assert_eq!(rows_of(&rows, "q1"), [("d1", 1, false), ("d2", 0, true)]);
        let want = scores("cats purr").iter().find(|s| s.0 == "d2").unwrap().1;
        assert_eq!(rows[1].score, want);
        assert!(want > 0.0);
    }

    #[test]
    fn the_ranking_covers_the_whole_corpus() {
        let k5 = MineBm25Params {
            k: 5,
            ..MineBm25Params::default()
        };
        let (_, rows) = mine(&k5, &[("q1", "d0", 1), ("q2", "d2", 1)]).unwrap();
        // d0 shares no term with q1 but is within depth 6: rank 6, score 0.
        assert_eq!(
            rows_of(&rows, "q1"),
            [
                ("d1", 1, false),
                ("d3", 2, false),
                ("d5", 3, false),
                ("d4", 4, false),
                ("d2", 5, false),
                ("d0", 6, true)
            ]
        );
        assert_eq!(rows[5].score, 0.0);
        let q2: Vec<&str> = rows_of(&rows, "q2").iter().map(|r| r.0).collect();
        assert_eq!(q2, ["d2", "d0", "d1", "d3", "d4", "d5"]);
    }

    #[test]
    fn relevance_threshold_decides_positives() {
        let judged = [("q1", "d3", 1), ("q1", "d1", 2)];
        let strict = MineBm25Params {
            k: 2,
            relevance_threshold: 2,
            ..MineBm25Params::default()
        };
        let (_, rows) = mine(&strict, &judged).unwrap();
        assert_eq!(
            rows_of(&rows, "q1"),
            [("d1", 1, true), ("d3", 2, false), ("d5", 3, false)]
        );
    }

    #[test]
    fn unknown_judged_doc_is_an_error_naming_both_ids() {
        let err = mine(&MineBm25Params::default(), &[("q2", "d77", 1)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "query \"q2\" judges doc \"d77\" relevant (grade 1), but it is not in the corpus"
            ),
            "{err}"
        );
    }

    #[test]
    fn runs_are_identical() {
        let judged = [("q1", "d3", 1), ("q2", "d2", 1), ("q2", "d5", 1)];
        let p = MineBm25Params::default();
        assert_eq!(mine(&p, &judged).unwrap().1, mine(&p, &judged).unwrap().1);
    }

    #[test]
    fn params_default_and_are_checked() {
        let p: MineBm25Params = serde_json::from_str("{}").unwrap();
        assert_eq!(p, MineBm25Params::default());
        assert_eq!((p.k1, p.b, p.k, p.relevance_threshold), (0.9, 0.4, 200, 1));
        assert!(serde_json::from_str::<MineBm25Params>(r#"{"kk": 5}"#).is_err());
        assert!(MineBm25::check(&p).is_ok());
        for bad in [
            MineBm25Params { k: 0, ..p.clone() },
            MineBm25Params {
                k1: -1.0,
                ..p.clone()
            },
            MineBm25Params {
                b: 1.5,
                ..p.clone()
            },
        ] {
            assert!(MineBm25::check(&bad).is_err(), "{bad:?}");
        }
    }
}
