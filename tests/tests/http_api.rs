//! HTTP API conformance, ported from nsqd's `http_test.go` (v1.3.0) and
//! `http.go` / `internal/http_api` (status codes, bodies, headers).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use nsq_tests::http::{self, HttpConn, Response};
use nsq_tests::{consumer, find_channel, find_topic, mpub_body, unique_name, TestNsqd};
use serde_json::{json, Value};

fn call(nsqd: &TestNsqd, method: &str, path: &str, body: &[u8]) -> Result<Response> {
    http::request(nsqd.http_addr(), method, path, body)
}

/// Asserts status and exact body.
fn expect(resp: &Response, status: u16, body: &str) -> Result<()> {
    ensure!(
        resp.status == status && resp.body == body.as_bytes(),
        "expected {status} {body:?}, got {} {:?}",
        resp.status,
        resp.text()
    );
    Ok(())
}

/// Asserts an error response `{"message":"<msg>"}` with `status`.
fn expect_err(resp: &Response, status: u16, msg: &str) -> Result<()> {
    expect(resp, status, &format!("{{\"message\":\"{msg}\"}}"))?;
    ensure!(
        resp.header("content-type") == Some("application/json; charset=utf-8"),
        "error responses are JSON: {:?}",
        resp.headers
    );
    Ok(())
}

/// Asserts a 200 with an empty body and the V1 header (action endpoints).
fn expect_empty_ok(resp: &Response) -> Result<()> {
    expect(resp, 200, "")?;
    ensure!(
        resp.header("x-nsq-content-type") == Some("nsq; version=1.0"),
        "X-NSQ-Content-Type: {:?}",
        resp.headers
    );
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn ensure_keys(what: &str, v: &Value, required: &[&str]) -> Result<()> {
    let have = keys(v);
    let missing: Vec<_> = required.iter().filter(|k| !have.contains(**k)).collect();
    ensure!(missing.is_empty(), "{what} lacks keys {missing:?}: {v}");
    Ok(())
}

// ---------------------------------------------------------------------------
// /ping, /info
// ---------------------------------------------------------------------------

#[test]
fn ping() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    expect(&call(&nsqd, "GET", "/ping", b"")?, 200, "OK")
}

#[test]
fn info_defaults() -> Result<()> {
    let before = unix_now();
    let nsqd = TestNsqd::start(&[])?;
    let r = call(&nsqd, "GET", "/info", b"")?;
    ensure!(r.status == 200, "{} {}", r.status, r.text());
    ensure!(
        r.header("content-type") == Some("application/json; charset=utf-8"),
        "{:?}",
        r.headers
    );
    ensure!(
        r.header("x-nsq-content-type") == Some("nsq; version=1.0"),
        "{:?}",
        r.headers
    );
    let info = r.json()?;
    ensure_keys(
        "/info",
        &info,
        &[
            "version",
            "broadcast_address",
            "hostname",
            "http_port",
            "tcp_port",
            "start_time",
            "max_heartbeat_interval",
            "max_output_buffer_size",
            "max_output_buffer_timeout",
            "max_deflate_level",
        ],
    )?;
    ensure!(
        info["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{info}"
    );
    ensure!(
        info["broadcast_address"].is_string() && info["hostname"].is_string(),
        "{info}"
    );
    ensure!(info["http_port"] == nsqd.http_addr().port(), "{info}");
    ensure!(info["tcp_port"] == nsqd.tcp_addr().port(), "{info}");
    let st = info["start_time"]
        .as_i64()
        .context("start_time is an integer")?;
    ensure!(st >= before - 2 && st <= unix_now() + 2, "start_time {st}");
    // Durations are Go time.Duration: integer nanoseconds.
    ensure!(
        info["max_heartbeat_interval"] == 60_000_000_000i64,
        "{info}"
    );
    ensure!(info["max_output_buffer_size"] == 65536, "{info}");
    ensure!(
        info["max_output_buffer_timeout"] == 30_000_000_000i64,
        "{info}"
    );
    ensure!(info["max_deflate_level"] == 6, "{info}");
    Ok(())
}

#[test]
fn info_reflects_flags() -> Result<()> {
    let nsqd = TestNsqd::start(&[
        "--broadcast-address=nsq.test.invalid",
        "--max-heartbeat-interval=2m",
        "--max-output-buffer-size=131072",
        "--max-output-buffer-timeout=5s",
        "--max-deflate-level=3",
    ])?;
    let info = call(&nsqd, "GET", "/info", b"")?.json()?;
    ensure!(info["broadcast_address"] == "nsq.test.invalid", "{info}");
    ensure!(
        info["max_heartbeat_interval"] == 120_000_000_000i64,
        "{info}"
    );
    ensure!(info["max_output_buffer_size"] == 131072, "{info}");
    ensure!(
        info["max_output_buffer_timeout"] == 5_000_000_000i64,
        "{info}"
    );
    ensure!(info["max_deflate_level"] == 3, "{info}");
    Ok(())
}

// ---------------------------------------------------------------------------
// /pub, /mpub
// ---------------------------------------------------------------------------

/// TestHTTPpub: the message is stored and consumable.
#[test]
fn pub_stores_message() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_pub");
    let r = call(
        &nsqd,
        "POST",
        &format!("/pub?topic={topic}"),
        b"test message",
    )?;
    expect(&r, 200, "OK")?;
    ensure!(
        r.header("x-nsq-content-type") == Some("nsq; version=1.0"),
        "{:?}",
        r.headers
    );
    let t = nsqd.wait_topic(&topic, "depth 1", |t| t["depth"] == 1)?;
    ensure!(t["message_count"] == 1 && t["message_bytes"] == 12, "{t}");

    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"test message" && m.attempts == 1);
    Ok(())
}

#[test]
fn pub_errors() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-msg-size=100"])?;
    let t = unique_name("pub_err");
    expect_err(
        &call(&nsqd, "POST", "/pub", b"x")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", "/pub?topic=a*b", b"x")?,
        400,
        "INVALID_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", &format!("/pub?topic={t}"), b"")?,
        400,
        "MSG_EMPTY",
    )?;
    // The body is checked before the topic.
    expect_err(&call(&nsqd, "POST", "/pub", b"")?, 400, "MSG_EMPTY")?;
    expect_err(
        &call(&nsqd, "POST", &format!("/pub?topic={t}"), &[1u8; 101])?,
        413,
        "MSG_TOO_BIG",
    )?;
    expect(
        &call(&nsqd, "POST", &format!("/pub?topic={t}"), &[1u8; 100])?,
        200,
        "OK",
    )?;
    for d in ["-1", "abc", "3600001"] {
        expect_err(
            &call(&nsqd, "POST", &format!("/pub?topic={t}&defer={d}"), b"x")?,
            400,
            "INVALID_DEFER",
        )
        .with_context(|| format!("defer={d}"))?;
    }
    expect_err(
        &call(&nsqd, "GET", &format!("/pub?topic={t}"), b"")?,
        405,
        "METHOD_NOT_ALLOWED",
    )?;
    let t = nsqd.wait_topic(&t, "only the valid message", |t| t["message_count"] == 1)?;
    ensure!(t["depth"] == 1, "{t}");
    Ok(())
}

/// TestHTTPpubDefer: deferred at the channel, not delivered early.
#[test]
fn pub_defer() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_pub_defer");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let sent = Instant::now();
    let r = call(
        &nsqd,
        "POST",
        &format!("/pub?topic={topic}&defer=1000"),
        b"test message",
    )?;
    expect(&r, 200, "OK")?;
    nsqd.wait_channel(&topic, "ch", "deferred_count 1", |ch| {
        ch["deferred_count"] == 1
    })?;
    let m = c.expect_message()?;
    ensure!(
        sent.elapsed() >= Duration::from_millis(1000),
        "delivered after {:?}",
        sent.elapsed()
    );
    ensure!(&m.body[..] == b"test message");
    Ok(())
}

/// TestHTTPmpub / TestHTTPmpubEmpty: text mode splits on newlines and skips
/// empty lines.
#[test]
fn mpub_text() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_mpub");
    let body = ["test message"; 4].join("\n");
    expect(
        &call(
            &nsqd,
            "POST",
            &format!("/mpub?topic={topic}"),
            body.as_bytes(),
        )?,
        200,
        "OK",
    )?;
    nsqd.wait_topic(&topic, "depth 4", |t| t["depth"] == 4)?;

    let with_trailing = format!("{body}\n");
    expect(
        &call(
            &nsqd,
            "POST",
            &format!("/mpub?topic={topic}"),
            with_trailing.as_bytes(),
        )?,
        200,
        "OK",
    )?;
    nsqd.wait_topic(&topic, "depth 8", |t| t["depth"] == 8)?;

    let sparse = b"first\n\n\nsecond\n\n";
    expect(
        &call(
            &nsqd,
            "POST",
            &format!("/mpub?topic={topic}&binary=false"),
            sparse,
        )?,
        200,
        "OK",
    )?;
    let t = nsqd.wait_topic(&topic, "depth 10", |t| t["depth"] == 10)?;
    ensure!(t["message_count"] == 10, "{t}");

    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 20, json!({}))?;
    let got: BTreeSet<String> = c
        .recv_and_fin(10)?
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    ensure!(
        got == BTreeSet::from(["test message".to_string(), "first".into(), "second".into()]),
        "{got:?}"
    );
    c.expect_silence(Duration::from_millis(200))
}

/// TestHTTPmpubBinary / ForNonNormalizedBinaryParam.
#[test]
fn mpub_binary() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_mpub_bin");
    let hundred: &[u8] = &[5u8; 100];
    let body = mpub_body(&[hundred; 5]);
    let mut expected = 0;
    for b in ["true", "1", "non_normalized_binary_param"] {
        let r = call(
            &nsqd,
            "POST",
            &format!("/mpub?topic={topic}&binary={b}"),
            &body,
        )?;
        expect(&r, 200, "OK").with_context(|| format!("binary={b}"))?;
        expected += 5;
        nsqd.wait_topic(&topic, "binary messages stored", |t| t["depth"] == expected)?;
    }
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 20, json!({}))?;
    for m in c.recv_and_fin(15)? {
        ensure!(&m.body[..] == hundred);
    }
    Ok(())
}

#[test]
fn mpub_errors() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-msg-size=100", "--max-body-size=1000"])?;
    let t = unique_name("mpub_err");
    let bin = format!("/mpub?topic={t}&binary=true");
    let text = format!("/mpub?topic={t}");
    expect_err(
        &call(&nsqd, "POST", "/mpub", b"a\nb")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", "/mpub?topic=a*b", b"a\nb")?,
        400,
        "INVALID_TOPIC",
    )?;
    // Binary-mode errors are 413 with the TCP code minus "E_".
    expect_err(
        &call(&nsqd, "POST", &bin, &0u32.to_be_bytes())?,
        413,
        "BAD_BODY",
    )?;
    expect_err(
        &call(&nsqd, "POST", &bin, &mpub_body(&[b"ok", b""]))?,
        413,
        "BAD_MESSAGE",
    )?;
    expect_err(
        &call(&nsqd, "POST", &bin, &mpub_body(&[&[1u8; 101]]))?,
        413,
        "BAD_MESSAGE",
    )?;
    let mut truncated = mpub_body(&[b"one"]);
    truncated[3] = 2; // claims two messages, carries one
    expect_err(&call(&nsqd, "POST", &bin, &truncated)?, 413, "BAD_MESSAGE")?;
    // Text mode.
    let long_line = [b'x'; 101];
    expect_err(&call(&nsqd, "POST", &text, &long_line)?, 413, "MSG_TOO_BIG")?;
    expect_err(
        &call(&nsqd, "POST", &text, &[b'x'; 1001])?,
        413,
        "BODY_TOO_BIG",
    )?;
    expect_err(
        &call(&nsqd, "POST", &bin, &[b'x'; 1001])?,
        413,
        "BODY_TOO_BIG",
    )?;
    // Nothing of a rejected batch was stored.
    let stats = nsqd.stats("")?;
    if let Some(topic) = find_topic(&stats, &t) {
        ensure!(
            topic["message_count"] == 0 && topic["depth"] == 0,
            "{topic}"
        );
    }
    Ok(())
}

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

// ---------------------------------------------------------------------------
// /topic/*, /channel/*
// ---------------------------------------------------------------------------

/// TestHTTPV1TopicChannel.
#[test]
fn topic_and_channel_actions() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_topic_channel2");
    let q = format!("topic={topic}&channel=ch2");
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/create?topic={topic}"),
        b"",
    )?)?;
    expect_empty_ok(&call(&nsqd, "POST", &format!("/channel/create?{q}"), b"")?)?;
    ensure!(
        nsqd.channel_stats(&topic, "ch2")?.is_some(),
        "channel created"
    );

    expect_err(
        &call(&nsqd, "POST", "/topic/pause", b"")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(
            &nsqd,
            "POST",
            &format!("/topic/pause?topic={topic}abc"),
            b"",
        )?,
        404,
        "TOPIC_NOT_FOUND",
    )?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/pause?topic={topic}"),
        b"",
    )?)?;
    ensure!(nsqd.topic_stats(&topic)?.unwrap()["paused"] == true);
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/unpause?topic={topic}"),
        b"",
    )?)?;
    ensure!(nsqd.topic_stats(&topic)?.unwrap()["paused"] == false);

    expect_empty_ok(&call(&nsqd, "POST", &format!("/channel/pause?{q}"), b"")?)?;
    ensure!(nsqd.channel_stats(&topic, "ch2")?.unwrap()["paused"] == true);
    expect_empty_ok(&call(&nsqd, "POST", &format!("/channel/unpause?{q}"), b"")?)?;
    ensure!(nsqd.channel_stats(&topic, "ch2")?.unwrap()["paused"] == false);

    expect_empty_ok(&call(&nsqd, "POST", &format!("/channel/delete?{q}"), b"")?)?;
    ensure!(
        nsqd.channel_stats(&topic, "ch2")?.is_none(),
        "channel deleted"
    );
    expect_err(
        &call(&nsqd, "POST", &format!("/channel/delete?{q}"), b"")?,
        404,
        "CHANNEL_NOT_FOUND",
    )?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/delete?topic={topic}"),
        b"",
    )?)?;
    ensure!(nsqd.topic_stats(&topic)?.is_none(), "topic deleted");
    Ok(())
}

/// Parameter errors of the topic and channel endpoints.
#[test]
fn topic_and_channel_errors() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("errs");
    expect_err(
        &call(&nsqd, "POST", "/topic/create", b"")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", "/topic/create?topic=a*b", b"")?,
        400,
        "INVALID_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", "/channel/create", b"")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", "/channel/create?topic=a*b&channel=c", b"")?,
        400,
        "INVALID_ARG_TOPIC",
    )?;
    expect_err(
        &call(
            &nsqd,
            "POST",
            &format!("/channel/create?topic={topic}"),
            b"",
        )?,
        400,
        "MISSING_ARG_CHANNEL",
    )?;
    expect_err(
        &call(
            &nsqd,
            "POST",
            &format!("/channel/create?topic={topic}&channel=a*b"),
            b"",
        )?,
        400,
        "INVALID_ARG_CHANNEL",
    )?;
    // The topic must exist for /channel/create.
    expect_err(
        &call(
            &nsqd,
            "POST",
            &format!("/channel/create?topic={topic}&channel=c"),
            b"",
        )?,
        404,
        "TOPIC_NOT_FOUND",
    )?;
    ensure!(
        nsqd.topic_stats(&topic)?.is_none(),
        "no topic created by a failed /channel/create"
    );
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/create?topic={topic}"),
        b"",
    )?)?;
    for action in ["pause", "unpause", "delete", "empty"] {
        expect_err(
            &call(
                &nsqd,
                "POST",
                &format!("/channel/{action}?topic={topic}&channel=nope"),
                b"",
            )?,
            404,
            "CHANNEL_NOT_FOUND",
        )
        .with_context(|| format!("/channel/{action}"))?;
    }
    for action in ["pause", "unpause", "delete", "empty"] {
        expect_err(
            &call(
                &nsqd,
                "POST",
                &format!("/topic/{action}?topic=nope_{topic}"),
                b"",
            )?,
            404,
            "TOPIC_NOT_FOUND",
        )
        .with_context(|| format!("/topic/{action}"))?;
        expect_err(
            &call(&nsqd, "POST", &format!("/topic/{action}"), b"")?,
            400,
            "MISSING_ARG_TOPIC",
        )?;
    }
    expect_err(
        &call(&nsqd, "GET", &format!("/topic/create?topic={topic}"), b"")?,
        405,
        "METHOD_NOT_ALLOWED",
    )?;
    Ok(())
}

/// TestDeleteTopic: deleting drops the topic's messages and channels.
#[test]
fn topic_delete() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_delete_topic");
    expect_err(
        &call(&nsqd, "POST", &format!("/topic/delete?topic={topic}"), b"")?,
        404,
        "TOPIC_NOT_FOUND",
    )?;
    expect(
        &call(&nsqd, "POST", &format!("/pub?topic={topic}"), b"gone")?,
        200,
        "OK",
    )?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/channel/create?topic={topic}&channel=ch"),
        b"",
    )?)?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/delete?topic={topic}"),
        b"",
    )?)?;
    ensure!(nsqd.topic_stats(&topic)?.is_none(), "topic deleted");
    // A new topic of the same name starts empty.
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    c.expect_silence(Duration::from_millis(300))?;
    let t = nsqd.topic_stats(&topic)?.context("recreated by SUB")?;
    ensure!(t["message_count"] == 0 && t["depth"] == 0, "{t}");
    Ok(())
}

/// TestEmptyTopic.
#[test]
fn topic_empty() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_empty_topic");
    expect_err(
        &call(&nsqd, "POST", "/topic/empty", b"")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", &format!("/topic/empty?topic={topic}$"), b"")?,
        400,
        "INVALID_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", &format!("/topic/empty?topic={topic}"), b"")?,
        404,
        "TOPIC_NOT_FOUND",
    )?;
    expect(
        &call(&nsqd, "POST", &format!("/mpub?topic={topic}"), b"a\nb\nc")?,
        200,
        "OK",
    )?;
    nsqd.wait_topic(&topic, "depth 3", |t| t["depth"] == 3)?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/empty?topic={topic}"),
        b"",
    )?)?;
    nsqd.wait_topic(&topic, "depth 0 after empty", |t| t["depth"] == 0)?;
    Ok(())
}

/// TestEmptyChannel.
#[test]
fn channel_empty() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_http_empty_channel");
    expect_err(
        &call(&nsqd, "POST", "/channel/empty", b"")?,
        400,
        "MISSING_ARG_TOPIC",
    )?;
    expect_err(
        &call(&nsqd, "POST", &format!("/channel/empty?topic={topic}"), b"")?,
        400,
        "MISSING_ARG_CHANNEL",
    )?;
    let q = format!("/channel/empty?topic={topic}&channel=ch");
    expect_err(&call(&nsqd, "POST", &q, b"")?, 404, "TOPIC_NOT_FOUND")?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/topic/create?topic={topic}"),
        b"",
    )?)?;
    expect_err(&call(&nsqd, "POST", &q, b"")?, 404, "CHANNEL_NOT_FOUND")?;
    expect_empty_ok(&call(
        &nsqd,
        "POST",
        &format!("/channel/create?topic={topic}&channel=ch"),
        b"",
    )?)?;
    expect(
        &call(&nsqd, "POST", &format!("/mpub?topic={topic}"), b"a\nb\nc")?,
        200,
        "OK",
    )?;
    nsqd.wait_channel(&topic, "ch", "depth 3", |ch| ch["depth"] == 3)?;
    expect_empty_ok(&call(&nsqd, "POST", &q, b"")?)?;
    nsqd.wait_channel(&topic, "ch", "depth 0 after empty", |ch| ch["depth"] == 0)?;
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 5, json!({}))?;
    c.expect_silence(Duration::from_millis(300))
}

// ---------------------------------------------------------------------------
// /config, errors, transport
// ---------------------------------------------------------------------------

#[test]
fn config_get_and_put() -> Result<()> {
    let nsqd = TestNsqd::start(&["--mem-queue-size=123"])?;
    expect(
        &call(&nsqd, "GET", "/config/mem_queue_size", b"")?,
        200,
        "123",
    )?;
    expect(
        &call(&nsqd, "GET", "/config/max_rdy_count", b"")?,
        200,
        "2500",
    )?;
    // time.Duration values are nanoseconds.
    expect(
        &call(&nsqd, "GET", "/config/msg_timeout", b"")?,
        200,
        "60000000000",
    )?;
    expect(
        &call(&nsqd, "GET", "/config/nsqlookupd_tcp_addresses", b"")?,
        200,
        "[]",
    )?;
    expect_err(
        &call(&nsqd, "GET", "/config/no_such_option", b"")?,
        400,
        "INVALID_OPTION",
    )?;

    let r = call(&nsqd, "PUT", "/config/log_level", b"fatal")?;
    ensure!(r.status == 200, "PUT log_level: {} {}", r.status, r.text());
    expect_err(
        &call(&nsqd, "PUT", "/config/log_level", b"bad")?,
        400,
        "INVALID_VALUE",
    )?;
    expect_err(
        &call(&nsqd, "PUT", "/config/log_level", b"")?,
        413,
        "INVALID_VALUE",
    )?;
    expect_err(
        &call(&nsqd, "PUT", "/config/mem_queue_size", b"5")?,
        400,
        "INVALID_OPTION",
    )?;
    expect(
        &call(&nsqd, "PUT", "/config/nsqlookupd_tcp_addresses", b"[]")?,
        200,
        "[]",
    )?;
    expect_err(
        &call(
            &nsqd,
            "PUT",
            "/config/nsqlookupd_tcp_addresses",
            b"not json",
        )?,
        400,
        "INVALID_VALUE",
    )?;
    expect(
        &call(&nsqd, "GET", "/config/mem_queue_size", b"")?,
        200,
        "123",
    )?;
    Ok(())
}

/// TestHTTPerrors.
#[test]
fn not_found_and_method_not_allowed() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    expect_err(
        &call(&nsqd, "POST", "/stats", b"")?,
        405,
        "METHOD_NOT_ALLOWED",
    )?;
    expect_err(&call(&nsqd, "GET", "/not_found", b"")?, 404, "NOT_FOUND")?;
    expect_err(&call(&nsqd, "GET", "/topic/nope", b"")?, 404, "NOT_FOUND")?;
    // Pre-1.0 endpoints were removed.
    expect_err(
        &call(&nsqd, "POST", "/put?topic=t", b"x")?,
        404,
        "NOT_FOUND",
    )?;
    expect_err(
        &call(&nsqd, "GET", "/create_topic?topic=t", b"")?,
        404,
        "NOT_FOUND",
    )?;
    Ok(())
}

/// Two requests on one HTTP/1.1 connection.
#[test]
fn http_keep_alive() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("keepalive");
    let mut conn = HttpConn::connect(nsqd.http_addr())?;
    expect(&conn.request("GET", "/ping", b"")?, 200, "OK")?;
    expect(
        &conn.request("POST", &format!("/pub?topic={topic}"), b"one")?,
        200,
        "OK",
    )?;
    expect(
        &conn.request("POST", &format!("/pub?topic={topic}"), b"two")?,
        200,
        "OK",
    )?;
    let r = conn.request("GET", &format!("/stats?format=json&topic={topic}"), b"")?;
    ensure!(r.status == 200, "{}", r.status);
    ensure!(r.json()?["topics"][0]["message_count"] == 2, "{}", r.text());
    Ok(())
}

/// A V2 client that dials the HTTP port gets an HTTP 400, not a hang.
#[test]
fn v2_magic_on_http_port_gets_400() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut conn = HttpConn::connect(nsqd.http_addr())?;
    conn.send_raw(b"  V2")?;
    conn.send_raw(b"IDENTIFY\n")?;
    let raw = conn.read_to_close()?;
    let text = String::from_utf8_lossy(&raw);
    ensure!(text.starts_with("HTTP/1.1 400"), "got {text:?}");
    Ok(())
}
