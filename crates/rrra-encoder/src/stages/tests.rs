//! The canonical params of the encoder stages (part of the cache keys) and how params,
//! model settings and defaults merge.

use rrra_common::stage::Stage;
use serde_json::json;

use super::*;
use crate::settings::{ModelSettings, Resolved, Role};
use crate::train::TrainConfig;
use crate::{Backend, Pooling};

#[test]
fn a_known_model_keeps_the_canonical_params_it_had_as_plain_values() {
    // The params' canonical JSON (part of the cache key) before they became optional.
    let before = json!({
        "model": "minilm-l6", "max_len": 256, "pooling": "mean", "normalize": true,
        "batch_size": 32, "backend": Backend::default().name(), "prefix": ""
    });
    assert_eq!(
        serde_json::to_value(EncodeParams::default()).unwrap(),
        before
    );
    let explicit: EncodeParams = serde_json::from_value(before.clone()).unwrap();
    assert_eq!(serde_json::to_value(explicit).unwrap(), before);
    // Every param is in the canonical form (a new field must be added to it).
    let schema = serde_json::to_value(schemars::schema_for!(EncodeParams)).unwrap();
    let props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    for p in props {
        // `precision` is in it only when not fp32 (next test), `sort_window` only when
        // not the default, `part_rows` never (the output does not depend on it).
        assert!(
            before.get(p).is_some()
                || ["precision", "sort_window", "part_rows"].contains(&p.as_str()),
            "param {p} is not in the canonical form"
        );
    }
}

#[test]
fn precision_enters_the_keys_only_when_not_fp32_and_needs_tch() {
    let fp32 = json!({"model": "minilm-l6", "precision": "fp32"});
    let enc: EncodeParams = serde_json::from_value(fp32.clone()).unwrap();
    let train: TrainConfig = serde_json::from_value(fp32).unwrap();
    assert_eq!(
        serde_json::to_value(&enc).unwrap(),
        serde_json::to_value(EncodeParams::default()).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&train).unwrap(),
        serde_json::to_value(TrainConfig::default()).unwrap()
    );
    assert!(
        serde_json::to_value(&train)
            .unwrap()
            .get("precision")
            .is_none()
    );
    let half = json!({"precision": "bf16", "backend": "cpu"});
    let enc: EncodeParams = serde_json::from_value(half.clone()).unwrap();
    let train: TrainConfig = serde_json::from_value(half).unwrap();
    assert_eq!(serde_json::to_value(&enc).unwrap()["precision"], "bf16");
    assert_eq!(serde_json::to_value(&train).unwrap()["precision"], "bf16");
    if Backend::Cpu.is_compiled() {
        for err in [EncodeBert::check(&enc), TrainBiencoder::check(&train)] {
            let err = err.unwrap_err();
            assert!(
                err.contains("param precision") && err.contains("backend `cpu`"),
                "{err}"
            );
        }
    }
    let fp16: TrainConfig =
        serde_json::from_value(json!({"precision": "fp16", "backend": "tch"})).unwrap();
    if Backend::Tch.is_compiled() {
        assert!(TrainBiencoder::check(&fp16).unwrap_err().contains("fp16"));
    }
    let bad = serde_json::from_value::<EncodeParams>(json!({"precision": "half"}));
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("unknown variant `half`")
    );
}

#[test]
fn unset_settings_of_other_models_stay_unset_in_the_key() {
    let p: EncodeParams =
        serde_json::from_value(json!({"model": "BAAI/bge-small-en-v1.5"})).unwrap();
    let v = serde_json::to_value(&p).unwrap();
    for unset in ["max_len", "pooling", "normalize", "prefix"] {
        assert!(v.get(unset).is_none(), "{unset}: {v}");
    }
    let p: EncodeParams = serde_json::from_value(
        json!({"model": "BAAI/bge-small-en-v1.5", "pooling": "mean", "prefix": ""}),
    )
    .unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!((&v["pooling"], &v["prefix"]), (&json!("mean"), &json!("")));
    let bad = serde_json::from_value::<EncodeParams>(json!({"pooling": "max"}));
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("unknown variant `max`")
    );
}

#[test]
fn params_override_the_models_settings_which_override_the_defaults() {
    let model = ModelSettings {
        pooling: Some(Pooling::Cls),
        normalize: Some(false),
        max_len: Some(512),
        query_prompt: Some("query: ".into()),
        doc_prompt: Some("passage: ".into()),
    };
    let own = Resolved::merge(None, None, None, None, &model);
    assert_eq!(
        own,
        Resolved {
            max_len: 512,
            pooling: Pooling::Cls,
            normalize: false,
            query_prompt: "query: ".into(),
            doc_prompt: "passage: ".into(),
        }
    );
    let set = Resolved::merge(Some(128), Some(Pooling::Mean), Some(true), Some(""), &model);
    assert_eq!(
        (
            set.max_len,
            set.pooling,
            set.normalize,
            set.prompt(Role::Query)
        ),
        (128, Pooling::Mean, true, "")
    );
    let plain = Resolved::merge(None, None, None, None, &ModelSettings::default());
    assert_eq!(
        (
            plain.max_len,
            plain.pooling,
            plain.normalize,
            plain.prompt(Role::Document)
        ),
        (256, Pooling::Mean, true, "")
    );
}

#[test]
fn the_recorded_training_settings_keep_the_layout_of_the_former_config() {
    // `rrra_train.json`'s `config` and a checkpoint's, as written before params and config
    // were one struct: a run with default params from MiniLM (mean, normalised), seed 42.
    let before = json!({
        "batch_size": 32, "chunk_size": 64, "epochs": 1, "lr": 2e-5, "warmup_ratio": 0.1,
        "weight_decay": 0.01, "temperature": 0.05, "max_grad_norm": 1.0, "max_negatives": 7,
        "use_weights": true, "checkpoint_every": 20, "query_max_len": 64, "max_len": 256,
        "pooling": "mean", "normalize": true, "seed": 42
    });
    let run = crate::train::RunSettings {
        seed: 42,
        pooling: Pooling::Mean,
        normalize: true,
    };
    // Unset, the pooling and normalisation are the resolved ones; `checkpoint_secs`, the
    // model, the backend and the export length are not recorded.
    let p: TrainConfig = serde_json::from_value(json!({
        "checkpoint_secs": 0.0, "export_max_len": 128, "model": "some/model"
    }))
    .unwrap();
    assert_eq!(p.recorded(&run), before);
    let set: TrainConfig =
        serde_json::from_value(json!({"pooling": "cls", "precision": "bf16"})).unwrap();
    let mut expected = before.clone();
    expected["pooling"] = json!("mean");
    expected["precision"] = json!("bf16");
    assert_eq!(
        set.recorded(&run),
        expected,
        "the run's resolved pooling wins"
    );
}
