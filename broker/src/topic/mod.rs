//! A topic part: the share of a topic that lives on one shard.
//!
//! Lives on: every shard, one part per topic (parts are created on all shards
//! when the topic is created anywhere). A publish is stored in the part of the
//! shard that received it and acknowledged from there: no cross-core hop
//! before the OK. Stored means in the part's memory queue (up to
//! `--mem-queue-size`) or else in its disk queue (`QueueStore`); with
//! `--ack-after-fsync`, always on disk and fdatasync'ed before the OK.
//!
//! The part's pump then hands messages to every channel of the topic:
//! directly to channels this shard owns, and in batches over the mesh
//! (`ShardMsg::Deliver`, one per destination shard, not per channel) to
//! channels other shards own. That hand-off is the only time a message
//! crosses cores. A message read from the part's disk queue is finished there
//! (so a restart does not replay it) only after every channel has stored it,
//! remote ones included (they acknowledge the batch, once stored: a channel
//! whose disk is still opening holds the batch until it is written).
//!
//! The part's disk queue is opened off the core and only when needed (see
//! `QueueStore`): a publish that must go to disk while it is not open yet
//! is held and acknowledged once written ([`Stored::Pending`]); a publish
//! to memory or to an open disk never waits for anything new.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use nsq_io::segment::Pos;
use nsq_io::signal::Signal;

use crate::backend::SyncKind;
use crate::channel::Channel;
use crate::ctx::ShardCtx;
use crate::message::Message;
use crate::peers::msg::ShardMsg;
use crate::peers::Peers;
use crate::queue_store::{DiskSpec, Kind, QueueStore, Start, StoreError, Ticket, Written};
use crate::stats::snapshot::{E2eLatency, TopicStats};

/// Most messages moved per pump step: bounds the time one topic holds the core.
const PUMP_BATCH: usize = 1024;

/// A channel as seen from a topic part.
#[derive(Debug, Clone)]
pub enum ChannelRef {
    /// Owned by this shard.
    Local(Rc<Channel>),
    /// Owned by another shard.
    Remote {
        /// Owner shard.
        shard: usize,
        /// Channel name.
        name: Rc<str>,
    },
}

impl ChannelRef {
    /// Channel name.
    pub fn name(&self) -> &str {
        match self {
            ChannelRef::Local(c) => &c.name,
            ChannelRef::Remote { name, .. } => name,
        }
    }
}

/// Why a publish was refused.
#[derive(Debug)]
pub enum PutError {
    /// Topic deleted or broker exiting.
    Exiting,
    /// The disk queue failed (full disk, I/O error).
    Disk(String),
}

impl From<StoreError> for PutError {
    fn from(e: StoreError) -> PutError {
        PutError::Disk(e.to_string())
    }
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::Exiting => f.write_str("exiting"),
            PutError::Disk(e) => write!(f, "disk write failed - {e}"),
        }
    }
}

/// Where a publish was stored.
#[derive(Debug, Clone)]
pub enum Stored {
    /// In the memory queue (or dropped: ephemeral overflow, as nsqd).
    Memory,
    /// In the disk queue, ending at this position.
    Disk(Pos),
    /// Held while the disk queue opens (off the core): answer the publisher
    /// only once it is written ([`Topic::wait_durable`]), so an
    /// acknowledged message is on disk as with an open queue.
    Pending(Ticket),
}

/// One topic's part on this shard.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: Rc<str>,
    /// `#ephemeral`: no disk, overflow dropped.
    pub ephemeral: bool,
    ctx: Rc<ShardCtx>,
    /// Memory queue and disk queue.
    store: QueueStore,
    /// `--ack-after-fsync` (never for ephemeral topics).
    durable_acks: bool,
    channels: RefCell<Vec<ChannelRef>>,
    paused: Cell<bool>,
    /// Created while nsqlookupd is configured: the pump waits until the
    /// topic's channels known to nsqlookupd exist (nsqd starts a new topic's
    /// messagePump only after pre-creating them), so none misses a message.
    held: Cell<bool>,
    deleted: Cell<bool>,
    /// Shutting down: the pump stops handing messages out.
    closing: Cell<bool>,
    /// The pump is between taking a batch and finishing its hand-off.
    pumping: Cell<bool>,
    /// Notified when `pumping` goes false (shutdown waits for it).
    pump_idle: Signal,
    message_count: Cell<u64>,
    message_bytes: Cell<u64>,
    wake: Signal,
}

/// The disk queue name of a topic part: `~` cannot occur in topic names, so
/// parts of different topics never share a file prefix.
pub fn queue_name(topic: &str, shard: usize) -> String {
    format!("{topic}~{shard}")
}

impl Topic {
    /// Create a part and start its pump. Its disk queue starts as `start`
    /// says (see `QueueStore`): at run time probed for leftover files on the
    /// blocking pool, never opened on the core.
    pub fn create(name: &str, ctx: &Rc<ShardCtx>, peers: &Rc<Peers>, start: Start) -> Rc<Topic> {
        let ctx = ctx.clone();
        let ephemeral = nsq_proto::names::is_ephemeral(name);
        let durable_acks = ctx.opts.ack_after_fsync && !ephemeral;
        // A topic has a part on every shard; together they hold at most
        // --mem-queue-size messages in memory, as nsqd's one queue does.
        let capacity = (ctx.opts.mem_queue_size as usize).div_ceil(peers.shards);
        let topic = Rc::new_cyclic(|me: &Weak<Topic>| {
            let me = me.clone();
            // Without a disk queue (failed to open: unhealthy), publishes
            // stay in memory and fail past the bound.
            let disk = (!ephemeral).then(|| DiskSpec {
                name: queue_name(name, ctx.shard),
                kind: Kind::Topic,
                start,
                eager: capacity == 0 || durable_acks,
                // Opened (a leftover backlog, held publishes written): hand
                // them out.
                on_ready: Box::new(move |_| {
                    if let Some(t) = me.upgrade() {
                        t.wake.notify();
                    }
                }),
            });
            let (store, _) = QueueStore::new(ctx.clone(), format!("TOPIC({name})"), capacity, disk);
            Topic {
                name: Rc::from(name),
                ephemeral,
                store,
                durable_acks,
                ctx,
                channels: RefCell::new(Vec::new()),
                paused: Cell::new(false),
                held: Cell::new(false),
                deleted: Cell::new(false),
                closing: Cell::new(false),
                pumping: Cell::new(false),
                pump_idle: Signal::new(),
                message_count: Cell::new(0),
                message_bytes: Cell::new(0),
                wake: Signal::new(),
            }
        });
        topic
            .ctx
            .spawn_pump(pump(Rc::downgrade(&topic), peers.clone()));
        // A recovered backlog is handed out as soon as channels exist.
        topic.wake.notify();
        topic
    }

    /// Are publishes acknowledged only after fdatasync (`--ack-after-fsync`)?
    pub fn durable_acks(&self) -> bool {
        self.durable_acks
    }

    /// Store one published message (PUB, DPUB).
    pub fn put(&self, msg: Message) -> Result<Stored, PutError> {
        if self.deleted.get() {
            return Err(PutError::Exiting);
        }
        self.count(&msg);
        let stored = self.store(msg)?;
        self.wake.notify();
        Ok(stored)
    }

    /// Store a batch (MPUB). All messages go to the same place (memory if
    /// all fit, else disk in one write); the position returned is that of
    /// the last one.
    pub fn put_batch(&self, msgs: Vec<Message>) -> Result<Stored, PutError> {
        if self.deleted.get() {
            return Err(PutError::Exiting);
        }
        for msg in &msgs {
            self.count(msg);
        }
        let capacity = self.store.capacity();
        let fits = !self.durable_acks && self.store.len() + msgs.len() <= capacity;
        if fits || (self.ephemeral && !self.store.has_disk()) {
            let room = if fits { msgs.len() } else { self.store.room() };
            // Ephemeral topics keep what fits and drop the rest, as nsqd.
            self.store.extend(msgs.into_iter().take(room));
            self.wake.notify();
            return Ok(Stored::Memory);
        }
        let stored = match self.store.append_batch(&msgs)? {
            Some(Written::At(pos)) => Stored::Disk(pos),
            Some(Written::Held(ticket)) => Stored::Pending(ticket),
            None => Stored::Memory,
        };
        self.wake.notify();
        Ok(stored)
    }

    fn store(&self, msg: Message) -> Result<Stored, PutError> {
        if !self.durable_acks && self.store.has_room() {
            self.store.push(msg);
            return Ok(Stored::Memory);
        }
        match self.store.append(&msg) {
            Ok(Written::At(pos)) => Ok(Stored::Disk(pos)),
            Ok(Written::Held(ticket)) => Ok(Stored::Pending(ticket)),
            // nsqd's ephemeral topics drop what does not fit in memory.
            Err(StoreError::NoDisk) if self.ephemeral => Ok(Stored::Memory),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait until a publish stored as `stored` may be acknowledged: a held
    /// one until it is written; with `--ack-after-fsync` until the disk
    /// queue is durable up to it (group commit, see
    /// `QueueStore::wait_durable`). Memory: at once.
    pub async fn wait_durable(&self, stored: Stored) -> Result<(), String> {
        let pos = match stored {
            Stored::Memory => return Ok(()),
            Stored::Disk(pos) => pos,
            Stored::Pending(ticket) => match self.store.wait_written(&ticket).await? {
                Some(pos) if self.durable_acks => pos,
                _ => return Ok(()),
            },
        };
        self.store.wait_durable(pos).await
    }

    fn count(&self, msg: &Message) {
        self.message_count.set(self.message_count.get() + 1);
        self.message_bytes
            .set(self.message_bytes.get() + msg.body.len() as u64);
    }

    /// A channel was created (here or on another shard).
    pub fn add_channel(&self, channel: ChannelRef) {
        let mut channels = self.channels.borrow_mut();
        if channels.iter().all(|c| c.name() != channel.name()) {
            channels.push(channel);
        }
        drop(channels);
        self.wake.notify();
    }

    /// A channel was deleted. Returns true if the topic has no channel left.
    pub fn remove_channel(&self, name: &str) -> bool {
        let mut channels = self.channels.borrow_mut();
        channels.retain(|c| c.name() != name);
        channels.is_empty()
    }

    /// The channel named `name`, if this shard owns it.
    pub fn local_channel(&self, name: &str) -> Option<Rc<Channel>> {
        self.channels.borrow().iter().find_map(|c| match c {
            ChannelRef::Local(ch) if &*ch.name == name => Some(ch.clone()),
            _ => None,
        })
    }

    /// Is there a channel named `name` (on any shard)?
    pub fn has_channel(&self, name: &str) -> bool {
        self.channels.borrow().iter().any(|c| c.name() == name)
    }

    /// Names of all the topic's channels (on any shard).
    pub fn channel_names(&self) -> Vec<String> {
        self.channels
            .borrow()
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    /// Channels this shard owns.
    pub fn local_channels(&self) -> Vec<Rc<Channel>> {
        self.channels
            .borrow()
            .iter()
            .filter_map(|c| match c {
                ChannelRef::Local(ch) => Some(ch.clone()),
                _ => None,
            })
            .collect()
    }

    /// Keep messages here until [`Topic::start`]: channels are being
    /// pre-created from nsqlookupd.
    pub fn hold(&self) {
        self.held.set(true);
    }

    /// Start handing messages to channels (after [`Topic::hold`]).
    pub fn start(&self) {
        if self.held.replace(false) {
            self.wake.notify();
        }
    }

    /// Pause or unpause: a paused topic keeps its messages.
    pub fn set_paused(&self, paused: bool) {
        self.paused.set(paused);
        self.wake.notify();
    }

    /// Paused?
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Drop the messages queued in this part, memory and disk (nsqd `Empty`).
    pub fn empty(&self) {
        self.store.empty();
    }

    /// Delete this part, its files, and the channels this shard owns.
    pub fn delete(&self) {
        self.deleted.set(true);
        self.store.delete();
        let channels = std::mem::take(&mut *self.channels.borrow_mut());
        for c in channels {
            if let ChannelRef::Local(ch) = c {
                ch.delete();
            }
        }
        self.wake.notify();
    }

    /// Shutdown phase 1: stop the pump and wait until its current hand-off
    /// (if any) has completed.
    pub async fn quiesce(&self) {
        self.closing.set(true);
        self.wake.notify();
        while self.pumping.get() {
            self.pump_idle.wait().await;
        }
    }

    /// Graceful exit: write the memory queue to disk and sync (nsqd's topic
    /// `Close`/`flush`). Ephemeral parts have nothing to keep.
    pub async fn close(&self) {
        self.deleted.set(true);
        self.wake.notify();
        let msgs = self.store.take_memory();
        self.store.close(&msgs).await;
    }

    /// The shard's sync task (see `QueueStore::sync_if_needed`).
    pub async fn sync_if_needed(&self, kind: SyncKind) {
        self.store.sync_if_needed(kind).await;
    }

    /// Snapshot for /stats: this part's counts and the channels it owns.
    pub fn stats(&self, channel: Option<&str>, include_clients: bool) -> TopicStats {
        let channels = self
            .local_channels()
            .iter()
            .filter(|c| channel.is_none_or(|name| &*c.name == name))
            .map(|c| c.stats(include_clients))
            .collect();
        let (depth, backend_depth) = self.store.depths();
        TopicStats {
            topic_name: self.name.to_string(),
            channels,
            depth,
            backend_depth,
            message_count: self.message_count.get(),
            message_bytes: self.message_bytes.get(),
            paused: self.paused.get(),
            e2e_processing_latency: E2eLatency::default(),
            e2e_samples: None,
        }
    }

    /// The next batch to hand out: memory first, then disk (with positions).
    fn take_batch(&self) -> (Vec<Message>, Vec<Pos>) {
        if !self.store.is_empty() {
            return (self.store.take_front(PUMP_BATCH), Vec::new());
        }
        let mut msgs = Vec::new();
        let mut positions = Vec::new();
        while msgs.len() < PUMP_BATCH {
            let Some(read) = self.store.read() else {
                break;
            };
            msgs.push(read.msg);
            positions.push(read.pos);
        }
        (msgs, positions)
    }
}

/// Clears `pumping` when a hand-off ends, however it ends.
struct PumpGuard(Weak<Topic>);

impl Drop for PumpGuard {
    fn drop(&mut self) {
        if let Some(t) = self.0.upgrade() {
            t.pumping.set(false);
            t.pump_idle.notify();
        }
    }
}

/// Move messages from the part to its channels. Runs while the topic part
/// exists; sleeps on `wake` when there is nothing to do.
async fn pump(topic: Weak<Topic>, peers: Rc<Peers>) {
    loop {
        let wake = match topic.upgrade() {
            Some(t) => t.wake.clone(),
            None => return,
        };
        wake.wait().await;
        loop {
            let Some(t) = topic.upgrade() else {
                return;
            };
            if t.deleted.get() || t.closing.get() {
                return;
            }
            if t.paused.get() || t.held.get() || t.channels.borrow().is_empty() {
                break;
            }
            let (mut batch, positions) = t.take_batch();
            if batch.is_empty() {
                break;
            }
            t.pumping.set(true);
            let guard = PumpGuard(Rc::downgrade(&t));
            let channels = t.channels.borrow().clone();
            let from_disk = !positions.is_empty();
            let n = batch.len();
            let mut remote: Vec<(usize, Vec<String>)> = Vec::new();
            let mut local = Vec::new();
            for c in &channels {
                match c {
                    ChannelRef::Local(ch) => local.push(ch),
                    ChannelRef::Remote { shard, name } => {
                        match remote.iter_mut().find(|(s, _)| s == shard) {
                            Some((_, names)) => names.push(name.to_string()),
                            None => remote.push((*shard, vec![name.to_string()])),
                        }
                    }
                }
            }
            // The batch's last recipient takes it; the others clone what
            // they keep.
            let mut left = local.len() + remote.len();
            // Local channels holding part of a batch from disk while their
            // own disk opens: released only once written.
            let mut unsettled = Vec::new();
            for ch in local {
                left -= 1;
                if left == 0 {
                    ch.put_batch_owned(std::mem::take(&mut batch));
                } else {
                    ch.put_batch(&batch);
                }
                if from_disk && !ch.is_settled() {
                    unsettled.push(ch.clone());
                }
            }
            let name = t.name.to_string();
            let ctx = t.ctx.clone();
            drop(t);
            let mut acks = Vec::new();
            for (to, names) in remote {
                let (ack, acked) = if from_disk {
                    let (tx, rx) = flume::bounded(1);
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let deliver = ShardMsg::Deliver {
                    topic: name.clone(),
                    channels: names,
                    msgs: {
                        left -= 1;
                        if left == 0 {
                            std::mem::take(&mut batch)
                        } else {
                            batch.clone()
                        }
                    },
                    ack,
                };
                // Waits while the destination's queue is full: back-pressure.
                if peers.send(to, deliver).await.is_err() {
                    crate::log_error!("TOPIC({name}): shard {to} is gone");
                } else {
                    ctx.counters.handed_off(n);
                }
                acks.extend(acked);
            }
            // A message read from disk is finished here only once every
            // channel has stored it.
            let mut all_stored = true;
            for ch in unsettled {
                ch.settled().await;
            }
            for rx in acks {
                all_stored &= rx.recv_async().await.is_ok();
            }
            if from_disk && all_stored {
                if let Some(t) = topic.upgrade() {
                    t.store.finish(&positions);
                }
            }
            drop(guard);
            glommio::yield_if_needed().await;
        }
    }
}
