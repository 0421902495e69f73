//! DPR answer matching (`has_answer`, match type "string") and top-k accuracy.

use std::collections::{BTreeMap, HashMap};

use rrra_common::records::RunRow;
use rrra_eval::{Run, answer_top_k, has_answer};

fn answers(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn answers_match_whole_token_sequences_case_insensitively() {
    assert!(has_answer(
        "The capital of France is Paris.",
        &answers(&["paris"])
    ));
    assert!(has_answer(
        "He moved to NEW  YORK city",
        &answers(&["New York"])
    ));
    // Tokens, not substrings.
    assert!(!has_answer("A Parisian cafe", &answers(&["Paris"])));
    assert!(!has_answer("NewYork", &answers(&["New York"])));
    // Order matters: the tokens must be contiguous and in order.
    assert!(!has_answer("York, New", &answers(&["New York"])));
    // Any one of several answers suffices; none at all never matches.
    assert!(has_answer("in 1969", &answers(&["1968", "1969"])));
    assert!(!has_answer("in 1969", &[]));
}

#[test]
fn punctuation_is_one_token_per_character() {
    // "U.S." is u . s . and "don't" is don ' t, in passage and answer alike.
    assert!(has_answer("the U.S. army", &answers(&["u.s."])));
    assert!(has_answer("I don't know", &answers(&["don't"])));
    assert!(!has_answer("the US army", &answers(&["U.S."])));
    // "$50" is $ 50: the answer's token 5 is not the passage's 50.
    assert!(!has_answer("costs $50", &answers(&["$5"])));
    assert!(has_answer("costs $5 now", &answers(&["$5"])));
}

#[test]
fn text_is_nfd_normalised_so_accents_stay_part_of_the_word() {
    // Precomposed and decomposed é match each other.
    assert!(has_answer("Cafe\u{301} de Flore", &answers(&["café"])));
    assert!(has_answer("Café de Flore", &answers(&["cafe\u{301}"])));
    // The combining accent is a mark, so it stays in the token: no match without it.
    assert!(!has_answer("Café de Flore", &answers(&["cafe"])));
    // Uppercase accented letters lowercase after decomposition.
    assert!(has_answer("ÉCOLE normale", &answers(&["école"])));
}

#[test]
fn an_answer_without_tokens_matches_anything_as_in_dpr() {
    assert!(has_answer("anything", &answers(&[""])));
    assert!(has_answer("", &answers(&["  "])));
    assert!(!has_answer("", &answers(&["x"])));
}

fn run(rows: &[(&str, &str, f64)]) -> Run {
    Run::from_rows(rows.iter().map(|&(q, d, s)| RunRow {
        query_id: q.into(),
        doc_id: d.into(),
        rank: 0,
        score: s,
    }))
    .unwrap()
}

#[test]
fn top_k_accuracy_is_per_query_first_hit_within_k() {
    let passages: HashMap<&str, &str> = [
        ("p1", "Nothing relevant here."),
        ("p2", "Armstrong walked on the Moon in 1969."),
        ("p3", "The year 1969 again."),
        ("p4", "Paris is in France."),
    ]
    .into_iter()
    .collect();
    // q1 ranks p1, p2, p3 (scores out of insertion order): first hit at rank 2.
    // q2 is not in the run: it counts, with no hit. q3 has no answers: ignored.
    let r = run(&[
        ("q1", "p3", 1.0),
        ("q1", "p1", 3.0),
        ("q1", "p2", 2.0),
        ("q3", "p4", 1.0),
    ]);
    let gold: BTreeMap<String, Vec<String>> = [
        ("q1".to_string(), answers(&["1969"])),
        ("q2".to_string(), answers(&["Paris"])),
    ]
    .into_iter()
    .collect();
    let acc = answer_top_k(&r, |d| passages.get(d).copied(), &gold, &[1, 2, 20, 0]).unwrap();
    assert_eq!(acc.ks(), [1, 2, 20, 0]);
    assert_eq!(acc.query_ids(), ["q1", "q2"]);
    let expected_q1 = [(1, 0.0), (2, 1.0), (20, 1.0), (0, 0.0)];
    for (k, hit) in expected_q1 {
        assert_eq!(acc.hit("q1", k), Some(hit), "q1 @{k}");
        assert_eq!(acc.hit("q2", k), Some(0.0), "q2 @{k}");
        assert_eq!(acc.per_query(k), Some(vec![hit, 0.0]));
        assert_eq!(acc.mean(k), Some(hit / 2.0), "mean @{k}");
    }
    assert_eq!(acc.hit("q3", 1), None);
    assert_eq!(acc.mean(3), None);
}

#[test]
fn a_retrieved_document_without_text_is_an_error() {
    let r = run(&[("q1", "p1", 2.0), ("q1", "ghost", 1.0)]);
    let gold: BTreeMap<String, Vec<String>> =
        [("q1".to_string(), answers(&["x"]))].into_iter().collect();
    let passages = |d: &str| (d == "p1").then(|| "no answer".to_string());
    let err = answer_top_k(&r, passages, &gold, &[2]).unwrap_err();
    assert!(err.to_string().contains("\"ghost\""), "{err}");
    // Within k = 1 the missing passage is never looked at.
    let acc = answer_top_k(&r, passages, &gold, &[1]).unwrap();
    assert_eq!(acc.mean(1), Some(0.0));
}
