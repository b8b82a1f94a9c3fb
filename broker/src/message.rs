//! The in-memory message and the per-shard message ID generator.
//!
//! A `Message` is cheap to clone: the body is a `Bytes` slice of the buffer the
//! publisher's command was read into, shared by every channel the topic fans
//! out to, on this core or another. Nothing on the path copies the body until
//! it is written into a consumer's output buffer.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nsq_proto::message::{id_from_u64, MessageId};

/// One message as it moves from topic to channel to consumer.
#[derive(Clone, Debug)]
pub struct Message {
    /// 16 ASCII hex bytes, unique within the node.
    pub id: MessageId,
    /// The payload, shared, never copied on the way to consumers.
    pub body: Bytes,
    /// Publish time, ns since the Unix epoch (the wire `timestamp`).
    pub timestamp: i64,
    /// Delivery attempts so far; incremented just before each delivery.
    pub attempts: u16,
    /// For DPUB: when the message becomes deliverable. Absolute, so it keeps
    /// its meaning when the message crosses cores.
    pub deliver_at: Option<Instant>,
}

impl Message {
    /// A message just published now.
    pub fn new(id: MessageId, body: Bytes, deliver_at: Option<Instant>) -> Self {
        Self::published_at(id, body, deliver_at, now_ns())
    }

    /// A message published at `timestamp` (ns): an MPUB's messages share one
    /// clock read.
    pub fn published_at(
        id: MessageId,
        body: Bytes,
        deliver_at: Option<Instant>,
        timestamp: i64,
    ) -> Self {
        Message {
            id,
            body,
            timestamp,
            attempts: 0,
            deliver_at,
        }
    }
}

/// Wall-clock time in ns since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Wall-clock seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ns() / 1_000_000_000
}

/// Generates IDs unique across the shards of this node.
///
/// Lives on: every shard, one each. Layout of the 64 bits (printed as 16 hex
/// chars, as nsqd's `guid.Hex()`): `[shard:6][node:10][sequence:48]`. The shard
/// bits keep two cores from ever minting the same ID for one channel without
/// coordinating; the sequence starts from the clock (ms << 8) at startup so IDs
/// of a restarted node do not repeat those of the previous run in practice.
#[derive(Debug)]
pub struct IdGen {
    prefix: u64,
    seq: Cell<u64>,
}

const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

impl IdGen {
    /// An ID generator for `shard` of node `node_id` (0..1024).
    pub fn new(shard: usize, node_id: u64) -> Self {
        let prefix = ((shard as u64 & 0x3f) << 58) | ((node_id & 0x3ff) << SEQ_BITS);
        let start = ((now_ns() as u64) / 1_000_000) << 8;
        IdGen {
            prefix,
            seq: Cell::new(start & SEQ_MASK),
        }
    }

    /// The next ID.
    pub fn next_id(&self) -> MessageId {
        let seq = self.seq.get();
        self.seq.set((seq + 1) & SEQ_MASK);
        id_from_u64(self.prefix | seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_across_shards_and_calls() {
        let a = IdGen::new(0, 5);
        let b = IdGen::new(1, 5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
        for id in seen {
            assert!(id.0.iter().all(|c| c.is_ascii_hexdigit()));
        }
    }
}
