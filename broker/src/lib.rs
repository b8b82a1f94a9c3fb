//! nsqd: a thread-per-core, drop-in replacement for NSQ's nsqd.
//!
//! # Layout, in dependency order (each module uses only those above it)
//! - [`message`], [`idmap`] (maps keyed by message ID), [`config`], [`log`],
//!   [`tls`] (rustls settings, the bounded handshake), [`auth`] (auth server
//!   queries, authorizations), [`wire`] (a connection's TLS and compression
//!   layers), [`client`] (one connection's state), [`stats`] (`/stats`
//!   documents, e2e latency, statsd lines), [`metrics`] (per-core counters, Prometheus
//!   text), [`metadata`] (`nsqd.dat`): leaves.
//! - [`backend`], [`acklog`]: a queue's disk side; [`ctx`]: a shard's
//!   storage context; [`queue_store`]: a queue's storage (memory, disk,
//!   health, sync), held by every topic part and channel; [`peers`]: the other shards (mesh handle, `ShardMsg`,
//!   channel routing).
//! - [`upgrade`]: startup import of the original nsqd's disk queues.
//! - [`channel`]: a channel on its owner shard: queue, in-flight, deferred.
//! - [`topic`]: a topic's part on one shard: store, then fan out to channels.
//! - [`shard`]: the per-core state, its control operations and background
//!   loops (sync, nsqd.dat, nsqlookupd).
//! - [`protocol`]: the TCP protocol: the per-connection loop
//!   (`protocol::conn`), command execution (`protocol::exec`), the writer
//!   (`protocol::pump`); [`http`]: the HTTP API.
//! - [`inbox`]: applies what other shards send; [`server`]: startup.
//!
//! The message path, in order: `protocol::conn` reads a PUB, `protocol::exec`
//! stores it with `topic::Topic::put` on the same core and answers OK;
//! the topic's pump hands it to each channel (`channel::Channel::put_batch`,
//! or a `peers::msg::ShardMsg::Deliver` batch to another core); the
//! channel's `dispatch` encodes it into a ready consumer's buffer;
//! `protocol::pump` writes it out.

pub mod acklog;
pub mod auth;
pub mod backend;
pub mod channel;
pub mod client;
pub mod config;
pub mod ctx;
pub mod http;
pub mod idmap;
pub mod inbox;
pub mod log;
pub mod message;
pub mod metadata;
pub mod metrics;
pub mod peers;
pub mod protocol;
pub mod queue_store;
pub mod server;
pub mod shard;
pub mod stats;

pub mod tls;
pub mod topic;
pub mod upgrade;
pub mod wire;
