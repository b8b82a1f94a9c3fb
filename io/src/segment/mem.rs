//! [`MemStorage`]: an in-memory directory that remembers what was made
//! durable, so tests can "reboot" and see only that.
//!
//! The crash model is deliberately pessimistic (POSIX, not ext4):
//! - file contents survive only up to the last `sync_data` of that file
//!   (size included: an unsynced `allocate` or `truncate` is undone);
//! - names (create, rename, remove) survive only up to the last `sync_dir`:
//!   a file created and synced but whose directory was never synced is gone,
//!   and a removed file whose removal was never synced comes back;
//! - [`MemStorage::reboot_torn`] additionally keeps a random subset of the
//!   unsynced 512-byte sectors, as a power cut in mid-writeback would.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use super::storage::{Storage, StorageFile};

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    synced: Vec<u8>,
}

type FileRef = Rc<RefCell<MemFile>>;

#[derive(Debug, Default)]
struct Fs {
    live: BTreeMap<String, FileRef>,
    durable: BTreeMap<String, FileRef>,
}

/// In-memory [`Storage`]. Clones share the same directory.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    fs: Rc<RefCell<Fs>>,
}

/// An open file of [`MemStorage`].
#[derive(Debug)]
pub struct MemHandle {
    file: FileRef,
}

const SECTOR: usize = 512;

impl MemStorage {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulate a crash and restart: every file reverts to its synced
    /// contents, the directory to its synced names. Handles opened before
    /// stay valid but no longer see this directory.
    pub fn reboot(&self) {
        self.reboot_with(|_| false);
    }

    /// Like [`reboot`](Self::reboot), but each unsynced 512-byte sector
    /// survives with probability 1/2 (decided by `seed`), within the synced
    /// size: torn writes and holes.
    pub fn reboot_torn(&self, seed: u64) {
        let mut x = seed | 1;
        self.reboot_with(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x & 1 == 1
        });
    }

    fn reboot_with(&self, mut keep_sector: impl FnMut(usize) -> bool) {
        let mut fs = self.fs.borrow_mut();
        let mut fresh = BTreeMap::new();
        for (name, f) in &fs.durable {
            let f = f.borrow();
            let mut data = f.synced.clone();
            for (i, chunk) in data.chunks_mut(SECTOR).enumerate() {
                let start = i * SECTOR;
                let end = (start + chunk.len()).min(f.data.len());
                if start < end && f.data[start..end] != chunk[..end - start] && keep_sector(i) {
                    chunk[..end - start].copy_from_slice(&f.data[start..end]);
                }
            }
            let file = MemFile {
                synced: data.clone(),
                data,
            };
            fresh.insert(name.clone(), Rc::new(RefCell::new(file)));
        }
        fs.live = fresh.clone();
        fs.durable = fresh;
    }

    /// Names currently in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        self.fs.borrow().live.keys().cloned().collect()
    }

    /// Current contents of `name`.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.fs
            .borrow()
            .live
            .get(name)
            .map(|f| f.borrow().data.clone())
    }

    /// Replace `name` with `bytes`, durably (name and contents), as if the
    /// disk had always held them. For planting damage in tests.
    pub fn put_durable(&self, name: &str, bytes: &[u8]) {
        let file = Rc::new(RefCell::new(MemFile {
            data: bytes.to_vec(),
            synced: bytes.to_vec(),
        }));
        let mut fs = self.fs.borrow_mut();
        fs.live.insert(name.to_string(), file.clone());
        fs.durable.insert(name.to_string(), file);
    }

    /// Flip the bits of `mask` in the byte at `off` of `name`, synced and
    /// unsynced (damage at rest). Returns false if there is no such byte.
    pub fn flip_byte(&self, name: &str, off: usize, mask: u8) -> bool {
        let fs = self.fs.borrow();
        let Some(f) = fs.live.get(name) else {
            return false;
        };
        let mut f = f.borrow_mut();
        let mut hit = false;
        if let Some(b) = f.data.get_mut(off) {
            *b ^= mask;
            hit = true;
        }
        if let Some(b) = f.synced.get_mut(off) {
            *b ^= mask;
            hit = true;
        }
        hit
    }

    /// Cut `name` to `len` bytes, durably (a truncated file at rest).
    pub fn truncate_durable(&self, name: &str, len: usize) -> bool {
        let fs = self.fs.borrow();
        let Some(f) = fs.live.get(name) else {
            return false;
        };
        let mut f = f.borrow_mut();
        f.data.truncate(len);
        f.synced.truncate(len);
        true
    }

    fn not_found(name: &str) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
    }
}

impl Storage for MemStorage {
    type File = MemHandle;

    fn create(&self, name: &str) -> io::Result<MemHandle> {
        let file = Rc::new(RefCell::new(MemFile::default()));
        let mut fs = self.fs.borrow_mut();
        if let Some(old) = fs.live.get(name) {
            // O_TRUNC on an existing inode: same file, emptied (unsynced).
            old.borrow_mut().data.clear();
            return Ok(MemHandle { file: old.clone() });
        }
        fs.live.insert(name.to_string(), file.clone());
        Ok(MemHandle { file })
    }

    fn open(&self, name: &str) -> io::Result<MemHandle> {
        let fs = self.fs.borrow();
        let file = fs.live.get(name).ok_or_else(|| Self::not_found(name))?;
        Ok(MemHandle { file: file.clone() })
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut fs = self.fs.borrow_mut();
        let file = fs.live.remove(from).ok_or_else(|| Self::not_found(from))?;
        fs.live.insert(to.to_string(), file);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut fs = self.fs.borrow_mut();
        fs.live.remove(name).ok_or_else(|| Self::not_found(name))?;
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut fs = self.fs.borrow_mut();
        fs.durable = fs.live.clone();
        Ok(())
    }
}

impl StorageFile for MemHandle {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.borrow().data.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let f = self.file.borrow();
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(f.data.len());
        let n = buf.len().min(f.data.len() - start);
        buf[..n].copy_from_slice(&f.data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<usize> {
        let mut f = self.file.borrow_mut();
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + buf.len();
        if f.data.len() < end {
            f.data.resize(end, 0);
        }
        f.data[start..end].copy_from_slice(buf);
        Ok(buf.len())
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut f = self.file.borrow_mut();
        if f.data.len() < len {
            f.data.resize(len, 0);
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.file.borrow_mut().data.resize(len, 0);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut f = self.file.borrow_mut();
        f.synced = f.data.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_keeps_only_synced_data_and_names() {
        let s = MemStorage::new();
        let mut a = s.create("a").unwrap();
        a.write_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        s.sync_dir().unwrap();
        a.write_at(b" world", 5).unwrap();
        let mut b = s.create("b").unwrap();
        b.write_at(b"x", 0).unwrap();
        b.sync_data().unwrap(); // data synced, name not
        s.remove("a").unwrap(); // removal not synced
        s.reboot();
        assert_eq!(s.names(), vec!["a".to_string()]);
        assert_eq!(s.contents("a").unwrap(), b"hello");
    }

    #[test]
    fn torn_reboot_mixes_sectors_within_synced_size() {
        let s = MemStorage::new();
        let mut a = s.create("a").unwrap();
        a.allocate(4096).unwrap();
        a.sync_data().unwrap();
        s.sync_dir().unwrap();
        a.write_at(&[7u8; 4096], 0).unwrap();
        s.reboot_torn(12345);
        let c = s.contents("a").unwrap();
        assert_eq!(c.len(), 4096);
        let kept = c.chunks(SECTOR).filter(|s| s[0] == 7).count();
        assert!(kept > 0 && kept < 8, "kept {kept} of 8 sectors");
    }
}
