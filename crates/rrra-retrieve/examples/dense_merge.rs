//! Time of exact dense top-k when few query tiles make [`TopK`] split every corpus block
//! across threads and merge the partial heaps: the corpus is fed in blocks of 4096 documents,
//! as `retrieve.dense` streams an embeddings file, at `top_k` 100 and 1000.
//!
//! `cargo run -p rrra-retrieve --example dense_merge -- [QUERIES] [DOCS]`
//! (default 7000 × 1000000, 384-d seeded random unit vectors). Set `RAYON_NUM_THREADS` to
//! simulate a wider machine: the split into document ranges follows the thread count.

use std::time::Instant;

use rrra_retrieve::TopK;

const DIM: usize = 384;
/// Documents per block, as `retrieve.dense` reads them.
const BLOCK: usize = 4096;

/// `n` seeded unit vectors of `DIM` floats (SplitMix64, uniform in [-1, 1), normalised).
fn unit_rows(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut values: Vec<f32> = (0..n * DIM)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    for row in values.chunks_mut(DIM) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    values
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("QUERIES and DOCS are counts"))
        .collect();
    let nq = args.first().copied().unwrap_or(7000);
    let nd = args.get(1).copied().unwrap_or(1_000_000);
    let queries = unit_rows(nq, 1);
    let docs = unit_rows(nd, 2);
    println!(
        "{nq} queries x {nd} docs, {DIM}-d, blocks of {BLOCK}, {} rayon threads",
        rayon::current_num_threads()
    );
    println!("top_k  seconds  queries/s  checksum");
    for k in [100, 1000] {
        let clock = Instant::now();
        let mut top = TopK::new(nq, DIM, k).expect("shape");
        for (b, block) in docs.chunks(BLOCK * DIM).enumerate() {
            top.add_block(&queries, block, (b * BLOCK) as u32)
                .expect("block");
        }
        let results = top.into_results();
        let seconds = clock.elapsed().as_secs_f64();
        // A digest of the results, so runs of two builds can be compared for equality.
        let checksum = results.iter().flatten().fold(0u64, |h, &(d, s)| {
            (h ^ u64::from(d) ^ (u64::from(s.to_bits()) << 32)).wrapping_mul(0x0100_0000_01B3)
        });
        println!(
            "{k:>5}  {seconds:>7.2}  {:>9.0}  {checksum:016x}",
            nq as f64 / seconds
        );
    }
}
