//! Writes nsqd.dat whenever asked (shard 0 only), coalescing bursts of
//! creates and deletes into one write.

use std::rc::Weak;
use std::time::Duration;

use nsq_io::signal::Signal;

use crate::shard::Shard;

/// How long a burst of metadata changes may settle before one write.
const SETTLE: Duration = Duration::from_millis(10);

/// Run until the shard is gone; `wake`: something changed.
pub async fn run(shard: Weak<Shard>, wake: Signal) {
    loop {
        wake.wait().await;
        // Let a burst of creates/deletes settle into one write.
        glommio::timer::sleep(SETTLE).await;
        let Some(shard) = shard.upgrade() else { return };
        shard.save_metadata().await;
    }
}
