//! `cargo xtask kinds [--params]`: every stage kind with its version, inputs, outputs and
//! source file (from the implementing type's Rust path, see [`source_file`]); with `--params`, every param with its type, default and one-line doc, read from the
//! params' JSON schema (doc comments become descriptions).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rrra_common::stage::Port;
use serde_json::Value;

/// The listing `kinds` prints.
pub fn listing(params: bool) -> String {
    let mut out = String::new();
    for s in rrra_runner::registry::all() {
        let ports = |ps: &[Port]| {
            ps.iter()
                .map(|p| {
                    format!(
                        "{}{}: {}",
                        p.name,
                        if p.optional { "?" } else { "" },
                        p.kind
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "{:<22} v{}  {}\n{:<26}in: {}\n{:<26}out: {}\n{:<26}src: {}",
            s.kind(),
            s.version(),
            s.about(),
            "",
            ports(s.inputs()),
            "",
            ports(s.outputs()),
            "",
            source_file(&root(), s.type_path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("? ({})", s.type_path()))
        )
        .expect("writing to a String");
        if params {
            for p in params_of(&s.params_schema()) {
                writeln!(
                    out,
                    "{:<26}  {}: {} = {}  {}",
                    "", p.name, p.ty, p.default, p.doc
                )
                .expect("writing to a String");
            }
        }
    }
    out
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The file, relative to the workspace `root`, that defines the type at `type_path`
/// (`rrra_mine::dense::MineDense` -> `crates/rrra-mine/src/dense.rs`): crate `rrra_x` is
/// `crates/rrra-x`, module `a::b` is `src/a/b.rs` or `src/a/b/mod.rs`; the deepest module
/// with a file wins (a deeper one is inline), the crate root last. `None` when no file
/// exists.
pub fn source_file(root: &Path, type_path: &str) -> Option<PathBuf> {
    let segments: Vec<&str> = type_path.split("::").collect();
    let (krate, rest) = segments.split_first()?;
    let modules = rest.split_last().map(|(_, m)| m).unwrap_or_default();
    let src = Path::new("crates")
        .join(krate.replace('_', "-"))
        .join("src");
    (0..=modules.len()).rev().find_map(|depth| {
        let candidates = if depth == 0 {
            vec![src.join("lib.rs")]
        } else {
            let dir: PathBuf = modules[..depth].iter().collect();
            vec![
                src.join(&dir).with_extension("rs"),
                src.join(&dir).join("mod.rs"),
            ]
        };
        candidates.into_iter().find(|c| root.join(c).is_file())
    })
}

/// One param as `kinds --params` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDoc {
    /// Its name; a nested struct's params are `outer.inner`.
    pub name: String,
    pub ty: String,
    /// The default as YAML-ish text; `unset` for an absent optional value.
    pub default: String,
    /// The doc comment on one line; empty when it has none.
    pub doc: String,
}

/// The params of a params schema, in declaration order.
pub fn params_of(schema: &Value) -> Vec<ParamDoc> {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    collect(schema, &defs, "", &mut out);
    out
}

fn collect(schema: &Value, defs: &Value, prefix: &str, out: &mut Vec<ParamDoc>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let name = format!("{prefix}{name}");
        let resolved = resolve(prop, defs);
        if resolved.get("properties").is_some() {
            collect(resolved, defs, &format!("{name}."), out);
            continue;
        }
        let default = match prop.get("default") {
            None | Some(Value::Null) => "unset".to_string(),
            Some(v) => render(v),
        };
        let doc = prop
            .get("description")
            .or_else(|| resolved.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push(ParamDoc {
            name,
            ty: type_of(prop, defs),
            default,
            doc,
        });
    }
}

/// `schema` with a `$ref` followed into `defs`.
fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    {
        Some(name) => defs.get(name).unwrap_or(schema),
        None => schema,
    }
}

/// A short type: `int`, `float`, `string`, `bool`, `list of T`, `a|b` for enums, `T?` when
/// it may be unset.
fn type_of(schema: &Value, defs: &Value) -> String {
    let schema = resolve(schema, defs);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(render).collect::<Vec<_>>().join("|");
    }
    if let Some(value) = schema.get("const") {
        return render(value);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let nullable = options
                .iter()
                .any(|o| o.get("type").and_then(Value::as_str) == Some("null"));
            let types: Vec<String> = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .map(|o| type_of(o, defs))
                .collect();
            return format!("{}{}", types.join("|"), if nullable { "?" } else { "" });
        }
    }
    let one = |t: &str| match t {
        "integer" => "int".to_string(),
        "number" => "float".to_string(),
        "boolean" => "bool".to_string(),
        "array" => format!(
            "list of {}",
            schema
                .get("items")
                .map(|i| type_of(i, defs))
                .unwrap_or_else(|| "any".into())
        ),
        other => other.to_string(),
    };
    match schema.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => {
            let nullable = ts.iter().any(|t| t == "null");
            let types: Vec<String> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(one)
                .collect();
            format!("{}{}", types.join("|"), if nullable { "?" } else { "" })
        }
        _ => "any".to_string(),
    }
}

/// A JSON value as a pipeline file would write it.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_param_of_every_kind_has_a_type_a_default_and_a_doc() {
        let mut undocumented = Vec::new();
        for s in rrra_runner::registry::all() {
            let params = params_of(&s.params_schema());
            for p in &params {
                assert!(
                    !p.ty.is_empty() && p.ty != "any",
                    "{}.{}: {p:?}",
                    s.kind(),
                    p.name
                );
                if p.doc.is_empty() {
                    undocumented.push(format!("{}.{}", s.kind(), p.name));
                }
            }
        }
        assert!(
            undocumented.is_empty(),
            "params without a doc comment: {undocumented:?}"
        );
    }

    #[test]
    fn every_kind_names_the_file_that_implements_it() {
        let root = root();
        for s in rrra_runner::registry::all() {
            let file = source_file(&root, s.type_path())
                .unwrap_or_else(|| panic!("{}: no file for {}", s.kind(), s.type_path()));
            let text = std::fs::read_to_string(root.join(&file)).expect("a source file");
            let ty = s.type_path().rsplit("::").next().expect("a type name");
            assert!(
                text.contains(&format!("Stage for {ty} ")),
                "{}: {} does not implement Stage for {ty}",
                s.kind(),
                file.display()
            );
        }
        assert!(listing(false).contains("src: crates/rrra-mine/src/dense.rs"));
    }

    #[test]
    fn a_type_path_maps_to_the_deepest_module_file() {
        let root = tempfile::tempdir().expect("a temp dir");
        let src = root.path().join("crates/rrra-x/src");
        std::fs::create_dir_all(src.join("stages/inner")).expect("dirs");
        for f in ["lib.rs", "stages/mod.rs", "stages/inner.rs"] {
            std::fs::write(src.join(f), "").expect("a file");
        }
        let at = |p: &str| source_file(root.path(), p).map(|p| p.display().to_string());
        assert_eq!(
            at("rrra_x::stages::inner::T").as_deref(),
            Some("crates/rrra-x/src/stages/inner.rs")
        );
        // `inline` has no file: it is a module inside `stages/mod.rs`.
        assert_eq!(
            at("rrra_x::stages::inline::T").as_deref(),
            Some("crates/rrra-x/src/stages/mod.rs")
        );
        assert_eq!(at("rrra_x::T").as_deref(), Some("crates/rrra-x/src/lib.rs"));
        assert_eq!(at("rrra_y::T"), None);
    }

    #[test]
    fn the_listing_shows_types_defaults_and_docs() {
        let text = listing(true);
        // A plain param, an optional one, an enum and a nested one.
        for needle in [
            "k1: float = 0.9",
            "pooling: mean|cls? = unset",
            "mode: sample|top = sample",
            "encoder.lr: float = 0.00002",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
