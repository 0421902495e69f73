//! The fuzz campaign (`cargo xtask fuzz --minutes N [--target T]`): for each target, a
//! supervisor runs a worker process that mutates the target's seeds for the time given.
//! The worker counts allocations (a cap makes a runaway allocation abort, and a reader
//! whose peak allocation is more than linear in its input is a finding), stops an input
//! that runs past the time limit (a hang), and catches panics. A worker that dies (abort,
//! stack overflow) is restarted; the input it died on is kept. Every finding is saved
//! under `--out/<target>/` (by default the crate's `crashers/`, which the test suite
//! replays), and a table of executions and unique findings per target is printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rrra_fuzz::{Rng, TARGETS, Target, Verdict, crate_dir, inputs, mutate, run_file, target};

/// Counts live and peak heap bytes; refuses any allocation past [`CAP`] (which aborts
/// the worker, and the supervisor keeps the input).
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        if now > CAP.load(Ordering::Relaxed) {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Parser)]
#[command(name = "rrra-fuzz", about = "Fuzz rrra's readers and pipeline parser")]
struct Cli {
    #[command(subcommand)]
    worker: Option<Worker>,
    /// Minutes per target.
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Targets (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Seed of the mutations (a campaign is reproducible up to timing).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where findings are saved, one folder per target.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds one input may run.
    #[arg(long, default_value_t = 10.0)]
    time_limit: f64,
    /// Heap cap of a worker, MiB.
    #[arg(long, default_value_t = 2048)]
    max_alloc_mb: usize,
}

#[derive(Subcommand)]
enum Worker {
    /// (internal) Fuzz one target for `secs` seconds in this process.
    Worker {
        #[arg(long)]
        target: String,
        #[arg(long)]
        secs: f64,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        work: PathBuf,
        #[arg(long)]
        time_limit: f64,
        #[arg(long)]
        max_alloc_mb: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Worker::Worker {
        target: name,
        secs,
        seed,
        out,
        work,
        time_limit,
        max_alloc_mb,
    }) = cli.worker
    {
        CAP.store(max_alloc_mb << 20, Ordering::Relaxed);
        let t = target(&name).with_context(|| format!("no target {name:?}"))?;
        return worker(t, secs, seed, &out, &work, time_limit);
    }
    let chosen: Vec<&Target> = if cli.target.is_empty() {
        TARGETS.iter().collect()
    } else {
        cli.target
            .iter()
            .map(|n| {
                target(n).with_context(|| {
                    let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
                    format!("no target {n:?}; targets: {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| crate_dir().join("crashers"));
    println!(
        "{:<20} {:>10} {:>8} {:>7} {:>7}  unique findings",
        "target", "execs", "execs/s", "corpus", "restarts"
    );
    let mut total = 0;
    for t in chosen {
        let stats = supervise(t, &cli, &out)?;
        total += stats.findings.len();
        println!(
            "{:<20} {:>10} {:>8.0} {:>7} {:>7}  {}{}",
            t.name,
            stats.execs,
            stats.execs as f64 / stats.secs.max(1e-9),
            stats.corpus,
            stats.restarts,
            stats.findings.len(),
            if stats.findings.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    stats
                        .findings
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }
    if total > 0 {
        bail!(
            "{total} unique finding(s); inputs saved under {}",
            out.display()
        );
    }
    Ok(())
}

/// What the workers of one target did, summed.
#[derive(Default)]
struct Stats {
    execs: u64,
    secs: f64,
    corpus: usize,
    restarts: u32,
    findings: BTreeSet<String>,
}

/// Runs workers for `t` until its time is used, restarting one that dies.
fn supervise(t: &Target, cli: &Cli, out: &Path) -> Result<Stats> {
    let work = tempfile_dir(t.name)?;
    let total = cli.minutes * 60.0;
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut seed = cli.seed;
    loop {
        let left = total - start.elapsed().as_secs_f64();
        if left <= 0.5 {
            break;
        }
        let output = Command::new(std::env::current_exe()?)
            .args(["worker", "--target", t.name, "--secs"])
            .arg(left.to_string())
            .arg("--seed")
            .arg(seed.to_string())
            .arg("--out")
            .arg(out)
            .arg("--work")
            .arg(&work)
            .arg("--time-limit")
            .arg(cli.time_limit.to_string())
            .arg("--max-alloc-mb")
            .arg(cli.max_alloc_mb.to_string())
            .output()
            .context("starting a fuzz worker")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last: Option<serde_json::Value> = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        if let Some(v) = &last {
            stats.execs += v["execs"].as_u64().unwrap_or(0);
            stats.corpus = v["corpus"].as_u64().unwrap_or(0) as usize;
            for f in v["findings"].as_array().into_iter().flatten() {
                stats.findings.insert(f.as_str().unwrap_or("?").to_string());
            }
        }
        if !output.status.success() && last.is_none() {
            // Died (abort, stack overflow, allocation cap): the input is still on disk.
            let input = std::fs::read(work.join(t.file_name)).unwrap_or_default();
            let saved = save(out, t, "abort", &input)?;
            let tail: String = String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .join(" | ");
            stats.findings.insert(format!(
                "abort ({}): {tail} -> {}",
                output.status,
                saved.display()
            ));
            stats.restarts += 1;
            seed = seed.wrapping_add(1_000_003);
        }
    }
    stats.secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&work);
    Ok(stats)
}

fn tempfile_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rrra-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Saves a finding's input as `<out>/<target>/<class>-<hash>`.
fn save(out: &Path, t: &Target, class: &str, input: &[u8]) -> Result<PathBuf> {
    let dir = out.join(t.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hash = blake3::hash(input).to_hex();
    let path = dir.join(format!("{class}-{}", &hash[..16]));
    std::fs::write(&path, input).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The allowance of extra heap for reading an input of `len` bytes: linear in the input.
fn allowance(len: usize) -> usize {
    (64 << 20) + 64 * len
}

/// Fuzzes `t` for `secs` seconds; prints one JSON line of counts at the end (or when a
/// hang stops it).
fn worker(t: &Target, secs: f64, seed: u64, out: &Path, work: &Path, limit: f64) -> Result<()> {
    let location: Arc<Mutex<String>> = Arc::default();
    {
        let location = location.clone();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(l) = info.location() {
                *location.lock().unwrap_or_else(|e| e.into_inner()) =
                    format!("{}:{}", l.file(), l.line());
            }
        }));
    }
    let execs = Arc::new(AtomicU64::new(0));
    let started_ms = Arc::new(AtomicU64::new(0));
    let findings: Arc<Mutex<Vec<String>>> = Arc::default();
    let clock = Instant::now();
    {
        // The watchdog: an input running past the limit is saved as a hang.
        let (execs, started_ms, findings) = (execs.clone(), started_ms.clone(), findings.clone());
        let path = work.join(t.file_name);
        let (out, name, limit_ms) = (out.to_path_buf(), t, (limit * 1000.0) as u64);
        let t: &'static Target = TARGETS.iter().find(|x| x.name == name.name).expect("known");
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let began = started_ms.load(Ordering::Relaxed);
                let now = clock.elapsed().as_millis() as u64;
                if began > 0 && now.saturating_sub(began) > limit_ms {
                    let input = std::fs::read(&path).unwrap_or_default();
                    let saved = save(&out, t, "hang", &input)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let mut f = findings.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    f.push(format!("hang over {limit_ms} ms -> {saved}"));
                    report(execs.load(Ordering::Relaxed), 0, &f);
                    std::process::exit(3);
                }
            }
        });
    }

    let root = crate_dir();
    let mut corpus: Vec<Vec<u8>> = inputs(&root.join("seeds"), t)?
        .into_iter()
        .chain(inputs(&root.join("crashers"), t)?)
        .map(|(_, b)| b)
        .collect();
    if corpus.is_empty() {
        bail!("target {} has no seeds", t.name);
    }
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut rng = Rng::new(seed);
    let path = work.join(t.file_name);
    let deadline = Duration::from_secs_f64(secs);
    while clock.elapsed() < deadline {
        let input = {
            let refs: Vec<&[u8]> = corpus.iter().map(Vec::as_slice).collect();
            let base = refs[rng.below(refs.len())];
            mutate(&mut rng, base, &refs)
        };
        std::fs::write(&path, &input).with_context(|| format!("writing {}", path.display()))?;
        let baseline = CURRENT.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        started_ms.store(clock.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
        let mut verdict = run_file(t, &path);
        started_ms.store(0, Ordering::Relaxed);
        let extra = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
        execs.fetch_add(1, Ordering::Relaxed);
        if let Verdict::Panicked(m) = &verdict {
            let at = location.lock().unwrap_or_else(|e| e.into_inner()).clone();
            verdict = Verdict::Panicked(format!("{m} at {at}"));
        }
        let mut finding = None;
        if extra > allowance(input.len()) {
            finding = Some((
                "memory",
                format!(
                    "memory: {} MiB of heap for a {} KiB input",
                    extra >> 20,
                    input.len() >> 10
                ),
            ));
        } else if verdict.is_finding() {
            let class = if matches!(verdict, Verdict::Panicked(_)) {
                "panic"
            } else {
                "unlocated"
            };
            finding = Some((class, verdict.signature()));
        }
        let signature = match &finding {
            Some((_, s)) => s.clone(),
            None => verdict.signature(),
        };
        if seen.insert(signature.clone(), ()).is_none() {
            if let Some((class, _)) = finding {
                let saved = save(out, t, class, &input)?;
                let mut f = findings.lock().unwrap_or_else(|e| e.into_inner());
                f.push(format!("{signature} -> {}", saved.display()));
            } else if input.len() <= 64 << 10 && corpus.len() < 4096 {
                // A new behaviour: keep the input to mutate further.
                corpus.push(input);
            }
        }
    }
    let f = findings.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report(execs.load(Ordering::Relaxed), corpus.len(), &f);
    Ok(())
}

fn report(execs: u64, corpus: usize, findings: &[String]) {
    let line = serde_json::json!({"execs": execs, "corpus": corpus, "findings": findings});
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
