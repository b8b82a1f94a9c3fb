//! Open-loop pacing: batch `k` of a producer is due at a fixed time,
//! `start + k * batch / rate`, whatever happened to earlier batches.
//!
//! A client that waits for the broker before sending the next message
//! (closed loop) stops sending while the broker stalls and so never
//! measures the stall: coordinated omission. Here the due time is
//! written into the body and latency is measured from it, so a stall
//! shows up in the latency of every message that should have been sent
//! during it. When the producer falls behind it sends the overdue batches
//! at once (up to a cap) instead of skipping them.

use crate::net::NANOS_PER_SEC;

/// The schedule of one producer's batches.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_ns: u64,
    /// Messages per batch.
    batch: u64,
    /// Messages per second for this producer.
    rate: u64,
    /// Index of the next batch to send.
    next: u64,
}

impl Pacer {
    /// A schedule of `rate` messages per second in batches of `batch`,
    /// starting at `start_ns`. `rate` and `batch` must be positive.
    pub fn new(start_ns: u64, rate: u64, batch: u64) -> Pacer {
        Pacer {
            start_ns,
            batch: batch.max(1),
            rate: rate.max(1),
            next: 0,
        }
    }

    /// When batch `k` is due. Computed from the start each time (128-bit),
    /// so rounding never accumulates into drift.
    pub fn due(&self, k: u64) -> u64 {
        let offset = u128::from(k) * u128::from(self.batch) * u128::from(NANOS_PER_SEC)
            / u128::from(self.rate);
        self.start_ns + offset as u64
    }

    /// When the next unsent batch is due.
    pub fn next_due(&self) -> u64 {
        self.due(self.next)
    }

    /// Takes the batches due at `now_ns`, at most `max`, and returns their
    /// indices; each batch's intended send time is [`Pacer::due`].
    pub fn take_due(&mut self, now_ns: u64, max: u64) -> std::ops::Range<u64> {
        let first = self.next;
        while self.next - first < max && self.due(self.next) <= now_ns {
            self.next += 1;
        }
        first..self.next
    }
}

/// Splits a total rate over `n` producers so the shares add up exactly.
pub fn split_rate(total: u64, n: usize, index: usize) -> u64 {
    let n = n.max(1) as u64;
    total / n + u64::from((index as u64) < total % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_batch_is_due_at_start() {
        let mut pacer = Pacer::new(1_000, 100, 1);
        assert_eq!(pacer.take_due(999, 10), 0..0);
        assert_eq!(pacer.take_due(1_000, 10), 0..1);
        assert_eq!(pacer.next_due(), 1_000 + 10_000_000);
    }

    #[test]
    fn catches_up_after_a_stall_without_skipping() {
        // 1000 msg/s in batches of 10: a batch every 10 ms.
        let mut pacer = Pacer::new(0, 1000, 10);
        // One second late: 101 batches are due (0 ms .. 1000 ms inclusive).
        assert_eq!(pacer.take_due(1_000_000_000, 1_000), 0..101);
        assert_eq!(pacer.take_due(1_000_000_000, 1_000), 101..101);
        // The cap bounds one burst; the rest stays due.
        let mut pacer = Pacer::new(0, 1000, 10);
        assert_eq!(pacer.take_due(1_000_000_000, 40), 0..40);
        assert_eq!(pacer.take_due(1_000_000_000, 1_000), 40..101);
    }

    #[test]
    fn no_drift_over_long_runs() {
        // 3 msg/s does not divide a second evenly; the millionth batch is
        // still exactly where the formula puts it.
        let pacer = Pacer::new(0, 3, 1);
        assert_eq!(pacer.due(3_000_000), 1_000_000 * 1_000_000_000);
        assert_eq!(pacer.due(1), 333_333_333);
        assert_eq!(pacer.due(2), 666_666_666);
    }

    #[test]
    fn rate_shares_add_up() {
        let shares: Vec<u64> = (0..3).map(|i| split_rate(10, 3, i)).collect();
        assert_eq!(shares, vec![4, 3, 3]);
        assert_eq!(
            (0..7).map(|i| split_rate(100_000, 7, i)).sum::<u64>(),
            100_000
        );
    }
}
