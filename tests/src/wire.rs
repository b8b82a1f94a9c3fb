//! Helpers shared by the wire-level conformance test binaries: the TCP
//! protocol V2 tests (`protocol_v2*.rs`) and the HTTP API tests
//! (`http_api*.rs`). Each helper used to be defined locally in one of those
//! files; it lives here since the files were split by topic.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Result};
use serde_json::{json, Value};

use crate::http::{self, Response};
use crate::TestNsqd;

// ---------------------------------------------------------------------------
// TCP protocol V2
// ---------------------------------------------------------------------------

/// Starts nsqd with `--shards=N` plus `extra`.
pub fn nsqd(shards: u32, extra: &[&str]) -> Result<TestNsqd> {
    let s = format!("--shards={shards}");
    let mut args = vec![s.as_str()];
    args.extend_from_slice(extra);
    TestNsqd::start(&args)
}

/// Runs each named `fn(shards) -> Result<()>` as `name::shards_1` and `name::shards_2`.
///
/// Exported at the crate root (`nsq_tests::both_shards!`); the calling test
/// binary needs `anyhow`.
#[macro_export]
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

/// An IDENTIFY body that turns on feature negotiation.
pub fn negotiate() -> Value {
    json!({"client_id": "test", "feature_negotiation": true})
}

// ---------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------

/// One HTTP request to `nsqd`'s HTTP port.
pub fn call(nsqd: &TestNsqd, method: &str, path: &str, body: &[u8]) -> Result<Response> {
    http::request(nsqd.http_addr(), method, path, body)
}

/// Asserts status and exact body.
pub fn expect(resp: &Response, status: u16, body: &str) -> Result<()> {
    ensure!(
        resp.status == status && resp.body == body.as_bytes(),
        "expected {status} {body:?}, got {} {:?}",
        resp.status,
        resp.text()
    );
    Ok(())
}

/// Asserts an error response `{"message":"<msg>"}` with `status`.
pub fn expect_err(resp: &Response, status: u16, msg: &str) -> Result<()> {
    expect(resp, status, &format!("{{\"message\":\"{msg}\"}}"))?;
    ensure!(
        resp.header("content-type") == Some("application/json; charset=utf-8"),
        "error responses are JSON: {:?}",
        resp.headers
    );
    Ok(())
}

/// Asserts a 200 with an empty body and the V1 header (action endpoints).
pub fn expect_empty_ok(resp: &Response) -> Result<()> {
    expect(resp, 200, "")?;
    ensure!(
        resp.header("x-nsq-content-type") == Some("nsq; version=1.0"),
        "X-NSQ-Content-Type: {:?}",
        resp.headers
    );
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The keys of a JSON object (empty for anything else).
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Asserts that the JSON object `v` has every key in `required`.
pub fn ensure_keys(what: &str, v: &Value, required: &[&str]) -> Result<()> {
    let have = keys(v);
    let missing: Vec<_> = required.iter().filter(|k| !have.contains(**k)).collect();
    ensure!(missing.is_empty(), "{what} lacks keys {missing:?}: {v}");
    Ok(())
}
