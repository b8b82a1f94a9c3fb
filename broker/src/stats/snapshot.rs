//! The `/stats` document: nsqd's JSON shapes, and how shard parts combine.
//!
//! Lives on: any shard. These are plain values: each shard fills its part,
//! sends it through the mesh, and the shard answering the HTTP request merges
//! and filters the parts.
//!
//! Field names, field order and the `null`/`[]`/omitted rules are those of
//! nsqd v1.3.0 (`nsqd/stats.go`, `client_v2.go` `ClientV2Stats`,
//! `internal/quantile`, `http.go` `doStats`), because nsqadmin, monitoring
//! scripts and client tests parse this output. Go integer widths are kept
//! (`int64` -> `i64`, `uint64` -> `u64`, Go `int` -> `i64`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use super::latency::Histogram;

/// The whole `/stats?format=json` answer (the anonymous struct in nsqd's
/// `doStats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsDoc {
    /// nsqd version string, e.g. `1.3.0`.
    pub version: String,
    /// `OK`, or `NOK - <error>` when the node is unhealthy.
    pub health: String,
    /// Process start, Unix seconds.
    pub start_time: i64,
    /// Topics sorted by name; `[]` when there are none, `null` (None) when a
    /// `topic=` filter names a missing topic (nsqd returns early there).
    #[serde(default)]
    pub topics: Option<Vec<TopicStats>>,
    /// Omitted when `include_mem=false` (`json:"memory,omitempty"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemStats>,
    /// TCP clients that published. `null` when there are none or with
    /// `include_clients=false`: nsqd appends to a nil slice, so it never
    /// writes `[]` here, and `Some(vec![])` serializes as `null` as well.
    #[serde(default, serialize_with = "none_if_empty")]
    pub producers: Option<Vec<ClientStats>>,
}

/// One topic (nsqd `TopicStats`). When gathered from shards, each shard sends
/// the part of the topic it holds and [`merge`] adds the parts up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicStats {
    /// Topic name.
    pub topic_name: String,
    /// Channels sorted by name; `[]` when there are none.
    pub channels: Vec<ChannelStats>,
    /// Messages waiting in memory plus on disk.
    pub depth: i64,
    /// Messages waiting on disk.
    pub backend_depth: i64,
    /// Messages published to the topic since it was created.
    pub message_count: u64,
    /// Body bytes published to the topic since it was created.
    pub message_bytes: u64,
    /// Whether the topic is paused.
    pub paused: bool,
    /// Aggregate of the channels' latency streams.
    pub e2e_processing_latency: E2eLatency,
    /// The channels' latency samples merged ([`with_latency`]); not in the
    /// JSON.
    #[serde(skip)]
    pub e2e_samples: Option<Histogram>,
}

/// One channel (nsqd `ChannelStats`). A channel lives on one owner shard;
/// [`merge`] still sums duplicates so a mid-move snapshot stays consistent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Channel name.
    pub channel_name: String,
    /// Messages waiting in memory plus on disk; excludes in-flight and deferred.
    pub depth: i64,
    /// Messages waiting on disk.
    pub backend_depth: i64,
    /// Messages sent to a client and not yet finished or requeued.
    pub in_flight_count: i64,
    /// Messages waiting for their defer/requeue timeout.
    pub deferred_count: i64,
    /// Messages put into the channel.
    pub message_count: u64,
    /// Messages requeued by clients.
    pub requeue_count: u64,
    /// Messages whose in-flight timeout expired.
    pub timeout_count: u64,
    /// Subscribed clients; counted even when `clients` is not included.
    pub client_count: i64,
    /// `null` with `include_clients=false`, otherwise a list (`[]` if empty).
    pub clients: Option<Vec<ClientStats>>,
    /// Whether the channel is paused.
    pub paused: bool,
    /// Time from publish to FIN, if percentiles are configured.
    pub e2e_processing_latency: E2eLatency,
    /// The samples behind it, as the owner shard sent them (None without
    /// configured percentiles); not in the JSON.
    #[serde(skip)]
    pub e2e_samples: Option<Histogram>,
    /// Deliveries to consumers, redeliveries included (for `/metrics`;
    /// nsqd's JSON has no such key).
    #[serde(skip)]
    pub delivered_count: u64,
    /// FINs (for `/metrics`; not in nsqd's JSON).
    #[serde(skip)]
    pub finished_count: u64,
}

/// One connected TCP client (nsqd `ClientV2Stats`), for consumers under a
/// channel and for producers at the top level. Field order is nsqd's: the
/// optional auth and `pub_counts` keys sit between `user_agent` and `tls`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// IDENTIFY `client_id` (defaults to the short hostname).
    pub client_id: String,
    /// IDENTIFY `hostname`.
    pub hostname: String,
    /// Protocol version, always `V2`.
    pub version: String,
    /// Peer address, `ip:port`.
    pub remote_address: String,
    /// nsqd state: 0 init, 1 disconnected, 2 connected, 3 subscribed, 4 closing.
    pub state: i32,
    /// Current RDY count.
    pub ready_count: i64,
    /// Messages in flight to this client.
    pub in_flight_count: i64,
    /// Messages sent to this client.
    pub message_count: u64,
    /// FINs received.
    pub finish_count: u64,
    /// REQs received.
    pub requeue_count: u64,
    /// Connection time, Unix seconds.
    pub connect_ts: i64,
    /// IDENTIFY `sample_rate` (0 = all messages).
    pub sample_rate: i32,
    /// Deflate negotiated.
    pub deflate: bool,
    /// Snappy negotiated.
    pub snappy: bool,
    /// IDENTIFY `user_agent`.
    pub user_agent: String,
    /// Authorized through the auth server (omitted when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub authed: bool,
    /// Identity from the auth server (omitted when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    /// Identity URL from the auth server (omitted when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_identity_url: String,
    /// Per-topic publish counts of a producer (omitted when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pub_counts: Vec<PubCount>,
    /// TLS negotiated.
    pub tls: bool,
    /// TLS cipher suite name, empty without TLS.
    pub tls_cipher_suite: String,
    /// TLS version name, empty without TLS.
    pub tls_version: String,
    /// ALPN protocol, empty without TLS.
    pub tls_negotiated_protocol: String,
    /// ALPN result was mutual.
    pub tls_negotiated_protocol_is_mutual: bool,
}

/// Messages a producer published to one topic (nsqd `PubCount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubCount {
    /// Topic name.
    pub topic: String,
    /// Messages published to it over this connection.
    pub count: u64,
}

/// nsqd `quantile.Result`. Without configured percentiles nsqd writes
/// `{"count":0,"percentiles":null}`, which is [`E2eLatency::default`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct E2eLatency {
    /// Samples in the current window.
    pub count: i64,
    /// One entry per configured percentile, in configuration order.
    pub percentiles: Option<Vec<Percentile>>,
}

/// One percentile; nsqd emits a Go map, whose keys encode sorted, which is
/// this field order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// The quantile, e.g. `0.99`.
    #[serde(serialize_with = "go_float")]
    pub quantile: f64,
    /// Latency at that quantile, nanoseconds.
    #[serde(serialize_with = "go_float")]
    pub value: f64,
}

/// nsqd `memStats`, Go runtime numbers. We fill `heap_in_use_bytes` with the
/// allocator's committed memory and leave the rest at zero (no GC, no
/// equivalent); the keys must stay for nsqadmin and scripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemStats {
    /// Live heap objects.
    pub heap_objects: u64,
    /// Heap bytes not in use.
    pub heap_idle_bytes: u64,
    /// Heap bytes in use.
    pub heap_in_use_bytes: u64,
    /// Heap bytes returned to the OS.
    pub heap_released_bytes: u64,
    /// Longest GC pause, microseconds.
    pub gc_pause_usec_100: u64,
    /// 99th percentile GC pause, microseconds.
    pub gc_pause_usec_99: u64,
    /// 95th percentile GC pause, microseconds.
    pub gc_pause_usec_95: u64,
    /// Heap size that triggers the next GC.
    pub next_gc_bytes: u64,
    /// GC cycles so far.
    pub gc_total_runs: u32,
}

impl TopicStats {
    fn absorb(&mut self, other: TopicStats) {
        self.depth = self.depth.saturating_add(other.depth);
        self.backend_depth = self.backend_depth.saturating_add(other.backend_depth);
        self.message_count = self.message_count.saturating_add(other.message_count);
        self.message_bytes = self.message_bytes.saturating_add(other.message_bytes);
        self.paused |= other.paused;
        self.channels.extend(other.channels);
    }
}

impl ChannelStats {
    fn absorb(&mut self, other: ChannelStats) {
        self.depth = self.depth.saturating_add(other.depth);
        self.backend_depth = self.backend_depth.saturating_add(other.backend_depth);
        self.in_flight_count = self.in_flight_count.saturating_add(other.in_flight_count);
        self.deferred_count = self.deferred_count.saturating_add(other.deferred_count);
        self.message_count = self.message_count.saturating_add(other.message_count);
        self.requeue_count = self.requeue_count.saturating_add(other.requeue_count);
        self.timeout_count = self.timeout_count.saturating_add(other.timeout_count);
        self.delivered_count = self.delivered_count.saturating_add(other.delivered_count);
        self.finished_count = self.finished_count.saturating_add(other.finished_count);
        self.client_count = self.client_count.saturating_add(other.client_count);
        self.clients = match (self.clients.take(), other.clients) {
            (Some(mut ours), Some(theirs)) => {
                ours.extend(theirs);
                Some(ours)
            }
            (ours, theirs) => ours.or(theirs),
        };
        self.paused |= other.paused;
        self.e2e_samples = match (self.e2e_samples.take(), other.e2e_samples) {
            (Some(mut ours), Some(theirs)) => {
                ours.merge(&theirs);
                Some(ours)
            }
            (ours, theirs) => ours.or(theirs),
        };
    }
}

/// Fills the `e2e_processing_latency` of every channel from its samples, and
/// of every topic from all its channels' samples merged (nsqd's
/// `AggregateChannelE2eProcessingLatency`), at `percentiles` in their
/// configured order. Run after [`merge`], before [`filter`]: a topic's
/// latency covers all its channels whatever the filter. Without samples
/// (no percentiles configured, or a topic without channels) the latency
/// stays `{"count":0,"percentiles":null}`, as nsqd's nil stream reports.
pub fn with_latency(topics: &mut [TopicStats], percentiles: &[f64]) {
    for topic in topics {
        let mut all: Option<Histogram> = None;
        for channel in &mut topic.channels {
            if let Some(samples) = &channel.e2e_samples {
                channel.e2e_processing_latency = latency_of(samples, percentiles);
                all.get_or_insert_with(Histogram::default).merge(samples);
            }
        }
        if let Some(samples) = &all {
            topic.e2e_processing_latency = latency_of(samples, percentiles);
        }
        topic.e2e_samples = all;
    }
}

fn latency_of(samples: &Histogram, percentiles: &[f64]) -> E2eLatency {
    E2eLatency {
        count: i64::try_from(samples.count()).unwrap_or(i64::MAX),
        percentiles: Some(
            percentiles
                .iter()
                .map(|&quantile| Percentile {
                    quantile,
                    value: samples.quantile(quantile),
                })
                .collect(),
        ),
    }
}

/// Combines the per-shard parts into one list, sorted by topic name and, in
/// each topic, by channel name, as nsqd's `GetStats` sorts.
///
/// Topics with the same name are summed (counts and depths added, `paused`
/// OR'd); so are channels with the same name in a topic,
/// whose client lists are concatenated and latency samples merged.
pub fn merge(parts: Vec<Vec<TopicStats>>) -> Vec<TopicStats> {
    let mut topics: BTreeMap<String, TopicStats> = BTreeMap::new();
    for topic in parts.into_iter().flatten() {
        match topics.get_mut(&topic.topic_name) {
            Some(existing) => existing.absorb(topic),
            None => {
                topics.insert(topic.topic_name.clone(), topic);
            }
        }
    }
    topics
        .into_values()
        .map(|mut topic| {
            topic.channels = merge_channels(std::mem::take(&mut topic.channels));
            topic
        })
        .collect()
}

fn merge_channels(channels: Vec<ChannelStats>) -> Vec<ChannelStats> {
    let mut merged: BTreeMap<String, ChannelStats> = BTreeMap::new();
    for channel in channels {
        match merged.get_mut(&channel.channel_name) {
            Some(existing) => existing.absorb(channel),
            None => {
                merged.insert(channel.channel_name.clone(), channel);
            }
        }
    }
    merged.into_values().collect()
}

/// Applies the `topic` and `channel` query parameters as nsqd's `GetStats`
/// does. An empty string means "no filter", as an absent Go parameter does.
///
/// - `topic` keeps only that topic (nothing if it does not exist).
/// - `channel` keeps only that channel in each remaining topic and drops
///   topics that do not have it; the topic's own numbers are left whole.
pub fn filter(
    topics: Vec<TopicStats>,
    topic: Option<&str>,
    channel: Option<&str>,
) -> Vec<TopicStats> {
    let topic = topic.filter(|name| !name.is_empty());
    let channel = channel.filter(|name| !name.is_empty());
    topics
        .into_iter()
        .filter(|t| topic.is_none_or(|name| t.topic_name == name))
        .filter_map(|mut t| {
            if let Some(name) = channel {
                t.channels.retain(|c| c.channel_name == name);
                if t.channels.is_empty() {
                    return None;
                }
            }
            Some(t)
        })
        .collect()
}

/// Keeps only the `topic` entry of each producer's `pub_counts`, as nsqd's
/// `clientV2.Stats(topic)` does when `/stats` has a `topic=` filter. A
/// producer that never published to it stays listed, with no `pub_counts`.
pub fn filter_producers(producers: &mut [ClientStats], topic: Option<&str>) {
    if let Some(name) = topic.filter(|name| !name.is_empty()) {
        for producer in producers {
            producer.pub_counts.retain(|count| count.topic == name);
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn none_if_empty<S: Serializer>(
    value: &Option<Vec<ClientStats>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(list) if !list.is_empty() => list.serialize(serializer),
        _ => serializer.serialize_none(),
    }
}

/// Writes a float as Go's `encoding/json` does for the common cases: whole
/// numbers without a fraction (`1500000`, not `1500000.0`). Beyond 2^53 the
/// float is written as is. NaN and infinities (which Go refuses to encode)
/// become `null`, as serde_json does.
fn go_float<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.is_finite() && value.fract() == 0.0 && value.abs() < EXACT {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> ClientStats {
        ClientStats {
            client_id: id.into(),
            hostname: id.into(),
            version: "V2".into(),
            remote_address: "1.2.3.4:5".into(),
            state: 3,
            ready_count: 1,
            message_count: 1,
            finish_count: 1,
            connect_ts: 1_700_000_000,
            user_agent: "go-nsq/1.1.0".into(),
            ..ClientStats::default()
        }
    }

    fn channel(name: &str, messages: u64, clients: Option<Vec<ClientStats>>) -> ChannelStats {
        ChannelStats {
            channel_name: name.into(),
            message_count: messages,
            client_count: clients.as_ref().map_or(0, |c| c.len() as i64),
            clients,
            ..ChannelStats::default()
        }
    }

    fn topic(name: &str, depth: i64, channels: Vec<ChannelStats>) -> TopicStats {
        TopicStats {
            topic_name: name.into(),
            channels,
            depth,
            message_count: depth as u64,
            ..TopicStats::default()
        }
    }

    #[test]
    fn json_shape_matches_nsqd() {
        let doc = StatsDoc {
            version: "1.3.0".into(),
            health: "OK".into(),
            start_time: 1_700_000_000,
            topics: Some(vec![TopicStats {
                message_bytes: 5,
                ..topic("t", 1, vec![channel("c", 1, Some(vec![client("x")]))])
            }]),
            memory: Some(MemStats::default()),
            producers: None,
        };
        let expected = concat!(
            r#"{"version":"1.3.0","health":"OK","start_time":1700000000,"#,
            r#""topics":[{"topic_name":"t","#,
            r#""channels":[{"channel_name":"c","depth":0,"backend_depth":0,"in_flight_count":0,"deferred_count":0,"#,
            r#""message_count":1,"requeue_count":0,"timeout_count":0,"client_count":1,"#,
            r#""clients":[{"client_id":"x","hostname":"x","version":"V2","remote_address":"1.2.3.4:5","#,
            r#""state":3,"ready_count":1,"in_flight_count":0,"message_count":1,"finish_count":1,"#,
            r#""requeue_count":0,"connect_ts":1700000000,"sample_rate":0,"deflate":false,"snappy":false,"#,
            r#""user_agent":"go-nsq/1.1.0","tls":false,"#,
            r#""tls_cipher_suite":"","tls_version":"","tls_negotiated_protocol":"","#,
            r#""tls_negotiated_protocol_is_mutual":false}],"#,
            r#""paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"#,
            r#""depth":1,"backend_depth":0,"message_count":1,"message_bytes":5,"paused":false,"#,
            r#""e2e_processing_latency":{"count":0,"percentiles":null}}],"#,
            r#""memory":{"heap_objects":0,"heap_idle_bytes":0,"heap_in_use_bytes":0,"heap_released_bytes":0,"#,
            r#""gc_pause_usec_100":0,"gc_pause_usec_99":0,"gc_pause_usec_95":0,"next_gc_bytes":0,"gc_total_runs":0},"#,
            r#""producers":null}"#
        );
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(json, expected);
        let back: StatsDoc = serde_json::from_str(&json).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn empty_doc_prefix_matches_nsqd_test() {
        // TestHTTPgetStatusJSON checks this prefix.
        let doc = StatsDoc {
            version: "1.3.0".into(),
            health: "OK".into(),
            start_time: 7,
            topics: Some(Vec::new()),
            memory: Some(MemStats::default()),
            ..StatsDoc::default()
        };
        let json = serde_json::to_string(&doc).unwrap();
        assert!(json.starts_with(
            r#"{"version":"1.3.0","health":"OK","start_time":7,"topics":[],"memory":{"#
        ));
        let without_mem = StatsDoc {
            memory: None,
            producers: Some(vec![]),
            ..doc
        };
        assert_eq!(
            serde_json::to_string(&without_mem).unwrap(),
            r#"{"version":"1.3.0","health":"OK","start_time":7,"topics":[],"producers":null}"#
        );
    }

    #[test]
    fn null_and_empty_rules() {
        let without_clients = channel("c", 0, None);
        let json = serde_json::to_string(&without_clients).unwrap();
        assert!(json.contains(r#""client_count":0,"clients":null,"paused""#));
        let empty_clients = channel("c", 0, Some(vec![]));
        let json = serde_json::to_string(&empty_clients).unwrap();
        assert!(json.contains(r#""clients":[],"#));
        let no_channels = topic("t", 0, vec![]);
        assert!(serde_json::to_string(&no_channels)
            .unwrap()
            .contains(r#""channels":[],"#));
        // nsqd writes "topics":null for a missing topic filter; we accept it.
        let doc: StatsDoc = serde_json::from_str(
            r#"{"version":"1.3.0","health":"OK","start_time":1,"topics":null,"producers":null}"#,
        )
        .unwrap();
        assert_eq!(doc.topics, None);
    }

    #[test]
    fn producer_optional_keys_sit_before_tls() {
        let producer = ClientStats {
            authed: true,
            auth_identity: "me".into(),
            pub_counts: vec![PubCount {
                topic: "t".into(),
                count: 3,
            }],
            ..client("p")
        };
        let doc = StatsDoc {
            producers: Some(vec![producer]),
            ..StatsDoc::default()
        };
        let json = serde_json::to_string(&doc).unwrap();
        assert!(json.contains(
            r#""user_agent":"go-nsq/1.1.0","authed":true,"auth_identity":"me","pub_counts":[{"topic":"t","count":3}],"tls":false,"#
        ));
        assert!(!json.contains("auth_identity_url"));
    }

    #[test]
    fn percentiles_encode_like_go() {
        let latency = E2eLatency {
            count: 10,
            percentiles: Some(vec![
                Percentile {
                    quantile: 0.99,
                    value: 1_500_000.0,
                },
                Percentile {
                    quantile: 0.5,
                    value: 1234.5,
                },
            ]),
        };
        assert_eq!(
            serde_json::to_string(&latency).unwrap(),
            r#"{"count":10,"percentiles":[{"quantile":0.99,"value":1500000},{"quantile":0.5,"value":1234.5}]}"#
        );
    }

    #[test]
    fn merge_sums_and_sorts() {
        let shard0 = vec![
            topic("zeta", 1, vec![]),
            topic(
                "alpha",
                2,
                vec![
                    channel("b", 1, Some(vec![client("x")])),
                    channel("a", 4, None),
                ],
            ),
        ];
        let mut paused = topic("alpha", 3, vec![channel("b", 2, Some(vec![client("y")]))]);
        paused.paused = true;
        let shard1 = vec![paused, topic("mid", 0, vec![])];
        let merged = merge(vec![shard0, shard1, vec![]]);

        let names: Vec<&str> = merged.iter().map(|t| t.topic_name.as_str()).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        let alpha = &merged[0];
        assert_eq!(alpha.depth, 5);
        assert_eq!(alpha.message_count, 5);
        assert!(alpha.paused);
        let channels: Vec<&str> = alpha
            .channels
            .iter()
            .map(|c| c.channel_name.as_str())
            .collect();
        assert_eq!(channels, ["a", "b"]);
        let b = &alpha.channels[1];
        assert_eq!(b.message_count, 3);
        assert_eq!(b.client_count, 2);
        let ids: Vec<&str> = b
            .clients
            .iter()
            .flatten()
            .map(|c| c.client_id.as_str())
            .collect();
        assert_eq!(ids, ["x", "y"]);
        assert_eq!(alpha.channels[0].clients, None);
        assert!(merge(vec![]).is_empty());
    }

    #[test]
    fn merge_saturates_instead_of_overflowing() {
        let big = TopicStats {
            message_count: u64::MAX,
            depth: i64::MAX,
            ..topic("t", 0, vec![])
        };
        let merged = merge(vec![vec![big.clone()], vec![big]]);
        assert_eq!(merged[0].message_count, u64::MAX);
        assert_eq!(merged[0].depth, i64::MAX);
    }

    #[test]
    fn filter_like_get_stats() {
        let all = || {
            vec![
                topic("a", 0, vec![channel("c1", 0, None), channel("c2", 0, None)]),
                topic("b", 0, vec![channel("c2", 0, None)]),
                topic("c", 0, vec![]),
            ]
        };
        assert_eq!(filter(all(), None, None).len(), 3);
        assert_eq!(filter(all(), Some(""), Some("")).len(), 3);
        let only_b = filter(all(), Some("b"), None);
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].topic_name, "b");
        assert!(filter(all(), Some("missing"), None).is_empty());
        let c2 = filter(all(), None, Some("c2"));
        let names: Vec<&str> = c2.iter().map(|t| t.topic_name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(c2.iter().all(|t| t.channels.len() == 1));
        let a_c1 = filter(all(), Some("a"), Some("c1"));
        assert_eq!(a_c1.len(), 1);
        assert_eq!(a_c1[0].channels[0].channel_name, "c1");
        assert!(filter(all(), Some("c"), Some("c1")).is_empty());
    }

    #[test]
    fn filter_producers_keeps_topic_counts() {
        let mut producers = vec![ClientStats {
            pub_counts: vec![
                PubCount {
                    topic: "a".into(),
                    count: 1,
                },
                PubCount {
                    topic: "b".into(),
                    count: 2,
                },
            ],
            ..client("p")
        }];
        filter_producers(&mut producers, None);
        assert_eq!(producers[0].pub_counts.len(), 2);
        filter_producers(&mut producers, Some("b"));
        assert_eq!(
            producers[0].pub_counts,
            vec![PubCount {
                topic: "b".into(),
                count: 2
            }]
        );
    }
}
