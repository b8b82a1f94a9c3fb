//! What a topic part or channel needs from its shard, without a reference
//! to the whole shard: where data lives, whom to tell about disk health, and
//! how to ask for a sync.
//!
//! Lives on: every shard (one `Rc<ShardCtx>` each, shared by its topics and
//! channels).

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use nsq_io::signal::Signal;

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
    /// glommio task queue for topic pumps: fewer CPU shares than the
    /// connections' default queue, so moving a backlog between queues never
    /// starves the consumers and publishers it serves (work-conserving: the
    /// pump still gets the CPU nobody else wants).
    pub pump_queue: Option<glommio::TaskQueueHandle>,
    health: RefCell<Option<String>>,
}

impl ShardCtx {
    /// A context for shard `shard`.
    pub fn new(shard: usize, opts: Arc<Options>, data_path: PathBuf) -> ShardCtx {
        ShardCtx {
            shard,
            opts,
            data_path,
            sync_wake: Signal::new(),
            pump_queue: None,
            health: RefCell::new(None),
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
