//! HTTP plumbing both daemons' APIs share, over `nsq_io::http`'s codec.

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use nsq_io::http::{self as codec, HttpError, Request};

/// Reads the requests of one HTTP/1.1 connection: keep-alive and pipelined
/// requests one after the other, `100 Continue` sent once to a client that
/// waits for it before its body.
#[derive(Debug)]
pub struct RequestReader {
    /// Bytes read and not yet decoded.
    buf: BytesMut,
    /// Whether `100 Continue` was sent for the request being read.
    continued: bool,
    /// Bytes asked of the socket per read.
    chunk: usize,
}

impl RequestReader {
    /// A reader asking the socket for up to `chunk` bytes at a time (also
    /// the buffer's initial capacity).
    pub fn new(chunk: usize) -> RequestReader {
        RequestReader {
            buf: BytesMut::with_capacity(chunk),
            continued: false,
            chunk,
        }
    }

    /// The next request, its body at most `max_body` bytes. `Ok(None)` when
    /// the connection is done (the peer closed, or an I/O error). After an
    /// error the caller answers it (`nsq_io::http::encode_error`, or its
    /// own answer) and closes the connection: the stream cannot be
    /// resynchronised.
    pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        max_body: usize,
    ) -> Result<Option<Request>, HttpError> {
        loop {
            if let Some(req) = codec::decode_request(&mut self.buf, max_body)? {
                self.continued = false;
                return Ok(Some(req));
            }
            if !self.read_more(stream).await {
                return Ok(None);
            }
        }
    }

    /// Read more of the request, after answering `100 Continue` if the
    /// client waits for it. `false` when the connection is done.
    async fn read_more<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut S) -> bool {
        if !self.continued && codec::needs_continue(&self.buf) {
            self.continued = true;
            if stream.write_all(codec::CONTINUE_RESPONSE).await.is_err()
                || stream.flush().await.is_err()
            {
                return false;
            }
        }
        let len = self.buf.len();
        self.buf.resize(len + self.chunk, 0);
        let read = stream.read(&mut self.buf[len..]).await;
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        n > 0
    }
}

/// `http_api.GetTopicChannelArgs` (nsqd and nsqlookupd): `topic` and
/// `channel`, both present and valid, or the message of the 400 answer.
pub fn topic_channel_args(req: &Request) -> Result<(&str, &str), &'static str> {
    let topic = req.query_get("topic").ok_or("MISSING_ARG_TOPIC")?;
    if !nsq_proto::names::is_valid_topic_name(topic) {
        return Err("INVALID_ARG_TOPIC");
    }
    let channel = req.query_get("channel").ok_or("MISSING_ARG_CHANNEL")?;
    if !nsq_proto::names::is_valid_channel_name(channel) {
        return Err("INVALID_ARG_CHANNEL");
    }
    Ok((topic, channel))
}
