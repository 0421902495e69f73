//! `mine.bm25` on BEIR SciFact train, ingested by `ingest.beir`: every train query with a
//! positive is mined, each gets exactly `k` negatives, and every positive is marked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rrra_common::artifact::read_rows;
use rrra_common::records::Candidate;
use rrra_common::stage::{Stage, StageReport, output_file};
use rrra_ingest::stages::{BeirParams, IngestBeir};
use rrra_mine::{MineBm25, MineBm25Params};
use rrra_testkit::StageRun;

const SCIFACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/scifact");

fn run<S: Stage>(params: &S::Params, inputs: &[(&str, PathBuf)], out: &Path) -> StageReport {
    StageRun::in_dir(out)
        .inputs(inputs.iter().cloned())
        .run::<S>(params)
        .unwrap()
}

#[test]
fn scifact_train_every_judged_query_gets_k_negatives() {
    let data = PathBuf::from(SCIFACT);
    // Train queries with a positive, read from the qrels file itself.
    let tsv = std::fs::read_to_string(data.join("qrels/train.tsv")).unwrap();
    let mut positives: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.trim_end().split('\t').collect();
        if cols[2].parse::<i32>().unwrap() >= 1 {
            positives
                .entry(cols[0].into())
                .or_default()
                .insert(cols[1].into());
        }
    }
    assert!(positives.len() > 800, "{} train queries", positives.len());

    let dir = tempfile::tempdir().unwrap();
    let ingested = dir.path().join("ingest");
    let beir = BeirParams {
        path: data.into(),
        split: "train".into(),
        ..BeirParams::default()
    };
    run::<IngestBeir>(&beir, &[], &ingested);
    let inputs = ["corpus", "queries", "qrels"].map(|port| (port, output_file(&ingested, port)));
    let k = 200;
    let params = MineBm25Params::default();
    assert_eq!(params.k, k);
    let mined = dir.path().join("mine");
    let report = run::<MineBm25>(&params, &inputs, &mined);
    let rows = read_rows::<Candidate>(&output_file(&mined, "candidates")).unwrap();

    let m = &report.metrics;
    assert_eq!(m["queries_mined"], positives.len() as f64);
    assert_eq!(m["queries_skipped"], 0.0);
    assert_eq!(m["candidates"], rows.len() as f64);
    let mut by_query: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for row in &rows {
        by_query.entry(&row.query_id).or_default().push(row);
    }
    assert_eq!(by_query.len(), positives.len());
    for (query, pool) in by_query {
        let judged = &positives[query];
        let negatives: Vec<&&Candidate> = pool.iter().filter(|c| !c.positive).collect();
        assert_eq!(negatives.len(), k, "query {query}");
        assert!(negatives.iter().all(|c| !judged.contains(&c.doc_id)));
        assert!(negatives.windows(2).all(|w| w[0].rank < w[1].rank));
        assert!(
            negatives.windows(2).all(|w| w[0].score > w[1].score
                || (w[0].score == w[1].score && w[0].doc_id < w[1].doc_id))
        );
        let marked: BTreeSet<String> = pool
            .iter()
            .filter(|c| c.positive)
            .map(|c| c.doc_id.clone())
            .collect();
        assert_eq!(&marked, judged, "query {query}");
        let depth = (k + judged.len()) as u32;
        assert!(pool.iter().all(|c| c.rank <= depth && c.score >= 0.0));
    }
    let recall = m["positive_recall_at_k"];
    eprintln!(
        "SciFact train: {} queries mined ({} padded with unmatched documents), positive \
         recall@{k} {recall:.3}",
        positives.len(),
        m["queries_padded"]
    );
    assert!(recall > 0.5 && recall <= 1.0, "{recall}");
}
