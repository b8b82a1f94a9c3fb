//! nsqd's `--sync-timeout` / `--sync-every` loop, one per shard: dirty disk
//! queues are synced (fdatasync off the core) every sync-timeout, or at once
//! when one reached sync-every operations.

use std::rc::Weak;
use std::time::{Duration, Instant};

use futures_lite::future;
use nsq_io::signal::Signal;

use crate::backend::SyncKind;
use crate::shard::Shard;

/// Shortest interval between two full passes, whatever `--sync-timeout`.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(1);

/// Run until the shard is gone; `wake`: a queue reached `--sync-every`.
pub async fn run(shard: Weak<Shard>, wake: Signal) {
    let mut next_full = Instant::now();
    loop {
        let interval = match shard.upgrade() {
            Some(s) => s.opts().sync_timeout.max(MIN_SYNC_INTERVAL),
            None => return,
        };
        let now = Instant::now();
        if now >= next_full {
            next_full = now + interval;
        }
        future::or(wake.wait(), glommio::timer::sleep(next_full - now)).await;
        let Some(shard) = shard.upgrade() else { return };
        let kind = if Instant::now() >= next_full {
            SyncKind::Full
        } else {
            SyncKind::Data
        };
        shard.sync_all(kind).await;
    }
}
