//! DPR's Wikipedia passages, `psgs_w100.tsv` (21,015,324 passages of 100 words, the
//! Natural Questions and TriviaQA corpus): a header line `id\ttext\ttitle`, then one passage
//! a line with the same three tab-separated fields, written with Python's `csv` module: a
//! field that starts with `"` is quoted (`""` inside stands for `"`). Ids are kept as
//! written (DPR's numeric passage ids, which its biencoder files name as `passage_id`).

use std::path::Path;

use rrra_common::records::Doc;
use rrra_common::{Error, Result};

use crate::ids::IdIndex;
use crate::lines::{Lines, nonempty};
use crate::qa::split_csv_tsv;

const HEADER: [&str; 3] = ["id", "text", "title"];

/// Streams a `psgs_w100.tsv` file (or its `.gz`) into `sink` and returns the number of
/// passages. With `ids`, each id is recorded there and a duplicate is an error.
pub fn read_psgs_w100(
    path: &Path,
    mut ids: Option<&mut IdIndex>,
    mut sink: impl FnMut(Doc) -> Result<()>,
) -> Result<u64> {
    let mut lines = Lines::open(path)?;
    let mut count = 0;
    let mut header_seen = false;
    while let Some((n, line)) = lines.next_line()? {
        let fields = split_csv_tsv(line).map_err(|msg| Error::input(path, n, msg))?;
        if !header_seen {
            if fields.iter().map(|f| f.as_ref()).ne(HEADER) {
                return Err(Error::input(
                    path,
                    n,
                    "expected the header line \"id\\ttext\\ttitle\" of DPR's psgs_w100.tsv",
                ));
            }
            header_seen = true;
            continue;
        }
        let [id, text, title] = fields.as_slice() else {
            return Err(Error::input(
                path,
                n,
                format!(
                    "expected 3 tab-separated fields (id, text, title), found {}",
                    fields.len()
                ),
            ));
        };
        if id.is_empty() {
            return Err(Error::input(
                path,
                n,
                "expected a non-empty id in the first field",
            ));
        }
        if let Some(ids) = ids.as_deref_mut() {
            ids.insert("doc", path, n, id)?;
        }
        sink(Doc {
            id: id.to_string(),
            title: title.to_string(),
            text: text.to_string(),
        })?;
        count += 1;
    }
    nonempty(path, count, "passage after the header")
}
