//! Exact dense top-k, rrra vs faiss-cpu `IndexFlatIP`, on the same seeded random unit vectors
//! (384-d, 1000 queries, top 100) at several corpus sizes. Needs `python3` with `faiss-cpu` and
//! `numpy`. Both sides get the same thread count: rrra's rayon pool and faiss's OpenMP (and
//! OpenBLAS) threads. Timings are the best of a few repetitions, data already in memory.
//!
//! At the largest size it also streams the documents from a file in blocks through
//! [`TopK::add_block`] and reports the peak RSS of that search (VmHWM, reset before it) next
//! to the size of the full query × corpus score matrix.
//!
//! Environment: `RRRA_BENCH_THREADS` (default: all cores), `RRRA_BENCH_SIZES` (default
//! `5000,100000,1000000`), `RRRA_BENCH_FAISS=0` to skip faiss.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;
use rrra_retrieve::{TopK, exact_top_k};

const DIM: usize = 384;
const NQ: usize = 1000;
const K: usize = 100;
/// Documents per block when streaming from the file.
const STREAM_BLOCK: usize = 65_536;

/// Row `seed`'s normal deviates (SplitMix64 + Box-Muller), normalised to unit length.
fn unit_row(seed: u64, out: &mut [f32]) {
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut uniform = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    for pair in out.chunks_mut(2) {
        let r = (-2.0 * (1.0 - uniform()).ln()).sqrt();
        let theta = std::f64::consts::TAU * uniform();
        pair[0] = (r * theta.cos()) as f32;
        if let Some(x) = pair.get_mut(1) {
            *x = (r * theta.sin()) as f32;
        }
    }
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.iter_mut().for_each(|x| *x /= norm);
}

fn vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; n * DIM];
    v.par_chunks_mut(DIM)
        .enumerate()
        .for_each(|(i, row)| unit_row(seed << 32 | i as u64, row));
    v
}

fn write_raw<T: Copy>(path: &Path, data: &[T], to_bytes: impl Fn(T) -> [u8; 4]) {
    let mut w = BufWriter::new(File::create(path).unwrap());
    for &x in data {
        w.write_all(&to_bytes(x)).unwrap();
    }
    w.flush().unwrap();
}

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        out = Some(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out.unwrap())
}

fn main() {
    let threads: usize = std::env::var("RRRA_BENCH_THREADS").map_or_else(
        |_| std::thread::available_parallelism().unwrap().get(),
        |t| t.parse().unwrap(),
    );
    let sizes: Vec<usize> = std::env::var("RRRA_BENCH_SIZES")
        .unwrap_or_else(|_| "5000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let faiss = std::env::var("RRRA_BENCH_FAISS").map_or(true, |v| v != "0");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let queries = vectors(NQ, 1);
    write_raw(&dir.path().join("queries.f32"), &queries, f32::to_le_bytes);
    println!(
        "dense top-{K}, {NQ} queries × {DIM}-d unit vectors; {threads} threads \
         (RAYON_NUM_THREADS / OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / faiss.omp_set_num_threads)"
    );
    println!(
        "{:>9} {:>11} {:>11} {:>7} {:>9}",
        "docs", "rrra q/s", "faiss q/s", "ratio", "agree@100"
    );

    for &n in &sizes {
        let docs = vectors(n, 2);
        let reps = if n >= 1_000_000 { 2 } else { 5 };
        exact_top_k(&queries[..DIM * 8], &docs, DIM, K).unwrap(); // warm-up
        let (secs, hits) = best_of(reps, || exact_top_k(&queries, &docs, DIM, K).unwrap());
        let rrra_qps = NQ as f64 / secs;
        let (mut faiss_qps, mut agree) = (String::from("-"), String::from("-"));
        let mut ratio = String::from("-");
        if faiss {
            write_raw(&dir.path().join("docs.f32"), &docs, f32::to_le_bytes);
            let ids: Vec<u32> = hits
                .iter()
                .flat_map(|h| h.iter().map(|&(d, _)| d))
                .collect();
            assert_eq!(ids.len(), NQ * K);
            write_raw(&dir.path().join("rrra_ids.u32"), &ids, u32::to_le_bytes);
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/faiss_flat_ip.py");
            let out =
                Command::new(std::env::var("RRRA_PYTHON").unwrap_or_else(|_| "python3".into()))
                    .arg(script)
                    .arg(dir.path())
                    .args([n, DIM, NQ, K, threads, reps].map(|x| x.to_string()))
                    .env("OMP_NUM_THREADS", threads.to_string())
                    .env("OPENBLAS_NUM_THREADS", threads.to_string())
                    .output()
                    .expect("python3 (or $RRRA_PYTHON) with faiss-cpu and numpy");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "faiss: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let field = |name: &str| {
                let at = stdout.find(name).unwrap() + name.len();
                stdout[at..].split_whitespace().next().unwrap().to_owned()
            };
            let qps: f64 = field("qps=").parse().unwrap();
            ratio = format!("{:.2}×", rrra_qps / qps);
            faiss_qps = format!("{qps:.1}");
            agree = field("agree=");
        }
        println!("{n:>9} {rrra_qps:>11.1} {faiss_qps:>11} {ratio:>7} {agree:>9}");
    }

    // Streaming search over the largest corpus, from its file, with peak memory.
    let n = *sizes.iter().max().unwrap();
    let path = dir.path().join("docs.f32");
    if !path.exists() {
        write_raw(&path, &vectors(n, 2), f32::to_le_bytes);
    }
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_bytes("VmHWM:");
    let t = Instant::now();
    let mut top = TopK::new(NQ, DIM, K).unwrap();
    let mut file = File::open(&path).unwrap();
    let mut bytes = vec![0u8; STREAM_BLOCK * DIM * 4];
    let mut block = vec![0f32; STREAM_BLOCK * DIM];
    let mut first = 0u32;
    loop {
        let mut len = 0;
        while len < bytes.len() {
            match file.read(&mut bytes[len..]).unwrap() {
                0 => break,
                r => len += r,
            }
        }
        if len == 0 {
            break;
        }
        let rows = len / (DIM * 4);
        for (x, b) in block.iter_mut().zip(bytes[..len].chunks_exact(4)) {
            *x = f32::from_le_bytes(b.try_into().unwrap());
        }
        top.add_block(&queries, &block[..rows * DIM], first)
            .unwrap();
        first += rows as u32;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(first as usize, n);
    assert!(top.into_results().iter().all(|h| h.len() == K));
    let peak = status_bytes("VmHWM:");
    println!(
        "streamed {n} docs from file in blocks of {STREAM_BLOCK}: {:.1} q/s; peak RSS {} \
         ({}; the documents are {}, the full {NQ}×{n} score matrix would be {})",
        NQ as f64 / secs,
        gib(peak),
        if reset {
            "VmHWM reset before the search".to_owned()
        } else {
            format!("not reset, {} before", gib(before))
        },
        gib((n * DIM * 4) as u64),
        gib((NQ * n * 4) as u64),
    );
}
