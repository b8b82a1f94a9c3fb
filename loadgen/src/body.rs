//! The message body loadgen writes, and how it is checked on arrival.
//!
//! ```text
//! 0..8    send time, ns on CLOCK_MONOTONIC (u64 BE): the intended send time
//!         in open-loop mode, so latency includes any stall of the client
//! 8..16   sequence number within the producer (u64 BE), from 0
//! 16..20  producer id (u32 BE)
//! 20..24  checksum (u32 BE) over the other fields, the length and the fill
//! 24..    fill: a fixed pattern per producer
//! ```
//!
//! The fill hash is computed once per producer, so stamping a body costs a
//! few multiplies; a consumer hashes the whole body, which is the check.

/// Smallest body that carries the header.
pub const HEADER_LEN: usize = 24;

/// Sequence numbers above this are refused as corrupt, so a body that passes
/// the checksum by chance cannot make the integrity bitmap allocate gigabytes.
pub const MAX_SEQ: u64 = 1 << 34;

const K: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(K)
}

/// Hash of the fill bytes (everything after the header), seeded with the
/// body length so a truncated body cannot match.
pub fn fill_hash(body_len: usize, fill: &[u8]) -> u64 {
    let mut h = mix(K, body_len as u64);
    let mut chunks = fill.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(word));
    }
    h
}

/// The checksum stored at bytes 20..24.
pub fn checksum(fill_hash: u64, send_ns: u64, seq: u64, producer: u32) -> u32 {
    let h = mix(mix(mix(fill_hash, send_ns), seq), u64::from(producer));
    (h ^ (h >> 32)) as u32
}

/// A body template for one producer: header zeroed, fill set.
pub fn template(size: usize, producer: u32) -> Vec<u8> {
    let mut body = vec![0u8; size.max(HEADER_LEN)];
    for (i, byte) in body.iter_mut().enumerate().skip(HEADER_LEN) {
        *byte = (i as u32).wrapping_mul(31).wrapping_add(producer) as u8;
    }
    body
}

/// Writes the header into `body`, whose fill hashes to `fill_hash`.
pub fn stamp(body: &mut [u8], fill_hash: u64, send_ns: u64, seq: u64, producer: u32) {
    body[0..8].copy_from_slice(&send_ns.to_be_bytes());
    body[8..16].copy_from_slice(&seq.to_be_bytes());
    body[16..20].copy_from_slice(&producer.to_be_bytes());
    let sum = checksum(fill_hash, send_ns, seq, producer);
    body[20..24].copy_from_slice(&sum.to_be_bytes());
}

/// The header of a body that passed its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, ns on CLOCK_MONOTONIC.
    pub send_ns: u64,
    /// Sequence number within the producer.
    pub seq: u64,
    /// Producer id.
    pub producer: u32,
}

/// Checks a received body; `None` means corrupt (or not written by loadgen).
pub fn verify(body: &[u8]) -> Option<Stamp> {
    let header = body.get(..HEADER_LEN)?;
    let field = |range: std::ops::Range<usize>| -> u64 {
        header[range]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    let send_ns = field(0..8);
    let seq = field(8..16);
    let producer = field(16..20) as u32;
    let sum = field(20..24) as u32;
    let want = checksum(
        fill_hash(body.len(), &body[HEADER_LEN..]),
        send_ns,
        seq,
        producer,
    );
    (sum == want && seq <= MAX_SEQ).then_some(Stamp {
        send_ns,
        seq,
        producer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_body_verifies() {
        for size in [24, 25, 31, 32, 100, 200, 1000] {
            let mut body = template(size, 7);
            let fh = fill_hash(body.len(), &body[HEADER_LEN..]);
            stamp(&mut body, fh, 123_456_789, 42, 7);
            assert_eq!(
                verify(&body),
                Some(Stamp {
                    send_ns: 123_456_789,
                    seq: 42,
                    producer: 7
                })
            );
        }
    }

    #[test]
    fn any_single_byte_change_is_caught() {
        let mut body = template(64, 3);
        let fh = fill_hash(body.len(), &body[HEADER_LEN..]);
        stamp(&mut body, fh, 99, 5, 3);
        for i in 0..body.len() {
            let mut bad = body.clone();
            bad[i] ^= 0x10;
            assert_eq!(verify(&bad), None, "flip at byte {i} not caught");
        }
        assert_eq!(verify(&body[..63]), None, "truncation not caught");
        assert_eq!(verify(&body[..10]), None, "short body not caught");
    }
}
