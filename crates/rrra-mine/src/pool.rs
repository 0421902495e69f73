//! What both mining stages share: judged positives, the plan of which queries are mined, and
//! writing one query's pool with the report's counts; and `mine.bm25`'s document numbering
//! by sorted id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rrra_common::artifact::{ParquetSink, for_each_batch};
use rrra_common::records::{Candidate, Qrel};
use rrra_common::stage::StageReport;
use rrra_common::{Error, Result};

use crate::summary::{Scores, table};

/// Doc ids numbered in sorted (byte) order (`mine.bm25`): a document's index is its id's
/// rank, so ranking ties broken by lower index are broken by doc id.
pub(crate) struct DocIds<'a> {
    sorted: Vec<&'a str>,
}

impl<'a> DocIds<'a> {
    /// Numbers `ids` (in input order); a duplicate id is an error naming `file`.
    pub(crate) fn new(ids: impl IntoIterator<Item = &'a str>, file: &Path) -> Result<Self> {
        let ids: Vec<&str> = ids.into_iter().collect();
        if u32::try_from(ids.len()).is_err() {
            return Err(Error::file(
                file,
                format!("{} documents, at most {} can be mined", ids.len(), u32::MAX),
            ));
        }
        let mut sorted = ids;
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::file(file, format!("duplicate doc id {:?}", pair[0])));
        }
        Ok(DocIds { sorted })
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The index of doc id `id`, if the corpus has it.
    pub(crate) fn index(&self, id: &str) -> Option<u32> {
        self.sorted.binary_search(&id).ok().map(|i| i as u32)
    }

    pub(crate) fn id(&self, index: u32) -> &'a str {
        self.sorted[index as usize]
    }
}

/// The distinct doc ids that the qrels at `path` judge (at any grade).
pub(crate) fn judged_docs(path: &Path) -> Result<HashSet<String>> {
    let mut docs = HashSet::new();
    for_each_batch::<Qrel>(path, |rows| {
        docs.extend(rows.into_iter().map(|q| q.doc_id));
        Ok(())
    })?;
    Ok(docs)
}

/// Reads the qrels at `path` and keeps, per query id, the indices (ascending, distinct) of
/// the documents judged at least `threshold`, `index` giving a doc id's index (`None`: not
/// in the corpus). A positive judgement of a doc id the corpus lacks is an error naming the
/// query and the doc; a lower one is ignored (and logged).
pub(crate) fn read_positives(
    path: &Path,
    threshold: i32,
    index: impl Fn(&str) -> Option<u32>,
) -> Result<HashMap<String, Vec<u32>>> {
    let mut positives: HashMap<String, Vec<u32>> = HashMap::new();
    let mut unknown_below = 0u64;
    for_each_batch::<Qrel>(path, |rows| {
        // A non-relevant judgement of a document outside the corpus (TREC DL judges
        // passages a sample may lack) cannot matter here (it is counted and logged); a
        // positive outside it is an error.
        unknown_below += rows
            .iter()
            .filter(|q| q.relevance < threshold && index(&q.doc_id).is_none())
            .count() as u64;
        for qrel in rows.into_iter().filter(|q| q.relevance >= threshold) {
            let Some(doc) = index(&qrel.doc_id) else {
                return Err(Error::file(
                    path,
                    format!(
                        "query {:?} judges doc {:?} relevant (grade {}), but it is not in the corpus",
                        qrel.query_id, qrel.doc_id, qrel.relevance
                    ),
                ));
            };
            positives.entry(qrel.query_id).or_default().push(doc);
        }
        Ok(())
    })?;
    for docs in positives.values_mut() {
        docs.sort_unstable();
        docs.dedup();
    }
    if unknown_below > 0 {
        tracing::warn!(
            "mining: {unknown_below} judgements below the relevance threshold name documents \
             that are not in the corpus; they were ignored"
        );
    }
    Ok(positives)
}

/// Which queries are mined, in query-input order, and how many were skipped.
pub(crate) struct Plan {
    /// Per mined query: its position in the query input and its positives.
    pub(crate) mined: Vec<(usize, Vec<u32>)>,
    /// Queries of the input without a positive.
    without_positives: u64,
    /// Queries with a positive that the query input lacks.
    absent: u64,
}

impl Plan {
    /// Matches the query input's ids (a duplicate is an error naming `file`) with `positives`.
    pub(crate) fn new<'q>(
        query_ids: impl IntoIterator<Item = &'q str>,
        mut positives: HashMap<String, Vec<u32>>,
        file: &Path,
    ) -> Result<Self> {
        let mut seen = HashSet::new();
        let (mut mined, mut without_positives) = (Vec::new(), 0);
        for (at, id) in query_ids.into_iter().enumerate() {
            if !seen.insert(id) {
                return Err(Error::file(file, format!("duplicate query id {id:?}")));
            }
            match positives.remove(id) {
                Some(docs) => mined.push((at, docs)),
                None => without_positives += 1,
            }
        }
        Ok(Plan {
            mined,
            without_positives,
            absent: positives.len() as u64,
        })
    }

    /// The mined queries (indices into `mined`) grouped by their number of positives `P`:
    /// each group is searched to one depth, `k + P`.
    pub(crate) fn by_positives(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (m, (_, docs)) in self.mined.iter().enumerate() {
            groups.entry(docs.len()).or_default().push(m);
        }
        groups
    }
}

/// Writes the `candidates` output query by query and counts what the report shows.
pub(crate) struct PoolWriter {
    sink: ParquetSink<Candidate>,
    k: usize,
    queries: u64,
    negatives: u64,
    positives: u64,
    positives_in_top_k: u64,
    positive_scores: Scores,
    negative_scores: Scores,
    /// Negatives scoring above the lowest-scoring positive of their query.
    negatives_above_a_positive: u64,
}

impl PoolWriter {
    pub(crate) fn create(path: &Path, k: usize) -> Result<Self> {
        Ok(PoolWriter {
            sink: ParquetSink::create(path)?,
            k,
            queries: 0,
            negatives: 0,
            positives: 0,
            positives_in_top_k: 0,
            positive_scores: Scores::new(),
            negative_scores: Scores::new(),
            negatives_above_a_positive: 0,
        })
    }

    /// Writes the pool of `query_id` from `hits`, its ranking to depth `k + P` (document
    /// index and score, best first): the first `k` documents not in `positives` (ascending
    /// indices) as negatives, and every positive, at its rank and score in `hits` or, when
    /// `hits` lacks it, with rank 0 and `missed_score(i)` for `positives[i]`. `doc_id`
    /// names a document index.
    pub(crate) fn push<'d>(
        &mut self,
        query_id: &str,
        hits: &[(u32, f32)],
        positives: &[u32],
        doc_id: impl Fn(u32) -> Result<&'d str>,
        missed_score: impl Fn(usize) -> f64,
    ) -> Result<()> {
        let mut found = vec![false; positives.len()];
        let mut negatives = 0;
        let mut negative_scores = Vec::new();
        let mut lowest_positive = f64::INFINITY;
        for (at, &(doc, score)) in hits.iter().enumerate() {
            let rank = at as u32 + 1;
            let positive = match positives.binary_search(&doc) {
                Ok(i) => {
                    found[i] = true;
                    if at < self.k {
                        self.positives_in_top_k += 1;
                    }
                    true
                }
                Err(_) if negatives < self.k => {
                    negatives += 1;
                    false
                }
                Err(_) => continue,
            };
            let score = f64::from(score);
            if positive {
                self.positive_scores.push(score);
                lowest_positive = lowest_positive.min(score);
            } else {
                self.negative_scores.push(score);
                negative_scores.push(score);
            }
            self.sink.push(Candidate {
                query_id: query_id.to_string(),
                doc_id: doc_id(doc)?.to_string(),
                rank,
                score,
                positive,
            })?;
        }
        for (i, _) in found.iter().enumerate().filter(|(_, found)| !**found) {
            let score = missed_score(i);
            self.positive_scores.push(score);
            lowest_positive = lowest_positive.min(score);
            self.sink.push(Candidate {
                query_id: query_id.to_string(),
                doc_id: doc_id(positives[i])?.to_string(),
                rank: 0,
                score,
                positive: true,
            })?;
        }
        self.negatives_above_a_positive += negative_scores
            .iter()
            .filter(|&&s| s > lowest_positive)
            .count() as u64;
        self.queries += 1;
        self.negatives += negatives as u64;
        self.positives += positives.len() as u64;
        Ok(())
    }

    /// Finishes the output; the report holds the counts of `plan` and these, then `extra`,
    /// and the score summary of positives and negatives as its table. Skipped queries are
    /// logged as warnings.
    pub(crate) fn finish(self, plan: &Plan, extra: &[(&str, f64)]) -> Result<StageReport> {
        let rows = self.sink.finish()?;
        if plan.absent > 0 {
            tracing::warn!(
                "mining: {} queries with a judged positive are not in the queries input and \
                 were not mined",
                plan.absent
            );
        }
        if plan.without_positives > 0 {
            tracing::warn!(
                "mining: {} queries of the queries input have no judgement at or above the \
                 relevance threshold and were not mined",
                plan.without_positives
            );
        }
        let summary = table(
            &self.positive_scores,
            &self.negative_scores,
            self.negatives_above_a_positive,
        );
        tracing::info!("mining score summary:\n{summary}");
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let mut metrics: BTreeMap<String, f64> = [
            ("queries_mined", self.queries as f64),
            (
                "queries_skipped",
                (plan.without_positives + plan.absent) as f64,
            ),
            ("queries_without_positives", plan.without_positives as f64),
            ("queries_absent", plan.absent as f64),
            ("candidates", rows as f64),
            ("negatives", self.negatives as f64),
            ("mean_positives", per(self.positives, self.queries)),
            (
                "positive_recall_at_k",
                per(self.positives_in_top_k, self.positives),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let medians = |s: &Scores| s.quantiles(&[0.5])[0];
        metrics.extend([
            (
                "positive_score_mean".to_string(),
                self.positive_scores.mean(),
            ),
            (
                "positive_score_median".to_string(),
                medians(&self.positive_scores),
            ),
            (
                "negative_score_mean".to_string(),
                self.negative_scores.mean(),
            ),
            (
                "negative_score_median".to_string(),
                medians(&self.negative_scores),
            ),
            (
                "negatives_above_a_positive_fraction".to_string(),
                per(self.negatives_above_a_positive, self.negatives),
            ),
        ]);
        metrics.extend(extra.iter().map(|&(name, value)| (name.to_string(), value)));
        Ok(StageReport {
            metrics,
            table: Some(summary),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_are_numbered_in_sorted_order() {
        let file = Path::new("corpus.parquet");
        let docs = DocIds::new(["d9", "d10", "a", "d1"], file).unwrap();
        assert_eq!(
            (docs.len(), docs.id(1), docs.index("d9")),
            (4, "d1", Some(3))
        );
        assert_eq!(docs.index("b"), None);
        let err = DocIds::new(["x", "y", "x"], file).err().unwrap();
        assert_eq!(err.to_string(), "corpus.parquet: duplicate doc id \"x\"");
    }

    #[test]
    fn plan_counts_skipped_queries_and_groups_by_positives() {
        let positives: HashMap<String, Vec<u32>> = [
            ("q1", vec![4, 7]),
            ("q2", vec![1]),
            ("q3", vec![0, 2]),
            ("gone", vec![3]),
        ]
        .into_iter()
        .map(|(q, d)| (q.to_string(), d))
        .collect();
        let file = Path::new("queries.parquet");
        let plan = Plan::new(["q3", "none", "q1", "q2"], positives.clone(), file).unwrap();
        let mined: Vec<usize> = plan.mined.iter().map(|m| m.0).collect();
        assert_eq!(mined, [0, 2, 3]);
        assert_eq!((plan.without_positives, plan.absent), (1, 1));
        assert_eq!(
            plan.by_positives(),
            BTreeMap::from([(1, vec![2]), (2, vec![0, 1])])
        );
        let err = Plan::new(["q1", "q1"], positives, file).err().unwrap();
        assert!(
            err.to_string().contains("duplicate query id \"q1\""),
            "{err}"
        );
    }
}
