//! Append-only disk segment store: the backend queue of a topic part or a
//! channel.
//!
//! Lives on: one shard. A [`DiskQueue`] is owned by the core that owns its
//! topic part or channel and is `!Send` in spirit (nothing here locks). It
//! must never panic on anything a file can contain and never loop without
//! making progress: every damaged byte ends in a counted, reported skip.
//!
//! # Layout
//! - [`queue`]: [`DiskQueue`]: append, read, commit, sync, roll, empty, delete.
//! - `recover`: `DiskQueue::open`: meta, tail scan, torn-tail cut, `.bad`.
//! - `format`: segment header, record framing (`len`, crc32c), meta file.
//! - [`storage`]: the [`Storage`] / [`StorageFile`] traits every byte goes
//!   through, plus [`FileStorage`] (real files; fallocate, pwrite or mmap).
//! - [`mem`]: [`MemStorage`], in memory, with a simulated reboot that drops
//!   what was never synced.
//! - [`faulty`]: [`Faulty`], a storage wrapper injecting short writes,
//!   ENOSPC, fsync failures, flipped bytes and truncated files.
//!
//! `FORMAT.md` beside this file has the on-disk format and the durability
//! sequence as numbered steps.

mod durable;
pub mod faulty;
mod file;
mod format;
pub mod mem;
pub mod queue;
mod recover;
pub mod storage;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod test_util;

use std::fmt;
use std::io;

pub use faulty::{Fault, FaultOp, Faulty};
pub use file::{FileHandle, FileStorage, ReadMode, WriteMode};
pub use mem::MemStorage;
pub use queue::{DataSync, DiskQueue};
pub use storage::{Storage, StorageFile};

/// A place in the queue: segment index, byte offset inside it, and the number
/// of records appended before it since the queue was created (`seq`).
///
/// Positions compare in queue order. `seq` is exact while nothing is damaged;
/// after records are lost to corruption it can run ahead of the truth until
/// the reader reaches the end and resynchronises it (see [`Stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Segment index (the number in the file name).
    pub segment: u64,
    /// Byte offset inside the segment.
    pub offset: u64,
    /// Records appended before this position.
    pub seq: u64,
}

/// One record returned by [`DiskQueue::read_next`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The payload exactly as appended.
    pub data: bytes::Bytes,
    /// The position just after this record: pass it to [`DiskQueue::commit`]
    /// once this record and every earlier one are finished.
    pub next: Pos,
}

/// Queue settings. Defaults follow nsqd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Preallocated size of a segment in bytes (`--max-bytes-per-file`,
    /// default 104857600). A record that does not fit in what is left starts
    /// a new segment; a record larger than this gets a segment of its own.
    pub max_bytes_per_file: u64,
    /// Largest payload accepted by `append`, in bytes (default 64 MiB). Also
    /// the plausibility bound for lengths read back from disk.
    pub max_record_size: u32,
    /// `--sync-every`: [`DiskQueue::needs_sync`] turns true after this many
    /// appends, reads and commits (default 2500; 0 means only on roll).
    pub sync_every: u64,
    /// Bytes read per `read_at` call by the reader and the recovery scan
    /// (default 64 KiB): one syscall per ~300 records of 200 bytes.
    pub read_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_bytes_per_file: 100 * 1024 * 1024,
            max_record_size: 64 * 1024 * 1024,
            sync_every: 2500,
            read_buffer: 64 * 1024,
        }
    }
}

/// Errors of the segment store. Every I/O error names the operation and the
/// file, for the log line an on-call engineer reads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system (or an injected fault) failed an operation.
    #[error("{op} {name}: {source}")]
    Io {
        /// What was attempted (`"fallocate"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file (relative to the queue directory).
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `append` was given more than [`Options::max_record_size`] bytes.
    #[error("record of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The configured limit.
        max: u32,
    },
    /// `commit` was given a position past the read cursor.
    #[error("commit position {pos:?} is past the read cursor {read:?}")]
    BadPosition {
        /// The rejected position.
        pos: Pos,
        /// The read cursor at the time.
        read: Pos,
    },
    /// The queue name is empty or contains `/` or NUL.
    #[error("invalid queue name {0:?}")]
    BadName(String),
    /// Options that cannot work (for example a segment smaller than its header).
    #[error("invalid options: {0}")]
    BadOptions(&'static str),
}

impl Error {
    pub(crate) fn io(op: &'static str, name: &str, source: io::Error) -> Self {
        Error::Io {
            op,
            name: name.to_string(),
            source,
        }
    }

    /// True for a full disk (`ENOSPC`, or `EDQUOT`): the broker answers
    /// `E_PUB_FAILED` and reports unhealthy, and may retry later.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ),
            _ => false,
        }
    }
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The name of queue `queue`'s meta file. It is written when the queue is
/// created, before any record, and removed last when the queue is deleted:
/// whether it exists tells whether the queue has files worth opening,
/// without listing the directory (a blank first segment left by a crash
/// before the first meta write holds nothing and is recreated).
pub fn meta_file(queue: &str) -> String {
    format::meta_name(queue)
}

/// The queue a file of a queue directory belongs to (`t~0` for
/// `t~0.000000001.seg`, `t~0.meta`, ...); `None` for other files. Lets a
/// caller list the directory once and open each queue with its own files
/// ([`DiskQueue::open_listed`]).
pub fn queue_of(file: &str) -> Option<&str> {
    format::queue_of(file)
}

/// Counters of everything recovery and reading had to repair or skip, since
/// `open`. Each increment also produces an [`Event`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records whose checksum failed and that were skipped.
    pub corrupt_records: u64,
    /// Unsynced tails cut off at recovery (torn writes of a crash).
    pub torn_tails: u64,
    /// Segments set aside as `.bad` (unreadable header, or a record length
    /// that cannot be right, so the rest of the segment cannot be framed).
    pub bad_segments: u64,
    /// Meta files found unreadable at open (recovery then starts from the
    /// oldest segment: duplicates, no loss).
    pub meta_invalid: u64,
    /// Leftover segment files removed at open: already consumed (a delete
    /// lost in a crash) or created but never written.
    pub stray_segments: u64,
    /// Times `depth` had to be corrected when the reader reached the end
    /// (records lost to damage are not countable in advance).
    pub depth_resyncs: u64,
    /// Failed data syncs; the next append starts a new segment.
    pub sync_failures: u64,
}

/// Something recovery or reading repaired; drain with
/// [`DiskQueue::drain_events`] and log. `Display` gives a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A record failed its checksum and was skipped.
    CorruptRecord {
        /// Segment index.
        segment: u64,
        /// Offset of the record header.
        offset: u64,
        /// The (untrusted) length field.
        len: u32,
    },
    /// Recovery cut an unsynced torn tail off a segment.
    TornTail {
        /// Segment index.
        segment: u64,
        /// Offset where the segment now ends.
        offset: u64,
    },
    /// A segment was set aside.
    BadSegment {
        /// Segment index.
        segment: u64,
        /// Offset where reading stopped.
        offset: u64,
        /// Why.
        reason: &'static str,
        /// The new name, or `None` if the rename failed too.
        renamed_to: Option<String>,
    },
    /// The meta file could not be used.
    MetaInvalid {
        /// Why.
        reason: &'static str,
    },
    /// A leftover segment file was removed at open.
    StraySegment {
        /// Segment index.
        segment: u64,
        /// Why.
        reason: &'static str,
    },
    /// `depth` was corrected at the end of the queue.
    DepthResync {
        /// The depth the queue believed.
        believed: u64,
    },
    /// A data sync failed.
    SyncFailed {
        /// Segment index.
        segment: u64,
        /// The error text.
        error: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::CorruptRecord {
                segment,
                offset,
                len,
            } => write!(
                f,
                "segment {segment} offset {offset}: checksum mismatch, skipped record (len field {len})"
            ),
            Event::TornTail { segment, offset } => {
                write!(f, "segment {segment}: torn tail cut at offset {offset}")
            }
            Event::BadSegment {
                segment,
                offset,
                reason,
                renamed_to,
            } => match renamed_to {
                Some(to) => write!(
                    f,
                    "segment {segment} damaged at offset {offset} ({reason}); renamed to {to}"
                ),
                None => write!(
                    f,
                    "segment {segment} damaged at offset {offset} ({reason}); rename failed, skipped"
                ),
            },
            Event::MetaInvalid { reason } => {
                write!(f, "meta file unusable ({reason}); reading from the oldest segment")
            }
            Event::StraySegment { segment, reason } => {
                write!(f, "segment {segment} removed at open ({reason})")
            }
            Event::DepthResync { believed } => {
                write!(f, "depth corrected to 0 at end of queue (was {believed})")
            }
            Event::SyncFailed { segment, error } => {
                write!(f, "segment {segment}: fdatasync failed: {error}; rolling")
            }
        }
    }
}
