//! Every artifact kind opens in pyarrow and polars as-is, with the same rows, columns and
//! values that rrra wrote, and carries its kind and schema version.

use std::path::Path;
use std::process::Command;

use rrra_common::artifact::write_rows;
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::records::{
    Candidate, Doc, Example, MetricRow, Qrel, Query, RunRow, Scored, TrainLogRow,
};
use rrra_common::schema::ArtifactKind;

#[test]
fn every_kind_opens_in_pyarrow_and_polars() {
    let dir = tempfile::tempdir().unwrap();
    let path = |kind: ArtifactKind| dir.path().join(format!("{kind}.parquet"));
    write_rows(
        &path(ArtifactKind::Corpus),
        [Doc {
            id: "d1".into(),
            title: "Tïtle".into(),
            text: "body".into(),
        }],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::Queries),
        [
            Query {
                id: "q1".into(),
                text: "who?".into(),
                answers: Some(vec!["a".into(), "b".into()]),
            },
            Query {
                id: "q2".into(),
                text: "what?".into(),
                answers: None,
            },
        ],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::Qrels),
        [Qrel {
            query_id: "q1".into(),
            doc_id: "d1".into(),
            relevance: 2,
        }],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::Run),
        [RunRow {
            query_id: "q1".into(),
            doc_id: "d1".into(),
            rank: 1,
            score: 12.5,
        }],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::Metrics),
        [MetricRow {
            query_id: "all".into(),
            measure: "nDCG@10".into(),
            value: 0.5,
        }],
    )
    .unwrap();

    write_rows(
        &path(ArtifactKind::Candidates),
        [Candidate {
            query_id: "q1".into(),
            doc_id: "d1".into(),
            rank: 3,
            score: 0.75,
            positive: false,
        }],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::Examples),
        [Example {
            query_id: "q1".into(),
            positive_id: "d1".into(),
            negatives: vec!["d2".into(), "d3".into()],
            weights: Some(vec![0.5, 1.0]),
        }],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::Scored),
        [Scored {
            candidate: Candidate {
                query_id: "q1".into(),
                doc_id: "d1".into(),
                rank: 1,
                score: 0.5,
                positive: false,
            },
            qa_score: 0.75,
            s_fn: 0.25,
            p_rel: 0.125,
        }],
    )
    .unwrap();
    write_rows(
        &path(ArtifactKind::TrainLog),
        [TrainLogRow {
            step: 1,
            epoch: 0,
            loss: 1.25,
            lr: 2e-5,
            samples_per_s: 3.0,
        }],
    )
    .unwrap();

    let mut vectors = EmbeddingSink::create(&path(ArtifactKind::Embeddings), 2).unwrap();
    vectors.push("d1", &[0.25, -1.0]).unwrap();
    vectors.finish().unwrap();

    let python = std::env::var("RRRA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/open_artifacts.py");
    // Every Parquet kind; a model is a folder, not a table.
    let kinds: Vec<ArtifactKind> = ArtifactKind::ALL
        .into_iter()
        .filter(|k| !k.is_directory())
        .collect();
    let files: Vec<_> = kinds.iter().map(|k| path(*k)).collect();
    let out = Command::new(&python).arg(&script).args(&files).output().unwrap_or_else(|e| {
        panic!("cannot run {python}: {e}; run `cargo xtask test`, which installs pyarrow and polars")
    });
    assert!(
        out.status.success(),
        "{python} could not open the artifacts (run `cargo xtask test` to install pyarrow and polars): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    for &kind in &kinds {
        let file = path(kind).display().to_string();
        let columns: Vec<String> = kind
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for lib in ["pyarrow", "polars"] {
            let got = &seen[&file][lib];
            assert_eq!(
                got["columns"],
                serde_json::json!(columns),
                "{kind} in {lib}"
            );
        }
        let meta = &seen[&file]["pyarrow"]["metadata"];
        assert_eq!(meta["rrra.kind"], kind.name());
        assert_eq!(meta["rrra.schema_version"], kind.version().to_string());
    }
    let q = &seen[&path(ArtifactKind::Queries).display().to_string()];
    assert_eq!(q["polars"]["rows"], 2);
    assert_eq!(
        q["polars"]["first"]["answers"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(q["pyarrow"]["types"][2], "list<item: string not null>");
    let e = &seen[&path(ArtifactKind::Embeddings).display().to_string()];
    assert_eq!(
        e["polars"]["first"]["vector"],
        serde_json::json!([0.25, -1.0])
    );
    assert_eq!(e["pyarrow"]["metadata"]["rrra.dim"], "2");
    let c = &seen[&path(ArtifactKind::Corpus).display().to_string()];
    assert_eq!(c["polars"]["first"]["title"], "Tïtle");
    let r = &seen[&path(ArtifactKind::Run).display().to_string()];
    assert_eq!(r["pyarrow"]["first"]["score"], 12.5);
    assert_eq!(r["polars"]["first"]["rank"], 1);
    let x = &seen[&path(ArtifactKind::Examples).display().to_string()];
    assert_eq!(
        x["polars"]["first"]["negatives"],
        serde_json::json!(["d2", "d3"])
    );
    assert_eq!(
        x["pyarrow"]["first"]["weights"],
        serde_json::json!([0.5, 1.0])
    );
    let c = &seen[&path(ArtifactKind::Candidates).display().to_string()];
    assert_eq!(c["polars"]["first"]["positive"], false);
}
