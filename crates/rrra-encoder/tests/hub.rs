//! Models by Hugging Face id, offline: a Hub cache laid out as `huggingface_hub` and
//! `hf-hub` write it (`models--ORG--NAME/{refs/main, blobs/, snapshots/<commit>/}`), built
//! from the MiniLM weights the other tests fetch, once with a CLS pooling config and a
//! query/passage prompt, once with mean pooling and no Normalize module. `encode.bert` must
//! follow each folder's settings (and params must override them); no network is used.

use std::path::{Path, PathBuf};

use rrra_common::artifact::write_rows;
use rrra_common::embeddings::read_all;
use rrra_common::progress::Silent;
use rrra_common::records::Query;
use rrra_encoder::hub::{HubId, resolve_hub};
use rrra_encoder::stages::{EncodeBert, EncodeParams};
use rrra_encoder::{Encoder, EncoderOptions, Pooling};
use rrra_testkit::StageRun;

mod common;
use common::{cosine, model_dir};

const CLS_COMMIT: &str = "1111111111111111111111111111111111111111";
const MEAN_COMMIT: &str = "2222222222222222222222222222222222222222";

/// Writes `models--ORG--NAME` for `repo` at `commit` into `cache`: the model files of
/// MiniLM (as blobs linked from the snapshot) plus `extra` files, and `refs/main`.
fn hub_repo(cache: &Path, repo: &str, commit: &str, extra: &[(&str, &str)]) {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let blobs = root.join("blobs");
    let snapshot = root.join("snapshots").join(commit);
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    for (i, file) in rrra_encoder::MODEL_FILES.iter().enumerate() {
        let blob = blobs.join(format!("blob{i}"));
        std::os::unix::fs::symlink(model_dir().join(file), &blob).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snapshot.join(file)).unwrap();
    }
    for (file, text) in extra {
        let path = snapshot.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs").join("main"), commit).unwrap();
}

const MODULES_NORMALIZE: &str = r#"[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
]"#;
const MODULES_PLAIN: &str = r#"[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
]"#;

fn pooling_config(cls: bool) -> String {
    format!(
        r#"{{"word_embedding_dimension": 384, "pooling_mode_cls_token": {cls},
            "pooling_mode_mean_tokens": {}, "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false}}"#,
        !cls
    )
}

const QUERIES: [(&str, &str); 3] = [
    ("q1", "What causes the common cold?"),
    (
        "q2",
        "Vitamin D deficiency increases the risk of multiple sclerosis.",
    ),
    (
        "q3",
        "How are proteins folded in the endoplasmic reticulum?",
    ),
];

/// Runs `encode.bert` on [`QUERIES`] and returns the vectors in query order.
fn encode_stage(params: &EncodeParams, work: &Path) -> Vec<Vec<f32>> {
    let input = work.join("queries.parquet");
    write_rows(
        &input,
        QUERIES.iter().map(|(id, text)| Query {
            id: id.to_string(),
            text: text.to_string(),
            answers: None,
        }),
    )
    .unwrap();
    let out = tempfile::tempdir_in(work).unwrap();
    let run = StageRun::in_dir(work)
        .out_dir(out.path())
        .input("queries", input);
    run.run::<EncodeBert>(params)
        .unwrap_or_else(|e| panic!("encode.bert: {e}"));
    let (ids, flat, dim) = read_all(&run.output("embeddings")).unwrap();
    assert_eq!(ids, ["q1", "q2", "q3"]);
    flat.chunks_exact(dim).map(<[f32]>::to_vec).collect()
}

/// The vectors of [`QUERIES`] (after `prompt`) from the MiniLM folder itself, with the
/// settings given explicitly.
fn encode_direct(prompt: &str, max_len: usize, pooling: Pooling, normalize: bool) -> Vec<Vec<f32>> {
    let encoder = Encoder::load(
        model_dir(),
        EncoderOptions {
            max_len,
            pooling,
            normalize,
            ..EncoderOptions::default()
        },
    )
    .unwrap();
    let texts: Vec<String> = QUERIES
        .iter()
        .map(|(_, t)| format!("{prompt}{t}"))
        .collect();
    let flat = encoder.encode(&texts, 8, &Silent).unwrap();
    flat.chunks_exact(encoder.dim())
        .map(<[f32]>::to_vec)
        .collect()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn params(model: &str) -> EncodeParams {
    EncodeParams {
        model: model.into(),
        ..EncodeParams::default()
    }
}

// One test: it sets HF_HUB_CACHE and HF_HUB_OFFLINE for the whole process.
#[test]
fn hub_ids_resolve_offline_and_follow_the_folders_settings() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hub");
    hub_repo(
        &cache,
        "test-org/minilm-cls",
        CLS_COMMIT,
        &[
            ("modules.json", MODULES_NORMALIZE),
            ("1_Pooling/config.json", &pooling_config(true)),
            (
                "sentence_bert_config.json",
                r#"{"max_seq_length": 128, "do_lower_case": false}"#,
            ),
            (
                "config_sentence_transformers.json",
                r#"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null}"#,
            ),
        ],
    );
    hub_repo(
        &cache,
        "test-org/minilm-mean",
        MEAN_COMMIT,
        &[
            ("modules.json", MODULES_PLAIN),
            ("1_Pooling/config.json", &pooling_config(false)),
        ],
    );
    // SAFETY: the only test of this binary; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("HF_HUB_CACHE", &cache);
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }

    // The id resolves to its snapshot, by branch or by commit.
    let snapshot = |repo: &str, commit: &str| -> PathBuf {
        cache
            .join(format!("models--{}", repo.replace('/', "--")))
            .join("snapshots")
            .join(commit)
    };
    let id = HubId::parse("test-org/minilm-cls").unwrap();
    assert_eq!(
        resolve_hub(&id, &cache, &Silent).unwrap(),
        snapshot("test-org/minilm-cls", CLS_COMMIT)
    );
    let pinned = HubId::parse(&format!("test-org/minilm-mean@{MEAN_COMMIT}")).unwrap();
    assert_eq!(
        resolve_hub(&pinned, &cache, &Silent).unwrap(),
        snapshot("test-org/minilm-mean", MEAN_COMMIT)
    );

    // CLS pooling, normalised, max_seq_length 128 and the query prompt, from the folder.
    let cls = encode_stage(&params("test-org/minilm-cls"), work.path());
    let expected_cls = encode_direct("query: ", 128, Pooling::Cls, true);
    assert!(
        max_abs_diff(&cls, &expected_cls) < 1e-5,
        "{}",
        max_abs_diff(&cls, &expected_cls)
    );
    // The prompt is applied: without it the vectors differ.
    let unprompted = encode_direct("", 128, Pooling::Cls, true);
    assert!(max_abs_diff(&cls, &unprompted) > 1e-3);

    // Mean pooling without a Normalize module (so not unit length), no prompt, 256 tokens.
    let mean = encode_stage(
        &params(&format!("test-org/minilm-mean@{MEAN_COMMIT}")),
        work.path(),
    );
    let expected_mean = encode_direct("", 256, Pooling::Mean, false);
    assert!(
        max_abs_diff(&mean, &expected_mean) < 1e-5,
        "{}",
        max_abs_diff(&mean, &expected_mean)
    );
    let norm: f32 = mean[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "mean vectors were normalised: {norm}"
    );
    // CLS and mean pooling of the same weights differ.
    let mean_prompted = encode_direct("query: ", 128, Pooling::Mean, true);
    for (c, m) in cls.iter().zip(&mean_prompted) {
        let m: Vec<f64> = m.iter().map(|&x| f64::from(x)).collect();
        assert!(cosine(c, &m) < 0.999, "{}", cosine(c, &m));
    }

    // Explicit params override the folder: mean pooling, no prompt.
    let overridden = encode_stage(
        &EncodeParams {
            pooling: Some(Pooling::Mean),
            prefix: Some(String::new()),
            ..params("test-org/minilm-cls")
        },
        work.path(),
    );
    let expected = encode_direct("", 128, Pooling::Mean, true);
    assert!(max_abs_diff(&overridden, &expected) < 1e-5);

    // Offline with the model absent from the cache: a clear error, nothing fetched.
    let missing = HubId::parse("BAAI/bge-small-en-v1.5").unwrap();
    let err = resolve_hub(&missing, &cache, &Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("BAAI/bge-small-en-v1.5@main")
            && err.contains("HF_HUB_OFFLINE")
            && err.contains(&cache.display().to_string())
            && err.contains("huggingface-cli download BAAI/bge-small-en-v1.5"),
        "{err}"
    );
    assert!(!cache.join("models--BAAI--bge-small-en-v1.5").exists());
    // The stage reports the same.
    let input = work.path().join("q.parquet");
    write_rows(
        &input,
        [Query {
            id: "q".into(),
            text: "x".into(),
            answers: None,
        }],
    )
    .unwrap();
    let err = StageRun::in_dir(work.path())
        .out_dir(work.path().join("out"))
        .input("queries", input)
        .run::<EncodeBert>(&params("BAAI/bge-small-en-v1.5"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
}
