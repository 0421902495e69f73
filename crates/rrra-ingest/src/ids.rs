//! Id validation shared by the readers: an index of ids with the place of their first
//! occurrence, to reject duplicate doc or query ids and qrels that name unknown docs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rrra_common::{Error, Result};

/// Where an id was first seen: an index into [`IdIndex::files`] and a 1-based line.
#[derive(Debug, Clone, Copy)]
struct Site {
    file: u32,
    line: u64,
}

/// The ids read so far, each with the file and line of its first occurrence.
///
/// Pass one to a corpus or query reader to reject duplicate ids, then to
/// [`read_qrels`](crate::read_qrels) to reject judgements of unknown documents.
///
/// Memory grows with the number of ids, not with the text of the records: per id, its
/// string plus about 45 bytes of map entry (roughly 0.6 GB for the 8.8M passage ids of the
/// full MS MARCO collection).
#[derive(Debug, Default)]
pub struct IdIndex {
    files: Vec<PathBuf>,
    first: HashMap<String, Site>,
}

impl IdIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `id`, read as a `kind` id ("doc", "query") at `file:line`. A second occurrence
    /// is an [`Error::Input`] naming this place and the first one.
    pub fn insert(&mut self, kind: &str, file: &Path, line: u64, id: &str) -> Result<()> {
        if let Some(site) = self.first.get(id) {
            let first = &self.files[site.file as usize];
            let place = if first == file {
                format!("line {}", site.line)
            } else {
                format!("{}:{}", first.display(), site.line)
            };
            return Err(Error::input(
                file,
                line,
                format!("duplicate {kind} id {id:?}: expected unique ids, first seen at {place}"),
            ));
        }
        if self.files.last().is_none_or(|last| last != file) {
            self.files.push(file.to_path_buf());
        }
        let file = u32::try_from(self.files.len() - 1).expect("fewer than 2^32 files");
        self.first.insert(id.to_owned(), Site { file, line });
        Ok(())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.first.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.first.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}
