//! One queue's storage: the memory queue, the disk queue behind it, the
//! shard's health and sync wake-up. Every topic part and every channel holds
//! one; this is the only place that writes to a disk queue on the message
//! path.
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
//! Syncs (durability sequence step 8 in ARCHITECTURE.md) run the data
//! `fdatasync` on glommio's blocking pool, so the core keeps serving; a log
//! kept next to the queue (a channel's acknowledgement log) is written and
//! compacted with them through [`Companion`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use nsq_io::segment::{self, Pos};
use nsq_io::signal::Broadcast;

use crate::backend::{Backend, Read, SyncKind};
use crate::ctx::ShardCtx;
use crate::message::Message;

/// Why a disk write failed.
#[derive(Debug)]
pub enum StoreError {
    /// No disk queue: an `#ephemeral` queue, or one that could not be opened.
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

/// A log kept next to a queue and maintained with it: a channel's
/// acknowledgement log. Called while no borrow of the store is held across
/// an await.
pub trait Companion {
    /// Before each sync of the data: write what is buffered.
    fn before_sync(&self) -> segment::Result<()>;
    /// After a full sync: the queue's cursor is durable.
    fn after_full_sync(&self) -> segment::Result<()>;
    /// The queue is being emptied.
    fn empty(&self) -> segment::Result<()>;
    /// The queue's files are being removed.
    fn delete(&self) -> segment::Result<()>;
}

/// The storage of one topic part or channel. Lives on: its shard.
#[derive(Debug)]
pub struct QueueStore {
    ctx: Rc<ShardCtx>,
    /// `TOPIC(name)` or `CHANNEL(topic:name)`: the prefix of its log lines
    /// and health errors.
    label: Box<str>,
    memory: RefCell<VecDeque<Message>>,
    capacity: usize,
    backend: RefCell<Option<Backend>>,
    /// A sync is running; group-commit waiters wait for `synced`.
    syncing: Cell<bool>,
    synced: Broadcast,
}

impl QueueStore {
    /// A store holding up to `capacity` messages in memory, over `disk`:
    /// `None` for an `#ephemeral` queue, else the result of opening its disk
    /// queue (a failure makes the shard unhealthy; the store then has no
    /// disk).
    pub fn new(
        ctx: Rc<ShardCtx>,
        label: String,
        capacity: usize,
        disk: Option<segment::Result<Backend>>,
    ) -> QueueStore {
        let backend = match disk {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                ctx.set_unhealthy(format!("{label}: cannot open disk queue - {e}"));
                None
            }
            None => None,
        };
        QueueStore {
            ctx,
            label: label.into_boxed_str(),
            memory: RefCell::new(VecDeque::new()),
            capacity,
            backend: RefCell::new(backend),
            syncing: Cell::new(false),
            synced: Broadcast::new(),
        }
    }

    /// The memory bound (`--mem-queue-size`, or a topic part's share of it).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Messages in memory.
    #[inline]
    pub fn len(&self) -> usize {
        self.memory.borrow().len()
    }

    /// Nothing in memory?
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.memory.borrow().is_empty()
    }

    /// Is there room in memory for one more message?
    #[inline]
    pub fn has_room(&self) -> bool {
        self.len() < self.capacity
    }

    /// How many more messages fit in memory.
    #[inline]
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    /// Queue a message in memory, past the bound if need be (the caller
    /// decided it must not be dropped).
    #[inline]
    pub fn push(&self, msg: Message) {
        self.memory.borrow_mut().push_back(msg);
    }

    /// Queue messages in memory, past the bound if need be.
    pub fn extend(&self, msgs: impl IntoIterator<Item = Message>) {
        self.memory.borrow_mut().extend(msgs);
    }

    /// The oldest message in memory.
    #[inline]
    pub fn pop(&self) -> Option<Message> {
        self.memory.borrow_mut().pop_front()
    }

    /// Up to `max` of the oldest messages in memory.
    pub fn take_front(&self, max: usize) -> Vec<Message> {
        let mut memory = self.memory.borrow_mut();
        let n = max.min(memory.len());
        memory.drain(..n).collect()
    }

    /// Everything in memory (shutdown).
    pub fn take_memory(&self) -> VecDeque<Message> {
        std::mem::take(&mut *self.memory.borrow_mut())
    }

    /// Does this store have a disk queue?
    pub fn has_disk(&self) -> bool {
        self.backend.borrow().is_some()
    }

    /// Append a message to disk; returns the position just after it.
    pub fn append(&self, msg: &Message) -> Result<Pos, StoreError> {
        self.write(|b| b.put(msg))
    }

    /// Append a message that supersedes the earlier records of its ID (a REQ
    /// with a delay, rewritten with its due time).
    pub fn append_superseding(&self, msg: &Message) -> Result<Pos, StoreError> {
        self.write(|b| b.put_superseding(msg))
    }

    /// Append messages in one write per segment touched; the position after
    /// the last one (`None` for no message).
    pub fn append_batch(&self, msgs: &[Message]) -> Result<Option<Pos>, StoreError> {
        self.write(|b| b.put_batch(msgs))
    }

    /// The one disk-write step: write, then report health and wake the
    /// shard's sync task when `--sync-every` appends are due.
    fn write<T>(
        &self,
        op: impl FnOnce(&mut Backend) -> segment::Result<T>,
    ) -> Result<T, StoreError> {
        let mut backend = self.backend.borrow_mut();
        let Some(b) = backend.as_mut() else {
            return Err(StoreError::NoDisk);
        };
        match op(b) {
            Ok(written) => {
                self.ctx.set_healthy();
                if b.needs_sync() {
                    self.ctx.sync_wake.notify();
                }
                Ok(written)
            }
            Err(e) => {
                self.ctx.set_unhealthy(format!("{}: {e}", self.label));
                Err(StoreError::Disk(e))
            }
        }
    }

    /// The next message on disk, outstanding until [`finish`](Self::finish)
    /// is given its position. `None` at the end, without a disk, or on a
    /// read error (the shard is then unhealthy).
    pub fn read(&self) -> Option<Read> {
        let read = self.backend.borrow_mut().as_mut()?.read();
        match read {
            Ok(read) => read,
            Err(e) => {
                self.ctx
                    .set_unhealthy(format!("{}: read - {e}", self.label));
                None
            }
        }
    }

    /// Done with the records read at `positions`: the committed cursor moves
    /// past the finished prefix.
    pub fn finish(&self, positions: &[Pos]) {
        if let Some(b) = self.backend.borrow_mut().as_mut() {
            for pos in positions {
                b.finish(*pos);
            }
            if b.needs_sync() {
                self.ctx.sync_wake.notify();
            }
        }
    }

    /// Messages queued: `(memory and disk, disk)`, for /stats.
    pub fn depths(&self) -> (i64, i64) {
        let disk = self
            .backend
            .borrow()
            .as_ref()
            .map_or(0, |b| b.depth() as i64);
        (self.len() as i64 + disk, disk)
    }

    /// Drop every queued message, memory and disk (nsqd's `Empty`).
    pub fn empty(&self, companion: Option<&dyn Companion>) {
        self.memory.borrow_mut().clear();
        let emptied = match self.backend.borrow_mut().as_mut() {
            Some(b) => companion
                .map_or(Ok(()), |c| c.empty())
                .and_then(|()| b.empty()),
            None => Ok(()),
        };
        if let Err(e) = emptied {
            self.ctx
                .set_unhealthy(format!("{}: empty - {e}", self.label));
        }
    }

    /// Drop every queued message and remove the disk queue's files.
    pub fn delete(&self, companion: Option<&dyn Companion>) {
        self.memory.borrow_mut().clear();
        let Some(b) = self.backend.borrow_mut().take() else {
            return;
        };
        let deleted = companion
            .map_or(Ok(()), |c| c.delete())
            .and_then(|()| b.delete());
        if let Err(e) = deleted {
            crate::log_error!("{}: removing disk queue - {e}", self.label);
        }
    }

    /// Wait until the disk queue is durable up to `pos`: group commit. The
    /// first waiter runs one fdatasync (off the core) for everything written
    /// so far; callers arriving meanwhile wait for the next one.
    pub async fn wait_durable(&self, pos: Pos) -> Result<(), String> {
        loop {
            let synced = match self.backend.borrow().as_ref() {
                Some(b) => b.synced_pos(),
                None => return Err(StoreError::NoDisk.to_string()),
            };
            if synced >= pos {
                return Ok(());
            }
            if self.syncing.get() {
                let seen = self.synced.generation();
                self.synced.changed(seen).await;
                continue;
            }
            self.syncing.set(true);
            let result = self.sync(SyncKind::Data, None).await;
            self.syncing.set(false);
            self.synced.notify_all();
            if let Err(e) = result {
                self.ctx.set_unhealthy(format!("{}: {e}", self.label));
                return Err(e.to_string());
            }
        }
    }

    /// The shard's sync task: a data sync once `--sync-every` appends
    /// happened; with `kind` Full (every `--sync-timeout`) also the cursors,
    /// if anything changed. Skipped while another sync of this queue runs.
    pub async fn sync_if_needed(&self, kind: SyncKind, companion: Option<&dyn Companion>) {
        let needed = self.backend.borrow().as_ref().is_some_and(|b| match kind {
            SyncKind::Data => b.needs_sync(),
            SyncKind::Full => b.is_dirty(),
        });
        if needed && !self.syncing.get() {
            self.syncing.set(true);
            let result = self.sync(kind, companion).await;
            self.syncing.set(false);
            self.synced.notify_all();
            if let Err(e) = result {
                self.ctx.set_unhealthy(format!("{}: {e}", self.label));
            }
        }
    }

    /// Graceful exit: write `msgs` (what only memory holds) to disk, then a
    /// full sync. Errors are logged: the broker is exiting.
    pub async fn close<'a>(
        &self,
        msgs: impl IntoIterator<Item = &'a Message>,
        companion: Option<&dyn Companion>,
    ) {
        if let Some(b) = self.backend.borrow_mut().as_mut() {
            for msg in msgs {
                if let Err(e) = b.put(msg) {
                    crate::log_error!("{}: flush to disk - {e}", self.label);
                    break;
                }
            }
        }
        if let Err(e) = self.sync(SyncKind::Full, companion).await {
            crate::log_error!("{}: sync - {e}", self.label);
        }
    }

    /// Sync without stalling the core: the fdatasync of the data runs on
    /// glommio's blocking pool while this core serves its other
    /// connections; a full sync then writes the small cursor file inline.
    /// No borrow is held across the await.
    async fn sync(&self, kind: SyncKind, companion: Option<&dyn Companion>) -> segment::Result<()> {
        let begun = match self.backend.borrow_mut().as_mut() {
            Some(b) => {
                // Counted from the attempt, whatever its outcome.
                b.reset_sync_count();
                if let Some(c) = companion {
                    c.before_sync()?;
                }
                b.begin_sync_data()?
            }
            None => return Ok(()),
        };
        if let Some(ds) = begun {
            let (ds, res) = glommio::executor()
                .spawn_blocking(move || {
                    let res = ds.run();
                    (ds, res)
                })
                .await;
            if let Some(b) = self.backend.borrow_mut().as_mut() {
                b.finish_sync_data(ds, res)?;
            }
        }
        match self.backend.borrow_mut().as_mut() {
            Some(b) if kind == SyncKind::Full => {
                b.sync()?;
                companion.map_or(Ok(()), |c| c.after_full_sync())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::config::Options;
    use crate::message::IdGen;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("nsqd-queue-store-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A store over a fresh disk queue, syncing after every append.
    fn store(dir: &Scratch, max_msg_size: u64) -> QueueStore {
        let opts = Options {
            mem_queue_size: 0,
            sync_every: 1,
            max_msg_size,
            ..Options::default()
        };
        let ctx = Rc::new(ShardCtx::new(0, Arc::new(opts), dir.0.clone()));
        let disk = Backend::open(&ctx.data_path, "t:c~", &ctx.opts);
        QueueStore::new(ctx, "CHANNEL(t:c)".into(), 0, Some(disk))
    }

    fn message(ids: &IdGen, len: usize) -> Message {
        Message::new(ids.next_id(), Bytes::from(vec![b'x'; len]), None)
    }

    type Append = fn(&QueueStore, &Message) -> Result<(), StoreError>;
    /// The three kinds of append, by name.
    const APPENDS: [(&str, Append); 3] = [
        ("append", |s, m| s.append(m).map(drop)),
        ("append_batch", |s, m| {
            s.append_batch(std::slice::from_ref(m)).map(drop)
        }),
        ("append_superseding", |s, m| {
            s.append_superseding(m).map(drop)
        }),
    ];

    /// Issue 9: `append_superseding` (a REQ with a delay, rewritten on disk)
    /// had drifted from the other appends and never reported a recovered
    /// disk nor woke the sync task.
    #[test]
    fn every_append_reports_health_and_wakes_the_sync_task() {
        let ids = IdGen::new(0, 0);
        for (kind, append) in APPENDS {
            let dir = Scratch::new(kind);
            let store = store(&dir, 1024);
            store.ctx.set_unhealthy("an earlier disk error");
            assert!(!store.ctx.sync_wake.is_set());
            append(&store, &message(&ids, 10)).unwrap();
            assert_eq!(store.ctx.health_error(), None, "{kind}: still unhealthy");
            assert!(store.ctx.sync_wake.is_set(), "{kind}: sync task not woken");
        }
    }

    #[test]
    fn every_failed_append_makes_the_shard_unhealthy() {
        let ids = IdGen::new(0, 0);
        for (kind, append) in APPENDS {
            let dir = Scratch::new(&format!("{kind}-fails"));
            let store = store(&dir, 16);
            // Over --max-msg-size: the disk queue refuses the record.
            let err = append(&store, &message(&ids, 1024)).unwrap_err();
            assert!(matches!(err, StoreError::Disk(_)), "{kind}: {err}");
            let health = store.ctx.health_error().unwrap_or_default();
            assert!(
                health.starts_with("CHANNEL(t:c): record of"),
                "{kind}: {health:?}"
            );
        }
    }

    #[test]
    fn without_a_disk_appends_fail_and_health_is_untouched() {
        let ctx = Rc::new(ShardCtx::new(
            0,
            Arc::new(Options::default()),
            std::env::temp_dir(),
        ));
        let store = QueueStore::new(ctx, "TOPIC(t#ephemeral)".into(), 1, None);
        let ids = IdGen::new(0, 0);
        for (kind, append) in APPENDS {
            let err = append(&store, &message(&ids, 10)).unwrap_err();
            assert!(matches!(err, StoreError::NoDisk), "{kind}: {err}");
        }
        assert_eq!(store.ctx.health_error(), None);
        assert!(!store.ctx.sync_wake.is_set());
        assert!(store.read().is_none());
    }

    #[test]
    fn memory_then_disk_in_order() {
        let dir = Scratch::new("order");
        let store = store(&dir, 1024);
        let ids = IdGen::new(0, 0);
        let msgs: Vec<Message> = (0..4).map(|_| message(&ids, 10)).collect();
        store.push(msgs[0].clone());
        store.extend([msgs[1].clone()]);
        store.append_batch(&msgs[2..]).unwrap();
        assert_eq!(store.depths(), (4, 2));
        let front = store.take_front(8);
        assert_eq!(front.len(), 2);
        assert!(store.is_empty());
        let a = store.read().unwrap();
        let b = store.read().unwrap();
        assert!(store.read().is_none());
        let got: Vec<_> = front.iter().chain([&a.msg, &b.msg]).map(|m| m.id).collect();
        let want: Vec<_> = msgs.iter().map(|m| m.id).collect();
        assert_eq!(got, want);
        store.finish(&[a.pos, b.pos]);
        assert_eq!(store.depths(), (0, 0));
    }
}
