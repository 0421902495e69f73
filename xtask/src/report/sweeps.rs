//! Sweep curves: nDCG@10 of every `eval.trec` against a swept param. The stages of a sweep
//! carry a `sweep: <param>` label in the pipeline file (e.g. `sweep: gamma` on each
//! `resample.rrra`, `sweep: lambda` on each `rerank.adapter`); an `eval.trec` is a point of
//! the sweep of its nearest labelled upstream stage, at that stage's value of the param.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;
use rrra_common::stage::Stage;
use rrra_eval::stages::EvalTrec;
use rrra_runner::Pipeline;

use super::collect::Entry;
use super::plots::bounds;

/// The nearest stage upstream of stage `at` that carries a `sweep:` label, with the stage
/// that consumes it on the way (`at` itself when it reads the labelled stage directly):
/// breadth-first over the inputs, in port order.
fn labelled_upstream(p: &Pipeline, at: usize) -> Option<(usize, usize)> {
    let mut queue = VecDeque::from([at]);
    let mut seen = vec![false; p.stages.len()];
    seen[at] = true;
    while let Some(node) = queue.pop_front() {
        for edge in &p.stages[node].inputs {
            let from = edge.from_stage;
            if p.stages[from].sweep.is_some() {
                return Some((from, node));
            }
            if !std::mem::replace(&mut seen[from], true) {
                queue.push_back(from);
            }
        }
    }
    None
}

/// How a swept param is shown: `λ` and `γ` for the method's two, else its name.
fn symbol(param: &str) -> &str {
    match param {
        "lambda" => "λ",
        "gamma" => "γ",
        other => other,
    }
}

/// One curve per source: points (param value, nDCG@10).
type Curves = BTreeMap<String, Vec<(f64, f64)>>;

/// nDCG@10 against each swept param (by name), one curve per source (the swept stage's
/// inputs and the kind of the stage that used it).
pub(super) fn sweeps(
    p: &Pipeline,
    all: &[Option<Entry>],
    out: &Path,
    tag: &str,
    md: &mut String,
) -> Result<()> {
    // param -> (kinds of the swept stages, curves).
    let mut sweeps: BTreeMap<&str, (Vec<&str>, Curves)> = BTreeMap::new();
    for (at, e) in all.iter().enumerate() {
        let Some(e) = e.as_ref().filter(|e| e.kind == EvalTrec::KIND) else {
            continue;
        };
        let Some((from, via)) = labelled_upstream(p, at) else {
            continue;
        };
        let (Some(swept), Some(param)) = (all[from].as_ref(), p.stages[from].sweep.as_deref())
        else {
            continue;
        };
        let (Some(x), Some(ndcg)) = (
            swept.manifest.params[param].as_f64(),
            e.manifest.report.metrics.get("nDCG@10"),
        ) else {
            continue;
        };
        // A curve per source, and per kind of the stage that used the swept one (a
        // `train.joint` and a `train.biencoder` on the same negatives are two curves).
        let mut source = swept.manifest.inputs.values().cloned().collect::<Vec<_>>();
        source.push(p.stages[via].stage.kind().to_string());
        let (kinds, curves) = sweeps.entry(param).or_default();
        if !kinds.contains(&swept.kind) {
            kinds.push(swept.kind);
        }
        curves.entry(source.join(",")).or_default().push((x, *ndcg));
    }
    for (param, (kinds, mut curves)) in sweeps {
        curves.retain(|_, c| c.len() >= 2);
        if curves.is_empty() {
            continue;
        }
        let sym = symbol(param);
        let name = format!("{}{tag}-{param}.svg", p.name);
        let path = out.join(&name);
        let root = SVGBackend::new(&path, (640, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let points: Vec<(f64, f64)> = curves.values().flatten().copied().collect();
        let (x0, x1) = bounds(points.iter().map(|p| p.0));
        let (y0, y1) = bounds(points.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("nDCG@10 against {sym} ({})", kinds.join(", ")),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(sym)
            .y_desc("nDCG@10")
            .draw()?;
        for (i, c) in curves.values_mut().enumerate() {
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = Palette99::pick(i).to_rgba();
            chart.draw_series(LineSeries::new(c.iter().copied(), color.stroke_width(2)))?;
            chart.draw_series(c.iter().map(|&pt| Circle::new(pt, 4, color.filled())))?;
            writeln!(
                md,
                "{sym} sweep: {}\n",
                c.iter()
                    .map(|(x, v)| format!("{sym}={x}: {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        root.present()?;
        writeln!(md, "![{sym} sweep]({name})\n")?;
    }
    Ok(())
}
