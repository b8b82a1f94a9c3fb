//! Error codes and decode errors.
//!
//! An nsqd error frame carries `"<CODE> <description>"`. [`ErrorCode`] is the
//! code; [`ProtoError`] is everything the codec can reject, and its
//! [`description`](ProtoError::description) is the text nsqd v1.3.0 sends for
//! the same input, byte for byte (clients and ported nsqd tests compare these
//! strings). Every `ProtoError` a server sees is fatal in nsqd: send the frame
//! (see [`crate::frame::encode_proto_error`]), then close the connection.
//!
//! nsqd checks connection state before it parses parameters, and the decoder
//! does not know the state. A broker that wants nsqd's exact text therefore
//! checks [`ProtoError::verb`] against its state first and sends its own
//! `cannot <VERB> in current state` when the state forbids the verb.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::command::Verb;
use crate::gofmt::{GoQuote, Lossy};

/// The `E_*` code at the start of an error frame.
///
/// Only `E_FIN_FAILED`, `E_REQ_FAILED` and `E_TOUCH_FAILED` leave the
/// connection open (nsqd `ClientErr`); every other code is sent as a
/// `FatalClientErr` and the connection is closed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `E_INVALID`: unknown command, bad parameters, wrong state.
    Invalid,
    /// `E_BAD_BODY`: bad body size or content (IDENTIFY, AUTH, MPUB).
    BadBody,
    /// `E_BAD_TOPIC`: invalid topic name.
    BadTopic,
    /// `E_BAD_CHANNEL`: invalid channel name.
    BadChannel,
    /// `E_BAD_MESSAGE`: bad message size (PUB, DPUB, one MPUB message).
    BadMessage,
    /// `E_PUB_FAILED`: the topic could not accept a PUB.
    PubFailed,
    /// `E_MPUB_FAILED`: the topic could not accept an MPUB.
    MpubFailed,
    /// `E_DPUB_FAILED`: the topic could not accept a DPUB.
    DpubFailed,
    /// `E_FIN_FAILED`: the message is not in flight for this client (non-fatal).
    FinFailed,
    /// `E_REQ_FAILED`: the message is not in flight for this client (non-fatal).
    ReqFailed,
    /// `E_TOUCH_FAILED`: the message is not in flight for this client (non-fatal).
    TouchFailed,
    /// `E_AUTH_FAILED`: the auth server refused or could not be reached.
    AuthFailed,
    /// `E_AUTH_FIRST`: auth is enabled and the client has not sent AUTH.
    AuthFirst,
    /// `E_AUTH_DISABLED`: AUTH sent to a server without auth.
    AuthDisabled,
    /// `E_AUTH_ERROR`: the AUTH response could not be built or sent.
    AuthError,
    /// `E_UNAUTHORIZED`: authenticated but not allowed for this topic/channel.
    Unauthorized,
    /// `E_SUB_FAILED`: the channel refused the subscription.
    SubFailed,
    /// `E_IDENTIFY_FAILED`: feature negotiation or a connection upgrade failed.
    IdentifyFailed,
    /// `E_BAD_PROTOCOL`: the 4-byte magic was not `"  V2"`.
    BadProtocol,
}

impl ErrorCode {
    /// Every code, for parsing and tests.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::Invalid,
        ErrorCode::BadBody,
        ErrorCode::BadTopic,
        ErrorCode::BadChannel,
        ErrorCode::BadMessage,
        ErrorCode::PubFailed,
        ErrorCode::MpubFailed,
        ErrorCode::DpubFailed,
        ErrorCode::FinFailed,
        ErrorCode::ReqFailed,
        ErrorCode::TouchFailed,
        ErrorCode::AuthFailed,
        ErrorCode::AuthFirst,
        ErrorCode::AuthDisabled,
        ErrorCode::AuthError,
        ErrorCode::Unauthorized,
        ErrorCode::SubFailed,
        ErrorCode::IdentifyFailed,
        ErrorCode::BadProtocol,
    ];

    /// The code exactly as it appears on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::Invalid => "E_INVALID",
            ErrorCode::BadBody => "E_BAD_BODY",
            ErrorCode::BadTopic => "E_BAD_TOPIC",
            ErrorCode::BadChannel => "E_BAD_CHANNEL",
            ErrorCode::BadMessage => "E_BAD_MESSAGE",
            ErrorCode::PubFailed => "E_PUB_FAILED",
            ErrorCode::MpubFailed => "E_MPUB_FAILED",
            ErrorCode::DpubFailed => "E_DPUB_FAILED",
            ErrorCode::FinFailed => "E_FIN_FAILED",
            ErrorCode::ReqFailed => "E_REQ_FAILED",
            ErrorCode::TouchFailed => "E_TOUCH_FAILED",
            ErrorCode::AuthFailed => "E_AUTH_FAILED",
            ErrorCode::AuthFirst => "E_AUTH_FIRST",
            ErrorCode::AuthDisabled => "E_AUTH_DISABLED",
            ErrorCode::AuthError => "E_AUTH_ERROR",
            ErrorCode::Unauthorized => "E_UNAUTHORIZED",
            ErrorCode::SubFailed => "E_SUB_FAILED",
            ErrorCode::IdentifyFailed => "E_IDENTIFY_FAILED",
            ErrorCode::BadProtocol => "E_BAD_PROTOCOL",
        }
    }

    /// Whether the server closes the connection after sending this code.
    /// Only FIN/REQ/TOUCH failures are non-fatal: a consumer racing a message
    /// timeout is normal and must not lose its connection.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            ErrorCode::FinFailed | ErrorCode::ReqFailed | ErrorCode::TouchFailed
        )
    }

    /// The code at the start of an error frame's data (client side), i.e.
    /// the bytes before the first space.
    pub fn from_frame_data(data: &[u8]) -> Option<ErrorCode> {
        let code = data.split(|&b| b == b' ').next()?;
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the codec rejects. `Display` (and [`description`](Self::description))
/// is the text after the code in nsqd's error frame; [`code`](Self::code) is the code.
///
/// Raw client bytes echoed in a description (`invalid command X`, unparsable
/// numbers) are kept as bytes so [`write_description`](Self::write_description)
/// can reproduce them exactly even when they are not UTF-8.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The 4-byte magic was not `"  V2"`. nsqd sends a bare `E_BAD_PROTOCOL`.
    #[error("")]
    BadProtocol {
        /// The 4 bytes received.
        magic: [u8; 4],
    },

    /// A command line longer than [`crate::command::MAX_LINE_LEN`]. nsqd's
    /// line reader fails at that point and closes the connection without an
    /// error frame; a broker may do the same.
    #[error("command line longer than {max} bytes")]
    LineTooLong {
        /// The limit, [`crate::command::MAX_LINE_LEN`].
        max: usize,
    },

    /// The first word of the line is not a command (`E_INVALID`). An empty
    /// line gives `invalid command ` with a trailing space, as in nsqd.
    #[error("invalid command {}", Lossy(.name))]
    InvalidCommand {
        /// The first word as received.
        name: Vec<u8>,
    },

    /// Too few parameters for SUB, PUB, MPUB or DPUB (`E_INVALID`).
    #[error("{verb} insufficient number of parameters")]
    InsufficientParameters {
        /// The command.
        verb: Verb,
    },

    /// Too few parameters for FIN, REQ or TOUCH (`E_INVALID`). nsqd words
    /// these "params", not "parameters".
    #[error("{verb} insufficient number of params")]
    InsufficientParams {
        /// The command.
        verb: Verb,
    },

    /// AUTH with any parameter (`E_INVALID`).
    #[error("AUTH invalid number of parameters")]
    AuthParameters,

    /// Invalid topic name (`E_BAD_TOPIC`). For MPUB nsqd v1.3.0 repeats the
    /// code inside the description (`E_BAD_TOPIC E_BAD_TOPIC MPUB topic
    /// name ...`); we reproduce that because clients see it.
    #[error("{}{verb} topic name {} is not valid", mpub_quirk(*.verb), GoQuote(.name))]
    BadTopic {
        /// SUB, PUB, MPUB or DPUB.
        verb: Verb,
        /// The name as received.
        name: Vec<u8>,
    },

    /// Invalid channel name in SUB (`E_BAD_CHANNEL`).
    #[error("SUB channel name {} is not valid", GoQuote(.name))]
    BadChannel {
        /// The name as received.
        name: Vec<u8>,
    },

    /// RDY count is not all ASCII digits (`E_INVALID`).
    #[error("RDY could not parse count {}", Lossy(.raw))]
    RdyParse {
        /// The parameter as received.
        raw: Vec<u8>,
    },

    /// RDY count outside `0..=max_rdy_count` (`E_INVALID`). Negative counts
    /// only arise from nsqd's wrapping parse of a 20-digit number.
    #[error("RDY count {count} out of range 0-{max}")]
    RdyOutOfRange {
        /// The parsed count.
        count: i64,
        /// [`crate::Limits::max_rdy_count`].
        max: i64,
    },

    /// FIN/REQ/TOUCH message ID not exactly 16 bytes (`E_INVALID`).
    #[error("invalid message ID")]
    InvalidMessageId {
        /// FIN, REQ or TOUCH.
        verb: Verb,
    },

    /// REQ or DPUB timeout is not all ASCII digits (`E_INVALID`).
    #[error("{verb} could not parse timeout {}", Lossy(.raw))]
    TimeoutParse {
        /// REQ or DPUB.
        verb: Verb,
        /// The parameter as received.
        raw: Vec<u8>,
    },

    /// DPUB timeout outside `0..=max_req_timeout` (`E_INVALID`). nsqd prints
    /// the parsed value as an unsigned integer.
    #[error("DPUB timeout {timeout_ms} out of range 0-{max_ms}")]
    DpubTimeoutOutOfRange {
        /// The parsed timeout, as nsqd prints it.
        timeout_ms: u64,
        /// [`crate::Limits::max_req_timeout_ms`].
        max_ms: i64,
    },

    /// Body size prefix `<= 0`. `E_BAD_MESSAGE` for PUB/DPUB
    /// ("invalid message body size"), `E_BAD_BODY` for IDENTIFY/AUTH/MPUB
    /// ("invalid body size").
    #[error("{verb} invalid {}body size {size}", message_word(*.verb))]
    InvalidBodySize {
        /// IDENTIFY, AUTH, PUB, MPUB or DPUB.
        verb: Verb,
        /// The size prefix.
        size: i32,
        /// MPUB only: the already validated topic (see [`ProtoError::topic`]).
        topic: Option<String>,
    },

    /// Body size prefix above the limit. PUB/DPUB: `E_BAD_MESSAGE`
    /// "message too big" against `max_msg_size`; IDENTIFY/AUTH/MPUB:
    /// `E_BAD_BODY` "body too big" against `max_body_size`.
    #[error("{verb} {} too big {size} > {max}", too_big_word(*.verb))]
    BodyTooBig {
        /// IDENTIFY, AUTH, PUB, MPUB or DPUB.
        verb: Verb,
        /// The size prefix.
        size: i32,
        /// The limit it exceeds.
        max: i64,
        /// MPUB only: the already validated topic (see [`ProtoError::topic`]).
        topic: Option<String>,
    },

    /// MPUB message count `<= 0` or above `(max_body_size - 4) / 5`
    /// (`E_BAD_BODY`).
    #[error("MPUB invalid message count {count}")]
    MpubMessageCount {
        /// The count prefix.
        count: i32,
        /// The already validated topic.
        topic: String,
    },

    /// An MPUB message size `<= 0` (`E_BAD_MESSAGE`). `index` is 0-based.
    #[error("MPUB invalid message({index}) body size {size}")]
    MpubMessageSize {
        /// 0-based position of the message in the batch.
        index: u32,
        /// Its size prefix.
        size: i32,
        /// The already validated topic.
        topic: String,
    },

    /// An MPUB message above `max_msg_size` (`E_BAD_MESSAGE`).
    #[error("MPUB message too big {size} > {max}")]
    MpubMessageTooBig {
        /// Its size prefix.
        size: i32,
        /// [`crate::Limits::max_msg_size`].
        max: i64,
        /// The already validated topic.
        topic: String,
    },

    /// The MPUB messages do not exactly fill the declared body size
    /// (`E_BAD_BODY`). nsqd has no such error: it ignores the body size
    /// after checking it and reads messages by count straight from the
    /// stream. We frame by the body size instead, so a command never needs
    /// more than `max_body_size` bytes buffered and message bodies can be
    /// zero-copy slices of it. Well-formed clients always send matching sizes.
    #[error("MPUB body size {body_size} does not match its messages")]
    MpubBodyMismatch {
        /// The body size prefix.
        body_size: i32,
        /// The already validated topic.
        topic: String,
    },

    /// The IDENTIFY body is not valid JSON for the expected fields
    /// (`E_BAD_BODY`). The cause is for logs only; nsqd does not send it.
    #[error("IDENTIFY failed to decode JSON body")]
    IdentifyJson(#[source] serde_json::Error),

    /// Client side: a frame size prefix below 4 (it must cover the frame
    /// type) or above the caller's maximum.
    #[error("invalid frame size {size} (max {max})")]
    BadFrameSize {
        /// The size prefix.
        size: u32,
        /// The caller's maximum.
        max: usize,
    },

    /// Client side: a frame type other than 0, 1 or 2.
    #[error("invalid frame type {0}")]
    UnknownFrameType(i32),

    /// A message payload shorter than its 26-byte header (nsqd
    /// `decodeMessage`).
    #[error("invalid message buffer size ({len})")]
    BadMessageLength {
        /// The payload length.
        len: usize,
    },
}

fn mpub_quirk(verb: Verb) -> &'static str {
    if verb == Verb::Mpub {
        "E_BAD_TOPIC "
    } else {
        ""
    }
}

fn message_word(verb: Verb) -> &'static str {
    match verb {
        Verb::Pub | Verb::Dpub => "message ",
        _ => "",
    }
}

fn too_big_word(verb: Verb) -> &'static str {
    match verb {
        Verb::Pub | Verb::Dpub => "message",
        _ => "body",
    }
}

impl ProtoError {
    /// The `E_*` code nsqd sends for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::BadProtocol { .. } => ErrorCode::BadProtocol,
            ProtoError::LineTooLong { .. }
            | ProtoError::InvalidCommand { .. }
            | ProtoError::InsufficientParameters { .. }
            | ProtoError::InsufficientParams { .. }
            | ProtoError::AuthParameters
            | ProtoError::RdyParse { .. }
            | ProtoError::RdyOutOfRange { .. }
            | ProtoError::InvalidMessageId { .. }
            | ProtoError::TimeoutParse { .. }
            | ProtoError::DpubTimeoutOutOfRange { .. }
            | ProtoError::BadFrameSize { .. }
            | ProtoError::UnknownFrameType(_) => ErrorCode::Invalid,
            ProtoError::BadTopic { .. } => ErrorCode::BadTopic,
            ProtoError::BadChannel { .. } => ErrorCode::BadChannel,
            ProtoError::InvalidBodySize { verb, .. } | ProtoError::BodyTooBig { verb, .. } => {
                match verb {
                    Verb::Pub | Verb::Dpub => ErrorCode::BadMessage,
                    _ => ErrorCode::BadBody,
                }
            }
            ProtoError::MpubMessageCount { .. }
            | ProtoError::MpubBodyMismatch { .. }
            | ProtoError::IdentifyJson(_) => ErrorCode::BadBody,
            ProtoError::MpubMessageSize { .. }
            | ProtoError::MpubMessageTooBig { .. }
            | ProtoError::BadMessageLength { .. } => ErrorCode::BadMessage,
        }
    }

    /// The text after the code, as nsqd sends it. Bytes echoed from the
    /// client that are not UTF-8 become U+FFFD here; use
    /// [`write_description`](Self::write_description) for the exact bytes.
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// Appends the exact description bytes nsqd would send.
    pub fn write_description(&self, out: &mut BytesMut) {
        let (prefix, raw) = match self {
            ProtoError::InvalidCommand { name } => ("invalid command ", name),
            ProtoError::RdyParse { raw } => ("RDY could not parse count ", raw),
            ProtoError::TimeoutParse { verb, raw } => {
                out.put_slice(verb.as_str().as_bytes());
                (" could not parse timeout ", raw)
            }
            _ => {
                // BytesMut's fmt::Write never fails.
                let _ = fmt::Write::write_fmt(out, format_args!("{self}"));
                return;
            }
        };
        out.put_slice(prefix.as_bytes());
        out.put_slice(raw);
    }

    /// The command this error belongs to, when the line named one. The
    /// broker uses it to give nsqd's state errors priority (nsqd checks
    /// state first) and to ignore any RDY after CLS, as nsqd does.
    pub fn verb(&self) -> Option<Verb> {
        match self {
            ProtoError::InsufficientParameters { verb }
            | ProtoError::InsufficientParams { verb }
            | ProtoError::BadTopic { verb, .. }
            | ProtoError::InvalidMessageId { verb }
            | ProtoError::TimeoutParse { verb, .. }
            | ProtoError::InvalidBodySize { verb, .. }
            | ProtoError::BodyTooBig { verb, .. } => Some(*verb),
            ProtoError::AuthParameters => Some(Verb::Auth),
            ProtoError::BadChannel { .. } => Some(Verb::Sub),
            ProtoError::RdyParse { .. } | ProtoError::RdyOutOfRange { .. } => Some(Verb::Rdy),
            ProtoError::DpubTimeoutOutOfRange { .. } => Some(Verb::Dpub),
            ProtoError::MpubMessageCount { .. }
            | ProtoError::MpubMessageSize { .. }
            | ProtoError::MpubMessageTooBig { .. }
            | ProtoError::MpubBodyMismatch { .. } => Some(Verb::Mpub),
            ProtoError::IdentifyJson(_) => Some(Verb::Identify),
            ProtoError::BadProtocol { .. }
            | ProtoError::LineTooLong { .. }
            | ProtoError::InvalidCommand { .. }
            | ProtoError::BadFrameSize { .. }
            | ProtoError::UnknownFrameType(_)
            | ProtoError::BadMessageLength { .. } => None,
        }
    }

    /// For MPUB body errors, the topic, already validated. nsqd checks
    /// authorization and creates the topic *before* it reads the MPUB body,
    /// so a broker matching it runs its auth check (an auth error wins) and
    /// creates the topic before sending this error.
    pub fn topic(&self) -> Option<&str> {
        match self {
            ProtoError::InvalidBodySize { topic, .. } | ProtoError::BodyTooBig { topic, .. } => {
                topic.as_deref()
            }
            ProtoError::MpubMessageCount { topic, .. }
            | ProtoError::MpubMessageSize { topic, .. }
            | ProtoError::MpubMessageTooBig { topic, .. }
            | ProtoError::MpubBodyMismatch { topic, .. } => Some(topic),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_strings() {
        let want = [
            "E_INVALID",
            "E_BAD_BODY",
            "E_BAD_TOPIC",
            "E_BAD_CHANNEL",
            "E_BAD_MESSAGE",
            "E_PUB_FAILED",
            "E_MPUB_FAILED",
            "E_DPUB_FAILED",
            "E_FIN_FAILED",
            "E_REQ_FAILED",
            "E_TOUCH_FAILED",
            "E_AUTH_FAILED",
            "E_AUTH_FIRST",
            "E_AUTH_DISABLED",
            "E_AUTH_ERROR",
            "E_UNAUTHORIZED",
            "E_SUB_FAILED",
            "E_IDENTIFY_FAILED",
            "E_BAD_PROTOCOL",
        ];
        for (code, want) in ErrorCode::ALL.iter().zip(want) {
            assert_eq!(code.as_str(), want);
            assert_eq!(code.to_string(), want);
            assert_eq!(ErrorCode::from_frame_data(want.as_bytes()), Some(*code));
        }
    }

    #[test]
    fn only_fin_req_touch_are_non_fatal() {
        for code in ErrorCode::ALL {
            let non_fatal = matches!(
                code,
                ErrorCode::FinFailed | ErrorCode::ReqFailed | ErrorCode::TouchFailed
            );
            assert_eq!(code.is_fatal(), !non_fatal, "{code}");
        }
    }

    #[test]
    fn parse_code_from_frame_data() {
        assert_eq!(
            ErrorCode::from_frame_data(b"E_BAD_TOPIC PUB topic name \"x!\" is not valid"),
            Some(ErrorCode::BadTopic)
        );
        assert_eq!(ErrorCode::from_frame_data(b"E_NOPE x"), None);
        assert_eq!(ErrorCode::from_frame_data(b""), None);
    }

    #[test]
    fn raw_bytes_are_exact_in_write_description() {
        let err = ProtoError::InvalidCommand {
            name: b"F\xffO".to_vec(),
        };
        assert_eq!(err.description(), "invalid command F\u{fffd}O");
        let mut out = BytesMut::new();
        err.write_description(&mut out);
        assert_eq!(&out[..], b"invalid command F\xffO");

        let err = ProtoError::TimeoutParse {
            verb: Verb::Req,
            raw: b"-\xfe".to_vec(),
        };
        let mut out = BytesMut::new();
        err.write_description(&mut out);
        assert_eq!(&out[..], b"REQ could not parse timeout -\xfe");

        let err = ProtoError::RdyParse {
            raw: b"x\x80".to_vec(),
        };
        let mut out = BytesMut::new();
        err.write_description(&mut out);
        assert_eq!(&out[..], b"RDY could not parse count x\x80");

        let err = ProtoError::RdyOutOfRange { count: 51, max: 50 };
        let mut out = BytesMut::new();
        err.write_description(&mut out);
        assert_eq!(&out[..], b"RDY count 51 out of range 0-50");
    }

    #[test]
    fn error_is_small() {
        // Keeps `Result<Option<Command>, ProtoError>` cheap to return.
        assert!(std::mem::size_of::<ProtoError>() <= 64);
    }
}
