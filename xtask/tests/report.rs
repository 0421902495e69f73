//! `cargo xtask report` over seeds, on cached per-query metrics: the paired tests carry
//! the detectable difference (p < 0.05, 80% power) and a verdict; on a pipeline with
//! `row:`/`dev:` labels, per row the setting with the best mean dev nDCG@10 is chosen, only
//! its test result is reported, and it is tested against the `baseline_row` (or the row
//! `--baseline` names).

use std::path::Path;
use std::process::Command;

/// Runs `xtask args`, which must succeed; returns what it printed.
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
    String::from_utf8(out.stdout).unwrap()
}

/// The cells of a Markdown table's rows.
fn cells(line: &str) -> Vec<&str> {
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The `xtask report` command line over seeds 1 and 2 of `dir`'s pipeline and cache,
/// written to `dir/<out>`, with `extra` arguments.
fn report_args(dir: &Path, out: &str, extra: &[&str]) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        "report".to_string(),
        path("pipeline.yaml"),
        "--data-dir".into(),
        path("data"),
        "--seeds".into(),
        "1,2".into(),
        "--out".into(),
        path(out),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// `xtask report` over seeds 1 and 2 of `dir` into `dir/<out>`; returns the report.
fn report(dir: &Path, out: &str, extra: &[&str]) -> String {
    let args = report_args(dir, out, extra);
    xtask(&args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::read_to_string(dir.join(out).join("report.md")).unwrap()
}

/// Writes `pipeline` into `dir`, runs it at seeds 1 and 2 and returns the report over both.
fn report_over_two_seeds(dir: &Path, pipeline: &str) -> String {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let file = file.display().to_string();
    let data = dir.join("data").display().to_string();
    for seed in ["1", "2"] {
        xtask(&["run", &file, "--data-dir", &data, "--seed", seed]);
    }
    report(dir, "report", &[])
}

/// The shipped SciFact folder.
fn scifact() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    repo.join("data/scifact").display().to_string()
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
    let scifact = scifact();
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
    let md = report_over_two_seeds(dir.path(), &pipeline);
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

/// The rows of the table under `heading`, header and rule left out.
fn table<'a>(md: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
    let at = md
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in\n{md}"));
    md[at..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(cells)
        .collect()
}

/// Stage names and values of `b`.
const SETTINGS: [(&str, &str); 3] = [("b0", "0.0"), ("b4", "0.4"), ("b9", "0.9")];

/// BM25 at three settings of `b`, evaluated on two halves of SciFact's test queries
/// (`qrels.split`, drawn per seed): "dev" chooses, "test" reports.
fn pipeline(scifact: &str) -> String {
    let mut text = format!(
        "name: ablation\nseed: 1\nbaseline_row: flat\nstages:\n\
         - id: scifact\n  kind: ingest.beir\n  params: {{path: {scifact}, split: test}}\n\
         - id: halves\n  kind: qrels.split\n  inputs: {{qrels: scifact.qrels}}\n  params: {{test_fraction: 0.5}}\n"
    );
    for (name, b) in SETTINGS {
        text += &format!(
            "- id: {name}\n  kind: retrieve.bm25\n  inputs: {{corpus: scifact.corpus, queries: scifact.queries}}\n  params: {{b: {b}, top_k: 100}}\n\
             - id: {name}-dev\n  kind: eval.trec\n  inputs: {{run: {name}.run, qrels: halves.train}}\n\
             - id: {name}-test\n  kind: eval.trec\n  row: bm25\n  dev: {name}-dev\n  inputs: {{run: {name}.run, qrels: halves.test}}\n"
        );
    }
    text +=
        "- id: flat\n  kind: eval.trec\n  row: flat\n  inputs: {run: b0.run, qrels: halves.test}\n";
    text
}

#[test]
fn the_setting_best_on_dev_is_the_one_reported_on_test() {
    let dir = tempfile::tempdir().unwrap();
    let md = report_over_two_seeds(dir.path(), &pipeline(&scifact()));

    // Dev selection: row, setting, mean dev nDCG@10, choice. The chosen one is the best.
    let tried = table(&md, "### Dev selection");
    assert_eq!(tried.len(), 3, "{tried:?}");
    let best = tried
        .iter()
        .max_by(|a, b| {
            a[2].parse::<f64>()
                .unwrap()
                .total_cmp(&b[2].parse().unwrap())
        })
        .unwrap();
    assert_eq!(best.get(3), Some(&"chosen"), "{tried:?}");
    assert_eq!(
        tried.iter().filter(|r| r.get(3) == Some(&"chosen")).count(),
        1
    );
    assert!(
        best[1].starts_with("b = ") && best[1].ends_with("(retrieve.bm25)"),
        "{best:?}"
    );

    // The ablation table: the bm25 row reports its chosen setting, the flat row is the
    // baseline; the verdict follows p and Δ.
    let rows = table(&md, "### Ablation, settings chosen on dev queries");
    let bm25 = rows.iter().find(|r| r[0] == "bm25").expect("bm25 row");
    assert_eq!((bm25[1], bm25[2]), (best[1], "3/3"), "{bm25:?}");
    let flat = rows.iter().find(|r| r[0] == "flat").expect("flat row");
    assert_eq!(flat[5], "baseline", "{flat:?}");
    let (delta, p): (f64, f64) = (bm25[5].parse().unwrap(), bm25[7].parse().unwrap());
    let verdict = match (p < 0.05, delta > 0.0) {
        (true, true) => "better".to_string(),
        (true, false) => "worse".to_string(),
        (false, _) => format!("tied: no effect > {}", bm25[9]),
    };
    assert_eq!(bm25[10], verdict, "{bm25:?}");

    // The test results of the settings not chosen appear nowhere; the chosen one does.
    let (chosen, _) = SETTINGS
        .into_iter()
        .find(|(_, b)| best[1] == format!("b = {b} (retrieve.bm25)"))
        .expect("chosen stage");
    for (name, _) in SETTINGS {
        assert_eq!(
            md.contains(&format!("{name}-test")),
            name == chosen,
            "{name}-test in the report"
        );
    }

    // `--baseline bm25` swaps the pair's roles: the same choice, the opposite Δ.
    let md = report(dir.path(), "swapped", &["--baseline", "bm25"]);
    let rows = table(&md, "### Ablation, settings chosen on dev queries");
    let bm25_base = rows.iter().find(|r| r[0] == "bm25").expect("bm25 row");
    assert_eq!((bm25_base[1], bm25_base[5]), (best[1], "baseline"));
    let flat = rows.iter().find(|r| r[0] == "flat").expect("flat row");
    assert_eq!(flat[5].parse::<f64>().unwrap(), -delta, "{flat:?}");
    assert_eq!(flat[7], bm25[7], "the same paired p: {flat:?}");

    // A row the file does not label is refused, with the rows it has.
    let refused = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(report_args(dir.path(), "refused", &["--baseline", "bm26"]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("--baseline \"bm26\"") && err.contains("its rows: bm25, flat"),
        "{err}"
    );
}

#[test]
fn report_names_the_machines_that_computed_the_stages() {
    let dir = tempfile::tempdir().unwrap();
    let scifact = scifact();
    let pipeline = format!(
        "name: hosts\nseed: 1\nstages:\n\
         - id: scifact\n  kind: ingest.beir\n  params: {{path: {scifact}, split: test}}\n\
         - id: bm25\n  kind: retrieve.bm25\n  inputs: {{corpus: scifact.corpus, queries: scifact.queries}}\n  params: {{top_k: 100}}\n\
         - id: eval\n  kind: eval.trec\n  inputs: {{run: bm25.run, qrels: scifact.qrels}}\n"
    );
    let md = report_over_two_seeds(dir.path(), &pipeline);
    let host = rrra_common::manifest::Host::detect();
    // Per seed and over both seeds: these stages are unseeded, so both seeds share them.
    let line = format!("Computed on {host}: 3 stages.");
    assert_eq!(md.matches(&line).count(), 3, "{md}");

    // A manifest from before hosts were recorded.
    let evals = dir.path().join("data/cache/eval.trec");
    let entry = std::fs::read_dir(&evals).unwrap().next().unwrap().unwrap();
    let path = entry.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("host").unwrap();
    std::fs::write(&path, manifest.to_string()).unwrap();
    let md = report(dir.path(), "older", &[]);
    let line = format!(
        "Computed on {host}: 2 stages; a machine not recorded (older runs): 1 stage. The CPU \
         kernels depend on the SIMD level"
    );
    assert_eq!(md.matches(&line).count(), 3, "{md}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            files.extend(files_under(&e.path()));
        } else {
            files.push(e.path());
        }
    }
    files
}

#[test]
fn archived_results_are_reported_after_the_cache_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the data, to be deleted at the end as from a clone without it.
    let source = Path::new(&scifact()).to_path_buf();
    for file in files_under(&source) {
        let to = dir
            .path()
            .join("scifact")
            .join(file.strip_prefix(&source).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
    let copy = dir.path().join("scifact").display().to_string();
    let cached = report_over_two_seeds(dir.path(), &pipeline(&copy));
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (file, data, results) = (path("pipeline.yaml"), path("data"), path("results"));
    let archive = || {
        xtask(&[
            "archive",
            &file,
            "--data-dir",
            &data,
            "--seeds",
            "1,2",
            "--to",
            &results,
            "--max-kib",
            "64",
        ])
    };
    let printed = archive();
    let left_out: Vec<usize> = printed
        .lines()
        .map(|l| {
            assert!(l.contains("12 of 12 stages complete"), "{printed}");
            let (_, rest) = l.split_once("KiB; ").unwrap();
            rest.split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(left_out.len(), 2, "{printed}");
    assert!(
        left_out[0] > 0,
        "the corpus, qrels and runs are left out: {printed}"
    );
    // Only manifests and metrics: every entry's manifest (the ingest, two splits, three
    // runs, the evaluations), each evaluation's metrics.
    let archived = files_under(&dir.path().join("results/ablation"));
    let named = |name: &str| archived.iter().filter(|f| f.ends_with(name)).count();
    assert_eq!(named("manifest.json"), named("metrics.parquet") + 6);
    assert_eq!(
        named("manifest.json") + named("metrics.parquet"),
        archived.len()
    );
    assert!(named("metrics.parquet") > 7, "{archived:?}");
    // A second archive copies nothing.
    assert_eq!(archive().matches(" 0 archived now").count(), 2);

    // The cache holds another chain: one run recomputed to other bytes (as on another
    // CPU), so the evaluations after it have other keys and are not cached. They are read
    // from the archive (2 a seed), the rest from the cache; without the cache, all of it;
    // without the data too, all of it, with the data's hashes as the archive recorded them.
    let runs = files_under(&dir.path().join("data/cache/retrieve.bm25"));
    let manifest = runs
        .iter()
        .find(|f| {
            f.ends_with("manifest.json")
                && std::fs::read_to_string(f)
                    .unwrap()
                    .contains("\"stage_id\": \"b4\"")
        })
        .unwrap();
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let out = &mut m["outputs"]["run"];
    let run = manifest
        .parent()
        .unwrap()
        .join(out["file"].as_str().unwrap());
    std::fs::write(&run, b"another chain").unwrap();
    out["blake3"] = rrra_common::artifact::hash_path(&run).unwrap().into();
    out.as_object_mut().unwrap().remove("stamp");
    std::fs::write(manifest, m.to_string()).unwrap();
    let extra = ["--results", &path("results")];
    for (out, read, then_gone) in [
        ("other-chain", 2, "data"),
        ("archived", 12, "scifact"),
        ("no-data", 12, ""),
    ] {
        let md = report(dir.path(), out, &extra);
        for heading in [
            "### Dev selection",
            "### Ablation, settings chosen on dev queries",
        ] {
            assert_eq!(table(&md, heading), table(&cached, heading), "{md}");
        }
        let line = format!(
            "12 of 12 stages are in the cache or the results archive ({read} read from `{}`).",
            path("results/ablation")
        );
        assert_eq!(md.matches(&line).count(), 2, "{md}");
        if !then_gone.is_empty() {
            std::fs::remove_dir_all(dir.path().join(then_gone)).unwrap();
        }
    }

    // An archived metrics file that no longer matches its manifest is not read.
    let dev = archived
        .iter()
        .filter(|f| f.ends_with("manifest.json"))
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("\"stage_id\": \"b4-dev\"")
        })
        .unwrap();
    let metrics = files_under(dev.parent().unwrap())
        .into_iter()
        .find(|f| !f.ends_with("manifest.json"))
        .unwrap();
    std::fs::write(&metrics, b"not the metrics").unwrap();
    let md = report(dir.path(), "damaged", &extra);
    assert_eq!(
        md.matches("11 of 12 stages are in the cache").count(),
        1,
        "{md}"
    );
}
