//! Everything that crosses cores: the only `Send` types the broker passes
//! between shards.
//!
//! Ownership: a variant's data belongs to the receiving shard once sent.
//! `Message` bodies are `Bytes`: the sender keeps its own references (for its
//! local channels), the atomic refcount is the only thing both cores touch.

use std::os::fd::OwnedFd;

use bytes::BytesMut;

use crate::client::ClientInfo;
use crate::message::Message;
use crate::metadata::TopicMeta;
use crate::metrics::ShardFigures;
use crate::stats::snapshot::{ClientStats, PubCount, TopicStats};

/// A message from one shard to another.
#[derive(Debug)]
pub enum ShardMsg {
    /// Messages of `topic` for the receiver's channels named in `channels`.
    Deliver {
        /// Topic name.
        topic: String,
        /// Channels on the receiving shard.
        channels: Vec<String>,
        /// The messages, in publish order.
        msgs: Vec<Message>,
        /// Answered once the channels stored the batch: the sender then
        /// releases the messages from its disk queue (only for batches read
        /// from disk; `None` otherwise).
        ack: Option<flume::Sender<()>>,
    },
    /// A connection that sent SUB for a channel the receiver owns.
    Adopt(Box<Handoff>),
    /// A control-plane request; the reply (if asked for) goes back on `reply`.
    Control {
        /// What to do.
        op: ControlOp,
        /// Where to answer; `None` for fire-and-forget notifications.
        reply: Option<flume::Sender<ControlReply>>,
    },
}

/// A subscribed connection moving to its channel's owner shard.
#[derive(Debug)]
pub struct Handoff {
    /// The socket (a dup; the sender closed its own descriptor).
    pub fd: OwnedFd,
    /// TLS session and compression state, with what they hold of bytes
    /// received but not yet decoded.
    pub wire: Option<Box<crate::wire::Wire>>,
    /// Bytes read (and decoded) after the SUB command (e.g. a pipelined
    /// `RDY`).
    pub leftover: BytesMut,
    /// Client ID (kept, so stats and logs follow the connection).
    pub client_id: u64,
    /// Peer address.
    pub remote_address: String,
    /// Connect time, Unix seconds.
    pub connect_ts: i64,
    /// Negotiated settings.
    pub info: ClientInfo,
    /// message, finish, requeue counts.
    pub counters: (u64, u64, u64),
    /// Publish counts so far.
    pub pub_counts: Vec<PubCount>,
    /// Topic to subscribe to.
    pub topic: String,
    /// Channel to subscribe to.
    pub channel: String,
}

/// Control-plane operations. Broadcast ones go to every shard; channel ones
/// go to the channel's owner.
#[derive(Debug, Clone)]
pub enum ControlOp {
    /// Make sure a topic part exists.
    AddTopicPart(String),
    /// Start a topic part held while its channels were pre-created from
    /// nsqlookupd (sent by the shard that created the topic).
    StartTopic(String),
    /// Ask nsqlookupd which channels a new topic has (shard 0 only: it holds
    /// the nsqlookupd peers). Answered with [`ControlReply::Channels`].
    LookupdChannels(String),
    /// Delete the topic part and local channels.
    DeleteTopic(String),
    /// Drop the part's queued messages.
    EmptyTopic(String),
    /// Pause (true) or unpause.
    PauseTopic(String, bool),
    /// A channel now exists on `owner`: add it to the topic part.
    AddRemoteChannel {
        /// Topic name.
        topic: String,
        /// Channel name.
        channel: String,
        /// Owner shard.
        owner: usize,
    },
    /// A channel is gone: remove it from the topic part.
    RemoveRemoteChannel {
        /// Topic name.
        topic: String,
        /// Channel name.
        channel: String,
    },
    /// (owner) create a channel and announce it.
    GetOrCreateChannel(String, String),
    /// (owner) delete a channel and announce it.
    DeleteChannel(String, String),
    /// (owner) empty a channel.
    EmptyChannel(String, String),
    /// (owner) pause or unpause a channel.
    PauseChannel(String, String, bool),
    /// Replace the nsqlookupd address list (PUT /config/nsqlookupd_tcp_addresses).
    SetLookupdAddresses(Vec<String>),
    /// No-op whose answer proves every earlier message from the caller was
    /// applied (shutdown).
    Barrier,
    /// Report this shard's topics and owned channels for nsqd.dat.
    Metadata,
    /// (shard 0) something changed: write nsqd.dat soon.
    PersistMetadata,
    /// Report this shard's disk health.
    Health,
    /// Report this shard's stats.
    Stats {
        /// Only this topic.
        topic: Option<String>,
        /// Only this channel.
        channel: Option<String>,
        /// Include per-client entries.
        include_clients: bool,
    },
    /// Report this shard's stats and per-core figures for `/metrics`.
    Metrics {
        /// Include per-client entries (`--metrics-per-client`).
        include_clients: bool,
    },
}

/// Answers to [`ControlOp`].
#[derive(Debug)]
pub enum ControlReply {
    /// Done.
    Ok,
    /// The topic or channel does not exist on this shard.
    NotFound,
    /// This shard's last disk error (it is unhealthy).
    Unhealthy(String),
    /// A shard's part of nsqd.dat.
    Metadata(Vec<TopicMeta>),
    /// A shard's partial stats.
    Stats(Vec<TopicStats>, Vec<ClientStats>),
    /// A shard's partial stats and its per-core figures.
    Metrics(Vec<TopicStats>, Box<ShardFigures>),
    /// Channel names nsqlookupd knows for a topic.
    Channels(Vec<String>),
}
