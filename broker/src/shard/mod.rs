//! The per-core root: one `Shard` per executor, owning that core's topic
//! parts, channels and connections.
//!
//! Lives on: every shard (one per core), behind an `Rc`; nothing in it is
//! `Send`. Other shards reach it only through `ShardMsg`s on the mesh, which
//! `run_mesh_receiver` drains: deliveries are applied inline (no await, so a
//! receiver never blocks on another shard and the mesh cannot deadlock);
//! control requests and adopted connections get their own task.

pub mod ctx;
pub mod msg;
pub mod routing;
pub mod tasks;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use glommio::channels::shared_channel::ConnectedReceiver;
use nsq_io::mesh::Mesh;

use crate::backend::SyncKind;
use crate::channel::Channel;
use crate::client::Client;
use crate::config::Options;
use crate::message::IdGen;
use crate::metadata::{self, ChannelMeta, Metadata, TopicMeta};
use crate::stats::snapshot::{ClientStats, TopicStats};
use crate::topic::{ChannelRef, Topic};
use futures_lite::future;
use msg::{ControlOp, ControlReply, ShardMsg};
use nsq_io::signal::Signal;
use std::path::PathBuf;
use tasks::lookupd::Event;

/// Longest a new topic's parts wait for its channels to be pre-created from
/// nsqlookupd before handing messages out anyway: above the query's own
/// bounds (connect plus request timeout, as nsqd's http client).
const PRECREATE_HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(15);

/// Addresses every shard listens on (same ports on all shards, SO_REUSEPORT).
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// TCP protocol listener.
    pub tcp: SocketAddr,
    /// HTTP listener, if enabled.
    pub http: Option<SocketAddr>,
}

/// One core's broker state. Lives on: every shard.
#[derive(Debug)]
pub struct Shard {
    /// This shard's index.
    pub id: usize,
    /// Number of shards.
    pub shards: usize,
    /// Immutable options (the only thing shared by all cores).
    pub opts: Arc<Options>,
    /// Queues to the other shards.
    pub mesh: Mesh<ShardMsg>,
    /// Listening addresses.
    pub listen: Listen,
    /// Process start, Unix seconds.
    pub start_time: i64,
    /// Message IDs minted on this shard.
    pub ids: IdGen,
    /// nsqlookupd TCP addresses: `--lookupd-tcp-address`, changeable at
    /// runtime through `PUT /config/nsqlookupd_tcp_addresses`.
    pub lookupd_addresses: RefCell<Vec<String>>,
    /// `--data-path` (resolved).
    pub data_path: PathBuf,
    /// What topics and channels need from the shard (storage, health).
    pub ctx: Rc<ctx::ShardCtx>,
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
        id: usize,
        opts: Arc<Options>,
        mesh: Mesh<ShardMsg>,
        listen: Listen,
        start_time: i64,
        data_path: PathBuf,
    ) -> Rc<Shard> {
        Rc::new(Shard {
            ctx: Rc::new(ctx::ShardCtx::new(id, opts.clone(), data_path.clone()).with_pump_queue()),
            data_path,
            metadata_wake: Signal::new(),
            id,
            shards: mesh.shards(),
            ids: IdGen::new(id, opts.node_id as u64),
            lookupd_addresses: RefCell::new(opts.nsqlookupd_tcp_addresses.clone()),
            opts,
            mesh,
            listen,
            start_time,
            lookup: (id == 0).then(tasks::lookupd::Lookup::default),
            topics: RefCell::new(HashMap::new()),
            clients: RefCell::new(HashMap::new()),
            next_client: Cell::new(1),
        })
    }

    /// Start the control-plane tasks (on shard 0).
    pub fn start_tasks(self: &Rc<Self>) {
        if let Some(lookup) = &self.lookup {
            lookup.reconcile(self, &self.lookupd_addresses.borrow());
        }
        if self.id == 0 {
            glommio::spawn_local(metadata_loop(
                Rc::downgrade(self),
                self.metadata_wake.clone(),
            ))
            .detach();
        }
        glommio::spawn_local(sync_loop(Rc::downgrade(self), self.ctx.sync_wake.clone())).detach();
    }

    /// Recreate the topics and channels of nsqd.dat. Every shard runs this
    /// with the same list before accepting connections,
    /// so no announcement is needed: each shard builds the full picture.
    pub fn restore(self: &Rc<Self>, topics: &[TopicMeta]) {
        for meta in topics {
            let part = self.open_topic_part(&meta.name);
            part.set_paused(meta.paused);
            for channel in meta.channels.iter().flatten() {
                let owner = routing::owner_of(&meta.name, &channel.name, self.shards);
                if owner == self.id {
                    let ch = Channel::create(part.name.clone(), &channel.name, self.ctx.clone());
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
        for to in (0..self.shards).filter(|s| *s != self.id) {
            self.call(to, ControlOp::Barrier).await;
        }
    }

    /// Shutdown phase 2 (SIGTERM/SIGINT), nsqd's order: metadata, then every
    /// channel and topic part writes what only memory holds to disk and syncs.
    /// Every shard must have stopped handing messages over before any
    /// closes (see `server::run`), or a batch in flight could be lost.
    pub async fn shutdown(self: &Rc<Self>) {
        if self.id == 0 {
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
        if self.id == 0 {
            self.metadata_wake.notify();
            return;
        }
        let msg = ShardMsg::Control {
            op: ControlOp::PersistMetadata,
            reply: None,
        };
        if let Err(Some(msg)) = self.mesh.try_send(0, msg) {
            let shard = self.clone();
            glommio::spawn_local(async move {
                let _ = shard.mesh.send(0, msg).await;
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
        let dir = self.data_path.clone();
        let result = glommio::executor()
            .spawn_blocking(move || metadata::save(&dir, &meta))
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

    /// Everything to REGISTER on a fresh lookupd connection: each channel,
    /// or the bare topic when it has none (nsqd's connectCallback).
    pub fn registrations(&self) -> Vec<Event> {
        let mut events = Vec::new();
        for (name, topic) in self.topics.borrow().iter() {
            let channels = topic.channel_names();
            if channels.is_empty() {
                events.push(Event::Register(name.clone(), None));
            }
            for channel in channels {
                events.push(Event::Register(name.clone(), Some(channel)));
            }
        }
        events
    }

    /// A node-unique client ID (shard index in the high bits).
    pub fn new_client_id(&self) -> u64 {
        let n = self.next_client.get();
        self.next_client.set(n + 1);
        ((self.id as u64) << 48) | n
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
    pub fn topic_or_create(self: &Rc<Self>, name: &str) -> Rc<Topic> {
        if let Some(t) = self.topic(name) {
            return t;
        }
        let topic = self.create_local_topic(name);
        crate::log_info!("TOPIC({name}): created");
        if !topic.ephemeral {
            self.request_metadata_save();
        }
        let shard = self.clone();
        let name = name.to_string();
        glommio::spawn_local(async move {
            shard
                .broadcast_others(ControlOp::CreateTopic(name.clone()), false)
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
            let owner = routing::owner_of(topic, &channel, self.shards);
            let op = ControlOp::CreateChannel(topic.to_string(), channel.clone());
            self.call(owner, op).await;
        }
        for to in 0..self.shards {
            self.call(to, ControlOp::StartTopic(topic.to_string()))
                .await;
        }
    }

    /// Create the local part of a topic that exists (or is being created)
    /// elsewhere, without announcing it. While channels are pre-created from
    /// nsqlookupd, the part is held until the creating shard's `StartTopic`;
    /// a timer bounds the hold in case that never comes (the creating shard
    /// saw the topic deleted and recreated meanwhile, say).
    fn create_local_topic(self: &Rc<Self>, name: &str) -> Rc<Topic> {
        if let Some(t) = self.topic(name) {
            return t;
        }
        let topic = self.open_topic_part(name);
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

    /// Open a topic part and register it (startup restore: never held).
    fn open_topic_part(self: &Rc<Self>, name: &str) -> Rc<Topic> {
        if let Some(t) = self.topic(name) {
            return t;
        }
        let topic = Topic::create(name, self);
        self.topics
            .borrow_mut()
            .insert(name.to_string(), topic.clone());
        self.notify_lookup(Event::Register(name.to_string(), None));
        topic
    }

    /// Create a topic on every shard and wait until all have it.
    pub async fn create_topic_everywhere(self: &Rc<Self>, name: &str) {
        self.topic_or_create(name);
        self.broadcast_others(ControlOp::CreateTopic(name.to_string()), true)
            .await;
    }

    /// Get or create a channel this shard owns. A new channel is announced to
    /// every shard, and this returns only when all of them know it: from then
    /// on every publish, on any core, reaches the channel (nsqd's guarantee
    /// that a SUB's OK means subsequent publishes are seen).
    pub async fn ensure_channel(self: &Rc<Self>, topic: &str, channel: &str) -> Rc<Channel> {
        let part = self.topic_or_create(topic);
        if let Some(ch) = part.local_channel(channel) {
            return ch;
        }
        let ch = Channel::create(part.name.clone(), channel, self.ctx.clone());
        part.add_channel(ChannelRef::Local(ch.clone()));
        self.notify_lookup(Event::Register(
            topic.to_string(),
            Some(channel.to_string()),
        ));
        crate::log_info!("TOPIC({topic}): new channel({channel})");
        let op = ControlOp::ChannelCreated {
            topic: topic.to_string(),
            channel: channel.to_string(),
            owner: self.id,
        };
        self.broadcast_others(op, true).await;
        if !ch.ephemeral {
            self.request_metadata_save();
        }
        ch
    }

    /// Delete a channel this shard owns and tell the other shards.
    pub async fn delete_local_channel(self: &Rc<Self>, topic: &str, channel: &str) -> bool {
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
            self.delete_local_topic(topic);
        }
        let op = ControlOp::ChannelDeleted {
            topic: topic.to_string(),
            channel: channel.to_string(),
        };
        self.broadcast_others(op, true).await;
        self.request_metadata_save();
        true
    }

    fn delete_local_topic(&self, name: &str) -> bool {
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

    /// Run `op` on shard `to` and wait for its answer.
    pub async fn call(self: &Rc<Self>, to: usize, op: ControlOp) -> ControlReply {
        if to == self.id {
            return Box::pin(self.handle_control(op)).await;
        }
        let (tx, rx) = flume::bounded(1);
        let msg = ShardMsg::Control {
            op,
            reply: Some(tx),
        };
        if self.mesh.send(to, msg).await.is_err() {
            return ControlReply::NotFound;
        }
        rx.recv_async().await.unwrap_or(ControlReply::NotFound)
    }

    /// Run `op` on every shard (this one included) and collect the answers.
    pub async fn call_all(self: &Rc<Self>, op: ControlOp) -> Vec<ControlReply> {
        let mut replies = Vec::with_capacity(self.shards);
        for to in 0..self.shards {
            replies.push(self.call(to, op.clone()).await);
        }
        replies
    }

    /// Send `op` to every other shard; with `wait`, until all have applied it.
    async fn broadcast_others(self: &Rc<Self>, op: ControlOp, wait: bool) {
        for to in (0..self.shards).filter(|s| *s != self.id) {
            if wait {
                self.call(to, op.clone()).await;
            } else {
                let msg = ShardMsg::Control {
                    op: op.clone(),
                    reply: None,
                };
                let _ = self.mesh.send(to, msg).await;
            }
        }
    }

    /// Apply one control operation on this shard.
    pub async fn handle_control(self: &Rc<Self>, op: ControlOp) -> ControlReply {
        match op {
            ControlOp::CreateTopic(name) => {
                self.create_local_topic(&name);
                ControlReply::Ok
            }
            ControlOp::StartTopic(name) => {
                if let Some(part) = self.topic(&name) {
                    part.start();
                }
                ControlReply::Ok
            }
            ControlOp::LookupdChannels(topic) => {
                let names = match &self.lookup {
                    Some(lookup) => {
                        let configured = !self.lookupd_addresses.borrow().is_empty();
                        lookup.topic_channels(&topic, configured).await
                    }
                    None => Vec::new(),
                };
                ControlReply::Channels(names)
            }
            ControlOp::DeleteTopic(name) => {
                if self.delete_local_topic(&name) {
                    crate::log_info!("TOPIC({name}): deleted");
                    self.request_metadata_save();
                    ControlReply::Ok
                } else {
                    ControlReply::NotFound
                }
            }
            ControlOp::EmptyTopic(name) => self.with_topic(&name, |t| t.empty()),
            ControlOp::PauseTopic(name, paused) => {
                self.request_metadata_save();
                self.with_topic(&name, |t| t.set_paused(paused))
            }
            ControlOp::ChannelCreated {
                topic,
                channel,
                owner,
            } => {
                let part = self.create_local_topic(&topic);
                if !part.has_channel(&channel) {
                    self.notify_lookup(Event::Register(topic.clone(), Some(channel.clone())));
                }
                part.add_channel(ChannelRef::Remote {
                    shard: owner,
                    name: Rc::from(channel.as_str()),
                });
                ControlReply::Ok
            }
            ControlOp::ChannelDeleted { topic, channel } => {
                if let Some(part) = self.topic(&topic) {
                    if part.has_channel(&channel) {
                        self.notify_lookup(Event::Unregister(topic.clone(), Some(channel.clone())));
                    }
                    if part.remove_channel(&channel) && part.ephemeral {
                        self.delete_local_topic(&topic);
                    }
                }
                ControlReply::Ok
            }
            ControlOp::CreateChannel(topic, channel) => {
                self.ensure_channel(&topic, &channel).await;
                ControlReply::Ok
            }
            ControlOp::DeleteChannel(topic, channel) => {
                if self.delete_local_channel(&topic, &channel).await {
                    ControlReply::Ok
                } else {
                    ControlReply::NotFound
                }
            }
            ControlOp::EmptyChannel(topic, channel) => {
                self.with_channel(&topic, &channel, |c| c.empty())
            }
            ControlOp::PauseChannel(topic, channel, paused) => {
                self.request_metadata_save();
                self.with_channel(&topic, &channel, |c| c.set_paused(paused))
            }
            ControlOp::SetLookupdAddresses(addrs) => {
                if let Some(lookup) = &self.lookup {
                    lookup.reconcile(self, &addrs);
                }
                *self.lookupd_addresses.borrow_mut() = addrs;
                ControlReply::Ok
            }
            ControlOp::Metadata => ControlReply::Metadata(self.metadata_part()),
            ControlOp::Barrier => ControlReply::Ok,
            ControlOp::Health => match self.health_error() {
                Some(err) => ControlReply::Unhealthy(err),
                None => ControlReply::Ok,
            },
            ControlOp::PersistMetadata => {
                self.metadata_wake.notify();
                ControlReply::Ok
            }
            ControlOp::Stats {
                topic,
                channel,
                include_clients,
            } => {
                let (topics, producers) =
                    self.stats(topic.as_deref(), channel.as_deref(), include_clients);
                ControlReply::Stats(topics, producers)
            }
        }
    }

    fn with_topic(&self, name: &str, f: impl FnOnce(&Topic)) -> ControlReply {
        match self.topic(name) {
            Some(t) => {
                f(&t);
                ControlReply::Ok
            }
            None => ControlReply::NotFound,
        }
    }

    fn with_channel(&self, topic: &str, channel: &str, f: impl FnOnce(&Channel)) -> ControlReply {
        match self.topic(topic).and_then(|t| t.local_channel(channel)) {
            Some(c) => {
                f(&c);
                ControlReply::Ok
            }
            None => ControlReply::NotFound,
        }
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
    fn deliver(&self, topic: &str, channels: &[String], msgs: Vec<Message>) {
        let Some(part) = self.topic(topic) else {
            return;
        };
        let targets: Vec<Rc<Channel>> = channels
            .iter()
            .filter_map(|name| part.local_channel(name))
            .collect();
        for ch in &targets {
            ch.put_batch(&msgs);
        }
    }
}

use crate::message::Message;

/// nsqd's `--sync-timeout` / `--sync-every`: sync dirty disk queues every
/// sync-timeout, or at once when a queue reached sync-every operations.
async fn sync_loop(shard: Weak<Shard>, wake: Signal) {
    let mut next_full = std::time::Instant::now();
    loop {
        let interval = match shard.upgrade() {
            Some(s) => s.opts.sync_timeout.max(std::time::Duration::from_millis(1)),
            None => return,
        };
        let now = std::time::Instant::now();
        if now >= next_full {
            next_full = now + interval;
        }
        future::or(wake.wait(), glommio::timer::sleep(next_full - now)).await;
        let Some(shard) = shard.upgrade() else { return };
        let kind = if std::time::Instant::now() >= next_full {
            SyncKind::Full
        } else {
            SyncKind::Data
        };
        shard.sync_all(kind).await;
    }
}

/// Writes nsqd.dat whenever asked, coalescing bursts of changes (shard 0).
async fn metadata_loop(shard: Weak<Shard>, wake: Signal) {
    loop {
        wake.wait().await;
        // Let a burst of creates/deletes settle into one write.
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        let Some(shard) = shard.upgrade() else { return };
        shard.save_metadata().await;
    }
}

/// Drain the queue from one peer shard for as long as the process runs.
pub async fn run_mesh_receiver(shard: Rc<Shard>, rx: ConnectedReceiver<ShardMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            ShardMsg::Deliver {
                topic,
                channels,
                msgs,
                ack,
            } => {
                shard.deliver(&topic, &channels, msgs);
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
            ShardMsg::Adopt(handoff) => {
                glommio::spawn_local(crate::client::conn::adopt(shard.clone(), *handoff)).detach();
            }
            ShardMsg::Control { op, reply } => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let answer = shard.handle_control(op).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                })
                .detach();
            }
        }
    }
}
