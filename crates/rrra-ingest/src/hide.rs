//! Hiding relevance judgements, for false-negative detection experiments: part of each
//! query's relevant documents is moved out of the qrels, so that a method which finds them
//! among the "non-relevant" documents of the remaining (visible) qrels can be scored.
//!
//! Per query, the relevant judgements (grade `>= relevance_threshold`) are sorted by doc id
//! (then grade), and `min(floor(fraction * n), n - min_visible)` of them (none when
//! `n <= min_visible`) are drawn uniformly without replacement (a partial Fisher–Yates
//! shuffle). The random stream is blake3's extendable output keyed by the seed and the query
//! id, so the draw depends on neither the input row order nor the other queries.
//! Non-relevant judgements are never hidden.

use std::collections::BTreeMap;

use rrra_common::records::Qrel;

/// What to hide; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HideSpec {
    /// Share of each query's relevant judgements to hide, in `[0, 1]`, rounded down.
    pub fraction: f64,
    /// Relevant judgements of a query that always stay visible.
    pub min_visible: usize,
    /// The lowest grade that counts as relevant.
    pub relevance_threshold: i32,
}

/// The two parts of the qrels, each in input order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Split {
    pub visible: Vec<Qrel>,
    pub hidden: Vec<Qrel>,
    /// Distinct queries of the input.
    pub queries: u64,
    /// Relevant judgements of the input.
    pub relevant: u64,
}

/// How many of `n` relevant judgements to hide.
pub fn hidden_count(n: usize, spec: &HideSpec) -> usize {
    // The epsilon keeps products such as 0.29 * 100 = 28.999999999999996 at 29.
    let share = (spec.fraction * n as f64 + 1e-9).floor() as usize;
    share.min(n.saturating_sub(spec.min_visible))
}

/// A uniform random stream per (seed, query).
struct QueryRng(blake3::OutputReader);

impl QueryRng {
    fn new(seed: u64, query_id: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"rrra-ingest qrels.hide v1\0");
        hasher.update(&seed.to_le_bytes());
        hasher.update(&(query_id.len() as u64).to_le_bytes());
        hasher.update(query_id.as_bytes());
        QueryRng(hasher.finalize_xof())
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection of the incomplete top range.
    fn below(&mut self, n: u64) -> u64 {
        // 2^64 mod n values at the top would make the low residues more likely.
        let excess = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= u64::MAX - excess {
                return x % n;
            }
        }
    }
}

/// Splits `qrels` into visible and hidden judgements (see the module docs).
pub fn hide_relevant(qrels: Vec<Qrel>, spec: &HideSpec, seed: u64) -> Split {
    // Per query: the input indices of its relevant judgements.
    let mut by_query: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, q) in qrels.iter().enumerate() {
        let relevant = by_query.entry(&q.query_id).or_default();
        if q.relevance >= spec.relevance_threshold {
            relevant.push(i);
        }
    }
    let mut hide = vec![false; qrels.len()];
    let mut split = Split {
        queries: by_query.len() as u64,
        ..Split::default()
    };
    for (query_id, mut relevant) in by_query {
        split.relevant += relevant.len() as u64;
        let k = hidden_count(relevant.len(), spec);
        if k == 0 {
            continue;
        }
        relevant.sort_by(|&a, &b| {
            let (a, b) = (&qrels[a], &qrels[b]);
            (&a.doc_id, a.relevance).cmp(&(&b.doc_id, b.relevance))
        });
        let mut rng = QueryRng::new(seed, query_id);
        let n = relevant.len();
        for i in 0..k {
            let j = i + rng.below((n - i) as u64) as usize;
            relevant.swap(i, j);
            hide[relevant[i]] = true;
        }
    }
    for (q, hidden) in qrels.into_iter().zip(hide) {
        if hidden {
            split.hidden.push(q);
        } else {
            split.visible.push(q);
        }
    }
    split
}

/// Splits `qrels` by query into `(train, test)`: the `round(test_fraction · n)` queries
/// (of the `n` judged ones) with the smallest blake3 hash of (seed, query id) are test
/// queries. The split depends only on the seed and each query's id.
pub fn split_queries(qrels: Vec<Qrel>, test_fraction: f64, seed: u64) -> (Vec<Qrel>, Vec<Qrel>) {
    let mut ids: Vec<&str> = qrels.iter().map(|q| q.query_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let key = |id: &str| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"rrra-ingest qrels.split v1\0");
        hasher.update(&seed.to_le_bytes());
        hasher.update(id.as_bytes());
        *hasher.finalize().as_bytes()
    };
    ids.sort_by_cached_key(|id| (key(id), id.to_string()));
    let n_test = (test_fraction * ids.len() as f64).round() as usize;
    let test: std::collections::HashSet<String> =
        ids[..n_test].iter().map(|s| s.to_string()).collect();
    qrels.into_iter().partition(|q| !test.contains(&q.query_id))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn qrel(q: &str, d: &str, relevance: i32) -> Qrel {
        Qrel {
            query_id: q.into(),
            doc_id: d.into(),
            relevance,
        }
    }

    /// q1: 10 relevant (grades 1..2) + 3 non-relevant; q2: 3 relevant; q3: 1 relevant;
    /// q4: only non-relevant; q5: 2 relevant, one at grade 3.
    fn fixture() -> Vec<Qrel> {
        let mut rows = Vec::new();
        for i in 0..10 {
            rows.push(qrel("q1", &format!("d{i:02}"), 1 + i % 2));
        }
        rows.extend([
            qrel("q1", "n1", 0),
            qrel("q2", "a", 1),
            qrel("q1", "n2", 0),
            qrel("q2", "b", 2),
            qrel("q1", "n3", -1),
            qrel("q2", "c", 1),
            qrel("q3", "x", 1),
            qrel("q4", "y", 0),
            qrel("q5", "u", 3),
            qrel("q5", "v", 1),
        ]);
        rows
    }

    fn spec(fraction: f64, min_visible: usize) -> HideSpec {
        HideSpec {
            fraction,
            min_visible,
            relevance_threshold: 1,
        }
    }

    fn per_query(rows: &[Qrel]) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for q in rows {
            *counts.entry(q.query_id.as_str()).or_default() += 1;
        }
        counts
    }

    fn keys(rows: &[Qrel]) -> BTreeSet<(String, String, i32)> {
        rows.iter()
            .map(|q| (q.query_id.clone(), q.doc_id.clone(), q.relevance))
            .collect()
    }

    #[test]
    fn hidden_counts() {
        // (n, fraction, min_visible) -> hidden
        let cases = [
            (10, 0.5, 1, 5),
            (3, 0.5, 1, 1),
            (1, 0.5, 1, 0),
            (1, 1.0, 0, 1),
            (2, 1.0, 1, 1),
            (10, 0.0, 1, 0),
            (10, 1.0, 3, 7),
            (100, 0.29, 1, 29),
            (7, 0.3, 1, 2),
            (0, 0.5, 0, 0),
            (4, 0.5, 10, 0),
        ];
        for (n, fraction, min_visible, want) in cases {
            assert_eq!(
                hidden_count(n, &spec(fraction, min_visible)),
                want,
                "n={n} fraction={fraction} min_visible={min_visible}"
            );
        }
    }

    #[test]
    fn splits_relevant_judgements_per_query() {
        let input = fixture();
        let split = hide_relevant(input.clone(), &spec(0.5, 1), 42);
        assert_eq!((split.queries, split.relevant), (5, 16));
        let hidden = per_query(&split.hidden);
        let want: BTreeMap<&str, usize> = [("q1", 5), ("q2", 1), ("q5", 1)].into();
        assert_eq!(hidden, want);
        assert!(split.hidden.iter().all(|q| q.relevance >= 1));
        // Every non-relevant judgement stays, and the visible rows keep the input order.
        let order: HashMap<(&str, &str), usize> = input
            .iter()
            .enumerate()
            .map(|(i, q)| ((q.query_id.as_str(), q.doc_id.as_str()), i))
            .collect();
        let positions: Vec<usize> = split
            .visible
            .iter()
            .map(|q| order[&(q.query_id.as_str(), q.doc_id.as_str())])
            .collect();
        assert!(positions.is_sorted());
        for q in input.iter().filter(|q| q.relevance < 1) {
            assert!(split.visible.contains(q), "{q:?}");
        }
        // A partition of the input.
        let (visible, hidden) = (keys(&split.visible), keys(&split.hidden));
        assert!(visible.is_disjoint(&hidden));
        let union: BTreeSet<_> = visible.union(&hidden).cloned().collect();
        assert_eq!(union, keys(&input));
        assert_eq!(split.visible.len() + split.hidden.len(), input.len());
    }

    #[test]
    fn min_visible_and_threshold() {
        let input = fixture();
        let split = hide_relevant(input.clone(), &spec(1.0, 2), 1);
        let hidden = per_query(&split.hidden);
        let want: BTreeMap<&str, usize> = [("q1", 8), ("q2", 1)].into();
        assert_eq!(hidden, want);
        let split = hide_relevant(input.clone(), &spec(1.0, 0), 1);
        assert_eq!(split.hidden.len(), 16);
        let threshold_2 = HideSpec {
            relevance_threshold: 2,
            ..spec(1.0, 0)
        };
        let split = hide_relevant(input, &threshold_2, 1);
        assert_eq!((split.relevant, split.hidden.len()), (7, 7));
        assert!(split.hidden.iter().all(|q| q.relevance >= 2));
    }

    #[test]
    fn deterministic_whatever_the_row_order() {
        let input = fixture();
        let a = hide_relevant(input.clone(), &spec(0.5, 1), 7);
        let mut reversed = input.clone();
        reversed.reverse();
        let b = hide_relevant(reversed, &spec(0.5, 1), 7);
        assert_eq!(keys(&a.hidden), keys(&b.hidden));
        assert_eq!(a, hide_relevant(input.clone(), &spec(0.5, 1), 7));
        // Other queries do not change a query's draw.
        let only_q1: Vec<Qrel> = input.into_iter().filter(|q| q.query_id == "q1").collect();
        let c = hide_relevant(only_q1, &spec(0.5, 1), 7);
        let q1 = |s: &Split| keys(&s.hidden).into_iter().filter(|k| k.0 == "q1").count();
        assert_eq!(keys(&c.hidden).len(), q1(&a));
        assert!(keys(&c.hidden).is_subset(&keys(&a.hidden)));
    }

    #[test]
    fn seeds_differ_and_draws_are_spread() {
        let input = fixture();
        let draws: BTreeSet<BTreeSet<_>> = (0..20)
            .map(|seed| keys(&hide_relevant(input.clone(), &spec(0.5, 1), seed).hidden))
            .collect();
        assert!(draws.len() > 15, "only {} distinct draws", draws.len());
        // Each of q1's ten relevant docs is hidden sometimes and kept sometimes.
        let mut hidden_times: HashMap<String, usize> = HashMap::new();
        for seed in 0..200 {
            for q in hide_relevant(input.clone(), &spec(0.5, 1), seed).hidden {
                if q.query_id == "q1" {
                    *hidden_times.entry(q.doc_id).or_default() += 1;
                }
            }
        }
        assert_eq!(hidden_times.len(), 10);
        // Expected 100 each (5 of 10 per draw); allow wide sampling noise.
        assert!(
            hidden_times.values().all(|&t| (60..=140).contains(&t)),
            "{hidden_times:?}"
        );
    }

    #[test]
    fn query_split_is_disjoint_seeded_and_order_free() {
        let rows: Vec<Qrel> = (0..40)
            .flat_map(|q| (0..3).map(move |d| qrel(&format!("q{q}"), &format!("d{d}"), 1)))
            .collect();
        let (train, test) = split_queries(rows.clone(), 0.25, 7);
        let ids = |r: &[Qrel]| {
            r.iter()
                .map(|q| q.query_id.clone())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!((ids(&train).len(), ids(&test).len()), (30, 10));
        assert!(ids(&train).is_disjoint(&ids(&test)));
        assert_eq!(train.len() + test.len(), rows.len());
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(ids(&split_queries(reversed, 0.25, 7).1), ids(&test));
        assert_ne!(ids(&split_queries(rows.clone(), 0.25, 8).1), ids(&test));
        assert!(split_queries(rows, 0.0, 7).1.is_empty());
    }

    #[test]
    fn uniform_below() {
        let mut rng = QueryRng::new(3, "q");
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[rng.below(3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..=1100).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(rng.below(1), 0);
    }
}
