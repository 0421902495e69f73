//! The pipeline runner: parses and validates a YAML pipeline ([`pipeline`]), maps each
//! `kind` to its implementation ([`registry`]), and executes the DAG against a content-keyed
//! artifact cache ([`cache`], [`exec`]); [`tasks`] hands parts of split stages to other
//! processes. [`graph`] renders the DAG.

pub mod cache;
pub mod exec;
pub mod graph;
pub mod pipeline;
pub mod registry;
pub mod tasks;

pub use cache::Check;
pub use exec::{
    Done, Event, Executor, Found, Planned, RunError, StageStatus, State, archive, find, inspect,
    run, run_with, status,
};
pub use pipeline::{Pipeline, PipelineError};
