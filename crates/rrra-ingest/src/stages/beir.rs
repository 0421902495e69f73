//! `ingest.beir`: a BEIR data set folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`).

use super::qrels::qrels_counts;
use super::{UnknownDocs, sink_into, spinner};
use crate::IdIndex;
use crate::source::Source;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::schema::ArtifactKind::{Corpus, Qrels, Queries};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BeirParams {
    /// The data set folder holding `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`.
    pub path: Source,
    /// The qrels split read (`qrels/<split>.tsv`): `train`, `dev` or `test`.
    pub split: String,
    /// Keep every query, not only those judged in `split` (BEIR keeps judged ones).
    pub all_queries: bool,
    /// Judgements of documents the corpus lacks: `error` (reject the file, naming the
    /// line), `keep` or `drop`. Left out of the cache key at its default.
    #[serde(skip_serializing_if = "UnknownDocs::is_error")]
    pub unknown_docs: UnknownDocs,
}

impl Default for BeirParams {
    fn default() -> Self {
        BeirParams {
            path: Source::default(),
            split: "test".into(),
            all_queries: false,
            unknown_docs: UnknownDocs::Error,
        }
    }
}

impl BeirParams {
    fn files(&self, folder: &Path) -> [PathBuf; 3] {
        [
            folder.join("corpus.jsonl"),
            folder.join("queries.jsonl"),
            folder.join("qrels").join(format!("{}.tsv", self.split)),
        ]
    }
}

/// `ingest.beir`: a BEIR data set folder and one qrels split.
pub struct IngestBeir;

impl Stage for IngestBeir {
    type Params = BeirParams;
    const KIND: &'static str = "ingest.beir";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("corpus", Corpus),
                Port::required("queries", Queries),
                Port::required("qrels", Qrels),
            ]
        }
    }
    fn check(p: &BeirParams) -> Result<(), String> {
        if p.path.is_empty() {
            return Err("param path is required (the BEIR data set folder)".into());
        }
        p.path.check("path")
    }
    fn sources(p: &BeirParams) -> Vec<PathBuf> {
        p.path
            .local()
            .map(|f| p.files(f).to_vec())
            .unwrap_or_default()
    }

    fn run(p: &BeirParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let [corpus_file, queries_file, qrels_file] = p.files(&p.path.resolve(ctx)?);
        let mut docs = IdIndex::new();
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "corpus");
        let n_docs = crate::read_beir_corpus(
            &corpus_file,
            Some(&mut docs),
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        drop(task);

        let mut judged = BTreeSet::new();
        let mut qrels = ParquetSink::<Qrel>::create(&ctx.output("qrels"))?;
        let known = p.unknown_docs.is_error().then_some(&docs);
        let mut dropped = 0;
        let n_qrels = crate::read_qrels(&qrels_file, known, |q| {
            if p.unknown_docs == UnknownDocs::Drop && !docs.contains(&q.doc_id) {
                dropped += 1;
                return Ok(());
            }
            judged.insert(q.query_id.clone());
            qrels.push(q)
        })?;
        qrels.finish()?;

        let mut queries = ParquetSink::<Query>::create(&ctx.output("queries"))?;
        let mut ids = IdIndex::new();
        let mut kept = 0;
        crate::read_beir_queries(&queries_file, Some(&mut ids), |q| {
            if p.all_queries || judged.contains(&q.id) {
                kept += 1;
                queries.push(q)?;
            }
            Ok(())
        })?;
        queries.finish()?;
        if let Some(missing) = judged.iter().find(|q| !ids.contains(q)) {
            return Err(Error::file(
                &qrels_file,
                format!(
                    "query id {missing:?} is judged but absent from {}",
                    queries_file.display()
                ),
            ));
        }
        Ok(qrels_counts(
            vec![("docs", n_docs), ("queries", kept)],
            (n_qrels - dropped, dropped),
            p.unknown_docs,
        ))
    }
}
