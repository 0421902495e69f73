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

/// Keeps the `k` best `(doc, score)` pairs pushed into it. NaN scores are never kept.
#[derive(Debug, Clone)]
pub(crate) struct BestK {
    k: usize,
    heap: BinaryHeap<Hit>,
}

impl BestK {
    pub(crate) fn new(k: usize) -> Self {
        BestK {
            k,
            heap: BinaryHeap::with_capacity(k),
        }
    }

    /// A score that every hit still able to enter must reach (`>=`): the worst kept score
    /// once `k` hits are kept, `-inf` before. A cheap pre-filter for hot loops.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |h| h.score)
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, doc: u32, score: f32) {
        if score.is_nan() {
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
    fn k_zero_keeps_nothing() {
        let mut best = BestK::new(0);
        best.push(0, 1.0);
        assert_eq!(best.threshold(), f32::INFINITY);
        assert!(best.into_sorted().is_empty());
    }
}
