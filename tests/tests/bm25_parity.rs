//! The shipped BM25 pipeline on SciFact: nDCG@10 in the published range, and every measure
//! equal to pytrec_eval's, per query, to 1e-6.

use std::path::Path;

use rrra_common::artifact::read_rows;
use rrra_common::progress::Silent;
use rrra_eval::{Measure, Qrels, Run, evaluate, write_trec_qrels_file, write_trec_run_file};
use rrra_runner::Pipeline;
use rrra_testkit::pytrec::{compare_with_reference, pytrec_eval_per_query};

#[test]
fn bm25_on_scifact_matches_pytrec_eval_and_published_range() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let p = Pipeline::load(&repo.join("pipelines/scifact-bm25.yaml")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let done = rrra_runner::run(&p, data.path(), &Silent, &mut |_| {}).unwrap();
    let output = |stage: &str, port: &str| {
        let d = done.iter().find(|d| d.id == stage).unwrap();
        d.dir.join(&d.manifest.outputs[port].file)
    };
    let run = Run::from_rows(read_rows(&output("bm25", "run")).unwrap()).unwrap();
    let qrels = Qrels::from_rows(read_rows(&output("scifact", "qrels")).unwrap()).unwrap();

    let measures: Vec<Measure> = ["nDCG@10", "MRR@10", "R@100", "MAP", "P@10", "nDCG@100"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    let ours = evaluate(&qrels, &run, &measures, 1);
    assert_eq!(
        ours.query_ids().len(),
        300,
        "every SciFact test query is evaluated"
    );
    let ndcg = ours.mean(&measures[0]).unwrap();
    assert!((0.64..=0.70).contains(&ndcg), "BM25 nDCG@10 {ndcg}");

    // The pipeline's own metrics artifact holds the same means.
    let eval = done.iter().find(|d| d.id == "eval").unwrap();
    let reported = eval.manifest.report.metrics["nDCG@10"];
    assert!((reported - ndcg).abs() < 1e-12, "{reported} vs {ndcg}");

    let files = tempfile::tempdir().unwrap();
    let (run_file, qrels_file) = (
        files.path().join("run.trec"),
        files.path().join("qrels.trec"),
    );
    write_trec_run_file(&run, "bm25", &run_file).unwrap();
    write_trec_qrels_file(&qrels, &qrels_file).unwrap();
    let names: Vec<String> = measures.iter().map(|m| m.reference_name()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let reference = pytrec_eval_per_query(&qrels_file, &run_file, &names, 1).unwrap();
    compare_with_reference(&ours, &reference, 1e-6).unwrap();
}
