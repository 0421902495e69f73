//! The report's Markdown sections: retrieval metrics, paired tests, false-negative
//! detection, adapter classes, the over-seeds tables and costs.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use rrra_adapter::{ScoreAdapter, TrainAdapter};
use rrra_common::artifact::read_rows;
use rrra_common::records::{MetricRow, Qrel, Scored};
use rrra_common::report::text_table;
use rrra_common::stage::Stage;
use rrra_encoder::stages::{EncodeBert, TrainBiencoder};
use rrra_eval::stages::{EvalCompare, EvalFnDetection, EvalTrec};
use rrra_joint::TrainJoint;
use rrra_mine::MineDense;
use rrra_rerank::RerankAdapter;
use rrra_resample::ResampleRrra;
use rrra_runner::Pipeline;

use super::collect::{Entry, edge, in_every_seed, upstream};
use super::plots::{bar_chart, histogram};
use super::statistics::{Paired, mean_ci, mean_sd, seed_average};

const MEASURES: [&str; 4] = ["nDCG@10", "MRR@10", "R@100", "MAP"];

pub(super) fn retrieval(
    p: &Pipeline,
    all: &[Option<Entry>],
    out: &Path,
    tag: &str,
    md: &mut String,
) -> Result<()> {
    // Per eval stage: measure -> per-query values.
    let mut evals: Vec<(String, BTreeMap<String, Vec<f64>>)> = Vec::new();
    for e in all.iter().flatten().filter(|e| e.kind == EvalTrec::KIND) {
        let mut per: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in read_rows::<MetricRow>(&e.output("metrics"))? {
            if r.query_id != "all" {
                per.entry(r.measure).or_default().push(r.value);
            }
        }
        evals.push((e.id.clone(), per));
    }
    if evals.is_empty() {
        return Ok(());
    }
    // The usual four first, then any others (answer accuracies) by name, then cut-off.
    let mut columns: Vec<String> = MEASURES.map(String::from).to_vec();
    let mut others: Vec<&String> = evals
        .iter()
        .flat_map(|(_, per)| per.keys())
        .filter(|m| !MEASURES.contains(&m.as_str()))
        .collect();
    others.sort_by_key(|m| {
        let (name, k) = m.split_once('@').unwrap_or((m, ""));
        (name.to_string(), k.parse::<u64>().unwrap_or(0))
    });
    others.dedup();
    columns.extend(others.into_iter().cloned());
    columns.retain(|m| evals.iter().any(|(_, per)| per.contains_key(m)));
    let mut rows = Vec::new();
    let mut bars: Vec<(String, f64, f64)> = Vec::new();
    for (id, per) in &evals {
        let mut row = vec![id.clone()];
        for m in &columns {
            match per.get(m) {
                Some(values) => {
                    let (mean, ci) = mean_ci(values);
                    row.push(format!("{mean:.4} ± {ci:.4}"));
                    if m == "nDCG@10" {
                        bars.push((id.clone(), mean, ci));
                    }
                }
                None => row.push("–".into()),
            }
        }
        rows.push(row);
    }
    let mut header = vec!["run".to_string()];
    header.extend(columns);
    writeln!(
        md,
        "### Retrieval (mean ± 95% CI over queries, Student's t)\n\n{}\n",
        text_table(&header, &rows)
    )?;
    if !bars.is_empty() {
        let name = format!("{}{tag}-ndcg.svg", p.name);
        bar_chart(
            &out.join(&name),
            &format!("{}: nDCG@10 (95% CI)", p.name),
            &bars,
        )?;
        writeln!(md, "![nDCG@10 per run]({name})\n")?;
    }
    Ok(())
}

pub(super) fn compares(all: &[Option<Entry>], md: &mut String) -> Result<()> {
    for e in all.iter().flatten().filter(|e| e.kind == EvalCompare::KIND) {
        if let Some(table) = &e.manifest.report.table {
            writeln!(md, "### Paired test `{}`\n\n{table}\n", e.id)?;
        }
    }
    Ok(())
}

pub(super) fn adapters(all: &[Option<Entry>], md: &mut String) -> Result<()> {
    for e in all
        .iter()
        .flatten()
        .filter(|e| e.kind == TrainAdapter::KIND)
    {
        if let Some(table) = &e.manifest.report.table {
            writeln!(
                md,
                "### Adapter `{}`: training pairs per class\n\n```\n{table}```\n",
                e.id
            )?;
        }
    }
    Ok(())
}

pub(super) fn detection(
    p: &Pipeline,
    all: &[Option<Entry>],
    out: &Path,
    tag: &str,
    md: &mut String,
) -> Result<()> {
    for (at, e) in all.iter().enumerate() {
        let Some(e) = e.as_ref().filter(|e| e.kind == EvalFnDetection::KIND) else {
            continue;
        };
        if let Some(table) = &e.manifest.report.table {
            writeln!(md, "### False-negative detection `{}`\n\n{table}\n", e.id)?;
        }
        let (Some((scored, sp)), Some((hidden, hp))) = (
            upstream(p, all, at, "scored"),
            upstream(p, all, at, "hidden"),
        ) else {
            continue;
        };
        if !(scored.output(&sp).exists() && hidden.output(&hp).exists()) {
            writeln!(
                md,
                "No s_FN histogram: the results archive does not keep the scored candidates.\n"
            )?;
            continue;
        }
        let hidden: HashSet<(String, String)> = read_rows::<Qrel>(&hidden.output(&hp))?
            .into_iter()
            .filter(|q| q.relevance >= 1)
            .map(|q| (q.query_id, q.doc_id))
            .collect();
        let (mut fns, mut others) = (Vec::new(), Vec::new());
        for s in read_rows::<Scored>(&scored.output(&sp))? {
            if s.candidate.positive {
                continue;
            }
            let key = (s.candidate.query_id, s.candidate.doc_id);
            if hidden.contains(&key) {
                &mut fns
            } else {
                &mut others
            }
            .push(s.s_fn);
        }
        let name = format!("{}{tag}-{}-sfn.svg", p.name, e.id);
        histogram(
            &out.join(&name),
            "s_FN of mined negatives",
            &[("hidden relevant", &fns), ("other negatives", &others)],
        )?;
        writeln!(
            md,
            "![s_FN histogram]({name})\n\n{} hidden relevant and {} other mined negatives.\n",
            fns.len(),
            others.len()
        )?;
    }
    Ok(())
}

/// Each measure's mean ± sd over the seeds, bars of nDCG@10 with that sd, and each
/// `eval.compare` re-tested on per-query values averaged over the seeds (so a seed's luck
/// does not decide the test).
pub(super) fn over_seeds(
    p: &Pipeline,
    per_seed: &[Vec<Option<Entry>>],
    out: &Path,
    md: &mut String,
) -> Result<()> {
    let in_every_seed = |at: usize| in_every_seed(per_seed, at);
    // (stage id, measure) -> value per seed, for the measures every seed reported.
    let mut spread: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut bars = Vec::new();
    for at in 0..p.stages.len() {
        let Some(entries) = in_every_seed(at)
            .filter(|e| [EvalTrec::KIND, EvalFnDetection::KIND].contains(&e[0].kind))
        else {
            continue;
        };
        for m in entries[0].manifest.report.metrics.keys() {
            let v: Vec<f64> = entries
                .iter()
                .filter_map(|e| e.manifest.report.metrics.get(m).copied())
                .collect();
            if m == "queries" || m == "peak_rss_mb" || v.len() < entries.len() {
                continue;
            }
            if m == "nDCG@10" && entries[0].kind == EvalTrec::KIND {
                let (mean, sd) = mean_sd(&v);
                bars.push((p.stages[at].id.clone(), mean, sd));
            }
            spread.insert((p.stages[at].id.clone(), m.clone()), v);
        }
    }
    let rows: Vec<Vec<String>> = spread
        .iter()
        .map(|((stage, m), v)| {
            let (mean, sd) = mean_sd(v);
            vec![stage.clone(), m.clone(), format!("{mean:.4} ± {sd:.4}")]
        })
        .collect();
    let header = ["stage", "measure", "mean ± sd over seeds"].map(String::from);
    writeln!(md, "{}\n", text_table(&header, &rows))?;
    if !bars.is_empty() {
        let name = format!("{}-seeds-ndcg.svg", p.name);
        bar_chart(
            &out.join(&name),
            &format!(
                "{}: nDCG@10, mean ± sd over {} seeds",
                p.name,
                per_seed.len()
            ),
            &bars,
        )?;
        writeln!(md, "![nDCG@10 over seeds]({name})\n")?;
    }
    let mut rows = Vec::new();
    for at in 0..p.stages.len() {
        if in_every_seed(at).is_none_or(|e| e[0].kind != EvalCompare::KIND) {
            continue;
        }
        let side = |port: &str| -> Option<(usize, Vec<&Entry>)> {
            let from = edge(p, at, port)?.from_stage;
            Some((from, in_every_seed(from)?))
        };
        let (Some((b, base)), Some((c, cand))) = (side("baseline"), side("candidate")) else {
            continue;
        };
        let (cand_avg, base_avg) = (seed_average(&cand)?, seed_average(&base)?);
        for measure in MEASURES {
            let (Some(a), Some(z)) = (cand_avg.get(measure), base_avg.get(measure)) else {
                continue;
            };
            let Some(test) = Paired::test(a, z)? else {
                continue;
            };
            let wins = cand
                .iter()
                .zip(&base)
                .filter(|(c, b)| {
                    let m = |e: &Entry| e.manifest.report.metrics.get(measure).copied();
                    matches!((m(c), m(b)), (Some(c), Some(b)) if c > b)
                })
                .count();
            let mut row = vec![
                p.stages[c].id.clone(),
                p.stages[b].id.clone(),
                measure.to_string(),
            ];
            row.extend(test.cells(wins, per_seed.len()));
            rows.push(row);
        }
    }
    if !rows.is_empty() {
        let header = [
            "candidate",
            "baseline",
            "measure",
            "Δ mean",
            "seeds won",
            "p (t)",
            "p (randomisation)",
            "detectable Δ",
            "verdict (p < 0.05)",
        ]
        .map(String::from);
        writeln!(
            md,
            "### Paired tests over seeds\n\nEach query's value is averaged over the seeds \
             first; the tests pair those averages (randomisation: 10,000 sign flips). \
             Detectable Δ: the smallest difference the paired t-test over these queries \
             would find at p < 0.05 with 80% power, given the spread of the differences; \
             a tie reads \"no effect larger than\" it.\n\n{}\n",
            text_table(&header, &rows)
        )?;
    }
    Ok(())
}

/// One line naming the machines that computed `entries` (from their manifests; an entry
/// shared by several seeds counts once), with how many cache entries each: the CPU kernels
/// dispatch on the SIMD level, so seeded results made on two machines may differ in their
/// last digits.
pub(super) fn hosts<'a>(entries: impl Iterator<Item = &'a Entry>) -> String {
    let mut seen = HashSet::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut unrecorded = 0;
    for e in entries.filter(|e| seen.insert(&e.dir)) {
        match &e.manifest.host {
            Some(host) => *counts.entry(host.to_string()).or_default() += 1,
            None => unrecorded += 1,
        }
    }
    let stages = |n: usize| format!("{n} {}", if n == 1 { "stage" } else { "stages" });
    let mut list: Vec<String> = counts
        .iter()
        .map(|(host, &n)| format!("{host}: {}", stages(n)))
        .collect();
    if unrecorded > 0 {
        list.push(format!(
            "a machine not recorded (older runs): {}",
            stages(unrecorded)
        ));
    }
    match list.len() {
        0 => String::new(),
        1 => format!("Computed on {}.\n\n", list[0]),
        _ => format!(
            "Computed on {}. The CPU kernels depend on the SIMD level, so seeded results \
             from different machines may differ in their last digits.\n\n",
            list.join("; ")
        ),
    }
}

pub(super) fn costs(all: &[Option<Entry>], md: &mut String) -> Result<()> {
    let kinds = [
        EncodeBert::KIND,
        TrainBiencoder::KIND,
        TrainJoint::KIND,
        MineDense::KIND,
        TrainAdapter::KIND,
        ScoreAdapter::KIND,
        RerankAdapter::KIND,
        ResampleRrra::KIND,
    ];
    let mut rows = Vec::new();
    for e in all.iter().flatten().filter(|e| kinds.contains(&e.kind)) {
        let m = &e.manifest.report.metrics;
        let get = |k: &str| m.get(k).map_or("–".to_string(), |v| format!("{v:.1}"));
        rows.push(vec![
            e.id.clone(),
            e.kind.to_string(),
            format!("{:.1}", e.manifest.elapsed_s),
            get("peak_rss_mb"),
            // The adapter's parameters (`train.joint` trains them beside the encoder's).
            m.get("parameters")
                .or(m.get("adapter_parameters"))
                .map_or("–".into(), |v| format!("{v:.0}")),
            get("ms_per_query"),
        ]);
    }
    if rows.is_empty() {
        return Ok(());
    }
    let header = [
        "stage",
        "kind",
        "seconds",
        "peak RSS MiB",
        "parameters",
        "ms/query",
    ]
    .map(String::from);
    writeln!(
        md,
        "### Cost (as measured when each cache entry was computed)\n\n{}\n",
        text_table(&header, &rows)
    )?;
    Ok(())
}
