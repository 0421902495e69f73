//! The `ingest.*` pipeline stages: each reads source files in one format and writes
//! corpus / queries / qrels / run artifacts. Also `qrels.hide`, which splits qrels for
//! false-negative detection experiments.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rrra_common::artifact::ParquetSink;
use rrra_common::progress::Task;
use rrra_common::records::{Doc, Qrel, Query, RunRow};
use rrra_common::schema::ArtifactKind::{Corpus, Qrels, Queries, Run};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::mapped::{QrelFields, QueryFields, Table, TableFormat};
use crate::source::{Source, local_sources};
use crate::trec::TopicField;
use crate::{HideSpec, IdIndex, QueryIds, SmartQrels};

/// What to do with a judgement of a document the corpus lacks (samples of a collection, such
/// as the DL19 sample that keeps no grade-0 passages, have such judgements by design).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDocs {
    /// Reject the file, naming the line.
    #[default]
    Error,
    /// Keep the judgement (it cannot be retrieved, but counts towards recall's denominator).
    Keep,
    /// Drop the judgement (the stage reports how many as `qrels_dropped`): for a corpus
    /// that lacks some judged documents, when downstream stages (mining, training) must
    /// find every judged document.
    Drop,
}

impl UnknownDocs {
    fn is_error(&self) -> bool {
        *self == UnknownDocs::Error
    }
}

pub(crate) fn spinner(ctx: &StageContext<'_>, label: &str) -> Box<dyn Task> {
    ctx.progress.task(label, None)
}

/// Copies records from a reader into a Parquet sink, reporting progress.
pub(crate) fn sink_into<R: rrra_common::table::Row>(
    sink: &mut ParquetSink<R>,
    task: &dyn Task,
) -> impl FnMut(R) -> Result<()> {
    move |row| {
        task.inc(1);
        sink.push(row)
    }
}

pub(crate) fn report(rows: &[(&str, u64)]) -> StageReport {
    StageReport {
        metrics: rows
            .iter()
            .map(|(k, v)| (k.to_string(), *v as f64))
            .collect(),
        table: None,
    }
}

// ---------------------------------------------------------------- ingest.beir

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

// ---------------------------------------------------------------- ingest.msmarco

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MsmarcoParams {
    /// `collection.tsv` (pid, passage).
    pub collection: Source,
    /// `queries.*.tsv` (qid, query).
    pub queries: Source,
    /// Qrels in TREC form (`qid iter pid grade`, tabs or spaces).
    pub qrels: Source,
    /// Judgements of documents the corpus lacks: `error` (reject the file), `keep` or `drop`.
    pub unknown_docs: UnknownDocs,
}

/// `ingest.msmarco`: MS MARCO passage TSV files and TREC qrels.
pub struct IngestMsmarco;

impl Stage for IngestMsmarco {
    type Params = MsmarcoParams;
    const KIND: &'static str = "ingest.msmarco";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "MS MARCO passage collection.tsv, queries TSV and TREC qrels";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &MsmarcoParams) -> Result<(), String> {
        required(&[
            ("collection", &p.collection),
            ("queries", &p.queries),
            ("qrels", &p.qrels),
        ])
    }
    fn sources(p: &MsmarcoParams) -> Vec<PathBuf> {
        local_sources([&p.collection, &p.queries, &p.qrels])
    }

    fn run(p: &MsmarcoParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let mut docs = IdIndex::new();
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "collection");
        let n_docs = crate::read_msmarco_collection(
            &p.collection.resolve(ctx)?,
            Some(&mut docs),
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        drop(task);
        let n_queries = write_queries(ctx, &p.queries.resolve(ctx)?, &QueriesParams::default())?;
        let qrels = QrelsParams::default();
        let n_qrels = write_qrels(
            ctx,
            &p.qrels.resolve(ctx)?,
            Some(&docs),
            p.unknown_docs,
            &qrels,
        )?;
        Ok(qrels_counts(
            vec![("docs", n_docs), ("queries", n_queries)],
            n_qrels,
            p.unknown_docs,
        ))
    }
}

/// Each param given and, when it is a download, well formed.
pub(crate) fn required(params: &[(&str, &Source)]) -> Result<(), String> {
    for (name, source) in params {
        if source.is_empty() {
            return Err(format!("param {name} is required"));
        }
        source.check(name)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- ingest.queries / ingest.qrels

/// The query file formats.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QueryFormat {
    /// `qid\tquery` (MS MARCO, TREC topics as TSV).
    #[default]
    Msmarco,
    /// BEIR `queries.jsonl`.
    Beir,
    /// DPR `*.qa.tsv` (question, Python list of answers).
    DprQa,
    /// TREC topics (`<top>`, `<num>`, `<title>`, `<desc>`, `<narr>`); `topic_fields`
    /// chooses the fields that form the query text.
    TrecTopics,
    /// JSON Lines with the field mapping `fields`.
    Jsonl,
    /// CSV with the field mapping `fields` (column names from the header, see `header`).
    Csv,
    /// TSV with the field mapping `fields`.
    Tsv,
    /// Parquet with the field mapping `fields`.
    Parquet,
}

pub(crate) fn write_queries(ctx: &StageContext<'_>, file: &Path, p: &QueriesParams) -> Result<u64> {
    let mut sink = ParquetSink::<Query>::create(&ctx.output("queries"))?;
    let mut ids = IdIndex::new();
    let push = |q: Query| sink.push(q);
    let table = |format| Table {
        format,
        header: p.header,
    };
    let n = match p.format {
        QueryFormat::Msmarco => crate::read_msmarco_queries(file, Some(&mut ids), push)?,
        QueryFormat::Beir => crate::read_beir_queries(file, Some(&mut ids), push)?,
        QueryFormat::DprQa => crate::read_dpr_qa_tsv(file, push)?,
        QueryFormat::TrecTopics => {
            crate::read_trec_topics(file, &p.topic_fields, Some(&mut ids), push)?
        }
        QueryFormat::Jsonl | QueryFormat::Csv | QueryFormat::Tsv | QueryFormat::Parquet => {
            let format = match p.format {
                QueryFormat::Jsonl => TableFormat::Jsonl,
                QueryFormat::Csv => TableFormat::Csv,
                QueryFormat::Tsv => TableFormat::Tsv,
                _ => TableFormat::Parquet,
            };
            crate::read_mapped_queries(file, table(format), &p.fields, Some(&mut ids), push)?
        }
    };
    sink.finish()?;
    Ok(n)
}

/// Writes the `qrels` output from `file`, checking each judged document against `docs`
/// (when given) as `unknown` says; returns (judgements written, judgements dropped).
pub(crate) fn write_qrels(
    ctx: &StageContext<'_>,
    file: &Path,
    docs: Option<&IdIndex>,
    unknown: UnknownDocs,
    p: &QrelsParams,
) -> Result<(u64, u64)> {
    let mut sink = ParquetSink::<Qrel>::create(&ctx.output("qrels"))?;
    let known = docs.filter(|_| unknown.is_error());
    let mut dropped = 0;
    let push = |q: Qrel| match docs {
        Some(docs) if unknown == UnknownDocs::Drop && !docs.contains(&q.doc_id) => {
            dropped += 1;
            Ok(())
        }
        _ => sink.push(q),
    };
    let n = match p.format {
        QrelsFormat::Auto => crate::read_qrels(file, known, push)?,
        QrelsFormat::Jsonl | QrelsFormat::Csv | QrelsFormat::Tsv | QrelsFormat::Parquet => {
            let format = match p.format {
                QrelsFormat::Jsonl => TableFormat::Jsonl,
                QrelsFormat::Csv => TableFormat::Csv,
                QrelsFormat::Tsv => TableFormat::Tsv,
                _ => TableFormat::Parquet,
            };
            let table = Table {
                format,
                header: p.header,
            };
            crate::read_mapped_qrels(file, table, &p.fields, known, push)?
        }
    };
    sink.finish()?;
    Ok((n - dropped, dropped))
}

/// The ingest report's counts, with `qrels_dropped` only under [`UnknownDocs::Drop`] (so
/// the other policies' manifests are unchanged).
pub(crate) fn qrels_counts(
    mut counts: Vec<(&str, u64)>,
    (kept, dropped): (u64, u64),
    unknown: UnknownDocs,
) -> StageReport {
    counts.push(("qrels", kept));
    if unknown == UnknownDocs::Drop {
        counts.push(("qrels_dropped", dropped));
    }
    report(&counts)
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueriesParams {
    /// The query file (relative to the pipeline file).
    pub path: Source,
    /// The file format.
    pub format: QueryFormat,
    /// Field names for `jsonl`, `csv`, `tsv` and `parquet`.
    pub fields: QueryFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns (else fields
    /// are 1-based column numbers).
    pub header: bool,
    /// For `trec_topics`: the fields whose text, joined, is the query.
    pub topic_fields: Vec<TopicField>,
}

impl Default for QueriesParams {
    fn default() -> Self {
        QueriesParams {
            path: Source::default(),
            format: QueryFormat::default(),
            fields: QueryFields::default(),
            header: true,
            topic_fields: vec![TopicField::Title],
        }
    }
}

/// `ingest.queries`: one query file.
pub struct IngestQueries;

impl Stage for IngestQueries {
    type Params = QueriesParams;
    const KIND: &'static str = "ingest.queries";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "a query file: msmarco TSV, BEIR jsonl, DPR qa.tsv, TREC topics, or mapped jsonl/csv/tsv/parquet";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("queries", Queries)] }
    }
    fn check(p: &QueriesParams) -> Result<(), String> {
        if p.format == QueryFormat::TrecTopics && p.topic_fields.is_empty() {
            return Err("param topic_fields must name at least one of title, desc, narr".into());
        }
        required(&[("path", &p.path)])
    }
    fn sources(p: &QueriesParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &QueriesParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let n = write_queries(ctx, &p.path.resolve(ctx)?, p)?;
        Ok(report(&[("queries", n)]))
    }
}

/// The qrels file formats.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QrelsFormat {
    /// TREC 4-column or BEIR TSV with header, told apart by the first line.
    #[default]
    Auto,
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
pub struct QrelsParams {
    /// The TREC qrels file (relative to the pipeline file).
    pub path: Source,
    /// Applies when a corpus is connected: judgements of documents it lacks.
    pub unknown_docs: UnknownDocs,
    /// The file format (`auto`: TREC or BEIR, told apart by the first line).
    pub format: QrelsFormat,
    /// Field names for `jsonl`, `csv`, `tsv` and `parquet` (`relevance: null`: all 1).
    pub fields: QrelFields,
    /// Whether a `csv`/`tsv` file starts with a header naming its columns.
    pub header: bool,
}

impl Default for QrelsParams {
    fn default() -> Self {
        QrelsParams {
            path: Source::default(),
            unknown_docs: UnknownDocs::default(),
            format: QrelsFormat::default(),
            fields: QrelFields::default(),
            header: true,
        }
    }
}

/// `ingest.qrels`: a TREC or BEIR qrels file, checked against a corpus when one is connected.
pub struct IngestQrels;

impl Stage for IngestQrels {
    type Params = QrelsParams;
    const KIND: &'static str = "ingest.qrels";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "a qrels file (TREC 4-column, BEIR TSV, or mapped jsonl/csv/tsv/parquet)";

    fn inputs() -> &'static [Port] {
        const { &[Port::optional("corpus", Corpus)] }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("qrels", Qrels)] }
    }
    fn check(p: &QrelsParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &QrelsParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &QrelsParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let known = match (ctx.optional_input("corpus"), p.unknown_docs) {
            (Some(corpus), UnknownDocs::Error | UnknownDocs::Drop) => {
                let mut ids = IdIndex::new();
                rrra_common::artifact::for_each_batch::<Doc>(corpus, |docs| {
                    for d in docs {
                        ids.insert("doc", corpus, 0, &d.id)?;
                    }
                    Ok(())
                })?;
                Some(ids)
            }
            (None, UnknownDocs::Drop) => {
                return Err(Error::Invalid(
                    "param unknown_docs: drop needs the corpus input (to know which \
                     documents exist)"
                        .into(),
                ));
            }
            _ => None,
        };
        let n = write_qrels(
            ctx,
            &p.path.resolve(ctx)?,
            known.as_ref(),
            p.unknown_docs,
            p,
        )?;
        Ok(qrels_counts(Vec::new(), n, p.unknown_docs))
    }
}

// ---------------------------------------------------------------- ingest.trec_run

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RunParams {
    /// The TREC run file (relative to the pipeline file).
    pub path: Source,
}

/// `ingest.trec_run`: a TREC run file from another system, to evaluate or compare against.
pub struct IngestTrecRun;

impl Stage for IngestTrecRun {
    type Params = RunParams;
    const KIND: &'static str = "ingest.trec_run";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "a TREC run file (qid Q0 docid rank score tag)";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("run", Run)] }
    }
    fn check(p: &RunParams) -> Result<(), String> {
        required(&[("path", &p.path)])
    }
    fn sources(p: &RunParams) -> Vec<PathBuf> {
        local_sources([&p.path])
    }
    fn run(p: &RunParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let mut sink = ParquetSink::<RunRow>::create(&ctx.output("run"))?;
        let n = crate::read_trec_run(&p.path.resolve(ctx)?, |r| sink.push(r))?;
        sink.finish()?;
        Ok(report(&[("rows", n)]))
    }
}

// ---------------------------------------------------------------- ingest.dpr

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

// ---------------------------------------------------------------- ingest.smart

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmartParams {
    /// The documents as SMART `.I` records (`cran.all.1400`, `CISI.ALL`, `cacm.all`).
    pub corpus: Source,
    /// The queries as SMART `.I` records (`cran.qry`, `CISI.QRY`) or TREC-style `<DOC>`
    /// topic blocks (`topics.cacm.txt`), told apart by the first line.
    pub queries: Source,
    /// The qrels (`cranqrel`, `CISI.REL`, `qrels.cacm.txt`).
    pub qrels: Source,
    /// `field` (the ids written in the query file) or `ordinal` (1-based positions; what
    /// Cranfield's `cranqrel` uses).
    pub query_ids: QueryIds,
    /// `auto` (from the first line), `cranfield`, `cisi` or `trec`.
    pub qrels_format: SmartQrels,
    /// Prepended to the `.I` numbers to form doc ids (`"CACM-"` for CACM's qrels).
    pub doc_id_prefix: String,
}

/// `ingest.smart`: a SMART-format test collection (Cranfield, CISI, CACM). Every query of
/// the query file is kept, judged or not; every judgement must name a known query and doc.
/// Grades: see [`crate::read_smart_qrels`].
pub struct IngestSmart;

impl Stage for IngestSmart {
    type Params = SmartParams;
    const KIND: &'static str = "ingest.smart";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "SMART test collection (.I records; Cranfield, CISI, CACM)";

    fn inputs() -> &'static [Port] {
        &[]
    }
    fn outputs() -> &'static [Port] {
        IngestBeir::outputs()
    }
    fn check(p: &SmartParams) -> Result<(), String> {
        required(&[
            ("corpus", &p.corpus),
            ("queries", &p.queries),
            ("qrels", &p.qrels),
        ])?;
        if p.doc_id_prefix.contains(char::is_whitespace) {
            return Err("param doc_id_prefix must not contain whitespace".into());
        }
        Ok(())
    }
    fn sources(p: &SmartParams) -> Vec<PathBuf> {
        local_sources([&p.corpus, &p.queries, &p.qrels])
    }

    fn run(p: &SmartParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let mut docs = IdIndex::new();
        let mut corpus = ParquetSink::<Doc>::create(&ctx.output("corpus"))?;
        let task = spinner(ctx, "corpus");
        let n_docs = crate::read_smart_corpus(
            &p.corpus.resolve(ctx)?,
            &p.doc_id_prefix,
            Some(&mut docs),
            sink_into(&mut corpus, &*task),
        )?;
        corpus.finish()?;
        drop(task);

        let mut ids = IdIndex::new();
        let mut queries = ParquetSink::<Query>::create(&ctx.output("queries"))?;
        let n_queries = crate::read_smart_queries(
            &p.queries.resolve(ctx)?,
            p.query_ids,
            Some(&mut ids),
            |q| queries.push(q),
        )?;
        queries.finish()?;

        let mut judged = BTreeSet::new();
        let mut relevant = 0;
        let mut qrels = ParquetSink::<Qrel>::create(&ctx.output("qrels"))?;
        let n_qrels = crate::read_smart_qrels(
            &p.qrels.resolve(ctx)?,
            p.qrels_format,
            Some(&ids),
            Some(&docs),
            |q| {
                relevant += u64::from(q.relevance > 0);
                if !judged.contains(&q.query_id) {
                    judged.insert(q.query_id.clone());
                }
                qrels.push(q)
            },
        )?;
        qrels.finish()?;
        Ok(report(&[
            ("docs", n_docs),
            ("queries", n_queries),
            ("judged_queries", judged.len() as u64),
            ("qrels", n_qrels),
            ("relevant", relevant),
        ]))
    }
}

// ---------------------------------------------------------------- qrels.hide

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HideParams {
    /// Share of each query's relevant judgements to hide, in `[0, 1]`, rounded down.
    pub fraction: f64,
    /// Relevant judgements of each query that always stay visible.
    pub min_visible: u32,
    /// The lowest grade that counts as relevant (`>= 1`).
    pub relevance_threshold: i32,
}

impl Default for HideParams {
    fn default() -> Self {
        HideParams {
            fraction: 0.5,
            min_visible: 1,
            relevance_threshold: 1,
        }
    }
}

/// `qrels.hide`: per query, hides a random `fraction` of the relevant judgements (keeping
/// at least `min_visible` of them), for false-negative detection experiments: `visible`
/// holds the rest (non-relevant judgements included), `hidden` the hidden ones. Seeded;
/// the draw for a query depends only on the seed, the query id and its relevant doc ids
/// (see [`crate::hide_relevant`]).
pub struct QrelsHide;

impl Stage for QrelsHide {
    type Params = HideParams;
    const KIND: &'static str = "qrels.hide";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "hide a random share of each query's relevant judgements";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const { &[Port::required("qrels", Qrels)] }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("visible", Qrels),
                Port::required("hidden", Qrels),
            ]
        }
    }
    fn check(p: &HideParams) -> Result<(), String> {
        if !(0.0..=1.0).contains(&p.fraction) {
            return Err(format!(
                "param fraction must be in [0, 1], found {}",
                p.fraction
            ));
        }
        if p.relevance_threshold < 1 {
            return Err(format!(
                "param relevance_threshold must be >= 1 (grades <= 0 are non-relevant), found {}",
                p.relevance_threshold
            ));
        }
        Ok(())
    }

    fn run(p: &HideParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let rows = rrra_common::artifact::read_rows::<Qrel>(ctx.input("qrels")?)?;
        let spec = HideSpec {
            fraction: p.fraction,
            min_visible: p.min_visible as usize,
            relevance_threshold: p.relevance_threshold,
        };
        let split = crate::hide_relevant(rows, &spec, ctx.seed);
        let hidden = split.hidden.len() as u64;
        rrra_common::artifact::write_rows(&ctx.output("visible"), split.visible)?;
        rrra_common::artifact::write_rows(&ctx.output("hidden"), split.hidden)?;
        Ok(report(&[
            ("queries", split.queries),
            ("relevant", split.relevant),
            ("hidden", hidden),
            ("visible", split.relevant - hidden),
        ]))
    }
}

// ---------------------------------------------------------------- qrels.split

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SplitParams {
    /// Share of the judged queries that go to `test`, rounded to the nearest query.
    pub test_fraction: f64,
}

impl Default for SplitParams {
    fn default() -> Self {
        SplitParams { test_fraction: 0.5 }
    }
}

/// `qrels.split`: divides judged queries into `train` and `test` qrels by a seeded draw
/// (for collections without a training split, such as the TREC DL sample or Cranfield).
/// Which queries are test depends only on the seed and the query ids
/// (see [`crate::split_queries`]).
pub struct QrelsSplit;

impl Stage for QrelsSplit {
    type Params = SplitParams;
    const KIND: &'static str = "qrels.split";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "split judged queries into train and test qrels";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const { &[Port::required("qrels", Qrels)] }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("train", Qrels),
                Port::required("test", Qrels),
            ]
        }
    }
    fn check(p: &SplitParams) -> Result<(), String> {
        if !(0.0..=1.0).contains(&p.test_fraction) {
            return Err(format!(
                "param test_fraction must be in [0, 1], found {}",
                p.test_fraction
            ));
        }
        Ok(())
    }

    fn run(p: &SplitParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let rows = rrra_common::artifact::read_rows::<Qrel>(ctx.input("qrels")?)?;
        let (train, test) = crate::split_queries(rows, p.test_fraction, ctx.seed);
        let queries = |r: &[Qrel]| {
            r.iter()
                .map(|q| q.query_id.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len() as u64
        };
        let counts = [
            ("train_queries", queries(&train)),
            ("test_queries", queries(&test)),
            ("train_qrels", train.len() as u64),
            ("test_qrels", test.len() as u64),
        ];
        rrra_common::artifact::write_rows(&ctx.output("train"), train)?;
        rrra_common::artifact::write_rows(&ctx.output("test"), test)?;
        Ok(report(&counts))
    }
}
