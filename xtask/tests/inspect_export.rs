//! `xtask show` and `xtask export` on a small SciFact pipeline (BM25 mining and a uniform
//! sampler make the `examples`): tables, filters and their errors; CSV, JSONL and Parquet
//! exports and the sentence-transformers, FlagEmbedding and Tevatron hard-negative files,
//! each read back and checked against the SciFact source files and the examples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    pipeline: PathBuf,
}

/// The pipeline, run once for every test of this file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let scifact = repo().join("data/scifact");
        let pipeline = root.join("p.yaml");
        std::fs::write(
            &pipeline,
            format!(
                "name: inspect
seed: 42
data_dir: data
stages:
  - id: scifact
    kind: ingest.beir
    params: {{path: {}, split: train}}
  - id: mine
    kind: mine.bm25
    inputs: {{corpus: scifact.corpus, queries: scifact.queries, qrels: scifact.qrels}}
    params: {{k: 20}}
  - id: negatives
    kind: resample.uniform
    inputs: {{candidates: mine.candidates}}
    params: {{n_neg: 2, pool: 20, r_max: 20}}
  - id: bm25
    kind: retrieve.bm25
    inputs: {{corpus: scifact.corpus, queries: scifact.queries}}
    params: {{top_k: 10}}
",
                scifact.display()
            ),
        )
        .unwrap();
        let fixture = Fixture {
            _dir: dir,
            root,
            pipeline,
        };
        let out = fixture.xtask(&["run"], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fixture
    })
}

impl Fixture {
    /// `xtask SUB p.yaml ARGS...`.
    fn xtask(&self, sub: &[&str], args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(sub)
            .arg(&self.pipeline)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, sub: &[&str], args: &[&str]) -> String {
        let out = self.xtask(sub, args);
        assert!(
            out.status.success(),
            "{sub:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, sub: &[&str], args: &[&str]) -> String {
        let out = self.xtask(sub, args);
        assert!(!out.status.success(), "{sub:?} {args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }

    fn export(&self, spec: &str, format: &str, file: &str) -> PathBuf {
        let to = self.root.join(file);
        self.ok(
            &["export"],
            &[spec, "--format", format, "--to", to.to_str().unwrap()],
        );
        to
    }
}

fn names(table: &rrra_inspect::DataFrame) -> Vec<String> {
    table
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// SciFact's own files: doc id -> (title, text), query id -> text.
fn scifact() -> (HashMap<String, (String, String)>, HashMap<String, String>) {
    let docs = jsonl(&repo().join("data/scifact/corpus.jsonl"))
        .into_iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            (s("_id"), (s("title"), s("text")))
        })
        .collect();
    let queries = jsonl(&repo().join("data/scifact/queries.jsonl"))
        .into_iter()
        .map(|q| {
            let s = |k: &str| q[k].as_str().unwrap().to_string();
            (s("_id"), s("text"))
        })
        .collect();
    (docs, queries)
}

fn joined((title, text): &(String, String)) -> String {
    format!("{title} {text}").trim().to_string()
}

/// The examples, as `export --format jsonl` writes them to `file`: (query, positive,
/// negatives). Tests run in parallel, so each names its own file.
fn examples(f: &Fixture, file: &str) -> Vec<(String, String, Vec<String>)> {
    let path = f.export("negatives", "jsonl", file);
    jsonl(&path)
        .into_iter()
        .map(|e| {
            let negatives = e["negatives"].as_array().unwrap();
            (
                e["query_id"].as_str().unwrap().to_string(),
                e["positive_id"].as_str().unwrap().to_string(),
                negatives
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn show_prints_the_selected_columns_of_the_filtered_rows() {
    let f = fixture();
    let out = f.ok(
        &["show"],
        &[
            "bm25.run",
            "--head",
            "5",
            "--where",
            "rank <= 2 and score > 0",
            "--columns",
            "query_id,rank,score",
        ],
    );
    let cells = |line: &str| -> Vec<String> {
        line.split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(cells(lines[0]), ["query_id", "rank", "score"], "{out}");
    let rows: Vec<Vec<String>> = lines
        .iter()
        .skip(1)
        .map(|l| cells(l))
        .filter(|c| c.len() == 3 && c[1].parse::<u32>().is_ok())
        .collect();
    assert_eq!(rows.len(), 5, "{out}");
    for cells in &rows {
        assert!(cells[1] == "1" || cells[1] == "2", "{out}");
        assert!(cells[2].parse::<f64>().unwrap() > 0.0, "{out}");
    }
    // The count of matching rows, checked against the whole run exported as CSV.
    let csv = f.export("bm25", "csv", "run.csv");
    let text = std::fs::read_to_string(csv).unwrap();
    let mut columns = text.lines().next().unwrap().split(',');
    assert_eq!(columns.next(), Some("query_id"));
    let matched = text
        .lines()
        .skip(1)
        .filter(|l| {
            let c: Vec<&str> = l.split(',').collect();
            c[2].parse::<u32>().unwrap() <= 2 && c[3].parse::<f64>().unwrap() > 0.0
        })
        .count();
    assert!(matched > 5);
    assert!(out.contains(&format!("5 of {matched} rows")), "{out}");
}

#[test]
fn show_rejects_bad_filters_columns_and_ports_clearly() {
    let f = fixture();
    let err = f.fails(&["show"], &["bm25", "--where", "rank = 2"]);
    assert!(err.contains("compare with `==`"), "{err}");
    let err = f.fails(&["show"], &["bm25", "--where", "rnk < 2"]);
    assert!(
        err.contains("no column \"rnk\"") && err.contains("query_id, doc_id, rank, score"),
        "{err}"
    );
    let err = f.fails(&["show"], &["bm25", "--where", "doc_id > 2"]);
    assert!(err.contains("cannot be compared"), "{err}");
    let err = f.fails(&["show"], &["bm25", "--columns", "query_id,nope"]);
    assert!(err.contains("no column \"nope\""), "{err}");
    let err = f.fails(&["show"], &["scifact"]);
    assert!(
        err.contains("scifact.corpus (corpus)") && err.contains("scifact.qrels (qrels)"),
        "{err}"
    );
    let err = f.fails(&["show"], &["nope"]);
    assert!(err.contains("no stage \"nope\""), "{err}");
}

#[test]
fn table_exports_read_back_with_the_same_rows() {
    let f = fixture();
    let examples = examples(f, "examples-1.jsonl");
    assert!(examples.len() > 500, "{}", examples.len());
    assert!(examples.iter().all(|(_, _, n)| n.len() == 2));

    // CSV: list columns as JSON arrays.
    let csv = f.export("negatives.examples", "csv", "examples.csv");
    let table = rrra_inspect::read_table(&csv).unwrap();
    assert_eq!(table.height(), examples.len());
    let back = rrra_inspect::table::render(&table.head(Some(1)));
    let (q, p, n) = &examples[0];
    assert!(back.contains(q) && back.contains(p), "{back}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let first = text.lines().nth(1).unwrap();
    let array = &first[first.find('[').unwrap()..=first.find(']').unwrap()];
    let array: Vec<String> = serde_json::from_str(&array.replace("\"\"", "\"")).unwrap();
    assert_eq!(&array, n);

    // TREC (the default format): a run's rows as `qid Q0 doc rank score tag` lines.
    let trec = f.root.join("bm25.trec");
    f.ok(&["export"], &["bm25", "--to", trec.to_str().unwrap()]);
    let run_csv = f.export("bm25.run", "csv", "run-trec.csv");
    let run_rows = std::fs::read_to_string(run_csv).unwrap().lines().count() - 1;
    let trec = std::fs::read_to_string(trec).unwrap();
    assert_eq!(trec.lines().count(), run_rows);
    for line in trec.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (cells.len(), cells[1], cells[5]),
            (6, "Q0", "bm25"),
            "{line}"
        );
    }

    // Parquet: the same rows as JSONL.
    let parquet = f.export("negatives", "parquet", "examples.parquet");
    let table = rrra_inspect::read_table(&parquet).unwrap();
    assert_eq!(table.height(), examples.len());
    assert_eq!(
        names(&table),
        ["query_id", "positive_id", "negatives", "weights"]
    );
}

#[test]
fn hard_negative_exports_hold_the_examples_texts() {
    let f = fixture();
    let examples = examples(f, "examples-2.jsonl");
    let (docs, queries) = scifact();

    // sentence-transformers, Parquet: anchor, positive, negative_1, negative_2 per example.
    let st = f.export("negatives", "st", "st.parquet");
    let table = rrra_inspect::read_table(&st).unwrap();
    assert_eq!(
        names(&table),
        ["anchor", "positive", "negative_1", "negative_2"]
    );
    assert_eq!(table.height(), examples.len());
    let column = |name: &str| -> Vec<String> {
        table
            .column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect()
    };
    let (anchor, positive, n1, n2) = (
        column("anchor"),
        column("positive"),
        column("negative_1"),
        column("negative_2"),
    );
    for (i, (q, p, n)) in examples.iter().enumerate() {
        assert_eq!(anchor[i], queries[q]);
        assert_eq!(positive[i], joined(&docs[p]));
        assert_eq!(n1[i], joined(&docs[&n[0]]));
        assert_eq!(n2[i], joined(&docs[&n[1]]));
    }
    // sentence-transformers, JSONL: the same records.
    let st = jsonl(&f.export("negatives", "st", "st.jsonl"));
    assert_eq!(st.len(), examples.len());
    assert_eq!(st[0]["anchor"], anchor[0].as_str());
    assert_eq!(st[0]["negative_2"], n2[0].as_str());

    // FlagEmbedding: {query, pos, neg}.
    let flag = jsonl(&f.export("negatives", "flag", "flag.jsonl"));
    assert_eq!(flag.len(), examples.len());
    for (line, (q, p, n)) in flag.iter().zip(&examples) {
        assert_eq!(line["query"], queries[q].as_str());
        assert_eq!(line["pos"], serde_json::json!([joined(&docs[p])]));
        let neg: Vec<String> = n.iter().map(|id| joined(&docs[id])).collect();
        assert_eq!(line["neg"], serde_json::json!(neg));
    }

    // Tevatron: query_id, query, positive_passages and negative_passages with docid/title/text.
    let tevatron = jsonl(&f.export("negatives", "tevatron", "tevatron.jsonl"));
    assert_eq!(tevatron.len(), examples.len());
    let passage = |id: &str| {
        let (title, text) = &docs[id];
        serde_json::json!({"docid": id, "title": title, "text": text})
    };
    for (line, (q, p, n)) in tevatron.iter().zip(&examples) {
        assert_eq!(line["query_id"], q.as_str());
        assert_eq!(line["query"], queries[q].as_str());
        assert_eq!(line["positive_passages"], serde_json::json!([passage(p)]));
        let negs: Vec<Value> = n.iter().map(|id| passage(id)).collect();
        assert_eq!(line["negative_passages"], serde_json::json!(negs));
    }

    // A format that needs examples, on a run; a corpus flag naming the wrong kind.
    let to = f.root.join("x.jsonl");
    let to = to.to_str().unwrap();
    let err = f.fails(&["export"], &["bm25.run", "--format", "flag", "--to", to]);
    assert!(err.contains("takes an examples artifact"), "{err}");
    let err = f.fails(
        &["export"],
        &[
            "negatives",
            "--format",
            "flag",
            "--corpus",
            "scifact.queries",
            "--to",
            to,
        ],
    );
    assert!(
        err.contains("--corpus scifact.queries: a queries artifact"),
        "{err}"
    );
    assert!(!Path::new(to).exists());
}

/// The exports open in pyarrow and polars (Python) with the rows and columns Rust read.
#[test]
fn exports_open_in_pyarrow_and_polars() {
    let f = fixture();
    let rows = examples(f, "examples-3.jsonl").len();
    let st = f.export("negatives", "st", "st-py.parquet");
    let csv = f.export("negatives", "csv", "examples-py.csv");
    let python = std::env::var("RRRA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys, json, pyarrow.parquet as pq, polars as pl
t = pq.read_table(sys.argv[1]); d = pl.read_parquet(sys.argv[1]); c = pl.read_csv(sys.argv[2])
print(json.dumps([t.num_rows, t.column_names, d.height, c.height, c.columns,
                  json.loads(c['negatives'][0]) == [x for x in pl.read_parquet(sys.argv[3])['negatives'][0]]]))";
    let parquet = f.export("negatives", "parquet", "examples-py.parquet");
    let out = Command::new(&python)
        .args(["-c", script])
        .args([&st, &csv, &parquet])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run `cargo xtask test`, which installs pyarrow and polars"));
    assert!(
        out.status.success(),
        "{python}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        serde_json::json!([
            rows,
            ["anchor", "positive", "negative_1", "negative_2"],
            rows,
            rows,
            ["query_id", "positive_id", "negatives", "weights"],
            true
        ])
    );
}
