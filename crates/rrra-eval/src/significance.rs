//! Paired significance tests between two systems' per-query values over the same queries: the
//! two-sided paired Student t-test and a seeded two-sided randomisation (sign-flip) test.

use rayon::prelude::*;
use rrra_common::{Error, Result};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::evaluate::Evaluation;
use crate::measure::Measure;
use crate::rng::SplitMix64;

/// The outcome of a paired t-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// `mean(d) / (sd(d) / sqrt(n))` for the differences `d = a - b`, `sd` with `n - 1`.
    pub t: f64,
    /// Degrees of freedom, `n - 1`.
    pub df: usize,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// The differences `a[i] - b[i]`, checking that the vectors pair up and hold numbers.
fn differences(a: &[f64], b: &[f64]) -> Result<Vec<f64>> {
    if a.len() != b.len() {
        return Err(Error::Invalid(format!(
            "paired test: the samples have {} and {} values",
            a.len(),
            b.len()
        )));
    }
    if let Some(x) = a.iter().chain(b).find(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!(
            "paired test: value {x} is not finite"
        )));
    }
    Ok(a.iter().zip(b).map(|(x, y)| x - y).collect())
}

/// The two-sided paired t-test of `a` against `b` (at least two pairs). When every difference
/// is the same, the standard deviation is 0: `t` is then 0 with p = 1 if they are all 0, and
/// ±infinity with p = 0 otherwise.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Result<TTest> {
    let d = differences(a, b)?;
    let n = d.len();
    if n < 2 {
        return Err(Error::Invalid(format!(
            "paired t-test: needs at least 2 pairs, got {n}"
        )));
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let df = n - 1;
    if var == 0.0 {
        return Ok(if mean == 0.0 {
            TTest {
                t: 0.0,
                df,
                p_value: 1.0,
            }
        } else {
            TTest {
                t: f64::INFINITY.copysign(mean),
                df,
                p_value: 0.0,
            }
        });
    }
    let t = mean / (var / n as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, df as f64)
        .map_err(|e| Error::Invalid(format!("paired t-test: {e}")))?;
    Ok(TTest {
        t,
        df,
        p_value: (2.0 * dist.sf(t.abs())).min(1.0),
    })
}

/// The smallest mean difference a two-sided paired t-test over these `n` pairs would detect
/// at level `alpha` with probability `power`, had the differences the spread they have:
/// `(t(1 - alpha/2, n-1) + t(power, n-1)) · sd(d) / sqrt(n)` (the usual normal-shift
/// approximation with Student quantiles). A non-significant difference then reads "no effect
/// larger than this". 0 when every difference is equal (any shift would be detected).
pub fn detectable_difference(a: &[f64], b: &[f64], alpha: f64, power: f64) -> Result<f64> {
    let d = differences(a, b)?;
    let n = d.len();
    if n < 2 || !(0.0 < alpha && alpha < 1.0) || !(0.0 < power && power < 1.0) {
        return Err(Error::Invalid(format!(
            "detectable difference: needs at least 2 pairs, alpha and power in (0, 1); \
             got {n} pairs, alpha {alpha}, power {power}"
        )));
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .map_err(|e| Error::Invalid(format!("detectable difference: {e}")))?;
    let quantiles = dist.inverse_cdf(1.0 - alpha / 2.0) + dist.inverse_cdf(power);
    Ok(quantiles * sd / (n as f64).sqrt())
}

/// The two-sided paired randomisation test of `a` against `b` (at least one pair): each of
/// `trials` (> 0) draws flips the sign of every difference with probability 1/2; the p-value
/// is `(1 + #{draws with |sum| >= |observed sum|}) / (1 + trials)`, which is never 0 and is a
/// valid p-value for any number of trials. Deterministic given `seed`, whatever the threads.
pub fn randomisation_test(a: &[f64], b: &[f64], trials: usize, seed: u64) -> Result<f64> {
    let d = differences(a, b)?;
    if d.is_empty() || trials == 0 {
        return Err(Error::Invalid(format!(
            "randomisation test: needs at least 1 pair and 1 trial, got {} and {trials}",
            d.len()
        )));
    }
    let observed = d.iter().sum::<f64>().abs();
    // Sums of the same terms in the same order, some negated, can differ from the observed
    // sum by rounding alone: allow for it so that equal statistics count as at least as large.
    let slack = 1e-10 * d.iter().map(|x| x.abs()).sum::<f64>();
    let at_least_as_large = (0..trials as u64)
        .into_par_iter()
        .filter(|&trial| {
            // An independent stream per trial keeps the result independent of scheduling.
            let mut rng = SplitMix64::new(SplitMix64::new(seed ^ trial).next_u64());
            let mut sum = 0.0;
            for chunk in d.chunks(64) {
                let signs = rng.next_u64();
                for (i, x) in chunk.iter().enumerate() {
                    sum += if (signs >> i) & 1 == 1 { -x } else { *x };
                }
            }
            sum.abs() >= observed - slack
        })
        .count();
    Ok((1 + at_least_as_large) as f64 / (1 + trials) as f64)
}

/// The values of `measure` in `a` and `b`, paired by query. Both must have evaluated the same
/// queries (use the same qrels, and runs that retrieve for the same queries).
pub fn paired_values(
    a: &Evaluation,
    b: &Evaluation,
    measure: &Measure,
) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.query_ids() != b.query_ids() {
        let only = |x: &Evaluation, y: &Evaluation| {
            x.query_ids()
                .iter()
                .find(|q| y.query_ids().binary_search(q).is_err())
                .cloned()
        };
        let example = only(a, b)
            .map(|q| format!("query {q:?} is only in the first"))
            .or_else(|| only(b, a).map(|q| format!("query {q:?} is only in the second")))
            .unwrap_or_default();
        return Err(Error::Invalid(format!(
            "paired values: the evaluations cover different queries ({} and {}; {example})",
            a.query_ids().len(),
            b.query_ids().len()
        )));
    }
    let values = |e: &Evaluation| {
        e.per_query(measure)
            .ok_or_else(|| Error::Invalid(format!("paired values: {measure} was not evaluated")))
    };
    Ok((values(a)?, values(b)?))
}
