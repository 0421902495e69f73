//! `eval.compare`: whether two evaluated runs differ significantly (paired t-test and
//! randomisation test over the queries both evaluated).

use std::collections::BTreeMap;

use rrra_common::artifact::{read_rows, write_rows};
use rrra_common::records::MetricRow;
use rrra_common::report::text_table;
use rrra_common::schema::ArtifactKind::Metrics;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::{paired_t_test, randomisation_test};

/// Params of `eval.compare`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CompareParams {
    /// Measures to compare (display names as in the metrics, e.g. `nDCG@10`); empty: all
    /// measures both inputs share.
    pub measures: Vec<String>,
    /// Trials of the randomisation test.
    pub trials: usize,
}

impl Default for CompareParams {
    fn default() -> Self {
        CompareParams {
            measures: Vec::new(),
            trials: 10_000,
        }
    }
}

/// `eval.compare`: paired t-test and randomisation test of `candidate` against `baseline`
/// over the queries both evaluated.
pub struct EvalCompare;

/// Per-query values of each measure (the `all` rows left out).
fn per_query(rows: Vec<MetricRow>) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for r in rows.into_iter().filter(|r| r.query_id != "all") {
        out.entry(r.measure)
            .or_default()
            .insert(r.query_id, r.value);
    }
    out
}

impl Stage for EvalCompare {
    type Params = CompareParams;
    const KIND: &'static str = "eval.compare";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "paired t-test and randomisation test between two evaluations";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("baseline", Metrics),
                Port::required("candidate", Metrics),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("metrics", Metrics)] }
    }
    fn check(p: &CompareParams) -> Result<(), String> {
        if p.trials == 0 {
            return Err("param trials must be at least 1".into());
        }
        Ok(())
    }

    fn run(p: &CompareParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let base = per_query(read_rows::<MetricRow>(ctx.input("baseline")?)?);
        let cand = per_query(read_rows::<MetricRow>(ctx.input("candidate")?)?);
        let measures: Vec<String> = if p.measures.is_empty() {
            base.keys()
                .filter(|m| cand.contains_key(*m))
                .cloned()
                .collect()
        } else {
            p.measures.clone()
        };
        let header = [
            "measure",
            "baseline",
            "candidate",
            "delta",
            "t",
            "p (t-test)",
            "p (randomisation)",
            "queries",
        ]
        .map(String::from)
        .to_vec();
        let (mut table, mut rows, mut metrics) = (Vec::new(), Vec::new(), BTreeMap::new());
        for m in &measures {
            let (Some(b), Some(c)) = (base.get(m), cand.get(m)) else {
                return Err(Error::Invalid(format!(
                    "measure {m:?} is not in both inputs"
                )));
            };
            let common: Vec<&String> = b.keys().filter(|q| c.contains_key(*q)).collect();
            let a: Vec<f64> = common.iter().map(|q| b[*q]).collect();
            let z: Vec<f64> = common.iter().map(|q| c[*q]).collect();
            let t = paired_t_test(&z, &a)?;
            let p_rand = randomisation_test(&z, &a, p.trials, ctx.seed)?;
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (mb, mc) = (mean(&a), mean(&z));
            for (name, value) in [
                ("baseline", mb),
                ("candidate", mc),
                ("delta", mc - mb),
                ("t", t.t),
                ("p_t", t.p_value),
                ("p_randomisation", p_rand),
            ] {
                let measure = format!("{m}:{name}");
                metrics.insert(measure.clone(), value);
                rows.push(MetricRow {
                    query_id: "all".into(),
                    measure,
                    value,
                });
            }
            table.push(vec![
                m.clone(),
                format!("{mb:.4}"),
                format!("{mc:.4}"),
                format!("{:+.4}", mc - mb),
                format!("{:.3}", t.t),
                format!("{:.4}", t.p_value),
                format!("{p_rand:.4}"),
                common.len().to_string(),
            ]);
        }
        write_rows(&ctx.output("metrics"), rows)?;
        Ok(StageReport {
            metrics,
            table: Some(text_table(&header, &table)),
        })
    }
}
