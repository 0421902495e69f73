//! Streaming readers for the text formats of retrieval data sets: BEIR JSON Lines and qrels,
//! MS MARCO passage TSVs, TREC qrels and runs, DPR biencoder JSON, `*.qa.tsv` files and
//! `psgs_w100.tsv`, the SMART-format test collections (Cranfield, CISI, CACM), TREC SGML
//! documents and topics, generic JSON Lines / CSV / TSV / Parquet tables with a field
//! mapping, and (query, positive[, negative]) pairs. Also [`hide_relevant`], which hides part
//! of the qrels for false-negative detection experiments, and [`split_queries`]. Inputs may
//! be downloaded ([`Source`], the [`catalog`] of named collections).
//!
//! Every text reader decompresses gzip transparently and skips a leading UTF-8 byte-order
//! mark.
//!
//! Every reader takes a path and a sink closure, hands it one record at a time, and returns
//! the number of records. Memory stays at one record (plus, where asked, an [`IdIndex`] of
//! ids). Line-based files may use `\n` or `\r\n`, may lack the final newline, and may hold
//! blank lines (skipped); they must be UTF-8. A file without any record is an error. Every
//! parse error is an [`rrra_common::Error::Input`] naming the file, the 1-based line (record
//! for DPR JSON) and what was expected.

mod beir;
pub mod catalog;
mod dpr;
mod hide;
mod ids;
mod lines;
mod mapped;
mod msmarco;
mod open;
mod pairs;
mod psgs;
mod qa;
mod qrels;
mod run;
mod smart;
mod source;
pub mod stages;
mod trec;

pub use beir::{read_beir_corpus, read_beir_queries};
pub use dpr::{DprContext, DprRecord, read_dpr_biencoder};
pub use hide::{HideSpec, Split, hidden_count, hide_relevant, split_queries};
pub use ids::IdIndex;
pub use lines::TextEncoding;
pub use mapped::{
    DocFields, QrelFields, QueryFields, Table, TableFormat, read_mapped_corpus, read_mapped_qrels,
    read_mapped_queries, read_table,
};
pub use msmarco::{read_msmarco_collection, read_msmarco_queries};
pub use pairs::{PairFields, PairItem, Pairs, read_pairs};
pub use psgs::read_psgs_w100;
pub use qa::read_dpr_qa_tsv;
pub use qrels::read_qrels;
pub use run::read_trec_run;
pub use smart::{QueryIds, SmartQrels, read_smart_corpus, read_smart_qrels, read_smart_queries};
pub use source::{Remote, Source};
pub use trec::{SgmlTags, TopicField, read_trec_docs, read_trec_topics};
