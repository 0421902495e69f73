//! The pipeline file: YAML listing stages with an `id`, a `kind`, `inputs` and `params`.
//! [`Pipeline::load`] parses and validates the whole file before anything runs; every
//! error names the file and the line it concerns.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rrra_common::stage::Stage;
use rrra_eval::stages::EvalTrec;
use serde::Deserialize;

use crate::registry::{self, DynStage, Prepared};

/// A validation error, located in the pipeline file.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PipelineError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Option<String>,
    #[serde(default)]
    seed: u64,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    baseline_row: Option<String>,
    stages: Vec<RawStage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: String,
    kind: String,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    params: Option<serde_yaml::Value>,
    #[serde(default)]
    sweep: Option<String>,
    #[serde(default)]
    row: Option<String>,
    #[serde(default)]
    dev: Option<String>,
}

/// An input port connected to an output of an upstream stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub port: String,
    pub from_stage: usize,
    pub from_port: String,
}

/// A validated stage.
pub struct StageNode {
    pub id: String,
    pub stage: &'static dyn DynStage,
    pub inputs: Vec<Edge>,
    pub prepared: Prepared,
    pub line: usize,
    /// The `sweep:` label, a numeric param of this stage: the stage is one point of a sweep
    /// over that param, which `report` plots against the metrics evaluated downstream. Not
    /// part of the cache key.
    pub sweep: Option<String>,
    /// The `row:` label of an `eval.trec` stage: the stage is the test result of one
    /// setting of ablation row `row`; `report` lists, per row, the setting whose `dev`
    /// evaluation scores best. Not part of the cache key.
    pub row: Option<String>,
    /// The `dev:` label beside `row:`: the id of the `eval.trec` stage that evaluates the
    /// same system on the dev queries, which chooses among the row's settings.
    pub dev: Option<String>,
}

/// A validated pipeline; `stages` are in a topological order (every stage after its inputs).
pub struct Pipeline {
    pub file: PathBuf,
    pub name: String,
    pub seed: u64,
    /// `data_dir` from the file, resolved against the file's directory.
    pub data_dir: Option<PathBuf>,
    /// The directory relative paths in params resolve against.
    pub base_dir: PathBuf,
    /// The ablation row the others are compared with (`baseline_row:`, one of the stages'
    /// `row:` labels).
    pub baseline_row: Option<String>,
    pub stages: Vec<StageNode>,
}

/// Finds the 1-based line of things named in the YAML text, so errors can point at them.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// The first line at or after `from` (1-based) that contains `key:` as a YAML key.
    fn key(&self, from: usize, until: usize, key: &str) -> Option<usize> {
        let until = until.min(self.lines.len());
        (from.max(1)..=until).find(|&n| {
            let line = self.lines[n - 1];
            line.match_indices(key).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + key.len()..].trim_start_matches(['"', '\'']);
                matches!(before, None | Some(' ' | '{' | ',' | '-' | '"' | '\''))
                    && after.trim_start().starts_with(':')
            })
        })
    }

    /// The line of stage `id` (its `id:` key), at or after line `from`.
    fn stage(&self, from: usize, id: &str) -> Option<usize> {
        (from.max(1)..=self.lines.len()).find(|&n| {
            let line = self.lines[n - 1].trim_start().trim_start_matches("- ");
            line.strip_prefix("id:")
                .is_some_and(|rest| rest.trim().trim_matches(['"', '\'']) == id)
        })
    }
}

impl Pipeline {
    /// Reads, parses and validates a pipeline file.
    pub fn load(file: &Path) -> Result<Pipeline, PipelineError> {
        let bytes = std::fs::read(file).map_err(|e| PipelineError {
            file: file.to_path_buf(),
            line: None,
            message: format!("cannot read the pipeline file: {e}"),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = valid.len() - valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
            PipelineError {
                file: file.to_path_buf(),
                line: Some(line),
                message: format!(
                    "expected UTF-8 text, found an invalid byte sequence at byte {column} of the line"
                ),
            }
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates pipeline `text`, reporting errors against `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Pipeline, PipelineError> {
        let err = |line: Option<usize>, message: String| PipelineError {
            file: file.to_path_buf(),
            line,
            message,
        };
        let raw: RawPipeline = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            err(line, format!("not a valid pipeline: {e}"))
        })?;
        let loc = Locator::new(text);
        if raw.stages.is_empty() {
            return Err(err(loc.key(1, usize::MAX, "stages"), "no stages".into()));
        }
        let base_dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();

        // Stage lines and ids.
        let mut lines: Vec<usize> = Vec::with_capacity(raw.stages.len());
        for s in &raw.stages {
            let from = lines.last().map_or(1, |l| l + 1);
            lines.push(loc.stage(from, &s.id).unwrap_or(from));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in raw.stages.iter().enumerate() {
            if s.id.is_empty() || s.id.contains(['.', '/', ' ']) {
                return Err(err(
                    Some(lines[i]),
                    format!(
                        "stage id {:?} must be non-empty without '.', '/' or spaces",
                        s.id
                    ),
                ));
            }
            if let Some(first) = index.insert(&s.id, i) {
                return Err(err(
                    Some(lines[i]),
                    format!(
                        "duplicate stage id {:?} (first at line {})",
                        s.id, lines[first]
                    ),
                ));
            }
        }
        let end_of = |i: usize| lines.get(i + 1).copied().unwrap_or(usize::MAX);

        // Kinds and params.
        let mut stages = Vec::with_capacity(raw.stages.len());
        for (i, s) in raw.stages.iter().enumerate() {
            let line = lines[i];
            let kind_line = loc.key(line, end_of(i), "kind").or(Some(line));
            let stage = registry::lookup(&s.kind).ok_or_else(|| {
                err(
                    kind_line,
                    format!(
                        "stage {:?}: unknown kind {:?}; known kinds: {}",
                        s.id,
                        s.kind,
                        registry::kinds().join(", ")
                    ),
                )
            })?;
            let params = match &s.params {
                None | Some(serde_yaml::Value::Null) => {
                    serde_json::Value::Object(Default::default())
                }
                Some(v) => {
                    // YAML merge keys (`{<<: *train, epochs: 2}`): a variant of an anchored
                    // params block, the anchor's values under the ones written beside it.
                    let mut v = v.clone();
                    v.apply_merge().map_err(|e| {
                        err(
                            Some(line),
                            format!("stage {:?}: params: merge key: {e}", s.id),
                        )
                    })?;
                    serde_json::to_value(v)
                        .map_err(|e| err(Some(line), format!("stage {:?}: params: {e}", s.id)))?
                }
            };
            let prepared = stage.prepare(&params).map_err(|e| {
                let at = e
                    .path
                    .as_deref()
                    .and_then(|p| loc.key(line, end_of(i), p))
                    .or_else(|| loc.key(line, end_of(i), "params"))
                    .or(Some(line));
                err(at, format!("stage {:?} ({}): {}", s.id, s.kind, e.message))
            })?;
            if let Some(label) = &s.sweep
                && !prepared.params.get(label).is_some_and(|v| v.is_number())
            {
                return Err(err(
                    loc.key(line, end_of(i), "sweep").or(Some(line)),
                    format!(
                        "stage {:?} ({}): sweep: {label:?} names no numeric param of {}; \
                         expected the name of the param the sweep varies",
                        s.id, s.kind, s.kind
                    ),
                ));
            }
            let eval_only = |key: &str, present: bool| -> Result<(), PipelineError> {
                if present && s.kind != EvalTrec::KIND {
                    return Err(err(
                        loc.key(line, end_of(i), key).or(Some(line)),
                        format!(
                            "stage {:?} ({}): {key}: labels an ablation result; expected it on an eval.trec stage",
                            s.id, s.kind
                        ),
                    ));
                }
                Ok(())
            };
            eval_only("row", s.row.is_some())?;
            eval_only("dev", s.dev.is_some())?;
            if let Some(dev) = &s.dev {
                let at = loc.key(line, end_of(i), "dev").or(Some(line));
                if s.row.is_none() {
                    return Err(err(
                        at,
                        format!("stage {:?}: dev: {dev:?} without row:; expected both", s.id),
                    ));
                }
                match index.get(dev.as_str()) {
                    Some(&d) if d != i && raw.stages[d].kind == EvalTrec::KIND => {}
                    _ => {
                        return Err(err(
                            at,
                            format!(
                                "stage {:?}: dev: {dev:?} names no other eval.trec stage; \
                                 expected the id of the dev-query evaluation of the same system",
                                s.id
                            ),
                        ));
                    }
                }
            }
            stages.push((stage, prepared));
        }
        if let Some(baseline) = &raw.baseline_row
            && !raw.stages.iter().any(|s| s.row.as_ref() == Some(baseline))
        {
            return Err(err(
                loc.key(1, usize::MAX, "baseline_row"),
                format!("baseline_row: {baseline:?} is no stage's row: label"),
            ));
        }

        // Inputs.
        let mut nodes = Vec::with_capacity(raw.stages.len());
        for (i, (s, (stage, prepared))) in raw.stages.iter().zip(stages).enumerate() {
            let line = lines[i];
            let mut edges = Vec::new();
            for (port, source) in &s.inputs {
                let at = loc.key(line, end_of(i), port).or(Some(line));
                let Some(want) = stage.inputs().iter().find(|p| p.name == port) else {
                    let known: Vec<_> = stage.inputs().iter().map(|p| p.name).collect();
                    return Err(err(
                        at,
                        format!(
                            "stage {:?}: {} has no input {port:?}; its inputs: {}",
                            s.id,
                            s.kind,
                            known.join(", ")
                        ),
                    ));
                };
                let Some((from_id, from_port)) = source.split_once('.') else {
                    return Err(err(
                        at,
                        format!(
                            "stage {:?}: input {port:?} must be STAGE.OUTPUT, got {source:?}",
                            s.id
                        ),
                    ));
                };
                let Some(&from) = index.get(from_id) else {
                    return Err(err(
                        at,
                        format!(
                            "stage {:?}: input {port:?} names unknown stage {from_id:?}",
                            s.id
                        ),
                    ));
                };
                let upstream = registry::lookup(&raw.stages[from].kind).expect("checked above");
                let Some(out) = upstream.outputs().iter().find(|p| p.name == from_port) else {
                    let known: Vec<_> = upstream.outputs().iter().map(|p| p.name).collect();
                    return Err(err(
                        at,
                        format!(
                            "stage {:?}: input {port:?}: stage {from_id:?} ({}) has no output {from_port:?}; its outputs: {}",
                            s.id,
                            upstream.kind(),
                            known.join(", ")
                        ),
                    ));
                };
                if out.kind != want.kind {
                    return Err(err(
                        at,
                        format!(
                            "stage {:?}: input {port:?} expects a {} artifact, but {source} is a {}",
                            s.id, want.kind, out.kind
                        ),
                    ));
                }
                edges.push(Edge {
                    port: port.clone(),
                    from_stage: from,
                    from_port: from_port.to_string(),
                });
            }
            for p in stage.inputs().iter().filter(|p| !p.optional) {
                if !s.inputs.contains_key(p.name) {
                    return Err(err(
                        Some(line),
                        format!(
                            "stage {:?} ({}): missing input {:?} (a {} artifact)",
                            s.id, s.kind, p.name, p.kind
                        ),
                    ));
                }
            }
            nodes.push(StageNode {
                id: s.id.clone(),
                stage,
                inputs: edges,
                prepared,
                line,
                sweep: s.sweep.clone(),
                row: s.row.clone(),
                dev: s.dev.clone(),
            });
        }

        let order = topological_order(&nodes).map_err(|cycle| {
            let ids: Vec<_> = cycle.iter().map(|&i| nodes[i].id.as_str()).collect();
            err(
                Some(nodes[cycle[0]].line),
                format!("the stages form a cycle: {}", ids.join(" -> ")),
            )
        })?;
        let stages = reorder(nodes, &order);
        Ok(Pipeline {
            file: file.to_path_buf(),
            name: raw.name.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "pipeline".into())
            }),
            seed: raw.seed,
            data_dir: raw.data_dir.map(|d| base_dir.join(d)),
            base_dir,
            baseline_row: raw.baseline_row,
            stages,
        })
    }

    /// The index of stage `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }

    /// Keeps only the stages `targets` and those they depend on (in file order), so that a
    /// run computes part of a pipeline; the kept stages' cache keys do not change.
    pub fn restrict(&mut self, targets: &[String]) -> Result<(), PipelineError> {
        let mut keep = vec![false; self.stages.len()];
        let mut todo = Vec::new();
        for t in targets {
            let at = self.position(t).ok_or_else(|| PipelineError {
                file: self.file.clone(),
                line: None,
                message: format!(
                    "no stage {t:?} to run (stages: {})",
                    self.stages
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
            todo.push(at);
        }
        while let Some(at) = todo.pop() {
            if !std::mem::replace(&mut keep[at], true) {
                todo.extend(self.stages[at].inputs.iter().map(|e| e.from_stage));
            }
        }
        // New index of each kept stage; the stages are in topological order, so every
        // input of a kept stage is kept and comes before it.
        let mut index = vec![usize::MAX; keep.len()];
        let stages = std::mem::take(&mut self.stages);
        for (old, node) in stages.into_iter().enumerate() {
            if keep[old] {
                index[old] = self.stages.len();
                self.stages.push(node);
            }
        }
        for node in &mut self.stages {
            for e in &mut node.inputs {
                e.from_stage = index[e.from_stage];
            }
        }
        Ok(())
    }
}

/// Kahn's algorithm, stable in file order. On a cycle, returns the stages on it.
fn topological_order(nodes: &[StageNode]) -> Result<Vec<usize>, Vec<usize>> {
    let n = nodes.len();
    let mut indegree = vec![0usize; n];
    let mut children = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for e in &node.inputs {
            indegree[i] += 1;
            children[e.from_stage].push(i);
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.insert(c);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk back along unfinished inputs until a stage repeats: that loop is a cycle.
    let mut at = (0..n).find(|&i| indegree[i] > 0).expect("a stage is left");
    let mut path = Vec::new();
    loop {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        path.push(at);
        at = nodes[at]
            .inputs
            .iter()
            .map(|e| e.from_stage)
            .find(|&f| indegree[f] > 0)
            .expect("an unfinished stage has an unfinished input");
    }
}

/// Puts nodes in `order`, remapping edges to the new positions.
fn reorder(nodes: Vec<StageNode>, order: &[usize]) -> Vec<StageNode> {
    let mut new_pos = vec![0; order.len()];
    for (pos, &old) in order.iter().enumerate() {
        new_pos[old] = pos;
    }
    let mut slots: Vec<Option<StageNode>> = nodes.into_iter().map(Some).collect();
    order
        .iter()
        .map(|&old| {
            let mut node = slots[old].take().expect("each stage once");
            for e in &mut node.inputs {
                e.from_stage = new_pos[e.from_stage];
            }
            node
        })
        .collect()
}
