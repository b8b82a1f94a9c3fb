//! The per-core root: one `Shard` per executor, owning that core's topic
//! parts, channels and connections.
//!
//! Lives on: every shard (one per core), behind an `Rc`; nothing in it is
//! `Send`. Other shards reach it only through `ShardMsg`s, sent with the
//! `Peers` handle and applied by `crate::inbox` (control operations in
//! `control.rs`). Background loops live in `tasks/`.
//!
//! Lifecycle entry points (call these; the rest is internal):
//!
//! | step | entry point | runs on |
//! |---|---|---|
//! | get a topic, creating it cluster-wide if new (PUB, SUB) | [`Shard::get_or_create_topic`] | any shard; others get `AddTopicPart` |
//! | create a topic and wait until every shard has it (`/topic/create`) | [`Shard::create_topic_and_wait`] | any shard |
//! | get a channel, creating and announcing it if new (SUB, `/channel/create`) | [`Shard::get_or_create_channel`] | the owner (`GetOrCreateChannel` routes there); others get `AddRemoteChannel` |
//! | delete a channel | [`Shard::delete_owned_channel`] | the owner (`DeleteChannel`); others get `RemoveRemoteChannel` |
//! | delete a topic | `ControlOp::DeleteTopic` on every shard | every shard |
//! | recreate what nsqd.dat lists | [`Shard::restore`] | every shard, before accepting |

mod control;
pub mod tasks;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use crate::backend::SyncKind;
use crate::channel::Channel;
use crate::client::Client;
use crate::config::Options;
use crate::ctx::ShardCtx;
use crate::message::{IdGen, Message};
use crate::metadata::{self, ChannelMeta, Metadata, TopicMeta};
use crate::peers::msg::{ControlOp, ControlReply, ShardMsg};
use crate::peers::routing;
use crate::peers::Peers;
use crate::queue_store::{Inventory, Kind, Start};
use crate::stats::snapshot::{ClientStats, TopicStats};
use crate::topic::{ChannelRef, Topic};
use nsq_io::signal::Signal;
use std::path::{Path, PathBuf};
use tasks::lookupd::Event;

/// Longest a new topic's parts wait for its channels to be pre-created from
/// nsqlookupd before handing messages out anyway: above the query's own
/// bounds (connect plus request timeout, as nsqd's http client).
const PRECREATE_HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(15);

/// What this nsqd tells nsqlookupd about itself.
fn identity(opts: &Options, listen: &Listen) -> tasks::lookupd::Identity {
    use tasks::lookupd::broadcast_port;
    tasks::lookupd::Identity {
        broadcast_address: opts.broadcast_address.clone(),
        tcp_port: broadcast_port(opts.broadcast_tcp_port, listen.tcp.port()),
        http_port: broadcast_port(
            opts.broadcast_http_port,
            listen.http.map(|a| a.port()).unwrap_or(0),
        ),
        hostname: nsq_daemon::host::hostname(),
    }
}

/// Addresses every shard listens on (same ports on all shards, SO_REUSEPORT).
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// TCP protocol listener.
    pub tcp: SocketAddr,
    /// HTTP listener, if enabled.
    pub http: Option<SocketAddr>,
    /// HTTPS listener: `--https-address` with a TLS certificate configured.
    pub https: Option<SocketAddr>,
}

/// One core's broker state. Lives on: every shard.
#[derive(Debug)]
pub struct Shard {
    /// Storage context (shard index, options, data path, disk health, sync
    /// wake-up), shared with this shard's topic parts and channels.
    pub ctx: Rc<ShardCtx>,
    /// The other shards.
    pub peers: Rc<Peers>,
    /// Listening addresses.
    pub listen: Listen,
    /// TLS server settings (`--tls-cert`/`--tls-key` given), shared by the
    /// in-band upgrade and the HTTPS listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Process start, Unix seconds.
    pub start_time: i64,
    /// Message IDs minted on this shard.
    pub ids: IdGen,
    /// nsqlookupd TCP addresses: `--lookupd-tcp-address`, changeable at
    /// runtime through `PUT /config/nsqlookupd_tcp_addresses`.
    pub lookupd_addresses: RefCell<Vec<String>>,
    /// Wakes the nsqd.dat writer (shard 0 only).
    metadata_wake: Signal,
    /// nsqlookupd peers (shard 0 only: the control-plane home).
    lookup: Option<tasks::lookupd::Lookup>,
    topics: RefCell<HashMap<String, Rc<Topic>>>,
    clients: RefCell<HashMap<u64, Weak<Client>>>,
    next_client: Cell<u64>,
}

impl Shard {
    /// Build the shard root.
    pub fn new(
        opts: Arc<Options>,
        peers: Peers,
        listen: Listen,
        tls: Option<Arc<rustls::ServerConfig>>,
        start_time: i64,
        data_path: PathBuf,
    ) -> Rc<Shard> {
        let id = peers.id;
        Rc::new(Shard {
            ctx: Rc::new(ShardCtx::new(id, opts.clone(), data_path).with_pump_queue()),
            peers: Rc::new(peers),
            metadata_wake: Signal::new(),
            ids: IdGen::new(id, opts.node_id as u64),
            lookupd_addresses: RefCell::new(opts.nsqlookupd_tcp_addresses.clone()),
            listen,
            tls,
            start_time,
            lookup: (id == 0).then(|| tasks::lookupd::Lookup::new(&identity(&opts, &listen))),
            topics: RefCell::new(HashMap::new()),
            clients: RefCell::new(HashMap::new()),
            next_client: Cell::new(1),
        })
    }

    /// This shard's index.
    pub fn id(&self) -> usize {
        self.peers.id
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.peers.shards
    }

    /// The options (immutable, shared by every core).
    pub fn opts(&self) -> &Arc<Options> {
        &self.ctx.opts
    }

    /// `--data-path` (resolved).
    pub fn data_path(&self) -> &Path {
        &self.ctx.data_path
    }

    /// Start the control-plane tasks (on shard 0).
    pub fn start_tasks(self: &Rc<Self>) {
        if let Some(lookup) = &self.lookup {
            lookup.reconcile(&self.lookupd_addresses.borrow());
        }
        if self.id() == 0 {
            glommio::spawn_local(tasks::metadata::run(
                Rc::downgrade(self),
                self.metadata_wake.clone(),
            ))
            .detach();
            let opts = self.opts();
            if !opts.statsd_address.is_empty() {
                let id = identity(opts, &self.listen);
                let prefix = crate::stats::statsd::prefix(
                    &opts.statsd_prefix,
                    &id.broadcast_address,
                    id.http_port,
                );
                glommio::spawn_local(tasks::statsd::run(Rc::downgrade(self), prefix)).detach();
            }
        }
        glommio::spawn_local(tasks::trim::run(Rc::downgrade(self))).detach();
        glommio::spawn_local(tasks::sync::run(
            Rc::downgrade(self),
            self.ctx.sync_wake.clone(),
        ))
        .detach();
    }

    /// Recreate the topics and channels of nsqd.dat. Every shard runs this
    /// with the same list before accepting connections,
    /// so no announcement is needed: each shard builds the full picture.
    ///
    /// The data directory is listed once here (not once per queue): queues
    /// without files start absent, the others are opened right away, on
    /// this thread, since the shard does not serve yet. If the listing
    /// fails every queue is probed on the blocking pool instead.
    pub fn restore(self: &Rc<Self>, topics: &[TopicMeta]) {
        let mut inventory = match Inventory::list(self.data_path()) {
            Ok(inventory) => Some(inventory),
            Err(e) => {
                crate::log_error!("listing {} - {e}", self.data_path().display());
                None
            }
        };
        let mut start = |queue: &str, kind: Kind| match inventory.as_mut() {
            Some(inventory) => Start::Listed(inventory.take(queue, kind)),
            None => Start::Probe,
        };
        for meta in topics {
            let queue = crate::topic::queue_name(&meta.name, self.id());
            let part = self.open_topic_part(&meta.name, start(&queue, Kind::Topic));
            part.set_paused(meta.paused);
            for channel in meta.channels.iter().flatten() {
                let owner = routing::owner_of(&meta.name, &channel.name, self.shards());
                if owner == self.id() {
                    let queue = crate::channel::queue_name(&meta.name, &channel.name);
                    let ch = Channel::create(
                        part.name.clone(),
                        &channel.name,
                        self.ctx.clone(),
                        start(&queue, Kind::Channel),
                    );
                    ch.set_paused(channel.paused);
                    part.add_channel(ChannelRef::Local(ch));
                } else {
                    part.add_channel(ChannelRef::Remote {
                        shard: owner,
                        name: Rc::from(channel.name.as_str()),
                    });
                }
                self.notify_lookup(Event::Register(
                    meta.name.clone(),
                    Some(channel.name.clone()),
                ));
            }
        }
    }

    /// Shutdown phase 1: stop every topic pump on this shard, then make sure
    /// every peer has applied the batches already sent to it (the mesh is
    /// FIFO, so an answered barrier comes after them).
    pub async fn quiesce(self: &Rc<Self>) {
        let topics: Vec<Rc<Topic>> = self.topics.borrow().values().cloned().collect();
        for topic in &topics {
            topic.quiesce().await;
        }
        for to in (0..self.shards()).filter(|s| *s != self.id()) {
            self.call(to, ControlOp::Barrier).await;
        }
    }

    /// Shutdown phase 2 (SIGTERM/SIGINT), nsqd's order: metadata, then every
    /// channel and topic part writes what only memory holds to disk and syncs.
    /// Every shard must have stopped handing messages over before any
    /// closes (see `server::run`), or a batch in flight could be lost.
    pub async fn shutdown(self: &Rc<Self>) {
        if self.id() == 0 {
            self.save_metadata().await;
        }
        let topics: Vec<Rc<Topic>> = self.topics.borrow().values().cloned().collect();
        for topic in &topics {
            for channel in topic.local_channels() {
                channel.close().await;
            }
        }
        for topic in &topics {
            topic.close().await;
        }
    }

    /// The last disk error on this shard, if unhealthy.
    pub fn health_error(&self) -> Option<String> {
        self.ctx.health_error()
    }

    /// Sync this shard's disk queues that need it (data off the core).
    async fn sync_all(&self, kind: SyncKind) {
        let topics: Vec<Rc<Topic>> = self.topics.borrow().values().cloned().collect();
        for topic in topics {
            topic.sync_if_needed(kind).await;
            for channel in topic.local_channels() {
                channel.sync_if_needed(kind).await;
            }
        }
    }

    /// Ask shard 0 to write nsqd.dat soon (coalesced).
    pub fn request_metadata_save(self: &Rc<Self>) {
        if self.id() == 0 {
            self.metadata_wake.notify();
            return;
        }
        let msg = ShardMsg::Control {
            op: ControlOp::PersistMetadata,
            reply: None,
        };
        if let Err(Some(msg)) = self.peers.try_send(0, msg) {
            let shard = self.clone();
            glommio::spawn_local(async move {
                let _ = shard.peers.send(0, msg).await;
            })
            .detach();
        }
    }

    /// This shard's part of nsqd.dat: its (non-ephemeral) topic parts with
    /// the channels it owns.
    fn metadata_part(&self) -> Vec<TopicMeta> {
        self.topics
            .borrow()
            .values()
            .filter(|t| !t.ephemeral)
            .map(|t| TopicMeta {
                name: t.name.to_string(),
                paused: t.is_paused(),
                channels: Some(
                    t.local_channels()
                        .iter()
                        .filter(|c| !c.ephemeral)
                        .map(|c| ChannelMeta {
                            name: c.name.to_string(),
                            paused: c.is_paused(),
                        })
                        .collect(),
                ),
            })
            .collect()
    }

    /// Gather every shard's part and write nsqd.dat (shard 0).
    pub async fn save_metadata(self: &Rc<Self>) {
        let mut parts = Vec::new();
        for reply in self.call_all(ControlOp::Metadata).await {
            if let ControlReply::Metadata(part) = reply {
                parts.push(part);
            }
        }
        let meta = Metadata::merge(parts);
        let dir = self.data_path().to_path_buf();
        let result = self
            .ctx
            .counters
            .blocking(move || metadata::save(&dir, &meta))
            .await;
        if let Err(e) = result {
            crate::log_error!("failed to persist metadata - {e}");
        }
    }

    /// Tell the lookupd peers about a registration change (shard 0 only,
    /// which sees every topic and channel: each is announced once).
    fn notify_lookup(&self, event: Event) {
        if let Some(lookup) = &self.lookup {
            lookup.notify(event);
        }
    }

    /// A node-unique client ID (shard index in the high bits).
    pub fn new_client_id(&self) -> u64 {
        let n = self.next_client.get();
        self.next_client.set(n + 1);
        ((self.id() as u64) << 48) | n
    }

    /// Track a connection for /stats (producers).
    pub fn register_client(&self, client: &Rc<Client>) {
        self.clients
            .borrow_mut()
            .insert(client.id, Rc::downgrade(client));
    }

    /// Forget a connection.
    pub fn unregister_client(&self, id: u64) {
        self.clients.borrow_mut().remove(&id);
    }

    /// The topic part named `name`, if the topic exists.
    pub fn topic(&self, name: &str) -> Option<Rc<Topic>> {
        self.topics.borrow().get(name).cloned()
    }

    /// Names of all topics known here.
    pub fn topic_names(&self) -> Vec<String> {
        self.topics.borrow().keys().cloned().collect()
    }

    /// Get the topic part, creating the topic (on every shard) if new. The
    /// other shards learn of it asynchronously: this never waits, so a PUB to
    /// a new topic is still acknowledged without a cross-core round trip.
    pub fn get_or_create_topic(self: &Rc<Self>, name: &str) -> Rc<Topic> {
        if let Some(t) = self.topic(name) {
            return t;
        }
        let topic = self.add_topic_part(name);
        crate::log_info!("TOPIC({name}): created");
        if !topic.ephemeral {
            self.request_metadata_save();
        }
        let shard = self.clone();
        let name = name.to_string();
        glommio::spawn_local(async move {
            shard
                .peers
                .broadcast(ControlOp::AddTopicPart(name.clone()), false)
                .await;
            if shard.precreates_channels() {
                shard.precreate_channels(&name).await;
            }
        })
        .detach();
        topic
    }

    /// Whether a new topic's channels are pre-created from nsqlookupd (nsqd
    /// does so whenever nsqlookupd addresses are configured).
    fn precreates_channels(&self) -> bool {
        !self.lookupd_addresses.borrow().is_empty()
    }

    /// nsqd's `GetTopic` for a new topic: ask nsqlookupd for the topic's
    /// channels and create them (ephemeral ones excepted: they exist only
    /// with a consumer), then start the topic's parts on every shard. Until
    /// then the parts keep their messages, so a channel known to the cluster
    /// misses none published before its first consumer connects here.
    async fn precreate_channels(self: &Rc<Self>, topic: &str) {
        let names = match self
            .call(0, ControlOp::LookupdChannels(topic.to_string()))
            .await
        {
            ControlReply::Channels(names) => names,
            _ => Vec::new(),
        };
        for channel in names {
            if nsq_proto::names::is_ephemeral(&channel)
                || !nsq_proto::names::is_valid_channel_name(&channel)
            {
                continue;
            }
            let owner = routing::owner_of(topic, &channel, self.shards());
            let op = ControlOp::GetOrCreateChannel(topic.to_string(), channel.clone());
            self.call(owner, op).await;
        }
        for to in 0..self.shards() {
            self.call(to, ControlOp::StartTopic(topic.to_string()))
                .await;
        }
    }

    /// Create the local part of a topic that exists (or is being created)
    /// elsewhere, without announcing it. While channels are pre-created from
    /// nsqlookupd, the part is held until the creating shard's `StartTopic`;
    /// a timer bounds the hold in case that never comes (the creating shard
    /// saw the topic deleted and recreated meanwhile, say).
    fn add_topic_part(self: &Rc<Self>, name: &str) -> Rc<Topic> {
        if let Some(t) = self.topic(name) {
            return t;
        }
        let topic = self.open_topic_part(name, Start::Probe);
        if self.precreates_channels() {
            topic.hold();
            let part = Rc::downgrade(&topic);
            glommio::spawn_local(async move {
                glommio::timer::sleep(PRECREATE_HOLD_MAX).await;
                if let Some(part) = part.upgrade() {
                    part.start();
                }
            })
            .detach();
        }
        topic
    }

    /// Create a topic part and register it (startup restore: never held).
    fn open_topic_part(self: &Rc<Self>, name: &str, start: Start) -> Rc<Topic> {
        if let Some(t) = self.topic(name) {
            return t;
        }
        let topic = Topic::create(name, &self.ctx, &self.peers, start);
        self.topics
            .borrow_mut()
            .insert(name.to_string(), topic.clone());
        self.notify_lookup(Event::Register(name.to_string(), None));
        topic
    }

    /// Create a topic on every shard and wait until all have it.
    pub async fn create_topic_and_wait(self: &Rc<Self>, name: &str) {
        self.get_or_create_topic(name);
        self.peers
            .broadcast(ControlOp::AddTopicPart(name.to_string()), true)
            .await;
    }

    /// Get or create a channel this shard owns. A new channel is announced to
    /// every shard, and this returns only when all of them know it: from then
    /// on every publish, on any core, reaches the channel (nsqd's guarantee
    /// that a SUB's OK means subsequent publishes are seen).
    pub async fn get_or_create_channel(self: &Rc<Self>, topic: &str, channel: &str) -> Rc<Channel> {
        let part = self.get_or_create_topic(topic);
        if let Some(ch) = part.local_channel(channel) {
            return ch;
        }
        let ch = Channel::create(part.name.clone(), channel, self.ctx.clone(), Start::Probe);
        part.add_channel(ChannelRef::Local(ch.clone()));
        self.notify_lookup(Event::Register(
            topic.to_string(),
            Some(channel.to_string()),
        ));
        crate::log_info!("TOPIC({topic}): new channel({channel})");
        let op = ControlOp::AddRemoteChannel {
            topic: topic.to_string(),
            channel: channel.to_string(),
            owner: self.id(),
        };
        self.peers.broadcast(op, true).await;
        if !ch.ephemeral {
            self.request_metadata_save();
        }
        ch
    }

    /// Delete a channel this shard owns and tell the other shards.
    pub async fn delete_owned_channel(self: &Rc<Self>, topic: &str, channel: &str) -> bool {
        let Some(part) = self.topic(topic) else {
            return false;
        };
        let Some(ch) = part.local_channel(channel) else {
            return false;
        };
        ch.delete();
        crate::log_info!("TOPIC({topic}): deleting channel({channel})");
        let now_empty = part.remove_channel(channel);
        self.notify_lookup(Event::Unregister(
            topic.to_string(),
            Some(channel.to_string()),
        ));
        if now_empty && part.ephemeral {
            self.remove_topic_part(topic);
        }
        let op = ControlOp::RemoveRemoteChannel {
            topic: topic.to_string(),
            channel: channel.to_string(),
        };
        self.peers.broadcast(op, true).await;
        self.request_metadata_save();
        true
    }

    fn remove_topic_part(&self, name: &str) -> bool {
        let removed = self.topics.borrow_mut().remove(name);
        match removed {
            Some(t) => {
                // nsqd unregisters each channel, then the topic.
                for channel in t.channel_names() {
                    self.notify_lookup(Event::Unregister(name.to_string(), Some(channel)));
                }
                t.delete();
                self.notify_lookup(Event::Unregister(name.to_string(), None));
                true
            }
            None => false,
        }
    }

    /// Run `op` on shard `to` (this one too) and wait for its answer.
    pub async fn call(self: &Rc<Self>, to: usize, op: ControlOp) -> ControlReply {
        if to == self.id() {
            return Box::pin(self.handle_control(op)).await;
        }
        self.peers.call(to, op).await
    }

    /// Run `op` on every shard (this one included) and collect the answers.
    pub async fn call_all(self: &Rc<Self>, op: ControlOp) -> Vec<ControlReply> {
        let mut replies = Vec::with_capacity(self.shards());
        for to in 0..self.shards() {
            replies.push(self.call(to, op.clone()).await);
        }
        replies
    }

    /// Open TCP client connections on this core.
    pub fn connection_count(&self) -> usize {
        self.clients.borrow().len()
    }

    /// This shard's part of /stats: its topic parts (with the channels it
    /// owns) and its producer connections.
    pub fn stats(
        &self,
        topic: Option<&str>,
        channel: Option<&str>,
        include_clients: bool,
    ) -> (Vec<TopicStats>, Vec<ClientStats>) {
        let topics = self
            .topics
            .borrow()
            .values()
            .filter(|t| topic.is_none_or(|name| &*t.name == name))
            .map(|t| t.stats(channel, include_clients))
            .collect();
        let producers = self
            .clients
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| c.has_published())
            .map(|c| c.stats())
            .collect();
        (topics, producers)
    }

    /// Apply a batch of messages handed over by another shard's topic part.
    /// Returns the channels that hold part of it for their disk while that
    /// opens: a batch read from the sender's disk is acknowledged only once
    /// they wrote it (`Channel::settled`).
    pub fn deliver(
        &self,
        topic: &str,
        channels: &[String],
        msgs: Vec<Message>,
    ) -> Vec<Rc<Channel>> {
        let Some(part) = self.topic(topic) else {
            return Vec::new();
        };
        let targets: Vec<Rc<Channel>> = channels
            .iter()
            .filter_map(|name| part.local_channel(name))
            .collect();
        if let Some((last, others)) = targets.split_last() {
            for ch in others {
                ch.put_batch(&msgs);
            }
            last.put_batch_owned(msgs);
        }
        targets.into_iter().filter(|ch| !ch.is_settled()).collect()
    }
}
