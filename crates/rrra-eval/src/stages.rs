//! The `eval.*` pipeline stages: `eval.trec` scores a run against qrels (and, for QA data,
//! by answer match), `eval.compare` tests whether two evaluated runs differ significantly,
//! `eval.fn_detection` measures how well scores find false negatives among mined negatives.

use std::collections::{BTreeMap, HashMap};

use rrra_common::artifact::{for_each_batch, read_rows, write_rows};
use rrra_common::records::{Doc, MetricRow, Qrel, Query, RunRow};
use rrra_common::report::text_table;
use rrra_common::schema::ArtifactKind::{
    Corpus, Metrics, Qrels as QrelsKind, Queries, Run as RunKind, Scored as ScoredKind,
};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::detection::detect;
use crate::hidden::Hidden;
use crate::{Measure, Qrels, Run, answer_top_k, evaluate, paired_t_test, randomisation_test};

fn parse_measures(names: &[String]) -> Result<Vec<Measure>, String> {
    names
        .iter()
        .map(|n| {
            n.parse::<Measure>()
                .map_err(|e| format!("param measures: {e}"))
        })
        .collect()
}

/// Name of an answer-match accuracy measure.
fn accuracy_name(k: usize) -> String {
    format!("Acc@{k}")
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrecParams {
    /// Measures: trec_eval names (`ndcg_cut.10`, `recip_rank`, `recall.100`, `P.10`, `map`),
    /// rrra's `recip_rank.10` (MRR@10; trec_eval has no cutoff for it) or aliases (`nDCG@10`,
    /// `MRR@10`, `R@100`, `P@10`, `MAP`). Binary measures are labelled with the relevance
    /// threshold when it is not 1 (`MRR@10(rel>=2)`).
    pub measures: Vec<String>,
    /// Grades at or above it count as relevant for binary measures (trec_eval `-l`).
    pub relevance_threshold: i32,
    /// Answer-match Top-k accuracy cutoffs (DPR-style data; needs `queries` with answers and
    /// `corpus` connected).
    pub answer_k: Vec<usize>,
}

impl Default for TrecParams {
    fn default() -> Self {
        TrecParams {
            measures: ["ndcg_cut.10", "recip_rank.10", "recall.100", "map"]
                .map(String::from)
                .to_vec(),
            relevance_threshold: 1,
            answer_k: Vec::new(),
        }
    }
}

/// `eval.trec`: trec_eval measures per query and on average, plus answer-match accuracy.
pub struct EvalTrec;

impl Stage for EvalTrec {
    type Params = TrecParams;
    const KIND: &'static str = "eval.trec";
    // 2: binary measures at a relevance threshold other than 1 are labelled with it.
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "trec_eval-exact measures (and DPR answer-match Top-k accuracy)";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("run", RunKind),
                Port::optional("qrels", QrelsKind),
                Port::optional("queries", Queries),
                Port::optional("corpus", Corpus),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("metrics", Metrics)] }
    }
    fn check(p: &TrecParams) -> Result<(), String> {
        parse_measures(&p.measures)?;
        if p.measures.is_empty() && p.answer_k.is_empty() {
            return Err("nothing to measure: give measures or answer_k".into());
        }
        Ok(())
    }

    fn run(p: &TrecParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let measures = parse_measures(&p.measures).map_err(Error::Invalid)?;
        let run = Run::from_rows(read_rows::<RunRow>(ctx.input("run")?)?)?;
        let mut rows: Vec<MetricRow> = Vec::new();
        let mut means: Vec<(String, f64)> = Vec::new();
        let mut evaluated = 0;
        if !measures.is_empty() {
            let qrels_file = ctx
                .optional_input("qrels")
                .ok_or_else(|| Error::Invalid("measures need the qrels input connected".into()))?;
            let qrels = Qrels::from_rows(read_rows::<Qrel>(qrels_file)?)?;
            let eval = evaluate(&qrels, &run, &measures, p.relevance_threshold);
            evaluated = eval.query_ids().len();
            means.extend(
                measures
                    .iter()
                    .map(|m| (eval.label(m), eval.mean(m).unwrap_or(0.0))),
            );
            rows = eval.to_metric_rows();
        }
        if !p.answer_k.is_empty() {
            let (Some(queries), Some(corpus)) =
                (ctx.optional_input("queries"), ctx.optional_input("corpus"))
            else {
                return Err(Error::Invalid(
                    "answer_k needs the queries (with answers) and corpus inputs connected".into(),
                ));
            };
            let answers: BTreeMap<String, Vec<String>> = read_rows::<Query>(queries)?
                .into_iter()
                .filter_map(|q| Some((q.id, q.answers?)))
                .collect();
            if answers.is_empty() {
                return Err(Error::file(queries, "no query has answers"));
            }
            let mut texts: HashMap<String, String> = HashMap::new();
            for_each_batch::<Doc>(corpus, |docs| {
                texts.extend(docs.into_iter().map(|d| (d.id, d.text)));
                Ok(())
            })?;
            let acc = answer_top_k(&run, |id| texts.get(id), &answers, &p.answer_k)?;
            evaluated = evaluated.max(acc.query_ids().len());
            for &k in &p.answer_k {
                let name = accuracy_name(k);
                let hits = acc.per_query(k).expect("k was asked for");
                rows.extend(acc.query_ids().iter().zip(hits).map(|(q, v)| MetricRow {
                    query_id: q.clone(),
                    measure: name.clone(),
                    value: v,
                }));
                let mean = acc.mean(k).expect("k was asked for");
                rows.push(MetricRow {
                    query_id: "all".into(),
                    measure: name.clone(),
                    value: mean,
                });
                means.push((name, mean));
            }
        }
        write_rows(&ctx.output("metrics"), rows)?;
        let mut header = vec!["measure".to_string()];
        header.extend(means.iter().map(|(m, _)| m.clone()));
        header.push("queries".into());
        let mut row = vec!["mean".to_string()];
        row.extend(means.iter().map(|(_, v)| format!("{v:.4}")));
        row.push(evaluated.to_string());
        let mut metrics: BTreeMap<String, f64> = means.into_iter().collect();
        metrics.insert("queries".into(), evaluated as f64);
        Ok(StageReport {
            metrics,
            table: Some(text_table(&header, &[row])),
        })
    }
}

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
