//! The HTTP API (nsqlookupd's `http.go`): one route table, then handlers.
//!
//! Lives on: the lookupd executor, one task per HTTP connection.
//! Conventions are nsqlookupd's "V1" ones: 200 with a JSON (or empty) body,
//! errors as `{"message":"TEXT"}`. Routing copies what httprouter does for
//! nsqlookupd: 404 `NOT_FOUND`, 405 `METHOD_NOT_ALLOWED` with an `Allow`
//! header, automatic `OPTIONS`, and redirects for a trailing slash or a
//! wrongly-cased path. `/debug/pprof/*` (Go's profiler) is not offered.
//! The handlers and their JSON shapes are in `api`.

mod api;

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use nsq_daemon::http::RequestReader;
use nsq_io::http::{self as codec, Request};
use serde::Serialize;

use crate::{log_info, Lookupd};

/// Largest request body read. nsqlookupd ignores bodies but Go reads them
/// whole; 1 MiB is far above anything a client sends here.
const MAX_BODY: usize = 1 << 20;

/// Bytes asked of the socket per read, and the initial capacity of a
/// connection's write buffer: requests and answers are small.
const IO_CHUNK: usize = 4096;

/// Every route, as httprouter is told in `newHTTPServer`.
const ROUTES: [(&str, &str); 13] = [
    ("GET", "/ping"),
    ("GET", "/metrics"),
    ("GET", "/info"),
    ("GET", "/debug"),
    ("GET", "/lookup"),
    ("GET", "/topics"),
    ("GET", "/channels"),
    ("GET", "/nodes"),
    ("POST", "/topic/create"),
    ("POST", "/topic/delete"),
    ("POST", "/channel/create"),
    ("POST", "/channel/delete"),
    ("POST", "/topic/tombstone"),
];

/// A handler's (or the router's) answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// 200, empty body (a V1 handler returning nil).
    Empty,
    /// 200, plain text (`/ping`).
    Text(&'static str),
    /// 200, JSON.
    Json(Vec<u8>),
    /// 200, Prometheus text (`/metrics`, ours).
    Metrics(String),
    /// An error status with `{"message": ...}`.
    Err(u16, &'static str),
    /// 405 (or 200 for OPTIONS) with an `Allow` header.
    Allow(u16, String),
    /// 301/307 to `location`.
    Redirect(u16, String),
}

pub(crate) fn json<T: Serialize>(value: &T) -> Reply {
    serde_json::to_vec(value).map_or(Reply::Err(500, "INTERNAL_ERROR"), Reply::Json)
}

/// Serve one HTTP connection (keep-alive) until the peer closes or errs.
pub async fn serve(lookupd: Rc<Lookupd>, mut stream: TcpStream) {
    let remote = stream
        .peer_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    let mut requests = RequestReader::new(IO_CHUNK);
    let mut out = BytesMut::with_capacity(IO_CHUNK);
    loop {
        let req = match requests.next(&mut stream, MAX_BODY).await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(err) => {
                out.clear();
                codec::encode_error(&mut out, &err);
                let _ = stream.write_all(&out).await;
                return;
            }
        };
        let start = Instant::now();
        let reply = route(&lookupd, &req);
        log_request(&req, &reply, &remote, start.elapsed());
        out.clear();
        write_reply(&mut out, &req, reply);
        if req.method == "HEAD" {
            // Every HEAD gets 405 here; like Go, send its headers only, or a
            // keep-alive client would misread the body.
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                out.truncate(end + 4);
            }
        }
        if stream.write_all(&out).await.is_err() || !req.keep_alive {
            return;
        }
    }
}

/// nsqlookupd logs every request its handlers (or 404/405) answer.
fn log_request(req: &Request, reply: &Reply, remote: &str, elapsed: Duration) {
    let status = match reply {
        Reply::Empty | Reply::Text(_) | Reply::Json(_) | Reply::Metrics(_) => 200,
        Reply::Err(status, _) => *status,
        Reply::Allow(405, _) => 405,
        Reply::Allow(..) | Reply::Redirect(..) => return,
    };
    let query = if req.raw_query.is_empty() { "" } else { "?" };
    log_info!(
        "{status} {} {}{query}{} ({remote}) {elapsed:?}",
        req.method,
        req.path,
        req.raw_query
    );
}

fn write_reply(out: &mut BytesMut, req: &Request, reply: Reply) {
    const JSON: Option<&str> = Some("application/json; charset=utf-8");
    const TEXT: Option<&str> = Some("text/plain; charset=utf-8");
    let keep_alive = req.keep_alive;
    match reply {
        Reply::Empty => codec::encode_response(out, 200, None, b"", keep_alive),
        Reply::Text(text) => codec::encode_response(out, 200, TEXT, text.as_bytes(), keep_alive),
        Reply::Json(body) => codec::encode_response(out, 200, JSON, &body, keep_alive),
        Reply::Metrics(text) => codec::encode_response(
            out,
            200,
            Some("text/plain; version=0.0.4; charset=utf-8"),
            text.as_bytes(),
            keep_alive,
        ),
        Reply::Err(status, message) => {
            let body = serde_json::json!({ "message": message }).to_string();
            codec::encode_response(out, status, JSON, body.as_bytes(), keep_alive);
        }
        Reply::Allow(status, allow) => {
            let body = if status == 405 {
                serde_json::json!({ "message": "METHOD_NOT_ALLOWED" }).to_string()
            } else {
                String::new()
            };
            let ctype = if body.is_empty() { None } else { JSON };
            let start = out.len();
            codec::encode_response(out, status, ctype, body.as_bytes(), keep_alive);
            insert_header(out, start, "Allow", &allow);
        }
        Reply::Redirect(status, location) => {
            // Go's http.Redirect writes a small HTML body for GET only.
            let (ctype, body) = if req.method == "GET" {
                let text = format!(
                    "<a href=\"{}\">{}</a>.\n\n",
                    html_escape(&location),
                    codec::reason_phrase(status)
                );
                (Some("text/html; charset=utf-8"), text)
            } else {
                (None, String::new())
            };
            let start = out.len();
            codec::encode_response(out, status, ctype, body.as_bytes(), keep_alive);
            insert_header(out, start, "Location", &location);
        }
    }
}

/// Add a header right after the status line of the response at `start`
/// (the codec writes only the headers every response has).
fn insert_header(out: &mut BytesMut, start: usize, name: &str, value: &str) {
    let Some(eol) = out[start..].windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let rest = out.split_off(start + eol + 2);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&rest);
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// httprouter's decision for nsqlookupd's route table.
fn route(lookupd: &Lookupd, req: &Request) -> Reply {
    let (method, path) = (req.method.as_str(), req.path.as_str());
    if ROUTES.contains(&(method, path)) {
        return api::handle(lookupd, req);
    }
    let has_routes = ROUTES.iter().any(|(m, _)| *m == method);
    if has_routes && method != "CONNECT" && path != "/" {
        let status = if method == "GET" { 301 } else { 307 };
        let fixed = path
            .strip_suffix('/')
            .and_then(|bare| ROUTES.iter().find(|r| **r == (method, bare)))
            .or_else(|| fixed_path(method, path));
        if let Some((_, to)) = fixed {
            let mut location = to.to_string();
            if !req.raw_query.is_empty() {
                location.push('?');
                location.push_str(&req.raw_query);
            }
            return Reply::Redirect(status, location);
        }
    }
    let mut allowed: Vec<&str> = Vec::new();
    for (m, p) in ROUTES {
        let fits = path == "*" || (p == path && m != method);
        if fits && !allowed.contains(&m) {
            allowed.push(m);
        }
    }
    if !allowed.is_empty() {
        let allow = format!("{}, OPTIONS", allowed.join(", "));
        return Reply::Allow(if method == "OPTIONS" { 200 } else { 405 }, allow);
    }
    Reply::Err(404, "NOT_FOUND")
}

/// httprouter's `RedirectFixedPath`: the cleaned path matched
/// case-insensitively (and without a trailing slash) against the routes of
/// this method.
fn fixed_path(method: &str, path: &str) -> Option<&'static (&'static str, &'static str)> {
    let clean = clean_path(path);
    let bare = match clean.strip_suffix('/') {
        Some(bare) if !bare.is_empty() => bare,
        _ => clean.as_str(),
    };
    ROUTES.iter().find(|(m, p)| {
        *m == method && (p.eq_ignore_ascii_case(&clean) || p.eq_ignore_ascii_case(bare))
    })
}

/// httprouter's `CleanPath`: `path.Clean` that keeps a trailing slash.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if path.ends_with('/') && clean.len() > 1 {
        clean.push('/');
    }
    clean
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn request(method: &str, target: &str) -> Request {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = BytesMut::from(raw.as_bytes());
        match codec::decode_request(&mut buf, 0) {
            Ok(Some(req)) => req,
            other => panic!("bad test request {target}: {other:?}"),
        }
    }

    pub(crate) fn routed(method: &str, target: &str) -> Reply {
        let lookupd = Lookupd::for_tests();
        route(&lookupd, &request(method, target))
    }

    #[test]
    fn router_matches_httprouter() {
        assert_eq!(routed("GET", "/ping"), Reply::Text("OK"));
        assert_eq!(routed("GET", "/nope"), Reply::Err(404, "NOT_FOUND"));
        assert_eq!(routed("POST", "/nope"), Reply::Err(404, "NOT_FOUND"));
        assert_eq!(
            routed("POST", "/lookup"),
            Reply::Allow(405, "GET, OPTIONS".into())
        );
        assert_eq!(
            routed("HEAD", "/ping"),
            Reply::Allow(405, "GET, OPTIONS".into())
        );
        assert_eq!(
            routed("GET", "/topic/create"),
            Reply::Allow(405, "POST, OPTIONS".into())
        );
        assert_eq!(
            routed("OPTIONS", "/nodes"),
            Reply::Allow(200, "GET, OPTIONS".into())
        );
        assert_eq!(routed("OPTIONS", "/nope"), Reply::Err(404, "NOT_FOUND"));
        assert_eq!(
            routed("GET", "/ping/"),
            Reply::Redirect(301, "/ping".into())
        );
        assert_eq!(
            routed("GET", "/LOOKUP?topic=a"),
            Reply::Redirect(301, "/lookup?topic=a".into())
        );
        assert_eq!(
            routed("POST", "/topic//create/"),
            Reply::Redirect(307, "/topic/create".into())
        );
        assert_eq!(
            routed("GET", "/topic/create/"),
            Reply::Err(404, "NOT_FOUND")
        );
    }

    #[test]
    fn extra_headers_follow_the_status_line() {
        let mut out = BytesMut::new();
        write_reply(
            &mut out,
            &request("POST", "/lookup"),
            Reply::Allow(405, "GET, OPTIONS".into()),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, OPTIONS\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with(r#"{"message":"METHOD_NOT_ALLOWED"}"#),
            "{text}"
        );
        out.clear();
        write_reply(
            &mut out,
            &request("GET", "/ping/"),
            Reply::Redirect(301, "/ping".into()),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 301 Moved Permanently\r\nLocation: /ping\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("<a href=\"/ping\">Moved Permanently</a>.\n\n"),
            "{text}"
        );
    }
}
