//! `train.adapter`: reads mined `candidates` of training queries (positives and the top-K
//! pool, as `mine.*` writes them) with the frozen query and document embeddings, labels
//! every pair TP/FN/FP/TN ([`crate::pool`]), trains the adapter ([`crate::train`]) and
//! writes an `adapter` folder ([`crate::saved`]).
//!
//! It streams its candidates a query at a time and spills its pool, as integers (12 bytes
//! a pair), to a memory-mapped scratch file in its work folder, with the shuffled order
//! (4 bytes a pair) beside it. Vectors and the pairs of a batch are read with positional
//! reads; the sweeps through the two scratch files are trimmed ([`Trimmer`]), so what they
//! add to the resident set is bounded by its budget, except during a shuffle, which maps
//! the whole order (4 bytes a pair, page cache).

use rrra_common::Result;
use rrra_common::residency::{FileMapped, Trimmer};
use rrra_common::schema::ArtifactKind::{Adapter, Candidates, Embeddings};
use rrra_common::scratch::{Scratch, ScratchWriter};
use rrra_common::stage::{Port, Stage, StageContext, StageReport};

use super::vector_files;
use crate::backend::backend_device;
use crate::labels::Class;
use crate::pool::for_each_pool;
use crate::saved::{SavedAdapter, save_adapter};
use crate::train::{
    PairList, Pairs, PoolPair, Rows, TrainAdapterParams, TrainSummary, Vectors, train,
};

/// `train.adapter`: stage 2 of RRRA.
pub struct TrainAdapter;

impl Stage for TrainAdapter {
    type Params = TrainAdapterParams;
    const KIND: &'static str = "train.adapter";
    // Unchanged by columnar reading and `backend:` (cpu gives the same bytes).
    // v2: the patched burn-flex (bias fused into the gemm) can move outputs by an ulp.
    // v3: byte-reproducible folder (parameter ids in order; no wall time in adapter.json).
    const VERSION: u32 = 3;
    const ABOUT: &'static str =
        "train the false-negative adapter on frozen embeddings of mined candidates";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const {
            &[
                Port::required("candidates", Candidates),
                Port::required("queries", Embeddings),
                Port::required("docs", Embeddings),
            ]
        }
    }
    fn outputs() -> &'static [Port] {
        const { &[Port::required("adapter", Adapter)] }
    }
    fn check(p: &TrainAdapterParams) -> Result<(), String> {
        p.check()
    }
    fn run(p: &TrainAdapterParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let device = backend_device(p.backend)?;
        let (queries, docs) = vector_files(ctx)?;
        // The pool, spilled as row numbers of the vector files (lookups on disk).
        let mut spill = ScratchWriter::<PoolPair>::create(&ctx.work_dir, "pool-pairs.bin")?;
        let path = ctx.input("candidates")?;
        for_each_pool(path, p.k_p, p.pool, |query, pool| {
            let q = queries.row_of(query, "query")?;
            for &(doc, class) in pool {
                spill.push(PoolPair::new(q, docs.row_of(doc, "document")?, class))?;
            }
            Ok(())
        })?;
        let pairs = spill.finish()?;
        let mut order = Scratch::<u32>::zeroed(&ctx.work_dir, "order.bin", pairs.as_slice().len())?;
        let data = Pairs {
            vectors: Vectors {
                dim: queries.dim(),
                queries: Rows::File(&queries),
                docs: Rows::File(&docs),
            },
            pairs: PairList::File(&pairs),
        };
        let (order, order_region) = order.values_and_region();
        let maps: [&dyn FileMapped; 2] = [&pairs, &order_region];
        let trim = Trimmer::new(&maps);
        let (net, shape, summary) = train(data, order, p, ctx.seed, &device, ctx.progress, &trim)?;
        let saved = SavedAdapter {
            shape,
            params: Some(p.clone()),
            seed: Some(ctx.seed),
            summary: Some(summary.clone()),
        };
        save_adapter(&ctx.output_dir("adapter")?, &net, &saved)?;
        Ok(train_report(&summary))
    }
}

fn train_report(s: &TrainSummary) -> StageReport {
    let mut metrics: std::collections::BTreeMap<String, f64> = [
        (
            "pairs".to_string(),
            s.class_counts.iter().sum::<usize>() as f64,
        ),
        ("parameters".to_string(), s.parameters as f64),
        ("seconds".to_string(), s.seconds),
        ("loss_first_epoch".to_string(), s.epoch_loss[0]),
        (
            "loss_last_epoch".to_string(),
            *s.epoch_loss.last().expect("epochs >= 1"),
        ),
    ]
    .into();
    let mut table = String::from("class  pairs  weight  mean s_fn\n");
    for c in Class::ALL {
        let i = c as usize;
        metrics.insert(format!("pairs_{}", c.name()), s.class_counts[i] as f64);
        metrics.insert(format!("mean_s_fn_{}", c.name()), s.mean_s_fn[i]);
        table.push_str(&format!(
            "{:<5}  {:>5}  {:>6.3}  {:>9.4}\n",
            c.name(),
            s.class_counts[i],
            s.class_weights[i],
            s.mean_s_fn[i]
        ));
    }
    StageReport {
        metrics,
        table: Some(table),
    }
}
