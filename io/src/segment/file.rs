//! [`FileStorage`]: the real directory. The only `unsafe` of the segment
//! store (the two `mmap` calls) lives here.
//!
//! mmap on a reactor thread has two traps. A page fault or `msync` blocks the
//! whole core, and a store to a mapped page the disk cannot back raises
//! SIGBUS and kills the process. So: segments are preallocated with
//! `posix_fallocate` before anything is mapped (a full disk is an `ENOSPC`
//! at roll time, an ordinary error), a write mapping never extends past the
//! allocated size, mappings are dropped before any truncate, and durability
//! uses `fdatasync` (which on Linux also writes back pages dirtied through a
//! shared mapping), never `msync`.
//!
//! Default: [`WriteMode::Pwrite`] and [`ReadMode::Pread`]. Measured figures
//! and the reasons are in `FORMAT.md` ("Write path").

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, MmapMut, MmapOptions};

use super::storage::{Storage, StorageFile};

/// How [`FileStorage`] writes segment data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// One `pwrite(2)` per record. An I/O error or a full disk (on a
    /// copy-on-write filesystem fallocate cannot promise space) is an error
    /// returned by `append`.
    #[default]
    Pwrite,
    /// `memcpy` into a shared writable mapping of the preallocated file. No
    /// syscall per record, but a first touch of each page is a page fault,
    /// and on filesystems where fallocate does not reserve space for good
    /// (btrfs, ZFS: copy-on-write) a full disk is SIGBUS. Only for
    /// ext4/xfs.
    Mmap,
}

/// How [`FileStorage`] reads sealed segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// `pread(2)` into the reader's buffer. A disk read error is an error.
    #[default]
    Pread,
    /// Map sealed segments read-only (`MADV_SEQUENTIAL`) and copy from the
    /// mapping. A disk read error is SIGBUS.
    Mmap,
}

/// A real directory.
#[derive(Clone, Debug)]
pub struct FileStorage {
    dir: PathBuf,
    write_mode: WriteMode,
    read_mode: ReadMode,
}

impl FileStorage {
    /// Use `dir`, creating it if needed. Defaults: pwrite, pread.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        Ok(Self {
            dir: dir.as_ref().to_path_buf(),
            write_mode: WriteMode::default(),
            read_mode: ReadMode::default(),
        })
    }

    /// Choose the write path.
    pub fn with_write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    /// Choose the read path for sealed segments.
    pub fn with_read_mode(mut self, mode: ReadMode) -> Self {
        self.read_mode = mode;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// An open file of [`FileStorage`].
#[derive(Debug)]
pub struct FileHandle {
    file: File,
    mode: WriteMode,
    /// Writable mapping of `[0, allocated)`, in [`WriteMode::Mmap`] only.
    wmap: Option<MmapMut>,
    /// Read-only mapping of a sealed file, in [`ReadMode::Mmap`] only.
    rmap: Option<Mmap>,
}

impl Storage for FileStorage {
    type File = FileHandle;

    fn create(&self, name: &str) -> io::Result<FileHandle> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(name))?;
        Ok(FileHandle::new(file, self.write_mode))
    }

    fn open(&self, name: &str) -> io::Result<FileHandle> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(name))?;
        Ok(FileHandle::new(file, self.write_mode))
    }

    fn open_sealed(&self, name: &str) -> io::Result<FileHandle> {
        let file = File::open(self.path(name))?;
        let mut h = FileHandle::new(file, WriteMode::Pwrite);
        if self.read_mode == ReadMode::Mmap && h.file.metadata()?.len() > 0 {
            // SAFETY: the file is a sealed segment: the queue that owns it
            // never writes or truncates it again while this handle exists
            // (truncation happens only at recovery, before any reader opens
            // it, and `empty`/`delete` drop reader handles first), and the
            // mapping covers exactly its current size, so no access falls
            // past end of file. Another process truncating the file would
            // break this, as with any mmap user; the data directory is ours.
            let map = unsafe { Mmap::map(&h.file)? };
            // Only a hint for readahead; failure changes nothing.
            let _ = map.advise(Advice::Sequential);
            h.rmap = Some(map);
        }
        Ok(h)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl FileHandle {
    fn new(file: File, mode: WriteMode) -> Self {
        Self {
            file,
            mode,
            wmap: None,
            rmap: None,
        }
    }
}

impl StorageFile for FileHandle {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        if let Some(map) = &self.rmap {
            let start = usize::try_from(off).unwrap_or(usize::MAX).min(map.len());
            let n = buf.len().min(map.len() - start);
            buf[..n].copy_from_slice(&map[start..start + n]);
            return Ok(n);
        }
        self.file.read_at(buf, off)
    }

    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<usize> {
        if let Some(map) = &mut self.wmap {
            if let Ok(start) = usize::try_from(off) {
                if start
                    .checked_add(buf.len())
                    .is_some_and(|end| end <= map.len())
                {
                    map[start..start + buf.len()].copy_from_slice(buf);
                    return Ok(buf.len());
                }
            }
        }
        self.file.write_at(buf, off)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let Ok(ilen) = libc::off_t::try_from(len) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        // posix_fallocate returns the error number instead of setting errno.
        // SAFETY: plain syscall on a descriptor this handle owns.
        let rc = unsafe { libc::posix_fallocate(self.file.as_raw_fd(), 0, ilen) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if self.mode == WriteMode::Mmap {
            self.wmap = None;
            let size = self.file.metadata()?.len();
            let map_len = usize::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
            // SAFETY: the blocks under [0, size) were just reserved by
            // posix_fallocate, so stores through the mapping cannot hit a
            // hole the disk cannot fill (on ext4/xfs; see WriteMode::Mmap).
            // The queue that owns this file is its only writer, writes only
            // through this handle, and drops the mapping before truncating
            // (see `truncate`), so no access falls past end of file.
            let map = unsafe { MmapOptions::new().len(map_len).map_mut(&self.file)? };
            self.wmap = Some(map);
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        // Unmap first: pages past the new end would SIGBUS on access.
        self.wmap = None;
        self.rmap = None;
        self.file.set_len(len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_handle(&self) -> Option<io::Result<File>> {
        Some(self.file.try_clone())
    }
}
