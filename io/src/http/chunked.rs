//! `Transfer-Encoding: chunked` bodies, read as Go's `internal.chunkedReader`
//! does.

use bytes::{BufMut, Bytes, BytesMut};

use super::request::{hex_value, trim_ows};
use super::MAX_HEADER_BYTES;

/// Go's `maxLineLength` for a chunk-size line; longer lines are malformed.
pub(super) const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum ChunkError {
    Malformed(&'static str),
    TooLarge,
    TrailerTooLarge,
}

/// Decodes a chunked body from `data` (which starts right after the header
/// section). Returns the body and the bytes used, or `Ok(None)` if incomplete.
///
/// The first pass only records chunk ranges, so an incomplete body costs a
/// scan of the chunk headers and no copying; the body is copied once, at the
/// end. Chunk lines follow Go's `internal.chunkedReader`: extensions after
/// `;` are ignored, trailing whitespace is trimmed, data must end in CRLF,
/// and trailer fields are skipped.
pub(super) fn decode_chunked(
    data: &[u8],
    max_body: usize,
) -> Result<Option<(Bytes, usize)>, ChunkError> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut total = 0usize;
    let mut pos = 0usize;
    loop {
        let Some((line, next)) = take_line(data, pos, MAX_CHUNK_LINE)? else {
            return Ok(None);
        };
        let size = parse_chunk_size(line)?;
        pos = next;
        if size == 0 {
            break;
        }
        if size > max_body.saturating_sub(total) as u64 {
            return Err(ChunkError::TooLarge);
        }
        // size <= max_body, so it fits in usize.
        let size = size as usize;
        let Some(end) = pos.checked_add(size) else {
            return Err(ChunkError::TooLarge);
        };
        if data.len() < end + 2 {
            return Ok(None);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err(ChunkError::Malformed("malformed chunked encoding"));
        }
        ranges.push((pos, size));
        total += size;
        pos = end + 2;
    }
    // Trailer section: header lines until an empty line.
    let trailer_start = pos;
    loop {
        let limit = MAX_HEADER_BYTES.saturating_sub(pos - trailer_start);
        let line = match take_line(data, pos, limit) {
            Ok(line) => line,
            Err(_) => return Err(ChunkError::TrailerTooLarge),
        };
        let Some((line, next)) = line else {
            return Ok(None);
        };
        pos = next;
        if line.is_empty() {
            break;
        }
    }
    let mut body = BytesMut::with_capacity(total);
    for (start, len) in ranges {
        body.put_slice(&data[start..start + len]);
    }
    Ok(Some((body.freeze(), pos)))
}

/// The line starting at `pos` without its `\n` or `\r\n`, and the position
/// after it; `Ok(None)` if the line has not ended yet.
fn take_line(data: &[u8], pos: usize, limit: usize) -> Result<Option<(&[u8], usize)>, ChunkError> {
    let rest = data.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(at) if at < limit => {
            let line = &rest[..at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(Some((line, pos + at + 1)))
        }
        Some(_) => Err(ChunkError::Malformed("chunk line too long")),
        None if rest.len() >= limit => Err(ChunkError::Malformed("chunk line too long")),
        None => Ok(None),
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let line = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = trim_ows(line);
    // Go's parseHexUint: 1 to 16 hex digits.
    if digits.is_empty() || digits.len() > 16 {
        return Err(ChunkError::Malformed("bad chunk size"));
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        hex_value(d)
            .map(|v| acc << 4 | u64::from(v))
            .ok_or(ChunkError::Malformed("bad chunk size"))
    })
}
