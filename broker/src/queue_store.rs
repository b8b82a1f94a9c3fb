//! One queue's storage: the memory queue, the disk queue behind it (with a
//! channel's acknowledgement log next to it), the shard's health and sync
//! wake-up. Every topic part and every channel holds one; this is the only
//! place that writes to a disk queue on the message path.
//!
//! Lives on: the shard owning the topic part or channel.
//!
//! Every disk write (plain, batch, superseding) goes through one step: write
//! to the backend; on success mark the shard healthy and wake its sync task
//! once `--sync-every` appends are due; on failure mark it unhealthy (nsqd's
//! `/ping` answers 500 until a later write succeeds). What to do when a write
//! fails (refuse the publish, keep the message in memory) is the owner's
//! policy, and so is when to use memory or disk.
//!
//! **The disk is a state machine** ([`Disk`]), because opening, creating,
//! emptying and deleting a queue's files are blocking system calls (open,
//! fallocate, fsync, readdir, unlink) that must not stall the core: they run
//! as jobs on glommio's blocking pool, one at a time per store (its runner
//! task), the queue being `Away` meanwhile. Files exist only once something
//! needs them, as in nsqd:
//!
//! - created at run time, a store starts `Away`, probing for files left
//!   over (a crash before `nsqd.dat` listed the queue): if any, they are
//!   opened and recovered there; else the store is `Absent` (no file);
//! - restored at startup, a store gets its files from the shard's one
//!   listing of the data directory ([`Inventory`]): none means `Absent`,
//!   some are opened at once (the shard is not serving yet);
//! - `Absent` becomes `Open` when memory reaches 3/4 of its bound, at once
//!   with `--mem-queue-size=0` or `--ack-after-fsync` (`eager`), and
//!   whenever a message must go to disk;
//! - a message for the disk while it is not open is **held** (in order) and
//!   written as soon as it opens. A publisher gets a [`Ticket`] and is
//!   answered only once its message is written (the topic's policy); a
//!   channel's topic waits ([`QueueStore::settled`]) before it releases a
//!   batch read from its own disk. Held messages count in the depth.
//!
//! Syncs (durability sequence step 8 in ARCHITECTURE.md) run the data
//! `fdatasync` on glommio's blocking pool, so the core keeps serving; the
//! acknowledgement log is written before each sync and rewritten after
//! each full sync.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use nsq_io::segment::{self, Pos};
use nsq_io::signal::Broadcast;
use nsq_proto::MessageId;

use crate::acklog::AckLog;
use crate::backend::{Backend, Read, SyncKind};
use crate::ctx::{QueueTurn, ShardCtx};
use crate::message::Message;

mod files;

use files::{open_files, Done, Job, OnDisk, Spec};
pub use files::{Found, Inventory, Kind, QueueFiles, Start};

/// Appended to a channel's queue name to name its acknowledgement log.
pub const ACKLOG_SUFFIX: &str = "acks";

/// Why a disk write failed.
#[derive(Debug)]
pub enum StoreError {
    /// No disk queue: an `#ephemeral` queue, one that could not be opened,
    /// or one being deleted.
    NoDisk,
    /// The disk queue failed (full disk, I/O error); the shard is unhealthy.
    Disk(segment::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NoDisk => f.write_str("no disk queue"),
            StoreError::Disk(e) => e.fmt(f),
        }
    }
}

/// What the disk and the owner learn when a job ends. Called on the shard,
/// with no borrow of the store held: the owner may use the store.
pub type OnReady = Box<dyn Fn(Option<Found>)>;

/// The disk side of a store, as [`QueueStore::new`] takes it (`None`: an
/// `#ephemeral` queue, never on disk).
pub struct DiskSpec {
    /// The queue's file name prefix (`<topic>~<shard>`, `<topic>:<channel>~`).
    pub name: String,
    /// Topic part or channel.
    pub kind: Kind,
    /// Probe at run time, or the startup listing's files.
    pub start: Start,
    /// Open (create) the files right away rather than at 3/4 of the memory
    /// bound: `--mem-queue-size=0`, `--ack-after-fsync`.
    pub eager: bool,
    /// Called whenever a job leaves the disk usable (or failed) and held
    /// messages were written: a topic wakes its pump, a channel installs
    /// what the open found and delivers.
    pub on_ready: OnReady,
}

/// The disk's state.
#[derive(Debug)]
enum Disk {
    /// `#ephemeral`: never any file.
    None,
    /// No file, nothing on disk: opened (created) when needed.
    Absent,
    /// On the blocking pool: being probed, opened, emptied or deleted.
    /// Writes are held, reads find nothing.
    Away,
    /// Open on this shard.
    Open(Box<OnDisk>),
    /// Opening failed (the shard is unhealthy): no disk, as for an
    /// ephemeral queue, but overflow is refused rather than dropped.
    Failed,
    /// Deleted (the files are gone or going).
    Deleted,
}

/// Where a write went.
#[derive(Debug)]
pub enum Written {
    /// On disk, ending at this position.
    At(Pos),
    /// Held until the disk opens; the ticket tells when it is written.
    Held(Ticket),
}

/// Publishes held while the disk opens share one: resolved when they are
/// written (the position after them, for `--ack-after-fsync`), dropped by
/// an empty (nothing to wait for), or could not be written.
#[derive(Debug, Clone, Default)]
pub struct Ticket(Rc<RefCell<Option<Outcome>>>);

/// A held write's outcome: the position after it (`None`: emptied
/// meanwhile), or why it could not be written.
pub type Outcome = Result<Option<Pos>, String>;

impl Ticket {
    fn resolve(&self, outcome: Outcome) {
        *self.0.borrow_mut() = Some(outcome);
    }

    fn outcome(&self) -> Option<Outcome> {
        self.0.borrow().clone()
    }
}

/// The storage of one topic part or channel. Lives on: its shard.
pub struct QueueStore {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for QueueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStore")
            .field("label", &self.inner.label)
            .field("memory", &self.inner.memory.borrow().len())
            .field("disk", &self.inner.disk.borrow())
            .finish_non_exhaustive()
    }
}

struct Inner {
    ctx: Rc<ShardCtx>,
    /// `TOPIC(name)` or `CHANNEL(topic:name)`: the prefix of its log lines
    /// and health errors.
    label: Box<str>,
    memory: RefCell<VecDeque<Message>>,
    capacity: usize,
    /// Memory length at which an `Absent` disk starts opening (3/4 of the
    /// bound, so it is usually open before memory overflows); `usize::MAX`
    /// when that does not apply. One compare per push.
    open_at: Cell<usize>,
    disk: RefCell<Disk>,
    /// `None` for an ephemeral queue.
    spec: Option<Spec>,
    /// Messages for the disk while it is not open, in order.
    held: RefCell<Vec<Message>>,
    /// Shared by the publishers of `held`.
    ticket: RefCell<Ticket>,
    /// The next job, the disk being `Away` for it.
    queued: RefCell<Option<Job>>,
    /// Asked while `Away`: open (create) after the current job...
    want_open: Cell<bool>,
    /// ... empty after it ...
    want_empty: Cell<bool>,
    /// ... delete after it.
    want_delete: Cell<bool>,
    /// The runner task is alive (it runs `queued` jobs one at a time).
    running: Cell<bool>,
    /// Notified when a job ended, held messages were written, the runner
    /// stopped.
    changed: Broadcast,
    on_ready: Option<OnReady>,
    /// A sync is running; group-commit waiters wait for `synced`.
    syncing: Cell<bool>,
    synced: Broadcast,
}

/// 3/4 of `capacity` (at least 1): where an absent disk starts opening.
fn open_threshold(capacity: usize) -> usize {
    (capacity - capacity / 4).max(1)
}

/// A drained memory queue keeps no more slots than this (64 bytes each).
const KEEP_SLOTS: usize = 4096;
/// A queue that drained from more slots than this held a backlog worth
/// handing back to the OS (`shard::tasks::trim`): 4 MiB of slots, and
/// bodies of 64k messages.
const BACKLOG_SLOTS: usize = 65_536;

/// Free a drained queue's slots once a burst has grown them past
/// [`KEEP_SLOTS`]: a `VecDeque` never shrinks by itself, so a topic or
/// channel that once held a million messages would keep 64 MiB after they
/// were delivered. Freeing an empty queue copies nothing; the next burst
/// grows it again by doubling (amortized O(1) per message). Returns how
/// many slots it freed.
fn release_if_drained(memory: &mut VecDeque<Message>) -> usize {
    let slots = memory.capacity();
    if memory.is_empty() && slots > KEEP_SLOTS {
        *memory = VecDeque::new();
        return slots;
    }
    0
}

impl QueueStore {
    /// A store holding up to `capacity` messages in memory, over the disk
    /// `disk` describes (`None`: `#ephemeral`, no disk). Also returns what
    /// an open at startup found (`Start::Listed` with files: opened here; a
    /// failure makes the shard unhealthy and the store has no disk).
    pub fn new(
        ctx: Rc<ShardCtx>,
        label: String,
        capacity: usize,
        disk: Option<DiskSpec>,
    ) -> (QueueStore, Option<Found>) {
        let mut state = Disk::None;
        let mut spec = None;
        let mut on_ready = None;
        let mut found = None;
        let mut first_job = None;
        let mut open_at = usize::MAX;
        if let Some(d) = disk {
            let s = Spec {
                data_path: ctx.data_path.clone(),
                name: d.name,
                opts: ctx.opts.clone(),
                kind: d.kind,
            };
            state = match d.start {
                Start::Probe => {
                    first_job = Some(Job::Open { create: d.eager });
                    Disk::Away
                }
                Start::Listed(files) if files.is_empty() => {
                    if d.eager {
                        first_job = Some(Job::Open { create: true });
                        Disk::Away
                    } else {
                        open_at = open_threshold(capacity);
                        Disk::Absent
                    }
                }
                Start::Listed(files) => match open_files(&s, &files.queue, &files.acks, false) {
                    Ok((disk, f)) => {
                        found = Some(f);
                        Disk::Open(disk)
                    }
                    Err(e) => {
                        ctx.set_unhealthy(format!("{label}: cannot open disk queue - {e}"));
                        Disk::Failed
                    }
                },
            };
            spec = Some(s);
            on_ready = Some(d.on_ready);
        }
        let store = QueueStore {
            inner: Rc::new(Inner {
                ctx,
                label: label.into_boxed_str(),
                memory: RefCell::new(VecDeque::new()),
                capacity,
                open_at: Cell::new(open_at),
                disk: RefCell::new(state),
                spec,
                held: RefCell::new(Vec::new()),
                ticket: RefCell::new(Ticket::default()),
                queued: RefCell::new(None),
                want_open: Cell::new(false),
                want_empty: Cell::new(false),
                want_delete: Cell::new(false),
                running: Cell::new(false),
                changed: Broadcast::new(),
                on_ready,
                syncing: Cell::new(false),
                synced: Broadcast::new(),
            }),
        };
        if let Some(job) = first_job {
            store.queue(job);
        }
        (store, found)
    }

    /// The memory bound (`--mem-queue-size`, or a topic part's share of it).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Messages in memory.
    #[inline]
    pub fn len(&self) -> usize {
        self.inner.memory.borrow().len()
    }

    /// Nothing in memory?
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.inner.memory.borrow().is_empty()
    }

    /// Is there room in memory for one more message?
    #[inline]
    pub fn has_room(&self) -> bool {
        self.len() < self.inner.capacity
    }

    /// How many more messages fit in memory.
    #[inline]
    pub fn room(&self) -> usize {
        self.inner.capacity.saturating_sub(self.len())
    }

    /// Queue a message in memory, past the bound if need be (the caller
    /// decided it must not be dropped).
    #[inline]
    pub fn push(&self, msg: Message) {
        let len = {
            let mut memory = self.inner.memory.borrow_mut();
            memory.push_back(msg);
            memory.len()
        };
        if len >= self.inner.open_at.get() {
            self.want_disk();
        }
    }

    /// Queue messages in memory, past the bound if need be.
    pub fn extend(&self, msgs: impl IntoIterator<Item = Message>) {
        let len = {
            let mut memory = self.inner.memory.borrow_mut();
            memory.extend(msgs);
            memory.len()
        };
        if len >= self.inner.open_at.get() {
            self.want_disk();
        }
    }

    /// The oldest message in memory.
    #[inline]
    pub fn pop(&self) -> Option<Message> {
        let mut memory = self.inner.memory.borrow_mut();
        let msg = memory.pop_front();
        if release_if_drained(&mut memory) > BACKLOG_SLOTS {
            self.inner.ctx.trim_wake.notify();
        }
        msg
    }

    /// Up to `max` of the oldest messages in memory.
    pub fn take_front(&self, max: usize) -> Vec<Message> {
        let mut memory = self.inner.memory.borrow_mut();
        let n = max.min(memory.len());
        let taken = memory.drain(..n).collect();
        if release_if_drained(&mut memory) > BACKLOG_SLOTS {
            self.inner.ctx.trim_wake.notify();
        }
        taken
    }

    /// Everything in memory (shutdown).
    pub fn take_memory(&self) -> VecDeque<Message> {
        std::mem::take(&mut *self.inner.memory.borrow_mut())
    }

    /// Does this store have a disk queue, open or to be opened?
    pub fn has_disk(&self) -> bool {
        matches!(
            *self.inner.disk.borrow(),
            Disk::Absent | Disk::Away | Disk::Open(_)
        )
    }

    /// Are the queue's files open right now? (Tests and diagnostics.)
    pub fn is_open(&self) -> bool {
        matches!(*self.inner.disk.borrow(), Disk::Open(_))
    }

    /// Append a message to disk: the position just after it, or, while the
    /// disk is not open, a ticket for when it is written.
    pub fn append(&self, msg: &Message) -> Result<Written, StoreError> {
        self.write(|b| b.put(msg), || vec![msg.clone()])
    }

    /// Append a message that supersedes the earlier records of its ID (a REQ
    /// with a delay, rewritten with its due time). Only on an open disk:
    /// the message came from it.
    pub fn append_superseding(&self, msg: &Message) -> Result<Pos, StoreError> {
        match self.write(|b| b.put_superseding(msg), Vec::new)? {
            Written::At(pos) => Ok(pos),
            Written::Held(_) => Err(StoreError::NoDisk),
        }
    }

    /// Append messages in one write per segment touched (or hold them);
    /// `None` for no message.
    pub fn append_batch(&self, msgs: &[Message]) -> Result<Option<Written>, StoreError> {
        if msgs.is_empty() {
            return Ok(None);
        }
        let pos = |b: &mut Backend| b.put_batch(msgs).map(Option::unwrap_or_default);
        self.write(pos, || msgs.to_vec()).map(Some)
    }

    /// Write to an open disk; hold `held()` while it is absent or away (an
    /// empty `held()` refuses instead).
    fn write(
        &self,
        op: impl FnOnce(&mut Backend) -> segment::Result<Pos>,
        held: impl FnOnce() -> Vec<Message>,
    ) -> Result<Written, StoreError> {
        let mut disk = self.inner.disk.borrow_mut();
        match &mut *disk {
            Disk::Open(d) => self.written(&mut d.backend, op).map(Written::At),
            Disk::Absent | Disk::Away if !self.inner.want_delete.get() => {
                drop(disk);
                let msgs = held();
                if msgs.is_empty() {
                    return Err(StoreError::NoDisk);
                }
                self.inner.held.borrow_mut().extend(msgs);
                let ticket = self.inner.ticket.borrow().clone();
                self.want_disk();
                Ok(Written::Held(ticket))
            }
            _ => Err(StoreError::NoDisk),
        }
    }

    /// The one disk-write step: write, then report health and wake the
    /// shard's sync task when `--sync-every` appends are due.
    fn written<T>(
        &self,
        b: &mut Backend,
        op: impl FnOnce(&mut Backend) -> segment::Result<T>,
    ) -> Result<T, StoreError> {
        match op(b) {
            Ok(written) => {
                self.inner.ctx.set_healthy();
                if b.needs_sync() {
                    self.inner.ctx.sync_wake.notify();
                }
                Ok(written)
            }
            Err(e) => {
                self.inner
                    .ctx
                    .set_unhealthy(format!("{}: {e}", self.inner.label));
                Err(StoreError::Disk(e))
            }
        }
    }

    /// The disk is needed: open (create) it if it is absent, or after the
    /// job under way.
    fn want_disk(&self) {
        self.inner.open_at.set(usize::MAX);
        let absent = matches!(*self.inner.disk.borrow(), Disk::Absent);
        if absent {
            *self.inner.disk.borrow_mut() = Disk::Away;
            self.queue(Job::Open { create: true });
        } else {
            self.inner.want_open.set(true);
        }
    }

    /// Run `job` next (the disk is `Away` for it); start the runner.
    fn queue(&self, job: Job) {
        // Requests made while a job is queued or running only set flags
        // (`want_*`), so there is never a second job to overwrite.
        debug_assert!(self.inner.queued.borrow().is_none());
        *self.inner.queued.borrow_mut() = Some(job);
        // Only stores with a disk get jobs.
        let Some(spec) = &self.inner.spec else { return };
        if !self.inner.running.replace(true) {
            let turn = self.inner.ctx.queue_turn(&spec.name);
            glommio::spawn_local(run(self.inner.clone(), turn)).detach();
        }
    }

    /// The next message on disk, outstanding until [`finish`](Self::finish)
    /// is given its position. `None` at the end, without an open disk, or
    /// on a read error (the shard is then unhealthy).
    pub fn read(&self) -> Option<Read> {
        let read = match &mut *self.inner.disk.borrow_mut() {
            Disk::Open(d) => d.backend.read(),
            _ => return None,
        };
        match read {
            Ok(read) => read,
            Err(e) => {
                self.inner
                    .ctx
                    .set_unhealthy(format!("{}: read - {e}", self.inner.label));
                None
            }
        }
    }

    /// Done with the records read at `positions`: the committed cursor moves
    /// past the finished prefix.
    pub fn finish(&self, positions: &[Pos]) {
        if let Disk::Open(d) = &mut *self.inner.disk.borrow_mut() {
            for pos in positions {
                d.backend.finish(*pos);
            }
            if d.backend.needs_sync() {
                self.inner.ctx.sync_wake.notify();
            }
        }
    }

    /// Rule 1: a consumer FINished `id`, read from this channel's disk: log
    /// it. (Without an open disk nothing can be replayed.)
    pub fn ack(&self, id: MessageId) {
        if let Disk::Open(d) = &mut *self.inner.disk.borrow_mut() {
            if let Some(acks) = d.acks.as_mut() {
                if let Err(e) = acks.add(id) {
                    crate::log_error!("ACKLOG({}): {e}", self.inner.label);
                }
            }
        }
    }

    /// Messages queued: `(memory and disk, disk)`, for /stats. Held
    /// messages count as disk.
    pub fn depths(&self) -> (i64, i64) {
        let mut disk = self.inner.held.borrow().len() as i64;
        if let Disk::Open(d) = &*self.inner.disk.borrow() {
            disk += d.backend.depth() as i64;
        }
        (self.len() as i64 + disk, disk)
    }

    /// Nothing held for the disk (see [`settled`](Self::settled)).
    #[inline]
    pub fn is_settled(&self) -> bool {
        self.inner.held.borrow().is_empty()
    }

    /// Wait until every held message is written (or, if the disk failed,
    /// queued in memory for a channel, refused for a topic): a topic part
    /// releases a batch read from its disk only once every channel stored
    /// it, as before the disk was lazy.
    pub async fn settled(&self) {
        while !self.is_settled() {
            let seen = self.inner.changed.generation();
            self.inner.changed.changed(seen).await;
        }
    }

    /// Wait until no job is queued or running (shutdown).
    async fn idle(&self) {
        while self.inner.running.get() {
            let seen = self.inner.changed.generation();
            self.inner.changed.changed(seen).await;
        }
    }

    /// Wait until the held messages behind `ticket` are written: the
    /// position after them, `None` if they were emptied meanwhile.
    pub async fn wait_written(&self, ticket: &Ticket) -> Outcome {
        loop {
            if let Some(outcome) = ticket.outcome() {
                return outcome;
            }
            let seen = self.inner.changed.generation();
            if ticket.outcome().is_none() {
                self.inner.changed.changed(seen).await;
            }
        }
    }

    /// Drop every queued message, memory, held and disk (nsqd's `Empty`).
    /// The files are emptied on the blocking pool; until then the disk is
    /// away (reads find nothing, writes are held and kept).
    pub fn empty(&self) {
        self.inner.memory.borrow_mut().clear();
        self.drop_held(Ok(None));
        let disk = std::mem::replace(&mut *self.inner.disk.borrow_mut(), Disk::Away);
        match disk {
            Disk::Open(d) => self.queue(Job::Empty(d)),
            Disk::Away => self.inner.want_empty.set(true),
            other => *self.inner.disk.borrow_mut() = other,
        }
    }

    /// Drop every queued message and remove the files (on the blocking
    /// pool). A store of the same queue created later opens only after.
    pub fn delete(&self) {
        self.inner.memory.borrow_mut().clear();
        self.drop_held(Err("deleted".into()));
        self.inner.want_empty.set(false);
        self.inner.open_at.set(usize::MAX);
        // From now on nothing is held: writes are refused.
        self.inner.want_delete.set(true);
        let disk = std::mem::replace(&mut *self.inner.disk.borrow_mut(), Disk::Away);
        match disk {
            Disk::Open(d) => self.queue(Job::Delete(d)),
            Disk::Away => {
                // An empty not started yet becomes the delete.
                let mut queued = self.inner.queued.borrow_mut();
                if let Some(Job::Empty(_)) = &*queued {
                    if let Some(Job::Empty(d)) = queued.take() {
                        *queued = Some(Job::Delete(d));
                    }
                }
            }
            Disk::None => *self.inner.disk.borrow_mut() = Disk::None,
            _ => *self.inner.disk.borrow_mut() = Disk::Deleted,
        }
    }

    /// Resolve the held messages' ticket with `outcome` and forget them.
    fn drop_held(&self, outcome: Outcome) {
        self.inner.held.borrow_mut().clear();
        let ticket = std::mem::take(&mut *self.inner.ticket.borrow_mut());
        ticket.resolve(outcome);
        self.inner.changed.notify_all();
    }

    /// Wait until the disk queue is durable up to `pos`: group commit. The
    /// first waiter runs one fdatasync (off the core) for everything written
    /// so far; callers arriving meanwhile wait for the next one.
    pub async fn wait_durable(&self, pos: Pos) -> Result<(), String> {
        loop {
            let synced = match &*self.inner.disk.borrow() {
                Disk::Open(d) => Some(d.backend.synced_pos()),
                Disk::Away => None,
                _ => return Err(StoreError::NoDisk.to_string()),
            };
            let Some(synced) = synced else {
                // Being emptied: its sync covers everything written before.
                let seen = self.inner.changed.generation();
                self.inner.changed.changed(seen).await;
                continue;
            };
            if synced >= pos {
                return Ok(());
            }
            if self.inner.syncing.get() {
                let seen = self.inner.synced.generation();
                self.inner.synced.changed(seen).await;
                continue;
            }
            self.inner.syncing.set(true);
            let result = self.sync(SyncKind::Data).await;
            self.inner.syncing.set(false);
            self.inner.synced.notify_all();
            if let Err(e) = result {
                self.inner
                    .ctx
                    .set_unhealthy(format!("{}: {e}", self.inner.label));
                return Err(e.to_string());
            }
        }
    }

    /// The shard's sync task: a data sync once `--sync-every` appends
    /// happened; with `kind` Full (every `--sync-timeout`) also the cursors,
    /// if anything changed. Skipped while another sync of this queue runs.
    pub async fn sync_if_needed(&self, kind: SyncKind) {
        let needed = match &*self.inner.disk.borrow() {
            Disk::Open(d) => match kind {
                SyncKind::Data => d.backend.needs_sync(),
                SyncKind::Full => d.backend.is_dirty(),
            },
            _ => false,
        };
        if needed && !self.inner.syncing.get() {
            self.inner.syncing.set(true);
            let result = self.sync(kind).await;
            self.inner.syncing.set(false);
            self.inner.synced.notify_all();
            if let Err(e) = result {
                self.inner
                    .ctx
                    .set_unhealthy(format!("{}: {e}", self.inner.label));
            }
        }
    }

    /// Graceful exit: write `msgs` (what only memory holds) to disk, then a
    /// full sync. An absent disk is opened first if there is anything to
    /// write; a job under way is waited for. Errors are logged: the broker
    /// is exiting.
    pub async fn close<'a>(&self, msgs: impl IntoIterator<Item = &'a Message>) {
        let msgs: Vec<&Message> = msgs.into_iter().collect();
        if !msgs.is_empty() && matches!(*self.inner.disk.borrow(), Disk::Absent) {
            self.want_disk();
        }
        self.idle().await;
        if let Disk::Open(d) = &mut *self.inner.disk.borrow_mut() {
            for msg in &msgs {
                if let Err(e) = d.backend.put(msg) {
                    crate::log_error!("{}: flush to disk - {e}", self.inner.label);
                    break;
                }
            }
        } else if !msgs.is_empty() && self.inner.spec.is_some() {
            crate::log_error!(
                "{}: no disk queue: {} messages not flushed",
                self.inner.label,
                msgs.len()
            );
        }
        if let Err(e) = self.sync(SyncKind::Full).await {
            crate::log_error!("{}: sync - {e}", self.inner.label);
        }
    }

    /// Sync without stalling the core: the fdatasync of the data runs on
    /// glommio's blocking pool while this core serves its other
    /// connections; a full sync then writes the small cursor file inline.
    /// The acknowledgement log is written before, rewritten after a full
    /// sync. No borrow is held across the await.
    async fn sync(&self, kind: SyncKind) -> segment::Result<()> {
        let begun = match &mut *self.inner.disk.borrow_mut() {
            Disk::Open(d) => {
                // Counted from the attempt, whatever its outcome.
                d.backend.reset_sync_count();
                if let Some(acks) = d.acks.as_mut() {
                    acks.flush()?;
                }
                d.backend.begin_sync_data()?
            }
            _ => return Ok(()),
        };
        if let Some(ds) = begun {
            let counters = &self.inner.ctx.counters;
            let (ds, res, took) = counters
                .blocking(move || {
                    let start = std::time::Instant::now();
                    let res = ds.run();
                    (ds, res, start.elapsed())
                })
                .await;
            counters.fsync_took(took);
            if let Disk::Open(d) = &mut *self.inner.disk.borrow_mut() {
                d.backend.finish_sync_data(ds, res)?;
            }
        }
        match &mut *self.inner.disk.borrow_mut() {
            Disk::Open(d) if kind == SyncKind::Full => {
                d.backend.sync()?;
                d.acks.as_mut().map_or(Ok(()), AckLog::compact)
            }
            _ => Ok(()),
        }
    }
}

/// A store's runner: runs its queued jobs one at a time on the blocking
/// pool and installs each outcome. Waits first for its turn on the queue's
/// name: a store of the same queue deleted just before (topic deleted and
/// created again) must have removed its files before this one looks.
async fn run(inner: Rc<Inner>, turn: QueueTurn) {
    turn.wait().await;
    let store = QueueStore {
        inner: inner.clone(),
    };
    loop {
        let job = inner.queued.borrow_mut().take();
        let (Some(job), Some(spec)) = (job, inner.spec.clone()) else {
            break;
        };
        let done = inner.ctx.counters.blocking(move || job.run(&spec)).await;
        store.install(done);
    }
    drop(turn);
    inner.running.set(false);
    inner.changed.notify_all();
}

impl QueueStore {
    /// Take a job's outcome: set the disk's state, queue what was asked
    /// meanwhile, write the held messages once the disk is settled, tell the
    /// owner.
    fn install(&self, done: Done) {
        let inner = &self.inner;
        let mut found = None;
        match done {
            Done::Opened(Ok(Some((disk, f)))) => {
                if !inner.want_empty.get() {
                    found = Some(f);
                }
                self.settle(disk);
            }
            Done::Opened(Ok(None)) => {
                if inner.want_delete.get() {
                    *inner.disk.borrow_mut() = Disk::Deleted;
                } else if inner.want_open.replace(false) || !inner.held.borrow().is_empty() {
                    self.queue(Job::Open { create: true });
                    return;
                } else {
                    inner.want_empty.set(false);
                    *inner.disk.borrow_mut() = Disk::Absent;
                    // Memory may have grown past the mark during the probe.
                    let at = open_threshold(inner.capacity);
                    if inner.memory.borrow().len() >= at {
                        self.want_disk();
                        return;
                    }
                    inner
                        .open_at
                        .set(if inner.capacity > 0 { at } else { usize::MAX });
                }
            }
            Done::Opened(Err(e)) => {
                inner
                    .ctx
                    .set_unhealthy(format!("{}: cannot open disk queue - {e}", inner.label));
                *inner.disk.borrow_mut() = if inner.want_delete.get() {
                    Disk::Deleted
                } else {
                    Disk::Failed
                };
            }
            Done::Emptied(disk, res) => {
                if let Err(e) = res {
                    inner
                        .ctx
                        .set_unhealthy(format!("{}: empty - {e}", inner.label));
                }
                self.settle(disk);
            }
            Done::Deleted(res) => {
                if let Err(e) = res {
                    crate::log_error!("{}: removing disk queue - {e}", inner.label);
                }
                *inner.disk.borrow_mut() = Disk::Deleted;
            }
        }
        if !matches!(*inner.disk.borrow(), Disk::Away) {
            self.write_held();
            inner.changed.notify_all();
            if let Some(on_ready) = &inner.on_ready {
                on_ready(found);
            }
        }
    }

    /// The files are back on this shard: queue what was asked meanwhile
    /// (delete, empty), else open.
    fn settle(&self, disk: Box<OnDisk>) {
        let inner = &self.inner;
        inner.want_open.set(false);
        if inner.want_delete.get() {
            self.queue(Job::Delete(disk));
        } else if inner.want_empty.replace(false) {
            self.queue(Job::Empty(disk));
        } else {
            *inner.disk.borrow_mut() = Disk::Open(disk);
        }
    }

    /// Write the held messages (the disk is settled). If that is impossible
    /// a channel keeps them in memory past the bound (never drop what was
    /// accepted); a topic's publishers get the error.
    fn write_held(&self) {
        let inner = &self.inner;
        let msgs = std::mem::take(&mut *inner.held.borrow_mut());
        let ticket = std::mem::take(&mut *inner.ticket.borrow_mut());
        if msgs.is_empty() {
            ticket.resolve(Ok(None));
            return;
        }
        let written = match &mut *inner.disk.borrow_mut() {
            Disk::Open(d) => self
                .written(&mut d.backend, |b| b.put_batch(&msgs))
                .map_err(|e| format!("disk write failed - {e}")),
            Disk::Deleted => Err("deleted".into()),
            _ => Err(format!("disk write failed - {}", StoreError::NoDisk)),
        };
        if written.is_err() && inner.spec.as_ref().is_some_and(|s| s.kind == Kind::Channel) {
            self.extend(msgs);
        }
        ticket.resolve(written);
    }
}

#[cfg(test)]
mod tests;
