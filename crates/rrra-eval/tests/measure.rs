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
        assert_eq!(measure.trec_name(), trec);
        assert_eq!(display.parse::<Measure>().unwrap(), measure);
        assert_eq!(trec.parse::<Measure>().unwrap(), measure);
    }
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
