//! Keeps the pages of memory-mapped inputs from piling up in a stage's resident set.
//!
//! A stage that reads a mapped file ([`VectorFile`], a read-only [`Scratch`]) at random
//! touches, over a pass, every page of it, and each touched page stays mapped until the
//! process unmaps the file: the resident set (`VmRSS`, and its peak `VmHWM`) grows with
//! the input although the pages are clean page cache the kernel could drop. [`trimmed`]
//! runs a closure while a scoped thread drops the mappings' pages from the process's page
//! tables every interval (`madvise(MADV_DONTNEED)`). The pages stay in the page cache, so a
//! later read is a minor fault, not disk I/O, and the bytes read are the file's: only
//! shared file mappings are trimmed (the [`FileMapped`] types), never anonymous memory,
//! whose contents `MADV_DONTNEED` would discard.

use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use memmap2::{Mmap, UncheckedAdvice};

use crate::scratch::Scratch;
use crate::vectors::VectorFile;

/// How often [`trimmed`] drops mapped pages when a stage does not say otherwise: a pass
/// touches at most a few hundred MB in this time, and a refault of a page-cache page costs
/// well under a microsecond.
pub const TRIM_EVERY: Duration = Duration::from_millis(500);

/// A read-only shared mapping of a file, whose pages can be dropped from the resident set
/// without changing what is read. Implemented by this crate's mapping types only.
pub trait FileMapped: Sync + private::Sealed {
    /// The mapping (`None` for an empty array, which has none).
    fn mapping(&self) -> Option<&Mmap>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for crate::vectors::VectorFile {}
    impl<T: bytemuck::Pod + Sync> Sealed for crate::scratch::Scratch<T> {}
}

impl FileMapped for VectorFile {
    fn mapping(&self) -> Option<&Mmap> {
        Some(self.map())
    }
}

impl<T: bytemuck::Pod + Sync> FileMapped for Scratch<T> {
    fn mapping(&self) -> Option<&Mmap> {
        self.read_only_map()
    }
}

/// Runs `f` while the pages of `maps` are dropped from this process's resident set every
/// `every`; returns what `f` returns. The mappings outlive the trimming thread (it is
/// scoped), so it never advises an address range that has been unmapped and reused.
pub fn trimmed<R>(maps: &[&dyn FileMapped], every: Duration, f: impl FnOnce() -> R) -> R {
    std::thread::scope(|scope| {
        let (stop, stopped) = channel::<()>();
        scope.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                for map in maps.iter().filter_map(|m| m.mapping()) {
                    release(map);
                }
            }
        });
        let out = f();
        drop(stop);
        out
    })
}

/// Drops `map`'s pages from the page tables (best effort: an error only leaves them).
fn release(map: &Mmap) {
    // SAFETY: `map` is a shared, read-only mapping of a file (the only `FileMapped`
    // mappings): after MADV_DONTNEED a read faults the page back in from the page cache
    // with the file's bytes, so no reader sees a change. No writer exists.
    let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchWriter;

    /// Resident kB of the mapping starting at `addr`, from /proc/self/smaps.
    fn resident_kb(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{addr:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        assert!(lines.next().is_some(), "no mapping at {addr:x}");
        lines
            .find_map(|l| l.strip_prefix("Rss:"))
            .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
            .unwrap()
    }

    #[test]
    fn touched_pages_leave_the_resident_set_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let n = 4 << 20; // 16 MiB of u32
        let mut w = ScratchWriter::<u32>::create(dir.path(), "values.bin").unwrap();
        for i in 0..n as u32 {
            w.push(i.wrapping_mul(2_654_435_761)).unwrap();
        }
        let values = w.finish().unwrap();
        let addr = values.as_slice().as_ptr() as usize;
        let sum = |v: &[u32]| v.iter().fold(0u64, |s, &x| s.wrapping_add(x as u64));
        let before = sum(values.as_slice());
        assert!(
            resident_kb(addr) >= 15 * 1024,
            "all pages read are resident"
        );

        let resident = trimmed(&[&values], Duration::from_millis(5), || {
            // Wait (up to 30 s on a loaded machine) for a trim pass to drop the pages.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while resident_kb(addr) > 1024 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            resident_kb(addr)
        });
        assert!(resident <= 1024, "{resident} kB still resident");
        assert_eq!(
            sum(values.as_slice()),
            before,
            "the bytes read back unchanged"
        );
    }

    #[test]
    fn an_empty_array_has_no_mapping_to_trim() {
        let dir = tempfile::tempdir().unwrap();
        let empty = ScratchWriter::<u32>::create(dir.path(), "none.bin")
            .unwrap()
            .finish()
            .unwrap();
        assert!(empty.mapping().is_none());
        assert_eq!(trimmed(&[&empty], Duration::from_millis(1), || 7), 7);
    }
}
