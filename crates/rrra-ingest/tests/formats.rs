//! Format details on small files written to a temporary directory: line endings, blank
//! lines, a missing final newline, both qrels layouts, DPR context ids, streaming, and
//! errors coming back from the sink.

use std::path::{Path, PathBuf};

use rrra_common::records::{Doc, Qrel, Query, RunRow};
use rrra_common::{Error, Result};
use rrra_ingest::{
    DprContext, DprRecord, IdIndex, read_beir_corpus, read_beir_queries, read_dpr_biencoder,
    read_dpr_qa_tsv, read_msmarco_collection, read_qrels, read_trec_run,
};
use tempfile::TempDir;

fn write(dir: &TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn collect<T>(read: impl FnOnce(&mut dyn FnMut(T) -> Result<()>) -> Result<u64>) -> Vec<T> {
    let mut out = Vec::new();
    let n = read(&mut |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

fn doc(id: &str, title: &str, text: &str) -> Doc {
    Doc {
        id: id.into(),
        title: title.into(),
        text: text.into(),
    }
}

fn qrel(q: &str, d: &str, relevance: i32) -> Qrel {
    Qrel {
        query_id: q.into(),
        doc_id: d.into(),
        relevance,
    }
}

#[test]
fn beir_jsonl_line_endings_ids_and_titles() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "corpus.jsonl",
        "{\"_id\": 12, \"title\": \"T\", \"text\": \"a\", \"metadata\": {\"x\": [1]}}\r\n\
         \r\n\
         {\"_id\": \"d2\", \"text\": \"b \\u00e9 ü\"}\n\
         {\"_id\": \"d3\", \"title\": null, \"text\": \"\"}"
            .as_bytes(),
    );
    let mut ids = IdIndex::new();
    let docs = collect(|s| read_beir_corpus(&path, Some(&mut ids), s));
    assert_eq!(
        docs,
        [
            doc("12", "T", "a"),
            doc("d2", "", "b é ü"),
            doc("d3", "", "")
        ]
    );
    assert!(ids.contains("12") && ids.contains("d3") && !ids.contains("d1"));
    assert_eq!(ids.len(), 3);
    assert!(!ids.is_empty());

    let path = write(
        &dir,
        "queries.jsonl",
        b"{\"_id\": \"q1\", \"text\": \"what\", \"metadata\": {}}",
    );
    let queries = collect(|s| read_beir_queries(&path, None, s));
    assert_eq!(
        queries,
        [Query {
            id: "q1".into(),
            text: "what".into(),
            answers: None
        }]
    );
}

#[test]
fn msmarco_tsv_keeps_text_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "collection.tsv",
        b"1\t a \"quoted\" text \r\n2\t\n\n3\tlast",
    );
    let docs = collect(|s| read_msmarco_collection(&path, None, s));
    assert_eq!(
        docs,
        [
            doc("1", "", " a \"quoted\" text "),
            doc("2", "", ""),
            doc("3", "", "last")
        ]
    );
}

#[test]
fn qrels_trec_layout() {
    let dir = tempfile::tempdir().unwrap();
    // Tabs, runs of spaces, leading blanks, `Q0` or `0` as iter, negative grades, no final newline.
    let path = write(
        &dir,
        "qrels.txt",
        b"1 0 d1 1\n1\tQ0\td2\t0\r\n  2   0  d1   -1\n\n3 0 d9 2",
    );
    let qrels = collect(|s| read_qrels(&path, None, s));
    assert_eq!(
        qrels,
        [
            qrel("1", "d1", 1),
            qrel("1", "d2", 0),
            qrel("2", "d1", -1),
            qrel("3", "d9", 2)
        ]
    );
}

#[test]
fn qrels_beir_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "test.tsv",
        b"query-id\tcorpus-id\tscore\r\nq 1\td 1\t2\r\nq2\td2\t0",
    );
    let mut known = IdIndex::new();
    for (line, id) in [(1, "d 1"), (2, "d2")] {
        known
            .insert("doc", Path::new("corpus.jsonl"), line, id)
            .unwrap();
    }
    // Tab-separated: ids may hold spaces.
    let qrels = collect(|s| read_qrels(&path, Some(&known), s));
    assert_eq!(qrels, [qrel("q 1", "d 1", 2), qrel("q2", "d2", 0)]);
}

#[test]
fn trec_run_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "run.txt",
        b"q1 Q0 d1 1 12.5 bm25\nq1\tQ0\td2\t2\t-1.5e3\tbm25\r\n",
    );
    let rows = collect(|s| read_trec_run(&path, s));
    assert_eq!(
        rows,
        [
            RunRow {
                query_id: "q1".into(),
                doc_id: "d1".into(),
                rank: 1,
                score: 12.5
            },
            RunRow {
                query_id: "q1".into(),
                doc_id: "d2".into(),
                rank: 2,
                score: -1500.0
            },
        ]
    );
}

#[test]
fn duplicate_across_files_names_the_first_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(&dir, "a.tsv", b"1\tx\n2\ty\n");
    let second = write(&dir, "b.tsv", b"3\tz\n2\tw\n");
    let mut ids = IdIndex::new();
    read_msmarco_collection(&first, Some(&mut ids), |_| Ok(())).unwrap();
    let err = read_msmarco_collection(&second, Some(&mut ids), |_| Ok(())).unwrap_err();
    let want = format!(
        "{}:2: duplicate doc id \"2\": expected unique ids, first seen at {}:2",
        second.display(),
        first.display()
    );
    assert_eq!(err.to_string(), want);
}

fn ctx(id: &str, title: &str, text: &str) -> DprContext {
    DprContext {
        id: id.into(),
        title: title.into(),
        text: text.into(),
    }
}

#[test]
fn dpr_context_ids_and_optional_lists() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"
    [
      {"dataset": "nq", "question": "q1", "answers": ["a", "b"],
       "positive_ctxs": [
         {"title": "T", "text": "x", "score": 1000, "title_score": 1, "passage_id": "17"},
         {"title": "T", "text": "y", "psg_id": 18},
         {"title": "T", "text": "z", "passage_id": "19", "psg_id": "99"},
         {"text": "w", "extra": {"nested": [1, 2]}}
       ],
       "negative_ctxs": [{"title": "N", "text": "n"}]}
    ]
    "#;
    let path = write(&dir, "biencoder.json", json.as_bytes());
    let records = collect(|s| read_dpr_biencoder(&path, s));
    let hashed = DprContext::content_id("N", "n");
    assert_eq!(
        records,
        [DprRecord {
            question: "q1".into(),
            answers: vec!["a".into(), "b".into()],
            positive_ctxs: vec![
                ctx("17", "T", "x"),
                ctx("18", "T", "y"),
                ctx("19", "T", "z"),
                ctx(&DprContext::content_id("", "w"), "", "w"),
            ],
            negative_ctxs: vec![ctx(&hashed, "N", "n")],
            hard_negative_ctxs: vec![],
        }]
    );
}

#[test]
fn content_id_is_stable_and_separates_title_from_text() {
    let id = DprContext::content_id("Title", "Some text.");
    // Pinned: ids written to artifacts must not change between versions.
    assert_eq!(id, "h:a9827aff155836ed656d0755caff2379");
    assert_eq!(id, DprContext::content_id("Title", "Some text."));
    assert_ne!(
        DprContext::content_id("ab", "c"),
        DprContext::content_id("a", "bc")
    );
    assert_ne!(
        DprContext::content_id("", "x"),
        DprContext::content_id("x", "")
    );
}

#[test]
fn dpr_hands_each_record_over_before_reading_the_next() {
    let dir = tempfile::tempdir().unwrap();
    // Record 2 is broken; a reader that parsed the whole array first would report it.
    let json = br#"[{"question": "q1", "answers": [], "positive_ctxs": []}, {"broken"#;
    let path = write(&dir, "biencoder.json", json);
    let mut seen = Vec::new();
    let err = read_dpr_biencoder(&path, |r| {
        seen.push(r.question);
        Err(Error::Invalid("sink full".into()))
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(m) if m == "sink full"),
        "{err}"
    );
    assert_eq!(seen, ["q1"]);
}

#[test]
fn sink_errors_stop_line_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "qrels.txt",
        b"1 0 d1 1\n1 0 d2 1\nthis line is never parsed\n",
    );
    let mut calls = 0;
    let err = read_qrels(&path, None, |q| {
        calls += 1;
        if q.doc_id == "d2" {
            Err(Error::Invalid("stop".into()))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(matches!(&err, Error::Invalid(m) if m == "stop"), "{err}");
    assert_eq!(calls, 2);
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.jsonl");
    let err = read_beir_corpus(&path, None, |_| Ok(())).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err}"
    );
}

#[test]
fn dpr_qa_tsv_quoting_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "qa.tsv",
        "who?\t['A', \"B's\"]\r\n\r\n\"say \"\"hi\"\"\"\t\"['\"\"x\"\"', 'caf\\xe9']\"\r\nnone\t[]"
            .as_bytes(),
    );
    let queries = collect(|s| read_dpr_qa_tsv(&path, s));
    let q = |id: &str, text: &str, answers: &[&str]| Query {
        id: id.into(),
        text: text.into(),
        answers: Some(answers.iter().map(|a| a.to_string()).collect()),
    };
    // Ids count questions from 0; the blank line is skipped.
    assert_eq!(
        queries,
        [
            q("0", "who?", &["A", "B's"]),
            q("1", "say \"hi\"", &["\"x\"", "café"]),
            q("2", "none", &[])
        ]
    );
}
