//! Message IDs and the message payload carried in a type-2 frame
//! (nsqd `message.go`).
//!
//! ```text
//! [ 8B BE i64 timestamp ns ][ 2B BE u16 attempts ][ 16B ID ][ body ... ]
//! ```
//!
//! nsqd writes exactly these bytes to its disk queue as well, so the same
//! encoding is the on-disk record body.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ProtoError;

/// Length of a message ID on the wire.
pub const MESSAGE_ID_LEN: usize = 16;

/// Encoded message payload length = 8 + 2 + 16 + body.len().
pub const MESSAGE_HEADER_LEN: usize = 26;

/// A 16-byte message ID. nsqd fills it with 16 lowercase hex ASCII chars;
/// clients treat it as opaque and echo it back in FIN/REQ/TOUCH, so it must
/// never contain a space or a newline. IDs parsed from client commands are
/// only length-checked (as nsqd does) and may hold any bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// The ID from exactly 16 bytes; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<MessageId> {
        <[u8; MESSAGE_ID_LEN]>::try_from(b).ok().map(MessageId)
    }

    /// The raw 16 bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.0
    }
}

/// The ID as text. nsqd IDs are ASCII; bytes of a client-supplied ID that
/// are not UTF-8 show as U+FFFD (use [`MessageId::as_bytes`] for exact output).
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::gofmt::Lossy(&self.0), f)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageId({:?})",
            crate::gofmt::Lossy(&self.0).to_string()
        )
    }
}

/// 64-bit -> 16 lowercase hex ASCII chars (as nsqd guid.Hex()).
pub fn id_from_u64(v: u64) -> MessageId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; MESSAGE_ID_LEN];
    for (i, byte) in v.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    MessageId(out)
}

/// Appends the message payload (no frame header): timestamp, attempts, ID,
/// body. `buf` grows once, by `MESSAGE_HEADER_LEN + body.len()`.
pub fn encode_message(
    buf: &mut BytesMut,
    timestamp_ns: i64,
    attempts: u16,
    id: &MessageId,
    body: &[u8],
) {
    buf.reserve(MESSAGE_HEADER_LEN + body.len());
    buf.put_i64(timestamp_ns);
    buf.put_u16(attempts);
    buf.put_slice(&id.0);
    buf.put_slice(body);
}

/// A message payload split into its fields. `body` shares the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedMessage {
    /// Publish time, nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// Delivery attempts so far, this delivery included.
    pub attempts: u16,
    /// The message ID.
    pub id: MessageId,
    /// The body, a zero-copy slice of the payload.
    pub body: Bytes,
}

/// Splits a message payload. Fails only when it is shorter than the 26-byte
/// header (nsqd `decodeMessage`: "invalid message buffer size (N)").
pub fn decode_message(mut payload: Bytes) -> Result<DecodedMessage, ProtoError> {
    if payload.len() < MESSAGE_HEADER_LEN {
        return Err(ProtoError::BadMessageLength { len: payload.len() });
    }
    let timestamp_ns = payload.get_i64();
    let attempts = payload.get_u16();
    let mut id = [0u8; MESSAGE_ID_LEN];
    payload.copy_to_slice(&mut id);
    Ok(DecodedMessage {
        timestamp_ns,
        attempts,
        id: MessageId(id),
        body: payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hex_matches_guid_hex() {
        assert_eq!(id_from_u64(0).as_bytes(), b"0000000000000000");
        assert_eq!(id_from_u64(u64::MAX).as_bytes(), b"ffffffffffffffff");
        assert_eq!(
            id_from_u64(0x0123_4567_89ab_cdef).as_bytes(),
            b"0123456789abcdef"
        );
        assert_eq!(id_from_u64(0xabc).to_string(), "0000000000000abc");
    }

    #[test]
    fn id_from_slice_checks_length() {
        assert_eq!(
            MessageId::from_slice(b"0123456789abcdef"),
            Some(id_from_u64(0x0123_4567_89ab_cdef))
        );
        assert_eq!(MessageId::from_slice(b"0123456789abcde"), None);
        assert_eq!(MessageId::from_slice(b"0123456789abcdef0"), None);
        assert_eq!(MessageId::from_slice(b""), None);
    }

    #[test]
    fn id_display_and_debug() {
        let id = MessageId(*b"abcdefgh\xff2345678");
        assert_eq!(id.to_string(), "abcdefgh\u{fffd}2345678");
        assert_eq!(
            format!("{:?}", id_from_u64(1)),
            "MessageId(\"0000000000000001\")"
        );
    }

    #[test]
    fn encode_golden() {
        let mut buf = BytesMut::new();
        let id = MessageId(*b"0123456789abcdef");
        encode_message(&mut buf, 0x0102_0304_0506_0708, 0x090a, &id, b"hi");
        let mut want = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        want.extend_from_slice(b"0123456789abcdefhi");
        assert_eq!(&buf[..], &want[..]);
        assert_eq!(buf.len(), MESSAGE_HEADER_LEN + 2);
    }

    #[test]
    fn round_trip() {
        let mut buf = BytesMut::new();
        let id = id_from_u64(42);
        encode_message(&mut buf, -5, 3, &id, b"body bytes");
        let msg = decode_message(buf.freeze()).unwrap();
        assert_eq!(msg.timestamp_ns, -5);
        assert_eq!(msg.attempts, 3);
        assert_eq!(msg.id, id);
        assert_eq!(&msg.body[..], b"body bytes");

        let mut empty = BytesMut::new();
        encode_message(&mut empty, 1, 1, &id, b"");
        assert!(decode_message(empty.freeze()).unwrap().body.is_empty());
    }

    #[test]
    fn short_payload_is_an_error() {
        let err = decode_message(Bytes::from_static(&[0; 25])).unwrap_err();
        assert_eq!(err.description(), "invalid message buffer size (25)");
    }
}
