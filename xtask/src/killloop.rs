//! `cargo xtask kill-loop`: runs a small pipeline (ingest -> encode -> mine -> resample ->
//! train a few steps -> encode -> retrieve -> eval) once without interruption,
//! then again in another cache while SIGKILLing it at random moments, N times, and lets
//! it finish. The final artifacts must be byte-identical (same blake3) to the
//! uninterrupted run's (a training log: see [`train_log_without_throughput`]), `status --verify` must find every entry intact, and no scratch
//! folder may be left. A run that completes before its kill is checked the same way,
//! then its cache is emptied (models kept) so that every counted kill hits a running stage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rrra_common::records::TrainLogRow;
use rrra_common::schema::ArtifactKind;
use rrra_runner::{Check, Pipeline, State};

/// Queries (with their judged documents) and extra documents of the tiny collection.
const QUERIES: usize = 12;
const EXTRA_DOCS: usize = 30;

const PIPELINE: &str = r#"# The kill-loop's pipeline (written by `cargo xtask kill-loop`): the fine-tuning chain on a
# tiny SciFact subset, with RRRA's adapter trained on the mined pool and scoring it.
name: kill-loop
seed: 7
stages:
  - id: data
    kind: ingest.beir
    params: {path: tiny, split: test}
  - id: docs
    kind: encode.bert
    inputs: {corpus: data.corpus}
    params: &enc {model: minilm-l6, max_len: 32, batch_size: 8}
  - id: queries
    kind: encode.bert
    inputs: {queries: data.queries}
    params: *enc
  - id: mine
    kind: mine.dense
    inputs: {queries: queries.embeddings, corpus: docs.embeddings, qrels: data.qrels}
    params: {k: 20}
  - id: adapter
    kind: train.adapter
    inputs: {candidates: mine.candidates, queries: queries.embeddings, docs: docs.embeddings}
    params: {k_p: 5, epochs: 2}
  - id: scored
    kind: score.adapter
    inputs: {adapter: adapter.adapter, candidates: mine.candidates, queries: queries.embeddings, docs: docs.embeddings}
  - id: negatives
    kind: resample.simans
    inputs: {candidates: mine.candidates}
    params: {n_neg: 1, pool: 20}
  - id: train
    kind: train.biencoder
    inputs: {examples: negatives.examples, corpus: data.corpus, queries: data.queries}
    params: {batch_size: 4, chunk_size: 4, epochs: 1, max_negatives: 1, max_len: 32, query_max_len: 16, checkpoint_every: 1, checkpoint_secs: 0}
  - id: tuned-docs
    kind: encode.bert
    inputs: {corpus: data.corpus, model: train.model}
    params: *enc
  - id: tuned-queries
    kind: encode.bert
    inputs: {queries: data.queries, model: train.model}
    params: *enc
  - id: run
    kind: retrieve.dense
    inputs: {queries: tuned-queries.embeddings, corpus: tuned-docs.embeddings}
    params: {top_k: 20}
  - id: eval
    kind: eval.trec
    inputs: {run: run.run, qrels: data.qrels}
    params: {measures: [ndcg_cut.10, recall.100]}
"#;

/// SplitMix64, for kill times reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the kill-loop in `dir` (created; its caches are reused across invocations only
/// for the downloaded model).
pub fn kill_loop(kills: usize, seed: u64, dir: &Path) -> Result<()> {
    let start = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_tiny_collection(&dir.join("tiny"))?;
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(&pipeline, PIPELINE)
        .with_context(|| format!("writing {}", pipeline.display()))?;
    let p = Pipeline::load(&pipeline)?;
    let reference = dir.join("reference");
    let looped = dir.join("killed");
    for d in [&reference, &looped] {
        let cache = d.join("cache");
        if cache.exists() {
            clear_entries(&cache)?;
        }
    }
    let log = dir.join("runs.log");
    let log_file = std::fs::File::create(&log)?;

    eprintln!("uninterrupted run into {} ...", reference.display());
    let t = Instant::now();
    let st = spawn(&pipeline, &reference, &log_file)?.wait()?;
    if !st.success() {
        bail!("the uninterrupted run failed ({st}); see {}", log.display());
    }
    // (A first run's time includes the model download.)
    let full = t.elapsed().as_secs_f64();
    let expected = hashes(&p, &reference)?;
    eprintln!("  {} stages in {full:.1}s", expected.len());
    copy_models(&reference.join("cache"), &looped.join("cache"))?;

    // Kill moments are uniform over a quarter of the uninterrupted time: every stage
    // and training step is shorter, so each restart makes progress, and most kills land
    // in a running stage rather than after the end.
    let window = full / 4.0;
    let mut rng = Rng(seed);
    let mut killed = 0;
    let mut completed = 0;
    let mut by_stage: BTreeMap<String, usize> = BTreeMap::new();
    while killed < kills {
        let delay = 0.05 + rng.unit() * window;
        let mut child = spawn(&pipeline, &looped, &log_file)?;
        let until = Instant::now() + Duration::from_secs_f64(delay);
        let mut finished = None;
        while Instant::now() < until {
            if let Some(st) = child.try_wait()? {
                finished = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match finished {
            None => {
                child.kill()?; // SIGKILL on Unix
                child.wait()?;
                killed += 1;
                let stage = running_stage(&p, &looped).unwrap_or_else(|| "-".into());
                *by_stage.entry(stage.clone()).or_default() += 1;
                eprintln!("  kill {killed:>3}/{kills} after {delay:>5.1}s (in {stage})");
            }
            Some(st) if st.success() => {
                completed += 1;
                compare(&expected, &hashes(&p, &looped)?)?;
                eprintln!("  the run completed before its kill: hashes equal; starting over");
                clear_entries(&looped.join("cache"))?;
            }
            Some(st) => bail!("a run failed on its own ({st}); see {}", log.display()),
        }
    }
    eprintln!("final run to completion ...");
    let st = spawn(&pipeline, &looped, &log_file)?.wait()?;
    if !st.success() {
        bail!("the final run failed ({st}); see {}", log.display());
    }
    let got = hashes(&p, &looped)?;
    compare(&expected, &got)?;
    let verified = rrra_runner::inspect(&p, &looped, Check::Full)?;
    let intact = verified
        .iter()
        .filter(|s| s.state == State::Fresh && s.damage.is_none())
        .count();
    let scratch = leftovers(&looped.join("cache"))?;
    println!("\nkills by the stage they hit:");
    for (stage, n) in &by_stage {
        println!("  {stage:<16} {n}");
    }
    println!(
        "\nkills survived: {killed}; runs that completed before their kill: {completed} (each equal)\n\
         final artifacts equal to the uninterrupted run: {} of {} stages (blake3 of every output)\n\
         status --verify: {intact} of {} entries intact; scratch or work folders left: {}\n\
         total {:.0}s",
        got.len(),
        expected.len(),
        verified.len(),
        scratch.len(),
        start.elapsed().as_secs_f64()
    );
    if intact != verified.len() || !scratch.is_empty() {
        bail!("damaged entries or leftover folders: {scratch:?}");
    }
    Ok(())
}

fn spawn(pipeline: &Path, data_dir: &Path, log: &std::fs::File) -> Result<std::process::Child> {
    Command::new(std::env::current_exe()?)
        .arg("run")
        .arg(pipeline)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .spawn()
        .context("starting a run")
}

/// Stage id -> the blake3 of each of its outputs, for a fully cached pipeline.
fn hashes(p: &Pipeline, data_dir: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let states = rrra_runner::status(p, data_dir)?;
    let cache = rrra_runner::cache::Cache::new(data_dir);
    let mut out = BTreeMap::new();
    for (node, (state, key)) in p.stages.iter().zip(states) {
        let (State::Fresh, Some(key)) = (state, key) else {
            bail!("stage {} is not fresh in {}", node.id, data_dir.display());
        };
        let manifest = rrra_common::manifest::Manifest::read(
            &cache
                .entry_dir(node.stage.kind(), &key)
                .join(rrra_common::manifest::MANIFEST_FILE),
        )?;
        let dir = cache.entry_dir(node.stage.kind(), &key);
        let mut hashes = Vec::new();
        for o in manifest.outputs.values() {
            hashes.push(if o.kind == ArtifactKind::TrainLog {
                train_log_without_throughput(&dir.join(&o.file))?
            } else {
                o.blake3.clone()
            });
        }
        out.insert(node.id.clone(), hashes);
    }
    Ok(out)
}

/// A training log's steps and epochs, and its losses and learning rates to 12 significant
/// digits, without its `samples_per_s` column (wall-clock throughput, which no two runs
/// share). A resumed run restores the log of the steps before its checkpoint from JSON,
/// whose f64 parsing (serde_json without `float_roundtrip`) may be off by one ulp, while
/// the weights, restored from binary, are bit-identical.
fn train_log_without_throughput(path: &Path) -> Result<String> {
    let rows: Vec<TrainLogRow> = rrra_common::artifact::read_rows(path)?;
    let mut text = String::from("train_log without samples_per_s:");
    for r in rows {
        text.push_str(&format!(
            "{} {} {:.12e} {:.12e};",
            r.step, r.epoch, r.loss, r.lr
        ));
    }
    Ok(text)
}

fn compare(
    expected: &BTreeMap<String, Vec<String>>,
    got: &BTreeMap<String, Vec<String>>,
) -> Result<()> {
    for (id, want) in expected {
        if got.get(id) != Some(want) {
            bail!("stage {id}: outputs differ from the uninterrupted run's");
        }
    }
    Ok(())
}

/// The first stage of `p` not fresh in `data_dir`: the one a kill interrupted.
fn running_stage(p: &Pipeline, data_dir: &Path) -> Option<String> {
    let states = rrra_runner::status(p, data_dir).ok()?;
    p.stages
        .iter()
        .zip(states)
        .find(|(_, (s, _))| *s != State::Fresh)
        .map(|(n, _)| n.id.clone())
}

/// Removes every cache entry (and the pipeline state) but keeps downloaded models.
fn clear_entries(cache: &Path) -> Result<()> {
    for e in std::fs::read_dir(cache)? {
        let e = e?;
        if e.file_name() != "models" && e.path().is_dir() {
            std::fs::remove_dir_all(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    Ok(())
}

fn copy_models(from: &Path, to: &Path) -> Result<()> {
    let src = from.join("models");
    if !src.is_dir() {
        return Ok(());
    }
    copy_dir(&src, &to.join("models"))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target)?;
        } else if !target.exists() {
            std::fs::copy(e.path(), &target)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Scratch (`.tmp-*`) and work (`.work-*`) folders under the cache's kind folders.
fn leftovers(cache: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for kind in std::fs::read_dir(cache)? {
        let kind = kind?.path();
        if !kind.is_dir() {
            continue;
        }
        for e in std::fs::read_dir(&kind)? {
            let path = e?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with(".tmp-") || name.starts_with(".work-") {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// A SciFact subset: the first [`QUERIES`] judged test queries, their judged documents
/// and [`EXTRA_DOCS`] others, as a BEIR folder.
fn write_tiny_collection(dir: &Path) -> Result<()> {
    let scifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/scifact");
    let qrels_text = std::fs::read_to_string(scifact.join("qrels/test.tsv"))?;
    let mut qrels: Vec<(&str, &str, &str)> = Vec::new();
    let mut queries: Vec<&str> = Vec::new();
    for line in qrels_text.lines().skip(1) {
        let mut f = line.split('\t');
        let (Some(q), Some(d), Some(r)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !queries.contains(&q) {
            if queries.len() == QUERIES {
                continue;
            }
            queries.push(q);
        }
        qrels.push((q, d, r));
    }
    let judged: Vec<&str> = qrels.iter().map(|(_, d, _)| *d).collect();
    let id_of = |line: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        match &v["_id"] {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    };
    let corpus_text = std::fs::read_to_string(scifact.join("corpus.jsonl"))?;
    let mut extra = 0;
    let mut corpus = String::new();
    for line in corpus_text.lines() {
        let Some(id) = id_of(line) else { continue };
        let keep = judged.contains(&id.as_str()) || {
            extra += 1;
            extra <= EXTRA_DOCS
        };
        if keep {
            corpus.push_str(line);
            corpus.push('\n');
        }
    }
    let queries_text = std::fs::read_to_string(scifact.join("queries.jsonl"))?;
    let mut picked = String::new();
    for line in queries_text.lines() {
        if id_of(line).is_some_and(|id| queries.contains(&id.as_str())) {
            picked.push_str(line);
            picked.push('\n');
        }
    }
    let mut qrels_out = String::from("query-id\tcorpus-id\tscore\n");
    for (q, d, r) in &qrels {
        qrels_out.push_str(&format!("{q}\t{d}\t{r}\n"));
    }
    std::fs::create_dir_all(dir.join("qrels"))?;
    std::fs::write(dir.join("corpus.jsonl"), corpus)?;
    std::fs::write(dir.join("queries.jsonl"), picked)?;
    std::fs::write(dir.join("qrels/test.tsv"), qrels_out)?;
    Ok(())
}
