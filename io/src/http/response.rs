//! Response encoding: status line, nsqd's headers, and Go's raw error
//! answers.

use bytes::{BufMut, BytesMut};

use super::HttpError;

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
        HttpError::BadHost(reason) => {
            // Go's badRequestError: the reason goes into the status line too.
            let text = format!("400 Bad Request: {reason}");
            raw(buf, text.as_bytes(), text.as_bytes())
        }
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
