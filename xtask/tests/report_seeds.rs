//! `cargo xtask report --seeds`: the paired tests over seeds carry the detectable difference
//! (p < 0.05, 80% power) and a verdict, computed from the cached per-query metrics.

use std::path::Path;
use std::process::Command;

fn xtask(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xtask {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cells of a Markdown table's rows.
fn cells(line: &str) -> Vec<&str> {
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The nDCG@10 row of candidate `first` in the table of paired tests over seeds.
fn row<'a>(md: &'a str, first: &str) -> Vec<&'a str> {
    let table = &md[md
        .find("### Paired tests over seeds")
        .expect("no paired tests")..];
    table
        .lines()
        .map(cells)
        .find(|c| c.len() > 2 && c[0] == first && c[2] == "nDCG@10")
        .unwrap_or_else(|| panic!("no nDCG@10 row for {first} in\n{table}"))
}

#[test]
fn report_over_seeds_gives_the_detectable_difference_and_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let scifact = repo.join("data/scifact").display().to_string();
    // BM25 with its usual b against BM25 without length normalisation, and BM25 against
    // itself: a real difference and an exact tie.
    let pipeline = format!(
        "name: seeds\nseed: 1\nstages:\n\
         - id: scifact\n  kind: ingest.beir\n  params: {{path: {scifact}, split: test}}\n\
         - id: usual\n  kind: retrieve.bm25\n  inputs: {{corpus: scifact.corpus, queries: scifact.queries}}\n  params: {{b: 0.4, top_k: 100}}\n\
         - id: flat\n  kind: retrieve.bm25\n  inputs: {{corpus: scifact.corpus, queries: scifact.queries}}\n  params: {{b: 0.0, top_k: 100}}\n\
         - id: eval-usual\n  kind: eval.trec\n  inputs: {{run: usual.run, qrels: scifact.qrels}}\n\
         - id: eval-flat\n  kind: eval.trec\n  inputs: {{run: flat.run, qrels: scifact.qrels}}\n\
         - id: flat-vs-usual\n  kind: eval.compare\n  inputs: {{baseline: eval-usual.metrics, candidate: eval-flat.metrics}}\n  params: {{trials: 100}}\n\
         - id: same\n  kind: eval.compare\n  inputs: {{baseline: eval-usual.metrics, candidate: eval-usual.metrics}}\n  params: {{trials: 100}}\n"
    );
    let file = dir.path().join("seeds.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let file = file.display().to_string();
    let data = dir.path().join("data").display().to_string();
    for seed in ["1", "2"] {
        xtask(&["run", &file, "--data-dir", &data, "--seed", seed]);
    }
    let out = dir.path().join("report").display().to_string();
    xtask(&[
        "report",
        &file,
        "--data-dir",
        &data,
        "--seeds",
        "1,2",
        "--out",
        &out,
    ]);
    let md = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    let header = md
        .lines()
        .find(|l| l.contains("p (randomisation)") && l.contains("seeds won"))
        .unwrap();
    assert_eq!(&cells(header)[7..], ["detectable Δ", "verdict (p < 0.05)"]);

    // candidate, baseline, measure, Δ, seeds won, p (t), p (rand.), detectable, verdict
    let flat = row(&md, "eval-flat");
    let (delta, p, detectable): (f64, f64, f64) = (
        flat[3].parse().unwrap(),
        flat[5].parse().unwrap(),
        flat[7].parse().unwrap(),
    );
    assert!(detectable > 0.0, "{flat:?}");
    let verdict = if p >= 0.05 {
        format!("tied: no effect > {}", flat[7])
    } else if delta > 0.0 {
        "better".into()
    } else {
        "worse".into()
    };
    assert_eq!(flat[8], verdict, "{flat:?}");

    // A system against itself: every difference 0, so any shift is detectable and it ties.
    let same = row(&md, "eval-usual");
    assert_eq!(
        &same[7..],
        ["0.0000", "tied: no effect > 0.0000"],
        "{same:?}"
    );
}
