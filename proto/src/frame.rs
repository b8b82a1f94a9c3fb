//! Server-to-client frames.
//!
//! ```text
//! [ 4B BE size = 4 + len(data) ][ 4B BE frame type ][ data ... ]
//! ```
//!
//! Frame types: 0 response (`OK`, `CLOSE_WAIT`, `_heartbeat_`, JSON),
//! 1 error (`"E_CODE description"`), 2 message (see [`crate::message`]).
//! Encoders append to a caller-owned buffer so a connection can batch many
//! frames into one write; [`decode_frame`] is the client side, used by tests
//! and the load generator.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ErrorCode, ProtoError};
use crate::message::{
    decode_message, encode_message, DecodedMessage, MessageId, MESSAGE_HEADER_LEN,
};

/// Bytes before a frame's data: the size and the frame type.
pub const FRAME_HEADER_LEN: usize = 8;

/// Response data nsqd sends as a heartbeat; clients answer with `NOP`.
pub const HEARTBEAT: &[u8] = b"_heartbeat_";

/// Response data for a successful IDENTIFY (without negotiation), SUB, PUB,
/// MPUB and DPUB, and after each connection upgrade.
pub const OK: &[u8] = b"OK";

/// Response data for CLS.
pub const CLOSE_WAIT: &[u8] = b"CLOSE_WAIT";

/// The frame type field.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Response to a command, or a heartbeat.
    Response = 0,
    /// `"E_CODE description"`.
    Error = 1,
    /// A message delivery.
    Message = 2,
}

impl FrameType {
    /// The frame type for a wire value, if it is one.
    pub fn from_i32(v: i32) -> Option<FrameType> {
        match v {
            0 => Some(FrameType::Response),
            1 => Some(FrameType::Error),
            2 => Some(FrameType::Message),
            _ => None,
        }
    }
}

fn put_header(buf: &mut BytesMut, frame_type: FrameType, data_len: usize) {
    buf.reserve(FRAME_HEADER_LEN + data_len);
    // nsqd writes uint32(len(data)) + 4; data this large cannot be buffered
    // anyway, so truncation is not a concern in practice.
    buf.put_u32((data_len as u32).wrapping_add(4));
    buf.put_i32(frame_type as i32);
}

/// Appends a response frame.
pub fn encode_response(buf: &mut BytesMut, data: &[u8]) {
    put_header(buf, FrameType::Response, data.len());
    buf.put_slice(data);
}

/// Appends the heartbeat response frame.
pub fn encode_heartbeat(buf: &mut BytesMut) {
    encode_response(buf, HEARTBEAT);
}

/// Appends an error frame with data `"E_CODE desc"` (just `"E_CODE"` when
/// `desc` is empty, which is how nsqd sends `E_BAD_PROTOCOL`).
pub fn encode_error(buf: &mut BytesMut, code: ErrorCode, desc: &str) {
    encode_error_bytes(buf, code, desc.as_bytes());
}

/// [`encode_error`] for a description that is not UTF-8, such as
/// `FIN <id> failed ...` with a client-supplied ID.
pub fn encode_error_bytes(buf: &mut BytesMut, code: ErrorCode, desc: &[u8]) {
    let code = code.as_str().as_bytes();
    let len = if desc.is_empty() {
        code.len()
    } else {
        code.len() + 1 + desc.len()
    };
    put_header(buf, FrameType::Error, len);
    buf.put_slice(code);
    if !desc.is_empty() {
        buf.put_u8(b' ');
        buf.put_slice(desc);
    }
}

/// Appends the error frame nsqd sends for `err`, with client bytes echoed
/// exactly (see [`ProtoError::write_description`]).
pub fn encode_proto_error(buf: &mut BytesMut, err: &ProtoError) {
    let mut desc = BytesMut::new();
    err.write_description(&mut desc);
    encode_error_bytes(buf, err.code(), &desc);
}

/// Appends a message frame: header, then the payload of
/// [`encode_message`]. One `reserve`, no intermediate buffer.
pub fn encode_message_frame(
    buf: &mut BytesMut,
    timestamp_ns: i64,
    attempts: u16,
    id: &MessageId,
    body: &[u8],
) {
    put_header(buf, FrameType::Message, MESSAGE_HEADER_LEN + body.len());
    encode_message(buf, timestamp_ns, attempts, id, body);
}

/// A decoded frame. Data is a zero-copy slice of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Type 0.
    Response(Bytes),
    /// Type 1: `"E_CODE description"`; see [`ErrorCode::from_frame_data`].
    Error(Bytes),
    /// Type 2.
    Message(DecodedMessage),
}

impl Frame {
    /// Whether this is the heartbeat response.
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, Frame::Response(data) if data[..] == *HEARTBEAT)
    }
}

/// client side: Ok(None) when incomplete; consumes the frame from buf.
///
/// `max_frame` bounds the size field (frame type plus data), so a corrupt or
/// hostile size cannot make the caller buffer without limit. On error
/// nothing is consumed; the stream cannot be resynchronised.
pub fn decode_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, ProtoError> {
    let Some(size_bytes) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let size = u32::from_be_bytes(*size_bytes);
    let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
    if size < 4 || size_usize > max_frame {
        return Err(ProtoError::BadFrameSize {
            size,
            max: max_frame,
        });
    }
    if buf.len() - 4 < size_usize {
        return Ok(None);
    }
    let Some(type_bytes) = buf.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return Ok(None);
    };
    let frame_type = i32::from_be_bytes(type_bytes);
    let Some(frame_type) = FrameType::from_i32(frame_type) else {
        return Err(ProtoError::UnknownFrameType(frame_type));
    };
    if frame_type == FrameType::Message && size_usize - 4 < MESSAGE_HEADER_LEN {
        return Err(ProtoError::BadMessageLength {
            len: size_usize - 4,
        });
    }
    let mut frame = buf.split_to(4 + size_usize).freeze();
    frame.advance(FRAME_HEADER_LEN);
    Ok(Some(match frame_type {
        FrameType::Response => Frame::Response(frame),
        FrameType::Error => Frame::Error(frame),
        FrameType::Message => Frame::Message(decode_message(frame)?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::id_from_u64;

    #[test]
    fn response_golden() {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, OK);
        assert_eq!(&buf[..], b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
        buf.clear();
        encode_heartbeat(&mut buf);
        assert_eq!(&buf[..], b"\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_");
        buf.clear();
        encode_response(&mut buf, b"");
        assert_eq!(&buf[..], b"\x00\x00\x00\x04\x00\x00\x00\x00");
    }

    #[test]
    fn error_golden() {
        let mut buf = BytesMut::new();
        encode_error(&mut buf, ErrorCode::Invalid, "invalid command ASDF");
        assert_eq!(
            &buf[..],
            b"\x00\x00\x00\x22\x00\x00\x00\x01E_INVALID invalid command ASDF"
        );
        buf.clear();
        encode_error(&mut buf, ErrorCode::BadProtocol, "");
        assert_eq!(&buf[..], b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL");
    }

    #[test]
    fn proto_error_frame_is_exact() {
        let mut buf = BytesMut::new();
        let err = ProtoError::InvalidCommand {
            name: b"\xff".to_vec(),
        };
        encode_proto_error(&mut buf, &err);
        assert_eq!(
            &buf[..],
            b"\x00\x00\x00\x1f\x00\x00\x00\x01E_INVALID invalid command \xff"
        );
        buf.clear();
        encode_proto_error(&mut buf, &ProtoError::BadProtocol { magic: *b"  V1" });
        assert_eq!(&buf[..], b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL");
    }

    #[test]
    fn message_frame_golden() {
        let mut buf = BytesMut::new();
        let id = MessageId(*b"0123456789abcdef");
        encode_message_frame(&mut buf, 0x0102_0304_0506_0708, 1, &id, b"hello");
        let mut want = b"\x00\x00\x00\x23\x00\x00\x00\x02".to_vec();
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 1]);
        want.extend_from_slice(b"0123456789abcdefhello");
        assert_eq!(&buf[..], &want[..]);
    }

    #[test]
    fn decode_round_trip_and_pipelining() {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, OK);
        encode_error(&mut buf, ErrorCode::FinFailed, "FIN x failed");
        encode_message_frame(&mut buf, 7, 2, &id_from_u64(9), b"body");
        encode_heartbeat(&mut buf);
        let whole = buf.clone();

        assert_eq!(
            decode_frame(&mut buf, 1024).unwrap(),
            Some(Frame::Response(Bytes::from_static(OK)))
        );
        assert_eq!(
            decode_frame(&mut buf, 1024).unwrap(),
            Some(Frame::Error(Bytes::from_static(
                b"E_FIN_FAILED FIN x failed"
            )))
        );
        let Some(Frame::Message(msg)) = decode_frame(&mut buf, 1024).unwrap() else {
            panic!("expected a message frame");
        };
        assert_eq!(msg.timestamp_ns, 7);
        assert_eq!(msg.attempts, 2);
        assert_eq!(msg.id, id_from_u64(9));
        assert_eq!(&msg.body[..], b"body");
        let hb = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert!(hb.is_heartbeat());
        assert_eq!(decode_frame(&mut buf, 1024).unwrap(), None);
        assert!(buf.is_empty());

        // One byte at a time gives the same frames.
        let mut fed = BytesMut::new();
        let mut frames = Vec::new();
        for &b in whole.iter() {
            fed.put_u8(b);
            while let Some(f) = decode_frame(&mut fed, 1024).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 4);
        assert!(fed.is_empty());
    }

    #[test]
    fn decode_errors() {
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x03\x00\x00\x00\x00"[..]);
        assert!(matches!(
            decode_frame(&mut buf, 100),
            Err(ProtoError::BadFrameSize { size: 3, max: 100 })
        ));
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x65"[..]);
        assert!(matches!(
            decode_frame(&mut buf, 100),
            Err(ProtoError::BadFrameSize { size: 101, .. })
        ));
        let mut buf = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
        assert!(decode_frame(&mut buf, usize::MAX).unwrap().is_none());
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x04\x00\x00\x00\x07"[..]);
        let err = decode_frame(&mut buf, 100).unwrap_err();
        assert_eq!(err.description(), "invalid frame type 7");
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x05\x00\x00\x00\x02x"[..]);
        let err = decode_frame(&mut buf, 100).unwrap_err();
        assert_eq!(err.description(), "invalid message buffer size (1)");
        // Errors consume nothing.
        assert_eq!(buf.len(), 9);
    }
}
