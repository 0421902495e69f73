//! pytrec_eval as the reference of rrra's measures (feature `pytrec`): its per-query values
//! through `tests/python/pytrec_reference.py`, run by [`python`], and a comparison of an
//! rrra [`Evaluation`] against them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use rrra_common::{Error, Result};
use rrra_eval::Evaluation;

use crate::python;

/// Per-query values: query id to measure name to value.
pub type PerQuery = BTreeMap<String, BTreeMap<String, f64>>;

/// The reference script, `tests/python/pytrec_reference.py` of the workspace.
pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/pytrec_reference.py")
}

/// pytrec_eval's per-query values of `measures` (trec_eval names such as `ndcg_cut.10`,
/// `recall.100`, `P.10`, `map`, and the script's `recip_rank.10` for MRR@10: see [`rrra_eval::Measure::reference_name`]) for the
/// TREC run file `run` against the qrels file `qrels` (TREC or BEIR TSV), keyed by the names
/// as given. Only queries in both files appear. Fails, saying to
/// `pip install pytrec-eval-terrier`, when the interpreter cannot import pytrec_eval.
pub fn pytrec_eval_per_query(
    qrels: &Path,
    run: &Path,
    measures: &[&str],
    relevance_level: i32,
) -> Result<PerQuery> {
    let python = python();
    let shown = python.display();
    let output = Command::new(&python)
        .arg(reference_script())
        .arg(qrels)
        .arg(run)
        .args(measures)
        .arg(format!("--relevance-level={relevance_level}"))
        .output()
        .map_err(|e| {
            Error::Invalid(format!(
                "cannot run the Python interpreter {python:?} ({e}): set RRRA_PYTHON to one \
                 that has pytrec_eval (`pip install pytrec-eval-terrier`)"
            ))
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(Error::Invalid(format!(
                "{shown} cannot import pytrec_eval: run `pip install pytrec-eval-terrier` (or \
                 set RRRA_PYTHON to an interpreter that has it): {}",
                stderr.trim()
            )));
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{shown} {} failed ({}): {}",
                reference_script().display(),
                output.status,
                stderr.trim()
            )));
        }
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Invalid(format!("pytrec_reference.py printed bad JSON: {e}")))
}

/// Checks `ours` against `reference` (from [`pytrec_eval_per_query`] with the
/// [`rrra_eval::Measure::reference_name`]s of `ours.measures()`): the same evaluated queries and every
/// value within `tolerance`. The error lists the differences (the first 20).
pub fn compare_with_reference(
    ours: &Evaluation,
    reference: &PerQuery,
    tolerance: f64,
) -> Result<()> {
    let mut problems = Vec::new();
    let our_queries: BTreeSet<&str> = ours.query_ids().iter().map(String::as_str).collect();
    let their_queries: BTreeSet<&str> = reference.keys().map(String::as_str).collect();
    for q in our_queries.symmetric_difference(&their_queries) {
        let side = if our_queries.contains(q) {
            "rrra"
        } else {
            "pytrec_eval"
        };
        problems.push(format!("query {q:?} evaluated by {side} only"));
    }
    for (query_id, theirs) in reference {
        for measure in ours.measures() {
            let name = measure.reference_name();
            let (Some(a), Some(b)) = (ours.value(query_id, measure), theirs.get(&name)) else {
                if our_queries.contains(query_id.as_str()) {
                    problems.push(format!("query {query_id:?}: pytrec_eval has no {name}"));
                }
                continue;
            };
            if (a - b).abs() > tolerance || a.is_nan() != b.is_nan() {
                problems.push(format!(
                    "query {query_id:?}, {name}: rrra {a}, pytrec_eval {b}"
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    problems.truncate(20);
    Err(Error::Invalid(format!(
        "{total} differences from pytrec_eval:\n{}",
        problems.join("\n")
    )))
}
