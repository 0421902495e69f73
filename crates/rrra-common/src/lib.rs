//! The artifact contract of rrra. Every stage crate depends on this crate and on no other
//! stage crate: records, Arrow schemas, Parquet reading and writing, manifests and hashing,
//! the [`stage::Stage`] trait, and the [`progress::Progress`] reporting trait.

pub mod error;
pub mod progress;
pub mod records;

pub use error::{Error, Result};
