//! The closed set of stage implementations. Each `kind` of a pipeline file names one
//! [`Stage`] type; [`lookup`] finds it. Swapping an implementation in an ablation is
//! changing `kind` in the YAML.

use std::marker::PhantomData;
use std::path::PathBuf;

use rrra_common::stage::{Port, Stage, StageContext, StageReport};

/// A params error, with the path of the offending field when known (e.g. `k1`).
#[derive(Debug)]
pub struct ParamsError {
    pub path: Option<String>,
    pub message: String,
}

type Exec = Box<dyn Fn(&StageContext<'_>) -> rrra_common::Result<StageReport> + Send + Sync>;

/// A stage with validated params, ready to run.
pub struct Prepared {
    /// The params with defaults filled in, as canonical JSON (sorted keys).
    pub params: serde_json::Value,
    /// The params as written (part sizes, which `params` leaves out, included): what a
    /// task file carries to run the stage elsewhere.
    pub raw: serde_json::Value,
    /// Source files it reads, relative to the pipeline directory.
    pub sources: Vec<PathBuf>,
    exec: Exec,
}

impl Prepared {
    pub fn run(&self, ctx: &StageContext<'_>) -> rrra_common::Result<StageReport> {
        (self.exec)(ctx)
    }
}

/// The object-safe face of a [`Stage`].
pub trait DynStage: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn about(&self) -> &'static str;
    fn seeded(&self) -> bool;
    fn inputs(&self) -> &'static [Port];
    fn outputs(&self) -> &'static [Port];
    /// The params as a JSON schema: every param with its type, default and doc comment.
    fn params_schema(&self) -> serde_json::Value;
    /// The Rust path of the implementing type where it is defined (e.g.
    /// `rrra_mine::dense::MineDense`), taken from the type itself so it cannot drift:
    /// `cargo xtask kinds` maps it to the kind's source file.
    fn type_path(&self) -> &'static str;
    fn prepare(&self, params: &serde_json::Value) -> Result<Prepared, ParamsError>;
}

struct Erased<S>(PhantomData<fn() -> S>);

impl<S: Stage> DynStage for Erased<S>
where
    S::Params: schemars::JsonSchema,
{
    fn kind(&self) -> &'static str {
        S::KIND
    }
    fn version(&self) -> u32 {
        S::VERSION
    }
    fn about(&self) -> &'static str {
        S::ABOUT
    }
    fn seeded(&self) -> bool {
        S::SEEDED
    }
    fn inputs(&self) -> &'static [Port] {
        S::inputs()
    }
    fn outputs(&self) -> &'static [Port] {
        S::outputs()
    }
    fn params_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(S::Params)).expect("a schema is JSON")
    }
    fn type_path(&self) -> &'static str {
        std::any::type_name::<S>()
    }
    fn prepare(&self, params: &serde_json::Value) -> Result<Prepared, ParamsError> {
        let typed: S::Params = serde_path_to_error::deserialize(params.clone()).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde names an unknown field in its message, not in the path.
            let unknown = inner
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            ParamsError {
                path: unknown.or((path != ".").then_some(path.clone())),
                message: if path == "." {
                    format!("params: {inner}")
                } else {
                    format!("param {path}: {inner}")
                },
            }
        })?;
        S::check(&typed).map_err(|message| ParamsError {
            path: None,
            message,
        })?;
        let canonical = serde_json::to_value(&typed).map_err(|e| ParamsError {
            path: None,
            message: e.to_string(),
        })?;
        Ok(Prepared {
            params: canonical,
            raw: params.clone(),
            sources: S::sources(&typed),
            exec: Box::new(move |ctx| S::run(&typed, ctx)),
        })
    }
}

macro_rules! registry {
    ($($stage:ty),* $(,)?) => {
        static STAGES: &[&dyn DynStage] = &[$(&Erased::<$stage>(PhantomData)),*];
    };
}

registry![
    rrra_ingest::stages::IngestBeir,
    rrra_ingest::stages::IngestMsmarco,
    rrra_ingest::stages::IngestQueries,
    rrra_ingest::stages::IngestQrels,
    rrra_ingest::stages::IngestTrecRun,
    rrra_ingest::stages::IngestDpr,
    rrra_ingest::stages::IngestSmart,
    rrra_ingest::stages::IngestCorpus,
    rrra_ingest::stages::IngestPairs,
    rrra_ingest::stages::IngestTrec,
    rrra_ingest::stages::QrelsHide,
    rrra_ingest::stages::QrelsSplit,
    rrra_encoder::stages::EncodeBert,
    rrra_encoder::stages::TrainBiencoder,
    rrra_retrieve::stages::RetrieveBm25,
    rrra_retrieve::stages::RetrieveDense,
    rrra_mine::MineDense,
    rrra_mine::MineBm25,
    rrra_resample::ResampleUniform,
    rrra_resample::ResampleSimans,
    rrra_resample::ResampleTriSampler,
    rrra_resample::ResampleMargin,
    rrra_resample::ResampleRandom,
    rrra_resample::ResampleRrra,
    rrra_adapter::TrainAdapter,
    rrra_adapter::ScoreAdapter,
    rrra_joint::TrainJoint,
    rrra_rerank::RerankAdapter,
    rrra_rerank::RerankNone,
    rrra_eval::stages::EvalTrec,
    rrra_eval::stages::EvalCompare,
    rrra_eval::stages::EvalFnDetection,
];

/// The implementation of `kind`, if there is one.
pub fn lookup(kind: &str) -> Option<&'static dyn DynStage> {
    STAGES.iter().copied().find(|s| s.kind() == kind)
}

/// Every known kind, sorted.
pub fn kinds() -> Vec<&'static str> {
    let mut kinds: Vec<_> = STAGES.iter().map(|s| s.kind()).collect();
    kinds.sort_unstable();
    kinds
}

/// Every known stage implementation.
pub fn all() -> &'static [&'static dyn DynStage] {
    STAGES
}
