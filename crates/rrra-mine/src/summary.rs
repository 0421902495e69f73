//! The score summary printed after mining: count, mean, quantiles, min and max of the
//! positives' and the negatives' first-stage scores, and how many negatives outscore one of
//! their query's positives (likely false negatives, or a weak first stage). Quantiles are
//! exact up to [`SAMPLE`] scores, then taken from a deterministic reservoir sample.

use rrra_common::report::text_table;

/// Scores kept per side for the quantiles.
const SAMPLE: usize = 1 << 16;

/// Running summary of one side's scores.
pub(crate) struct Scores {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    sample: Vec<f64>,
    /// SplitMix64 state for the reservoir: the same scores in the same order, the same sample.
    state: u64,
}

impl Scores {
    pub(crate) fn new() -> Self {
        Scores {
            n: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sample: Vec::new(),
            state: 0x5EED,
        }
    }

    pub(crate) fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if self.sample.len() < SAMPLE {
            self.sample.push(x);
        } else {
            let j = self.next() % self.n;
            if (j as usize) < SAMPLE {
                self.sample[j as usize] = x;
            }
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn count(&self) -> u64 {
        self.n
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }

    /// The `q`-quantile (nearest rank) of the sample; NaN when empty.
    pub(crate) fn quantiles(&self, qs: &[f64]) -> Vec<f64> {
        let mut sorted = self.sample.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        qs.iter()
            .map(|q| {
                if sorted.is_empty() {
                    return f64::NAN;
                }
                let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
                sorted[rank.min(sorted.len()) - 1]
            })
            .collect()
    }

    fn row(&self, name: &str) -> Vec<String> {
        let mut row = vec![name.to_string(), self.n.to_string()];
        if self.n == 0 {
            row.extend(std::iter::repeat_n("-".to_string(), 6));
            return row;
        }
        row.push(format!("{:.4}", self.mean()));
        row.push(format!("{:.4}", self.min));
        row.extend(
            self.quantiles(&QUANTILES)
                .into_iter()
                .map(|v| format!("{v:.4}")),
        );
        row.push(format!("{:.4}", self.max));
        row
    }
}

const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];

/// The summary table of positives and negatives, and a sentence on the negatives that
/// outscore a positive of their query.
pub(crate) fn table(positives: &Scores, negatives: &Scores, above: u64) -> String {
    let header = ["scores", "n", "mean", "min", "p10", "median", "p90", "max"]
        .map(String::from)
        .to_vec();
    let mut text = text_table(
        &header,
        &[positives.row("positives"), negatives.row("negatives")],
    )
    .trim_end()
    .to_string();
    let pct = 100.0 * above as f64 / negatives.count().max(1) as f64;
    text.push_str(&format!(
        "\n\n{above} negatives ({pct:.1}%) score above a positive of their query.\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_scores() {
        let mut s = Scores::new();
        for x in [3.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0] {
            s.push(x);
        }
        assert_eq!(s.count(), 10);
        assert_eq!(s.mean(), 5.5);
        assert_eq!(s.quantiles(&[0.1, 0.5, 0.9, 1.0]), [1.0, 5.0, 9.0, 10.0]);
        let t = table(&s, &Scores::new(), 0);
        assert!(t.contains("positives") && t.contains("5.5000"), "{t}");
        assert!(t.contains("0 negatives (0.0%)"), "{t}");
    }

    #[test]
    fn the_reservoir_is_deterministic_and_bounded() {
        let run = || {
            let mut s = Scores::new();
            for i in 0..(3 * SAMPLE) {
                s.push(i as f64);
            }
            s
        };
        let (a, b) = (run(), run());
        assert_eq!(a.sample.len(), SAMPLE);
        assert_eq!(a.sample, b.sample);
        let median = a.quantiles(&[0.5])[0];
        let n = 3.0 * SAMPLE as f64;
        assert!((median - n / 2.0).abs() < n * 0.02, "{median}");
    }
}
