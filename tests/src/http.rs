//! A tiny HTTP/1.1 client over `std::net::TcpStream` (no heavy crates).
//! It understands `Content-Length`, `Transfer-Encoding: chunked` and
//! read-to-close bodies. Every read and write is bounded by a timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Default bound on a whole request/response exchange.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("status {} body is not JSON: {:?}", self.status, self.text()))
    }
}

/// `GET path` → (status, body text).
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let r = request(addr, "GET", path, b"")?;
    Ok((r.status, r.text()))
}

/// `POST path` with `body` → (status, body text).
pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Result<(u16, String)> {
    let r = request(addr, "POST", path, body)?;
    Ok((r.status, r.text()))
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<Response> {
    request_with_timeout(addr, method, path, &[], body, HTTP_TIMEOUT)
}

/// One request on a fresh connection with extra headers and a timeout.
pub fn request_with_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response> {
    let mut conn = HttpConn::connect_timeout(addr, timeout)?;
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Connection", "close"));
    conn.send(method, path, &all, body)?;
    conn.read_response(method == "HEAD")
}

/// A persistent (keep-alive) HTTP/1.1 connection.
pub struct HttpConn {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    timeout: Duration,
}

impl HttpConn {
    pub fn connect(addr: SocketAddr) -> Result<HttpConn> {
        Self::connect_timeout(addr, HTTP_TIMEOUT)
    }

    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> Result<HttpConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(5)))
            .with_context(|| format!("connecting to http://{addr}"))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            addr,
            buf: Vec::new(),
            timeout,
        })
    }

    /// Writes raw bytes (for malformed-request tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).context("writing HTTP request")
    }

    /// Writes one request. `Host` and `Content-Length` are added.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<()> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes)
    }

    /// One request/response exchange on this connection.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        self.send(method, path, &[], body)?;
        self.read_response(method == "HEAD")
    }

    /// Reads more bytes into the buffer; `Ok(false)` on EOF.
    fn fill(&mut self, deadline: Instant) -> Result<bool> {
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "HTTP response from {} not complete within {:?}",
                self.addr,
                self.timeout
            );
        }
        self.stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(e).context("reading HTTP response"),
        }
    }

    /// Reads everything up to EOF (bounded); for responses to malformed input.
    pub fn read_to_close(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        while self.fill(deadline)? {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads one response.
    pub fn read_response(&mut self, head_only: bool) -> Result<Response> {
        let deadline = Instant::now() + self.timeout;
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            if !self.fill(deadline)? {
                bail!(
                    "connection closed before a full HTTP header: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            bail!("not an HTTP response: {status_line:?}");
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
        let body = if no_body {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            self.read_chunked(deadline)?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .with_context(|| format!("bad Content-Length {len:?}"))?;
            while self.buf.len() < len {
                if !self.fill(deadline)? {
                    bail!(
                        "connection closed after {} of {len} body bytes",
                        self.buf.len()
                    );
                }
            }
            self.buf.drain(..len).collect()
        } else {
            while self.fill(deadline)? {}
            std::mem::take(&mut self.buf)
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                if !self.fill(deadline)? {
                    bail!("connection closed inside a chunked body");
                }
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_hex = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers (usually none), then the final CRLF.
                loop {
                    if let Some(p) = find(&self.buf, b"\r\n") {
                        let empty = p == 0;
                        self.buf.drain(..p + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else if !self.fill(deadline)? {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.fill(deadline)? {
                    bail!("connection closed inside a chunk");
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Go's server rules for the Host header, checked byte for byte on a daemon's
/// HTTP port: an HTTP/1.1 request without Host, with two, or with a
/// malformed one is a 400 (RFC 9112 §3.2); HTTP/1.0 without Host is served.
pub fn check_host_rules(addr: SocketAddr) -> Result<()> {
    const HEADERS: &str =
        "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
    let missing = "400 Bad Request: missing required Host header";
    let malformed = "400 Bad Request: malformed Host header";
    let plain = "400 Bad Request";
    let cases: [(&[u8], String); 4] = [
        (
            b"GET /ping HTTP/1.1\r\n\r\n",
            format!("HTTP/1.1 {missing}{HEADERS}{missing}"),
        ),
        (
            b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            format!("HTTP/1.1 {plain}{HEADERS}{plain}"),
        ),
        (
            b"GET /ping HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
            format!("HTTP/1.1 {plain}{HEADERS}{plain}"),
        ),
        (
            b"GET /ping HTTP/1.1\r\nHost: a b\r\n\r\n",
            format!("HTTP/1.1 {malformed}{HEADERS}{malformed}"),
        ),
    ];
    for (request, want) in cases {
        let mut conn = HttpConn::connect(addr)?;
        conn.send_raw(request)?;
        let got = String::from_utf8_lossy(&conn.read_to_close()?).into_owned();
        if got != want {
            bail!(
                "{:?}: got {got:?}, want {want:?}",
                String::from_utf8_lossy(request)
            );
        }
    }
    let mut conn = HttpConn::connect(addr)?;
    conn.send_raw(b"GET /ping HTTP/1.0\r\n\r\n")?;
    let got = String::from_utf8_lossy(&conn.read_to_close()?).into_owned();
    if !got.contains(" 200 OK\r\n") || !got.ends_with("\r\n\r\nOK") {
        bail!("HTTP/1.0 without Host: got {got:?}");
    }
    Ok(())
}
