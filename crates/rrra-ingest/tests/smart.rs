//! The `ingest.smart` and `qrels.hide` stages end to end: small SMART fixtures in a
//! temporary directory, the three real collections under `shared/data/`, and the split of
//! their qrels.
//!
//! Expected counts of the real files were derived with shell tools, independently of this
//! crate: `grep -c '^\.I'` for records, `grep -c '<DOC>'` for CACM topics, `wc -l` and
//! `awk` histograms of the qrels columns, and `awk` over the `.W` sections for empty texts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rrra_common::artifact::{read_rows, write_rows};
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::stage::{Stage, StageReport};
use rrra_common::{Error, Result};
use rrra_ingest::stages::{HideParams, IngestSmart, QrelsHide, SmartParams};
use rrra_ingest::{QueryIds, SmartQrels};
use rrra_testkit::StageRun;

fn data_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).to_path_buf()
}

/// Runs stage `S` with `base_dir` for relative paths; outputs go to `out`.
fn run_stage<S: Stage>(
    params: &S::Params,
    base_dir: &Path,
    out: &Path,
    inputs: &[(&str, PathBuf)],
    seed: u64,
) -> Result<StageReport> {
    StageRun::in_dir(out)
        .base_dir(base_dir)
        .inputs(inputs.iter().cloned())
        .seed(seed)
        .run::<S>(params)
}

struct Ingested {
    report: StageReport,
    docs: Vec<Doc>,
    queries: Vec<Query>,
    qrels: Vec<Qrel>,
}

fn ingest(params: &SmartParams, base_dir: &Path) -> Result<Ingested> {
    let out = tempfile::tempdir().unwrap();
    let report = run_stage::<IngestSmart>(params, base_dir, out.path(), &[], 0)?;
    Ok(Ingested {
        report,
        docs: read_rows(&out.path().join("corpus.parquet"))?,
        queries: read_rows(&out.path().join("queries.parquet"))?,
        qrels: read_rows(&out.path().join("qrels.parquet"))?,
    })
}

fn metric(report: &StageReport, name: &str) -> f64 {
    report.metrics[name]
}

fn grades(qrels: &[Qrel]) -> BTreeMap<i32, usize> {
    let mut h = BTreeMap::new();
    for q in qrels {
        *h.entry(q.relevance).or_default() += 1;
    }
    h
}

fn params(corpus: &str, queries: &str, qrels: &str) -> SmartParams {
    SmartParams {
        corpus: corpus.into(),
        queries: queries.into(),
        qrels: qrels.into(),
        ..Default::default()
    }
}

const FIXTURE_DOCS: &str = ".I 1\n.T\nwing in a\nslipstream .\n.A\nbrenckman,m.\n.B\nj. ae. scs.\n.W\nwing in a slipstream .\n  an experimental study\n\
                            .I 2\n.T\nshear flow\n.W\nsimple shear flow\n.I 3\n.T\nempty\n.W\n";
const FIXTURE_QUERIES: &str = ".I 001\n.W\nwhat about wings\n.I 004\n.W\nshear flow problems\n";

fn write_fixture(dir: &Path, qrels: &str) {
    std::fs::write(dir.join("docs.all"), FIXTURE_DOCS).unwrap();
    std::fs::write(dir.join("q.qry"), FIXTURE_QUERIES).unwrap();
    std::fs::write(dir.join("qrels"), qrels).unwrap();
}

#[test]
fn stage_on_a_small_collection() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "1 1 1\n1 3 -1\n2 2 4\n");
    let p = SmartParams {
        query_ids: QueryIds::Ordinal,
        ..params("docs.all", "q.qry", "qrels")
    };
    assert_eq!(
        IngestSmart::sources(&p),
        [PathBuf::from("docs.all"), "q.qry".into(), "qrels".into()]
    );
    let got = ingest(&p, dir.path()).unwrap();
    assert_eq!(
        got.docs[0],
        Doc {
            id: "1".into(),
            title: "wing in a slipstream .".into(),
            text: "wing in a slipstream . an experimental study".into()
        }
    );
    assert_eq!(got.docs[2].text, "");
    let queries: Vec<(&str, &str)> = got
        .queries
        .iter()
        .map(|q| (q.id.as_str(), q.text.as_str()))
        .collect();
    assert_eq!(
        queries,
        [("1", "what about wings"), ("2", "shear flow problems")]
    );
    let qrels: Vec<(&str, &str, i32)> = got
        .qrels
        .iter()
        .map(|q| (q.query_id.as_str(), q.doc_id.as_str(), q.relevance))
        .collect();
    assert_eq!(qrels, [("1", "1", 4), ("1", "3", 1), ("2", "2", 1)]);
    let want: BTreeMap<String, f64> = [
        ("docs", 3.0),
        ("queries", 2.0),
        ("judged_queries", 2.0),
        ("qrels", 3.0),
        ("relevant", 3.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got.report.metrics, want);
}

#[test]
fn stage_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // With the ids written in cran.qry-style files, qrels numbered by position fail.
    write_fixture(dir.path(), "1 1 1\n2 2 4\n");
    let err = ingest(&params("docs.all", "q.qry", "qrels"), dir.path())
        .err()
        .unwrap();
    match err {
        Error::Input {
            file,
            line,
            message,
        } => {
            assert_eq!(file, dir.path().join("qrels"));
            assert_eq!(line, Some(2));
            assert!(
                message.starts_with("qrel for unknown query \"2\""),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A doc id prefix the qrels do not use.
    let p = SmartParams {
        query_ids: QueryIds::Ordinal,
        doc_id_prefix: "CACM-".into(),
        ..params("docs.all", "q.qry", "qrels")
    };
    let err = ingest(&p, dir.path()).err().unwrap().to_string();
    assert!(
        err.ends_with("qrels:1: qrel for unknown doc \"1\": expected a doc id of the corpus (with its id prefix, if any)"),
        "{err}"
    );
    // A malformed record.
    std::fs::write(dir.path().join("docs.all"), ".I 1\n.W\nx\n.I one\n.W\ny\n").unwrap();
    let err = ingest(&params("docs.all", "q.qry", "qrels"), dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.ends_with("docs.all:4: expected \".I <number>\" starting a document, found \".I one\""),
        "{err}"
    );
    // Params.
    for (p, want) in [
        (params("", "q", "r"), "param corpus is required"),
        (params("c", "q", ""), "param qrels is required"),
        (
            SmartParams {
                doc_id_prefix: "A B".into(),
                ..params("c", "q", "r")
            },
            "param doc_id_prefix must not contain whitespace",
        ),
    ] {
        assert_eq!(IngestSmart::check(&p).unwrap_err(), want);
    }
    let p: SmartParams =
        serde_json::from_str(r#"{"corpus": "c", "queries": "q", "qrels": "r"}"#).unwrap();
    assert_eq!(
        (p.query_ids, p.qrels_format, p.doc_id_prefix.as_str()),
        (QueryIds::Field, SmartQrels::Auto, "")
    );
    assert!(serde_json::from_str::<SmartParams>(r#"{"query_ids": "position"}"#).is_err());
    assert!(serde_json::from_str::<SmartParams>(r#"{"qrel_format": "trec"}"#).is_err());
}

/// (docs, docs with empty text, queries, judged queries, qrels, grade histogram)
type Counts = (usize, usize, usize, usize, usize, Vec<(i32, usize)>);

fn check_counts(got: &Ingested, want: Counts) {
    let (docs, empty, queries, judged, qrels, histogram) = want;
    assert_eq!(got.docs.len(), docs);
    assert_eq!(got.docs.iter().filter(|d| d.text.is_empty()).count(), empty);
    assert_eq!(got.queries.len(), queries);
    let judged_ids: BTreeSet<&str> = got.qrels.iter().map(|q| q.query_id.as_str()).collect();
    assert_eq!(judged_ids.len(), judged);
    assert_eq!(got.qrels.len(), qrels);
    assert_eq!(grades(&got.qrels), histogram.into_iter().collect());
    assert_eq!(metric(&got.report, "docs"), docs as f64);
    assert_eq!(metric(&got.report, "queries"), queries as f64);
    assert_eq!(metric(&got.report, "judged_queries"), judged as f64);
    assert_eq!(metric(&got.report, "qrels"), qrels as f64);
    assert_eq!(metric(&got.report, "relevant"), qrels as f64);
    assert!(got.queries.iter().all(|q| !q.text.is_empty()));
}

#[test]
fn cranfield() {
    let p = SmartParams {
        query_ids: QueryIds::Ordinal,
        ..params(
            "cranfield/cran.all.1400",
            "cranfield/cran.qry",
            "cranfield/cranqrel",
        )
    };
    let got = ingest(&p, &data_dir()).unwrap();
    // Codes 1/2/3/4 (128/387/734/363 rows) -> grades 4/3/2/1; the 225 code -1 rows -> 1.
    let histogram = vec![(1, 363 + 225), (2, 734), (3, 387), (4, 128)];
    // Docs 471 and 995 are empty records.
    check_counts(&got, (1400, 2, 225, 225, 1837, histogram));
    assert_eq!(got.docs[0].id, "1");
    assert_eq!(
        got.docs[0].title,
        "experimental investigation of the aerodynamics of a wing in a slipstream ."
    );
    assert!(got.docs[0].text.starts_with(
        "experimental investigation of the aerodynamics of a wing in a slipstream . an experimental study"
    ));
    assert!(
        got.docs[0]
            .text
            .ends_with("for the specific configuration of the experiment .")
    );
    assert_eq!(got.docs[1399].id, "1400");
    // Query 3 by position is `.I 004`.
    assert_eq!(got.queries[2].id, "3");
    assert_eq!(
        got.queries[2].text,
        "what problems of heat conduction in composite slabs have been solved so far ."
    );
    assert_eq!(got.queries[224].id, "225");
    // The first judgement and query 1's code -1 row (its source paper).
    let first = &got.qrels[0];
    assert_eq!(
        (
            first.query_id.as_str(),
            first.doc_id.as_str(),
            first.relevance
        ),
        ("1", "184", 3)
    );
    assert!(got.qrels.contains(&Qrel {
        query_id: "1".into(),
        doc_id: "486".into(),
        relevance: 1
    }));

    // With the `.I` numbers as ids, the qrels name queries that do not exist.
    let by_field = SmartParams {
        query_ids: QueryIds::Field,
        ..p
    };
    let err = ingest(&by_field, &data_dir()).err().unwrap().to_string();
    assert!(
        err.contains("cranqrel:") && err.contains("qrel for unknown query"),
        "{err}"
    );
}

#[test]
fn cisi() {
    let p = SmartParams {
        qrels_format: SmartQrels::Cisi,
        ..params("cisi/CISI.ALL", "cisi/CISI.QRY", "cisi/CISI.REL")
    };
    let got = ingest(&p, &data_dir()).unwrap();
    check_counts(&got, (1460, 0, 112, 76, 3114, vec![(1, 3114)]));
    assert_eq!(got.docs[0].id, "1");
    assert_eq!(
        got.docs[0].title,
        "18 Editions of the Dewey Decimal Classifications"
    );
    assert!(
        got.docs[0]
            .text
            .starts_with("The present study is a history of the DEWEY Decimal Classification.")
    );
    assert_eq!(got.docs[1459].id, "1460");
    assert_eq!(got.queries[0].id, "1");
    assert!(
        got.queries[0]
            .text
            .starts_with("What problems and concerns are there in making up descriptive titles?")
    );
    // Queries 58.. are titled abstracts: title first.
    assert!(
        got.queries[57]
            .text
            .starts_with("Directions in Library Networking Bibliographic control")
    );
    assert_eq!(got.queries[111].id, "112");
    // Autodetection agrees.
    let auto = ingest(
        &params("cisi/CISI.ALL", "cisi/CISI.QRY", "cisi/CISI.REL"),
        &data_dir(),
    )
    .unwrap();
    assert_eq!(auto.qrels, got.qrels);
}

#[test]
fn cacm() {
    let p = SmartParams {
        qrels_format: SmartQrels::Trec,
        doc_id_prefix: "CACM-".into(),
        ..params(
            "cacm/cacm.all",
            "cacm/topics.cacm.txt",
            "cacm/qrels.cacm.txt",
        )
    };
    let got = ingest(&p, &data_dir()).unwrap();
    // 1617 of the 3204 records have no `.W` abstract, only a title.
    check_counts(&got, (3204, 1617, 64, 52, 796, vec![(1, 796)]));
    assert_eq!(got.docs[0].id, "CACM-1");
    assert_eq!(
        got.docs[0].title,
        "Preliminary Report-International Algebraic Language"
    );
    assert_eq!(got.docs[3203].id, "CACM-3204");
    let d1410 = &got.docs[1409];
    assert_eq!(d1410.id, "CACM-1410");
    assert_eq!(
        d1410.title,
        "Interarrival Statistics for Time Sharing Systems"
    );
    assert!(
        d1410
            .text
            .starts_with("The optimization of time-shared system performance requires")
    );
    assert_eq!(got.queries[0].id, "1");
    assert_eq!(
        got.queries[0].text,
        "What articles exist which deal with TSS (Time Sharing System), an operating system for IBM computers?"
    );
    assert_eq!(got.queries[63].id, "64");
    let first = &got.qrels[0];
    assert_eq!(
        (
            first.query_id.as_str(),
            first.doc_id.as_str(),
            first.relevance
        ),
        ("1", "CACM-1410", 1)
    );
    // Without the prefix, the qrels' doc ids are unknown.
    let err = ingest(
        &SmartParams {
            doc_id_prefix: String::new(),
            ..p
        },
        &data_dir(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("qrels.cacm.txt:1: qrel for unknown doc \"CACM-1410\""),
        "{err}"
    );
}

/// Runs `qrels.hide` on `qrels`; returns the report, visible and hidden rows.
fn hide(
    params: &HideParams,
    qrels: Vec<Qrel>,
    seed: u64,
) -> Result<(StageReport, Vec<Qrel>, Vec<Qrel>)> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("qrels.parquet");
    write_rows(&input, qrels)?;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let report = run_stage::<QrelsHide>(params, dir.path(), &out, &[("qrels", input)], seed)?;
    Ok((
        report,
        read_rows(&out.join("visible.parquet"))?,
        read_rows(&out.join("hidden.parquet"))?,
    ))
}

#[test]
fn hide_stage_on_cranfield_qrels() {
    let p = SmartParams {
        query_ids: QueryIds::Ordinal,
        ..params(
            "cranfield/cran.all.1400",
            "cranfield/cran.qry",
            "cranfield/cranqrel",
        )
    };
    let qrels = ingest(&p, &data_dir()).unwrap().qrels;
    let params = HideParams::default();
    let (report, visible, hidden) = hide(&params, qrels.clone(), 13).unwrap();
    // Per query floor(n / 2) of n relevant (all 1837 rows are relevant; every query has >= 2).
    let mut per_query: BTreeMap<&str, usize> = BTreeMap::new();
    for q in &qrels {
        *per_query.entry(&q.query_id).or_default() += 1;
    }
    let want_hidden: usize = per_query.values().map(|n| n / 2).sum();
    assert_eq!(hidden.len(), want_hidden);
    assert_eq!(visible.len() + hidden.len(), qrels.len());
    let want: BTreeMap<String, f64> = [
        ("queries", 225.0),
        ("relevant", 1837.0),
        ("hidden", want_hidden as f64),
        ("visible", (1837 - want_hidden) as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(report.metrics, want);
    let key = |q: &Qrel| (q.query_id.clone(), q.doc_id.clone());
    let v: BTreeSet<_> = visible.iter().map(key).collect();
    let h: BTreeSet<_> = hidden.iter().map(key).collect();
    assert!(v.is_disjoint(&h));
    assert_eq!(v.union(&h).count(), qrels.len());
    // Every query keeps at least one visible relevant judgement.
    let visible_queries: BTreeSet<&str> = visible.iter().map(|q| q.query_id.as_str()).collect();
    assert_eq!(visible_queries.len(), 225);

    // Same seed, shuffled input: same split; another seed: another one.
    let mut reordered = qrels.clone();
    reordered.reverse();
    let (_, _, again) = hide(&params, reordered, 13).unwrap();
    assert_eq!(again.iter().map(key).collect::<BTreeSet<_>>(), h);
    let (_, _, other) = hide(&params, qrels.clone(), 14).unwrap();
    assert_ne!(other.iter().map(key).collect::<BTreeSet<_>>(), h);

    // Nothing to hide: an empty hidden artifact.
    let none = HideParams {
        fraction: 0.0,
        ..HideParams::default()
    };
    let (report, visible, hidden) = hide(&none, qrels.clone(), 13).unwrap();
    assert_eq!((visible.len(), hidden.len()), (qrels.len(), 0));
    assert_eq!(report.metrics["hidden"], 0.0);
}

#[test]
fn hide_params() {
    let p: HideParams = serde_json::from_str("{}").unwrap();
    assert_eq!(
        (p.fraction, p.min_visible, p.relevance_threshold),
        (0.5, 1, 1)
    );
    assert!(serde_json::from_str::<HideParams>(r#"{"fraction": 0.5, "seed": 1}"#).is_err());
    for (p, want) in [
        (
            HideParams {
                fraction: 1.5,
                ..HideParams::default()
            },
            "param fraction must be in [0, 1], found 1.5",
        ),
        (
            HideParams {
                fraction: -0.1,
                ..HideParams::default()
            },
            "param fraction must be in [0, 1], found -0.1",
        ),
        (
            HideParams {
                fraction: f64::NAN,
                ..HideParams::default()
            },
            "param fraction must be in [0, 1], found NaN",
        ),
        (
            HideParams {
                relevance_threshold: 0,
                ..HideParams::default()
            },
            "param relevance_threshold must be >= 1 (grades <= 0 are non-relevant), found 0",
        ),
    ] {
        assert_eq!(QrelsHide::check(&p).unwrap_err(), want);
    }
    assert!(
        QrelsHide::check(&HideParams {
            fraction: 1.0,
            ..HideParams::default()
        })
        .is_ok()
    );
    const { assert!(QrelsHide::SEEDED) };
}

/// Not a SMART collection, but the same stage harness: DPR files list some contexts twice
/// (within a list, or as positive and hard negative); `ingest.dpr` judges each once, the
/// positive grade winning (python over the JSON: 501 distinct judged pairs, 18 positive).
#[test]
fn dpr_judges_each_context_once() {
    let out = tempfile::tempdir().unwrap();
    let params = rrra_ingest::stages::DprParams {
        path: data_dir()
            .join("nq-triviaqa-dpr/biencoder-nq-dev.sample5.json")
            .into(),
    };
    run_stage::<rrra_ingest::stages::IngestDpr>(&params, &data_dir(), out.path(), &[], 0).unwrap();
    let qrels: Vec<Qrel> = read_rows(&out.path().join("qrels.parquet")).unwrap();
    let pairs: BTreeSet<(&str, &str)> = qrels
        .iter()
        .map(|q| (q.query_id.as_str(), q.doc_id.as_str()))
        .collect();
    assert_eq!((qrels.len(), pairs.len()), (501, 501));
    assert_eq!(qrels.iter().filter(|q| q.relevance == 1).count(), 18);
}
