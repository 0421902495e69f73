//! `ingest.corpus`: a user's own corpus, one file or a folder, in any supported format.

use super::{files_under, report, required, sink_into, spinner};
use crate::mapped::{DocFields, Table, TableFormat};
use crate::source::{Source, local_sources};
use crate::trec::SgmlTags;
use crate::{IdIndex, TextEncoding};
use rrra_common::Result;
use rrra_common::artifact::ParquetSink;
use rrra_common::records::Doc;
use rrra_common::schema::ArtifactKind::Corpus;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
pub(super) fn read_corpus(
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
