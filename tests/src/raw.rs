//! The raw V2 client: a blocking protocol client whose every read is
//! bounded ([`RawClient`]), hand-built commands a well-behaved encoder
//! would refuse, and [`consumer`], the usual IDENTIFY + SUB + RDY.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, BytesMut};
use serde_json::Value;

use crate::{DecodedMessage, Frame, MessageId, READ_TIMEOUT};

/// Largest frame the raw client accepts (well above any test message).
const MAX_FRAME: usize = 64 << 20;

/// `line\n` followed by a 4-byte big-endian size and `body`, built by hand
/// so that tests can send commands a well-behaved encoder would refuse.
pub fn raw_command_with_body(line: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(line.len() + 5 + body.len());
    v.extend_from_slice(line.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// `line\n` followed by only a 4-byte big-endian `size`: for requests that
/// nsqd rejects before reading the body (sending a body it never reads would
/// make the kernel reset the connection, which can swallow the error frame).
pub fn raw_command_size_only(line: &str, size: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(line.len() + 5);
    v.extend_from_slice(line.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(&size.to_be_bytes());
    v
}

/// The MPUB body `[4B count]{[4B size][bytes]}` (also the `/mpub?binary=true` body).
pub fn mpub_body(messages: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(messages.len() as u32).to_be_bytes());
    for m in messages {
        v.extend_from_slice(&(m.len() as u32).to_be_bytes());
        v.extend_from_slice(m);
    }
    v
}

/// A frame rendered for failure messages.
pub struct ShowFrame<'a>(pub &'a Frame);

impl fmt::Display for ShowFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Frame::Response(b) => write!(f, "Response({:?})", String::from_utf8_lossy(b)),
            Frame::Error(b) => write!(f, "Error({:?})", String::from_utf8_lossy(b)),
            Frame::Message(m) => write!(
                f,
                "Message(id={}, attempts={}, body={:?})",
                id_str(&m.id),
                m.attempts,
                String::from_utf8_lossy(&m.body[..m.body.len().min(64)])
            ),
        }
    }
}

/// A message ID as text (IDs are 16 ASCII hex characters on the wire).
pub fn id_str(id: &MessageId) -> String {
    String::from_utf8_lossy(&id.0).into_owned()
}

fn is_heartbeat(frame: &Frame) -> bool {
    matches!(frame, Frame::Response(b) if &b[..] == b"_heartbeat_")
}

/// A blocking V2 protocol client. Every read waits at most 10 s. After
/// IDENTIFY it can upgrade the connection as real clients do (TLS, then
/// snappy or deflate: see `tls::RawClient` methods in `tls.rs`).
pub struct RawClient {
    pub(crate) stream: TcpStream,
    /// Where frames are read from: the socket, or the layers on it.
    pub(crate) reader: Box<dyn Read + Send>,
    /// Where commands are written to (flushed after each send).
    pub(crate) writer: Box<dyn Write + Send>,
    pub(crate) rbuf: BytesMut,
    wbuf: BytesMut,
    closed: bool,
}

impl RawClient {
    /// Connects and sends the `"  V2"` magic.
    pub fn connect(addr: SocketAddr) -> Result<RawClient> {
        let mut c = Self::connect_no_magic(addr)?;
        c.send(&nsq_proto::MAGIC_V2[..])?;
        Ok(c)
    }

    /// Connects without sending anything.
    pub fn connect_no_magic(addr: SocketAddr) -> Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            reader: Box::new(stream.try_clone()?),
            writer: Box::new(stream.try_clone()?),
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::new(),
            closed: false,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).context("writing to nsqd")?;
        self.writer.flush().context("writing to nsqd")?;
        Ok(())
    }

    fn send_encoded(&mut self, encode: impl FnOnce(&mut BytesMut)) -> Result<()> {
        self.wbuf.clear();
        encode(&mut self.wbuf);
        let bytes = self.wbuf.split().freeze();
        self.send(&bytes)
    }

    /// `IDENTIFY` with a JSON body.
    pub fn identify(&mut self, json: &Value) -> Result<()> {
        let body = serde_json::to_vec(json)?;
        self.send_encoded(|b| nsq_proto::command::encode::identify(b, &body))
    }

    /// `IDENTIFY` and read the answer: with `"feature_negotiation": true` the
    /// parsed JSON response, otherwise `Value::String("OK")`.
    pub fn identify_ok(&mut self, json: &Value) -> Result<Value> {
        self.identify(json)?;
        match self.read_frame()? {
            Frame::Response(b) if &b[..] == b"OK" => Ok(Value::String("OK".into())),
            Frame::Response(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "IDENTIFY response is not JSON: {:?}",
                    String::from_utf8_lossy(&b)
                )
            }),
            other => bail!("IDENTIFY: expected a response, got {}", ShowFrame(&other)),
        }
    }

    /// `AUTH` with a secret.
    pub fn auth(&mut self, secret: &[u8]) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::auth(b, secret))
    }

    /// `SUB topic channel`.
    pub fn sub(&mut self, topic: &str, channel: &str) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::sub(b, topic, channel))
    }

    /// `SUB` and expect `OK`.
    pub fn sub_ok(&mut self, topic: &str, channel: &str) -> Result<()> {
        self.sub(topic, channel)?;
        self.expect_ok()
            .with_context(|| format!("SUB {topic} {channel}"))
    }

    /// `PUB topic` + body.
    pub fn publish(&mut self, topic: &str, body: &[u8]) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::pub_(b, topic, body))
    }

    /// `PUB` and expect `OK`.
    pub fn pub_ok(&mut self, topic: &str, body: &[u8]) -> Result<()> {
        self.publish(topic, body)?;
        self.expect_ok().with_context(|| format!("PUB {topic}"))
    }

    /// `MPUB topic` + bodies.
    pub fn mpub(&mut self, topic: &str, bodies: &[&[u8]]) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::mpub(b, topic, bodies))
    }

    /// `MPUB` and expect `OK`.
    pub fn mpub_ok(&mut self, topic: &str, bodies: &[&[u8]]) -> Result<()> {
        self.mpub(topic, bodies)?;
        self.expect_ok().with_context(|| format!("MPUB {topic}"))
    }

    /// `DPUB topic defer_ms` + body.
    pub fn dpub(&mut self, topic: &str, defer_ms: u32, body: &[u8]) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::dpub(b, topic, i64::from(defer_ms), body))
    }

    /// `DPUB` and expect `OK`.
    pub fn dpub_ok(&mut self, topic: &str, defer_ms: u32, body: &[u8]) -> Result<()> {
        self.dpub(topic, defer_ms, body)?;
        self.expect_ok()
            .with_context(|| format!("DPUB {topic} {defer_ms}"))
    }

    /// `RDY n`.
    pub fn rdy(&mut self, n: u32) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::rdy(b, i64::from(n)))
    }

    /// `FIN id`.
    pub fn fin(&mut self, id: &MessageId) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::fin(b, id))
    }

    /// `REQ id timeout_ms`.
    pub fn req(&mut self, id: &MessageId, timeout_ms: u32) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::req(b, id, i64::from(timeout_ms)))
    }

    /// `TOUCH id`.
    pub fn touch(&mut self, id: &MessageId) -> Result<()> {
        self.send_encoded(|b| nsq_proto::command::encode::touch(b, id))
    }

    /// `CLS`.
    pub fn cls(&mut self) -> Result<()> {
        self.send_encoded(nsq_proto::command::encode::cls)
    }

    /// `NOP`.
    pub fn nop(&mut self) -> Result<()> {
        self.send_encoded(nsq_proto::command::encode::nop)
    }

    /// Reads one frame, waiting at most `timeout`. `Ok(None)` on timeout;
    /// an error if the connection closed or the bytes are not a frame.
    pub fn read_frame_within(&mut self, timeout: Duration) -> Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = nsq_proto::frame::decode_frame(&mut self.rbuf, MAX_FRAME)
                .map_err(|e| anyhow!("undecodable frame from nsqd: {e:?}"))?
            {
                return Ok(Some(frame));
            }
            if self.closed {
                bail!(
                    "connection closed by nsqd ({} unparsed bytes)",
                    self.rbuf.len()
                );
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.reader.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.rbuf.put_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
                {
                    self.closed = true
                }
                Err(e) => return Err(e).context("reading from nsqd"),
            }
        }
    }

    /// Reads one frame (at most 10 s).
    pub fn read_frame(&mut self) -> Result<Frame> {
        self.read_frame_within(READ_TIMEOUT)?
            .ok_or_else(|| anyhow!("no frame from nsqd within {READ_TIMEOUT:?}"))
    }

    /// Reads one frame, skipping `_heartbeat_` responses (each answered with NOP).
    pub fn read_frame_skip_heartbeats(&mut self) -> Result<Frame> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self
                .read_frame_within(left)?
                .ok_or_else(|| anyhow!("no frame from nsqd within {READ_TIMEOUT:?}"))?;
            if is_heartbeat(&frame) {
                self.nop()?;
                continue;
            }
            return Ok(frame);
        }
    }

    /// Expects a Response frame with exactly `text`.
    pub fn expect_response(&mut self, text: &str) -> Result<()> {
        let frame = self.read_frame()?;
        match &frame {
            Frame::Response(b) if &b[..] == text.as_bytes() => Ok(()),
            _ => bail!("expected Response({text:?}), got {}", ShowFrame(&frame)),
        }
    }

    /// Expects a Response frame `OK`.
    pub fn expect_ok(&mut self) -> Result<()> {
        self.expect_response("OK")
    }

    /// Expects an Error frame with exactly `text`.
    pub fn expect_error(&mut self, text: &str) -> Result<()> {
        let frame = self.read_frame()?;
        match &frame {
            Frame::Error(b) if &b[..] == text.as_bytes() => Ok(()),
            _ => bail!("expected Error({text:?}), got {}", ShowFrame(&frame)),
        }
    }

    /// Expects an Error frame with exactly `text`, then the connection closing.
    pub fn expect_fatal(&mut self, text: &str) -> Result<()> {
        self.expect_error(text)?;
        self.expect_closed()
            .with_context(|| format!("{text:?} is fatal: nsqd must close the connection"))
    }

    /// Expects a Message frame.
    pub fn expect_message(&mut self) -> Result<DecodedMessage> {
        match self.read_frame()? {
            Frame::Message(m) => Ok(m),
            other => bail!("expected a message, got {}", ShowFrame(&other)),
        }
    }

    /// Expects a Message frame, skipping (and NOP-ing) heartbeats.
    pub fn expect_message_skip_heartbeats(&mut self) -> Result<DecodedMessage> {
        match self.read_frame_skip_heartbeats()? {
            Frame::Message(m) => Ok(m),
            other => bail!("expected a message, got {}", ShowFrame(&other)),
        }
    }

    /// Expects the connection to be closed by nsqd (within 10 s) with no
    /// further frame.
    pub fn expect_closed(&mut self) -> Result<()> {
        match self.read_frame_within(READ_TIMEOUT) {
            Err(_) if self.closed && self.rbuf.is_empty() => Ok(()),
            Err(e) => Err(e),
            Ok(Some(frame)) => bail!(
                "expected the connection to close, got {}",
                ShowFrame(&frame)
            ),
            Ok(None) => bail!("connection still open after {READ_TIMEOUT:?}"),
        }
    }

    /// Expects the connection to be closed by nsqd within `timeout`, ignoring
    /// heartbeats (which are NOT answered).
    pub fn expect_closed_ignoring_heartbeats(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame_within(left) {
                Err(_) if self.closed && self.rbuf.is_empty() => return Ok(()),
                Err(e) => return Err(e),
                Ok(Some(f)) if is_heartbeat(&f) => continue,
                Ok(Some(f)) => bail!("expected the connection to close, got {}", ShowFrame(&f)),
                Ok(None) => bail!("connection still open after {timeout:?}"),
            }
        }
    }

    /// Expects no frame other than heartbeats (answered with NOP) for `d`.
    pub fn expect_silence(&mut self, d: Duration) -> Result<()> {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.read_frame_within(left)? {
                None => return Ok(()),
                Some(f) if is_heartbeat(&f) => self.nop()?,
                Some(f) => bail!("expected nothing for {d:?}, got {}", ShowFrame(&f)),
            }
        }
    }

    /// Reads `n` messages (skipping heartbeats), FIN-ing each as it arrives.
    pub fn recv_and_fin(&mut self, n: usize) -> Result<Vec<DecodedMessage>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let m = self
                .expect_message_skip_heartbeats()
                .with_context(|| format!("after {} of {n} messages", out.len()))?;
            self.fin(&m.id)?;
            out.push(m);
        }
        Ok(out)
    }

    /// A barrier: PUBs to a scratch topic and expects `OK`, proving that
    /// every earlier command was processed without an error frame.
    pub fn barrier(&mut self) -> Result<()> {
        self.pub_ok("barrier_topic", b"barrier")
            .context("barrier PUB")
    }
}

/// A conventional consumer: connect, IDENTIFY (feature negotiation) with
/// `extra` fields merged in, SUB, RDY `rdy`.
pub fn consumer(
    addr: SocketAddr,
    topic: &str,
    channel: &str,
    rdy: u32,
    extra: Value,
) -> Result<RawClient> {
    let mut c = RawClient::connect(addr)?;
    let mut ident = serde_json::json!({
        "client_id": "nsq-tests",
        "hostname": "localhost",
        "user_agent": "nsq-tests/0.1",
        "feature_negotiation": true,
    });
    if let (Some(obj), Value::Object(add)) = (ident.as_object_mut(), extra) {
        obj.extend(add);
    }
    c.identify_ok(&ident)?;
    c.sub_ok(topic, channel)?;
    if rdy > 0 {
        c.rdy(rdy)?;
    }
    Ok(c)
}
