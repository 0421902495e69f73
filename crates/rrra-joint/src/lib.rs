//! RRRA's joint stage 3 (METHOD.md, "Stages"): the bi-encoder and the false-negative
//! adapter trained together, `L = L_con + λ · L_adapter`, as the stage `train.joint`.
//!
//! The adapter starts from a stage-2 adapter (`train.adapter`) and keeps its loss settings
//! (`L_norm`, `L_pull`, balanced classes, the TP/FN/FP/TN labels of its mined candidates). On
//! every encoder batch it is applied to each example's own pairs (query with its positive
//! and its hard negatives), on the batch's live embeddings. Its parameters take the
//! gradient of `L_adapter` itself; the encoder takes `λ` times the gradient `L_adapter`
//! sends into the embeddings, beside the InfoNCE gradient. So `λ = 0` trains the encoder
//! exactly as `train.biencoder` does while the adapter follows the moving encoder, and the
//! adapter that comes out matches the encoder that comes out (the reviewers' staleness
//! point, answered here without re-mining).
//!
//! This crate composes two stage crates' libraries (the encoder's training loop through its
//! [`Auxiliary`] hook, the adapter's network and loss); neither knows of the other.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use rrra_adapter::AdapterNet;
use rrra_adapter::labels::Class;
use rrra_adapter::saved::SavedAdapter;
use rrra_adapter::train::{TrainAdapterParams, class_weights, loss};
use rrra_encoder::Error;
use rrra_encoder::train::{Auxiliary, BatchView, TrainData};

mod stage;
pub use stage::{JointParams, TrainJoint};

/// The adapter side of joint training, an encoder [`Auxiliary`].
pub struct JointAdapter {
    /// The stage-2 adapter folder it starts from.
    start: PathBuf,
    saved: SavedAdapter,
    /// Stage 2's params: the loss settings it keeps.
    params: TrainAdapterParams,
    /// λ, the weight of the adapter's loss in the encoder's objective.
    weight: f64,
    /// Peak learning rate (it follows the encoder's schedule).
    lr: f64,
    /// Class of each (query, document) pair of the training data, by their indices there;
    /// pairs not listed are FN (a positive) or TN (a negative).
    classes: HashMap<(usize, usize), Class>,
    class_weights: [f64; 4],
    net: Option<AdapterNet>,
    optim: ModuleOptimizer,
    /// The adapter's loss at every step.
    losses: Vec<f64>,
}

const WEIGHTS: &str = "adapter.bpk";
const OPTIM: &str = "adapter-optim.bpk";

impl JointAdapter {
    /// Joint training from the stage-2 adapter in folder `start` (its `adapter.json` is
    /// `saved`) on the pairs of `data` (each example's positive and first `max_negatives`
    /// negatives), whose classes `classes` gives. Class weights are balanced over those
    /// pairs (when stage 2 balanced them), not over stage 2's pool: a batch holds one
    /// positive per example where the pool held one in a hundred.
    pub fn new(
        start: &Path,
        saved: SavedAdapter,
        classes: HashMap<(usize, usize), Class>,
        data: &TrainData,
        max_negatives: usize,
        weight: f64,
        lr: Option<f64>,
    ) -> rrra_common::Result<Self> {
        let params = saved.trained_with(start)?.clone();
        // What it says of stage 2's training no longer describes this adapter.
        let saved = SavedAdapter {
            summary: None,
            ..saved
        };
        let mut joint = JointAdapter {
            start: start.to_path_buf(),
            lr: lr.unwrap_or(params.lr),
            class_weights: [0.0; 4],
            optim: AdamWConfig::new()
                .with_weight_decay(params.weight_decay as f32)
                .init(),
            saved,
            params,
            weight,
            classes,
            net: None,
            losses: Vec::new(),
        };
        let mut counts = [0; 4];
        for e in &data.examples {
            counts[joint.class(e.query, e.positive, true) as usize] += 1;
            for &n in e.negatives.iter().take(max_negatives) {
                counts[joint.class(e.query, n, false) as usize] += 1;
            }
        }
        joint.class_weights = class_weights(counts, joint.params.balanced);
        Ok(joint)
    }

    /// The cross-entropy weight of each class, in [`Class`] order.
    pub fn class_weights(&self) -> [f64; 4] {
        self.class_weights
    }

    /// The trained adapter (after training) and what `adapter.json` should say of it.
    pub fn finish(self) -> Option<(AdapterNet, SavedAdapter, Vec<f64>)> {
        let net = self.net?.valid();
        Some((net, self.saved, self.losses))
    }

    fn class(&self, query: usize, doc: usize, positive: bool) -> Class {
        self.classes
            .get(&(query, doc))
            .copied()
            .unwrap_or(if positive { Class::Fn } else { Class::Tn })
    }
}

impl Auxiliary for JointAdapter {
    fn init(&mut self, device: &Device, resume: Option<&Path>) -> rrra_encoder::Result<()> {
        let bad = |path: &Path, e: String| Error::model(path, e);
        let mut net = self
            .saved
            .load_net(&self.start, device)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(dir) = resume {
            let path = dir.join(WEIGHTS);
            net.load_from(&mut BurnpackStore::from_file(&path))
                .map_err(|e| bad(&path, format!("bad checkpoint: {e}")))?;
            let path = dir.join(OPTIM);
            let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init());
            self.optim = optim
                .load(&path)
                .map_err(|e| bad(&path, format!("bad checkpoint: {e}")))?;
            let path = dir.join("adapter-losses.json");
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            self.losses = serde_json::from_str(&text)
                .map_err(|e| bad(&path, format!("bad checkpoint: {e}")))?;
        }
        self.net = Some(net);
        Ok(())
    }

    fn loss(&mut self, batch: &BatchView<'_>, q: Tensor<2>, d: Tensor<2>) -> Tensor<1> {
        let device = q.device();
        let (mut rows, mut cols, mut classes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, own) in batch.own.iter().enumerate() {
            for j in own.clone() {
                rows.push(i as i64);
                cols.push(j as i64);
                classes.push(self.class(batch.queries[i], batch.docs[j], j == own.start));
            }
        }
        let index = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), &device)
        };
        let (q, c) = (q.select(0, index(rows)), d.select(0, index(cols)));
        let net = self.net.as_ref().expect("init runs before the first step");
        let live = loss(
            net,
            q.clone(),
            c.clone(),
            &classes,
            &self.class_weights,
            &self.params,
        );
        let held = loss(
            net,
            q.detach(),
            c.detach(),
            &classes,
            &self.class_weights,
            &self.params,
        );
        self.losses
            .push(f64::from(live.clone().into_scalar::<f32>()));
        // Value L_adapter; gradient L_adapter's for the adapter, λ times it for the encoder.
        live.mul_scalar(self.weight) + held.mul_scalar(1.0 - self.weight)
    }

    fn step(&mut self, grads: &mut Gradients, lr_factor: f64) {
        let net = self.net.take().expect("init runs before the first step");
        let g = GradientsParams::from_module(grads, &net);
        self.net = Some(self.optim.step(self.lr * lr_factor, net, g));
    }

    fn save(&self, dir: &Path) -> rrra_encoder::Result<()> {
        let net = self.net.as_ref().expect("init runs before the first step");
        let path = dir.join(WEIGHTS);
        net.save_into(&mut BurnpackStore::from_file(&path).overwrite(true))
            .map_err(|e| Error::model(&path, format!("cannot write checkpoint: {e}")))?;
        let path = dir.join(OPTIM);
        self.optim
            .save(&path)
            .map_err(|e| Error::model(&path, format!("cannot write checkpoint: {e}")))?;
        let path = dir.join("adapter-losses.json");
        std::fs::write(
            &path,
            serde_json::to_string(&self.losses).expect("serialises"),
        )
        .map_err(|e| Error::io(&path, e))
    }
}
