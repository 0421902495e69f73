//! Data-driven: each malformed pipeline is rejected before anything runs, with an error
//! naming the file, the line, and what is wrong.

use std::path::Path;

use rrra_runner::Pipeline;

const GOOD: &str = "\
name: t
stages:
  - id: src
    kind: ingest.beir
    params: {path: ../data/scifact, split: test}
  - id: bm25
    kind: retrieve.bm25
    inputs: {corpus: src.corpus, queries: src.queries}
    params:
      k1: 0.9
  - id: eval
    kind: eval.trec
    inputs: {run: bm25.run, qrels: src.qrels}
";

/// (what, text edit applied to GOOD, expected line, expected message fragment)
const CASES: &[(&str, &str, &str, usize, &str)] = &[
    (
        "unknown kind",
        "kind: retrieve.bm25",
        "kind: retrieve.bm52",
        7,
        "unknown kind \"retrieve.bm52\"",
    ),
    (
        "unknown param",
        "k1: 0.9",
        "k3: 0.9",
        10,
        "unknown field `k3`",
    ),
    (
        "mistyped param",
        "k1: 0.9",
        "k1: high",
        10,
        "param k1: invalid type: string \"high\"",
    ),
    ("out of range param", "k1: 0.9", "k1: -1", 9, "k1 must be"),
    (
        "missing input",
        "inputs: {run: bm25.run, qrels: src.qrels}",
        "inputs: {qrels: src.qrels}",
        11,
        "missing input \"run\"",
    ),
    (
        "unknown upstream stage",
        "run: bm25.run",
        "run: bm26.run",
        13,
        "unknown stage \"bm26\"",
    ),
    (
        "unknown upstream output",
        "run: bm25.run",
        "run: bm25.ranking",
        13,
        "has no output \"ranking\"",
    ),
    (
        "wrong artifact kind",
        "run: bm25.run",
        "run: src.qrels",
        13,
        "expects a run artifact, but src.qrels is a qrels",
    ),
    (
        "unknown input port",
        "corpus: src.corpus,",
        "corpus: src.corpus, docs: src.corpus,",
        8,
        "has no input \"docs\"",
    ),
    (
        "duplicate id",
        "id: eval",
        "id: bm25",
        11,
        "duplicate stage id \"bm25\" (first at line 6)",
    ),
    (
        "yaml syntax",
        "  - id: eval",
        "  - id: [eval",
        11,
        "not a valid pipeline",
    ),
    (
        "sweep over a param the stage lacks",
        "    params:\n      k1: 0.9",
        "    sweep: k9\n    params:\n      k1: 0.9",
        9,
        "sweep: \"k9\" names no numeric param of retrieve.bm25",
    ),
    (
        "ablation row on a stage that is no evaluation",
        "    params:\n      k1: 0.9",
        "    row: bm25\n    params:\n      k1: 0.9",
        9,
        "row: labels an ablation result; expected it on an eval.trec stage",
    ),
    (
        "dev evaluation that is no stage",
        "    inputs: {run: bm25.run, qrels: src.qrels}",
        "    row: bm25\n    dev: evl\n    inputs: {run: bm25.run, qrels: src.qrels}",
        14,
        "dev: \"evl\" names no other eval.trec stage",
    ),
    (
        "dev evaluation without a row",
        "    inputs: {run: bm25.run, qrels: src.qrels}",
        "    dev: eval\n    inputs: {run: bm25.run, qrels: src.qrels}",
        13,
        "dev: \"eval\" without row:",
    ),
    (
        "baseline row no stage carries",
        "name: t",
        "name: t\nbaseline_row: SimANS",
        2,
        "baseline_row: \"SimANS\" is no stage's row: label",
    ),
    (
        "merge key that is no mapping",
        "    params:\n      k1: 0.9",
        "    params:\n      <<: 3\n      k1: 0.9",
        6,
        "params: merge key",
    ),
    (
        "unknown top-level key",
        "name: t",
        "nmae: t",
        1,
        "unknown field `nmae`",
    ),
];

#[test]
fn good_pipeline_validates() {
    let p = Pipeline::parse(Path::new("pipelines/t.yaml"), GOOD).unwrap();
    let ids: Vec<_> = p.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["src", "bm25", "eval"]);
    assert_eq!(p.base_dir, Path::new("pipelines"));
    // Defaults are filled into the canonical params.
    let params = &p.stages[1].prepared.params;
    assert_eq!(params["k1"], 0.9);
    assert!(
        params.get("b").is_some() && params.get("top_k").is_some(),
        "{params}"
    );
}

#[test]
fn a_sweep_label_is_kept_and_stays_out_of_the_params() {
    let labelled = GOOD.replacen(
        "    params:\n      k1: 0.9",
        "    sweep: k1\n    params:\n      k1: 0.9",
        1,
    );
    let p = Pipeline::parse(Path::new("p.yaml"), &labelled).unwrap();
    let plain = Pipeline::parse(Path::new("p.yaml"), GOOD).unwrap();
    let bm25 = |p: &Pipeline| p.stages.iter().position(|s| s.id == "bm25").unwrap();
    assert_eq!(p.stages[bm25(&p)].sweep.as_deref(), Some("k1"));
    assert_eq!(plain.stages[bm25(&plain)].sweep, None);
    // Not part of the cache key: the canonical params are the same.
    assert_eq!(
        p.stages[bm25(&p)].prepared.params,
        plain.stages[bm25(&plain)].prepared.params
    );
}

#[test]
fn ablation_labels_are_kept_and_stay_out_of_the_params() {
    let text = format!(
        "baseline_row: bm25\n{}  - id: eval-dev
    kind: eval.trec
    inputs: {{run: bm25.run, qrels: src.qrels}}
",
        GOOD.replacen(
            "    inputs: {run: bm25.run, qrels: src.qrels}",
            "    row: bm25\n    dev: eval-dev\n    inputs: {run: bm25.run, qrels: src.qrels}",
            1,
        )
    );
    let p = Pipeline::parse(Path::new("p.yaml"), &text).unwrap();
    let eval = &p.stages[p.position("eval").unwrap()];
    assert_eq!(
        (eval.row.as_deref(), eval.dev.as_deref()),
        (Some("bm25"), Some("eval-dev"))
    );
    assert_eq!(p.baseline_row.as_deref(), Some("bm25"));
    let dev = &p.stages[p.position("eval-dev").unwrap()];
    assert_eq!(
        (dev.row.as_deref(), &dev.prepared.params),
        (None, &eval.prepared.params)
    );
}

#[test]
fn restricting_keeps_the_targets_and_what_they_need() {
    let text = format!(
        "{GOOD}  - id: other
    kind: retrieve.bm25
    inputs: {{corpus: src.corpus, queries: src.queries}}
    params: {{k1: 1.2}}
"
    );
    let full = Pipeline::parse(Path::new("p.yaml"), &text).unwrap();
    let mut p = Pipeline::parse(Path::new("p.yaml"), &text).unwrap();
    p.restrict(&["eval".into()]).unwrap();
    let ids: Vec<_> = p.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["src", "bm25", "eval"]);
    let mut from: Vec<_> = p.stages[2]
        .inputs
        .iter()
        .map(|e| (e.port.as_str(), e.from_stage))
        .collect();
    from.sort();
    assert_eq!(
        from,
        [("qrels", 0), ("run", 1)],
        "eval reads src.qrels and bm25.run"
    );
    let mut q = Pipeline::parse(Path::new("p.yaml"), &text).unwrap();
    q.restrict(&["other".into()]).unwrap();
    let ids: Vec<_> = q.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["src", "other"]);
    assert_eq!(q.stages[1].inputs[0].from_stage, 0);
    assert_eq!(
        q.stages[1].prepared.params, full.stages[3].prepared.params,
        "params are untouched"
    );
    let err = q.restrict(&["nope".into()]).unwrap_err().to_string();
    assert!(
        err.contains("p.yaml") && err.contains("\"nope\"") && err.contains("src, other"),
        "{err}"
    );
}

#[test]
fn each_malformed_pipeline_is_rejected_with_its_line() {
    for (what, from, to, line, fragment) in CASES {
        assert!(GOOD.contains(from), "{what}: edit does not apply");
        let text = GOOD.replacen(from, to, 1);
        let err = match Pipeline::parse(Path::new("p.yaml"), &text) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.line, Some(*line), "{what}: {shown}");
        assert!(
            shown.starts_with(&format!("p.yaml:{line}: ")),
            "{what}: {shown}"
        );
        assert!(shown.contains(fragment), "{what}: {shown}");
    }
}

#[test]
fn cycles_are_named() {
    let text = "\
stages:
  - id: a
    kind: eval.trec
    inputs: {run: b.run, qrels: c.qrels}
  - id: b
    kind: retrieve.bm25
    inputs: {corpus: c.corpus, queries: c.queries}
  - id: c
    kind: ingest.beir
    params: {path: x}
";
    // No cycle here: c -> b -> a, written out of order.
    let p = Pipeline::parse(Path::new("p.yaml"), text).unwrap();
    let ids: Vec<_> = p.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["c", "b", "a"]);

    // eval.compare takes two metrics artifacts; feed two compares into each other.
    let cyclic = "\
stages:
  - id: x
    kind: eval.compare
    inputs: {baseline: y.metrics, candidate: y.metrics}
  - id: y
    kind: eval.compare
    inputs: {baseline: x.metrics, candidate: x.metrics}
";
    let err = Pipeline::parse(Path::new("p.yaml"), cyclic)
        .err()
        .expect("a cycle");
    let shown = err.to_string();
    assert!(shown.contains("cycle"), "{shown}");
    assert!(
        shown.contains("x -> y -> x") || shown.contains("y -> x -> y"),
        "{shown}"
    );
}

#[test]
fn every_shipped_pipeline_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "pipelines found: {files:?}");
    for file in files {
        if let Err(e) = Pipeline::load(&file) {
            panic!("{} does not validate: {e}", file.display());
        }
    }
}

/// The ablations of issue #17: every row's settings, each with a dev evaluation where the
/// row has several, and the epochs-2 variants (YAML merge keys) equal to the anchored
/// training block but for `epochs`.
#[test]
fn the_dev_chosen_ablations_vary_only_what_their_rows_choose() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let want = [
        ("zero-shot", 1),
        ("uniform", 2),
        ("SimANS", 4),
        ("TriSampler", 2),
        ("margin", 2),
        ("RRRA resample", 6),
        ("rerank-only", 3),
        ("RRRA full", 12),
        ("SimANS + rerank", 8),
        ("RRRA joint", 2),
        ("RRRA joint full", 4),
    ];
    for name in [
        "scifact-dev-ablation",
        "nfcorpus-ablation",
        "nfcorpus-shallow-ablation",
    ] {
        let p = Pipeline::load(&dir.join(format!("{name}.yaml"))).unwrap();
        assert_eq!(p.baseline_row.as_deref(), Some("SimANS"), "{name}");
        for (row, n) in want {
            let settings: Vec<_> = p
                .stages
                .iter()
                .filter(|s| s.row.as_deref() == Some(row))
                .collect();
            assert_eq!(settings.len(), n, "{name}: row {row}");
            if n > 1 {
                assert!(settings.iter().all(|s| s.dev.is_some()), "{name}: {row}");
            }
        }
        let params = |id: &str| &p.stages[p.position(id).unwrap()].prepared.params;
        let (mut one, two) = (
            params("simans-a200-e1-train").clone(),
            params("simans-a200-e2-train"),
        );
        assert_eq!(one["epochs"], 1, "{name}");
        one["epochs"] = 2.into();
        assert_eq!(
            &one, two,
            "{name}: the epochs-2 setting differs in epochs only"
        );
        // RRRA full's control reranks SimANS's encoder exactly as RRRA full reranks its own.
        for (control, full) in [
            ("simans-a200-e2-adapter", "rrra-g2-e2-adapter"),
            (
                "simans-a50-e1-full-l05-test-rerank",
                "rrra-g05-e1-full-l05-test-rerank",
            ),
            (
                "simans-a50-e1-full-l1-dev-rerank",
                "rrra-g1-e1-full-l1-dev-rerank",
            ),
        ] {
            assert_eq!(params(control), params(full), "{name}: {control} vs {full}");
        }
        let joint = params("joint-e2-train");
        assert_eq!(
            joint["encoder"], *two,
            "{name}: train.joint's encoder budget"
        );
    }
}

#[test]
fn ingest_params_take_paths_urls_and_catalogue_names() {
    let text = "\
name: own
stages:
  - id: scifact
    kind: ingest.beir
    params:
      path: {url: https://example.org/scifact.zip, md5: 5f7d1de60b170fc8027bb7898e2efca1, member: scifact}
  - id: wiki
    kind: ingest.corpus
    params: {path: {collection: psgs-w100}, format: psgs_w100}
  - id: robust
    kind: ingest.trec
    params: {docs: disks45, topics: topics.301-450, qrels: qrels.robust, topic_fields: [title, desc]}
  - id: pairs
    kind: ingest.pairs
    params: {path: train.jsonl, fields: {positive: pos, negative: neg}}
";
    let p = Pipeline::parse(Path::new("pipelines/own.yaml"), text).unwrap();
    let sources: Vec<usize> = p.stages.iter().map(|s| s.prepared.sources.len()).collect();
    // Downloads are keyed by their pinned hash, local files by their content.
    assert_eq!(sources, [0, 0, 3, 1]);
    assert_eq!(
        p.stages[1].prepared.params["path"],
        serde_json::json!({"collection": "psgs-w100"})
    );
    let bad = text.replace("collection: psgs-w100", "collection: psgs-w200");
    let err = Pipeline::parse(Path::new("pipelines/own.yaml"), &bad)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("own.yaml:9") && err.contains("unknown collection \"psgs-w200\""),
        "{err}"
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    let mut bytes = GOOD.as_bytes().to_vec();
    let at = GOOD.find("kind: retrieve").unwrap() + 2;
    bytes[at] = 0xff;
    std::fs::write(&file, bytes).unwrap();
    let err = Pipeline::load(&file).err().unwrap();
    assert_eq!(err.line, Some(7), "{err}");
    assert!(
        err.to_string()
            .contains("expected UTF-8 text, found an invalid byte sequence at byte 7"),
        "{err}"
    );
}
