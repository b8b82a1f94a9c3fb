//! [`Faulty`]: a [`Storage`] wrapper that injects faults, so every error path
//! of the segment store can be driven from a test.
//!
//! Faults are armed one-shot: `arm(op, skip, fault)` fires on the `skip+1`-th
//! matching operation after arming, then disarms. The wrapper also counts
//! operations, so a test can aim at "the next fdatasync" or "the third write".

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::rc::Rc;

use super::storage::{Storage, StorageFile};

/// An operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// [`Storage::create`].
    Create,
    /// [`Storage::open`] and [`Storage::open_sealed`].
    Open,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`StorageFile::read_at`].
    Read,
    /// [`StorageFile::write_at`].
    Write,
    /// [`StorageFile::allocate`].
    Allocate,
    /// [`StorageFile::truncate`].
    Truncate,
    /// [`StorageFile::sync_data`].
    SyncData,
}

/// What happens when a fault fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail with `ENOSPC`, doing nothing.
    NoSpace,
    /// Fail with `EIO`, doing nothing (on `SyncData`: an fsync failure).
    Eio,
    /// `Write` only: write the first half of the buffer and report that.
    ShortWrite,
    /// `Write` only: write the buffer with the byte at `buf.len()/2` flipped,
    /// and report success (silent corruption).
    FlipByte,
    /// `Open` only: cut the file to half its size before handing it out
    /// (a truncated file).
    Truncate,
}

#[derive(Debug, Default)]
struct Plan {
    armed: VecDeque<(FaultOp, u64, Fault)>,
    fired: u64,
    counts: Vec<(FaultOp, u64)>,
}

impl Plan {
    /// Count `op`; return the fault to apply, if one is due.
    fn hit(&mut self, op: FaultOp) -> Option<Fault> {
        match self.counts.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((op, 1)),
        }
        let i = self.armed.iter().position(|(o, _, _)| *o == op)?;
        let (_, skip, fault) = &mut self.armed[i];
        if *skip > 0 {
            *skip -= 1;
            return None;
        }
        let fault = *fault;
        self.armed.remove(i);
        self.fired += 1;
        Some(fault)
    }
}

/// Fault-injecting wrapper around any [`Storage`]. Clones share the plan.
#[derive(Clone, Debug)]
pub struct Faulty<S> {
    inner: S,
    plan: Rc<RefCell<Plan>>,
}

/// An open file of [`Faulty`].
#[derive(Debug)]
pub struct FaultyFile<F> {
    inner: F,
    plan: Rc<RefCell<Plan>>,
}

fn os_err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn plain(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace => os_err(libc::ENOSPC),
        _ => os_err(libc::EIO),
    }
}

impl<S: Storage> Faulty<S> {
    /// Wrap `inner` with nothing armed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            plan: Rc::default(),
        }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Fire `fault` on the `skip+1`-th `op` from now (one-shot).
    pub fn arm(&self, op: FaultOp, skip: u64, fault: Fault) {
        self.plan.borrow_mut().armed.push_back((op, skip, fault));
    }

    /// Drop every armed fault.
    pub fn disarm(&self) {
        self.plan.borrow_mut().armed.clear();
    }

    /// How many faults have fired.
    pub fn fired(&self) -> u64 {
        self.plan.borrow().fired
    }

    /// How many faults are armed and not yet fired.
    pub fn pending(&self) -> usize {
        self.plan.borrow().armed.len()
    }

    /// How many times `op` ran (or was attempted) through this wrapper.
    pub fn count(&self, op: FaultOp) -> u64 {
        let plan = self.plan.borrow();
        plan.counts
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0, |(_, n)| *n)
    }

    fn check(&self, op: FaultOp) -> io::Result<()> {
        match self.plan.borrow_mut().hit(op) {
            Some(f) => Err(plain(f)),
            None => Ok(()),
        }
    }

    fn wrap(&self, inner: S::File) -> FaultyFile<S::File> {
        FaultyFile {
            inner,
            plan: self.plan.clone(),
        }
    }

    fn opened(&self, mut f: S::File) -> io::Result<FaultyFile<S::File>> {
        let fault = self.plan.borrow_mut().hit(FaultOp::Open);
        match fault {
            None => {}
            Some(Fault::Truncate) => {
                let size = f.size()?;
                f.truncate(size / 2)?;
                f.sync_data()?;
            }
            Some(other) => return Err(plain(other)),
        }
        Ok(self.wrap(f))
    }
}

impl<S: Storage> Storage for Faulty<S> {
    type File = FaultyFile<S::File>;

    fn create(&self, name: &str) -> io::Result<Self::File> {
        self.check(FaultOp::Create)?;
        Ok(self.wrap(self.inner.create(name)?))
    }

    fn open(&self, name: &str) -> io::Result<Self::File> {
        let f = self.inner.open(name)?;
        self.opened(f)
    }

    fn open_sealed(&self, name: &str) -> io::Result<Self::File> {
        let f = self.inner.open_sealed(name)?;
        self.opened(f)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.check(FaultOp::Rename)?;
        self.inner.rename(from, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.check(FaultOp::Remove)?;
        self.inner.remove(name)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.check(FaultOp::SyncDir)?;
        self.inner.sync_dir()
    }
}

impl<F: StorageFile> FaultyFile<F> {
    fn check(&self, op: FaultOp) -> io::Result<Option<Fault>> {
        match self.plan.borrow_mut().hit(op) {
            Some(f @ (Fault::ShortWrite | Fault::FlipByte)) if op == FaultOp::Write => Ok(Some(f)),
            Some(f) => Err(plain(f)),
            None => Ok(None),
        }
    }
}

impl<F: StorageFile> StorageFile for FaultyFile<F> {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.check(FaultOp::Read)?;
        self.inner.read_at(buf, off)
    }

    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<usize> {
        match self.check(FaultOp::Write)? {
            None => self.inner.write_at(buf, off),
            Some(Fault::ShortWrite) => {
                let half = buf.len() / 2;
                if half == 0 {
                    return self.inner.write_at(buf, off);
                }
                self.inner.write_at(&buf[..half], off)
            }
            Some(_) => {
                let mut copy = buf.to_vec();
                let mid = copy.len() / 2;
                if let Some(b) = copy.get_mut(mid) {
                    *b ^= 0x40;
                }
                self.inner.write_at(&copy, off)
            }
        }
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        self.check(FaultOp::Allocate)?;
        self.inner.allocate(len)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.check(FaultOp::Truncate)?;
        self.inner.truncate(len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.check(FaultOp::SyncData)?;
        self.inner.sync_data()
    }

    fn sync_handle(&self) -> Option<io::Result<File>> {
        // Force the inline path, so injected sync faults apply.
        None
    }
}
