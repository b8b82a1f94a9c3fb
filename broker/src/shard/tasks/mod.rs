//! A shard's background loops.
//!
//! - `sync`: every shard syncs its dirty disk queues (`--sync-every`,
//!   `--sync-timeout`).
//! - `metadata`: shard 0 writes nsqd.dat when topics or channels change.
//! - `lookupd`: shard 0, the control-plane home, registers topics and
//!   channels with nsqlookupd. It sees every topic and channel because topic
//!   parts and channel announcements reach every shard, so registering from
//!   one place registers each name once, however many cores hold a part of
//!   it. It is fed by an event queue in one direction (nsqd's
//!   `Notify -> lookupLoop`) and never calls back into the shard.
//! - `statsd`: shard 0 pushes nsqd's statsd lines (`--statsd-address`).
//! - `trim`: every shard returns the memory of a drained backlog to the OS.

pub mod lookupd;
pub mod metadata;
pub mod statsd;
pub mod sync;
pub mod trim;
