//! Parsing and naming of measures.

use std::num::NonZeroUsize;

use rrra_eval::Measure;

fn k(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

#[test]
fn trec_names_and_aliases_parse() {
    let cases = [
        ("ndcg_cut.10", Measure::Ndcg(k(10))),
        ("nDCG@10", Measure::Ndcg(k(10))),
        ("NDCG@3", Measure::Ndcg(k(3))),
        ("recip_rank", Measure::RecipRank(None)),
        ("recip_rank.10", Measure::RecipRank(Some(k(10)))),
        ("MRR@10", Measure::RecipRank(Some(k(10)))),
        ("MRR", Measure::RecipRank(None)),
        ("RR@5", Measure::RecipRank(Some(k(5)))),
        ("recall.100", Measure::Recall(k(100))),
        ("R@100", Measure::Recall(k(100))),
        ("Recall@1000", Measure::Recall(k(1000))),
        ("P.10", Measure::Precision(k(10))),
        ("P@10", Measure::Precision(k(10))),
        ("map", Measure::Map),
        ("MAP", Measure::Map),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<Measure>().unwrap(), expected, "{text}");
    }
}

#[test]
fn display_and_trec_names_are_canonical_and_parse_back() {
    let cases = [
        (Measure::Ndcg(k(10)), "nDCG@10", "ndcg_cut.10"),
        (Measure::RecipRank(None), "MRR", "recip_rank"),
        (Measure::RecipRank(Some(k(10))), "MRR@10", "recip_rank.10"),
        (Measure::Recall(k(100)), "R@100", "recall.100"),
        (Measure::Precision(k(5)), "P@5", "P.5"),
        (Measure::Map, "MAP", "map"),
    ];
    for (measure, display, trec) in cases {
        assert_eq!(measure.to_string(), display);
        assert_eq!(measure.reference_name(), trec);
        assert_eq!(display.parse::<Measure>().unwrap(), measure);
        assert_eq!(trec.parse::<Measure>().unwrap(), measure);
    }
}

#[test]
fn trec_eval_names_are_only_claimed_for_trec_eval_measures() {
    // trec_eval has `recip_rank` but no reciprocal-rank cutoff: MRR@10 is not a trec_eval name.
    assert_eq!(Measure::RecipRank(Some(k(10))).trec_eval_name(), None);
    assert_eq!(
        Measure::RecipRank(None).trec_eval_name().as_deref(),
        Some("recip_rank")
    );
    assert_eq!(
        Measure::Ndcg(k(10)).trec_eval_name().as_deref(),
        Some("ndcg_cut.10")
    );
    let err = "bogus".parse::<Measure>().unwrap_err().to_string();
    assert!(
        err.contains("recip_rank.K (MRR@K, not in trec_eval)"),
        "{err}"
    );
}

#[test]
fn labels_name_the_relevance_level_of_binary_measures() {
    let mrr = Measure::RecipRank(Some(k(10)));
    assert_eq!(mrr.label(1), "MRR@10");
    assert_eq!(mrr.label(2), "MRR@10(rel>=2)");
    assert_eq!(Measure::Recall(k(100)).label(2), "R@100(rel>=2)");
    assert_eq!(Measure::Precision(k(5)).label(3), "P@5(rel>=3)");
    assert_eq!(Measure::Map.label(2), "MAP(rel>=2)");
    // nDCG uses the graded relevance as gain whatever the threshold.
    assert_eq!(Measure::Ndcg(k(10)).label(2), "nDCG@10");
}

#[test]
fn bad_measures_are_rejected_with_the_reason() {
    let cases = [
        ("ndcg_cut", "needs a cutoff"),
        ("P", "needs a cutoff"),
        ("recall", "needs a cutoff"),
        ("P@0", "positive integer"),
        ("nDCG@ten", "positive integer"),
        ("MRR@", "positive integer"),
        ("map@10", "no cutoff"),
        ("bpref", "unknown measure"),
        ("", "unknown measure"),
    ];
    for (text, why) in cases {
        let message = text.parse::<Measure>().unwrap_err().to_string();
        assert!(message.contains(why), "{text}: {message}");
    }
}
