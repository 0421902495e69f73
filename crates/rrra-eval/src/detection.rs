//! How well a score detects false negatives: relevant documents hidden from the qrels that
//! show up among a query's mined negatives. Each detector ranks the pool of every query; we
//! report ROC-AUC over all pooled (query, negative) pairs, and per-query precision@k and
//! recall@k averaged over the queries with at least one hidden relevant document in their
//! pool.
//!
//! The `scored` rows are streamed one query at a time, twice
//! ([`rrra_common::columns::for_each_query_group`]): the first pass keeps the detector
//! scores of the pooled hidden documents (a few per query), the second counts, for every
//! other pooled negative, the hidden ones it outranks. Memory holds one query's rows, the
//! hidden qrels (packed, [`Hidden`]), the pooled hidden scores (40 B each) and, per query
//! with a hidden document in its pool, its hit counts (28 B), not the rows; the AUC is
//! exact (the Mann-Whitney count equals the rank-sum form).

use std::collections::BTreeMap;
use std::path::Path;

use rrra_common::columns::{GroupRow, for_each_query_group};
use rrra_common::schema::ArtifactKind;
use rrra_common::{Error, Result};

use crate::hidden::Hidden;

/// The detectors compared, each a score where higher means "more likely a false negative".
pub const DETECTORS: [&str; 5] = ["s_fn", "p_rel", "qa_score", "score", "simans"];

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

/// Scores of one pooled negative under each detector, in [`DETECTORS`] order (`-0.0` read
/// as `0.0`, so that ties are those of `==`).
fn detector_scores(s: &GroupRow, s_pos: f64, a: f64, b: f64) -> [f64; 5] {
    let simans = (-a * (s.score - s_pos - b).powi(2)).exp();
    let [qa_score, s_fn, p_rel] = s.adapter;
    [s_fn, p_rel, qa_score, s.score, simans].map(|x| x + 0.0)
}

/// One query's pooled negatives (the `pool` best-ranked rows with `positive == false`,
/// ties by doc id) and the best positive score; `None` for a query without a positive.
fn pooled(rows: &[GroupRow], pool: usize) -> Option<(f64, Vec<&GroupRow>)> {
    let s_pos = rows
        .iter()
        .filter(|s| s.positive)
        .map(|s| s.score)
        .reduce(f64::max)?;
    let mut negatives: Vec<&GroupRow> = rows.iter().filter(|s| !s.positive).collect();
    negatives.sort_by(|x, y| x.rank.cmp(&y.rank).then_with(|| x.doc_id.cmp(&y.doc_id)));
    negatives.truncate(pool);
    Some((s_pos, negatives))
}

/// Measures detection over the `scored` artifact `path` (each query's rows contiguous),
/// whose negatives are the candidates with `positive == false` among each query's `pool`
/// best-ranked ones (ties by doc id); `hidden` holds the documents hidden from each query's
/// qrels. SimANS uses `(a, b)` with the query's best positive score as `s_pos`
/// (queries without a positive are skipped). Per-query measures are averaged in query id
/// order. Fails, naming the record, on a non-finite score.
pub fn detect(
    path: &Path,
    hidden: &Hidden,
    pool: usize,
    k: usize,
    (a, b): (f64, f64),
) -> Result<Detection> {
    // Pass 1: the hidden documents' scores, per-query hits in the top k (with the query's
    // place in id order and its pooled hidden count), the counts.
    let mut positives: Vec<Vec<f64>> = vec![Vec::new(); DETECTORS.len()];
    let mut per_query: Vec<(u32, [u32; 5], u32)> = Vec::new();
    let (mut pooled_n, mut hidden_total) = (0usize, 0usize);
    for_each_query_group(path, ArtifactKind::Scored, |query, rows| {
        if let Some(r) = rows
            .iter()
            .find(|r| !r.score.is_finite() || r.adapter.iter().any(|x| !x.is_finite()))
        {
            return Err(Error::file(
                path,
                format!(
                    "record {}: query {query:?} doc {:?} has a non-finite score; expected finite scores",
                    r.record, r.doc_id
                ),
            ));
        }
        let Some((s_pos, negatives)) = pooled(rows, pool) else {
            return Ok(());
        };
        let hidden_docs = hidden.query(query);
        hidden_total += hidden_docs.len();
        pooled_n += negatives.len();
        let is_hidden: Vec<bool> = negatives
            .iter()
            .map(|s| hidden_docs.contains(&s.doc_id))
            .collect();
        let scores: Vec<[f64; 5]> = negatives
            .iter()
            .map(|s| detector_scores(s, s_pos, a, b))
            .collect();
        for (s, _) in scores.iter().zip(&is_hidden).filter(|(_, h)| **h) {
            for (d, column) in positives.iter_mut().enumerate() {
                column.push(s[d]);
            }
        }
        let n_hidden = is_hidden.iter().filter(|&&h| h).count();
        if n_hidden == 0 {
            return Ok(());
        }
        let mut hits = [0u32; 5];
        for (d, hit) in hits.iter_mut().enumerate() {
            let mut order: Vec<usize> = (0..negatives.len()).collect();
            // Highest score first; ties broken by the first-stage order.
            order.sort_by(|&x, &y| scores[y][d].total_cmp(&scores[x][d]).then(x.cmp(&y)));
            let n = order.iter().take(k).filter(|&&i| is_hidden[i]).count();
            *hit = u32::try_from(n).expect("a pool of fewer than 2^32");
        }
        let place = u32::try_from(hidden_docs.order()).expect("fewer than 2^32 hidden pairs");
        let n_hidden = u32::try_from(n_hidden).expect("a pool of fewer than 2^32");
        per_query.push((place, hits, n_hidden));
        Ok(())
    })?;
    for column in &mut positives {
        column.sort_by(f64::total_cmp);
    }
    // Pass 2: per detector, twice the Mann-Whitney count of (hidden, other) pairs the
    // hidden document wins (a tie counts one).
    let mut twice_u = [0u64; 5];
    for_each_query_group(path, ArtifactKind::Scored, |query, rows| {
        let Some((s_pos, negatives)) = pooled(rows, pool) else {
            return Ok(());
        };
        let hidden_docs = hidden.query(query);
        for s in negatives
            .iter()
            .filter(|s| !hidden_docs.contains(&s.doc_id))
        {
            let scores = detector_scores(s, s_pos, a, b);
            for (d, column) in positives.iter().enumerate() {
                let below = column.partition_point(|&x| x.total_cmp(&scores[d]).is_lt());
                let above = column.partition_point(|&x| x.total_cmp(&scores[d]).is_le());
                twice_u[d] += 2 * (column.len() - above) as u64 + (above - below) as u64;
            }
        }
        Ok(())
    })?;
    // Summed in query id order (as the measures always were, so they keep their bits).
    per_query.sort_unstable_by_key(|x| x.0);
    let queries = per_query.len();
    let q = queries.max(1) as f64;
    let pooled_hidden = positives[0].len();
    let negatives = pooled_n - pooled_hidden;
    let detectors = DETECTORS
        .iter()
        .enumerate()
        .map(|(d, &name)| {
            let (mut prec, mut rec) = (0.0, 0.0);
            for &(_, hits, n_hidden) in &per_query {
                prec += f64::from(hits[d]) / k as f64;
                rec += f64::from(hits[d]) / f64::from(n_hidden);
            }
            let auc = if pooled_hidden == 0 || negatives == 0 {
                f64::NAN
            } else {
                let p = pooled_hidden as f64;
                (twice_u[d] as f64 / 2.0) / (p * negatives as f64)
            };
            (
                name,
                DetectorResult {
                    auc,
                    precision_at_k: prec / q,
                    recall_at_k: rec / q,
                },
            )
        })
        .collect();
    Ok(Detection {
        detectors,
        pooled: pooled_n,
        pooled_hidden,
        hidden_total,
        queries,
    })
}

#[cfg(test)]
mod tests {
    use rrra_common::artifact::write_rows;
    use rrra_common::records::{Candidate, Scored};

    use super::*;

    /// The rank-sum ROC-AUC (ties share their mean rank): the oracle of the streaming count.
    /// ROC-AUC of `scores` for `labels` (the probability that a random positive outscores a
    /// random negative, ties counting one half), or `None` when either class is empty.
    fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
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

    fn hidden_map(pairs: &[(&str, &str)]) -> Hidden {
        let mut hidden = Hidden::new();
        for (q, d) in pairs {
            hidden.push(q, d);
        }
        hidden.finish()
    }

    fn detect_rows(rows: Vec<Scored>, hidden: &Hidden, pool: usize, k: usize) -> Result<Detection> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scored.parquet");
        write_rows(&path, rows).unwrap();
        detect(&path, hidden, pool, k, (200.0, 0.0))
    }

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
        let hidden = hidden_map(&[("q1", "h"), ("q1", "gone")]);
        let d = detect_rows(rows.clone(), &hidden, 200, 1).unwrap();
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
        let d1 = detect_rows(rows.clone(), &hidden, 1, 1).unwrap();
        assert_eq!(d1.pooled_hidden, 1);
        assert_eq!(d1.pooled, 2);
        // A non-finite score is refused, naming its record.
        let mut bad = rows;
        bad[3].s_fn = f64::NAN;
        let err = detect_rows(bad, &hidden, 200, 1).unwrap_err().to_string();
        assert!(err.contains("record 4") && err.contains("\"n2\""), "{err}");
    }

    #[test]
    fn the_streaming_auc_equals_the_rank_sum_auc_with_ties() {
        // 50 queries of 30 candidates; coarse scores (many ties, across queries too).
        let mut state = 12345u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let (mut rows, mut hidden) = (Vec::new(), Vec::new());
        let names: Vec<(String, Vec<String>)> = (0..50)
            .map(|q| (format!("q{q}"), (0..30).map(|d| format!("d{d}")).collect()))
            .collect();
        for (q, docs) in &names {
            for (r, d) in docs.iter().enumerate() {
                let mut s = row(q, d, r as u32 + 1, next(5) as f64 / 4.0, r == 0, 0.0);
                s.s_fn = next(7) as f64 / 6.0;
                s.p_rel = next(3) as f64 / 2.0;
                s.qa_score = next(9) as f64 / 8.0;
                rows.push(s);
                if r > 0 && next(6) == 0 {
                    hidden.push((q.as_str(), d.as_str()));
                }
            }
        }
        let hidden_pairs = hidden;
        let hidden = hidden_map(&hidden_pairs);
        let pool = 20;
        let d = detect_rows(rows.clone(), &hidden, pool, 5).unwrap();
        // The oracle: every pooled negative's detector scores, labelled.
        let (mut columns, mut labels) = (vec![Vec::new(); 5], Vec::new());
        for chunk in rows.chunks(30) {
            let q = &chunk[0].candidate.query_id;
            let s_pos = chunk[0].candidate.score;
            for s in chunk.iter().skip(1).take(pool) {
                let c = &s.candidate;
                let simans = (-200.0 * (c.score - s_pos).powi(2)).exp();
                let scores = [s.s_fn, s.p_rel, s.qa_score, c.score, simans];
                for (column, x) in columns.iter_mut().zip(scores) {
                    column.push(x);
                }
                labels.push(hidden_pairs.contains(&(q.as_str(), c.doc_id.as_str())));
            }
        }
        assert_eq!(d.pooled, labels.len());
        assert!(d.pooled_hidden > 10 && d.pooled_hidden < d.pooled);
        for (i, name) in DETECTORS.iter().enumerate() {
            let want = roc_auc(&columns[i], &labels).unwrap();
            assert_eq!(d.detectors[name].auc, want, "{name}");
        }
    }
}
