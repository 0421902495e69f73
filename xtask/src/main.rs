//! `cargo xtask`: rrra's command line. `run` executes a pipeline file against the artifact
//! cache, `status` shows each stage as Fresh/Stale/Missing, `graph` prints the DAG, `kinds`
//! lists the stage implementations, `clean` empties the cache; `test` and `bench` set up the
//! Python reference tools the parity tests and benchmarks compare against, then run them.

mod progress;
mod python;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use rrra_runner::{Event, Pipeline, State};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "rrra: dense retrieval pipelines with false-negative-aware negatives")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline, reusing every stage whose outputs are cached.
    Run {
        file: PathBuf,
        /// Where artifacts are cached (default: the file's `data_dir`, else `data`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show each stage as Fresh, Stale or Missing.
    Status {
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the pipeline DAG.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
    /// List the stage kinds with their inputs and outputs.
    Kinds,
    /// Remove the artifact cache.
    Clean {
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Install the Python reference tools into `.venv`, then run the test suite.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks (each prints a ratio against its named peer).
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Run { file, data_dir } => run(&file, data_dir),
        Command::Status { file, data_dir } => status(&file, data_dir),
        Command::Graph { file, format } => {
            let p = Pipeline::load(&file)?;
            print!(
                "{}",
                match format {
                    GraphFormat::Mermaid => rrra_runner::graph::mermaid(&p),
                    GraphFormat::Dot => rrra_runner::graph::dot(&p),
                }
            );
            Ok(())
        }
        Command::Kinds => {
            for s in rrra_runner::registry::all() {
                let ports = |ps: &[rrra_common::stage::Port]| {
                    ps.iter()
                        .map(|p| format!("{}{}: {}", p.name, if p.optional { "?" } else { "" }, p.kind))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "{:<22} v{}  {}\n{:<26}in: {}\n{:<26}out: {}",
                    s.kind(),
                    s.version(),
                    s.about(),
                    "",
                    ports(s.inputs()),
                    "",
                    ports(s.outputs())
                );
            }
            Ok(())
        }
        Command::Clean { data_dir } => {
            let cache = rrra_runner::cache::Cache::new(&data_dir);
            if cache.root().exists() {
                std::fs::remove_dir_all(cache.root())
                    .with_context(|| format!("removing {}", cache.root().display()))?;
                println!("removed {}", cache.root().display());
            } else {
                println!("nothing to clean at {}", cache.root().display());
            }
            Ok(())
        }
        Command::Test { args } => python::cargo_with_reference("test", &args),
        Command::Bench { args } => python::cargo_with_reference("bench", &args),
    }
}

fn data_dir_of(p: &Pipeline, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| p.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("data"))
}

fn run(file: &Path, data_dir: Option<PathBuf>) -> Result<()> {
    let start = Instant::now();
    let p = Pipeline::load(file)?;
    let data_dir = data_dir_of(&p, data_dir);
    eprintln!(
        "pipeline {} ({} stages, seed {}), cache {}",
        p.name,
        p.stages.len(),
        p.seed,
        data_dir.join("cache").display()
    );
    let bars = progress::Bars::new();
    let done = rrra_runner::run(&p, &data_dir, &bars, &mut |event| match event {
        Event::Swept(n) => eprintln!("  removed {n} scratch director{} of an interrupted run", if n == 1 { "y" } else { "ies" }),
        Event::Cached { id, kind } => eprintln!("  = {id:<20} {kind:<18} cached"),
        Event::Damaged { id, reason } => eprintln!("  ! {id:<20} cache entry damaged ({reason}), recomputing"),
        Event::Started { id, kind } => eprintln!("  > {id:<20} {kind:<18} running"),
        Event::Finished { id, kind, manifest } => {
            let rows: u64 = manifest.outputs.values().map(|o| o.rows).sum();
            eprintln!(
                "  + {id:<20} {kind:<18} done in {:.1}s ({rows} rows)",
                manifest.elapsed_s
            )
        }
    })?;
    let ran = done.iter().filter(|d| d.ran).count();
    for d in &done {
        if let Some(table) = &d.manifest.report.table {
            println!("\n{} ({})\n{table}", d.id, d.kind);
        }
    }
    eprintln!(
        "\n{ran} stage{} ran, {} cached, {:.2}s",
        if ran == 1 { "" } else { "s" },
        done.len() - ran,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn status(file: &Path, data_dir: Option<PathBuf>) -> Result<()> {
    let p = Pipeline::load(file)?;
    let data_dir = data_dir_of(&p, data_dir);
    let states = rrra_runner::status(&p, &data_dir)?;
    println!("{:<20} {:<18} {:<8} key", "stage", "kind", "state");
    for (node, (state, key)) in p.stages.iter().zip(&states) {
        let state = match state {
            State::Fresh => "Fresh",
            State::Stale => "Stale",
            State::Missing => "Missing",
        };
        println!(
            "{:<20} {:<18} {:<8} {}",
            node.id,
            node.stage.kind(),
            state,
            key.as_deref().unwrap_or("(waits on inputs)")
        );
    }
    Ok(())
}
