//! The `backend:` param of the adapter stages: rrra-encoder's [`Backend`] (parsed by serde,
//! `cpu` by default), checked once to be compiled into this build, and its burn device.

use burn::tensor::Device;
use rrra_common::{Error, Result};
use rrra_encoder::Backend;

/// The device of a `backend:` param (checked by [`Backend::check_compiled`]), or the error naming
/// the param.
pub fn backend_device(backend: Backend) -> Result<Device> {
    backend
        .device()
        .map_err(|e| Error::Invalid(format!("param backend: {e}")))
}

/// Whether a `backend:` param is `cpu`: params leave it out of their serialised form (the
/// cache key and `adapter.json`) then, so what was written before the param existed stays
/// valid.
pub(crate) fn is_cpu(backend: &Backend) -> bool {
    *backend == Backend::Cpu
}
