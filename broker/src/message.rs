//! The in-memory message and the per-shard message ID generator.
//!
//! A `Message` is cheap to clone: the body is a `Bytes` slice of the buffer the
//! publisher's command was read into, shared by every channel the topic fans
//! out to, on this core or another. Nothing on the path copies the body until
//! it is written into a consumer's output buffer.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nsq_proto::message::{id_from_u64, MessageId};

/// One message as it moves from topic to channel to consumer.
///
/// 64 bytes, one cache line (it was 80 with `attempts` and an
/// `Option<Instant>` as fields): every queued message costs this plus its
/// body, so a full `--mem-queue-size=1000000` holds 16 MB less, and the
/// in-flight table's entries shrink alike.
#[derive(Clone, Debug)]
pub struct Message {
    /// 16 ASCII hex bytes, unique within the node.
    pub id: MessageId,
    /// The payload, shared, never copied on the way to consumers.
    pub body: Bytes,
    /// Publish time, ns since the Unix epoch (the wire `timestamp`).
    pub timestamp: i64,
    /// Delivery attempts (high 16 bits) and, for DPUB, when the message
    /// becomes deliverable (low 48 bits, [`Due`]). Use the accessors.
    meta: u64,
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
        let mut msg = Message {
            id,
            body,
            timestamp,
            meta: 0,
        };
        msg.set_deliver_at(deliver_at);
        msg
    }

    /// Delivery attempts so far; incremented just before each delivery.
    pub fn attempts(&self) -> u16 {
        (self.meta >> DUE_BITS) as u16
    }

    /// Set the delivery attempts.
    pub fn set_attempts(&mut self, attempts: u16) {
        self.meta = (u64::from(attempts) << DUE_BITS) | (self.meta & DUE_MASK);
    }

    /// The message with `attempts` set (restored from disk).
    pub fn with_attempts(mut self, attempts: u16) -> Self {
        self.set_attempts(attempts);
        self
    }

    /// For DPUB: when the message becomes deliverable. Absolute, so it
    /// keeps its meaning when the message crosses cores.
    pub fn deliver_at(&self) -> Option<Instant> {
        Due(self.meta & DUE_MASK).instant()
    }

    /// Defer the message until `at` (None: deliverable now).
    pub fn set_deliver_at(&mut self, at: Option<Instant>) {
        self.meta = (self.meta & !DUE_MASK) | Due::at(at).0;
    }
}

/// Bits of [`Message`]'s `meta` that hold the due time.
const DUE_BITS: u32 = 48;
const DUE_MASK: u64 = (1 << DUE_BITS) - 1;

/// A due time in 48 bits: microseconds after the process's clock epoch,
/// plus one (0 = not deferred), rounded up so a message is never early.
/// 2^48 us is 8.9 years of uptime; anything later saturates. A time before
/// the epoch (a deferral restored from disk that is already overdue) is
/// stored as the epoch: in the past, so deliverable at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Due(u64);

impl Due {
    fn at(at: Option<Instant>) -> Due {
        let Some(at) = at else {
            return Due(0);
        };
        let ns = at.saturating_duration_since(clock_epoch()).as_nanos();
        let us = ns.div_ceil(1_000).saturating_add(1);
        Due(u64::try_from(us).unwrap_or(DUE_MASK).min(DUE_MASK))
    }

    fn instant(self) -> Option<Instant> {
        (self.0 != 0).then(|| clock_epoch() + Duration::from_micros(self.0 - 1))
    }
}

/// The monotonic instant due times count from: fixed at first use, which
/// precedes every due time computed after it.
fn clock_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
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
    fn a_message_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Message>(), 64);
    }

    #[test]
    fn attempts_and_due_time_are_kept_apart() {
        let ids = IdGen::new(0, 1);
        let due = Instant::now() + Duration::from_millis(1500);
        let mut msg = Message::new(ids.next_id(), Bytes::from_static(b"x"), Some(due));
        assert_eq!(msg.attempts(), 0);
        msg.set_attempts(u16::MAX);
        assert_eq!(msg.attempts(), u16::MAX);
        let back = msg.deliver_at().unwrap();
        // Never early, at most a microsecond late.
        assert!(back >= due && back - due <= Duration::from_micros(1));
        msg.set_deliver_at(None);
        assert_eq!(msg.deliver_at(), None);
        assert_eq!(msg.attempts(), u16::MAX);
        msg.set_attempts(7);
        msg.set_deliver_at(Some(due));
        assert_eq!(msg.attempts(), 7);
        assert!(msg.deliver_at().unwrap() >= due);
    }

    #[test]
    fn due_times_out_of_range_saturate() {
        let ids = IdGen::new(0, 1);
        let mut msg = Message::new(ids.next_id(), Bytes::new(), None);
        // Before the epoch: stored as the epoch, in the past, so due now.
        let epoch = clock_epoch();
        if let Some(before) = epoch.checked_sub(Duration::from_secs(1)) {
            msg.set_deliver_at(Some(before));
            assert_eq!(msg.deliver_at(), Some(epoch));
        }
        // Far beyond 2^48 us: the latest time that fits, never wrapped.
        msg.set_deliver_at(Some(
            Instant::now() + Duration::from_secs(20 * 365 * 86_400),
        ));
        let far = msg.deliver_at().unwrap();
        assert!(far > Instant::now() + Duration::from_secs(8 * 365 * 86_400));
        assert_eq!(msg.attempts(), 0);
    }

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
