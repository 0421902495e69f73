//! A trained adapter on disk, the `adapter` artifact: a folder with `adapter.bpk` (the
//! weights, Burnpack) and `adapter.json` ([`SavedAdapter`]: the shape, and the params, seed
//! and summary of its training). Written by `train.adapter` and `train.joint`, read by
//! `score.adapter` and `train.joint`.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Tensor};
use rrra_common::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::model::{AdapterConfig, AdapterNet};
use crate::train::{TrainAdapterParams, TrainSummary};

const WEIGHTS: &str = "adapter.bpk";
const CONFIG: &str = "adapter.json";

/// What `adapter.json` holds: the shape, and how the adapter was trained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedAdapter {
    pub shape: AdapterConfig,
    pub params: Option<TrainAdapterParams>,
    pub seed: Option<u64>,
    pub summary: Option<TrainSummary>,
}

/// Numbers parameters in visiting order: burn draws each `ParamId` at random and Burnpack
/// stores it, so without this two identically trained adapters differ in their bytes.
struct OrderedIds(u64);

impl ModuleMapper for OrderedIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), value, mapper)
    }
}

/// Writes an adapter folder: `adapter.bpk` weights and `adapter.json`. The same weights
/// and `saved` give the same bytes (parameter ids are renumbered in order).
pub fn save_adapter(dir: &Path, net: &AdapterNet, saved: &SavedAdapter) -> Result<()> {
    let path = dir.join(WEIGHTS);
    net.clone()
        .map(&mut OrderedIds(0))
        .save_into(&mut BurnpackStore::from_file(&path).overwrite(true))
        .map_err(|e| Error::file(&path, format!("cannot write adapter weights: {e}")))?;
    let path = dir.join(CONFIG);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(saved).expect("serialises"),
    )
    .map_err(|e| Error::io(&path, e))
}

impl SavedAdapter {
    /// Reads the `adapter.json` of an adapter folder.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("expected an adapter.json: {e}")))
    }

    /// The weights of folder `dir` (which this `adapter.json` describes), on `device`.
    pub fn load_net(&self, dir: &Path, device: &Device) -> Result<AdapterNet> {
        let mut net = AdapterNet::new(&self.shape, 0, device);
        let path = dir.join(WEIGHTS);
        net.load_from(&mut BurnpackStore::from_file(&path))
            .map_err(|e| Error::file(&path, format!("cannot load adapter weights: {e}")))?;
        Ok(net)
    }

    /// The params it was trained with (`dir` is its folder, for the error).
    pub fn trained_with(&self, dir: &Path) -> Result<&TrainAdapterParams> {
        self.params.as_ref().ok_or_else(|| {
            Error::file(
                &dir.join(CONFIG),
                "no training params; expected an adapter written by train.adapter",
            )
        })
    }
}

/// Loads an adapter folder (as `train.adapter` writes it) onto `device`.
pub fn load_adapter(dir: &Path, device: &Device) -> Result<AdapterNet> {
    SavedAdapter::read(dir)?.load_net(dir, device)
}
