//! An in-memory BM25 index: inverted lists built in parallel, term-at-a-time scoring.
//!
//! Scoring follows Lucene's `BM25Similarity` before Lucene 8 (as in Anserini's BEIR
//! baselines, up to a constant): for each query term `t` and document `d`,
//! `idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))` with
//! `idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`. Lucene 8+ drops the `(k1 + 1)` factor, which
//! scales every score equally and changes no ranking. Unlike Lucene, document lengths are exact
//! (Lucene stores them in one lossy byte). `N` and `avgdl` count, as Lucene does, only
//! documents with at least one term; `dl` is the number of terms after stop-word removal.
//!
//! A query is a bag of words as in Anserini's `BagOfWordsQueryGenerator`: a term occurring `n`
//! times in the query counts `n` times (Anserini boosts its term query by `n`).
//!
//! Postings hold the document index and the precomputed term-frequency part of the score (an
//! `f32`), so memory is about 8 bytes per posting plus the vocabulary.

use std::borrow::Cow;
use std::collections::HashMap;

use rayon::prelude::*;
use rrra_common::progress::Progress;
use rrra_common::records::Doc;
use rrra_common::{Error, Result};

use crate::analyzer::Analyzer;
use crate::topk::BestK;

/// BM25 parameters. Defaults are Anserini's (`k1 = 0.9`, `b = 0.4`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 0.9, b: 0.4 }
    }
}

/// Documents analysed per parallel work unit while indexing.
const INDEX_CHUNK: usize = 4096;

/// An immutable BM25 index over a corpus; documents are numbered by their position.
#[derive(Debug)]
pub struct Bm25Index {
    analyzer: Analyzer,
    params: Bm25Params,
    num_docs: usize,
    vocab: HashMap<String, u32>,
    /// `idf` per term id.
    idf: Vec<f32>,
    /// Term `t`'s postings are `post_docs[offsets[t]..offsets[t + 1]]`, ascending by document.
    offsets: Vec<usize>,
    post_docs: Vec<u32>,
    /// `tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`, parallel to `post_docs`.
    post_weights: Vec<f32>,
}

/// The analysed form of one chunk of documents, with chunk-local term ids.
struct Chunk {
    /// Local term id -> term.
    terms: Vec<String>,
    /// Per document, its distinct `(local term id, tf)` pairs, concatenated.
    postings: Vec<(u32, u32)>,
    /// Per document, the end of its pairs in `postings`.
    ends: Vec<usize>,
    /// Per document, its number of terms.
    lens: Vec<u32>,
}

fn analyze_chunk(analyzer: &Analyzer, docs: &[Cow<'_, str>]) -> Chunk {
    let mut local: HashMap<String, u32> = HashMap::new();
    let mut terms = Vec::new();
    let mut postings = Vec::new();
    let mut ends = Vec::with_capacity(docs.len());
    let mut lens = Vec::with_capacity(docs.len());
    let mut ids: Vec<u32> = Vec::new();
    for doc in docs {
        ids.clear();
        analyzer.for_each_term(doc, |term| {
            let id = match local.get(term) {
                Some(&id) => id,
                None => {
                    let id = terms.len() as u32;
                    terms.push(term.to_owned());
                    local.insert(term.to_owned(), id);
                    id
                }
            };
            ids.push(id);
        });
        lens.push(u32::try_from(ids.len()).expect("document of over 4G terms"));
        ids.sort_unstable();
        for run in ids.chunk_by(|a, b| a == b) {
            postings.push((run[0], run.len() as u32));
        }
        ends.push(postings.len());
    }
    Chunk {
        terms,
        postings,
        ends,
        lens,
    }
}

impl Bm25Index {
    /// Indexes BEIR-style documents as `title + " " + text` (the "flat" convention).
    pub fn from_docs(docs: &[Doc], params: Bm25Params, progress: &dyn Progress) -> Result<Self> {
        Self::build_with(docs.len(), params, progress, |i| {
            Cow::Owned(format!("{} {}", docs[i].title, docs[i].text))
        })
    }

    /// Indexes `docs` (one string per document) in parallel. Fails on parameters outside
    /// `k1 >= 0`, `0 <= b <= 1`, or on more than `u32::MAX` documents.
    pub fn build<S: AsRef<str> + Sync>(
        docs: &[S],
        params: Bm25Params,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::build_with(docs.len(), params, progress, |i| {
            Cow::Borrowed(docs[i].as_ref())
        })
    }

    /// Indexes documents `0..num_docs`, whose text `doc(i)` gives, so that callers need not
    /// hold a second copy of the corpus.
    fn build_with<'a>(
        num_docs: usize,
        params: Bm25Params,
        progress: &dyn Progress,
        doc: impl Fn(usize) -> Cow<'a, str> + Sync,
    ) -> Result<Self> {
        let Bm25Params { k1, b } = params;
        if !(k1.is_finite() && k1 >= 0.0 && (0.0..=1.0).contains(&b)) {
            return Err(Error::Invalid(format!(
                "BM25 needs finite k1 >= 0 and 0 <= b <= 1, got k1 = {k1}, b = {b}"
            )));
        }
        if u32::try_from(num_docs).is_err() {
            return Err(Error::Invalid(format!(
                "BM25 indexes at most {} documents, got {num_docs}",
                u32::MAX
            )));
        }
        let analyzer = Analyzer::english();

        // 1. Analyse chunks in parallel.
        let task = progress.task("bm25 index", Some(num_docs as u64));
        let chunks: Vec<Chunk> = (0..num_docs.div_ceil(INDEX_CHUNK))
            .into_par_iter()
            .map(|c| {
                let range = c * INDEX_CHUNK..num_docs.min((c + 1) * INDEX_CHUNK);
                let texts: Vec<Cow<'a, str>> = range.clone().map(&doc).collect();
                let analysed = analyze_chunk(&analyzer, &texts);
                task.inc(range.len() as u64);
                analysed
            })
            .collect();
        drop(task);

        // 2. Merge vocabularies; count document frequencies and collection statistics.
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut df: Vec<u64> = Vec::new();
        let mut global_ids: Vec<Vec<u32>> = Vec::with_capacity(chunks.len());
        let (mut total_len, mut doc_count) = (0u64, 0u64);
        for chunk in &chunks {
            let ids: Vec<u32> = chunk
                .terms
                .iter()
                .map(|term| match vocab.get(term.as_str()) {
                    Some(&id) => id,
                    None => {
                        let id = u32::try_from(df.len()).expect("vocabulary over 4G terms");
                        vocab.insert(term.clone(), id);
                        df.push(0);
                        id
                    }
                })
                .collect();
            for &(local, _) in &chunk.postings {
                df[ids[local as usize] as usize] += 1;
            }
            total_len += chunk.lens.iter().map(|&l| u64::from(l)).sum::<u64>();
            doc_count += chunk.lens.iter().filter(|&&l| l > 0).count() as u64;
            global_ids.push(ids);
        }
        let avgdl = if doc_count == 0 {
            1.0
        } else {
            total_len as f64 / doc_count as f64
        };
        let n = doc_count as f64;
        let idf: Vec<f32> = df
            .iter()
            .map(|&df| (1.0 + (n - df as f64 + 0.5) / (df as f64 + 0.5)).ln() as f32)
            .collect();

        // 3. Lay out the postings, term by term, in document order.
        let mut offsets = Vec::with_capacity(df.len() + 1);
        offsets.push(0usize);
        for &d in &df {
            offsets.push(offsets.last().copied().unwrap_or(0) + d as usize);
        }
        let total = offsets.last().copied().unwrap_or(0);
        let mut cursor = offsets[..df.len()].to_vec();
        let mut post_docs = vec![0u32; total];
        let mut post_weights = vec![0f32; total];
        let (k1, b) = (f64::from(k1), f64::from(b));
        let mut doc = 0u32;
        for (chunk, ids) in chunks.into_iter().zip(&global_ids) {
            let mut start = 0;
            for (&end, &len) in chunk.ends.iter().zip(&chunk.lens) {
                let norm = k1 * (1.0 - b + b * f64::from(len) / avgdl);
                for &(local, tf) in &chunk.postings[start..end] {
                    let term = ids[local as usize] as usize;
                    let at = cursor[term];
                    cursor[term] += 1;
                    let tf = f64::from(tf);
                    post_docs[at] = doc;
                    post_weights[at] = (tf * (k1 + 1.0) / (tf + norm)) as f32;
                }
                start = end;
                doc += 1;
            }
        }

        Ok(Bm25Index {
            analyzer,
            params,
            num_docs,
            vocab,
            idf,
            offsets,
            post_docs,
            post_weights,
        })
    }

    pub fn num_docs(&self) -> usize {
        self.num_docs
    }

    pub fn num_terms(&self) -> usize {
        self.idf.len()
    }

    pub fn num_postings(&self) -> usize {
        self.post_docs.len()
    }

    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// The analyser used for documents and queries.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The `k` best documents for `query`, best first (ties by document index, ascending).
    /// Only documents that contain a query term are returned. Allocates a score buffer of
    /// `num_docs` floats; [`Bm25Index::search_batch`] reuses one per thread.
    pub fn search(&self, query: &str, k: usize) -> Vec<(u32, f32)> {
        self.search_with(query, k, &mut Scratch::new(self.num_docs))
    }

    /// [`Bm25Index::search`] for many queries in parallel; results are in query order.
    pub fn search_batch<S: AsRef<str> + Sync>(
        &self,
        queries: &[S],
        k: usize,
        progress: &dyn Progress,
    ) -> Vec<Vec<(u32, f32)>> {
        let task = progress.task("bm25 search", Some(queries.len() as u64));
        queries
            .par_iter()
            .with_min_len(16)
            .map_init(
                || Scratch::new(self.num_docs),
                |scratch, q| {
                    let hits = self.search_with(q.as_ref(), k, scratch);
                    task.inc(1);
                    hits
                },
            )
            .collect()
    }

    /// The query's distinct known terms with their weights `count * idf`, in order of first
    /// occurrence.
    fn query_terms(&self, query: &str) -> Vec<(u32, f32)> {
        let mut terms: Vec<(u32, f32)> = Vec::new();
        self.analyzer.for_each_term(query, |term| {
            if let Some(&id) = self.vocab.get(term) {
                match terms.iter_mut().find(|(t, _)| *t == id) {
                    Some((_, count)) => *count += 1.0,
                    None => terms.push((id, 1.0)),
                }
            }
        });
        for (id, weight) in &mut terms {
            *weight *= self.idf[*id as usize];
        }
        terms
    }

    /// The BM25 score of document `doc` for `query`: bit for bit the score
    /// [`Bm25Index::search`] reports for it, and 0 when the document holds no query term (so
    /// a search would not return it). Costs one binary search per distinct query term.
    ///
    /// # Panics
    ///
    /// When `doc` is not below [`Bm25Index::num_docs`].
    pub fn score(&self, query: &str, doc: u32) -> f32 {
        assert!(
            (doc as usize) < self.num_docs,
            "BM25 score of document {doc} of {}",
            self.num_docs
        );
        let mut score = 0.0f32;
        // The same terms, in the same order, as `search_with` adds them up.
        for (term, weight) in self.query_terms(query) {
            let range = self.offsets[term as usize]..self.offsets[term as usize + 1];
            if let Ok(at) = self.post_docs[range.clone()].binary_search(&doc) {
                score += weight * self.post_weights[range.start + at];
            }
        }
        score
    }

    fn search_with(&self, query: &str, k: usize, scratch: &mut Scratch) -> Vec<(u32, f32)> {
        let Scratch { scores, touched } = scratch;
        for (term, weight) in self.query_terms(query) {
            let range = self.offsets[term as usize]..self.offsets[term as usize + 1];
            for (&doc, &w) in self.post_docs[range.clone()]
                .iter()
                .zip(&self.post_weights[range])
            {
                let slot = &mut scores[doc as usize];
                // Every contribution is positive, so zero means "not touched yet".
                if *slot == 0.0 {
                    touched.push(doc);
                }
                *slot += weight * w;
            }
        }
        let mut best = BestK::new(k);
        for &doc in touched.iter() {
            let slot = &mut scores[doc as usize];
            best.push(doc, *slot);
            *slot = 0.0;
        }
        touched.clear();
        best.into_sorted()
    }
}

/// Per-thread accumulators: one score per document, and the documents touched so far.
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
}

impl Scratch {
    fn new(num_docs: usize) -> Self {
        Scratch {
            scores: vec![0.0; num_docs],
            touched: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rrra_common::progress::Silent;

    fn toy() -> Bm25Index {
        // Terms after analysis: d0 [cat, sat, mat], d1 [dog, chase, cat, cat],
        // d2 [bird, sang]. N = 3, avgdl = 9 / 3 = 3.
        let docs = [
            "The cat sat on the mat.",
            "A dog chased the cat's cat.",
            "Birds sang",
        ];
        Bm25Index::build(&docs, Bm25Params::default(), &Silent).unwrap()
    }

    /// BM25 by hand with k1 = 0.9, b = 0.4, N = 3, avgdl = 3.
    fn hand(tf: f64, df: f64, dl: f64) -> f64 {
        let idf = (1.0 + (3.0 - df + 0.5) / (df + 0.5)).ln();
        idf * tf * 1.9 / (tf + 0.9 * (0.6 + 0.4 * dl / 3.0))
    }

    fn assert_hits(got: &[(u32, f32)], want: &[(u32, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (&(gd, gs), &(wd, ws)) in got.iter().zip(want) {
            assert_eq!(gd, wd, "{got:?} vs {want:?}");
            assert!((f64::from(gs) - ws).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn toy_corpus_scores_match_hand_computation() {
        let index = toy();
        assert_eq!(
            (index.num_docs(), index.num_terms(), index.num_postings()),
            (3, 7, 8)
        );
        // "cat": df = 2; d1 has tf 2 and dl 4, d0 tf 1 and dl 3.
        assert_hits(
            &index.search("cats", 10),
            &[(1, hand(2.0, 2.0, 4.0)), (0, hand(1.0, 2.0, 3.0))],
        );
        // Terms add up; the rarer "bird" (df 1) puts d2 above d1's two "cat"s.
        assert_hits(
            &index.search("bird cat mat", 10),
            &[
                (0, hand(1.0, 2.0, 3.0) + hand(1.0, 1.0, 3.0)),
                (2, hand(1.0, 1.0, 2.0)),
                (1, hand(2.0, 2.0, 4.0)),
            ],
        );
        // A repeated query term counts twice (Anserini's bag of words).
        assert_hits(
            &index.search("mat mat dog", 10),
            &[(0, 2.0 * hand(1.0, 1.0, 3.0)), (1, hand(1.0, 1.0, 4.0))],
        );
        // k truncates; unknown and stop-word-only queries find nothing.
        assert_hits(&index.search("cat", 1), &[(1, hand(2.0, 2.0, 4.0))]);
        assert!(index.search("unicorn the", 10).is_empty());
        assert!(index.search("cat", 0).is_empty());
    }

    #[test]
    fn ties_break_by_document_index() {
        let docs = ["beta alpha", "alpha beta", "gamma", "beta alpha"];
        let index = Bm25Index::build(&docs, Bm25Params::default(), &Silent).unwrap();
        let hits = index.search("alpha", 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 1, 3]);
        assert!(hits.windows(2).all(|w| w[0].1 == w[1].1));
    }

    #[test]
    fn batch_equals_single_and_scratch_is_reset() {
        let index = toy();
        let queries = ["cat", "bird cat mat", "mat mat dog", "nothing", "cat"];
        let batch = index.search_batch(&queries, 2, &Silent);
        let single: Vec<_> = queries.iter().map(|q| index.search(q, 2)).collect();
        assert_eq!(batch, single);
        assert_eq!(batch[0], batch[4]);
    }

    #[test]
    fn chunked_build_equals_small_build() {
        // More documents than one indexing chunk, so the vocabulary merge is exercised.
        let docs: Vec<String> = (0..INDEX_CHUNK * 2 + 7)
            .map(|i| format!("word{} shared w{}", i % 13, i % 5))
            .collect();
        let index = Bm25Index::build(&docs, Bm25Params::default(), &Silent).unwrap();
        assert_eq!(index.num_terms(), 13 + 1 + 5);
        let hits = index.search("word3 w1", 5000);
        // Only docs with i % 13 == 3 or i % 5 == 1 match; both at once score highest.
        let both = (0..docs.len())
            .filter(|i| i % 13 == 3 && i % 5 == 1)
            .count();
        let either = (0..docs.len())
            .filter(|i| i % 13 == 3 || i % 5 == 1)
            .count();
        assert_eq!(hits.len(), either);
        assert!(hits[..both].iter().all(|&(d, _)| d % 13 == 3 && d % 5 == 1));
        assert!(
            hits[both..]
                .iter()
                .all(|&(d, _)| !(d % 13 == 3 && d % 5 == 1))
        );
        assert!(
            hits.windows(2)
                .all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0))
        );
    }

    #[test]
    fn score_equals_the_searched_score() {
        let index = toy();
        for query in [
            "cats",
            "bird cat mat",
            "mat mat dog",
            "unicorn",
            "sat sat cat bird",
        ] {
            let hits = index.search(query, 10);
            for doc in 0..index.num_docs() as u32 {
                let want = hits.iter().find(|h| h.0 == doc).map_or(0.0, |h| h.1);
                assert_eq!(
                    index.score(query, doc).to_bits(),
                    want.to_bits(),
                    "{query} {doc}"
                );
            }
        }
        let docs: Vec<String> = (0..INDEX_CHUNK + 50)
            .map(|i| format!("word{} shared w{} w{}", i % 13, i % 5, i % 3))
            .collect();
        let index = Bm25Index::build(&docs, Bm25Params::default(), &Silent).unwrap();
        let query = "w2 word4 shared w1 w2";
        for (doc, score) in index.search(query, docs.len()) {
            assert_eq!(index.score(query, doc).to_bits(), score.to_bits(), "{doc}");
        }
    }

    #[test]
    #[should_panic(expected = "BM25 score of document 3 of 3")]
    fn score_of_an_unknown_document_panics() {
        toy().score("cat", 3);
    }

    #[test]
    fn from_docs_joins_title_and_text() {
        let docs = [Doc {
            id: "x".into(),
            title: "Aspirin".into(),
            text: "reduces fever".into(),
        }];
        let index = Bm25Index::from_docs(&docs, Bm25Params::default(), &Silent).unwrap();
        assert_eq!(index.search("aspirin", 1).len(), 1);
        assert_eq!(index.search("fever", 1).len(), 1);
    }

    #[test]
    fn bad_parameters_are_rejected() {
        for (k1, b) in [(-1.0, 0.4), (0.9, 1.5), (f32::NAN, 0.4), (0.9, f32::NAN)] {
            let err = Bm25Index::build(&["x"], Bm25Params { k1, b }, &Silent).unwrap_err();
            assert!(err.to_string().contains("BM25 needs"), "{err}");
        }
    }
}
