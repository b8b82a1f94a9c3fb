//! Connection compression negotiated by IDENTIFY: snappy (the framing
//! format) and raw deflate, as nsqd's `protocol_v2.go` sets up with
//! golang/snappy and Go's `compress/flate`.
//!
//! Why push-based: Go wraps the socket in `io.Reader`/`io.Writer` layers,
//! which block. Our per-connection loop is async and owns the socket (and
//! possibly a TLS session) itself, so the codecs here never do I/O: the
//! loop [`Decoder::feed`]s whatever bytes it read, in arbitrary pieces, and
//! pulls plaintext out with [`Decoder::decode`]; the writer hands a batch of
//! frames to [`Encoder::encode`] and writes the bytes it appends. Nothing
//! here waits, and all state is plain owned data, so both types are `Send`
//! and move with a connection handed to another core.
//!
//! Bounds: a snappy data chunk must be complete before it is decoded, so the
//! decoder buffers at most one chunk (about 76 KiB) beyond what the caller
//! fed in excess; skippable chunks are dropped as they arrive, never
//! buffered whole. Deflate input is consumed as it comes.

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Which compression IDENTIFY negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Snappy framing format (`snappy: true`).
    Snappy,
    /// Raw deflate (`deflate: true`) at the negotiated `deflate_level`.
    Deflate { level: u32 },
}

/// A corrupt or unsupported compressed stream; the text is for logs.
#[derive(Debug)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

fn snappy_err(msg: impl fmt::Display) -> CodecError {
    CodecError(format!("snappy: {msg}"))
}

fn deflate_err(msg: impl fmt::Display) -> CodecError {
    CodecError(format!("deflate: {msg}"))
}

// Both move with their connection between cores.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Decoder>();
    assert_send::<Encoder>();
    assert_send::<CodecError>();
};

// ---------------------------------------------------------------------------
// Snappy framing format
// (https://github.com/google/snappy/blob/main/framing_format.txt)
// ---------------------------------------------------------------------------

/// Most uncompressed bytes in one data chunk.
const MAX_BLOCK: usize = 65536;
/// Chunk header: 1 byte type, 3 bytes little-endian length.
const HEADER_LEN: usize = 4;
/// The masked crc32c that starts every data chunk's body.
const CRC_LEN: usize = 4;
/// Largest raw block a conforming compressor makes from `MAX_BLOCK` bytes
/// (`snap::raw::max_compress_len(65536)`, golang/snappy's
/// `maxEncodedLenOfMaxBlockSize`): the bound golang/snappy's reader puts on
/// a compressed chunk, so we accept exactly what nsqd accepts.
const MAX_COMPRESSED_BLOCK: usize = 32 + MAX_BLOCK + MAX_BLOCK / 6;

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_ID: u8 = 0xff;
const STREAM_ID_BODY: &[u8; 6] = b"sNaPpY";
/// The whole stream identifier chunk.
const STREAM_ID_CHUNK: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";

/// The framing format's checksum: crc32c, rotated right 15 bits and offset so that a crc
/// of data containing crcs stays well distributed.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// What the head of the snappy input buffer holds.
enum Chunk {
    /// Not a whole header, or not a whole data chunk, yet.
    Incomplete,
    /// A complete stream identifier chunk (10 bytes).
    StreamId,
    /// A skippable chunk's header; its `len` body bytes follow (maybe not
    /// all buffered yet).
    Skip { len: usize },
    /// A complete compressed (0x00) or uncompressed (0x01) chunk, body
    /// `len` bytes after the header.
    Data { kind: u8, len: usize },
}

/// Classifies the chunk at the head of `buf`; errors for anything that can
/// never become valid however many bytes follow.
fn next_chunk(buf: &[u8], seen_stream_id: bool) -> Result<Chunk, CodecError> {
    let Some(&kind) = buf.first() else {
        return Ok(Chunk::Incomplete);
    };
    // golang/snappy (nsqd's side) rejects a stream whose first chunk is not
    // the identifier; decide as soon as the type byte is in.
    if !seen_stream_id && kind != CHUNK_STREAM_ID {
        return Err(snappy_err(format!(
            "stream does not start with the stream identifier (chunk type {kind:#04x})"
        )));
    }
    if buf.len() < HEADER_LEN {
        return Ok(Chunk::Incomplete);
    }
    let len = usize::from(buf[1]) | usize::from(buf[2]) << 8 | usize::from(buf[3]) << 16;
    let complete = buf.len() >= HEADER_LEN + len;
    match kind {
        CHUNK_STREAM_ID => {
            if len != STREAM_ID_BODY.len() {
                return Err(snappy_err(format!(
                    "stream identifier chunk has length {len}, want 6"
                )));
            }
            if !complete {
                return Ok(Chunk::Incomplete);
            }
            if &buf[HEADER_LEN..HEADER_LEN + len] != STREAM_ID_BODY {
                return Err(snappy_err("stream identifier chunk is not \"sNaPpY\""));
            }
            Ok(Chunk::StreamId)
        }
        CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
            let max_body = if kind == CHUNK_COMPRESSED {
                MAX_COMPRESSED_BLOCK
            } else {
                MAX_BLOCK
            };
            if len < CRC_LEN || len > CRC_LEN + max_body {
                return Err(snappy_err(format!(
                    "chunk type {kind:#04x} has invalid length {len}"
                )));
            }
            if !complete {
                return Ok(Chunk::Incomplete);
            }
            Ok(Chunk::Data { kind, len })
        }
        0x02..=0x7f => Err(snappy_err(format!(
            "reserved unskippable chunk type {kind:#04x}"
        ))),
        // 0x80..=0xfe: reserved skippable, and 0xfe padding.
        _ => Ok(Chunk::Skip { len }),
    }
}

struct SnappyDecoder {
    /// Received bytes not yet decoded, starting at a chunk boundary unless
    /// `skip` > 0.
    buf: BytesMut,
    /// Body bytes of a skippable chunk still to drop as they arrive.
    skip: usize,
    seen_stream_id: bool,
    raw: snap::raw::Decoder,
}

impl SnappyDecoder {
    /// Drops as much of a pending skippable body as is buffered.
    fn drop_skipped(&mut self) {
        let n = self.skip.min(self.buf.len());
        self.buf.advance(n);
        self.skip -= n;
    }

    fn decode(&mut self, out: &mut BytesMut, max: usize) -> Result<usize, CodecError> {
        let mut produced = 0;
        loop {
            self.drop_skipped();
            if self.skip > 0 {
                break;
            }
            match next_chunk(&self.buf, self.seen_stream_id)? {
                Chunk::Incomplete => break,
                Chunk::StreamId => {
                    self.seen_stream_id = true;
                    self.buf.advance(STREAM_ID_CHUNK.len());
                }
                Chunk::Skip { len } => {
                    self.buf.advance(HEADER_LEN);
                    self.skip = len;
                }
                // Whole chunks only: stop once `max` is reached, so we
                // overshoot by less than one chunk.
                Chunk::Data { .. } if produced >= max => break,
                Chunk::Data { kind, len } => {
                    produced += self.decode_data(kind, len, out)?;
                    self.buf.advance(HEADER_LEN + len);
                }
            }
        }
        Ok(produced)
    }

    /// Decodes the complete data chunk at the head of `buf` (not consuming
    /// it), appending its bytes to `out` only if its checksum holds.
    fn decode_data(
        &mut self,
        kind: u8,
        len: usize,
        out: &mut BytesMut,
    ) -> Result<usize, CodecError> {
        let body = &self.buf[HEADER_LEN..HEADER_LEN + len];
        let (crc, data) = body.split_at(CRC_LEN);
        let want_crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let start = out.len();
        if kind == CHUNK_UNCOMPRESSED {
            // `next_chunk` bounded `data` to MAX_BLOCK.
            if masked_crc(data) != want_crc {
                return Err(snappy_err("checksum mismatch in uncompressed chunk"));
            }
            out.extend_from_slice(data);
            return Ok(data.len());
        }
        let n = snap::raw::decompress_len(data).map_err(snappy_err)?;
        if n > MAX_BLOCK {
            return Err(snappy_err(format!(
                "compressed chunk decodes to {n} bytes, more than {MAX_BLOCK}"
            )));
        }
        out.resize(start + n, 0);
        let result = self.raw.decompress(data, &mut out[start..]);
        let ok = match result {
            Ok(written) if written == n => masked_crc(&out[start..]) == want_crc,
            _ => false,
        };
        if !ok {
            out.truncate(start);
            return Err(match result {
                Err(e) => snappy_err(e),
                Ok(_) => snappy_err("checksum mismatch in compressed chunk"),
            });
        }
        Ok(n)
    }

    /// Whether a decode would produce output or an error without more
    /// input: scans past what `decode` would skip silently.
    fn has_pending(&self) -> bool {
        let mut pos = self.skip;
        let mut seen = self.seen_stream_id;
        while pos < self.buf.len() {
            match next_chunk(&self.buf[pos..], seen) {
                Err(_) | Ok(Chunk::Data { .. }) => return true,
                Ok(Chunk::Incomplete) => return false,
                Ok(Chunk::StreamId) => {
                    seen = true;
                    pos += STREAM_ID_CHUNK.len();
                }
                Ok(Chunk::Skip { len }) => pos += HEADER_LEN + len,
            }
        }
        false
    }
}

struct SnappyEncoder {
    wrote_stream_id: bool,
    raw: snap::raw::Encoder,
}

impl SnappyEncoder {
    fn encode(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
        for block in input.chunks(MAX_BLOCK) {
            if !self.wrote_stream_id {
                out.extend_from_slice(STREAM_ID_CHUNK);
                self.wrote_stream_id = true;
            }
            let crc = masked_crc(block);
            // Compress straight into `out` after room for the header and
            // crc; fall back to an uncompressed chunk like golang/snappy
            // when that saves less than 1/8.
            let start = out.len();
            let body = HEADER_LEN + CRC_LEN;
            out.resize(start + body + snap::raw::max_compress_len(block.len()), 0);
            let n = self
                .raw
                .compress(block, &mut out[start + body..])
                .map_err(snappy_err)?;
            let (kind, data_len) = if n < block.len() - block.len() / 8 {
                out.truncate(start + body + n);
                (CHUNK_COMPRESSED, n)
            } else {
                out.truncate(start + body);
                out.extend_from_slice(block);
                (CHUNK_UNCOMPRESSED, block.len())
            };
            // At most CRC_LEN + MAX_COMPRESSED_BLOCK: fits in 24 bits.
            let chunk_len = (CRC_LEN + data_len) as u32;
            let header = &mut out[start..start + body];
            header[0] = kind;
            header[1..4].copy_from_slice(&chunk_len.to_le_bytes()[..3]);
            header[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Raw deflate
// ---------------------------------------------------------------------------

/// Most output space offered to inflate at a time.
const DEFLATE_STEP: usize = 64 * 1024;

struct DeflateDecoder {
    z: Decompress,
    /// Received bytes inflate has not consumed yet.
    buf: BytesMut,
    /// The last inflate call filled its output: it may hold more output
    /// internally (say, the rest of a long match) even with no input.
    out_full: bool,
    /// The last inflate call made no progress on `buf`; cleared by `feed`.
    /// Keeps `has_pending` from promising output that cannot come.
    stalled: bool,
    /// The final block has been decoded; any further input is an error.
    ended: bool,
}

impl DeflateDecoder {
    fn decode(&mut self, out: &mut BytesMut, max: usize) -> Result<usize, CodecError> {
        let mut produced = 0;
        while produced < max {
            if self.ended {
                if !self.buf.is_empty() {
                    return Err(deflate_err("data after the end of the stream"));
                }
                break;
            }
            if !self.out_full && (self.buf.is_empty() || self.stalled) {
                break;
            }
            // Inflate writes into zeroed room past `out`'s end, bounded so
            // that the total never exceeds `max`; then the unused part is cut.
            let room = (max - produced).min(DEFLATE_STEP);
            let start = out.len();
            out.resize(start + room, 0);
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(&self.buf, &mut out[start..], FlushDecompress::None);
            // Both deltas are bounded by the slices just passed in.
            let consumed = (self.z.total_in() - in0) as usize;
            let written = (self.z.total_out() - out0) as usize;
            out.truncate(start + written);
            self.buf.advance(consumed);
            produced += written;
            self.out_full = written == room;
            self.stalled = consumed == 0 && written == 0;
            match status {
                Err(e) => return Err(deflate_err(e)),
                Ok(Status::StreamEnd) => {
                    self.ended = true;
                    self.out_full = false;
                }
                Ok(Status::Ok | Status::BufError) => {}
            }
        }
        Ok(produced)
    }

    fn has_pending(&self) -> bool {
        if self.ended {
            // The next decode reports the trailing garbage.
            return !self.buf.is_empty();
        }
        self.out_full || (!self.buf.is_empty() && !self.stalled)
    }
}

struct DeflateEncoder {
    z: Compress,
}

impl DeflateEncoder {
    fn encode(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
        loop {
            // Room for the input stored uncompressed plus block overheads
            // and the sync marker; the loop covers any shortfall.
            let room = (input.len() + input.len() / 64 + 64).clamp(256, DEFLATE_STEP);
            let start = out.len();
            out.resize(start + room, 0);
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .compress(input, &mut out[start..], FlushCompress::Sync);
            let consumed = (self.z.total_in() - in0) as usize;
            let written = (self.z.total_out() - out0) as usize;
            out.truncate(start + written);
            input = &input[consumed..];
            status.map_err(deflate_err)?;
            // The sync flush is complete once all input is taken and the
            // compressor left output room unused.
            if input.is_empty() && written < room {
                return Ok(());
            }
            if consumed == 0 && written == 0 {
                return Err(deflate_err("compressor made no progress"));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

enum DecoderInner {
    Snappy(SnappyDecoder),
    Deflate(DeflateDecoder),
}

/// Decompresses what a peer sends; fed raw socket bytes in any pieces.
pub struct Decoder {
    codec: Codec,
    inner: DecoderInner,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffered = match &self.inner {
            DecoderInner::Snappy(s) => s.buf.len(),
            DecoderInner::Deflate(d) => d.buf.len(),
        };
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .field("buffered", &buffered)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    pub fn new(codec: Codec) -> Decoder {
        let inner = match codec {
            Codec::Snappy => DecoderInner::Snappy(SnappyDecoder {
                buf: BytesMut::new(),
                skip: 0,
                seen_stream_id: false,
                raw: snap::raw::Decoder::new(),
            }),
            Codec::Deflate { .. } => DecoderInner::Deflate(DeflateDecoder {
                z: Decompress::new(false),
                buf: BytesMut::new(),
                out_full: false,
                stalled: false,
                ended: false,
            }),
        };
        Decoder { codec, inner }
    }

    /// Append compressed bytes received from the peer.
    pub fn feed(&mut self, input: &[u8]) {
        match &mut self.inner {
            DecoderInner::Snappy(s) => s.buf.put_slice(input),
            DecoderInner::Deflate(d) => {
                d.buf.put_slice(input);
                d.stalled = false;
            }
        }
    }

    /// Decompress buffered input, appending to `out` about at most `max`
    /// bytes: snappy decodes whole chunks and may exceed `max` by less than
    /// one chunk (65536 bytes); deflate stops exactly at `max`. A `max` of
    /// 0 is taken as 1, so that `Ok(0)` always means more input is needed.
    /// Returns the number of bytes appended. Err on a corrupt stream, after
    /// which the decoder is unusable (the connection should be closed).
    pub fn decode(&mut self, out: &mut BytesMut, max: usize) -> Result<usize, CodecError> {
        let max = max.max(1);
        match &mut self.inner {
            DecoderInner::Snappy(s) => s.decode(out, max),
            DecoderInner::Deflate(d) => d.decode(out, max),
        }
    }

    /// Input is buffered that may still produce output (or an error)
    /// without more input, so the caller decodes again before reading the
    /// socket. Never false while output is pending; it can be true once
    /// when none is (deflate cannot tell a full output buffer from more to
    /// come), and that decode returns `Ok(0)`. Always false right after a
    /// `decode` returned `Ok(0)` until the next `feed`, so a loop of
    /// `decode` while `has_pending` ends.
    pub fn has_pending(&self) -> bool {
        match &self.inner {
            DecoderInner::Snappy(s) => s.has_pending(),
            DecoderInner::Deflate(d) => d.has_pending(),
        }
    }
}

enum EncoderInner {
    /// Boxed: snap's encoder carries a 2 KiB hash table.
    Snappy(Box<SnappyEncoder>),
    Deflate(DeflateEncoder),
}

/// Compresses what we send; each `encode` is a flush.
pub struct Encoder {
    codec: Codec,
    inner: EncoderInner,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// A deflate `level` above 9 is taken as 9 (IDENTIFY caps it lower).
    pub fn new(codec: Codec) -> Encoder {
        let inner = match codec {
            Codec::Snappy => EncoderInner::Snappy(Box::new(SnappyEncoder {
                wrote_stream_id: false,
                raw: snap::raw::Encoder::new(),
            })),
            Codec::Deflate { level } => EncoderInner::Deflate(DeflateEncoder {
                z: Compress::new(Compression::new(level.min(9)), false),
            }),
        };
        Encoder { codec, inner }
    }

    /// Compress `input` and append to `out` so that the peer can decode
    /// everything written so far (a flush). Snappy: the stream identifier
    /// before the first chunk ever, then chunks of at most 65536
    /// uncompressed bytes, each compressed (0x00) or, when compression saves
    /// less than 1/8, uncompressed (0x01), as golang/snappy writes them.
    /// Deflate: raw deflate ending each call with a sync flush, like Go's
    /// `flate.Writer.Flush`. Empty input writes nothing for snappy.
    pub fn encode(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
        match &mut self.inner {
            EncoderInner::Snappy(s) => s.encode(input, out),
            EncoderInner::Deflate(d) => d.encode(input, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    const SIZES: [usize; 6] = [0, 1, 100, 65536, 65537, 300_000];
    const CODECS: [Codec; 5] = [
        Codec::Snappy,
        Codec::Deflate { level: 0 },
        Codec::Deflate { level: 1 },
        Codec::Deflate { level: 6 },
        Codec::Deflate { level: 9 },
    ];

    /// Deterministic xorshift bytes: incompressible.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Text-like bytes with some variation: compressible.
    fn text(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut i = 0u32;
        while v.len() < n {
            v.extend_from_slice(
                format!("{{\"id\":{i},\"topic\":\"events\",\"ok\":true}}\n").as_bytes(),
            );
            i += 1;
        }
        v.truncate(n);
        v
    }

    fn inputs() -> Vec<Vec<u8>> {
        SIZES
            .iter()
            .flat_map(|&n| [random(n, n as u64 + 7), text(n)])
            .collect()
    }

    fn encode(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        Encoder::new(codec).encode(data, &mut out).unwrap();
        out.to_vec()
    }

    /// Decodes until more input is needed; checks `has_pending` agrees.
    fn drain(dec: &mut Decoder, max: usize, out: &mut BytesMut) -> Result<(), CodecError> {
        loop {
            let before = out.len();
            let n = dec.decode(out, max)?;
            assert_eq!(out.len() - before, n);
            if n == 0 {
                assert!(!dec.has_pending(), "{dec:?} pending after Ok(0)");
                return Ok(());
            }
        }
    }

    fn decode_in_pieces(codec: Codec, data: &[u8], piece: usize) -> Result<Vec<u8>, CodecError> {
        let mut dec = Decoder::new(codec);
        let mut out = BytesMut::new();
        for p in data.chunks(piece.max(1)) {
            dec.feed(p);
            drain(&mut dec, usize::MAX, &mut out)?;
        }
        Ok(out.to_vec())
    }

    #[test]
    fn round_trips() {
        for codec in CODECS {
            for data in inputs() {
                let enc = encode(codec, &data);
                let got = decode_in_pieces(codec, &enc, enc.len()).unwrap();
                assert!(got == data, "{codec:?} len {}", data.len());
            }
        }
    }

    #[test]
    fn fed_one_byte_at_a_time() {
        for codec in CODECS {
            for data in [random(70_000, 3), text(70_000), text(100)] {
                let enc = encode(codec, &data);
                let got = decode_in_pieces(codec, &enc, 1).unwrap();
                assert!(got == data, "{codec:?} len {}", data.len());
            }
        }
    }

    #[test]
    fn small_max_gives_partial_output() {
        for codec in CODECS {
            for data in [text(300_000), random(300_000, 9)] {
                let enc = encode(codec, &data);
                let mut dec = Decoder::new(codec);
                dec.feed(&enc);
                let mut out = BytesMut::new();
                let max = 1000;
                loop {
                    let n = dec.decode(&mut out, max).unwrap();
                    if n == 0 {
                        break;
                    }
                    match codec {
                        Codec::Snappy => assert!(n < max + MAX_BLOCK),
                        Codec::Deflate { .. } => assert!(n <= max),
                    }
                    // More to come: the caller is told to decode again.
                    // (Inflate may also say so once at the very end, when it
                    // cannot tell its output is complete; that decode then
                    // returns Ok(0).)
                    if out.len() < data.len() {
                        assert!(dec.has_pending(), "{codec:?}");
                    }
                }
                assert!(!dec.has_pending());
                assert!(out[..] == data[..], "{codec:?}");
            }
        }
    }

    #[test]
    fn max_zero_still_makes_progress() {
        for codec in CODECS {
            let enc = encode(codec, b"hello");
            let mut dec = Decoder::new(codec);
            dec.feed(&enc);
            let mut out = BytesMut::new();
            assert!(dec.decode(&mut out, 0).unwrap() > 0);
        }
    }

    #[test]
    fn multiple_encodes_each_flush() {
        for codec in CODECS {
            let parts = [
                text(10),
                random(70_000, 5),
                Vec::new(),
                text(200_000),
                random(1, 1),
            ];
            let mut enc = Encoder::new(codec);
            let mut dec = Decoder::new(codec);
            let mut all = BytesMut::new();
            let mut got = BytesMut::new();
            let mut want = Vec::new();
            for part in &parts {
                let mut out = BytesMut::new();
                enc.encode(part, &mut out).unwrap();
                all.extend_from_slice(&out);
                // Everything written so far decodes without more bytes.
                dec.feed(&out);
                drain(&mut dec, usize::MAX, &mut got).unwrap();
                want.extend_from_slice(part);
                assert!(got[..] == want[..], "{codec:?}");
            }
            // And the concatenation decodes in one go.
            assert!(decode_in_pieces(codec, &all, all.len()).unwrap() == want);
        }
    }

    #[test]
    fn snappy_stream_id_once_and_chunk_kinds() {
        let mut enc = Encoder::new(Codec::Snappy);
        let mut out = BytesMut::new();
        enc.encode(&[], &mut out).unwrap();
        assert!(out.is_empty());
        enc.encode(&text(1000), &mut out).unwrap();
        assert_eq!(&out[..10], STREAM_ID_CHUNK);
        assert_eq!(out[10], CHUNK_COMPRESSED);
        let first = out.len();
        enc.encode(&random(1000, 2), &mut out).unwrap();
        assert_eq!(out[first], CHUNK_UNCOMPRESSED);
        assert_eq!(out[first + 1..first + 4], [0xec, 0x03, 0]); // 4 + 1000
        assert_eq!(
            out.windows(6).filter(|w| w == STREAM_ID_BODY).count(),
            1,
            "stream identifier written once"
        );
    }

    #[test]
    fn our_output_decodes_with_reference_readers() {
        for data in inputs() {
            let enc = encode(Codec::Snappy, &data);
            let mut got = Vec::new();
            snap::read::FrameDecoder::new(&enc[..])
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == data, "snappy len {}", data.len());

            for level in [1, 6, 9] {
                let enc = encode(Codec::Deflate { level }, &data);
                // A flushed, unfinished stream: read exactly what was sent.
                let mut got = vec![0; data.len()];
                flate2::read::DeflateDecoder::new(&enc[..])
                    .read_exact(&mut got)
                    .unwrap();
                assert!(got == data, "deflate len {}", data.len());
            }
        }
    }

    #[test]
    fn reference_writers_decode_with_ours() {
        for data in inputs() {
            let mut w = snap::write::FrameEncoder::new(Vec::new());
            w.write_all(&data).unwrap();
            w.flush().unwrap();
            let enc = w.into_inner().unwrap();
            assert!(decode_in_pieces(Codec::Snappy, &enc, 777).unwrap() == data);

            let codec = Codec::Deflate { level: 6 };
            let mut w = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
            w.write_all(&data).unwrap();
            w.flush().unwrap();
            let flushed = w.get_ref().clone();
            assert!(decode_in_pieces(codec, &flushed, 777).unwrap() == data);
            // A finished stream decodes too, and nothing may follow it.
            let finished = w.finish().unwrap();
            assert!(decode_in_pieces(codec, &finished, 777).unwrap() == data);
            let mut trailing = finished.clone();
            trailing.push(0);
            assert!(decode_in_pieces(codec, &trailing, 777).is_err());
        }
    }

    #[test]
    fn snappy_skippable_chunks_are_skipped() {
        let data = text(5000);
        let enc = encode(Codec::Snappy, &data);
        let mut s = enc[..10].to_vec();
        // Padding and a large reserved skippable chunk, then a repeated
        // stream identifier, then the data.
        s.extend_from_slice(&[0xfe, 3, 0, 0, 1, 2, 3]);
        s.extend_from_slice(&[0x80, 0, 0, 2]); // 128 KiB body
        s.extend(std::iter::repeat_n(0xaa, 128 * 1024));
        s.extend_from_slice(STREAM_ID_CHUNK);
        s.extend_from_slice(&enc[10..]);
        for piece in [1, 1000, s.len()] {
            assert!(decode_in_pieces(Codec::Snappy, &s, piece).unwrap() == data);
        }
        // The skipped body is dropped, not buffered.
        let mut dec = Decoder::new(Codec::Snappy);
        dec.feed(&s[..10 + 7 + 4 + 100_000]);
        let mut out = BytesMut::new();
        assert_eq!(dec.decode(&mut out, usize::MAX).unwrap(), 0);
        assert!(!dec.has_pending());
        assert!(format!("{dec:?}").contains("buffered: 0"));
    }

    fn snappy_err_for(stream: &[u8]) -> CodecError {
        for piece in [1, stream.len()] {
            assert!(decode_in_pieces(Codec::Snappy, stream, piece).is_err());
        }
        decode_in_pieces(Codec::Snappy, stream, stream.len()).unwrap_err()
    }

    #[test]
    fn snappy_corrupt_streams_are_errors() {
        let good = encode(Codec::Snappy, &text(1000));
        let good_raw = encode(Codec::Snappy, &random(1000, 4));

        // Bad crc, compressed and uncompressed chunks.
        for g in [&good, &good_raw] {
            let mut bad = g.clone();
            bad[14] ^= 1;
            assert!(
                snappy_err_for(&bad).0.contains("checksum"),
                "{}",
                snappy_err_for(&bad)
            );
            // Corrupt data with the crc intact.
            let mut bad = g.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x55;
            snappy_err_for(&bad);
        }

        // Reserved unskippable chunk type.
        let mut bad = good.clone();
        bad.extend_from_slice(&[0x02, 1, 0, 0, 0]);
        assert!(snappy_err_for(&bad).0.contains("reserved"));

        // Missing stream identifier; a skippable chunk first is no better.
        assert!(snappy_err_for(&good[10..]).0.contains("identifier"));
        let mut bad = vec![0xfe, 0, 0, 0];
        bad.extend_from_slice(&good);
        snappy_err_for(&bad);

        // Wrong identifier body or length.
        snappy_err_for(b"\xff\x06\x00\x00sNaPpZ");
        snappy_err_for(b"\xff\x07\x00\x00sNaPpYY");

        // Oversized data chunks, rejected from the header alone.
        let mut bad = good[..10].to_vec();
        bad.extend_from_slice(&[0x01, 0x05, 0x00, 0x01]); // 65541
        snappy_err_for(&bad);
        let mut bad = good[..10].to_vec();
        bad.extend_from_slice(&[0x00, 0xff, 0xff, 0xff]);
        snappy_err_for(&bad);
        // Too short for a crc.
        let mut bad = good[..10].to_vec();
        bad.extend_from_slice(&[0x00, 3, 0, 0, 1, 2, 3]);
        snappy_err_for(&bad);

        // A block claiming to decode to more than 65536 bytes.
        let mut bad = good[..10].to_vec();
        bad.extend_from_slice(&[0x00, 8, 0, 0, 0, 0, 0, 0, 0x81, 0x80, 0x08, 0]);
        assert!(snappy_err_for(&bad).0.contains("more than"));
    }

    #[test]
    fn deflate_corrupt_streams_are_errors() {
        let codec = Codec::Deflate { level: 6 };
        // BFINAL=1, BTYPE=11 (reserved).
        assert!(decode_in_pieces(codec, &[0xff; 64], 64).is_err());
        // A stored block whose LEN/NLEN disagree.
        assert!(decode_in_pieces(codec, &[0x01, 0x05, 0x00, 0x00, 0x00], 5).is_err());
        // Errors reach the caller through has_pending too.
        let mut dec = Decoder::new(codec);
        dec.feed(&[0xff; 8]);
        assert!(dec.has_pending());
        assert!(dec.decode(&mut BytesMut::new(), 100).is_err());
    }

    #[test]
    fn mutated_streams_never_panic() {
        let mut rng = random(100_000, 11).into_iter();
        for codec in [Codec::Snappy, Codec::Deflate { level: 6 }] {
            let good = {
                let mut v = encode(codec, &text(20_000));
                v.extend(encode(codec, &random(3000, 8)));
                v
            };
            for _ in 0..300 {
                let mut bad = good.clone();
                for _ in 0..1 + rng.next().unwrap() % 4 {
                    let i = (usize::from(rng.next().unwrap()) << 8
                        | usize::from(rng.next().unwrap()))
                        % bad.len();
                    bad[i] = rng.next().unwrap();
                }
                let piece = 1 + usize::from(rng.next().unwrap()) * 37;
                // Ok or Err, but it terminates without panicking.
                let _ = decode_in_pieces(codec, &bad, piece);
            }
            // Pure garbage too.
            for seed in 0..50 {
                let _ = decode_in_pieces(codec, &random(500, seed), 50);
            }
        }
    }

    #[test]
    fn codec_error_displays_its_text() {
        let e = snappy_err("x");
        assert_eq!(e.to_string(), "snappy: x");
        let _: &dyn std::error::Error = &e;
    }
}
