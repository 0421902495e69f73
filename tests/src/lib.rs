//! Workspace-level integration tests live in `tests/tests/`; this library holds what
//! several of them share.

use std::path::{Path, PathBuf};

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

/// Writes `dir/tiny-split.yaml` and the small BEIR folder it reads (300 SciFact documents,
/// 40 queries, one qrel each): ingest -> encode documents in 4 parts of 80 rows and
/// queries unsplit -> mine in 4 parts of 11 queries, with the model folder `model` (e.g.
/// `rrra_testkit::minilm`). Returns the pipeline file.
pub fn tiny_split(dir: &Path, model: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = [
        root.join("../../shared/data/scifact"),
        root.join("../shared/data/scifact"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("the shared SciFact data");
    let out = dir.join("beir");
    std::fs::create_dir_all(out.join("qrels")).unwrap();
    let take = |file: &str, n: usize| -> Vec<String> {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        text.lines().take(n).map(str::to_string).collect()
    };
    let docs = take("corpus.jsonl", 300);
    let queries = take("queries.jsonl", 40);
    let id = |line: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["_id"].as_str().unwrap().to_string()
    };
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for (i, q) in queries.iter().enumerate() {
        qrels.push_str(&format!("{}\t{}\t1\n", id(q), id(&docs[i * 7])));
    }
    std::fs::write(out.join("corpus.jsonl"), docs.join("\n") + "\n").unwrap();
    std::fs::write(out.join("queries.jsonl"), queries.join("\n") + "\n").unwrap();
    std::fs::write(out.join("qrels/test.tsv"), qrels).unwrap();
    let text = format!(
        "name: tiny-split
seed: 7
stages:
  - id: beir
    kind: ingest.beir
    params: {{path: {beir}, split: test}}
  - id: docs
    kind: encode.bert
    inputs: {{corpus: beir.corpus}}
    params: {{model: {model}, max_len: 32, batch_size: 8, sort_window: 16, part_rows: 80}}
  - id: queries
    kind: encode.bert
    inputs: {{queries: beir.queries}}
    params: {{model: {model}, max_len: 32, batch_size: 8, sort_window: 16}}
  - id: mine
    kind: mine.dense
    inputs: {{queries: queries.embeddings, corpus: docs.embeddings, qrels: beir.qrels}}
    params: {{k: 20, part_queries: 11}}
",
        beir = out.display(),
        model = model.display()
    );
    let file = dir.join("tiny-split.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Stage id -> (output port -> blake3) of the entries in `data`'s cache.
pub fn cached_hashes(data: &Path) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut out = std::collections::BTreeMap::new();
    let cache = data.join("cache");
    for kind in std::fs::read_dir(&cache).unwrap().flatten() {
        if !kind.path().is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(kind.path()).unwrap().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("manifest.json")) else {
                continue;
            };
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            let outs = m["outputs"].as_object().unwrap();
            let hashes = outs
                .iter()
                .map(|(k, o)| (k.clone(), o["blake3"].as_str().unwrap().to_string()))
                .collect();
            out.insert(m["stage_id"].as_str().unwrap().to_string(), hashes);
        }
    }
    out
}

/// The shipped `pipelines/scifact.yaml` written to `dir/NAME` with its data path made
/// absolute, the document encoding (`docs`) sorting its texts by length in windows of
/// `sort_window` rows and cut into parts of `rows` documents (a multiple of the window),
/// and the dense mining (`mine`) cut into parts of `queries` queries (`part_rows`,
/// `part_queries`: never in the cache key). Every other stage and param is kept as
/// shipped. Returns the file.
pub fn scifact_yaml(
    dir: &Path,
    name: &str,
    sort_window: u64,
    (rows, queries): (u64, u64),
) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let mut text = std::fs::read_to_string(root.join("pipelines/scifact.yaml")).unwrap();
    assert_eq!(text.matches("path: ../data/scifact,").count(), 2);
    let data = root.join("data/scifact");
    text = text.replace(
        "path: ../data/scifact,",
        &format!("path: {},", data.display()),
    );
    // The documents' params carry the `&encoder` anchor the other encodings alias: the
    // anchor moves to the next stage (`queries`) and only `docs` gets the extra params.
    let anchored = "    params: &encoder {";
    let at = text
        .find(anchored)
        .expect("the docs stage anchors &encoder");
    let end = at + text[at..].find('\n').unwrap();
    let body = text[at + anchored.len() - 1..end].to_string();
    assert!(text[..at].ends_with("inputs: {corpus: scifact.corpus}\n"));
    let docs = format!(
        "    params: {}, sort_window: {sort_window}, part_rows: {rows}}}",
        &body[..body.len() - 1]
    );
    text.replace_range(at..end, &docs);
    text = text.replacen("params: *encoder", &format!("params: &encoder {body}"), 1);
    let mine = text.find("  - id: mine\n").expect("the mine stage");
    let k = mine + text[mine..].find("params: {k: 200}").unwrap();
    text.replace_range(
        k..k + "params: {k: 200}".len(),
        &format!("params: {{k: 200, part_queries: {queries}}}"),
    );
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}
