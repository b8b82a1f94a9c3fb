//! The acknowledgement log of a channel: IDs of messages consumers
//! FINished, on disk, so a restart does not deliver them again.
//!
//! Lives on: the channel's owner shard, next to the channel's disk queue,
//! opened and closed with it (`QueueStore`: FIN logs only IDs read from the
//! channel's own disk, so without that disk there is nothing to log).
//! Why it exists: the disk queue's committed cursor can only move past a
//! contiguous prefix of finished records, and is written every
//! `--sync-timeout`. Without this log a crash replays everything finished
//! since that write, or behind one message a consumer still held: most of
//! the recent traffic, not "a few duplicates". With it, a replayed record
//! whose ID was acknowledged is skipped.
//!
//! Format: a disk queue (same checksummed segments) whose records are
//! batches of 16-byte IDs. Acks are buffered and written in batches of
//! [`BATCH`]; the log is rewritten at every full sync of the channel (after
//! the cursor was persisted), keeping the acks of the last two intervals, so
//! it stays small. Acks lost in a crash only mean duplicates.

use std::path::Path;

use nsq_io::segment::{self, DiskQueue, FileStorage};
use nsq_proto::message::MESSAGE_ID_LEN;
use nsq_proto::MessageId;

use crate::backend::{self, MIN_BYTES_PER_FILE};
use crate::config::Options;
use crate::idmap::IdMap;

/// Acks buffered before one append.
const BATCH: usize = 256;
/// IDs per record when the log is rewritten.
const COMPACT_BATCH: usize = 16 * BATCH;
/// Largest segment of an acknowledgement log, whatever
/// `--max-bytes-per-file` says: the log is rewritten at every full sync, so
/// it stays small.
const MAX_BYTES_PER_FILE: u64 = 16 << 20;

/// IDs acknowledged before the last restart.
pub type Acked = IdMap<()>;

/// One channel's acknowledgement log. Lives on: the channel's owner shard.
#[derive(Debug)]
pub struct AckLog {
    queue: DiskQueue<FileStorage>,
    pending: Vec<MessageId>,
    current: Vec<MessageId>,
    previous: Vec<MessageId>,
}

impl AckLog {
    /// Open (or create) the log `name` and return the IDs it holds;
    /// `files`: the directory's listing if the caller has one. Blocking: on
    /// the blocking pool, or at startup (`QueueStore`).
    pub fn open(
        data_path: &Path,
        name: &str,
        opts: &Options,
        files: Option<&[String]>,
    ) -> segment::Result<(AckLog, Acked)> {
        let storage = backend::storage(data_path, name)?;
        let seg_opts = segment::Options {
            max_bytes_per_file: opts
                .max_bytes_per_file
                .clamp(MIN_BYTES_PER_FILE, MAX_BYTES_PER_FILE),
            ..segment::Options::default()
        };
        let mut queue = match files {
            Some(files) => DiskQueue::open_listed(storage, name, seg_opts, files)?,
            None => DiskQueue::open(storage, name, seg_opts)?,
        };
        let mut acked = Acked::default();
        let mut previous = Vec::new();
        while let Some(record) = queue.read_next()? {
            for chunk in record.data.chunks_exact(MESSAGE_ID_LEN) {
                if let Some(id) = MessageId::from_slice(chunk) {
                    acked.insert(id, ());
                    previous.push(id);
                }
            }
        }
        for event in queue.drain_events() {
            crate::log_error!("ACKLOG({name}): {event}");
        }
        let log = AckLog {
            queue,
            pending: Vec::new(),
            current: Vec::new(),
            previous,
        };
        Ok((log, acked))
    }

    /// Record a FIN; written with the next batch.
    pub fn add(&mut self, id: MessageId) -> segment::Result<()> {
        self.pending.push(id);
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the buffered acks (one record).
    pub fn flush(&mut self) -> segment::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut record = Vec::with_capacity(self.pending.len() * MESSAGE_ID_LEN);
        for id in &self.pending {
            record.extend_from_slice(&id.0);
        }
        self.queue.append(&record)?;
        self.current.append(&mut self.pending);
        Ok(())
    }

    /// Rewrite the log with the acks of the last two intervals (call after
    /// the channel's cursor was persisted).
    pub fn compact(&mut self) -> segment::Result<()> {
        self.flush()?;
        self.queue.empty()?;
        let keep = std::mem::take(&mut self.current);
        for chunk in keep.chunks(COMPACT_BATCH) {
            let mut record = Vec::with_capacity(chunk.len() * MESSAGE_ID_LEN);
            for id in chunk {
                record.extend_from_slice(&id.0);
            }
            self.queue.append(&record)?;
        }
        self.previous = keep;
        Ok(())
    }

    /// Drop everything (channel emptied).
    pub fn empty(&mut self) -> segment::Result<()> {
        self.pending.clear();
        self.current.clear();
        self.previous.clear();
        self.queue.empty()
    }

    /// Remove the files (channel deleted).
    pub fn delete(self) -> segment::Result<()> {
        self.queue.delete()
    }
}
