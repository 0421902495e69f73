//! Tidy: invariants of the code's shape, checked on the source tree (rust-analyzer's
//! `xtask/src/tidy.rs` is the model). A violation names the file and the rule:
//! - `stages-import`: library code of a crate (`crates/<c>/src/`) imports another crate's
//!   `stages` module (use its library paths instead). The runner (`rrra-runner`, whose
//!   registry names every stage type) is exempt; tests are not scanned.
//! - `two-kinds`: a file holds two `impl Stage for` (one kind per file,
//!   `crates/<c>/src/stages/<kind>.rs`).
//! - `layering`: a crate's `[dependencies]` (or `[build-dependencies]`) names a workspace
//!   crate at its own layer or above (ARCHITECTURE.md, "Layers"), or a crate missing from the
//!   layering. Dev-dependencies are free.
//!
//! Known violations in code not yet reshaped are in [`ALLOWED`], each with why; an allowed
//! violation that no longer occurs fails the test, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first: a crate may depend on crates of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["rrra-common"],
    &["rrra-fetch", "rrra-inspect"],
    &[
        "rrra-ingest",
        "rrra-retrieve",
        "rrra-encoder",
        "rrra-eval",
        "rrra-rerank",
        "rrra-resample",
    ],
    &["rrra-mine", "rrra-adapter"],
    &["rrra-joint"],
    &["rrra-runner"],
    &["rrra-fuzz", "rrra-tests", "rrra-testkit", "xtask"],
];

/// Violations known and accepted for now: (rule, file, detail).
const ALLOWED: &[(&str, &str, &str)] = &[
    // Empty: every crate keeps one kind per file and imports no other crate's stages. An
    // entry is a temporary exception, with a comment saying why.
];

/// One broken rule: which, where (relative to the root, `/`-separated) and a detail (the
/// crate imported, the number of kinds, the dependency).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    rule: &'static str,
    file: String,
    detail: String,
}

/// Every violation under `root`, sorted.
fn check(root: &Path, layers: &[&[&str]]) -> Vec<Violation> {
    let mut out = BTreeSet::new();
    let mut manifests = vec![root.join("xtask/Cargo.toml"), root.join("tests/Cargo.toml")];
    for krate in sorted_dir(&root.join("crates")) {
        let name = file_name(&krate);
        manifests.push(krate.join("Cargo.toml"));
        for file in rust_files(&krate.join("src")) {
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            let rel = relative(root, &file);
            let own = name.replace('-', "_");
            if name != "rrra-runner" {
                for imported in stages_imports(&text) {
                    if imported != own {
                        out.insert(Violation {
                            rule: "stages-import",
                            file: rel.clone(),
                            detail: imported,
                        });
                    }
                }
            }
            let kinds = text.matches("impl Stage for ").count();
            if kinds > 1 {
                out.insert(Violation {
                    rule: "two-kinds",
                    file: rel,
                    detail: kinds.to_string(),
                });
            }
        }
    }
    for manifest in manifests.into_iter().filter(|m| m.is_file()) {
        let text = std::fs::read_to_string(&manifest).expect("a readable Cargo.toml");
        let rel = relative(root, &manifest);
        let Some(name) = package_name(&text) else {
            continue;
        };
        let layer = |c: &str| layers.iter().position(|l| l.contains(&c));
        let Some(own) = layer(&name) else {
            out.insert(Violation {
                rule: "layering",
                file: rel,
                detail: format!("{name} is in no layer"),
            });
            continue;
        };
        for dep in workspace_deps(&text) {
            match layer(&dep) {
                Some(l) if l < own => {}
                Some(_) => {
                    out.insert(Violation {
                        rule: "layering",
                        file: rel.clone(),
                        detail: format!("{name} -> {dep}"),
                    });
                }
                None => {
                    out.insert(Violation {
                        rule: "layering",
                        file: rel.clone(),
                        detail: format!("{name} -> {dep}: {dep} is in no layer"),
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The crates whose `stages` module a source text names: `rrra_x::stages` in a path, or
/// `stages` at the top of a use group `rrra_x::{..., stages::..., ...}`.
fn stages_imports(text: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("rrra_") {
        if text[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let krate: String = text[at..].chars().take_while(|&c| is_ident(c)).collect();
        let rest = &text[at + krate.len()..];
        let Some(rest) = rest.strip_prefix("::") else {
            continue;
        };
        let names_stages = |s: &str| {
            s.strip_prefix("stages")
                .is_some_and(|after| !after.starts_with(is_ident))
        };
        let hit = if let Some(group) = rest.strip_prefix('{') {
            // The group's top-level entries.
            let mut depth = 0usize;
            let mut entries = vec![String::new()];
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => entries.push(String::new()),
                    _ => {}
                }
                if depth > 0 || c != ',' {
                    entries.last_mut().expect("an entry").push(c);
                }
            }
            entries.iter().any(|e| names_stages(e.trim_start()))
        } else {
            names_stages(rest)
        };
        if hit {
            found.insert(krate);
        }
    }
    found
}

/// `name` of the `[package]` table.
fn package_name(toml: &str) -> Option<String> {
    let mut in_package = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}

/// The `rrra-*`/`xtask` crates named in `[dependencies]` and `[build-dependencies]`.
fn workspace_deps(toml: &str) -> Vec<String> {
    let mut section = "";
    let mut deps = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[dependencies]" && section != "[build-dependencies]" {
            continue;
        }
        let key: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if key.starts_with("rrra-") || key == "xtask" {
            deps.push(key);
        }
    }
    deps
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("a dir entry").path()).collect();
    paths.sort();
    paths
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in sorted_dir(dir) {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a named entry")
        .to_string_lossy()
        .into_owned()
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .expect("under the root")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

#[test]
fn the_workspace_keeps_its_shape() {
    let found = check(&workspace_root(), LAYERS);
    let allowed: BTreeSet<(&str, &str, &str)> = ALLOWED.iter().copied().collect();
    let new: Vec<&Violation> = found
        .iter()
        .filter(|v| !allowed.contains(&(v.rule, v.file.as_str(), v.detail.as_str())))
        .collect();
    let stale: Vec<&(&str, &str, &str)> = ALLOWED
        .iter()
        .filter(|(rule, file, detail)| {
            !found
                .iter()
                .any(|v| v.rule == *rule && v.file == *file && v.detail == *detail)
        })
        .collect();
    assert!(new.is_empty(), "tidy violations: {new:#?}");
    assert!(
        stale.is_empty(),
        "allowed violations that no longer occur (remove them from ALLOWED): {stale:#?}"
    );
}

#[test]
fn a_broken_tree_fails_with_each_violation_named() {
    let root = tempfile::tempdir().expect("a temp dir");
    let write = |rel: &str, text: &str| {
        let path = root.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dirs");
        std::fs::write(path, text).expect("a file");
    };
    let manifest = |name: &str, deps: &[&str]| {
        let mut text = format!("[package]\nname = \"{name}\"\n\n[dependencies]\n");
        for dep in deps {
            text.push_str(&format!("{dep}.workspace = true\n"));
        }
        // Dev-dependencies may point anywhere.
        text.push_str("\n[dev-dependencies]\nrrra-top.workspace = true\n");
        text
    };
    let layers: &[&[&str]] = &[&["rrra-low"], &["rrra-mid", "rrra-peer"], &["rrra-top"]];
    write("crates/rrra-low/Cargo.toml", &manifest("rrra-low", &[]));
    // Depends on its own layer and on one above it.
    write(
        "crates/rrra-mid/Cargo.toml",
        &manifest("rrra-mid", &["rrra-low", "rrra-peer", "rrra-top"]),
    );
    write("crates/rrra-peer/Cargo.toml", &manifest("rrra-peer", &[]));
    write(
        "crates/rrra-top/Cargo.toml",
        &manifest("rrra-top", &["rrra-mid", "rrra-stray"]),
    );
    write("crates/rrra-stray/Cargo.toml", &manifest("rrra-stray", &[]));
    // Two kinds in one file; its own stages module is fine to name.
    write(
        "crates/rrra-mid/src/stages/pair.rs",
        "use crate::stages::x;\nuse rrra_mid::stages::y;\n\
         impl Stage for A {}\nimpl Stage for B {}\n",
    );
    write("crates/rrra-mid/src/stages/one.rs", "impl Stage for C {}\n");
    // Another crate's stages, in a use list and in a path; `stages_x` is another name.
    write(
        "crates/rrra-top/src/lib.rs",
        "use rrra_mid::{stages::A, lib};\nfn f() { rrra_peer::stages::run(); rrra_low::stages_x(); }\n",
    );
    write(
        "crates/rrra-top/src/deep/inner.rs",
        "use rrra_peer::stages::B;\n",
    );
    let got: Vec<(String, String, String)> = check(root.path(), layers)
        .into_iter()
        .map(|v| (v.rule.to_string(), v.file, v.detail))
        .collect();
    let want: Vec<(String, String, String)> = [
        (
            "layering",
            "crates/rrra-mid/Cargo.toml",
            "rrra-mid -> rrra-peer",
        ),
        (
            "layering",
            "crates/rrra-mid/Cargo.toml",
            "rrra-mid -> rrra-top",
        ),
        (
            "layering",
            "crates/rrra-stray/Cargo.toml",
            "rrra-stray is in no layer",
        ),
        (
            "layering",
            "crates/rrra-top/Cargo.toml",
            "rrra-top -> rrra-stray: rrra-stray is in no layer",
        ),
        (
            "stages-import",
            "crates/rrra-top/src/deep/inner.rs",
            "rrra_peer",
        ),
        ("stages-import", "crates/rrra-top/src/lib.rs", "rrra_mid"),
        ("stages-import", "crates/rrra-top/src/lib.rs", "rrra_peer"),
        ("two-kinds", "crates/rrra-mid/src/stages/pair.rs", "2"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
}
