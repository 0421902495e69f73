//! The four classes of a (query, candidate) pair, from the stage-1 ranking (METHOD.md):
//! predicted-relevant means the bi-encoder ranks the candidate in its top `k_p`, or scores a
//! non-positive at least as high as the query's best positive; gold means labelled relevant.

use rrra_common::records::Candidate;

/// TP = gold ∧ predicted, FN = gold ∧ ¬predicted, FP = ¬gold ∧ predicted (where unlabelled
/// relevant documents hide), TN = the rest. The discriminant is the head's output index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Tp = 0,
    Fn = 1,
    Fp = 2,
    Tn = 3,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Tp, Class::Fn, Class::Fp, Class::Tn];

    pub fn name(self) -> &'static str {
        match self {
            Class::Tp => "TP",
            Class::Fn => "FN",
            Class::Fp => "FP",
            Class::Tn => "TN",
        }
    }

    /// Whether the pair is labelled relevant.
    pub fn gold(self) -> bool {
        matches!(self, Class::Tp | Class::Fn)
    }
}

/// The class of one candidate. `best_positive` is the highest score among the query's
/// positives. A positive the ranking did not reach (`rank == 0`) is never predicted.
pub fn label(c: &Candidate, k_p: u32, best_positive: f64) -> Class {
    classify(c.positive, c.rank, c.score, k_p, best_positive)
}

/// [`label`] of a candidate given by its columns.
pub fn classify(positive: bool, rank: u32, score: f64, k_p: u32, best_positive: f64) -> Class {
    let in_top = rank >= 1 && rank <= k_p;
    match (positive, in_top || (!positive && score >= best_positive)) {
        (true, true) => Class::Tp,
        (true, false) => Class::Fn,
        (false, true) => Class::Fp,
        (false, false) => Class::Tn,
    }
}

/// The highest of a query's positive scores (`+inf` when it has none, so that no negative
/// is predicted by score).
pub fn best_positive(positive_scores: impl IntoIterator<Item = f64>) -> f64 {
    positive_scores.into_iter().fold(
        f64::INFINITY,
        |m, s| {
            if m.is_infinite() { s } else { m.max(s) }
        },
    )
}

/// The classes of one query's candidates (all rows of one query), in order.
pub fn label_query(rows: &[Candidate], k_p: u32) -> Vec<Class> {
    let best = best_positive(rows.iter().filter(|c| c.positive).map(|c| c.score));
    rows.iter().map(|c| label(c, k_p, best)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(doc: &str, rank: u32, score: f64, positive: bool) -> Candidate {
        Candidate {
            query_id: "q".into(),
            doc_id: doc.into(),
            rank,
            score,
            positive,
        }
    }

    #[test]
    fn labels_follow_the_stage_one_ranking() {
        // Ranking: n1 (0.9) > p1 (0.8) > n2 (0.7) > n3 (0.6) > n4 (0.5) ... p2 unreached.
        let rows = vec![
            cand("n1", 1, 0.9, false),
            cand("p1", 2, 0.8, true),
            cand("n2", 3, 0.7, false),
            cand("n3", 4, 0.6, false),
            cand("n4", 5, 0.5, false),
            cand("p2", 0, 0.1, true),
            cand("p3", 5, 0.5, true),
        ];
        let classes = label_query(&rows, 3);
        use Class::*;
        // n1 outranks the best positive and is in the top 3: FP. n2 is in the top 3: FP.
        // n3 is below both cut-offs: TN. p1 is in the top 3: TP; p2 unreached and p3 at rank
        // 5 are FN.
        assert_eq!(classes, vec![Fp, Tp, Fp, Tn, Tn, Fn, Fn]);
        // With k_p = 0 only "scores at least as high as the best positive" predicts.
        assert_eq!(label_query(&rows, 0), vec![Fp, Fn, Tn, Tn, Tn, Fn, Fn]);
    }

    #[test]
    fn a_tie_with_the_best_positive_counts_as_predicted() {
        let rows = vec![cand("p", 4, 0.5, true), cand("n", 5, 0.5, false)];
        assert_eq!(label_query(&rows, 1), vec![Class::Fn, Class::Fp]);
    }
}
