//! Cross-core hand-off through `nsq_io::mesh`: shard 0 sends, shard 1
//! receives, each on its own glommio executor and OS thread.
//!
//! criterion's closures are synchronous, so the sending side never awaits:
//! it runs criterion inside its executor and uses `try_send`, spinning while
//! the bounded queue is full (that is the back-pressure a real sender would
//! await on). The receiver counts what arrived in an atomic; a sample ends
//! when the receiver has seen everything sent. Two cases: one message per
//! item (the per-message cost of a hop) and a 256-message `Vec` per item
//! (how topic parts batch `ShardMsg::Deliver`), both per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use nsq_bench::messages;
use nsq_broker::message::Message;
use nsq_io::mesh;

/// Messages per item in the batched case.
const BATCH: usize = 256;
/// Mesh queue capacity (items).
const CAPACITY: usize = 1024;

/// What crosses the mesh.
enum Item {
    One(Message),
    Many(Vec<Message>),
}

fn executor(name: &str) -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(nsq_io::runtime::IO_MEMORY)
        .name(name)
}

/// Sends until `received` reaches `target`, spinning on a full queue.
fn send_all(
    tx: &mesh::Mesh<Item>,
    received: &AtomicU64,
    target: u64,
    mut next: impl FnMut() -> Item,
) -> Duration {
    let start = Instant::now();
    let mut pending = None;
    let mut sent = received.load(Ordering::Acquire);
    loop {
        if sent < target || pending.is_some() {
            let item = pending.take().unwrap_or_else(&mut next);
            let n = match &item {
                Item::One(_) => 1,
                Item::Many(v) => v.len() as u64,
            };
            match tx.try_send(1, item) {
                Ok(()) => sent += n,
                Err(Some(item)) => {
                    pending = Some(item);
                    std::hint::spin_loop();
                }
                Err(None) => panic!("mesh receiver is gone"),
            }
        } else if received.load(Ordering::Acquire) >= target {
            return start.elapsed();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn main() {
    let parts = mesh::build::<Item>(2, CAPACITY);
    let mut parts = parts.into_iter();
    let (Some(part0), Some(part1)) = (parts.next(), parts.next()) else {
        unreachable!("build(2) returns two parts");
    };
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = executor("mesh-rx").spawn(move || async move {
        let (_mesh, receivers) = part1.connect().await;
        for (_, rx) in receivers {
            while let Some(item) = rx.recv().await {
                // Dropping the message here is part of the hop: its body's
                // reference count is released on the receiving core.
                let n = match item {
                    Item::One(msg) => {
                        drop(msg);
                        1
                    }
                    Item::Many(v) => v.len() as u64,
                };
                counter.fetch_add(n, Ordering::Release);
            }
        }
    });
    let receiver = match receiver {
        Ok(handle) => handle,
        Err(err) => {
            eprintln!("mesh_hop: cannot start the receiving executor: {err}");
            std::process::exit(1);
        }
    };
    let sender = executor("mesh-tx").make();
    let sender = match sender {
        Ok(executor) => executor,
        Err(err) => {
            eprintln!("mesh_hop: cannot start the sending executor: {err}");
            std::process::exit(1);
        }
    };
    sender.run(async move {
        let (tx, _receivers) = part0.connect().await;
        let template = messages(BATCH, 200);
        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("mesh_hop");
        group.throughput(Throughput::Elements(1));
        group.bench_function("one_message", |b| {
            b.iter_custom(|iters| {
                let target = received.load(Ordering::Acquire) + iters;
                send_all(&tx, &received, target, || Item::One(template[0].clone()))
            })
        });
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function("batch_256", |b| {
            b.iter_custom(|iters| {
                let target = received.load(Ordering::Acquire) + iters * BATCH as u64;
                send_all(&tx, &received, target, || Item::Many(template.clone()))
            })
        });
        group.finish();
        criterion.final_summary();
        // Dropping the sender closes the queue and lets the receiver return.
        drop(tx);
    });
    let _ = receiver.join();
}
