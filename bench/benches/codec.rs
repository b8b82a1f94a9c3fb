//! Wire codec stages: decoding PUB and MPUB as a connection does (from one
//! read buffer holding many commands), and encoding message frames into a
//! consumer's output buffer.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nsq_bench::{mpub_commands, pub_commands};
use nsq_proto::message::id_from_u64;
use nsq_proto::{decode_command, Limits};

fn decode_pub(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_pub");
    for size in [100usize, 200, 1024] {
        let count = 1000;
        let input = pub_commands(count, size);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("{size}B"), |b| {
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    let limits = Limits::default();
                    let mut n = 0;
                    while let Ok(Some(cmd)) = decode_command(buf, &limits) {
                        n += 1;
                        std::hint::black_box(cmd);
                    }
                    assert_eq!(n, count);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn decode_mpub(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_mpub");
    for (batch, size) in [(200usize, 200usize), (20, 200), (200, 1024)] {
        let count = 10;
        let input = mpub_commands(count, batch, size);
        group.throughput(Throughput::Elements((count * batch) as u64));
        group.bench_function(format!("{batch}x{size}B"), |b| {
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    let limits = Limits::default();
                    while let Ok(Some(cmd)) = decode_command(buf, &limits) {
                        std::hint::black_box(cmd);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// A consumer's FINs, many per read, as the channel's core decodes them.
fn decode_fin(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_fin");
    let count = 1000u64;
    let mut input = bytes::BytesMut::new();
    for i in 0..count {
        input.extend_from_slice(b"FIN ");
        input.extend_from_slice(&id_from_u64(0x0123_4567_0000_0000 + i).0);
        input.extend_from_slice(b"\n");
    }
    group.throughput(Throughput::Elements(count));
    group.bench_function("1000", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                let limits = Limits::default();
                let mut n = 0;
                while let Ok(Some(cmd)) = decode_command(buf, &limits) {
                    n += 1;
                    std::hint::black_box(cmd);
                }
                assert_eq!(n, count);
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn encode_message_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_message_frame");
    for size in [100usize, 200, 1024] {
        let body = vec![b'x'; size];
        let id = id_from_u64(0x0123_4567_89ab_cdef);
        let mut out = bytes::BytesMut::with_capacity(64 * 1024);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| {
                if out.len() + size + 64 > 64 * 1024 {
                    out.clear();
                }
                nsq_proto::frame::encode_message_frame(&mut out, 1_700_000_000, 1, &id, &body);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    decode_pub,
    decode_mpub,
    decode_fin,
    encode_message_frame
);
criterion_main!(benches);
