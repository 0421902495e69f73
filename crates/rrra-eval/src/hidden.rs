//! The relevant documents hidden from the qrels (`eval.fn_detection`'s `hidden` input),
//! packed for O(hidden pairs) memory at scale: every distinct `(query, doc)` pair is its
//! bytes in one buffer plus 16 bytes (offset and lengths), sorted by query then document
//! (byte order), rather than a map of `String`s (~150 B a pair).

use std::ops::Range;

/// Hidden `(query, doc)` pairs: [`Hidden::push`] them, then [`Hidden::finish`].
#[derive(Debug, Clone, Default)]
pub struct Hidden {
    bytes: Vec<u8>,
    /// `(offset of the query's bytes, query length, doc length)`; the doc follows the query.
    pairs: Vec<(u64, u32, u32)>,
    sorted: bool,
}

/// One query's hidden documents (see [`Hidden::query`]).
#[derive(Debug, Clone)]
pub struct HiddenDocs<'a> {
    hidden: &'a Hidden,
    range: Range<usize>,
}

impl Hidden {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair (duplicates are dropped by [`Hidden::finish`]).
    pub fn push(&mut self, query: &str, doc: &str) {
        let len = |s: &str| u32::try_from(s.len()).expect("an id shorter than 4 GiB");
        self.pairs
            .push((self.bytes.len() as u64, len(query), len(doc)));
        self.bytes.extend_from_slice(query.as_bytes());
        self.bytes.extend_from_slice(doc.as_bytes());
        self.sorted = false;
    }

    fn query_of(&self, p: &(u64, u32, u32)) -> &[u8] {
        &self.bytes[p.0 as usize..p.0 as usize + p.1 as usize]
    }

    fn doc_of(&self, p: &(u64, u32, u32)) -> &[u8] {
        let start = p.0 as usize + p.1 as usize;
        &self.bytes[start..start + p.2 as usize]
    }

    /// Sorts the pairs by query then document and drops duplicates.
    pub fn finish(mut self) -> Self {
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.sort_unstable_by(|a, b| {
            (self.query_of(a), self.doc_of(a)).cmp(&(self.query_of(b), self.doc_of(b)))
        });
        pairs.dedup_by(|a, b| {
            (self.query_of(a), self.doc_of(a)) == (self.query_of(b), self.doc_of(b))
        });
        self.pairs = pairs;
        self.sorted = true;
        self
    }

    /// The hidden documents of `query` (none: an empty set).
    pub fn query(&self, query: &str) -> HiddenDocs<'_> {
        assert!(self.sorted, "Hidden::finish before lookups");
        let q = query.as_bytes();
        let start = self.pairs.partition_point(|p| self.query_of(p) < q);
        let end = start + self.pairs[start..].partition_point(|p| self.query_of(p) == q);
        HiddenDocs {
            hidden: self,
            range: start..end,
        }
    }
}

impl HiddenDocs<'_> {
    /// How many distinct documents are hidden.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A number for the query, increasing in query-id byte order (for queries with hidden
    /// documents; shared by those without).
    pub fn order(&self) -> usize {
        self.range.start
    }

    pub fn contains(&self, doc: &str) -> bool {
        let h = self.hidden;
        h.pairs[self.range.clone()]
            .binary_search_by(|p| h.doc_of(p).cmp(doc.as_bytes()))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_found_by_query_and_doc_in_id_order() {
        let mut h = Hidden::new();
        for (q, d) in [
            ("q2", "b"),
            ("q10", "x"),
            ("q2", "a"),
            ("q2", "b"),
            ("q", "q2"),
        ] {
            h.push(q, d);
        }
        let h = h.finish();
        let q2 = h.query("q2");
        assert_eq!(q2.len(), 2);
        assert!(q2.contains("a") && q2.contains("b") && !q2.contains("x"));
        // "q" + "q2" must not read as query "qq2" or "q2" (lengths are kept).
        assert!(h.query("qq2").is_empty() && h.query("q").contains("q2"));
        assert!(!h.query("q3").contains("a"));
        // Byte order of query ids: "q" < "q10" < "q2".
        let orders = ["q", "q10", "q2"].map(|q| h.query(q).order());
        assert!(orders[0] < orders[1] && orders[1] < orders[2], "{orders:?}");
    }
}
