//! Embeddings on disk: a sidecar of an embeddings artifact holding its vectors as raw
//! little-endian `f32` (rows in file order) and an id index, so a stage reads any row in
//! O(1) with the kernel's page cache as the only copy and holds no per-row memory. Rows
//! are read with positional reads ([`VectorFile::read_rows`]) into the caller's buffer,
//! not through a mapping: on kernels that cache files in large folios a one-row read of a
//! mapping maps the whole folio (up to 2 MiB, measured here on Linux 6.18 with and without
//! `MADV_RANDOM`), so scattered reads would map the file. The id index is mapped
//! read-only (binary search).
//!
//! The sidecar of `<dir>/<file>` is `<dir>/<file>.f32`, written by the first reader (temp
//! name, then rename) and reused while its header's stamp (the artifact's size and
//! modification time, as the cache's quick check) matches; a changed artifact gets a new
//! one. Where the artifact's folder is not writable it is written into the caller's
//! fallback folder instead (a stage's work folder), named by a hash of the artifact's path.
//!
//! Layout (all little-endian, sections 8-byte aligned): a 128-byte header (magic, format
//! version, rows, width, id bytes, total length, the artifact's stamp), the vectors
//! (`rows · dim` `f32`), the FNV-1a hashes of the ids sorted (`u64` each) with the row of
//! each (`u32`), the id offsets (`rows + 1` `u64`) and the id bytes. Finding an id is a
//! binary search over the hashes and a comparison of the id bytes: 20 B a row on disk, none
//! in memory. Building holds 24 B a row (hash, row, offset) until the index is sorted.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::artifact::stamp_path;
use crate::embeddings;
use crate::parts::{process_alive, scratch_host, scratch_tag, scratch_tag_pid};
use crate::scratch::create_rw;
use crate::{Error, Result};

const _: () = assert!(
    cfg!(target_endian = "little"),
    "the f32 sidecar is read in place: little-endian hosts only"
);

const MAGIC: &[u8; 8] = b"RRRAF32\0";
const FORMAT: u64 = 1;
const HEADER: usize = 128;
/// Bytes of the header's stamp field.
const STAMP: usize = 64;

/// The embeddings artifact's vectors, read from its sidecar (the id index mapped).
pub struct VectorFile {
    map: Mmap,
    /// The sidecar, open for positional reads of rows.
    file: File,
    /// The sidecar's path (for errors).
    sidecar: PathBuf,
    rows: usize,
    dim: usize,
    /// The embeddings artifact (for errors).
    source: PathBuf,
}

impl std::fmt::Debug for VectorFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorFile")
            .field("source", &self.source)
            .field("rows", &self.rows)
            .field("dim", &self.dim)
            .finish()
    }
}

/// Where the sections of a sidecar of `rows` rows of width `dim` begin, and its length.
struct Sections {
    vectors: usize,
    hashes: usize,
    rows: usize,
    offsets: usize,
    ids: usize,
}

impl Sections {
    fn new(rows: usize, dim: usize) -> Self {
        let align = |x: usize| x.div_ceil(8) * 8;
        let vectors = HEADER;
        let hashes = align(vectors + rows * dim * 4);
        let row_numbers = hashes + rows * 8;
        let offsets = align(row_numbers + rows * 4);
        let ids = offsets + (rows + 1) * 8;
        Sections {
            vectors,
            hashes,
            rows: row_numbers,
            offsets,
            ids,
        }
    }
}

/// FNV-1a, 64 bits: the index's hash of an id (stable across builds and hosts).
fn id_hash(id: &[u8]) -> u64 {
    id.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl VectorFile {
    /// The vectors of the embeddings artifact `source`, from its sidecar (written first if
    /// it is missing or stale; into `fallback_dir` when `source`'s folder is not writable).
    pub fn open(source: &Path, fallback_dir: &Path) -> Result<Self> {
        let stamp = stamp_path(source)?;
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let beside = source.with_file_name(format!("{name}.f32"));
        if let Some(v) = Self::map_valid(&beside, source, &stamp)? {
            return Ok(v);
        }
        let absolute = std::path::absolute(source).map_err(|e| Error::io(source, e))?;
        let digest = blake3::hash(absolute.to_string_lossy().as_bytes()).to_hex();
        let fallback = fallback_dir.join(format!("{name}-{}.f32", &digest[..16]));
        if let Some(v) = Self::map_valid(&fallback, source, &stamp)? {
            return Ok(v);
        }
        let target = match build_locked(source, &beside, &stamp) {
            Ok(()) => beside,
            Err(Error::Io { source: e, .. })
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                std::fs::create_dir_all(fallback_dir).map_err(|e| Error::io(fallback_dir, e))?;
                build_locked(source, &fallback, &stamp)?;
                fallback
            }
            Err(e) => return Err(e),
        };
        Self::map_valid(&target, source, &stamp)?.ok_or_else(|| {
            Error::file(
                &target,
                "the vector sidecar just written does not match its embeddings artifact",
            )
        })
    }

    /// Maps `sidecar` if it is complete and made from `source` as it is now (`stamp`).
    fn map_valid(sidecar: &Path, source: &Path, stamp: &str) -> Result<Option<Self>> {
        let Ok(file) = File::open(sidecar) else {
            return Ok(None);
        };
        // SAFETY: sidecars are written under a temp name and renamed into place, never
        // changed in place; a rebuild renames a new file over the name, leaving this
        // mapping's file intact.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(sidecar, e))?;
        if map.len() < HEADER || &map[..8] != MAGIC || u64_at(&map, 8) != FORMAT {
            return Ok(None);
        }
        let (rows, dim, total) = (
            u64_at(&map, 16) as usize,
            u64_at(&map, 24) as usize,
            u64_at(&map, 40) as usize,
        );
        let stamp_len = (u64_at(&map, 48) as usize).min(STAMP);
        if total != map.len() || &map[56..56 + stamp_len] != stamp.as_bytes() {
            return Ok(None);
        }
        let s = Sections::new(rows, dim);
        if s.ids + u64_at(&map, 32) as usize != total {
            return Ok(None);
        }
        Ok(Some(VectorFile {
            map,
            file,
            sidecar: sidecar.to_path_buf(),
            rows,
            dim,
            source: source.to_path_buf(),
        }))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embeddings artifact it maps.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Appends the vectors of `rows` (row numbers of the artifact, in that order) to `out`,
    /// `dim` values each, with positional reads of the sidecar: nothing is mapped, so the
    /// rows read leave no pages in the resident set. A row equal to the one before it is
    /// copied, not read again (pairs come grouped by query).
    pub fn read_rows(&self, rows: impl IntoIterator<Item = u32>, out: &mut Vec<f32>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let (d, start) = (self.dim, Sections::new(self.rows, self.dim).vectors);
        let mut last = None;
        for row in rows {
            let at = out.len();
            if last == Some(row) {
                out.extend_from_within(at - d..at);
                continue;
            }
            if row as usize >= self.rows {
                return Err(Error::file(
                    &self.source,
                    format!(
                        "row {row} of {} requested; expected a row of the artifact",
                        self.rows
                    ),
                ));
            }
            out.resize(at + d, 0.0);
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[at..]);
            self.file
                .read_exact_at(bytes, (start + row as usize * d * 4) as u64)
                .map_err(|e| Error::io(&self.sidecar, e))?;
            last = Some(row);
        }
        Ok(())
    }

    /// The row of `id`, if the artifact has it.
    pub fn find(&self, id: &str) -> Option<u32> {
        let s = Sections::new(self.rows, self.dim);
        let hashes: &[u64] = bytemuck::cast_slice(&self.map[s.hashes..s.hashes + self.rows * 8]);
        let rows: &[u32] = bytemuck::cast_slice(&self.map[s.rows..s.rows + self.rows * 4]);
        let offsets: &[u64] =
            bytemuck::cast_slice(&self.map[s.offsets..s.offsets + (self.rows + 1) * 8]);
        let h = id_hash(id.as_bytes());
        let first = hashes.partition_point(|&x| x < h);
        hashes[first..]
            .iter()
            .take_while(|&&x| x == h)
            .zip(&rows[first..])
            .map(|(_, &r)| r)
            .find(|&r| {
                let (a, b) = (offsets[r as usize], offsets[r as usize + 1]);
                &self.map[s.ids + a as usize..s.ids + b as usize] == id.as_bytes()
            })
    }

    /// The row of `id`, or an error naming the artifact and `what` the id is ("query",
    /// "document").
    pub fn row_of(&self, id: &str, what: &str) -> Result<u32> {
        self.find(id).ok_or_else(|| {
            Error::file(
                &self.source,
                format!(
                    "no vector for {what} {id:?}; expected every {what} of the pairs to be embedded"
                ),
            )
        })
    }
}

/// Writes the sidecar of `source` to `target` unless another reader has written it while
/// this one waited: readers of one artifact (threads, processes, hosts sharing the folder
/// where the file system supports `flock`) take an exclusive lock on `.<target>.lock`
/// first, so one of them builds and the others map its sidecar. Under the lock, temp files
/// of killed builders on this host are removed.
fn build_locked(source: &Path, target: &Path, stamp: &str) -> Result<()> {
    let name = target
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let lock_path = target.with_file_name(format!(".{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    if VectorFile::map_valid(target, source, stamp)?.is_some() {
        return Ok(());
    }
    sweep_killed_builds(target, &name);
    let built = build(source, target, &name, stamp);
    // Unlinked while held and after the rename: a reader still waiting on this file finds
    // the sidecar valid once it holds the lock; a later reader maps the sidecar before it
    // looks for a lock. The lock goes when `lock` is closed.
    let _ = std::fs::remove_file(&lock_path);
    built
}

/// Removes `.<name>.tmp-<host>-<pid>-…` files beside `target` left by a builder on this
/// host whose process has ended (killed mid-build); other hosts' files are left alone.
fn sweep_killed_builds(target: &Path, name: &str) {
    let Some(dir) = target.parent() else { return };
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    let (prefix, host) = (format!(".{name}.tmp-"), scratch_host());
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(tag) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = scratch_tag_pid(tag.strip_suffix(".ids").unwrap_or(tag), &host);
        if pid.is_some_and(|pid| !process_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the sidecar of `source` to `target` (temp name, then rename). Fails, naming
/// the artifact, when an id has two vectors.
fn build(source: &Path, target: &Path, name: &str, stamp: &str) -> Result<()> {
    // Named by host, pid and call, so writers on hosts sharing the folder do not collide
    // and a killed writer's files can be told from a live one's.
    let tag = scratch_tag();
    #[cfg(test)]
    tests::BUILT.lock().unwrap().push(target.to_path_buf());
    let tmp = target.with_file_name(format!(".{name}.tmp-{tag}"));
    let ids_tmp = target.with_file_name(format!(".{name}.tmp-{tag}.ids"));
    let result = write_sidecar(source, &tmp, &ids_tmp, stamp)
        .and_then(|()| std::fs::rename(&tmp, target).map_err(|e| Error::io(target, e)));
    let _ = std::fs::remove_file(&ids_tmp);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_sidecar(source: &Path, tmp: &Path, ids_tmp: &Path, stamp: &str) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| Error::io(&path, e)
    };
    let file = File::create(tmp).map_err(io(tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&[0; HEADER]).map_err(io(tmp))?;
    let mut ids = BufWriter::with_capacity(1 << 20, create_rw(ids_tmp)?);
    let (mut index, mut offsets): (Vec<(u64, u32)>, Vec<u64>) = (Vec::new(), vec![0]);
    let dim = embeddings::for_each_block(source, |block_ids, block| {
        out.write_all(bytemuck::cast_slice(block))
            .map_err(io(tmp))?;
        for id in block_ids {
            let row = u32::try_from(index.len())
                .map_err(|_| Error::file(source, "more than 2^32 vectors"))?;
            index.push((id_hash(id.as_bytes()), row));
            ids.write_all(id.as_bytes()).map_err(io(ids_tmp))?;
            offsets.push(offsets.last().expect("starts at 0") + id.len() as u64);
        }
        Ok(())
    })?;
    let ids = ids
        .into_inner()
        .map_err(|e| Error::io(ids_tmp, e.into_error()))?;
    let ids_len = *offsets.last().expect("starts at 0");
    // SAFETY: this process's own temp file, complete and no longer written.
    let id_bytes = match ids_len {
        0 => None,
        _ => Some(unsafe { Mmap::map(&ids) }.map_err(io(ids_tmp))?),
    };
    let id_of = |r: u32| {
        let (a, b) = (
            offsets[r as usize] as usize,
            offsets[r as usize + 1] as usize,
        );
        id_bytes.as_deref().map_or(&[][..], |m| &m[a..b])
    };
    index.sort_unstable();
    for w in index.windows(2) {
        if w[0].0 == w[1].0 && id_of(w[0].1) == id_of(w[1].1) {
            return Err(Error::file(
                source,
                format!(
                    "id {:?} has two vectors (rows {} and {}); expected each id once",
                    String::from_utf8_lossy(id_of(w[0].1)),
                    w[0].1 + 1,
                    w[1].1 + 1
                ),
            ));
        }
    }
    let rows = index.len();
    let s = Sections::new(rows, dim);
    let pad = |out: &mut BufWriter<File>, at: usize, to: usize| {
        out.write_all(&vec![0; to - at]).map_err(io(tmp))
    };
    pad(&mut out, s.vectors + rows * dim * 4, s.hashes)?;
    for &(h, _) in &index {
        out.write_all(&h.to_le_bytes()).map_err(io(tmp))?;
    }
    for &(_, r) in &index {
        out.write_all(&r.to_le_bytes()).map_err(io(tmp))?;
    }
    drop(index);
    pad(&mut out, s.rows + rows * 4, s.offsets)?;
    for o in &offsets {
        out.write_all(&o.to_le_bytes()).map_err(io(tmp))?;
    }
    if let Some(m) = &id_bytes {
        out.write_all(m).map_err(io(tmp))?;
    }
    let total = s.ids as u64 + ids_len;
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    let stamp = &stamp.as_bytes()[..stamp.len().min(STAMP)];
    for (at, v) in [
        (8, FORMAT),
        (16, rows as u64),
        (24, dim as u64),
        (32, ids_len),
        (40, total),
        (48, stamp.len() as u64),
    ] {
        header[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    header[56..56 + stamp.len()].copy_from_slice(stamp);
    let mut file = out
        .into_inner()
        .map_err(|e| Error::io(tmp, e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io(tmp))?;
    file.write_all(&header).map_err(io(tmp))?;
    file.sync_all().map_err(io(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embeddings::EmbeddingSink;

    /// The sidecars [`build`] has started writing, in order.
    pub(super) static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

    fn write(path: &Path, rows: &[(&str, [f32; 2])]) {
        let mut sink = EmbeddingSink::create(path, 2).unwrap();
        for (id, v) in rows {
            sink.push(id, v).unwrap();
        }
        sink.finish().unwrap();
    }

    fn values(v: &VectorFile, rows: impl IntoIterator<Item = u32>) -> Vec<f32> {
        let mut out = Vec::new();
        v.read_rows(rows, &mut out).unwrap();
        out
    }

    #[test]
    fn rows_by_id_from_a_sidecar_that_follows_its_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let work = dir.path().join("work");
        write(
            &path,
            &[("x", [1.0, 2.0]), ("y", [3.0, 4.0]), ("zz", [5.0, 6.0])],
        );
        let v = VectorFile::open(&path, &work).unwrap();
        assert_eq!((v.rows(), v.dim()), (3, 2));
        assert_eq!(values(&v, [0, 1, 2]), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(values(&v, [2, 2, 0]), [5.0, 6.0, 5.0, 6.0, 1.0, 2.0]);
        let err = v.read_rows([3], &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("row 3 of 3") && err.contains("e.parquet"),
            "{err}"
        );
        assert_eq!(
            [
                v.find("zz"),
                v.find("x"),
                v.find("y"),
                v.find("z"),
                v.find("")
            ],
            [Some(2), Some(0), Some(1), None, None]
        );
        let err = v.row_of("w", "document").unwrap_err().to_string();
        assert!(
            err.contains("no vector for document \"w\"") && err.contains("e.parquet"),
            "{err}"
        );
        let sidecar = dir.path().join("e.parquet.f32");
        assert!(sidecar.exists() && !work.exists());
        // Reused while the artifact is unchanged...
        let modified = std::fs::metadata(&sidecar).unwrap().modified().unwrap();
        drop(v);
        VectorFile::open(&path, &work).unwrap();
        assert_eq!(
            std::fs::metadata(&sidecar).unwrap().modified().unwrap(),
            modified
        );
        // ...and rebuilt when it changes (here: a different size).
        write(&path, &[("a", [7.0, 8.0]), ("x", [9.0, 0.5])]);
        let v = VectorFile::open(&path, &work).unwrap();
        assert_eq!((v.rows(), v.find("x"), v.find("y")), (2, Some(1), None));
        assert_eq!(values(&v, [0, 1]), [7.0, 8.0, 9.0, 0.5]);
        // No temp file is left beside it.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["e.parquet", "e.parquet.f32"]);
    }

    #[test]
    fn a_truncated_sidecar_is_rebuilt_and_a_duplicate_id_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        write(&path, &[("x", [1.0, 2.0]), ("y", [3.0, 4.0])]);
        drop(VectorFile::open(&path, dir.path()).unwrap());
        let sidecar = dir.path().join("e.parquet.f32");
        let bytes = std::fs::read(&sidecar).unwrap();
        std::fs::write(&sidecar, &bytes[..bytes.len() - 1]).unwrap();
        let v = VectorFile::open(&path, dir.path()).unwrap();
        assert_eq!(v.find("y"), Some(1));
        assert_eq!(std::fs::read(&sidecar).unwrap(), bytes);

        let dup = dir.path().join("dup.parquet");
        write(
            &dup,
            &[("x", [1.0, 2.0]), ("y", [3.0, 4.0]), ("x", [5.0, 6.0])],
        );
        let err = VectorFile::open(&dup, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("dup.parquet") && err.contains("id \"x\" has two vectors (rows 1 and 3)"),
            "{err}"
        );
        assert!(!dir.path().join("dup.parquet.f32").exists());
    }

    #[test]
    fn a_read_only_folder_gets_its_sidecar_in_the_fallback_folder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let path = data.join("e.parquet");
        write(&path, &[("x", [1.0, 2.0])]);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
        if File::create(data.join("probe")).is_ok() {
            // Running as root: permissions are not enforced; nothing to test.
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
            return;
        }
        let work = dir.path().join("work");
        let v = VectorFile::open(&path, &work).unwrap();
        assert_eq!(v.find("x"), Some(0));
        let made: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
        assert_eq!(made.len(), 1);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn concurrent_first_readers_build_the_sidecar_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let names: Vec<String> = (0..20_000).map(|i| format!("d{i}")).collect();
        let rows: Vec<(&str, [f32; 2])> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), [i as f32, 1.0]))
            .collect();
        write(&path, &rows);
        let start = std::sync::Barrier::new(4);
        let found: Vec<Option<u32>> = std::thread::scope(|s| {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        VectorFile::open(&path, dir.path()).unwrap().find("d19999")
                    })
                })
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(found, [Some(19_999); 4]);
        let sidecar = dir.path().join("e.parquet.f32");
        let built = BUILT
            .lock()
            .unwrap()
            .iter()
            .filter(|p| **p == sidecar)
            .count();
        assert_eq!(
            built, 1,
            "one reader builds, the others wait and map its sidecar"
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["e.parquet", "e.parquet.f32"],
            "no lock or temp file left"
        );
    }

    #[test]
    fn temp_files_of_a_killed_build_on_this_host_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        write(&path, &[("x", [1.0, 2.0])]);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let host = scratch_host();
        let me = std::process::id();
        let killed = [
            format!(".e.parquet.f32.tmp-{host}-{dead}-0"),
            format!(".e.parquet.f32.tmp-{host}-{dead}-0.ids"),
        ];
        let kept = [
            format!(".e.parquet.f32.tmp-otherhost-{dead}-0"),
            format!(".e.parquet.f32.tmp-{host}-{me}-999"),
            format!(".other.parquet.f32.tmp-{host}-{dead}-0"),
        ];
        for name in killed.iter().chain(&kept) {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        VectorFile::open(&path, dir.path()).unwrap();
        for name in &killed {
            assert!(!dir.path().join(name).exists(), "{name} swept");
        }
        for name in &kept {
            assert!(dir.path().join(name).exists(), "{name} kept");
        }
    }
}
