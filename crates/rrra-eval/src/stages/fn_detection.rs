//! `eval.fn_detection`: how well scores find the relevant documents hidden from the qrels
//! among each query's mined negatives (ROC-AUC, P@k, R@k per detector).

use std::collections::BTreeMap;

use rrra_common::artifact::{for_each_batch, write_rows};
use rrra_common::records::{MetricRow, Qrel};
use rrra_common::report::text_table;
use rrra_common::schema::ArtifactKind::{Metrics, Qrels as QrelsKind, Scored as ScoredKind};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::detection::detect;
use crate::hidden::Hidden;

/// Params of `eval.fn_detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FnDetectionParams {
    /// Cut-off of precision@k and recall@k per query.
    pub k: usize,
    /// Each query's `pool` best-ranked negatives are judged.
    pub pool: usize,
    /// Hidden judgements of at least this grade count as relevant.
    pub relevance_threshold: i32,
    /// SimANS `a` of the SimANS-weight detector.
    pub a: f64,
    /// SimANS `b` of the SimANS-weight detector.
    pub b: f64,
}

impl Default for FnDetectionParams {
    fn default() -> Self {
        FnDetectionParams {
            k: 10,
            pool: 200,
            relevance_threshold: 1,
            a: 200.0,
            b: 0.0,
        }
    }
}

/// `eval.fn_detection`: how well the adapter's `s_fn` (and, for comparison, `p_rel`, the
/// QA-score, the raw first-stage score and the SimANS weight) ranks the relevant documents
/// hidden from the qrels (input `hidden`, e.g. from `qrels.hide`) among each query's mined
/// negatives (input `scored`, from `score.adapter` on the mined candidates).
pub struct EvalFnDetection;

impl Stage for EvalFnDetection {
    type Params = FnDetectionParams;
    const KIND: &'static str = "eval.fn_detection";
    // 2: a blank line between the table and the sentence under it. (Columnar reading
    // changed no output.)
    const VERSION: u32 = 2;
    const ABOUT: &'static str =
        "false-negative detection: ROC-AUC, P@k, R@k of hidden relevant docs among mined negatives";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("scored", ScoredKind),
                Port::required("hidden", QrelsKind),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("metrics", Metrics)] }
    }
    fn check(p: &FnDetectionParams) -> Result<(), String> {
        if p.k == 0 || p.pool == 0 {
            return Err("params k and pool must be at least 1".into());
        }
        if !(p.a >= 0.0 && p.a.is_finite() && p.b.is_finite()) {
            return Err(format!(
                "params a ({}) and b ({}) must be finite, a >= 0",
                p.a, p.b
            ));
        }
        Ok(())
    }
    fn run(p: &FnDetectionParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let hidden_path = ctx.input("hidden")?;
        // Streamed into packed pairs (duplicates dropped).
        let mut hidden = Hidden::new();
        for_each_batch::<Qrel>(hidden_path, |rows| {
            for q in rows.iter().filter(|q| q.relevance >= p.relevance_threshold) {
                hidden.push(&q.query_id, &q.doc_id);
            }
            Ok(())
        })?;
        let hidden = hidden.finish();
        let d = detect(ctx.input("scored")?, &hidden, p.pool, p.k, (p.a, p.b))?;
        if d.pooled_hidden == 0 {
            return Err(Error::file(
                hidden_path,
                "no hidden relevant document is among the mined negatives; expected qrels hidden from \
                 the queries that were mined (is the pool too small?)",
            ));
        }
        let mut metrics = BTreeMap::new();
        let mut rows_out = Vec::new();
        let mut table = Vec::new();
        for (name, r) in &d.detectors {
            for (measure, value) in [
                ("auc", r.auc),
                (&*format!("P@{}", p.k), r.precision_at_k),
                (&*format!("R@{}", p.k), r.recall_at_k),
            ] {
                let key = format!("{name}/{measure}");
                metrics.insert(key.clone(), value);
                rows_out.push(MetricRow {
                    query_id: "all".into(),
                    measure: key,
                    value,
                });
            }
            table.push(vec![
                name.to_string(),
                format!("{:.4}", r.auc),
                format!("{:.4}", r.precision_at_k),
                format!("{:.4}", r.recall_at_k),
            ]);
        }
        for (key, value) in [
            ("pooled", d.pooled),
            ("pooled_hidden", d.pooled_hidden),
            ("hidden_total", d.hidden_total),
            ("queries", d.queries),
        ] {
            metrics.insert(key.into(), value as f64);
        }
        write_rows(&ctx.output("metrics"), rows_out)?;
        let header = [
            "detector".to_string(),
            "ROC-AUC".into(),
            format!("P@{}", p.k),
            format!("R@{}", p.k),
        ];
        // The sentence after the table, a blank line apart (Markdown ends the table there).
        let mut text = text_table(&header, &table).trim_end().to_string();
        text.push_str("\n\n");
        text.push_str(&format!(
            "{} of {} hidden relevant documents are among {} pooled negatives of {} queries\n",
            d.pooled_hidden, d.hidden_total, d.pooled, d.queries
        ));
        Ok(StageReport {
            metrics,
            table: Some(text),
        })
    }
}
