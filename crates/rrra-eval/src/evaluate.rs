//! trec_eval-exact evaluation of a run against qrels: per-query values and their mean.
//!
//! This transliterates trec_eval 9.x (`form_res_rels.c`, `m_ndcg_cut.c`, `m_recip_rank.c`,
//! `m_recall.c`, `m_P.c`, `m_map.c`) as run by pytrec_eval without `-c`:
//! * only queries both in the run and in the qrels are evaluated; the mean is over them
//!   (0 when there are none). A judged query without any relevant document is evaluated and
//!   scores 0 on every measure.
//! * each retrieved document gets the value trec_eval gives it: its grade when judged with a
//!   grade `>= 0`, -2 when judged with a negative grade ("in the pool, unjudged"), -1 when not
//!   judged. It counts as relevant when that value is `>= relevance_threshold` (`-l`), and the
//!   number of relevant documents counts judged grades `>= 0` that are `>= threshold`.
//! * nDCG ignores the threshold: the gain is the value when positive, the ideal ranking holds
//!   every positive grade of the qrels.

use rayon::prelude::*;
use rrra_common::records::MetricRow;

use crate::measure::Measure;
use crate::qrels::{Judgements, Qrels};
use crate::run::{RankedDoc, Run};

/// trec_eval's `RELVALUE_NONPOOL`: a retrieved document absent from the qrels.
const NOT_JUDGED: i32 = -1;
/// trec_eval's `RELVALUE_UNJUDGED`: a document in the qrels with a negative grade.
const UNJUDGED_IN_POOL: i32 = -2;

/// Per-query values and means of a set of measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    measures: Vec<Measure>,
    query_ids: Vec<String>,
    /// Row-major: `values[q * measures.len() + m]`.
    values: Vec<f64>,
    means: Vec<f64>,
    /// Grades at or above it counted as relevant (trec_eval `-l`).
    relevance_threshold: i32,
}

impl Evaluation {
    /// The measures, in the order asked for.
    pub fn measures(&self) -> &[Measure] {
        &self.measures
    }

    /// The evaluated queries (in the run and in the qrels), in byte order.
    pub fn query_ids(&self) -> &[String] {
        &self.query_ids
    }

    fn measure_index(&self, measure: &Measure) -> Option<usize> {
        self.measures.iter().position(|m| m == measure)
    }

    /// One query's value of one measure.
    pub fn value(&self, query_id: &str, measure: &Measure) -> Option<f64> {
        let m = self.measure_index(measure)?;
        let q = self
            .query_ids
            .binary_search_by(|id| id.as_str().cmp(query_id))
            .ok()?;
        Some(self.values[q * self.measures.len() + m])
    }

    /// A measure's values, aligned with [`Evaluation::query_ids`].
    pub fn per_query(&self, measure: &Measure) -> Option<Vec<f64>> {
        let m = self.measure_index(measure)?;
        Some(
            self.values
                .chunks_exact(self.measures.len())
                .map(|row| row[m])
                .collect(),
        )
    }

    /// A measure's mean over the evaluated queries (0 when there are none, as in trec_eval).
    pub fn mean(&self, measure: &Measure) -> Option<f64> {
        Some(self.means[self.measure_index(measure)?])
    }

    /// The grade at or above which a document counted as relevant.
    pub fn relevance_threshold(&self) -> i32 {
        self.relevance_threshold
    }

    /// The name of `measure` in metric rows: [`Measure::label`] at this evaluation's
    /// relevance threshold (`MRR@10`, or `MRR@10(rel>=2)`).
    pub fn label(&self, measure: &Measure) -> String {
        measure.label(self.relevance_threshold)
    }

    /// Every value as metric rows, named by [`Evaluation::label`]: the queries in order,
    /// each with all measures, then the means as query `all`.
    pub fn to_metric_rows(&self) -> Vec<MetricRow> {
        let labels: Vec<String> = self.measures.iter().map(|m| self.label(m)).collect();
        let row = |query_id: &str, m: usize, value: f64| MetricRow {
            query_id: query_id.to_owned(),
            measure: labels[m].clone(),
            value,
        };
        let n = self.measures.len();
        let mut rows = Vec::with_capacity((self.query_ids.len() + 1) * n);
        for (q, query_id) in self.query_ids.iter().enumerate() {
            rows.extend((0..n).map(|m| row(query_id, m, self.values[q * n + m])));
        }
        rows.extend((0..n).map(|m| row("all", m, self.means[m])));
        rows
    }
}

/// Evaluates `run` against `qrels` as trec_eval `-l relevance_threshold` does (see the module
/// documentation). Queries are evaluated in parallel.
pub fn evaluate(
    qrels: &Qrels,
    run: &Run,
    measures: &[Measure],
    relevance_threshold: i32,
) -> Evaluation {
    let evaluated: Vec<(&str, &[RankedDoc], &Judgements)> = run
        .rankings()
        .filter_map(|(q, docs)| Some((q, docs, qrels.get(q)?)))
        .collect();
    let rows: Vec<Vec<f64>> = evaluated
        .par_iter()
        .map(|&(_, docs, judged)| evaluate_query(docs, judged, measures, relevance_threshold))
        .collect();
    let n = evaluated.len();
    let means = (0..measures.len())
        .map(|m| {
            let sum: f64 = rows.iter().map(|row| row[m]).sum();
            if n == 0 { 0.0 } else { sum / n as f64 }
        })
        .collect();
    Evaluation {
        measures: measures.to_vec(),
        query_ids: evaluated.iter().map(|&(q, _, _)| q.to_owned()).collect(),
        values: rows.concat(),
        means,
        relevance_threshold,
    }
}

/// The values of one query, as trec_eval's `calc_meas` functions compute them.
fn evaluate_query(
    docs: &[RankedDoc],
    judged: &Judgements,
    measures: &[Measure],
    threshold: i32,
) -> Vec<f64> {
    // trec_eval's `results_rel_list`, as deep as any measure looks.
    let depth = measures
        .iter()
        .try_fold(0, |deepest: usize, m| Some(deepest.max(m.depth()?)))
        .map_or(docs.len(), |d| d.min(docs.len()));
    let rels: Vec<i32> = docs[..depth]
        .iter()
        .map(|d| match judged.grade(&d.doc_id) {
            None => NOT_JUDGED,
            Some(g) if g < 0 => UNJUDGED_IN_POOL,
            Some(g) => g,
        })
        .collect();
    let relevant = |rel: i32| rel >= threshold;
    let num_rel = judged.grades().filter(|&g| g >= 0 && relevant(g)).count();
    let relevant_in_top = |k: usize| rels.iter().take(k).filter(|&&r| relevant(r)).count();
    let discount = |i: usize| (i as f64 + 2.0).log2();
    let mut ideal: Vec<i32> = judged.grades().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));

    measures
        .iter()
        .map(|measure| match *measure {
            Measure::Ndcg(k) => {
                let k = k.get();
                // Fold from +0.0: `Iterator::sum` of no floats is -0.0, printed as "-0".
                let dcg: f64 = rels
                    .iter()
                    .take(k)
                    .enumerate()
                    .filter(|&(_, &r)| r > 0)
                    .map(|(i, &r)| f64::from(r) / discount(i))
                    .fold(0.0, |sum, x| sum + x);
                let idcg: f64 = ideal
                    .iter()
                    .take(k)
                    .enumerate()
                    .map(|(i, &g)| f64::from(g) / discount(i))
                    .fold(0.0, |sum, x| sum + x);
                if idcg > 0.0 { dcg / idcg } else { dcg }
            }
            Measure::RecipRank(k) => {
                let k = k.map_or(rels.len(), |k| k.get());
                rels.iter()
                    .take(k)
                    .position(|&r| relevant(r))
                    .map_or(0.0, |i| 1.0 / (i + 1) as f64)
            }
            Measure::Recall(k) => {
                if num_rel == 0 {
                    0.0
                } else {
                    relevant_in_top(k.get()) as f64 / num_rel as f64
                }
            }
            Measure::Precision(k) => relevant_in_top(k.get()) as f64 / k.get() as f64,
            Measure::Map => {
                let mut found = 0usize;
                let mut sum = 0.0;
                for (i, _) in rels.iter().enumerate().filter(|&(_, &r)| relevant(r)) {
                    found += 1;
                    sum += found as f64 / (i + 1) as f64;
                }
                if found > 0 { sum / num_rel as f64 } else { 0.0 }
            }
        })
        .collect()
}
