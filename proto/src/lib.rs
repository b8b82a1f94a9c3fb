//! NSQ TCP protocol codecs (V2 for clients, V1 for nsqlookupd): pure, no I/O,
//! no async, no runtime.
//!
//! The broker, the load generator and the tests all use this crate, so the
//! two ends of every frame are written in one place and cannot drift apart.
//! The oracle for every byte is nsqd v1.3.0 (`nsqd/protocol_v2.go`,
//! `nsqd/message.go`, `internal/protocol/*.go`); error descriptions are the
//! exact text nsqd sends, because clients and nsqd's own tests compare them.
//!
//! # Layout
//!
//! * [`command`]: client-to-server commands. [`decode_command`] (incremental,
//!   zero-copy bodies), [`Limits`], [`Command`], [`command::encode`] (client side).
//! * [`frame`]: server-to-client frames. Encoders for response, error and
//!   message frames; [`frame::decode_frame`] (client side).
//! * [`message`]: [`MessageId`] and the message payload inside a type-2 frame
//!   (also the disk record body).
//! * [`identify`]: IDENTIFY request/response and AUTH response JSON.
//! * [`error`]: [`ErrorCode`] (`E_*`, fatal or not) and [`ProtoError`].
//! * [`names`]: topic and channel name rules.
//! * [`lookup`]: nsqlookupd's TCP protocol V1 (what nsqd sends, what
//!   nsqlookupd answers), encoder and decoder.
//! * [`go_quote`]: Go's `%q`, as nsqd echoes client input in errors.
//!
//! # Wire format
//!
//! A connection starts with a 4-byte magic from the client:
//!
//! ```text
//! "  V2"                                 two spaces, 'V', '2' (anything else: E_BAD_PROTOCOL, close)
//! ```
//!
//! Then the client sends commands: a text line, split on single spaces,
//! ended by `\n` (a `\r` before it is dropped). Five commands carry a body:
//!
//! ```text
//! IDENTIFY\n        [4B BE size][JSON]
//! AUTH\n            [4B BE size][secret]
//! SUB <topic> <channel>\n
//! PUB <topic>\n     [4B BE size][body]
//! MPUB <topic>\n    [4B BE size][4B BE count]([4B BE size][body])*count
//! DPUB <topic> <ms>\n[4B BE size][body]
//! RDY <count>\n     FIN <id>\n     REQ <id> <ms>\n     TOUCH <id>\n
//! CLS\n             NOP\n
//! ```
//!
//! The server answers with frames:
//!
//! ```text
//! [4B BE size = 4 + len(data)][4B BE type][data]
//!     type 0 response: "OK", "CLOSE_WAIT", "_heartbeat_", JSON
//!     type 1 error:    "E_CODE description"
//!     type 2 message:  [8B BE i64 timestamp ns][2B BE u16 attempts][16B ID][body]
//! ```
//!
//! # Rules this crate keeps
//!
//! * Decoding never panics and never consumes a partial command: `Ok(None)`
//!   means "append more bytes and call again".
//! * Bodies are `Bytes` slices of the read buffer; the only per-command
//!   allocations are the topic/channel `String`s and an MPUB's `Vec<Bytes>`.
//! * Encoders append to a caller-owned `BytesMut` so a connection can batch.

#![warn(missing_docs)]

pub mod command;
pub mod error;
pub mod frame;
mod gofmt;
pub mod identify;
pub mod lookup;
pub mod message;
pub mod names;

pub use command::{decode_command, decode_magic, Command, Limits, Verb};
pub use error::{ErrorCode, ProtoError};
pub use gofmt::go_quote;
pub use message::MessageId;

/// Protocol magic a V2 client sends first: two spaces, then `V2`.
pub const MAGIC_V2: &[u8; 4] = b"  V2";
