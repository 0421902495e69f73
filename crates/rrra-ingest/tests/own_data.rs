//! A user's own data: TREC SGML documents and topics, generic tables with a field mapping,
//! training pairs, DPR's psgs_w100.tsv, gzip and byte-order marks on every text reader, and
//! inputs downloaded from a local HTTP server (127.0.0.1, started inside the test).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rrra_common::artifact::read_rows;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::stage::{Stage, StageReport};
use rrra_common::{Error, Result};
use rrra_ingest::stages::{
    BeirParams, CorpusFormat, CorpusParams, IngestBeir, IngestCorpus, IngestPairs, IngestQueries,
    IngestTrec, PairsParams, QueriesParams, QueryFormat, TrecParams, UnknownDocs,
};
use rrra_ingest::{
    DocFields, IdIndex, PairFields, QrelFields, QueryFields, Remote, SgmlTags, Source, Table,
    TableFormat, TextEncoding, TopicField, read_beir_corpus, read_dpr_biencoder,
    read_mapped_corpus, read_mapped_qrels, read_mapped_queries, read_msmarco_collection,
    read_psgs_w100, read_qrels, read_trec_docs, read_trec_topics,
};
use rrra_testkit::StageRun;
use tempfile::TempDir;

fn write(dir: &TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn collect<T>(read: impl FnOnce(&mut dyn FnMut(T) -> Result<()>) -> Result<u64>) -> Vec<T> {
    let mut out = Vec::new();
    let n = read(&mut |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

fn error<T>(read: impl FnOnce(&mut dyn FnMut(T) -> Result<()>) -> Result<u64>) -> String {
    read(&mut |_| Ok(())).unwrap_err().to_string()
}

fn doc(id: &str, title: &str, text: &str) -> Doc {
    Doc {
        id: id.into(),
        title: title.into(),
        text: text.into(),
    }
}

fn query(id: &str, text: &str) -> Query {
    Query {
        id: id.into(),
        text: text.into(),
        answers: None,
    }
}

fn qrel(q: &str, d: &str, relevance: i32) -> Qrel {
    Qrel {
        query_id: q.into(),
        doc_id: d.into(),
        relevance,
    }
}

fn shared() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).to_path_buf()
}

fn repo_data() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")).to_path_buf()
}

/// Runs stage `S` with relative paths against `base`, outputs and cache in `out`.
fn run_stage<S: Stage>(params: &S::Params, base: &Path, out: &Path) -> Result<StageReport> {
    StageRun::in_dir(out).base_dir(base).run::<S>(params)
}

// ---------------------------------------------------------------- TREC SGML

const SGML: &str = "<DOC>\n<DOCNO> FT911-1 </DOCNO>\n<PROFILE>_AN-BEOA7AAIFT</PROFILE>\n\
<HEADLINE>\nFT  14 MAY 91 / Costs &amp; prices\n</HEADLINE>\n<TEXT>\n<P>\nFirst paragraph of\n  the text.\n</P>\n\n<P>\nAT&amp;T &lt;said&gt; &hyph; 1 < 2.\n</P>\n</TEXT>\n</DOC>\n\
<doc><docno>LA010189-0001</docno><headline><P>Two</P> titles</headline>\n\
<text>inline <F P=102>markup</F> here</text></doc>\n\
<DOC>\n<DOCNO>3</DOCNO>\ncompact memories have flexible capacities\n</DOC>\n";

#[test]
fn trec_sgml_documents() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "fr.sgml", SGML.as_bytes());
    let mut ids = IdIndex::new();
    let docs = collect(|s| {
        read_trec_docs(
            &path,
            &SgmlTags::default(),
            TextEncoding::Utf8,
            Some(&mut ids),
            s,
        )
    });
    assert_eq!(
        docs,
        vec![
            doc(
                "FT911-1",
                "FT 14 MAY 91 / Costs & prices",
                "First paragraph of\nthe text.\nAT&T <said> &hyph; 1 < 2."
            ),
            doc("LA010189-0001", "Two titles", "inline markup here"),
            // NPL's TREC release: no <TEXT>, the text follows <DOCNO>.
            doc("3", "", "compact memories have flexible capacities"),
        ]
    );
    assert_eq!(ids.len(), 3);
    // Other title and text elements by param.
    let tags = SgmlTags {
        title: vec!["profile".into()],
        text: vec!["HEADLINE".into()],
    };
    let first = collect(|s| read_trec_docs(&path, &tags, TextEncoding::Utf8, None, s)).remove(0);
    assert_eq!(
        first,
        doc("FT911-1", "_AN-BEOA7AAIFT", "FT 14 MAY 91 / Costs & prices")
    );
}

#[test]
fn trec_sgml_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "stray text\n<DOC><DOCNO>1</DOCNO></DOC>\n",
            ":1: expected <DOC> to start a document, found text \"stray text\"",
        ),
        (
            "<DOC>\n<TEXT>x</TEXT>\n</DOC>\n",
            ":3: expected a <DOCNO> in the document opened at line 1",
        ),
        (
            "<DOC><DOCNO>1</DOCNO>\n<DOC>\n",
            ":2: expected </DOC> before the next <DOC>",
        ),
        (
            "<DOC><DOCNO>1</DOCNO>\ntext\n",
            "the file ends inside the document opened at line 1",
        ),
        (
            "<DOC><DOCNO>1</DOCNO></DOC>\n<DOC><DOCNO>1</DOCNO></DOC>\n",
            ":2: duplicate doc id \"1\"",
        ),
        (
            "<DOC><DOCNO>a b</DOCNO></DOC>\n",
            ":1: expected a non-empty DOCNO without spaces",
        ),
        ("\n\n", "empty file: expected at least one <DOC> document"),
    ];
    for (i, (content, want)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("bad{i}"), content.as_bytes());
        let msg = error(|s| {
            read_trec_docs(
                &path,
                &SgmlTags::default(),
                TextEncoding::Utf8,
                Some(&mut IdIndex::new()),
                s,
            )
        });
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains(want), "case {i}: {msg:?} lacks {want:?}");
    }
}

const TOPICS: &str = "<top>\n<num> Number: 301\n<title> International Organized Crime\n\n\
<desc> Description:\nIdentify organizations that participate in\ninternational criminal activity.\n\n\
<narr> Narrative:\nA relevant document must name the organization.\n</top>\n\n\
<top>\n<num> Number: 051 </num>\n<title> Topic: Airbus Subsidies </title>\n<desc> Description: Document will discuss government assistance.\n</desc>\n<narr> Narrative: x\n</top>\n";

#[test]
fn trec_topics_with_chosen_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "topics.301", TOPICS.as_bytes());
    let titles = collect(|s| read_trec_topics(&path, &[TopicField::Title], None, s));
    assert_eq!(
        titles,
        vec![
            query("301", "International Organized Crime"),
            query("51", "Airbus Subsidies")
        ]
    );
    let both = collect(|s| {
        read_trec_topics(
            &path,
            &[TopicField::Title, TopicField::Desc],
            Some(&mut IdIndex::new()),
            s,
        )
    });
    assert_eq!(
        both[0].text,
        "International Organized Crime Identify organizations that participate in international criminal activity."
    );
    assert_eq!(
        both[1].text,
        "Airbus Subsidies Document will discuss government assistance."
    );
    let narr = collect(|s| read_trec_topics(&path, &[TopicField::Narr], None, s));
    assert_eq!(
        narr[0].text,
        "A relevant document must name the organization."
    );

    let no_desc = write(&dir, "t2", b"<top>\n<num> Number: 7\n<title> t\n</top>\n");
    let msg = error(|s| read_trec_topics(&no_desc, &[TopicField::Desc], None, s));
    assert!(
        msg.contains(":1: topic 7: expected a non-empty <desc>"),
        "{msg}"
    );
    let open = write(&dir, "t3", b"<top>\n<num> Number: 7\n<title> t\n");
    let msg = error(|s| read_trec_topics(&open, &[TopicField::Title], None, s));
    assert!(
        msg.contains("ends inside the topic opened at line 1"),
        "{msg}"
    );
}

#[test]
fn trec_stage_reads_a_folder_of_documents_topics_and_qrels() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docs/ft")).unwrap();
    write(&dir, "docs/ft/ft911", SGML.as_bytes());
    // A second file, gzip-compressed, in another sub-folder, and a hidden file ignored.
    std::fs::create_dir_all(dir.path().join("docs/la")).unwrap();
    write(
        &dir,
        "docs/la/la.gz",
        &gzip(b"<DOC><DOCNO>LA-2</DOCNO><TEXT>la text</TEXT></DOC>\n"),
    );
    write(&dir, "docs/.DS_Store", b"\x00\x01");
    write(&dir, "topics", TOPICS.as_bytes());
    write(&dir, "qrels", b"301 0 FT911-1 1\n301 0 3 0\n51 0 LA-2 2\n");
    let p = TrecParams {
        docs: "docs".into(),
        topics: "topics".into(),
        qrels: "qrels".into(),
        topic_fields: vec![TopicField::Title, TopicField::Desc],
        ..TrecParams::default()
    };
    assert!(IngestTrec::check(&p).is_ok());
    let out = tempfile::tempdir().unwrap();
    let report = run_stage::<IngestTrec>(&p, dir.path(), out.path()).unwrap();
    assert_eq!(report.metrics["docs"], 4.0);
    assert_eq!(report.metrics["files"], 2.0);
    let corpus: Vec<Doc> = read_rows(&out.path().join("corpus.parquet")).unwrap();
    let ids: Vec<&str> = corpus.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["FT911-1", "LA010189-0001", "3", "LA-2"]);
    let queries: Vec<Query> = read_rows(&out.path().join("queries.parquet")).unwrap();
    assert_eq!(queries.len(), 2);
    let qrels: Vec<Qrel> = read_rows(&out.path().join("qrels.parquet")).unwrap();
    assert_eq!(qrels[2], qrel("51", "LA-2", 2));

    // A judgement of a document the files lack is refused, naming the qrels line.
    write(&dir, "qrels", b"301 0 FT911-1 1\n301 0 NOPE 1\n");
    let err = run_stage::<IngestTrec>(&p, dir.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("qrels:2: qrel for unknown doc \"NOPE\""),
        "{err}"
    );
}

// ---------------------------------------------------------------- generic tables

#[test]
fn mapped_jsonl_csv_and_tsv() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        &dir,
        "docs.jsonl",
        b"{\"doc\": 12, \"body\": \"a\", \"head\": \"T\", \"meta\": {\"deep\": [1, {\"x\": 2}]}}\n\n{\"doc\": \"d2\", \"body\": \"b\", \"head\": null}\n",
    );
    let fields = DocFields {
        id: "doc".into(),
        text: "body".into(),
        title: Some("head".into()),
    };
    let jsonl_table = Table {
        format: TableFormat::Jsonl,
        header: true,
    };
    let docs = collect(|s| read_mapped_corpus(&jsonl, jsonl_table, &fields, None, s));
    assert_eq!(docs, vec![doc("12", "T", "a"), doc("d2", "", "b")]);

    // CSV: quoted fields with commas, doubled quotes and a line break; \r\n endings.
    let csv = write(
        &dir,
        "docs.csv",
        b"id,title,text\r\n1,\"A, B\",\"say \"\"hi\"\"\nagain\"\r\n2,,plain\r\n",
    );
    let csv_table = Table {
        format: TableFormat::Csv,
        header: true,
    };
    let fields = DocFields {
        title: Some("title".into()),
        ..DocFields::default()
    };
    let docs = collect(|s| read_mapped_corpus(&csv, csv_table, &fields, None, s));
    assert_eq!(
        docs,
        vec![doc("1", "A, B", "say \"hi\"\nagain"), doc("2", "", "plain")]
    );

    // TSV without header: 1-based column numbers; quotes are text.
    let tsv = write(&dir, "q.tsv", b"q1\t\"quoted\" text\nq2\tother\n");
    let fields = QueryFields {
        id: "1".into(),
        text: "2".into(),
    };
    let tsv_table = Table {
        format: TableFormat::Tsv,
        header: false,
    };
    let queries = collect(|s| read_mapped_queries(&tsv, tsv_table, &fields, None, s));
    assert_eq!(
        queries,
        vec![query("q1", "\"quoted\" text"), query("q2", "other")]
    );

    // Qrels without a relevance column: every pair is relevant.
    let qrels_file = write(&dir, "qrels.jsonl", b"{\"q\": \"q1\", \"d\": 1}\n");
    let fields = QrelFields {
        query_id: "q".into(),
        doc_id: "d".into(),
        relevance: None,
    };
    let qrels = collect(|s| read_mapped_qrels(&qrels_file, jsonl_table, &fields, None, s));
    assert_eq!(qrels, vec![qrel("q1", "1", 1)]);
}

#[test]
fn mapped_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let table = |format| Table {
        format,
        header: true,
    };
    let jsonl = write(
        &dir,
        "a.jsonl",
        b"{\"id\": \"1\", \"text\": \"x\"}\n{\"id\": \"2\"}\n",
    );
    let msg = error(|s| {
        read_mapped_corpus(
            &jsonl,
            table(TableFormat::Jsonl),
            &DocFields::default(),
            None,
            s,
        )
    });
    assert!(
        msg.ends_with("a.jsonl:2: expected field \"text\" (a string), found none"),
        "{msg}"
    );
    let jsonl = write(&dir, "b.jsonl", b"[1, 2]\n");
    let msg = error(|s| {
        read_mapped_corpus(
            &jsonl,
            table(TableFormat::Jsonl),
            &DocFields::default(),
            None,
            s,
        )
    });
    assert!(msg.contains("b.jsonl:1: expected a JSON object"), "{msg}");
    let csv = write(&dir, "c.csv", b"id,body\n1,x\n");
    let msg = error(|s| {
        read_mapped_corpus(
            &csv,
            table(TableFormat::Csv),
            &DocFields::default(),
            None,
            s,
        )
    });
    assert!(
        msg.contains("c.csv:1: expected a column \"text\"; the file has [\"id\", \"body\"]"),
        "{msg}"
    );
    let csv = write(&dir, "d.csv", b"id,text\n1,x\n2,y,z\n");
    let msg = error(|s| {
        read_mapped_corpus(
            &csv,
            table(TableFormat::Csv),
            &DocFields::default(),
            None,
            s,
        )
    });
    assert!(
        msg.contains("d.csv:3: expected 2 fields as in the header, found 3"),
        "{msg}"
    );
    let qrels = write(&dir, "q.tsv", b"query_id\tdoc_id\trelevance\nq\td\thigh\n");
    let msg = error(|s| {
        read_mapped_qrels(
            &qrels,
            table(TableFormat::Tsv),
            &QrelFields::default(),
            None,
            s,
        )
    });
    assert!(
        msg.contains("q.tsv:2: expected field \"relevance\" (an integer relevance)"),
        "{msg}"
    );
    let dup = write(
        &dir,
        "e.jsonl",
        b"{\"id\": 1, \"text\": \"x\"}\n{\"id\": \"1\", \"text\": \"y\"}\n",
    );
    let msg = error(|s| {
        read_mapped_corpus(
            &dup,
            table(TableFormat::Jsonl),
            &DocFields::default(),
            Some(&mut IdIndex::new()),
            s,
        )
    });
    assert!(msg.contains("e.jsonl:2: duplicate doc id \"1\""), "{msg}");
}

#[test]
fn mapped_parquet_of_any_column_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("pid", DataType::Int64, false),
        Field::new("passage", DataType::Utf8, true),
        Field::new("ignored", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![7, 8])),
            Arc::new(StringArray::from(vec![Some("seven"), None])),
            Arc::new(StringArray::from(vec!["x", "y"])),
        ],
    )
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let fields = DocFields {
        id: "pid".into(),
        text: "passage".into(),
        title: None,
    };
    let table = Table {
        format: TableFormat::Parquet,
        header: true,
    };
    let mut got = Vec::new();
    let err = read_mapped_corpus(&path, table, &fields, None, |d| {
        got.push(d);
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(got, vec![doc("7", "", "seven")]);
    assert!(
        err.ends_with("docs.parquet:2: expected field \"passage\" (a string), found none"),
        "{err}"
    );
}

// ---------------------------------------------------------------- pairs

#[test]
fn pairs_give_queries_a_corpus_and_qrels() {
    let dir = tempfile::tempdir().unwrap();
    // FlagEmbedding layout: lists of positives and negatives; the second record repeats
    // the query and lists as negative a passage that was positive: the positive wins.
    write(
        &dir,
        "pairs.jsonl",
        "{\"query\": \"what is rust\", \"pos\": [\"a language\"], \"neg\": [\"a fungus\", \"oxide\"]}\n\
         {\"query\": \"what is rust\", \"pos\": \"oxide\", \"neg\": [\"a language\"]}\n\
         {\"query\": \"é\", \"pos\": [\"accent\"]}\n"
            .as_bytes(),
    );
    let p = PairsParams {
        path: "pairs.jsonl".into(),
        fields: PairFields {
            positive: "pos".into(),
            negative: Some("neg".into()),
            ..PairFields::default()
        },
        ..PairsParams::default()
    };
    let out = tempfile::tempdir().unwrap();
    let report = run_stage::<IngestPairs>(&p, dir.path(), out.path()).unwrap();
    let queries: Vec<Query> = read_rows(&out.path().join("queries.parquet")).unwrap();
    let corpus: Vec<Doc> = read_rows(&out.path().join("corpus.parquet")).unwrap();
    let qrels: Vec<Qrel> = read_rows(&out.path().join("qrels.parquet")).unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0].text, "what is rust");
    assert!(
        queries[0].id.starts_with("q:") && queries[0].id.len() == 34,
        "{}",
        queries[0].id
    );
    let texts: Vec<&str> = corpus.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["a language", "a fungus", "oxide", "accent"]);
    let id = |text: &str| corpus.iter().find(|d| d.text == text).unwrap().id.clone();
    assert_eq!(
        id("oxide"),
        rrra_ingest::DprContext::content_id("", "oxide")
    );
    let q0 = &queries[0].id;
    assert_eq!(
        qrels,
        vec![
            qrel(q0, &id("a language"), 1),
            qrel(q0, &id("a fungus"), 0),
            qrel(q0, &id("oxide"), 1),
            qrel(&queries[1].id, &id("accent"), 1),
        ]
    );
    assert_eq!(report.metrics["positives"], 3.0);
    assert_eq!(report.metrics["records"], 3.0);

    // The same file read again gives the same ids (they come from the text).
    let again = tempfile::tempdir().unwrap();
    run_stage::<IngestPairs>(&p, dir.path(), again.path()).unwrap();
    let corpus2: Vec<Doc> = read_rows(&again.path().join("corpus.parquet")).unwrap();
    assert_eq!(corpus, corpus2);
}

#[test]
fn pairs_from_headerless_tsv_and_with_given_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "triples.tsv",
        b"q one\tp one\tn one\nq two\tp two\tn one\n",
    );
    let p = PairsParams {
        path: "triples.tsv".into(),
        format: TableFormat::Tsv,
        header: false,
        fields: PairFields {
            query: "1".into(),
            positive: "2".into(),
            negative: Some("3".into()),
            ..PairFields::default()
        },
    };
    let out = tempfile::tempdir().unwrap();
    run_stage::<IngestPairs>(&p, dir.path(), out.path()).unwrap();
    let corpus: Vec<Doc> = read_rows(&out.path().join("corpus.parquet")).unwrap();
    assert_eq!(corpus.len(), 3, "n one is written once");
    let qrels: Vec<Qrel> = read_rows(&out.path().join("qrels.parquet")).unwrap();
    assert_eq!(qrels.len(), 4);

    write(
        &dir,
        "ids.jsonl",
        b"{\"qid\": 1, \"query\": \"q\", \"pid\": [10], \"positive\": [\"p\"]}\n{\"qid\": 2, \"query\": \"r\", \"pid\": [10], \"positive\": [\"other text\"]}\n",
    );
    let p = PairsParams {
        path: "ids.jsonl".into(),
        fields: PairFields {
            query_id: Some("qid".into()),
            positive_id: Some("pid".into()),
            ..PairFields::default()
        },
        ..PairsParams::default()
    };
    let err = run_stage::<IngestPairs>(&p, dir.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ids.jsonl:2: document id \"10\" appears with two different texts"),
        "{err}"
    );
}

// ---------------------------------------------------------------- psgs_w100, gzip, BOM

const PSGS: &str = "id\ttext\ttitle\n\
1\t\"Aaron Aaron ( or ; \"\"Ahärôn\"\") is a prophet\"\tAaron\n\
2\tplain text, no quotes\t\"Title \"\"quoted\"\"\"\n";

#[test]
fn psgs_w100_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(&dir, "psgs_w100.tsv", PSGS.as_bytes());
    let gz = write(&dir, "psgs_w100.tsv.gz", &gzip(PSGS.as_bytes()));
    let want = vec![
        doc("1", "Aaron", "Aaron Aaron ( or ; \"Ahärôn\") is a prophet"),
        doc("2", "Title \"quoted\"", "plain text, no quotes"),
    ];
    for path in [&plain, &gz] {
        let mut ids = IdIndex::new();
        assert_eq!(collect(|s| read_psgs_w100(path, Some(&mut ids), s)), want);
    }
    let headerless = write(&dir, "nohead.tsv", b"1\ttext\ttitle\n");
    let msg = error(|s| read_psgs_w100(&headerless, None, s));
    assert!(
        msg.contains("nohead.tsv:1: expected the header line"),
        "{msg}"
    );
    let short = write(&dir, "short.tsv", b"id\ttext\ttitle\n1\tonly text\n");
    let msg = error(|s| read_psgs_w100(&short, None, s));
    assert!(
        msg.contains("short.tsv:2: expected 3 tab-separated fields (id, text, title), found 2"),
        "{msg}"
    );

    // Through the stage, from the .gz.
    let p = CorpusParams {
        path: "psgs_w100.tsv.gz".into(),
        format: CorpusFormat::PsgsW100,
        ..CorpusParams::default()
    };
    let out = tempfile::tempdir().unwrap();
    run_stage::<IngestCorpus>(&p, dir.path(), out.path()).unwrap();
    assert_eq!(
        read_rows::<Doc>(&out.path().join("corpus.parquet")).unwrap(),
        want
    );
}

#[test]
fn gzip_inputs_read_like_plain_ones() {
    // The shipped MS MARCO sample and SciFact corpus, compressed.
    let dir = tempfile::tempdir().unwrap();
    let collection = shared().join("msmarco-passage-dl19-sample/collection.tsv");
    let gz = write(
        &dir,
        "collection.tsv.gz",
        &gzip(&std::fs::read(&collection).unwrap()),
    );
    let plain = collect(|s| read_msmarco_collection(&collection, None, s));
    assert!(plain.len() > 1000);
    assert_eq!(collect(|s| read_msmarco_collection(&gz, None, s)), plain);
    let corpus = repo_data().join("scifact/corpus.jsonl");
    let gz = write(
        &dir,
        "corpus.jsonl.gz",
        &gzip(&std::fs::read(&corpus).unwrap()),
    );
    assert_eq!(
        collect(|s| read_beir_corpus(&gz, None, s)),
        collect(|s| read_beir_corpus(&corpus, None, s))
    );
    // Two concatenated gzip members read as one stream; a corrupt one names the file.
    let mut two = gzip(b"1\tone\n");
    two.extend(gzip(b"2\ttwo\n"));
    let two = write(&dir, "two.gz", &two);
    assert_eq!(collect(|s| read_msmarco_collection(&two, None, s)).len(), 2);
    let mut bad = gzip(b"1\tone\n2\ttwo\n");
    bad.truncate(bad.len() - 12);
    let bad = write(&dir, "bad.gz", &bad);
    let msg = error(|s| read_msmarco_collection(&bad, None, s));
    assert!(msg.starts_with(&bad.display().to_string()), "{msg}");
}

#[test]
fn a_leading_byte_order_mark_is_skipped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let bom = |s: &str| [b"\xEF\xBB\xBF".as_slice(), s.as_bytes()].concat();
    let jsonl = write(&dir, "c.jsonl", &bom("{\"_id\": \"1\", \"text\": \"x\"}\n"));
    assert_eq!(
        collect(|s| read_beir_corpus(&jsonl, None, s)),
        vec![doc("1", "", "x")]
    );
    let tsv = write(&dir, "c.tsv", &bom("7\tseven\n"));
    assert_eq!(
        collect(|s| read_msmarco_collection(&tsv, None, s))[0].id,
        "7"
    );
    let qrels = write(&dir, "q.tsv", &bom("query-id\tcorpus-id\tscore\nq\t7\t1\n"));
    assert_eq!(
        collect(|s| read_qrels(&qrels, None, s)),
        vec![qrel("q", "7", 1)]
    );
    let gz = write(&dir, "c.tsv.gz", &gzip(&bom("8\teight\n")));
    assert_eq!(
        collect(|s| read_msmarco_collection(&gz, None, s))[0].id,
        "8"
    );
    let psgs = write(&dir, "p.tsv", &bom(PSGS));
    assert_eq!(collect(|s| read_psgs_w100(&psgs, None, s)).len(), 2);
    let sgml = write(&dir, "d.sgml", &bom("<DOC><DOCNO>1</DOCNO>x</DOC>\n"));
    assert_eq!(
        collect(|s| read_trec_docs(&sgml, &SgmlTags::default(), TextEncoding::Utf8, None, s)).len(),
        1
    );
    let csv = write(&dir, "d.csv", &bom("id,text\n1,x\n"));
    let table = Table {
        format: TableFormat::Csv,
        header: true,
    };
    assert_eq!(
        collect(|s| read_mapped_corpus(&csv, table, &DocFields::default(), None, s)),
        vec![doc("1", "", "x")]
    );
    let dpr = write(
        &dir,
        "dpr.json",
        &bom(
            "[{\"question\": \"q\", \"answers\": [\"a\"], \"positive_ctxs\": [{\"passage_id\": \"1\", \"title\": \"\", \"text\": \"t\"}]}]",
        ),
    );
    assert_eq!(collect(|s| read_dpr_biencoder(&dpr, s)).len(), 1);
    // A BOM later in the file is text like any other character.
    let mid = write(&dir, "m.tsv", "1\tone\n\u{feff}2\ttwo\n".as_bytes());
    assert_eq!(
        collect(|s| read_msmarco_collection(&mid, None, s))[1].id,
        "\u{feff}2"
    );
}

// ---------------------------------------------------------------- downloads

/// Serves `files` over HTTP/1.1 on 127.0.0.1 (whole bodies, no ranges) and counts requests.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = first.split_whitespace().nth(1).unwrap_or("");
            let body = files
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone());
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (base, hits)
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, bytes).unwrap();
    rrra_fetch::hash_file(&f).unwrap().sha256
}

fn remote(url: String, sha256: Option<String>, member: Option<&str>) -> Source {
    Source::Remote(Remote {
        url: Some(url),
        sha256,
        member: member.map(str::to_string),
        ..Remote::default()
    })
}

#[test]
fn stages_read_downloads_and_archive_members() {
    // A BEIR folder in a .tar.gz, a psgs_w100 .gz and a TREC topics file, over HTTP.
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "mini/corpus.jsonl",
            "{\"_id\": \"d1\", \"title\": \"\", \"text\": \"one\"}\n{\"_id\": \"d2\", \"text\": \"two\"}\n",
        ),
        (
            "mini/queries.jsonl",
            "{\"_id\": \"q1\", \"text\": \"first\"}\n",
        ),
        (
            "mini/qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\td2\t1\n",
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_bytes()).unwrap();
    }
    let tgz = gzip(&tar.into_inner().unwrap());
    let psgs = gzip(PSGS.as_bytes());
    let (base, hits) = serve(vec![
        ("/beir/mini.tar.gz", tgz.clone()),
        ("/dpr/psgs_w100.tsv.gz", psgs.clone()),
        ("/topics.txt", TOPICS.as_bytes().to_vec()),
    ]);
    let out = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();

    let beir = BeirParams {
        path: remote(
            format!("{base}/beir/mini.tar.gz"),
            Some(sha256(&tgz)),
            Some("mini"),
        ),
        ..BeirParams::default()
    };
    assert!(IngestBeir::check(&beir).is_ok());
    assert!(
        IngestBeir::sources(&beir).is_empty(),
        "the pinned hash is the key, not a file"
    );
    let report = run_stage::<IngestBeir>(&beir, elsewhere.path(), out.path()).unwrap();
    assert_eq!(
        (report.metrics["docs"], report.metrics["qrels"]),
        (2.0, 1.0)
    );

    let corpus = CorpusParams {
        path: remote(
            format!("{base}/dpr/psgs_w100.tsv.gz"),
            Some(sha256(&psgs)),
            None,
        ),
        format: CorpusFormat::PsgsW100,
        ..CorpusParams::default()
    };
    run_stage::<IngestCorpus>(&corpus, elsewhere.path(), out.path()).unwrap();
    assert_eq!(
        read_rows::<Doc>(&out.path().join("corpus.parquet"))
            .unwrap()
            .len(),
        2
    );
    // Run again: served from <cache>/downloads, no new request.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    run_stage::<IngestCorpus>(&corpus, elsewhere.path(), out.path()).unwrap();
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
    let downloads = out.path().join("cache/downloads");
    assert!(downloads.join(format!("sha256-{}", sha256(&psgs))).is_dir());

    // A wrong hash: a clear error, and nothing of it in the cache.
    let wrong = QueriesParams {
        path: remote(format!("{base}/topics.txt"), Some("0".repeat(64)), None),
        format: QueryFormat::TrecTopics,
        ..QueriesParams::default()
    };
    let err = run_stage::<IngestQueries>(&wrong, elsewhere.path(), out.path()).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("/topics.txt")
            && msg.contains(&"0".repeat(64))
            && msg.contains(&sha256(TOPICS.as_bytes())),
        "{msg}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");

    // A member the archive lacks is named, with what the archive holds.
    let missing = BeirParams {
        path: remote(
            format!("{base}/beir/mini.tar.gz"),
            Some(sha256(&tgz)),
            Some("maxi"),
        ),
        ..BeirParams::default()
    };
    let msg = run_stage::<IngestBeir>(&missing, elsewhere.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no member \"maxi\"") && msg.contains("[\"mini\"]"),
        "{msg}"
    );
}

#[test]
fn download_params_are_checked_before_running() {
    let bad = |r: Remote| {
        IngestCorpus::check(&CorpusParams {
            path: Source::Remote(r),
            ..CorpusParams::default()
        })
        .unwrap_err()
    };
    assert!(bad(Remote::default()).contains("give either url or collection"));
    let msg = bad(Remote {
        collection: Some("nope".into()),
        ..Remote::default()
    });
    assert!(
        msg.contains("unknown collection \"nope\"") && msg.contains("beir-scifact"),
        "{msg}"
    );
    let msg = bad(Remote {
        url: Some("https://x/y.zip".into()),
        member: Some("../etc".into()),
        ..Remote::default()
    });
    assert!(msg.contains("must be a relative path"), "{msg}");
    // In YAML a param is a path string or a map; unknown keys are refused.
    let p: CorpusParams = serde_json::from_value(serde_json::json!({
        "path": {"collection": "psgs-w100"}, "format": "psgs_w100"
    }))
    .unwrap();
    assert!(IngestCorpus::check(&p).is_ok());
    assert_eq!(
        serde_json::to_value(&p.path).unwrap(),
        serde_json::json!({"collection": "psgs-w100"})
    );
    let err = serde_json::from_value::<CorpusParams>(serde_json::json!({"path": {"uri": "x"}}))
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `uri`"), "{err}");
    let p: CorpusParams = serde_json::from_value(serde_json::json!({"path": "a/b.tsv"})).unwrap();
    assert_eq!(IngestCorpus::sources(&p), [PathBuf::from("a/b.tsv")]);
}

/// A BEIR folder whose qrels judge a document the corpus lacks (as NFCorpus's train qrels
/// do): `error` names the line, `drop` leaves the judgement out and counts it, `keep` keeps it.
#[test]
fn beir_judgements_of_unknown_documents() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "corpus.jsonl",
        b"{\"_id\": \"d1\", \"title\": \"\", \"text\": \"one\"}\n\
          {\"_id\": \"d2\", \"title\": \"\", \"text\": \"two\"}\n",
    );
    write(
        &dir,
        "queries.jsonl",
        b"{\"_id\": \"q1\", \"text\": \"first\"}\n{\"_id\": \"q2\", \"text\": \"second\"}\n",
    );
    std::fs::create_dir(dir.path().join("qrels")).unwrap();
    write(
        &dir,
        "qrels/train.tsv",
        b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tgone\t2\nq2\tgone\t1\n",
    );
    let params = |unknown_docs| BeirParams {
        path: Source::Path(dir.path().to_path_buf()),
        split: "train".into(),
        unknown_docs,
        ..BeirParams::default()
    };
    let out = tempfile::tempdir().unwrap();

    let err = run_stage::<IngestBeir>(&params(UnknownDocs::Error), dir.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.tsv:3") && err.contains("\"gone\""),
        "{err}"
    );

    let report =
        run_stage::<IngestBeir>(&params(UnknownDocs::Drop), dir.path(), out.path()).unwrap();
    assert_eq!(
        (
            report.metrics["queries"],
            report.metrics["qrels"],
            report.metrics["qrels_dropped"]
        ),
        (1.0, 1.0, 2.0),
        "q2 judges only a missing document, so it is no longer a judged query"
    );
    let qrels = read_rows::<Qrel>(&out.path().join("qrels.parquet")).unwrap();
    assert_eq!(qrels, vec![qrel("q1", "d1", 1)]);

    let report =
        run_stage::<IngestBeir>(&params(UnknownDocs::Keep), dir.path(), out.path()).unwrap();
    assert_eq!(
        (report.metrics["qrels"], report.metrics["queries"]),
        (3.0, 2.0)
    );
    assert!(!report.metrics.contains_key("qrels_dropped"));
}
