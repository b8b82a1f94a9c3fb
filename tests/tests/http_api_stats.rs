//! HTTP API conformance (see `http_api.rs`): `GET /stats` in JSON and text,
//! its filters, and aggregation over shards. Ported from nsqd's
//! `http_test.go` (v1.3.0).

use anyhow::{ensure, Context, Result};
use nsq_tests::wire::{call, ensure_keys, expect_empty_ok, unix_now};
use nsq_tests::{consumer, find_channel, find_topic, unique_name, TestNsqd};
use serde_json::json;

// ---------------------------------------------------------------------------
// /stats
// ---------------------------------------------------------------------------

/// TestHTTPgetStatusJSON: exact prefix, `topics` is `[]` and `producers` is
/// `null` when empty.
#[test]
fn stats_json_empty() -> Result<()> {
    let before = unix_now();
    let nsqd = TestNsqd::start(&[])?;
    let r = call(&nsqd, "GET", "/stats?format=json", b"")?;
    ensure!(r.status == 200, "{}", r.status);
    ensure!(
        r.header("content-type") == Some("application/json; charset=utf-8"),
        "{:?}",
        r.headers
    );
    let text = r.text();
    let v = r.json()?;
    let version = v["version"].as_str().context("version")?;
    let st = v["start_time"].as_i64().context("start_time")?;
    ensure!(st >= before - 2 && st <= unix_now() + 2, "start_time {st}");
    let prefix = format!(
        "{{\"version\":\"{version}\",\"health\":\"OK\",\"start_time\":{st},\"topics\":[],\"memory\":{{"
    );
    ensure!(
        text.starts_with(&prefix),
        "stats must start with {prefix:?}, got {text}"
    );
    ensure!(
        text.ends_with(",\"producers\":null}"),
        "producers null when none: {text}"
    );
    ensure_keys(
        "memory",
        &v["memory"],
        &[
            "heap_objects",
            "heap_idle_bytes",
            "heap_in_use_bytes",
            "heap_released_bytes",
            "gc_pause_usec_100",
            "gc_pause_usec_99",
            "gc_pause_usec_95",
            "next_gc_bytes",
            "gc_total_runs",
        ],
    )?;
    let v = nsqd.stats("include_mem=false")?;
    ensure!(
        v.get("memory").is_none(),
        "include_mem=false drops memory: {v}"
    );
    Ok(())
}

const TOPIC_KEYS: [&str; 8] = [
    "topic_name",
    "channels",
    "depth",
    "backend_depth",
    "message_count",
    "message_bytes",
    "paused",
    "e2e_processing_latency",
];
const CHANNEL_KEYS: [&str; 12] = [
    "channel_name",
    "depth",
    "backend_depth",
    "in_flight_count",
    "deferred_count",
    "message_count",
    "requeue_count",
    "timeout_count",
    "client_count",
    "clients",
    "paused",
    "e2e_processing_latency",
];
const CLIENT_KEYS: [&str; 20] = [
    "client_id",
    "hostname",
    "version",
    "remote_address",
    "state",
    "ready_count",
    "in_flight_count",
    "message_count",
    "finish_count",
    "requeue_count",
    "connect_ts",
    "sample_rate",
    "deflate",
    "snappy",
    "user_agent",
    "tls",
    "tls_cipher_suite",
    "tls_version",
    "tls_negotiated_protocol",
    "tls_negotiated_protocol_is_mutual",
];

/// Field names and values of topic, channel, client and producer objects.
#[test]
fn stats_json_fields() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("stats");
    let mut c = consumer(
        nsqd.tcp_addr(),
        &topic,
        "ch",
        5,
        json!({"client_id": "test-client", "hostname": "test-host", "user_agent": "ua/1"}),
    )?;
    let mut p = nsqd.connect()?;
    p.identify_ok(&json!({"client_id": "test-producer", "feature_negotiation": true}))?;
    p.pub_ok(&topic, b"hello")?;
    p.pub_ok(&topic, b"world!")?;
    let m = c.expect_message()?;
    let m2 = c.expect_message()?;
    c.fin(&m.id)?;
    c.req(&m2.id, 0)?;
    let m3 = c.expect_message()?;

    let ch = nsqd.wait_channel(&topic, "ch", "1 finished, 1 requeued, 1 in flight", |ch| {
        ch["in_flight_count"] == 1 && ch["requeue_count"] == 1
    })?;
    let stats = nsqd.stats("")?;
    let t = find_topic(&stats, &topic).context("topic listed")?;
    ensure_keys("topic", t, &TOPIC_KEYS)?;
    ensure_keys("channel", &ch, &CHANNEL_KEYS)?;
    ensure!(
        t["depth"] == 0
            && t["backend_depth"] == 0
            && t["message_count"] == 2
            && t["message_bytes"] == 11,
        "{t}"
    );
    ensure!(t["paused"] == false, "{t}");
    ensure!(
        t["e2e_processing_latency"] == json!({"count": 0, "percentiles": null}),
        "{t}"
    );
    ensure!(
        ch["depth"] == 0
            && ch["deferred_count"] == 0
            && ch["message_count"] == 2
            && ch["timeout_count"] == 0
            && ch["client_count"] == 1
            && ch["paused"] == false,
        "{ch}"
    );
    let clients = ch["clients"].as_array().context("clients is a list")?;
    ensure!(clients.len() == 1, "{ch}");
    let cl = &clients[0];
    ensure_keys("client", cl, &CLIENT_KEYS)?;
    ensure!(
        cl["client_id"] == "test-client"
            && cl["hostname"] == "test-host"
            && cl["user_agent"] == "ua/1",
        "{cl}"
    );
    ensure!(cl["version"] == "V2" && cl["state"] == 3, "{cl}");
    ensure!(
        cl["remote_address"] == c.local_addr().to_string(),
        "{cl} vs {}",
        c.local_addr()
    );
    ensure!(
        cl["ready_count"] == 5
            && cl["in_flight_count"] == 1
            && cl["message_count"] == 3
            && cl["finish_count"] == 1
            && cl["requeue_count"] == 1,
        "{cl}"
    );
    let cts = cl["connect_ts"].as_i64().context("connect_ts")?;
    ensure!((cts - unix_now()).abs() <= 30, "connect_ts {cts}");
    ensure!(
        cl["sample_rate"] == 0
            && cl["deflate"] == false
            && cl["snappy"] == false
            && cl["tls"] == false,
        "{cl}"
    );

    let producers = stats["producers"]
        .as_array()
        .context("producers is a list once someone published")?;
    let prod = producers
        .iter()
        .find(|p| p["client_id"] == "test-producer")
        .with_context(|| format!("producer listed: {producers:?}"))?;
    ensure!(
        prod["pub_counts"] == json!([{"topic": topic, "count": 2}]),
        "{prod}"
    );
    ensure!(
        producers.iter().all(|p| p["client_id"] != "test-client"),
        "a consumer that never published is not a producer"
    );
    c.fin(&m3.id)?;
    Ok(())
}

/// `topic`, `channel`, `include_clients` filters.
#[test]
fn stats_filters() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let a = unique_name("a");
    let b = unique_name("b");
    let _c1 = consumer(nsqd.tcp_addr(), &a, "c1", 0, json!({}))?;
    let _c2 = consumer(nsqd.tcp_addr(), &a, "c2", 0, json!({}))?;
    let _c3 = consumer(nsqd.tcp_addr(), &b, "c1", 0, json!({}))?;
    let mut p = nsqd.connect()?;
    p.pub_ok(&a, b"x")?;

    let all = nsqd.stats("")?;
    let names: Vec<_> = all["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].clone())
        .collect();
    ensure!(
        names == vec![json!(a), json!(b)],
        "topics sorted by name: {names:?}"
    );

    let only_a = nsqd.stats(&format!("topic={a}"))?;
    let topics = only_a["topics"].as_array().context("topics")?;
    ensure!(
        topics.len() == 1 && topics[0]["topic_name"] == a.as_str(),
        "{only_a}"
    );
    ensure!(
        topics[0]["channels"].as_array().map(|c| c.len()) == Some(2),
        "{only_a}"
    );

    let one_channel = nsqd.stats(&format!("topic={a}&channel=c2"))?;
    let chans = one_channel["topics"][0]["channels"]
        .as_array()
        .context("channels")?;
    ensure!(
        chans.len() == 1 && chans[0]["channel_name"] == "c2",
        "{one_channel}"
    );

    let no_channel = nsqd.stats(&format!("topic={a}&channel=nope"))?;
    ensure!(no_channel["topics"] == json!([]), "{no_channel}");
    // For an unknown topic nsqd's GetStats returns early with nil slices:
    // both `topics` and `producers` are null (nsqadmin copes with that).
    let no_topic = nsqd.stats("topic=does_not_exist")?;
    ensure!(
        no_topic["topics"].is_null() && no_topic["producers"].is_null(),
        "unknown topic filter: {no_topic}"
    );

    let no_clients = nsqd.stats("include_clients=false")?;
    let t = find_topic(&no_clients, &a).context("topic a")?;
    let ch = find_channel(t, "c1").context("channel c1")?;
    ensure!(ch["clients"].is_null() && ch["client_count"] == 1, "{ch}");
    ensure!(no_clients["producers"].is_null(), "{no_clients}");
    let with = nsqd.stats("include_clients=true")?;
    let ch = find_channel(find_topic(&with, &a).unwrap(), "c1")
        .unwrap()
        .clone();
    ensure!(ch["clients"].as_array().map(|c| c.len()) == Some(1), "{ch}");
    Ok(())
}

/// Counts are aggregated over shards: publishes arrive on several
/// connections (so on both cores with --shards=2).
#[test]
fn stats_aggregate_over_shards() -> Result<()> {
    let nsqd = TestNsqd::start(&["--shards=2"])?;
    let topic = unique_name("agg");
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/create?topic={topic}"),
        b"",
    )?)?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/channel/create?topic={topic}&channel=ch"),
        b"",
    )?)?;
    let mut bytes = 0;
    let mut producers = Vec::new();
    for p in 0..4 {
        let mut conn = nsqd.connect()?;
        conn.identify_ok(
            &json!({"client_id": format!("producer-{p}"), "feature_negotiation": true}),
        )?;
        for i in 0..25 {
            let body = format!("p{p}-{i}");
            bytes += body.len();
            conn.pub_ok(&topic, body.as_bytes())?;
        }
        producers.push(conn);
    }
    let t = nsqd.wait_topic(&topic, "100 messages at the channel", |t| {
        t["message_count"] == 100 && t["channels"][0]["depth"] == 100
    })?;
    ensure!(t["message_bytes"] == bytes && t["depth"] == 0, "{t}");
    let ch = &t["channels"][0];
    ensure!(
        ch["message_count"] == 100 && ch["in_flight_count"] == 0,
        "{ch}"
    );

    let _c = consumer(nsqd.tcp_addr(), &topic, "ch", 10, json!({}))?;
    let ch = nsqd.wait_channel(&topic, "ch", "10 in flight", |ch| {
        ch["in_flight_count"] == 10 && ch["depth"] == 90
    })?;
    ensure!(ch["clients"][0]["ready_count"] == 10, "{ch}");
    let stats = nsqd.stats("")?;
    let listed = stats["producers"].as_array().context("producers")?;
    for p in 0..4 {
        let name = format!("producer-{p}");
        let prod = listed
            .iter()
            .find(|x| x["client_id"] == name.as_str())
            .with_context(|| format!("{name} listed in {listed:?}"))?;
        ensure!(
            prod["pub_counts"] == json!([{"topic": topic, "count": 25}]),
            "{prod}"
        );
    }
    drop(producers);
    Ok(())
}

#[test]
fn stats_text() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("text_stats");
    let _c = consumer(nsqd.tcp_addr(), &topic, "text_channel", 0, json!({}))?;
    for path in ["/stats", "/stats?format=text"] {
        let r = call(&nsqd, "GET", path, b"")?;
        let text = r.text();
        ensure!(r.status == 200, "{path}: {}", r.status);
        ensure!(
            text.contains(&topic) && text.contains("text_channel"),
            "{path} lists topic and channel: {text}"
        );
    }
    Ok(())
}
