//! criterion microbenchmarks along the message path, stage by stage.
//!
//! * `benches/codec.rs`: `decode_pub`, `decode_mpub`, `encode_message_frame`.
//! * `benches/topic_fanout.rs`: `topic_fanout_n_channels` (a topic part's
//!   pump handing a batch to N local channels).
//! * `benches/channel.rs`: `inflight_push_pop` (deliver + FIN),
//!   `inflight_timeout`, `deferred_timer`.
//! * `benches/mesh_hop.rs`: `mesh_hop` (a message or a batch crossing cores
//!   through `nsq_io::mesh`).
//!
//! Run: `cargo bench -p nsq-bench` (add `-- --warm-up-time 1
//! --measurement-time 2` for a quick pass). Results are kept in
//! `perf/reports/`. `segment_append` comes with the disk queue.

use bytes::{Bytes, BytesMut};
use nsq_broker::message::{IdGen, Message};

/// A body of `size` bytes.
pub fn body(size: usize) -> Bytes {
    Bytes::from(vec![b'x'; size])
}

/// `count` messages sharing one body buffer, as an MPUB's messages do.
pub fn messages(count: usize, size: usize) -> Vec<Message> {
    let ids = IdGen::new(0, 1);
    let buf = body(size * count);
    (0..count)
        .map(|i| Message::new(ids.next_id(), buf.slice(i * size..(i + 1) * size), None))
        .collect()
}

/// `count` PUB commands for topic `t` with `size`-byte bodies, back to back.
pub fn pub_commands(count: usize, size: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    let body = body(size);
    for _ in 0..count {
        nsq_proto::command::encode::pub_(&mut buf, "t", &body);
    }
    buf
}

/// `count` MPUB commands of `batch` bodies of `size` bytes, back to back.
pub fn mpub_commands(count: usize, batch: usize, size: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    let bodies = vec![body(size); batch];
    for _ in 0..count {
        nsq_proto::command::encode::mpub(&mut buf, "t", &bodies);
    }
    buf
}
