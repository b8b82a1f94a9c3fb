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
            health: RefCell::new(None),
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
