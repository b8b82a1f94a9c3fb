//! HTTP API conformance (see `http_api.rs`): the admin endpoints
//! `/topic/*`, `/channel/*` (create, delete, empty, pause) and `/config`.
//! Ported from nsqd's `http_test.go` (v1.3.0).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nsq_tests::wire::{call, expect, expect_empty_ok, expect_err};
use nsq_tests::{consumer, unique_name, TestNsqd};
use serde_json::json;

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
// /config
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
