//! BM25 on BEIR SciFact (test split): retrieves the top 1000 for the 300 test queries, writes a
//! TREC run (for an outside check with pytrec_eval, see `benches/trec_ndcg.py`) and checks
//! nDCG@10 against the published range (Anserini flat 0.679, multifield 0.665).
//!
//! Data: `$RRRA_SCIFACT_DIR`, else the repository's `data/scifact`. Run file:
//! `$RRRA_SCIFACT_RUN`, else `scifact-bm25.trec` in Cargo's test temp directory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use rrra_common::progress::Silent;
use rrra_common::records::Doc;
use rrra_retrieve::{Bm25Index, Bm25Params};

fn jsonl(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn field(v: &serde_json::Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        .to_owned()
}

/// trec_eval's nDCG@10 for one query: gains are the grades, discount log2(rank + 1).
fn ndcg10(ranked: &[&str], judged: &HashMap<String, i32>) -> f64 {
    let dcg = |gains: &mut dyn Iterator<Item = i32>| -> f64 {
        gains
            .take(10)
            .enumerate()
            .map(|(i, g)| f64::from(g.max(0)) / (i as f64 + 2.0).log2())
            .sum()
    };
    let mut ideal: Vec<i32> = judged.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let ideal = dcg(&mut ideal.into_iter());
    let got = dcg(&mut ranked.iter().map(|d| judged.get(*d).copied().unwrap_or(0)));
    if ideal > 0.0 { got / ideal } else { 0.0 }
}

#[test]
fn scifact_test_ndcg10_in_published_range() {
    let dir = std::env::var_os("RRRA_SCIFACT_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/scifact"),
        PathBuf::from,
    );
    let docs: Vec<Doc> = jsonl(&dir.join("corpus.jsonl"))
        .iter()
        .map(|v| Doc {
            id: field(v, "_id"),
            title: field(v, "title"),
            text: field(v, "text"),
        })
        .collect();
    let queries: HashMap<String, String> = jsonl(&dir.join("queries.jsonl"))
        .iter()
        .map(|v| (field(v, "_id"), field(v, "text")))
        .collect();
    let mut qrels: HashMap<String, HashMap<String, i32>> = HashMap::new();
    let tsv = std::fs::read_to_string(dir.join("qrels/test.tsv")).unwrap();
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.trim_end().split('\t').collect();
        let grade = cols[2].parse().unwrap();
        qrels
            .entry(cols[0].into())
            .or_default()
            .insert(cols[1].into(), grade);
    }
    let mut qids: Vec<&String> = qrels.keys().collect();
    qids.sort_by_key(|q| q.parse::<u64>().unwrap());
    assert_eq!((docs.len(), qids.len()), (5183, 300));

    let index = Bm25Index::from_docs(&docs, Bm25Params::default(), &Silent).unwrap();
    let texts: Vec<&str> = qids.iter().map(|q| queries[*q].as_str()).collect();
    let results = index.search_batch(&texts, 1000, &Silent);

    let mut run = String::new();
    let mut total = 0.0;
    for (qid, hits) in qids.iter().zip(&results) {
        assert!(!hits.is_empty() && hits.len() <= 1000);
        let ranked: Vec<&str> = hits
            .iter()
            .map(|&(d, _)| docs[d as usize].id.as_str())
            .collect();
        for (rank, (&(_, score), id)) in hits.iter().zip(&ranked).enumerate() {
            writeln!(run, "{qid} Q0 {id} {} {score} rrra-bm25", rank + 1).unwrap();
        }
        total += ndcg10(&ranked, &qrels[*qid]);
    }
    let out = std::env::var_os("RRRA_SCIFACT_RUN").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scifact-bm25.trec"),
        PathBuf::from,
    );
    std::fs::write(&out, run).unwrap();
    let ndcg = total / qids.len() as f64;
    eprintln!(
        "SciFact test nDCG@10 = {ndcg:.4}; run written to {}",
        out.display()
    );
    assert!(
        (0.64..=0.70).contains(&ndcg),
        "nDCG@10 {ndcg:.4} outside [0.64, 0.70]"
    );
}
