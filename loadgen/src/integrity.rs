//! Integrity accounting: which sequence numbers each producer had
//! acknowledged, and which each channel received.
//!
//! Every consumer thread keeps its own sets (no sharing on the hot path);
//! they are merged per stream (topic + channel) at the end, and overlaps
//! found while merging are duplicates delivered to different connections.

/// A set of sequence numbers as a bitmap (dense: sequences start at 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; false when it was already present (a duplicate).
    pub fn insert(&mut self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        if word >= self.words.len() {
            self.words.resize((word + 1).next_power_of_two(), 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    /// Adds every sequence in `start..start + count`.
    pub fn insert_range(&mut self, start: u64, count: u64) {
        for seq in start..start + count {
            self.insert(seq);
        }
    }

    /// Whether `seq` is present.
    #[cfg(test)]
    pub fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// Number of sequences present.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Adds every member of `other`; returns how many were already present.
    pub fn merge(&mut self, other: &SeqSet) -> u64 {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut overlap = 0;
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            overlap += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        self.len += other.len - overlap;
        overlap
    }

    /// How many members of `self` are not in `other`.
    pub fn count_missing_from(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let theirs = other.words.get(i).copied().unwrap_or(0);
                u64::from((w & !theirs).count_ones())
            })
            .sum()
    }
}

/// What one consumer thread saw on one stream, per producer.
#[derive(Debug, Default)]
pub struct Received {
    producers: Vec<(u32, SeqSet)>,
    last: usize,
    /// Deliveries of a sequence this thread had already seen.
    pub duplicated: u64,
    /// Bodies that failed the checksum.
    pub corrupted: u64,
}

impl Received {
    /// Records a verified delivery; false when it is a duplicate.
    pub fn record(&mut self, producer: u32, seq: u64) -> bool {
        // Usually the same producer as last time: skip the scan.
        let idx = match self.producers.get(self.last) {
            Some((p, _)) if *p == producer => self.last,
            _ => match self.producers.iter().position(|(p, _)| *p == producer) {
                Some(i) => i,
                None => {
                    self.producers.push((producer, SeqSet::default()));
                    self.producers.len() - 1
                }
            },
        };
        self.last = idx;
        let fresh = self.producers[idx].1.insert(seq);
        self.duplicated += u64::from(!fresh);
        fresh
    }

    /// Folds another thread's record of the same stream into this one;
    /// sequences both saw count as duplicates.
    pub fn merge(&mut self, other: &Received) {
        self.duplicated += other.duplicated;
        self.corrupted += other.corrupted;
        for (producer, set) in &other.producers {
            match self.producers.iter_mut().find(|(p, _)| p == producer) {
                Some((_, mine)) => self.duplicated += mine.merge(set),
                None => self.producers.push((*producer, set.clone())),
            }
        }
    }

    /// The set received from `producer`, if any.
    pub fn of_producer(&self, producer: u32) -> Option<&SeqSet> {
        self.producers
            .iter()
            .find(|(p, _)| *p == producer)
            .map(|(_, s)| s)
    }

    /// Distinct messages received.
    pub fn distinct(&self) -> u64 {
        self.producers.iter().map(|(_, s)| s.len()).sum()
    }
}

/// The final account of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    /// Messages the broker acknowledged (or `--expect`, in sub mode).
    pub sent: u64,
    /// Deliveries, duplicates included, corrupt ones excluded.
    pub received: u64,
    /// Deliveries of a message already received.
    pub duplicated: u64,
    /// Acknowledged messages never received.
    pub missing: u64,
    /// Bodies that failed the checksum.
    pub corrupted: u64,
}

impl Account {
    /// Accounts a stream against the producers that published to it:
    /// `(producer id, acknowledged set)`.
    pub fn against_producers(received: &Received, acked: &[(u32, &SeqSet)]) -> Account {
        let missing = acked
            .iter()
            .map(|(id, set)| match received.of_producer(*id) {
                Some(got) => set.count_missing_from(got),
                None => set.len(),
            })
            .sum();
        Account {
            sent: acked.iter().map(|(_, s)| s.len()).sum(),
            received: received.distinct() + received.duplicated,
            duplicated: received.duplicated,
            missing,
            corrupted: received.corrupted,
        }
    }

    /// Accounts a stream when only the expected count is known (sub mode).
    pub fn against_count(received: &Received, expected: u64) -> Account {
        Account {
            sent: expected,
            received: received.distinct() + received.duplicated,
            duplicated: received.duplicated,
            missing: expected.saturating_sub(received.distinct()),
            corrupted: received.corrupted,
        }
    }

    /// Sum of two accounts.
    pub fn add(&self, other: &Account) -> Account {
        Account {
            sent: self.sent + other.sent,
            received: self.received + other.received,
            duplicated: self.duplicated + other.duplicated,
            missing: self.missing + other.missing,
            corrupted: self.corrupted + other.corrupted,
        }
    }

    /// Nothing missing and nothing corrupt (duplicates are allowed: NSQ
    /// delivers at least once).
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.corrupted == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqset_insert_and_duplicates() {
        let mut set = SeqSet::default();
        assert!(set.insert(0));
        assert!(set.insert(63));
        assert!(set.insert(64));
        assert!(set.insert(10_000));
        assert!(!set.insert(64));
        assert_eq!(set.len(), 4);
        assert!(set.contains(10_000));
        assert!(!set.contains(9_999));
        assert!(!set.contains(1 << 40));
    }

    #[test]
    fn seqset_merge_counts_overlap() {
        let mut a = SeqSet::default();
        let mut b = SeqSet::default();
        a.insert_range(0, 100);
        b.insert_range(90, 200);
        assert_eq!(a.merge(&b), 10);
        assert_eq!(a.len(), 290);
        assert_eq!(b.count_missing_from(&a), 0);
        let mut c = SeqSet::default();
        c.insert_range(0, 300);
        assert_eq!(c.count_missing_from(&a), 10);
    }

    #[test]
    fn split_delivery_across_threads_is_complete() {
        // Two consumers of one channel share the messages of two producers.
        let mut acked0 = SeqSet::default();
        acked0.insert_range(0, 1000);
        let mut acked1 = SeqSet::default();
        acked1.insert_range(0, 500);
        let mut t0 = Received::default();
        let mut t1 = Received::default();
        for seq in 0..1000 {
            if seq % 2 == 0 { &mut t0 } else { &mut t1 }.record(0, seq);
        }
        for seq in 0..500 {
            if seq % 3 == 0 { &mut t0 } else { &mut t1 }.record(1, seq);
        }
        t0.merge(&t1);
        let account = Account::against_producers(&t0, &[(0, &acked0), (1, &acked1)]);
        assert_eq!(
            account,
            Account {
                sent: 1500,
                received: 1500,
                duplicated: 0,
                missing: 0,
                corrupted: 0
            }
        );
        assert!(account.is_clean());
    }

    #[test]
    fn duplicates_missing_and_corrupt() {
        let mut acked = SeqSet::default();
        acked.insert_range(0, 10);
        let mut t0 = Received::default();
        let mut t1 = Received::default();
        for seq in 0..8 {
            t0.record(4, seq);
        }
        assert!(!t0.record(4, 3), "same-thread duplicate");
        t1.record(4, 5); // cross-thread duplicate
        t1.corrupted = 2;
        t0.merge(&t1);
        let account = Account::against_producers(&t0, &[(4, &acked)]);
        assert_eq!(account.sent, 10);
        assert_eq!(account.received, 10);
        assert_eq!(account.duplicated, 2);
        assert_eq!(account.missing, 2);
        assert_eq!(account.corrupted, 2);
        assert!(!account.is_clean());

        let by_count = Account::against_count(&t0, 10);
        assert_eq!(by_count.missing, 2);
        assert_eq!(by_count.add(&account).sent, 20);
    }

    #[test]
    fn unknown_producer_is_all_missing() {
        let mut acked = SeqSet::default();
        acked.insert_range(0, 5);
        let account = Account::against_producers(&Received::default(), &[(9, &acked)]);
        assert_eq!(account.missing, 5);
    }
}
