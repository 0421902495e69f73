//! Hand-computed trec_eval cases: tie order, graded gains, thresholds, query intersections,
//! queries without relevant documents, duplicates.

use rrra_common::records::{Qrel, RunRow};
use rrra_eval::{Measure, Qrels, Run, evaluate};

const EPS: f64 = 1e-12;

fn qrels(rows: &[(&str, &str, i32)]) -> Qrels {
    Qrels::from_rows(rows.iter().map(|&(q, d, g)| Qrel {
        query_id: q.into(),
        doc_id: d.into(),
        relevance: g,
    }))
    .unwrap()
}

/// Run rows with a deliberately meaningless rank column (always 1): evaluation ignores it.
fn run_rows(rows: &[(&str, &str, f64)]) -> Vec<RunRow> {
    rows.iter()
        .map(|&(q, d, s)| RunRow {
            query_id: q.into(),
            doc_id: d.into(),
            rank: 1,
            score: s,
        })
        .collect()
}

fn run(rows: &[(&str, &str, f64)]) -> Run {
    Run::from_rows(run_rows(rows)).unwrap()
}

fn m(name: &str) -> Measure {
    name.parse().unwrap()
}

fn value(qrels: &Qrels, run: &Run, measure: &str, threshold: i32, query: &str) -> f64 {
    let measure = m(measure);
    evaluate(qrels, run, &[measure], threshold)
        .value(query, &measure)
        .unwrap()
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < EPS,
        "{what}: got {actual}, expected {expected}"
    );
}

fn doc_order(run: &Run, query: &str) -> Vec<String> {
    run.ranking(query)
        .unwrap()
        .iter()
        .map(|d| d.doc_id.clone())
        .collect()
}

#[test]
fn ties_go_to_the_greater_doc_id_first() {
    // c scores highest; a and b tie, and trec_eval's comp_sim_docno puts b (strcmp-greater)
    // first. Byte order: "B" < "a" < "b" < "é".
    let r = run(&[
        ("q", "a", 1.0),
        ("q", "b", 1.0),
        ("q", "c", 2.0),
        ("q", "B", 1.0),
        ("q", "é", 1.0),
    ]);
    assert_eq!(doc_order(&r, "q"), ["c", "é", "b", "a", "B"]);
    // Only "a" is relevant: rank 4.
    let j = qrels(&[("q", "a", 1), ("q", "b", 0)]);
    assert_close(value(&j, &r, "recip_rank", 1, "q"), 1.0 / 4.0, "RR");
    assert_close(value(&j, &r, "P@4", 1, "q"), 1.0 / 4.0, "P@4");
    assert_close(value(&j, &r, "P@3", 1, "q"), 0.0, "P@3");
    assert_close(value(&j, &r, "map", 1, "q"), 1.0 / 4.0, "MAP");
}

#[test]
fn scores_are_compared_as_f32_like_trec_eval_9() {
    let j = qrels(&[("q", "a", 1), ("q", "b", 0)]);
    // 1 + 1e-12 rounds to 1.0f32: a tie, so b (greater id) comes first.
    let tied = run(&[("q", "a", 1.0 + 1e-12), ("q", "b", 1.0)]);
    assert_eq!(doc_order(&tied, "q"), ["b", "a"]);
    assert_close(value(&j, &tied, "MRR", 1, "q"), 0.5, "RR, f32 tie");
    // 1 + 1e-6 survives rounding to f32.
    let apart = run(&[("q", "a", 1.0 + 1e-6), ("q", "b", 1.0)]);
    assert_eq!(doc_order(&apart, "q"), ["a", "b"]);
    // -0 and +0 tie; 1e39 overflows f32 to infinity and ties with infinity.
    let signed = run(&[
        ("q", "a", 0.0),
        ("q", "b", -0.0),
        ("q", "c", 1e39),
        ("q", "d", f64::INFINITY),
    ]);
    assert_eq!(doc_order(&signed, "q"), ["d", "c", "b", "a"]);
}

/// q1's qrels: a=3, b=2, c=0, d=1, e=-1 (unjudged), f=2 (not retrieved). The run ranks
/// c, a, x (not judged), e, d, b.
fn graded() -> (Qrels, Run) {
    let j = qrels(&[
        ("q1", "a", 3),
        ("q1", "b", 2),
        ("q1", "c", 0),
        ("q1", "d", 1),
        ("q1", "e", -1),
        ("q1", "f", 2),
    ]);
    let r = run(&[
        ("q1", "b", 1.0),
        ("q1", "d", 2.0),
        ("q1", "e", 2.5),
        ("q1", "x", 3.0),
        ("q1", "a", 4.0),
        ("q1", "c", 5.0),
    ]);
    (j, r)
}

#[test]
fn ndcg_uses_grades_as_gains_and_all_judged_docs_for_the_ideal() {
    let (j, r) = graded();
    let l = |x: f64| x.log2();
    // Gains by rank: 0, 3, -, -, 1, 2. Ideal gains: 3, 2, 2, 1 (e's -1 gives nothing).
    let ndcg2 = (3.0 / l(3.0)) / (3.0 + 2.0 / l(3.0));
    let ndcg5 = (3.0 / l(3.0) + 1.0 / l(6.0)) / (3.0 + 2.0 / l(3.0) + 2.0 / l(4.0) + 1.0 / l(5.0));
    let ndcg10 = (3.0 / l(3.0) + 1.0 / l(6.0) + 2.0 / l(7.0))
        / (3.0 + 2.0 / l(3.0) + 2.0 / l(4.0) + 1.0 / l(5.0));
    for threshold in [1, 2, 3] {
        // nDCG ignores the relevance threshold, as trec_eval's ndcg_cut does.
        assert_close(value(&j, &r, "nDCG@1", threshold, "q1"), 0.0, "nDCG@1");
        assert_close(value(&j, &r, "nDCG@2", threshold, "q1"), ndcg2, "nDCG@2");
        assert_close(value(&j, &r, "nDCG@5", threshold, "q1"), ndcg5, "nDCG@5");
        assert_close(value(&j, &r, "nDCG@10", threshold, "q1"), ndcg10, "nDCG@10");
    }
}

#[test]
fn binary_measures_follow_the_relevance_threshold() {
    let (j, r) = graded();
    // Threshold 1: relevant a (rank 2), d (rank 5), b (rank 6), and f (not retrieved).
    assert_close(value(&j, &r, "MRR", 1, "q1"), 0.5, "RR@l1");
    assert_close(value(&j, &r, "MRR@1", 1, "q1"), 0.0, "RR@1 l1");
    assert_close(value(&j, &r, "P@5", 1, "q1"), 2.0 / 5.0, "P@5 l1");
    assert_close(value(&j, &r, "R@5", 1, "q1"), 2.0 / 4.0, "R@5 l1");
    assert_close(value(&j, &r, "R@100", 1, "q1"), 3.0 / 4.0, "R@100 l1");
    assert_close(
        value(&j, &r, "MAP", 1, "q1"),
        (1.0 / 2.0 + 2.0 / 5.0 + 3.0 / 6.0) / 4.0,
        "MAP l1",
    );
    // Threshold 2: relevant a (rank 2), b (rank 6), and f.
    assert_close(value(&j, &r, "P@5", 2, "q1"), 1.0 / 5.0, "P@5 l2");
    assert_close(value(&j, &r, "R@100", 2, "q1"), 2.0 / 3.0, "R@100 l2");
    assert_close(
        value(&j, &r, "MAP", 2, "q1"),
        (1.0 / 2.0 + 2.0 / 6.0) / 3.0,
        "MAP l2",
    );
    // Threshold 3: only a.
    assert_close(value(&j, &r, "R@5", 3, "q1"), 1.0, "R@5 l3");
    assert_close(value(&j, &r, "MAP", 3, "q1"), 1.0 / 2.0, "MAP l3");
    // Threshold 4: nothing is relevant.
    assert_close(value(&j, &r, "MRR", 4, "q1"), 0.0, "RR l4");
    assert_close(value(&j, &r, "R@5", 4, "q1"), 0.0, "R@5 l4");
}

#[test]
fn mrr_cutoff_and_short_rankings() {
    let j = qrels(&[("q", "c", 1)]);
    let r = run(&[("q", "a", 3.0), ("q", "b", 2.0), ("q", "c", 1.0)]);
    assert_close(value(&j, &r, "MRR@2", 1, "q"), 0.0, "RR@2");
    assert_close(value(&j, &r, "MRR@3", 1, "q"), 1.0 / 3.0, "RR@3");
    assert_close(value(&j, &r, "MRR@10", 1, "q"), 1.0 / 3.0, "RR@10");
    // Precision past the end of the ranking counts the missing ranks as non-relevant.
    assert_close(value(&j, &r, "P@10", 1, "q"), 1.0 / 10.0, "P@10");
    assert_close(value(&j, &r, "R@2", 1, "q"), 0.0, "R@2");
    assert_close(value(&j, &r, "R@3", 1, "q"), 1.0, "R@3");
    assert_close(value(&j, &r, "nDCG@10", 1, "q"), 1.0 / 2.0, "nDCG@10");
}

#[test]
fn only_queries_in_both_run_and_qrels_are_evaluated_and_averaged() {
    let j = qrels(&[
        ("q1", "a", 1),
        ("q3", "a", 1), // judged, not in the run: skipped (trec_eval without -c)
        ("q4", "a", 0), // judged, nothing relevant: evaluated, scores 0
        ("q4", "b", 0),
        ("q5", "a", -1), // only a negative grade: evaluated, scores 0
    ]);
    let r = run(&[
        ("q1", "b", 2.0),
        ("q1", "a", 1.0),
        ("q2", "a", 1.0), // not judged: skipped
        ("q4", "a", 1.0),
        ("q5", "a", 1.0),
    ]);
    let measures: Vec<Measure> = ["MRR", "nDCG@10", "R@10", "P@1", "MAP"]
        .iter()
        .map(|s| m(s))
        .collect();
    let e = evaluate(&j, &r, &measures, 1);
    assert_eq!(e.query_ids(), ["q1", "q4", "q5"]);
    assert_eq!(e.measures(), measures.as_slice());
    for measure in &measures {
        for q in ["q4", "q5"] {
            let v = e.value(q, measure).unwrap();
            // +0, not -0 (which would print as "-0").
            assert!(v == 0.0 && v.is_sign_positive(), "{q} {measure}: {v}");
        }
        assert_eq!(e.value("q2", measure), None);
        assert_eq!(e.value("q3", measure), None);
    }
    // q1: a relevant at rank 2.
    let q1 = [1.0 / 2.0, 1.0 / 3f64.log2(), 1.0, 0.0, 1.0 / 2.0];
    for (measure, expected) in measures.iter().zip(q1) {
        assert_close(e.value("q1", measure).unwrap(), expected, "q1");
        assert_close(e.mean(measure).unwrap(), expected / 3.0, "mean");
        assert_eq!(e.per_query(measure).unwrap().len(), 3);
    }
    assert_eq!(e.mean(&m("P@7")), None);
}

#[test]
fn no_common_queries_gives_an_empty_evaluation_with_zero_means() {
    let j = qrels(&[("q1", "a", 1)]);
    let r = run(&[("q2", "a", 1.0)]);
    let e = evaluate(&j, &r, &[Measure::Map], 1);
    assert!(e.query_ids().is_empty());
    assert_eq!(e.mean(&Measure::Map), Some(0.0));
    assert_eq!(e.per_query(&Measure::Map), Some(vec![]));
}

#[test]
fn metric_rows_list_queries_then_the_mean_as_all() {
    let j = qrels(&[("q1", "a", 1), ("q2", "a", 1)]);
    let r = run(&[("q1", "a", 1.0), ("q2", "b", 2.0), ("q2", "a", 1.0)]);
    let rows = evaluate(&j, &r, &[m("recip_rank.10"), m("P.1")], 1).to_metric_rows();
    let got: Vec<(&str, &str, f64)> = rows
        .iter()
        .map(|r| (r.query_id.as_str(), r.measure.as_str(), r.value))
        .collect();
    assert_eq!(
        got,
        [
            ("q1", "MRR@10", 1.0),
            ("q1", "P@1", 1.0),
            ("q2", "MRR@10", 0.5),
            ("q2", "P@1", 0.0),
            ("all", "MRR@10", 0.75),
            ("all", "P@1", 0.5),
        ]
    );
}

#[test]
fn metric_rows_name_a_relevance_level_other_than_one() {
    let j = qrels(&[("q1", "a", 1), ("q1", "b", 2)]);
    let r = run(&[("q1", "a", 2.0), ("q1", "b", 1.0)]);
    let e = evaluate(&j, &r, &[m("MRR@10"), m("nDCG@10")], 2);
    assert_eq!(e.relevance_threshold(), 2);
    let rows = e.to_metric_rows();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.query_id == "all")
        .map(|r| {
            (
                r.measure.as_str(),
                if r.value == 0.5 { "0.5" } else { "other" },
            )
        })
        .collect();
    // At level 2 only `b` (rank 2) is relevant for MRR; nDCG takes grades as gains.
    assert_eq!(got, [("MRR@10(rel>=2)", "0.5"), ("nDCG@10", "other")]);
}

#[test]
fn duplicates_and_nan_are_rejected_as_trec_eval_does() {
    let dup = Run::from_rows(run_rows(&[
        ("q", "a", 1.0),
        ("q", "b", 0.5),
        ("q", "a", 0.2),
    ]));
    let message = dup.unwrap_err().to_string();
    assert!(message.contains("\"a\" twice"), "{message}");
    // The same doc id under different queries is fine.
    assert!(Run::from_rows(run_rows(&[("q1", "a", 1.0), ("q2", "a", 1.0)])).is_ok());

    let dup = Qrels::from_rows([("q", "a", 1), ("q", "a", 0)].map(|(q, d, g)| Qrel {
        query_id: q.into(),
        doc_id: d.into(),
        relevance: g,
    }));
    assert!(dup.unwrap_err().to_string().contains("twice"));

    let nan = Run::from_rows(run_rows(&[("q", "a", f64::NAN)]));
    assert!(nan.unwrap_err().to_string().contains("NaN"));
}

#[test]
fn rows_of_a_query_need_not_be_contiguous() {
    let r = run(&[
        ("q1", "a", 1.0),
        ("q2", "x", 1.0),
        ("q1", "b", 3.0),
        ("q2", "y", 2.0),
        ("q1", "c", 2.0),
    ]);
    assert_eq!(r.len(), 2);
    assert_eq!(doc_order(&r, "q1"), ["b", "c", "a"]);
    assert_eq!(doc_order(&r, "q2"), ["y", "x"]);
    let dup = Run::from_rows(run_rows(&[
        ("q1", "a", 1.0),
        ("q2", "a", 1.0),
        ("q1", "a", 2.0),
    ]));
    assert!(dup.is_err());
}
