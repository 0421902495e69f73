//! The ablation table with settings chosen on dev queries: the `eval.trec` stages labelled
//! `row: <name>` are the test results of a row's settings, each with `dev: <stage id>`,
//! its evaluation on the dev queries. Per row the setting with the best mean dev nDCG@10
//! over the seeds is chosen ([`choose`]), and only its test result is reported: mean ± sd
//! over the seeds, and the paired test against the pipeline's `baseline_row` on the
//! per-query values averaged over the seeds, with the smallest effect it could detect.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use rrra_common::report::text_table;
use rrra_runner::Pipeline;

use super::collect::{Entry, in_every_seed};
use super::statistics::{Paired, mean_sd, seed_average};

/// The measure settings are chosen and compared on.
const MEASURE: &str = "nDCG@10";

/// One row's choice: the chosen test stage, its dev scores per seed (absent for a row of
/// one setting without `dev:`), how many settings the row has, and the mean dev score of
/// each setting every seed has cached.
pub(super) struct Choice {
    pub(super) row: String,
    pub(super) at: usize,
    pub(super) dev: Option<Vec<f64>>,
    pub(super) settings: usize,
    pub(super) tried: Vec<(usize, Option<f64>)>,
}

/// `MEASURE` of each entry (all of them, or none).
fn measure(entries: &[&Entry]) -> Option<Vec<f64>> {
    entries
        .iter()
        .map(|e| e.manifest.report.metrics.get(MEASURE).copied())
        .collect()
}

/// The rows of `p` in order of first appearance, each with its test stages.
fn rows(p: &Pipeline) -> Vec<(&str, Vec<usize>)> {
    let mut rows: Vec<(&str, Vec<usize>)> = Vec::new();
    for (at, s) in p.stages.iter().enumerate() {
        let Some(row) = s.row.as_deref() else {
            continue;
        };
        match rows.iter_mut().find(|(r, _)| *r == row) {
            Some((_, ats)) => ats.push(at),
            None => rows.push((row, vec![at])),
        }
    }
    rows
}

/// Makes `row` the row `p`'s others are tested against (`report --baseline`), in place of
/// its `baseline_row`; refused when no stage of `p` (read from `file`) is labelled `row`.
pub(super) fn rebase(p: &mut Pipeline, row: &str, file: &Path) -> Result<()> {
    let rows: Vec<&str> = rows(p).into_iter().map(|(r, _)| r).collect();
    anyhow::ensure!(
        rows.contains(&row),
        "--baseline {row:?}: no stage of {} is labelled `row: {row}` (its rows: {})",
        file.display(),
        rows.join(", ")
    );
    p.baseline_row = Some(row.to_string());
    Ok(())
}

/// Per row, the setting whose dev evaluation has the best mean `MEASURE` over the seeds,
/// among the settings whose test and dev results every seed has (ties: the first in the
/// file). A row with one setting needs no dev result. Rows with nothing complete are left
/// out.
pub(super) fn choose(p: &Pipeline, per_seed: &[Vec<Option<Entry>>]) -> Vec<Choice> {
    let mut choices = Vec::new();
    for (row, settings) in rows(p) {
        let mut best: Option<(usize, Option<Vec<f64>>, f64)> = None;
        let mut tried = Vec::new();
        for &at in &settings {
            let Some(test) = in_every_seed(per_seed, at) else {
                continue;
            };
            let dev = p.stages[at]
                .dev
                .as_deref()
                .and_then(|id| p.position(id))
                .and_then(|d| in_every_seed(per_seed, d))
                .and_then(|d| measure(&d));
            if measure(&test).is_none() || (dev.is_none() && settings.len() > 1) {
                continue;
            }
            let mean = dev.as_ref().map(|d| mean_sd(d).0);
            tried.push((at, mean));
            let score = mean.unwrap_or(f64::NEG_INFINITY);
            if best.as_ref().is_none_or(|(_, _, s)| score > *s) {
                best = Some((at, dev, score));
            }
        }
        if let Some((at, dev, _)) = best {
            choices.push(Choice {
                row: row.to_string(),
                at,
                dev,
                settings: settings.len(),
                tried,
            });
        }
    }
    choices
}

/// The params that tell `at`'s setting from the other settings of its row: for each
/// stage upstream of `at` (itself included) that not every setting shares, the params
/// whose values differ between the settings' stages of that kind.
fn setting(p: &Pipeline, row: &str, at: usize) -> String {
    let ancestors = |at: usize| -> BTreeSet<usize> {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![at]);
        while let Some(s) = todo.pop() {
            if seen.insert(s) {
                todo.extend(p.stages[s].inputs.iter().map(|e| e.from_stage));
            }
        }
        seen
    };
    let settings: Vec<BTreeSet<usize>> = rows(p)
        .into_iter()
        .find(|(r, _)| *r == row)
        .map(|(_, ats)| ats.into_iter().map(ancestors).collect())
        .unwrap_or_default();
    if settings.len() < 2 {
        return "–".into();
    }
    let shared: BTreeSet<usize> = settings
        .iter()
        .skip(1)
        .fold(settings[0].clone(), |a, b| &a & b);
    // Kind -> the params (leaves, nested ones by dotted path) of each setting's own stage
    // of that kind.
    let mut by_kind: BTreeMap<&str, Vec<BTreeMap<String, &serde_json::Value>>> = BTreeMap::new();
    for s in &settings {
        for &st in s.difference(&shared) {
            by_kind
                .entry(p.stages[st].stage.kind())
                .or_default()
                .push(leaves(&p.stages[st].prepared.params));
        }
    }
    let mut parts = Vec::new();
    for &st in ancestors(at).difference(&shared) {
        let kind = p.stages[st].stage.kind();
        for (key, value) in leaves(&p.stages[st].prepared.params) {
            if by_kind[kind]
                .iter()
                .any(|other| other.get(&key) != Some(&value))
            {
                parts.push(format!("{key} = {value} ({kind})"));
            }
        }
    }
    parts.sort();
    parts.dedup();
    if parts.is_empty() {
        "–".into()
    } else {
        parts.join(", ")
    }
}

/// The leaves of a params object by dotted path (`encoder.epochs`).
fn leaves(params: &serde_json::Value) -> BTreeMap<String, &serde_json::Value> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(String::new(), params)];
    while let Some((path, value)) = todo.pop() {
        match value.as_object() {
            Some(object) => todo.extend(object.iter().map(|(k, v)| {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                (key, v)
            })),
            None => {
                out.insert(path, value);
            }
        }
    }
    out
}

pub(super) fn ablation(
    p: &Pipeline,
    per_seed: &[Vec<Option<Entry>>],
    choices: &[Choice],
    md: &mut String,
) -> Result<()> {
    if choices.is_empty() {
        return Ok(());
    }
    let baseline = p
        .baseline_row
        .as_deref()
        .and_then(|b| choices.iter().find(|c| c.row == b));
    // The baseline's stage, its per-query values averaged over the seeds, and its
    // value per seed: computed once, compared with every other row.
    let base = match baseline {
        Some(b) => {
            let test = in_every_seed(per_seed, b.at).expect("chosen");
            Some((b.at, seed_average(&test)?, measure(&test).expect("chosen")))
        }
        None => None,
    };
    let mut rows = Vec::new();
    for c in choices {
        let test = in_every_seed(per_seed, c.at).expect("chosen");
        let values = measure(&test).expect("chosen");
        let (mean, sd) = mean_sd(&values);
        let mut row = vec![
            c.row.clone(),
            setting(p, &c.row, c.at),
            format!("{}/{}", c.tried.len(), c.settings),
            c.dev.as_ref().map_or("–".into(), |d| {
                let (m, s) = mean_sd(d);
                format!("{m:.4} ± {s:.4}")
            }),
            format!("{mean:.4} ± {sd:.4}"),
        ];
        match &base {
            Some((at, base_avg, base_values)) if *at != c.at => {
                let cand = seed_average(&test)?;
                let paired = match (cand.get(MEASURE), base_avg.get(MEASURE)) {
                    (Some(x), Some(y)) => Paired::test(x, y)?,
                    _ => None,
                };
                match paired {
                    Some(paired) => {
                        let won = values
                            .iter()
                            .zip(base_values)
                            .filter(|(c, b)| c > b)
                            .count();
                        row.extend(paired.cells(won, values.len()));
                    }
                    None => row.extend(["–"; 6].map(String::from)),
                }
            }
            Some(_) => row.extend(["baseline", "", "", "", "", ""].map(String::from)),
            None => row.extend(["–"; 6].map(String::from)),
        }
        rows.push(row);
    }
    let vs = p.baseline_row.as_deref().unwrap_or("baseline");
    let header = [
        "row".to_string(),
        "dev-chosen setting".into(),
        "settings cached".into(),
        format!("dev {MEASURE}"),
        format!("test {MEASURE}"),
        format!("Δ vs {vs}"),
        "seeds won".into(),
        "p (t)".into(),
        "p (randomisation)".into(),
        "detectable Δ".into(),
        "verdict (p < 0.05)".into(),
    ];
    writeln!(
        md,
        "### Ablation, settings chosen on dev queries\n\n\
         Per row, the setting with the best mean dev {MEASURE} over the {} seed(s) is chosen \
         among those every seed has cached; only its test result is shown (mean ± sd over \
         the seeds). The tests pair each test query's value averaged over the seeds \
         (randomisation: 10,000 sign flips); detectable Δ is the smallest difference the \
         paired t-test over these queries would find at p < 0.05 with 80% power.\n\n{}\n",
        per_seed.len(),
        text_table(&header, &rows)
    )?;
    let tried: Vec<Vec<String>> = choices
        .iter()
        .filter(|c| c.settings > 1)
        .flat_map(|c| {
            c.tried.iter().map(|&(at, dev)| {
                vec![
                    c.row.clone(),
                    setting(p, &c.row, at),
                    dev.map_or("–".into(), |d| format!("{d:.4}")),
                    if at == c.at { "chosen" } else { "" }.to_string(),
                ]
            })
        })
        .collect();
    if !tried.is_empty() {
        let header = [
            "row".to_string(),
            "setting".into(),
            format!("mean dev {MEASURE}"),
            "choice".into(),
        ];
        writeln!(
            md,
            "### Dev selection\n\nEvery cached setting of each row with several, on the dev \
             queries.\n\n{}\n",
            text_table(&header, &tried)
        )?;
    }
    Ok(())
}
