//! In-memory rows of each artifact kind. These are the Rust side of the Arrow schemas in
//! [`crate::schema`]; parsers produce them and stages consume them.

/// One document of a corpus. `title` is empty when the source has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// One query (topic). `answers` holds the gold answer strings of QA-style data (DPR, NQ,
/// TriviaQA) and is `None` elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: String,
    pub text: String,
    pub answers: Option<Vec<String>>,
}

/// One relevance judgement. Grades are integers as in TREC; `<= 0` is non-relevant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qrel {
    pub query_id: String,
    pub doc_id: String,
    pub relevance: i32,
}

/// One line of a ranked run. `rank` is 1-based and informative only: evaluation orders by
/// `score` (then by doc id, as trec_eval does).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub query_id: String,
    pub doc_id: String,
    pub rank: u32,
    pub score: f64,
}

/// One measurement: a measure's value for one query, or for the aggregate (`query_id == "all"`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub query_id: String,
    pub measure: String,
    pub value: f64,
}

/// One mined candidate of a query. `rank` is 1-based in the full first-stage ranking
/// (positives included); judged positives are rows with `positive == true` and are never
/// negatives. A positive the ranking did not reach still has its exact `score` and
/// `rank == 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub query_id: String,
    pub doc_id: String,
    pub rank: u32,
    pub score: f64,
    pub positive: bool,
}

/// Splits one query's rows into its positives and its pool of negatives: the `pool`
/// best-ranked negatives, ties broken by doc id. The adapter, the resamplers and the
/// false-negative detection all cut the pool this way, so they see the same negatives.
pub fn split_pool<T>(
    rows: impl IntoIterator<Item = T>,
    pool: usize,
    candidate: impl Fn(&T) -> &Candidate,
) -> (Vec<T>, Vec<T>) {
    let (positives, mut negatives): (Vec<T>, Vec<T>) =
        rows.into_iter().partition(|r| candidate(r).positive);
    negatives.sort_by(|a, b| {
        let (a, b) = (candidate(a), candidate(b));
        a.rank.cmp(&b.rank).then_with(|| a.doc_id.cmp(&b.doc_id))
    });
    negatives.truncate(pool);
    (positives, negatives)
}

/// A candidate scored by the false-negative adapter. `qa_score = cos(q, a)` (the reranking
/// score), `s_fn` in `[0, 1]` the false-negative likelihood from `cos(a, c)`, `p_rel` the
/// class head's probability that the pair is labelled relevant (TP or FN).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub candidate: Candidate,
    pub qa_score: f64,
    pub s_fn: f64,
    pub p_rel: f64,
}

/// One training example: a query, a positive and its sampled negatives. `weights`, when
/// present, has one entry per negative (a per-negative weight in the contrastive loss).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub query_id: String,
    pub positive_id: String,
    pub negatives: Vec<String>,
    pub weights: Option<Vec<f32>>,
}

/// One logged optimiser step of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainLogRow {
    pub step: u32,
    pub epoch: u32,
    pub loss: f64,
    pub lr: f64,
    pub samples_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_the_best_ranked_negatives_ties_by_doc_id() {
        let c = |doc: &str, rank: u32, positive: bool| Candidate {
            query_id: "q".into(),
            doc_id: doc.into(),
            rank,
            score: 0.0,
            positive,
        };
        let rows = vec![
            c("d9", 3, false),
            c("p2", 0, true),
            c("d2", 2, false),
            c("d1", 2, false),
            c("p1", 1, true),
            c("d0", 5, false),
        ];
        let (pos, pool) = split_pool(rows, 3, |r| r);
        let ids = |v: &[Candidate]| v.iter().map(|c| c.doc_id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&pos),
            ["p2", "p1"],
            "positives kept whatever their rank"
        );
        assert_eq!(ids(&pool), ["d1", "d2", "d9"]);
    }
}
