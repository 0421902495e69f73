//! Relevance judgements in either of two layouts, told apart by the first non-blank line:
//!
//! - **BEIR TSV** when that line is exactly the header `query-id\tcorpus-id\tscore` (after
//!   the line ending, `\n` or `\r\n`, is removed). The header is skipped and every later
//!   line must hold exactly 3 tab-separated fields `query-id corpus-id score`.
//! - **TREC** otherwise: every line holds exactly 4 fields `qid iter docid rel` separated by
//!   tabs or runs of spaces; `iter` (usually `0` or `Q0`) is ignored.
//!
//! A header-less 3-column file is therefore rejected on line 1 with a hint about the header.
//! Relevance must be an integer (`i32`; negative grades are kept).

use std::path::Path;

use rrra_common::records::Qrel;
use rrra_common::{Error, Result};

use crate::ids::IdIndex;
use crate::lines::{Lines, exact, nonempty};

const BEIR_HEADER: &str = "query-id\tcorpus-id\tscore";

/// Streams a qrels file (BEIR TSV or TREC, see the module docs) into `sink` and returns the
/// number of judgements. With `known_docs`, a judgement of a doc id not in it is an error.
pub fn read_qrels(
    path: &Path,
    known_docs: Option<&IdIndex>,
    mut sink: impl FnMut(Qrel) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut layout_is_beir = None;
    let mut count = 0;
    while let Some((n, line)) = lines.next_line()? {
        let beir = match layout_is_beir {
            Some(beir) => beir,
            None => {
                let beir = line == BEIR_HEADER;
                layout_is_beir = Some(beir);
                if beir {
                    continue; // the header
                }
                beir
            }
        };
        let [query_id, doc_id, rel] = fields(path, n, line, beir, count == 0)?;
        let relevance = rel.parse::<i32>().map_err(|_| {
            Error::input(
                path,
                n,
                format!("expected an integer relevance, found {rel:?}"),
            )
        })?;
        if let Some(known) = known_docs
            && !known.contains(doc_id)
        {
            return Err(Error::input(
                path,
                n,
                format!("qrel for unknown doc {doc_id:?}: expected a doc id of the corpus"),
            ));
        }
        sink(Qrel {
            query_id: query_id.to_owned(),
            doc_id: doc_id.to_owned(),
            relevance,
        })?;
        count += 1;
    }
    nonempty(path, count, "judgement")
}

/// The `[query id, doc id, relevance]` fields of one data line.
fn fields<'a>(
    path: &Path,
    n: u64,
    line: &'a str,
    beir: bool,
    first_row: bool,
) -> Result<[&'a str; 3]> {
    if beir {
        return match exact::<3>(line.split('\t')) {
            Ok([q, d, r]) if !q.is_empty() && !d.is_empty() => Ok([q, d, r]),
            Ok(_) => Err(Error::input(
                path,
                n,
                "expected a non-empty query-id and corpus-id",
            )),
            Err(found) => Err(Error::input(
                path,
                n,
                format!(
                    "expected 3 tab-separated fields (query-id, corpus-id, score), found {found}"
                ),
            )),
        };
    }
    exact::<4>(line.split_ascii_whitespace())
        .map(|[q, _iter, d, r]| [q, d, r])
        .map_err(|found| {
            let hint = if found == 3 && first_row {
                format!("; a 3-column BEIR qrels file must start with the header {BEIR_HEADER:?}")
            } else {
                String::new()
            };
            Error::input(
                path,
                n,
                format!("expected 4 whitespace-separated fields (qid iter docid rel), found {found}{hint}"),
            )
        })
}
