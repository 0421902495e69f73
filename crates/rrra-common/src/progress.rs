//! Progress reporting for long work. Library crates report through [`Progress`]; only the
//! binary renders it (with indicatif), so no library depends on a terminal crate.

/// Creates progress tasks. Implementations must be cheap to call from several threads.
pub trait Progress: Send + Sync {
    /// Starts a task of `total` items (unknown when `None`), labelled for a person.
    fn task(&self, label: &str, total: Option<u64>) -> Box<dyn Task>;
}

/// One running task. It is finished when dropped.
pub trait Task: Send + Sync {
    /// `n` more items are done.
    fn inc(&self, n: u64);
    /// A short status shown beside the count (e.g. a training run's loss); replaces the
    /// previous one. Ignored by default.
    fn set_message(&self, _message: &str) {}
}

/// Reports nothing; for tests and library use.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

struct SilentTask;

impl Task for SilentTask {
    fn inc(&self, _n: u64) {}
}

impl Progress for Silent {
    fn task(&self, _label: &str, _total: Option<u64>) -> Box<dyn Task> {
        Box::new(SilentTask)
    }
}
