//! Malformed input, one test per case from a table: each case writes its content to a file
//! in a temporary directory, runs one reader, and checks that the error is an
//! `Error::Input` naming that file, the expected line (or record, or none for whole-file
//! errors), and containing the expected text.

use std::path::Path;

use rrra_common::{Error, Result};
use rrra_ingest::{
    IdIndex, read_beir_corpus, read_beir_queries, read_dpr_biencoder, read_dpr_qa_tsv,
    read_msmarco_collection, read_msmarco_queries, read_qrels, read_trec_run,
};

#[derive(Clone, Copy)]
enum Reader {
    BeirCorpus,
    BeirQueries,
    MsmarcoCollection,
    MsmarcoQueries,
    Qrels,
    /// `read_qrels` knowing the docs `d1` and `d2`.
    QrelsKnownDocs,
    TrecRun,
    DprBiencoder,
    DprQaTsv,
}

fn run(reader: Reader, path: &Path) -> Result<u64> {
    let mut ids = IdIndex::new();
    let ids = Some(&mut ids);
    match reader {
        Reader::BeirCorpus => read_beir_corpus(path, ids, |_| Ok(())),
        Reader::BeirQueries => read_beir_queries(path, ids, |_| Ok(())),
        Reader::MsmarcoCollection => read_msmarco_collection(path, ids, |_| Ok(())),
        Reader::MsmarcoQueries => read_msmarco_queries(path, ids, |_| Ok(())),
        Reader::Qrels => read_qrels(path, None, |_| Ok(())),
        Reader::QrelsKnownDocs => {
            let mut known = IdIndex::new();
            for (line, id) in [(1, "d1"), (2, "d2")] {
                known.insert("doc", Path::new("corpus"), line, id)?;
            }
            read_qrels(path, Some(&known), |_| Ok(()))
        }
        Reader::TrecRun => read_trec_run(path, |_| Ok(())),
        Reader::DprBiencoder => read_dpr_biencoder(path, |_| Ok(())),
        Reader::DprQaTsv => read_dpr_qa_tsv(path, |_| Ok(())),
    }
}

/// Writes `content` to `file_name` in a fresh directory, runs `reader`, and checks the error.
fn check(reader: Reader, file_name: &str, content: &[u8], line: Option<u64>, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, content).unwrap();
    let err = run(reader, &path).expect_err("malformed input must be rejected");
    let Error::Input {
        file,
        line: got_line,
        message,
    } = &err
    else {
        panic!("expected Error::Input, got {err:?}");
    };
    assert_eq!(file, &path, "{err}");
    assert_eq!(*got_line, line, "{err}");
    assert!(
        message.contains(expected),
        "{err}\n  does not contain: {expected}"
    );
    let prefix = match line {
        Some(l) => format!("{}:{l}: ", path.display()),
        None => format!("{}: ", path.display()),
    };
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

macro_rules! malformed {
    ($($name:ident: $reader:ident, $file:literal, $content:expr, $line:expr, $expected:literal;)*) => {
        $(
            #[test]
            fn $name() {
                check(Reader::$reader, $file, $content, $line, $expected);
            }
        )*
    };
}

const DPR_OK: &str =
    r#"{"question": "q", "answers": ["a"], "positive_ctxs": [{"title": "t", "text": "x"}]}"#;

malformed! {
    // BEIR JSON Lines
    beir_bad_json_line: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": \"1\", \"text\": \"a\"}\n{\"_id\": \"2\", \"text\": }\n", Some(2),
        "expected a JSON object: expected value (column 22)";
    beir_line_not_an_object: BeirCorpus, "corpus.jsonl",
        b"[\"1\", \"t\", \"a\"]\n", Some(1), "expected a JSON object";
    beir_missing_id: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": \"1\", \"text\": \"a\"}\r\n\r\n{\"title\": \"t\", \"text\": \"b\"}\r\n", Some(3),
        "expected field \"_id\" (non-empty string or integer)";
    beir_fractional_id: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": 1.5, \"text\": \"a\"}\n", Some(1),
        "expected field \"_id\" (non-empty string or integer), found a number";
    beir_missing_text: BeirQueries, "queries.jsonl",
        b"{\"_id\": \"1\", \"text\": \"a\"}\n{\"_id\": \"2\"}", Some(2), "expected field \"text\" (string)";
    beir_text_not_a_string: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": \"1\", \"title\": \"t\", \"text\": 5}\n", Some(1),
        "expected field \"text\" (string), found a number";
    beir_title_not_a_string: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": \"1\", \"title\": [\"t\"], \"text\": \"a\"}\n", Some(1),
        "expected field \"title\" (string), found an array";
    beir_invalid_utf8: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": \"1\", \"text\": \"a\"}\n{\"_id\": \"2\", \"text\": \"caf\xe9\"}\n", Some(2),
        "expected UTF-8 text, found an invalid byte sequence at byte 26 of the line";
    beir_empty_file: BeirCorpus, "corpus.jsonl", b"", None,
        "empty file: expected at least one document";
    beir_blank_lines_only: BeirQueries, "queries.jsonl", b"\n  \r\n", None,
        "empty file: expected at least one query";
    beir_duplicate_doc_id: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \"y\"}\n{\"_id\": \"a\", \"text\": \"z\"}\n",
        Some(3), "duplicate doc id \"a\": expected unique ids, first seen at line 1";
    beir_duplicate_id_string_and_number: BeirCorpus, "corpus.jsonl",
        b"{\"_id\": 7, \"text\": \"x\"}\n{\"_id\": \"7\", \"text\": \"y\"}\n",
        Some(2), "duplicate doc id \"7\"";
    beir_duplicate_query_id: BeirQueries, "queries.jsonl",
        b"{\"_id\": \"q1\", \"text\": \"x\"}\n{\"_id\": \"q1\", \"text\": \"y\"}\n",
        Some(2), "duplicate query id \"q1\": expected unique ids, first seen at line 1";

    // MS MARCO TSV
    msmarco_one_field: MsmarcoCollection, "collection.tsv",
        b"1\tfine\n2 no tab here\n", Some(2), "expected 2 tab-separated fields (pid, text), found 1";
    msmarco_three_fields: MsmarcoQueries, "queries.dev.tsv",
        b"1\ta\tb\n", Some(1), "expected 2 tab-separated fields (qid, text), found 3";
    msmarco_empty_id: MsmarcoCollection, "collection.tsv",
        b"\ttext\n", Some(1), "expected a non-empty pid";
    msmarco_invalid_utf8: MsmarcoCollection, "collection.tsv",
        b"1\tok\n2\tbad \xff\xfe here\n", Some(2),
        "expected UTF-8 text, found an invalid byte sequence at byte 7 of the line";
    msmarco_duplicate_pid: MsmarcoCollection, "collection.tsv",
        b"10\ta\n11\tb\n12\tc\n11\td\n", Some(4),
        "duplicate doc id \"11\": expected unique ids, first seen at line 2";
    msmarco_duplicate_qid: MsmarcoQueries, "queries.train.tsv",
        b"5\ta\r\n5\tb\r\n", Some(2), "duplicate query id \"5\": expected unique ids, first seen at line 1";
    msmarco_empty_file: MsmarcoQueries, "queries.dev.tsv", b"", None,
        "empty file: expected at least one query";

    // Qrels
    qrels_trec_non_numeric: Qrels, "qrels.txt",
        b"1 0 d1 1\n1 0 d2 high\n", Some(2), "expected an integer relevance, found \"high\"";
    qrels_trec_fractional: Qrels, "qrels.txt",
        b"1\t0\td1\t1.5\n", Some(1), "expected an integer relevance, found \"1.5\"";
    qrels_beir_non_numeric: Qrels, "test.tsv",
        b"query-id\tcorpus-id\tscore\r\n1\td1\t1\r\n1\td2\tx\r\n", Some(3),
        "expected an integer relevance, found \"x\"";
    qrels_trec_three_fields: Qrels, "qrels.txt",
        b"1 d1 1\n", Some(1),
        "expected 4 whitespace-separated fields (qid iter docid rel), found 3; a 3-column BEIR qrels file must start with the header";
    qrels_trec_five_fields: Qrels, "qrels.txt",
        b"1 0 d1 1\n1 0 d2 1 extra\n", Some(2),
        "expected 4 whitespace-separated fields (qid iter docid rel), found 5";
    qrels_beir_two_fields: Qrels, "test.tsv",
        b"query-id\tcorpus-id\tscore\n1\td1\n", Some(2),
        "expected 3 tab-separated fields (query-id, corpus-id, score), found 2";
    qrels_beir_empty_doc: Qrels, "test.tsv",
        b"query-id\tcorpus-id\tscore\n1\t\t1\n", Some(2), "expected a non-empty query-id and corpus-id";
    qrels_beir_header_only: Qrels, "test.tsv",
        b"query-id\tcorpus-id\tscore\r\n", None, "empty file: expected at least one judgement";
    qrels_empty_file: Qrels, "qrels.txt", b"", None, "empty file: expected at least one judgement";
    qrels_unknown_doc: QrelsKnownDocs, "qrels.txt",
        b"1 0 d1 1\n1 0 d2 0\n2 0 d3 1\n", Some(3),
        "qrel for unknown doc \"d3\": expected a doc id of the corpus";
    qrels_beir_unknown_doc: QrelsKnownDocs, "test.tsv",
        b"query-id\tcorpus-id\tscore\n1\tdX\t1\n", Some(2), "qrel for unknown doc \"dX\"";
    qrels_invalid_utf8: Qrels, "qrels.txt",
        b"1 0 d1 1\n1 0 \xc3\x28 1\n", Some(2), "expected UTF-8 text";

    // TREC runs
    run_five_fields: TrecRun, "run.txt",
        b"1 Q0 d1 1 2.5 tag\n1 Q0 d2 2 1.5\n", Some(2),
        "expected 6 whitespace-separated fields (qid Q0 docid rank score tag), found 5";
    run_bad_rank: TrecRun, "run.txt",
        b"1 Q0 d1 first 2.5 tag\n", Some(1), "expected a non-negative integer rank, found \"first\"";
    run_bad_score: TrecRun, "run.txt",
        b"1 Q0 d1 1 2.5 tag\n1 Q0 d2 2 high tag\n", Some(2), "expected a finite score, found \"high\"";
    run_nan_score: TrecRun, "run.txt",
        b"1 Q0 d1 1 NaN tag\n", Some(1), "expected a finite score, found \"NaN\"";
    run_empty_file: TrecRun, "run.txt", b"\n", None, "empty file: expected at least one run row";

    // DPR biencoder JSON (the line slot holds the 1-based record number)
    dpr_missing_question: DprBiencoder, "biencoder.json",
        format!(r#"[{DPR_OK}, {{"answers": ["a"], "positive_ctxs": []}}]"#).as_bytes(), Some(2),
        "in record 2 (1-based): expected field \"question\" (string)";
    dpr_missing_answers: DprBiencoder, "biencoder.json",
        br#"[{"question": "q", "positive_ctxs": []}]"#, Some(1),
        "expected field \"answers\" (list of strings)";
    dpr_missing_positive_ctxs: DprBiencoder, "biencoder.json",
        format!(r#"[{DPR_OK}, {DPR_OK}, {{"question": "q", "answers": []}}]"#).as_bytes(), Some(3),
        "expected field \"positive_ctxs\" (list of contexts)";
    dpr_ctx_missing_text: DprBiencoder, "biencoder.json",
        br#"[{"question": "q", "answers": [], "positive_ctxs": [{"text": "x"}, {"title": "t"}]}]"#,
        Some(1), "expected field \"positive_ctxs[1].text\" (string)";
    dpr_answers_not_a_list: DprBiencoder, "biencoder.json",
        br#"[{"question": "q", "answers": "a", "positive_ctxs": []}]"#, Some(1),
        "invalid type: string \"a\", expected field \"answers\" (list of strings)";
    dpr_answer_not_a_string: DprBiencoder, "biencoder.json",
        br#"[{"question": "q", "answers": ["a", 2], "positive_ctxs": []}]"#, Some(1),
        "expected field \"answers[1]\" (string)";
    dpr_bad_passage_id: DprBiencoder, "biencoder.json",
        br#"[{"question": "q", "answers": [], "hard_negative_ctxs": [{"text": "x", "passage_id": [1]}], "positive_ctxs": []}]"#,
        Some(1), "expected field \"hard_negative_ctxs[0].passage_id\" (string or integer)";
    dpr_duplicate_field: DprBiencoder, "biencoder.json",
        br#"[{"question": "q", "question": "r", "answers": [], "positive_ctxs": []}]"#, Some(1),
        "duplicate field \"question\"";
    dpr_truncated: DprBiencoder, "biencoder.json",
        format!("[{DPR_OK}, {{\"question\": \"q\", \"answ").as_bytes(), Some(2),
        "in record 2 (1-based): EOF while parsing";
    dpr_invalid_utf8: DprBiencoder, "biencoder.json",
        b"[{\"question\": \"caf\xe9\", \"answers\": [], \"positive_ctxs\": []}]", Some(1),
        "invalid unicode code point at line 1 column";
    dpr_not_an_array: DprBiencoder, "biencoder.json",
        DPR_OK.as_bytes(), None, "expected a JSON array of DPR records";
    dpr_trailing_data: DprBiencoder, "biencoder.json",
        format!("[{DPR_OK}] [").as_bytes(), None, "expected nothing after the array";
    dpr_empty_array: DprBiencoder, "biencoder.json", b"[ ]\n", None,
        "empty file: expected at least one DPR record";
    dpr_empty_file: DprBiencoder, "biencoder.json", b"", None,
        "empty file: expected a JSON array of DPR records";

    // DPR qa.tsv
    qa_bad_literal_unclosed_list: DprQaTsv, "nq-test.qa.tsv",
        b"q1\t['a']\r\nq2\t['a', 'b'\r\n", Some(2),
        "answer list, character 10: expected ',' or ']' after a string, found the end";
    qa_bad_literal_unquoted: DprQaTsv, "nq-test.qa.tsv",
        b"q1\t[Paris]\n", Some(1), "answer list, character 2: expected a quoted string, found 'P'";
    qa_bad_literal_unclosed_string: DprQaTsv, "nq-test.qa.tsv",
        b"q1\t['it\\'s]\n", Some(1), "expected a closing '";
    qa_bad_literal_bad_escape: DprQaTsv, "nq-test.qa.tsv",
        b"q1\t['\\u12']\n", Some(1), "expected 4 hex digits";
    qa_not_a_list: DprQaTsv, "nq-test.qa.tsv",
        b"q1\t'a'\n", Some(1), "expected '[' opening the answer list, found '\\''";
    qa_one_field: DprQaTsv, "nq-test.qa.tsv",
        b"q1\t['a']\nno tab\n", Some(2), "expected 2 tab-separated fields (question, answer list), found 1";
    qa_unclosed_csv_quote: DprQaTsv, "trivia-test.qa.tsv",
        b"\"q1\t['a']\n", Some(1), "expected a closing '\"' for the field quoted at column 1";
    qa_invalid_utf8: DprQaTsv, "nq-test.qa.tsv",
        b"q\xff\t['a']\n", Some(1), "expected UTF-8 text, found an invalid byte sequence at byte 2";
    qa_empty_file: DprQaTsv, "nq-test.qa.tsv", b"", None, "empty file: expected at least one question";
}
