//! Ranked runs held per query in trec_eval's evaluation order: score descending, compared as
//! 32-bit floats, ties broken by document id in reverse byte order. The rank column is ignored.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use rrra_common::records::RunRow;
use rrra_common::{Error, Result};

/// One retrieved document of a query's ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedDoc {
    pub doc_id: String,
    pub score: f64,
}

/// A ranked run (a TREC run file in memory), each query's documents in evaluation order.
#[derive(Debug, Clone, Default)]
pub struct Run {
    queries: BTreeMap<String, Vec<RankedDoc>>,
}

/// trec_eval's order (`comp_sim_docno` in `form_res_rels.c`): higher score first, then the
/// doc id that is greater by `strcmp` first. trec_eval 9.x, which pytrec_eval embeds, keeps
/// scores as C `float`, so scores equal after rounding to `f32` tie; -0 and +0 tie too.
fn evaluation_order(a: &RankedDoc, b: &RankedDoc) -> Ordering {
    let (sa, sb) = (a.score as f32, b.score as f32);
    if sa > sb {
        Ordering::Less
    } else if sa < sb {
        Ordering::Greater
    } else {
        b.doc_id.as_bytes().cmp(a.doc_id.as_bytes())
    }
}

impl Run {
    /// Collects run rows and orders each query's documents for evaluation. A NaN score and a
    /// document retrieved twice for one query are errors (trec_eval rejects duplicates).
    pub fn from_rows(rows: impl IntoIterator<Item = RunRow>) -> Result<Self> {
        let mut queries: BTreeMap<String, Vec<RankedDoc>> = BTreeMap::new();
        // Rows usually come grouped by query: collect each group before looking up the map.
        let mut group: Option<(String, Vec<RankedDoc>)> = None;
        for row in rows {
            if row.score.is_nan() {
                return Err(Error::Invalid(format!(
                    "run: query {:?}, document {:?}: score is NaN",
                    row.query_id, row.doc_id
                )));
            }
            let doc = RankedDoc {
                doc_id: row.doc_id,
                score: row.score,
            };
            match &mut group {
                Some((query_id, docs)) if *query_id == row.query_id => docs.push(doc),
                _ => {
                    if let Some((query_id, docs)) = group.replace((row.query_id, vec![doc])) {
                        queries.entry(query_id).or_default().extend(docs);
                    }
                }
            }
        }
        if let Some((query_id, docs)) = group {
            queries.entry(query_id).or_default().extend(docs);
        }
        queries.par_iter_mut().try_for_each(|(query_id, docs)| {
            let mut seen = HashSet::with_capacity(docs.len());
            if let Some(doc) = docs.iter().find(|d| !seen.insert(d.doc_id.as_str())) {
                return Err(Error::Invalid(format!(
                    "run: query {query_id:?} retrieves document {:?} twice (trec_eval rejects \
                     duplicate documents)",
                    doc.doc_id
                )));
            }
            docs.sort_unstable_by(evaluation_order);
            Ok(())
        })?;
        Ok(Self { queries })
    }

    /// The number of queries with at least one retrieved document.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// The query ids, in byte order.
    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    /// A query's documents in evaluation order (rank 1 first).
    pub fn ranking(&self, query_id: &str) -> Option<&[RankedDoc]> {
        self.queries.get(query_id).map(Vec::as_slice)
    }

    /// Every query with its ranking, queries in byte order.
    pub fn rankings(&self) -> impl Iterator<Item = (&str, &[RankedDoc])> {
        self.queries
            .iter()
            .map(|(q, docs)| (q.as_str(), docs.as_slice()))
    }
}
