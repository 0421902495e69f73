//! The statistics of the report: mean ± sd, Student's t confidence intervals, per-query
//! values averaged over seeds.

use std::collections::BTreeMap;

use anyhow::Result;
use rrra_common::artifact::read_rows;
use rrra_common::records::MetricRow;

use super::collect::Entry;

/// Mean and sample standard deviation (`n - 1`; 0 for fewer than two values).
pub(super) fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Mean and 95% confidence half-width of per-query values: Student's t with `n - 1`
/// degrees of freedom, `t(0.975, n-1) · sd / √n` (0 for fewer than two values).
pub(super) fn mean_ci(values: &[f64]) -> (f64, f64) {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let (mean, sd) = mean_sd(values);
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let n = values.len() as f64;
    let t = StudentsT::new(0.0, 1.0, n - 1.0)
        .expect("n - 1 >= 1 degrees of freedom")
        .inverse_cdf(0.975);
    (mean, t * sd / n.sqrt())
}

/// A paired comparison of per-query values on the queries both sides have.
pub(super) struct Paired {
    /// Mean of candidate − baseline.
    pub(super) diff: f64,
    /// Two-sided p of the paired t-test.
    pub(super) t: f64,
    /// p of a randomisation test (10,000 sign flips).
    pub(super) randomisation: f64,
    /// The smallest difference the paired t-test over these queries detects at p < 0.05
    /// with 80% power.
    pub(super) detectable: f64,
}

impl Paired {
    /// Candidate `a` against baseline `z` (query → value); `None` for fewer than two
    /// queries in common.
    pub(super) fn test(
        a: &BTreeMap<String, f64>,
        z: &BTreeMap<String, f64>,
    ) -> Result<Option<Self>> {
        let queries: Vec<&String> = a.keys().filter(|q| z.contains_key(*q)).collect();
        if queries.len() < 2 {
            return Ok(None);
        }
        let x: Vec<f64> = queries.iter().map(|q| a[*q]).collect();
        let y: Vec<f64> = queries.iter().map(|q| z[*q]).collect();
        Ok(Some(Paired {
            diff: (x.iter().sum::<f64>() - y.iter().sum::<f64>()) / x.len() as f64,
            t: rrra_eval::paired_t_test(&x, &y)?.p_value,
            randomisation: rrra_eval::randomisation_test(&x, &y, 10_000, 0)?,
            detectable: rrra_eval::detectable_difference(&x, &y, 0.05, 0.8)?,
        }))
    }

    /// The table cells: Δ, seeds won (`won` of `seeds`), p (t), p (randomisation),
    /// detectable Δ, verdict.
    pub(super) fn cells(&self, won: usize, seeds: usize) -> [String; 6] {
        [
            format!("{:+.4}", self.diff),
            format!("{won}/{seeds}"),
            format!("{:.4}", self.t),
            format!("{:.4}", self.randomisation),
            format!("{:.4}", self.detectable),
            self.verdict(),
        ]
    }

    /// "better" or "worse" at p < 0.05 (t-test), else "tied: no effect > detectable".
    pub(super) fn verdict(&self) -> String {
        match (self.t < 0.05, self.diff > 0.0) {
            (true, true) => "better".to_string(),
            (true, false) => "worse".to_string(),
            (false, _) => format!("tied: no effect > {:.4}", self.detectable),
        }
    }
}

/// Per query, the values of every measure averaged over the seeds' `eval.trec` entries
/// (queries every seed evaluated): measure -> query -> mean.
pub(super) fn seed_average(entries: &[&Entry]) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut sums: BTreeMap<String, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    for e in entries {
        for r in read_rows::<MetricRow>(&e.output("metrics"))? {
            if r.query_id != "all" {
                let s = sums
                    .entry(r.measure)
                    .or_default()
                    .entry(r.query_id)
                    .or_default();
                s.0 += r.value;
                s.1 += 1;
            }
        }
    }
    Ok(sums
        .into_iter()
        .map(|(m, per)| {
            let per = per
                .into_iter()
                .filter(|(_, (_, n))| *n == entries.len())
                .map(|(q, (sum, n))| (q, sum / n as f64))
                .collect();
            (m, per)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_interval_of_known_values() {
        let (m, ci) = mean_ci(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // sd = sqrt(5/3), n = 4: t(0.975, 3) = 3.182446305 (tables; scipy.stats.t.ppf).
        assert!(
            (ci - 3.182_446_305_284_263 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-9,
            "{ci}"
        );
        assert_eq!(mean_ci(&[0.7]), (0.7, 0.0));
        // 43 queries (TREC DL 2019): t(0.975, 42) = 2.018082, ~3% wider than 1.96.
        let values: Vec<f64> = (0..43).map(|i| f64::from(i % 2)).collect();
        let (_, sd) = mean_sd(&values);
        let (_, ci) = mean_ci(&values);
        assert!(
            (ci - 2.018_081_702_818_44 * sd / 43f64.sqrt()).abs() < 1e-9,
            "{ci}"
        );
    }
}
