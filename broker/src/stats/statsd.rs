//! The statsd lines nsqd's `statsd.go` sends, and their packing into UDP
//! packets. Pure functions: the push loop is `shard::tasks::statsd`.
//!
//! Names, types and counter semantics are nsqd v1.3's: counters (`|c`) are
//! the change since the previous push, gauges (`|g`) the current value,
//! e2e percentiles gauges in nanoseconds named `..._<percent>`. Where nsqd
//! sends Go runtime memory figures, we send what this process really has
//! ([`MemLines`]); no garbage-collector figures, since there is none.

use std::fmt::Write as _;

use super::snapshot::{ChannelStats, TopicStats};

/// nsqd's `statsd.HostKey`: dots and colons become underscores.
pub fn host_key(host_port: &str) -> String {
    host_port.replace(['.', ':'], "_")
}

/// nsqd's prefix rule: `%s` becomes the host key of `broadcast:http_port`,
/// and a non-empty prefix gets a trailing dot.
pub fn prefix(template: &str, broadcast_address: &str, http_port: u16) -> String {
    if template.is_empty() {
        return String::new();
    }
    let host = if broadcast_address.contains(':') {
        format!("[{broadcast_address}]:{http_port}")
    } else {
        format!("{broadcast_address}:{http_port}")
    };
    let mut prefix = template.replace("%s", &host_key(&host));
    if !prefix.ends_with('.') {
        prefix.push('.');
    }
    prefix
}

/// Memory figures sent under `mem.` with `--statsd-mem-stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemLines {
    /// `mem.rss_bytes`: resident set size.
    pub rss_bytes: Option<u64>,
    /// `mem.anon_bytes`: anonymous resident memory.
    pub anon_bytes: Option<u64>,
    /// `mem.heap_in_use_bytes` (the name nsqd uses for its heap): memory
    /// the allocator has committed.
    pub heap_in_use_bytes: Option<u64>,
}

/// Builds the lines of one push.
#[derive(Debug)]
pub struct Lines<'a> {
    prefix: &'a str,
    out: Vec<String>,
}

impl<'a> Lines<'a> {
    /// Lines with `prefix` (already expanded by [`prefix`]).
    pub fn new(prefix: &'a str) -> Lines<'a> {
        Lines {
            prefix,
            out: Vec::new(),
        }
    }

    /// The topic and channel lines of `now` against the previous push
    /// `last`, in nsqd's order. `exclude_ephemeral` skips `#ephemeral`
    /// topics and channels.
    pub fn stats(&mut self, now: &[TopicStats], last: &[TopicStats], exclude_ephemeral: bool) {
        for topic in now {
            if exclude_ephemeral && topic.topic_name.ends_with("#ephemeral") {
                continue;
            }
            let before = last.iter().find(|t| t.topic_name == topic.topic_name);
            let name = &topic.topic_name;
            let was = |f: fn(&TopicStats) -> u64| before.map_or(0, f);
            self.counter(
                &format!("topic.{name}.message_count"),
                delta(topic.message_count, was(|t| t.message_count)),
            );
            self.counter(
                &format!("topic.{name}.message_bytes"),
                delta(topic.message_bytes, was(|t| t.message_bytes)),
            );
            self.gauge(&format!("topic.{name}.depth"), topic.depth);
            self.gauge(&format!("topic.{name}.backend_depth"), topic.backend_depth);
            for p in topic.e2e_processing_latency.percentiles.iter().flatten() {
                self.gauge(
                    &format!(
                        "topic.{name}.e2e_processing_latency_{:.0}",
                        p.quantile * 100.0
                    ),
                    p.value as i64,
                );
            }
            for channel in &topic.channels {
                if exclude_ephemeral && channel.channel_name.ends_with("#ephemeral") {
                    continue;
                }
                let previous = before.and_then(|t| {
                    t.channels
                        .iter()
                        .find(|c| c.channel_name == channel.channel_name)
                });
                self.channel(name, channel, previous);
            }
        }
    }

    fn channel(&mut self, topic: &str, c: &ChannelStats, last: Option<&ChannelStats>) {
        let key = format!("topic.{topic}.channel.{}", c.channel_name);
        let was = |f: fn(&ChannelStats) -> u64| last.map_or(0, f);
        self.counter(
            &format!("{key}.message_count"),
            delta(c.message_count, was(|c| c.message_count)),
        );
        self.gauge(&format!("{key}.depth"), c.depth);
        self.gauge(&format!("{key}.backend_depth"), c.backend_depth);
        self.gauge(&format!("{key}.in_flight_count"), c.in_flight_count);
        self.gauge(&format!("{key}.deferred_count"), c.deferred_count);
        self.counter(
            &format!("{key}.requeue_count"),
            delta(c.requeue_count, was(|c| c.requeue_count)),
        );
        self.counter(
            &format!("{key}.timeout_count"),
            delta(c.timeout_count, was(|c| c.timeout_count)),
        );
        self.gauge(&format!("{key}.clients"), c.client_count);
        for p in c.e2e_processing_latency.percentiles.iter().flatten() {
            self.gauge(
                &format!("{key}.e2e_processing_latency_{:.0}", p.quantile * 100.0),
                p.value as i64,
            );
        }
    }

    /// The `mem.` gauges; figures the system did not give are left out.
    pub fn mem(&mut self, mem: &MemLines) {
        let figures = [
            ("mem.rss_bytes", mem.rss_bytes),
            ("mem.anon_bytes", mem.anon_bytes),
            ("mem.heap_in_use_bytes", mem.heap_in_use_bytes),
        ];
        for (name, value) in figures {
            if let Some(v) = value {
                self.gauge(name, i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }

    /// The lines, each ending in `\n`.
    pub fn into_lines(self) -> Vec<String> {
        self.out
    }

    fn counter(&mut self, stat: &str, value: i64) {
        self.line(stat, value, "c");
    }

    fn gauge(&mut self, stat: &str, value: i64) {
        self.line(stat, value, "g");
    }

    fn line(&mut self, stat: &str, value: i64, kind: &str) {
        let mut line = String::with_capacity(self.prefix.len() + stat.len() + 16);
        let _ = writeln!(line, "{}{stat}:{value}|{kind}", self.prefix);
        self.out.push(line);
    }
}

/// The change of a counter since the last push. A counter that went down
/// belongs to a topic or channel deleted and created again since: all of
/// its count is new (nsqd would send a wrapped negative number).
fn delta(now: u64, before: u64) -> i64 {
    let change = if now >= before { now - before } else { now };
    i64::try_from(change).unwrap_or(i64::MAX)
}

/// Packs lines into packets of at most `size` bytes, as nsqd's
/// `BoundaryBufferedWriter` does: a line never straddles two packets, and a
/// line longer than `size` goes alone.
pub fn packets(lines: &[String], size: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(size);
    for line in lines {
        if !current.is_empty() && current.len() + line.len() > size {
            packets.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(line.as_bytes());
    }
    if !current.is_empty() {
        packets.push(current);
    }
    packets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::snapshot::{E2eLatency, Percentile};

    #[test]
    fn prefix_like_nsqd() {
        assert_eq!(
            prefix("nsq.%s", "host.example.com", 4151),
            "nsq.host_example_com_4151."
        );
        assert_eq!(prefix("nsq.%s.", "10.0.0.1", 80), "nsq.10_0_0_1_80.");
        assert_eq!(prefix("", "h", 1), "");
        assert_eq!(prefix("flat", "h", 1), "flat.");
        assert_eq!(prefix("%s", "::1", 4151), "[__1]_4151.");
    }

    #[test]
    fn lines_and_deltas() {
        let channel = |count| ChannelStats {
            channel_name: "c".into(),
            message_count: count,
            client_count: 2,
            e2e_processing_latency: E2eLatency {
                count: 1,
                percentiles: Some(vec![Percentile {
                    quantile: 0.99,
                    value: 1234.7,
                }]),
            },
            ..ChannelStats::default()
        };
        let topic = |count, channels| TopicStats {
            topic_name: "t".into(),
            message_count: count,
            depth: 7,
            channels,
            ..TopicStats::default()
        };
        let last = vec![topic(10, vec![channel(10)])];
        let now = vec![
            topic(15, vec![channel(4)]),
            TopicStats {
                topic_name: "x#ephemeral".into(),
                ..TopicStats::default()
            },
        ];
        let mut lines = Lines::new("p.");
        lines.stats(&now, &last, true);
        lines.mem(&MemLines {
            rss_bytes: Some(100),
            ..MemLines::default()
        });
        let lines = lines.into_lines();
        assert_eq!(
            lines,
            [
                "p.topic.t.message_count:5|c\n",
                "p.topic.t.message_bytes:0|c\n",
                "p.topic.t.depth:7|g\n",
                "p.topic.t.backend_depth:0|g\n",
                "p.topic.t.channel.c.message_count:4|c\n",
                "p.topic.t.channel.c.depth:0|g\n",
                "p.topic.t.channel.c.backend_depth:0|g\n",
                "p.topic.t.channel.c.in_flight_count:0|g\n",
                "p.topic.t.channel.c.deferred_count:0|g\n",
                "p.topic.t.channel.c.requeue_count:0|c\n",
                "p.topic.t.channel.c.timeout_count:0|c\n",
                "p.topic.t.channel.c.clients:2|g\n",
                "p.topic.t.channel.c.e2e_processing_latency_99:1234|g\n",
                "p.mem.rss_bytes:100|g\n",
            ]
        );
    }

    #[test]
    fn packets_respect_the_boundary() {
        let lines: Vec<String> = ["aaaa\n", "bbb\n", "cc\n", "0123456789\n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let packets = packets(&lines, 9);
        let text: Vec<&str> = packets
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap_or(""))
            .collect();
        assert_eq!(text, ["aaaa\nbbb\n", "cc\n", "0123456789\n"]);
        assert!(super::packets(&[], 9).is_empty());
    }
}
