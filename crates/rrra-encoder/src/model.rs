//! BERT built from burn-nn parts: embeddings (word + position + token type, LayerNorm) and
//! post-norm encoder layers (masked self-attention, GELU feed-forward), configured from a
//! Hugging Face `config.json` and loaded from a `model.safetensors` with BERT tensor names.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::store::{
    ChainAdapter, FloatCastAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::activation::{gelu, gelu_approximate, softmax};
use burn::tensor::module::{attention, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, FloatDType, Int, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::precision::Precision;

/// The fields of a Hugging Face BERT `config.json` that the forward pass needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: HiddenAct,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Reads and checks a `config.json`: only BERT with absolute positions and a GELU
    /// feed-forward is supported.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| Error::model(path, format!("not a BERT config.json: {e}")))?;
        config.validate().map_err(|m| Error::model(path, m))?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if let Some(t) = &self.model_type
            && t != "bert"
        {
            return Err(format!("model_type `{t}` is not supported (only `bert`)"));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type `{}` is not supported (only `absolute`)",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }

    /// A randomly initialised model of this shape on `device`.
    pub(crate) fn init(&self, device: &Device, additive_mask: bool) -> Bert {
        let h = self.hidden_size;
        let norm = LayerNormConfig::new(h).with_epsilon(self.layer_norm_eps);
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                query: LinearConfig::new(h, h).init(device),
                key: LinearConfig::new(h, h).init(device),
                value: LinearConfig::new(h, h).init(device),
                attn_out: LinearConfig::new(h, h).init(device),
                attn_norm: norm.init(device),
                intermediate: LinearConfig::new(h, self.intermediate_size).init(device),
                output: LinearConfig::new(self.intermediate_size, h).init(device),
                out_norm: norm.init(device),
            })
            .collect();
        Bert {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
            emb_norm: norm.init(device),
            layers,
            heads: self.num_attention_heads,
            hidden_act: self.hidden_act,
            additive_mask,
            half: None,
        }
    }
}

/// The feed-forward non-linearity, `hidden_act` in `config.json` (spelled as there); any
/// other value is an error naming the file and these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU with erf (the default when `config.json` has no `hidden_act`).
    #[default]
    Gelu,
    /// The tanh approximation of GELU.
    GeluNew,
    /// The tanh approximation of GELU, as PyTorch names it.
    GeluPytorchTanh,
}

/// One post-norm transformer layer; field names are the remapped Hugging Face names.
#[derive(Module, Debug)]
pub(crate) struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// The BERT encoder without pooler or heads.
#[derive(Module, Debug)]
pub(crate) struct Bert {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<BertLayer>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    hidden_act: HiddenAct,
    /// Mask padding with an additive `-inf` bias rather than a bool mask.
    #[module(skip)]
    additive_mask: bool,
    /// The float type of the matrix products when not fp32 ([`Precision::half`]).
    #[module(skip)]
    half: Option<FloatDType>,
}

/// Hugging Face tensor names (with or without the `bert.` prefix) to the fields above.
const KEY_MAP: &[(&str, &str)] = &[
    (r"^bert\.", ""),
    (r"^embeddings\.LayerNorm\.", "emb_norm."),
    (r"^embeddings\.(\w+_embeddings)\.", "${1}."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
        "layers.${1}.${2}.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
        "layers.${1}.attn_out.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
        "layers.${1}.attn_norm.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.dense\.",
        "layers.${1}.intermediate.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.dense\.",
        "layers.${1}.output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.",
        "layers.${1}.out_norm.",
    ),
];

impl Bert {
    /// Loads the weights of `path` (a `model.safetensors`) into a model shaped by `config`.
    /// Tensors the encoder does not use (pooler, heads, `position_ids`) are ignored; a
    /// missing or misshapen tensor is an error naming it. `additive_mask` masks padding
    /// with a `-inf` bias instead of a bool mask: burn-tch 0.22 hands bool masks to torch's
    /// `scaled_dot_product_attention`, where `true` means attend, the opposite of burn.
    pub(crate) fn load(
        config: &BertConfig,
        path: &Path,
        device: &Device,
        additive_mask: bool,
    ) -> Result<Self> {
        let mut model = config.init(device, additive_mask);
        let remapper = KeyRemapper::from_patterns(KEY_MAP.to_vec()).expect("valid patterns");
        let mut store = SafetensorsStore::from_file(path)
            .remap(remapper)
            .with_from_adapter(ChainAdapter::new(
                PyTorchToBurnAdapter,
                FloatCastAdapter::to(DType::F32),
            ))
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::model(path, format!("cannot read safetensors: {e}")))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
            problems.extend(
                result
                    .missing
                    .iter()
                    .map(|(name, _)| format!("missing tensor for `{name}`")),
            );
            return Err(Error::model(
                path,
                format!(
                    "not a BERT checkpoint matching its config.json: {}",
                    problems.join("; ")
                ),
            ));
        }
        Ok(model)
    }

    /// Runs the matrix products in `precision` from now on (autocast-style: the weights
    /// stay fp32 and are cast per pass; see [`crate::precision`]).
    pub(crate) fn with_precision(mut self, precision: Precision) -> Self {
        self.half = precision.half();
        self
    }

    /// Hidden states `[batch, seq, hidden]` of token ids `[batch, seq]`; `pad`, when the
    /// batch has padding, is `true` at padding positions, which no token attends to. A
    /// batch without padding passes `None` and attention runs unmasked.
    pub(crate) fn forward(
        &self,
        ids: Tensor<2, Int>,
        type_ids: Tensor<2, Int>,
        pad: Option<Tensor<2, Bool>>,
    ) -> Tensor<3> {
        let [batch, seq] = ids.dims();
        let positions = self
            .position_embeddings
            .weight
            .val()
            .slice(0..seq)
            .unsqueeze_dim::<3>(0);
        let x = self.word_embeddings.forward(ids)
            + positions
            + self.token_type_embeddings.forward(type_ids);
        let hidden = x.dims()[2];
        // Token states stay `[batch * seq, hidden]` between layers, so every Linear is one
        // 2-D matrix product over all tokens (its weight packed once per call).
        let mut x = self.emb_norm.forward(x.reshape([batch * seq, hidden]));
        let mask = pad.map(|pad| {
            // `[batch, 1, 1, seq]`, broadcast over heads and query rows by the backend.
            let pad = pad.reshape([batch, 1, 1, seq]);
            if self.additive_mask {
                let zeros = Tensor::<4>::zeros(pad.shape(), &pad.device());
                Mask::Additive(
                    zeros
                        .mask_fill(pad, f32::NEG_INFINITY)
                        .expand([batch, 1, seq, seq]),
                )
            } else {
                Mask::Bool(pad.expand([batch, 1, seq, seq]))
            }
        });
        let shape = Shape {
            batch,
            seq,
            heads: self.heads,
        };
        for layer in &self.layers {
            x = layer.forward(x, mask.as_ref(), shape, self.hidden_act, self.half);
        }
        x.reshape([batch, seq, hidden])
    }
}

/// Which positions attention skips: a bool mask (`true` = padding) or an additive
/// `-inf` bias (burn-tch reads bool masks with the opposite sense).
#[derive(Clone)]
enum Mask {
    Bool(Tensor<4, Bool>),
    Additive(Tensor<4>),
}

/// The token grid of a batch and the attention head count.
#[derive(Clone, Copy)]
struct Shape {
    batch: usize,
    seq: usize,
    heads: usize,
}

impl BertLayer {
    /// One layer over fp32 token states `[batch * seq, hidden]`. With `half`, the Linear
    /// layers, attention's products and GELU run in that type; the residual sums, the layer
    /// norms and attention's softmax stay fp32.
    fn forward(
        &self,
        x: Tensor<2>,
        mask: Option<&Mask>,
        Shape { batch, seq, heads }: Shape,
        hidden_act: HiddenAct,
        half: Option<FloatDType>,
    ) -> Tensor<2> {
        let hidden = x.dims()[1];
        let split = |t: Tensor<2>| {
            t.reshape([batch, seq, heads, hidden / heads])
                .swap_dims(1, 2)
        };
        let low = to_half(x.clone(), half);
        let (q, k, v) = (
            split(project(&self.query, low.clone(), half)),
            split(project(&self.key, low.clone(), half)),
            split(project(&self.value, low, half)),
        );
        let context = match (half, mask) {
            // Masked half precision: burn-tch would run the masked softmax in half.
            (Some(half), Some(mask)) => half_attention(q, k, v, mask, half),
            _ => {
                // fp32, or half without a mask: the backend's fused attention (libtorch's
                // SDPA kernels accumulate the softmax in fp32).
                let (mask, bias) = match mask {
                    None => (None, None),
                    Some(Mask::Bool(m)) => (Some(m.clone()), None),
                    Some(Mask::Additive(b)) => (None, Some(b.clone())),
                };
                attention(q, k, v, mask, bias, AttentionModuleOptions::default())
            }
        }
        .swap_dims(1, 2)
        .reshape([batch * seq, hidden]);
        let attended = to_f32(project(&self.attn_out, context, half), half);
        let x = self.attn_norm.forward(attended + x);
        let inner = project(&self.intermediate, to_half(x.clone(), half), half);
        let inner = match hidden_act {
            HiddenAct::Gelu => gelu(inner),
            HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => gelu_approximate(inner),
        };
        let out = to_f32(project(&self.output, inner, half), half);
        self.out_norm.forward(out + x)
    }
}

/// `layer(x)`; with `half`, `x` is already of that type and the fp32 weight and bias are
/// cast to it for the product (their gradients flow back to the fp32 parameters).
fn project(layer: &Linear, x: Tensor<2>, half: Option<FloatDType>) -> Tensor<2> {
    match half {
        None => layer.forward(x),
        Some(h) => linear(
            x,
            layer.weight.val().cast(h),
            layer.bias.as_ref().map(|b| b.val().cast(h)),
        ),
    }
}

/// `x` in the `half` type, or unchanged.
fn to_half<const D: usize>(x: Tensor<D>, half: Option<FloatDType>) -> Tensor<D> {
    match half {
        Some(h) => x.cast(h),
        None => x,
    }
}

/// `x` back in fp32 when it was computed in a `half` type.
fn to_f32<const D: usize>(x: Tensor<D>, half: Option<FloatDType>) -> Tensor<D> {
    match half {
        Some(_) => x.cast(FloatDType::F32),
        None => x,
    }
}

/// Masked attention with half-precision products and an fp32 softmax: `q`, `k`, `v`
/// `[batch, heads, seq, head_dim]` in `half`; the context comes back in `half`.
fn half_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Mask,
    half: FloatDType,
) -> Tensor<4> {
    let scale = 1.0 / (q.dims()[3] as f64).sqrt();
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .cast(FloatDType::F32)
        .mul_scalar(scale);
    let scores = match mask {
        Mask::Bool(m) => scores.mask_fill(m.clone(), f32::NEG_INFINITY),
        Mask::Additive(b) => scores + b.clone(),
    };
    // Only padding keys are masked, so no row is all `-inf`.
    softmax(scores, 3).cast(half).matmul(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(hidden_act: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let config = serde_json::json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 32, "hidden_act": hidden_act
        });
        std::fs::write(&path, config.to_string()).unwrap();
        (dir, path)
    }

    #[test]
    fn hidden_act_takes_the_config_json_spellings() {
        for (name, act) in [
            ("gelu", HiddenAct::Gelu),
            ("gelu_new", HiddenAct::GeluNew),
            ("gelu_pytorch_tanh", HiddenAct::GeluPytorchTanh),
        ] {
            let (_dir, path) = config_with(name);
            assert_eq!(BertConfig::from_file(&path).unwrap().hidden_act, act);
        }
        let plain: BertConfig = serde_json::from_str(
            r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 32}"#,
        )
        .unwrap();
        assert_eq!(plain.hidden_act, HiddenAct::Gelu, "the default");
    }

    #[test]
    fn an_unknown_hidden_act_names_the_file_and_the_accepted_values() {
        let (_dir, path) = config_with("relu");
        let err = BertConfig::from_file(&path).unwrap_err().to_string();
        for part in [
            "config.json",
            "relu",
            "`gelu`",
            "`gelu_new`",
            "`gelu_pytorch_tanh`",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }
}
