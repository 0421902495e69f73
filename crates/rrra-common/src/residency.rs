//! Keeps the pages of memory-mapped inputs from piling up in a stage's resident set.
//!
//! A stage that reads a mapped file ([`VectorFile`], a [`Scratch`] array) touches, over a
//! pass, every page of it, and each touched page stays mapped until the process unmaps the
//! file: the resident set (`VmRSS`, and its peak `VmHWM`) grows with the input although
//! the pages are page cache the kernel could drop. [`trimmed`] runs a closure while a
//! scoped thread watches the process's file-backed resident pages (`/proc/self/statm`,
//! every 10 ms) and, once they have grown by [`TRIM_BUDGET`] from their lowest point since
//! the last trim (and at least every second), drops the mappings' pages
//! from the page tables (`madvise(MADV_DONTNEED)`). The pages stay in the page cache, so a
//! later access is a minor fault, not disk I/O, and reads the file's bytes, writes made
//! through a shared mapping included. Only shared file mappings are trimmed (the
//! [`FileMapped`] types), never anonymous memory, whose contents `MADV_DONTNEED` discards.

use std::marker::PhantomData;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use memmap2::{Mmap, UncheckedAdvice};

use crate::scratch::Scratch;
use crate::vectors::VectorFile;

/// How much the file-backed resident set may grow before [`trimmed`] drops the mapped
/// pages: the bound a stage's mapped inputs add to its peak RSS (plus what it touches in
/// one poll).
pub const TRIM_BUDGET: u64 = 64 << 20;

/// How often the resident set is read.
const POLL: Duration = Duration::from_millis(10);

/// Polls after which the maps are trimmed whatever the count says (1 s).
const BACKSTOP: u32 = 100;

/// A shared mapping of a file, whose pages can be dropped from the resident set without
/// changing what is read. Implemented by this crate's mapping types only.
pub trait FileMapped: Sync + private::Sealed {
    /// Drops the mapping's pages from this process's page tables (best effort).
    fn release(&self);
}

mod private {
    pub trait Sealed {}
    impl Sealed for crate::vectors::VectorFile {}
    impl<T: bytemuck::Pod + Sync> Sealed for crate::scratch::Scratch<T> {}
    impl Sealed for super::MappedRegion<'_> {}
}

impl FileMapped for VectorFile {
    fn release(&self) {
        release_map(self.map());
    }
}

impl<T: bytemuck::Pod + Sync> FileMapped for Scratch<T> {
    fn release(&self) {
        if let Some(map) = self.read_only_map() {
            release_map(map);
        }
    }
}

/// The address range of a writable [`Scratch`] array, borrowed together with its values
/// ([`Scratch::values_and_region`]) so that it can be trimmed while they are written.
pub struct MappedRegion<'a> {
    start: usize,
    len: usize,
    _array: PhantomData<&'a mut ()>,
}

impl MappedRegion<'_> {
    /// The region at `start` (page-aligned, the start of a shared file mapping) of `len`
    /// bytes; `len` 0 is no region.
    pub(crate) fn new(start: usize, len: usize) -> Self {
        MappedRegion {
            start,
            len,
            _array: PhantomData,
        }
    }
}

impl FileMapped for MappedRegion<'_> {
    fn release(&self) {
        if self.len > 0 {
            // SAFETY: the range is a live shared, writable mapping of a scratch file (the
            // borrow of its array outlives this region): MADV_DONTNEED drops the page
            // table entries, marking written pages dirty in the page cache, and the next
            // access maps the same page-cache page again, so no value changes.
            unsafe {
                libc::madvise(
                    self.start as *mut libc::c_void,
                    self.len,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }
}

/// Runs `f` while the pages of `maps` are dropped from this process's resident set each
/// time its file-backed resident pages have grown by [`TRIM_BUDGET`]; returns what `f`
/// returns.
pub fn trimmed<R>(maps: &[&dyn FileMapped], f: impl FnOnce() -> R) -> R {
    trimmed_within(maps, TRIM_BUDGET, f)
}

/// [`trimmed`] with a budget of `budget` bytes. The mappings outlive the watching thread
/// (it is scoped), so it never advises an address range that has been unmapped and reused.
/// The maps are also trimmed every second, and only then where the resident set cannot be
/// read (no `/proc`).
pub fn trimmed_within<R>(maps: &[&dyn FileMapped], budget: u64, f: impl FnOnce() -> R) -> R {
    std::thread::scope(|scope| {
        let (stop, stopped) = channel::<()>();
        scope.spawn(move || {
            let mut base = file_resident();
            let mut polls = 0u32;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL) {
                polls += 1;
                let now = file_resident();
                let grown = match (base, now) {
                    (Some(b), Some(now)) => {
                        // Growth counts from the lowest point since the last trim (pages
                        // dropped elsewhere, e.g. by another trimmed scope, lower it).
                        base = Some(b.min(now));
                        now > b.min(now) + budget
                    }
                    _ => false,
                };
                // And at least every BACKSTOP polls: pages dropped elsewhere in the same
                // interval can hide growth from the count.
                if grown || polls >= BACKSTOP {
                    maps.iter().for_each(|m| m.release());
                    (base, polls) = (file_resident(), 0);
                }
            }
        });
        let out = f();
        drop(stop);
        out
    })
}

/// This process's file-backed (and shared-memory) resident bytes, from `/proc/self/statm`.
fn file_resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(2)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Drops `map`'s pages from the page tables (best effort: an error only leaves them).
fn release_map(map: &Mmap) {
    // SAFETY: `map` is a shared, read-only mapping of a file (the only `FileMapped`
    // mappings of this type): after MADV_DONTNEED a read faults the page back in from the
    // page cache with the file's bytes, so no reader sees a change. No writer exists.
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

    /// Waits (up to 30 s on a loaded machine) for the mapping at `addr` to hold at most
    /// `kb` resident; returns what it holds.
    fn settle(addr: usize, kb: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while resident_kb(addr) > kb && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        resident_kb(addr)
    }

    fn sum(v: &[u32]) -> u64 {
        v.iter().fold(0u64, |s, &x| s.wrapping_add(x as u64))
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
        let (before, resident) = trimmed_within(&[&values], 4 << 20, || {
            let before = sum(values.as_slice());
            (before, settle(addr, 4 * 1024))
        });
        assert!(resident <= 4 * 1024, "{resident} kB still resident");
        assert_eq!(
            sum(values.as_slice()),
            before,
            "the bytes read back unchanged"
        );
    }

    #[test]
    fn values_written_while_trimmed_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut order = Scratch::<u32>::zeroed(dir.path(), "order.bin", 4 << 20).unwrap();
        let addr = order.as_slice().as_ptr() as usize;
        let (values, region) = order.values_and_region();
        let resident = trimmed_within(&[&region], 4 << 20, || {
            for (i, v) in values.iter_mut().enumerate() {
                *v = (i as u32).wrapping_mul(7);
            }
            settle(addr, 4 * 1024)
        });
        assert!(resident <= 4 * 1024, "{resident} kB still resident");
        let expected = (0..4u32 << 20).fold(0u64, |s, i| s.wrapping_add(i.wrapping_mul(7) as u64));
        assert_eq!(sum(order.as_slice()), expected, "every write kept");
    }

    #[test]
    fn an_empty_array_has_nothing_to_trim() {
        let dir = tempfile::tempdir().unwrap();
        let empty = ScratchWriter::<u32>::create(dir.path(), "none.bin")
            .unwrap()
            .finish()
            .unwrap();
        let mut zero = Scratch::<u32>::zeroed(dir.path(), "zero.bin", 0).unwrap();
        let (_, region) = zero.values_and_region();
        assert_eq!(trimmed_within(&[&empty, &region], 0, || 7), 7);
    }
}
