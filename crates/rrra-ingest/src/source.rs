//! Where an ingest stage's input comes from. Every file or folder param of an `ingest.*`
//! stage is a [`Source`]: a path (a YAML string, relative to the pipeline file), a URL
//! pinned by hash (`{url, sha256 | md5, member}`), or a collection of the
//! [catalogue](crate::catalog) (`{collection, member}`). Downloads go to
//! `<cache_dir>/downloads/` through [`rrra_fetch`] (once, resumable, hash checked,
//! archives unpacked); `member` picks a file or folder inside an archive.
//!
//! A pinned URL is its own cache key (the params hold the hash), so only local paths are
//! hashed into a stage's key as source files.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use rrra_common::stage::StageContext;
use rrra_common::{Error, Result};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog;

/// A downloaded input: a URL or a named collection, with an optional hash pin and member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// A relative path inside the download (an archive's member or sub-folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// A file or folder param: a local path or a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Remote(Remote),
}

impl Default for Source {
    fn default() -> Self {
        Source::Path(PathBuf::new())
    }
}

impl From<&str> for Source {
    fn from(path: &str) -> Self {
        Source::Path(path.into())
    }
}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Self {
        Source::Path(path)
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Source::Path(p) => p.serialize(s),
            Source::Remote(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path, or a map {url, sha256 | md5, member} or {collection, member}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Source, E> {
                Ok(Source::Path(v.into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Source, A::Error> {
                Remote::deserialize(de::value::MapAccessDeserializer::new(map)).map(Source::Remote)
            }
        }
        d.deserialize_any(V)
    }
}

impl Source {
    /// No path given (the default).
    pub fn is_empty(&self) -> bool {
        matches!(self, Source::Path(p) if p.as_os_str().is_empty())
    }

    /// The local path, if this is one (a source file of the stage's cache key).
    pub fn local(&self) -> Option<&Path> {
        match self {
            Source::Path(p) => Some(p),
            Source::Remote(_) => None,
        }
    }

    /// Checks the shape of a download param; `name` names the param in the message.
    pub fn check(&self, name: &str) -> std::result::Result<(), String> {
        let Source::Remote(r) = self else {
            return Ok(());
        };
        match (&r.url, &r.collection) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!("param {name}: give either url or collection"));
            }
            (None, Some(c)) if catalog::collection(c).is_none() => {
                let names: Vec<&str> = catalog::CATALOGUE.iter().map(|c| c.name).collect();
                return Err(format!(
                    "param {name}: unknown collection {c:?}; known: {}",
                    names.join(", ")
                ));
            }
            _ => {}
        }
        if let Some(m) = &r.member
            && !Path::new(m)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "param {name}: member {m:?} must be a relative path inside the download"
            ));
        }
        Ok(())
    }

    /// The local file or folder to read, downloading it first if needed.
    pub fn resolve(&self, ctx: &StageContext<'_>) -> Result<PathBuf> {
        let r = match self {
            Source::Path(p) => return Ok(ctx.resolve(p)),
            Source::Remote(r) => r,
        };
        let entry = r.collection.as_deref().and_then(catalog::collection);
        let (url, md5, headers, default_member) = match (&r.url, entry) {
            (Some(url), _) => (url.as_str(), r.md5.as_deref(), &[][..], None),
            (None, Some(c)) => (c.url, r.md5.as_deref().or(c.md5), c.headers, c.member),
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "unknown collection {:?}",
                    r.collection.as_deref().unwrap_or("")
                )));
            }
        };
        let download = rrra_fetch::Download {
            url,
            sha256: r.sha256.as_deref(),
            md5,
            headers,
        };
        let fetched = rrra_fetch::fetch(&ctx.cache_dir.join("downloads"), &download, ctx.progress)
            .map_err(|e| match e {
                rrra_fetch::FetchError::Io { path, source } => Error::io(&path, source),
                other => Error::Invalid(other.to_string()),
            })?;
        let Some(member) = r.member.as_deref().or(default_member) else {
            return Ok(fetched.root);
        };
        let path = fetched.root.join(member);
        if !path.exists() {
            let mut top: Vec<String> = std::fs::read_dir(&fetched.root)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            top.sort();
            return Err(Error::Invalid(format!(
                "{url}: no member {member:?} in the download (its top level holds {top:?})"
            )));
        }
        Ok(path)
    }
}

/// The local paths among `sources`, for [`Stage::sources`](rrra_common::stage::Stage::sources).
pub fn local_sources<'a>(sources: impl IntoIterator<Item = &'a Source>) -> Vec<PathBuf> {
    sources
        .into_iter()
        .filter_map(|s| s.local().map(Path::to_path_buf))
        .collect()
}

impl schemars::JsonSchema for Source {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Source".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let remote = generator.subschema_for::<Remote>();
        schemars::json_schema!({
            "description": "A path (relative to the pipeline file), or a download: {url, sha256|md5, member} or {collection, member}",
            "anyOf": [{"type": "string"}, remote]
        })
    }
}
