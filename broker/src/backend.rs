//! The disk queue behind a topic part or a channel: messages that do not fit
//! in memory (`--mem-queue-size`), or all of them with `--mem-queue-size=0`.
//!
//! Lives on: the shard owning the topic part or channel. Wraps
//! `nsq_io::segment::DiskQueue` (append-only, checksummed segments) with the
//! message record encoding and the bookkeeping that keeps a message on disk
//! until it is *finished*, not merely read: every record read is
//! "outstanding" until its owner calls `finish`, and the committed cursor
//! (what a restart resumes from) only moves past a contiguous prefix of
//! finished records. A crash therefore replays unfinished messages
//! (duplicates are possible, loss is not).
//!
//! Record layout, all big-endian:
//! `[kind:1][timestamp ns:8][attempts:2][id:16][deliver_at unix ns:8, 0 = none][body]`,
//! kind 1 = a message, kind 2 = a message that *supersedes* earlier records
//! with the same ID (a REQ with a delay rewrites the message with its due
//! time; after a restart the older copy must not be delivered early).
//! The deferral is stored as wall-clock time, so a deferred message keeps its
//! remaining delay across a restart (nsqd loses it, nsqio/nsq#1107).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use nsq_io::segment::{self, DataSync, DiskQueue, FileStorage, Pos};
use nsq_proto::message::MESSAGE_ID_LEN;
use nsq_proto::MessageId;

use crate::config::Options;
use crate::idmap::IdMap;
use crate::message::{now_ns, Message};

const KIND_MESSAGE: u8 = 1;
const KIND_SUPERSEDING: u8 = 2;
/// Where the header's fields start:
/// `[kind:1][timestamp ns:8][attempts:2][id:16][deliver_at unix ns:8]`.
const AT_TIMESTAMP: usize = 1;
const AT_ATTEMPTS: usize = AT_TIMESTAMP + 8;
const AT_ID: usize = AT_ATTEMPTS + 2;
const AT_DELIVER_AT: usize = AT_ID + MESSAGE_ID_LEN;
/// The header's length: the body follows.
const HEADER: usize = AT_DELIVER_AT + 8;
/// Smallest segment size of a disk queue, whatever `--max-bytes-per-file`
/// says.
pub const MIN_BYTES_PER_FILE: u64 = 4096;
/// Messages moved per batch when adopting an orphaned topic part.
const ADOPT_BATCH: usize = 1024;

/// Encode a message as a disk record.
pub fn encode(msg: &Message, buf: &mut BytesMut) {
    encode_kind(msg, buf, KIND_MESSAGE);
}

fn encode_kind(msg: &Message, buf: &mut BytesMut, kind: u8) {
    buf.reserve(HEADER + msg.body.len());
    buf.put_u8(kind);
    buf.put_i64(msg.timestamp);
    buf.put_u16(msg.attempts());
    buf.put_slice(&msg.id.0);
    let deliver_at = match msg.deliver_at() {
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            now_ns().saturating_add(left.as_nanos() as i64)
        }
        None => 0,
    };
    buf.put_i64(deliver_at);
    buf.put_slice(&msg.body);
}

/// Decode a record; `None` if it is not one of ours (never trusted blindly:
/// a checksum only proves the bytes are what was written).
pub fn decode(data: Bytes) -> Option<Message> {
    decode_kind(data).map(|(msg, _)| msg)
}

/// Decode a record and tell whether it supersedes earlier copies.
fn decode_kind(data: Bytes) -> Option<(Message, bool)> {
    if data.len() < HEADER || !matches!(data[0], KIND_MESSAGE | KIND_SUPERSEDING) {
        return None;
    }
    let superseding = data[0] == KIND_SUPERSEDING;
    let i64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[at..at + 8]);
        i64::from_be_bytes(b)
    };
    let timestamp = i64_at(AT_TIMESTAMP);
    let attempts = u16::from_be_bytes([data[AT_ATTEMPTS], data[AT_ATTEMPTS + 1]]);
    let id = MessageId::from_slice(&data[AT_ID..AT_DELIVER_AT])?;
    let deliver_ns = i64_at(AT_DELIVER_AT);
    let deliver_at = (deliver_ns > 0).then(|| {
        let left = deliver_ns.saturating_sub(now_ns()).max(0) as u64;
        Instant::now() + Duration::from_nanos(left)
    });
    Some((
        Message::published_at(id, data.slice(HEADER..), deliver_at, timestamp)
            .with_attempts(attempts),
        superseding,
    ))
}

/// A disk queue holding messages. Lives on: one shard.
#[derive(Debug)]
pub struct Backend {
    queue: DiskQueue<FileStorage>,
    /// Records read and not yet released, in read order (so sorted by
    /// position): start position and whether it is finished. The committed
    /// cursor follows the finished prefix. A deque with binary search beats
    /// a BTreeSet here: reads append at the back, releases are mostly near
    /// the front.
    outstanding: VecDeque<(Pos, bool)>,
    /// Unfinished entries in `outstanding`.
    unfinished: usize,
    /// Appends since the last data sync (`--sync-every` counts writes: they
    /// are what a crash can lose; reads and commits only cost duplicates,
    /// and the cursor file is written by the periodic sync).
    appends_since_sync: u64,
    sync_every: u64,
    scratch: BytesMut,
}

/// A message read from disk, with the position its owner passes to
/// [`Backend::finish`] when done with it.
#[derive(Debug)]
pub struct Read {
    /// The message.
    pub msg: Message,
    /// Where its record starts.
    pub pos: Pos,
}

/// Records that a later record with the same ID replaces: message ID to the
/// position of the superseding record.
pub type Superseded = IdMap<Pos>;

impl Backend {
    /// Find, in one pass over the unconsumed records of queue `name`, those
    /// that a later record replaces (a REQ with a delay, rewritten). The
    /// pass reads the backlog once (about 3M records/s) from a queue opened
    /// for it alone, so the caller's own open reads from the committed
    /// cursor.
    /// `files`: the directory's listing if the caller has one.
    pub fn scan_superseding(
        data_path: &Path,
        name: &str,
        opts: &Options,
        files: Option<&[String]>,
    ) -> segment::Result<Superseded> {
        let mut superseded = Superseded::default();
        let mut scan = Backend::open_listed(data_path, name, opts, files)?;
        loop {
            let pos = scan.queue.read_pos();
            let Some(record) = scan.queue.read_next()? else {
                break;
            };
            if let Some((msg, true)) = decode_kind(record.data) {
                superseded.insert(msg.id, pos);
            }
        }
        scan.queue.drain_events();
        Ok(superseded)
    }

    /// Open (or create and recover) the queue `name` in `data_path`.
    /// Blocking (open, fallocate, fsync, a listing): at startup, or on the
    /// blocking pool (`QueueStore`).
    pub fn open(data_path: &Path, name: &str, opts: &Options) -> segment::Result<Backend> {
        Backend::open_listed(data_path, name, opts, None)
    }

    /// [`open`](Self::open) with the directory's listing `files`, if the
    /// caller has one (one listing for many queues; none for a queue known
    /// to have no file yet); `None` lists it.
    pub fn open_listed(
        data_path: &Path,
        name: &str,
        opts: &Options,
        files: Option<&[String]>,
    ) -> segment::Result<Backend> {
        let storage = storage(data_path, name)?;
        let seg_opts = segment::Options {
            max_bytes_per_file: opts.max_bytes_per_file.max(MIN_BYTES_PER_FILE),
            // A record is one message plus our header.
            max_record_size: (opts.max_msg_size as usize + HEADER).min(u32::MAX as usize) as u32,
            sync_every: opts.sync_every,
            ..segment::Options::default()
        };
        let mut queue = match files {
            Some(files) => DiskQueue::open_listed(storage, name, seg_opts, files)?,
            None => DiskQueue::open(storage, name, seg_opts)?,
        };
        for event in queue.drain_events() {
            crate::log_error!("DISKQUEUE({name}): {event}");
        }
        Ok(Backend {
            queue,
            outstanding: VecDeque::new(),
            unfinished: 0,
            appends_since_sync: 0,
            sync_every: opts.sync_every,
            scratch: BytesMut::new(),
        })
    }

    /// Append a message; returns the position just after it (durable once
    /// [`synced_pos`](Self::synced_pos) reaches it).
    pub fn put(&mut self, msg: &Message) -> segment::Result<Pos> {
        self.scratch.clear();
        encode(msg, &mut self.scratch);
        let pos = self.queue.append(&self.scratch)?;
        self.appends_since_sync += 1;
        Ok(pos)
    }

    /// Append a message that replaces earlier records of the same ID (a REQ
    /// with a delay): after a restart the older copies are skipped.
    pub fn put_superseding(&mut self, msg: &Message) -> segment::Result<Pos> {
        self.scratch.clear();
        encode_kind(msg, &mut self.scratch, KIND_SUPERSEDING);
        let pos = self.queue.append(&self.scratch)?;
        self.appends_since_sync += 1;
        Ok(pos)
    }

    /// Append several messages with one write per segment touched (MPUB,
    /// and a topic batch spilling into a channel). Returns the position
    /// after the last one.
    pub fn put_batch<'a>(
        &mut self,
        msgs: impl IntoIterator<Item = &'a Message>,
    ) -> segment::Result<Option<Pos>> {
        self.scratch.clear();
        let mut ends = Vec::new();
        for msg in msgs {
            encode(msg, &mut self.scratch);
            ends.push(self.scratch.len());
        }
        if ends.is_empty() {
            return Ok(None);
        }
        let mut start = 0;
        let records: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let record = &self.scratch[start..end];
                start = end;
                record
            })
            .collect();
        let pos = self.queue.append_batch(&records)?;
        self.appends_since_sync += ends.len() as u64;
        Ok(Some(pos))
    }

    /// The next message, skipping (and logging) records that are damaged or
    /// not ours. The message stays outstanding until [`finish`](Self::finish).
    pub fn read(&mut self) -> segment::Result<Option<Read>> {
        loop {
            let pos = self.queue.read_pos();
            let record = self.queue.read_next()?;
            for event in self.queue.drain_events() {
                crate::log_error!("DISKQUEUE({}): {event}", self.queue.name());
            }
            let Some(record) = record else {
                return Ok(None);
            };
            self.outstanding.push_back((pos, false));
            self.unfinished += 1;
            match decode(record.data) {
                Some(msg) => return Ok(Some(Read { msg, pos })),
                None => {
                    crate::log_error!(
                        "DISKQUEUE({}): skipping a record that is not a message at {pos:?}",
                        self.queue.name()
                    );
                    self.finish(pos);
                }
            }
        }
    }

    /// The message read at `pos` is done with (finished, or rewritten
    /// elsewhere): move the committed cursor as far as the finished prefix goes.
    pub fn finish(&mut self, pos: Pos) {
        // Consumers mostly finish in delivery order: the oldest record first.
        let i = if self.outstanding.front().is_some_and(|(p, _)| *p == pos) {
            0
        } else {
            match self.outstanding.binary_search_by(|(p, _)| p.cmp(&pos)) {
                Ok(i) => i,
                Err(_) => return, // not outstanding (already finished, or emptied since)
            }
        };
        if self.outstanding[i].1 {
            return;
        }
        self.outstanding[i].1 = true;
        self.unfinished -= 1;
        if i != 0 {
            return; // an earlier record is still unfinished: cursor stays
        }
        while self.outstanding.front().is_some_and(|(_, done)| *done) {
            self.outstanding.pop_front();
        }
        let upto = match self.outstanding.front() {
            Some((p, _)) => *p,
            None => self.queue.read_pos(),
        };
        if let Err(e) = self.queue.commit(upto) {
            crate::log_error!("DISKQUEUE({}): commit - {e}", self.queue.name());
        }
    }

    /// Messages on disk not yet read.
    pub fn depth(&self) -> u64 {
        self.queue.depth()
    }

    /// Records read and not finished.
    pub fn outstanding(&self) -> usize {
        self.unfinished
    }

    /// Drop everything (topic/channel empty).
    pub fn empty(&mut self) -> segment::Result<()> {
        self.outstanding.clear();
        self.unfinished = 0;
        self.queue.empty()
    }

    /// Remove the files (topic/channel delete).
    pub fn delete(self) -> segment::Result<()> {
        self.queue.delete()
    }

    /// Highest position known durable.
    pub fn synced_pos(&self) -> Pos {
        self.queue.synced_pos()
    }

    /// Position after the last append.
    pub fn write_pos(&self) -> Pos {
        self.queue.write_pos()
    }

    /// `--sync-every` appends since the last data sync.
    pub fn needs_sync(&self) -> bool {
        self.sync_every > 0 && self.appends_since_sync >= self.sync_every
    }

    /// Unsynced data or cursor changes.
    pub fn is_dirty(&self) -> bool {
        self.queue.is_dirty()
    }

    /// Full sync (data, directory, cursors) inline.
    pub fn sync(&mut self) -> segment::Result<()> {
        self.queue.sync()
    }

    /// A sync is being attempted: `--sync-every` counts appends from now.
    pub fn reset_sync_count(&mut self) {
        self.appends_since_sync = 0;
    }

    /// First half of a data sync run off the core (see
    /// `DiskQueue::begin_sync_data`); `None` if nothing is left to sync.
    pub fn begin_sync_data(&mut self) -> segment::Result<Option<DataSync>> {
        self.queue.begin_sync_data()
    }

    /// Second half: record the outcome of [`DataSync::run`].
    pub fn finish_sync_data(
        &mut self,
        ds: DataSync,
        res: std::io::Result<()>,
    ) -> segment::Result<()> {
        self.queue.finish_sync_data(ds, res)
    }
}

/// The storage of queue `name` (for its error messages) in `data_path`.
pub fn storage(data_path: &Path, name: &str) -> segment::Result<FileStorage> {
    FileStorage::new(data_path).map_err(|source| segment::Error::Io {
        op: "open dir",
        name: name.to_string(),
        source,
    })
}

/// Move the messages of topic parts that belonged to shards that no longer
/// exist (`--shards` lowered between runs; queue `<topic>~<N>` with N >= the
/// shard count) into the part of shard `N % shards`, before the shards start.
/// Without this they would never be read. Returns how many were moved.
pub fn adopt_orphan_parts(data_path: &Path, shards: usize, opts: &Options) -> segment::Result<u64> {
    let io_err = |source| segment::Error::Io {
        op: "list",
        name: data_path.display().to_string(),
        source,
    };
    let mut moved = 0;
    for entry in std::fs::read_dir(data_path).map_err(io_err)? {
        let Ok(entry) = entry else { continue };
        let file = entry.file_name();
        let Some(queue) = file.to_str().and_then(|f| f.strip_suffix(".meta")) else {
            continue;
        };
        let Some((topic, shard)) = queue.rsplit_once('~') else {
            continue;
        };
        let Ok(shard) = shard.parse::<usize>() else {
            continue; // channel queues end in "~", ack logs in "~acks"
        };
        if shard < shards || !nsq_proto::names::is_valid_topic_name(topic) {
            continue;
        }
        let mut from = Backend::open(data_path, queue, opts)?;
        let mut to = Backend::open(data_path, &format!("{topic}~{}", shard % shards), opts)?;
        loop {
            let mut batch = Vec::new();
            while batch.len() < ADOPT_BATCH {
                match from.read()? {
                    Some(read) => batch.push(read.msg),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            to.put_batch(&batch)?;
            moved += batch.len() as u64;
        }
        to.sync()?;
        from.delete()?;
        crate::log_info!(
            "TOPIC({topic}): moved the messages of shard {shard} (not running) to shard {}",
            shard % shards
        );
    }
    Ok(moved)
}

/// Which sync: data only (durability of appended messages) or full (also
/// the cursor file, which bounds duplicates after a crash and lets consumed
/// segments be deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// fdatasync of the data.
    Data,
    /// Data, then the cursor file.
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::IdGen;

    #[test]
    fn record_roundtrip_keeps_deferral_and_attempts() {
        let ids = IdGen::new(1, 2);
        let mut msg = Message::new(
            ids.next_id(),
            Bytes::from_static(b"body"),
            Some(Instant::now() + Duration::from_secs(30)),
        );
        msg.set_attempts(3);
        let mut buf = BytesMut::new();
        encode(&msg, &mut buf);
        let back = decode(buf.freeze()).unwrap();
        assert_eq!(back.id, msg.id);
        assert_eq!(back.body, msg.body);
        assert_eq!(back.attempts(), 3);
        assert_eq!(back.timestamp, msg.timestamp);
        let left = back
            .deliver_at()
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        assert!(decode(Bytes::from_static(b"\x02short")).is_none());
        assert!(decode(Bytes::from_static(b"")).is_none());
    }
}
