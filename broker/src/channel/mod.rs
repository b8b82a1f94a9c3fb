//! A channel: its memory queue, its consumers, and its in-flight and deferred
//! messages.
//!
//! Lives on: the channel's owner shard only (see `peers::routing::owner_of`).
//! Every consumer of the channel has been moved to this shard at SUB, so RDY,
//! FIN, REQ, TOUCH, timeouts and delivery are all local, single-threaded code.
//! Topic parts on other shards hand messages in through `ShardMsg::Deliver`;
//! they never touch this struct.
//!
//! Storage (`QueueStore`): the memory queue holds up to `--mem-queue-size`
//! messages; the rest go to the channel's disk queue, read back when the
//! memory queue is empty. The disk queue (and the acknowledgement log with
//! it) is opened off the core, only once needed: at 3/4 of the memory bound
//! (at creation with `--mem-queue-size=0`); what must go to disk before it
//! is open is held by the store and written once it is (the topic waits
//! for that before releasing a batch read from its own disk). A message read from disk stays on disk until it is
//! FINished (`recovery` remembers its record): a crash replays it instead of
//! losing it. With `--mem-queue-size=0` every message, deferred ones
//! included, goes through disk, so nothing acknowledged is held only in
//! memory. What a restart must not replay is decided in `recovery`.
//!
//! Delivery is push-based, not a per-client pump task: when a message arrives
//! or a consumer becomes ready, `dispatch` hands queued messages to ready
//! consumers round-robin, encoding each straight into that consumer's output
//! buffer. No task wake-up or allocation per message.

pub mod deferred;
pub mod inflight;
pub mod recovery;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use nsq_io::signal::Signal;
use nsq_proto::MessageId;

use crate::backend::SyncKind;
use crate::client::Client;
use crate::ctx::ShardCtx;
use crate::message::Message;
use crate::queue_store::{DiskSpec, Kind, QueueStore, Start};
use crate::stats::latency::LatencyWindow;
use crate::stats::snapshot::{ChannelStats, E2eLatency};
use deferred::DeferredQueue;
use inflight::{InFlight, InFlightError, InFlightTable};
use recovery::Recovery;

/// Seeds the sampling generator (with the clock): the 64-bit golden ratio.
const RNG_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// IDENTIFY's `sample_rate` is a percentage.
const SAMPLE_PERCENT: u64 = 100;

/// One channel. Lives on: its owner shard.
#[derive(Debug)]
pub struct Channel {
    /// Topic name.
    pub topic: Rc<str>,
    /// Channel name.
    pub name: Rc<str>,
    /// `#ephemeral`: deleted with its last consumer, overflow dropped.
    pub ephemeral: bool,
    ctx: Rc<ShardCtx>,
    /// Memory queue and disk queue.
    store: QueueStore,
    /// What a restart must replay and what it must skip.
    recovery: RefCell<Recovery>,
    in_flight: RefCell<InFlightTable>,
    deferred: RefCell<DeferredQueue>,
    consumers: RefCell<Vec<Rc<Client>>>,
    cursor: Cell<usize>,
    paused: Cell<bool>,
    deleted: Cell<bool>,
    message_count: Cell<u64>,
    requeue_count: Cell<u64>,
    timeout_count: Cell<u64>,
    /// Deliveries to consumers (redeliveries included) and FINs, for
    /// `/metrics` (nsqd's `/stats` has no such channel counts).
    delivered_count: Cell<u64>,
    finished_count: Cell<u64>,
    /// Wakes the timer task when an earlier deadline appears.
    timer_wake: Signal,
    /// When the timer task will next wake (None: not armed). Compared with
    /// each new deadline instead of peeking at the heaps per message.
    timer_at: Cell<Option<Instant>>,
    rng: Cell<u64>,
    /// Publish-to-FIN latency, when `--e2e-processing-latency-percentile`
    /// is set (nsqd keeps no stream otherwise).
    e2e: Option<RefCell<LatencyWindow>>,
}

impl Channel {
    /// Create the channel and start its timer task on the current shard.
    /// Its disk queue starts as `start` says (see `QueueStore`): at run
    /// time probed for leftover files on the blocking pool, never opened on
    /// the core.
    pub fn create(topic: Rc<str>, name: &str, ctx: Rc<ShardCtx>, start: Start) -> Rc<Channel> {
        let ephemeral = nsq_proto::names::is_ephemeral(name);
        let capacity = ctx.opts.mem_queue_size as usize;
        let e2e_off = ctx.opts.e2e_processing_latency_percentiles.is_empty();
        let e2e_window = ctx.opts.e2e_processing_latency_window_time;
        let channel = Rc::new_cyclic(|me: &std::rc::Weak<Channel>| {
            let me = me.clone();
            let disk = (!ephemeral).then(|| DiskSpec {
                name: queue_name(&topic, name),
                kind: Kind::Channel,
                start,
                eager: capacity == 0,
                // Runs after the disk opened (or failed), held messages
                // written: take what the open found, then deliver.
                on_ready: Box::new(move |found| {
                    if let Some(ch) = me.upgrade() {
                        if let Some(found) = found {
                            ch.recovery.borrow_mut().install(found);
                        }
                        ch.dispatch();
                    }
                }),
            });
            let (store, found) = QueueStore::new(
                ctx.clone(),
                format!("CHANNEL({topic}:{name})"),
                capacity,
                disk,
            );
            let mut recovery = Recovery::default();
            if let Some(found) = found {
                recovery.install(found);
            }
            Channel {
                ephemeral,
                name: Rc::from(name),
                topic,
                ctx,
                store,
                recovery: RefCell::new(recovery),
                in_flight: RefCell::new(InFlightTable::default()),
                deferred: RefCell::new(DeferredQueue::default()),
                consumers: RefCell::new(Vec::new()),
                cursor: Cell::new(0),
                paused: Cell::new(false),
                deleted: Cell::new(false),
                message_count: Cell::new(0),
                requeue_count: Cell::new(0),
                timeout_count: Cell::new(0),
                delivered_count: Cell::new(0),
                finished_count: Cell::new(0),
                timer_wake: Signal::new(),
                timer_at: Cell::new(None),
                rng: Cell::new(RNG_SEED ^ (crate::message::now_ns() as u64)),
                e2e: (!e2e_off)
                    .then(|| RefCell::new(LatencyWindow::new(e2e_window, Instant::now()))),
            }
        });
        glommio::spawn_local(timer_loop(
            Rc::downgrade(&channel),
            channel.timer_wake.clone(),
        ))
        .detach();
        channel
    }

    /// Nothing waits to be written to the channel's disk (see
    /// [`settled`](Self::settled)).
    pub fn is_settled(&self) -> bool {
        self.store.is_settled()
    }

    /// Wait until what the channel holds for its disk while that opens is
    /// written: a topic part releases a batch read from its own disk only
    /// once every channel stored it (durability sequence, step 5).
    pub async fn settled(&self) {
        self.store.settled().await;
    }

    /// Accept a batch handed over by a topic part, then deliver once for
    /// the whole batch.
    pub fn put_batch(&self, msgs: &[Message]) {
        if self.deleted.get() {
            return;
        }
        // What fits in memory goes there; the rest goes to disk in one
        // write (not one write per message).
        let room = self.store.room();
        let (head, tail) = msgs.split_at(room.min(msgs.len()));
        for msg in head {
            self.enqueue(msg.clone());
        }
        self.put_tail(tail);
    }

    /// As [`Channel::put_batch`] for the batch's last recipient: the
    /// messages move into memory instead of being cloned and dropped (two
    /// atomic reference-count updates per message saved).
    pub fn put_batch_owned(&self, mut msgs: Vec<Message>) {
        if self.deleted.get() {
            return;
        }
        let room = self.store.room().min(msgs.len());
        for msg in msgs.drain(..room) {
            self.enqueue(msg);
        }
        self.put_tail(&msgs);
    }

    /// What did not fit in memory: to disk, or dropped for an ephemeral
    /// channel; then deliver.
    fn put_tail(&self, tail: &[Message]) {
        if !tail.is_empty() {
            if self.ephemeral {
                // Dropped beyond the bound, as nsqd; still counted.
                self.message_count
                    .set(self.message_count.get() + tail.len() as u64);
            } else {
                self.spill(tail);
            }
        }
        self.dispatch();
    }

    /// Write messages that do not fit in memory to disk in one batch
    /// (deferred ones keep their due time in the record). While the disk
    /// opens the store holds them and writes them once it is open.
    fn spill(&self, msgs: &[Message]) {
        self.message_count
            .set(self.message_count.get() + msgs.len() as u64);
        if self.store.append_batch(msgs).is_err() {
            // Keep them rather than drop them (health reports it).
            self.store.extend(msgs.iter().cloned());
        }
    }

    /// Accept one message handed over by a topic part.
    pub fn put(&self, msg: Message) {
        self.enqueue(msg);
        self.dispatch();
    }

    fn enqueue(&self, msg: Message) {
        if self.deleted.get() {
            return;
        }
        self.message_count.set(self.message_count.get() + 1);
        if let Some(due) = msg.deliver_at() {
            if due > Instant::now() {
                // Memory-only mode keeps deferrals in the heap (nsqd does);
                // with --mem-queue-size=0 they go to disk with their due time.
                if self.store.capacity() > 0 || self.store.append(&msg).is_err() {
                    self.defer(due, msg);
                }
                return;
            }
        }
        if self.store.has_room() {
            self.store.push(msg);
        } else if self.ephemeral {
            // Ephemeral channels drop what exceeds the bound, as nsqd does.
        } else if self.store.append(&msg).is_err() {
            // Never drop what was acknowledged: keep it in memory, past the
            // bound, while the disk is failing (health says so).
            self.store.push(msg);
        }
    }

    /// The next message from disk (deferred ones go to the heap on the way).
    /// Copies are skipped: records a later one replaces, and replays of a
    /// message this channel still holds (after a crash the topic may hand
    /// over again what the channel already stored).
    fn read_disk(&self) -> Option<Message> {
        loop {
            let read = self.store.read()?;
            let admitted =
                self.recovery
                    .borrow_mut()
                    .admit(read.msg.id, read.pos, &self.in_flight.borrow());
            if !admitted {
                self.store.finish(&[read.pos]);
                continue;
            }
            match read.msg.deliver_at() {
                Some(due) if due > Instant::now() => self.defer(due, read.msg),
                _ => return Some(read.msg),
            }
        }
    }

    /// The channel is done with a message: release its disk record, if any,
    /// and with `ack` log it as finished (not for a REQ rewrite: the message
    /// lives on in its new record).
    fn release(&self, id: &MessageId, ack: bool) {
        let Some(pos) = self.recovery.borrow_mut().release(id) else {
            return;
        };
        self.store.finish(&[pos]);
        if ack {
            self.store.ack(*id);
            self.recovery.borrow_mut().ack(*id);
        }
    }

    /// Requeue a message we already hold (timeout, REQ 0, deferral due).
    /// It may exceed the memory bound: it was already accepted.
    fn requeue_now(&self, msg: Message) {
        self.store.push(msg);
    }

    fn defer(&self, due: Instant, msg: Message) {
        self.deferred.borrow_mut().push(due, msg);
        self.arm_timer(due);
    }

    /// Make sure the timer task wakes by `at`.
    fn arm_timer(&self, at: Instant) {
        if self.timer_at.get().is_none_or(|t| at < t) {
            self.timer_at.set(Some(at));
            self.timer_wake.notify();
        }
    }

    /// Deliver queued messages to ready consumers, round-robin.
    pub fn dispatch(&self) {
        if self.paused.get() || self.deleted.get() {
            return;
        }
        // One clock read per dispatch round, not per message.
        let now = Instant::now();
        loop {
            let Some(client) = self.next_ready() else {
                return;
            };
            let next = self.store.pop();
            let Some(mut msg) = next.or_else(|| self.read_disk()) else {
                // Nothing more to send now: waiting for output_buffer_timeout
                // would only add latency (up to 250 ms by default), since no
                // further message will fill the buffer meanwhile.
                self.flush_consumers();
                return;
            };
            if self.in_flight.borrow().contains(&msg.id) {
                // A second copy of a message in flight (a replay): the
                // in-flight table holds one entry per ID.
                continue;
            }
            let sample_rate = client.sample_rate();
            if sample_rate > 0 && (self.random() % SAMPLE_PERCENT) as i32 > sample_rate {
                // nsqd drops sampled-out messages for the whole channel.
                self.release(&msg.id, true);
                continue;
            }
            msg.set_attempts(msg.attempts().saturating_add(1));
            let deadline = now + client.msg_timeout();
            client.send_message(&msg);
            self.ctx.counters.message_out();
            self.delivered_count.set(self.delivered_count.get() + 1);
            self.in_flight.borrow_mut().insert(InFlight {
                msg,
                client_id: client.id,
                deadline,
                delivered_at: now,
            });
            self.arm_timer(deadline);
        }
    }

    /// Ask every consumer's writer to flush what it has buffered.
    fn flush_consumers(&self) {
        for c in self.consumers.borrow().iter() {
            c.flush_now();
        }
    }

    /// The next consumer, after the last one served, that can take a message.
    fn next_ready(&self) -> Option<Rc<Client>> {
        let consumers = self.consumers.borrow();
        let n = consumers.len();
        let start = self.cursor.get();
        for i in 0..n {
            let idx = (start + i) % n;
            if consumers[idx].is_ready_for_messages() {
                self.cursor.set(idx + 1);
                return Some(consumers[idx].clone());
            }
        }
        None
    }

    fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// Add a subscribed consumer. Fails when `--max-channel-consumers` is reached.
    pub fn add_consumer(&self, client: Rc<Client>) -> Result<(), String> {
        let max = self.ctx.opts.max_channel_consumers;
        let mut consumers = self.consumers.borrow_mut();
        if max > 0 && consumers.len() as i64 >= max as i64 {
            return Err(format!(
                "consumers for {}:{} exceeds limit of {}",
                self.topic, self.name, max
            ));
        }
        if self.deleted.get() {
            return Err("channel is exiting".into());
        }
        consumers.push(client);
        Ok(())
    }

    /// Remove a consumer (its connection ended). Its in-flight messages stay
    /// until they time out, as in nsqd. Returns true when an ephemeral channel
    /// just lost its last consumer and must be deleted.
    pub fn remove_consumer(&self, client_id: u64) -> bool {
        let mut consumers = self.consumers.borrow_mut();
        consumers.retain(|c| c.id != client_id);
        self.ephemeral && consumers.is_empty() && !self.deleted.get()
    }

    /// FIN: the consumer is done with the message.
    pub fn finish(&self, client: &Client, id: &MessageId) -> Result<(), InFlightError> {
        let entry = self.in_flight.borrow_mut().remove(id, client.id)?;
        if let Some(e2e) = &self.e2e {
            let published = entry.msg.timestamp;
            e2e.borrow_mut()
                .record(published, crate::message::now_ns(), Instant::now());
        }
        self.release(id, true);
        self.finished_count.set(self.finished_count.get() + 1);
        client.on_finished();
        self.dispatch();
        Ok(())
    }

    /// REQ: put the message back now (`delay` zero) or after `delay`.
    pub fn requeue(
        &self,
        client: &Client,
        id: &MessageId,
        delay: Duration,
    ) -> Result<(), InFlightError> {
        let entry = self.in_flight.borrow_mut().remove(id, client.id)?;
        client.on_requeued();
        self.requeue_count.set(self.requeue_count.get() + 1);
        if delay.is_zero() {
            self.requeue_now(entry.msg);
        } else {
            let due = Instant::now() + delay;
            let mut msg = entry.msg;
            msg.set_deliver_at(Some(due));
            // Durable mode: rewrite it with its due time, release the old
            // record, so a crash neither loses nor hurries the deferral.
            if self.store.capacity() == 0
                && self.recovery.borrow().from_disk(&msg.id)
                && self.store.append_superseding(&msg).is_ok()
            {
                self.release(&msg.id, false);
            } else {
                self.defer(due, msg);
            }
        }
        self.dispatch();
        Ok(())
    }

    /// TOUCH: restart the message's timeout.
    pub fn touch(&self, client: &Client, id: &MessageId) -> Result<(), InFlightError> {
        let deadline = self.in_flight.borrow_mut().touch(
            id,
            client.id,
            Instant::now(),
            client.msg_timeout(),
            self.ctx.opts.max_msg_timeout,
        )?;
        self.arm_timer(deadline);
        Ok(())
    }

    /// Time out due in-flight messages and release due deferred ones.
    /// Returns the next time there is work.
    pub fn process_timers(&self, now: Instant) -> Option<Instant> {
        let mut expired = Vec::new();
        self.in_flight.borrow_mut().pop_expired(now, &mut expired);
        for entry in expired {
            self.timeout_count.set(self.timeout_count.get() + 1);
            if let Some(client) = self.consumer(entry.client_id) {
                client.on_timed_out();
            }
            self.requeue_now(entry.msg);
        }
        let mut due = Vec::new();
        self.deferred.borrow_mut().pop_due(now, &mut due);
        for msg in due {
            self.requeue_now(msg);
        }
        self.dispatch();
        let next_flight = self.in_flight.borrow_mut().next_deadline();
        let next_deferred = self.deferred.borrow().next_due();
        match (next_flight, next_deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn consumer(&self, client_id: u64) -> Option<Rc<Client>> {
        self.consumers
            .borrow()
            .iter()
            .find(|c| c.id == client_id)
            .cloned()
    }

    /// A consumer changed its RDY or in-flight count: deliver if it can take more.
    pub fn consumer_ready_changed(&self) {
        self.dispatch();
    }

    /// Pause or unpause delivery.
    pub fn set_paused(&self, paused: bool) {
        self.paused.set(paused);
        for c in self.consumers.borrow().iter() {
            c.set_channel_paused(paused);
            c.wake_writer();
        }
        if !paused {
            self.dispatch();
        }
    }

    /// Paused?
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Drop every queued, in-flight and deferred message (nsqd `Empty`).
    pub fn empty(&self) {
        self.in_flight.borrow_mut().clear();
        self.deferred.borrow_mut().clear();
        self.recovery.borrow_mut().clear();
        self.store.empty();
        for c in self.consumers.borrow().iter() {
            c.reset_in_flight();
        }
    }

    /// Delete: drop all messages and disconnect the consumers.
    pub fn delete(&self) {
        self.empty();
        self.deleted.set(true);
        self.store.delete();
        self.timer_wake.notify();
        let consumers = std::mem::take(&mut *self.consumers.borrow_mut());
        for c in consumers {
            c.close();
        }
    }

    /// Deleted already?
    pub fn is_deleted(&self) -> bool {
        self.deleted.get()
    }

    /// Graceful exit (nsqd's channel `flush`): write what only memory holds
    /// (queued, in-flight and deferred messages, with their attempts and
    /// remaining delay) to disk and sync. Messages that came from disk are
    /// still there, unfinished, and will be read again after the restart.
    pub async fn close(&self) {
        self.deleted.set(true);
        self.timer_wake.notify();
        let mut keep = self.store.take_memory();
        keep.extend(
            self.in_flight
                .borrow_mut()
                .clear()
                .into_iter()
                .map(|e| e.msg),
        );
        keep.extend(self.deferred.borrow_mut().clear());
        let origins = self.recovery.borrow_mut().take_origins();
        let only_in_memory = keep.iter().filter(|m| !origins.contains_key(&m.id));
        self.store.close(only_in_memory).await;
        let consumers = std::mem::take(&mut *self.consumers.borrow_mut());
        for c in consumers {
            c.close();
        }
    }

    /// The shard's sync task (see `QueueStore::sync_if_needed`); the
    /// acknowledgement log is written with it.
    pub async fn sync_if_needed(&self, kind: SyncKind) {
        self.store.sync_if_needed(kind).await;
    }

    /// Snapshot for /stats.
    pub fn stats(&self, include_clients: bool) -> ChannelStats {
        let consumers = self.consumers.borrow();
        let (depth, backend_depth) = self.store.depths();
        ChannelStats {
            channel_name: self.name.to_string(),
            depth,
            backend_depth,
            in_flight_count: self.in_flight.borrow().len() as i64,
            deferred_count: self.deferred.borrow().len() as i64,
            message_count: self.message_count.get(),
            requeue_count: self.requeue_count.get(),
            timeout_count: self.timeout_count.get(),
            client_count: consumers.len() as i64,
            clients: include_clients.then(|| consumers.iter().map(|c| c.stats()).collect()),
            paused: self.paused.get(),
            e2e_processing_latency: E2eLatency::default(),
            delivered_count: self.delivered_count.get(),
            finished_count: self.finished_count.get(),
            e2e_samples: self
                .e2e
                .as_ref()
                .map(|e2e| e2e.borrow_mut().snapshot(Instant::now())),
        }
    }
}

/// The disk queue name of a channel: `~` and `:` cannot occur in names, so
/// no two queues share a file prefix.
pub fn queue_name(topic: &str, channel: &str) -> String {
    format!("{topic}:{channel}~")
}

/// Sleeps until the channel's next in-flight deadline or deferral is due
/// (no periodic scan: an idle channel costs nothing), or until woken because
/// an earlier one was added. Exits when the channel is dropped or deleted.
async fn timer_loop(channel: std::rc::Weak<Channel>, wake: Signal) {
    let mut next: Option<Instant> = None;
    loop {
        match next {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                future::or(wake.wait(), glommio::timer::sleep(wait)).await;
            }
            None => wake.wait().await,
        }
        let Some(ch) = channel.upgrade() else { return };
        if ch.is_deleted() {
            return;
        }
        next = ch.process_timers(Instant::now());
        // Whoever adds an earlier deadline than this wakes us (arm_timer).
        ch.timer_at.set(next);
    }
}
