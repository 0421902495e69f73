//! Named collections: official download URLs with the checksums published for them.
//!
//! The checksums are those ir_datasets publishes (`ir_datasets/etc/downloads.json`, MD5);
//! no SHA-256 is published for these files. Where no checksum is published at all, the
//! entry says so and has none: the first download then stops with the file's actual sha256
//! for the user to check and pin (see [`rrra_fetch::FetchError::Unpinned`]). A changed
//! entry changes what a cached ingest stage read, so the ingest stages' versions go up with
//! it.

/// One downloadable file of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    pub name: &'static str,
    pub about: &'static str,
    pub url: &'static str,
    pub md5: Option<&'static str>,
    /// Where the checksum was published ("none published" when there is none).
    pub checksum_source: &'static str,
    /// The file or folder inside the download that the ingest stage usually reads.
    pub member: Option<&'static str>,
    /// Request headers the host needs.
    pub headers: &'static [(&'static str, &'static str)],
    /// The stage (and format) that reads it.
    pub read_with: &'static str,
}

const IRDS: &str = "ir_datasets downloads.json (MD5)";
const NONE: &str = "none published";
const BEIR: &str = "ingest.beir (path: the member)";
/// The API version header ir_datasets sends to MS MARCO's Azure blob host.
const MSMARCO_HEADERS: &[(&str, &str)] = &[("x-ms-version", "2019-12-12")];

macro_rules! beir {
    ($name:literal, $md5:literal) => {
        Collection {
            name: concat!("beir-", $name),
            about: concat!(
                "BEIR ",
                $name,
                " (corpus.jsonl, queries.jsonl, qrels/*.tsv)"
            ),
            url: concat!(
                "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/",
                $name,
                ".zip"
            ),
            md5: Some($md5),
            checksum_source: IRDS,
            member: Some($name),
            headers: &[],
            read_with: BEIR,
        }
    };
}

/// Every named collection, by name.
pub const CATALOGUE: &[Collection] = &[
    Collection {
        name: "msmarco-passage",
        about: "MS MARCO passage ranking: collection.tsv (8,841,823 passages), queries.{train,dev,eval}.tsv, qrels.{train,dev}.tsv",
        url: "https://msmarco.z22.web.core.windows.net/msmarcoranking/collectionandqueries.tar.gz",
        md5: Some("31644046b18952c1386cd4564ba2ae69"),
        checksum_source: IRDS,
        member: None,
        headers: MSMARCO_HEADERS,
        read_with: "ingest.msmarco (members collection.tsv, queries.train.tsv, qrels.train.tsv, ...)",
    },
    Collection {
        name: "msmarco-passage-dl19-queries",
        about: "TREC DL 2019 passage queries (msmarco-test2019-queries.tsv.gz)",
        url: "https://msmarco.z22.web.core.windows.net/msmarcoranking/msmarco-test2019-queries.tsv.gz",
        md5: Some("eda71eccbe4d251af83150abe065368c"),
        checksum_source: IRDS,
        member: None,
        headers: MSMARCO_HEADERS,
        read_with: "ingest.queries (format msmarco)",
    },
    Collection {
        name: "msmarco-passage-dl19-qrels",
        about: "TREC DL 2019 passage judgements (2019qrels-pass.txt)",
        url: "https://trec.nist.gov/data/deep/2019qrels-pass.txt",
        md5: Some("2f4be390198da108f6845c822e5ada14"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.qrels",
    },
    Collection {
        name: "msmarco-passage-dl20-queries",
        about: "TREC DL 2020 passage queries (msmarco-test2020-queries.tsv.gz)",
        url: "https://msmarco.z22.web.core.windows.net/msmarcoranking/msmarco-test2020-queries.tsv.gz",
        md5: Some("00a406fb0d14ed3752d70d1e4eb98600"),
        checksum_source: IRDS,
        member: None,
        headers: MSMARCO_HEADERS,
        read_with: "ingest.queries (format msmarco)",
    },
    Collection {
        name: "msmarco-passage-dl20-qrels",
        about: "TREC DL 2020 passage judgements (2020qrels-pass.txt)",
        url: "https://trec.nist.gov/data/deep/2020qrels-pass.txt",
        md5: Some("0355ccee7509ac0463e8278186cdd8d1"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.qrels",
    },
    Collection {
        name: "psgs-w100",
        about: "DPR's Wikipedia passages psgs_w100.tsv.gz (21,015,324 passages; NQ and TriviaQA corpus)",
        url: "https://dl.fbaipublicfiles.com/dpr/wikipedia_split/psgs_w100.tsv.gz",
        md5: Some("612fe66e0b6b41ee28f806140226c563"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.corpus (format psgs_w100)",
    },
    Collection {
        name: "dpr-nq-train",
        about: "DPR biencoder-nq-train.json.gz (Natural Questions training questions with contexts)",
        url: "https://dl.fbaipublicfiles.com/dpr/data/retriever/biencoder-nq-train.json.gz",
        md5: Some("a1c927b5adae71388eb064329387709f"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.dpr",
    },
    Collection {
        name: "dpr-nq-dev",
        about: "DPR biencoder-nq-dev.json.gz",
        url: "https://dl.fbaipublicfiles.com/dpr/data/retriever/biencoder-nq-dev.json.gz",
        md5: Some("2640483dbe0df7ae29c6da419c551a80"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.dpr",
    },
    Collection {
        name: "dpr-nq-test-qa",
        about: "DPR nq-test.qa.csv (3,610 test questions with answers, tab-separated)",
        url: "https://dl.fbaipublicfiles.com/dpr/data/retriever/nq-test.qa.csv",
        md5: None,
        checksum_source: NONE,
        member: None,
        headers: &[],
        read_with: "ingest.queries (format dpr_qa)",
    },
    Collection {
        name: "dpr-trivia-train",
        about: "DPR biencoder-trivia-train.json.gz (TriviaQA training questions with contexts)",
        url: "https://dl.fbaipublicfiles.com/dpr/data/retriever/biencoder-trivia-train.json.gz",
        md5: Some("5aa4d3577c91425cd20e239ed89a252b"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.dpr",
    },
    Collection {
        name: "dpr-trivia-dev",
        about: "DPR biencoder-trivia-dev.json.gz",
        url: "https://dl.fbaipublicfiles.com/dpr/data/retriever/biencoder-trivia-dev.json.gz",
        md5: Some("d559dffe09acfe5a6370adea55b8abf2"),
        checksum_source: IRDS,
        member: None,
        headers: &[],
        read_with: "ingest.dpr",
    },
    Collection {
        name: "dpr-trivia-test-qa",
        about: "DPR trivia-test.qa.csv.gz (TriviaQA test questions with answers)",
        url: "https://dl.fbaipublicfiles.com/dpr/data/retriever/trivia-test.qa.csv.gz",
        md5: None,
        checksum_source: NONE,
        member: None,
        headers: &[],
        read_with: "ingest.queries (format dpr_qa)",
    },
    beir!("scifact", "5f7d1de60b170fc8027bb7898e2efca1"),
    beir!("nfcorpus", "a89dba18a62ef92f7d323ec890a0d38d"),
    beir!("arguana", "8ad3e3c2a5867cdced806d6503f29b99"),
    beir!("fiqa", "17918ed23cd04fb15047f73e6c3bd9d9"),
    beir!("quora", "18fb154900ba42a600f84b839c173167"),
    beir!("scidocs", "38121350fc3a4d2f48850f6aff52e4a9"),
    beir!("trec-covid", "ce62140cb23feb9becf6270d0d1fe6d1"),
    beir!("webis-touche2020", "46f650ba5a527fc69e0a6521c5a23563"),
    beir!("nq", "d4d3d2e48787a744b6f6e691ff534307"),
    beir!("hotpotqa", "f412724f78b0d91183a0e86805e16114"),
    beir!("dbpedia-entity", "c2a39eb420a3164af735795df012ac2c"),
    beir!("fever", "5a818580227bfb4b35bb6fa46d9b6c03"),
    beir!("climate-fever", "8b66f0a9126c521bae2bde127b4dc99d"),
    beir!("msmarco", "444067daf65d982533ea17ebd59501e4"),
    beir!("cqadupstack", "4e41456d7df8ee7760a7f866133bda78"),
];

/// The collection called `name`.
pub fn collection(name: &str) -> Option<&'static Collection> {
    CATALOGUE.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_well_formed_and_unique() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len(), "duplicate names");
        for c in CATALOGUE {
            assert!(c.url.starts_with("https://"), "{}", c.name);
            match c.md5 {
                Some(h) => {
                    assert!(
                        h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{}",
                        c.name
                    );
                    assert_ne!(c.checksum_source, NONE, "{}", c.name);
                }
                None => assert_eq!(c.checksum_source, NONE, "{}", c.name),
            }
        }
        assert_eq!(collection("beir-scifact").unwrap().member, Some("scifact"));
        assert!(collection("beir-unknown").is_none());
    }
}
