//! The storage seam: every byte the segment store reads or writes goes
//! through these two traits, so tests can run against memory ([`MemStorage`])
//! and inject faults ([`Faulty`]) without a real disk.
//!
//! A `Storage` is one flat directory; names are plain file names inside it.
//! Implementations need not be thread-safe: one queue lives on one core.
//!
//! [`MemStorage`]: super::MemStorage
//! [`Faulty`]: super::Faulty

use std::fs::File;
use std::io;

/// A directory of files.
pub trait Storage {
    /// Handle to an open file.
    type File: StorageFile;

    /// Create `name` empty (truncating an existing file), open read-write.
    fn create(&self, name: &str) -> io::Result<Self::File>;
    /// Open the existing file `name` read-write.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Open `name` for reading only; it will not change while open. An
    /// implementation may map it into memory.
    fn open_sealed(&self, name: &str) -> io::Result<Self::File> {
        self.open(name)
    }
    /// Names of all files in the directory (any order).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Atomically rename `from` to `to`, replacing `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Remove `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Make creations, renames and removals so far durable (fsync the dir).
    fn sync_dir(&self) -> io::Result<()>;
}

/// An open file. Offsets are absolute; there is no cursor.
pub trait StorageFile {
    /// Current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Read up to `buf.len()` bytes at `off`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// Write some prefix of `buf` at `off`, returning how much (may be short).
    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<usize>;
    /// Reserve blocks so the file is at least `len` bytes and writes below
    /// `len` cannot fail for lack of space (`posix_fallocate`).
    fn allocate(&mut self, len: u64) -> io::Result<()>;
    /// Set the size to `len`, dropping or zero-filling.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Make written data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// A duplicate descriptor on which `fdatasync` can run on another thread
    /// (glommio `spawn_blocking`), if this storage has real descriptors.
    /// `None` means: sync inline with [`StorageFile::sync_data`].
    fn sync_handle(&self) -> Option<io::Result<File>> {
        None
    }
}

/// Write all of `buf` at `off`, looping over short writes.
pub(crate) fn write_all_at<F: StorageFile>(
    f: &mut F,
    mut buf: &[u8],
    mut off: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match f.write_at(buf, off) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fill as much of `buf` as the file has at `off`; returns the count (short
/// only at end of file).
pub(crate) fn read_full_at<F: StorageFile>(f: &F, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done = (done + n).min(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
