//! The readers on the real data files under `shared/data/`: counts must match the files
//! exactly, and a few fields of the first and last records are spot-checked.
//!
//! Expected counts were derived with shell tools and Python, independently of this crate:
//! `wc -l` (every file ends with a newline and has no blank line), `grep -c`, and
//! `json.load` / `csv.reader(delimiter="\t")` + `ast.literal_eval` for DPR files.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rrra_common::Error;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_ingest::{
    DprRecord, IdIndex, read_beir_corpus, read_beir_queries, read_dpr_biencoder, read_dpr_qa_tsv,
    read_msmarco_collection, read_msmarco_queries, read_qrels,
};

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(rel)
}

/// Runs a reader with a collecting sink; checks the returned count against the records.
fn collect<T>(
    read: impl FnOnce(&mut dyn FnMut(T) -> rrra_common::Result<()>) -> rrra_common::Result<u64>,
) -> Vec<T> {
    let mut out = Vec::new();
    let n = read(&mut |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        n,
        out.len() as u64,
        "returned count vs records handed to the sink"
    );
    out
}

fn grade_histogram(qrels: &[Qrel]) -> BTreeMap<i32, usize> {
    let mut h = BTreeMap::new();
    for q in qrels {
        *h.entry(q.relevance).or_default() += 1;
    }
    h
}

fn distinct_queries(qrels: &[Qrel]) -> usize {
    qrels
        .iter()
        .map(|q| &q.query_id)
        .collect::<HashSet<_>>()
        .len()
}

#[test]
fn scifact() {
    let mut docs = IdIndex::new();
    let corpus: Vec<Doc> =
        collect(|s| read_beir_corpus(&data("scifact/corpus.jsonl"), Some(&mut docs), s));
    // `wc -l corpus.jsonl` = 5183; all `_id`s distinct (python: len(set(ids)) == 5183).
    assert_eq!(corpus.len(), 5183);
    assert_eq!(docs.len(), 5183);
    let first = &corpus[0];
    assert_eq!(first.id, "4983");
    assert_eq!(
        first.title,
        "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor magnetic resonance imaging."
    );
    assert!(
        first
            .text
            .starts_with("Alterations of the architecture of cerebral white ")
    );
    assert_eq!(first.text.chars().count(), 1809);
    let last = corpus.last().unwrap();
    assert_eq!(last.id, "198309074");
    assert!(
        last.title
            .starts_with("Adhesion molecules and chemokines: relation to anthropometric")
    );
    assert!(
        last.text
            .ends_with("reducing the cell adhesion molecules and chemokines.")
    );

    let mut qids = IdIndex::new();
    let queries: Vec<Query> =
        collect(|s| read_beir_queries(&data("scifact/queries.jsonl"), Some(&mut qids), s));
    // `wc -l queries.jsonl` = 1109.
    assert_eq!(queries.len(), 1109);
    assert_eq!(queries[0].id, "0");
    assert_eq!(
        queries[0].text,
        "0-dimensional biomaterials lack inductive properties."
    );
    assert_eq!(queries[0].answers, None);
    assert_eq!(queries[1108].id, "1395");
    assert!(
        queries[1108]
            .text
            .starts_with("p16INK4A accumulation is  linked")
    );

    // CRLF files; `wc -l` = 340 and 920, minus the header line. Every doc is in the corpus.
    for (split, rows, queries, first, last) in [
        ("test", 339, 300, ("1", "31715818"), ("1395", "17717391")),
        ("train", 919, 809, ("0", "31715818"), ("1407", "29863668")),
    ] {
        let path = data(&format!("scifact/qrels/{split}.tsv"));
        let qrels: Vec<Qrel> = collect(|s| read_qrels(&path, Some(&docs), s));
        assert_eq!(qrels.len(), rows, "{split}");
        assert_eq!(distinct_queries(&qrels), queries, "{split}");
        assert_eq!(
            grade_histogram(&qrels),
            BTreeMap::from([(1, rows)]),
            "{split}"
        );
        assert_eq!(
            (qrels[0].query_id.as_str(), qrels[0].doc_id.as_str()),
            first
        );
        let l = qrels.last().unwrap();
        assert_eq!((l.query_id.as_str(), l.doc_id.as_str()), last);
        assert!(qrels.iter().all(|q| qids.contains(&q.query_id)));
    }
}

#[test]
fn msmarco_dl19_sample() {
    let dir = "msmarco-passage-dl19-sample";
    let mut pids = IdIndex::new();
    let collection: Vec<Doc> = collect(|s| {
        read_msmarco_collection(&data(&format!("{dir}/collection.tsv")), Some(&mut pids), s)
    });
    // `wc -l collection.tsv` = 5000 (PROVENANCE: 5000 passages), pids distinct.
    assert_eq!(collection.len(), 5000);
    assert_eq!(pids.len(), 5000);
    assert_eq!(collection[0].id, "4380635");
    assert!(
        collection[0]
            .text
            .starts_with("Fahrenheit Scale-Daniel Gabriel Fahrenheit.")
    );
    assert_eq!(collection[0].title, "");
    assert_eq!(collection[4999].id, "7088039");
    assert!(
        collection[4999]
            .text
            .ends_with("as well as 25 and 50 satang.")
    );

    let queries: Vec<Query> = collect(|s| {
        read_msmarco_queries(&data(&format!("{dir}/queries.dl19-passage.tsv")), None, s)
    });
    // `wc -l` = 43.
    assert_eq!(queries.len(), 43);
    assert_eq!(
        (queries[0].id.as_str(), queries[0].text.as_str()),
        ("156493", "do goldfish grow")
    );
    assert_eq!(queries[42].id, "146187");

    let qrels_path = data(&format!("{dir}/qrels.dl19-passage.txt"));
    let qrels: Vec<Qrel> = collect(|s| read_qrels(&qrels_path, None, s));
    // `wc -l` = 9260; grades by `awk '{print $4}' | sort | uniq -c`.
    assert_eq!(qrels.len(), 9260);
    assert_eq!(distinct_queries(&qrels), 43);
    assert_eq!(
        grade_histogram(&qrels),
        BTreeMap::from([(0, 5158), (1, 1601), (2, 1804), (3, 697)])
    );
    assert_eq!(
        qrels[0],
        Qrel {
            query_id: "19335".into(),
            doc_id: "1017759".into(),
            relevance: 0
        }
    );

    // The sample holds no grade-0 passages, so checking against it fails on line 1.
    let err = read_qrels(&qrels_path, Some(&pids), |_| Ok(())).unwrap_err();
    assert!(
        matches!(&err, Error::Input { file, line: Some(1), message }
            if *file == qrels_path && message.contains("unknown doc \"1017759\"")),
        "{err}"
    );
    // Every judged-relevant passage is in the sample.
    let relevant = qrels.iter().filter(|q| q.relevance > 0);
    assert!(relevant.clone().all(|q| pids.contains(&q.doc_id)));
    assert_eq!(relevant.count(), 4102);
}

#[test]
fn msmarco_dev_small() {
    let dir = "msmarco-passage-dev-small";
    let mut qids = IdIndex::new();
    let queries: Vec<Query> = collect(|s| {
        read_msmarco_queries(
            &data(&format!("{dir}/queries.dev.small.tsv")),
            Some(&mut qids),
            s,
        )
    });
    // `wc -l` = 6980, qids distinct.
    assert_eq!(queries.len(), 6980);
    assert_eq!(queries[0].text, "what is paula deen's brother");
    // Text is kept verbatim, leading space included.
    assert_eq!(
        (queries[1].id.as_str(), queries[1].text.as_str()),
        ("2", " Androgen receptor define")
    );
    assert_eq!(queries[6979].id, "1048565");

    let qrels: Vec<Qrel> =
        collect(|s| read_qrels(&data(&format!("{dir}/qrels.dev.small.trec.txt")), None, s));
    // `wc -l` = 7437, all grade 1, 6980 distinct qids (`cut -d' ' -f1 | sort -u | wc -l`).
    assert_eq!(qrels.len(), 7437);
    assert_eq!(grade_histogram(&qrels), BTreeMap::from([(1, 7437)]));
    assert_eq!(distinct_queries(&qrels), 6980);
    assert!(qrels.iter().all(|q| qids.contains(&q.query_id)));
    assert_eq!(
        qrels[7436],
        Qrel {
            query_id: "195199".into(),
            doc_id: "8009377".into(),
            relevance: 1
        }
    );
}

#[test]
fn dpr_biencoder_sample() {
    let records: Vec<DprRecord> =
        collect(|s| read_dpr_biencoder(&data("nq-triviaqa-dpr/biencoder-nq-dev.sample5.json"), s));
    // python: len(json.load(f)) == 5; context counts summed over the records.
    assert_eq!(records.len(), 5);
    let count = |f: fn(&DprRecord) -> usize| records.iter().map(f).sum::<usize>();
    assert_eq!(count(|r| r.positive_ctxs.len()), 22);
    assert_eq!(count(|r| r.negative_ctxs.len()), 250);
    assert_eq!(count(|r| r.hard_negative_ctxs.len()), 483);
    let per_record: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.positive_ctxs.len(),
                r.negative_ctxs.len(),
                r.hard_negative_ctxs.len(),
            )
        })
        .collect();
    assert_eq!(
        per_record,
        [
            (5, 50, 96),
            (6, 50, 95),
            (3, 50, 98),
            (1, 50, 100),
            (7, 50, 94)
        ]
    );

    let first = &records[0];
    assert_eq!(first.question, "who sings does he love me with reba");
    assert_eq!(first.answers, ["Linda Davis"]);
    assert_eq!(first.positive_ctxs[0].id, "11828866");
    assert_eq!(first.positive_ctxs[0].title, "Does He Love You");
    assert!(
        first.positive_ctxs[0]
            .text
            .starts_with("Does He Love You \"Does He Love You\" is a song")
    );
    let last = &records[4];
    assert_eq!(
        last.question,
        "when did wesley leave last of the summer wine"
    );
    assert_eq!(last.answers, ["2002"]);
    let ctx = last.hard_negative_ctxs.last().unwrap();
    assert_eq!(
        (ctx.id.as_str(), ctx.title.as_str()),
        ("16350066", "Kiel Brown")
    );
    // Every context of the sample carries a passage_id: none falls back to a content hash.
    let all = records.iter().flat_map(|r| {
        r.positive_ctxs
            .iter()
            .chain(&r.negative_ctxs)
            .chain(&r.hard_negative_ctxs)
    });
    assert!(all.clone().all(|c| !c.id.starts_with("h:")));
    assert_eq!(all.count(), 755);
}

#[test]
fn dpr_qa_tsv() {
    // python: csv.reader(delimiter="\t") rows (= `wc -l`) and sum of len(ast.literal_eval(answers)).
    for (name, questions, answers) in [
        ("nq-test.qa.tsv", 3610, 6468),
        ("trivia-test.qa.tsv", 11313, 158681),
    ] {
        let queries: Vec<Query> =
            collect(|s| read_dpr_qa_tsv(&data(&format!("nq-triviaqa-dpr/{name}")), s));
        assert_eq!(queries.len(), questions, "{name}");
        let total: usize = queries
            .iter()
            .map(|q| q.answers.as_ref().unwrap().len())
            .sum();
        assert_eq!(total, answers, "{name}");
        assert!(
            queries
                .iter()
                .enumerate()
                .all(|(i, q)| q.id == i.to_string()),
            "{name}: 0-based ids"
        );
    }

    let nq: Vec<Query> = collect(|s| read_dpr_qa_tsv(&data("nq-triviaqa-dpr/nq-test.qa.tsv"), s));
    assert_eq!(nq[0].text, "who got the first nobel prize in physics");
    assert_eq!(
        nq[0].answers.as_deref(),
        Some(&["Wilhelm Conrad Röntgen".to_owned()][..])
    );
    assert_eq!(
        nq[3609].text,
        "when did computer become widespread in homes and schools"
    );
    assert_eq!(nq[3609].answers.as_deref(), Some(&["1980s".to_owned()][..]));
    // Line 1976: a `\u200e` escape inside the literal.
    assert_eq!(nq[1975].answers.as_ref().unwrap()[2], "Angola \u{200e}");

    let trivia: Vec<Query> =
        collect(|s| read_dpr_qa_tsv(&data("nq-triviaqa-dpr/trivia-test.qa.tsv"), s));
    assert_eq!(trivia[0].text, "Who was the man behind The Chipmunks?");
    assert_eq!(trivia[11312].answers.as_ref().unwrap().len(), 7);
    // Line 655: `\x83` escape.
    assert_eq!(trivia[654].answers.as_ref().unwrap(), &["SÄ\u{83}o Paulo"]);
    // Line 4319: both fields CSV-quoted, `\'` and `"` inside the literal.
    let q = &trivia[4318];
    assert!(
        q.text
            .starts_with("\"What was the first pop video directed by John Landis")
    );
    let a = q.answers.as_ref().unwrap();
    assert_eq!(a[0], "\"Michael Jackson's \"\"Thriller\"\"\"");
    assert_eq!(a[1], "Michael Jackson's Thriller");
}
