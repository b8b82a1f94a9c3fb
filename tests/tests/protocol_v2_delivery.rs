//! TCP protocol V2 conformance (see `protocol_v2.rs`): flow control and
//! message lifecycle: RDY, FIN, REQ, TOUCH, message timeouts, DPUB and CLS.
//! Ported from nsqd's `protocol_v2_test.go` (v1.3.0); the tests that matter
//! for the sharded design run with `--shards=1` and `--shards=2`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nsq_tests::wire::{negotiate, nsqd};
use nsq_tests::{consumer, id_str, unique_name, TestNsqd};
use serde_json::json;

nsq_tests::both_shards!(
    dpub_not_delivered_before_delay,
    client_msg_timeout_redelivers,
    req_with_delay,
    touch_extends_timeout,
);

// ---------------------------------------------------------------------------
// RDY
// ---------------------------------------------------------------------------

/// `RDY` without a count means `RDY 1`.
#[test]
fn rdy_without_count_means_one() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("rdy1");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 0, json!({}))?;
    c.send(b"RDY\n")?;
    nsqd.connect()?.mpub_ok(&topic, &[b"one", b"two"])?;
    let m = c.expect_message()?;
    // RDY is a window: one in flight, so the second waits for the FIN.
    c.expect_silence(Duration::from_millis(300))?;
    c.fin(&m.id)?;
    c.expect_message()?;
    Ok(())
}

/// TestMaxRdyCount.
#[test]
fn max_rdy_count() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-rdy-count=50"])?;
    let topic = unique_name("test_max_rdy_count");
    nsqd.connect()?.pub_ok(&topic, b"test body")?;
    let mut c = nsqd.connect()?;
    let resp = c.identify_ok(&negotiate())?;
    ensure!(resp["max_rdy_count"] == 50, "IDENTIFY response {resp}");
    c.sub_ok(&topic, "ch")?;
    c.rdy(50)?;
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"test body");
    c.rdy(51)?;
    c.expect_fatal("E_INVALID RDY count 51 out of range 0-50")
}

// ---------------------------------------------------------------------------
// DPUB, TOUCH, timeouts, FIN, REQ, CLS
// ---------------------------------------------------------------------------

/// TestDPUB: a deferred message is counted at once (deferred_count,
/// message_count) but not delivered before its delay.
fn dpub_not_delivered_before_delay(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("test_dpub_v2");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let mut p = nsqd.connect()?;
    let sent = Instant::now();
    p.dpub_ok(&topic, 1000, &[7u8; 100])?;
    nsqd.wait_channel(&topic, "ch", "deferred_count 1", |ch| {
        ch["deferred_count"] == 1 && ch["message_count"] == 1
    })?;
    let m = c.expect_message()?;
    let waited = sent.elapsed();
    ensure!(
        waited >= Duration::from_millis(1000),
        "DPUB 1000 delivered after only {waited:?}"
    );
    ensure!(m.attempts == 1 && m.body.len() == 100);
    c.fin(&m.id)?;
    nsqd.wait_channel(&topic, "ch", "deferred_count 0", |ch| {
        ch["deferred_count"] == 0 && ch["in_flight_count"] == 0
    })?;

    p.send(format!("DPUB {topic} 3600100\n").as_bytes())?;
    p.expect_fatal("E_INVALID DPUB timeout 3600100 out of range 0-3600000")
}

/// DPUB bounds follow --max-req-timeout; 0 means no delay.
#[test]
fn dpub_bounds_follow_max_req_timeout() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-req-timeout=10s"])?;
    let topic = unique_name("dpub_bounds");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let mut p = nsqd.connect()?;
    p.dpub_ok(&topic, 0, b"now")?;
    ensure!(&c.expect_message()?.body[..] == b"now");
    p.dpub_ok(&topic, 10_000, b"max")?;
    p.send(format!("DPUB {topic} 10001\n").as_bytes())?;
    p.expect_fatal("E_INVALID DPUB timeout 10001 out of range 0-10000")
}

/// TestTouch: TOUCH resets the in-flight timeout.
fn touch_extends_timeout(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("test_touch");
    let mut c = consumer(
        nsqd.tcp_addr(),
        &topic,
        "ch",
        1,
        json!({"msg_timeout": 2000}),
    )?;
    nsqd.connect()?.pub_ok(&topic, b"test body")?;
    let m = c.expect_message()?;
    // 3 x 1.2 s = 3.6 s in flight, well past the 2 s timeout, but each TOUCH
    // restarts it.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1200));
        c.touch(&m.id)?;
    }
    c.fin(&m.id)?;
    c.barrier().context("FIN after TOUCH must succeed")?;
    let ch = nsqd.wait_channel(&topic, "ch", "finished", |ch| ch["in_flight_count"] == 0)?;
    ensure!(
        ch["timeout_count"] == 0,
        "TOUCH must prevent the timeout: {ch}"
    );
    Ok(())
}

/// TestClientMsgTimeout: an unfinished message times out after the
/// client's msg_timeout and is redelivered with attempts 2; FIN of the
/// timed-out delivery fails without closing the connection.
fn client_msg_timeout_redelivers(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("test_cmsg_timeout");
    let mut p = nsqd.connect()?;
    p.pub_ok(&topic, &[1u8; 100])?;
    let mut c = consumer(
        nsqd.tcp_addr(),
        &topic,
        "ch",
        1,
        json!({"msg_timeout": 1000}),
    )?;
    let m = c.expect_message()?;
    ensure!(m.attempts == 1);
    c.rdy(0)?;
    nsqd.wait_channel(&topic, "ch", "timeout_count 1", |ch| {
        ch["timeout_count"] == 1
    })?;

    c.fin(&m.id)?;
    c.expect_error(&format!(
        "E_FIN_FAILED FIN {} failed ID not in flight",
        id_str(&m.id)
    ))?;

    // The connection survived the non-fatal error.
    c.rdy(1)?;
    let again = c.expect_message()?;
    ensure!(again.id.0 == m.id.0, "redelivered a different message");
    ensure!(
        again.attempts == 2,
        "attempts {} after one timeout",
        again.attempts
    );
    c.fin(&again.id)?;
    c.barrier()?;
    let ch = nsqd.wait_channel(&topic, "ch", "finished", |ch| ch["in_flight_count"] == 0)?;
    ensure!(ch["requeue_count"] == 0 && ch["timeout_count"] == 1, "{ch}");
    Ok(())
}

/// TestBadFin and ownership: FIN/REQ/TOUCH failures are non-fatal.
#[test]
fn fin_req_touch_failures_are_not_fatal() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_fin");
    let mut c1 = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let mut c2 = consumer(nsqd.tcp_addr(), &topic, "ch", 0, json!({}))?;

    let unknown = "0123456789abcdef";
    c1.send(format!("FIN {unknown}\n").as_bytes())?;
    c1.expect_error(&format!(
        "E_FIN_FAILED FIN {unknown} failed ID not in flight"
    ))?;
    c1.send(format!("REQ {unknown} 0\n").as_bytes())?;
    c1.expect_error(&format!(
        "E_REQ_FAILED REQ {unknown} failed ID not in flight"
    ))?;
    c1.send(format!("TOUCH {unknown}\n").as_bytes())?;
    c1.expect_error(&format!(
        "E_TOUCH_FAILED TOUCH {unknown} failed ID not in flight"
    ))?;
    c1.barrier()?;

    nsqd.connect()?.pub_ok(&topic, b"owned by c1")?;
    let m = c1.expect_message()?;
    let id = id_str(&m.id);
    c2.fin(&m.id)?;
    c2.expect_error(&format!(
        "E_FIN_FAILED FIN {id} failed client does not own message"
    ))?;
    c2.req(&m.id, 0)?;
    c2.expect_error(&format!(
        "E_REQ_FAILED REQ {id} failed client does not own message"
    ))?;
    c2.touch(&m.id)?;
    c2.expect_error(&format!(
        "E_TOUCH_FAILED TOUCH {id} failed client does not own message"
    ))?;
    c2.barrier()?;
    c1.fin(&m.id)?;
    c1.barrier()?;
    nsqd.wait_channel(&topic, "ch", "finished by its owner", |ch| {
        ch["in_flight_count"] == 0
    })?;
    Ok(())
}

/// TestReqTimeoutRange: REQ 0 requeues at once; a timeout above
/// --max-req-timeout is clamped (no error) and deferred.
#[test]
fn req_timeout_range() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-req-timeout=60s"])?;
    let topic = unique_name("test_req");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    nsqd.connect()?.pub_ok(&topic, b"test body")?;
    let m = c.expect_message()?;
    c.req(&m.id, 0)?;
    let again = c.expect_message()?;
    ensure!(
        again.id.0 == m.id.0 && again.attempts == 2,
        "attempts {}",
        again.attempts
    );

    c.req(&m.id, 120_000)?;
    c.barrier()
        .context("an over-long REQ is clamped, not refused")?;
    c.expect_silence(Duration::from_millis(1000))?;
    let ch = nsqd.wait_channel(&topic, "ch", "deferred", |ch| ch["deferred_count"] == 1)?;
    ensure!(
        ch["requeue_count"] == 2 && ch["in_flight_count"] == 0,
        "{ch}"
    );
    Ok(())
}

/// REQ with a delay: not redelivered before the delay, attempts 2.
fn req_with_delay(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("req_delay");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    nsqd.connect()?.pub_ok(&topic, b"retry me")?;
    let m = c.expect_message()?;
    let sent = Instant::now();
    c.req(&m.id, 1000)?;
    let again = c.expect_message()?;
    let waited = sent.elapsed();
    ensure!(
        waited >= Duration::from_millis(1000),
        "REQ 1000 redelivered after {waited:?}"
    );
    ensure!(
        again.id.0 == m.id.0 && again.attempts == 2,
        "attempts {}",
        again.attempts
    );
    c.fin(&again.id)?;
    c.barrier()?;
    let ch = nsqd.wait_channel(&topic, "ch", "requeue counted", |ch| {
        ch["in_flight_count"] == 0
    })?;
    ensure!(
        ch["requeue_count"] == 1 && ch["deferred_count"] == 0,
        "{ch}"
    );
    Ok(())
}

/// CLS: `CLOSE_WAIT`, RDY forced to 0 (later RDYs ignored), in-flight
/// messages can still be finished.
#[test]
fn cls_close_wait() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("cls");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 5, json!({}))?;
    let mut p = nsqd.connect()?;
    p.pub_ok(&topic, b"in flight")?;
    let m = c.expect_message()?;
    c.cls()?;
    c.expect_response("CLOSE_WAIT")?;
    c.rdy(5)?; // ignored while closing, not an error
    c.fin(&m.id)?;
    c.barrier()?;
    p.pub_ok(&topic, b"not for a closing client")?;
    c.expect_silence(Duration::from_millis(500))?;
    let stats = nsqd.stats(&format!("topic={topic}"))?;
    let client = &stats["topics"][0]["channels"][0]["clients"][0];
    ensure!(
        client["state"] == 4 && client["ready_count"] == 0,
        "closing client stats: {client}"
    );
    Ok(())
}
