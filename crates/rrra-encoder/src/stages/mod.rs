//! The pipeline stages of the encoder, one kind per file: `encode.bert` ([`encode`]) and
//! `train.biencoder` ([`biencoder`]). Their library code (model resolution, settings,
//! fine-tuning) is in the crate's library modules, for other crates to use.

mod biencoder;
mod encode;

pub use biencoder::TrainBiencoder;
pub use encode::{EncodeBert, EncodeParams};

#[cfg(test)]
mod tests;
