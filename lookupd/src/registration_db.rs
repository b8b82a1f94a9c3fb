//! The registration DB: which nsqd (a "producer") announced which topic and
//! channel. A pure data structure, no I/O and no clock: every method that
//! needs the time takes `now` (Unix nanoseconds), so timeout rules are
//! unit-tested without sleeping.
//!
//! Lives on: the one lookupd executor, behind a `RefCell` that is never
//! borrowed across an `.await`.
//!
//! It mirrors nsqlookupd's `registration_db.go`:
//! * a [`Registration`] is `(category, key, subkey)`: `("client", "", "")`
//!   for every identified peer, `("topic", topic, "")`, and
//!   `("channel", topic, channel)`;
//! * each registration maps peer ids (the peer's remote `ip:port`) to a
//!   [`Producer`], which carries that registration's tombstone;
//! * a registration whose last producer left stays in the map, so topics and
//!   channels survive nsqd restarts until deleted over HTTP;
//! * `"*"` as key or subkey in a query matches anything, exactly as in Go
//!   (so `/lookup?topic=*` and `/topic/delete?topic=*` behave as there).
//!
//! Peer info lives once per peer in `peers` (Go shares one `*PeerInfo`
//! between the peer's producers), so a PING refreshes every registration.
//! Maps are ordered so HTTP answers are stable; Go's order is random, so any
//! order is compatible.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

/// A peer's id: its remote address as `ip:port`, unique per connection.
pub type PeerId = String;

/// The kind of a registration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `("client", "", "")`: every identified peer, used by `/nodes`.
    Client,
    /// `("topic", topic, "")`.
    Topic,
    /// `("channel", topic, channel)`.
    Channel,
}

impl Category {
    /// The name nsqlookupd uses (in `/debug` keys and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Client => "client",
            Category::Topic => "topic",
            Category::Channel => "channel",
        }
    }
}

/// One registration key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registration {
    /// What kind of key this is.
    pub category: Category,
    /// The topic name (empty for `Client`).
    pub key: String,
    /// The channel name (empty unless `Channel`).
    pub subkey: String,
}

impl Registration {
    /// The per-peer `("client", "", "")` key.
    pub fn client() -> Registration {
        Registration::new(Category::Client, "", "")
    }

    /// A `("topic", topic, "")` key.
    pub fn topic(topic: &str) -> Registration {
        Registration::new(Category::Topic, topic, "")
    }

    /// A `("channel", topic, channel)` key.
    pub fn channel(topic: &str, channel: &str) -> Registration {
        Registration::new(Category::Channel, topic, channel)
    }

    fn new(category: Category, key: &str, subkey: &str) -> Registration {
        Registration {
            category,
            key: key.to_string(),
            subkey: subkey.to_string(),
        }
    }

    /// Go's `IsMatch`: same category, and key/subkey equal or `"*"`.
    pub fn is_match(&self, category: Category, key: &str, subkey: &str) -> bool {
        self.category == category
            && (key == "*" || self.key == key)
            && (subkey == "*" || self.subkey == subkey)
    }
}

/// What a peer told us in IDENTIFY, as `/lookup` shows it. Field order is
/// nsqlookupd's `PeerInfo` JSON order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// The connection's remote `ip:port` (not from the IDENTIFY body).
    pub remote_address: String,
    /// The nsqd host name.
    pub hostname: String,
    /// The address clients should connect to.
    pub broadcast_address: String,
    /// nsqd's TCP port. Go's `int`: any value but 0 is accepted.
    pub tcp_port: i64,
    /// nsqd's HTTP port.
    pub http_port: i64,
    /// nsqd's version string.
    pub version: String,
    /// nsqd's `--topology-zone` (nsqlookupd master; empty from older nsqd).
    pub topology_zone: String,
    /// nsqd's `--topology-region` (nsqlookupd master).
    pub topology_region: String,
}

impl PeerInfo {
    /// `broadcast_address:http_port`, the node name `/topic/tombstone` takes.
    pub fn node_name(&self) -> String {
        format!("{}:{}", self.broadcast_address, self.http_port)
    }
}

/// One peer's membership in one registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Producer {
    /// When `/topic/tombstone` last named this producer (Unix ns); `None` if
    /// never. Go keeps `tombstoned` forever once set and lets the time
    /// decide; the two are the same thing here.
    pub tombstoned_at: Option<i64>,
}

impl Producer {
    /// Go's `IsTombstoned`: tombstoned less than `lifetime` ago.
    pub fn is_tombstoned(&self, lifetime: Duration, now: i64) -> bool {
        self.tombstoned_at
            .is_some_and(|at| now.saturating_sub(at) < nanos(lifetime))
    }
}

/// A producer as a query returns it: the peer's info plus the membership.
#[derive(Debug, Clone, Copy)]
pub struct ProducerRef<'a> {
    /// The peer id (remote address).
    pub id: &'a str,
    /// What the peer sent in IDENTIFY.
    pub info: &'a PeerInfo,
    /// Last IDENTIFY or PING (Unix ns).
    pub last_update: i64,
    /// The membership (tombstone) in the registration it was found under.
    pub producer: Producer,
}

impl ProducerRef<'_> {
    /// Go's `FilterByActive` for one producer: heard from within
    /// `inactive_timeout`, and not tombstoned within `tombstone_lifetime`.
    pub fn is_active(
        &self,
        inactive_timeout: Duration,
        tombstone_lifetime: Duration,
        now: i64,
    ) -> bool {
        now.saturating_sub(self.last_update) <= nanos(inactive_timeout)
            && !self.producer.is_tombstoned(tombstone_lifetime, now)
    }
}

#[derive(Debug)]
struct Peer {
    info: PeerInfo,
    last_update: i64,
}

/// The whole registry. See the module docs.
#[derive(Debug, Default)]
pub struct RegistrationDb {
    registrations: BTreeMap<Registration, BTreeMap<PeerId, Producer>>,
    peers: HashMap<PeerId, Peer>,
}

impl RegistrationDb {
    /// An empty DB.
    pub fn new() -> RegistrationDb {
        RegistrationDb::default()
    }

    /// Record an identified peer (IDENTIFY) and add it to the `client` key.
    /// Returns false if the id was already known (its info is kept, as Go
    /// keeps the first `Producer`).
    pub fn add_peer(&mut self, id: &str, info: PeerInfo, now: i64) -> bool {
        if self.peers.contains_key(id) {
            return false;
        }
        self.peers.insert(
            id.to_string(),
            Peer {
                info,
                last_update: now,
            },
        );
        self.add_producer(Registration::client(), id)
    }

    /// PING: mark the peer as heard from. Returns the previous time, if the
    /// peer is known.
    pub fn touch_peer(&mut self, id: &str, now: i64) -> Option<i64> {
        let peer = self.peers.get_mut(id)?;
        Some(std::mem::replace(&mut peer.last_update, now))
    }

    /// The peer's connection closed: remove it from every registration (the
    /// keys stay) and forget it. Returns the keys it was removed from.
    pub fn remove_peer(&mut self, id: &str) -> Vec<Registration> {
        let mut removed = Vec::new();
        for (registration, producers) in &mut self.registrations {
            if producers.remove(id).is_some() {
                removed.push(registration.clone());
            }
        }
        self.peers.remove(id);
        removed
    }

    /// Go's `AddRegistration`: create the key with no producers if missing.
    pub fn add_registration(&mut self, registration: Registration) {
        self.registrations.entry(registration).or_default();
    }

    /// Go's `AddProducer`: add a known peer to a key (creating the key).
    /// Returns true if it was not there yet; an existing membership (and
    /// its tombstone) is kept. Unknown peers are not added.
    pub fn add_producer(&mut self, registration: Registration, id: &str) -> bool {
        if !self.peers.contains_key(id) {
            return false;
        }
        let producers = self.registrations.entry(registration).or_default();
        if producers.contains_key(id) {
            return false;
        }
        producers.insert(id.to_string(), Producer::default());
        true
    }

    /// Go's `RemoveProducer`: returns (whether the peer was there, how many
    /// producers the key has left). The key stays even when empty.
    pub fn remove_producer(&mut self, registration: &Registration, id: &str) -> (bool, usize) {
        match self.registrations.get_mut(registration) {
            Some(producers) => {
                let removed = producers.remove(id).is_some();
                (removed, producers.len())
            }
            None => (false, 0),
        }
    }

    /// Go's `RemoveRegistration`: drop the key and all its producers.
    pub fn remove_registration(&mut self, registration: &Registration) {
        self.registrations.remove(registration);
    }

    /// Go's `FindRegistrations`, with `"*"` wildcards for key and subkey.
    pub fn find_registrations(
        &self,
        category: Category,
        key: &str,
        subkey: &str,
    ) -> Vec<Registration> {
        self.matching(category, key, subkey)
            .map(|(registration, _)| registration.clone())
            .collect()
    }

    /// Go's `FindProducers`: the producers of every matching key, each peer
    /// once (the first key it is found under decides its tombstone).
    pub fn find_producers(
        &self,
        category: Category,
        key: &str,
        subkey: &str,
    ) -> Vec<ProducerRef<'_>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (_, producers) in self.matching(category, key, subkey) {
            for (id, producer) in producers {
                if !seen.insert(id.as_str()) {
                    continue;
                }
                if let Some(found) = self.producer_ref(id, *producer) {
                    out.push(found);
                }
            }
        }
        out
    }

    /// Go's `LookupRegistrations`: every key the peer is a producer of.
    pub fn lookup_registrations(&self, id: &str) -> Vec<Registration> {
        self.registrations
            .iter()
            .filter(|(_, producers)| producers.contains_key(id))
            .map(|(registration, _)| registration.clone())
            .collect()
    }

    /// `/topic/tombstone`: tombstone, in each topic key matching `topic`,
    /// the producer whose `broadcast_address:http_port` is `node`. As in Go
    /// the candidates come from [`RegistrationDb::find_producers`], so a
    /// wildcard topic tombstones each peer under one key only. Returns how
    /// many producers were tombstoned.
    pub fn tombstone_topic_producer(&mut self, topic: &str, node: &str, now: i64) -> usize {
        let mut seen = HashSet::new();
        let mut count = 0;
        for (registration, producers) in &mut self.registrations {
            if !registration.is_match(Category::Topic, topic, "") {
                continue;
            }
            for (id, producer) in producers.iter_mut() {
                if !seen.insert(id.clone()) {
                    continue;
                }
                let matches = self
                    .peers
                    .get(id)
                    .is_some_and(|peer| peer.info.node_name() == node);
                if matches {
                    producer.tombstoned_at = Some(now);
                    count += 1;
                }
            }
        }
        count
    }

    /// What `/metrics` shows: identified peers, topic and channel keys, and
    /// topic producers tombstoned less than `lifetime` ago.
    pub fn counts(&self, lifetime: Duration, now: i64) -> DbCounts {
        let mut counts = DbCounts {
            producers: self.peers.len(),
            ..DbCounts::default()
        };
        for (registration, producers) in &self.registrations {
            match registration.category {
                Category::Client => {}
                Category::Topic => {
                    counts.topics += 1;
                    counts.tombstones += producers
                        .values()
                        .filter(|p| p.is_tombstoned(lifetime, now))
                        .count();
                }
                Category::Channel => counts.channels += 1,
            }
        }
        counts
    }

    /// Every key that has producers, with them (for `/debug`).
    pub fn dump(&self) -> impl Iterator<Item = (&Registration, Vec<ProducerRef<'_>>)> {
        self.registrations
            .iter()
            .filter(|(_, producers)| !producers.is_empty())
            .map(|(registration, producers)| {
                let refs = producers
                    .iter()
                    .filter_map(|(id, producer)| self.producer_ref(id, *producer))
                    .collect();
                (registration, refs)
            })
    }

    fn matching<'a, 'q>(
        &'a self,
        category: Category,
        key: &'q str,
        subkey: &'q str,
    ) -> impl Iterator<Item = (&'a Registration, &'a BTreeMap<PeerId, Producer>)> + use<'a, 'q>
    {
        self.registrations
            .iter()
            .filter(move |(registration, _)| registration.is_match(category, key, subkey))
    }

    fn producer_ref<'a>(&'a self, id: &'a str, producer: Producer) -> Option<ProducerRef<'a>> {
        let peer = self.peers.get(id)?;
        Some(ProducerRef {
            id,
            info: &peer.info,
            last_update: peer.last_update,
            producer,
        })
    }
}

/// Sizes of the DB (see [`RegistrationDb::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbCounts {
    /// nsqd nodes connected and identified.
    pub producers: usize,
    /// Topic keys.
    pub topics: usize,
    /// Channel keys.
    pub channels: usize,
    /// Topic producers currently tombstoned.
    pub tombstones: usize,
}

/// Go's `Registrations.Keys()`.
pub fn keys(registrations: &[Registration]) -> Vec<String> {
    registrations.iter().map(|r| r.key.clone()).collect()
}

/// Go's `Registrations.SubKeys()`.
pub fn subkeys(registrations: &[Registration]) -> Vec<String> {
    registrations.iter().map(|r| r.subkey.clone()).collect()
}

/// A duration as i64 nanoseconds, saturating (Go's `time.Duration` range).
fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_348_797_047 * SEC;

    fn peer(n: i64) -> PeerInfo {
        PeerInfo {
            remote_address: format!("remote_addr:{n}"),
            hostname: "host".into(),
            broadcast_address: "b_addr".into(),
            tcp_port: n,
            http_port: n + 1,
            version: "v1".into(),
            ..PeerInfo::default()
        }
    }

    fn db_with_peers(ids: &[(&str, i64)]) -> RegistrationDb {
        let mut db = RegistrationDb::new();
        for (id, n) in ids {
            assert!(db.add_peer(id, peer(*n), T0));
        }
        db
    }

    fn ids(producers: &[ProducerRef<'_>]) -> Vec<String> {
        let mut ids: Vec<String> = producers.iter().map(|p| p.id.to_string()).collect();
        ids.sort();
        ids
    }

    /// Port of nsqlookupd's TestRegistrationDB.
    #[test]
    fn registration_db() {
        let mut db = db_with_peers(&[("1", 1), ("2", 2), ("3", 3)]);
        assert!(db.add_producer(Registration::channel("a", "b"), "1"));
        assert!(db.add_producer(Registration::channel("a", "b"), "2"));
        assert!(db.add_producer(Registration::topic("a"), "3"));
        assert!(db.add_producer(Registration::channel("c", "b"), "1"));
        // add again
        assert!(!db.add_producer(Registration::channel("a", "b"), "2"));

        assert_eq!(
            ids(&db.find_producers(Category::Channel, "a", "b")),
            ["1", "2"]
        );
        assert_eq!(ids(&db.find_producers(Category::Channel, "c", "*")), ["1"]);
        assert_eq!(ids(&db.find_producers(Category::Topic, "a", "")), ["3"]);
        assert_eq!(
            ids(&db.find_producers(Category::Channel, "*", "b")),
            ["1", "2"]
        );
        assert_eq!(db.find_registrations(Category::Channel, "*", "b").len(), 2);
        assert!(db
            .find_registrations(Category::Channel, "q", "*")
            .is_empty());
        assert_eq!(
            keys(&db.find_registrations(Category::Topic, "*", "")),
            ["a"]
        );

        let with_1 = db.lookup_registrations("1");
        assert_eq!(with_1.len(), 3); // client + two channels
        let channels: Vec<_> = with_1
            .iter()
            .filter(|r| r.is_match(Category::Channel, "*", "*"))
            .collect();
        assert_eq!(channels.len(), 2);
        assert_eq!(
            subkeys(&db.find_registrations(Category::Channel, "*", "*")),
            ["b", "b"]
        );

        assert_eq!(
            db.remove_producer(&Registration::channel("a", "b"), "1"),
            (true, 1)
        );
        assert_eq!(
            db.remove_producer(&Registration::channel("a", "b"), "1"),
            (false, 1)
        );
        assert_eq!(
            db.remove_producer(&Registration::channel("x", "y"), "1"),
            (false, 0)
        );
        assert_eq!(
            db.remove_producer(&Registration::channel("a", "b"), "2"),
            (true, 0)
        );
        // the key stays with no producers
        assert_eq!(db.find_registrations(Category::Channel, "a", "b").len(), 1);
        assert!(db.find_producers(Category::Channel, "a", "b").is_empty());

        db.remove_registration(&Registration::channel("a", "b"));
        assert!(db
            .find_registrations(Category::Channel, "a", "b")
            .is_empty());
    }

    #[test]
    fn unknown_peers_are_never_producers() {
        let mut db = RegistrationDb::new();
        assert!(!db.add_producer(Registration::topic("t"), "ghost"));
        assert!(db.find_producers(Category::Topic, "t", "").is_empty());
        assert_eq!(db.touch_peer("ghost", T0), None);
    }

    #[test]
    fn add_peer_registers_client_once() {
        let mut db = db_with_peers(&[("1", 1)]);
        assert!(!db.add_peer("1", peer(9), T0));
        let clients = db.find_producers(Category::Client, "", "");
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].info.tcp_port, 1, "first info is kept");
    }

    #[test]
    fn remove_peer_keeps_keys() {
        let mut db = db_with_peers(&[("1", 1), ("2", 2)]);
        db.add_producer(Registration::topic("t"), "1");
        db.add_producer(Registration::channel("t", "c"), "1");
        db.add_producer(Registration::topic("t"), "2");
        let removed = db.remove_peer("1");
        assert_eq!(removed.len(), 3);
        assert!(db.lookup_registrations("1").is_empty());
        assert_eq!(ids(&db.find_producers(Category::Topic, "t", "")), ["2"]);
        assert_eq!(db.find_registrations(Category::Channel, "t", "c").len(), 1);
        assert_eq!(db.touch_peer("1", T0), None);
        // Same address reconnecting starts clean.
        assert!(db.add_peer("1", peer(1), T0));
        assert!(db.add_producer(Registration::topic("t"), "1"));
    }

    #[test]
    fn inactive_producers_are_filtered() {
        let mut db = db_with_peers(&[("1", 1), ("2", 2)]);
        db.add_producer(Registration::topic("t"), "1");
        db.add_producer(Registration::topic("t"), "2");
        let timeout = Duration::from_secs(30);
        let lifetime = Duration::from_secs(45);
        assert_eq!(db.touch_peer("2", T0 + 20 * SEC), Some(T0));
        let active = |db: &RegistrationDb, now| {
            let producers = db.find_producers(Category::Topic, "t", "");
            let active: Vec<_> = producers
                .into_iter()
                .filter(|p| p.is_active(timeout, lifetime, now))
                .collect();
            ids(&active)
        };
        assert_eq!(
            active(&db, T0 + 30 * SEC),
            ["1", "2"],
            "exactly at the timeout"
        );
        assert_eq!(active(&db, T0 + 30 * SEC + 1), ["2"]);
        assert!(active(&db, T0 + 51 * SEC).is_empty());
    }

    #[test]
    fn tombstones_expire_and_survive_reregistration() {
        let mut db = db_with_peers(&[("1", 1), ("2", 2)]);
        for id in ["1", "2"] {
            db.add_producer(Registration::topic("t"), id);
            db.add_producer(Registration::topic("u"), id);
        }
        let lifetime = Duration::from_secs(45);
        let timeout = Duration::from_secs(300);
        // peer 1 is b_addr:2
        assert_eq!(db.tombstone_topic_producer("t", "b_addr:2", T0), 1);
        assert_eq!(db.tombstone_topic_producer("t", "nobody:1", T0), 0);
        let active_in = |db: &RegistrationDb, topic: &str, now| {
            let producers = db.find_producers(Category::Topic, topic, "");
            let active: Vec<_> = producers
                .into_iter()
                .filter(|p| p.is_active(timeout, lifetime, now))
                .collect();
            ids(&active)
        };
        assert_eq!(active_in(&db, "t", T0 + SEC), ["2"]);
        assert_eq!(
            active_in(&db, "u", T0 + SEC),
            ["1", "2"],
            "other topics unaffected"
        );
        // REGISTER again does not clear it (AddProducer keeps the old entry).
        assert!(!db.add_producer(Registration::topic("t"), "1"));
        assert_eq!(active_in(&db, "t", T0 + SEC), ["2"]);
        // Expired after the lifetime.
        assert_eq!(active_in(&db, "t", T0 + 45 * SEC), ["1", "2"]);
        // Unregister + register is a fresh membership without a tombstone.
        db.tombstone_topic_producer("t", "b_addr:2", T0 + 50 * SEC);
        db.remove_producer(&Registration::topic("t"), "1");
        db.add_producer(Registration::topic("t"), "1");
        assert_eq!(active_in(&db, "t", T0 + 51 * SEC), ["1", "2"]);
    }

    #[test]
    fn wildcard_tombstone_hits_one_key_per_peer() {
        let mut db = db_with_peers(&[("1", 1)]);
        db.add_producer(Registration::topic("a"), "1");
        db.add_producer(Registration::topic("b"), "1");
        assert_eq!(db.tombstone_topic_producer("*", "b_addr:2", T0), 1);
        let lifetime = Duration::from_secs(45);
        let tombstoned: Vec<bool> = ["a", "b"]
            .iter()
            .map(|t| {
                db.find_producers(Category::Topic, t, "")[0]
                    .producer
                    .is_tombstoned(lifetime, T0)
            })
            .collect();
        assert_eq!(tombstoned, [true, false]);
    }

    #[test]
    fn dump_skips_empty_keys() {
        let mut db = db_with_peers(&[("1", 1)]);
        db.add_registration(Registration::topic("empty"));
        db.add_producer(Registration::topic("t"), "1");
        let keys: Vec<String> = db
            .dump()
            .map(|(r, p)| format!("{}:{}:{}={}", r.category.as_str(), r.key, r.subkey, p.len()))
            .collect();
        assert_eq!(keys, ["client::=1", "topic:t:=1"]);
    }
}
