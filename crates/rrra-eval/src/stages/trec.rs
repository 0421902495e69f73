//! `eval.trec`: a run scored against qrels with trec_eval's measures (and, for QA data, by
//! answer match), per query and on average.

use std::collections::{BTreeMap, HashMap};

use rrra_common::artifact::{for_each_batch, read_rows, write_rows};
use rrra_common::records::{Doc, MetricRow, Qrel, Query, RunRow};
use rrra_common::report::text_table;
use rrra_common::schema::ArtifactKind::{
    Corpus, Metrics, Qrels as QrelsKind, Queries, Run as RunKind,
};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::{Measure, Qrels, Run, answer_top_k, evaluate};

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

/// Params of `eval.trec`.
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
