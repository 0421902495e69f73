//! The artifact contract of rrra. Every stage crate depends on this crate and on no other
//! stage crate: records ([`records`]), one versioned Arrow schema per artifact kind
//! ([`schema`]), Parquet reading and writing with temp-then-rename ([`artifact`]), columnar
//! reading of pair artifacts ([`columns`]), manifests ([`manifest`]), part-based outputs
//! ([`parts`]), memory-mapped vectors ([`vectors`]) and scratch arrays ([`scratch`]) with their
//! pages kept out of the resident set ([`residency`]), the
//! [`stage::Stage`] trait, and progress reporting ([`progress`]).

pub mod artifact;
pub mod columns;
pub mod embeddings;
pub mod error;
pub mod manifest;
pub mod parts;
pub mod progress;
pub mod records;
pub mod report;
pub mod residency;
pub mod schema;
pub mod scratch;
pub mod stage;
pub mod table;
pub mod vectors;

pub use error::{Error, Result};
