//! nsqd: a thread-per-core, drop-in replacement for NSQ's nsqd.
//!
//! # Layout
//! - [`server`]: startup: listeners, one shard per core, the data-path lock.
//! - [`shard`]: the per-core root, cross-core messages and routing.
//! - [`topic`]: a topic's part on one shard: store, then fan out to channels.
//! - [`channel`]: a channel on its owner shard: queue, in-flight, deferred.
//! - [`client`]: the per-connection loop (`client::conn`), command execution
//!   (`client::exec`) and the writer (`client::pump`).
//! - [`http`]: the HTTP API.
//! - [`stats`]: `/stats` shapes and merging across shards.
//! - [`config`]: nsqd's flags and config file.
//! - [`metadata`]: `nsqd.dat`, the topics and channels that survive a restart.
//!
//! The message path, in order: `client::conn` reads a PUB, `client::exec`
//! stores it with `topic::Topic::put` on the same core and answers OK;
//! the topic's pump hands it to each channel (`channel::Channel::put`, or a
//! `shard::msg::ShardMsg::Deliver` batch to another core); the channel's
//! `dispatch` encodes it into a ready consumer's buffer; `client::pump`
//! writes it out.

pub mod acklog;
pub mod backend;
pub mod channel;
pub mod client;
pub mod config;
pub mod http;
pub mod log;
pub mod message;
pub mod metadata;
pub mod server;
pub mod shard;
pub mod stats;
pub mod topic;
pub mod upgrade;
