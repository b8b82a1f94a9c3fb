//! Messages delivered to a consumer and not yet finished: a map by ID plus a
//! min-heap of deadlines.
//!
//! Pure data structure: time is always passed in, never read, so timeout logic
//! is tested without sleeping. The heap uses lazy deletion: FIN and TOUCH only
//! touch the map; stale heap entries are skipped when they surface. That keeps
//! FIN O(1) amortized instead of nsqd's O(log n) heap removal.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use nsq_proto::MessageId;

use crate::idmap::IdMap;
use crate::message::Message;

/// One in-flight message.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// The message as delivered (attempts already incremented).
    pub msg: Message,
    /// The consumer that holds it; only that consumer may FIN/REQ/TOUCH it.
    pub client_id: u64,
    /// When it times out and is requeued.
    pub deadline: Instant,
    /// When it was delivered: TOUCH never extends past this + max-msg-timeout.
    pub delivered_at: Instant,
}

/// Why a FIN/REQ/TOUCH was refused (nsqd's texts).
#[derive(Debug, PartialEq, Eq)]
pub enum InFlightError {
    /// "ID not in flight"
    NotInFlight,
    /// "client does not own message"
    NotOwner,
}

impl std::fmt::Display for InFlightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InFlightError::NotInFlight => "ID not in flight",
            InFlightError::NotOwner => "client does not own message",
        })
    }
}

/// Below this many heap entries the heap is never rebuilt.
const COMPACT_MIN_HEAP: usize = 1024;
/// The heap is rebuilt once it holds this many times the live entries.
const STALE_FACTOR: usize = 2;

/// The in-flight table of one channel. Lives on: the channel's owner shard.
#[derive(Debug, Default)]
pub struct InFlightTable {
    map: IdMap<InFlight>,
    heap: BinaryHeap<Reverse<(Instant, MessageId)>>,
}

impl InFlightTable {
    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Is this message in flight?
    pub fn contains(&self, id: &MessageId) -> bool {
        self.map.contains_key(id)
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Record a delivery. An ID already in flight is replaced (cannot happen
    /// with unique IDs; replacing keeps the table consistent if it does).
    pub fn insert(&mut self, entry: InFlight) {
        self.heap.push(Reverse((entry.deadline, entry.msg.id)));
        self.map.insert(entry.msg.id, entry);
        // FIN leaves its heap entry behind (lazy deletion). Without this, a
        // busy channel would keep one stale entry per message finished in
        // the last msg-timeout (60 s: tens of millions). Rebuilding once the
        // heap is mostly stale keeps it O(in flight), amortized O(1) per op.
        self.compact_if_stale();
    }

    /// Rebuild the heap once it is mostly stale entries.
    fn compact_if_stale(&mut self) {
        if self.heap.len() > COMPACT_MIN_HEAP && self.heap.len() > STALE_FACTOR * self.map.len() {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.clear();
        entries.extend(self.map.values().map(|e| Reverse((e.deadline, e.msg.id))));
        self.heap = BinaryHeap::from(entries);
    }

    /// Remove a message for FIN or REQ, checking ownership.
    pub fn remove(&mut self, id: &MessageId, client_id: u64) -> Result<InFlight, InFlightError> {
        // One lookup on the FIN fast path; the rare wrong owner puts it back.
        match self.map.remove(id) {
            None => Err(InFlightError::NotInFlight),
            Some(entry) if entry.client_id != client_id => {
                self.map.insert(*id, entry);
                Err(InFlightError::NotOwner)
            }
            Some(entry) => Ok(entry),
        }
    }

    /// TOUCH: push the deadline to `now + timeout`, capped at delivery +
    /// `max_timeout` (nsqd's rule).
    pub fn touch(
        &mut self,
        id: &MessageId,
        client_id: u64,
        now: Instant,
        timeout: Duration,
        max_timeout: Duration,
    ) -> Result<Instant, InFlightError> {
        let entry = self.map.get_mut(id).ok_or(InFlightError::NotInFlight)?;
        if entry.client_id != client_id {
            return Err(InFlightError::NotOwner);
        }
        let cap = entry.delivered_at + max_timeout;
        entry.deadline = (now + timeout).min(cap);
        let deadline = entry.deadline;
        self.heap.push(Reverse((deadline, *id)));
        Ok(deadline)
    }

    /// Remove and return every message whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant, out: &mut Vec<InFlight>) {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            // Skip stale entries: finished, or touched to a later deadline.
            if self.map.get(&id).is_some_and(|e| e.deadline == deadline) {
                if let Some(entry) = self.map.remove(&id) {
                    out.push(entry);
                }
            }
        }
        self.compact_if_stale();
    }

    /// The earliest live deadline, if any (stale heads are dropped).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if self.map.get(&id).is_some_and(|e| e.deadline == deadline) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Remove everything held by one client (used when emptying a channel).
    pub fn clear(&mut self) -> Vec<InFlight> {
        self.heap.clear();
        self.map.drain().map(|(_, e)| e).collect()
    }

    /// Iterate over the entries (for shutdown and stats).
    pub fn iter(&self) -> impl Iterator<Item = &InFlight> {
        self.map.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::IdGen;
    use bytes::Bytes;
    use std::collections::BTreeMap;

    fn entry(ids: &IdGen, client: u64, deadline: Instant) -> InFlight {
        InFlight {
            msg: Message::new(ids.next_id(), Bytes::from_static(b"x"), None),
            client_id: client,
            deadline,
            delivered_at: deadline - Duration::from_secs(1),
        }
    }

    #[test]
    fn fin_requires_owner_and_presence() {
        let ids = IdGen::new(0, 0);
        let now = Instant::now();
        let mut t = InFlightTable::default();
        let e = entry(&ids, 1, now + Duration::from_secs(5));
        let id = e.msg.id;
        t.insert(e);
        assert_eq!(t.remove(&id, 2).unwrap_err(), InFlightError::NotOwner);
        assert!(t.remove(&id, 1).is_ok());
        assert_eq!(t.remove(&id, 1).unwrap_err(), InFlightError::NotInFlight);
    }

    #[test]
    fn touch_moves_deadline_but_not_past_cap() {
        let ids = IdGen::new(0, 0);
        let now = Instant::now();
        let mut t = InFlightTable::default();
        let e = entry(&ids, 1, now + Duration::from_secs(1));
        let id = e.msg.id;
        let delivered = e.delivered_at;
        t.insert(e);
        let d = t
            .touch(
                &id,
                1,
                now,
                Duration::from_secs(60),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(d, delivered + Duration::from_secs(10));
        let mut out = Vec::new();
        t.pop_expired(now + Duration::from_secs(2), &mut out);
        assert!(out.is_empty(), "old heap entry must be stale after TOUCH");
        t.pop_expired(delivered + Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 1);
    }

    /// Random operations against a BTreeMap model.
    #[test]
    fn matches_model() {
        let ids = IdGen::new(0, 0);
        let base = Instant::now();
        let mut t = InFlightTable::default();
        let mut model: BTreeMap<MessageId, (u64, Instant)> = BTreeMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut clock = base;
        for _ in 0..20_000 {
            match next() % 4 {
                0 => {
                    let e = entry(
                        &ids,
                        next() % 3,
                        clock + Duration::from_millis(next() % 500),
                    );
                    model.insert(e.msg.id, (e.client_id, e.deadline));
                    t.insert(e);
                }
                1 => {
                    if let Some((&id, &(client, _))) = model.iter().nth((next() % 8) as usize) {
                        assert!(t.remove(&id, client).is_ok());
                        model.remove(&id);
                    }
                }
                2 => {
                    clock += Duration::from_millis(next() % 50);
                    let mut out = Vec::new();
                    t.pop_expired(clock, &mut out);
                    let expired: Vec<MessageId> = model
                        .iter()
                        .filter(|(_, (_, d))| *d <= clock)
                        .map(|(id, _)| *id)
                        .collect();
                    let mut got: Vec<MessageId> = out.iter().map(|e| e.msg.id).collect();
                    got.sort();
                    assert_eq!(got, expired);
                    for id in expired {
                        model.remove(&id);
                    }
                }
                _ => {
                    let want = model.values().map(|(_, d)| *d).min();
                    assert_eq!(t.next_deadline(), want);
                }
            }
            assert_eq!(t.len(), model.len());
        }
    }
}
