//! TLS and compression on the wire, with a raw client: the in-band TLS
//! upgrade after IDENTIFY, `--tls-required`, client-certificate policies,
//! the HTTPS API, snappy and deflate (alone and over TLS), consumers whose
//! session moves to another core at SUB, and bad input on each layer.
//!
//! Certificates are made at test time (`nsq_tests::tls::TestCerts`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::tls::{TestCerts, CLIENT_CN};
use nsq_tests::{unique_name, RawClient, TestNsqd};
use serde_json::{json, Value};

fn start(certs: &TestCerts, extra: &[&str]) -> Result<TestNsqd> {
    let args = certs.nsqd_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestNsqd::start(&args)
}

/// IDENTIFY asking for `features`; the response must grant them.
fn identify(c: &mut RawClient, features: Value) -> Result<Value> {
    let mut req = json!({"feature_negotiation": true, "client_id": "tls-test"});
    for (k, v) in features.as_object().context("features")? {
        req[k] = v.clone();
    }
    let r = c.identify_ok(&req)?;
    for key in ["tls_v1", "snappy", "deflate"] {
        if req.get(key) == Some(&Value::Bool(true)) {
            ensure!(r[key] == true, "{key} not granted: {r}");
        }
    }
    Ok(r)
}

/// A connection upgraded as asked: "tls", "snappy", "deflate" in any
/// combination nsqd allows.
fn upgraded(nsqd: &TestNsqd, certs: &TestCerts, layers: &[&str]) -> Result<RawClient> {
    let mut c = nsqd.connect()?;
    let mut features = json!({});
    for layer in layers {
        match *layer {
            "tls" => features["tls_v1"] = true.into(),
            "snappy" => features["snappy"] = true.into(),
            "deflate" => {
                features["deflate"] = true.into();
                features["deflate_level"] = 3.into();
            }
            other => bail!("unknown layer {other}"),
        }
    }
    identify(&mut c, features)?;
    if layers.contains(&"tls") {
        c.upgrade_tls(certs.client_config(None)?)?;
    }
    if layers.contains(&"snappy") {
        c.upgrade_snappy()?;
    }
    if layers.contains(&"deflate") {
        c.upgrade_deflate(3)?;
    }
    Ok(c)
}

/// Publish a large MPUB and a PUB through `layers`, consume them through
/// the same layers, and compare every byte.
fn round_trip(layers: &[&str], shards: u32) -> Result<()> {
    let certs = TestCerts::generate()?;
    let shards_arg = format!("--shards={shards}");
    let nsqd = start(&certs, &[&shards_arg])?;
    let topic = unique_name("layers");
    // Bodies large and varied enough to span many snappy chunks and
    // deflate blocks (over 64 KiB each way), some incompressible.
    let bodies: Vec<Vec<u8>> = (0..40u32)
        .map(|i| {
            let mut b = vec![0u8; 20_000 + i as usize * 1_000];
            let mut x = i.wrapping_mul(2_654_435_761).wrapping_add(1);
            for (j, byte) in b.iter_mut().enumerate() {
                if i % 2 == 0 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *byte = x as u8;
                } else {
                    *byte = b"nsq compressed "[j % 15];
                }
            }
            b
        })
        .collect();
    let mut p = upgraded(&nsqd, &certs, layers)?;
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    p.mpub_ok(&topic, &refs)?;
    p.pub_ok(&topic, b"last one")?;

    let mut c = upgraded(&nsqd, &certs, layers)?;
    c.sub_ok(&topic, "ch")?;
    c.rdy(100)?;
    for (i, body) in bodies.iter().enumerate() {
        let m = c.expect_message_skip_heartbeats()?;
        ensure!(m.body[..] == body[..], "body {i} differs after {layers:?}");
        c.fin(&m.id)?;
    }
    let m = c.expect_message_skip_heartbeats()?;
    ensure!(&m.body[..] == b"last one");
    c.fin(&m.id)?;
    c.nop()?;
    Ok(())
}

#[test]
fn tls_round_trip() -> Result<()> {
    round_trip(&["tls"], 1)
}

#[test]
fn snappy_round_trip() -> Result<()> {
    round_trip(&["snappy"], 1)
}

#[test]
fn deflate_round_trip() -> Result<()> {
    round_trip(&["deflate"], 1)
}

#[test]
fn tls_snappy_round_trip_two_shards() -> Result<()> {
    round_trip(&["tls", "snappy"], 2)
}

#[test]
fn tls_deflate_round_trip_two_shards() -> Result<()> {
    round_trip(&["tls", "deflate"], 2)
}

/// Consumers on a 2-shard nsqd: each channel is owned by one core, each
/// connection lands on either, so most of these 16 move at SUB with their
/// TLS session and compressor. The SUB, RDY and a NOP are sent in one write
/// right after the upgrade, so bytes already decrypted and decompressed but
/// not parsed move too.
#[test]
fn sessions_move_with_consumers() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &["--shards=2"])?;
    let topic = unique_name("moving");
    let mut publisher = upgraded(&nsqd, &certs, &["tls", "deflate"])?;
    let mut consumers = Vec::new();
    for i in 0..16 {
        let layers: &[&str] = if i % 2 == 0 {
            &["tls", "snappy"]
        } else {
            &["tls", "deflate"]
        };
        let mut c = upgraded(&nsqd, &certs, layers)?;
        let mut cmds = format!("SUB {topic} ch{i}\n").into_bytes();
        cmds.extend_from_slice(b"RDY 10\nNOP\n");
        c.send(&cmds)?;
        c.expect_ok()?;
        consumers.push(c);
    }
    for n in 0..5 {
        publisher.pub_ok(&topic, format!("message {n}").as_bytes())?;
    }
    for (i, c) in consumers.iter_mut().enumerate() {
        for n in 0..5 {
            let m = c.expect_message_skip_heartbeats()?;
            ensure!(
                m.body[..] == *format!("message {n}").as_bytes(),
                "consumer {i}"
            );
            c.fin(&m.id)?;
        }
    }
    // Stats see each consumer's layers on whichever core it ended up.
    let stats = nsqd.stats("format=json")?;
    let clients: Vec<&Value> = stats["topics"][0]["channels"]
        .as_array()
        .context("channels")?
        .iter()
        .flat_map(|ch| ch["clients"].as_array().into_iter().flatten())
        .collect();
    ensure!(clients.len() == 16, "{stats}");
    for client in clients {
        ensure!(client["tls"] == true, "{client}");
        ensure!(client["snappy"] != client["deflate"], "{client}");
    }
    Ok(())
}

/// `/stats` shows the negotiated session as nsqd does.
#[test]
fn stats_show_tls_fields() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &[])?;
    let topic = unique_name("tls_stats");
    let mut c = upgraded(&nsqd, &certs, &["tls", "snappy"])?;
    c.sub_ok(&topic, "ch")?;
    let ch = nsqd
        .channel_stats(&topic, "ch")?
        .context("channel in stats")?;
    let client = &ch["clients"][0];
    ensure!(client["tls"] == true, "{client}");
    ensure!(
        client["snappy"] == true && client["deflate"] == false,
        "{client}"
    );
    ensure!(client["tls_version"] == "TLS1.3", "{client}");
    // nsqd names only older suites; TLS 1.3's come out as "Unknown <id>".
    let suite = client["tls_cipher_suite"].as_str().unwrap_or("");
    ensure!(suite.starts_with("Unknown 48"), "{client}");
    ensure!(client["tls_negotiated_protocol"] == "", "{client}");
    ensure!(
        client["tls_negotiated_protocol_is_mutual"] == true,
        "{client}"
    );
    Ok(())
}

#[test]
fn tls_required_refuses_plain_commands() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &["--tls-required=true"])?;
    let topic = unique_name("required");
    let mut c = nsqd.connect()?;
    c.publish(&topic, b"x")?;
    c.expect_fatal("E_INVALID cannot PUB in current state (TLS required)")?;

    let mut c = nsqd.connect()?;
    c.auth(b"secret")?;
    c.expect_fatal("E_INVALID cannot AUTH in current state (TLS required)")?;

    // IDENTIFY without TLS is allowed, but what follows is not.
    let mut c = nsqd.connect()?;
    identify(&mut c, json!({}))?;
    c.sub(&topic, "ch")?;
    c.expect_fatal("E_INVALID cannot SUB in current state (TLS required)")?;

    // After the upgrade everything works.
    let mut c = upgraded(&nsqd, &certs, &["tls"])?;
    c.pub_ok(&topic, b"over tls")?;
    Ok(())
}

/// A GET over HTTPS with rustls; returns (status, body).
fn https_get(
    port: u16,
    path: &str,
    certs: &TestCerts,
    identity: Option<&str>,
) -> Result<(u16, String)> {
    let config = certs.client_config(identity)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let conn = rustls::ClientConnection::new(config, name)?;
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    tls.flush()?;
    let mut text = Vec::new();
    match tls.read_to_end(&mut text) {
        Ok(_) => {}
        // Some servers close without close_notify after Connection: close.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !text.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .context("status line")?
        .parse()
        .context("status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[test]
fn https_api_and_tls_required_http() -> Result<()> {
    let certs = TestCerts::generate()?;
    let port = free_port()?;
    let https = format!("--https-address=127.0.0.1:{port}");
    let nsqd = start(&certs, &[&https, "--tls-required=true"])?;
    // Plain HTTP: 403 and where HTTPS is, byte for byte as nsqd.
    let (status, body) = nsqd.http_get("/ping")?;
    ensure!(status == 403, "{status} {body}");
    ensure!(
        body == format!(r#"{{"message": "TLS_REQUIRED", "https_port": {port}}}"#),
        "{body}"
    );
    let (status, body) = https_get(port, "/ping", &certs, None)?;
    ensure!(status == 200 && body == "OK", "{status} {body}");
    let (status, body) = https_get(port, "/stats?format=json", &certs, None)?;
    ensure!(
        status == 200 && body.contains("\"topics\""),
        "{status} {body}"
    );
    drop(nsqd);

    // tcp-https: TCP needs TLS, plain HTTP is still served.
    let nsqd = start(&certs, &["--tls-required=tcp-https"])?;
    let (status, body) = nsqd.http_get("/ping")?;
    ensure!(status == 200 && body == "OK", "{status} {body}");
    let mut c = nsqd.connect()?;
    c.publish("t", b"x")?;
    c.expect_fatal("E_INVALID cannot PUB in current state (TLS required)")?;
    Ok(())
}

/// Upgrade to TLS with `identity` (a client certificate or none); Ok if the
/// session works (a PUB is answered).
fn try_client_cert(nsqd: &TestNsqd, certs: &TestCerts, identity: Option<&str>) -> Result<()> {
    let mut c = nsqd.connect()?;
    identify(&mut c, json!({"tls_v1": true}))?;
    c.start_tls(certs.client_config(identity)?)?;
    // TLS 1.3: a refused client certificate shows after the handshake.
    c.expect_ok()?;
    c.pub_ok(&unique_name("cert"), b"x")
}

#[test]
fn client_certificate_policies() -> Result<()> {
    let certs = TestCerts::generate()?;
    // require: any certificate, but one is needed.
    let nsqd = start(&certs, &["--tls-client-auth-policy=require"])?;
    ensure!(
        try_client_cert(&nsqd, &certs, None).is_err(),
        "no certificate accepted"
    );
    try_client_cert(&nsqd, &certs, Some("stranger"))?;
    try_client_cert(&nsqd, &certs, Some("client"))?;
    // The policy makes TLS required (nsqd).
    let mut c = nsqd.connect()?;
    c.publish("t", b"x")?;
    c.expect_fatal("E_INVALID cannot PUB in current state (TLS required)")?;
    drop(nsqd);

    // require-verify: only certificates of the configured CA.
    let ca = format!("--tls-root-ca-file={}", certs.path("ca.pem").display());
    let nsqd = start(&certs, &["--tls-client-auth-policy=require-verify", &ca])?;
    ensure!(
        try_client_cert(&nsqd, &certs, None).is_err(),
        "no certificate accepted"
    );
    ensure!(
        try_client_cert(&nsqd, &certs, Some("stranger")).is_err(),
        "a certificate of another CA accepted"
    );
    try_client_cert(&nsqd, &certs, Some("client"))?;
    Ok(())
}

#[test]
fn snappy_and_deflate_refused_when_disabled() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &["--snappy=false", "--max-deflate-level=2"])?;
    let mut c = nsqd.connect()?;
    let r = c.identify_ok(&json!({"feature_negotiation": true, "snappy": true}))?;
    ensure!(r["snappy"] == false, "{r}");
    c.pub_ok(&unique_name("plain"), b"still plain")?;
    // The level is capped at --max-deflate-level.
    let mut c = nsqd.connect()?;
    let r =
        c.identify_ok(&json!({"feature_negotiation": true, "deflate": true, "deflate_level": 9}))?;
    ensure!(r["deflate"] == true && r["deflate_level"] == 2, "{r}");
    c.upgrade_deflate(2)?;
    c.pub_ok(&unique_name("deflated"), b"x")
}

/// nsqd keeps serving after a broken peer: a PUB on a fresh connection.
fn still_serving(nsqd: &TestNsqd) -> Result<()> {
    nsqd.connect()?.pub_ok(&unique_name("alive"), b"x")
}

/// nsqd answers a failed handshake in plaintext (after any TLS alert) with
/// `E_IDENTIFY_FAILED`, closes within twice its 5 s deadline, and keeps
/// serving others.
fn identify_failed_then_closed(c: &mut RawClient, nsqd: &TestNsqd) -> Result<()> {
    let answer = c.read_raw_until_closed(Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&answer);
    ensure!(
        text.contains("E_IDENTIFY_FAILED IDENTIFY failed"),
        "{text:?}"
    );
    still_serving(nsqd)
}

#[test]
fn garbage_instead_of_client_hello_is_closed() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &[])?;
    let mut c = nsqd.connect()?;
    identify(&mut c, json!({"tls_v1": true}))?;
    c.send_raw(b"this is not a TLS ClientHello\n\n\n\n\n\n")?;
    identify_failed_then_closed(&mut c, &nsqd)
}

#[test]
fn stalled_handshake_is_bounded() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &[])?;
    let mut c = nsqd.connect()?;
    identify(&mut c, json!({"tls_v1": true}))?;
    // The first bytes of a TLS record header, then silence.
    c.send_raw(&[0x16, 0x03, 0x01])?;
    identify_failed_then_closed(&mut c, &nsqd)
}

#[test]
fn corrupt_compressed_streams_are_closed() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &[])?;
    for layer in ["snappy", "deflate"] {
        let mut c = upgraded(&nsqd, &certs, &[layer])?;
        // A snappy stream needs its identifier first, so this is corrupt
        // for both; deflate sees a reserved block type (0b11).
        c.send_raw(&[0xff, 0xff, 0xff, 0xff, 0x07, 0x07, 0x07, 0x07])?;
        c.read_raw_until_closed(Duration::from_secs(10))
            .with_context(|| layer.to_string())?;
    }
    // A corrupt record under TLS.
    let mut c = upgraded(&nsqd, &certs, &["tls"])?;
    c.send_raw(&[0x17, 0x03, 0x03, 0x00, 0x20])?;
    c.send_raw(&[0x42; 32])?;
    c.read_raw_until_closed(Duration::from_secs(10))?;
    still_serving(&nsqd)
}

/// AUTH over TLS with a client certificate: the auth server is told
/// `tls=true` and the certificate's common name, as nsqd tells it; `/stats`
/// shows the identity.
#[test]
fn auth_over_tls_sends_common_name() -> Result<()> {
    use nsq_tests::authd::{AuthReply, AuthServer};
    let certs = TestCerts::generate()?;
    let authd = AuthServer::start();
    authd.set(
        "s3cret",
        AuthReply::grant(3600, "carol", &[(".*", &[".*"], &["publish", "subscribe"])]),
    );
    let auth_addr = format!("--auth-http-address={}", authd.addr());
    let nsqd = start(
        &certs,
        &[
            &auth_addr,
            "--tls-client-auth-policy=require",
            "--tls-required=tcp-https",
        ],
    )?;
    let topic = unique_name("authed_tls");
    let mut c = nsqd.connect()?;
    let r = identify(&mut c, json!({"tls_v1": true, "deflate": true}))?;
    ensure!(r["auth_required"] == true, "{r}");
    c.upgrade_tls(certs.client_config(Some("client"))?)?;
    c.upgrade_deflate(6)?;
    c.auth(b"s3cret")?;
    c.expect_response(
        r#"{"identity":"carol","identity_url":"https://auth.example/carol","permission_count":1}"#,
    )?;
    c.sub_ok(&topic, "ch")?;
    let seen = authd.requests_for("s3cret");
    ensure!(seen.len() == 1, "{} queries", seen.len());
    ensure!(seen[0].param("tls") == Some("true"));
    ensure!(seen[0].param("common_name") == Some(CLIENT_CN));
    ensure!(seen[0].param("remote_ip") == Some("127.0.0.1"));
    let ch = nsqd.channel_stats(&topic, "ch")?.context("channel")?;
    let client = &ch["clients"][0];
    ensure!(
        client["authed"] == true && client["auth_identity"] == "carol",
        "{client}"
    );
    ensure!(
        client["tls"] == true && client["deflate"] == true,
        "{client}"
    );
    Ok(())
}
