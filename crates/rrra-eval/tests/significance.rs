//! Paired t-test and randomisation test against closed forms and exhaustive enumeration.

use std::f64::consts::PI;

use rrra_common::records::{Qrel, RunRow};
use rrra_eval::{
    Measure, Qrels, Run, detectable_difference, evaluate, paired_t_test, paired_values,
    randomisation_test,
};

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected}"
    );
}

#[test]
fn t_test_with_one_degree_of_freedom_matches_the_cauchy_cdf() {
    // d = (1, 3): mean 2, sd sqrt(2), se 1, t = 2. With 1 df, t is Cauchy: p = 1 - 2/pi atan|t|.
    let r = paired_t_test(&[1.0, 3.0], &[0.0, 0.0]).unwrap();
    assert_close(r.t, 2.0, 1e-12, "t");
    assert_eq!(r.df, 1);
    assert_close(r.p_value, 1.0 - 2.0 / PI * 2f64.atan(), 1e-10, "p");
}

#[test]
fn t_test_with_three_degrees_of_freedom_matches_the_closed_form() {
    // d = (1, 2, 3, 4): mean 2.5, variance 5/3, se sqrt(5/12).
    let a = [1.5, 2.0, 3.25, 4.0];
    let b = [0.5, 0.0, 0.25, 0.0];
    let t = 2.5 / (5.0f64 / 12.0).sqrt();
    // For 3 df: P(|T| > t) = 1 - 2/pi (x/(1 + x^2) + atan x), x = t / sqrt 3.
    let x = t / 3f64.sqrt();
    let p = 1.0 - 2.0 / PI * (x / (1.0 + x * x) + x.atan());
    let r = paired_t_test(&a, &b).unwrap();
    assert_close(r.t, t, 1e-12, "t");
    assert_eq!(r.df, 3);
    assert_close(r.p_value, p, 1e-10, "p");
    // Swapping the systems flips t and keeps p.
    let s = paired_t_test(&b, &a).unwrap();
    assert_close(s.t, -t, 1e-12, "-t");
    assert_close(s.p_value, p, 1e-12, "p swapped");
}

#[test]
fn t_test_degenerate_cases() {
    let same = paired_t_test(&[0.3, 0.5, 0.1], &[0.3, 0.5, 0.1]).unwrap();
    assert_eq!((same.t, same.p_value), (0.0, 1.0));
    let shifted = paired_t_test(&[1.5, 2.5], &[1.0, 2.0]).unwrap();
    assert_eq!((shifted.t, shifted.p_value), (f64::INFINITY, 0.0));
    assert!(paired_t_test(&[1.0], &[0.0]).is_err());
    assert!(paired_t_test(&[1.0, 2.0], &[0.0]).is_err());
    assert!(paired_t_test(&[1.0, f64::NAN], &[0.0, 0.0]).is_err());
}

/// The exact two-sided sign-flip p-value: the share of the 2^n sign patterns whose |sum| is at
/// least the observed one.
fn exact_sign_flip_p(d: &[f64]) -> f64 {
    let observed: f64 = d.iter().sum::<f64>().abs();
    let n = d.len();
    let hits = (0..1u32 << n)
        .filter(|mask| {
            let sum: f64 = (0..n)
                .map(|i| if (mask >> i) & 1 == 1 { -d[i] } else { d[i] })
                .sum();
            sum.abs() >= observed - 1e-12
        })
        .count();
    hits as f64 / (1u64 << n) as f64
}

#[test]
fn randomisation_test_approaches_the_exact_permutation_p_value() {
    let a = [0.6, 0.9, 0.3, 0.8, 1.0, 0.55, 0.75, 0.65, 0.2, 0.5];
    let b = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let exact = exact_sign_flip_p(&d);
    assert!(
        exact > 0.01 && exact < 0.5,
        "a case with a moderate p: {exact}"
    );
    let trials = 100_000;
    let p = randomisation_test(&a, &b, trials, 7).unwrap();
    // 5 standard errors of a binomial proportion.
    let tolerance = 5.0 * (exact * (1.0 - exact) / trials as f64).sqrt();
    assert_close(p, exact, tolerance, "p");
    // Deterministic given the seed; symmetric in the systems.
    assert_eq!(randomisation_test(&a, &b, trials, 7).unwrap(), p);
    assert_close(
        randomisation_test(&b, &a, trials, 7).unwrap(),
        exact,
        tolerance,
        "swapped",
    );
}

#[test]
fn randomisation_test_degenerate_cases() {
    // No difference, or one pair: every draw is as extreme as observed, so p = 1.
    assert_eq!(
        randomisation_test(&[0.2, 0.4], &[0.2, 0.4], 500, 1).unwrap(),
        1.0
    );
    assert_eq!(randomisation_test(&[0.9], &[0.1], 500, 1).unwrap(), 1.0);
    // 20 equal positive differences: only the 2 of 2^20 patterns without a mixed sign are
    // as extreme, so 999 draws (almost surely) find none and p is the floor 1 / (1 + 999).
    let p = randomisation_test(&[1.0; 20], &[0.0; 20], 999, 3).unwrap();
    assert_eq!(p, 1.0 / 1000.0);
    assert!(randomisation_test(&[], &[], 10, 1).is_err());
    assert!(randomisation_test(&[1.0], &[0.0], 0, 1).is_err());
    assert!(randomisation_test(&[1.0], &[0.0, 1.0], 10, 1).is_err());
}

fn evaluation(run_rows: &[(&str, &str)]) -> rrra_eval::Evaluation {
    let qrels = Qrels::from_rows(["q1", "q2", "q3"].map(|q| Qrel {
        query_id: q.into(),
        doc_id: "rel".into(),
        relevance: 1,
    }))
    .unwrap();
    let run = Run::from_rows(run_rows.iter().enumerate().map(|(i, &(q, d))| RunRow {
        query_id: q.into(),
        doc_id: d.into(),
        rank: 0,
        score: -(i as f64),
    }))
    .unwrap();
    evaluate(&qrels, &run, &[Measure::RecipRank(None)], 1)
}

#[test]
fn paired_values_align_queries_and_reject_different_query_sets() {
    let a = evaluation(&[("q1", "rel"), ("q2", "x"), ("q2", "rel")]);
    let b = evaluation(&[("q2", "rel"), ("q1", "x"), ("q1", "y"), ("q1", "rel")]);
    let (va, vb) = paired_values(&a, &b, &Measure::RecipRank(None)).unwrap();
    assert_eq!(va, [1.0, 0.5]);
    assert_eq!(vb, [1.0 / 3.0, 1.0]);
    let c = evaluation(&[("q1", "rel"), ("q3", "rel")]);
    let err = paired_values(&a, &c, &Measure::RecipRank(None)).unwrap_err();
    assert!(
        err.to_string().contains("\"q2\" is only in the first"),
        "{err}"
    );
    assert!(paired_values(&a, &b, &Measure::Map).is_err());
}

#[test]
fn detectable_difference_with_one_degree_of_freedom_matches_cauchy_quantiles() {
    // d = (1, 3): sd sqrt(2), n 2, so sd/sqrt(n) = 1; with 1 df the quantiles are Cauchy's,
    // tan(pi (p - 1/2)): t(0.975) = 12.706..., t(0.8) = 1.376...
    let q = |p: f64| (PI * (p - 0.5)).tan();
    let x = detectable_difference(&[1.0, 3.0], &[0.0, 0.0], 0.05, 0.8).unwrap();
    assert_close(x, q(0.975) + q(0.8), 1e-8, "detectable difference");
}

#[test]
fn a_shift_of_the_detectable_difference_is_significant_and_half_of_it_is_not() {
    let b: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin()).collect();
    let noise: Vec<f64> = (0..40).map(|i| 0.1 * (i as f64 * 1.7).cos()).collect();
    let x = detectable_difference(&noise, &vec![0.0; 40], 0.05, 0.8).unwrap();
    assert!(x > 0.0);
    // Centre the differences, then shift them by a multiple of the detectable difference.
    let mean = noise.iter().sum::<f64>() / 40.0;
    let shifted = |by: f64| -> Vec<f64> {
        b.iter()
            .zip(&noise)
            .map(|(b, n)| b + n - mean + by)
            .collect()
    };
    assert!(paired_t_test(&shifted(x), &b).unwrap().p_value < 0.05);
    assert!(paired_t_test(&shifted(x / 2.0), &b).unwrap().p_value > 0.05);
    // More pairs with the same spread detect a smaller difference.
    let twice: Vec<f64> = noise.iter().chain(&noise).copied().collect();
    assert!(detectable_difference(&twice, &vec![0.0; 80], 0.05, 0.8).unwrap() < x);
    assert!(detectable_difference(&[1.0], &[0.0], 0.05, 0.8).is_err());
    assert!(detectable_difference(&[1.0, 2.0], &[0.0, 0.0], 0.05, 1.0).is_err());
}
