//! A small HTTP/1.1 client for the control plane (nsqd asking nsqlookupd for
//! a topic's channels, nsqd asking an auth server about a client's secret):
//! one request per connection, `Connection: close`.
//!
//! Runs on a shard without blocking it: a host name is resolved on the
//! blocking pool ([`crate::net::resolve`], bounded by the connect timeout),
//! connect and every read and write are bounded, and the response is decoded
//! by [`decode_response`] (pure, tested without sockets).

use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::chunked::decode_chunked;
use super::MAX_HEADER_BYTES;

/// Largest response body accepted.
pub const MAX_RESPONSE_BODY: usize = 16 << 20;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Bytes,
}

/// `GET target` from `addr` (`host:port`, a name or an IP literal) with extra
/// `headers`. `connect_timeout` bounds the connect, `timeout` the whole
/// exchange after it (Go's http client: dial timeout, request timeout).
pub async fn get(
    addr: &str,
    target: &str,
    headers: &[(&str, &str)],
    connect_timeout: Duration,
    timeout: Duration,
) -> io::Result<Response> {
    request("GET", addr, target, headers, b"", connect_timeout, timeout).await
}

/// `method target` to `addr` (`host:port`, a name or an IP literal) with
/// extra `headers` and `body` (sent with a `Content-Length` when non-empty).
/// `Host` is `addr`. `connect_timeout` bounds name resolution and the
/// connect, `timeout` the whole exchange after it (writing the request and
/// reading the complete response).
pub async fn request(
    method: &str,
    addr: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    connect_timeout: Duration,
    timeout: Duration,
) -> io::Result<Response> {
    let mut stream = connect(addr, connect_timeout).await?;
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{method} {addr}{target}: no complete response within {timeout:?}"),
        )
    };
    let head = encode_head(method, addr, target, headers, body.len());
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    stream.write_all(head.as_bytes()).await.map_err(|e| {
        if is_timeout(&e) {
            timed_out()
        } else {
            e
        }
    })?;
    if !body.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_write_timeout(Some(left))?;
        stream
            .write_all(body)
            .await
            .map_err(|e| if is_timeout(&e) { timed_out() } else { e })?;
    }

    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(left))?;
        let len = buf.len();
        buf.resize(len + READ_CHUNK, 0);
        let n = match stream.read(&mut buf[len..]).await {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return Err(timed_out()),
            Err(e) => return Err(e),
        };
        buf.truncate(len + n);
        let eof = n == 0;
        if let Some(response) = decode_response(&buf, eof)? {
            return Ok(response);
        }
        if eof {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{method} {addr}{target}: connection closed mid-response"),
            ));
        }
    }
}

/// Resolve `addr` (on the blocking pool for a name) and connect, both
/// within `connect_timeout`.
async fn connect(addr: &str, connect_timeout: Duration) -> io::Result<TcpStream> {
    let dial_err = |e: &dyn std::fmt::Display| io::Error::other(format!("dial {addr}: {e}"));
    let resolve = crate::net::resolve(addr);
    let give_up = async {
        glommio::timer::sleep(connect_timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("resolving {addr}: timed out after {connect_timeout:?}"),
        ))
    };
    let sock = futures_lite::future::or(resolve, give_up)
        .await
        .map_err(|e| dial_err(&e))?;
    TcpStream::connect_timeout(sock, connect_timeout)
        .await
        .map_err(|e| dial_err(&e))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The request line and header section.
fn encode_head(
    method: &str,
    addr: &str,
    target: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if body_len > 0 {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad HTTP response: {why}"),
    )
}

/// Decode a whole response from `data`; `Ok(None)` if more bytes are
/// needed. `eof`: the server closed, so a body without length ends here.
pub fn decode_response(data: &[u8], eof: bool) -> io::Result<Option<Response>> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut slots);
    let head_len = match parsed.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if data.len() > MAX_HEADER_BYTES => {
            return Err(invalid("header section too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    let status = parsed.code.ok_or_else(|| invalid("no status code"))?;
    let mut length = None;
    let mut chunked = false;
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| invalid("Content-Length"))?;
            let n: usize = text.trim().parse().map_err(|_| invalid("Content-Length"))?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        }
    }
    let rest = &data[head_len..];
    let body = if chunked {
        match decode_chunked(rest, MAX_RESPONSE_BODY) {
            Ok(Some((body, _))) => body,
            Ok(None) => return Ok(None),
            Err(_) => return Err(invalid("chunked body")),
        }
    } else if let Some(n) = length {
        if n > MAX_RESPONSE_BODY {
            return Err(invalid("body too large"));
        }
        if rest.len() < n {
            return Ok(None);
        }
        Bytes::copy_from_slice(&rest[..n])
    } else if eof {
        Bytes::copy_from_slice(rest)
    } else if rest.len() > MAX_RESPONSE_BODY {
        return Err(invalid("body too large"));
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"channels\":[]}";
        for cut in 0..raw.len() {
            assert_eq!(decode_response(&raw[..cut], false).unwrap(), None);
        }
        let r = decode_response(raw, false).unwrap().unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"{\"channels\":[]}"[..]));
    }

    #[test]
    fn chunked_and_close_delimited_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let r = decode_response(raw, false).unwrap().unwrap();
        assert_eq!(&r.body[..], b"abc");
        let raw = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(decode_response(raw, false).unwrap(), None);
        let r = decode_response(raw, true).unwrap().unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"nope"[..]));
    }

    #[test]
    fn request_head() {
        let head = encode_head("GET", "h:1", "/ping", &[("Accept", "x")], 0);
        assert_eq!(
            head,
            "GET /ping HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nAccept: x\r\n\r\n"
        );
        let head = encode_head("POST", "h:1", "/auth", &[], 12);
        assert_eq!(
            head,
            "POST /auth HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nContent-Length: 12\r\n\r\n"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_response(b"  V2 not http\r\n\r\n", false).is_err());
        assert!(decode_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
        let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", usize::MAX);
        assert!(decode_response(big.as_bytes(), false).is_err());
    }
}
