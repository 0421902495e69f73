//! Relevance judgements held per query, sorted by document id for lookup.

use std::collections::BTreeMap;

use rrra_common::records::Qrel;
use rrra_common::{Error, Result};

/// The judgements of one query: `(doc_id, grade)` sorted by doc id (byte order, as strcmp).
#[derive(Debug, Clone, Default)]
pub(crate) struct Judgements {
    docs: Vec<(String, i32)>,
}

impl Judgements {
    /// The grade of `doc_id`, if judged.
    pub(crate) fn grade(&self, doc_id: &str) -> Option<i32> {
        self.docs
            .binary_search_by(|(d, _)| d.as_str().cmp(doc_id))
            .ok()
            .map(|i| self.docs[i].1)
    }

    /// The grades, in doc-id order.
    pub(crate) fn grades(&self) -> impl Iterator<Item = i32> + '_ {
        self.docs.iter().map(|&(_, g)| g)
    }
}

/// Relevance judgements (a qrels file in memory). Grades `<= 0` are non-relevant; negative
/// grades mean "in the pool but unjudged" to trec_eval: never relevant, no nDCG gain.
#[derive(Debug, Clone, Default)]
pub struct Qrels {
    queries: BTreeMap<String, Judgements>,
}

impl Qrels {
    /// Collects judgements. A `(query, doc)` pair judged twice is an error, as in trec_eval.
    pub fn from_rows(rows: impl IntoIterator<Item = Qrel>) -> Result<Self> {
        let mut queries: BTreeMap<String, Judgements> = BTreeMap::new();
        for row in rows {
            queries
                .entry(row.query_id)
                .or_default()
                .docs
                .push((row.doc_id, row.relevance));
        }
        for (query_id, judged) in &mut queries {
            judged.docs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if let Some(pair) = judged.docs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::Invalid(format!(
                    "qrels: query {query_id:?} judges document {:?} twice (trec_eval rejects \
                     duplicate judgements)",
                    pair[0].0
                )));
            }
        }
        Ok(Self { queries })
    }

    /// The number of judged queries.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// The judged query ids, in byte order.
    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    /// The grade of `doc_id` for `query_id`, if judged.
    pub fn relevance(&self, query_id: &str, doc_id: &str) -> Option<i32> {
        self.queries.get(query_id)?.grade(doc_id)
    }

    /// All judgements of a query as `(doc_id, grade)`, in doc-id byte order.
    pub fn judgements(&self, query_id: &str) -> Option<impl Iterator<Item = (&str, i32)>> {
        let judged = self.queries.get(query_id)?;
        Some(judged.docs.iter().map(|(d, g)| (d.as_str(), *g)))
    }

    pub(crate) fn get(&self, query_id: &str) -> Option<&Judgements> {
        self.queries.get(query_id)
    }
}
