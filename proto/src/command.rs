//! Client-to-server commands (nsqd `protocol_v2.go`).
//!
//! A command is one text line; PUB, MPUB, DPUB, IDENTIFY and AUTH add a
//! binary body after it:
//!
//! ```text
//! VERB[ param]*\n                       line: split on single spaces, optional \r stripped
//! [ 4B BE i32 size ][ size bytes ]       body (IDENTIFY, AUTH, PUB, DPUB)
//! [ 4B BE i32 size ][ 4B BE i32 count ]  MPUB body: count messages of
//!     ( [ 4B BE i32 size ][ size bytes ] )*count
//! ```
//!
//! [`decode_command`] is incremental and stateless: it never consumes a
//! partial command, so the caller appends bytes and calls again. It checks
//! parameters and sizes in the order nsqd does and reports a bad size as soon
//! as the size prefix is buffered, before the body, as nsqd does. It does not
//! know connection state; see [`crate::error`] for how a broker keeps nsqd's
//! state-first error order.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtoError;
use crate::message::{MessageId, MESSAGE_ID_LEN};
use crate::names::is_valid_name;

pub mod encode;

/// Longest command line accepted, including its `\n`.
///
/// nsqd reads lines with `bufio.Reader.ReadSlice` over a 16 KiB buffer
/// (`defaultBufferSize` in `client_v2.go`), which fails once 16 KiB are
/// buffered without a newline. The longest valid line is SUB with two
/// 64-byte names (~135 bytes), so matching nsqd costs no real client
/// anything and bounds how long the decoder scans for a newline.
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Bytes of each size or count field: a big-endian `i32` (a body's size, an
/// MPUB's message count, each MPUB message's size).
const SIZE_LEN: usize = 4;

/// Smallest MPUB message on the wire: its size field and a 1-byte body. It
/// bounds how many messages an MPUB body of a given size can hold.
const MIN_MPUB_MESSAGE_LEN: i64 = SIZE_LEN as i64 + 1;

/// Length of the protocol magic a connection starts with.
const MAGIC_LEN: usize = crate::MAGIC_V2.len();

/// Size limits from the broker's options, checked while decoding so an
/// oversized body is refused before it is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--max-msg-size`: largest PUB/DPUB body or single MPUB message, bytes.
    pub max_msg_size: usize,
    /// `--max-body-size`: largest MPUB, IDENTIFY or AUTH body, bytes.
    pub max_body_size: usize,
    /// `--max-req-timeout`: largest DPUB defer, milliseconds (REQ is clamped
    /// to it by the broker, not rejected).
    pub max_req_timeout_ms: i64,
    /// `--max-rdy-count`: largest RDY count.
    pub max_rdy_count: i64,
}

impl Default for Limits {
    /// nsqd's defaults: 1 MiB, 5 MiB, 1 h, 2500.
    fn default() -> Self {
        Limits {
            max_msg_size: 1024 * 1024,
            max_body_size: 5 * 1024 * 1024,
            max_req_timeout_ms: 60 * 60 * 1000,
            max_rdy_count: 2500,
        }
    }
}

/// A command name, as it appears at the start of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `IDENTIFY`
    Identify,
    /// `AUTH`
    Auth,
    /// `SUB`
    Sub,
    /// `PUB`
    Pub,
    /// `MPUB`
    Mpub,
    /// `DPUB`
    Dpub,
    /// `RDY`
    Rdy,
    /// `FIN`
    Fin,
    /// `REQ`
    Req,
    /// `TOUCH`
    Touch,
    /// `CLS`
    Cls,
    /// `NOP`
    Nop,
}

impl Verb {
    /// The name on the wire (case-sensitive, as in nsqd).
    pub fn as_str(&self) -> &'static str {
        match self {
            Verb::Identify => "IDENTIFY",
            Verb::Auth => "AUTH",
            Verb::Sub => "SUB",
            Verb::Pub => "PUB",
            Verb::Mpub => "MPUB",
            Verb::Dpub => "DPUB",
            Verb::Rdy => "RDY",
            Verb::Fin => "FIN",
            Verb::Req => "REQ",
            Verb::Touch => "TOUCH",
            Verb::Cls => "CLS",
            Verb::Nop => "NOP",
        }
    }

    /// The verb for a first word, if it is one.
    pub fn from_bytes(word: &[u8]) -> Option<Verb> {
        Some(match word {
            b"IDENTIFY" => Verb::Identify,
            b"AUTH" => Verb::Auth,
            b"SUB" => Verb::Sub,
            b"PUB" => Verb::Pub,
            b"MPUB" => Verb::Mpub,
            b"DPUB" => Verb::Dpub,
            b"RDY" => Verb::Rdy,
            b"FIN" => Verb::Fin,
            b"REQ" => Verb::Req,
            b"TOUCH" => Verb::Touch,
            b"CLS" => Verb::Cls,
            b"NOP" => Verb::Nop,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded command. Bodies are zero-copy slices of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `IDENTIFY`: JSON body, size already checked against `max_body_size`
    /// (parse it with [`crate::identify::IdentifyRequest::from_json`]).
    Identify {
        /// The JSON bytes.
        body: Bytes,
    },
    /// `AUTH`: the secret, size already checked against `max_body_size`.
    Auth {
        /// The secret bytes.
        body: Bytes,
    },
    /// `SUB <topic> <channel>`: both names valid.
    Sub {
        /// Topic name.
        topic: String,
        /// Channel name.
        channel: String,
    },
    /// `PUB <topic>`: body size in `1..=max_msg_size`.
    Pub {
        /// Topic name.
        topic: String,
        /// Message body.
        body: Bytes,
    },
    /// `MPUB <topic>`: 1 or more bodies, each in `1..=max_msg_size`.
    Mpub {
        /// Topic name.
        topic: String,
        /// Message bodies, in order.
        bodies: Vec<Bytes>,
    },
    /// `DPUB <topic> <ms>`: defer in `0..=max_req_timeout_ms`.
    Dpub {
        /// Topic name.
        topic: String,
        /// Delay before the message becomes visible, ms.
        defer_ms: i64,
        /// Message body.
        body: Bytes,
    },
    /// `RDY [count]`: count in `0..=max_rdy_count`; 1 when absent.
    Rdy {
        /// How many messages may be in flight to this client.
        count: i64,
    },
    /// `FIN <id>`.
    Fin {
        /// The message to finish.
        id: MessageId,
    },
    /// `REQ <id> <ms>`. The timeout is NOT clamped by the decoder; the broker
    /// clamps it to `[0, max_req_timeout_ms]` (and logs) as nsqd does.
    Req {
        /// The message to requeue.
        id: MessageId,
        /// Requeue delay, ms; 0 requeues at once.
        timeout_ms: i64,
    },
    /// `TOUCH <id>`.
    Touch {
        /// The message whose timeout to reset.
        id: MessageId,
    },
    /// `CLS`: start a clean close.
    Cls,
    /// `NOP`: no response; clients send it to answer heartbeats.
    Nop,
}

impl Command {
    /// The command's verb.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Identify { .. } => Verb::Identify,
            Command::Auth { .. } => Verb::Auth,
            Command::Sub { .. } => Verb::Sub,
            Command::Pub { .. } => Verb::Pub,
            Command::Mpub { .. } => Verb::Mpub,
            Command::Dpub { .. } => Verb::Dpub,
            Command::Rdy { .. } => Verb::Rdy,
            Command::Fin { .. } => Verb::Fin,
            Command::Req { .. } => Verb::Req,
            Command::Touch { .. } => Verb::Touch,
            Command::Cls => Verb::Cls,
            Command::Nop => Verb::Nop,
        }
    }
}

/// Checks the 4-byte protocol magic at the start of a connection. `Ok(None)`
/// until 4 bytes are buffered; otherwise consumes them. Anything but
/// [`crate::MAGIC_V2`] is `E_BAD_PROTOCOL` (sent with no description), after
/// which nsqd closes the connection.
pub fn decode_magic(buf: &mut BytesMut) -> Result<Option<()>, ProtoError> {
    let Some(magic) = buf.first_chunk::<MAGIC_LEN>().copied() else {
        return Ok(None);
    };
    buf.advance(MAGIC_LEN);
    if &magic == crate::MAGIC_V2 {
        Ok(Some(()))
    } else {
        Err(ProtoError::BadProtocol { magic })
    }
}

/// Incremental decoder. Ok(None) = need more bytes (nothing consumed). On
/// Ok(Some) the command's bytes are consumed from buf (split_to + freeze so
/// bodies are zero-copy `Bytes` slices, no per-message copy). Pipelined
/// commands: call again.
///
/// On `Err` the offending line has been consumed and nothing after it, so a
/// caller that deliberately ignores an error (nsqd ignores any RDY after
/// CLS) can go on decoding. After an error in a command with a body the
/// stream cannot be resynchronised; nsqd treats every one of these errors as
/// fatal, and so should the caller. [`ProtoError::LineTooLong`] consumes
/// nothing.
///
/// Validation follows nsqd: parameter count, names, numeric parameters,
/// then the body size (reported as soon as the 4 size bytes are buffered),
/// then, for MPUB, the count and each message size as soon as each is
/// buffered. A valid command is returned only once complete.
pub fn decode_command(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, ProtoError> {
    if let Some(id) = plain_fin(buf) {
        buf.advance(FIN_LINE_LEN);
        return Ok(Some(Command::Fin { id }));
    }
    let scan_len = buf.len().min(MAX_LINE_LEN);
    let Some(newline) = buf[..scan_len].iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_LINE_LEN {
            return Err(ProtoError::LineTooLong { max: MAX_LINE_LEN });
        }
        return Ok(None);
    };
    let line_len = newline + 1;
    let parsed = {
        let line = &buf[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        parse_line(line, limits)
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            buf.advance(line_len);
            return Err(err);
        }
    };
    let body_kind = match parsed {
        Line::Done(cmd) => {
            buf.advance(line_len);
            return Ok(Some(cmd));
        }
        Line::Body(kind) => kind,
    };

    // The body: a 4-byte size, then that many bytes.
    let Some(size) = buf[line_len..]
        .first_chunk::<SIZE_LEN>()
        .map(|b| i32::from_be_bytes(*b))
    else {
        return Ok(None);
    };
    if let Err(err) = check_body_size(&body_kind, size, limits, &buf[..line_len]) {
        buf.advance(line_len);
        return Err(err);
    }
    // check_body_size guarantees 1 <= size.
    let body_len = usize::try_from(size).unwrap_or(0);
    let body_start = line_len + SIZE_LEN;
    let available = &buf[body_start..];
    let complete = available.len() >= body_len;

    if let BodyKind::Mpub { .. } = body_kind {
        let avail = &available[..available.len().min(body_len)];
        if let Err(err) = walk_mpub(avail, body_len, limits, |_, _| {}) {
            let topic = topic_string(&buf[..line_len], &body_kind);
            buf.advance(line_len);
            return Err(err.into_error(size, topic));
        }
    }
    if !complete {
        return Ok(None);
    }

    let frame = buf.split_to(body_start + body_len).freeze();
    let body = frame.slice(body_start..);
    let topic = topic_string(&frame, &body_kind);
    Ok(Some(match body_kind {
        BodyKind::Identify => Command::Identify { body },
        BodyKind::Auth => Command::Auth { body },
        BodyKind::Pub { .. } => Command::Pub { topic, body },
        BodyKind::Dpub { defer_ms, .. } => Command::Dpub {
            topic,
            defer_ms,
            body,
        },
        BodyKind::Mpub { .. } => {
            // Validated above, so the count fits in the body and is small.
            let count = body
                .first_chunk::<SIZE_LEN>()
                .map_or(0, |b| usize::try_from(i32::from_be_bytes(*b)).unwrap_or(0));
            let mut bodies = Vec::with_capacity(count);
            let walked = walk_mpub(&body, body_len, limits, |start, end| {
                bodies.push(body.slice(start..end));
            });
            if let Err(err) = walked {
                return Err(err.into_error(size, topic));
            }
            Command::Mpub { topic, bodies }
        }
    }))
}

/// What the line alone decided.
enum Line {
    /// A command without a body, complete.
    Done(Command),
    /// A command that needs a body.
    Body(BodyKind),
}

/// A command waiting for its body. The topic is kept as a range into the
/// line so a partial command allocates nothing while it waits.
enum BodyKind {
    Identify,
    Auth,
    Pub {
        topic: (usize, usize),
    },
    Mpub {
        topic: (usize, usize),
    },
    Dpub {
        topic: (usize, usize),
        defer_ms: i64,
    },
}

/// Most words any command uses: SUB, DPUB and REQ take the verb and two
/// parameters.
const MAX_WORDS: usize = 3;

/// The first words of a line and how many there are. Commands use at most
/// three; more are counted (for nsqd's count checks) but not kept, so
/// splitting never allocates.
struct Params<'a> {
    words: [&'a [u8]; MAX_WORDS],
    count: usize,
}

/// `FIN <16-byte id>\n`.
const FIN_LINE_LEN: usize = 4 + MESSAGE_ID_LEN + 1;

/// The ID of a buffer that starts with a plain `FIN <id>\n`, the command a
/// consumer sends for nearly every message, recognised without splitting
/// the line. Only a line the general parser reads the same way qualifies: no
/// space, newline or trailing `\r` inside the ID; anything else (errors
/// included) takes the general path.
fn plain_fin(buf: &[u8]) -> Option<MessageId> {
    let line = buf.get(..FIN_LINE_LEN)?;
    let id = line.strip_prefix(b"FIN ")?.strip_suffix(b"\n")?;
    if id.iter().any(|&b| b == b' ' || b == b'\n') || id.last() == Some(&b'\r') {
        return None;
    }
    MessageId::from_slice(id)
}

impl<'a> Params<'a> {
    /// `bytes.Split(line, " ")`: an empty line is one empty word, and
    /// doubled spaces give empty words.
    fn split(line: &'a [u8]) -> Params<'a> {
        let mut params = Params {
            words: [&[]; MAX_WORDS],
            count: 0,
        };
        for word in line.split(|&b| b == b' ') {
            if let Some(slot) = params.words.get_mut(params.count) {
                *slot = word;
            }
            params.count += 1;
        }
        params
    }

    fn word(&self, i: usize) -> &'a [u8] {
        self.words.get(i).copied().unwrap_or(&[])
    }

    /// Byte range of word `i` within `line`.
    fn range(&self, line: &[u8], i: usize) -> (usize, usize) {
        let word = self.word(i);
        let start = (word.as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
        (start, start + word.len())
    }
}

/// Decides what a command line is: a complete command, or one waiting for
/// its body. Checks run in nsqd's order, so the first error is nsqd's.
fn parse_line(line: &[u8], limits: &Limits) -> Result<Line, ProtoError> {
    let params = Params::split(line);
    let Some(verb) = Verb::from_bytes(params.word(0)) else {
        return Err(ProtoError::InvalidCommand {
            name: params.word(0).to_vec(),
        });
    };
    let args = Args { line, params, verb };
    match verb {
        // nsqd reads no parameters for IDENTIFY, CLS and NOP, so extra
        // words are ignored rather than rejected.
        Verb::Identify => Ok(Line::Body(BodyKind::Identify)),
        Verb::Cls => Ok(Line::Done(Command::Cls)),
        Verb::Nop => Ok(Line::Done(Command::Nop)),
        Verb::Auth => {
            if args.params.count != 1 {
                return Err(ProtoError::AuthParameters);
            }
            Ok(Line::Body(BodyKind::Auth))
        }
        Verb::Sub => parse_sub(&args),
        Verb::Pub => {
            args.need(2)?;
            Ok(Line::Body(BodyKind::Pub {
                topic: args.topic(1)?,
            }))
        }
        Verb::Mpub => {
            args.need(2)?;
            Ok(Line::Body(BodyKind::Mpub {
                topic: args.topic(1)?,
            }))
        }
        Verb::Dpub => parse_dpub(&args, limits),
        Verb::Rdy => parse_rdy(&args, limits),
        Verb::Fin => {
            args.need(2)?;
            Ok(Line::Done(Command::Fin {
                id: args.message_id(1)?,
            }))
        }
        Verb::Touch => {
            args.need(2)?;
            Ok(Line::Done(Command::Touch {
                id: args.message_id(1)?,
            }))
        }
        Verb::Req => parse_req(&args),
    }
}

/// A split command line and its verb: what the per-verb parsers share. The
/// checks nsqd repeats across verbs are methods, so each verb's parser reads
/// as its list of checks in nsqd's order. Borrows the line; builds nothing
/// until a check fails.
struct Args<'a> {
    line: &'a [u8],
    params: Params<'a>,
    verb: Verb,
}

impl Args<'_> {
    /// At least `n` words, the verb included. nsqd words this error one way
    /// for FIN, REQ and TOUCH and another for the rest.
    #[inline]
    fn need(&self, n: usize) -> Result<(), ProtoError> {
        if self.params.count >= n {
            return Ok(());
        }
        let verb = self.verb;
        Err(match verb {
            Verb::Fin | Verb::Req | Verb::Touch => ProtoError::InsufficientParams { verb },
            _ => ProtoError::InsufficientParameters { verb },
        })
    }

    /// Word `i` as a topic name: its byte range in the line, so a command
    /// waiting for its body allocates nothing.
    #[inline]
    fn topic(&self, i: usize) -> Result<(usize, usize), ProtoError> {
        let name = self.params.word(i);
        if is_valid_name(name) {
            Ok(self.params.range(self.line, i))
        } else {
            Err(ProtoError::BadTopic {
                verb: self.verb,
                name: name.to_vec(),
            })
        }
    }

    /// Word `i` as a message id.
    #[inline]
    fn message_id(&self, i: usize) -> Result<MessageId, ProtoError> {
        MessageId::from_slice(self.params.word(i))
            .ok_or(ProtoError::InvalidMessageId { verb: self.verb })
    }

    /// Word `i` as a DPUB or REQ time in milliseconds, parsed as nsqd does
    /// (unsigned, wrapping; see [`byte_to_base10`]).
    #[inline]
    fn timeout_ms(&self, i: usize) -> Result<u64, ProtoError> {
        let raw = self.params.word(i);
        byte_to_base10(raw).ok_or_else(|| ProtoError::TimeoutParse {
            verb: self.verb,
            raw: raw.to_vec(),
        })
    }
}

/// `SUB <topic> <channel>`: both names checked, topic first.
fn parse_sub(args: &Args<'_>) -> Result<Line, ProtoError> {
    args.need(3)?;
    args.topic(1)?;
    let channel = args.params.word(2);
    if !is_valid_name(channel) {
        return Err(ProtoError::BadChannel {
            name: channel.to_vec(),
        });
    }
    Ok(Line::Done(Command::Sub {
        topic: ascii_string(args.params.word(1)),
        channel: ascii_string(channel),
    }))
}

/// `DPUB <topic> <ms>`: the defer goes through nsqd's wrapping
/// milliseconds-to-`Duration` conversion before the range check, so the
/// same inputs are refused.
#[inline]
fn parse_dpub(args: &Args<'_>, limits: &Limits) -> Result<Line, ProtoError> {
    args.need(3)?;
    let topic = args.topic(1)?;
    let ms = args.timeout_ms(2)?;
    let defer_ns = ms_to_go_duration(ms);
    let max_ns = limits.max_req_timeout_ms.saturating_mul(NANOS_PER_MS);
    if defer_ns < 0 || defer_ns > max_ns {
        return Err(ProtoError::DpubTimeoutOutOfRange {
            timeout_ms: ms,
            max_ms: limits.max_req_timeout_ms,
        });
    }
    Ok(Line::Body(BodyKind::Dpub {
        topic,
        defer_ms: defer_ns / NANOS_PER_MS,
    }))
}

/// `RDY [count]`: 1 when absent; refused outside `0..=max_rdy_count`.
#[inline]
fn parse_rdy(args: &Args<'_>, limits: &Limits) -> Result<Line, ProtoError> {
    let mut count = 1;
    if args.params.count > 1 {
        let raw = args.params.word(1);
        let parsed =
            byte_to_base10(raw).ok_or_else(|| ProtoError::RdyParse { raw: raw.to_vec() })?;
        // nsqd: `count = int64(b10)`, a wrapping conversion.
        count = parsed as i64;
    }
    if count < 0 || count > limits.max_rdy_count {
        return Err(ProtoError::RdyOutOfRange {
            count,
            max: limits.max_rdy_count,
        });
    }
    Ok(Line::Done(Command::Rdy { count }))
}

/// `REQ <id> <ms>`: the timeout is converted as nsqd does but not range
/// checked; the broker clamps it.
#[inline]
fn parse_req(args: &Args<'_>) -> Result<Line, ProtoError> {
    args.need(3)?;
    let id = args.message_id(1)?;
    let ms = args.timeout_ms(2)?;
    Ok(Line::Done(Command::Req {
        id,
        timeout_ms: ms_to_go_duration(ms) / NANOS_PER_MS,
    }))
}

/// Nanoseconds per millisecond, for nsqd's `time.Duration` arithmetic.
const NANOS_PER_MS: i64 = 1_000_000;

/// nsqd `protocol.ByteToBase10`: ASCII digits only (no sign), the empty
/// string is 0, and overflow wraps silently in a `uint64`.
fn byte_to_base10(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

/// nsqd's `time.Duration(ms) * time.Millisecond`: an int64 nanosecond count
/// that wraps for absurd inputs. We reproduce the wrap so accept/reject
/// decisions (and REQ's clamping) match nsqd for every input.
fn ms_to_go_duration(ms: u64) -> i64 {
    (ms as i64).wrapping_mul(NANOS_PER_MS)
}

/// Names are validated as `[.a-zA-Z0-9_#-]`, so each byte is one char.
fn ascii_string(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

fn topic_string(line: &[u8], kind: &BodyKind) -> String {
    match kind {
        BodyKind::Pub { topic } | BodyKind::Mpub { topic } | BodyKind::Dpub { topic, .. } => line
            .get(topic.0..topic.1)
            .map(ascii_string)
            .unwrap_or_default(),
        BodyKind::Identify | BodyKind::Auth => String::new(),
    }
}

fn check_body_size(
    kind: &BodyKind,
    size: i32,
    limits: &Limits,
    line: &[u8],
) -> Result<(), ProtoError> {
    let max_msg = i64::try_from(limits.max_msg_size).unwrap_or(i64::MAX);
    let max_body = i64::try_from(limits.max_body_size).unwrap_or(i64::MAX);
    let (verb, max) = match kind {
        BodyKind::Identify => (Verb::Identify, max_body),
        BodyKind::Auth => (Verb::Auth, max_body),
        BodyKind::Pub { .. } => (Verb::Pub, max_msg),
        BodyKind::Dpub { .. } => (Verb::Dpub, max_msg),
        BodyKind::Mpub { .. } => (Verb::Mpub, max_body),
    };
    let topic = || match kind {
        BodyKind::Mpub { .. } => Some(topic_string(line, kind)),
        _ => None,
    };
    // nsqd checks "too big" first for IDENTIFY/AUTH and "<= 0" first for the
    // rest; limits are never negative, so the two cannot both hold.
    if size <= 0 {
        return Err(ProtoError::InvalidBodySize {
            verb,
            size,
            topic: topic(),
        });
    }
    if i64::from(size) > max {
        return Err(ProtoError::BodyTooBig {
            verb,
            size,
            max,
            topic: topic(),
        });
    }
    Ok(())
}

/// An MPUB body error before the topic is attached.
enum MpubError {
    Count(i32),
    Size { index: u32, size: i32 },
    TooBig { size: i32, max: i64 },
    Mismatch,
}

impl MpubError {
    fn into_error(self, body_size: i32, topic: String) -> ProtoError {
        match self {
            MpubError::Count(count) => ProtoError::MpubMessageCount { count, topic },
            MpubError::Size { index, size } => ProtoError::MpubMessageSize { index, size, topic },
            MpubError::TooBig { size, max } => ProtoError::MpubMessageTooBig { size, max, topic },
            MpubError::Mismatch => ProtoError::MpubBodyMismatch { body_size, topic },
        }
    }
}

/// Walks an MPUB body, `avail` being the buffered prefix of its `body_len`
/// bytes. Fields are checked in stream order as nsqd reads them; a field
/// that would cross `body_len` is a mismatch, one not yet buffered stops the
/// walk with `Ok` (incomplete). Because every check depends only on bytes at
/// or before the field, the first error is the same however the body was
/// chunked. `on_msg(start, end)` gets each message's range in the body.
///
/// Each call re-walks from the start: O(messages buffered) per call while a
/// large MPUB arrives. Reading in big chunks keeps that to a few passes.
fn walk_mpub(
    avail: &[u8],
    body_len: usize,
    limits: &Limits,
    mut on_msg: impl FnMut(usize, usize),
) -> Result<(), MpubError> {
    let read = |pos: usize| {
        avail
            .get(pos..)
            .and_then(<[u8]>::first_chunk::<SIZE_LEN>)
            .map(|b| i32::from_be_bytes(*b))
    };
    if body_len < SIZE_LEN {
        return Err(MpubError::Mismatch);
    }
    let Some(count) = read(0) else {
        return Ok(());
    };
    // nsqd: "4 == total num, 5 == length + min 1".
    let max_body = i64::try_from(limits.max_body_size).unwrap_or(i64::MAX);
    let max_messages = (max_body - SIZE_LEN as i64) / MIN_MPUB_MESSAGE_LEN;
    if count <= 0 || i64::from(count) > max_messages {
        return Err(MpubError::Count(count));
    }
    let max_msg = i64::try_from(limits.max_msg_size).unwrap_or(i64::MAX);
    let mut pos = SIZE_LEN;
    for index in 0..count.unsigned_abs() {
        if pos + SIZE_LEN > body_len {
            return Err(MpubError::Mismatch);
        }
        let Some(size) = read(pos) else {
            return Ok(());
        };
        if size <= 0 {
            return Err(MpubError::Size { index, size });
        }
        if i64::from(size) > max_msg {
            return Err(MpubError::TooBig { size, max: max_msg });
        }
        let start = pos + SIZE_LEN;
        let end = start + size.unsigned_abs() as usize;
        if end > body_len {
            return Err(MpubError::Mismatch);
        }
        on_msg(start, end);
        pos = end;
    }
    if pos != body_len {
        return Err(MpubError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod fin_tests {
    use super::*;

    /// Whatever the fast path accepts, the general parser reads the same way.
    #[test]
    fn plain_fin_agrees_with_the_general_parse() {
        let lines: [&[u8]; 9] = [
            b"FIN 0123456789abcdef\n",
            b"FIN 0123456789abcde\r\n",
            b"FIN 0123456789abcd\r\n",
            b"FIN 0123456789 bcdef\n",
            b"FIN 0123456789abcdef \n",
            b"FIN 0123456789abcdefg\n",
            b"FIN  123456789abcdef\n",
            b"FIN \x00\xff23456789abcdef\n",
            b"FIN 0123456789a\ncdef\n",
        ];
        let limits = Limits::default();
        for line in lines {
            let general = {
                let newline = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
                let text = &line[..newline];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                match parse_line(text, &limits) {
                    Ok(Line::Done(Command::Fin { id })) => Some(id),
                    _ => None,
                }
            };
            if let Some(fast) = plain_fin(line) {
                assert_eq!(Some(fast), general, "{:?}", String::from_utf8_lossy(line));
            }
            // And through decode_command: the same command or error as ever.
            let mut buf = BytesMut::from(line);
            let got = decode_command(&mut buf, &limits);
            match general {
                Some(id) => assert!(
                    matches!(got, Ok(Some(Command::Fin { id: got })) if got == id),
                    "{:?}",
                    String::from_utf8_lossy(line)
                ),
                None => assert!(
                    !matches!(got, Ok(Some(Command::Fin { .. }))),
                    "{:?}",
                    String::from_utf8_lossy(line)
                ),
            }
        }
        assert!(plain_fin(b"FIN 0123456789abcdef\n").is_some());
        assert!(plain_fin(b"FIN 0123456789abcde").is_none(), "incomplete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base10_matches_nsqd() {
        assert_eq!(byte_to_base10(b""), Some(0));
        assert_eq!(byte_to_base10(b"0"), Some(0));
        assert_eq!(byte_to_base10(b"2500"), Some(2500));
        assert_eq!(byte_to_base10(b"-1"), None);
        assert_eq!(byte_to_base10(b"+1"), None);
        assert_eq!(byte_to_base10(b"1 "), None);
        assert_eq!(byte_to_base10(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(byte_to_base10(b"18446744073709551616"), Some(0));
    }

    #[test]
    fn params_split_like_bytes_split() {
        let p = Params::split(b"");
        assert_eq!((p.count, p.word(0)), (1, &b""[..]));
        let p = Params::split(b"SUB  t");
        assert_eq!(p.count, 3);
        assert_eq!(p.word(1), b"");
        assert_eq!(p.word(2), b"t");
        let p = Params::split(b"A B C D E");
        assert_eq!(p.count, 5);
        assert_eq!(p.word(3), b"");
        let line = b"PUB topic";
        let p = Params::split(line);
        assert_eq!(p.range(line, 1), (4, 9));
    }

    #[test]
    fn go_duration_wraps() {
        assert_eq!(ms_to_go_duration(1), 1_000_000);
        assert!(ms_to_go_duration(u64::MAX) < 0);
        // 2^63 / 1e6 rounds up to a value whose product wraps negative.
        assert!(ms_to_go_duration(9_223_372_036_855) < 0);
    }
}
