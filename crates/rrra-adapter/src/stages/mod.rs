//! The `train.adapter` and `score.adapter` pipeline stages, one kind per file
//! ([`train`](self::train), [`score`](self::score)); the library they call (training loop,
//! labelled pool, adapter folder) is outside `stages`.
//!
//! Both read the vectors memory-mapped ([`rrra_common::vectors::VectorFile`]: a raw `f32`
//! sidecar of each embeddings artifact with an id index on disk), so no vector and no id
//! is held in anonymous memory; each batch copies its rows onto the `backend:` device.

use rrra_common::stage::StageContext;
use rrra_common::vectors::VectorFile;
use rrra_common::{Error, Result};

mod score;
mod train;

pub use crate::train::TrainAdapterParams;
pub use score::{ScoreAdapter, ScoreAdapterParams};
pub use train::TrainAdapter;

/// The memory-mapped query and document vectors (inputs `queries`, `docs`; sidecars that
/// cannot sit beside them go to the work folder), checked to be equally wide.
fn vector_files(ctx: &StageContext<'_>) -> Result<(VectorFile, VectorFile)> {
    let q = VectorFile::open(ctx.input("queries")?, &ctx.work_dir)?;
    let d = VectorFile::open(ctx.input("docs")?, &ctx.work_dir)?;
    if q.dim() != d.dim() {
        return Err(Error::Invalid(format!(
            "query vectors are {} wide but document vectors {}; expected one encoder's embeddings",
            q.dim(),
            d.dim()
        )));
    }
    Ok((q, d))
}
