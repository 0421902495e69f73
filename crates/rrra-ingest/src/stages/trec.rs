//! `ingest.trec`: TREC SGML documents, topics and qrels.

use super::beir::IngestBeir;
use super::corpus::{CorpusFormat, CorpusParams, read_corpus};
use super::qrels::{QrelsParams, qrels_counts, write_qrels};
use super::queries::{QueriesParams, QueryFormat, write_queries};
use super::{UnknownDocs, files_under, required, sink_into, spinner};
use crate::source::{Source, local_sources};
use crate::trec::{SgmlTags, TopicField};
use crate::{IdIndex, TextEncoding};
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::Doc;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
