//! `/stats` snapshots: the nsqd JSON shapes, merging shard parts, text output.
//!
//! Lives on: any shard; everything here is plain data and pure functions.
//!
//! - [`snapshot`]: [`StatsDoc`], [`TopicStats`], [`ChannelStats`],
//!   [`ClientStats`] with nsqd's field names and order, plus [`merge`] (sum
//!   per-shard parts, sort by name) and [`filter`] (the `topic`/`channel`
//!   query parameters).
//! - [`render_text`]: the human-readable `/stats` (nsqd `printStats`), the
//!   default when `format=json` is not given.
//!
//! The broker gathers one `Vec<TopicStats>` per shard over the mesh, merges,
//! filters and renders on the shard that got the HTTP request. Nothing here
//! reads a clock or touches shard state: "now" is a parameter.

pub mod latency;
pub mod snapshot;
pub mod statsd;

use std::fmt::Write as _;

pub use snapshot::{
    filter, filter_producers, merge, with_latency, ChannelStats, ClientStats, E2eLatency, MemStats,
    Percentile, PubCount, StatsDoc, TopicStats,
};

/// Renders `doc` the way nsqd's `printStats` lays it out. `now_unix` (Unix
/// seconds) gives the uptime and the clients' connection ages.
///
/// Nothing parses this format, so it follows nsqd's layout rather than its
/// bytes: times are printed in UTC and durations in whole seconds.
pub fn render_text(doc: &StatsDoc, now_unix: i64) -> String {
    let mut out =
        String::with_capacity(512 + 256 * doc.topics.as_deref().unwrap_or_default().len());
    // `fmt::Write` for String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "nsqd v{} (built w/rust)", doc.version);
    let _ = writeln!(out, "start_time {}", rfc3339_utc(doc.start_time));
    let _ = writeln!(out, "uptime {}", go_duration(now_unix - doc.start_time));
    let _ = writeln!(out, "\nHealth: {}", doc.health);

    if let Some(mem) = &doc.memory {
        out.push_str("\nMemory:\n");
        let rows: [(&str, u64); 9] = [
            ("heap_objects", mem.heap_objects),
            ("heap_idle_bytes", mem.heap_idle_bytes),
            ("heap_in_use_bytes", mem.heap_in_use_bytes),
            ("heap_released_bytes", mem.heap_released_bytes),
            ("gc_pause_usec_100", mem.gc_pause_usec_100),
            ("gc_pause_usec_99", mem.gc_pause_usec_99),
            ("gc_pause_usec_95", mem.gc_pause_usec_95),
            ("next_gc_bytes", mem.next_gc_bytes),
            ("gc_total_runs", u64::from(mem.gc_total_runs)),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "   {name:<25}\t{value}");
        }
    }

    if doc.topics.as_deref().unwrap_or_default().is_empty() {
        out.push_str("\nTopics: None\n");
    } else {
        out.push_str("\nTopics:");
    }
    for topic in doc.topics.as_deref().unwrap_or_default() {
        let _ = writeln!(
            out,
            "\n{}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
            if topic.paused { "*P " } else { "   " },
            topic.topic_name,
            topic.depth,
            topic.backend_depth,
            topic.message_count,
            latency_text(&topic.e2e_processing_latency),
        );
        for channel in &topic.channels {
            let _ = writeln!(
                out,
                "{}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                if channel.paused { "   *P " } else { "      " },
                channel.channel_name,
                channel.depth,
                channel.backend_depth,
                channel.in_flight_count,
                channel.deferred_count,
                channel.requeue_count,
                channel.timeout_count,
                channel.message_count,
                latency_text(&channel.e2e_processing_latency),
            );
            for client in channel.clients.iter().flatten() {
                let _ = writeln!(out, "        {}", client_text(client, now_unix));
            }
        }
    }

    match doc.producers.as_deref() {
        Some(producers) if !producers.is_empty() => {
            out.push_str("\nProducers:\n");
            for producer in producers {
                let _ = writeln!(out, "   {}", client_text(producer, now_unix));
            }
        }
        _ => out.push_str("\nProducers: None\n"),
    }
    out
}

/// nsqd `ClientV2Stats.String`: a producer line when it has publish counts,
/// a consumer line otherwise.
fn client_text(client: &ClientStats, now_unix: i64) -> String {
    let id = format!(
        "{}:{} {}",
        client.hostname,
        port_of(&client.remote_address),
        client.user_agent
    );
    let connected = go_duration(now_unix - client.connect_ts);
    if !client.pub_counts.is_empty() {
        let total = client
            .pub_counts
            .iter()
            .fold(0u64, |sum, count| sum.saturating_add(count.count));
        let topics: Vec<String> = client
            .pub_counts
            .iter()
            .map(|count| format!("{}={}", count.topic, count.count))
            .collect();
        return format!(
            "[{} {:<21}] msgs: {:<8} topics: {} connected: {}",
            client.version,
            id,
            total,
            topics.join(","),
            connected
        );
    }
    format!(
        "[{} {:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {}",
        client.version,
        id,
        client.state,
        client.in_flight_count,
        client.ready_count,
        client.finish_count,
        client.requeue_count,
        client.message_count,
        connected
    )
}

/// The port of `host:port` or `[v6]:port`; empty when there is none, as Go's
/// `net.SplitHostPort` error path leaves it.
fn port_of(address: &str) -> &str {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => port,
        _ => "",
    }
}

/// nsqd `quantile.Result.String`: each percentile's value, human units.
fn latency_text(latency: &E2eLatency) -> String {
    latency
        .percentiles
        .iter()
        .flatten()
        .map(|p| nanoseconds_to_human(p.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// nsqd `stringy.NanoSecondToHuman`.
fn nanoseconds_to_human(value: f64) -> String {
    let (scaled, suffix) = if value > 1e9 {
        (value / 1e9, "s")
    } else if value > 1e6 {
        (value / 1e6, "ms")
    } else if value > 1e3 {
        (value / 1e3, "us")
    } else {
        (value, "ns")
    };
    format!("{scaled:.1}{suffix}")
}

/// Go's `time.Duration.String` for whole seconds (`0s`, `45s`, `2m0s`,
/// `1h0m5s`); negative spans (clock steps) print as `0s`.
fn go_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (hours, minutes, secs) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (Go's `time.RFC3339`, in UTC).
fn rfc3339_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), so no date crate is needed for one timestamp.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(-5), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(120), "2m0s");
        assert_eq!(go_duration(3605), "1h0m5s");
        assert_eq!(nanoseconds_to_human(1_500_000.0), "1.5ms");
        assert_eq!(nanoseconds_to_human(999.0), "999.0ns");
        assert_eq!(port_of("1.2.3.4:5"), "5");
        assert_eq!(port_of("[::1]:4150"), "4150");
        assert_eq!(port_of("nope"), "");
    }

    #[test]
    fn text_layout_follows_print_stats() {
        let consumer = ClientStats {
            hostname: "h".into(),
            version: "V2".into(),
            remote_address: "1.2.3.4:5".into(),
            state: 3,
            ready_count: 1,
            connect_ts: 1_000,
            user_agent: "ua".into(),
            ..ClientStats::default()
        };
        let producer = ClientStats {
            pub_counts: vec![PubCount {
                topic: "t".into(),
                count: 2,
            }],
            ..consumer.clone()
        };
        let doc = StatsDoc {
            version: "1.3.0".into(),
            health: "OK".into(),
            start_time: 1_000,
            topics: Some(vec![TopicStats {
                topic_name: "t".into(),
                paused: true,
                depth: 3,
                channels: vec![ChannelStats {
                    channel_name: "c".into(),
                    clients: Some(vec![consumer]),
                    client_count: 1,
                    ..ChannelStats::default()
                }],
                ..TopicStats::default()
            }]),
            memory: None,
            producers: Some(vec![producer]),
        };
        let text = render_text(&doc, 1_065);
        let expected = "\
nsqd v1.3.0 (built w/rust)
start_time 1970-01-01T00:16:40Z
uptime 1m5s

Health: OK

Topics:
*P [t              ] depth: 3     be-depth: 0     msgs: 0        e2e%: 
      [c                        ] depth: 0     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 0        e2e%: 
        [V2 h:5 ua               ] state: 3 inflt: 0    rdy: 1    fin: 0        re-q: 0        msgs: 0        connected: 1m5s

Producers:
   [V2 h:5 ua               ] msgs: 2        topics: t=2 connected: 1m5s
";
        assert_eq!(text, expected);

        let empty = StatsDoc {
            memory: Some(MemStats::default()),
            ..StatsDoc::default()
        };
        let text = render_text(&empty, 0);
        assert!(text.contains("\nMemory:\n   heap_objects             \t0\n"));
        assert!(text.ends_with("\nTopics: None\n\nProducers: None\n"));
    }
}
