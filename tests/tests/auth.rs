//! `--auth-http-address`: the AUTH command and per-command authorization,
//! against a test auth server ([`nsq_tests::authd::AuthServer`]).
//!
//! Expected texts are nsqd v1.3's (`nsqd/protocol_v2.go`: `AUTH`,
//! `CheckAuth`; `internal/auth/authorizations.go`): every auth error is
//! fatal (the connection closes after the error frame):
//!
//! * before AUTH, PUB/MPUB/DPUB/SUB: `E_AUTH_FIRST AUTH required before <CMD>`
//! * the auth server refuses or fails, or its answer is invalid:
//!   `E_AUTH_FAILED AUTH failed` (the reason is only logged)
//! * an answer without authorizations: `E_UNAUTHORIZED AUTH no authorizations found`
//! * not permitted: `E_UNAUTHORIZED AUTH failed for <CMD> on "<topic>" "<channel>"`
//!   (channel `""` for a publish)
//! * a second AUTH: `E_INVALID AUTH already set`
//! * AUTH without `--auth-http-address`: `E_AUTH_DISABLED AUTH disabled`
//!
//! A successful AUTH answers `{"identity":…,"identity_url":…,"permission_count":N}`.
//! The cached answer is re-fetched when its `ttl` has passed, at the next
//! command that is checked.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nsq_tests::authd::{AuthReply, AuthServer};
use nsq_tests::{
    http, mpub_body, raw_command_with_body, unique_name, Frame, RawClient, ShowFrame, TestNsqd,
};
use serde_json::{json, Value};

/// Starts nsqd asking `authd`, plus `extra` flags.
fn nsqd_with_auth(authd: &AuthServer, extra: &[&str]) -> Result<TestNsqd> {
    let flag = format!("--auth-http-address={}", authd.addr());
    let mut args = vec![flag.as_str()];
    args.extend_from_slice(extra);
    TestNsqd::start(&args)
}

/// A grant of publish and subscribe on `topic` (any channel) for `ttl` s.
fn grant_topic(ttl: i64, identity: &str, topic: &str) -> AuthReply {
    AuthReply::grant(
        ttl,
        identity,
        &[(&format!("^{topic}$"), &[".*"], &["publish", "subscribe"])],
    )
}

/// Sends AUTH and returns nsqd's JSON answer.
fn auth_ok(c: &mut RawClient, secret: &str) -> Result<Value> {
    c.auth(secret.as_bytes())?;
    match c.read_frame()? {
        Frame::Response(b) => serde_json::from_slice(&b)
            .with_context(|| format!("AUTH answer is not JSON: {:?}", String::from_utf8_lossy(&b))),
        other => anyhow::bail!(
            "AUTH {secret:?}: expected a response, got {}",
            ShowFrame(&other)
        ),
    }
}

/// A loopback address nobody listens on.
fn dead_addr() -> Result<String> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

// ---------------------------------------------------------------------------
// IDENTIFY and AUTH
// ---------------------------------------------------------------------------

/// IDENTIFY's feature negotiation says whether AUTH is needed.
#[test]
fn identify_reports_auth_required() -> Result<()> {
    let authd = AuthServer::start();
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let mut c = nsqd.connect()?;
    let resp = c.identify_ok(&json!({"feature_negotiation": true}))?;
    ensure!(
        resp["auth_required"] == json!(true),
        "IDENTIFY answer: {resp}"
    );

    let plain = TestNsqd::start(&[])?;
    let mut c = plain.connect()?;
    let resp = c.identify_ok(&json!({"feature_negotiation": true}))?;
    ensure!(
        resp["auth_required"] == json!(false),
        "IDENTIFY answer: {resp}"
    );
    Ok(())
}

/// Without `--auth-http-address`, AUTH is refused (fatal) and publishing
/// needs no secret.
#[test]
fn auth_disabled_without_auth_address() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.pub_ok(&unique_name("noauth"), b"free")?;
    c.auth(b"whatever")?;
    c.expect_fatal("E_AUTH_DISABLED AUTH disabled")?;
    Ok(())
}

/// Every checked command before AUTH is fatal with E_AUTH_FIRST; commands
/// that are not checked (NOP, IDENTIFY) are fine.
#[test]
fn commands_before_auth_are_fatal() -> Result<()> {
    let authd = AuthServer::start();
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let topic = unique_name("first");

    let mut c = nsqd.connect()?;
    c.identify_ok(&json!({"feature_negotiation": true}))?;
    c.nop()?;
    c.publish(&topic, b"m")?;
    c.expect_fatal("E_AUTH_FIRST AUTH required before PUB")?;

    let mut c = nsqd.connect()?;
    c.mpub(&topic, &[b"a", b"b"])?;
    c.expect_fatal("E_AUTH_FIRST AUTH required before MPUB")?;

    let mut c = nsqd.connect()?;
    c.dpub(&topic, 100, b"m")?;
    c.expect_fatal("E_AUTH_FIRST AUTH required before DPUB")?;

    let mut c = nsqd.connect()?;
    c.sub(&topic, "ch")?;
    c.expect_fatal("E_AUTH_FIRST AUTH required before SUB")?;

    ensure!(
        authd.requests().is_empty(),
        "nothing should have asked the auth server: {:?}",
        authd.requests()
    );
    Ok(())
}

/// An unknown secret (403), a failing auth server (500) and an invalid
/// answer all end the connection with `E_AUTH_FAILED AUTH failed`.
#[test]
fn auth_refused_or_failing_is_fatal() -> Result<()> {
    let authd = AuthServer::start();
    authd.set("broken", AuthReply::Status(500));
    authd.set(
        "zero-ttl",
        AuthReply::Json(json!({"ttl": 0, "authorizations": []})),
    );
    authd.set(
        "star",
        AuthReply::Json(json!({"ttl": 60, "authorizations": [
            {"topic": ".*", "channels": [".*"], "permissions": ["*"]}]})),
    );
    authd.set(
        "bad-regex",
        AuthReply::Json(json!({"ttl": 60, "authorizations": [
            {"topic": "(", "channels": [".*"], "permissions": ["publish"]}]})),
    );
    authd.set("not-json", AuthReply::Json(json!("just a string")));
    let nsqd = nsqd_with_auth(&authd, &[])?;

    for secret in [
        "unknown",
        "broken",
        "zero-ttl",
        "star",
        "bad-regex",
        "not-json",
    ] {
        let mut c = nsqd.connect()?;
        c.auth(secret.as_bytes())?;
        c.expect_fatal("E_AUTH_FAILED AUTH failed")
            .with_context(|| format!("AUTH {secret:?}"))?;
    }
    ensure!(
        authd.requests().len() == 6,
        "one auth query per AUTH: {:?}",
        authd.requests()
    );
    Ok(())
}

/// An answer with no authorizations is `E_UNAUTHORIZED AUTH no
/// authorizations found`.
#[test]
fn auth_without_authorizations_is_fatal() -> Result<()> {
    let authd = AuthServer::start();
    authd.set("empty", AuthReply::grant(60, "nobody", &[]));
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let mut c = nsqd.connect()?;
    c.auth(b"empty")?;
    c.expect_fatal("E_UNAUTHORIZED AUTH no authorizations found")?;
    Ok(())
}

/// A successful AUTH answers identity, identity_url and the number of
/// authorizations, in nsqd's field order.
#[test]
fn auth_ok_answer() -> Result<()> {
    let authd = AuthServer::start();
    authd.set(
        "alice-secret",
        AuthReply::grant(
            3600,
            "alice",
            &[
                ("^a$", &[".*"], &["publish"]),
                ("^b$", &["^c$"], &["subscribe"]),
            ],
        ),
    );
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let mut c = nsqd.connect()?;
    c.identify_ok(&json!({"feature_negotiation": true}))?;
    c.auth(b"alice-secret")?;
    c.expect_response(
        r#"{"identity":"alice","identity_url":"https://auth.example/alice","permission_count":2}"#,
    )?;
    Ok(())
}

/// AUTH may not be sent twice (`E_INVALID AUTH already set`, fatal), nor
/// after SUB (`E_INVALID cannot AUTH in current state`).
#[test]
fn auth_twice_and_after_sub() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("twice");
    authd.set("s", grant_topic(60, "u", &topic));
    let nsqd = nsqd_with_auth(&authd, &[])?;

    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "s")?;
    c.auth(b"s")?;
    c.expect_fatal("E_INVALID AUTH already set")?;

    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "s")?;
    c.sub_ok(&topic, "ch")?;
    c.auth(b"s")?;
    c.expect_fatal("E_INVALID cannot AUTH in current state")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Authorization of PUB, MPUB, DPUB and SUB
// ---------------------------------------------------------------------------

/// Allowed publishes are OK; a publish to another topic is
/// `E_UNAUTHORIZED AUTH failed for PUB on "<topic>" ""` (fatal).
#[test]
fn publish_permissions() -> Result<()> {
    let authd = AuthServer::start();
    let allowed = unique_name("pub_ok");
    let denied = unique_name("pub_no");
    authd.set(
        "pub",
        AuthReply::grant(
            60,
            "publisher",
            &[(&format!("^{allowed}$"), &[".*"], &["publish"])],
        ),
    );
    let nsqd = nsqd_with_auth(&authd, &[])?;

    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "pub")?;
    c.pub_ok(&allowed, b"one")?;
    c.mpub_ok(&allowed, &[b"two", b"three"])?;
    c.dpub_ok(&allowed, 50, b"four")?;
    c.publish(&denied, b"nope")?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for PUB on \"{denied}\" \"\""
    ))?;

    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "pub")?;
    c.mpub(&denied, &[b"a"])?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for MPUB on \"{denied}\" \"\""
    ))?;

    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "pub")?;
    c.dpub(&denied, 10, b"a")?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for DPUB on \"{denied}\" \"\""
    ))?;

    // Publish permission does not include subscribe.
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "pub")?;
    c.sub(&allowed, "ch")?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for SUB on \"{allowed}\" \"ch\""
    ))?;

    // Only the allowed messages were stored.
    let (status, _) = nsqd.http_post(&format!("/topic/create?topic={denied}"), b"")?;
    ensure!(status == 200);
    let stats = nsqd
        .topic_stats(&allowed)?
        .context("allowed topic exists")?;
    ensure!(stats["message_count"] == json!(4), "topic stats: {stats}");
    let stats = nsqd
        .topic_stats(&denied)?
        .context("denied topic created over HTTP")?;
    ensure!(stats["message_count"] == json!(0), "topic stats: {stats}");
    Ok(())
}

/// nsqd checks a publish as a subscribe to the channel `""`: a grant whose
/// channel list has no pattern matching the empty string (here none at all,
/// or only `^x$`) does not allow publishing.
#[test]
fn publish_needs_a_channel_pattern_matching_empty() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("nochan");
    authd.set(
        "nochan",
        AuthReply::grant(60, "u", &[(&topic, &[], &["publish", "subscribe"])]),
    );
    authd.set(
        "strict",
        AuthReply::grant(60, "u", &[(&topic, &["^x$"], &["publish", "subscribe"])]),
    );
    let nsqd = nsqd_with_auth(&authd, &[])?;
    for secret in ["nochan", "strict"] {
        let mut c = nsqd.connect()?;
        auth_ok(&mut c, secret)?;
        c.publish(&topic, b"m")?;
        c.expect_fatal(&format!(
            "E_UNAUTHORIZED AUTH failed for PUB on \"{topic}\" \"\""
        ))
        .with_context(|| format!("secret {secret}"))?;
    }
    Ok(())
}

/// SUB to an allowed channel is OK and receives messages; a channel the
/// patterns do not match is `E_UNAUTHORIZED AUTH failed for SUB on …`.
/// Patterns are unanchored regular expressions.
#[test]
fn subscribe_permissions() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("subperm");
    authd.set(
        "sub",
        AuthReply::grant(
            60,
            "consumer",
            &[
                (&topic, &["^allowed$", "archive"], &["subscribe"]),
                (&topic, &[".*"], &["publish"]),
            ],
        ),
    );
    let nsqd = nsqd_with_auth(&authd, &[])?;

    let mut consumer = nsqd.connect()?;
    consumer.identify_ok(&json!({"feature_negotiation": true}))?;
    let answer = auth_ok(&mut consumer, "sub")?;
    ensure!(
        answer["permission_count"] == json!(2),
        "AUTH answer {answer}"
    );
    consumer.sub_ok(&topic, "allowed")?;
    consumer.rdy(1)?;

    let mut producer = nsqd.connect()?;
    auth_ok(&mut producer, "sub")?;
    producer.pub_ok(&topic, b"hello")?;
    let m = consumer.expect_message_skip_heartbeats()?;
    ensure!(&m.body[..] == b"hello");
    consumer.fin(&m.id)?;

    // Unanchored: "archive" matches "old_archive".
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "sub")?;
    c.sub_ok(&topic, "old_archive")?;

    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "sub")?;
    c.sub(&topic, "allowed2")?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for SUB on \"{topic}\" \"allowed2\""
    ))?;

    let other = unique_name("subother");
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "sub")?;
    c.sub(&other, "allowed")?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for SUB on \"{other}\" \"allowed\""
    ))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// What nsqd sends the auth server
// ---------------------------------------------------------------------------

/// `GET /auth?common_name=&remote_ip=127.0.0.1&secret=…&tls=false`, the
/// secret percent-encoded so any bytes survive.
#[test]
fn auth_query_parameters() -> Result<()> {
    let authd = AuthServer::start();
    let secret = "s3cr3t with spaces&=+/?#%é";
    let topic = unique_name("params");
    authd.set(secret, grant_topic(60, "u", &topic));
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, secret)?;

    let reqs = authd.requests();
    ensure!(reqs.len() == 1, "requests: {reqs:?}");
    let r = &reqs[0];
    ensure!(r.method == "GET" && r.path == "/auth", "request: {r:?}");
    ensure!(r.param("remote_ip") == Some("127.0.0.1"), "request: {r:?}");
    ensure!(r.param("tls") == Some("false"), "request: {r:?}");
    ensure!(r.param("secret") == Some(secret), "request: {r:?}");
    ensure!(r.param("common_name") == Some(""), "request: {r:?}");
    ensure!(r.params.len() == 4, "exactly nsqd's four values: {r:?}");
    Ok(())
}

/// A `--auth-http-address` containing `://` is the full endpoint: nsqd
/// appends `?<values>` to it instead of using `/auth`.
#[test]
fn full_url_auth_address() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("url");
    authd.set("s", grant_topic(60, "u", &topic));
    let flag = format!("--auth-http-address=http://{}/custom/check", authd.addr());
    let nsqd = TestNsqd::start(&[flag.as_str()])?;
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "s")?;
    c.pub_ok(&topic, b"m")?;
    let reqs = authd.requests();
    ensure!(
        reqs.len() == 1 && reqs[0].path == "/custom/check" && reqs[0].param("secret") == Some("s"),
        "requests: {reqs:?}"
    );
    Ok(())
}

/// `--auth-http-request-method=post` (nsqd master; not in the v1.3.0 tag)
/// sends the same four values as a JSON body, `json.Marshal(url.Values)`:
/// `{"common_name":[""],"remote_ip":["127.0.0.1"],"secret":["…"],"tls":["false"]}`
/// with `Content-Type: application/json` (checked against a reference
/// nsqd built from master).
#[test]
fn auth_post_method() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("post");
    authd.set("posted", grant_topic(60, "u", &topic));
    let nsqd = nsqd_with_auth(&authd, &["--auth-http-request-method=post"])?;
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "posted")?;
    c.pub_ok(&topic, b"m")?;
    let reqs = authd.requests();
    ensure!(reqs.len() == 1, "requests: {reqs:?}");
    let r = &reqs[0];
    ensure!(r.method == "POST" && r.path == "/auth", "request: {r:?}");
    ensure!(
        r.content_type.as_deref() == Some("application/json"),
        "request: {r:?}"
    );
    ensure!(
        r.param("secret") == Some("posted")
            && r.param("remote_ip") == Some("127.0.0.1")
            && r.param("tls") == Some("false")
            && r.param("common_name") == Some(""),
        "request: {r:?}"
    );
    Ok(())
}

/// With several auth servers, a dead one is skipped (nsqd tries each, from
/// a random start, until one answers).
#[test]
fn auth_fails_over_to_another_server() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("failover");
    authd.set("s", grant_topic(60, "u", &topic));
    let dead = format!("--auth-http-address={}", dead_addr()?);
    let nsqd = nsqd_with_auth(&authd, &[dead.as_str()])?;
    // Enough connections that both start orders are very likely exercised.
    for _ in 0..6 {
        let mut c = nsqd.connect()?;
        auth_ok(&mut c, "s")?;
        c.pub_ok(&topic, b"m")?;
    }
    ensure!(
        authd.requests().len() == 6,
        "requests: {:?}",
        authd.requests()
    );

    // All servers down: AUTH fails.
    let dead1 = format!("--auth-http-address={}", dead_addr()?);
    let dead2 = format!("--auth-http-address={}", dead_addr()?);
    let nsqd = TestNsqd::start(&[dead1.as_str(), dead2.as_str()])?;
    let mut c = nsqd.connect()?;
    c.auth(b"s")?;
    c.expect_fatal("E_AUTH_FAILED AUTH failed")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// TTL expiry
// ---------------------------------------------------------------------------

/// After `ttl` seconds the next checked command asks the auth server again
/// and uses the new answer: fewer permissions → E_UNAUTHORIZED.
#[test]
fn expired_auth_is_rechecked_with_fewer_permissions() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("ttl");
    let other = unique_name("ttl_other");
    authd.set("short", grant_topic(1, "u", &topic));
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let mut c = nsqd.connect()?;
    auth_ok(&mut c, "short")?;
    c.pub_ok(&topic, b"before expiry")?;
    ensure!(
        authd.requests().len() == 1,
        "cached within the TTL: {:?}",
        authd.requests()
    );

    // Now the same secret may only publish to another topic.
    authd.set("short", grant_topic(60, "u", &other));
    std::thread::sleep(Duration::from_millis(1500));
    c.publish(&topic, b"after expiry")?;
    c.expect_fatal(&format!(
        "E_UNAUTHORIZED AUTH failed for PUB on \"{topic}\" \"\""
    ))?;
    let reqs = authd.requests_for("short");
    ensure!(reqs.len() == 2, "re-queried once after expiry: {reqs:?}");
    Ok(())
}

/// After `ttl` seconds a secret the auth server now refuses ends the
/// connection with `E_AUTH_FAILED AUTH failed`; a fresh grant keeps it going.
#[test]
fn expired_auth_is_rechecked_and_revoked() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("revoke");
    authd.set("keep", grant_topic(1, "keeper", &topic));
    authd.set("revoked", grant_topic(1, "revoked", &topic));
    let nsqd = nsqd_with_auth(&authd, &[])?;

    let mut keep = nsqd.connect()?;
    auth_ok(&mut keep, "keep")?;
    let mut gone = nsqd.connect()?;
    auth_ok(&mut gone, "revoked")?;
    gone.pub_ok(&topic, b"m")?;

    authd.remove("revoked");
    std::thread::sleep(Duration::from_millis(1500));
    gone.publish(&topic, b"m")?;
    gone.expect_fatal("E_AUTH_FAILED AUTH failed")?;
    ensure!(
        authd.requests_for("revoked").len() == 2,
        "{:?}",
        authd.requests()
    );

    // Still granted after expiry: re-queried, then allowed.
    keep.pub_ok(&topic, b"m")?;
    ensure!(
        authd.requests_for("keep").len() == 2,
        "{:?}",
        authd.requests()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// A slow auth server must not stall the broker
// ---------------------------------------------------------------------------

/// An auth server that never answers: AUTH fails (`E_AUTH_FAILED`) after
/// `--http-client-request-timeout`, and meanwhile other connections on the
/// same core (`--shards=1`) are served: AUTH, PUB and HTTP answer while the
/// first AUTH is still pending.
#[test]
fn hanging_auth_server_does_not_block_other_clients() -> Result<()> {
    let authd = AuthServer::start();
    let topic = unique_name("hang");
    authd.set("slow", AuthReply::Hang);
    authd.set("fast", grant_topic(60, "fast", &topic));
    let nsqd = nsqd_with_auth(&authd, &["--shards=1", "--http-client-request-timeout=5s"])?;

    let mut slow = nsqd.connect()?;
    let sent = Instant::now();
    slow.auth(b"slow")?;
    authd
        .wait_requests(1, Duration::from_secs(10))
        .context("nsqd should query the auth server for the slow AUTH")?;

    let mut fast = nsqd.connect()?;
    auth_ok(&mut fast, "fast")?;
    fast.pub_ok(&topic, b"while another AUTH is pending")?;
    let (status, body) = nsqd.http_get("/ping")?;
    ensure!(status == 200 && body == "OK", "GET /ping: {status} {body}");
    // The slow AUTH is still unanswered: the core was not blocked by it.
    let early = slow.read_frame_within(Duration::from_millis(1))?;
    ensure!(
        early.is_none(),
        "the hanging AUTH was answered before the other client's PUB finished ({:?} after sending): {}",
        sent.elapsed(),
        early.as_ref().map(|f| ShowFrame(f).to_string()).unwrap_or_default()
    );

    // The request timeout ends the wait (generous bound).
    slow.expect_fatal("E_AUTH_FAILED AUTH failed")?;
    ensure!(
        sent.elapsed() < Duration::from_secs(30),
        "AUTH against a hanging auth server took {:?}",
        sent.elapsed()
    );
    // And the broker is fine afterwards.
    fast.pub_ok(&topic, b"after")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// HTTP publishing
// ---------------------------------------------------------------------------

/// nsqd v1.3's HTTP API does not check auth: `doPUB`/`doMPUB` in
/// `nsqd/http.go` never look at a secret, so `/pub` and `/mpub` work
/// without one even with `--auth-http-address` (secure the HTTP port
/// separately).
#[test]
fn http_publish_is_not_auth_checked() -> Result<()> {
    let authd = AuthServer::start();
    let nsqd = nsqd_with_auth(&authd, &[])?;
    let topic = unique_name("httppub");
    let (status, body) = nsqd.http_post(&format!("/pub?topic={topic}"), b"over http")?;
    ensure!(status == 200 && body == "OK", "/pub: {status} {body}");
    let (status, body) = nsqd.http_post(&format!("/mpub?topic={topic}"), b"a\nb")?;
    ensure!(status == 200 && body == "OK", "/mpub: {status} {body}");
    let r = http::request(
        nsqd.http_addr(),
        "POST",
        &format!("/mpub?topic={topic}&binary=true"),
        &mpub_body(&[b"c"]),
    )?;
    ensure!(r.status == 200, "/mpub binary: {} {}", r.status, r.text());
    let stats = nsqd.topic_stats(&topic)?.context("topic exists")?;
    ensure!(stats["message_count"] == json!(4), "topic stats: {stats}");
    ensure!(authd.requests().is_empty(), "{:?}", authd.requests());

    // The TCP protocol still requires AUTH.
    let mut c = nsqd.connect()?;
    c.send(&raw_command_with_body(&format!("PUB {topic}"), b"tcp"))?;
    c.expect_fatal("E_AUTH_FIRST AUTH required before PUB")?;
    Ok(())
}
