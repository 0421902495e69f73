//! Exact inner-product top-k over dense vectors, blocked so that the query × corpus score
//! matrix never exists. [`TopK`] ingests document blocks (so a caller can stream embeddings
//! from disk); each block is cut into tiles of `Q_TILE` queries × `D_TILE` documents whose
//! scores come from one SGEMM into a per-thread buffer and are folded into per-query best-k
//! heaps at once. Work runs in parallel over query tiles (and over document ranges when there
//! are too few query tiles to keep every thread busy; those partial heaps start at the
//! threshold of the running ones and are merged in parallel over queries). Memory: `nq × k`
//! hits (twice while a block's partial heaps are merged) plus one tile buffer per thread.
//!
//! Ties are broken by document index, ascending (see [`TopK`]); tile sizes are fixed, so the
//! results do not depend on the number of threads.
//!
//! SGEMM is the `gemm` crate (single-threaded per tile; it picks AVX-512/AVX2 kernels at run
//! time), measured ~10% faster than `matrixmultiply` (AVX2 only) on the benchmark machine.

use rayon::prelude::*;
use rrra_common::{Error, Result};

use crate::topk::BestK;

/// Queries per tile.
const Q_TILE: usize = 256;
/// Documents per tile.
const D_TILE: usize = 1024;
/// Scores compared at once against a heap's threshold before looking at them one by one.
const LANES: usize = 16;

/// A running exact top-k for a fixed set of queries: feed it every document block, in any
/// order, then take the results. Each query keeps the `k` documents with the largest inner
/// product; equal scores rank the lower document index first; NaN scores are dropped.
#[derive(Debug, Clone)]
pub struct TopK {
    dim: usize,
    k: usize,
    best: Vec<BestK>,
}

impl TopK {
    /// An empty top-k for `num_queries` queries of dimension `dim`.
    pub fn new(num_queries: usize, dim: usize, k: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Invalid("dense top-k needs dimension > 0".into()));
        }
        Ok(TopK {
            dim,
            k,
            best: vec![BestK::new(k); num_queries],
        })
    }

    pub fn num_queries(&self) -> usize {
        self.best.len()
    }

    /// Scores `docs` (row-major, `nb × dim`; row `j` is document `first_doc_index + j`)
    /// against `queries` (row-major, `num_queries × dim`, the same every call) and keeps the
    /// best. Fails on slices of the wrong length or document indices past `u32::MAX`.
    pub fn add_block(&mut self, queries: &[f32], docs: &[f32], first_doc_index: u32) -> Result<()> {
        let nb = self.block_rows(queries, docs)?;
        if u64::from(first_doc_index) + nb as u64 > u64::from(u32::MAX) + 1 {
            return Err(Error::Invalid(format!(
                "dense top-k: documents {first_doc_index}.. ({nb} of them) exceed u32 indices"
            )));
        }
        self.add_rows(queries, docs, nb, DocIndices::From(first_doc_index));
        Ok(())
    }

    /// [`TopK::add_block`] for a block whose row `j` is document `indices[j]`: the indices
    /// need not be consecutive or sorted, so a caller can number documents in an order of
    /// its choosing (ties rank the lower index first, e.g. ids sorted as strings) while it
    /// streams them in file order. Fails when `indices` does not have one entry per row.
    pub fn add_block_indexed(
        &mut self,
        queries: &[f32],
        docs: &[f32],
        indices: &[u32],
    ) -> Result<()> {
        let nb = self.block_rows(queries, docs)?;
        if indices.len() != nb {
            return Err(Error::Invalid(format!(
                "dense top-k: {} document indices for {nb} documents",
                indices.len()
            )));
        }
        self.add_rows(queries, docs, nb, DocIndices::Listed(indices));
        Ok(())
    }

    /// Checks the shapes of a block; returns its number of documents.
    fn block_rows(&self, queries: &[f32], docs: &[f32]) -> Result<usize> {
        let (dim, nq) = (self.dim, self.best.len());
        if queries.len() != nq * dim {
            return Err(Error::Invalid(format!(
                "dense top-k: {} query floats, expected {nq} queries × {dim}",
                queries.len()
            )));
        }
        if !docs.len().is_multiple_of(dim) {
            return Err(Error::Invalid(format!(
                "dense top-k: {} document floats is not a multiple of dimension {dim}",
                docs.len()
            )));
        }
        Ok(docs.len() / dim)
    }

    /// Folds a checked block of `nb` documents into the heaps.
    fn add_rows(&mut self, queries: &[f32], docs: &[f32], nb: usize, indices: DocIndices<'_>) {
        let (dim, nq) = (self.dim, self.best.len());
        if nb == 0 || nq == 0 || self.k == 0 {
            return;
        }

        // Split the documents into `segments` ranges when query tiles alone cannot keep the
        // threads busy; each (tile, range) job then keeps its own heaps, merged afterwards.
        let tiles = nq.div_ceil(Q_TILE);
        let wanted = (2 * rayon::current_num_threads()).div_ceil(tiles);
        let segments = wanted.clamp(1, nb.div_ceil(D_TILE));
        let new_buf = || vec![0f32; Q_TILE.min(nq) * D_TILE.min(nb)];
        if segments == 1 {
            self.best
                .par_chunks_mut(Q_TILE)
                .zip(queries.par_chunks(Q_TILE * dim))
                .for_each_init(new_buf, |buf, (best, q)| {
                    scan_range(q, docs, dim, indices, best, buf);
                });
            return;
        }
        // Each job's heaps start at the threshold of the heaps they are merged into: a
        // score below it cannot enter them, so after the first blocks a job keeps few hits.
        let (k, best) = (self.k, &self.best);
        let partial: Vec<Vec<BestK>> = (0..tiles * segments)
            .into_par_iter()
            .map_init(new_buf, |buf, job| {
                let (tile, segment) = (job / segments, job % segments);
                let rows = tile * Q_TILE..nq.min((tile + 1) * Q_TILE);
                let q = &queries[rows.start * dim..rows.end * dim];
                let (lo, hi) = (nb * segment / segments, nb * (segment + 1) / segments);
                let mut part: Vec<BestK> = best[rows]
                    .iter()
                    .map(|b| BestK::with_floor(k, b.threshold()))
                    .collect();
                let range = &docs[lo * dim..hi * dim];
                scan_range(q, range, dim, indices.skip(lo), &mut part, buf);
                part
            })
            .collect();
        // Merge in parallel over queries: query `i` takes the heaps of its tile's jobs. The
        // kept set does not depend on merge order (a strict total order), so neither does
        // the result.
        self.best
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, target)| {
                let (tile, row) = (i / Q_TILE, i % Q_TILE);
                for part in &partial[tile * segments..(tile + 1) * segments] {
                    target.merge(&part[row]);
                }
            });
    }

    /// Per query, its best `min(k, documents seen)` `(document index, score)` pairs, best first.
    pub fn into_results(self) -> Vec<Vec<(u32, f32)>> {
        self.best.into_iter().map(BestK::into_sorted).collect()
    }
}

/// The exact top-`k` documents by inner product for every query (both row-major with `dim`
/// columns); a one-block [`TopK`].
pub fn exact_top_k(
    queries: &[f32],
    docs: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<(u32, f32)>>> {
    if dim == 0 || !queries.len().is_multiple_of(dim) {
        return Err(Error::Invalid(format!(
            "dense top-k: {} query floats is not a multiple of dimension {dim}",
            queries.len()
        )));
    }
    let mut top = TopK::new(queries.len() / dim, dim, k)?;
    top.add_block(queries, docs, 0)?;
    Ok(top.into_results())
}

/// The document index of each row of a block: consecutive from a first index, or listed.
#[derive(Debug, Clone, Copy)]
enum DocIndices<'a> {
    From(u32),
    Listed(&'a [u32]),
}

impl DocIndices<'_> {
    /// The index of row `j`.
    #[inline]
    fn get(self, j: usize) -> u32 {
        match self {
            DocIndices::From(first) => first + j as u32,
            DocIndices::Listed(indices) => indices[j],
        }
    }

    /// The indices of the rows from `lo` on.
    fn skip(self, lo: usize) -> Self {
        match self {
            DocIndices::From(first) => DocIndices::From(first + lo as u32),
            DocIndices::Listed(indices) => DocIndices::Listed(&indices[lo..]),
        }
    }
}

/// Folds the scores of queries `q` (`best.len()` rows) against all of `docs` into `best`,
/// `D_TILE` documents at a time. `buf` holds at least `best.len() × min(D_TILE, nb)` floats.
fn scan_range(
    q: &[f32],
    docs: &[f32],
    dim: usize,
    indices: DocIndices<'_>,
    best: &mut [BestK],
    buf: &mut [f32],
) {
    let m = best.len();
    for (t, tile) in docs.chunks(D_TILE * dim).enumerate() {
        let n = tile.len() / dim;
        let scores = &mut buf[..m * n];
        inner_products(q, tile, dim, scores);
        let indices = indices.skip(t * D_TILE);
        for (row, best) in scores.chunks_exact(n).zip(best.iter_mut()) {
            fold_row(row, indices, best);
        }
    }
}

/// Pushes into `best` every score of `row` (document `indices.get(j)` at `j`) that can enter
/// it, testing `LANES` scores at a time against the current threshold.
#[inline]
fn fold_row(row: &[f32], indices: DocIndices<'_>, best: &mut BestK) {
    let mut threshold = best.threshold();
    let mut push_from = |at: usize, scores: &[f32], threshold: &mut f32| {
        for (j, &s) in scores.iter().enumerate() {
            if s >= *threshold {
                best.push(indices.get(at + j), s);
                *threshold = best.threshold();
            }
        }
    };
    let mut lanes = row.chunks_exact(LANES);
    for (c, chunk) in lanes.by_ref().enumerate() {
        if chunk.iter().fold(false, |any, &s| any | (s >= threshold)) {
            push_from(c * LANES, chunk, &mut threshold);
        }
    }
    let rest = lanes.remainder();
    push_from(row.len() - rest.len(), rest, &mut threshold);
}

/// `out[i × n + j] = q_i · d_j` for the `m` rows of `q` and `n` rows of `d`, by SGEMM.
///
/// The bits of a score do not depend on `m` or `n`: SGEMM takes a matrix-vector path with
/// another summation order when either is 1 (929 of 1,024 scores of one query differed
/// in their last bits from the same query's in a larger tile), so a single row is computed
/// as two equal rows. Without this, which queries share a tile (mine.dense's groups, a
/// part's last tile) changed scores.
fn inner_products(q: &[f32], d: &[f32], dim: usize, out: &mut [f32]) {
    let (m, n) = (q.len() / dim, d.len() / dim);
    assert!(q.len() == m * dim && d.len() == n * dim && out.len() == m * n);
    if m == 1 || n == 1 {
        let (m2, n2) = (m.max(2), n.max(2));
        let mut wide = vec![0f32; m2 * n2];
        gemm_into(&twice(q, m), &twice(d, n), dim, m2, n2, &mut wide);
        for (i, row) in out.chunks_mut(n).enumerate() {
            row.copy_from_slice(&wide[i * n2..i * n2 + n]);
        }
        return;
    }
    gemm_into(q, d, dim, m, n, out);
}

/// `x` (of `rows` rows) with a single row doubled; otherwise borrowed, not copied.
fn twice(x: &[f32], rows: usize) -> std::borrow::Cow<'_, [f32]> {
    if rows == 1 {
        [x, x].concat().into()
    } else {
        x.into()
    }
}

/// [`inner_products`] by one SGEMM call, for `m` and `n` of at least 2.
fn gemm_into(q: &[f32], d: &[f32], dim: usize, m: usize, n: usize, out: &mut [f32]) {
    assert!(q.len() == m * dim && d.len() == n * dim && out.len() == m * n);
    // SAFETY: lhs = q is m × dim row-major, rhs = dᵀ is dim × n (element (p, j) at
    // d[j·dim + p]), dst = out is m × n row-major; the assert above bounds every access.
    // gemm computes dst = alpha·dst + beta·lhs·rhs and, with read_dst = false, never reads out.
    unsafe {
        gemm::gemm(
            m,
            n,
            dim,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            q.as_ptr(),
            1,
            dim as isize,
            d.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded uniform floats in [-1, 1) (SplitMix64).
    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Small integers in {-1, 0, 1}: every inner product is exact, so scores tie often and
    /// equal the naive ones bit for bit.
    fn small_ints(n: usize, seed: u64) -> Vec<f32> {
        random(n, seed)
            .into_iter()
            .map(|x| (x * 1.5).round())
            .collect()
    }

    /// All scores of every query, sorted best first (score desc, doc asc), in f64.
    fn naive(queries: &[f32], docs: &[f32], dim: usize) -> Vec<Vec<(u32, f64)>> {
        queries
            .chunks(dim)
            .map(|q| {
                let mut all: Vec<(u32, f64)> = docs
                    .chunks(dim)
                    .enumerate()
                    .map(|(j, d)| {
                        let s = q.iter().zip(d).map(|(&a, &b)| f64::from(a) * f64::from(b));
                        (j as u32, s.sum())
                    })
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all
            })
            .collect()
    }

    fn exact(all: &[Vec<(u32, f64)>], k: usize) -> Vec<Vec<(u32, f32)>> {
        all.iter()
            .map(|a| a.iter().take(k).map(|&(d, s)| (d, s as f32)).collect())
            .collect()
    }

    #[test]
    fn random_data_matches_naive_within_rounding() {
        let (dim, k) = (24, 10);
        // One query tile over several document tiles (the split-range path), and many query
        // tiles over one document tile (the per-tile path).
        for (nq, nb, seed) in [(37, 3000, 1), (600, 1000, 2)] {
            let queries = random(nq * dim, seed);
            let docs = random(nb * dim, seed + 100);
            let got = exact_top_k(&queries, &docs, dim, k).unwrap();
            let want = naive(&queries, &docs, dim);
            for (hits, all) in got.iter().zip(&want) {
                assert_eq!(hits.len(), k);
                let score = |doc: u32| all.iter().find(|h| h.0 == doc).unwrap().1;
                for w in hits.windows(2) {
                    assert!(w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0));
                }
                for &(doc, s) in hits {
                    assert!((f64::from(s) - score(doc)).abs() < 1e-4);
                }
                // Every document clearly above the k-th score is returned.
                let kth = f64::from(hits[k - 1].1);
                for &(doc, s) in all.iter().take_while(|h| h.1 > kth + 1e-4) {
                    assert!(hits.iter().any(|h| h.0 == doc), "missing {doc} ({s})");
                }
            }
        }
    }

    #[test]
    fn ties_and_blocks_match_naive_exactly() {
        let (nq, nb, dim, k) = (40, 2500, 8, 50);
        let queries = small_ints(nq * dim, 3);
        let docs = small_ints(nb * dim, 4);
        let want = exact(&naive(&queries, &docs, dim), k);
        assert!(want.iter().all(|w| w.windows(2).any(|p| p[0].1 == p[1].1)));
        assert_eq!(exact_top_k(&queries, &docs, dim, k).unwrap(), want);
        // The same documents streamed in uneven blocks, out of order.
        let mut top = TopK::new(nq, dim, k).unwrap();
        for (lo, hi) in [(1700, 2500), (0, 1), (1, 999), (999, 1700), (5, 5)] {
            top.add_block(&queries, &docs[lo * dim..hi * dim], lo as u32)
                .unwrap();
        }
        assert_eq!(top.num_queries(), nq);
        assert_eq!(top.into_results(), want);
    }

    #[test]
    fn split_blocks_with_ties_match_naive_at_any_thread_count() {
        // One query tile, blocks of several document tiles: every block is split into
        // document ranges whose heaps start at the running threshold and are merged back.
        let (nq, nb, dim, k) = (45, 6000, 8, 60);
        let queries = small_ints(nq * dim, 11);
        let docs = small_ints(nb * dim, 12);
        let want = exact(&naive(&queries, &docs, dim), k);
        for threads in [1, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool.install(|| {
                let mut top = TopK::new(nq, dim, k).unwrap();
                for (lo, hi) in [(2100, 4400), (0, 2100), (4400, 6000)] {
                    top.add_block(&queries, &docs[lo * dim..hi * dim], lo as u32)
                        .unwrap();
                }
                top.into_results()
            });
            assert_eq!(got, want, "{threads} threads");
        }
    }

    #[test]
    fn indexed_blocks_rank_ties_by_the_given_indices() {
        let (nq, nb, dim, k) = (30, 2200, 6, 40);
        let queries = small_ints(nq * dim, 9);
        let docs = small_ints(nb * dim, 10);
        // Row j of `docs` is document `index[j]`, a permutation of 0..nb; `by_index` lays the
        // same vectors out in index order, where the contiguous path must agree.
        let index: Vec<u32> = (0..nb as u32).map(|j| (j * 7 + 3) % nb as u32).collect();
        let mut by_index = vec![0f32; nb * dim];
        for (j, &i) in index.iter().enumerate() {
            let i = i as usize;
            by_index[i * dim..(i + 1) * dim].copy_from_slice(&docs[j * dim..(j + 1) * dim]);
        }
        let want = exact(&naive(&queries, &by_index, dim), k);
        assert_eq!(exact_top_k(&queries, &by_index, dim, k).unwrap(), want);
        let mut top = TopK::new(nq, dim, k).unwrap();
        for (lo, hi) in [(1500, 2200), (0, 3), (3, 1500)] {
            top.add_block_indexed(&queries, &docs[lo * dim..hi * dim], &index[lo..hi])
                .unwrap();
        }
        assert_eq!(top.into_results(), want);
        let mut top = TopK::new(nq, dim, k).unwrap();
        let err = top
            .add_block_indexed(&queries, &docs[..2 * dim], &index[..1])
            .unwrap_err();
        assert!(
            err.to_string().contains("1 document indices for 2"),
            "{err}"
        );
    }

    #[test]
    fn k_beyond_corpus_returns_everything_sorted() {
        let (dim, nb) = (5, 7);
        let queries = small_ints(3 * dim, 5);
        let docs = small_ints(nb * dim, 6);
        let got = exact_top_k(&queries, &docs, dim, 20).unwrap();
        assert_eq!(got, exact(&naive(&queries, &docs, dim), 20));
        assert!(got.iter().all(|hits| hits.len() == nb));
        let none = exact_top_k(&queries, &docs, dim, 0).unwrap();
        assert!(none.len() == 3 && none.iter().all(Vec::is_empty));
        let empty = exact_top_k(&queries, &[], dim, 3).unwrap();
        assert!(empty.len() == 3 && empty.iter().all(Vec::is_empty));
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let (nq, nb, dim, k) = (300, 5000, 16, 25);
        let queries = random(nq * dim, 7);
        let docs = random(nb * dim, 8);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| exact_top_k(&queries, &docs, dim, k).unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(one, run(8));
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert!(TopK::new(2, 0, 5).is_err());
        let mut top = TopK::new(2, 4, 5).unwrap();
        assert!(top.add_block(&[0.0; 7], &[0.0; 8], 0).is_err());
        assert!(top.add_block(&[0.0; 8], &[0.0; 6], 0).is_err());
        assert!(top.add_block(&[0.0; 8], &[0.0; 8], u32::MAX).is_err());
        assert!(top.add_block(&[0.0; 8], &[0.0; 4], u32::MAX).is_ok());
        assert!(exact_top_k(&[0.0; 5], &[0.0; 8], 4, 1).is_err());
    }

    /// A score's bits do not depend on how many queries or documents share its SGEMM:
    /// a single query (or document) gives the bits it has in a full tile.
    #[test]
    fn scores_do_not_depend_on_the_tile_shape() {
        let dim = 384;
        let (q, d) = (random(256 * dim, 7), random(1024 * dim, 8));
        let mut full = vec![0f32; 256 * 1024];
        inner_products(&q, &d, dim, &mut full);
        for m in [1, 2, 3, 17] {
            let mut out = vec![0f32; m * 1024];
            inner_products(&q[..m * dim], &d, dim, &mut out);
            let same = out
                .iter()
                .zip(&full)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{m} queries × 1024 documents");
        }
        for n in [1, 2, 5] {
            let mut out = vec![0f32; 256 * n];
            inner_products(&q, &d[..n * dim], dim, &mut out);
            for (i, row) in out.chunks(n).enumerate() {
                let same = row
                    .iter()
                    .zip(&full[i * 1024..])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "256 queries × {n} documents, query {i}");
            }
        }
    }
}
