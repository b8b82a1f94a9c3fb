//! nsqlookupd's `/lookup`: a minimal blocking HTTP/1.1 GET (loadgen has no
//! HTTP client otherwise, and one small request a second needs none) and
//! the parsing of both response shapes nsqlookupd has used.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// Connect, read and write timeout of one request: a dead or blackholed
/// lookupd must not hold up discovery for long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// Whole-request limit (a lookupd trickling bytes is cut off here).
const HTTP_DEADLINE: Duration = Duration::from_secs(5);

/// Largest response accepted: far above any real `/lookup` answer.
const MAX_RESPONSE: usize = 4 << 20;

/// One nsqd a lookupd lists for a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Producer {
    /// `broadcast_address`: the name or IP consumers connect to.
    pub host: String,
    /// `tcp_port`.
    pub tcp_port: u16,
}

impl Producer {
    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.tcp_port)
        } else {
            format!("{}:{}", self.host, self.tcp_port)
        }
    }
}

/// `HOST:PORT` from `--lookupd-http-address`, accepting an `http://`
/// prefix and a trailing slash as go-nsq does.
pub fn normalize_address(given: &str) -> Result<String> {
    let addr = given.trim();
    let addr = addr.strip_prefix("http://").unwrap_or(addr);
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("https://") {
        bail!("{given}: only plain HTTP lookupd addresses are supported");
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(addr.to_string())
        }
        _ => bail!("{given}: expected HOST:PORT"),
    }
}

/// Asks `lookupd` (`HOST:PORT`) which nsqd carry `topic`. An unknown topic
/// is an empty list, not an error: producers may not have published yet.
pub fn lookup(lookupd: &str, topic: &str) -> Result<Vec<Producer>> {
    let path = format!("/lookup?topic={}", percent_encode(topic));
    let (status, body) =
        http_get(lookupd, &path).with_context(|| format!("GET http://{lookupd}{path}"))?;
    parse_lookup(status, &body).with_context(|| format!("GET http://{lookupd}{path}"))
}

/// Parses a `/lookup` answer: v1.x's `{"channels":[..],"producers":[..]}`
/// or the older `{"status_code":200,"status_txt":"OK","data":{..}}`.
/// 404 (TOPIC_NOT_FOUND, either shape) means no producer yet.
pub fn parse_lookup(status: u16, body: &[u8]) -> Result<Vec<Producer>> {
    if status == 404 {
        return Ok(Vec::new());
    }
    let text = || {
        String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect::<String>()
    };
    if status != 200 {
        bail!("HTTP {status}: {}", text());
    }
    let doc: Value =
        serde_json::from_slice(body).with_context(|| format!("not JSON: {}", text()))?;
    let doc = match doc.get("status_code") {
        Some(code) => match code.as_u64() {
            Some(200) => doc.get("data").cloned().unwrap_or(Value::Null),
            Some(404) => return Ok(Vec::new()),
            _ => bail!("status_code {code}: {}", text()),
        },
        None => doc,
    };
    let producers = doc
        .get("producers")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("no \"producers\" list: {}", text()))?;
    let mut found = Vec::new();
    for p in producers {
        // Very old lookupds had only `address`; every later one has
        // `broadcast_address`, which is what consumers must use.
        let host = p
            .get("broadcast_address")
            .or_else(|| p.get("address"))
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow!("producer without broadcast_address: {p}"))?;
        let tcp_port = p
            .get("tcp_port")
            .and_then(Value::as_u64)
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port != 0)
            .ok_or_else(|| anyhow!("producer without a valid tcp_port: {p}"))?;
        found.push(Producer {
            host: host.to_string(),
            tcp_port,
        });
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// Percent-encodes everything but RFC 3986's unreserved characters
/// (topic names may carry `#ephemeral`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET `path` from `addr` (`HOST:PORT`) with bounded timeouts; returns the
/// status and the (de-chunked) body. `Connection: close`, so the body ends
/// at Content-Length, at the last chunk, or at EOF.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, Vec<u8>)> {
    let deadline = Instant::now() + HTTP_DEADLINE;
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&target, HTTP_TIMEOUT)
        .with_context(|| format!("connecting to {target}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    // The Accept header asks pre-1.0 lookupds for the v1 shape (go-nsq
    // sends it too); newer ones ignore it.
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.nsq; version=1.0\r\n\
         User-Agent: nsq-loadgen\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if Instant::now() > deadline {
            bail!("no complete response within {HTTP_DEADLINE:?}");
        }
        let n = stream.read(&mut buf).context("reading the response")?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_RESPONSE {
            bail!("response larger than {MAX_RESPONSE} bytes");
        }
        if let Some(done) = parse_response(&raw, false)? {
            return Ok(done);
        }
    }
    parse_response(&raw, true)?.ok_or_else(|| anyhow!("connection closed mid-response"))
}

/// Parses a response read so far: `None` if more bytes are needed. `eof`:
/// the peer closed, so a body without length ends here.
fn parse_response(raw: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .filter(|_| status_line.starts_with("HTTP/1."))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = &raw[head_end + 4..];
    if chunked {
        return match dechunk(body)? {
            Some(body) => Ok(Some((status, body))),
            None if eof => bail!("connection closed mid-chunk"),
            None => Ok(None),
        };
    }
    match length {
        Some(len) if body.len() >= len => Ok(Some((status, body[..len].to_vec()))),
        Some(_) if eof => bail!("connection closed before Content-Length bytes"),
        Some(_) => Ok(None),
        None if eof => Ok(Some((status, body.to_vec()))),
        None => Ok(None),
    }
}

/// Decodes a chunked body; `None` until the last (empty) chunk is in.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[..line_end]).context("bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        let rest = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        data = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn producer(host: &str, tcp_port: u16) -> Producer {
        Producer {
            host: host.into(),
            tcp_port,
        }
    }

    #[test]
    fn parses_the_v1_shape() {
        let body = br#"{"channels":["c"],"producers":[
            {"remote_address":"10.0.0.3:51234","hostname":"h3","broadcast_address":"10.200.1.10",
             "tcp_port":4150,"http_port":4151,"version":"1.3.0"},
            {"remote_address":"10.0.0.2:51233","hostname":"h2","broadcast_address":"10.200.1.6",
             "tcp_port":4250,"http_port":4251,"version":"1.3.0"}]}"#;
        assert_eq!(
            parse_lookup(200, body).unwrap(),
            vec![producer("10.200.1.10", 4150), producer("10.200.1.6", 4250)]
        );
    }

    #[test]
    fn parses_the_wrapped_shape() {
        let body = br#"{"status_code":200,"status_txt":"OK","data":{"channels":[],
            "producers":[{"address":"old","broadcast_address":"nsqd-a","tcp_port":4150,"http_port":4151},
                         {"address":"only-address","tcp_port":4160,"http_port":4161}]}}"#;
        assert_eq!(
            parse_lookup(200, body).unwrap(),
            vec![producer("nsqd-a", 4150), producer("only-address", 4160)]
        );
        let missing = br#"{"status_code":404,"status_txt":"TOPIC_NOT_FOUND","data":null}"#;
        assert!(parse_lookup(200, missing).unwrap().is_empty());
        let bad = br#"{"status_code":500,"status_txt":"INVALID_ARG_TOPIC","data":null}"#;
        assert!(parse_lookup(200, bad).is_err());
    }

    #[test]
    fn unknown_topic_is_empty_and_errors_are_errors() {
        assert!(parse_lookup(404, br#"{"message":"TOPIC_NOT_FOUND"}"#)
            .unwrap()
            .is_empty());
        assert!(parse_lookup(200, br#"{"channels":[],"producers":[]}"#)
            .unwrap()
            .is_empty());
        assert!(parse_lookup(500, b"oops").is_err());
        assert!(parse_lookup(200, b"not json").is_err());
        assert!(parse_lookup(200, br#"{"channels":[]}"#).is_err());
        assert!(parse_lookup(200, br#"{"producers":[{"broadcast_address":"x"}]}"#).is_err());
        assert!(parse_lookup(
            200,
            br#"{"producers":[{"broadcast_address":"x","tcp_port":70000}]}"#
        )
        .is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(producer("::1", 4150).address(), "[::1]:4150");
        assert_eq!(producer("h", 4150).address(), "h:4150");
        assert_eq!(
            normalize_address("http://127.0.0.1:4161/").unwrap(),
            "127.0.0.1:4161"
        );
        assert!(normalize_address("127.0.0.1").is_err());
        assert!(normalize_address("https://h:4161").is_err());
        assert_eq!(percent_encode("t#ephemeral"), "t%23ephemeral");
    }

    #[test]
    fn responses_with_length_chunks_or_eof() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(whole, false).unwrap(),
            Some((200, b"hello".to_vec()))
        );
        assert_eq!(
            parse_response(&whole[..whole.len() - 1], false).unwrap(),
            None
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false).unwrap(),
            Some((200, b"hello".to_vec()))
        );
        assert_eq!(parse_response(&chunked[..60], false).unwrap(), None);
        assert!(parse_response(&chunked[..60], true).is_err());
        let eof = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(eof, false).unwrap(), None);
        assert_eq!(
            parse_response(eof, true).unwrap(),
            Some((404, b"nope".to_vec()))
        );
        assert!(parse_response(b"garbage\r\n\r\n", true).is_err());
    }

    #[test]
    fn lookup_over_a_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            let body =
                r#"{"channels":[],"producers":[{"broadcast_address":"10.1.2.3","tcp_port":4150}]}"#;
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
            .unwrap();
            String::from_utf8(request).unwrap()
        });
        let found = lookup(&addr, "t#ephemeral").unwrap();
        assert_eq!(found, vec![producer("10.1.2.3", 4150)]);
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /lookup?topic=t%23ephemeral HTTP/1.1\r\n"),
            "{request}"
        );
    }
}
