//! TCP protocol V2 conformance, ported from nsqd's `protocol_v2_test.go`
//! (v1.3.0) and extended with the exact error strings of `protocol_v2.go`.
//! Each test starts its own `nsqd`; the ones that matter for the sharded
//! design run with `--shards=1` and `--shards=2`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::{
    consumer, id_str, mpub_body, raw_command_size_only, raw_command_with_body, unique_name,
    DecodedMessage, Frame, RawClient, ShowFrame, TestNsqd,
};
use serde_json::{json, Value};

/// Starts nsqd with `--shards=N` plus `extra`.
fn nsqd(shards: u32, extra: &[&str]) -> Result<TestNsqd> {
    let s = format!("--shards={shards}");
    let mut args = vec![s.as_str()];
    args.extend_from_slice(extra);
    TestNsqd::start(&args)
}

/// Runs each named `fn(shards) -> Result<()>` as `name::shards_1` and `name::shards_2`.
macro_rules! both_shards {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn shards_1() -> anyhow::Result<()> {
                super::$name(1)
            }
            #[test]
            fn shards_2() -> anyhow::Result<()> {
                super::$name(2)
            }
        }
    )*};
}

both_shards!(
    basic_pub_sub,
    topic_buffers_until_first_channel,
    fan_out_to_channels,
    consumers_share_a_channel,
    many_producers_many_consumers,
    pipelined_responses_in_order,
    dpub_not_delivered_before_delay,
    client_msg_timeout_redelivers,
    req_with_delay,
    touch_extends_timeout,
);

fn negotiate() -> Value {
    json!({"client_id": "test", "feature_negotiation": true})
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn body_str(m: &DecodedMessage) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

/// Publishes `per_conn` messages from each of `conns` producer connections
/// (alternating PUB and MPUB batches, so both paths are used) and returns the
/// set of bodies.
fn publish_from_many(
    nsqd: &TestNsqd,
    topic: &str,
    conns: usize,
    per_conn: usize,
) -> Result<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    let mut producers = (0..conns)
        .map(|_| nsqd.connect())
        .collect::<Result<Vec<_>>>()?;
    for (p, conn) in producers.iter_mut().enumerate() {
        let bodies: Vec<String> = (0..per_conn).map(|i| format!("p{p}-m{i}")).collect();
        let mut i = 0;
        while i < bodies.len() {
            if (i / 5) % 2 == 0 {
                conn.pub_ok(topic, bodies[i].as_bytes())?;
                i += 1;
            } else {
                let end = (i + 5).min(bodies.len());
                let batch: Vec<&[u8]> = bodies[i..end].iter().map(|b| b.as_bytes()).collect();
                conn.mpub_ok(topic, &batch)?;
                i = end;
            }
        }
        all.extend(bodies);
    }
    Ok(all)
}

/// Reads from several consumers at once, FIN-ing everything, until
/// `expected` messages arrived in total (plus a short quiet period to catch
/// duplicates). Returns what each consumer received.
fn drain(consumers: &mut [RawClient], expected: usize) -> Result<Vec<Vec<DecodedMessage>>> {
    let total = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let results: Mutex<Vec<Result<Vec<DecodedMessage>>>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for c in consumers.iter_mut() {
            let total = &total;
            handles.push(s.spawn(move || -> Result<Vec<DecodedMessage>> {
                let mut got = Vec::new();
                let mut quiet_after_done = false;
                loop {
                    match c.read_frame_within(Duration::from_millis(300))? {
                        Some(Frame::Message(m)) => {
                            c.fin(&m.id)?;
                            got.push(m);
                            total.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(Frame::Response(b)) if &b[..] == b"_heartbeat_" => c.nop()?,
                        Some(other) => bail!("unexpected frame {}", ShowFrame(&other)),
                        None => {
                            if total.load(Ordering::SeqCst) >= expected {
                                if quiet_after_done {
                                    return Ok(got);
                                }
                                quiet_after_done = true;
                            } else if Instant::now() >= deadline {
                                return Ok(got);
                            }
                        }
                    }
                }
            }));
        }
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("consumer thread panicked")));
            results.lock().unwrap().push(r);
        }
    });
    results.into_inner().unwrap().into_iter().collect()
}

/// Asserts that `got` holds each body of `expected` exactly once.
fn assert_exactly_once(
    what: &str,
    got: &[DecodedMessage],
    expected: &BTreeSet<String>,
) -> Result<()> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in got {
        *seen.entry(body_str(m)).or_default() += 1;
    }
    let dups: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(b, _)| b.clone())
        .collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|b| !seen.contains_key(*b))
        .cloned()
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|b| !expected.contains(*b))
        .cloned()
        .collect();
    ensure!(
        dups.is_empty() && missing.is_empty() && extra.is_empty(),
        "{what}: {} messages received for {} published; duplicated {:?}; missing ({}) {:?}; unexpected {:?}",
        got.len(),
        expected.len(),
        &dups[..dups.len().min(10)],
        missing.len(),
        &missing[..missing.len().min(10)],
        &extra[..extra.len().min(10)]
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

#[test]
fn bad_magic_gets_e_bad_protocol() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    for magic in [&b"  V1"[..], b"GET ", b"V2  "] {
        let mut c = RawClient::connect_no_magic(nsqd.tcp_addr())?;
        c.send(magic)?;
        // tcp.go sends the bare code, with no description.
        c.expect_fatal("E_BAD_PROTOCOL")
            .with_context(|| format!("magic {:?}", String::from_utf8_lossy(magic)))?;
    }
    Ok(())
}

#[test]
fn nop_and_crlf_lines_are_accepted() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.send(b"NOP\n")?;
    c.send(b"NOP\r\n")?;
    // `\r` is stripped from a command line that carries a body, too.
    c.send(&raw_command_with_body("PUB crlf_topic\r", b"hello"))?;
    c.expect_ok()?;
    c.expect_silence(Duration::from_millis(200))
}

// ---------------------------------------------------------------------------
// Publishing and delivery
// ---------------------------------------------------------------------------

/// TestBasicV2: a message published before any channel exists is delivered
/// to the first subscriber, with attempts 1, a 16-hex-char ID and a
/// timestamp of publication.
fn basic_pub_sub(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("test_v2");
    let before = now_ns();
    let mut p = nsqd.connect()?;
    p.pub_ok(&topic, b"test body")?;
    let after = now_ns();

    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"test body", "body {:?}", body_str(&m));
    ensure!(m.attempts == 1, "attempts {}", m.attempts);
    ensure!(
        m.id.0.iter().all(|b| b.is_ascii_hexdigit()),
        "message ID must be 16 ASCII hex chars, got {:?}",
        id_str(&m.id)
    );
    let slack = 5_000_000_000;
    ensure!(
        m.timestamp_ns >= before - slack && m.timestamp_ns <= after + slack,
        "timestamp {} is not the publish time (~{before}..{after} ns)",
        m.timestamp_ns
    );
    c.fin(&m.id)?;
    nsqd.wait_channel(&topic, "ch", "in_flight_count 0 after FIN", |ch| {
        ch["in_flight_count"] == 0 && ch["message_count"] == 1
    })?;
    c.expect_silence(Duration::from_millis(200))
}

/// A topic with no channel keeps its messages; the first channel gets all
/// of them exactly once.
fn topic_buffers_until_first_channel(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("buffered");
    let expected = publish_from_many(&nsqd, &topic, 5, 22)?;
    nsqd.wait_topic(&topic, "topic depth 110 with no channel", |t| {
        t["depth"] == 110 && t["message_count"] == 110
    })?;

    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 200, json!({}))?;
    let got = c.recv_and_fin(expected.len())?;
    c.expect_silence(Duration::from_millis(300))?;
    assert_exactly_once("first channel", &got, &expected)?;
    ensure!(
        got.iter().all(|m| m.attempts == 1),
        "all first deliveries have attempts 1"
    );
    nsqd.wait_channel(&topic, "ch", "channel drained", |ch| {
        ch["depth"] == 0 && ch["in_flight_count"] == 0 && ch["message_count"] == 110
    })?;
    nsqd.wait_topic(&topic, "topic drained", |t| t["depth"] == 0)?;
    Ok(())
}

/// TestMultipleConsumerV2, widened: every channel gets every message, with
/// the same ID in each channel.
fn fan_out_to_channels(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("fanout");
    let channels = ["ch1", "ch2", "ch3"];
    let mut consumers = channels
        .iter()
        .map(|ch| consumer(nsqd.tcp_addr(), &topic, ch, 200, json!({})))
        .collect::<Result<Vec<_>>>()?;
    let expected = publish_from_many(&nsqd, &topic, 3, 30)?;
    let got = drain(&mut consumers, expected.len() * channels.len())?;
    let mut ids_per_channel = Vec::new();
    for (ch, msgs) in channels.iter().zip(&got) {
        assert_exactly_once(ch, msgs, &expected)?;
        let ids: BTreeSet<(String, [u8; 16])> =
            msgs.iter().map(|m| (body_str(m), m.id.0)).collect();
        ids_per_channel.push(ids);
    }
    ensure!(
        ids_per_channel.windows(2).all(|w| w[0] == w[1]),
        "a message must carry the same ID in every channel"
    );
    Ok(())
}

/// Consumers of one channel share its messages: each message goes to
/// exactly one of them.
fn consumers_share_a_channel(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("shared");
    let mut consumers = (0..3)
        .map(|_| consumer(nsqd.tcp_addr(), &topic, "ch", 50, json!({})))
        .collect::<Result<Vec<_>>>()?;
    let expected = publish_from_many(&nsqd, &topic, 4, 25)?;
    let got = drain(&mut consumers, expected.len())?;
    let all: Vec<DecodedMessage> = got.into_iter().flatten().collect();
    assert_exactly_once("channel ch over 3 consumers", &all, &expected)?;
    nsqd.wait_channel(&topic, "ch", "3 clients, nothing in flight", |ch| {
        ch["client_count"] == 3 && ch["in_flight_count"] == 0 && ch["message_count"] == 100
    })?;
    Ok(())
}

/// Several producers and two channels with two consumers each: every
/// channel sees every message exactly once. With two shards, the producer
/// and consumer connections land on both cores.
fn many_producers_many_consumers(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("many");
    let mut consumers = Vec::new();
    for ch in ["a", "a", "b", "b"] {
        consumers.push(consumer(nsqd.tcp_addr(), &topic, ch, 100, json!({}))?);
    }
    let expected = publish_from_many(&nsqd, &topic, 6, 100)?;
    let got = drain(&mut consumers, expected.len() * 2)?;
    let mut it = got.into_iter();
    let a: Vec<_> = it.by_ref().take(2).flatten().collect();
    let b: Vec<_> = it.flatten().collect();
    assert_exactly_once("channel a", &a, &expected)?;
    assert_exactly_once("channel b", &b, &expected)?;
    let t = nsqd.wait_topic(&topic, "topic counts", |t| t["message_count"] == 600)?;
    ensure!(
        t["message_bytes"].as_u64().unwrap_or(0) > 0,
        "message_bytes counted: {t}"
    );
    Ok(())
}

/// Responses come back in command order even when commands are pipelined
/// in one write (go-nsq's producer relies on it).
fn pipelined_responses_in_order(shards: u32) -> Result<()> {
    let nsqd = nsqd(shards, &[])?;
    let topic = unique_name("pipeline");
    let mut c = nsqd.connect()?;
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend(raw_command_with_body(
            &format!("PUB {topic}"),
            format!("m{i}").as_bytes(),
        ));
        batch.extend(raw_command_with_body(
            &format!("MPUB {topic}"),
            &mpub_body(&[b"x", b"y"]),
        ));
        batch.extend_from_slice(b"NOP\n");
    }
    // A fatal error at the end must come after all the OKs.
    batch.extend(raw_command_with_body(&format!("PUB {topic}"), b""));
    c.send(&batch)?;
    for i in 0..100 {
        c.expect_ok().with_context(|| format!("response {i}"))?;
    }
    c.expect_fatal("E_BAD_MESSAGE PUB invalid message body size 0")?;
    nsqd.wait_topic(&topic, "150 messages", |t| t["message_count"] == 150)?;
    Ok(())
}

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
// Pausing
// ---------------------------------------------------------------------------

/// TestPausing, through the HTTP API.
#[test]
fn pause_channel_over_http() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("pause_ch");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let mut p = nsqd.connect()?;
    p.pub_ok(&topic, b"test body")?;
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"test body");
    c.fin(&m.id)?;
    c.rdy(1)?;

    let (st, body) = nsqd.http_post(&format!("/channel/pause?topic={topic}&channel=ch"), b"")?;
    ensure!(st == 200, "pause: {st} {body}");
    p.pub_ok(&topic, b"test body2")?;
    c.expect_silence(Duration::from_millis(500))?;
    let ch = nsqd.wait_channel(&topic, "ch", "paused channel holds the message", |ch| {
        ch["paused"] == true && ch["depth"] == 1
    })?;
    ensure!(ch["in_flight_count"] == 0, "{ch}");

    let (st, body) = nsqd.http_post(&format!("/channel/unpause?topic={topic}&channel=ch"), b"")?;
    ensure!(st == 200, "unpause: {st} {body}");
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"test body2", "got {:?}", body_str(&m));
    c.fin(&m.id)?;
    p.pub_ok(&topic, b"test body3")?;
    c.rdy(1)?;
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"test body3", "got {:?}", body_str(&m));
    Ok(())
}

/// A paused topic keeps messages at the topic; unpausing releases them.
#[test]
fn pause_topic_over_http() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("pause_t");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 10, json!({}))?;
    let (st, body) = nsqd.http_post(&format!("/topic/pause?topic={topic}"), b"")?;
    ensure!(st == 200, "pause: {st} {body}");
    let mut p = nsqd.connect()?;
    p.pub_ok(&topic, b"held")?;
    c.expect_silence(Duration::from_millis(500))?;
    nsqd.wait_topic(&topic, "paused topic holds the message", |t| {
        t["paused"] == true && t["depth"] == 1
    })?;
    let (st, body) = nsqd.http_post(&format!("/topic/unpause?topic={topic}"), b"")?;
    ensure!(st == 200, "unpause: {st} {body}");
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"held");
    Ok(())
}

// ---------------------------------------------------------------------------
// Malformed input and size limits
// ---------------------------------------------------------------------------

/// TestEmptyCommand (#120): an empty line is an invalid command.
#[test]
fn empty_command() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.send(b"\n\n")?;
    c.expect_fatal("E_INVALID invalid command ")
}

/// TestFatalError.
#[test]
fn invalid_command_is_fatal() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    for (line, err) in [
        (&b"ASDF\n"[..], "E_INVALID invalid command ASDF"),
        (b"pub t\n", "E_INVALID invalid command pub"),
        (b" NOP\n", "E_INVALID invalid command "),
    ] {
        let mut c = nsqd.connect()?;
        c.send(line)?;
        c.expect_fatal(err)?;
    }
    Ok(())
}

/// TestSizeLimits, with the exact strings.
#[test]
fn size_limits() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-msg-size=100", "--max-body-size=1000"])?;
    let topic = unique_name("test_limits_v2");
    let mut c = nsqd.connect()?;
    c.identify_ok(&negotiate())?;
    c.sub_ok(&topic, "ch")?;

    c.pub_ok(&topic, &[0u8; 95])?;
    // Rejected on the size prefix, before the body is read.
    c.send(&raw_command_size_only(&format!("PUB {topic}"), 105))?;
    c.expect_fatal("E_BAD_MESSAGE PUB message too big 105 > 100")?;

    let mut c = nsqd.connect()?;
    c.send(&raw_command_with_body(&format!("PUB {topic}"), b""))?;
    c.expect_fatal("E_BAD_MESSAGE PUB invalid message body size 0")?;

    let mut c = nsqd.connect()?;
    let hundred: &[u8] = &[0u8; 100];
    c.mpub_ok(&topic, &[hundred; 5])?;
    // 4 + 11 * (4 + 100) = 1148
    c.send(&raw_command_size_only(&format!("MPUB {topic}"), 1148))?;
    c.expect_fatal("E_BAD_BODY MPUB body too big 1148 > 1000")?;

    let mut c = nsqd.connect()?;
    let mut six: Vec<&[u8]> = vec![hundred; 5];
    six.push(b"");
    c.send(&raw_command_with_body(
        &format!("MPUB {topic}"),
        &mpub_body(&six),
    ))?;
    c.expect_fatal("E_BAD_MESSAGE MPUB invalid message(5) body size 0")?;

    // Body size 4 + 5 * (4 + 101), but only the count and the first size
    // are sent: nsqd stops at that size.
    let mut c = nsqd.connect()?;
    let mut head = raw_command_size_only(&format!("MPUB {topic}"), 4 + 5 * 105);
    head.extend_from_slice(&5u32.to_be_bytes());
    head.extend_from_slice(&101u32.to_be_bytes());
    c.send(&head)?;
    c.expect_fatal("E_BAD_MESSAGE MPUB message too big 101 > 100")?;

    let mut c = nsqd.connect()?;
    c.send(&raw_command_size_only(&format!("DPUB {topic} 10"), 101))?;
    c.expect_fatal("E_BAD_MESSAGE DPUB message too big 101 > 100")?;

    let mut c = nsqd.connect()?;
    c.send(&raw_command_with_body(&format!("DPUB {topic} 10"), b""))?;
    c.expect_fatal("E_BAD_MESSAGE DPUB invalid message body size 0")?;

    // Only the valid PUB and MPUB were stored: 1 + 5.
    nsqd.wait_topic(&topic, "6 messages", |t| t["message_count"] == 6)?;
    Ok(())
}

/// MPUB body framing errors.
#[test]
fn mpub_body_errors() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-body-size=1000"])?;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_command_with_body("MPUB t", b""),
            "E_BAD_BODY MPUB invalid body size 0",
        ),
        (
            raw_command_with_body("MPUB t", &0u32.to_be_bytes()),
            "E_BAD_BODY MPUB invalid message count 0",
        ),
        // (1000 - 4) / 5 = 199 messages at most.
        (
            raw_command_with_body("MPUB t", &200u32.to_be_bytes()),
            "E_BAD_BODY MPUB invalid message count 200",
        ),
        (
            b"MPUB\n".to_vec(),
            "E_INVALID MPUB insufficient number of parameters",
        ),
        // Quirk of protocol_v2.go: the code is repeated in the description.
        (
            b"MPUB bad:topic\n".to_vec(),
            "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad:topic\" is not valid",
        ),
    ];
    for (bytes, err) in cases {
        let mut c = nsqd.connect()?;
        c.send(&bytes)?;
        c.expect_fatal(err)?;
    }
    Ok(())
}

/// Every fatal E_INVALID / E_BAD_TOPIC / E_BAD_CHANNEL the broker produces
/// for commands in the wrong state or with bad parameters.
#[test]
fn fatal_parameter_and_state_errors() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let long = "t".repeat(65);
    let long_eph = format!("{}#ephemeral", "t".repeat(55));
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            b"SUB t\n".to_vec(),
            "E_INVALID SUB insufficient number of parameters".into(),
        ),
        (
            b"SUB bad!t ch\n".to_vec(),
            "E_BAD_TOPIC SUB topic name \"bad!t\" is not valid".into(),
        ),
        (
            format!("SUB {long} ch\n").into_bytes(),
            format!("E_BAD_TOPIC SUB topic name \"{long}\" is not valid"),
        ),
        (
            format!("SUB {long_eph} ch\n").into_bytes(),
            format!("E_BAD_TOPIC SUB topic name \"{long_eph}\" is not valid"),
        ),
        (
            b"SUB t bad:ch\n".to_vec(),
            "E_BAD_CHANNEL SUB channel name \"bad:ch\" is not valid".into(),
        ),
        (
            b"PUB\n".to_vec(),
            "E_INVALID PUB insufficient number of parameters".into(),
        ),
        // The line is rejected before nsqd reads a size or body.
        (
            b"PUB a:b\n".to_vec(),
            "E_BAD_TOPIC PUB topic name \"a:b\" is not valid".into(),
        ),
        (
            b"DPUB t\n".to_vec(),
            "E_INVALID DPUB insufficient number of parameters".into(),
        ),
        (
            b"DPUB a:b 10\n".to_vec(),
            "E_BAD_TOPIC DPUB topic name \"a:b\" is not valid".into(),
        ),
        (
            b"DPUB t abc\n".to_vec(),
            "E_INVALID DPUB could not parse timeout abc".into(),
        ),
        (
            b"DPUB t -1\n".to_vec(),
            "E_INVALID DPUB could not parse timeout -1".into(),
        ),
        (
            b"DPUB t 3600001\n".to_vec(),
            "E_INVALID DPUB timeout 3600001 out of range 0-3600000".into(),
        ),
        (
            b"RDY 1\n".to_vec(),
            "E_INVALID cannot RDY in current state".into(),
        ),
        (
            b"FIN 0123456789abcdef\n".to_vec(),
            "E_INVALID cannot FIN in current state".into(),
        ),
        (
            b"REQ 0123456789abcdef 0\n".to_vec(),
            "E_INVALID cannot REQ in current state".into(),
        ),
        (
            b"TOUCH 0123456789abcdef\n".to_vec(),
            "E_INVALID cannot TOUCH in current state".into(),
        ),
        (
            b"CLS\n".to_vec(),
            "E_INVALID cannot CLS in current state".into(),
        ),
    ];
    for (bytes, err) in cases {
        let mut c = nsqd.connect()?;
        c.send(&bytes)?;
        c.expect_fatal(&err)
            .with_context(|| format!("sent {:?}", String::from_utf8_lossy(&bytes)))?;
    }
    Ok(())
}

/// Errors that need a subscribed connection.
#[test]
fn fatal_errors_when_subscribed() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let cases: Vec<(&[u8], &str)> = vec![
        (b"SUB t2 ch\n", "E_INVALID cannot SUB in current state"),
        (b"RDY abc\n", "E_INVALID RDY could not parse count abc"),
        (b"RDY -1\n", "E_INVALID RDY could not parse count -1"),
        (
            b"RDY 2501\n",
            "E_INVALID RDY count 2501 out of range 0-2500",
        ),
        (b"FIN\n", "E_INVALID FIN insufficient number of params"),
        (b"FIN \n", "E_INVALID invalid message ID"),
        (b"FIN 0123456789abcde\n", "E_INVALID invalid message ID"),
        (b"FIN 0123456789abcdef0\n", "E_INVALID invalid message ID"),
        (
            b"REQ 0123456789abcdef\n",
            "E_INVALID REQ insufficient number of params",
        ),
        (b"REQ abc 0\n", "E_INVALID invalid message ID"),
        (
            b"REQ 0123456789abcdef abc\n",
            "E_INVALID REQ could not parse timeout abc",
        ),
        (
            b"REQ 0123456789abcdef -1\n",
            "E_INVALID REQ could not parse timeout -1",
        ),
        (b"TOUCH\n", "E_INVALID TOUCH insufficient number of params"),
        (b"TOUCH abc\n", "E_INVALID invalid message ID"),
        (b"AUTH\n", "E_INVALID cannot AUTH in current state"),
    ];
    for (bytes, err) in cases {
        let mut c = consumer(nsqd.tcp_addr(), "sub_errors", "ch", 0, json!({}))?;
        c.send(bytes)?;
        c.expect_fatal(err)
            .with_context(|| format!("sent {:?}", String::from_utf8_lossy(bytes)))?;
    }
    // IDENTIFY is only allowed before SUB.
    let mut c = consumer(nsqd.tcp_addr(), "sub_errors", "ch", 0, json!({}))?;
    c.identify(&negotiate())?;
    c.expect_fatal("E_INVALID cannot IDENTIFY in current state")
}

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
#[ignore = "needs snappy/deflate support (nsqd's --snappy/--deflate default to true)"]
fn snappy_and_deflate_together_fail() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.identify(&json!({"feature_negotiation": true, "snappy": true, "deflate": true}))?;
    c.expect_fatal("E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")
}

/// TestSnappy: after the JSON response the stream switches to the snappy
/// framing format; `OK` is the first compressed frame.
#[test]
#[ignore = "needs snappy support (nsqd's --snappy defaults to true)"]
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
#[ignore = "needs deflate support (nsqd's --deflate defaults to true)"]
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
    let mut rd = flate2::read::DeflateDecoder::new(stream.try_clone()?);
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

// ---------------------------------------------------------------------------
// AUTH, consumer limits
// ---------------------------------------------------------------------------

/// AUTH without --auth-http-address.
#[test]
fn auth_disabled() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&negotiate())?;
    ensure!(r["auth_required"] == false, "{r}");
    c.auth(b"secret")?;
    c.expect_fatal("E_AUTH_DISABLED AUTH disabled")?;

    let mut c = nsqd.connect()?;
    c.send(b"AUTH extra\n")?;
    c.expect_fatal("E_INVALID AUTH invalid number of parameters")?;

    let mut c = nsqd.connect()?;
    c.send(&raw_command_with_body("AUTH", b""))?;
    c.expect_fatal("E_BAD_BODY AUTH invalid body size 0")
}

/// --max-channel-consumers: the extra subscriber gets E_SUB_FAILED.
#[test]
fn max_channel_consumers() -> Result<()> {
    let nsqd = TestNsqd::start(&["--max-channel-consumers=1"])?;
    let topic = unique_name("limited");
    let _first = consumer(nsqd.tcp_addr(), &topic, "ch", 0, json!({}))?;
    let mut c = nsqd.connect()?;
    c.identify_ok(&negotiate())?;
    c.sub(&topic, "ch")?;
    c.expect_fatal(&format!(
        "E_SUB_FAILED SUB failed consumers for {topic}:ch exceeds limit of 1"
    ))?;
    // Another channel of the same topic is fine.
    consumer(nsqd.tcp_addr(), &topic, "other", 0, json!({}))?;
    Ok(())
}

/// A message published while a consumer is connected is sent only to
/// subscribed, ready clients; a producer connection never receives messages.
#[test]
fn producer_connection_gets_no_messages() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("producer_only");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let mut p = nsqd.connect()?;
    p.identify_ok(&negotiate())?;
    p.pub_ok(&topic, b"x")?;
    c.expect_message()?;
    p.expect_silence(Duration::from_millis(300))
}
