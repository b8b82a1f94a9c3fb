//! Helpers shared by the segment tests: a seeded PRNG, self-checking
//! payloads, temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// xorshift64*: deterministic, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// A payload that names its sequence number and checks its own body:
/// 8 bytes of `seq`, then `len` bytes derived from `seq`.
pub(crate) fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = seq.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    p
}

/// The sequence number of a payload made by [`payload`], or `None` if the
/// body does not match it.
pub(crate) fn seq_of(p: &[u8]) -> Option<u64> {
    let head: [u8; 8] = p.get(..8)?.try_into().ok()?;
    let seq = u64::from_le_bytes(head);
    let ok = p[8..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
    ok.then_some(seq)
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("nsq-io-segment-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

use super::{DiskQueue, Options, Storage};

/// Small segments so a few records roll.
pub(crate) fn small() -> Options {
    Options {
        max_bytes_per_file: 1024,
        read_buffer: 256,
        sync_every: 0,
        ..Options::default()
    }
}

pub(crate) fn open<S: Storage + Clone>(s: &S) -> DiskQueue<S> {
    DiskQueue::open(s.clone(), "q", small()).expect("open")
}

/// Append payloads `from..from+n`, each with a `len`-byte body.
pub(crate) fn fill<S: Storage>(q: &mut DiskQueue<S>, from: u64, n: u64, len: usize) {
    for seq in from..from + n {
        q.append(&payload(seq, len)).expect("append");
    }
}

/// Read to the end; the sequence numbers, in order.
pub(crate) fn drain<S: Storage>(q: &mut DiskQueue<S>) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(r) = q.read_next().expect("read") {
        out.push(seq_of(&r.data).expect("intact body"));
        assert!(out.len() < 1_000_000, "reader does not end");
    }
    out
}

/// On-disk size of a [`payload`] record with a `len`-byte body.
pub(crate) fn rec_size(len: usize) -> usize {
    8 + 8 + len
}

pub(crate) fn seg(index: u64) -> String {
    super::format::seg_name("q", index)
}
