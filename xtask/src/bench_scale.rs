//! `cargo xtask bench scale` (a benchmark, not a test): writes synthetic artifacts of the
//! real schemas at two or more sizes, runs each stage kind of the dense and adapter family
//! on them, one child process per stage, and prints rows, seconds, rows/s and peak RSS per
//! stage with the growth ratio against the first size.
//!
//! ```sh
//! cargo xtask bench scale [--docs 100000,1000000] [--pairs 200000,2000000] \
//!     [--queries 5000] [--top-k 100] [--stages a,b] [--dir DIR] [--keep]
//! ```
//!
//! - Corpus sizes (`--docs`): 384-d seeded unit vectors, `--queries` query vectors each
//!   with one planted positive (a document near it) in the qrels; `retrieve.dense` (top
//!   `--top-k`) and `mine.dense` (K = `--top-k`) search them.
//! - Pair sizes (`--pairs`): a fixed corpus of 100,000 document vectors, `pairs / 100`
//!   queries with 100 mined candidates each (the planted positive at a random rank, scores
//!   falling with rank) and one hidden relevant document per query; `train.adapter` (a
//!   fixed budget of 200 steps of 512 pairs) and `score.adapter` run on them;
//!   `resample.rrra`, `rerank.adapter` and `eval.fn_detection` on a generated `scored`
//!   artifact of the same pairs (synthetic adapter scores), so each runs without the others.
//! - `--stages` keeps only the named stages (a size none of them needs is not generated);
//!   `--keep` keeps the generated data under `--dir` (default: the temp dir) and reuses it
//!   on the next run.
//!
//! Peak RSS is the child's `VmHWM` (Linux), so each stage's number is its own. It counts
//! the file-backed pages a stage maps (the adapter stages' vector sidecars and scratch
//! files), which the kernel can drop and reload; peak anonymous RSS (the child's `RssAnon`,
//! sampled every 20 ms by a thread of its own) is the memory that cannot be.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rrra_common::artifact::{ParquetSink, artifact_rows, write_rows};
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::progress::Silent;
use rrra_common::records::{Candidate, Qrel, Scored};
use rrra_common::stage::{Stage, StageContext, output_path};
use serde_json::{Value, json};

const DIM: usize = 384;
/// Documents of the pair runs, and candidates per query.
const PAIR_DOCS: usize = 100_000;
const PER_QUERY: usize = 100;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A unit vector: `center + noise · uniform`, normalised (`center` absent: pure noise).
fn unit(rng: &mut Rng, center: Option<&[f32]>, noise: f32, out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..DIM).map(|i| center.map_or(0.0, |c| c[i]) + noise * rng.uniform()));
    let n = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.iter_mut().for_each(|x| *x /= n);
}

fn q_id(q: usize) -> String {
    format!("q{q}")
}
fn d_id(d: usize) -> String {
    format!("d{d}")
}

/// Query vectors, and document vectors where document `planted(q)` lies near query `q`.
fn write_vectors(dir: &Path, queries: usize, docs: usize, planted: impl Fn(usize) -> usize) {
    let mut rng = Rng(7);
    let mut qs = Vec::with_capacity(queries * DIM);
    let mut v = Vec::new();
    let mut sink = EmbeddingSink::create(&dir.join("queries.parquet"), DIM).unwrap();
    for q in 0..queries {
        unit(&mut rng, None, 1.0, &mut v);
        sink.push(&q_id(q), &v).unwrap();
        qs.extend_from_slice(&v);
    }
    sink.finish().unwrap();
    let near: BTreeMap<usize, usize> = (0..queries).map(|q| (planted(q), q)).collect();
    let mut sink = EmbeddingSink::create(&dir.join("docs.parquet"), DIM).unwrap();
    for d in 0..docs {
        match near.get(&d) {
            Some(&q) => unit(&mut rng, Some(&qs[q * DIM..(q + 1) * DIM]), 0.6, &mut v),
            None => unit(&mut rng, None, 1.0, &mut v),
        }
        sink.push(&d_id(d), &v).unwrap();
    }
    sink.finish().unwrap();
}

/// The corpus-search inputs: vectors and one planted positive per query in the qrels.
fn generate_search(dir: &Path, docs: usize, queries: usize) {
    let stride = docs / queries;
    write_vectors(dir, queries, docs, |q| q * stride);
    let qrels = (0..queries).map(|q| Qrel {
        query_id: q_id(q),
        doc_id: d_id(q * stride),
        relevance: 1,
    });
    write_rows(&dir.join("qrels.parquet"), qrels).unwrap();
}

/// The pair inputs: `pairs / PER_QUERY` queries with `PER_QUERY` candidates each over a
/// fixed corpus; candidate 0 of a query is its planted positive, candidate 1 its hidden
/// relevant document.
fn generate_pairs(dir: &Path, pairs: usize) {
    let queries = pairs / PER_QUERY;
    let planted = |q: usize| q * 7919 % PAIR_DOCS;
    write_vectors(dir, queries, PAIR_DOCS, planted);
    let mut rng = Rng(11);
    let mut rows = Vec::with_capacity(PER_QUERY);
    let mut hidden = Vec::new();
    let mut sink = ParquetSink::<Candidate>::create(&dir.join("candidates.parquet")).unwrap();
    let mut scored = ParquetSink::<Scored>::create(&dir.join("scored.parquet")).unwrap();
    for q in 0..queries {
        rows.clear();
        // Distinct documents: the planted one, then a stride walk from a random start.
        let (start, step) = (rng.below(PAIR_DOCS), 1 + 2 * rng.below(1000));
        let mut docs: Vec<usize> = vec![planted(q)];
        let mut d = start;
        while docs.len() < PER_QUERY {
            d = (d + step) % PAIR_DOCS;
            if !docs.contains(&d) {
                docs.push(d);
            }
        }
        hidden.push(Qrel {
            query_id: q_id(q),
            doc_id: d_id(docs[1]),
            relevance: 1,
        });
        // The positive at a random rank in 1..=20, the rest in order.
        let pos_rank = 1 + rng.below(20);
        let mut rank = 0;
        for (j, &doc) in docs.iter().enumerate() {
            let r = if j == 0 {
                pos_rank
            } else {
                rank += 1;
                if rank == pos_rank {
                    rank += 1;
                }
                rank
            };
            rows.push(Candidate {
                query_id: q_id(q),
                doc_id: d_id(doc),
                rank: r as u32,
                score: 1.0 - r as f64 / 1000.0,
                positive: j == 0,
            });
        }
        for c in rows.drain(..) {
            // Adapter scores of the synthetic `scored` input: the positive and the hidden
            // document look relevant (low s_fn for the positive, high for the hidden one).
            let s_fn = match c.doc_id == hidden.last().expect("pushed").doc_id {
                true => 0.7 + 0.3 * rng.uniform().abs(),
                false if c.positive => 0.1 * rng.uniform().abs(),
                false => 0.5 * rng.uniform().abs(),
            };
            let qa = c.score - 0.05 * f64::from(rng.uniform());
            scored
                .push(Scored {
                    candidate: c.clone(),
                    qa_score: qa,
                    s_fn: f64::from(s_fn),
                    p_rel: 1.0 - f64::from(s_fn),
                })
                .unwrap();
            sink.push(c).unwrap();
        }
    }
    sink.finish().unwrap();
    scored.finish().unwrap();
    write_rows(&dir.join("hidden.parquet"), hidden).unwrap();
}

/// Runs stage `S` with `params` on `inputs` (port → file in `dir`), outputs into
/// `dir/<name>/`; returns the rows of its first output and the seconds.
fn run_stage<S: Stage>(
    dir: &Path,
    name: &str,
    params: Value,
    inputs: &[(&str, &str)],
) -> (u64, f64) {
    let params: S::Params = serde_json::from_value(params).expect("params");
    S::check(&params).expect("params in range");
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let ctx = StageContext {
        inputs: inputs
            .iter()
            .map(|(port, file)| (port.to_string(), dir.join(file)))
            .collect(),
        out_dir: out.clone(),
        base_dir: dir.to_path_buf(),
        cache_dir: dir.to_path_buf(),
        work_dir: out.join("work"),
        seed: 42,
        progress: &Silent,
    };
    let clock = Instant::now();
    S::run(&params, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
    let seconds = clock.elapsed().as_secs_f64();
    let port = S::outputs()[0];
    (artifact_rows(&output_path(&out, &port)).unwrap(), seconds)
}

/// Runs one named stage in this process (the child side); prints `rows seconds`.
fn stage(name: &str, dir: &Path, top_k: usize) {
    use rrra_adapter::{ScoreAdapter, TrainAdapter};
    // The downstream stages read the generated `scored` (so they run without score.adapter).
    let scored = [("scored", "scored.parquet")];
    let (rows, seconds) = match name {
        "retrieve.dense" => run_stage::<rrra_retrieve::stages::RetrieveDense>(
            dir,
            "retrieve_dense",
            json!({"top_k": top_k}),
            &[("queries", "queries.parquet"), ("corpus", "docs.parquet")],
        ),
        "mine.dense" => run_stage::<rrra_mine::MineDense>(
            dir,
            "mine_dense",
            json!({"k": top_k}),
            &[
                ("queries", "queries.parquet"),
                ("corpus", "docs.parquet"),
                ("qrels", "qrels.parquet"),
            ],
        ),
        "train.adapter" => {
            let (_, seconds) = run_stage::<TrainAdapter>(
                dir,
                "train_adapter",
                json!({"epochs": 1, "max_steps": 200, "batch_size": 512, "pool": 100}),
                &[
                    ("candidates", "candidates.parquet"),
                    ("queries", "queries.parquet"),
                    ("docs", "docs.parquet"),
                ],
            );
            // Rows: the candidate pairs it read.
            (
                artifact_rows(&dir.join("candidates.parquet")).unwrap(),
                seconds,
            )
        }
        "score.adapter" => run_stage::<ScoreAdapter>(
            dir,
            "score_adapter",
            json!({}),
            &[
                ("adapter", "train_adapter/adapter"),
                ("candidates", "candidates.parquet"),
                ("queries", "queries.parquet"),
                ("docs", "docs.parquet"),
            ],
        ),
        "resample.rrra" => {
            let (_, seconds) =
                run_stage::<rrra_resample::ResampleRrra>(dir, "resample_rrra", json!({}), &scored);
            (artifact_rows(&dir.join(scored[0].1)).unwrap(), seconds)
        }
        "rerank.adapter" => {
            run_stage::<rrra_rerank::RerankAdapter>(dir, "rerank_adapter", json!({}), &scored)
        }
        "eval.fn_detection" => {
            let (_, seconds) = run_stage::<rrra_eval::stages::EvalFnDetection>(
                dir,
                "fn_detection",
                json!({"pool": 100}),
                &[scored[0], ("hidden", "hidden.parquet")],
            );
            (artifact_rows(&dir.join(scored[0].1)).unwrap(), seconds)
        }
        other => panic!("unknown stage {other}"),
    };
    println!("{rows} {seconds}");
}

/// A field of this process's `/proc/self/status` in MiB (Linux; NaN elsewhere): `VmHWM`
/// (peak RSS) or `RssAnon` (anonymous RSS now).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Samples this process's `RssAnon` every 20 ms on a thread until [`AnonPeak::finish`].
struct AnonPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<f64>,
}

impl AnonPeak {
    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = status_mib("RssAnon");
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                peak = peak.max(status_mib("RssAnon"));
            }
            peak
        });
        AnonPeak { stop, sampler }
    }

    /// The peak in MiB (a last sample included).
    fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let last = status_mib("RssAnon");
        self.sampler.join().expect("sampler").max(last)
    }
}

struct Measured {
    rows: u64,
    seconds: f64,
    peak_mib: f64,
    anon_mib: f64,
}

fn child(dir: &Path, name: &str, top_k: usize) -> Measured {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "bench",
            "scale",
            "--stage",
            name,
            "--top-k",
            &top_k.to_string(),
            "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // One failed stage does not lose the others' numbers.
        eprintln!(
            "{name} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Measured {
            rows: 0,
            seconds: f64::NAN,
            peak_mib: f64::NAN,
            anon_mib: f64::NAN,
        };
    }
    let fields: Vec<f64> = stdout
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    eprintln!(
        "{name} ({}): {} rows, {:.2} s, peak RSS {:.0} MiB, peak anonymous RSS {:.0} MiB",
        dir.display(),
        fields[0],
        fields[1],
        fields[2],
        fields[3]
    );
    Measured {
        rows: fields[0] as u64,
        seconds: fields[1],
        peak_mib: fields[2],
        anon_mib: fields[3],
    }
}

fn list(arg: Option<&String>, default: &[usize]) -> Result<Vec<usize>> {
    arg.map_or(Ok(default.to_vec()), |a| {
        a.split(',')
            .map(|n| n.parse().with_context(|| format!("{n:?} is not a count")))
            .collect()
    })
}

/// Generates the data of one size into `dir` unless `--keep` left it there (`done` marker).
fn prepare(dir: &Path, what: &str, generate: impl FnOnce(&Path)) -> Result<()> {
    let done = dir.join("done");
    if done.exists() {
        eprintln!("reusing {}", dir.display());
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let clock = Instant::now();
    generate(dir);
    std::fs::write(&done, b"").with_context(|| format!("writing {}", done.display()))?;
    eprintln!("generated {what} in {:.1} s", clock.elapsed().as_secs_f64());
    Ok(())
}

/// `bench scale ARGS`: the parent (sizes, table) or, with `--stage`, one child.
pub fn run(args: &[String]) -> Result<()> {
    const VALUED: [&str; 7] = [
        "--docs",
        "--pairs",
        "--queries",
        "--top-k",
        "--stages",
        "--dir",
        "--stage",
    ];
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if VALUED.contains(&a.as_str()) {
            rest.next();
        } else if a != "--keep" {
            bail!(
                "bench scale: unexpected argument {a:?}; usage: bench scale [--docs N,M] \
                 [--pairs N,M] [--queries Q] [--top-k K] [--stages a,b] [--dir DIR] [--keep]"
            );
        }
    }
    let flag = |name: &str| -> Result<Option<&String>> {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .map(Some)
                .with_context(|| format!("{name} needs a value")),
            None => Ok(None),
        }
    };
    let top_k = list(flag("--top-k")?, &[100])?[0];
    if let Some(name) = flag("--stage")? {
        let dir = PathBuf::from(flag("--dir")?.context("--dir")?);
        let anon = AnonPeak::start();
        stage(name, &dir, top_k);
        // The child's peak RSS and peak anonymous RSS.
        println!("{} {}", status_mib("VmHWM"), anon.finish());
        return Ok(());
    }
    let docs = list(flag("--docs")?, &[100_000, 1_000_000])?;
    let pairs = list(flag("--pairs")?, &[200_000, 2_000_000])?;
    let queries = list(flag("--queries")?, &[5000])?[0];
    let keep = args.iter().any(|a| a == "--keep");
    let root =
        flag("--dir")?.map_or_else(|| std::env::temp_dir().join("rrra-scale"), PathBuf::from);
    let search = ["retrieve.dense", "mine.dense"];
    let adapter = [
        "train.adapter",
        "score.adapter",
        "resample.rrra",
        "rerank.adapter",
        "eval.fn_detection",
    ];
    let chosen: Vec<&str> = match flag("--stages")? {
        Some(s) => s.split(',').collect(),
        None => search.iter().chain(&adapter).copied().collect(),
    };
    if let Some(bad) = chosen
        .iter()
        .find(|s| !search.contains(s) && !adapter.contains(s))
    {
        bail!("unknown stage {bad:?}; expected some of {search:?} {adapter:?}");
    }
    let mut table: Vec<(String, usize, Measured)> = Vec::new();
    let groups = [
        (&search[..], &docs, "docs"),
        (&adapter[..], &pairs, "pairs"),
    ];
    for (stages, sizes, what) in groups {
        let stages: Vec<&str> = stages
            .iter()
            .copied()
            .filter(|s| chosen.contains(s))
            .collect();
        if stages.is_empty() {
            continue;
        }
        for &n in sizes.iter() {
            let dir = match what {
                "docs" => root.join(format!("docs-{n}-q{queries}")),
                _ => root.join(format!("pairs-{n}")),
            };
            prepare(&dir, &format!("{n} {what}"), |dir| match what {
                "docs" => generate_search(dir, n, queries),
                _ => generate_pairs(dir, n),
            })?;
            for s in &stages {
                table.push((s.to_string(), n, child(&dir, s, top_k)));
            }
            if !keep {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
        }
    }
    println!(
        "| stage | input size | rows | seconds | rows/s | peak RSS MiB | RSS growth | peak anon MiB | anon growth | time growth |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (stage, size, m)) in table.iter().enumerate() {
        let first = table[..i].iter().find(|(s, _, _)| s == stage);
        let growth = |f: fn(&Measured) -> f64| {
            first.map_or(String::from("-"), |(_, _, a)| {
                format!("{:.2}×", f(m) / f(a))
            })
        };
        println!(
            "| {stage} | {size} | {} | {:.2} | {:.0} | {:.0} | {} | {:.0} | {} | {} |",
            m.rows,
            m.seconds,
            m.rows as f64 / m.seconds,
            m.peak_mib,
            growth(|m| m.peak_mib),
            m.anon_mib,
            growth(|m| m.anon_mib),
            growth(|m| m.seconds),
        );
    }
    Ok(())
}
