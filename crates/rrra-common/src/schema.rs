//! One Arrow schema per artifact kind, each with a version. The kind and version are stored
//! in the Parquet key-value metadata (`rrra.kind`, `rrra.schema_version`) so a reader can
//! refuse a file written under another contract.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

/// Metadata key holding the artifact kind.
pub const KIND_KEY: &str = "rrra.kind";
/// Metadata key holding the schema version of that kind.
pub const VERSION_KEY: &str = "rrra.schema_version";
/// Metadata key holding the vector width of an embeddings artifact.
pub const DIM_KEY: &str = "rrra.dim";

/// The kinds of artifact that flow between stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    Corpus,
    Queries,
    Qrels,
    Run,
    Metrics,
    /// One f32 vector per id; every vector of a file has the width in `rrra.dim`.
    Embeddings,
    /// Mined candidates per query: the top-K non-positive documents of a first-stage
    /// ranking (the hard-negative pool), plus every judged positive with its score.
    Candidates,
    /// Training examples: a query, one positive, sampled negatives, optional weights.
    Examples,
    /// A training log: one row per logged optimiser step.
    TrainLog,
    /// A model folder (not Parquet): `model.safetensors`, `config.json`, tokenizer files,
    /// laid out as sentence-transformers saves a model.
    Model,
    /// Candidates with the false-negative adapter's scores: the `candidates` columns plus
    /// `qa_score` (`cos(q, a)`), `s_fn` (false-negative likelihood in `[0, 1]`) and `p_rel`
    /// (the class head's probability that the pair is labelled relevant).
    Scored,
    /// An adapter folder (not Parquet): burnpack weights and `adapter.json`.
    Adapter,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 12] = [
        ArtifactKind::Corpus,
        ArtifactKind::Queries,
        ArtifactKind::Qrels,
        ArtifactKind::Run,
        ArtifactKind::Metrics,
        ArtifactKind::Embeddings,
        ArtifactKind::Candidates,
        ArtifactKind::Examples,
        ArtifactKind::TrainLog,
        ArtifactKind::Model,
        ArtifactKind::Scored,
        ArtifactKind::Adapter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::Corpus => "corpus",
            ArtifactKind::Queries => "queries",
            ArtifactKind::Qrels => "qrels",
            ArtifactKind::Run => "run",
            ArtifactKind::Metrics => "metrics",
            ArtifactKind::Embeddings => "embeddings",
            ArtifactKind::Candidates => "candidates",
            ArtifactKind::Examples => "examples",
            ArtifactKind::TrainLog => "train_log",
            ArtifactKind::Model => "model",
            ArtifactKind::Scored => "scored",
            ArtifactKind::Adapter => "adapter",
        }
    }

    /// Whether an artifact of this kind is a directory rather than one Parquet file.
    pub fn is_directory(self) -> bool {
        matches!(self, ArtifactKind::Model | ArtifactKind::Adapter)
    }

    /// The current schema version of this kind. Bump it when the schema changes.
    pub fn version(self) -> u32 {
        1
    }

    /// The Arrow schema, with kind and version in its metadata (empty for directory kinds).
    pub fn schema(self) -> SchemaRef {
        let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
        let list = |name: &str, item: DataType, nullable: bool| {
            Field::new(
                name,
                DataType::List(Arc::new(Field::new_list_field(item, false))),
                nullable,
            )
        };
        let fields = match self {
            ArtifactKind::Corpus => vec![utf8("doc_id"), utf8("title"), utf8("text")],
            ArtifactKind::Queries => vec![
                utf8("query_id"),
                utf8("text"),
                list("answers", DataType::Utf8, true),
            ],
            ArtifactKind::Qrels => vec![
                utf8("query_id"),
                utf8("doc_id"),
                Field::new("relevance", DataType::Int32, false),
            ],
            ArtifactKind::Run => vec![
                utf8("query_id"),
                utf8("doc_id"),
                Field::new("rank", DataType::UInt32, false),
                Field::new("score", DataType::Float64, false),
            ],
            ArtifactKind::Metrics => vec![
                utf8("query_id"),
                utf8("measure"),
                Field::new("value", DataType::Float64, false),
            ],
            ArtifactKind::Embeddings => vec![utf8("id"), list("vector", DataType::Float32, false)],
            ArtifactKind::Candidates => vec![
                utf8("query_id"),
                utf8("doc_id"),
                Field::new("rank", DataType::UInt32, false),
                Field::new("score", DataType::Float64, false),
                Field::new("positive", DataType::Boolean, false),
            ],
            ArtifactKind::Examples => vec![
                utf8("query_id"),
                utf8("positive_id"),
                list("negatives", DataType::Utf8, false),
                list("weights", DataType::Float32, true),
            ],
            ArtifactKind::TrainLog => vec![
                Field::new("step", DataType::UInt32, false),
                Field::new("epoch", DataType::UInt32, false),
                Field::new("loss", DataType::Float64, false),
                Field::new("lr", DataType::Float64, false),
                Field::new("samples_per_s", DataType::Float64, false),
            ],
            ArtifactKind::Scored => vec![
                utf8("query_id"),
                utf8("doc_id"),
                Field::new("rank", DataType::UInt32, false),
                Field::new("score", DataType::Float64, false),
                Field::new("positive", DataType::Boolean, false),
                Field::new("qa_score", DataType::Float64, false),
                Field::new("s_fn", DataType::Float64, false),
                Field::new("p_rel", DataType::Float64, false),
            ],
            ArtifactKind::Model | ArtifactKind::Adapter => vec![],
        };
        let metadata = arrow::datatypes::Metadata::default()
            .with(KIND_KEY, self.name())
            .with(VERSION_KEY, self.version().to_string());
        Arc::new(Schema::new_with_metadata(fields, metadata))
    }
}

impl std::fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
