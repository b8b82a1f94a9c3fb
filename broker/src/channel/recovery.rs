//! A channel's recovery state: what lets a restart replay the channel's
//! unfinished messages and nothing it already finished.
//!
//! Lives on: the channel's owner shard, next to the channel's disk queue
//! (the channel's `QueueStore`). The numbers below are those of
//! ARCHITECTURE.md: "Durability sequence of a message" (steps 1 to 8) and
//! "Restart without replaying what was finished" (rules 1 to 3).
//!
//! - Step 4: a message the topic hands over goes to the channel's memory
//!   queue, or to its disk queue (`QueueStore::append`); nothing here.
//! - Step 6: a message read from the disk queue stays there until finished:
//!   [`Recovery::admit`] remembers its record in `origins`.
//! - Step 7: FIN: [`Recovery::release`] gives back the record to finish in
//!   the disk queue (the committed cursor moves past the finished prefix) and
//!   the channel appends the ID to the acknowledgement log
//!   (`QueueStore::ack`; [`Recovery::ack`] remembers it in the replay
//!   window).
//! - Step 8: the log is written before each sync of the channel's disk queue
//!   and rewritten after each full sync (`QueueStore`, which keeps it with
//!   the queue: it is opened, emptied and deleted with it).
//! - At open (`QueueStore`, on the blocking pool or at startup): rule 2's
//!   scan for superseding records, then rule 1's acknowledged IDs, handed
//!   over in a `Found` ([`Recovery::install`]). While reading the disk
//!   queue, [`Recovery::admit`] is the duplicate check of rules 1 to 3.

use std::time::{Duration, Instant};

use nsq_io::segment::Pos;
use nsq_proto::MessageId;

use super::inflight::InFlightTable;
use crate::acklog::Acked;
use crate::backend::Superseded;
use crate::idmap::IdMap;
use crate::queue_store::Found;

/// How long after a restart that found acks or a backlog new FINs are
/// remembered in memory too (rule 1).
const REPLAY_WINDOW: Duration = Duration::from_secs(60);

/// One channel's recovery state. Lives on: the channel's owner shard.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Step 6: messages read from disk and not finished: their records.
    origins: IdMap<Pos>,
    /// Rule 2: found at open, records replaced by a later superseding one
    /// with the same ID: the position of that later record.
    superseded: Superseded,
    /// Rule 1: IDs acknowledged before the restart, and within the replay
    /// window after it, new ones.
    acked: Acked,
    /// Until then (a while after a restart that found acks or a backlog),
    /// new FINs are also remembered in `acked`: topic parts replaying after
    /// a crash can hand over a second copy of a message after its first copy
    /// was FINished. Afterwards `acked` is dropped to free the memory.
    window_until: Option<Instant>,
}

impl Recovery {
    /// What opening the channel's disk queue found: the records superseding
    /// ones replace (rule 2) and the acknowledged IDs (rule 1). A queue
    /// that had acks or a backlog opens the replay window. Merged: the disk
    /// may open after the channel started (lazily, or a leftover found at
    /// run time).
    pub fn install(&mut self, found: Found) {
        if !found.acked.is_empty() || found.backlog {
            self.window_until = Some(Instant::now() + REPLAY_WINDOW);
        }
        self.superseded.extend(found.superseded);
        self.acked.extend(found.acked);
    }

    /// Step 6, and the duplicate check after a restart: the record of `id`
    /// at `pos` was read from disk. True: deliver it (its record is now
    /// remembered in `origins`). False: it is a copy to skip, whose record
    /// the caller finishes at once:
    /// - rule 2: a later record with the same ID supersedes it;
    /// - rule 3: the channel still holds the ID (read from disk before, or
    ///   in flight): a replayed copy, e.g. a topic part handing over again;
    /// - rule 1: the ID was acknowledged (before the restart, or in the
    ///   replay window).
    pub fn admit(&mut self, id: MessageId, pos: Pos, in_flight: &InFlightTable) -> bool {
        let replaced = match self.superseded.get(&id) {
            Some(newer) if pos < *newer => true,
            Some(_) => {
                // The superseding record itself: older ones are behind us.
                self.superseded.remove(&id);
                false
            }
            None => false,
        };
        let held = self.origins.contains_key(&id)
            || in_flight.contains(&id)
            || self.acked.contains_key(&id);
        if replaced || held {
            return false;
        }
        self.origins.insert(id, pos);
        true
    }

    /// Was this message read from the disk queue (and is it still there)?
    pub fn from_disk(&self, id: &MessageId) -> bool {
        self.origins.contains_key(id)
    }

    /// Step 7 (FIN), or a REQ rewritten in a superseding record: the channel
    /// is done with `id`; the position of its record to finish, if it came
    /// from disk.
    pub fn release(&mut self, id: &MessageId) -> Option<Pos> {
        self.origins.remove(id)
    }

    /// Step 7: a consumer FINished `id` (logged by the channel's store):
    /// in the replay window, remember it in memory too, so a copy a topic
    /// part hands over again is skipped (rule 1).
    pub fn ack(&mut self, id: MessageId) {
        if let Some(until) = self.window_until {
            if Instant::now() < until {
                self.acked.insert(id, ());
            } else {
                self.window_until = None;
                self.acked = Acked::default();
            }
        }
    }

    /// Shutdown: the messages read from disk, which are still there.
    pub fn take_origins(&mut self) -> IdMap<Pos> {
        std::mem::take(&mut self.origins)
    }

    /// The channel was emptied: nothing is held or replaced any more.
    pub fn clear(&mut self) {
        self.origins.clear();
        self.superseded.clear();
        self.acked.clear();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::{IdGen, Message};

    fn pos(seq: u64) -> Pos {
        Pos {
            segment: 0,
            offset: seq * 64,
            seq,
        }
    }

    fn recovering() -> Recovery {
        Recovery {
            window_until: Some(Instant::now() + REPLAY_WINDOW),
            ..Recovery::default()
        }
    }

    #[test]
    fn a_superseded_record_is_skipped_until_its_successor() {
        let ids = IdGen::new(0, 0);
        let id = ids.next_id();
        let mut r = recovering();
        r.superseded.insert(id, pos(5));
        let none = InFlightTable::default();
        assert!(!r.admit(id, pos(1), &none), "older copy");
        assert!(r.admit(id, pos(5), &none), "the superseding record");
        assert_eq!(r.release(&id), Some(pos(5)));
    }

    #[test]
    fn a_held_or_acked_id_is_a_copy() {
        let ids = IdGen::new(0, 0);
        let mut r = recovering();
        let none = InFlightTable::default();
        let a = ids.next_id();
        assert!(r.admit(a, pos(1), &none));
        assert!(!r.admit(a, pos(2), &none), "still held from disk");
        assert!(r.from_disk(&a));
        let b = ids.next_id();
        r.ack(b);
        assert!(!r.admit(b, pos(3), &none), "acked in the replay window");
        let c = ids.next_id();
        let mut in_flight = InFlightTable::default();
        let now = Instant::now();
        in_flight.insert(super::super::inflight::InFlight {
            msg: Message::new(c, Bytes::new(), None),
            client_id: 1,
            deadline: now,
            delivered_at: now,
        });
        assert!(!r.admit(c, pos(4), &in_flight), "in flight");
    }

    #[test]
    fn after_the_window_acks_are_not_remembered() {
        let ids = IdGen::new(0, 0);
        let mut r = Recovery {
            window_until: Some(Instant::now()),
            ..Recovery::default()
        };
        let a = ids.next_id();
        r.ack(a);
        assert!(r.window_until.is_none());
        assert!(r.admit(a, pos(1), &InFlightTable::default()));
    }
}
