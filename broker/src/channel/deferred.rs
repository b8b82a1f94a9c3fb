//! Deferred messages (DPUB, REQ with a delay): a min-heap by due time.
//!
//! Pure data structure; "now" is passed in. Entries are never removed early
//! (nsqd has no way to cancel a deferral either), so a plain heap suffices.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::message::Message;

#[derive(Debug)]
struct Entry {
    due: Instant,
    seq: u64,
    msg: Message,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The deferred queue of one channel. Lives on: the channel's owner shard.
#[derive(Debug, Default)]
pub struct DeferredQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl DeferredQueue {
    /// Number of deferred messages.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is deferred.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Hold `msg` until `due`. Equal due times keep insertion order.
    pub fn push(&mut self, due: Instant, msg: Message) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            due,
            seq: self.seq,
            msg,
        }));
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.due)
    }

    /// Move every message due at or before `now` into `out`, earliest first.
    pub fn pop_due(&mut self, now: Instant, out: &mut Vec<Message>) {
        while self.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
            if let Some(Reverse(e)) = self.heap.pop() {
                out.push(e.msg);
            }
        }
    }

    /// Remove everything (channel empty or delete).
    pub fn clear(&mut self) -> Vec<Message> {
        self.heap.drain().map(|Reverse(e)| e.msg).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::IdGen;
    use bytes::Bytes;
    use std::time::Duration;

    #[test]
    fn pops_in_due_order_only_when_due() {
        let ids = IdGen::new(0, 0);
        let now = Instant::now();
        let mut q = DeferredQueue::default();
        for ms in [30u64, 10, 20, 10] {
            q.push(
                now + Duration::from_millis(ms),
                Message::new(ids.next_id(), Bytes::from(ms.to_string()), None),
            );
        }
        let mut out = Vec::new();
        q.pop_due(now + Duration::from_millis(5), &mut out);
        assert!(out.is_empty());
        assert_eq!(q.next_due(), Some(now + Duration::from_millis(10)));
        q.pop_due(now + Duration::from_millis(20), &mut out);
        let bodies: Vec<&[u8]> = out.iter().map(|m| &m.body[..]).collect();
        assert_eq!(bodies, vec![&b"10"[..], b"10", b"20"]);
        assert_eq!(q.len(), 1);
    }
}
