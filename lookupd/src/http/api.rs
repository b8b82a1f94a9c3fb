//! The HTTP handlers and their JSON shapes (nsqlookupd's `http.go`).
//!
//! Shapes and key order are nsqlookupd's: struct fields in Go struct order,
//! map keys sorted (Go's `encoding/json` sorts map keys). Ordering inside
//! lists follows the registration DB (sorted); Go's is random.

use std::collections::BTreeMap;
use std::time::Duration;

use nsq_io::http::Request;
use serde::Serialize;

use super::{json, Reply};
use crate::config::VERSION;
use crate::registration_db::{keys, subkeys, Category, PeerInfo, Registration};
use crate::{log_info, now_ns, Lookupd};

/// `time.Time{}.UnixNano()` in Go (the overflowed value nsqlookupd shows as
/// `tombstoned_at` for a producer never tombstoned).
const GO_ZERO_TIME_UNIX_NANO: i64 = (-62_135_596_800i64).wrapping_mul(1_000_000_000);

/// Run the handler of a route the router matched.
pub(super) fn handle(lookupd: &Lookupd, req: &Request) -> Reply {
    match req.path.as_str() {
        "/ping" => Reply::Text("OK"),
        "/info" => json(&serde_json::json!({ "version": VERSION })),
        "/debug" => debug(lookupd),
        "/topics" => {
            let topics = keys(
                &lookupd
                    .db
                    .borrow()
                    .find_registrations(Category::Topic, "*", ""),
            );
            json(&serde_json::json!({ "topics": topics }))
        }
        "/nodes" => nodes(lookupd),
        "/metrics" => metrics(lookupd),
        // The rest parse the query first (nsqlookupd's NewReqParams).
        _ if req.query_error => Reply::Err(400, "INVALID_REQUEST"),
        "/lookup" => lookup(lookupd, req),
        "/channels" => {
            let Some(topic) = req.query_get("topic") else {
                return Reply::Err(400, "MISSING_ARG_TOPIC");
            };
            let db = lookupd.db.borrow();
            let channels = subkeys(&db.find_registrations(Category::Channel, topic, "*"));
            json(&serde_json::json!({ "channels": channels }))
        }
        "/topic/create" => topic_create(lookupd, req),
        "/topic/delete" => topic_delete(lookupd, req),
        "/topic/tombstone" => topic_tombstone(lookupd, req),
        "/channel/create" => channel_create(lookupd, req),
        "/channel/delete" => channel_delete(lookupd, req),
        _ => Reply::Err(404, "NOT_FOUND"),
    }
}

/// `GET /metrics` (ours): the registration DB's sizes as Prometheus text.
fn metrics(lookupd: &Lookupd) -> Reply {
    let counts = lookupd
        .db
        .borrow()
        .counts(lookupd.opts.tombstone_lifetime, now_ns());
    let families = [
        (
            "nsqlookupd_producers",
            "nsqd nodes connected and identified.",
            counts.producers,
        ),
        ("nsqlookupd_topics", "Topics registered.", counts.topics),
        (
            "nsqlookupd_channels",
            "Channels registered.",
            counts.channels,
        ),
        (
            "nsqlookupd_tombstones",
            "Topic producers tombstoned and not yet expired.",
            counts.tombstones,
        ),
    ];
    let mut text = String::new();
    for (name, help, value) in families {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    text.push_str(&format!(
        "# HELP nsqlookupd_info Always 1; the version is a label.\n# TYPE nsqlookupd_info gauge\nnsqlookupd_info{{version=\"{VERSION}\"}} 1\n"
    ));
    Reply::Metrics(text)
}

/// `/lookup` body: map keys in Go's sorted order.
#[derive(Serialize)]
struct LookupDoc<'a> {
    channels: Vec<String>,
    producers: Vec<&'a PeerInfo>,
}

fn lookup(lookupd: &Lookupd, req: &Request) -> Reply {
    let Some(topic) = req.query_get("topic") else {
        return Reply::Err(400, "MISSING_ARG_TOPIC");
    };
    let db = lookupd.db.borrow();
    if db.find_registrations(Category::Topic, topic, "").is_empty() {
        return Reply::Err(404, "TOPIC_NOT_FOUND");
    }
    let channels = subkeys(&db.find_registrations(Category::Channel, topic, "*"));
    let (opts, now) = (&lookupd.opts, now_ns());
    let producers = db
        .find_producers(Category::Topic, topic, "")
        .into_iter()
        .filter(|p| p.is_active(opts.inactive_producer_timeout, opts.tombstone_lifetime, now))
        .map(|p| p.info)
        .collect();
    json(&LookupDoc {
        channels,
        producers,
    })
}

/// One `/nodes` entry (nsqlookupd's `node` struct, in its field order).
/// `tombstones[i]` says whether this node is tombstoned for `topics[i]`;
/// nsqadmin indexes one by the other, so they always have equal length.
#[derive(Serialize)]
struct Node<'a> {
    remote_address: &'a str,
    hostname: &'a str,
    broadcast_address: &'a str,
    tcp_port: i64,
    http_port: i64,
    version: &'a str,
    topology_zone: &'a str,
    topology_region: &'a str,
    tombstones: Vec<bool>,
    topics: Vec<String>,
}

fn nodes(lookupd: &Lookupd) -> Reply {
    let db = lookupd.db.borrow();
    let (opts, now) = (&lookupd.opts, now_ns());
    let mut nodes = Vec::new();
    // Inactive nodes are left out; tombstoned ones stay (a zero lifetime
    // never counts as tombstoned), flagged per topic below.
    let peers = db.find_producers(Category::Client, "", "");
    for peer in peers
        .iter()
        .filter(|p| p.is_active(opts.inactive_producer_timeout, Duration::ZERO, now))
    {
        let registrations: Vec<Registration> = db
            .lookup_registrations(peer.id)
            .into_iter()
            .filter(|r| r.is_match(Category::Topic, "*", ""))
            .collect();
        let topics = keys(&registrations);
        let tombstones = topics
            .iter()
            .map(|topic| {
                db.find_producers(Category::Topic, topic, "")
                    .iter()
                    .find(|tp| tp.id == peer.id)
                    .is_some_and(|tp| tp.producer.is_tombstoned(opts.tombstone_lifetime, now))
            })
            .collect();
        let info = peer.info;
        nodes.push(Node {
            remote_address: &info.remote_address,
            hostname: &info.hostname,
            broadcast_address: &info.broadcast_address,
            tcp_port: info.tcp_port,
            http_port: info.http_port,
            version: &info.version,
            topology_zone: &info.topology_zone,
            topology_region: &info.topology_region,
            tombstones,
            topics,
        });
    }
    json(&NodesDoc { producers: nodes })
}

/// `/nodes` body (a struct, not `json!`, so `Node` keeps its field order).
#[derive(Serialize)]
struct NodesDoc<'a> {
    producers: Vec<Node<'a>>,
}

/// One `/debug` entry: a Go map, so keys sorted.
#[derive(Serialize)]
struct DebugProducer<'a> {
    broadcast_address: &'a str,
    hostname: &'a str,
    http_port: i64,
    id: &'a str,
    last_update: i64,
    tcp_port: i64,
    tombstoned: bool,
    tombstoned_at: i64,
    topology_region: &'a str,
    topology_zone: &'a str,
    version: &'a str,
}

fn debug(lookupd: &Lookupd) -> Reply {
    let db = lookupd.db.borrow();
    let mut data: BTreeMap<String, Vec<DebugProducer<'_>>> = BTreeMap::new();
    for (r, producers) in db.dump() {
        let key = format!("{}:{}:{}", r.category.as_str(), r.key, r.subkey);
        let entries = producers.into_iter().map(|p| DebugProducer {
            broadcast_address: &p.info.broadcast_address,
            hostname: &p.info.hostname,
            http_port: p.info.http_port,
            id: p.id,
            last_update: p.last_update,
            tcp_port: p.info.tcp_port,
            tombstoned: p.producer.tombstoned_at.is_some(),
            tombstoned_at: p.producer.tombstoned_at.unwrap_or(GO_ZERO_TIME_UNIX_NANO),
            topology_region: &p.info.topology_region,
            topology_zone: &p.info.topology_zone,
            version: &p.info.version,
        });
        data.entry(key).or_default().extend(entries);
    }
    json(&data)
}

fn topic_create(lookupd: &Lookupd, req: &Request) -> Reply {
    let Some(topic) = req.query_get("topic") else {
        return Reply::Err(400, "MISSING_ARG_TOPIC");
    };
    if !nsq_proto::names::is_valid_topic_name(topic) {
        return Reply::Err(400, "INVALID_ARG_TOPIC");
    }
    log_info!("DB: adding topic({topic})");
    lookupd
        .db
        .borrow_mut()
        .add_registration(Registration::topic(topic));
    Reply::Empty
}

/// Removes the topic's channel keys, then the topic key. Like nsqlookupd
/// it does not validate the name, so `*` deletes every topic.
fn topic_delete(lookupd: &Lookupd, req: &Request) -> Reply {
    let Some(topic) = req.query_get("topic") else {
        return Reply::Err(400, "MISSING_ARG_TOPIC");
    };
    let mut db = lookupd.db.borrow_mut();
    for r in db.find_registrations(Category::Channel, topic, "*") {
        log_info!("DB: removing channel({}) from topic({topic})", r.subkey);
        db.remove_registration(&r);
    }
    for r in db.find_registrations(Category::Topic, topic, "") {
        log_info!("DB: removing topic({topic})");
        db.remove_registration(&r);
    }
    Reply::Empty
}

fn topic_tombstone(lookupd: &Lookupd, req: &Request) -> Reply {
    let Some(topic) = req.query_get("topic") else {
        return Reply::Err(400, "MISSING_ARG_TOPIC");
    };
    let Some(node) = req.query_get("node") else {
        return Reply::Err(400, "MISSING_ARG_NODE");
    };
    log_info!("DB: setting tombstone for producer@{node} of topic({topic})");
    lookupd
        .db
        .borrow_mut()
        .tombstone_topic_producer(topic, node, now_ns());
    Reply::Empty
}

/// `http_api.GetTopicChannelArgs`: both present and valid.
fn topic_channel_args(req: &Request) -> Result<(&str, &str), Reply> {
    nsq_daemon::http::topic_channel_args(req).map_err(|message| Reply::Err(400, message))
}

fn channel_create(lookupd: &Lookupd, req: &Request) -> Reply {
    let (topic, channel) = match topic_channel_args(req) {
        Ok(names) => names,
        Err(reply) => return reply,
    };
    let mut db = lookupd.db.borrow_mut();
    log_info!("DB: adding channel({channel}) in topic({topic})");
    db.add_registration(Registration::channel(topic, channel));
    log_info!("DB: adding topic({topic})");
    db.add_registration(Registration::topic(topic));
    Reply::Empty
}

fn channel_delete(lookupd: &Lookupd, req: &Request) -> Reply {
    let (topic, channel) = match topic_channel_args(req) {
        Ok(names) => names,
        Err(reply) => return reply,
    };
    let mut db = lookupd.db.borrow_mut();
    let found = db.find_registrations(Category::Channel, topic, channel);
    if found.is_empty() {
        return Reply::Err(404, "CHANNEL_NOT_FOUND");
    }
    log_info!("DB: removing channel({channel}) from topic({topic})");
    for r in found {
        db.remove_registration(&r);
    }
    Reply::Empty
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::{request, routed};

    #[test]
    fn query_errors_only_where_params_are_read() {
        assert_eq!(
            routed("GET", "/lookup?topic=%zz"),
            Reply::Err(400, "INVALID_REQUEST")
        );
        assert_eq!(
            routed("POST", "/topic/create?a=1;b=2"),
            Reply::Err(400, "INVALID_REQUEST")
        );
        assert!(matches!(routed("GET", "/topics?x=%zz"), Reply::Json(_)));
    }

    #[test]
    fn handler_errors() {
        let cases = [
            ("GET", "/lookup", Reply::Err(400, "MISSING_ARG_TOPIC")),
            (
                "GET",
                "/lookup?topic=nope",
                Reply::Err(404, "TOPIC_NOT_FOUND"),
            ),
            ("GET", "/channels", Reply::Err(400, "MISSING_ARG_TOPIC")),
            (
                "POST",
                "/topic/create",
                Reply::Err(400, "MISSING_ARG_TOPIC"),
            ),
            (
                "POST",
                "/topic/create?topic=a!",
                Reply::Err(400, "INVALID_ARG_TOPIC"),
            ),
            (
                "POST",
                "/topic/delete",
                Reply::Err(400, "MISSING_ARG_TOPIC"),
            ),
            (
                "POST",
                "/topic/tombstone?node=x",
                Reply::Err(400, "MISSING_ARG_TOPIC"),
            ),
            (
                "POST",
                "/topic/tombstone?topic=t",
                Reply::Err(400, "MISSING_ARG_NODE"),
            ),
            (
                "POST",
                "/channel/create?topic=t",
                Reply::Err(400, "MISSING_ARG_CHANNEL"),
            ),
            (
                "POST",
                "/channel/create?topic=t&channel=",
                Reply::Err(400, "INVALID_ARG_CHANNEL"),
            ),
            (
                "POST",
                "/channel/delete?topic=t&channel=c",
                Reply::Err(404, "CHANNEL_NOT_FOUND"),
            ),
        ];
        for (method, target, want) in cases {
            assert_eq!(routed(method, target), want, "{method} {target}");
        }
    }

    #[test]
    fn json_shapes() {
        let lookupd = Lookupd::for_tests();
        let call = |method: &str, target: &str| match handle(&lookupd, &request(method, target)) {
            Reply::Json(body) => String::from_utf8_lossy(&body).into_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(call("GET", "/info"), r#"{"version":"1.3.0"}"#);
        assert_eq!(call("GET", "/topics"), r#"{"topics":[]}"#);
        assert_eq!(call("GET", "/nodes"), r#"{"producers":[]}"#);
        assert_eq!(call("GET", "/debug"), "{}");
        assert_eq!(call("POST", "/channel/create?topic=t&channel=c"), "Empty");
        assert_eq!(
            call("GET", "/lookup?topic=t"),
            r#"{"channels":["c"],"producers":[]}"#
        );
        assert_eq!(call("GET", "/channels?topic=t"), r#"{"channels":["c"]}"#);
        assert_eq!(call("POST", "/topic/delete?topic=t"), "Empty");
        assert_eq!(call("GET", "/topics"), r#"{"topics":[]}"#);
    }

    #[test]
    fn go_zero_time() {
        assert_eq!(GO_ZERO_TIME_UNIX_NANO, -6_795_364_578_871_345_152);
    }
}
