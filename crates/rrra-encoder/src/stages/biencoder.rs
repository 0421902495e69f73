//! `train.biencoder`: contrastive fine-tuning, a model folder and a training log out; the
//! work is [`crate::finetune`]'s.

use std::path::PathBuf;

use rrra_common::schema::ArtifactKind::{Corpus, Examples, Model, Queries, TrainLog};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use crate::finetune::{fine_tune, load_training_data};
use crate::train::TrainConfig;

/// `train.biencoder`: contrastive fine-tuning of the encoder on training examples; writes
/// a sentence-transformers model folder and a per-step training log.
pub struct TrainBiencoder;

impl Stage for TrainBiencoder {
    type Params = TrainConfig;
    const KIND: &'static str = "train.biencoder";
    // v2: the patched burn-flex changes the forward pass by ~1e-7 (see encode.bert).
    const VERSION: u32 = 2;
    const ABOUT: &'static str =
        "InfoNCE fine-tuning of the bi-encoder (AdamW, warm-up, clipping, checkpoints)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("examples", Examples),
                Port::required("corpus", Corpus),
                Port::required("queries", Queries),
                Port::optional("model", Model),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("model", Model),
                Port::required("log", TrainLog),
            ]
        }
    }
    fn check(p: &TrainConfig) -> Result<(), String> {
        p.check()
    }
    fn sources(p: &TrainConfig) -> Vec<PathBuf> {
        p.sources()
    }

    fn run(p: &TrainConfig, ctx: &StageContext<'_>) -> rrra_common::Result<StageReport> {
        let (data, _) = load_training_data(ctx)?;
        fine_tune(p, ctx, &data, None)
    }
}
