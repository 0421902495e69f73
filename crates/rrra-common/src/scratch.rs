//! File-backed scratch arrays: O(rows) state a stage needs while it runs (e.g.
//! `train.adapter`'s pool pairs and their shuffled order) kept in a memory-mapped file in
//! the stage's work folder rather than in anonymous memory, so the kernel can page it out
//! and peak anonymous memory stays bounded. The file is removed when the array is dropped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytemuck::Pod;
use memmap2::{Mmap, MmapMut};

use crate::{Error, Result};

/// Appends values to a scratch file; [`ScratchWriter::finish`] maps it read-only.
pub struct ScratchWriter<T: Pod> {
    path: PathBuf,
    writer: BufWriter<File>,
    len: usize,
    _values: std::marker::PhantomData<T>,
}

impl<T: Pod> ScratchWriter<T> {
    /// Creates (or truncates) `dir/name`, creating `dir`.
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(name);
        let file = create_rw(&path)?;
        Ok(ScratchWriter {
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            len: 0,
            _values: std::marker::PhantomData,
        })
    }

    pub fn push(&mut self, value: T) -> Result<()> {
        self.len += 1;
        self.writer
            .write_all(bytemuck::bytes_of(&value))
            .map_err(|e| Error::io(&self.path, e))
    }

    /// The values written, memory-mapped.
    pub fn finish(self) -> Result<Scratch<T>> {
        let path = self.path;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        let map = if self.len == 0 {
            None
        } else {
            // SAFETY: the file is private scratch of this process (its work folder), written
            // above and not modified while mapped.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?)
        };
        Ok(Scratch {
            path,
            file,
            map: Map::ReadOnly(map),
            len: self.len,
            _values: std::marker::PhantomData,
        })
    }
}

/// Creates (or truncates) `path` for reading and writing (a mapping needs both).
pub(crate) fn create_rw(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

enum Map {
    ReadOnly(Option<Mmap>),
    Writable(Option<MmapMut>),
}

/// A memory-mapped scratch array of `T`; its file is removed on drop.
pub struct Scratch<T: Pod> {
    path: PathBuf,
    /// The file, open for positional reads ([`Scratch::read`]).
    file: File,
    map: Map,
    len: usize,
    _values: std::marker::PhantomData<T>,
}

impl<T: Pod> Scratch<T> {
    /// A writable array of `len` zeroed values in the file `dir/name` (created, with `dir`).
    pub fn zeroed(dir: &Path, name: &str, len: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(name);
        let file = create_rw(&path)?;
        let bytes = len * std::mem::size_of::<T>();
        file.set_len(bytes as u64)
            .map_err(|e| Error::io(&path, e))?;
        let map = if bytes == 0 {
            None
        } else {
            // SAFETY: private scratch of this process, only changed through this mapping.
            Some(unsafe { MmapMut::map_mut(&file) }.map_err(|e| Error::io(&path, e))?)
        };
        Ok(Scratch {
            path,
            file,
            map: Map::Writable(map),
            len,
            _values: std::marker::PhantomData,
        })
    }

    pub fn as_slice(&self) -> &[T] {
        let bytes: &[u8] = match &self.map {
            Map::ReadOnly(Some(m)) => m,
            Map::Writable(Some(m)) => m,
            // Empty: no mapping (an empty slice of bytes is not aligned for `T`).
            _ => return &[],
        };
        &bytemuck::cast_slice(bytes)[..self.len]
    }

    /// The value at `index` (< the array's length), read with a positional read rather than
    /// through the mapping: a scattered read of a mapping can map a whole large folio of
    /// the file (up to 2 MiB), one of the file leaves nothing in the resident set.
    pub fn read(&self, index: usize) -> Result<T> {
        use std::os::unix::fs::FileExt;
        assert!(index < self.len, "scratch index {index} of {}", self.len);
        let mut value = T::zeroed();
        let size = std::mem::size_of::<T>();
        self.file
            .read_exact_at(bytemuck::bytes_of_mut(&mut value), (index * size) as u64)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(value)
    }

    /// The mapping of an array made by [`ScratchWriter::finish`] (`None` when empty or
    /// writable).
    pub(crate) fn read_only_map(&self) -> Option<&Mmap> {
        match &self.map {
            Map::ReadOnly(m) => m.as_ref(),
            Map::Writable(_) => None,
        }
    }

    /// The values, writable, with their address range for
    /// a [`crate::residency::Trimmer`] (an array made by [`Scratch::zeroed`]; empty
    /// otherwise).
    pub fn values_and_region(&mut self) -> (&mut [T], crate::residency::MappedRegion<'_>) {
        let region = match &self.map {
            Map::Writable(Some(m)) => (m.as_ptr() as usize, m.len()),
            _ => (0, 0),
        };
        (
            self.as_mut_slice(),
            crate::residency::MappedRegion::new(region.0, region.1),
        )
    }

    /// The values, writable (an array made by [`Scratch::zeroed`]; empty otherwise).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.map {
            Map::Writable(Some(m)) => &mut bytemuck::cast_slice_mut(&mut m[..])[..self.len],
            _ => &mut [],
        }
    }
}

impl<T: Pod> Drop for Scratch<T> {
    fn drop(&mut self) {
        // Unmapped after this body; unlinking a mapped file is fine on Unix.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_values_read_back_and_the_file_goes_with_the_array() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let mut w = ScratchWriter::<[u32; 3]>::create(&work, "pairs.bin").unwrap();
        for i in 0..100_000u32 {
            w.push([i, i * 2, i % 4]).unwrap();
        }
        let s = w.finish().unwrap();
        assert_eq!(s.as_slice().len(), 100_000);
        assert_eq!(s.as_slice()[77_777], [77_777, 155_554, 1]);
        assert_eq!(s.read(77_777).unwrap(), [77_777, 155_554, 1]);
        assert_eq!(s.read(99_999).unwrap(), [99_999, 199_998, 3]);
        let file = work.join("pairs.bin");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 1_200_000);
        drop(s);
        assert!(!file.exists());

        let mut order = Scratch::<u32>::zeroed(&work, "order.bin", 10).unwrap();
        assert_eq!(order.as_slice(), &[0; 10]);
        order.as_mut_slice()[3] = 7;
        assert_eq!(order.as_slice()[3], 7);
        assert_eq!(
            order.read(3).unwrap(),
            7,
            "a write through the map reads back"
        );
        let empty = ScratchWriter::<u32>::create(&work, "none.bin")
            .unwrap()
            .finish()
            .unwrap();
        assert!(empty.as_slice().is_empty());
        assert!(
            Scratch::<u32>::zeroed(&work, "z.bin", 0)
                .unwrap()
                .as_slice()
                .is_empty()
        );
    }
}
