//! A tiny auth server for `--auth-http-address` tests (what nsqd's
//! `nsqauth`-style servers do), on plain `std::net` with one thread per
//! connection.
//!
//! * It answers `GET <any path>?secret=…` and `POST <any path>` (the values
//!   in an `application/x-www-form-urlencoded` body, or nsqd master's JSON
//!   body `{"secret":["…"],…}`), one request per connection, then closes.
//! * The answer is looked up by secret in a table changed at run time with
//!   [`AuthServer::set`]; an unknown secret gets `403`.
//! * Every request is recorded ([`AuthServer::requests`]) with its method,
//!   path and decoded parameters, so tests can check what nsqd sent.
//!
//! Dropping the server stops accepting (best effort; a connection held by
//! [`AuthReply::Hang`] is closed within ~50 ms).

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

/// How long a connection may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`AuthReply::Hang`] keeps a connection without answering.
const HANG_FOR: Duration = Duration::from_secs(60);
/// Largest request accepted.
const MAX_REQUEST: usize = 1 << 20;

/// What the server answers for one secret.
#[derive(Clone, Debug)]
pub enum AuthReply {
    /// `200 OK` with this JSON body.
    Json(Value),
    /// This status with a short text body.
    Status(u16),
    /// Read the request, then answer nothing for 60 s (or until drop).
    Hang,
}

impl AuthReply {
    /// `200` with nsqd's answer format: `ttl` seconds, an identity, and
    /// `(topic, channels, permissions)` authorizations.
    pub fn grant(
        ttl: i64,
        identity: &str,
        authorizations: &[(&str, &[&str], &[&str])],
    ) -> AuthReply {
        let auths: Vec<Value> = authorizations
            .iter()
            .map(|(topic, channels, permissions)| {
                json!({"topic": topic, "channels": channels, "permissions": permissions})
            })
            .collect();
        AuthReply::Json(json!({
            "ttl": ttl,
            "identity": identity,
            "identity_url": format!("https://auth.example/{identity}"),
            "authorizations": auths,
        }))
    }
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Decoded parameters (query for GET, body for POST); for a repeated
    /// name, the first value.
    pub params: BTreeMap<String, String>,
}

impl AuthRequest {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Shared {
    replies: Mutex<HashMap<String, AuthReply>>,
    requests: Mutex<Vec<AuthRequest>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running server; stopped on drop.
pub struct AuthServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl AuthServer {
    /// Binds `127.0.0.1:0` and serves on a background thread. Panics if no
    /// loopback port can be bound (test harness only).
    pub fn start() -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the auth server");
        let addr = listener.local_addr().expect("auth server address");
        let shared = Arc::new(Shared::default());
        let for_thread = shared.clone();
        let accept = std::thread::Builder::new()
            .name("test-authd".into())
            .spawn(move || accept_loop(listener, for_thread))
            .expect("spawning the auth server thread");
        AuthServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:port`, for `--auth-http-address`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Answer `reply` for `secret` from now on.
    pub fn set(&self, secret: &str, reply: AuthReply) {
        lock(&self.shared.replies).insert(secret.to_string(), reply);
    }

    /// Forget `secret` (it gets 403 again).
    pub fn remove(&self, secret: &str) {
        lock(&self.shared.replies).remove(secret);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<AuthRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Requests received so far carrying `secret`.
    pub fn requests_for(&self, secret: &str) -> Vec<AuthRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.param("secret") == Some(secret))
            .collect()
    }

    /// Waits (at most `timeout`) until at least `n` requests arrived.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Result<Vec<AuthRequest>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                bail!(
                    "auth server saw {} requests within {timeout:?}, expected {n}: {got:?}",
                    got.len()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("test-authd-conn".into())
            .spawn(move || serve(conn, &shared));
    }
}

/// A request as read off the wire.
struct RawRequest {
    method: String,
    target: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn serve(mut conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
    let _ = conn.set_write_timeout(Some(REQUEST_READ_TIMEOUT));
    let Some(raw) = read_request(&mut conn) else {
        return;
    };
    let (path, query) = match raw.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (raw.target.clone(), String::new()),
    };
    let params = if raw.method == "POST" {
        let is_json = raw
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        if is_json {
            json_params(&raw.body)
        } else {
            form_decode(&String::from_utf8_lossy(&raw.body))
        }
    } else {
        form_decode(&query)
    };
    let secret = params.get("secret").cloned().unwrap_or_default();
    lock(&shared.requests).push(AuthRequest {
        method: raw.method,
        path,
        content_type: raw.content_type,
        params,
    });
    let reply = lock(&shared.replies).get(&secret).cloned();
    let (status, content_type, body) = match reply {
        Some(AuthReply::Json(v)) => (200, "application/json", v.to_string()),
        Some(AuthReply::Status(code)) => (code, "text/plain", format!("status {code}")),
        Some(AuthReply::Hang) => {
            let until = Instant::now() + HANG_FOR;
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        None => (403, "text/plain", "FORBIDDEN".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.flush();
}

/// Reads one request (head and `Content-Length` body); None if the peer
/// closes early, times out or sends garbage.
fn read_request(conn: &mut TcpStream) -> Option<RawRequest> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&data, b"\r\n\r\n") {
            break i;
        }
        if data.len() > MAX_REQUEST {
            return None;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let mut length = 0usize;
    let mut content_type = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        }
    }
    if length > MAX_REQUEST {
        return None;
    }
    let body_start = head_end + 4;
    while data.len() < body_start + length {
        match conn.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(RawRequest {
        method,
        target,
        content_type,
        body: data[body_start..body_start + length].to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `application/x-www-form-urlencoded` / query decoding (`+` is a space);
/// the first value of a repeated name wins, as Go's `Values.Get`.
pub fn form_decode(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k))
            .or_insert_with(|| percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// nsqd master's POST body: `{"name": ["value"], …}` (a plain string value
/// is accepted too).
fn json_params(body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
        for (k, v) in obj {
            let value = match v {
                Value::String(s) => s,
                Value::Array(items) => items
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                other => other.to_string(),
            };
            out.insert(k, value);
        }
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(server: &AuthServer, raw: &str) -> String {
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn decodes_forms() {
        let m = form_decode("a=1&b=x+y%2Bz&a=2&c&d=%zz&e=%41");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x y+z");
        assert_eq!(m["c"], "");
        assert_eq!(m["d"], "%zz");
        assert_eq!(m["e"], "A");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn answers_by_secret_and_records() {
        let s = AuthServer::start();
        s.set(
            "good",
            AuthReply::grant(10, "me", &[("t", &[".*"], &["publish"])]),
        );
        s.set("down", AuthReply::Status(500));
        let ok = roundtrip(
            &s,
            "GET /auth?common_name=&remote_ip=127.0.0.1&secret=good&tls=false HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\"identity\":\"me\""), "{ok}");
        let bad = roundtrip(&s, "GET /auth?secret=nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(bad.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{bad}");
        let body = "secret=down&tls=true";
        let down = roundtrip(
            &s,
            &format!(
                "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(down.starts_with("HTTP/1.1 500 "), "{down}");
        let body = r#"{"secret":["good"],"tls":["false"]}"#;
        let json_post = roundtrip(
            &s,
            &format!(
                "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(json_post.starts_with("HTTP/1.1 200 OK\r\n"), "{json_post}");

        let reqs = s.requests();
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(reqs[0].path, "/auth");
        assert_eq!(reqs[0].param("remote_ip"), Some("127.0.0.1"));
        assert_eq!(reqs[0].param("common_name"), Some(""));
        assert_eq!(reqs[2].method, "POST");
        assert_eq!(reqs[2].param("tls"), Some("true"));
        assert_eq!(reqs[3].path, "/x");
        assert_eq!(reqs[3].param("secret"), Some("good"));
        assert_eq!(s.requests_for("good").len(), 2);
    }

    #[test]
    fn hang_holds_the_connection() {
        let s = AuthServer::start();
        s.set("slow", AuthReply::Hang);
        let mut c = TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        c.write_all(b"GET /auth?secret=slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 16];
        let err = c.read(&mut buf).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
        s.wait_requests(1, Duration::from_secs(5)).unwrap();
        drop(s);
    }
}
