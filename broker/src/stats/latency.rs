//! End-to-end processing latency (publish to FIN) over a sliding window,
//! with nsqd's `--e2e-processing-latency-*` semantics.
//!
//! Lives on: the shard that owns the channel. Each channel records into its
//! own [`LatencyWindow`] on the FIN path (no lock, no cross-core message);
//! `/stats`, statsd and `/metrics` take a [`Histogram`] snapshot of it, send
//! it with the channel's stats, and merge snapshots at read time (a topic's
//! latency is the merge of its channels', wherever they live).
//!
//! nsqd keeps two perks quantile streams and swaps them every half window;
//! we keep the same two halves, each a log-linear histogram: 16 buckets per
//! power of two, so a reported value is within 3% of a real sample. Unlike
//! quantile streams, histograms merge exactly, so a topic's quantiles over
//! channels on several cores are the quantiles of all their samples.

use std::time::{Duration, Instant};

/// Sub-buckets per power of two, as a bit count (16 buckets).
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

/// Latency samples (nanoseconds) in log-linear buckets. Mergeable; grows
/// only as far as the largest bucket seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: Vec<u32>,
    count: u64,
    sum_ns: u128,
    max_ns: u64,
    /// Samples ever recorded by the window(s) behind this snapshot, and
    /// their sum: a Prometheus summary's `_count` and `_sum` must only grow.
    total: u64,
    total_ns: u128,
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, ns: u64) {
        let index = bucket_of(ns);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(1);
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
        self.total += 1;
        self.total_ns += u128::from(ns);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (ours, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *ours = ours.saturating_add(*theirs);
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.total += other.total;
        self.total_ns += other.total_ns;
    }

    /// Samples held.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Samples recorded since the channel was created (a summary's
    /// `_count`), window or not.
    pub fn total_count(&self) -> u64 {
        self.total
    }

    /// Their sum in seconds (a summary's `_sum`).
    pub fn total_seconds(&self) -> f64 {
        self.total_ns as f64 / 1e9
    }

    /// The latency (ns) at quantile `q` (0 < q <= 1): the middle of the
    /// bucket holding the `ceil(q * count)`-th smallest sample, never above
    /// the largest sample; 0 without samples (as a perks stream answers).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        if q >= 1.0 {
            return self.max_ns as f64;
        }
        let rank = ((q.max(0.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, n) in self.counts.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return bucket_middle(index).min(self.max_ns) as f64;
            }
        }
        self.max_ns as f64
    }

    /// Forgets the samples, keeps the all-time totals.
    fn clear(&mut self) {
        self.counts.clear();
        self.count = 0;
        self.sum_ns = 0;
        self.max_ns = 0;
    }
}

/// The bucket of `ns`: exact below 16, then 16 per power of two.
fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BITS
    let sub = (ns >> (exp - SUB_BITS)) & (SUB - 1);
    ((u64::from(exp - SUB_BITS + 1) << SUB_BITS) + sub) as usize
}

/// The middle value of bucket `index` (inverse of [`bucket_of`]).
fn bucket_middle(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let exp = (index >> SUB_BITS) + u64::from(SUB_BITS) - 1;
    let sub = index & (SUB - 1);
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    ((SUB + sub) << (exp - u64::from(SUB_BITS))).saturating_add(width / 2)
}

/// Two half-window histograms, swapped every half window as nsqd swaps its
/// two streams: a read sees between one half and one whole window of
/// samples.
#[derive(Debug)]
pub struct LatencyWindow {
    halves: [Histogram; 2],
    total: u64,
    total_ns: u128,
    current: usize,
    last_move: Instant,
    half: Duration,
}

impl LatencyWindow {
    /// A window of `window` (nsqd `--e2e-processing-latency-window-time`).
    pub fn new(window: Duration, now: Instant) -> LatencyWindow {
        LatencyWindow {
            halves: [Histogram::default(), Histogram::default()],
            total: 0,
            total_ns: 0,
            current: 0,
            last_move: now,
            half: (window / 2).max(Duration::from_millis(1)),
        }
    }

    /// Records a message published at `published_ns` (Unix ns) and finished
    /// at `now_ns`; a clock step backwards counts as zero.
    pub fn record(&mut self, published_ns: i64, now_ns: i64, now: Instant) {
        self.advance(now);
        let latency = now_ns.saturating_sub(published_ns).max(0) as u64;
        self.halves[self.current].record(latency);
        self.total += 1;
        self.total_ns += u128::from(latency);
    }

    /// Both halves merged, after dropping what fell out of the window.
    pub fn snapshot(&mut self, now: Instant) -> Histogram {
        self.advance(now);
        let mut all = self.halves[0].clone();
        all.merge(&self.halves[1]);
        all.total = self.total;
        all.total_ns = self.total_ns;
        all
    }

    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_move);
        if elapsed <= self.half {
            return;
        }
        if self
            .half
            .checked_mul(2)
            .is_none_or(|whole| elapsed >= whole)
        {
            // A whole window or more went by: nothing is left in it.
            self.halves[0].clear();
            self.halves[1].clear();
            self.last_move = now;
        } else {
            self.current ^= 1;
            self.halves[self.current].clear();
            self.last_move += self.half;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_three_percent() {
        for ns in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            1_000,
            12_345,
            1_000_000,
            987_654_321,
            u64::MAX / 3,
        ] {
            let middle = bucket_middle(bucket_of(ns));
            assert_eq!(bucket_of(middle), bucket_of(ns), "{ns}");
            let error = (middle as f64 - ns as f64).abs() / (ns.max(1) as f64);
            assert!(error <= 1.0 / 32.0 + 1e-9, "{ns} -> {middle}");
        }
        assert!(bucket_of(u64::MAX) < 64 * 16);
    }

    #[test]
    fn quantiles_of_known_samples() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0.0);
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5);
        assert!((p50 - 50e6).abs() / 50e6 < 0.04, "{p50}");
        let p99 = h.quantile(0.99);
        assert!((p99 - 99e6).abs() / 99e6 < 0.04, "{p99}");
        assert_eq!(h.quantile(1.0), 100e6);
        assert!((h.total_seconds() - 5.05).abs() < 1e-9);
        assert_eq!(h.total_count(), 100);
    }

    #[test]
    fn merge_is_exact() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for ns in 0..1000u64 {
            let v = ns * ns;
            if ns % 3 == 0 { &mut a } else { &mut b }.record(v);
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn window_forgets_old_halves() {
        let start = Instant::now();
        let mut w = LatencyWindow::new(Duration::from_secs(10), start);
        w.record(0, 1_000, start);
        assert_eq!(w.snapshot(start).count(), 1);
        // Half a window later the sample is still in the other half.
        let t1 = start + Duration::from_secs(6);
        w.record(0, 2_000, t1);
        assert_eq!(w.snapshot(t1).count(), 2);
        // One more half: the first sample's half is reused and cleared.
        let t2 = start + Duration::from_secs(11);
        assert_eq!(w.snapshot(t2).count(), 1);
        // Long idle: everything goes.
        let t3 = start + Duration::from_secs(60);
        assert_eq!(w.snapshot(t3).count(), 0);
        // The all-time totals only grow.
        assert_eq!(w.snapshot(t3).total_count(), 2);
        // Idle far longer than 2^32 half windows: still empty, then counts.
        let mut tiny = LatencyWindow::new(Duration::from_millis(2), start);
        tiny.record(0, 1_000, start);
        let much_later = start + Duration::from_secs(100 * 86_400);
        assert_eq!(tiny.snapshot(much_later).count(), 0);
        tiny.record(0, 1_000, much_later);
        assert_eq!(tiny.snapshot(much_later).count(), 1);
        // A clock step back records zero, not a wrapped value.
        w.record(5_000, 1_000, t3);
        assert_eq!(w.snapshot(t3).quantile(1.0), 0.0);
    }
}
