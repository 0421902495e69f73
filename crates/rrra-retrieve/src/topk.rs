//! A bounded best-k collector shared by the sparse and dense searchers. Hits are ordered by
//! score, descending (IEEE total order), then by document index, ascending: a strict total
//! order, so the kept set and its order never depend on insertion order or threading.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One kept hit. `Ord` puts better hits first (`a < b` when `a` ranks above `b`), so the top
/// of a `BinaryHeap` is the worst kept hit.
#[derive(Debug, Clone, Copy)]
struct Hit {
    score: f32,
    doc: u32,
}

impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.doc.cmp(&other.doc))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Hit {}

/// Keeps the `k` best `(doc, score)` pairs pushed into it. NaN scores are never kept, nor
/// scores below its floor.
#[derive(Debug, Clone)]
pub(crate) struct BestK {
    k: usize,
    /// Scores below it are dropped: a partial collector whose hits will be merged into
    /// another takes that one's threshold as floor, since nothing below it can enter there.
    floor: f32,
    heap: BinaryHeap<Hit>,
}

impl BestK {
    pub(crate) fn new(k: usize) -> Self {
        Self::with_floor(k, f32::NEG_INFINITY)
    }

    /// A collector that drops scores below `floor` (`-inf`: none).
    pub(crate) fn with_floor(k: usize, floor: f32) -> Self {
        BestK {
            k,
            floor,
            heap: BinaryHeap::new(),
        }
    }

    /// A score that every hit still able to enter must reach (`>=`): the worst kept score
    /// once `k` hits are kept, the floor before. A cheap pre-filter for hot loops.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            self.floor
        } else {
            self.heap.peek().map_or(f32::INFINITY, |h| h.score)
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, doc: u32, score: f32) {
        if score.is_nan() || score < self.floor {
            return;
        }
        let hit = Hit { score, doc };
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && hit < *worst
        {
            *worst = hit;
        }
    }

    /// Pushes every hit of `other`. The kept set is the best `k` of both under a strict
    /// total order, so it does not depend on the order of pushes or merges.
    pub(crate) fn merge(&mut self, other: &BestK) {
        let mut threshold = self.threshold();
        for hit in &other.heap {
            if hit.score >= threshold {
                self.push(hit.doc, hit.score);
                threshold = self.threshold();
            }
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|h| (h.doc, h.score))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_with_ties_by_doc() {
        let mut best = BestK::new(3);
        assert_eq!(best.threshold(), f32::NEG_INFINITY);
        for (doc, score) in [
            (5, 1.0),
            (1, 2.0),
            (9, 1.0),
            (3, 1.0),
            (7, f32::NAN),
            (0, 0.5),
        ] {
            best.push(doc, score);
        }
        assert_eq!(best.threshold(), 1.0);
        assert_eq!(best.into_sorted(), [(1, 2.0), (3, 1.0), (5, 1.0)]);
    }

    #[test]
    fn floor_and_merge_keep_the_best_k_of_both() {
        let hits = [
            (4, 0.5),
            (2, 3.0),
            (8, 1.0),
            (6, 1.0),
            (1, 1.0),
            (3, 2.0),
            (0, -1.0),
        ];
        let mut all = BestK::new(4);
        for &(doc, score) in &hits {
            all.push(doc, score);
        }
        let want = all.into_sorted();
        // Split in two, the second with a floor at the first's threshold: the floor only
        // drops what cannot enter, and a tie with the threshold is kept.
        let mut first = BestK::new(4);
        for &(doc, score) in &hits[..4] {
            first.push(doc, score);
        }
        assert_eq!(first.threshold(), 0.5);
        let mut second = BestK::with_floor(4, first.threshold());
        assert_eq!(second.threshold(), 0.5);
        for &(doc, score) in &hits[4..] {
            second.push(doc, score);
        }
        assert_eq!(second.clone().into_sorted(), [(3, 2.0), (1, 1.0)]);
        let mut a = first.clone();
        a.merge(&second);
        assert_eq!(a.into_sorted(), want);
        let mut b = second;
        b.merge(&first);
        assert_eq!(b.into_sorted(), want);
    }

    #[test]
    fn k_zero_keeps_nothing() {
        let mut best = BestK::new(0);
        best.push(0, 1.0);
        assert_eq!(best.threshold(), f32::INFINITY);
        assert!(best.into_sorted().is_empty());
    }
}
