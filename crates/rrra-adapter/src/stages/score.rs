//! `score.adapter`: applies a trained adapter to `candidates` or to a `run` (e.g. a test
//! top-K for reranking) and writes `scored` rows in input order. It streams: one pass
//! counts the queries, a second scores `batch_size` pairs at a time and writes as it goes.

use std::path::Path;

use rrra_common::artifact::{ParquetSink, parquet_rows};
use rrra_common::columns::for_each_pair_batch;
use rrra_common::parts::{Parts, concat_rows};
use rrra_common::records::{Candidate, Scored};
use rrra_common::schema::ArtifactKind::{
    self, Adapter, Candidates, Embeddings, Run, Scored as ScoredKind,
};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use rrra_common::{Error, Result};
use rrra_encoder::Backend;
use serde::{Deserialize, Serialize};

use super::vector_files;
use crate::backend::{backend_device, is_cpu};
use crate::saved::load_adapter;
use crate::train::{Rows, Vectors, score_rows};

/// Params of `score.adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreAdapterParams {
    /// Pairs per forward pass.
    pub batch_size: usize,
    /// Where it scores, as `train.adapter`'s `backend:` (left out of the key when `cpu`).
    #[serde(skip_serializing_if = "is_cpu")]
    pub backend: Backend,
    /// Cut the output into parts of this many input pairs (a multiple of `batch_size`, so
    /// parts batch their pairs as an unsplit run does), each written to the entry's work
    /// folder as it finishes (a killed run resumes at the first unfinished part) and
    /// concatenated. Unset: no split. Not in the cache key: the scores do not depend on it.
    #[serde(skip_serializing)]
    pub part_rows: Option<u64>,
}

impl Default for ScoreAdapterParams {
    fn default() -> Self {
        ScoreAdapterParams {
            batch_size: 4096,
            backend: Backend::Cpu,
            part_rows: None,
        }
    }
}

/// `score.adapter`: the adapter's QA-score, `s_fn` and `p_rel` for every pair of a
/// `candidates` or `run` input (exactly one connected; run rows get `positive = false`).
pub struct ScoreAdapter;

impl Stage for ScoreAdapter {
    type Params = ScoreAdapterParams;
    const KIND: &'static str = "score.adapter";
    // v2: the patched burn-flex (bias fused into the gemm) can move outputs by an ulp.
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "score candidates or a run with a trained adapter (QA-score, s_fn)";

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("adapter", Adapter),
                Port::optional("candidates", Candidates),
                Port::optional("run", Run),
                Port::required("queries", Embeddings),
                Port::required("docs", Embeddings),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("scored", ScoredKind)] }
    }
    fn check(p: &ScoreAdapterParams) -> Result<(), String> {
        if p.batch_size == 0 {
            return Err("param batch_size must be at least 1".into());
        }
        if let Some(rows) = p.part_rows
            && (rows == 0 || !rows.is_multiple_of(p.batch_size as u64))
        {
            return Err(format!(
                "param part_rows ({rows}) must be a positive multiple of batch_size ({})",
                p.batch_size
            ));
        }
        p.backend.check_compiled()
    }
    fn run(p: &ScoreAdapterParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let (path, kind): (&Path, ArtifactKind) =
            match (ctx.optional_input("candidates"), ctx.optional_input("run")) {
                (Some(path), None) => (path, Candidates),
                (None, Some(path)) => (path, Run),
                _ => {
                    return Err(Error::Invalid(
                        "score.adapter needs exactly one of the inputs \"candidates\" and \"run\""
                            .into(),
                    ));
                }
            };
        let device = backend_device(p.backend)?;
        let net = load_adapter(ctx.input("adapter")?, &device)?;
        let (q_file, d_file) = vector_files(ctx)?;
        let vectors = Vectors {
            dim: q_file.dim(),
            queries: Rows::File(&q_file),
            docs: Rows::File(&d_file),
        };
        // Pass 1: the distinct queries (a bit per query vector), each checked to have a
        // vector; documents are looked up as they are scored.
        let mut seen = vec![0u64; q_file.rows().div_ceil(64)];
        let mut last: Option<(String, u32)> = None;
        for_each_pair_batch(path, kind, |b| {
            for i in 0..b.len() {
                let query_id = b.query_id.value(i);
                if last.as_ref().is_none_or(|(q, _)| q != query_id) {
                    let r = q_file.row_of(query_id, "query")?;
                    seen[r as usize / 64] |= 1 << (r % 64);
                    last = Some((query_id.to_string(), r));
                }
            }
            Ok(())
        })?;
        let queries: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
        // Pass 2: score `batch_size` pairs at a time (across record batches, so the
        // forward passes do not depend on how the file is cut) and write as it goes.
        let clock = std::time::Instant::now();
        let total = parquet_rows(path)?;
        // Scores input pairs `range` into `out`.
        let score_range = |range: std::ops::Range<u64>, out: &Path| -> Result<u64> {
            let task = ctx
                .progress
                .task("score adapter (pairs)", Some(range.end - range.start));
            let mut sink = ParquetSink::<Scored>::create(out)?;
            let mut pending: Vec<(Candidate, (u32, u32))> = Vec::with_capacity(p.batch_size);
            let mut flush = |pending: &mut Vec<(Candidate, (u32, u32))>| -> Result<()> {
                let rows = pending.iter().map(|(_, at)| *at);
                let scores = score_rows(&net, &vectors, rows, &device)?;
                for ((candidate, _), s) in pending.drain(..).zip(scores) {
                    sink.push(Scored {
                        candidate,
                        qa_score: f64::from(s.qa),
                        s_fn: f64::from(s.s_fn),
                        p_rel: f64::from(s.p_rel),
                    })?;
                }
                Ok(())
            };
            let mut row = 0u64;
            let mut last: Option<(String, u32)> = None;
            for_each_pair_batch(path, kind, |b| {
                for i in 0..b.len() {
                    row += 1;
                    if !range.contains(&(row - 1)) {
                        continue;
                    }
                    let (query_id, doc_id) = (b.query_id.value(i), b.doc_id.value(i));
                    let q = match &last {
                        Some((q, r)) if q == query_id => *r,
                        _ => {
                            let r = q_file.row_of(query_id, "query")?;
                            last = Some((query_id.to_string(), r));
                            r
                        }
                    };
                    let at = (q, d_file.row_of(doc_id, "document")?);
                    let candidate = Candidate {
                        query_id: query_id.to_string(),
                        doc_id: doc_id.to_string(),
                        rank: b.rank[i],
                        score: b.score[i],
                        positive: b.positive(i),
                    };
                    pending.push((candidate, at));
                    if pending.len() == p.batch_size {
                        flush(&mut pending)?;
                        task.inc(p.batch_size as u64);
                    }
                }
                Ok(())
            })?;
            let rest = pending.len() as u64;
            flush(&mut pending)?;
            task.inc(rest);
            sink.finish()
        };
        let out = ctx.output("scored");
        let (n, split) = match p.part_rows {
            None => (score_range(0..total, &out)?, None),
            Some(size) => {
                let parts = Parts::open(&ctx.work_dir, "scored", "pairs", size, total)?;
                let done = parts.compute(ctx.progress, "score.adapter", |range, file| {
                    score_range(range, file).map(|_| ())
                })?;
                (concat_rows::<Scored>(&done.files, &out)?, Some(done))
            }
        };
        let seconds = clock.elapsed().as_secs_f64();
        Ok(StageReport {
            metrics: [
                ("pairs".to_string(), n as f64),
                ("queries".to_string(), queries as f64),
                ("seconds".to_string(), seconds),
                (
                    "ms_per_query".to_string(),
                    1000.0 * seconds / queries.max(1) as f64,
                ),
                ("parameters".to_string(), net.parameters() as f64),
            ]
            .into_iter()
            .chain(split.iter().flat_map(|done| done.metrics()))
            .collect(),
            table: None,
        })
    }
}
