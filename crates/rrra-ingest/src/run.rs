//! TREC run files: `qid Q0 docid rank score tag`, 6 fields separated by tabs or runs of
//! spaces. The `Q0` and `tag` columns are ignored; `rank` must be a non-negative integer
//! and `score` a finite number.

use std::path::Path;

use rrra_common::records::RunRow;
use rrra_common::{Error, Result};

use crate::lines::{Lines, exact, nonempty};

/// Streams a TREC run file into `sink` and returns the number of rows.
pub fn read_trec_run(path: &Path, mut sink: impl FnMut(RunRow) -> Result<()>) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        let [query_id, _q0, doc_id, rank, score, _tag] =
            exact::<6>(line.split_ascii_whitespace()).map_err(|found| {
                Error::input(
                    path,
                    n,
                    format!(
                        "expected 6 whitespace-separated fields (qid Q0 docid rank score tag), found {found}"
                    ),
                )
            })?;
        let rank = rank.parse::<u32>().map_err(|_| {
            Error::input(
                path,
                n,
                format!("expected a non-negative integer rank, found {rank:?}"),
            )
        })?;
        let score = score
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .ok_or_else(|| {
                Error::input(path, n, format!("expected a finite score, found {score:?}"))
            })?;
        sink(RunRow {
            query_id: query_id.to_owned(),
            doc_id: doc_id.to_owned(),
            rank,
            score,
        })?;
        count += 1;
    }
    nonempty(path, count, "run row")
}
