//! nsqlookupd's TCP protocol V1: the commands nsqd sends and the answers
//! nsqlookupd sends back, encoded and decoded here so the two daemons
//! cannot drift apart. (`nsqlookupd/lookup_protocol_v1.go` and nsqd's
//! `lookup_peer.go` are the oracles.)
//!
//! ```text
//! client: "  V1"                             magic (anything else: E_BAD_PROTOCOL, close)
//! client: "PING\n"                           -> "OK"
//! client: "IDENTIFY\n" [4B BE size][JSON]    -> JSON {broadcast_address,hostname,http_port,tcp_port,version}
//! client: "REGISTER <topic> [<channel>]\n"   -> "OK"
//! client: "UNREGISTER <topic> [<channel>]\n" -> "OK"
//! server: [4B BE size][data]                 every answer, errors included: no frame type
//! ```
//!
//! nsqd writes with [`Command::encode`] and reads answers with
//! [`response_size`] (or [`decode_response`]). nsqlookupd reads in the
//! stages its error order needs: [`split_line`] frames a line,
//! [`decode_request`] reads its command word, [`Params::names`] checks the
//! names once the peer is known to have identified, and
//! [`decode_identify_body`] reads IDENTIFY's body once a second IDENTIFY is
//! known not to be refused. [`decode_command`] chains them for a whole
//! command. Decoders never panic and never consume a partial command:
//! `Ok(None)` means "append more bytes and call again".

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::names::is_valid_name;

/// The 4 bytes a V1 client sends first.
pub const MAGIC_V1: &[u8; 4] = b"  V1";

/// The answer to a wrong magic (sent size-prefixed, then the connection closes).
pub const BAD_PROTOCOL: &[u8] = b"E_BAD_PROTOCOL";

/// The answer to PING, REGISTER and UNREGISTER.
pub const OK: &[u8] = b"OK";

/// Longest command line nsqlookupd accepts. nsqlookupd has no limit; real
/// lines are under 150 bytes (two names of at most 64), so 64 KiB only stops
/// a peer from growing the reader's buffer without end.
pub const MAX_LINE: usize = 64 * 1024;

/// Largest IDENTIFY body nsqlookupd accepts. nsqlookupd allocates whatever
/// size the peer claims (up to 2 GiB); nsqd's body is a few hundred bytes.
pub const MAX_IDENTIFY_BODY: usize = 1 << 20;

/// Bytes of the big-endian size before an IDENTIFY body and an answer.
const SIZE_LEN: usize = 4;

const PING: &str = "PING";
const IDENTIFY: &str = "IDENTIFY";
const REGISTER: &str = "REGISTER";
const UNREGISTER: &str = "UNREGISTER";

/// A command nsqd sends to nsqlookupd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `PING`: keeps the peer active; answered `OK`.
    Ping,
    /// `IDENTIFY` with its JSON body; answered with nsqlookupd's JSON.
    Identify(&'a [u8]),
    /// `REGISTER topic [channel]`
    Register {
        /// Topic name.
        topic: &'a str,
        /// Channel name, if the registration is a channel's.
        channel: Option<&'a str>,
    },
    /// `UNREGISTER topic [channel]`
    Unregister {
        /// Topic name.
        topic: &'a str,
        /// Channel name, if the registration is a channel's.
        channel: Option<&'a str>,
    },
}

impl Command<'_> {
    /// Append the command as nsqd writes it.
    pub fn encode(&self, out: &mut BytesMut) {
        let (verb, topic, channel) = match *self {
            Command::Ping => {
                out.put_slice(PING.as_bytes());
                out.put_u8(b'\n');
                return;
            }
            Command::Identify(body) => {
                out.reserve(IDENTIFY.len() + 1 + SIZE_LEN + body.len());
                out.put_slice(IDENTIFY.as_bytes());
                out.put_u8(b'\n');
                out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
                out.put_slice(body);
                return;
            }
            Command::Register { topic, channel } => (REGISTER, topic, channel),
            Command::Unregister { topic, channel } => (UNREGISTER, topic, channel),
        };
        out.put_slice(verb.as_bytes());
        out.put_u8(b' ');
        out.put_slice(topic.as_bytes());
        if let Some(channel) = channel {
            out.put_u8(b' ');
            out.put_slice(channel.as_bytes());
        }
        out.put_u8(b'\n');
    }
}

/// Why nsqlookupd refuses what it read: each is fatal, answered with
/// [`LookupError::to_wire`] (`E_CODE description`), then the connection
/// closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// More than [`MAX_LINE`] bytes without a newline.
    LineTooLong,
    /// A command word nsqlookupd does not know (raw, as sent).
    InvalidCommand(Vec<u8>),
    /// REGISTER or UNREGISTER without a topic.
    MissingParams(&'static str),
    /// REGISTER or UNREGISTER with an invalid topic name (raw, as sent).
    BadTopic {
        /// `REGISTER` or `UNREGISTER`.
        command: &'static str,
        /// The name as sent.
        name: Vec<u8>,
    },
    /// REGISTER or UNREGISTER with an invalid channel name (raw, as sent).
    BadChannel {
        /// `REGISTER` or `UNREGISTER`.
        command: &'static str,
        /// The name as sent.
        name: Vec<u8>,
    },
    /// The peer closed before IDENTIFY's body size.
    BodySizeUnread,
    /// A negative IDENTIFY body size (Go reads an `int32`).
    InvalidBodySize,
    /// An IDENTIFY body size above [`MAX_IDENTIFY_BODY`].
    BodyTooBig,
    /// The peer closed before the end of IDENTIFY's body.
    BodyUnread,
}

impl LookupError {
    /// The `E_*` code.
    pub fn code(&self) -> &'static str {
        match self {
            LookupError::LineTooLong
            | LookupError::InvalidCommand(_)
            | LookupError::MissingParams(_) => "E_INVALID",
            LookupError::BadTopic { .. } => "E_BAD_TOPIC",
            LookupError::BadChannel { .. } => "E_BAD_CHANNEL",
            LookupError::BodySizeUnread
            | LookupError::InvalidBodySize
            | LookupError::BodyTooBig
            | LookupError::BodyUnread => "E_BAD_BODY",
        }
    }

    /// `E_CODE description`, as sent: names are echoed byte for byte.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(self.code().as_bytes());
        out.push(b' ');
        let fixed = match self {
            LookupError::LineTooLong => "command line too long",
            LookupError::InvalidCommand(word) => {
                out.extend_from_slice(b"invalid command ");
                out.extend_from_slice(word);
                return out;
            }
            LookupError::MissingParams(command) => {
                out.extend_from_slice(command.as_bytes());
                " insufficient number of params"
            }
            LookupError::BadTopic { command, name } => {
                return bad_name(out, command, "topic", name);
            }
            LookupError::BadChannel { command, name } => {
                return bad_name(out, command, "channel", name);
            }
            LookupError::BodySizeUnread => "IDENTIFY failed to read body size",
            LookupError::InvalidBodySize => "IDENTIFY invalid body size",
            LookupError::BodyTooBig => "IDENTIFY body too big",
            LookupError::BodyUnread => "IDENTIFY failed to read body",
        };
        out.extend_from_slice(fixed.as_bytes());
        out
    }

    /// What to answer when the peer closed with `buf` all it sent of an
    /// IDENTIFY body ([`decode_identify_body`] returned `Ok(None)`).
    pub fn identify_cut_short(buf: &[u8]) -> LookupError {
        if buf.len() < SIZE_LEN {
            LookupError::BodySizeUnread
        } else {
            LookupError::BodyUnread
        }
    }
}

fn bad_name(mut out: Vec<u8>, command: &str, what: &str, name: &[u8]) -> Vec<u8> {
    for part in [command.as_bytes(), b" ", what.as_bytes(), b" name '", name] {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"' is not valid");
    out
}

impl fmt::Display for LookupError {
    /// The wire text, invalid UTF-8 shown as U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_wire()))
    }
}

impl std::error::Error for LookupError {}

/// The next command line in `buf`: the line without its `\n`, and the bytes
/// it takes (with the `\n`).
pub fn split_line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, LookupError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(newline) => Ok(Some((&buf[..newline], newline + 1))),
        None if buf.len() > MAX_LINE => Err(LookupError::LineTooLong),
        None => Ok(None),
    }
}

/// A command line as nsqlookupd reads it, before its parameters are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `PING`
    Ping,
    /// `IDENTIFY`: its body follows ([`decode_identify_body`]).
    Identify,
    /// `REGISTER ...`
    Register(Params<'a>),
    /// `UNREGISTER ...`
    Unregister(Params<'a>),
}

/// The words after REGISTER or UNREGISTER, checked by [`Params::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    command: &'static str,
    /// The whole trimmed line, command word included.
    line: &'a [u8],
}

impl<'a> Params<'a> {
    /// Go's `getTopicChan`: the topic and the optional channel (a missing
    /// or empty second word is no channel; further words are ignored),
    /// validated, with nsqlookupd's errors.
    pub fn names(&self) -> Result<(&'a str, Option<&'a str>), LookupError> {
        let mut words = self.line.split(|&b| b == b' ').skip(1);
        let Some(topic) = words.next() else {
            return Err(LookupError::MissingParams(self.command));
        };
        let channel = words.next().unwrap_or_default();
        // Valid names are ASCII, so the UTF-8 conversions cannot fail after
        // the name check; they are still handled, never unwrapped.
        let topic = valid_name(topic).ok_or_else(|| LookupError::BadTopic {
            command: self.command,
            name: topic.to_vec(),
        })?;
        if channel.is_empty() {
            return Ok((topic, None));
        }
        let channel = valid_name(channel).ok_or_else(|| LookupError::BadChannel {
            command: self.command,
            name: channel.to_vec(),
        })?;
        Ok((topic, Some(channel)))
    }
}

fn valid_name(name: &[u8]) -> Option<&str> {
    std::str::from_utf8(name)
        .ok()
        .filter(|_| is_valid_name(name))
}

/// Read a command line (without its `\n`): trimmed as Go's
/// `strings.TrimSpace` does, split on single spaces, dispatched on its first
/// word (case-sensitive).
pub fn decode_request(line: &[u8]) -> Result<Request<'_>, LookupError> {
    let line = trim_space(line);
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    let params = |command| Params { command, line };
    match word {
        b"PING" => Ok(Request::Ping),
        b"IDENTIFY" => Ok(Request::Identify),
        b"REGISTER" => Ok(Request::Register(params(REGISTER))),
        b"UNREGISTER" => Ok(Request::Unregister(params(UNREGISTER))),
        _ => Err(LookupError::InvalidCommand(word.to_vec())),
    }
}

/// IDENTIFY's `[4B BE size][body]` at the front of `buf`: the body and the
/// bytes it takes. The size is an `int32` in Go; a negative one (which
/// crashes nsqlookupd) or one above [`MAX_IDENTIFY_BODY`] is refused as soon
/// as it is buffered.
pub fn decode_identify_body(buf: &[u8]) -> Result<Option<(&[u8], usize)>, LookupError> {
    let Some(size) = buf.first_chunk::<SIZE_LEN>() else {
        return Ok(None);
    };
    let size =
        usize::try_from(i32::from_be_bytes(*size)).map_err(|_| LookupError::InvalidBodySize)?;
    if size > MAX_IDENTIFY_BODY {
        return Err(LookupError::BodyTooBig);
    }
    Ok(buf
        .get(SIZE_LEN..SIZE_LEN + size)
        .map(|body| (body, SIZE_LEN + size)))
}

/// A whole command at the front of `buf` and the bytes it takes, as
/// nsqlookupd would read it from a peer that has identified.
pub fn decode_command(buf: &[u8]) -> Result<Option<(Command<'_>, usize)>, LookupError> {
    let Some((line, used)) = split_line(buf)? else {
        return Ok(None);
    };
    let command = match decode_request(line)? {
        Request::Ping => Command::Ping,
        Request::Identify => {
            return Ok(decode_identify_body(&buf[used..])?
                .map(|(body, len)| (Command::Identify(body), used + len)));
        }
        Request::Register(params) => {
            let (topic, channel) = params.names()?;
            Command::Register { topic, channel }
        }
        Request::Unregister(params) => {
            let (topic, channel) = params.names()?;
            Command::Unregister { topic, channel }
        }
    };
    Ok(Some((command, used)))
}

/// Append one answer: `[4B BE size][data]` (Go's `protocol.SendResponse`).
pub fn encode_response(out: &mut BytesMut, data: &[u8]) {
    out.reserve(SIZE_LEN + data.len());
    out.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
    out.put_slice(data);
}

/// An answer larger than the reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTooBig(pub usize);

impl fmt::Display for ResponseTooBig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "response too big ({} bytes)", self.0)
    }
}

impl std::error::Error for ResponseTooBig {}

/// The size an answer's 4-byte header announces, refused above `max`.
pub fn response_size(header: [u8; SIZE_LEN], max: usize) -> Result<usize, ResponseTooBig> {
    let size = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if size > max {
        return Err(ResponseTooBig(size));
    }
    Ok(size)
}

/// One answer at the front of `buf`: its data and the bytes it takes.
pub fn decode_response(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, ResponseTooBig> {
    let Some(header) = buf.first_chunk::<SIZE_LEN>() else {
        return Ok(None);
    };
    let size = response_size(*header, max)?;
    Ok(buf
        .get(SIZE_LEN..SIZE_LEN + size)
        .map(|data| (data, SIZE_LEN + size)))
}

/// Go's `strings.TrimSpace` on raw bytes: strips Unicode white space from
/// both ends; invalid UTF-8 counts as non-space, as in Go.
fn trim_space(line: &[u8]) -> &[u8] {
    let mut start = None;
    let mut end = 0;
    let mut pos = 0;
    for chunk in line.utf8_chunks() {
        for (i, c) in chunk.valid().char_indices() {
            if !c.is_whitespace() {
                start.get_or_insert(pos + i);
                end = pos + i + c.len_utf8();
            }
        }
        pos += chunk.valid().len();
        if !chunk.invalid().is_empty() {
            start.get_or_insert(pos);
            pos += chunk.invalid().len();
            end = pos;
        }
    }
    match start {
        Some(start) => &line[start..end],
        None => &line[..0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(command: Command<'_>) -> BytesMut {
        let mut out = BytesMut::new();
        command.encode(&mut out);
        out
    }

    fn wire(e: LookupError) -> String {
        String::from_utf8_lossy(&e.to_wire()).into_owned()
    }

    const COMMANDS: [Command<'static>; 6] = [
        Command::Ping,
        Command::Identify(br#"{"tcp_port":4150,"http_port":4151}"#),
        Command::Identify(b""),
        Command::Register {
            topic: "t",
            channel: None,
        },
        Command::Register {
            topic: "t#ephemeral",
            channel: Some("c.1-2_3"),
        },
        Command::Unregister {
            topic: "t",
            channel: Some("c"),
        },
    ];

    #[test]
    fn encodings() {
        assert_eq!(&encoded(Command::Ping)[..], b"PING\n");
        assert_eq!(
            &encoded(Command::Identify(b"{}"))[..],
            b"IDENTIFY\n\x00\x00\x00\x02{}"
        );
        assert_eq!(
            &encoded(Command::Register {
                topic: "t",
                channel: None
            })[..],
            b"REGISTER t\n"
        );
        assert_eq!(
            &encoded(Command::Unregister {
                topic: "t",
                channel: Some("c")
            })[..],
            b"UNREGISTER t c\n"
        );
        let mut out = BytesMut::new();
        encode_response(&mut out, b"OK");
        assert_eq!(&out[..], b"\x00\x00\x00\x02OK");
    }

    #[test]
    fn round_trip_whole_and_pipelined() {
        let mut all = BytesMut::new();
        for command in COMMANDS {
            let bytes = encoded(command);
            assert_eq!(decode_command(&bytes), Ok(Some((command, bytes.len()))));
            all.extend_from_slice(&bytes);
        }
        let mut rest = &all[..];
        for command in COMMANDS {
            let (decoded, used) = decode_command(rest).unwrap().unwrap();
            assert_eq!(decoded, command);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());

        let mut out = BytesMut::new();
        encode_response(&mut out, b"{\"a\":1}");
        encode_response(&mut out, b"");
        let (data, used) = decode_response(&out, 100).unwrap().unwrap();
        assert_eq!((data, used), (&b"{\"a\":1}"[..], 11));
        assert_eq!(decode_response(&out[used..], 100), Ok(Some((&b""[..], 4))));
    }

    #[test]
    fn partial_input_needs_more() {
        for command in COMMANDS {
            let bytes = encoded(command);
            for cut in 0..bytes.len() {
                assert_eq!(decode_command(&bytes[..cut]), Ok(None), "{command:?} {cut}");
            }
        }
        let mut out = BytesMut::new();
        encode_response(&mut out, b"OK");
        for cut in 0..out.len() {
            assert_eq!(decode_response(&out[..cut], 10), Ok(None));
        }
        assert_eq!(
            LookupError::identify_cut_short(b"\x00\x00"),
            LookupError::BodySizeUnread
        );
        assert_eq!(
            LookupError::identify_cut_short(b"\x00\x00\x00\x05ab"),
            LookupError::BodyUnread
        );
    }

    #[test]
    fn requests_and_errors() {
        assert_eq!(decode_request(b"  PING \r"), Ok(Request::Ping));
        assert_eq!(decode_request(b"IDENTIFY"), Ok(Request::Identify));
        assert_eq!(
            decode_request(b"ping").map_err(wire),
            Err("E_INVALID invalid command ping".to_string())
        );
        assert_eq!(
            decode_request(b"").map_err(wire),
            Err("E_INVALID invalid command ".to_string())
        );
        fn names(line: &[u8]) -> Result<(&str, Option<&str>), String> {
            match decode_request(line) {
                Ok(Request::Register(p) | Request::Unregister(p)) => p.names().map_err(wire),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(names(b"REGISTER t c"), Ok(("t", Some("c"))));
        assert_eq!(names(b"REGISTER u  x"), Ok(("u", None)));
        assert_eq!(names(b"REGISTER t c2 extra"), Ok(("t", Some("c2"))));
        let refused: [(&[u8], &str); 4] = [
            (
                b"REGISTER",
                "E_INVALID REGISTER insufficient number of params",
            ),
            (
                b"UNREGISTER ",
                "E_INVALID UNREGISTER insufficient number of params",
            ),
            (
                b"REGISTER  t",
                "E_BAD_TOPIC REGISTER topic name '' is not valid",
            ),
            (
                b"UNREGISTER t bad/ch",
                "E_BAD_CHANNEL UNREGISTER channel name 'bad/ch' is not valid",
            ),
        ];
        for (line, want) in refused {
            assert_eq!(names(line), Err(want.to_string()));
        }
        match decode_request(b"REGISTER \xff") {
            Ok(Request::Register(p)) => assert_eq!(
                p.names().unwrap_err().to_wire(),
                b"E_BAD_TOPIC REGISTER topic name '\xff' is not valid"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(split_line(&[b'x'; MAX_LINE]), Ok(None));
        assert_eq!(
            split_line(&[b'x'; MAX_LINE + 1]).map_err(wire),
            Err("E_INVALID command line too long".into())
        );
        let size = |n: i32| [&n.to_be_bytes()[..], b"body"].concat();
        assert_eq!(
            decode_identify_body(&size(-1)).map_err(wire),
            Err("E_BAD_BODY IDENTIFY invalid body size".into())
        );
        assert_eq!(
            decode_identify_body(&size(MAX_IDENTIFY_BODY as i32 + 1)).map_err(wire),
            Err("E_BAD_BODY IDENTIFY body too big".into())
        );
        assert_eq!(decode_identify_body(&size(2)), Ok(Some((&b"bo"[..], 6))));
        assert_eq!(
            wire(LookupError::BodySizeUnread),
            "E_BAD_BODY IDENTIFY failed to read body size"
        );
        assert_eq!(
            wire(LookupError::BodyUnread),
            "E_BAD_BODY IDENTIFY failed to read body"
        );
        assert_eq!(
            decode_response(b"\x00\x10\x00\x00", 1000)
                .unwrap_err()
                .to_string(),
            "response too big (1048576 bytes)"
        );
        assert_eq!(
            decode_response(b"\x00\x10\x00\x01", 1 << 20),
            Err(ResponseTooBig(1 << 20 | 1))
        );
    }

    #[test]
    fn garbage_never_panics() {
        // A small xorshift generator: deterministic, no dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: &[u8] = b"PINGIDENTIFYREGISTERUN \n\r\t\x00\xff\x7f\x80#.";
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            if let Ok(Some((_, used))) = decode_command(&buf) {
                assert!(used <= buf.len());
            }
            let _ = decode_identify_body(&buf);
            if let Ok(Some((data, used))) = decode_response(&buf, 64) {
                assert_eq!(data.len() + SIZE_LEN, used);
            }
            if let Ok(Request::Register(p) | Request::Unregister(p)) = decode_request(&buf) {
                let _ = p.names();
            }
        }
    }

    #[test]
    fn trim_space_like_go() {
        assert_eq!(trim_space(b" \t PING \r\n"), b"PING");
        assert_eq!(trim_space("\u{a0}PING\u{3000}".as_bytes()), b"PING");
        assert_eq!(trim_space(b"\xffA \xfe "), b"\xffA \xfe");
        assert_eq!(trim_space(b" \r "), b"");
        assert_eq!(trim_space(b""), b"");
    }
}
