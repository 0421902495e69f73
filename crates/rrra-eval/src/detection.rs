//! How well a score detects false negatives: relevant documents hidden from the qrels that
//! show up among a query's mined negatives. Each detector ranks the pool of every query; we
//! report ROC-AUC over all pooled (query, negative) pairs, and per-query precision@k and
//! recall@k averaged over the queries with at least one hidden relevant document in their
//! pool.
//!
//! The `scored` rows are read in columns ([`ScoredTable`]: ids interned, 48 bytes a row
//! rather than two `String`s and a struct per row).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rrra_common::Result;
use rrra_common::columns::{Interner, for_each_pair_batch};
use rrra_common::records::Scored;
use rrra_common::schema::ArtifactKind;

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

/// One `scored` row with its ids interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub query: u32,
    pub doc: u32,
    pub rank: u32,
    pub score: f64,
    pub positive: bool,
    pub qa_score: f64,
    pub s_fn: f64,
    pub p_rel: f64,
}

/// The rows of a `scored` artifact in columns: ids interned, rows in file order.
#[derive(Debug, Clone, Default)]
pub struct ScoredTable {
    pub queries: Interner,
    pub docs: Interner,
    pub rows: Vec<ScoredPair>,
}

impl ScoredTable {
    /// Reads a `scored` artifact.
    pub fn read(path: &Path) -> Result<Self> {
        let mut t = ScoredTable::default();
        for_each_pair_batch(path, ArtifactKind::Scored, |b| {
            let [qa, s_fn, p_rel] = b.adapter.expect("a scored artifact has adapter columns");
            for i in 0..b.len() {
                let pair = ScoredPair {
                    query: t.queries.intern(b.query_id.value(i)),
                    doc: t.docs.intern(b.doc_id.value(i)),
                    rank: b.rank[i],
                    score: b.score[i],
                    positive: b.positive(i),
                    qa_score: qa[i],
                    s_fn: s_fn[i],
                    p_rel: p_rel[i],
                };
                t.rows.push(pair);
            }
            Ok(())
        })?;
        Ok(t)
    }

    /// The table of records.
    pub fn from_rows(rows: &[Scored]) -> Self {
        let mut t = ScoredTable::default();
        for s in rows {
            let c = &s.candidate;
            let pair = ScoredPair {
                query: t.queries.intern(&c.query_id),
                doc: t.docs.intern(&c.doc_id),
                rank: c.rank,
                score: c.score,
                positive: c.positive,
                qa_score: s.qa_score,
                s_fn: s.s_fn,
                p_rel: s.p_rel,
            };
            t.rows.push(pair);
        }
        t
    }
}

/// Scores of one pooled negative under each detector, in [`DETECTORS`] order.
fn detector_scores(s: &ScoredPair, s_pos: f64, a: f64, b: f64) -> [f64; 5] {
    let simans = (-a * (s.score - s_pos - b).powi(2)).exp();
    [s.s_fn, s.p_rel, s.qa_score, s.score, simans]
}

/// Measures detection over `table` (one query's rows contiguous or not), whose negatives
/// are the candidates with `positive == false` among each query's `pool` best-ranked ones
/// (ties by doc id); `hidden` holds the (query, doc) pairs hidden from the qrels. SimANS
/// uses `(a, b)` with the query's best positive score as `s_pos` (queries without a
/// positive are skipped). Queries are visited in id order.
pub fn detect(
    table: &ScoredTable,
    hidden: &HashSet<(String, String)>,
    pool: usize,
    k: usize,
    (a, b): (f64, f64),
) -> Detection {
    let (ids, docs) = (&table.queries, &table.docs);
    let mut groups: Vec<Vec<&ScoredPair>> = vec![Vec::new(); ids.len()];
    for s in &table.rows {
        groups[s.query as usize].push(s);
    }
    let mut by_id: Vec<u32> = (0..ids.len() as u32).collect();
    by_id.sort_by(|&x, &y| ids.id(x).cmp(ids.id(y)));
    let mut hidden_of: HashMap<&str, usize> = HashMap::new();
    let mut hidden_pairs: HashSet<(u32, u32)> = HashSet::new();
    for (q, d) in hidden {
        *hidden_of.entry(q.as_str()).or_default() += 1;
        if let (Some(q), Some(d)) = (ids.get(q), docs.get(d)) {
            hidden_pairs.insert((q, d));
        }
    }
    let mut all_scores: Vec<Vec<f64>> = vec![Vec::new(); DETECTORS.len()];
    let mut labels = Vec::new();
    let mut prec = vec![0.0; DETECTORS.len()];
    let mut rec = vec![0.0; DETECTORS.len()];
    let (mut queries, mut hidden_total) = (0usize, 0usize);
    for &query in &by_id {
        let group = &groups[query as usize];
        let Some(s_pos) = group
            .iter()
            .filter(|s| s.positive)
            .map(|s| s.score)
            .reduce(f64::max)
        else {
            continue;
        };
        hidden_total += hidden_of.get(ids.id(query)).copied().unwrap_or(0);
        let mut negatives: Vec<&ScoredPair> =
            group.iter().copied().filter(|s| !s.positive).collect();
        negatives.sort_by(|x, y| {
            x.rank
                .cmp(&y.rank)
                .then_with(|| docs.id(x.doc).cmp(docs.id(y.doc)))
        });
        negatives.truncate(pool);
        let is_hidden: Vec<bool> = negatives
            .iter()
            .map(|s| hidden_pairs.contains(&(query, s.doc)))
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
        let rows = ScoredTable::from_rows(&rows);
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
