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
//! - an HTTP/1.1 request without a `Host` header, a request with more than
//!   one, or a malformed one is 400, as Go's server answers (HTTP/1.0 needs
//!   no `Host`);
//! - the query string is parsed like Go's `url.ParseQuery`, whose error nsqd
//!   turns into `400 INVALID_REQUEST`, so a bad query is reported in
//!   [`Request::query_error`] instead of failing the whole request.
//!
//! After any [`HttpError`] the caller writes the answer and closes the
//! connection: the buffer is left as it was and cannot be resynchronised.
//!
//! Layout: `request.rs` decodes the request line, headers and query;
//! `client.rs` is a small async GET client for the control plane;
//! `chunked.rs` reassembles a `Transfer-Encoding: chunked` body;
//! `response.rs` encodes answers.

mod chunked;
pub mod client;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::{decode_request, needs_continue, Request};
pub use response::{encode_error, encode_response, reason_phrase};

/// Largest header section accepted: Go's `DefaultMaxHeaderBytes` (1 MiB) plus
/// the 4096 bytes of slack `net/http` adds for its bufio reader.
pub const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;

/// Interim response sent when [`needs_continue`] says the client waits for it.
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why a request could not be decoded. Each maps to the status Go's
/// `net/http` (or nsqd, for the body limit) answers with; see [`HttpError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Not a valid HTTP/1.x request (400). The text is for logs only.
    #[error("malformed HTTP request: {0}")]
    BadRequest(&'static str),
    /// A Host header Go's server rejects (400), with the reason it puts in
    /// the status line and body: `missing required Host header` for an
    /// HTTP/1.1 request without one (RFC 9112 §3.2), `malformed Host header`.
    #[error("bad request: {0}")]
    BadHost(&'static str),
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
            HttpError::BadRequest(_) | HttpError::BadHost(_) => 400,
            HttpError::HeaderTooLarge => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::ExpectationFailed => 417,
        }
    }
}
