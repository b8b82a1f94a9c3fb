//! A topic part: the share of a topic that lives on one shard.
//!
//! Lives on: every shard, one part per topic (parts are created on all shards
//! when the topic is created anywhere). A publish is stored in the part of the
//! shard that received it and acknowledged from there: no cross-core hop
//! before the OK. The part's pump then hands messages to every channel of the
//! topic: directly to channels this shard owns, and in batches over the mesh
//! (`ShardMsg::Deliver`, one per destination shard, not per channel) to
//! channels other shards own. That hand-off is the only time a message crosses
//! cores.
//!
//! Bounds: the part holds at most `--mem-queue-size` messages. It hands a
//! channel only what fits under the channel's bound (read from its atomic
//! gauge), so a slow channel makes the part fill up and then publishes fail
//! with E_PUB_FAILED: back-pressure, never a silent drop. Disk overflow comes
//! with the storage work; until then that is the documented behaviour.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_lite::future;
use nsq_io::signal::Signal;

use crate::channel::{Channel, Gauge};
use crate::message::Message;
use crate::shard::msg::ShardMsg;
use crate::shard::Shard;
use crate::stats::snapshot::{E2eLatency, TopicStats};

/// Most messages moved per pump step: bounds the time one topic holds the core.
const PUMP_BATCH: usize = 1024;

/// How long a pump blocked by a full channel waits before looking again. A
/// full channel does not notify topic parts on other cores, so this is a poll,
/// but only while blocked.
const BLOCKED_RETRY: Duration = Duration::from_millis(1);

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
        /// The owner's depth gauge.
        gauge: Gauge,
        /// `#ephemeral` (no bound: it drops its own overflow).
        ephemeral: bool,
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

    fn gauge(&self) -> &Gauge {
        match self {
            ChannelRef::Local(c) => &c.gauge,
            ChannelRef::Remote { gauge, .. } => gauge,
        }
    }

    fn ephemeral(&self) -> bool {
        match self {
            ChannelRef::Local(c) => c.ephemeral,
            ChannelRef::Remote { ephemeral, .. } => *ephemeral,
        }
    }
}

/// Why a publish was refused.
#[derive(Debug)]
pub enum PutError {
    /// Memory queue full (and no disk overflow yet).
    Full(usize),
    /// Topic deleted or broker exiting.
    Exiting,
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::Full(n) => write!(
                f,
                "memory queue full ({n} messages, --mem-queue-size) and disk overflow is not available"
            ),
            PutError::Exiting => f.write_str("exiting"),
        }
    }
}

/// One topic's part on this shard.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: Rc<str>,
    /// `#ephemeral`.
    pub ephemeral: bool,
    queue: RefCell<VecDeque<Message>>,
    capacity: usize,
    channels: RefCell<Vec<ChannelRef>>,
    paused: Cell<bool>,
    deleted: Cell<bool>,
    message_count: Cell<u64>,
    message_bytes: Cell<u64>,
    wake: Signal,
}

impl Topic {
    /// Create a part and start its pump on the current shard.
    pub fn create(name: &str, shard: &Rc<Shard>) -> Rc<Topic> {
        let topic = Rc::new(Topic {
            name: Rc::from(name),
            ephemeral: nsq_proto::names::is_ephemeral(name),
            queue: RefCell::new(VecDeque::new()),
            capacity: shard.opts.mem_queue_size as usize,
            channels: RefCell::new(Vec::new()),
            paused: Cell::new(false),
            deleted: Cell::new(false),
            message_count: Cell::new(0),
            message_bytes: Cell::new(0),
            wake: Signal::new(),
        });
        glommio::spawn_local(pump(Rc::downgrade(&topic), Rc::downgrade(shard))).detach();
        topic
    }

    /// Store one published message (PUB, DPUB).
    pub fn put(&self, msg: Message) -> Result<(), PutError> {
        self.check_room(1)?;
        self.count(&msg);
        self.queue.borrow_mut().push_back(msg);
        self.wake.notify();
        Ok(())
    }

    /// Store a batch atomically: all or none (MPUB).
    pub fn put_batch(&self, msgs: Vec<Message>) -> Result<(), PutError> {
        self.check_room(msgs.len())?;
        let mut queue = self.queue.borrow_mut();
        for msg in msgs {
            self.count(&msg);
            queue.push_back(msg);
        }
        self.wake.notify();
        Ok(())
    }

    fn check_room(&self, n: usize) -> Result<(), PutError> {
        if self.deleted.get() {
            return Err(PutError::Exiting);
        }
        if self.queue.borrow().len() + n > self.capacity {
            return Err(PutError::Full(self.capacity));
        }
        Ok(())
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

    /// Pause or unpause: a paused topic keeps its messages.
    pub fn set_paused(&self, paused: bool) {
        self.paused.set(paused);
        self.wake.notify();
    }

    /// Paused?
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Drop the messages queued in this part (nsqd topic `Empty`).
    pub fn empty(&self) {
        self.queue.borrow_mut().clear();
    }

    /// Delete this part and the channels this shard owns.
    pub fn delete(&self) {
        self.deleted.set(true);
        self.queue.borrow_mut().clear();
        let channels = std::mem::take(&mut *self.channels.borrow_mut());
        for c in channels {
            if let ChannelRef::Local(ch) = c {
                ch.delete();
            }
        }
        self.wake.notify();
    }

    /// Snapshot for /stats: this part's counts and the channels it owns.
    pub fn stats(&self, channel: Option<&str>, include_clients: bool) -> TopicStats {
        let channels = self
            .local_channels()
            .iter()
            .filter(|c| channel.is_none_or(|name| &*c.name == name))
            .map(|c| c.stats(include_clients))
            .collect();
        TopicStats {
            topic_name: self.name.to_string(),
            channels,
            depth: self.queue.borrow().len() as i64,
            backend_depth: 0,
            message_count: self.message_count.get(),
            message_bytes: self.message_bytes.get(),
            paused: self.paused.get(),
            e2e_processing_latency: E2eLatency::default(),
        }
    }

    /// How many messages every channel can take now (None: no channels).
    fn budget(&self) -> Option<usize> {
        let channels = self.channels.borrow();
        if channels.is_empty() {
            return None;
        }
        let mut budget = PUMP_BATCH;
        for c in channels.iter().filter(|c| !c.ephemeral()) {
            let depth = c.gauge().load(Ordering::Relaxed).max(0) as usize;
            budget = budget.min(self.capacity.saturating_sub(depth));
        }
        Some(budget)
    }
}

/// Move messages from the part to its channels. Runs while the topic part
/// exists; sleeps on `wake` when there is nothing to do.
async fn pump(topic: Weak<Topic>, shard: Weak<Shard>) {
    let mut blocked = false;
    loop {
        let wake = match topic.upgrade() {
            Some(t) => t.wake.clone(),
            None => return,
        };
        if blocked {
            future::or(wake.wait(), glommio::timer::sleep(BLOCKED_RETRY)).await;
        } else {
            wake.wait().await;
        }
        blocked = false;
        loop {
            let (Some(t), Some(shard)) = (topic.upgrade(), shard.upgrade()) else {
                return;
            };
            if t.deleted.get() {
                return;
            }
            if t.paused.get() || t.queue.borrow().is_empty() {
                break;
            }
            let Some(budget) = t.budget() else { break };
            if budget == 0 {
                blocked = true;
                break;
            }
            let batch: Vec<Message> = {
                let mut q = t.queue.borrow_mut();
                let n = budget.min(q.len());
                q.drain(..n).collect()
            };
            let channels = t.channels.borrow().clone();
            let mut remote: Vec<(usize, Vec<String>)> = Vec::new();
            for c in &channels {
                c.gauge().fetch_add(batch.len() as i64, Ordering::Relaxed);
                match c {
                    ChannelRef::Local(ch) => ch.put_batch(&batch),
                    ChannelRef::Remote { shard, name, .. } => {
                        match remote.iter_mut().find(|(s, _)| s == shard) {
                            Some((_, names)) => names.push(name.to_string()),
                            None => remote.push((*shard, vec![name.to_string()])),
                        }
                    }
                }
            }
            let name = t.name.to_string();
            drop(t);
            for (to, names) in remote {
                let deliver = ShardMsg::Deliver {
                    topic: name.clone(),
                    channels: names,
                    msgs: batch.clone(),
                };
                // Waits while the destination's queue is full: back-pressure.
                if shard.mesh.send(to, deliver).await.is_err() {
                    crate::log_error!(
                        "TOPIC({name}): shard {to} is gone, messages for its channels dropped"
                    );
                }
            }
            glommio::yield_if_needed().await;
        }
    }
}
