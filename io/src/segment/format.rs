//! Byte layout of segments, records and the meta file (see `FORMAT.md`).
//!
//! All integers are little-endian. Pure functions only: no I/O here.

use super::Pos;

/// First bytes of every segment file.
pub(crate) const SEG_MAGIC: [u8; 4] = *b"NSQS";
/// First bytes of the meta file.
pub(crate) const META_MAGIC: [u8; 4] = *b"NSQM";
/// Format version of segments and meta; bump on any incompatible change.
pub(crate) const VERSION: u16 = 1;
/// Segment header size; the first record starts here.
pub(crate) const SEG_HEADER_LEN: u64 = 32;
/// Record header: `len u32` + `crc u32`.
pub(crate) const REC_HEADER_LEN: u64 = 8;
/// Meta file size.
pub(crate) const META_LEN: usize = 4 + 2 + 2 + 6 * 8 + 4;

/// The segment header: magic, version, flags (0), index, crc32c of the first
/// 16 bytes, zero padding to 32 bytes (room for later fields).
pub(crate) fn encode_seg_header(index: u64) -> [u8; SEG_HEADER_LEN as usize] {
    let mut h = [0u8; SEG_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&SEG_MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&index.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Verdict on a segment header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
    /// All zero or missing: the segment was created but never written to disk.
    Blank,
    /// Anything else that is not a valid header for this index.
    Bad(&'static str),
}

pub(crate) fn check_seg_header(buf: &[u8], index: u64) -> HeaderCheck {
    if buf.len() < SEG_HEADER_LEN as usize {
        return if buf.iter().all(|&b| b == 0) {
            HeaderCheck::Blank
        } else {
            HeaderCheck::Bad("segment header cut short")
        };
    }
    let h = &buf[..SEG_HEADER_LEN as usize];
    if h.iter().all(|&b| b == 0) {
        return HeaderCheck::Blank;
    }
    if h[0..4] != SEG_MAGIC {
        return HeaderCheck::Bad("bad segment magic");
    }
    if crc32c::crc32c(&h[0..16]) != u32_at(h, 16) {
        return HeaderCheck::Bad("segment header checksum mismatch");
    }
    if u16::from_le_bytes([h[4], h[5]]) != VERSION {
        return HeaderCheck::Bad("unknown segment version");
    }
    if u64_at(h, 8) != index {
        return HeaderCheck::Bad("segment index does not match file name");
    }
    HeaderCheck::Ok
}

/// crc32c over the 4 length bytes then the payload, so a flipped length is
/// caught too.
pub(crate) fn record_crc(len: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// Append `[len][crc][payload]` to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, payload: &[u8]) {
    // Callers check the length against `max_record_size` (a u32) first.
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record header as read.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum RecHeader {
    /// Eight zero bytes: preallocated space never written, the end of data.
    /// (An empty record has a non-zero crc, so it is never confused with this.)
    End,
    Record {
        len: u32,
        crc: u32,
    },
}

pub(crate) fn parse_rec_header(b: &[u8]) -> RecHeader {
    let len = u32_at(b, 0);
    let crc = u32_at(b, 4);
    if len == 0 && crc == 0 {
        RecHeader::End
    } else {
        RecHeader::Record { len, crc }
    }
}

/// What the meta file holds: the committed cursor (where reading restarts)
/// and the write position known durable when it was written (where the
/// recovery tail scan starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub committed: Pos,
    pub write: Pos,
}

pub(crate) fn encode_meta(m: &Meta) -> [u8; META_LEN] {
    let mut b = [0u8; META_LEN];
    b[0..4].copy_from_slice(&META_MAGIC);
    b[4..6].copy_from_slice(&VERSION.to_le_bytes());
    let fields = [
        m.committed.segment,
        m.committed.offset,
        m.committed.seq,
        m.write.segment,
        m.write.offset,
        m.write.seq,
    ];
    for (i, v) in fields.iter().enumerate() {
        b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b[..META_LEN - 4]);
    b[META_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode_meta(b: &[u8]) -> Result<Meta, &'static str> {
    if b.len() != META_LEN {
        return Err("meta file has the wrong size");
    }
    if b[0..4] != META_MAGIC {
        return Err("bad meta magic");
    }
    if crc32c::crc32c(&b[..META_LEN - 4]) != u32_at(b, META_LEN - 4) {
        return Err("meta checksum mismatch");
    }
    if u16::from_le_bytes([b[4], b[5]]) != VERSION {
        return Err("unknown meta version");
    }
    let f = |i: usize| u64_at(b, 8 + i * 8);
    let m = Meta {
        committed: Pos {
            segment: f(0),
            offset: f(1),
            seq: f(2),
        },
        write: Pos {
            segment: f(3),
            offset: f(4),
            seq: f(5),
        },
    };
    if (m.committed.segment, m.committed.offset) > (m.write.segment, m.write.offset) {
        return Err("meta committed cursor is past its write position");
    }
    Ok(m)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// `<name>.<index:09>.seg`
pub(crate) fn seg_name(queue: &str, index: u64) -> String {
    format!("{queue}.{index:09}.seg")
}

/// `<name>.<index:09>.seg.bad`
pub(crate) fn bad_name(queue: &str, index: u64) -> String {
    format!("{queue}.{index:09}.seg.bad")
}

pub(crate) fn meta_name(queue: &str) -> String {
    format!("{queue}.meta")
}

pub(crate) fn meta_tmp_name(queue: &str) -> String {
    format!("{queue}.meta.tmp")
}

/// Kinds of file that belong to one queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OwnFile {
    Segment(u64),
    Bad(u64),
    Meta,
    MetaTmp,
}

/// Classify `file` as one of `queue`'s files. The index must be all digits,
/// so queue `t` never claims the files of queue `t.1` (`t.1.000000001.seg`).
pub(crate) fn parse_own_file(queue: &str, file: &str) -> Option<OwnFile> {
    let rest = file.strip_prefix(queue)?.strip_prefix('.')?;
    match rest {
        "meta" => return Some(OwnFile::Meta),
        "meta.tmp" => return Some(OwnFile::MetaTmp),
        _ => {}
    }
    let (digits, bad) = if let Some(d) = rest.strip_suffix(".seg") {
        (d, false)
    } else if let Some(d) = rest.strip_suffix(".seg.bad") {
        (d, true)
    } else {
        return None;
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let index = digits.parse().ok()?;
    Some(if bad {
        OwnFile::Bad(index)
    } else {
        OwnFile::Segment(index)
    })
}

/// The queue a file belongs to: `file` without the suffix of one of the
/// kinds of [`OwnFile`]; `None` for a file that is no queue's.
pub(crate) fn queue_of(file: &str) -> Option<&str> {
    if let Some(queue) = file.strip_suffix(".meta.tmp") {
        return Some(queue);
    }
    if let Some(queue) = file.strip_suffix(".meta") {
        return Some(queue);
    }
    let rest = file
        .strip_suffix(".seg")
        .or_else(|| file.strip_suffix(".seg.bad"))?;
    let (queue, digits) = rest.rsplit_once('.')?;
    (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())).then_some(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = encode_seg_header(7);
        assert_eq!(check_seg_header(&h, 7), HeaderCheck::Ok);
        assert!(matches!(check_seg_header(&h, 8), HeaderCheck::Bad(_)));
        assert_eq!(check_seg_header(&[0u8; 32], 7), HeaderCheck::Blank);
        assert_eq!(check_seg_header(&[], 7), HeaderCheck::Blank);
        let mut d = h;
        d[9] ^= 1;
        assert!(matches!(check_seg_header(&d, 7), HeaderCheck::Bad(_)));
    }

    #[test]
    fn queue_of_names_the_owner_of_every_kind_of_file() {
        for (file, queue) in [
            ("t~0.000000001.seg", Some("t~0")),
            ("t:c~.000000012.seg.bad", Some("t:c~")),
            ("t:c~acks.meta", Some("t:c~acks")),
            ("t.1.meta.tmp", Some("t.1")),
            ("t.1.000000001.seg", Some("t.1")),
            ("nsqd.dat", None),
            ("t.x.seg", None),
            ("t..seg", None),
        ] {
            assert_eq!(queue_of(file), queue, "{file}");
            if let Some(q) = queue {
                assert!(parse_own_file(q, file).is_some(), "{file}");
            }
        }
    }

    #[test]
    fn empty_record_is_not_the_end_marker() {
        let mut out = Vec::new();
        encode_record(&mut out, b"");
        assert_eq!(out.len(), 8);
        assert_ne!(parse_rec_header(&out), RecHeader::End);
        assert_eq!(parse_rec_header(&[0u8; 8]), RecHeader::End);
    }

    #[test]
    fn record_crc_covers_length() {
        assert_ne!(record_crc(3, b"abc"), record_crc(4, b"abc"));
    }

    #[test]
    fn meta_round_trip_and_damage() {
        let m = Meta {
            committed: Pos {
                segment: 1,
                offset: 40,
                seq: 3,
            },
            write: Pos {
                segment: 2,
                offset: 100,
                seq: 9,
            },
        };
        let b = encode_meta(&m);
        assert_eq!(decode_meta(&b), Ok(m));
        for i in 0..META_LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(decode_meta(&d).is_err(), "flip at {i} not caught");
        }
        assert!(decode_meta(&b[..10]).is_err());
    }

    #[test]
    fn file_names_do_not_collide_between_queues() {
        assert_eq!(
            parse_own_file("t", &seg_name("t", 5)),
            Some(OwnFile::Segment(5))
        );
        assert_eq!(
            parse_own_file("t", &bad_name("t", 5)),
            Some(OwnFile::Bad(5))
        );
        assert_eq!(parse_own_file("t", "t.meta"), Some(OwnFile::Meta));
        assert_eq!(parse_own_file("t", "t.meta.tmp"), Some(OwnFile::MetaTmp));
        assert_eq!(parse_own_file("t", &seg_name("t.1", 5)), None);
        assert_eq!(parse_own_file("t", "t.meta.000000001.seg"), None);
        assert_eq!(parse_own_file("t", "tx.000000001.seg"), None);
        assert_eq!(parse_own_file("t", "t..seg"), None);
        assert_eq!(
            parse_own_file("t:c", &seg_name("t:c", 12)),
            Some(OwnFile::Segment(12))
        );
    }
}
