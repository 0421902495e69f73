//! `ingest.dpr`: DPR biencoder JSON (questions, answers, contexts) as corpus, queries and
//! qrels.

use super::beir::IngestBeir;
use super::{report, required, spinner};
use crate::source::{Source, local_sources};
use rrra_common::artifact::ParquetSink;
use rrra_common::records::{Doc, Qrel, Query};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DprParams {
    /// A DPR biencoder JSON file (`biencoder-nq-*.json`, or its `.gz`).
    pub path: Source,
}

/// `ingest.dpr`: DPR biencoder JSON. Queries are the questions (ids = 0-based record index,
/// with their answers); the corpus is every context, once per id; qrels mark the positive
/// contexts relevant (1) and hard negatives non-relevant (0).
pub struct IngestDpr;

impl Stage for IngestDpr {
    type Params = DprParams;
    const KIND: &'static str = "ingest.dpr";
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "DPR biencoder JSON (questions, answers, contexts)";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &DprParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &DprParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &DprParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let file = p.path.resolve(ctx)?;
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let mut queries = ParquetSink::<Query>::create(&ctx.output("queries"))?;
        let mut qrels = ParquetSink::<Qrel>::create(&ctx.output("qrels"))?;
        // Context id -> blake3 of its content, to reject one id with two different texts.
        let mut seen: HashMap<String, blake3::Hash> = HashMap::new();
        let (mut n_docs, mut n_qrels, mut record) = (0u64, 0u64, 0u64);
        let task = spinner(ctx, "records");
        crate::read_dpr_biencoder(&file, |r| {
            task.inc(1);
            record += 1;
            let query_id = (record - 1).to_string();
            // One judgement per context: DPR files repeat a passage within a list, or
            // list it as both positive and hard negative; the positive grade wins.
            let mut judged: Vec<(&str, i32)> = Vec::new();
            let lists = r
                .positive_ctxs
                .iter()
                .map(|c| (c, 1))
                .chain(r.hard_negative_ctxs.iter().map(|c| (c, 0)));
            for (c, relevance) in lists {
                if !judged.iter().any(|(id, _)| *id == c.id) {
                    judged.push((&c.id, relevance));
                }
            }
            for (doc_id, relevance) in judged {
                qrels.push(Qrel {
                    query_id: query_id.clone(),
                    doc_id: doc_id.to_string(),
                    relevance,
                })?;
                n_qrels += 1;
            }
            let contexts = r
                .positive_ctxs
                .into_iter()
                .chain(r.negative_ctxs)
                .chain(r.hard_negative_ctxs);
            for c in contexts {
                let content = blake3::Hasher::new()
                    .update(c.title.as_bytes())
                    .update(&[0])
                    .update(c.text.as_bytes())
                    .finalize();
                match seen.get(&c.id) {
                    Some(h) if *h == content => continue,
                    Some(_) => {
                        return Err(Error::input(
                            &file,
                            record,
                            format!("context id {:?} appears with two different texts", c.id),
                        ));
                    }
                    None => {}
                }
                seen.insert(c.id.clone(), content);
                corpus.push(Doc {
                    id: c.id,
                    title: c.title,
                    text: c.text,
                })?;
                n_docs += 1;
            }
            queries.push(Query {
                id: query_id,
                text: r.question,
                answers: Some(r.answers),
            })
        })?;
        corpus.finish()?;
        queries.finish()?;
        qrels.finish()?;
        Ok(report(&[
            ("docs", n_docs),
            ("queries", record),
            ("qrels", n_qrels),
        ]))
    }
}
