//! A pure HTTP/1.1 server-side codec: request decoding and response encoding.
//!
//! No I/O, no async. The connection task owns a `BytesMut`, appends what it
//! reads, and calls [`decode_request`] until it returns `Ok(None)` ("need more
//! bytes"). Decoding consumes exactly one request from the front of the
//! buffer, so pipelined requests come out one per call. A `Content-Length` body
//! is handed out without copying (`split_to` + `freeze`); a chunked body is
//! reassembled into one buffer.
//!
//! The behaviour copies what Go's `net/http` server does for nsqd, because
//! clients and tests were written against it:
//! - anything that is not HTTP (for example the NSQ magic `"  V2"` sent to the
//!   HTTP port) is [`HttpError::BadRequest`] as soon as the first invalid byte
//!   arrives, and [`encode_error`] writes Go's exact `400 Bad Request` answer;
//! - a header section above [`MAX_HEADER_BYTES`] is 431, an unknown
//!   `Transfer-Encoding` is 501, an `Expect` other than `100-continue` is 417;
//! - the query string is parsed like Go's `url.ParseQuery`, whose error nsqd
//!   turns into `400 INVALID_REQUEST`, so a bad query is reported in
//!   [`Request::query_error`] instead of failing the whole request.
//!
//! After any [`HttpError`] the caller writes the answer and closes the
//! connection: the buffer is left as it was and cannot be resynchronised.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest header section accepted: Go's `DefaultMaxHeaderBytes` (1 MiB) plus
/// the 4096 bytes of slack `net/http` adds for its bufio reader.
pub const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;

/// Interim response sent when [`needs_continue`] says the client waits for it.
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Go's `maxLineLength` for a chunk-size line; longer lines are malformed.
const MAX_CHUNK_LINE: usize = 4096;

/// Header slots tried first; enough for every real client, on the stack.
const FAST_HEADERS: usize = 64;

/// Why a request could not be decoded. Each maps to the status Go's
/// `net/http` (or nsqd, for the body limit) answers with; see [`HttpError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Not a valid HTTP/1.x request (400). The text is for logs only.
    #[error("malformed HTTP request: {0}")]
    BadRequest(&'static str),
    /// The header section exceeds [`MAX_HEADER_BYTES`] (431).
    #[error("request header section larger than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge,
    /// The body exceeds the caller's limit (413). The request line is kept so
    /// the server can pick nsqd's message (`MSG_TOO_BIG` for `/pub`,
    /// `BODY_TOO_BIG` for `/mpub`).
    #[error("{method} {path}: request body larger than {limit} bytes")]
    BodyTooLarge {
        /// Request method, e.g. `POST`.
        method: String,
        /// Percent-decoded path (empty if the target itself was malformed).
        path: String,
        /// The `max_body` that was exceeded.
        limit: usize,
    },
    /// A `Transfer-Encoding` other than `chunked` (501).
    #[error("unsupported transfer encoding")]
    UnsupportedTransferEncoding,
    /// An `Expect` header other than `100-continue` (417).
    #[error("unsupported Expect header")]
    ExpectationFailed,
}

impl HttpError {
    /// The HTTP status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::HeaderTooLarge => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::ExpectationFailed => 417,
        }
    }
}

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

/// Whether the server should write [`CONTINUE_RESPONSE`] now.
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

/// Writes a complete response: status line with the standard reason phrase,
/// `Content-Type` (when given), `X-Nsq-Content-Type` (set by nsqd's V1 API
/// decorator), `Content-Length`, and the `Connection` header.
///
/// `Connection: keep-alive` is written whenever the connection stays open:
/// HTTP/1.1 clients ignore it and HTTP/1.0 keep-alive clients (ab -k) need it.
pub fn encode_response(
    buf: &mut BytesMut,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    keep_alive: bool,
) {
    buf.reserve(160 + body.len());
    write_status_line(buf, status);
    if let Some(content_type) = content_type {
        put_header(buf, "Content-Type", content_type.as_bytes());
    }
    put_header(buf, "X-Nsq-Content-Type", b"nsq; version=1.0");
    let mut digits = [0u8; 20];
    put_header(buf, "Content-Length", format_usize(body.len(), &mut digits));
    put_header(
        buf,
        "Connection",
        if keep_alive { b"keep-alive" } else { b"close" },
    );
    buf.put_slice(b"\r\n");
    buf.put_slice(body);
}

/// Writes the answer Go's `net/http` gives for a request it cannot decode,
/// byte for byte where Go writes raw bytes (400, 431, 501). The connection
/// must be closed afterwards.
///
/// nsqd answers a too-large body itself with JSON (`{"message":"MSG_TOO_BIG"}`
/// or `BODY_TOO_BIG`); the server should do that and use this only as a
/// fallback, which writes a plain 413.
pub fn encode_error(buf: &mut BytesMut, err: &HttpError) {
    const ERROR_HEADERS: &[u8] =
        b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
    let raw = |buf: &mut BytesMut, status_line: &[u8], body: &[u8]| {
        buf.put_slice(b"HTTP/1.1 ");
        buf.put_slice(status_line);
        buf.put_slice(ERROR_HEADERS);
        buf.put_slice(body);
    };
    match err {
        HttpError::BadRequest(_) => raw(buf, b"400 Bad Request", b"400 Bad Request"),
        HttpError::HeaderTooLarge => raw(
            buf,
            b"431 Request Header Fields Too Large",
            b"431 Request Header Fields Too Large",
        ),
        HttpError::UnsupportedTransferEncoding => raw(
            buf,
            b"501 Not Implemented",
            b"Unsupported transfer encoding",
        ),
        HttpError::ExpectationFailed => encode_response(buf, 417, None, b"", false),
        HttpError::BodyTooLarge { .. } => encode_response(
            buf,
            413,
            Some("text/plain; charset=utf-8"),
            b"413 Request Entity Too Large",
            false,
        ),
    }
}

/// Go's `http.StatusText`; empty for codes it does not know.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn write_status_line(buf: &mut BytesMut, status: u16) {
    let mut digits = [0u8; 20];
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(format_usize(usize::from(status), &mut digits));
    buf.put_u8(b' ');
    match reason_phrase(status) {
        // Go writes "status code N" for codes without a text.
        "" => {
            buf.put_slice(b"status code ");
            buf.put_slice(format_usize(usize::from(status), &mut digits));
        }
        reason => buf.put_slice(reason.as_bytes()),
    }
    buf.put_slice(b"\r\n");
}

fn put_header(buf: &mut BytesMut, name: &str, value: &[u8]) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_slice(b"\r\n");
}

/// Decimal digits of `value` without allocating.
fn format_usize(mut value: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &digits[start..]
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

    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-length") {
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

fn trim_ows(mut value: &[u8]) -> &[u8] {
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

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ChunkError {
    Malformed(&'static str),
    TooLarge,
    TrailerTooLarge,
}

/// Decodes a chunked body from `data` (which starts right after the header
/// section). Returns the body and the bytes used, or `Ok(None)` if incomplete.
///
/// The first pass only records chunk ranges, so an incomplete body costs a
/// scan of the chunk headers and no copying; the body is copied once, at the
/// end. Chunk lines follow Go's `internal.chunkedReader`: extensions after
/// `;` are ignored, trailing whitespace is trimmed, data must end in CRLF,
/// and trailer fields are skipped.
fn decode_chunked(data: &[u8], max_body: usize) -> Result<Option<(Bytes, usize)>, ChunkError> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut total = 0usize;
    let mut pos = 0usize;
    loop {
        let Some((line, next)) = take_line(data, pos, MAX_CHUNK_LINE)? else {
            return Ok(None);
        };
        let size = parse_chunk_size(line)?;
        pos = next;
        if size == 0 {
            break;
        }
        if size > max_body.saturating_sub(total) as u64 {
            return Err(ChunkError::TooLarge);
        }
        // size <= max_body, so it fits in usize.
        let size = size as usize;
        let Some(end) = pos.checked_add(size) else {
            return Err(ChunkError::TooLarge);
        };
        if data.len() < end + 2 {
            return Ok(None);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err(ChunkError::Malformed("malformed chunked encoding"));
        }
        ranges.push((pos, size));
        total += size;
        pos = end + 2;
    }
    // Trailer section: header lines until an empty line.
    let trailer_start = pos;
    loop {
        let limit = MAX_HEADER_BYTES.saturating_sub(pos - trailer_start);
        let line = match take_line(data, pos, limit) {
            Ok(line) => line,
            Err(_) => return Err(ChunkError::TrailerTooLarge),
        };
        let Some((line, next)) = line else {
            return Ok(None);
        };
        pos = next;
        if line.is_empty() {
            break;
        }
    }
    let mut body = BytesMut::with_capacity(total);
    for (start, len) in ranges {
        body.put_slice(&data[start..start + len]);
    }
    Ok(Some((body.freeze(), pos)))
}

/// The line starting at `pos` without its `\n` or `\r\n`, and the position
/// after it; `Ok(None)` if the line has not ended yet.
fn take_line(data: &[u8], pos: usize, limit: usize) -> Result<Option<(&[u8], usize)>, ChunkError> {
    let rest = data.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(at) if at < limit => {
            let line = &rest[..at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(Some((line, pos + at + 1)))
        }
        Some(_) => Err(ChunkError::Malformed("chunk line too long")),
        None if rest.len() >= limit => Err(ChunkError::Malformed("chunk line too long")),
        None => Ok(None),
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let line = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = trim_ows(line);
    // Go's parseHexUint: 1 to 16 hex digits.
    if digits.is_empty() || digits.len() > 16 {
        return Err(ChunkError::Malformed("bad chunk size"));
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        hex_value(d)
            .map(|v| acc << 4 | u64::from(v))
            .ok_or(ChunkError::Malformed("bad chunk size"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(bytes: &[u8]) -> BytesMut {
        BytesMut::from(bytes)
    }

    fn decode_all(input: &[u8], max_body: usize) -> Result<Vec<Request>, HttpError> {
        let mut b = buf(input);
        let mut out = Vec::new();
        while let Some(req) = decode_request(&mut b, max_body)? {
            out.push(req);
        }
        Ok(out)
    }

    #[test]
    fn simple_get() {
        let mut b = buf(b"GET /stats?format=json HTTP/1.1\r\nHost: x\r\n\r\n");
        let req = decode_request(&mut b, 1024).unwrap().unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/stats");
        assert_eq!(req.raw_query, "format=json");
        assert_eq!(req.query_get("format"), Some("json"));
        assert!(req.keep_alive);
        assert!(req.body.is_empty());
        assert_eq!(req.header("HOST"), Some(&b"x"[..]));
        assert!(b.is_empty());
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let input = b"POST /pub?topic=a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /ping HTTP/1.1\r\n\r\nPOST /pub?topic=b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let reqs = decode_all(input, 1024).unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(&reqs[0].body[..], b"hello");
        assert_eq!(reqs[1].path, "/ping");
        assert_eq!(reqs[2].query_get("topic"), Some("b"));
        assert_eq!(&reqs[2].body[..], b"abc");
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let input: &[u8] = b"POST /mpub?topic=t&binary=false HTTP/1.1\r\nContent-Length: 7\r\n\r\na\nb\nc\n\
POST /pub?topic=t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
        let whole = decode_all(input, 1024).unwrap();
        assert_eq!(whole.len(), 2);
        let mut b = BytesMut::new();
        let mut got = Vec::new();
        for &byte in input {
            b.put_u8(byte);
            while let Some(req) = decode_request(&mut b, 1024).unwrap() {
                got.push(req);
            }
        }
        assert_eq!(got, whole);
        assert!(b.is_empty());
    }

    #[test]
    fn every_split_point_gives_the_same_request() {
        let input: &[u8] =
            b"PUT /config/log_level HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfatal";
        let whole = decode_all(input, 64).unwrap();
        for split in 0..input.len() {
            let mut b = buf(&input[..split]);
            assert_eq!(decode_request(&mut b, 64).unwrap(), None, "split {split}");
            assert_eq!(b.len(), split, "nothing consumed on Ok(None)");
            b.put_slice(&input[split..]);
            let req = decode_request(&mut b, 64).unwrap().unwrap();
            assert_eq!(req, whole[0]);
            assert!(!req.keep_alive);
        }
    }

    #[test]
    fn chunked_body_is_reassembled() {
        let mut b = buf(b"POST /pub?topic=t HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nContent-Length: 99\r\n\r\n4\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nNEXT");
        let req = decode_request(&mut b, 1024).unwrap().unwrap();
        assert_eq!(&req.body[..], b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&b[..], b"NEXT");
    }

    #[test]
    fn chunked_errors() {
        let bad_size = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(
            decode_request(&mut buf(bad_size), 1024),
            Err(HttpError::BadRequest(_))
        ));
        let bad_crlf = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY";
        assert!(matches!(
            decode_request(&mut buf(bad_crlf), 1024),
            Err(HttpError::BadRequest(_))
        ));
        let too_big =
            b"POST /mpub HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n";
        assert!(matches!(
            decode_request(&mut buf(too_big), 10),
            Err(HttpError::BodyTooLarge { ref path, limit: 10, .. }) if path == "/mpub"
        ));
        let huge = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        assert!(matches!(
            decode_request(&mut buf(huge), usize::MAX),
            Err(HttpError::BodyTooLarge { .. })
        ));
        let long_line = [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;"[..],
            &[b'x'; MAX_CHUNK_LINE],
        ]
        .concat();
        assert!(matches!(
            decode_request(&mut buf(&long_line), 1024),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn transfer_encoding_rules() {
        let gzip = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(
            decode_request(&mut buf(gzip), 1024),
            Err(HttpError::UnsupportedTransferEncoding)
        );
        // HTTP/1.0 ignores Transfer-Encoding and uses Content-Length.
        let old =
            b"POST /pub HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nhi";
        let req = decode_request(&mut buf(old), 1024).unwrap().unwrap();
        assert_eq!(&req.body[..], b"hi");
    }

    #[test]
    fn content_length_rules() {
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                matches!(
                    decode_request(&mut buf(bad), 1024),
                    Err(HttpError::BadRequest(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let same_twice = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
        assert!(decode_request(&mut buf(same_twice), 1024)
            .unwrap()
            .is_some());
        // The limit is enforced from the header, before the body arrives.
        let big = b"POST /pub?topic=t HTTP/1.1\r\nContent-Length: 2000\r\n\r\n";
        assert_eq!(
            decode_request(&mut buf(big), 1024),
            Err(HttpError::BodyTooLarge {
                method: "POST".into(),
                path: "/pub".into(),
                limit: 1024
            })
        );
    }

    #[test]
    fn expect_continue() {
        let head =
            b"POST /mpub?topic=t HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
        assert!(!needs_continue(&head[..head.len() - 1]));
        let mut b = buf(head);
        assert_eq!(decode_request(&mut b, 1024).unwrap(), None);
        assert!(needs_continue(&b));
        b.put_u8(b'a');
        assert!(!needs_continue(&b), "body already started");
        b.put_slice(b"bc");
        let req = decode_request(&mut b, 1024).unwrap().unwrap();
        assert_eq!(&req.body[..], b"abc");

        let chunked =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n";
        assert!(needs_continue(chunked));
        let empty = b"POST / HTTP/1.1\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n";
        assert!(!needs_continue(empty));
        let http10 = b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
        assert!(!needs_continue(http10));
        let other = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: something\r\n\r\n";
        assert!(!needs_continue(other));
        assert_eq!(
            decode_request(&mut buf(other), 1024),
            Err(HttpError::ExpectationFailed)
        );
    }

    #[test]
    fn keep_alive_rules() {
        let cases: [(&[u8], bool); 5] = [
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n",
                false,
            ),
        ];
        for (input, keep_alive) in cases {
            let req = decode_request(&mut buf(input), 0).unwrap().unwrap();
            assert_eq!(
                req.keep_alive,
                keep_alive,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn query_and_path_decoding() {
        let input = b"GET /a%2Fb+c?topic=a%2Fb&msg=hello+world&flag&empty=&x=1&x=2&&t%41g=%41 HTTP/1.1\r\n\r\n";
        let req = decode_request(&mut buf(input), 0).unwrap().unwrap();
        assert_eq!(req.path, "/a/b+c");
        assert_eq!(req.query_get("topic"), Some("a/b"));
        assert_eq!(req.query_get("msg"), Some("hello world"));
        assert_eq!(req.query_get("flag"), Some(""));
        assert!(req.query_has("empty"));
        assert!(!req.query_has("missing"));
        assert_eq!(req.query_get("x"), Some("1"));
        assert_eq!(req.query_get("tAg"), Some("A"));
        assert!(!req.query_error);

        let bad = b"GET /stats?topic=%zz&format=json HTTP/1.1\r\n\r\n";
        let req = decode_request(&mut buf(bad), 0).unwrap().unwrap();
        assert!(req.query_error);
        assert_eq!(req.query_get("format"), Some("json"));
        assert!(!req.query_has("topic"));

        let semi = b"GET /stats?a=1;b=2&c=3 HTTP/1.1\r\n\r\n";
        let req = decode_request(&mut buf(semi), 0).unwrap().unwrap();
        assert!(req.query_error);
        assert_eq!(req.query, vec![("c".to_owned(), "3".to_owned())]);

        let bad_path = b"GET /a%zz HTTP/1.1\r\n\r\n";
        assert!(matches!(
            decode_request(&mut buf(bad_path), 0),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn request_target_forms() {
        let absolute = b"GET http://127.0.0.1:4151/ping?x=1 HTTP/1.1\r\n\r\n";
        let req = decode_request(&mut buf(absolute), 0).unwrap().unwrap();
        assert_eq!(req.path, "/ping");
        assert_eq!(req.query_get("x"), Some("1"));
        let star = b"OPTIONS * HTTP/1.1\r\n\r\n";
        assert_eq!(
            decode_request(&mut buf(star), 0).unwrap().unwrap().path,
            "*"
        );
        let relative = b"GET ping HTTP/1.1\r\n\r\n";
        assert!(matches!(
            decode_request(&mut buf(relative), 0),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn nsq_magic_is_rejected_at_once() {
        for input in [
            &b"  V2"[..],
            b" ",
            b"  V2IDENTIFY\n",
            b"/pub HTTP/1.1\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert!(
                matches!(
                    decode_request(&mut buf(input), 0),
                    Err(HttpError::BadRequest(_))
                ),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let mut out = BytesMut::new();
        encode_error(&mut out, &HttpError::BadRequest("x"));
        assert_eq!(
            &out[..],
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
        );
    }

    #[test]
    fn header_section_limit() {
        let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
        input.resize(MAX_HEADER_BYTES + 1, b'a');
        assert_eq!(
            decode_request(&mut buf(&input), 0),
            Err(HttpError::HeaderTooLarge)
        );
        input.truncate(MAX_HEADER_BYTES - 10);
        assert_eq!(decode_request(&mut buf(&input), 0), Ok(None));
        let mut out = BytesMut::new();
        encode_error(&mut out, &HttpError::HeaderTooLarge);
        assert!(out.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }

    #[test]
    fn many_headers_are_accepted() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..500 {
            input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let req = decode_request(&mut buf(&input), 0).unwrap().unwrap();
        assert_eq!(req.headers.len(), 500);
    }

    #[test]
    fn body_is_zero_copy_view_of_the_buffer() {
        let mut b = buf(b"POST /pub HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
        let start = b.as_ptr() as usize;
        let req = decode_request(&mut b, 16).unwrap().unwrap();
        let offset = req.body.as_ptr() as usize - start;
        assert_eq!(
            offset,
            b"POST /pub HTTP/1.1\r\nContent-Length: 4\r\n\r\n".len()
        );
    }

    #[test]
    fn encode_response_bytes() {
        let mut out = BytesMut::new();
        encode_response(
            &mut out,
            200,
            Some("text/plain; charset=utf-8"),
            b"OK",
            true,
        );
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nOK"
        );
        out.clear();
        encode_response(&mut out, 404, None, b"", false);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 404 Not Found\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        encode_response(&mut out, 599, None, b"", true);
        assert!(out.starts_with(b"HTTP/1.1 599 status code 599\r\n"));
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic xorshift so failures reproduce.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"GET POST / ?&=%+;:\r\n0123456789abcdefxyzHTTP/1.Content-LengthTransfer-Encodingchunked\t ";
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut input: Vec<u8> = if next() % 2 == 0 {
                b"POST /pub?topic=t HTTP/1.1\r\n".to_vec()
            } else {
                Vec::new()
            };
            for _ in 0..len {
                let r = next();
                input.push(if r % 5 == 0 {
                    (r >> 8) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                });
            }
            let mut b = buf(&input);
            for _ in 0..4 {
                match decode_request(&mut b, 64) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
            let _ = needs_continue(&input);
        }
    }
}
