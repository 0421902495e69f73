//! `show` and `export`: find a fresh stage's artifact in the cache and hand it to
//! rrra-inspect (polars) to print as a table or write as TREC text, CSV, JSONL, Parquet or
//! hard-negative training files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use rrra_common::schema::ArtifactKind;
use rrra_inspect::{HardNegativeFormat, TableFormat, View};
use rrra_runner::{Pipeline, State};

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// TREC run or qrels text (run and qrels artifacts).
    Trec,
    /// CSV with a header; list columns as JSON arrays.
    Csv,
    /// JSON lines.
    Jsonl,
    /// Zstd Parquet.
    Parquet,
    /// sentence-transformers anchor/positive/negative (examples; .parquet or .jsonl).
    St,
    /// FlagEmbedding {query, pos, neg} JSON lines (examples).
    Flag,
    /// Tevatron JSON lines (examples).
    Tevatron,
}

/// An artifact of a fresh stage.
struct Artifact {
    path: PathBuf,
    kind: ArtifactKind,
    stage: usize,
    port: String,
}

/// Splits `STAGE[.PORT]`; a `--output` flag names the port too.
fn split_spec<'a>(spec: &'a str, output: Option<&'a str>) -> Result<(&'a str, Option<&'a str>)> {
    let (stage, port) = match spec.split_once('.') {
        Some((stage, port)) => (stage, Some(port)),
        None => (spec, None),
    };
    match (port, output) {
        (Some(a), Some(b)) if a != b => bail!("{spec:?} and --output {b:?} name different outputs"),
        (port, output) => Ok((stage, port.or(output))),
    }
}

/// The Parquet artifact `spec` (`STAGE[.PORT]`) names; without a port, the stage's only
/// output that `pick` accepts.
fn locate(
    p: &Pipeline,
    data_dir: &Path,
    spec: &str,
    output: Option<&str>,
    pick: &dyn Fn(ArtifactKind) -> bool,
) -> Result<Artifact> {
    let (stage, port) = split_spec(spec, output)?;
    let at = p
        .position(stage)
        .with_context(|| format!("{} has no stage {stage:?}", p.file.display()))?;
    let node = &p.stages[at];
    let outputs = node.stage.outputs();
    let names = || {
        outputs
            .iter()
            .map(|o| format!("{}.{} ({})", stage, o.name, o.kind))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let port = match port {
        Some(name) => outputs.iter().find(|o| o.name == name).with_context(|| {
            format!("stage {stage:?} has no output {name:?}; it has {}", names())
        })?,
        None => {
            let mut ports = outputs.iter().filter(|o| pick(o.kind));
            match (ports.next(), ports.next()) {
                (Some(port), None) => port,
                _ => bail!(
                    "stage {stage:?}: name the output as STAGE.PORT, one of {}",
                    names()
                ),
            }
        }
    };
    if port.kind.is_directory() {
        bail!(
            "{stage}.{} is a {} folder, not a table",
            port.name,
            port.kind
        );
    }
    let states = rrra_runner::status(p, data_dir)?;
    let (State::Fresh, Some(key)) = &states[at] else {
        bail!(
            "stage {stage:?} is not fresh in the cache at {}: run the pipeline first",
            data_dir.display()
        );
    };
    Ok(Artifact {
        path: rrra_runner::cache::Cache::new(data_dir)
            .entry_dir(node.stage.kind(), key)
            .join(format!("{}.parquet", port.name)),
        kind: port.kind,
        stage: at,
        port: port.name.to_string(),
    })
}

/// `xtask show FILE STAGE[.PORT]`.
pub fn show(file: &Path, spec: &str, view: &View, data_dir: Option<PathBuf>) -> Result<()> {
    let p = Pipeline::load(file)?;
    let data_dir = crate::data_dir_of(&p, data_dir);
    let artifact = locate(&p, &data_dir, spec, None, &|k| !k.is_directory())?;
    let (rows, matched) = rrra_inspect::table::select(&artifact.path, view)?;
    println!("{}", rrra_inspect::table::render(&rows));
    println!(
        "{} of {matched} row{} ({} {}, {})",
        rows.height(),
        if matched == 1 { "" } else { "s" },
        artifact.kind,
        artifact.port,
        artifact.path.display()
    );
    Ok(())
}

/// The options of `xtask export`.
pub struct ExportArgs {
    pub spec: String,
    pub output: Option<String>,
    pub format: ExportFormat,
    pub to: PathBuf,
    pub tag: Option<String>,
    pub corpus: Option<String>,
    pub queries: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// `xtask export FILE STAGE[.PORT] --format F --to PATH`.
pub fn export(file: &Path, a: &ExportArgs) -> Result<()> {
    let p = Pipeline::load(file)?;
    let data_dir = crate::data_dir_of(&p, a.data_dir.clone());
    let output = a.output.as_deref();
    let hard_negatives = match a.format {
        ExportFormat::St => Some(HardNegativeFormat::SentenceTransformers),
        ExportFormat::Flag => Some(HardNegativeFormat::FlagEmbedding),
        ExportFormat::Tevatron => Some(HardNegativeFormat::Tevatron),
        _ => None,
    };
    let (artifact, what) = if let Some(format) = hard_negatives {
        let examples = locate(&p, &data_dir, &a.spec, output, &|k| {
            k == ArtifactKind::Examples
        })?;
        if examples.kind != ArtifactKind::Examples {
            bail!(
                "{}: --format {:?} takes an examples artifact, not {}",
                a.spec,
                a.format,
                examples.kind
            );
        }
        let corpus = texts(
            &p,
            &data_dir,
            &examples,
            a.corpus.as_deref(),
            "corpus",
            ArtifactKind::Corpus,
        )?;
        let queries = texts(
            &p,
            &data_dir,
            &examples,
            a.queries.as_deref(),
            "queries",
            ArtifactKind::Queries,
        )?;
        let sources = rrra_inspect::hard_negatives::Sources {
            examples: &examples.path,
            corpus: &corpus.path,
            queries: &queries.path,
        };
        let s = rrra_inspect::hard_negatives::export(sources, &a.to, format)?;
        let st = s
            .st_negatives
            .filter(|&n| n < s.negatives.1)
            .map(|n| {
                format!(
                    "; examples have {} to {} negatives, each row holds the first {n}",
                    s.negatives.0, s.negatives.1
                )
            })
            .unwrap_or_default();
        let texts_from = format!(
            "texts from {} and {}",
            describe(&p, &corpus),
            describe(&p, &queries)
        );
        (
            examples,
            format!("{} examples{st}; {texts_from}", s.records),
        )
    } else if a.format == ExportFormat::Trec {
        let artifact = locate(&p, &data_dir, &a.spec, output, &|k| {
            matches!(k, ArtifactKind::Run | ArtifactKind::Qrels)
        })?;
        write_trec(
            &artifact,
            &a.to,
            a.tag.as_deref().unwrap_or(&p.stages[artifact.stage].id),
        )?;
        (artifact, "TREC text".into())
    } else {
        let artifact = locate(&p, &data_dir, &a.spec, output, &|k| !k.is_directory())?;
        let format = match a.format {
            ExportFormat::Csv => TableFormat::Csv,
            ExportFormat::Jsonl => TableFormat::Jsonl,
            _ => TableFormat::Parquet,
        };
        let rows = rrra_inspect::write::export(&artifact.path, &a.to, format)?;
        (artifact, format!("{rows} rows"))
    };
    println!(
        "wrote {} ({} of stage {}: {what})",
        a.to.display(),
        artifact.port,
        p.stages[artifact.stage].id
    );
    Ok(())
}

fn describe(p: &Pipeline, a: &Artifact) -> String {
    format!("{}.{}", p.stages[a.stage].id, a.port)
}

/// The corpus or queries the examples' ids refer to: the flag's `STAGE[.PORT]`, else what a
/// stage training on these examples reads as `port`, else the pipeline's only artifact of
/// that kind.
fn texts(
    p: &Pipeline,
    data_dir: &Path,
    examples: &Artifact,
    flag: Option<&str>,
    port: &str,
    kind: ArtifactKind,
) -> Result<Artifact> {
    let pick = |k: ArtifactKind| k == kind;
    if let Some(spec) = flag {
        let found = locate(p, data_dir, spec, None, &pick)?;
        if found.kind != kind {
            bail!("--{port} {spec}: a {} artifact, not {kind}", found.kind);
        }
        return Ok(found);
    }
    let consumer = p.stages.iter().find_map(|node| {
        let reads_examples = node
            .inputs
            .iter()
            .any(|e| e.from_stage == examples.stage && e.from_port == examples.port);
        let edge = node.inputs.iter().find(|e| e.port == port)?;
        reads_examples.then_some(edge)
    });
    let (stage, out) = match consumer {
        Some(edge) => (edge.from_stage, edge.from_port.clone()),
        None => {
            let all: Vec<(usize, &str)> = p
                .stages
                .iter()
                .enumerate()
                .flat_map(|(i, n)| {
                    n.stage
                        .outputs()
                        .iter()
                        .filter(|o| o.kind == kind)
                        .map(move |o| (i, o.name))
                })
                .collect();
            match all.as_slice() {
                [(i, name)] => (*i, name.to_string()),
                _ => bail!(
                    "no stage trains on {}.{} and the pipeline has {} {kind} artifacts: name the {kind} with --{port} STAGE[.PORT]",
                    p.stages[examples.stage].id,
                    examples.port,
                    all.len()
                ),
            }
        }
    };
    locate(
        p,
        data_dir,
        &format!("{}.{out}", p.stages[stage].id),
        None,
        &pick,
    )
}

fn write_trec(artifact: &Artifact, to: &Path, tag: &str) -> Result<()> {
    use rrra_common::artifact::read_rows;
    match artifact.kind {
        ArtifactKind::Run => {
            let run = rrra_eval::Run::from_rows(read_rows(&artifact.path)?)?;
            rrra_eval::write_trec_run_file(&run, tag, to)?;
        }
        ArtifactKind::Qrels => {
            let qrels = rrra_eval::Qrels::from_rows(read_rows(&artifact.path)?)?;
            rrra_eval::write_trec_qrels_file(&qrels, to)?;
        }
        other => {
            bail!("a {other} artifact has no TREC text form: use --format csv, jsonl or parquet")
        }
    }
    Ok(())
}
