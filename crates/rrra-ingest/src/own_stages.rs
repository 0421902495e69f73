//! The `ingest.*` stages for a user's own data: `ingest.corpus` (one corpus file or folder
//! in any supported format), `ingest.pairs` (query–positive[–negative] training pairs) and
//! `ingest.trec` (TREC SGML documents, topics and qrels).

use std::path::{Path, PathBuf};

use rrra_common::artifact::ParquetSink;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::schema::ArtifactKind::Corpus;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::mapped::{DocFields, Table, TableFormat};
use crate::pairs::{PairFields, PairItem};
use crate::source::{Source, local_sources};
use crate::stages::{
    IngestBeir, QrelsParams, QueriesParams, QueryFormat, UnknownDocs, qrels_counts, report,
    required, sink_into, spinner, write_qrels, write_queries,
};
use crate::trec::{SgmlTags, TopicField};
use crate::{IdIndex, TextEncoding};

/// The files under `path`: itself when it is a file, else every file below it (hidden
/// names skipped) in byte order of their paths.
pub fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::file(path, "empty folder: expected files to read"));
    }
    Ok(out)
}

// ---------------------------------------------------------------- ingest.corpus

/// The corpus file formats.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CorpusFormat {
    /// `pid\ttext` (MS MARCO `collection.tsv`).
    #[default]
    Msmarco,
    /// BEIR `corpus.jsonl`.
    Beir,
    /// DPR `psgs_w100.tsv` (header `id\ttext\ttitle`).
    PsgsW100,
    /// TREC SGML `<DOC>` files (see `sgml` for the title and text elements).
    TrecSgml,
    /// JSON Lines with the field mapping `fields`.
    Jsonl,
    /// CSV with the field mapping `fields`.
    Csv,
    /// TSV with the field mapping `fields`.
    Tsv,
    /// Parquet with the field mapping `fields`.
    Parquet,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusParams {
    /// A file, or a folder whose files are all read (in path order).
    pub path: Source,
    /// The file format.
    pub format: CorpusFormat,
    /// Field names for `jsonl`, `csv`, `tsv` and `parquet`.
    pub fields: DocFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns (else fields are
    /// 1-based column numbers).
    pub header: bool,
    /// For `trec_sgml`: the elements that hold the title and the text.
    pub sgml: SgmlTags,
    /// For `trec_sgml`: `utf8` or `latin1` (ISO 8859-1, as older TREC disks).
    pub encoding: TextEncoding,
}

impl Default for CorpusParams {
    fn default() -> Self {
        CorpusParams {
            path: Source::default(),
            format: CorpusFormat::default(),
            fields: DocFields::default(),
            header: true,
            sgml: SgmlTags::default(),
            encoding: TextEncoding::default(),
        }
    }
}

/// Reads every file of a corpus source into `sink`, rejecting duplicate ids across files.
fn read_corpus(
    files: &[PathBuf],
    p: &CorpusParams,
    ids: &mut IdIndex,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    let mut n = 0;
    for file in files {
        let table = |format| Table {
            format,
            header: p.header,
        };
        let ids = Some(&mut *ids);
        n += match p.format {
            CorpusFormat::Msmarco => crate::read_msmarco_collection(file, ids, &mut sink)?,
            CorpusFormat::Beir => crate::read_beir_corpus(file, ids, &mut sink)?,
            CorpusFormat::PsgsW100 => crate::read_psgs_w100(file, ids, &mut sink)?,
            CorpusFormat::TrecSgml => {
                crate::read_trec_docs(file, &p.sgml, p.encoding, ids, &mut sink)?
            }
            CorpusFormat::Jsonl => crate::read_mapped_corpus(
                file,
                table(TableFormat::Jsonl),
                &p.fields,
                ids,
                &mut sink,
            )?,
            CorpusFormat::Csv => {
                crate::read_mapped_corpus(file, table(TableFormat::Csv), &p.fields, ids, &mut sink)?
            }
            CorpusFormat::Tsv => {
                crate::read_mapped_corpus(file, table(TableFormat::Tsv), &p.fields, ids, &mut sink)?
            }
            CorpusFormat::Parquet => crate::read_mapped_corpus(
                file,
                table(TableFormat::Parquet),
                &p.fields,
                ids,
                &mut sink,
            )?,
        };
    }
    Ok(n)
}

/// `ingest.corpus`: one corpus in any supported format, from a file or a folder of files.
pub struct IngestCorpus;

impl Stage for IngestCorpus {
    type Params = CorpusParams;
    const KIND: &'static str = "ingest.corpus";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "a corpus: msmarco/psgs_w100 TSV, BEIR jsonl, TREC SGML, or mapped jsonl/csv/tsv/parquet";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("corpus", Corpus)] }
    }
    fn check(p: &CorpusParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &CorpusParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &CorpusParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let files = files_under(&p.path.resolve(ctx)?)?;
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "corpus");
        let n = read_corpus(
            &files,
            p,
            &mut IdIndex::new(),
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        Ok(report(&[("docs", n), ("files", files.len() as u64)]))
    }
}

// ---------------------------------------------------------------- ingest.pairs

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PairsParams {
    /// The file: a path (relative to the pipeline file), `{url, sha256|md5, member}` or `{collection, member}`.
    pub path: Source,
    /// The file format: `jsonl`, `csv`, `tsv` or `parquet`.
    pub format: TableFormat,
    /// Field names of the query, positive and (optional) negative texts and ids.
    pub fields: PairFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns (else fields are
    /// 1-based column numbers).
    pub header: bool,
}

impl Default for PairsParams {
    fn default() -> Self {
        PairsParams {
            path: Source::default(),
            format: TableFormat::Jsonl,
            fields: PairFields::default(),
            header: true,
        }
    }
}

/// `ingest.pairs`: (query, positive[, negative]) training pairs → queries, a corpus of the
/// pair texts and qrels (positive 1, negative 0); see [`crate::read_pairs`] for ids.
pub struct IngestPairs;

impl Stage for IngestPairs {
    type Params = PairsParams;
    const KIND: &'static str = "ingest.pairs";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "(query, positive[, negative]) pairs in jsonl/csv/tsv/parquet -> corpus, queries, qrels";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &PairsParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &PairsParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &PairsParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let file = p.path.resolve(ctx)?;
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let mut queries = ParquetSink::<Query>::create(&ctx.output("queries"))?;
        let task = spinner(ctx, "pairs");
        let (mut n_docs, mut n_queries) = (0u64, 0u64);
        let table = Table {
            format: p.format,
            header: p.header,
        };
        let pairs = crate::read_pairs(&file, table, &p.fields, |item| match item {
            PairItem::Query(q) => {
                task.inc(1);
                n_queries += 1;
                queries.push(q)
            }
            PairItem::Doc(d) => {
                n_docs += 1;
                corpus.push(d)
            }
        })?;
        corpus.finish()?;
        queries.finish()?;
        let n_qrels = pairs.qrels.len() as u64;
        let positives = pairs.qrels.iter().filter(|q| q.relevance > 0).count() as u64;
        rrra_common::artifact::write_rows::<Qrel>(&ctx.output("qrels"), pairs.qrels)?;
        Ok(report(&[
            ("records", pairs.records),
            ("docs", n_docs),
            ("queries", n_queries),
            ("qrels", n_qrels),
            ("positives", positives),
        ]))
    }
}

// ---------------------------------------------------------------- ingest.trec

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrecParams {
    /// TREC SGML documents: a file or a folder of files (read in path order).
    pub docs: Source,
    /// A TREC topics file (`<top>` blocks).
    pub topics: Source,
    /// TREC qrels (`qid iter docno rel`).
    pub qrels: Source,
    /// The topic fields whose text, joined, is the query.
    pub topic_fields: Vec<TopicField>,
    /// The elements that hold a document's title and text.
    pub sgml: SgmlTags,
    /// The documents' encoding: `utf8` or `latin1`.
    pub encoding: TextEncoding,
    /// Judgements of documents the corpus lacks: `error` (reject the file), `keep` or `drop`.
    pub unknown_docs: UnknownDocs,
}

impl Default for TrecParams {
    fn default() -> Self {
        TrecParams {
            docs: Source::default(),
            topics: Source::default(),
            qrels: Source::default(),
            topic_fields: vec![TopicField::Title],
            sgml: SgmlTags::default(),
            encoding: TextEncoding::default(),
            unknown_docs: UnknownDocs::default(),
        }
    }
}

/// `ingest.trec`: a TREC ad hoc collection (SGML documents, topics, qrels), as Robust04 or
/// the TREC release of Vaswani/NPL.
pub struct IngestTrec;

impl Stage for IngestTrec {
    type Params = TrecParams;
    const KIND: &'static str = "ingest.trec";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "TREC collection: SGML <DOC> files, <top> topics, qrels";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &TrecParams) -> Result<(), String> {
        if p.topic_fields.is_empty() {
            return Err("param topic_fields must name at least one of title, desc, narr".into());
        }
        required(&[
            ("docs", &p.docs),
            ("topics", &p.topics),
            ("qrels", &p.qrels),
        ])
    }
    fn sources(p: &TrecParams) -> Vec<PathBuf> {
        local_sources([&p.docs, &p.topics, &p.qrels])
    }
    fn run(p: &TrecParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let files = files_under(&p.docs.resolve(ctx)?)?;
        let corpus_params = CorpusParams {
            format: CorpusFormat::TrecSgml,
            sgml: p.sgml.clone(),
            encoding: p.encoding,
            ..CorpusParams::default()
        };
        let mut docs = IdIndex::new();
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "documents");
        let n_docs = read_corpus(
            &files,
            &corpus_params,
            &mut docs,
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        drop(task);
        let queries = QueriesParams {
            format: QueryFormat::TrecTopics,
            topic_fields: p.topic_fields.clone(),
            ..QueriesParams::default()
        };
        let n_queries = write_queries(ctx, &p.topics.resolve(ctx)?, &queries)?;
        let qrels = QrelsParams::default();
        let n_qrels = write_qrels(
            ctx,
            &p.qrels.resolve(ctx)?,
            Some(&docs),
            p.unknown_docs,
            &qrels,
        )?;
        Ok(qrels_counts(
            vec![
                ("docs", n_docs),
                ("files", files.len() as u64),
                ("queries", n_queries),
            ],
            n_qrels,
            p.unknown_docs,
        ))
    }
}
