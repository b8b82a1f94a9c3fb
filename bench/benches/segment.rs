//! The disk queue on the message path: append one message record (PUB spill
//! with --mem-queue-size=0), append an MPUB batch of 200 in one write, and
//! read records back. Real files in a temporary directory; the page cache is
//! warm, so these are CPU and syscall costs, not device latency (fsync costs
//! are in io/src/segment/FORMAT.md).

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsq_broker::backend::encode;
use nsq_broker::message::{IdGen, Message};
use nsq_io::segment::{DiskQueue, FileStorage, Options};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nsq-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn record(ids: &IdGen) -> Vec<u8> {
    let msg = Message::new(ids.next_id(), Bytes::from(vec![b'x'; 200]), None);
    let mut buf = BytesMut::new();
    encode(&msg, &mut buf);
    buf.to_vec()
}

fn open(dir: &PathBuf) -> Option<DiskQueue<FileStorage>> {
    let storage = FileStorage::new(dir).ok()?;
    let opts = Options {
        sync_every: 0,
        ..Options::default()
    };
    DiskQueue::open(storage, "bench", opts).ok()
}

fn segment_append(c: &mut Criterion) {
    let ids = IdGen::new(0, 3);
    let rec = record(&ids);
    let dir = temp_dir("append");
    let Some(mut q) = open(&dir) else { return };
    let mut group = c.benchmark_group("segment_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_200B", |b| {
        b.iter(|| q.append(&rec).is_ok());
    });
    let batch: Vec<Vec<u8>> = (0..200).map(|_| rec.clone()).collect();
    group.throughput(Throughput::Elements(200));
    group.bench_function("mpub_batch_200x200B", |b| {
        b.iter(|| q.append_batch(&batch).is_ok());
    });
    group.finish();
    drop(q);
    let _ = std::fs::remove_dir_all(&dir);
}

fn segment_read(c: &mut Criterion) {
    let ids = IdGen::new(0, 4);
    let rec = record(&ids);
    let dir = temp_dir("read");
    let Some(mut q) = open(&dir) else { return };
    let mut group = c.benchmark_group("segment_read");
    group.throughput(Throughput::Elements(1));
    group.bench_function("read_commit_200B", |b| {
        b.iter_custom(|iters| {
            for _ in 0..iters {
                let _ = q.append(&rec);
            }
            let start = std::time::Instant::now();
            for _ in 0..iters {
                if let Ok(Some(r)) = q.read_next() {
                    let _ = q.commit(r.next);
                }
            }
            start.elapsed()
        });
    });
    group.finish();
    drop(q);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, segment_append, segment_read);
criterion_main!(benches);
