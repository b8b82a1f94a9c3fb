//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! Lives on: the shard answering the scrape. A pure function of what the
//! shards sent (merged topic stats, per-core figures) and the process
//! figures read on the blocking pool: a scrape costs the message path
//! nothing but the `/stats`-like gathering. Every family is written with
//! `# HELP` and `# TYPE`, even without series, so dashboards and alerts
//! see what exists. Labels are bounded by topics, channels and cores;
//! per-client series only with `--metrics-per-client`.

use std::fmt::Write as _;

use super::process::ProcessFigures;
use super::{ShardFigures, FSYNC_BUCKETS};
use crate::stats::snapshot::{ChannelStats, TopicStats};

/// The content type of the 0.0.4 text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape shows.
#[derive(Debug)]
pub struct Scrape<'a> {
    /// nsqd version.
    pub version: &'a str,
    /// No disk error on any shard.
    pub healthy: bool,
    /// Process start, Unix seconds.
    pub start_time: i64,
    /// Topics merged over shards, latency filled (`stats::with_latency`).
    pub topics: &'a [TopicStats],
    /// Configured e2e percentiles (none: no latency series).
    pub percentiles: &'a [f64],
    /// One entry per shard, in shard order.
    pub shards: &'a [ShardFigures],
    /// Mesh queue capacity between two shards.
    pub mesh_capacity: usize,
    /// The process.
    pub process: ProcessFigures,
    /// Per-client series.
    pub per_client: bool,
}

/// Writes the whole exposition.
pub fn render(scrape: &Scrape) -> String {
    let mut out = Out(String::with_capacity(
        4096 + 2048 * scrape.topics.len() + 1024 * scrape.shards.len(),
    ));
    topics(&mut out, scrape);
    channels(&mut out, scrape);
    if scrape.per_client {
        clients(&mut out, scrape.topics);
    }
    shards(&mut out, scrape);
    process(&mut out, scrape);
    out.0
}

fn topics(out: &mut Out, s: &Scrape) {
    type Field = fn(&TopicStats) -> f64;
    let families: [(&str, &str, &str, Field); 5] = [
        (
            "nsqd_topic_messages_total",
            "counter",
            "Messages published to the topic.",
            |t| t.message_count as f64,
        ),
        (
            "nsqd_topic_message_bytes_total",
            "counter",
            "Message body bytes published to the topic.",
            |t| t.message_bytes as f64,
        ),
        (
            "nsqd_topic_depth",
            "gauge",
            "Messages waiting in the topic, in memory and on disk.",
            |t| t.depth as f64,
        ),
        (
            "nsqd_topic_backend_depth",
            "gauge",
            "Messages waiting in the topic on disk.",
            |t| t.backend_depth as f64,
        ),
        (
            "nsqd_topic_paused",
            "gauge",
            "1 when the topic is paused.",
            |t| f64::from(u8::from(t.paused)),
        ),
    ];
    for (name, kind, help, field) in families {
        out.family(name, kind, help);
        for t in s.topics {
            out.sample(name, &[("topic", &t.topic_name)], field(t));
        }
    }
    let name = "nsqd_topic_e2e_processing_latency_seconds";
    out.family(
        name,
        "summary",
        "Time from publish to FIN: quantiles over the --e2e-processing-latency-window-time, _sum and _count since start; all channels of the topic.",
    );
    for t in s.topics {
        if let Some(samples) = &t.e2e_samples {
            summary(
                out,
                name,
                &[("topic", &t.topic_name)],
                samples,
                s.percentiles,
            );
        }
    }
}

fn channels(out: &mut Out, s: &Scrape) {
    type Field = fn(&ChannelStats) -> f64;
    let families: [(&str, &str, &str, Field); 11] = [
        (
            "nsqd_channel_messages_total",
            "counter",
            "Messages put into the channel.",
            |c| c.message_count as f64,
        ),
        (
            "nsqd_channel_delivered_total",
            "counter",
            "Deliveries to consumers, redeliveries included.",
            |c| c.delivered_count as f64,
        ),
        (
            "nsqd_channel_finished_total",
            "counter",
            "Messages finished (FIN) by consumers.",
            |c| c.finished_count as f64,
        ),
        (
            "nsqd_channel_depth",
            "gauge",
            "Messages waiting in the channel, in memory and on disk (not in flight or deferred).",
            |c| c.depth as f64,
        ),
        (
            "nsqd_channel_backend_depth",
            "gauge",
            "Messages waiting in the channel on disk.",
            |c| c.backend_depth as f64,
        ),
        (
            "nsqd_channel_in_flight",
            "gauge",
            "Messages sent to consumers and not yet finished or requeued.",
            |c| c.in_flight_count as f64,
        ),
        (
            "nsqd_channel_deferred",
            "gauge",
            "Messages waiting for their defer or requeue delay.",
            |c| c.deferred_count as f64,
        ),
        (
            "nsqd_channel_requeues_total",
            "counter",
            "Messages requeued by consumers.",
            |c| c.requeue_count as f64,
        ),
        (
            "nsqd_channel_timeouts_total",
            "counter",
            "Messages whose in-flight timeout expired.",
            |c| c.timeout_count as f64,
        ),
        (
            "nsqd_channel_clients",
            "gauge",
            "Consumers subscribed to the channel.",
            |c| c.client_count as f64,
        ),
        (
            "nsqd_channel_paused",
            "gauge",
            "1 when the channel is paused.",
            |c| f64::from(u8::from(c.paused)),
        ),
    ];
    for (name, kind, help, field) in families {
        out.family(name, kind, help);
        for t in s.topics {
            for c in &t.channels {
                let labels = [
                    ("topic", t.topic_name.as_str()),
                    ("channel", &c.channel_name),
                ];
                out.sample(name, &labels, field(c));
            }
        }
    }
    let name = "nsqd_channel_e2e_processing_latency_seconds";
    out.family(
        name,
        "summary",
        "Time from publish to FIN: quantiles over the --e2e-processing-latency-window-time, _sum and _count since start.",
    );
    for t in s.topics {
        for c in &t.channels {
            if let Some(samples) = &c.e2e_samples {
                let labels = [
                    ("topic", t.topic_name.as_str()),
                    ("channel", &c.channel_name),
                ];
                summary(out, name, &labels, samples, s.percentiles);
            }
        }
    }
}

fn summary(
    out: &mut Out,
    name: &str,
    labels: &[(&str, &str)],
    samples: &crate::stats::latency::Histogram,
    percentiles: &[f64],
) {
    for &q in percentiles {
        let quantile = q.to_string();
        let mut with_q = labels.to_vec();
        with_q.push(("quantile", &quantile));
        out.sample(name, &with_q, samples.quantile(q) / 1e9);
    }
    // Quantiles cover the window; _sum and _count all samples ever, as
    // Prometheus expects of a summary (rate() of them works).
    out.sample(&format!("{name}_sum"), labels, samples.total_seconds());
    out.sample(
        &format!("{name}_count"),
        labels,
        samples.total_count() as f64,
    );
}

fn clients(out: &mut Out, topics: &[TopicStats]) {
    type Field = fn(&crate::stats::ClientStats) -> f64;
    let families: [(&str, &str, &str, Field); 5] = [
        (
            "nsqd_client_ready",
            "gauge",
            "The consumer's RDY count.",
            |c| c.ready_count as f64,
        ),
        (
            "nsqd_client_in_flight",
            "gauge",
            "Messages in flight to the consumer.",
            |c| c.in_flight_count as f64,
        ),
        (
            "nsqd_client_messages_total",
            "counter",
            "Messages sent to the consumer.",
            |c| c.message_count as f64,
        ),
        (
            "nsqd_client_finished_total",
            "counter",
            "FINs from the consumer.",
            |c| c.finish_count as f64,
        ),
        (
            "nsqd_client_requeued_total",
            "counter",
            "REQs from the consumer.",
            |c| c.requeue_count as f64,
        ),
    ];
    for (name, kind, help, field) in families {
        out.family(name, kind, help);
        for t in topics {
            for ch in &t.channels {
                for c in ch.clients.iter().flatten() {
                    let labels = [
                        ("topic", t.topic_name.as_str()),
                        ("channel", &ch.channel_name),
                        ("client_id", &c.client_id),
                        ("remote_address", &c.remote_address),
                    ];
                    out.sample(name, &labels, field(c));
                }
            }
        }
    }
}

fn shards(out: &mut Out, s: &Scrape) {
    type Field = fn(&ShardFigures, &[ShardFigures], usize) -> f64;
    let families: [(&str, &str, &str, Field); 8] = [
        (
            "nsqd_shard_connections",
            "gauge",
            "Open TCP client connections on the core.",
            |f, _, _| f.connections as f64,
        ),
        (
            "nsqd_shard_messages_in_total",
            "counter",
            "Messages published through the core.",
            |f, _, _| f.messages_in as f64,
        ),
        (
            "nsqd_shard_messages_out_total",
            "counter",
            "Messages sent to consumers from the core.",
            |f, _, _| f.messages_out as f64,
        ),
        (
            "nsqd_shard_handoffs_total",
            "counter",
            "Messages handed to a channel owned by another core.",
            |f, _, _| f.handoffs as f64,
        ),
        (
            "nsqd_shard_mesh_queued",
            "gauge",
            "Messages waiting in the core's outgoing cross-core queues.",
            |f, all, _| f.mesh_queued(all) as f64,
        ),
        (
            "nsqd_shard_mesh_capacity",
            "gauge",
            "Capacity of the core's outgoing cross-core queues.",
            |_, all, cap| (cap * all.len().saturating_sub(1)) as f64,
        ),
        (
            "nsqd_shard_busy_seconds_total",
            "counter",
            "Time the core's executor spent running tasks and polling I/O; its rate is the core's utilisation.",
            |f, _, _| f.busy_seconds,
        ),
        (
            "nsqd_shard_blocking_jobs",
            "gauge",
            "File jobs (open, fsync, delete) queued or running on the core's blocking pool.",
            |f, _, _| f.blocking_jobs as f64,
        ),
    ];
    for (name, kind, help, field) in families {
        out.family(name, kind, help);
        for f in s.shards {
            let shard = f.shard.to_string();
            out.sample(
                name,
                &[("shard", &shard)],
                field(f, s.shards, s.mesh_capacity),
            );
        }
    }
    let name = "nsqd_fsync_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time an fdatasync of a queue's data took (blocking pool).",
    );
    for f in s.shards {
        let shard = f.shard.to_string();
        let mut cumulative = 0u64;
        for (le, n) in FSYNC_BUCKETS.iter().zip(f.fsync.counts) {
            cumulative += n;
            let le = le.to_string();
            out.sample(
                &format!("{name}_bucket"),
                &[("shard", &shard), ("le", &le)],
                cumulative as f64,
            );
        }
        out.sample(
            &format!("{name}_bucket"),
            &[("shard", &shard), ("le", "+Inf")],
            f.fsync.count as f64,
        );
        out.sample(&format!("{name}_sum"), &[("shard", &shard)], f.fsync.sum);
        out.sample(
            &format!("{name}_count"),
            &[("shard", &shard)],
            f.fsync.count as f64,
        );
    }
}

fn process(out: &mut Out, s: &Scrape) {
    let p = &s.process;
    let gauges: [(&str, &str, &str, Option<f64>); 9] = [
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.rss_bytes.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            p.max_fds.map(|v| v as f64),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            Some(s.start_time as f64),
        ),
        (
            "nsqd_memory_anon_bytes",
            "gauge",
            "Anonymous resident memory (heap, queues, buffers; not file pages).",
            p.anon_bytes.map(|v| v as f64),
        ),
        (
            "nsqd_allocator_committed_bytes",
            "gauge",
            "Memory the allocator (mimalloc) has committed from the OS.",
            p.allocator_committed_bytes.map(|v| v as f64),
        ),
        (
            "nsqd_disk_queue_bytes",
            "gauge",
            "Disk space taken by the queue files in --data-path.",
            p.disk_queue_bytes.map(|v| v as f64),
        ),
        (
            "nsqd_health",
            "gauge",
            "1 when healthy, 0 while a disk write is failing (/ping answers NOK).",
            Some(f64::from(u8::from(s.healthy))),
        ),
    ];
    for (name, kind, help, value) in gauges {
        out.family(name, kind, help);
        if let Some(v) = value {
            out.sample(name, &[], v);
        }
    }
    out.family("nsqd_info", "gauge", "Always 1; the version is a label.");
    out.sample("nsqd_info", &[("version", s.version)], 1.0);
}

/// The text being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // `fmt::Write` for String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(key);
                self.0.push_str("=\"");
                escape_into(&mut self.0, val);
                self.0.push('"');
            }
            self.0.push('}');
        }
        self.0.push(' ');
        push_value(&mut self.0, value);
        self.0.push('\n');
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_into(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Go-style floats: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency::Histogram;

    #[test]
    fn renders_families_and_escapes() {
        let mut samples = Histogram::default();
        samples.record(2_000_000);
        let topics = vec![TopicStats {
            topic_name: "t".into(),
            message_count: 3,
            channels: vec![ChannelStats {
                channel_name: "c#ephemeral".into(),
                depth: 2,
                e2e_samples: Some(samples.clone()),
                ..ChannelStats::default()
            }],
            e2e_samples: Some(samples),
            ..TopicStats::default()
        }];
        let shards = [
            ShardFigures {
                shard: 0,
                mesh_sent: vec![0, 4],
                ..ShardFigures::default()
            },
            ShardFigures {
                shard: 1,
                mesh_received: vec![1, 0],
                ..ShardFigures::default()
            },
        ];
        let text = render(&Scrape {
            version: "1.3.0",
            healthy: true,
            start_time: 5,
            topics: &topics,
            percentiles: &[0.99],
            shards: &shards,
            mesh_capacity: 1024,
            process: ProcessFigures::default(),
            per_client: false,
        });
        assert!(text.contains("# TYPE nsqd_topic_messages_total counter\n"));
        assert!(text.contains("nsqd_topic_messages_total{topic=\"t\"} 3\n"));
        assert!(text.contains("nsqd_channel_depth{topic=\"t\",channel=\"c#ephemeral\"} 2\n"));
        assert!(text.contains(
            "nsqd_channel_e2e_processing_latency_seconds_count{topic=\"t\",channel=\"c#ephemeral\"} 1\n"
        ));
        assert!(text.contains(
            "nsqd_topic_e2e_processing_latency_seconds{topic=\"t\",quantile=\"0.99\"} 0.00"
        ));
        assert!(text.contains("nsqd_shard_mesh_queued{shard=\"0\"} 3\n"));
        assert!(text.contains("nsqd_fsync_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"} 0\n"));
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
        assert!(
            !text.contains("\nprocess_resident_memory_bytes "),
            "unknown: no sample"
        );
        assert!(text.contains("nsqd_info{version=\"1.3.0\"} 1\n"));
        assert!(!text.contains("nsqd_client_ready"));

        let mut escaped = String::new();
        escape_into(&mut escaped, "a\"b\\c\nd");
        assert_eq!(escaped, "a\\\"b\\\\c\\nd");
        let mut v = String::new();
        push_value(&mut v, f64::INFINITY);
        push_value(&mut v, 0.5);
        assert_eq!(v, "+Inf0.5");
    }
}
