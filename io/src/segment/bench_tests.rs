//! Rough figures for `FORMAT.md`, not assertions. Run with:
//! `cargo test -p nsq-io --release segment_bench -- --ignored --nocapture --test-threads 1`
//!
//! Prints, per write mode: time to append 1M records of 200 bytes (and the
//! per-append latency percentiles, roll included), the read-back rate per
//! read mode, and the cost of `sync_data` / `sync` after a batch.

use std::time::{Duration, Instant};

use super::test_util::TempDir;
use super::{DiskQueue, FileStorage, Options, ReadMode, WriteMode};

const N: usize = 1_000_000;
const BODY: usize = 200;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(label: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    println!(
        "{label}: n={} p50={:?} p99={:?} p99.9={:?} max={:?}",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        pct(&v, 0.999),
        v[v.len() - 1]
    );
}

fn opts() -> Options {
    Options {
        sync_every: 0,
        ..Options::default()
    }
}

#[test]
#[ignore = "benchmark; run by hand in release mode"]
fn segment_bench_append_read_sync() {
    let dir = TempDir::new("bench");
    let rec = vec![0xAB_u8; BODY];
    for (i, mode) in [WriteMode::Pwrite, WriteMode::Mmap].into_iter().enumerate() {
        let path = dir.path().join(format!("w{i}"));
        let s = FileStorage::new(&path).unwrap().with_write_mode(mode);
        let mut q = DiskQueue::open(s, "bench", opts()).unwrap();
        let mut lat = Vec::with_capacity(N);
        let mut rolls = Vec::new();
        let start = Instant::now();
        for _ in 0..N {
            let seg = q.write_pos().segment;
            let t = Instant::now();
            let end = q.append(&rec).unwrap();
            let d = t.elapsed();
            if end.segment != seg {
                rolls.push(d);
            }
            lat.push(d);
        }
        let total = start.elapsed();
        let t = Instant::now();
        q.sync().unwrap();
        let final_sync = t.elapsed();
        println!(
            "append {mode:?}: {N} x {BODY} B in {total:?} = {:.0} rec/s, {:.0} MB/s; final sync of ~216 MB {final_sync:?}; rolls {rolls:?}",
            N as f64 / total.as_secs_f64(),
            (N * (BODY + 8)) as f64 / total.as_secs_f64() / 1e6
        );
        summary(&format!("append {mode:?} latency"), lat);
        drop(q);

        for rmode in [ReadMode::Pread, ReadMode::Mmap] {
            let s = FileStorage::new(&path).unwrap().with_read_mode(rmode);
            let mut q = DiskQueue::open(s, "bench", opts()).unwrap();
            let t = Instant::now();
            let mut n = 0;
            while let Some(r) = q.read_next().unwrap() {
                assert_eq!(r.data.len(), BODY);
                n += 1;
            }
            let d = t.elapsed();
            assert_eq!(n, N);
            println!(
                "read {rmode:?} (written {mode:?}, page cache warm): {N} in {d:?} = {:.0} rec/s",
                N as f64 / d.as_secs_f64()
            );
        }
    }

    // MPUB-style batches: one pwrite per 100 records.
    for mode in [WriteMode::Pwrite, WriteMode::Mmap] {
        let s = FileStorage::new(dir.path().join(format!("b{mode:?}")))
            .unwrap()
            .with_write_mode(mode);
        let mut q = DiskQueue::open(s, "bench", opts()).unwrap();
        let batch: Vec<&[u8]> = vec![&rec[..]; 100];
        let t = Instant::now();
        for _ in 0..N / 100 {
            q.append_batch(&batch).unwrap();
        }
        let d = t.elapsed();
        println!(
            "append_batch {mode:?} (100 per call): {N} in {d:?} = {:.0} rec/s",
            N as f64 / d.as_secs_f64()
        );
    }

    // What a roll costs when the old segment was already synced: create +
    // posix_fallocate of a 100 MiB segment + header.
    {
        let s = FileStorage::new(dir.path().join("roll")).unwrap();
        let mut q = DiskQueue::open(s, "bench", opts()).unwrap();
        let mut rolls = Vec::new();
        for _ in 0..5 {
            while q.write_pos().offset + 300 < q.options().max_bytes_per_file {
                q.append(&rec).unwrap();
            }
            q.sync().unwrap();
            let t = Instant::now();
            q.append(&rec).unwrap();
            q.append(&rec).unwrap();
            rolls.push(t.elapsed());
            let mut last = None;
            while let Some(r) = q.read_next().unwrap() {
                last = Some(r.next);
            }
            if let Some(p) = last {
                q.commit(p).unwrap();
            }
            q.sync().unwrap();
        }
        summary(
            "roll after sync (create + fallocate 100 MiB + header)",
            rolls,
        );
    }

    // Sync cost after a batch of appends, as the fsync-before-ack group
    // commit would see it.
    for batch in [1usize, 100, 1000] {
        let s = FileStorage::new(dir.path().join(format!("s{batch}"))).unwrap();
        let mut q = DiskQueue::open(s, "bench", opts()).unwrap();
        let mut data = Vec::new();
        let mut full = Vec::new();
        for round in 0..200 {
            for _ in 0..batch {
                q.append(&rec).unwrap();
            }
            let t = Instant::now();
            if round % 2 == 0 {
                q.sync_data().unwrap();
                data.push(t.elapsed());
            } else {
                q.sync().unwrap();
                full.push(t.elapsed());
            }
        }
        summary(&format!("sync_data after {batch} appends"), data);
        summary(&format!("sync (data+meta+dir) after {batch} appends"), full);
    }
}
