//! Helpers for the stage tests: small input artifacts and a stage run in a temp directory.

use std::path::{Path, PathBuf};

use rrra_common::Result;
use rrra_common::artifact::{read_rows, write_rows};
use rrra_common::embeddings::EmbeddingSink;
use rrra_common::records::{Candidate, Qrel};
use rrra_common::stage::{Stage, StageReport};
use rrra_testkit::StageRun;

/// Writes `rows` (id, vector) as embeddings file `dir/name.parquet`.
pub(crate) fn write_embeddings<V: AsRef<[f32]>>(
    dir: &Path,
    name: &str,
    rows: &[(&str, V)],
) -> PathBuf {
    let path = dir.join(format!("{name}.parquet"));
    let mut sink = EmbeddingSink::create(&path, rows[0].1.as_ref().len()).unwrap();
    for (id, vector) in rows {
        sink.push(id, vector.as_ref()).unwrap();
    }
    sink.finish().unwrap();
    path
}

/// Writes `(query, doc, relevance)` judgements as `dir/qrels.parquet`.
pub(crate) fn qrels(dir: &Path, judged: &[(&str, &str, i32)]) -> PathBuf {
    let path = dir.join("qrels.parquet");
    let rows = judged.iter().map(|&(q, d, relevance)| Qrel {
        query_id: q.into(),
        doc_id: d.into(),
        relevance,
    });
    write_rows(&path, rows).unwrap();
    path
}

/// Runs stage `S` on `inputs` and reads back its `candidates` output.
pub(crate) fn run_stage<S: Stage>(
    params: &S::Params,
    inputs: &[(&str, PathBuf)],
) -> Result<(StageReport, Vec<Candidate>)> {
    let dir = tempfile::tempdir().unwrap();
    let run = StageRun::in_dir(dir.path()).inputs(inputs.iter().cloned());
    let report = run.run::<S>(params)?;
    let rows = read_rows::<Candidate>(&run.output("candidates"))?;
    Ok((report, rows))
}
