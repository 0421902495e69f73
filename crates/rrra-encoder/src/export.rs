//! Saving a trained encoder as a folder that sentence-transformers (and Hugging Face
//! `transformers`, and rrra itself) loads unchanged: `model.safetensors` with BERT tensor
//! names, the base model's `config.json` and tokenizer files, and the sentence-transformers
//! module files describing pooling and normalisation.

use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, SafetensorsStore};
use serde_json::json;

use crate::encoder::Pooling;
use crate::error::{Error, Result};
use crate::train::Trained;

/// burn field names of [`crate::model::Bert`] back to Hugging Face BERT tensor names.
const KEY_MAP: &[(&str, &str)] = &[
    (r"^emb_norm\.", "embeddings.LayerNorm."),
    (r"^(\w+_embeddings)\.", "embeddings.${1}."),
    (
        r"^layers\.(\d+)\.(query|key|value)\.",
        "encoder.layer.${1}.attention.self.${2}.",
    ),
    (
        r"^layers\.(\d+)\.attn_out\.",
        "encoder.layer.${1}.attention.output.dense.",
    ),
    (
        r"^layers\.(\d+)\.attn_norm\.",
        "encoder.layer.${1}.attention.output.LayerNorm.",
    ),
    (
        r"^layers\.(\d+)\.intermediate\.",
        "encoder.layer.${1}.intermediate.dense.",
    ),
    (
        r"^layers\.(\d+)\.output\.",
        "encoder.layer.${1}.output.dense.",
    ),
    (
        r"^layers\.(\d+)\.out_norm\.",
        "encoder.layer.${1}.output.LayerNorm.",
    ),
];

/// Files of the base model folder copied as they are (those present): the prompts file
/// too, so that the trained model encodes with the prompts it was trained with.
const COPIED: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    crate::settings::PROMPTS_CONFIG,
];

/// Writes `trained` into `out` (which must exist and be empty), taking the tokenizer and
/// config files from `base_dir`.
pub fn export(
    trained: &Trained,
    base_dir: &Path,
    out: &Path,
    max_len: usize,
    pooling: Pooling,
    normalize: bool,
) -> Result<()> {
    let weights = out.join("model.safetensors");
    let remapper = KeyRemapper::from_patterns(KEY_MAP.to_vec()).expect("valid patterns");
    let mut store = SafetensorsStore::from_file(&weights)
        .remap(remapper)
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    trained
        .model
        .save_into(&mut store)
        .map_err(|e| Error::model(&weights, format!("cannot write: {e}")))?;
    canonical_header(&weights)?;
    for file in COPIED {
        let from = base_dir.join(file);
        if from.is_file() {
            let to = out.join(file);
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    let write = |rel: &str, value: serde_json::Value| -> Result<()> {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let text = serde_json::to_string_pretty(&value).expect("json serialises");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    };
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if normalize {
        modules.push(json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
        std::fs::create_dir_all(out.join("2_Normalize"))
            .map_err(|e| Error::io(&out.join("2_Normalize"), e))?;
    }
    write("modules.json", json!(modules))?;
    write(
        "sentence_bert_config.json",
        json!({"max_seq_length": max_len, "do_lower_case": false}),
    )?;
    write(
        "1_Pooling/config.json",
        json!({
            "word_embedding_dimension": trained.config.hidden_size,
            "pooling_mode_cls_token": pooling == Pooling::Cls,
            "pooling_mode_mean_tokens": pooling == Pooling::Mean,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
        }),
    )?;
    Ok(())
}

/// Rewrites a safetensors header with its JSON keys sorted. burn writes the `__metadata__`
/// map in hash order, so two exports of identical weights differed in bytes (and in their
/// cache hash, re-running everything downstream). The header keeps its length (padded with
/// spaces, as the format allows), so the tensor data offsets stay valid.
fn canonical_header(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let bad = |m: &str| Error::model(path, format!("unexpected safetensors layout: {m}"));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let len = u64::from_le_bytes(len) as usize;
    let mut header = vec![0u8; len];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(&e.to_string()))?;
    let mut sorted = serde_json::to_vec(&sort_keys(value)).expect("json serialises");
    if sorted.len() > len {
        return Err(bad("sorted header is longer than the original"));
    }
    sorted.resize(len, b' ');
    file.seek(SeekFrom::Start(8))
        .map_err(|e| Error::io(path, e))?;
    file.write_all(&sorted).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// `value` with every object's keys inserted in sorted order (whatever serde_json's map
/// type keeps: sorted, or insertion order under its `preserve_order` feature).
fn sort_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}
