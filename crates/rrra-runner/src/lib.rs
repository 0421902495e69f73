//! The pipeline runner: parses and validates a YAML pipeline ([`pipeline`]), maps each
//! `kind` to its implementation ([`registry`]), and executes the DAG against a content-keyed
//! artifact cache ([`cache`], [`exec`]). [`graph`] renders the DAG.

pub mod cache;
pub mod exec;
pub mod graph;
pub mod pipeline;
pub mod registry;

pub use exec::{Done, Event, RunError, State, run, status};
pub use pipeline::{Pipeline, PipelineError};
