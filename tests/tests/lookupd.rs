//! nsqlookupd over the wire: a raw protocol V1 client stands in for nsqd,
//! and the HTTP API is checked against nsqlookupd v1.3's shapes, status
//! codes and messages. Ports of `nsqlookupd_test.go` and `http_test.go`
//! keep the Go test's name in their doc comment.

use std::time::Duration;

use anyhow::Result;
use nsq_tests::http::{self, HttpConn};
use nsq_tests::lookupd::{
    identify_bytes, peer_info, run_nsqlookupd_to_exit, LookupClient, TestLookupd,
};
use nsq_tests::{unique_name, wait_until, READ_TIMEOUT};
use serde_json::{json, Value};

const HOST: &str = "ip.address";

fn start() -> Result<TestLookupd> {
    TestLookupd::start(&[])
}

fn strings(value: &Value) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// TestBasicLookupd: register, look up, disconnect; the producer goes, the
/// topic and channel stay.
#[test]
fn basic_register_lookup_and_disconnect() -> Result<()> {
    let lookupd = start()?;
    assert_eq!(lookupd.get_json("/topics")?, json!({ "topics": [] }));
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("connectmsg", Some("channel1"))?;

    let nodes = lookupd.get_json("/nodes")?;
    assert_eq!(
        nodes["producers"].as_array().map(Vec::len),
        Some(1),
        "{nodes}"
    );
    assert_eq!(
        lookupd.get_json("/topics")?,
        json!({ "topics": ["connectmsg"] })
    );

    let doc = lookupd.lookup("connectmsg")?;
    assert_eq!(doc["channels"], json!(["channel1"]));
    let remote = peer.local_addr()?.to_string();
    assert_eq!(
        doc["producers"],
        json!([{
            "remote_address": remote,
            "hostname": HOST,
            "broadcast_address": HOST,
            "tcp_port": 5000,
            "http_port": 5555,
            "version": "1.3.0",
            "topology_zone": "",
            "topology_region": "",
        }])
    );

    drop(peer);
    lookupd.wait_lookup_ports("connectmsg", &[])?;
    let doc = lookupd.lookup("connectmsg")?;
    assert_eq!(doc["channels"], json!(["channel1"]));
    assert_eq!(lookupd.get_json("/nodes")?, json!({ "producers": [] }));
    Ok(())
}

/// The IDENTIFY answer: nsqlookupd's own ports, version and broadcast address.
#[test]
fn identify_answer() -> Result<()> {
    let lookupd = TestLookupd::start(&["--broadcast-address=lookupd.example"])?;
    let answer = lookupd.connect()?.identify(&peer_info(HOST, 1, 2))?;
    let keys: Vec<&String> = answer
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "broadcast_address",
            "hostname",
            "http_port",
            "tcp_port",
            "version"
        ]
    );
    assert_eq!(answer["broadcast_address"], "lookupd.example");
    assert_eq!(answer["tcp_port"], lookupd.tcp_addr().port());
    assert_eq!(answer["http_port"], lookupd.http_addr().port());
    assert_eq!(answer["version"], "1.3.0");
    assert!(answer["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    Ok(())
}

/// Answers are `[4B size][data]` with no frame type, and commands may be
/// split across writes or several to one write.
#[test]
fn framing_and_pipelining() -> Result<()> {
    let lookupd = start()?;
    let mut client = LookupClient::connect_no_magic(lookupd.tcp_addr())?;
    client.send(b"  V")?;
    std::thread::sleep(Duration::from_millis(20));
    client.send(b"1PI")?;
    std::thread::sleep(Duration::from_millis(20));
    client.send(b"NG\n")?;
    client.expect("OK")?;

    let body = serde_json::to_vec(&peer_info(HOST, 4150, 4151))?;
    let mut batch = identify_bytes(&body);
    batch.extend_from_slice(b"REGISTER t1 c1\r\n  PING  \nUNREGISTER t1 c1\nREGISTER t2\n");
    client.send(&batch)?;
    let answer = client.read_response()?;
    assert!(answer.starts_with(b"{\"broadcast_address\""));
    for _ in 0..4 {
        client.expect("OK")?;
    }
    assert_eq!(
        strings(&lookupd.get_json("/topics")?["topics"]),
        ["t1", "t2"]
    );
    assert_eq!(lookupd.lookup_ports("t1")?, [4150]);
    assert_eq!(
        lookupd.get_json("/channels?topic=t1")?,
        json!({ "channels": ["c1"] })
    );
    Ok(())
}

/// TestChannelUnregister: the channel key and the topic producer stay.
#[test]
fn channel_unregister() -> Result<()> {
    let lookupd = start()?;
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("channel_unregister", Some("ch1"))?;
    peer.unregister("channel_unregister", Some("ch1"))?;
    let doc = lookupd.lookup("channel_unregister")?;
    assert_eq!(doc["channels"], json!(["ch1"]));
    assert_eq!(lookupd.lookup_ports("channel_unregister")?, [5000]);
    let debug = lookupd.get_json("/debug")?;
    assert!(
        debug.get("channel:channel_unregister:ch1").is_none(),
        "{debug}"
    );
    assert!(debug.get("topic:channel_unregister:").is_some(), "{debug}");
    Ok(())
}

/// A topic UNREGISTER also drops the peer from the topic's channels.
#[test]
fn topic_unregister_drops_channels_too() -> Result<()> {
    let lookupd = start()?;
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("t", Some("a"))?;
    peer.register("t", Some("b"))?;
    peer.unregister("t", None)?;
    let debug = lookupd.get_json("/debug")?;
    let keys: Vec<&String> = debug
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["client::"], "{debug}");
    assert_eq!(
        strings(&lookupd.get_json("/channels?topic=t")?["channels"]),
        ["a", "b"]
    );
    assert_eq!(lookupd.lookup_ports("t")?, Vec::<i64>::new());
    Ok(())
}

/// Ephemeral keys are removed with their last producer.
#[test]
fn ephemeral_registrations() -> Result<()> {
    let lookupd = start()?;
    let mut a = lookupd.connect_as(&peer_info(HOST, 1, 2))?;
    let mut b = lookupd.connect_as(&peer_info(HOST, 3, 4))?;
    for peer in [&mut a, &mut b] {
        peer.register("e#ephemeral", Some("c#ephemeral"))?;
    }
    a.unregister("e#ephemeral", Some("c#ephemeral"))?;
    assert_eq!(
        lookupd.lookup("e#ephemeral")?["channels"],
        json!(["c#ephemeral"])
    );
    b.unregister("e#ephemeral", Some("c#ephemeral"))?;
    assert_eq!(lookupd.lookup("e#ephemeral")?["channels"], json!([]));
    a.unregister("e#ephemeral", None)?;
    assert_eq!(lookupd.lookup_ports("e#ephemeral")?, [3]);
    b.unregister("e#ephemeral", None)?;
    let (status, message) = lookupd.error("GET", "/lookup?topic=e%23ephemeral")?;
    assert_eq!((status, message.as_str()), (404, "TOPIC_NOT_FOUND"));
    Ok(())
}

/// A closed connection removes only that peer's producers.
#[test]
fn producers_removed_when_their_connection_closes() -> Result<()> {
    let lookupd = start()?;
    let topic = unique_name("t");
    let mut a = lookupd.connect_as(&peer_info("a", 1000, 1001))?;
    let mut b = lookupd.connect_as(&peer_info("b", 2000, 2001))?;
    a.register(&topic, Some("ch"))?;
    b.register(&topic, Some("ch"))?;
    assert_eq!(lookupd.lookup_ports(&topic)?, [1000, 2000]);
    drop(a);
    lookupd.wait_lookup_ports(&topic, &[2000])?;
    let nodes = lookupd.get_json("/nodes")?;
    assert_eq!(nodes["producers"][0]["broadcast_address"], "b", "{nodes}");
    assert_eq!(nodes["producers"].as_array().map(Vec::len), Some(1));

    // A fatal protocol error ends the connection the same way.
    b.command("NOT_A_COMMAND")?;
    b.expect_fatal("E_INVALID invalid command NOT_A_COMMAND")?;
    lookupd.wait_lookup_ports(&topic, &[])?;
    assert_eq!(lookupd.get_json("/debug")?, json!({}));
    Ok(())
}

/// TestTombstoneRecover: a tombstone hides one topic's producer for the
/// tombstone lifetime only.
#[test]
fn tombstone_recover() -> Result<()> {
    let lookupd = TestLookupd::start(&["--tombstone-lifetime=1s"])?;
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("tombstone_recover", Some("channel1"))?;
    peer.register("tombstone_recover2", Some("channel2"))?;
    lookupd.post_ok(&format!(
        "/topic/tombstone?topic=tombstone_recover&node={HOST}:5555"
    ))?;
    assert_eq!(
        lookupd.lookup_ports("tombstone_recover")?,
        Vec::<i64>::new()
    );
    assert_eq!(lookupd.lookup_ports("tombstone_recover2")?, [5000]);
    // Registering again does not clear the tombstone.
    peer.register("tombstone_recover", Some("channel1"))?;
    assert_eq!(
        lookupd.lookup_ports("tombstone_recover")?,
        Vec::<i64>::new()
    );
    lookupd.wait_lookup_ports("tombstone_recover", &[5000])?;
    Ok(())
}

/// TestTombstoneUnregister: after UNREGISTER the producer is gone for good.
#[test]
fn tombstone_unregister() -> Result<()> {
    let lookupd = TestLookupd::start(&["--tombstone-lifetime=300ms"])?;
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("tombstone_unregister", Some("channel1"))?;
    lookupd.post_ok(&format!(
        "/topic/tombstone?topic=tombstone_unregister&node={HOST}:5555"
    ))?;
    assert_eq!(
        lookupd.lookup_ports("tombstone_unregister")?,
        Vec::<i64>::new()
    );
    peer.unregister("tombstone_unregister", None)?;
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        lookupd.lookup_ports("tombstone_unregister")?,
        Vec::<i64>::new()
    );
    Ok(())
}

/// TestTombstonedNodes: `/nodes` keeps tombstoned nodes and flags them per
/// topic, with `tombstones` parallel to `topics`.
#[test]
fn tombstoned_nodes() -> Result<()> {
    let lookupd = start()?;
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("a_topic", Some("channel1"))?;
    peer.register("b_topic", None)?;
    let node = &lookupd.get_json("/nodes")?["producers"][0];
    assert_eq!(node["topics"], json!(["a_topic", "b_topic"]));
    assert_eq!(node["tombstones"], json!([false, false]));

    lookupd.post_ok(&format!("/topic/tombstone?topic=b_topic&node={HOST}:5555"))?;
    let nodes = lookupd.get_json("/nodes")?;
    let node = &nodes["producers"][0];
    assert_eq!(node["topics"], json!(["a_topic", "b_topic"]));
    assert_eq!(node["tombstones"], json!([false, true]));
    let keys: Vec<&String> = node
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let mut want = [
        "remote_address",
        "hostname",
        "broadcast_address",
        "tcp_port",
        "http_port",
        "version",
        "topology_zone",
        "topology_region",
        "tombstones",
        "topics",
    ];
    want.sort_unstable();
    let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, want);
    // A tombstone for another node or an unknown topic changes nothing.
    lookupd.post_ok("/topic/tombstone?topic=a_topic&node=other:5555")?;
    lookupd.post_ok(&format!("/topic/tombstone?topic=nope&node={HOST}:5555"))?;
    assert_eq!(
        lookupd.get_json("/nodes")?["producers"][0]["tombstones"],
        json!([false, true])
    );

    let debug = lookupd.get_json("/debug")?;
    assert_eq!(debug["topic:b_topic:"][0]["tombstoned"], true);
    assert_eq!(debug["topic:a_topic:"][0]["tombstoned"], false);
    assert_eq!(
        debug["topic:a_topic:"][0]["tombstoned_at"],
        json!(-6_795_364_578_871_345_152i64)
    );
    Ok(())
}

/// TestInactiveNodes: a peer silent for longer than the inactive timeout
/// leaves `/nodes` and `/lookup`; a PING brings it back.
#[test]
fn inactive_nodes_and_ping() -> Result<()> {
    let lookupd = TestLookupd::start(&["--inactive-producer-timeout=1s"])?;
    let mut peer = lookupd.connect_as(&peer_info(HOST, 5000, 5555))?;
    peer.register("inactive_nodes", Some("channel1"))?;
    let node_count = || -> Result<usize> {
        Ok(lookupd.get_json("/nodes")?["producers"]
            .as_array()
            .map_or(0, Vec::len))
    };
    assert_eq!(node_count()?, 1);
    wait_until(READ_TIMEOUT, "node to turn inactive", || {
        Ok(node_count()? == 0)
    })?;
    assert_eq!(lookupd.lookup_ports("inactive_nodes")?, Vec::<i64>::new());
    // Still registered: /debug lists it, and a PING makes it active again.
    assert!(lookupd
        .get_json("/debug")?
        .get("topic:inactive_nodes:")
        .is_some());
    peer.ping()?;
    assert_eq!(node_count()?, 1);
    assert_eq!(lookupd.lookup_ports("inactive_nodes")?, [5000]);
    Ok(())
}

/// Every protocol error is sent as `[size]E_...` and closes the connection.
#[test]
fn protocol_errors_are_fatal() -> Result<()> {
    let lookupd = start()?;
    let peer = peer_info(HOST, 1, 2);

    let mut c = LookupClient::connect_no_magic(lookupd.tcp_addr())?;
    c.send(b"  V2")?;
    c.expect_fatal("E_BAD_PROTOCOL")?;

    let cases: [(&str, &str); 8] = [
        ("REGISTER t c", "E_INVALID client must IDENTIFY"),
        ("UNREGISTER t", "E_INVALID client must IDENTIFY"),
        ("FOO", "E_INVALID invalid command FOO"),
        ("", "E_INVALID invalid command "),
        ("register t", "E_INVALID invalid command register"),
        ("REGISTER", "E_INVALID client must IDENTIFY"),
        ("PING extra words", "OK"),
        ("  PING\t", "OK"),
    ];
    for (line, want) in cases {
        let mut c = lookupd.connect()?;
        c.command(line)?;
        if want == "OK" {
            c.expect(want)?;
        } else {
            c.expect_fatal(want)?;
        }
    }

    let identified_cases: [(&str, &str); 6] = [
        (
            "REGISTER",
            "E_INVALID REGISTER insufficient number of params",
        ),
        (
            "UNREGISTER",
            "E_INVALID UNREGISTER insufficient number of params",
        ),
        (
            "REGISTER bad!name",
            "E_BAD_TOPIC REGISTER topic name 'bad!name' is not valid",
        ),
        (
            "REGISTER t bad/ch",
            "E_BAD_CHANNEL REGISTER channel name 'bad/ch' is not valid",
        ),
        (
            "UNREGISTER  t",
            "E_BAD_TOPIC UNREGISTER topic name '' is not valid",
        ),
        ("IDENTIFY", "E_INVALID cannot IDENTIFY again"),
    ];
    for (line, want) in identified_cases {
        let mut c = lookupd.connect_as(&peer)?;
        c.command(line)?;
        c.expect_fatal(want)?;
    }
    Ok(())
}

/// IDENTIFY body checks, with nsqlookupd's texts.
#[test]
fn identify_errors() -> Result<()> {
    let lookupd = start()?;
    let bodies: [(&[u8], &str); 6] = [
        (
            br#"{"tcp_port":1,"http_port":2,"version":"v"}"#,
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            br#"{"broadcast_address":"b","tcp_port":1,"http_port":2}"#,
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            br#"{"broadcast_address":"b","tcp_port":1,"version":"v"}"#,
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            b"not json",
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            br#"{"broadcast_address":"b","tcp_port":"1","http_port":2,"version":"v"}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (b"", "E_BAD_BODY IDENTIFY failed to decode JSON body"),
    ];
    for (body, want) in bodies {
        let mut c = lookupd.connect()?;
        c.send(&identify_bytes(body))?;
        c.expect_fatal(want)?;
    }
    // Truncated size or body: the peer gave up mid-command.
    let mut c = lookupd.connect()?;
    c.send(b"IDENTIFY\n\x00\x00")?;
    c.shutdown_write()?;
    c.expect_fatal("E_BAD_BODY IDENTIFY failed to read body size")?;
    let mut c = lookupd.connect()?;
    c.send(b"IDENTIFY\n\x00\x00\x00\x10{}")?;
    c.shutdown_write()?;
    c.expect_fatal("E_BAD_BODY IDENTIFY failed to read body")?;
    // A negative size (which crashes Go's nsqlookupd) is refused.
    let mut c = lookupd.connect()?;
    c.send(b"IDENTIFY\n\xff\xff\xff\xff")?;
    c.expect_fatal("E_BAD_BODY IDENTIFY invalid body size")?;
    // Nothing was registered by any of these.
    assert_eq!(lookupd.get_json("/nodes")?, json!({ "producers": [] }));
    // Case-insensitive keys and unknown keys are accepted, as by Go's JSON decoder.
    let mut c = lookupd.connect()?;
    c.send(&identify_bytes(
        br#"{"BROADCAST_ADDRESS":"b","Tcp_Port":7,"http_port":8,"version":"v","extra":[1]}"#,
    ))?;
    c.read_response()?;
    c.register("t", None)?;
    assert_eq!(lookupd.lookup_ports("t")?, [7]);
    Ok(())
}

/// TestPing, TestInfo and the router's 404/405/redirects.
#[test]
fn http_basics_and_routing() -> Result<()> {
    let lookupd = start()?;
    let ping = lookupd.request("GET", "/ping")?;
    assert_eq!((ping.status, ping.text().as_str()), (200, "OK"));
    assert_eq!(lookupd.get_json("/info")?, json!({ "version": "1.3.0" }));

    assert_eq!(
        lookupd.error("GET", "/nope")?,
        (404, "NOT_FOUND".to_string())
    );
    assert_eq!(
        lookupd.error("POST", "/lookup")?,
        (405, "METHOD_NOT_ALLOWED".to_string())
    );
    let resp = lookupd.request("GET", "/topic/create")?;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST, OPTIONS"));
    let resp = lookupd.request("OPTIONS", "/lookup")?;
    assert_eq!(
        (resp.status, resp.header("allow")),
        (200, Some("GET, OPTIONS"))
    );
    let resp = lookupd.request("GET", "/ping/")?;
    assert_eq!((resp.status, resp.header("location")), (301, Some("/ping")));
    let resp = lookupd.request("POST", "/Topic/Create?topic=x")?;
    assert_eq!(
        (resp.status, resp.header("location")),
        (307, Some("/topic/create?topic=x"))
    );

    // Keep-alive: several requests on one connection; a HEAD answer (405)
    // carries no body, so the next answer is read correctly.
    let mut conn = HttpConn::connect(lookupd.http_addr())?;
    let resp = conn.request("HEAD", "/ping", b"")?;
    assert_eq!(
        (resp.status, resp.header("allow")),
        (405, Some("GET, OPTIONS"))
    );
    for _ in 0..3 {
        let resp = conn.request("GET", "/topics", b"")?;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
    Ok(())
}

/// TestCreateTopic, TestDeleteTopic, TestGetChannels, TestCreateChannel,
/// TestDeleteChannel.
#[test]
fn http_topic_and_channel_admin() -> Result<()> {
    let lookupd = start()?;
    let err = |method: &str, path: &str| lookupd.error(method, path);
    let e = |status: u16, message: &str| (status, message.to_string());

    assert_eq!(err("POST", "/topic/create")?, e(400, "MISSING_ARG_TOPIC"));
    assert_eq!(
        err("POST", "/topic/create?topic=sampletopicA-$")?,
        e(400, "INVALID_ARG_TOPIC")
    );
    lookupd.post_ok("/topic/create?topic=sampletopicA")?;
    assert_eq!(
        lookupd.lookup("sampletopicA")?,
        json!({ "channels": [], "producers": [] })
    );

    assert_eq!(err("POST", "/topic/delete")?, e(400, "MISSING_ARG_TOPIC"));
    assert_eq!(err("GET", "/channels")?, e(400, "MISSING_ARG_TOPIC"));
    assert_eq!(
        lookupd.get_json("/channels?topic=sampletopicA")?,
        json!({ "channels": [] })
    );

    assert_eq!(err("POST", "/channel/create")?, e(400, "MISSING_ARG_TOPIC"));
    assert_eq!(
        err("POST", "/channel/create?topic=sampletopicB-$")?,
        e(400, "INVALID_ARG_TOPIC")
    );
    assert_eq!(
        err("POST", "/channel/create?topic=sampletopicB")?,
        e(400, "MISSING_ARG_CHANNEL")
    );
    assert_eq!(
        err("POST", "/channel/create?topic=sampletopicB&channel=foobar$")?,
        e(400, "INVALID_ARG_CHANNEL")
    );
    lookupd.post_ok("/channel/create?topic=sampletopicB&channel=foobar")?;
    assert_eq!(
        lookupd.get_json("/channels?topic=sampletopicB")?,
        json!({ "channels": ["foobar"] })
    );
    assert_eq!(
        strings(&lookupd.get_json("/topics")?["topics"]),
        ["sampletopicA", "sampletopicB"]
    );

    assert_eq!(err("POST", "/channel/delete")?, e(400, "MISSING_ARG_TOPIC"));
    assert_eq!(
        err("POST", "/channel/delete?topic=sampletopicB")?,
        e(400, "MISSING_ARG_CHANNEL")
    );
    assert_eq!(
        err("POST", "/channel/delete?topic=sampletopicB&channel=nope")?,
        e(404, "CHANNEL_NOT_FOUND")
    );
    lookupd.post_ok("/channel/delete?topic=sampletopicB&channel=foobar")?;
    assert_eq!(
        lookupd.get_json("/channels?topic=sampletopicB")?,
        json!({ "channels": [] })
    );

    // Deleting a topic removes its channel keys too, even with producers.
    let mut peer = lookupd.connect_as(&peer_info(HOST, 1, 2))?;
    peer.register("sampletopicB", Some("ch"))?;
    lookupd.post_ok("/topic/delete?topic=sampletopicB")?;
    assert_eq!(
        err("GET", "/lookup?topic=sampletopicB")?,
        e(404, "TOPIC_NOT_FOUND")
    );
    assert_eq!(
        lookupd.get_json("/channels?topic=sampletopicB")?,
        json!({ "channels": [] })
    );
    lookupd.post_ok("/topic/delete?topic=never-existed")?;
    // Re-registering brings it back.
    peer.register("sampletopicB", None)?;
    assert_eq!(lookupd.lookup_ports("sampletopicB")?, [1]);
    Ok(())
}

/// Argument errors on the query-reading endpoints.
#[test]
fn http_argument_errors() -> Result<()> {
    let lookupd = start()?;
    let e = |status: u16, message: &str| (status, message.to_string());
    assert_eq!(
        lookupd.error("GET", "/lookup")?,
        e(400, "MISSING_ARG_TOPIC")
    );
    assert_eq!(
        lookupd.error("GET", "/lookup?topic=nope")?,
        e(404, "TOPIC_NOT_FOUND")
    );
    assert_eq!(
        lookupd.error("GET", "/lookup?topic=%zz")?,
        e(400, "INVALID_REQUEST")
    );
    assert_eq!(
        lookupd.error("POST", "/topic/tombstone?topic=t")?,
        e(400, "MISSING_ARG_NODE")
    );
    assert_eq!(
        lookupd.error("POST", "/topic/tombstone?node=n:1")?,
        e(400, "MISSING_ARG_TOPIC")
    );
    let resp = http::request(
        lookupd.http_addr(),
        "POST",
        "/topic/create?topic=t",
        b"ignored body",
    )?;
    assert_eq!(resp.status, 200);
    Ok(())
}

/// `--version`, `--help`, bad flags and a port in use.
#[test]
fn command_line() -> Result<()> {
    let timeout = Duration::from_secs(10);
    let (status, stdout, _) = run_nsqlookupd_to_exit(&["--version"], timeout)?;
    assert!(status.success());
    assert!(stdout.starts_with("nsqlookupd v1.3.0"), "{stdout}");

    let (status, _, stderr) = run_nsqlookupd_to_exit(&["-h"], timeout)?;
    assert!(status.success());
    assert!(
        stderr.contains("-inactive-producer-timeout duration"),
        "{stderr}"
    );

    let (status, _, stderr) = run_nsqlookupd_to_exit(&["--no-such-flag"], timeout)?;
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.starts_with("flag provided but not defined: -no-such-flag"),
        "{stderr}"
    );

    let mut lookupd = start()?;
    let taken = format!("--tcp-address={}", lookupd.tcp_addr());
    let (status, _, stderr) =
        run_nsqlookupd_to_exit(&[&taken, "--http-address=127.0.0.1:0"], timeout)?;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");

    // SIGTERM is a clean exit.
    let status = lookupd.stop()?;
    assert!(status.success(), "{status}");
    assert!(lookupd.stderr().contains("TCP: closing"));
    Ok(())
}

/// A real client (tokio-nsq) finds nsqd through `/lookup` and consumes from
/// it. nsqd is announced by the raw V1 client, standing in for nsqd's own
/// registration.
#[test]
fn tokio_nsq_consumer_discovers_nsqd() -> Result<()> {
    use tokio_nsq::{
        NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQConsumerLookupConfig, NSQTopic,
    };
    let nsqd = nsq_tests::TestNsqd::start(&[])?;
    let lookupd = start()?;
    let topic = unique_name("discovered");
    let (nsqd_tcp, nsqd_http) = (nsqd.tcp_addr(), nsqd.http_addr());
    let mut announcer =
        lookupd.connect_as(&peer_info("127.0.0.1", nsqd_tcp.port(), nsqd_http.port()))?;
    announcer.register(&topic, Some("ch"))?;
    let (status, body) = nsqd.http_post(&format!("/pub?topic={topic}"), b"found you")?;
    anyhow::ensure!(status == 200, "publish: {status} {body}");

    let lookup = NSQConsumerLookupConfig::new()
        .set_poll_interval(Duration::from_millis(200))
        .set_addresses([format!("http://{}", lookupd.http_addr())].into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // tokio-nsq spawns its tasks when built, so it is built in the runtime.
    let body = rt.block_on(async {
        let mut consumer = NSQConsumerConfig::new(
            NSQTopic::new(topic.clone()).ok_or_else(|| anyhow::anyhow!("topic name"))?,
            NSQChannel::new("ch").ok_or_else(|| anyhow::anyhow!("channel name"))?,
        )
        .set_max_in_flight(1)
        .set_sources(NSQConsumerConfigSources::Lookup(lookup))
        .build();
        let message = tokio::time::timeout(READ_TIMEOUT, consumer.consume_filtered())
            .await
            .map_err(|_| anyhow::anyhow!("no message via lookupd within {READ_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow::anyhow!("consumer stopped"))?;
        let body = message.body.clone();
        message.finish().await;
        anyhow::Ok(body)
    })?;
    assert_eq!(body, b"found you");
    Ok(())
}

/// Strict HTTP/1.1 Host rules on nsqlookupd's HTTP port, as on nsqd's.
#[test]
fn host_header_is_required_as_go_requires_it() -> Result<()> {
    let lookupd = start()?;
    http::check_host_rules(lookupd.http_addr())
}
