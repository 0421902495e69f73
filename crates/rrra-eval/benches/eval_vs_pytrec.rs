//! rrra-eval's `evaluate` against pytrec_eval on a synthetic MS MARCO-sized run (7,000 queries
//! x 1,000 documents, about 1.1 relevant documents per query) for nDCG@10, MRR@10, R@100 and
//! MAP. Prints the median of a few repetitions of each, timing only the evaluation (files
//! parsed, rows collected into a `Run` beforehand), and the ratio pytrec_eval / rrra.
//! Needs pytrec_eval (`RRRA_PYTHON`, else the workspace `.venv`, else `python3`). Run: `cargo bench -p rrra-eval`.

use std::collections::HashSet;
use std::process::Command;
use std::time::Instant;

use rrra_common::records::{Qrel, RunRow};
use rrra_eval::SplitMix64;
use rrra_eval::{Measure, Qrels, Run, evaluate, write_trec_qrels_file, write_trec_run_file};
use rrra_testkit::python;
use rrra_testkit::pytrec::reference_script;

const QUERIES: usize = 7_000;
const DOCS_PER_QUERY: usize = 1_000;
const COLLECTION: u64 = 8_841_823;
const REPETITIONS: usize = 5;
const MEASURES: [&str; 4] = ["ndcg_cut.10", "recip_rank.10", "recall.100", "map"];

fn synthetic() -> (Vec<Qrel>, Vec<RunRow>) {
    let mut rng = SplitMix64::new(20_240_601);
    let mut qrels = Vec::new();
    let mut run = Vec::with_capacity(QUERIES * DOCS_PER_QUERY);
    for q in 0..QUERIES {
        let query_id = (1_000_000 + q).to_string();
        let mut seen = HashSet::new();
        let mut docs = Vec::with_capacity(DOCS_PER_QUERY);
        while docs.len() < DOCS_PER_QUERY {
            let doc = rng.below(COLLECTION);
            if seen.insert(doc) {
                docs.push(doc);
            }
        }
        // 1 relevant document, sometimes 2; each retrieved 3 times in 4.
        let count = 1 + usize::from(rng.below(10) == 0);
        let mut relevant = Vec::new();
        while relevant.len() < count {
            let doc = if rng.below(4) == 0 {
                rng.below(COLLECTION)
            } else {
                docs[rng.below(DOCS_PER_QUERY as u64) as usize]
            };
            if !relevant.contains(&doc) {
                relevant.push(doc);
            }
        }
        qrels.extend(relevant.into_iter().map(|doc| Qrel {
            query_id: query_id.clone(),
            doc_id: doc.to_string(),
            relevance: 1,
        }));
        // Scores as a dense retriever's f32 dot products.
        for (i, doc) in docs.into_iter().enumerate() {
            run.push(RunRow {
                query_id: query_id.clone(),
                doc_id: doc.to_string(),
                rank: i as u32 + 1,
                score: f64::from((rng.unit_f64() * 40.0) as f32),
            });
        }
    }
    (qrels, run)
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

fn time_rrra(qrels: &Qrels, run: &Run, measures: &[Measure]) -> (f64, Vec<f64>) {
    let mut seconds = Vec::new();
    let mut means = Vec::new();
    for _ in 0..REPETITIONS {
        let start = Instant::now();
        let evaluation = evaluate(qrels, run, measures, 1);
        seconds.push(start.elapsed().as_secs_f64());
        means = measures
            .iter()
            .map(|m| evaluation.mean(m).unwrap())
            .collect();
    }
    (median(seconds), means)
}

fn main() {
    let measures: Vec<Measure> = MEASURES.iter().map(|m| m.parse().unwrap()).collect();
    let (qrel_rows, run_rows) = synthetic();
    let rows = run_rows.len();
    let qrels = Qrels::from_rows(qrel_rows).unwrap();
    let start = Instant::now();
    let run = Run::from_rows(run_rows).unwrap();
    let build = start.elapsed().as_secs_f64();

    let threads = rayon::current_num_threads();
    let (rrra, means) = time_rrra(&qrels, &run, &measures);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| time_rrra(&qrels, &run, &measures).0);

    let dir = tempfile::tempdir().unwrap();
    let (qrels_path, run_path) = (dir.path().join("qrels"), dir.path().join("run"));
    write_trec_qrels_file(&qrels, &qrels_path).unwrap();
    write_trec_run_file(&run, "bench", &run_path).unwrap();
    let output = Command::new(python())
        .arg(reference_script())
        .args([&qrels_path, &run_path])
        .args(MEASURES)
        .arg(format!("--time={REPETITIONS}"))
        .output()
        .expect("run the Python interpreter (set RRRA_PYTHON)");
    assert!(
        output.status.success(),
        "pytrec_reference.py failed (`pip install pytrec-eval-terrier`?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let seconds = reference["seconds"].as_array().unwrap();
    let pytrec = median(seconds.iter().map(|s| s.as_f64().unwrap()).collect());

    println!(
        "synthetic run: {QUERIES} queries x {DOCS_PER_QUERY} docs ({rows} rows), {} judged",
        qrels.len()
    );
    println!("measures: {}", MEASURES.join(", "));
    println!("rrra Run::from_rows (not timed below): {build:.3} s");
    println!("rrra evaluate, {threads} threads: {rrra:.4} s (median of {REPETITIONS})");
    println!("rrra evaluate, 1 thread: {single:.4} s (median of {REPETITIONS})");
    println!("pytrec_eval evaluate: {pytrec:.4} s (median of {REPETITIONS})");
    println!(
        "ratio pytrec_eval / rrra: {:.1}x ({threads} threads), {:.1}x (1 thread)",
        pytrec / rrra,
        pytrec / single
    );
    for (name, ours) in MEASURES.iter().zip(&means) {
        let theirs = reference["means"][name].as_f64().unwrap();
        println!("mean {name}: rrra {ours:.6}, pytrec_eval {theirs:.6}");
        assert!((ours - theirs).abs() < 1e-9, "{name} differs");
    }
}
