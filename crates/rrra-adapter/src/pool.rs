//! The labelled pool of a `candidates` artifact: per query, its positives and its `pool`
//! best-ranked negatives, each with its TP/FN/FP/TN class ([`crate::labels`]). Streamed a
//! query at a time for `train.adapter` ([`for_each_pool`]), or held in memory with interned
//! ids for `train.joint` ([`labelled_pool`]).

use std::path::Path;

use rrra_common::columns::{GroupRow, Interner, for_each_query_group};
use rrra_common::schema::ArtifactKind::Candidates;
use rrra_common::{Error, Result};

use crate::labels::{Class, best_positive, classify};

/// The pairs a training run uses, ids interned: each query's positives (in file order)
/// then its `pool` best-ranked negatives (ties by doc id, as
/// [`rrra_common::records::split_pool`]), queries in order of first appearance, with
/// their classes.
#[derive(Debug, Clone)]
pub struct LabelledPool {
    pub queries: Interner,
    pub docs: Interner,
    /// `(query number, document number, class)` per pair.
    pub pairs: Vec<(u32, u32, Class)>,
}

/// Streams the `candidates` artifact `path` one query at a time
/// ([`for_each_query_group`]) and calls `f(query id, pool)` with each query's pool: its
/// positives (in file order) then its `pool` best-ranked negatives (ties by doc id, as
/// [`rrra_common::records::split_pool`]), each `(doc id, class)`. Fails, naming the file,
/// on a query without a positive.
pub fn for_each_pool(
    path: &Path,
    k_p: u32,
    pool: usize,
    mut f: impl FnMut(&str, &[(&str, Class)]) -> Result<()>,
) -> Result<()> {
    for_each_query_group(path, Candidates, |query, rows| {
        let (positives, mut negatives): (Vec<&GroupRow>, Vec<&GroupRow>) =
            rows.iter().partition(|r| r.positive);
        if positives.is_empty() {
            return Err(Error::file(
                path,
                format!(
                    "candidates of query {query:?}: no positive; expected mine.* output with judged positives"
                ),
            ));
        }
        negatives.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.doc_id.cmp(&b.doc_id)));
        negatives.truncate(pool);
        let best = best_positive(positives.iter().map(|r| r.score));
        let labelled: Vec<(&str, Class)> = positives
            .into_iter()
            .chain(negatives)
            .map(|r| {
                let class = classify(r.positive, r.rank, r.score, k_p, best);
                (r.doc_id.as_str(), class)
            })
            .collect();
        f(query, &labelled)
    })?;
    Ok(())
}

/// [`for_each_pool`] kept in memory with its ids interned (in order of first use), for
/// `train.joint`, which matches the pairs to its own training data.
pub fn labelled_pool(path: &Path, k_p: u32, pool: usize) -> Result<LabelledPool> {
    let (mut queries, mut docs) = (Interner::new(), Interner::new());
    let mut pairs = Vec::new();
    for_each_pool(path, k_p, pool, |query, labelled| {
        let q = queries.intern(query);
        for &(doc, class) in labelled {
            pairs.push((q, docs.intern(doc), class));
        }
        Ok(())
    })?;
    Ok(LabelledPool {
        queries,
        docs,
        pairs,
    })
}
