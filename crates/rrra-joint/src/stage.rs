//! The `train.joint` stage: `train.biencoder`'s inputs plus a stage-2 adapter and the
//! mined candidates it was labelled on; outputs the encoder (`model`), its `log` (each
//! step's `L_con + L_adapter`), and the jointly trained `adapter`.

use rrra_adapter::labels::Class;
use rrra_adapter::pool::labelled_pool;
use rrra_adapter::saved::{SavedAdapter, save_adapter};
use rrra_common::schema::ArtifactKind::{
    Adapter, Candidates, Corpus, Examples, Model, Queries, TrainLog,
};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use rrra_encoder::finetune::{fine_tune, load_training_data};
use rrra_encoder::train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::JointAdapter;

/// Params of `train.joint`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JointParams {
    /// λ in `L_con + λ · L_adapter`: how much the adapter's loss moves the encoder.
    pub weight: f64,
    /// The adapter's peak learning rate (it follows the encoder's warm-up and decay);
    /// absent: the one it was trained with in stage 2.
    pub adapter_lr: Option<f64>,
    /// The encoder's training, as `train.biencoder`'s params.
    pub encoder: TrainConfig,
}

impl Default for JointParams {
    fn default() -> Self {
        JointParams {
            weight: 1.0,
            adapter_lr: None,
            encoder: TrainConfig::default(),
        }
    }
}

/// `train.joint`: stage 3 with the adapter trained alongside the encoder.
pub struct TrainJoint;

impl Stage for TrainJoint {
    type Params = JointParams;
    const KIND: &'static str = "train.joint";
    // 2: class weights balanced over the joint pairs, not stage 2's pool.
    // 3: the patched burn-flex (vectorised GELU, fused bias) moves the forward pass by ~1e-7.
    // 4: the adapter folder is byte-reproducible (rrra-adapter's `save_adapter`).
    const VERSION: u32 = 4;
    const ABOUT: &'static str =
        "fine-tune the bi-encoder and the adapter together (L_con + weight * L_adapter)";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("examples", Examples),
                Port::required("corpus", Corpus),
                Port::required("queries", Queries),
                Port::optional("model", Model),
                Port::required("adapter", Adapter),
                Port::required("candidates", Candidates),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("model", Model),
                Port::required("log", TrainLog),
                Port::required("adapter", Adapter),
            ]
        }
    }
    fn check(p: &JointParams) -> Result<(), String> {
        if !(p.weight >= 0.0 && p.weight.is_finite()) {
            return Err(format!(
                "param weight must be finite and >= 0, got {}",
                p.weight
            ));
        }
        if let Some(lr) = p.adapter_lr
            && !(lr > 0.0 && lr.is_finite())
        {
            return Err(format!("param adapter_lr must be finite and > 0, got {lr}"));
        }
        p.encoder.check().map_err(|e| format!("encoder: {e}"))
    }
    fn sources(p: &JointParams) -> Vec<std::path::PathBuf> {
        p.encoder.sources()
    }

    fn run(p: &JointParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let (data, ids) = load_training_data(ctx)?;
        let start = ctx.input("adapter")?;
        let saved = SavedAdapter::read(start)?;
        let stage2 = saved.trained_with(start)?;
        // The labels the adapter was trained with, keyed by the training data's indices.
        let pool = labelled_pool(ctx.input("candidates")?, stage2.k_p, stage2.pool)?;
        // Interned numbers to the training data's indices (absent: not in the data).
        let query_at: Vec<Option<usize>> = (0..pool.queries.len() as u32)
            .map(|q| ids.queries.get(pool.queries.id(q)).copied())
            .collect();
        let doc_at: Vec<Option<usize>> = (0..pool.docs.len() as u32)
            .map(|d| ids.docs.get(pool.docs.id(d)).copied())
            .collect();
        let classes = pool
            .pairs
            .iter()
            .filter_map(|&(q, d, class)| {
                Some(((query_at[q as usize]?, doc_at[d as usize]?), class))
            })
            .collect();
        let mut aux = JointAdapter::new(
            start,
            saved.clone(),
            classes,
            &data,
            p.encoder.max_negatives,
            p.weight,
            p.adapter_lr,
        )?;
        let weights = aux.class_weights();
        let mut report = fine_tune(&p.encoder, ctx, &data, Some(&mut aux))?;
        let (net, saved, losses) = aux.finish().ok_or_else(|| {
            Error::Invalid("joint training ran no step; expected at least one example".into())
        })?;
        save_adapter(&ctx.output_dir("adapter")?, &net, &saved)?;
        let per_epoch = data.examples.len().div_ceil(p.encoder.batch_size);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        report.metrics.extend([
            ("adapter_weight".to_string(), p.weight),
            (
                "adapter_loss_first_epoch".to_string(),
                mean(&losses[..per_epoch.min(losses.len())]),
            ),
            (
                "adapter_loss_last_epoch".to_string(),
                mean(&losses[losses.len().saturating_sub(per_epoch)..]),
            ),
            ("adapter_parameters".to_string(), net.parameters() as f64),
        ]);
        for class in Class::ALL {
            report.metrics.insert(
                format!("adapter_class_weight_{}", class.name()),
                weights[class as usize],
            );
        }
        Ok(report)
    }
}
