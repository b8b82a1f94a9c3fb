//! TCP protocol V2 conformance, ported from nsqd's `protocol_v2_test.go`
//! (v1.3.0) and extended with the exact error strings of `protocol_v2.go`.
//! Each test starts its own `nsqd`; the ones that matter for the sharded
//! design run with `--shards=1` and `--shards=2`.
//!
//! This binary: the handshake, publishing and delivery, pausing, malformed
//! input and size limits, AUTH and consumer limits. RDY, FIN, REQ, TOUCH,
//! message timeouts and DPUB are in `protocol_v2_delivery.rs`; IDENTIFY,
//! heartbeats and output buffering in `protocol_v2_identify.rs`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::wire::{negotiate, nsqd};
use nsq_tests::{
    consumer, id_str, mpub_body, raw_command_size_only, raw_command_with_body, unique_name,
    DecodedMessage, Frame, RawClient, ShowFrame, TestNsqd,
};
use serde_json::json;

nsq_tests::both_shards!(
    basic_pub_sub,
    topic_buffers_until_first_channel,
    fan_out_to_channels,
    consumers_share_a_channel,
    many_producers_many_consumers,
    pipelined_responses_in_order,
);

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
