//! The queue against a simple model (a `VecDeque` of sequence numbers), under
//! random operations including crashes ("reboot": unsynced data dropped or
//! torn) and injected faults.
//!
//! What must hold, checked on every read:
//! - records come back in append order, bodies intact, never one that was
//!   not appended or whose append failed;
//! - a record is skipped only if a crash was allowed to lose it: appended
//!   but not synced before the crash, or read and committed before it (the
//!   committed cursor on disk may be anywhere between the last successful
//!   meta write and the newest attempted one);
//! - nothing committed by a successful `sync` is delivered again.

use std::collections::VecDeque;

use super::test_util::{payload, seq_of, Rng, TempDir};
use super::{
    DiskQueue, Fault, FaultOp, Faulty, FileStorage, MemStorage, Options, Pos, Storage, WriteMode,
};

#[derive(Debug)]
struct Entry {
    seq: u64,
    synced: bool,
    optional: bool,
}

/// The model. Sequence numbers are payload numbers, not the queue's.
#[derive(Debug, Default)]
struct Model {
    /// Appended records that may still be delivered, in order.
    log: VecDeque<Entry>,
    /// Records below this were read (or legitimately skipped) in this life.
    next_read: u64,
    /// The in-memory committed cursor lies in `[clo, chi]` (payload seqs).
    clo: u64,
    chi: u64,
    /// The durable committed cursor lies in `[dlo, dhi]`.
    dlo: u64,
    dhi: u64,
    next_seq: u64,
    /// Records read and not yet committed past: (seq, position after it).
    reads: Vec<(u64, Pos)>,
}

impl Model {
    /// Index of the first entry not yet read in this life.
    fn unread(&self) -> usize {
        self.log.partition_point(|e| e.seq < self.next_read)
    }

    fn on_read(&mut self, seq: u64, next: Pos, ctx: &str) {
        assert!(
            seq >= self.next_read,
            "{ctx}: record {seq} delivered again (next_read {})",
            self.next_read
        );
        let from = self.unread();
        let to = self.log.partition_point(|e| e.seq < seq);
        for e in self.log.range(from..to) {
            assert!(
                e.optional,
                "{ctx}: record {} lost (next read was {seq})",
                e.seq
            );
        }
        // Skipped optional records are gone for good.
        self.log.drain(from..to);
        let found = self.log.get(from).is_some_and(|e| e.seq == seq);
        assert!(
            found,
            "{ctx}: record {seq} was never appended (or was committed)"
        );
        self.next_read = seq + 1;
        self.reads.push((seq, next));
    }

    fn on_end(&mut self, ctx: &str) {
        let from = self.unread();
        for e in self.log.range(from..) {
            assert!(
                e.optional,
                "{ctx}: queue ended but record {} is missing",
                e.seq
            );
        }
        self.log.truncate(from);
        self.next_read = self.next_seq;
    }

    /// Depth is exact when nothing ahead of the reader is in doubt.
    fn depth(&self) -> Option<u64> {
        let ahead = self.log.iter().filter(|e| e.seq >= self.next_read);
        let mut n = 0;
        for e in ahead {
            if e.optional {
                return None;
            }
            n += 1;
        }
        Some(n)
    }

    fn mark_synced(&mut self) {
        for e in self.log.iter_mut() {
            e.synced = true;
        }
    }

    /// A crash (or a clean reopen if `lost_unsynced` is false).
    fn restart(&mut self, lost_unsynced: bool) {
        let (dlo, dhi) = (self.dlo, self.dhi);
        self.log.retain(|e| e.seq >= dlo);
        for e in self.log.iter_mut() {
            if (lost_unsynced && !e.synced) || e.seq < dhi {
                e.optional = true;
            }
        }
        self.next_read = dlo;
        self.clo = dlo;
        self.chi = dhi;
        self.reads.clear();
    }
}

type Crash<S> = fn(&S, u64);
type Arm<S> = fn(&S, &mut Rng);

struct Cfg<S> {
    opts: Options,
    /// Simulate a crash; `None`: only clean reopens.
    crash: Option<Crash<S>>,
    /// Arm a random fault.
    arm: Option<Arm<S>>,
    disarm: fn(&S),
    allow_empty: bool,
    /// Share (per mille) of sync / sync_data steps actually taken: low
    /// values leave long unsynced tails for crashes to tear.
    sync_per_mille: u64,
}

fn small_opts() -> Options {
    Options {
        max_bytes_per_file: 1024,
        sync_every: 50,
        read_buffer: 256,
        ..Options::default()
    }
}

fn open_retry<S: Storage + Clone>(s: &S, cfg: &Cfg<S>, ctx: &str) -> DiskQueue<S> {
    for attempt in 0..30 {
        match DiskQueue::open(s.clone(), "q", cfg.opts.clone()) {
            Ok(q) => return q,
            Err(e) => {
                assert!(cfg.arm.is_some(), "{ctx}: open failed without faults: {e}");
                if attempt == 10 {
                    (cfg.disarm)(s);
                }
            }
        }
    }
    panic!("{ctx}: open keeps failing");
}

fn run<S: Storage + Clone>(seed: u64, steps: usize, storage: S, cfg: &Cfg<S>) -> u64 {
    let mut rng = Rng::new(seed);
    let mut m = Model::default();
    let mut q = open_retry(&storage, cfg, &format!("seed {seed} initial open"));
    let faults = cfg.arm.is_some();
    let mut restarts = 0;
    let mut total = super::Stats::default();
    for step in 0..steps {
        let roll = rng.below(1000);
        let ctx = format!("seed {seed} step {step}");
        match roll {
            0..=449 => {
                let len = match rng.below(100) {
                    0..=89 => rng.below(120),
                    90..=98 => rng.below(700),
                    _ => 1000 + rng.below(1500),
                } as usize;
                let k = if rng.below(5) == 0 {
                    1 + rng.below(6)
                } else {
                    1
                };
                let first = m.next_seq;
                m.next_seq += k;
                let recs: Vec<Vec<u8>> = (first..first + k).map(|seq| payload(seq, len)).collect();
                let before = q.write_pos().seq;
                let res = if k == 1 {
                    q.append(&recs[0])
                } else {
                    q.append_batch(&recs)
                };
                if let Err(e) = &res {
                    assert!(faults, "{ctx}: append failed without faults: {e}");
                }
                let appended = q.write_pos().seq - before;
                assert!(res.is_err() || appended == k, "{ctx}: batch count");
                for seq in first..first + appended {
                    m.log.push_back(Entry {
                        seq,
                        synced: false,
                        optional: false,
                    });
                }
            }
            450..=749 => match q.read_next() {
                Ok(Some(r)) => {
                    let seq = seq_of(&r.data).unwrap_or_else(|| panic!("{ctx}: damaged body"));
                    m.on_read(seq, r.next, &ctx);
                }
                Ok(None) => {
                    m.on_end(&ctx);
                    assert_eq!(q.depth(), 0, "{ctx}: depth at end");
                }
                Err(e) => assert!(faults, "{ctx}: read failed without faults: {e}"),
            },
            750..=849 => {
                if !m.reads.is_empty() {
                    let k = rng.below(m.reads.len() as u64) as usize;
                    let (seq, pos) = m.reads[k];
                    q.commit(pos)
                        .unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
                    m.clo = m.clo.max(seq + 1);
                    m.chi = m.chi.max(seq + 1);
                    m.reads.drain(..=k);
                }
            }
            850..=939 if !rng.chance(cfg.sync_per_mille) => {}
            850..=899 => match q.sync() {
                Ok(()) => {
                    m.mark_synced();
                    m.dlo = m.clo;
                    m.dhi = m.dhi.max(m.chi);
                }
                Err(e) => {
                    assert!(faults, "{ctx}: sync failed without faults: {e}");
                    m.dhi = m.dhi.max(m.chi);
                }
            },
            900..=939 => match q.sync_data() {
                Ok(()) => m.mark_synced(),
                Err(e) => assert!(faults, "{ctx}: sync_data failed without faults: {e}"),
            },
            940..=959 => {
                if let Some(arm) = cfg.arm {
                    arm(&storage, &mut rng);
                }
            }
            960..=979 => {
                // Crash (or clean stop) and restart.
                add_stats(&mut total, q.stats());
                drop(q);
                restarts += 1;
                let lost = match cfg.crash {
                    Some(crash) => {
                        crash(&storage, rng.next());
                        true
                    }
                    None => false,
                };
                m.restart(lost);
                q = open_retry(&storage, cfg, &ctx);
            }
            980..=984 if cfg.allow_empty => {
                q.empty().unwrap_or_else(|e| panic!("{ctx}: empty: {e}"));
                m.log.clear();
                m.next_read = m.next_seq;
                m.reads.clear();
                (m.clo, m.chi, m.dlo, m.dhi) = (m.next_seq, m.next_seq, m.next_seq, m.next_seq);
                m.mark_synced();
            }
            _ => {
                if let Some(want) = m.depth() {
                    if !faults {
                        assert_eq!(q.depth(), want, "{ctx}: depth");
                    }
                }
            }
        }
    }
    // Final drain with faults off: everything still owed must come back.
    (cfg.disarm)(&storage);
    let ctx = format!("seed {seed} final drain");
    loop {
        match q.read_next() {
            Ok(Some(r)) => {
                let seq = seq_of(&r.data).unwrap_or_else(|| panic!("{ctx}: damaged body"));
                m.on_read(seq, r.next, &ctx);
            }
            Ok(None) => {
                m.on_end(&ctx);
                break;
            }
            Err(e) => panic!("{ctx}: {e}"),
        }
    }
    assert_eq!(q.depth(), 0);
    if std::env::var("SEG_DEBUG").is_ok() {
        add_stats(&mut total, q.stats());
        eprintln!(
            "seed {seed}: appended {} restarts {restarts} stats {total:?} segs {}",
            m.next_seq,
            q.segment_count()
        );
    }
    restarts
}

fn add_stats(t: &mut super::Stats, s: &super::Stats) {
    t.corrupt_records += s.corrupt_records;
    t.torn_tails += s.torn_tails;
    t.bad_segments += s.bad_segments;
    t.meta_invalid += s.meta_invalid;
    t.stray_segments += s.stray_segments;
    t.depth_resyncs += s.depth_resyncs;
    t.sync_failures += s.sync_failures;
}

fn mem_crash(s: &MemStorage, seed: u64) {
    if seed & 1 == 0 {
        s.reboot();
    } else {
        s.reboot_torn(seed);
    }
}

fn faulty_mem_crash(s: &Faulty<MemStorage>, seed: u64) {
    mem_crash(s.inner(), seed);
}

fn arm_random<S: Storage>(s: &Faulty<S>, rng: &mut Rng) {
    let (op, fault) = match rng.below(11) {
        0 => (FaultOp::Write, Fault::ShortWrite),
        1 => (FaultOp::Write, Fault::NoSpace),
        2 => (FaultOp::Write, Fault::Eio),
        3 => (FaultOp::Allocate, Fault::NoSpace),
        4 => (FaultOp::Create, Fault::NoSpace),
        5 => (FaultOp::SyncData, Fault::Eio),
        6 => (FaultOp::SyncDir, Fault::Eio),
        7 => (FaultOp::Rename, Fault::Eio),
        8 => (FaultOp::Remove, Fault::Eio),
        9 => (FaultOp::Read, Fault::Eio),
        _ => (FaultOp::Truncate, Fault::Eio),
    };
    s.arm(op, rng.below(4), fault);
}

#[test]
fn model_mem_with_reboots() {
    let cfg = Cfg {
        opts: small_opts(),
        crash: Some(mem_crash as Crash<MemStorage>),
        arm: None,
        disarm: |_| {},
        allow_empty: true,
        sync_per_mille: 1000,
    };
    let mut restarts = 0;
    for seed in 0..150 {
        restarts += run(seed, 1500, MemStorage::new(), &cfg);
    }
    // Rare syncs and large segments: long unsynced tails in one segment,
    // for torn reboots to cut.
    let rare = Cfg {
        sync_per_mille: 100,
        opts: Options {
            max_bytes_per_file: 16 * 1024,
            ..small_opts()
        },
        ..cfg
    };
    for seed in 500..650 {
        restarts += run(seed, 1500, MemStorage::new(), &rare);
    }
    assert!(restarts > 2000, "only {restarts} reboots exercised");
}

#[test]
fn model_mem_with_reboots_and_faults() {
    let cfg = Cfg {
        opts: small_opts(),
        crash: Some(faulty_mem_crash as Crash<Faulty<MemStorage>>),
        arm: Some(arm_random::<MemStorage> as Arm<Faulty<MemStorage>>),
        disarm: |s| s.disarm(),
        allow_empty: false,
        sync_per_mille: 500,
    };
    let mut fired = 0;
    for seed in 1000..1150 {
        let s = Faulty::new(MemStorage::new());
        run(seed, 1500, s.clone(), &cfg);
        fired += s.fired();
    }
    assert!(fired > 1000, "only {fired} faults fired");
}

#[test]
fn model_files_pwrite_with_restarts() {
    let dir = TempDir::new("model-pwrite");
    for seed in 0..4 {
        let s = FileStorage::new(dir.path().join(seed.to_string())).unwrap();
        let cfg = Cfg {
            opts: small_opts(),
            crash: None,
            arm: None,
            disarm: |_| {},
            allow_empty: true,
            sync_per_mille: 1000,
        };
        run(2000 + seed, 1500, s, &cfg);
    }
}

#[test]
fn model_files_mmap_with_restarts_and_faults() {
    let dir = TempDir::new("model-mmap");
    for seed in 0..4 {
        let s = FileStorage::new(dir.path().join(seed.to_string()))
            .unwrap()
            .with_write_mode(WriteMode::Mmap)
            .with_read_mode(super::ReadMode::Mmap);
        let cfg = Cfg {
            opts: small_opts(),
            crash: None,
            arm: Some(arm_random::<FileStorage> as Arm<Faulty<FileStorage>>),
            disarm: |s| s.disarm(),
            allow_empty: false,
            sync_per_mille: 1000,
        };
        run(3000 + seed, 1500, Faulty::new(s), &cfg);
    }
}
