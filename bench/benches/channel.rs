//! A channel's bookkeeping: the in-flight table on the deliver/FIN path and
//! on timeouts, and the deferred heap (DPUB, REQ with a delay).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nsq_bench::messages;
use nsq_broker::channel::deferred::DeferredQueue;
use nsq_broker::channel::inflight::{InFlight, InFlightTable};
use nsq_broker::message::IdGen;

/// Deliver one message and FIN the oldest, with `depth` in flight: the
/// steady state of a consumer at RDY `depth`.
fn inflight_push_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflight_push_pop");
    group.throughput(Throughput::Elements(1));
    for depth in [1usize, 200, 2500] {
        group.bench_function(format!("rdy{depth}"), |b| {
            let template = messages(1, 200).remove(0);
            let ids = IdGen::new(0, 2);
            let now = Instant::now();
            let timeout = Duration::from_secs(60);
            let mut table = InFlightTable::default();
            let mut order = VecDeque::new();
            let deliver = |table: &mut InFlightTable, order: &mut VecDeque<_>| {
                let mut msg = template.clone();
                msg.id = ids.next_id();
                order.push_back(msg.id);
                table.insert(InFlight {
                    msg,
                    client_id: 1,
                    deadline: now + timeout,
                    delivered_at: now,
                });
            };
            for _ in 0..depth {
                deliver(&mut table, &mut order);
            }
            b.iter(|| {
                deliver(&mut table, &mut order);
                if let Some(id) = order.pop_front() {
                    let done = table.remove(&id, 1);
                    debug_assert!(done.is_ok());
                    std::hint::black_box(done.is_ok());
                }
            });
        });
    }
    group.finish();
}

/// 1024 deliveries that all time out, then one scan requeues them.
fn inflight_timeout(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflight_timeout");
    let count = 1024;
    group.throughput(Throughput::Elements(count as u64));
    let batch = messages(count, 200);
    let now = Instant::now();
    group.bench_function("insert_then_expire", |b| {
        let mut out = Vec::with_capacity(count);
        b.iter_batched_ref(
            || batch.clone(),
            |msgs| {
                let mut table = InFlightTable::default();
                for (i, msg) in msgs.drain(..).enumerate() {
                    table.insert(InFlight {
                        msg,
                        client_id: 1,
                        deadline: now + Duration::from_micros(i as u64),
                        delivered_at: now,
                    });
                }
                out.clear();
                table.pop_expired(now + Duration::from_secs(1), &mut out);
                assert_eq!(out.len(), count);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// 1024 deferrals with scattered due times, then popped as they come due.
fn deferred_timer(c: &mut Criterion) {
    let mut group = c.benchmark_group("deferred_timer");
    let count = 1024;
    group.throughput(Throughput::Elements(count as u64));
    let batch = messages(count, 200);
    let now = Instant::now();
    group.bench_function("push_then_pop_due", |b| {
        let mut out = Vec::with_capacity(count);
        b.iter_batched_ref(
            || batch.clone(),
            |msgs| {
                let mut queue = DeferredQueue::default();
                for (i, msg) in msgs.drain(..).enumerate() {
                    // A scattered order, as independent REQ timeouts are.
                    let due = now + Duration::from_millis(((i * 7919) % 1000) as u64);
                    queue.push(due, msg);
                }
                out.clear();
                for step in 0..10u64 {
                    queue.pop_due(now + Duration::from_millis(step * 100 + 99), &mut out);
                }
                assert_eq!(out.len(), count);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, inflight_push_pop, inflight_timeout, deferred_timer);
criterion_main!(benches);
