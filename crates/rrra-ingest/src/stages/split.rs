//! `qrels.split`: not ingestion but a transformation of qrels artifacts (kept in this crate
//! beside the qrels readers): train/test qrels by a seeded draw of queries
//! ([`crate::split_queries`]).

use super::report;
use rrra_common::Result;
use rrra_common::records::Qrel;
use rrra_common::schema::ArtifactKind::Qrels;
use rrra_common::stage::{Port, Stage, StageContext, StageReport};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SplitParams {
    /// Share of the judged queries that go to `test`, rounded to the nearest query.
    pub test_fraction: f64,
}

impl Default for SplitParams {
    fn default() -> Self {
        SplitParams { test_fraction: 0.5 }
    }
}

/// `qrels.split`: divides judged queries into `train` and `test` qrels by a seeded draw
/// (for collections without a training split, such as the TREC DL sample or Cranfield).
/// Which queries are test depends only on the seed and the query ids
/// (see [`crate::split_queries`]).
pub struct QrelsSplit;

impl Stage for QrelsSplit {
    type Params = SplitParams;
    const KIND: &'static str = "qrels.split";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "split judged queries into train and test qrels";
    const SEEDED: bool = true;

    fn inputs() -> &'static [Port] {
        const { &[Port::required("qrels", Qrels)] }
    }
    fn outputs() -> &'static [Port] {
        const {
            &[
                Port::required("train", Qrels),
                Port::required("test", Qrels),
            ]
        }
    }
    fn check(p: &SplitParams) -> Result<(), String> {
        if !(0.0..=1.0).contains(&p.test_fraction) {
            return Err(format!(
                "param test_fraction must be in [0, 1], found {}",
                p.test_fraction
            ));
        }
        Ok(())
    }

    fn run(p: &SplitParams, ctx: &StageContext<'_>) -> Result<StageReport> {
        let rows = rrra_common::artifact::read_rows::<Qrel>(ctx.input("qrels")?)?;
        let (train, test) = crate::split_queries(rows, p.test_fraction, ctx.seed);
        let queries = |r: &[Qrel]| {
            r.iter()
                .map(|q| q.query_id.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len() as u64
        };
        let counts = [
            ("train_queries", queries(&train)),
            ("test_queries", queries(&test)),
            ("train_qrels", train.len() as u64),
            ("test_qrels", test.len() as u64),
        ];
        rrra_common::artifact::write_rows(&ctx.output("train"), train)?;
        rrra_common::artifact::write_rows(&ctx.output("test"), test)?;
        Ok(report(&counts))
    }
}
