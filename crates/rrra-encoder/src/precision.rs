//! [`Precision`]: the float type of the encoder's matrix products (`precision:` param of
//! `encode.bert` and `train.biencoder`). Half precision is autocast-style, as PyTorch's
//! `torch.autocast`: the weights stay fp32 (the master copy training updates) and are cast
//! to bf16/fp16 per forward pass for the Linear layers and attention's two products; the
//! embeddings, layer norms, residual sums, attention softmax, pooling and loss run in fp32.

use std::fmt;

use burn::tensor::FloatDType;

use crate::backend::Backend;

/// The float type of the matrix products.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32 (default; every backend).
    #[default]
    Fp32,
    /// bfloat16 matrix products, fp32 norms, softmax and loss (`tch` only).
    Bf16,
    /// float16 matrix products, fp32 norms, softmax and loss (`tch` only; `encode.bert`
    /// only: training would need loss scaling).
    Fp16,
}

impl Precision {
    /// The half float type of the matrix products; `None` for fp32.
    pub fn half(self) -> Option<FloatDType> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(FloatDType::BF16),
            Precision::Fp16 => Some(FloatDType::F16),
        }
    }

    /// Whether this is the default, fp32 (left out of cache keys, so that pipelines
    /// written before the param keep their keys).
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    /// The parameter spelling: `fp32`, `bf16` or `fp16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Whether `backend` runs this precision: fp32 everywhere, bf16 and fp16 on `tch`
    /// only (burn-flex has no half-precision gemm; wgpu's half support varies by
    /// adapter). The error names the param, the precision and the backend.
    pub fn check(self, backend: Backend) -> Result<(), String> {
        if self.is_fp32() || backend == Backend::Tch {
            Ok(())
        } else {
            Err(format!(
                "param precision: `{self}` needs backend `tch`; backend `{backend}` computes in \
                 fp32 only (set `precision: fp32` or `backend: tch`)"
            ))
        }
    }

    /// As [`Precision::check`], for training: fp16 is also refused (without loss scaling
    /// its gradients underflow; bf16 has fp32's range and needs none).
    pub fn check_training(self, backend: Backend) -> Result<(), String> {
        if self == Precision::Fp16 {
            return Err(
                "param precision: `fp16` is not supported for training (it needs loss \
                 scaling); use `bf16` or `fp32`"
                    .into(),
            );
        }
        self.check(backend)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_needs_tch_and_training_refuses_fp16() {
        for backend in Backend::ALL {
            assert!(Precision::Fp32.check(backend).is_ok());
            assert!(Precision::Fp32.check_training(backend).is_ok());
            for p in [Precision::Bf16, Precision::Fp16] {
                let r = p.check(backend);
                assert_eq!(r.is_ok(), backend == Backend::Tch, "{p} on {backend}");
                if let Err(e) = r {
                    assert!(e.contains("param precision") && e.contains(backend.name()));
                }
            }
            assert!(Precision::Fp16.check_training(backend).is_err());
            assert_eq!(
                Precision::Bf16.check_training(backend).is_ok(),
                backend == Backend::Tch
            );
        }
    }

    #[test]
    fn parses_lowercase_and_rejects_others() {
        let p: Precision = serde_json::from_str("\"bf16\"").unwrap();
        assert_eq!(p, Precision::Bf16);
        assert_eq!(serde_json::to_string(&Precision::Fp16).unwrap(), "\"fp16\"");
        assert!(serde_json::from_str::<Precision>("\"half\"").is_err());
        assert_eq!(Precision::default(), Precision::Fp32);
        assert_eq!(Precision::Bf16.half(), Some(FloatDType::BF16));
        assert_eq!(Precision::Fp32.half(), None);
    }
}
