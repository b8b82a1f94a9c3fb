//! What a topic part or channel needs from its shard, without a reference
//! to the whole shard: where data lives, whom to tell about disk health, and
//! how to ask for a sync.
//!
//! Lives on: every shard (one `Rc<ShardCtx>` each, shared by its topics and
//! channels).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use nsq_io::signal::{Broadcast, Signal};

use crate::config::Options;

/// CPU shares of the pump queue against glommio's default 1000 for
/// connections: under contention pumps get ~1/5 of the core.
const PUMP_SHARES: usize = 250;

/// Per-shard context for storage. Lives on: every shard.
#[derive(Debug)]
pub struct ShardCtx {
    /// This shard's index.
    pub shard: usize,
    /// Options.
    pub opts: Arc<Options>,
    /// `--data-path` (resolved).
    pub data_path: PathBuf,
    /// Wakes the shard's sync task (`--sync-every` reached).
    pub sync_wake: Signal,
    /// Wakes the shard's trim task: a queue drained after a burst.
    pub trim_wake: Signal,
    /// glommio task queue for topic pumps: fewer CPU shares than the
    /// connections' default queue, so moving a backlog between queues never
    /// starves the consumers and publishers it serves (work-conserving: the
    /// pump still gets the CPU nobody else wants).
    pub pump_queue: Option<glommio::TaskQueueHandle>,
    /// What this core counts for `/metrics`.
    pub counters: crate::metrics::Counters,
    health: RefCell<Option<String>>,
    /// Per queue name, the stores whose file jobs are running or waiting,
    /// in order (see [`ShardCtx::queue_turn`]).
    turns: RefCell<HashMap<String, VecDeque<u64>>>,
    next_turn: Cell<u64>,
    turn_changed: Broadcast,
}

impl ShardCtx {
    /// A context for shard `shard`.
    pub fn new(shard: usize, opts: Arc<Options>, data_path: PathBuf) -> ShardCtx {
        ShardCtx {
            shard,
            opts,
            data_path,
            sync_wake: Signal::new(),
            trim_wake: Signal::new(),
            pump_queue: None,
            counters: crate::metrics::Counters::default(),
            health: RefCell::new(None),
            turns: RefCell::new(HashMap::new()),
            next_turn: Cell::new(0),
            turn_changed: Broadcast::new(),
        }
    }

    /// Stand in line to work on the files of queue `name`
    /// ([`QueueTurn::wait`]): a topic or channel deleted and created again
    /// has two stores of one queue for a moment, and the new one must not
    /// look at the files before the old one removed them. First come, first
    /// served (the order of this call, not of the waits); the turn ends when
    /// the guard is dropped.
    pub fn queue_turn(self: &Rc<Self>, name: &str) -> QueueTurn {
        let id = self.next_turn.get();
        self.next_turn.set(id + 1);
        self.turns
            .borrow_mut()
            .entry(name.to_string())
            .or_default()
            .push_back(id);
        QueueTurn {
            ctx: self.clone(),
            name: name.to_string(),
            id,
        }
    }

    /// Create the pump task queue (must run on the shard's executor).
    pub fn with_pump_queue(mut self) -> ShardCtx {
        self.pump_queue = Some(glommio::executor().create_task_queue(
            glommio::Shares::Static(PUMP_SHARES),
            glommio::Latency::NotImportant,
            "topic-pump",
        ));
        self
    }

    /// Spawn a topic pump in its task queue.
    pub fn spawn_pump(&self, fut: impl std::future::Future<Output = ()> + 'static) {
        let task = match self.pump_queue {
            Some(tq) => glommio::spawn_local_into(fut, tq),
            None => Ok(glommio::spawn_local(fut)),
        };
        match task {
            Ok(task) => {
                task.detach();
            }
            Err(e) => crate::log_error!("cannot start a topic pump: {e}"),
        }
    }

    /// A disk write failed: nsqd reports unhealthy until the next success.
    pub fn set_unhealthy(&self, err: impl std::fmt::Display) {
        let text = err.to_string();
        crate::log_error!("disk: {text}");
        *self.health.borrow_mut() = Some(text);
    }

    /// A disk write succeeded.
    pub fn set_healthy(&self) {
        if self.health.borrow().is_some() {
            *self.health.borrow_mut() = None;
        }
    }

    /// The last disk error, if still unhealthy.
    pub fn health_error(&self) -> Option<String> {
        self.health.borrow().clone()
    }
}

/// A store's turn on a queue's files (see [`ShardCtx::queue_turn`]).
#[derive(Debug)]
pub struct QueueTurn {
    ctx: Rc<ShardCtx>,
    name: String,
    id: u64,
}

impl QueueTurn {
    /// Wait until every earlier turn on this queue ended.
    pub async fn wait(&self) {
        loop {
            let first = self
                .ctx
                .turns
                .borrow()
                .get(&self.name)
                .and_then(|line| line.front().copied());
            if first == Some(self.id) {
                return;
            }
            let seen = self.ctx.turn_changed.generation();
            self.ctx.turn_changed.changed(seen).await;
        }
    }
}

impl Drop for QueueTurn {
    fn drop(&mut self) {
        let mut turns = self.ctx.turns.borrow_mut();
        if let Some(line) = turns.get_mut(&self.name) {
            line.retain(|id| *id != self.id);
            if line.is_empty() {
                turns.remove(&self.name);
            }
        }
        drop(turns);
        self.ctx.turn_changed.notify_all();
    }
}
