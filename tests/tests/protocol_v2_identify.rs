//! TCP protocol V2 conformance (see `protocol_v2.rs`): IDENTIFY and feature
//! negotiation, heartbeats and client timeouts, output buffering, and the
//! TLS/snappy/deflate upgrades. Ported from nsqd's `protocol_v2_test.go`
//! (v1.3.0).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nsq_tests::wire::negotiate;
use nsq_tests::{consumer, raw_command_size_only, raw_command_with_body, unique_name, TestNsqd};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Heartbeats and client timeouts
// ---------------------------------------------------------------------------

/// TestClientHeartbeat: with heartbeat_interval 1000 the server sends
/// `_heartbeat_`; a client that answers with NOP stays connected well past
/// two intervals.
#[test]
fn heartbeats_answered_keep_connection() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("hb");
    let mut c = consumer(
        nsqd.tcp_addr(),
        &topic,
        "ch",
        1,
        json!({"heartbeat_interval": 1000}),
    )?;
    let start = Instant::now();
    let mut beats = 0;
    while beats < 4 {
        c.expect_response("_heartbeat_")
            .with_context(|| format!("heartbeat {}", beats + 1))?;
        c.nop()?;
        beats += 1;
    }
    ensure!(
        start.elapsed() >= Duration::from_millis(2500),
        "4 heartbeats at a 1 s interval came after {:?}",
        start.elapsed()
    );
    // Still alive: a message published now is delivered.
    nsqd.connect()?.pub_ok(&topic, b"after heartbeats")?;
    let m = c.expect_message_skip_heartbeats()?;
    ensure!(&m.body[..] == b"after heartbeats");
    Ok(())
}

/// nsqd sends heartbeats to every V2 connection, not only consumers: a
/// producer that IDENTIFYs a 1 s interval and never SUBs gets `_heartbeat_`
/// (one interval after IDENTIFY, not after the default 30 s), stays
/// connected across several intervals by answering NOP, and can publish.
#[test]
fn producer_connections_get_heartbeats() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("hbpub");
    let mut p = nsqd.connect()?;
    p.identify_ok(&json!({"feature_negotiation": true, "heartbeat_interval": 1000}))?;
    for beat in 1..=4 {
        p.expect_response("_heartbeat_")
            .with_context(|| format!("heartbeat {beat} to an idle producer"))?;
        p.nop()?;
    }
    p.pub_ok(&topic, b"after idling")?;
    // A producer that never answers is closed after two intervals.
    let mut silent = nsqd.connect()?;
    silent.identify_ok(&json!({"feature_negotiation": true, "heartbeat_interval": 1000}))?;
    silent.expect_closed_ignoring_heartbeats(Duration::from_secs(10))?;
    Ok(())
}

/// TestClientTimeout: a client that never sends anything after SUB is
/// disconnected after about two heartbeat intervals.
#[test]
fn silent_client_is_disconnected() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = consumer(
        nsqd.tcp_addr(),
        &unique_name("timeout"),
        "ch",
        0,
        json!({"heartbeat_interval": 1000}),
    )?;
    let start = Instant::now();
    c.expect_closed_ignoring_heartbeats(Duration::from_secs(10))?;
    ensure!(
        start.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before even one heartbeat interval",
        start.elapsed()
    );
    Ok(())
}

/// TestClientHeartbeatDisableSUB.
#[test]
fn sub_refused_with_heartbeats_disabled() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.identify_ok(&json!({"feature_negotiation": true, "heartbeat_interval": -1}))?;
    c.sub("t", "ch")?;
    c.expect_fatal("E_INVALID cannot SUB with heartbeats disabled")
}

/// TestClientHeartbeatDisable: with heartbeats disabled an idle producer is
/// not timed out.
#[test]
fn heartbeats_disabled_idle_producer_stays() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.identify_ok(&json!({"heartbeat_interval": -1}))?;
    std::thread::sleep(Duration::from_millis(2500));
    c.pub_ok("idle_topic", b"still here")
}

/// TestMaxHeartbeatIntervalValid / Invalid.
#[test]
fn max_heartbeat_interval() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-heartbeat-interval=300s"])?;
    let mut c = nsqd.connect()?;
    c.identify_ok(&json!({"feature_negotiation": true, "heartbeat_interval": 300000}))?;

    for (hb, err) in [
        (
            300001,
            "E_BAD_BODY IDENTIFY heartbeat interval (300001) is invalid",
        ),
        (
            999,
            "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid",
        ),
        (-2, "E_BAD_BODY IDENTIFY heartbeat interval (-2) is invalid"),
    ] {
        let mut c = nsqd.connect()?;
        c.identify(&json!({"feature_negotiation": true, "heartbeat_interval": hb}))?;
        c.expect_fatal(err)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// IDENTIFY
// ---------------------------------------------------------------------------

const V130_IDENTIFY_KEYS: [&str; 13] = [
    "max_rdy_count",
    "version",
    "max_msg_timeout",
    "msg_timeout",
    "tls_v1",
    "deflate",
    "deflate_level",
    "max_deflate_level",
    "snappy",
    "sample_rate",
    "auth_required",
    "output_buffer_size",
    "output_buffer_timeout",
];

/// The negotiation response carries every v1.3.0 key with nsqd's defaults.
#[test]
fn identify_feature_negotiation_defaults() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&negotiate())?;
    for k in V130_IDENTIFY_KEYS {
        ensure!(r.get(k).is_some(), "IDENTIFY response lacks {k:?}: {r}");
    }
    let expect = json!({
        "max_rdy_count": 2500, "max_msg_timeout": 900000, "msg_timeout": 60000,
        "tls_v1": false, "deflate": false, "deflate_level": 6, "max_deflate_level": 6,
        "snappy": false, "sample_rate": 0, "auth_required": false,
        "output_buffer_size": 16384, "output_buffer_timeout": 250,
    });
    for (k, v) in expect.as_object().unwrap() {
        ensure!(
            &r[k] == v,
            "IDENTIFY {k}: expected {v}, got {} in {r}",
            r[k]
        );
    }
    ensure!(
        r["version"].as_str().is_some_and(|v| !v.is_empty()),
        "version: {r}"
    );
    c.sub_ok("identified", "ch")
}

/// Client-chosen values and server flags are reflected in the response.
#[test]
fn identify_feature_negotiation_values() -> Result<()> {
    let nsqd = TestNsqd::start(&[
        "--max-rdy-count=100",
        "--max-msg-timeout=10m",
        "--msg-timeout=30s",
        "--max-deflate-level=4",
    ])?;
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&json!({"feature_negotiation": true}))?;
    ensure!(
        r["max_rdy_count"] == 100 && r["max_msg_timeout"] == 600000 && r["msg_timeout"] == 30000,
        "{r}"
    );
    // deflate_level is capped by --max-deflate-level even when deflate is off.
    ensure!(
        r["max_deflate_level"] == 4 && r["deflate_level"] == 4,
        "{r}"
    );

    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&json!({
        "feature_negotiation": true,
        "msg_timeout": 5000,
        "sample_rate": 42,
        "output_buffer_size": 1024,
        "output_buffer_timeout": 100,
        "deflate_level": 2,
        "client_id": "c", "hostname": "h", "user_agent": "ua",
        "short_id": "legacy", "long_id": "legacy", "unknown_field": [1, 2],
    }))?;
    ensure!(
        r["msg_timeout"] == 5000
            && r["sample_rate"] == 42
            && r["output_buffer_size"] == 1024
            && r["output_buffer_timeout"] == 100,
        "{r}"
    );
    // deflate_level only follows the client when deflate is negotiated.
    ensure!(r["deflate"] == false && r["deflate_level"] == 4, "{r}");
    c.sub_ok("identified", "ch")
}

/// Without feature_negotiation the answer is a plain `OK`.
#[test]
fn identify_without_negotiation_is_ok() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.identify(&json!({"client_id": "plain", "heartbeat_interval": 5000}))?;
    c.expect_ok()?;
    c.sub_ok("plain_topic", "ch")
}

/// IDENTIFY body and field validation (all E_BAD_BODY, fatal).
#[test]
fn identify_errors() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-body-size=1000"])?;
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            raw_command_with_body("IDENTIFY", b"{not json"),
            "E_BAD_BODY IDENTIFY failed to decode JSON body".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", b""),
            "E_BAD_BODY IDENTIFY invalid body size 0".into(),
        ),
        (
            raw_command_size_only("IDENTIFY", 1001),
            "E_BAD_BODY IDENTIFY body too big 1001 > 1000".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", br#"{"msg_timeout":999}"#),
            "E_BAD_BODY IDENTIFY msg timeout (999) is invalid".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", br#"{"msg_timeout":900001}"#),
            "E_BAD_BODY IDENTIFY msg timeout (900001) is invalid".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", br#"{"sample_rate":100}"#),
            "E_BAD_BODY IDENTIFY sample rate (100) is invalid".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", br#"{"sample_rate":-1}"#),
            "E_BAD_BODY IDENTIFY sample rate (-1) is invalid".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", br#"{"output_buffer_size":63}"#),
            "E_BAD_BODY IDENTIFY output buffer size (63) is invalid".into(),
        ),
        (
            raw_command_with_body("IDENTIFY", br#"{"output_buffer_timeout":1}"#),
            "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid".into(),
        ),
    ];
    for (bytes, err) in cases {
        let mut c = nsqd.connect()?;
        c.send(&bytes)?;
        c.expect_fatal(&err)?;
    }
    Ok(())
}

/// TestOutputBufferingValidity (IDENTIFY may be repeated before SUB).
#[test]
fn output_buffering_validity() -> Result<()> {
    let nsqd = TestNsqd::start(&[
        "--max-output-buffer-size=524288",
        "--max-output-buffer-timeout=1s",
    ])?;
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&json!({"feature_negotiation": true, "output_buffer_size": 524288, "output_buffer_timeout": 1000}))?;
    ensure!(
        r["output_buffer_size"] == 524288 && r["output_buffer_timeout"] == 1000,
        "{r}"
    );
    let r = c.identify_ok(&json!({"feature_negotiation": true, "output_buffer_size": -1, "output_buffer_timeout": -1}))?;
    // -1 means unbuffered: size 1, timeout 0.
    ensure!(
        r["output_buffer_size"] == 1 && r["output_buffer_timeout"] == 0,
        "{r}"
    );
    c.identify_ok(
        &json!({"feature_negotiation": true, "output_buffer_size": 0, "output_buffer_timeout": 0}),
    )?;
    c.identify(&json!({"feature_negotiation": true, "output_buffer_size": 524289, "output_buffer_timeout": 0}))?;
    c.expect_fatal("E_BAD_BODY IDENTIFY output buffer size (524289) is invalid")?;

    let mut c = nsqd.connect()?;
    c.identify(&json!({"feature_negotiation": true, "output_buffer_size": 0, "output_buffer_timeout": 1001}))?;
    c.expect_fatal("E_BAD_BODY IDENTIFY output buffer timeout (1001) is invalid")
}

/// TestOutputBuffering (without its timing assertion): a message smaller
/// than a large output buffer is still delivered.
#[test]
fn output_buffering_delivers() -> Result<()> {
    let nsqd = TestNsqd::start(&[
        "--max-output-buffer-size=524288",
        "--max-output-buffer-timeout=1s",
    ])?;
    let topic = unique_name("test_output_buffering");
    let body = vec![3u8; 256 * 1024 - 1024];
    nsqd.connect()?.pub_ok(&topic, &body)?;
    let mut c = consumer(
        nsqd.tcp_addr(),
        &topic,
        "ch",
        10,
        json!({"output_buffer_size": 256 * 1024, "output_buffer_timeout": 500}),
    )?;
    let m = c.expect_message()?;
    ensure!(m.body.len() == body.len());
    // And with buffering disabled.
    let topic = unique_name("test_no_buffering");
    let mut c = consumer(
        nsqd.tcp_addr(),
        &topic,
        "ch",
        10,
        json!({"output_buffer_size": -1}),
    )?;
    nsqd.connect()?.mpub_ok(&topic, &[&body, b"small"])?;
    let got: HashSet<usize> = (0..2)
        .map(|_| c.expect_message().map(|m| m.body.len()))
        .collect::<Result<_>>()?;
    ensure!(got == HashSet::from([body.len(), 5]), "{got:?}");
    Ok(())
}

/// TLS requested without a certificate, and compression requested while
/// disabled by flags: all negotiated false, and the connection continues in
/// plain text.
#[test]
fn tls_and_compression_not_negotiated_when_unavailable() -> Result<()> {
    let nsqd = TestNsqd::start(&["--snappy=false", "--deflate=false"])?;
    let topic = unique_name("plain");
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&json!({
        "feature_negotiation": true, "tls_v1": true, "snappy": true, "deflate": true, "deflate_level": 3,
    }))?;
    ensure!(
        r["tls_v1"] == false && r["snappy"] == false && r["deflate"] == false,
        "{r}"
    );
    c.sub_ok(&topic, "ch")?;
    c.rdy(1)?;
    nsqd.connect()?.pub_ok(&topic, b"plain text")?;
    ensure!(&c.expect_message()?.body[..] == b"plain text");

    // TLS alone, default flags: no certificate, so no TLS.
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&json!({"feature_negotiation": true, "tls_v1": true}))?;
    ensure!(r["tls_v1"] == false, "{r}");
    c.pub_ok("plain", b"x")
}

/// nsqd enables snappy and deflate by default; asking for both fails.
#[test]
fn snappy_and_deflate_together_fail() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.identify(&json!({"feature_negotiation": true, "snappy": true, "deflate": true}))?;
    c.expect_fatal("E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")
}

/// TestSnappy: after the JSON response the stream switches to the snappy
/// framing format; `OK` is the first compressed frame.
#[test]
fn snappy_upgrade() -> Result<()> {
    use std::io::Write;
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("test_snappy");
    let mut stream = std::net::TcpStream::connect(nsqd.tcp_addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"  V2")?;
    let ident = serde_json::to_vec(&json!({"feature_negotiation": true, "snappy": true}))?;
    stream.write_all(&raw_command_with_body("IDENTIFY", &ident))?;
    let json_frame = read_plain_frame(&mut stream)?;
    let r: Value = serde_json::from_slice(&json_frame[4..])?;
    ensure!(r["snappy"] == true, "{r}");
    let mut rd = snap::read::FrameDecoder::new(stream.try_clone()?);
    let mut wr = snap::write::FrameEncoder::new(stream.try_clone()?);
    ensure!(
        read_plain_frame(&mut rd)? == b"\0\0\0\0OK",
        "first compressed frame is OK"
    );
    wr.write_all(format!("SUB {topic} ch\n").as_bytes())?;
    wr.flush()?;
    ensure!(
        read_plain_frame(&mut rd)? == b"\0\0\0\0OK",
        "SUB over snappy"
    );
    wr.write_all(b"RDY 1\n")?;
    wr.flush()?;
    let body = vec![9u8; 128_000];
    nsqd.connect()?.pub_ok(&topic, &body)?;
    let f = read_plain_frame(&mut rd)?;
    ensure!(
        f[..4] == 2u32.to_be_bytes() && f[4 + 26..] == body[..],
        "message over snappy"
    );
    Ok(())
}

/// TestDeflate: raw DEFLATE after the JSON response.
#[test]
fn deflate_upgrade() -> Result<()> {
    use std::io::Write;
    let nsqd = TestNsqd::start(&[])?;
    let mut stream = std::net::TcpStream::connect(nsqd.tcp_addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"  V2")?;
    let ident = serde_json::to_vec(
        &json!({"feature_negotiation": true, "deflate": true, "deflate_level": 1}),
    )?;
    stream.write_all(&raw_command_with_body("IDENTIFY", &ident))?;
    let json_frame = read_plain_frame(&mut stream)?;
    let r: Value = serde_json::from_slice(&json_frame[4..])?;
    ensure!(r["deflate"] == true && r["deflate_level"] == 1, "{r}");
    // Buffered: flate2's reader asks the socket for more input before it
    // hands out output it already inflated, so small reads (a 4-byte size)
    // would wait for the next packet; one large read takes the whole frame.
    // (The same test fails this way against the original nsqd.)
    let mut rd = std::io::BufReader::new(flate2::read::DeflateDecoder::new(stream.try_clone()?));
    ensure!(
        read_plain_frame(&mut rd)? == b"\0\0\0\0OK",
        "first compressed frame is OK"
    );
    Ok(())
}

/// Reads `[size][type][data]` from an uncompressed or decompressing reader;
/// returns `type ++ data`.
fn read_plain_frame(r: &mut impl std::io::Read) -> Result<Vec<u8>> {
    let mut size = [0u8; 4];
    r.read_exact(&mut size)?;
    let n = u32::from_be_bytes(size) as usize;
    ensure!((4..64 << 20).contains(&n), "bad frame size {n}");
    let mut data = vec![0u8; n];
    r.read_exact(&mut data)?;
    Ok(data)
}
