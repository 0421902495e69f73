//! A model folder's own encoding settings, read from its sentence-transformers files:
//! `modules.json` (which modules run: Transformer, Pooling, Normalize), the Pooling module's
//! `config.json` (CLS or mean pooling), `sentence_bert_config.json` (`max_seq_length`) and
//! `config_sentence_transformers.json` (`prompts`, `default_prompt_name`). A folder without
//! them (a plain Hugging Face checkpoint) has no settings of its own. Modules rrra cannot
//! run (Dense, max pooling, ...) are errors, never silently skipped.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::encoder::Pooling;
use crate::error::{Error, Result};

/// The module list of a sentence-transformers folder.
pub const MODULES_FILE: &str = "modules.json";
/// Holds `max_seq_length`.
pub const SENTENCE_BERT_CONFIG: &str = "sentence_bert_config.json";
/// Holds `prompts` and `default_prompt_name`.
pub const PROMPTS_CONFIG: &str = "config_sentence_transformers.json";

const TRANSFORMER: &str = "sentence_transformers.models.Transformer";
const POOLING: &str = "sentence_transformers.models.Pooling";
const NORMALIZE: &str = "sentence_transformers.models.Normalize";

/// Prompt names taken for documents, in order of preference (models use each of them).
const DOC_PROMPT_NAMES: [&str; 4] = ["passage", "document", "doc", "corpus"];

/// What a model folder says about how to encode with it; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSettings {
    pub pooling: Option<Pooling>,
    pub normalize: Option<bool>,
    pub max_len: Option<usize>,
    /// Text put before each query (the `query` prompt, else the default prompt).
    pub query_prompt: Option<String>,
    /// Text put before each document (the `passage`/`document`/`doc`/`corpus` prompt, else
    /// the default prompt).
    pub doc_prompt: Option<String>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
    #[serde(default = "yes")]
    include_prompt: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PromptsConfig {
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    default_prompt_name: Option<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Error::model(path, format!("not a valid {what}: {e}")))
}

fn modules(dir: &Path) -> Result<Option<Vec<Module>>> {
    read_json(
        &dir.join(MODULES_FILE),
        "sentence-transformers modules.json",
    )
}

/// The pooling configs `modules.json` of `dir` names (`1_Pooling/config.json`), relative to
/// `dir`; empty without a modules.json.
pub fn pooling_config_paths(dir: &Path) -> Result<Vec<String>> {
    Ok(modules(dir)?
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.kind == POOLING)
        .map(|m| pooling_config_path(&m.path))
        .collect())
}

fn pooling_config_path(module_path: &str) -> String {
    if module_path.is_empty() {
        "config.json".into()
    } else {
        format!("{}/config.json", module_path.trim_end_matches('/'))
    }
}

impl ModelSettings {
    /// Reads the settings of the model folder `dir` (see the module documentation).
    pub fn read(dir: &Path) -> Result<ModelSettings> {
        let mut out = ModelSettings::default();
        if let Some(modules) = modules(dir)? {
            let file = dir.join(MODULES_FILE);
            out.normalize = Some(false);
            let mut pooling_seen = false;
            for m in modules {
                match m.kind.as_str() {
                    TRANSFORMER => {}
                    NORMALIZE => out.normalize = Some(true),
                    POOLING if pooling_seen => {
                        return Err(Error::model(&file, "more than one Pooling module"));
                    }
                    POOLING => {
                        pooling_seen = true;
                        let path = dir.join(pooling_config_path(&m.path));
                        let config: PoolingConfig = read_json(&path, "Pooling config")?
                            .ok_or_else(|| {
                                Error::model(
                                    &path,
                                    "missing: modules.json names this Pooling module",
                                )
                            })?;
                        out.pooling = Some(config.pooling(&path)?);
                    }
                    other => {
                        return Err(Error::model(
                            &file,
                            format!(
                                "module `{other}` is not supported: rrra runs Transformer, \
                                 Pooling (CLS or mean) and Normalize modules only"
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(config) = read_json::<SentenceBertConfig>(
            &dir.join(SENTENCE_BERT_CONFIG),
            "sentence_bert_config.json",
        )? {
            out.max_len = config.max_seq_length;
        }
        let prompts_file = dir.join(PROMPTS_CONFIG);
        if let Some(config) =
            read_json::<PromptsConfig>(&prompts_file, "config_sentence_transformers.json")?
        {
            let default = match &config.default_prompt_name {
                Some(name) => Some(config.prompts.get(name).cloned().ok_or_else(|| {
                    Error::model(
                        &prompts_file,
                        format!("default_prompt_name `{name}` is not one of its prompts"),
                    )
                })?),
                None => None,
            };
            out.query_prompt = config.prompts.get("query").cloned().or(default.clone());
            out.doc_prompt = DOC_PROMPT_NAMES
                .iter()
                .find_map(|n| config.prompts.get(*n).cloned())
                .or(default);
        }
        Ok(out)
    }
}

impl PoolingConfig {
    fn pooling(&self, path: &Path) -> Result<Pooling> {
        let unsupported = [
            (self.pooling_mode_max_tokens, "max_tokens"),
            (
                self.pooling_mode_mean_sqrt_len_tokens,
                "mean_sqrt_len_tokens",
            ),
            (self.pooling_mode_weightedmean_tokens, "weightedmean_tokens"),
            (self.pooling_mode_lasttoken, "lasttoken"),
        ];
        if let Some((_, mode)) = unsupported.iter().find(|(on, _)| *on) {
            return Err(Error::model(
                path,
                format!("pooling_mode_{mode} is not supported (CLS or mean pooling only)"),
            ));
        }
        if !self.include_prompt {
            return Err(Error::model(
                path,
                "include_prompt: false (pooling without the prompt tokens) is not supported",
            ));
        }
        match (self.pooling_mode_cls_token, self.pooling_mode_mean_tokens) {
            (true, false) => Ok(Pooling::Cls),
            (false, true) => Ok(Pooling::Mean),
            (true, true) => Err(Error::model(
                path,
                "CLS and mean pooling together (concatenated) are not supported",
            )),
            (false, false) => Err(Error::model(path, "no pooling mode is on")),
        }
    }
}

/// rrra's settings where neither the params nor the model give one.
const DEFAULT_MAX_LEN: usize = 256;
const DEFAULT_POOLING: Pooling = Pooling::Mean;
const DEFAULT_NORMALIZE: bool = true;

/// Which texts an encoder embeds: its prompts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Document,
}

/// How a model is run: explicit params over the model's own settings over rrra's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub max_len: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Put before each query.
    pub query_prompt: String,
    /// Put before each document.
    pub doc_prompt: String,
}

impl Resolved {
    /// Merges params (`None`: unset) with the model's `settings`.
    pub fn merge(
        max_len: Option<usize>,
        pooling: Option<Pooling>,
        normalize: Option<bool>,
        prefix: Option<&str>,
        settings: &ModelSettings,
    ) -> Resolved {
        let prompt = |own: &Option<String>| {
            prefix
                .map(str::to_string)
                .or_else(|| own.clone())
                .unwrap_or_default()
        };
        Resolved {
            max_len: max_len.or(settings.max_len).unwrap_or(DEFAULT_MAX_LEN),
            pooling: pooling.or(settings.pooling).unwrap_or(DEFAULT_POOLING),
            normalize: normalize
                .or(settings.normalize)
                .unwrap_or(DEFAULT_NORMALIZE),
            query_prompt: prompt(&settings.query_prompt),
            doc_prompt: prompt(&settings.doc_prompt),
        }
    }

    /// The prompt of `role`.
    pub fn prompt(&self, role: Role) -> &str {
        match role {
            Role::Query => &self.query_prompt,
            Role::Document => &self.doc_prompt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const MODULES: &str = r#"[
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]"#;

    #[test]
    fn a_plain_folder_has_no_settings() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ModelSettings::read(dir.path()).unwrap(),
            ModelSettings::default()
        );
    }

    #[test]
    fn sentence_transformers_files_give_pooling_normalisation_length_and_prompts() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), MODULES_FILE, MODULES);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true,
                "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false}"#,
        );
        write(
            dir.path(),
            SENTENCE_BERT_CONFIG,
            r#"{"max_seq_length": 512, "do_lower_case": true}"#,
        );
        write(
            dir.path(),
            PROMPTS_CONFIG,
            r#"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null}"#,
        );
        let s = ModelSettings::read(dir.path()).unwrap();
        assert_eq!(
            s,
            ModelSettings {
                pooling: Some(Pooling::Cls),
                normalize: Some(true),
                max_len: Some(512),
                query_prompt: Some("query: ".into()),
                doc_prompt: Some("passage: ".into()),
            }
        );
        assert_eq!(
            pooling_config_paths(dir.path()).unwrap(),
            ["1_Pooling/config.json"]
        );

        // Without a Normalize module, no normalisation; a default prompt serves both roles.
        write(
            dir.path(),
            MODULES_FILE,
            r#"[{"type": "sentence_transformers.models.Transformer", "path": ""},
                {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}]"#,
        );
        write(
            dir.path(),
            PROMPTS_CONFIG,
            r#"{"prompts": {"retrieval": "Represent: "}, "default_prompt_name": "retrieval"}"#,
        );
        let s = ModelSettings::read(dir.path()).unwrap();
        assert_eq!(s.normalize, Some(false));
        assert_eq!(s.query_prompt.as_deref(), Some("Represent: "));
        assert_eq!(s.doc_prompt.as_deref(), Some("Represent: "));
    }

    #[test]
    fn what_rrra_cannot_run_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), MODULES_FILE, MODULES);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_max_tokens": true}"#,
        );
        let err = ModelSettings::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("1_Pooling/config.json") && err.contains("max_tokens"),
            "{err}"
        );
        write(
            dir.path(),
            MODULES_FILE,
            r#"[{"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]"#,
        );
        let err = ModelSettings::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("models.Dense") && err.contains("modules.json"),
            "{err}"
        );
        write(dir.path(), MODULES_FILE, "[");
        let err = ModelSettings::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a valid"), "{err}");
    }
}
