//! How well a score detects false negatives: relevant documents hidden from the qrels that
//! show up among a query's mined negatives. Each detector ranks the pool of every query; we
//! report ROC-AUC over all pooled (query, negative) pairs, and per-query precision@k and
//! recall@k averaged over the queries with at least one hidden relevant document in their
//! pool.

use std::collections::{BTreeMap, HashSet};

use rrra_common::records::{Scored, split_pool};

/// The detectors compared, each a score where higher means "more likely a false negative".
pub const DETECTORS: [&str; 5] = ["s_fn", "p_rel", "qa_score", "score", "simans"];

/// ROC-AUC of `scores` for `labels` (the probability that a random positive outscores a
/// random negative, ties counting one half), or `None` when either class is empty.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Tied block i..=j shares the mean 1-based rank.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = scores.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// What [`detect`] measured for one detector.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorResult {
    pub auc: f64,
    pub precision_at_k: f64,
    pub recall_at_k: f64,
}

/// The detection measures of every detector, and how the pools were made up.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub detectors: BTreeMap<&'static str, DetectorResult>,
    /// Pooled negatives, and how many of them are hidden relevant documents.
    pub pooled: usize,
    pub pooled_hidden: usize,
    /// Hidden relevant documents in total (pooled or not), over the scored queries.
    pub hidden_total: usize,
    /// Queries with at least one hidden relevant document in their pool.
    pub queries: usize,
}

/// Scores of one pooled negative under each detector, in [`DETECTORS`] order.
fn detector_scores(s: &Scored, s_pos: f64, a: f64, b: f64) -> [f64; 5] {
    let simans = (-a * (s.candidate.score - s_pos - b).powi(2)).exp();
    [s.s_fn, s.p_rel, s.qa_score, s.candidate.score, simans]
}

/// Measures detection over `rows` (one query's rows contiguous or not), whose negatives
/// are the candidates with `positive == false` among each query's `pool` best-ranked ones;
/// `hidden` holds the (query, doc) pairs hidden from the qrels. SimANS uses `(a, b)` with
/// the query's best positive score as `s_pos` (queries without a positive are skipped).
pub fn detect(
    rows: &[Scored],
    hidden: &HashSet<(String, String)>,
    pool: usize,
    k: usize,
    (a, b): (f64, f64),
) -> Detection {
    let mut by_query: BTreeMap<&str, Vec<&Scored>> = BTreeMap::new();
    for s in rows {
        by_query.entry(&s.candidate.query_id).or_default().push(s);
    }
    let mut all_scores: Vec<Vec<f64>> = vec![Vec::new(); DETECTORS.len()];
    let mut labels = Vec::new();
    let mut prec = vec![0.0; DETECTORS.len()];
    let mut rec = vec![0.0; DETECTORS.len()];
    let (mut queries, mut hidden_total) = (0usize, 0usize);
    for (query, group) in &by_query {
        let Some(s_pos) = group
            .iter()
            .filter(|s| s.candidate.positive)
            .map(|s| s.candidate.score)
            .reduce(f64::max)
        else {
            continue;
        };
        hidden_total += hidden.iter().filter(|(q, _)| q == query).count();
        let (_, negatives) = split_pool(group.iter(), pool, |s| &s.candidate);
        let is_hidden: Vec<bool> = negatives
            .iter()
            .map(|s| hidden.contains(&(query.to_string(), s.candidate.doc_id.clone())))
            .collect();
        let scores: Vec<[f64; 5]> = negatives
            .iter()
            .map(|s| detector_scores(s, s_pos, a, b))
            .collect();
        for (d, column) in all_scores.iter_mut().enumerate() {
            column.extend(scores.iter().map(|s| s[d]));
        }
        labels.extend(&is_hidden);
        let n_hidden = is_hidden.iter().filter(|&&h| h).count();
        if n_hidden == 0 {
            continue;
        }
        queries += 1;
        for d in 0..DETECTORS.len() {
            let mut order: Vec<usize> = (0..negatives.len()).collect();
            // Highest score first; ties broken by the first-stage order.
            order.sort_by(|&x, &y| scores[y][d].total_cmp(&scores[x][d]).then(x.cmp(&y)));
            let hits = order.iter().take(k).filter(|&&i| is_hidden[i]).count();
            prec[d] += hits as f64 / k as f64;
            rec[d] += hits as f64 / n_hidden as f64;
        }
    }
    let q = queries.max(1) as f64;
    let detectors = DETECTORS
        .iter()
        .enumerate()
        .map(|(d, &name)| {
            (
                name,
                DetectorResult {
                    auc: roc_auc(&all_scores[d], &labels).unwrap_or(f64::NAN),
                    precision_at_k: prec[d] / q,
                    recall_at_k: rec[d] / q,
                },
            )
        })
        .collect();
    Detection {
        detectors,
        pooled: labels.len(),
        pooled_hidden: labels.iter().filter(|&&h| h).count(),
        hidden_total,
        queries,
    }
}

#[cfg(test)]
mod tests {
    use rrra_common::records::Candidate;

    use super::*;

    #[test]
    fn auc_counts_pairs_and_halves_ties() {
        assert_eq!(roc_auc(&[0.9, 0.1, 0.5], &[true, false, false]), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.9, 0.5], &[true, false, false]), Some(0.0));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        // Positives 0.8, 0.4; negatives 0.6, 0.2, 0.4: pairs won 2 + 1 + 0.5 of 6.
        let auc = roc_auc(
            &[0.8, 0.4, 0.6, 0.2, 0.4],
            &[true, true, false, false, false],
        );
        assert!((auc.unwrap() - 4.5 / 6.0).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.3], &[true]), None);
    }

    fn row(q: &str, d: &str, rank: u32, score: f64, positive: bool, s_fn: f64) -> Scored {
        Scored {
            candidate: Candidate {
                query_id: q.into(),
                doc_id: d.into(),
                rank,
                score,
                positive,
            },
            qa_score: score,
            s_fn,
            p_rel: 1.0 - s_fn,
        }
    }

    #[test]
    fn a_perfect_detector_scores_one_and_an_inverted_one_zero() {
        let rows = vec![
            row("q1", "p", 1, 0.9, true, 0.0),
            row("q1", "h", 2, 0.5, false, 0.9),
            row("q1", "n1", 3, 0.8, false, 0.1),
            row("q1", "n2", 4, 0.7, false, 0.2),
            row("q2", "p", 1, 0.9, true, 0.0),
            row("q2", "n3", 2, 0.6, false, 0.3),
            // A query with no positive is skipped.
            row("q3", "x", 1, 0.6, false, 0.3),
        ];
        let hidden: HashSet<(String, String)> =
            [("q1".into(), "h".into()), ("q1".into(), "gone".into())]
                .into_iter()
                .collect();
        let d = detect(&rows, &hidden, 200, 1, (200.0, 0.0));
        assert_eq!(
            (d.pooled, d.pooled_hidden, d.hidden_total, d.queries),
            (4, 1, 2, 1)
        );
        let s_fn = &d.detectors["s_fn"];
        assert_eq!(
            (s_fn.auc, s_fn.precision_at_k, s_fn.recall_at_k),
            (1.0, 1.0, 1.0)
        );
        let p_rel = &d.detectors["p_rel"];
        assert_eq!((p_rel.auc, p_rel.precision_at_k), (0.0, 0.0));
        // The raw score ranks the hidden doc last of q1's three and below q2's n3.
        assert_eq!(d.detectors["score"].auc, 0.0);
        // A pool of 1 keeps only q1's rank-2 doc, the hidden one: no negative, no AUC.
        let d1 = detect(&rows, &hidden, 1, 1, (200.0, 0.0));
        assert_eq!(d1.pooled_hidden, 1);
        assert_eq!(d1.pooled, 2);
    }
}
