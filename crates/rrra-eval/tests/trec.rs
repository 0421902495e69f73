//! TREC run and qrels export.

use rrra_common::records::{Qrel, RunRow};
use rrra_eval::{Qrels, Run, write_trec_qrels, write_trec_run, write_trec_run_file};

fn run(rows: &[(&str, &str, f64)]) -> Run {
    Run::from_rows(rows.iter().map(|&(q, d, s)| RunRow {
        query_id: q.into(),
        doc_id: d.into(),
        rank: 99,
        score: s,
    }))
    .unwrap()
}

#[test]
fn run_lines_follow_evaluation_order_with_fresh_ranks() {
    let r = run(&[
        ("q2", "a", 0.5),
        ("q1", "a", 1.0),
        ("q1", "b", 1.0),
        ("q1", "c", 2.25),
        ("q1", "d", -0.1),
    ]);
    let mut out = Vec::new();
    write_trec_run(&r, "bm25", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "q1 Q0 c 1 2.25 bm25\n\
         q1 Q0 b 2 1 bm25\n\
         q1 Q0 a 3 1 bm25\n\
         q1 Q0 d 4 -0.1 bm25\n\
         q2 Q0 a 1 0.5 bm25\n"
    );
}

#[test]
fn scores_read_back_exactly() {
    let scores = [0.1 + 0.2, 1e-300, -123456.789e10, 1.0 / 3.0];
    let rows: Vec<(&str, String, f64)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| ("q", format!("d{i}"), s))
        .collect();
    let r = run(&rows
        .iter()
        .map(|(q, d, s)| (*q, d.as_str(), *s))
        .collect::<Vec<_>>());
    let mut out = Vec::new();
    write_trec_run(&r, "t", &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let i: usize = fields[2][1..].parse().unwrap();
        assert_eq!(fields[4].parse::<f64>().unwrap(), scores[i], "{line}");
    }
}

#[test]
fn fields_with_whitespace_are_refused() {
    let mut out = Vec::new();
    assert!(write_trec_run(&run(&[("q", "a", 1.0)]), "my run", &mut out).is_err());
    assert!(write_trec_run(&run(&[("q", "a", 1.0)]), "", &mut out).is_err());
    assert!(write_trec_run(&run(&[("q", "a b", 1.0)]), "t", &mut out).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.trec");
    let err = write_trec_run_file(&run(&[("q 1", "a", 1.0)]), "t", &path).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("run.trec") && message.contains("\"q 1\""),
        "{message}"
    );
}

#[test]
fn qrels_lines_are_sorted_by_query_then_document() {
    let qrels = Qrels::from_rows([("q2", "x", 1), ("q1", "b", -1), ("q1", "a", 2)].map(
        |(q, d, g)| Qrel {
            query_id: q.into(),
            doc_id: d.into(),
            relevance: g,
        },
    ))
    .unwrap();
    let mut out = Vec::new();
    write_trec_qrels(&qrels, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "q1 0 a 2\nq1 0 b -1\nq2 0 x 1\n"
    );
}
