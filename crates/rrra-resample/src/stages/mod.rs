//! The `resample.*` pipeline stages, one kind per file: mined `candidates` in, one
//! `examples` row per (query, positive) pair out, with hard negatives drawn from the query's
//! pool and optional random corpus negatives appended. What they share (ports, budget,
//! params fields, the sampling loop) is in [`pool`].

mod pool;

mod margin;
mod random;
mod rrra;
mod simans;
mod trisampler;
mod uniform;

pub use margin::{MarginParams, ResampleMargin};
pub use pool::{FnScore, MarginMode};
pub use random::{RandomParams, ResampleRandom};
pub use rrra::{ResampleRrra, RrraParams};
pub use simans::{ResampleSimans, SimansParams};
pub use trisampler::{ResampleTriSampler, TriSamplerParams};
pub use uniform::{ResampleUniform, UniformParams};

#[cfg(test)]
mod tests;
