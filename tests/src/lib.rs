//! Workspace-level integration tests live in `tests/tests/`; this library holds what
//! several of them share.

use std::path::Path;

use rrra_runner::Pipeline;

/// The shipped `pipelines/scifact-bm25.yaml` with BM25's `k1` replaced (a cheap way to
/// get a second, differently keyed pipeline over the same cache).
pub fn scifact_bm25_with_k1(k1: &str) -> Pipeline {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let file = root.join("pipelines/scifact-bm25.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("k1: 0.9"));
    Pipeline::parse(&file, &text.replace("k1: 0.9", &format!("k1: {k1}"))).unwrap()
}
