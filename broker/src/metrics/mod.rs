//! What a shard counts for monitoring, beyond the `/stats` numbers of its
//! topics and channels: the per-core figures of `GET /metrics`.
//!
//! Lives on: every shard (one [`Counters`] in its `ShardCtx`). Counting is a
//! `Cell` add on the core that does the work; nothing is shared between
//! cores. A scrape asks every shard for a [`ShardFigures`] copy through the
//! mesh, as `/stats` does, and [`exposition`] renders the parts together.
//! Cross-core queue depths are derived at read time from what each side
//! counted (sent by A to B minus received by B from A), so neither end
//! touches the other's memory.

pub mod exposition;
pub mod process;

use std::cell::{Cell, RefCell};
use std::time::Duration;

/// Upper bounds (seconds) of the fsync latency histogram's buckets.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// A shard's running counters. Lives on: its shard.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages written to consumers from this core.
    pub messages_out: Cell<u64>,
    /// Messages handed to a channel owned by another core.
    pub handoffs: Cell<u64>,
    /// File jobs queued or running on this core's blocking pool.
    pub blocking_jobs: Cell<u64>,
    /// glommio resets its executor stats when read: the sum of the reads.
    busy: Cell<Duration>,
    fsync: RefCell<Histogram>,
}

impl Counters {
    /// One message written to a consumer.
    #[inline]
    pub fn message_out(&self) {
        self.messages_out.set(self.messages_out.get() + 1);
    }

    /// `n` messages handed to another core.
    #[inline]
    pub fn handed_off(&self, n: usize) {
        self.handoffs.set(self.handoffs.get() + n as u64);
    }

    /// An fdatasync of a queue's data took `took`.
    pub fn fsync_took(&self, took: Duration) {
        self.fsync.borrow_mut().record(took.as_secs_f64());
    }

    /// Runs `job` on glommio's blocking pool, counted in `blocking_jobs`
    /// while it waits and runs.
    pub async fn blocking<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        self.blocking_jobs.set(self.blocking_jobs.get() + 1);
        // Counted down however the wait ends, dropped futures included.
        let _queued = Queued(&self.blocking_jobs);
        glommio::executor().spawn_blocking(job).await
    }

    /// A copy of the figures (call on the shard's executor: it reads the
    /// executor's busy time). `mesh` is what the shard's `Peers` counted:
    /// messages sent per destination and received per source.
    pub fn figures(
        &self,
        shard: usize,
        connections: usize,
        mesh: (Vec<u64>, Vec<u64>),
    ) -> ShardFigures {
        let stats = glommio::executor().executor_stats();
        self.busy.set(self.busy.get() + stats.total_runtime());
        ShardFigures {
            shard,
            connections: connections as u64,
            messages_in: 0,
            messages_out: self.messages_out.get(),
            handoffs: self.handoffs.get(),
            blocking_jobs: self.blocking_jobs.get(),
            mesh_sent: mesh.0,
            mesh_received: mesh.1,
            busy_seconds: self.busy.get().as_secs_f64(),
            fsync: self.fsync.borrow().clone(),
        }
    }
}

/// Takes one off a gauge when dropped.
struct Queued<'a>(&'a Cell<u64>);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// One shard's figures at a scrape: plain data, sent over the mesh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardFigures {
    /// The shard's index.
    pub shard: usize,
    /// Open TCP client connections.
    pub connections: u64,
    /// Messages published through this core (its topic parts' counts).
    pub messages_in: u64,
    /// Messages written to consumers from this core.
    pub messages_out: u64,
    /// Messages handed to channels on other cores.
    pub handoffs: u64,
    /// Blocking-pool jobs queued or running.
    pub blocking_jobs: u64,
    /// Mesh messages sent, per destination shard.
    pub mesh_sent: Vec<u64>,
    /// Mesh messages received, per source shard.
    pub mesh_received: Vec<u64>,
    /// Time the executor spent running tasks and polling I/O.
    pub busy_seconds: f64,
    /// fdatasync latencies of the queues on this core.
    pub fsync: Histogram,
}

impl ShardFigures {
    /// Messages sent by this shard that the others have not taken yet,
    /// from every shard's counts.
    pub fn mesh_queued(&self, all: &[ShardFigures]) -> u64 {
        all.iter()
            .filter(|peer| peer.shard != self.shard)
            .map(|peer| {
                let sent = self.mesh_sent.get(peer.shard).copied().unwrap_or(0);
                let taken = peer.mesh_received.get(self.shard).copied().unwrap_or(0);
                sent.saturating_sub(taken)
            })
            .sum()
    }
}

/// A cumulative histogram with [`FSYNC_BUCKETS`] bounds, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Samples at or below each bound (not cumulative; the exposition sums).
    pub counts: [u64; FSYNC_BUCKETS.len()],
    /// All samples, including those above the last bound.
    pub count: u64,
    /// Sum of the samples.
    pub sum: f64,
}

impl Histogram {
    /// Adds one sample of `seconds`.
    pub fn record(&mut self, seconds: f64) {
        if let Some(i) = FSYNC_BUCKETS.iter().position(|le| seconds <= *le) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_depth_is_sent_minus_taken() {
        let a = ShardFigures {
            shard: 0,
            mesh_sent: vec![0, 5],
            mesh_received: vec![0, 1],
            ..ShardFigures::default()
        };
        let b = ShardFigures {
            shard: 1,
            mesh_sent: vec![1],
            mesh_received: vec![3],
            ..ShardFigures::default()
        };
        let all = [a.clone(), b.clone()];
        assert_eq!(a.mesh_queued(&all), 2);
        assert_eq!(b.mesh_queued(&all), 0);
    }

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::default();
        h.record(0.0001);
        h.record(0.003);
        h.record(10.0);
        assert_eq!(h.count, 3);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[4], 1);
        assert_eq!(h.counts.iter().sum::<u64>(), 2);
    }
}
