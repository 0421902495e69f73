//! `cargo xtask`: rrra's command line. `run` executes a pipeline file against the artifact
//! cache, `status` shows each stage as Fresh/Stale/Missing, `graph` prints the DAG, `kinds`
//! lists the stage implementations, `show` prints an artifact as a table, `export` writes
//! one for other tools, `report` writes tables and plots of cached results, `archive`
//! keeps their manifests and metrics under `results/` to commit, `clean` empties the
//! cache; `test` and `bench` set up the
//! Python reference tools the parity tests and benchmarks compare against, then run them.

mod bench;
mod bench_scale;
mod fuzz;
mod inspect;
mod killloop;
mod kinds;
mod progress;
mod python;
mod ray;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use rrra_runner::{Event, Pipeline, State};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "rrra: dense retrieval pipelines with false-negative-aware negatives"
)]
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
        /// Run with this seed instead of the file's (repeat runs for a spread over seeds).
        #[arg(long)]
        seed: Option<u64>,
        /// Run only these stages (comma-separated ids) and the stages they depend on.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where parts of split stages are computed: `local` (here), `plan` (write one
        /// task file per part not done and stop before them), `collect` (merge finished
        /// parts, refusing while some are not done, then go on as `plan`), `ray` (plan,
        /// run the tasks as Ray tasks through deploy/ray/rrra_ray.py, collect; repeat).
        #[arg(long, value_enum, default_value_t = ExecutorArg::Local)]
        executor: ExecutorArg,
        /// The Ray cluster of `--executor ray` (default: a local instance).
        #[arg(long)]
        address: Option<String>,
        /// CPUs of the local Ray instance (`--executor ray` without `--address`).
        #[arg(long)]
        ray_cpus: Option<u32>,
        /// The Python with `ray` installed (default: `$RRRA_PYTHON`, else `python3`).
        #[arg(long)]
        python: Option<PathBuf>,
        /// CPUs each planned task asks for.
        #[arg(long, default_value_t = 1)]
        task_cpus: u32,
        /// GPUs each planned task asks for (at least 1 for a stage with a GPU `backend`).
        #[arg(long, default_value_t = 0)]
        task_gpus: u32,
        /// Memory (MiB) each planned task asks for.
        #[arg(long)]
        task_memory_mb: Option<u64>,
    },
    /// Run one planned part: `TASK.json`, or with `--index FILE` the task on line
    /// `$SLURM_ARRAY_TASK_ID` (else `$JOB_COMPLETION_INDEX`) of a plan's index file.
    ExecPart {
        /// A `task.json` written by `run --executor plan`.
        #[arg(required_unless_present = "index")]
        task: Option<PathBuf>,
        /// A plan's index file (`<cache>/pipelines/<name>.tasks`).
        #[arg(long, conflicts_with = "task")]
        index: Option<PathBuf>,
    },
    /// Show each stage as Fresh, Stale or Missing.
    Status {
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The seed whose cache entries to show (default: the file's).
        #[arg(long)]
        seed: Option<u64>,
        /// Re-hash every cached output against its manifest (default: size and mtime).
        #[arg(long)]
        verify: bool,
    },
    /// Print the pipeline DAG.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
    /// List the stage kinds with their inputs and outputs.
    Kinds {
        /// Also every param: its type, default and a one-line doc.
        #[arg(long)]
        params: bool,
    },
    /// Write an artifact of a fresh stage as TREC text (runs, qrels), CSV, JSONL or Parquet,
    /// or an examples artifact as hard-negative training files (st, flag, tevatron).
    Export {
        file: PathBuf,
        /// STAGE or STAGE.PORT: the artifact to export.
        stage: String,
        /// The output port (default: the stage's only output the format takes).
        #[arg(long)]
        output: Option<String>,
        #[arg(long, value_enum, default_value = "trec")]
        format: inspect::ExportFormat,
        /// Where to write.
        #[arg(long)]
        to: PathBuf,
        /// The run tag (last column of a TREC run; default: the stage id).
        #[arg(long)]
        tag: Option<String>,
        /// st/flag/tevatron: the corpus as STAGE[.PORT] (default: what the stage training on
        /// the examples reads, else the pipeline's only corpus).
        #[arg(long)]
        corpus: Option<String>,
        /// st/flag/tevatron: the queries as STAGE[.PORT] (default as for --corpus).
        #[arg(long)]
        queries: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print an artifact of a fresh stage as a table.
    Show {
        file: PathBuf,
        /// STAGE or STAGE.PORT (default: the stage's only table output).
        stage: String,
        /// Rows to print, at most.
        #[arg(long, default_value_t = 20)]
        head: usize,
        /// A filter such as `score > 0.5 and query_id == "q1"` (==, !=, <, <=, >, >=; and, or).
        #[arg(long = "where")]
        filter: Option<String>,
        /// Columns to print, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write a Markdown report (tables and SVG plots) of pipelines' cached results.
    Report {
        /// Pipeline files whose results to report.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where artifacts are cached (default: each file's `data_dir`, else `data`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Folder the report and its plots are written to.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Report these seeds (comma-separated) and their mean ± sd (default: the file's).
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        /// Test the ablation rows against this row instead of the file's `baseline_row`.
        #[arg(long)]
        baseline: Option<String>,
        /// Results archives' root: stages not in the cache are read from `<DIR>/<name>`.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Copy pipelines' completed stages into the results archive `<to>/<name>`: every
    /// manifest, and only the metrics files (of at most `--max-kib`), so `report` can read
    /// them after the cache is gone. Entries already archived are left as they are.
    Archive {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Archive these seeds (comma-separated; default: the file's).
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        #[arg(long, default_value = "results")]
        to: PathBuf,
        /// Metrics files larger than this (KiB) are left out too; hashes stay in the manifest.
        #[arg(long, default_value_t = 64)]
        max_kib: u64,
    },
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
    /// Run the test that loads an exported model in sentence-transformers (left out of
    /// `test`: it installs torch, ~7 GB, into `.venv`, unless `--python` has it already).
    TestSt {
        /// A Python interpreter with sentence-transformers installed.
        #[arg(long)]
        python: Option<PathBuf>,
    },
    /// Run the benchmarks (each prints a ratio against its named peer); `bench encode` /
    /// `bench train [ARGS]` run only the encoder's CPU benchmark against PyTorch
    /// (transformers / sentence-transformers, from `$PYTHON` or `.venv`); `bench scale
    /// [ARGS]` the scale benchmark (rows/s and peak RSS per stage at two sizes).
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the readers and the pipeline parser: `--minutes N` per target, `--target T`
    /// (see `crates/rrra-fuzz`); prints executions and unique findings per target.
    Fuzz {
        /// Build the fuzzer with the release profile (default: dev, whose reader crates
        /// are optimised; release rebuilds every dependency once).
        #[arg(long)]
        release: bool,
        /// Arguments of the fuzzer (`--minutes`, `--target`, `--seed`, `--out`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a small pipeline, SIGKILL it at random moments N times, let it finish, and
    /// check its artifacts against an uninterrupted run and with `status --verify`.
    KillLoop {
        #[arg(long, default_value_t = 50)]
        kills: usize,
        /// Seed of the kill moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Working folder (the tiny collection, pipeline and both caches).
        #[arg(long, default_value = "target/kill-loop")]
        dir: PathBuf,
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
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Run {
            file,
            data_dir,
            seed,
            only,
            executor,
            address,
            ray_cpus,
            python,
            task_cpus,
            task_gpus,
            task_memory_mb,
        } => {
            let resources = rrra_runner::tasks::Resources {
                cpus: task_cpus,
                gpus: task_gpus,
                memory_mb: task_memory_mb,
            };
            match executor {
                ExecutorArg::Ray => ray::run(
                    &ray::Ray {
                        address,
                        cpus: ray_cpus,
                        python,
                    },
                    &mut |executor| run(&file, data_dir.clone(), seed, &only, executor, &resources),
                ),
                other => run(&file, data_dir, seed, &only, other.into(), &resources).map(|_| ()),
            }
        }
        Command::ExecPart { task, index } => exec_part(task, index),
        Command::Status {
            file,
            data_dir,
            seed,
            verify,
        } => status(&file, data_dir, seed, verify),
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
        Command::Kinds { params } => {
            print!("{}", kinds::listing(params));
            Ok(())
        }
        Command::Export {
            file,
            stage,
            output,
            format,
            to,
            tag,
            corpus,
            queries,
            data_dir,
        } => inspect::export(
            &file,
            &inspect::ExportArgs {
                spec: stage,
                output,
                format,
                to,
                tag,
                corpus,
                queries,
                data_dir,
            },
        ),
        Command::Show {
            file,
            stage,
            head,
            filter,
            columns,
            data_dir,
        } => inspect::show(
            &file,
            &stage,
            &rrra_inspect::View {
                columns,
                filter,
                head,
            },
            data_dir,
        ),
        Command::Report {
            files,
            data_dir,
            out,
            seeds,
            baseline,
            results,
        } => {
            let path = report::report(
                &files,
                data_dir,
                &results,
                &seeds,
                baseline.as_deref(),
                &out,
            )?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Archive {
            files,
            data_dir,
            seeds,
            to,
            max_kib,
        } => archive(&files, data_dir, &seeds, &to, max_kib),
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
        Command::Test { args } => python::cargo_with_reference("test", "requirements.txt", &args),
        Command::TestSt { python } => python::sentence_transformers_test(python),
        Command::Bench { args } => match args.first().and_then(|a| bench::Peer::parse(a)) {
            Some(peer) => bench::run(peer, &args[1..]),
            None if args.first().is_some_and(|a| a == "scale") => bench_scale::run(&args[1..]),
            None => python::cargo_with_reference("bench", "bench-requirements.txt", &args),
        },
        Command::Fuzz { release, args } => fuzz::fuzz(release, &args),
        Command::KillLoop { kills, seed, dir } => killloop::kill_loop(kills, seed, &dir),
    }
}

fn data_dir_of(p: &Pipeline, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| p.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// Loads a pipeline, with `seed` in place of the file's when given.
fn load(file: &Path, seed: Option<u64>) -> Result<Pipeline> {
    let mut p = Pipeline::load(file)?;
    if let Some(seed) = seed {
        p.seed = seed;
    }
    Ok(p)
}

/// `--executor` of `run`.
#[derive(Clone, Copy, ValueEnum)]
enum ExecutorArg {
    Local,
    Plan,
    Collect,
    Ray,
}

impl From<ExecutorArg> for rrra_runner::Executor {
    fn from(e: ExecutorArg) -> Self {
        match e {
            ExecutorArg::Local => rrra_runner::Executor::Local,
            ExecutorArg::Plan => rrra_runner::Executor::Plan,
            ExecutorArg::Collect => rrra_runner::Executor::Collect,
            ExecutorArg::Ray => unreachable!("ray plans and collects"),
        }
    }
}

fn exec_part(task: Option<PathBuf>, index: Option<PathBuf>) -> Result<()> {
    let task = match (task, index) {
        (Some(task), _) => task,
        (None, Some(index)) => {
            let i = rrra_runner::tasks::array_index(|name| std::env::var(name).ok())?;
            rrra_runner::tasks::task_at(&index, i)?
        }
        (None, None) => unreachable!("clap requires a task or --index"),
    };
    let start = Instant::now();
    let bars = progress::Bars::new();
    let what = match rrra_runner::tasks::exec_part(&task, &bars)? {
        rrra_runner::tasks::Executed::Computed => "computed",
        rrra_runner::tasks::Executed::AlreadyDone => "already done",
    };
    eprintln!(
        "{}: {what} in {:.2}s",
        task.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run(
    file: &Path,
    data_dir: Option<PathBuf>,
    seed: Option<u64>,
    only: &[String],
    executor: rrra_runner::Executor,
    resources: &rrra_runner::tasks::Resources,
) -> Result<Option<PathBuf>> {
    let start = Instant::now();
    let mut p = load(file, seed)?;
    if !only.is_empty() {
        p.restrict(only)?;
    }
    let data_dir = data_dir_of(&p, data_dir);
    eprintln!(
        "pipeline {} ({} stages, seed {}), cache {}",
        p.name,
        p.stages.len(),
        p.seed,
        data_dir.join("cache").display()
    );
    let bars = progress::Bars::new();
    let (done, planned) = rrra_runner::run_with(
        &p,
        &data_dir,
        executor,
        resources,
        &bars,
        &mut |event| match event {
            Event::Deferred {
                id,
                kind,
                missing,
                parts,
            } => eprintln!("  ~ {id:<20} {kind:<18} {missing} of {parts} parts left to tasks"),
            Event::Waiting(lock) => eprintln!(
                "  waiting for another run to release the cache lock {}",
                lock.display()
            ),
            Event::Swept(n) => eprintln!(
                "  removed {n} scratch director{} of an interrupted run",
                if n == 1 { "y" } else { "ies" }
            ),
            Event::SweptParts(n) => {
                eprintln!("  removed {n} scratch file(s) of killed part tasks")
            }
            Event::Cached { id, kind } => eprintln!("  = {id:<20} {kind:<18} cached"),
            Event::Damaged { id, reason } => {
                eprintln!("  ! {id:<20} cache entry damaged ({reason}), recomputing")
            }
            Event::Started { id, kind } => eprintln!("  > {id:<20} {kind:<18} running"),
            Event::Finished { id, kind, manifest } => {
                let rows: u64 = manifest.outputs.values().map(|o| o.rows).sum();
                eprintln!(
                    "  + {id:<20} {kind:<18} done in {:.1}s ({rows} rows)",
                    manifest.elapsed_s
                )
            }
        },
    )?;
    if let Some(planned) = planned {
        eprintln!(
            "\n{} task{} planned for stage(s) {} (one task file a line in {}); run them \
             (`cargo xtask exec-part TASK.json`, or deploy/slurm/array.sbatch, \
             deploy/k8s/indexed-job.yaml), then `run {} --data-dir {} --executor collect`",
            planned.tasks.len(),
            if planned.tasks.len() == 1 { "" } else { "s" },
            planned.stages.join(", "),
            planned.index.display(),
            file.display(),
            data_dir.display()
        );
        println!("{}", planned.index.display());
        return Ok(Some(planned.index));
    }
    let done: Vec<rrra_runner::Done> = done.into_iter().flatten().collect();
    let ran = done.iter().filter(|d| d.ran).count();
    print_results(&done);
    eprintln!(
        "\n{ran} stage{} ran, {} cached, {:.2}s",
        if ran == 1 { "" } else { "s" },
        done.len() - ran,
        start.elapsed().as_secs_f64()
    );
    Ok(None)
}

/// One table with a row per `eval.trec` stage, then every other stage's own table.
fn print_results(done: &[rrra_runner::Done]) {
    let evals: Vec<_> = done.iter().filter(|d| d.kind == "eval.trec").collect();
    if !evals.is_empty() {
        // Columns in the order the pipeline asked for them.
        let mut measures: Vec<String> = Vec::new();
        for d in &evals {
            let params = &d.manifest.params;
            let names = params["measures"].as_array().into_iter().flatten();
            let named = names.filter_map(|m| m.as_str()?.parse::<rrra_eval::Measure>().ok());
            let accuracy = params["answer_k"].as_array().into_iter().flatten();
            let threshold = params["relevance_threshold"].as_i64().unwrap_or(1) as i32;
            let columns = named
                .map(|m| m.label(threshold))
                .chain(accuracy.filter_map(|k| Some(format!("Acc@{}", k.as_u64()?))));
            for m in columns {
                if !measures.contains(&m) {
                    measures.push(m);
                }
            }
        }
        let mut header = vec!["stage".to_string()];
        header.extend(measures.iter().map(|m| m.to_string()));
        header.push("queries".into());
        let rows: Vec<Vec<String>> = evals
            .iter()
            .map(|d| {
                let metrics = &d.manifest.report.metrics;
                let mut row = vec![d.id.clone()];
                row.extend(measures.iter().map(|m| {
                    metrics
                        .get(m)
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "-".into())
                }));
                row.push(
                    metrics
                        .get("queries")
                        .map(|q| q.to_string())
                        .unwrap_or_default(),
                );
                row
            })
            .collect();
        println!("\n{}", rrra_common::report::text_table(&header, &rows));
    }
    for d in done.iter().filter(|d| d.kind != "eval.trec") {
        if let Some(table) = &d.manifest.report.table {
            println!("\n{} ({})\n{table}", d.id, d.kind);
        }
    }
}

/// `archive`: copies each file's completed stages, at each seed, into `<to>/<name>`.
fn archive(
    files: &[PathBuf],
    data_dir: Option<PathBuf>,
    seeds: &[u64],
    to: &Path,
    max_kib: u64,
) -> Result<()> {
    for file in files {
        let mut p = load(file, None)?;
        let data_dir = data_dir_of(&p, data_dir.clone());
        let dest = to.join(&p.name);
        let seeds = if seeds.is_empty() {
            vec![p.seed]
        } else {
            seeds.to_vec()
        };
        for &seed in &seeds {
            p.seed = seed;
            let done = rrra_runner::archive(&p, &data_dir, &dest, max_kib * 1024)?;
            let new: Vec<_> = done.iter().filter(|(_, a)| !a.present).collect();
            println!(
                "{} seed {seed}: {} of {} stages complete; {} archived now ({} metrics files, \
                 {} KiB; {} other outputs left out), {} were already in {}",
                p.name,
                done.len(),
                p.stages.len(),
                new.len(),
                new.iter().map(|(_, a)| a.files).sum::<usize>(),
                new.iter().map(|(_, a)| a.bytes).sum::<u64>() / 1024,
                new.iter().map(|(_, a)| a.left_out).sum::<usize>(),
                done.len() - new.len(),
                dest.display()
            );
        }
    }
    Ok(())
}

fn status(file: &Path, data_dir: Option<PathBuf>, seed: Option<u64>, verify: bool) -> Result<()> {
    let start = Instant::now();
    let p = load(file, seed)?;
    let data_dir = data_dir_of(&p, data_dir);
    let how = if verify {
        rrra_runner::Check::Full
    } else {
        rrra_runner::Check::Quick
    };
    let states = rrra_runner::inspect(&p, &data_dir, how)?;
    println!("{:<20} {:<18} {:<8} key", "stage", "kind", "state");
    for (node, s) in p.stages.iter().zip(&states) {
        let state = match (s.state, &s.damage) {
            (_, Some(_)) => "Damaged",
            (State::Fresh, None) => "Fresh",
            (State::Stale, None) => "Stale",
            (State::Missing, None) => "Missing",
        };
        println!(
            "{:<20} {:<18} {:<8} {}",
            node.id,
            node.stage.kind(),
            state,
            s.key.as_deref().unwrap_or("(waits on inputs)")
        );
        if let Some(damage) = &s.damage {
            println!("{:<20} {damage}", "");
        }
    }
    let fresh = states.iter().filter(|s| s.state == State::Fresh).count();
    let damaged = states.iter().filter(|s| s.damage.is_some()).count();
    eprintln!(
        "\n{fresh} of {} stages fresh{}, {damaged} damaged ({}), {:.2}s",
        states.len(),
        if verify { " and verified" } else { "" },
        if verify {
            "every output re-hashed"
        } else {
            "size and mtime checked; --verify re-hashes"
        },
        start.elapsed().as_secs_f64()
    );
    if verify && damaged > 0 {
        anyhow::bail!(
            "{damaged} damaged cache entr{} (`run` recomputes them)",
            if damaged == 1 { "y" } else { "ies" }
        );
    }
    Ok(())
}
