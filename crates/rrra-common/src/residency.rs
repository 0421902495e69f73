//! Keeps the pages of memory-mapped scratch arrays from piling up in a stage's resident set.
//!
//! A pass over a mapped file ([`Scratch`] arrays) maps each page it touches, and the page
//! stays mapped until the process unmaps the file: the resident set (`VmRSS`, and its peak
//! `VmHWM`) grows with the input although the pages are page cache the kernel could drop.
//! A [`Trimmer`] counts the bytes a stage's passes read or write through its maps, in
//! order, and each time the count reaches its budget ([`TRIM_BUDGET`]) drops the maps'
//! pages from the page tables (`madvise(MADV_DONTNEED)`), on the stage's own thread, so
//! the mapped pages of a pass are bounded by the budget plus the large folios at its two
//! ends, however fast it runs. The pages stay in the page cache, so a later access is a
//! minor fault, not disk I/O, and reads the file's bytes, writes made through a shared
//! mapping included. Only shared file mappings are trimmed (the [`FileMapped`] types),
//! never anonymous memory, whose contents `MADV_DONTNEED` discards.
//!
//! Scattered reads do not go through maps at all ([`Scratch::read`],
//! [`crate::vectors::VectorFile::read_rows`]): one read can map a whole large folio.

use std::cell::Cell;
use std::marker::PhantomData;

use memmap2::{Mmap, UncheckedAdvice};

use crate::scratch::Scratch;

/// Bytes a [`Trimmer`]'s passes read or write through its maps between two releases: the
/// bound the maps add to a stage's peak resident set (plus a large folio, up to 2 MiB, at
/// each end of a pass).
pub const TRIM_BUDGET: u64 = 64 << 20;

/// A shared mapping of a file, whose pages can be dropped from the resident set without
/// changing what is read. Implemented by this crate's mapping types only.
pub trait FileMapped: private::Sealed {
    /// Drops the mapping's pages from this process's page tables (best effort).
    fn release(&self);
}

mod private {
    pub trait Sealed {}
    impl<T: bytemuck::Pod> Sealed for crate::scratch::Scratch<T> {}
    impl Sealed for super::MappedRegion<'_> {}
}

impl<T: bytemuck::Pod> FileMapped for Scratch<T> {
    fn release(&self) {
        if let Some(map) = self.read_only_map() {
            release_map(map);
        }
    }
}

/// The address range of a writable [`Scratch`] array, borrowed together with its values
/// ([`Scratch::values_and_region`]) so that it can be released while they are written.
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

/// Releases a stage's maps each time its passes have gone through [`TRIM_BUDGET`] bytes of
/// them ([`Trimmer::swept`]), or when told to ([`Trimmer::release`]: after a pass that
/// touches a map at random, such as a shuffle). One thread's: the passes call it between
/// their steps.
pub struct Trimmer<'a> {
    maps: &'a [&'a dyn FileMapped],
    budget: u64,
    swept: Cell<u64>,
}

impl<'a> Trimmer<'a> {
    /// A trimmer of `maps` with the budget [`TRIM_BUDGET`]; no maps (data in memory) is a
    /// trimmer that does nothing.
    pub fn new(maps: &'a [&'a dyn FileMapped]) -> Self {
        Self::with_budget(maps, TRIM_BUDGET)
    }

    /// A trimmer of `maps` that releases them every `budget` bytes.
    pub fn with_budget(maps: &'a [&'a dyn FileMapped], budget: u64) -> Self {
        Trimmer {
            maps,
            budget,
            swept: Cell::new(0),
        }
    }

    /// Counts `bytes` just read or written in order through the maps; releases them once
    /// the count since the last release reaches the budget.
    pub fn swept(&self, bytes: u64) {
        let swept = self.swept.get() + bytes;
        if swept >= self.budget {
            self.release();
        } else {
            self.swept.set(swept);
        }
    }

    /// Drops every map's pages from the resident set now.
    pub fn release(&self) {
        self.maps.iter().for_each(|m| m.release());
        self.swept.set(0);
    }
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

    fn sum(v: &[u32]) -> u64 {
        v.iter().fold(0u64, |s, &x| s.wrapping_add(x as u64))
    }

    /// 1 MiB steps of `len` u32 values.
    const STEP: usize = 1 << 18;

    /// The bound of a pass trimmed every 4 MiB in 1 MiB steps, checked after each step: the
    /// budget, one step, and a large folio at each end.
    const BOUND_KB: usize = (4 + 1 + 2 * 2) * 1024;

    #[test]
    fn a_swept_map_stays_within_its_budget_and_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let n = 16 << 18; // 16 MiB of u32
        let mut w = ScratchWriter::<u32>::create(dir.path(), "values.bin").unwrap();
        for i in 0..n as u32 {
            w.push(i.wrapping_mul(2_654_435_761)).unwrap();
        }
        let values = w.finish().unwrap();
        let addr = values.as_slice().as_ptr() as usize;
        let maps: [&dyn FileMapped; 1] = [&values];
        let trim = Trimmer::with_budget(&maps, 4 << 20);
        let (mut total, mut peak) = (0u64, 0);
        for chunk in values.as_slice().chunks(STEP) {
            total = total.wrapping_add(sum(chunk));
            trim.swept(4 * chunk.len() as u64);
            peak = peak.max(resident_kb(addr));
        }
        assert!(
            peak <= BOUND_KB,
            "{peak} kB resident at most, bound {BOUND_KB}"
        );
        // Untrimmed, the same pass maps the whole file (the bound means something).
        std::hint::black_box(sum(values.as_slice()));
        assert!(resident_kb(addr) >= 12 * 1024, "{} kB", resident_kb(addr));
        trim.release();
        assert!(resident_kb(addr) == 0, "released: {} kB", resident_kb(addr));
        assert_eq!(
            sum(values.as_slice()),
            total,
            "the bytes read back unchanged"
        );
    }

    #[test]
    fn values_written_while_trimmed_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut order = Scratch::<u32>::zeroed(dir.path(), "order.bin", 16 << 18).unwrap();
        let addr = order.as_slice().as_ptr() as usize;
        let (values, region) = order.values_and_region();
        let maps: [&dyn FileMapped; 1] = [&region];
        let trim = Trimmer::with_budget(&maps, 4 << 20);
        let mut peak = 0;
        for (c, chunk) in values.chunks_mut(STEP).enumerate() {
            for (i, v) in chunk.iter_mut().enumerate() {
                *v = ((c * STEP + i) as u32).wrapping_mul(7);
            }
            trim.swept(4 * chunk.len() as u64);
            peak = peak.max(resident_kb(addr));
        }
        assert!(
            peak <= BOUND_KB,
            "{peak} kB resident at most, bound {BOUND_KB}"
        );
        let expected = (0..16u32 << 18).fold(0u64, |s, i| s.wrapping_add(i.wrapping_mul(7) as u64));
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
        let maps: [&dyn FileMapped; 2] = [&empty, &region];
        let trim = Trimmer::with_budget(&maps, 0);
        trim.swept(1);
        trim.release();
    }
}
