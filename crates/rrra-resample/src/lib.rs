//! Negative samplers for dense-retriever training, as `resample.*` pipeline stages: per
//! (query, positive) pair of a mined `candidates` artifact, hard negatives drawn without
//! replacement from the query's pool, then optional random corpus negatives, written as
//! `examples`. The samplers are the baselines of the method (METHOD.md, "Baseline
//! samplers"): a uniform rank window ([`ResampleUniform`]), SimANS ([`ResampleSimans`]),
//! TriSampler ([`ResampleTriSampler`]), positive-aware margin ([`ResampleMargin`]) and
//! random corpus documents ([`ResampleRandom`]), and RRRA's adapter-weighted sampler
//! ([`ResampleRrra`]) over `scored` candidates. The math, usable without Parquet, is in
//! [`sampling`].

pub mod sampling;
pub mod stages;

pub use sampling::Hardness;
pub use stages::{
    FnScore, MarginMode, MarginParams, RandomParams, ResampleMargin, ResampleRandom, ResampleRrra,
    ResampleSimans, ResampleTriSampler, ResampleUniform, RrraParams, SimansParams,
    TriSamplerParams, UniformParams,
};
