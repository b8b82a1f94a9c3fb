//! Request decoding: request line, headers, framing, path and query.

use bytes::{Buf, Bytes, BytesMut};

use super::chunked::{decode_chunked, ChunkError};
use super::{HttpError, MAX_HEADER_BYTES};

/// Header slots tried first; enough for every real client, on the stack.
const FAST_HEADERS: usize = 64;

/// One decoded HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method token as sent (`GET`, `POST`, ...); case is preserved, as in Go.
    pub method: String,
    /// Percent-decoded path without the query (`+` stays `+`, as in a Go
    /// `URL.Path`). `*` for `OPTIONS *`.
    pub path: String,
    /// The query string as sent, without the `?`.
    pub raw_query: String,
    /// Query pairs in order, decoded like Go's `url.ParseQuery` (`+` is a
    /// space, `%XX` escapes). Pairs that failed to decode are left out.
    pub query: Vec<(String, String)>,
    /// `url.ParseQuery` would have returned an error (a bad `%` escape or a
    /// `;` separator). nsqd answers such requests `400 INVALID_REQUEST`.
    pub query_error: bool,
    /// Header fields in order, names as sent. Use [`Request::header`] to look
    /// one up case-insensitively.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked if it was sent chunked.
    pub body: Bytes,
    /// Whether the connection stays open after the response (HTTP/1.1
    /// default on, HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
}

impl Request {
    /// First value of a query parameter, like Go's `url.Values.Get` (but
    /// `None` when absent, so "absent" and "empty" stay distinct).
    pub fn query_get(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether a query parameter is present at all (even with an empty value).
    pub fn query_has(&self, name: &str) -> bool {
        self.query.iter().any(|(key, _)| key == name)
    }

    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

/// How the body that follows the header section is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// The parsed header section, before any body byte is looked at.
#[derive(Debug)]
struct Head {
    /// Bytes of the request line and headers, including the blank line.
    len: usize,
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// Decodes one request from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (nothing is consumed), and
/// `Ok(Some(request))` after removing exactly that request from `buf`. A body
/// (declared or de-chunked) larger than `max_body` fails with
/// [`HttpError::BodyTooLarge`] as soon as that is known, before the body has
/// arrived. When this returns `Ok(None)`, call [`needs_continue`] to learn
/// whether the client is waiting for `100 Continue`.
pub fn decode_request(buf: &mut BytesMut, max_body: usize) -> Result<Option<Request>, HttpError> {
    let Some(head) = parse_head(buf)? else {
        return Ok(None);
    };
    let too_large = |head: &Head| HttpError::BodyTooLarge {
        method: head.method.clone(),
        path: split_target(&head.target)
            .map(|(path, _)| path)
            .unwrap_or_default(),
        limit: max_body,
    };
    let (body, consumed) = match head.framing {
        Framing::Length(len) => {
            if len > max_body {
                return Err(too_large(&head));
            }
            if buf.len() - head.len < len {
                return Ok(None);
            }
            (None, head.len + len)
        }
        Framing::Chunked => match decode_chunked(&buf[head.len..], max_body) {
            Ok(Some((body, used))) => (Some(body), head.len + used),
            Ok(None) => return Ok(None),
            Err(ChunkError::TooLarge) => return Err(too_large(&head)),
            Err(ChunkError::Malformed(why)) => return Err(HttpError::BadRequest(why)),
            Err(ChunkError::TrailerTooLarge) => return Err(HttpError::HeaderTooLarge),
        },
    };
    let (path, raw_query) = split_target(&head.target)?;
    let (query, query_error) = parse_query(&raw_query);

    let body = match body {
        Some(body) => {
            buf.advance(consumed);
            body
        }
        None => {
            buf.advance(head.len);
            buf.split_to(consumed - head.len).freeze()
        }
    };
    Ok(Some(Request {
        method: head.method,
        path,
        raw_query,
        query,
        query_error,
        headers: head.headers,
        body,
        keep_alive: head.keep_alive,
    }))
}

/// Whether the server should write [`CONTINUE_RESPONSE`](super::CONTINUE_RESPONSE) now.
///
/// True exactly when `buf` holds a complete, valid HTTP/1.1 header section
/// with `Expect: 100-continue`, a non-empty body is announced, and not one
/// body byte has arrived yet. Because every read adds at least one byte, a
/// server that calls this once after each read for which [`decode_request`]
/// returned `Ok(None)` sends `100 Continue` at most once per request, and
/// never to a client that already started sending the body. curl waits up to
/// a second for it before sending bodies above 1 KiB.
pub fn needs_continue(buf: &[u8]) -> bool {
    match parse_head(buf) {
        Ok(Some(head)) => {
            head.expect_continue && buf.len() == head.len && head.framing != Framing::Length(0)
        }
        _ => false,
    }
}

/// Parses the request line and headers; `Ok(None)` if they are incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut fast = [httparse::EMPTY_HEADER; FAST_HEADERS];
    match parse_head_with(buf, &mut fast) {
        Err(httparse::Error::TooManyHeaders) => {
            // Go has no header count limit, only the byte limit. A header line
            // is at least 4 bytes ("a:\r\n"), which bounds the slots needed.
            let slots = buf.len().min(MAX_HEADER_BYTES) / 4 + 1;
            let mut slow = vec![httparse::EMPTY_HEADER; slots];
            parse_head_with(buf, &mut slow).map_err(map_parse_error)?
        }
        other => other.map_err(map_parse_error)?,
    }
}

fn map_parse_error(err: httparse::Error) -> HttpError {
    match err {
        httparse::Error::TooManyHeaders => HttpError::HeaderTooLarge,
        httparse::Error::Version => HttpError::BadRequest("malformed HTTP version"),
        httparse::Error::Token => HttpError::BadRequest("malformed request line"),
        httparse::Error::NewLine => HttpError::BadRequest("malformed line ending"),
        _ => HttpError::BadRequest("malformed header"),
    }
}

/// One parse attempt with the given header slots. The outer `Result` carries
/// httparse errors so the caller can retry `TooManyHeaders`; the inner one
/// carries our own semantic errors.
fn parse_head_with<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<Result<Option<Head>, HttpError>, httparse::Error> {
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => {
            if buf.len() > MAX_HEADER_BYTES {
                return Ok(Err(HttpError::HeaderTooLarge));
            }
            return Ok(Ok(None));
        }
    };
    if len > MAX_HEADER_BYTES {
        return Ok(Err(HttpError::HeaderTooLarge));
    }
    // httparse fills these on Complete; missing values mean a parser bug,
    // which we refuse rather than panic on.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Ok(Err(HttpError::BadRequest("incomplete request line")));
    };
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    Ok(finish_head(len, method, target, minor, headers).map(Some))
}

/// Applies the HTTP/1.x rules Go's `readRequest` and `readTransfer` apply.
fn finish_head(
    len: usize,
    method: &str,
    target: &str,
    minor: u8,
    headers: Vec<(String, Vec<u8>)>,
) -> Result<Head, HttpError> {
    let mut content_length: Option<usize> = None;
    let mut transfer_encodings = 0usize;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect: Option<bool> = None;
    let mut hosts: Vec<&[u8]> = Vec::new();

    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("host") {
            hosts.push(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_content_length(value)?;
            match content_length {
                Some(previous) if previous != parsed => {
                    return Err(HttpError::BadRequest("conflicting Content-Length"));
                }
                _ => content_length = Some(parsed),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings += 1;
            chunked = trim_ows(value).eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                conn_close |= token.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            let is_continue = value
                .split(|&b| b == b',')
                .any(|token| trim_ows(token).eq_ignore_ascii_case(b"100-continue"));
            expect = Some(expect.unwrap_or(false) || is_continue);
        }
    }

    // Go: more than one Host is refused before the body framing is looked
    // at (a plain 400), whatever the version.
    if hosts.len() > 1 {
        return Err(HttpError::BadRequest("too many Host headers"));
    }

    // Go ignores Transfer-Encoding on HTTP/1.0 requests (golang/go#12785)
    // and lets it override Content-Length on HTTP/1.1.
    let framing = if minor >= 1 && transfer_encodings > 0 {
        if transfer_encodings > 1 || !chunked {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        Framing::Chunked
    } else {
        Framing::Length(content_length.unwrap_or(0))
    };

    // Go sends 100 Continue only for HTTP/1.1 requests with a body, ignores
    // `100-continue` otherwise, and answers any other expectation with 417.
    let expect_continue = match expect {
        Some(true) => minor >= 1 && framing != Framing::Length(0),
        Some(false) => return Err(HttpError::ExpectationFailed),
        None => false,
    };

    // Go's server, after the framing: HTTP/1.1 requires a Host (RFC 9112
    // §3.2; CONNECT aside), and one that is present must be well formed.
    match hosts.first() {
        None if minor >= 1 && method != "CONNECT" => {
            return Err(HttpError::BadHost("missing required Host header"));
        }
        Some(host) if !valid_host(host) => {
            return Err(HttpError::BadHost("malformed Host header"));
        }
        _ => {}
    }

    let keep_alive = if minor >= 1 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };

    Ok(Head {
        len,
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Go's `httpguts.ValidHostHeader`: only the bytes a host, a port, an IPv6
/// literal or a registered name's sub-delimiters use (an empty Host is valid).
fn valid_host(host: &[u8]) -> bool {
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b))
}

/// Go: `strconv.ParseUint(trimmed, 10, 63)`; no sign, no list, no spaces inside.
fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("bad Content-Length"));
    }
    digits
        .iter()
        .try_fold(0usize, |acc, &d| {
            acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .filter(|&len| len as u64 <= i64::MAX as u64)
        .ok_or(HttpError::BadRequest("bad Content-Length"))
}

pub(super) fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Splits a request target into the decoded path and the raw query, accepting
/// the forms Go's `url.ParseRequestURI` accepts: origin-form (`/p?q`),
/// absolute-form (`http://host/p?q`) and `*`.
fn split_target(target: &str) -> Result<(String, String), HttpError> {
    let path_and_query = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(scheme_end) = target.find("://") {
        let scheme = &target[..scheme_end];
        let valid_scheme = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(HttpError::BadRequest("invalid URI for request"));
        }
        let rest = &target[scheme_end + 3..];
        match rest.find(['/', '?']) {
            Some(at) => &rest[at..],
            None => "",
        }
    } else {
        return Err(HttpError::BadRequest("invalid URI for request"));
    };
    let (raw_path, raw_query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, query),
        None => (path_and_query, ""),
    };
    let path = percent_decode(raw_path.as_bytes(), false)
        .ok_or(HttpError::BadRequest("invalid URL escape in path"))?;
    Ok((path, raw_query.to_owned()))
}

/// Go's `url.ParseQuery`: `&`-separated pairs, a `;` makes the pair invalid,
/// empty pairs are skipped, a missing `=` means an empty value. Bad pairs are
/// dropped and reported through the flag.
fn parse_query(raw: &str) -> (Vec<(String, String)>, bool) {
    let mut pairs = Vec::new();
    let mut error = false;
    for pair in raw.split('&') {
        if pair.contains(';') {
            error = true;
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (
            percent_decode(key.as_bytes(), true),
            percent_decode(value.as_bytes(), true),
        ) {
            (Some(key), Some(value)) => pairs.push((key, value)),
            _ => error = true,
        }
    }
    (pairs, error)
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); `None` on a
/// malformed escape, as Go's `url.PathUnescape`/`QueryUnescape` error out.
/// Invalid UTF-8 is replaced rather than rejected: Go keeps the raw bytes and
/// the only consumer is routing, where such a path is a 404 either way.
fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<String> {
    if !input
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Some(String::from_utf8_lossy(input).into_owned());
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'%' => {
                let [hi, lo, ..] = tail else {
                    return None;
                };
                out.push(hex_value(*hi)? << 4 | hex_value(*lo)?);
                rest = &tail[2..];
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                rest = tail;
            }
            _ => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

pub(super) fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}
