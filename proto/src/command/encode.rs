//! Client-side command encoders, used by tests, the load generator and any
//! Rust client. Each appends one complete command to `buf`, so commands can
//! be pipelined into one write. They encode what they are given, invalid
//! names and negative numbers included, so tests can provoke every server
//! error; sizes are written as nsqd reads them, 4-byte big-endian, and a
//! body over `i32::MAX` bytes (never valid) would be mis-framed.

use bytes::{BufMut, BytesMut};

use crate::message::MessageId;

/// The 4-byte protocol magic a client sends first.
pub fn magic(buf: &mut BytesMut) {
    buf.put_slice(crate::MAGIC_V2);
}

/// `IDENTIFY\n[size][json]`.
pub fn identify(buf: &mut BytesMut, json: &[u8]) {
    with_body(buf, &[b"IDENTIFY"], json);
}

/// `AUTH\n[size][secret]`.
pub fn auth(buf: &mut BytesMut, secret: &[u8]) {
    with_body(buf, &[b"AUTH"], secret);
}

/// `SUB <topic> <channel>\n`.
pub fn sub(buf: &mut BytesMut, topic: &str, channel: &str) {
    line(buf, &[b"SUB", topic.as_bytes(), channel.as_bytes()]);
}

/// `PUB <topic>\n[size][body]`.
pub fn pub_(buf: &mut BytesMut, topic: &str, body: &[u8]) {
    with_body(buf, &[b"PUB", topic.as_bytes()], body);
}

/// `MPUB <topic>\n[size][count]([size][body])*`.
pub fn mpub<B: AsRef<[u8]>>(buf: &mut BytesMut, topic: &str, bodies: &[B]) {
    let body_len = 4 + bodies.iter().map(|b| 4 + b.as_ref().len()).sum::<usize>();
    line(buf, &[b"MPUB", topic.as_bytes()]);
    buf.reserve(4 + body_len);
    buf.put_u32(body_len as u32);
    buf.put_u32(bodies.len() as u32);
    for body in bodies {
        let body = body.as_ref();
        buf.put_u32(body.len() as u32);
        buf.put_slice(body);
    }
}

/// `DPUB <topic> <defer_ms>\n[size][body]`.
pub fn dpub(buf: &mut BytesMut, topic: &str, defer_ms: i64, body: &[u8]) {
    let mut num = NumBuf::new();
    with_body(
        buf,
        &[b"DPUB", topic.as_bytes(), num.format(defer_ms)],
        body,
    );
}

/// `RDY <count>\n`.
pub fn rdy(buf: &mut BytesMut, count: i64) {
    let mut num = NumBuf::new();
    line(buf, &[b"RDY", num.format(count)]);
}

/// `FIN <id>\n`.
pub fn fin(buf: &mut BytesMut, id: &MessageId) {
    line(buf, &[b"FIN", id.as_bytes()]);
}

/// `REQ <id> <timeout_ms>\n`.
pub fn req(buf: &mut BytesMut, id: &MessageId, timeout_ms: i64) {
    let mut num = NumBuf::new();
    line(buf, &[b"REQ", id.as_bytes(), num.format(timeout_ms)]);
}

/// `TOUCH <id>\n`.
pub fn touch(buf: &mut BytesMut, id: &MessageId) {
    line(buf, &[b"TOUCH", id.as_bytes()]);
}

/// `CLS\n`.
pub fn cls(buf: &mut BytesMut) {
    line(buf, &[b"CLS"]);
}

/// `NOP\n`.
pub fn nop(buf: &mut BytesMut) {
    line(buf, &[b"NOP"]);
}

fn line(buf: &mut BytesMut, words: &[&[u8]]) {
    buf.reserve(words.iter().map(|w| w.len() + 1).sum());
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b' ');
        }
        buf.put_slice(word);
    }
    buf.put_u8(b'\n');
}

fn with_body(buf: &mut BytesMut, words: &[&[u8]], body: &[u8]) {
    line(buf, words);
    buf.reserve(4 + body.len());
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
}

/// Decimal formatting on the stack, so encoding a command never allocates.
struct NumBuf([u8; 20]);

impl NumBuf {
    fn new() -> Self {
        NumBuf([0; 20])
    }

    fn format(&mut self, v: i64) -> &[u8] {
        let mut n = v.unsigned_abs();
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            i -= 1;
            self.0[i] = b'-';
        }
        &self.0[i..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for v in [0, 1, -1, 9, 10, 2500, i64::MAX, i64::MIN] {
            assert_eq!(NumBuf::new().format(v), v.to_string().as_bytes());
        }
    }
}
