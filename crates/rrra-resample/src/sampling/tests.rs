//! Tests of the weightings (against their formulas) and of the draws (frequencies follow
//! the weights).

use super::*;

fn entry(rank: u32, score: f64, pos_sim: f64) -> PoolEntry {
    PoolEntry {
        rank,
        score,
        pos_sim,
        s_fn: 0.0,
    }
}

#[test]
fn rrra_weight_is_hardness_times_the_false_negative_discount() {
    let pool: Vec<PoolEntry> = [(0.9, 0.0), (0.7, 0.5), (0.5, 1.0), (0.3, 0.25)]
        .iter()
        .enumerate()
        .map(|(i, &(score, s_fn))| PoolEntry {
            s_fn,
            ..entry(i as u32 + 1, score, 0.0)
        })
        .collect();
    let minmax = Weighting::Rrra {
        hardness: Hardness::MinMax,
        a: 10.0,
        b: 0.0,
        gamma: 2.0,
    }
    .weights(&pool, 0.8);
    // s_HN = (s - 0.3) / 0.6: 1, 2/3, 1/3, 0; discount (1 - s_fn)^2: 1, 1/4, 0, 9/16.
    assert_close(&minmax, &[1.0, 2.0 / 3.0 / 4.0, 0.0, 0.0]);
    let simans = Weighting::Rrra {
        hardness: Hardness::Simans,
        a: 10.0,
        b: 0.0,
        gamma: 1.0,
    }
    .weights(&pool, 0.8);
    let want: Vec<f64> = pool
        .iter()
        .map(|e| (-10.0 * (e.score - 0.8f64).powi(2)).exp() * (1.0 - e.s_fn))
        .collect();
    assert_close(&simans, &want);
    // gamma = 0 ignores the adapter: plain SimANS weights.
    let plain = Weighting::Rrra {
        hardness: Hardness::Simans,
        a: 10.0,
        b: 0.0,
        gamma: 0.0,
    }
    .weights(&pool, 0.8);
    assert_close(
        &plain,
        &Weighting::Simans { a: 10.0, b: 0.0 }.weights(&pool, 0.8),
    );
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12, "weight {i}: got {g}, want {w}");
    }
}

#[test]
fn uniform_weights_are_the_rank_window() {
    let pool: Vec<PoolEntry> = [1, 2, 3, 5, 8, 9].map(|r| entry(r, 0.5, 0.0)).to_vec();
    let w = Weighting::Uniform { r_min: 2, r_max: 8 }.weights(&pool, 0.9);
    assert_close(&w, &[0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
}

#[test]
fn simans_weights_match_the_formula() {
    let pool = [entry(1, 0.9, 0.0), entry(2, 0.8, 0.0), entry(3, 0.6, 0.0)];
    // s - s_pos - b = 0.9 - 0.8 - 0.1 = 0, 0.8 - 0.9 = -0.1, 0.6 - 0.9 = -0.3.
    let w = Weighting::Simans { a: 10.0, b: 0.1 }.weights(&pool, 0.8);
    assert_close(&w, &[1.0, (-0.1f64).exp(), (-0.9f64).exp()]);
    let w = Weighting::Simans { a: 0.5, b: 0.0 }.weights(&pool, 0.6);
    assert_close(&w, &[(-0.045f64).exp(), (-0.02f64).exp(), 1.0]);
}

#[test]
fn trisampler_weights_match_the_formula() {
    // s_pos = cos 30°; each candidate: (score, s(d+, d_i)).
    let s_pos = 30f64.to_radians().cos();
    let c60 = 60f64.to_radians().cos(); // theta = 30°
    let c100 = 100f64.to_radians().cos(); // theta = 70° > 60°
    let pool = [
        entry(1, c60, 0.9),   // kept: ReLU(0.9 - 0.5) = 0.4
        entry(2, c60, 0.2),   // ReLU(0.2 - 0.5) = 0
        entry(3, c100, 0.9),  // angle too wide
        entry(4, s_pos, 0.9), // theta = 0, exp(0) = 1
    ];
    let w = Weighting::TriSampler {
        theta_max_deg: 60.0,
    }
    .weights(&pool, s_pos);
    let d = c60 - s_pos;
    assert_close(
        &w,
        &[(-d * d / 4.0).exp() * (0.9 - c60), 0.0, 0.0, 0.9 - s_pos],
    );
    let wide = Weighting::TriSampler {
        theta_max_deg: 75.0,
    }
    .weight(&pool[2], s_pos);
    let d = c100 - s_pos;
    assert!((wide - (-d * d / 4.0).exp() * (0.9 - c100)).abs() <= 1e-12);
    // Cosines beyond [-1, 1] (float noise) are clamped, not NaN.
    let w = Weighting::TriSampler {
        theta_max_deg: 60.0,
    }
    .weight(&entry(1, 1.0 + 1e-9, 1.5), 1.0 + 1e-9);
    assert!((w - (0.5 - 1e-9)).abs() <= 1e-12, "{w}");
}

#[test]
fn margin_weights_keep_scores_below_r_times_the_positive() {
    let pool = [
        entry(1, 0.96, 0.0),
        entry(2, 0.95, 0.0),
        entry(3, 0.9499, 0.0),
        entry(4, 0.3, 0.0),
    ];
    let w = Weighting::Margin { r: 0.95 }.weights(&pool, 1.0);
    assert_close(&w, &[0.0, 0.0, 1.0, 1.0]);
    assert_eq!(top_ranked(&w, 1), vec![2]);
    assert_eq!(top_ranked(&w, 5), vec![2, 3]);
}

#[test]
fn margin_never_keeps_a_candidate_above_a_negative_positive_score() {
    // s_pos = -0.5, r = 0.9: `r * s_pos` = -0.45 lies above the positive, and the old
    // rule kept -0.48 (more similar to the query than the positive). The threshold is
    // s_pos - 0.1 * |s_pos| = -0.55.
    let pool = [
        entry(1, -0.3, 0.0),
        entry(2, -0.48, 0.0),
        entry(3, -0.5, 0.0),
        entry(4, -0.549, 0.0),
        entry(5, -0.551, 0.0),
        entry(6, -0.9, 0.0),
    ];
    let w = Weighting::Margin { r: 0.9 }.weights(&pool, -0.5);
    assert_close(&w, &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
    assert!((margin_threshold(0.9, -0.5) + 0.55).abs() < 1e-12);
    // For a positive s_pos the rule is the paper's `r * s_pos`.
    assert!((margin_threshold(0.9, 0.5) - 0.45).abs() < 1e-12);
    assert_eq!(margin_threshold(0.9, 0.0), 0.0);
}

/// Draws one index `trials` times, each from its own stream, and checks every
/// frequency against `p_i = w_i / Σw` within 5 binomial standard deviations.
fn check_frequencies(weights: &[f64], trials: u64) {
    let total: f64 = weights.iter().sum();
    let mut counts = vec![0u64; weights.len()];
    for t in 0..trials {
        let mut rng = pair_rng(t, "q", "p");
        let drawn = draw_without_replacement(weights, 1, &mut rng);
        assert_eq!(drawn.len(), 1);
        counts[drawn[0]] += 1;
    }
    let n = trials as f64;
    for (i, (&c, &w)) in counts.iter().zip(weights).enumerate() {
        let p = w / total;
        let tolerance = 5.0 * (p * (1.0 - p) / n).sqrt() + 1e-12;
        let freq = c as f64 / n;
        assert!(
            (freq - p).abs() <= tolerance,
            "index {i}: frequency {freq} vs probability {p} (tolerance {tolerance}); counts {counts:?}"
        );
        if w == 0.0 {
            assert_eq!(c, 0, "index {i} has weight 0 but was drawn");
        }
    }
}

fn scored_pool() -> Vec<PoolEntry> {
    [
        (1, 0.82, 0.95),
        (2, 0.80, 0.70),
        (3, 0.78, 0.90),
        (5, 0.74, 0.85),
        (7, 0.70, 0.60),
        (9, 0.65, 0.80),
        (12, 0.55, 0.75),
        (20, 0.40, 0.30),
    ]
    .map(|(r, s, p)| entry(r, s, p))
    .to_vec()
}

#[test]
fn simans_draws_follow_the_weights() {
    let w = Weighting::Simans { a: 50.0, b: 0.0 }.weights(&scored_pool(), 0.76);
    check_frequencies(&w, 40_000);
}

#[test]
fn trisampler_draws_follow_the_weights() {
    let w = Weighting::TriSampler {
        theta_max_deg: 20.0,
    }
    .weights(&scored_pool(), 0.85);
    assert!(w.contains(&0.0) && w.iter().filter(|&&x| x > 0.0).count() >= 3);
    check_frequencies(&w, 40_000);
}

#[test]
fn uniform_window_draws_follow_the_weights() {
    let w = Weighting::Uniform {
        r_min: 3,
        r_max: 12,
    }
    .weights(&scored_pool(), 0.9);
    check_frequencies(&w, 40_000);
}

#[test]
fn margin_draws_follow_the_weights() {
    let w = Weighting::Margin { r: 0.9 }.weights(&scored_pool(), 0.85);
    assert_eq!(w.iter().filter(|&&x| x > 0.0).count(), 5);
    check_frequencies(&w, 40_000);
}

#[test]
fn second_draw_is_renormalised_over_the_rest() {
    // P(first = i, second = j) = w_i / W * w_j / (W - w_i).
    let weights = [4.0, 2.0, 1.0, 0.0, 1.0];
    let total: f64 = weights.iter().sum();
    let trials = 40_000u64;
    let mut counts = [[0u64; 5]; 5];
    for t in 0..trials {
        let drawn = draw_without_replacement(&weights, 2, &mut pair_rng(t, "pairs", ""));
        assert_eq!(drawn.len(), 2);
        counts[drawn[0]][drawn[1]] += 1;
    }
    let n = trials as f64;
    for i in 0..5 {
        for j in 0..5 {
            let p = if i == j {
                0.0
            } else {
                weights[i] / total * weights[j] / (total - weights[i])
            };
            let freq = counts[i][j] as f64 / n;
            let tolerance = 5.0 * (p * (1.0 - p) / n).sqrt() + 1e-12;
            assert!(
                (freq - p).abs() <= tolerance,
                "({i}, {j}): frequency {freq} vs probability {p}"
            );
        }
    }
}

#[test]
fn draws_are_distinct_and_skip_zero_weights() {
    let weights = [1.0, 0.0, 3.0, f64::NAN, 2.0, -1.0, 0.5];
    for t in 0..200 {
        let drawn = draw_without_replacement(&weights, 10, &mut pair_rng(t, "q", "p"));
        let mut sorted = drawn.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 2, 4, 6], "all positive weights, once each");
        let three = draw_without_replacement(&weights, 3, &mut pair_rng(t, "q", "p"));
        assert_eq!(three, drawn[..3], "same stream, same order");
    }
    assert!(draw_without_replacement(&weights, 0, &mut pair_rng(0, "q", "p")).is_empty());
    assert!(draw_without_replacement(&[], 3, &mut pair_rng(0, "q", "p")).is_empty());
}

#[test]
fn pair_streams_depend_on_seed_and_ids_only() {
    let weights = vec![1.0; 50];
    let draw = |seed, q, p| draw_without_replacement(&weights, 7, &mut pair_rng(seed, q, p));
    assert_eq!(draw(3, "q1", "d1"), draw(3, "q1", "d1"));
    assert_ne!(draw(3, "q1", "d1"), draw(4, "q1", "d1"));
    assert_ne!(draw(3, "q1", "d1"), draw(3, "q1", "d2"));
    // Ids are length-prefixed: moving a character across the boundary changes the stream.
    assert_ne!(draw(3, "q1", "d1"), draw(3, "q1d", "1"));
}

#[test]
fn uniform_corpus_draws_avoid_exclusions_in_both_regimes() {
    for (len, n) in [(1000, 5), (10, 6)] {
        let excluded = [0, 3, 3, 7, 5000];
        let mut counts = vec![0u64; len];
        let trials = 4000u64;
        for t in 0..trials {
            let drawn = draw_uniform_excluding(len, n, &excluded, &mut pair_rng(t, "c", ""));
            assert_eq!(drawn.len(), n);
            let mut sorted = drawn.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), n, "distinct: {drawn:?}");
            for &i in &drawn {
                assert!(i < len && ![0, 3, 7].contains(&i), "{i} drawn");
                counts[i] += 1;
            }
        }
        // Every eligible index has the same chance n / (len - 3).
        let p = n as f64 / (len - 3) as f64;
        let tolerance = 5.0 * (p * (1.0 - p) / trials as f64).sqrt();
        for (i, &c) in counts.iter().enumerate() {
            if ![0, 3, 7].contains(&i) {
                let freq = c as f64 / trials as f64;
                assert!((freq - p).abs() <= tolerance, "index {i}: {freq} vs {p}");
            }
        }
    }
    let all = draw_uniform_excluding(5, 9, &[1], &mut pair_rng(0, "c", ""));
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 2, 3, 4], "fewer when fewer are eligible");
}
