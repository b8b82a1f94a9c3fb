//! HTTP API conformance, ported from nsqd's `http_test.go` (v1.3.0) and
//! `http.go` / `internal/http_api` (status codes, bodies, headers).
//!
//! This binary: `/ping`, `/info`, `/pub`, `/mpub`, HTTP errors and the
//! transport. `/stats` is in `http_api_stats.rs`; `/topic/*`, `/channel/*` and
//! `/config` are in `http_api_admin.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nsq_tests::http::HttpConn;
use nsq_tests::wire::{call, ensure_keys, expect, expect_err, unix_now};
use nsq_tests::{consumer, find_topic, mpub_body, unique_name, TestNsqd};
use serde_json::json;

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
// Errors, transport
// ---------------------------------------------------------------------------

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

/// Strict HTTP/1.1 Host rules, as Go's server (which nsqd runs on) applies.
#[test]
fn host_header_is_required_as_go_requires_it() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    nsq_tests::http::check_host_rules(nsqd.http_addr())
}
