//! The summary (text and JSON) and the live progress line.

use std::io::Write;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::{Config, Mode};
use crate::discovery::DiscoveryStats;
use crate::integrity::{Account, Received, SeqSet};
use crate::run::{new_histogram, Outcome, Shared};

/// Percentiles kept for latency curves (the perf harness plots them).
const CURVE: [f64; 14] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// Latency percentiles, ns.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// `[percentile, ns]` pairs for plotting.
    pub curve: Vec<(f64, u64)>,
}

impl Latency {
    /// Summarises a histogram.
    pub fn from_histogram(hist: &Histogram<u64>) -> Latency {
        let at = |q: f64| {
            if hist.is_empty() {
                0
            } else {
                hist.value_at_quantile(q / 100.0)
            }
        };
        Latency {
            count: hist.len(),
            mean_ns: if hist.is_empty() { 0.0 } else { hist.mean() },
            p50_ns: at(50.0),
            p90_ns: at(90.0),
            p99_ns: at(99.0),
            p999_ns: at(99.9),
            max_ns: if hist.is_empty() { 0 } else { hist.max() },
            curve: CURVE.iter().map(|&q| (q, at(q))).collect(),
        }
    }
}

/// Merges per-thread histograms (same bounds, so `add` cannot fail; a
/// failure is reported as lost samples rather than a panic).
pub fn merge_histograms<'a>(hists: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut total = new_histogram();
    for hist in hists {
        // Values beyond the bounds were saturated on record, so this holds.
        let _ = total.add(hist);
    }
    total
}

/// One direction of traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Messages counted for the rate.
    pub messages: u64,
    /// Seconds they took.
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Body bytes per second, MiB.
    pub mib_per_sec: f64,
    /// Acknowledgement latency (publish) or end-to-end latency (consume).
    pub latency: Latency,
}

/// One topic/channel's integrity account.
#[derive(Debug, Clone, Serialize)]
pub struct StreamAccount {
    /// Topic.
    pub topic: String,
    /// Channel.
    pub channel: String,
    /// The account.
    #[serde(flatten)]
    pub account: Account,
}

/// Integrity over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Integrity {
    /// Acknowledged publishes (each counts once, whatever the channels).
    pub published: u64,
    /// Written but neither acknowledged nor refused (connection lost).
    pub unacknowledged: u64,
    /// Refused by nsqd (E_PUB_FAILED and the like).
    pub refused: u64,
    /// Sum over streams (a message expected on 4 channels counts 4 times).
    pub total: Account,
    /// Per topic/channel.
    pub streams: Vec<StreamAccount>,
}

/// The final report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The options it ran with.
    pub config: Config,
    /// Wall time, s.
    pub elapsed_s: f64,
    /// Messages nsqd acknowledged over the whole run, warm-up included
    /// (what a later `sub --expect` should receive).
    pub acknowledged: u64,
    /// Publishing, if any.
    pub publish: Option<Side>,
    /// Consuming, if any.
    pub consume: Option<Side>,
    /// Message accounting (absent in pub mode: nothing is received).
    pub integrity: Option<Integrity>,
    /// FIN refusals.
    pub fin_errors: u64,
    /// With `--lookupd-http-address`: lookups made and nsqd found.
    pub discovery: Option<DiscoveryStats>,
    /// Everything that went wrong.
    pub errors: Vec<String>,
    /// The hard deadline stopped the run.
    pub deadline_hit: bool,
    /// No errors, nothing missing or corrupt.
    pub ok: bool,
}

fn side(messages: u64, bytes: u64, seconds: f64, hist: &Histogram<u64>) -> Side {
    let seconds = seconds.max(1e-9);
    Side {
        messages,
        seconds,
        msgs_per_sec: messages as f64 / seconds,
        mib_per_sec: bytes as f64 / seconds / (1024.0 * 1024.0),
        latency: Latency::from_histogram(hist),
    }
}

/// Builds the summary from what the threads returned.
pub fn summarize(cfg: &Config, outcome: &Outcome) -> Summary {
    let by_count = cfg.count > 0 || (cfg.mode == Mode::Sub && cfg.expect > 0);
    let mut errors = outcome.errors.clone();
    errors.extend(outcome.producers.iter().filter_map(|p| p.error.clone()));
    errors.extend(outcome.consumers.iter().filter_map(|c| c.error.clone()));

    let publish = (cfg.mode != Mode::Sub).then(|| {
        let hist = merge_histograms(outcome.producers.iter().map(|p| &p.ack_latency));
        let (messages, seconds) = if by_count {
            let first = outcome.producers.iter().map(|p| p.first_send_ns).min();
            let last = outcome.producers.iter().map(|p| p.last_ack_ns).max();
            let span = match (first, last) {
                (Some(f), Some(l)) if l > f => (l - f) as f64 / 1e9,
                _ => 0.0,
            };
            (outcome.producers.iter().map(|p| p.acked.len()).sum(), span)
        } else {
            (
                outcome.producers.iter().map(|p| p.window_msgs).sum(),
                outcome.window_s,
            )
        };
        side(messages, messages * cfg.size as u64, seconds, &hist)
    });

    let consume = (cfg.mode != Mode::Pub).then(|| {
        let hist = merge_histograms(outcome.consumers.iter().map(|c| &c.e2e_latency));
        let messages = outcome.consumers.iter().map(|c| c.window_msgs).sum();
        let bytes = outcome.consumers.iter().map(|c| c.window_bytes).sum();
        let seconds = if by_count {
            let first = outcome.consumers.iter().map(|c| c.first_ns).min();
            let last = outcome.consumers.iter().map(|c| c.last_ns).max();
            match (first, last) {
                (Some(f), Some(l)) if l > f => (l - f) as f64 / 1e9,
                _ => 0.0,
            }
        } else {
            outcome.window_s
        };
        side(messages, bytes, seconds, &hist)
    });

    let integrity = (cfg.mode != Mode::Pub).then(|| integrity(cfg, outcome));
    let fin_errors = outcome.consumers.iter().map(|c| c.fin_errors).sum();
    let clean = integrity.as_ref().is_none_or(|i| i.total.is_clean());
    Summary {
        config: cfg.clone(),
        elapsed_s: outcome.elapsed_s,
        acknowledged: outcome.producers.iter().map(|p| p.acked.len()).sum(),
        ok: errors.is_empty() && clean && fin_errors == 0,
        publish,
        consume,
        integrity,
        fin_errors,
        discovery: outcome.discovery.clone(),
        errors,
        deadline_hit: outcome.deadline_hit,
    }
}

fn integrity(cfg: &Config, outcome: &Outcome) -> Integrity {
    let mut streams = Vec::new();
    let mut total = Account::default();
    for (t, topic) in cfg.topics.iter().enumerate() {
        let acked: Vec<(u32, &SeqSet)> = outcome
            .producers
            .iter()
            .filter(|p| p.spec.topic == t)
            .map(|p| (p.spec.id, &p.acked))
            .collect();
        for (c, channel) in cfg.channels.iter().enumerate() {
            let stream = t * cfg.channels.len() + c;
            let mut received = Received::default();
            for consumer in outcome.consumers.iter().filter(|r| r.spec.stream == stream) {
                received.merge(&consumer.received);
            }
            let account = if cfg.mode == Mode::Sub {
                Account::against_count(&received, cfg.expect)
            } else {
                Account::against_producers(&received, &acked)
            };
            total = total.add(&account);
            streams.push(StreamAccount {
                topic: topic.clone(),
                channel: channel.clone(),
                account,
            });
        }
    }
    let published = outcome.producers.iter().map(|p| p.acked.len()).sum();
    let refused = outcome.producers.iter().map(|p| p.failed).sum();
    Integrity {
        published,
        unacknowledged: outcome
            .producers
            .iter()
            .map(|p| p.written.saturating_sub(p.acked.len() + p.failed))
            .sum(),
        refused,
        total,
        streams,
    }
}

/// Formats ns as a short human duration.
pub fn human_ns(ns: u64) -> String {
    match ns {
        n if n < 10_000 => format!("{n} ns"),
        n if n < 10_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        n if n < 10_000_000_000 => format!("{:.2} ms", n as f64 / 1e6),
        n => format!("{:.2} s", n as f64 / 1e9),
    }
}

fn latency_line(label: &str, lat: &Latency) -> String {
    format!(
        "  {label:<12} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        human_ns(lat.p50_ns),
        human_ns(lat.p90_ns),
        human_ns(lat.p99_ns),
        human_ns(lat.p999_ns),
        human_ns(lat.max_ns),
        lat.count
    )
}

/// The human-readable summary.
pub fn text(summary: &Summary) -> String {
    let cfg = &summary.config;
    let mut out = String::new();
    let rate = if cfg.rate > 0 {
        format!("{} msg/s open loop", cfg.rate)
    } else {
        "max rate".to_string()
    };
    out.push_str(&format!(
        "loadgen {:?}: {} producer(s), {} consumer(s) x {} channel(s), {} B bodies, batch {}, {rate}, {:.1} s (+{:.1} s warm-up)\n",
        cfg.mode,
        if cfg.mode == Mode::Sub { 0 } else { cfg.producers },
        if cfg.mode == Mode::Pub { 0 } else { cfg.consumers },
        cfg.channels.len(),
        cfg.size,
        cfg.batch,
        cfg.duration.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
    ));
    let security = cfg.security.describe();
    if !security.is_empty() {
        out.push_str(&format!("connections: {security}\n"));
    }
    if let Some(p) = &summary.publish {
        out.push_str(&format!(
            "publish: {:>12.0} msg/s  {:>8.2} MiB/s  ({} msgs in {:.2} s)\n",
            p.msgs_per_sec, p.mib_per_sec, p.messages, p.seconds
        ));
        out.push_str(&latency_line("ack latency", &p.latency));
        out.push('\n');
    }
    if let Some(c) = &summary.consume {
        out.push_str(&format!(
            "consume: {:>12.0} msg/s  {:>8.2} MiB/s  ({} msgs in {:.2} s)\n",
            c.msgs_per_sec, c.mib_per_sec, c.messages, c.seconds
        ));
        out.push_str(&latency_line("end-to-end", &c.latency));
        out.push('\n');
    }
    if let Some(d) = &summary.discovery {
        out.push_str(&format!(
            "discovery: {} nsqd via {} lookupd(s): {} ({} found after the start; {} lookups, {} failed)\n",
            d.nsqd.len(),
            d.lookupds.len(),
            d.nsqd.join(", "),
            d.found_late,
            d.queries,
            d.failures
        ));
        if let Some(failure) = &d.last_failure {
            out.push_str(&format!("discovery: last lookup failure: {failure}\n"));
        }
    }
    if let Some(i) = &summary.integrity {
        let t = &i.total;
        out.push_str(&format!(
            "integrity: sent {} received {} duplicated {} missing {} corrupted {} (unacknowledged {}, refused {})\n",
            t.sent, t.received, t.duplicated, t.missing, t.corrupted, i.unacknowledged, i.refused
        ));
    }
    for err in &summary.errors {
        out.push_str(&format!("error: {err}\n"));
    }
    out.push_str(if summary.ok {
        "result: OK\n"
    } else {
        "result: FAILED\n"
    });
    out
}

/// Writes one line to stderr, ignoring failures (a closed stderr must not
/// end the run).
pub fn eprint_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The once-a-second progress line: rates since the previous line.
#[derive(Debug)]
pub struct Progress {
    start: u64,
    last_ns: u64,
    last_pub: u64,
    last_sub: u64,
    last_bytes: u64,
}

impl Progress {
    /// Starts counting at `start` ns.
    pub fn new(start: u64) -> Progress {
        Progress {
            start,
            last_ns: start,
            last_pub: 0,
            last_sub: 0,
            last_bytes: 0,
        }
    }

    /// The line for `now`; advances the baseline.
    pub fn line(&mut self, shared: &Shared, cfg: &Config, now: u64) -> String {
        let secs = (now.saturating_sub(self.last_ns) as f64 / 1e9).max(1e-9);
        let published = shared.pub_acked.load(Ordering::Relaxed);
        let received = shared.sub_received.load(Ordering::Relaxed);
        let bytes = shared.sub_bytes.load(Ordering::Relaxed);
        let mib = 1024.0 * 1024.0;
        let mut line = format!("[{:>5.1}s]", (now - self.start) as f64 / 1e9);
        if cfg.mode != Mode::Sub {
            let rate = (published - self.last_pub) as f64 / secs;
            line.push_str(&format!(
                " pub {:>10.0} msg/s {:>7.1} MiB/s |",
                rate,
                rate * cfg.size as f64 / mib
            ));
        }
        if cfg.mode != Mode::Pub {
            line.push_str(&format!(
                " sub {:>10.0} msg/s {:>7.1} MiB/s |",
                (received - self.last_sub) as f64 / secs,
                (bytes - self.last_bytes) as f64 / secs / mib
            ));
        }
        line.push_str(&format!(
            " errors {}",
            shared.errors.load(Ordering::Relaxed)
        ));
        self.last_ns = now;
        self.last_pub = published;
        self.last_sub = received;
        self.last_bytes = bytes;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histogram_matches_one_fed_everything() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        let mut all = new_histogram();
        for v in 1..=10_000u64 {
            let v = v * 1_000;
            if v % 3 == 0 { &mut a } else { &mut b }.saturating_record(v);
            all.saturating_record(v);
        }
        b.saturating_record(u64::MAX); // saturates at the upper bound
        all.saturating_record(u64::MAX);
        let merged = merge_histograms([&a, &b]);
        assert_eq!(merged.len(), 10_001);
        assert_eq!(
            Latency::from_histogram(&merged),
            Latency::from_histogram(&all)
        );
        let lat = Latency::from_histogram(&merged);
        // 3 significant digits: the median of 1..10 ms is 5 ms to 0.1%.
        assert!(lat.p50_ns.abs_diff(5_000_000) <= 5_000, "{}", lat.p50_ns);
        assert!(lat.p50_ns <= lat.p90_ns && lat.p90_ns <= lat.p99_ns);
        assert!(lat.p99_ns <= lat.p999_ns && lat.p999_ns <= lat.max_ns);
        assert_eq!(lat.curve.len(), CURVE.len());
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        let lat = Latency::from_histogram(&new_histogram());
        assert_eq!(lat.count, 0);
        assert_eq!(lat.max_ns, 0);
        assert_eq!(lat.p999_ns, 0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(999), "999 ns");
        assert_eq!(human_ns(12_345), "12.3 µs");
        assert_eq!(human_ns(12_345_678), "12.35 ms");
        assert_eq!(human_ns(12_345_678_901), "12.35 s");
    }
}
