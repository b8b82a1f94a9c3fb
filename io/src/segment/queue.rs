//! [`DiskQueue`]: a FIFO of opaque records in append-only segment files.
//!
//! Three cursors, always `committed <= read <= write`:
//! - `write`: where the next record goes (end of the active segment);
//! - `read`: the next record [`DiskQueue::read_next`] returns;
//! - `committed`: everything before it is finished ([`DiskQueue::commit`]).
//!   It is what the meta file stores, so after a crash reading restarts
//!   there: records read but not committed come back (duplicates), none is
//!   lost.
//!
//! Plus `synced`: the write position known durable (fdatasync'd). The
//! broker's fsync-before-ack mode acks a PUB once `synced_pos()` has passed
//! the position `append` returned.
//!
//! Nothing here sleeps or spawns: the sync timer and any offloading of
//! `fdatasync` to another thread ([`DataSync`]) belong to the caller.

use std::collections::VecDeque;
use std::fs::File;
use std::io;

/// First allocation of a new segment; it then doubles up to
/// `max_bytes_per_file` as records arrive.
pub(crate) const INITIAL_ALLOCATION: u64 = 1 << 20;

use bytes::Bytes;

use super::format::{self, RecHeader, REC_HEADER_LEN, SEG_HEADER_LEN};
use super::storage::{read_full_at, write_all_at, Storage, StorageFile};
use super::{Error, Event, Options, Pos, Record, Result, Stats};

/// Events kept for [`DiskQueue::drain_events`]; past this, new ones are
/// dropped (the [`Stats`] counters still count them).
const MAX_EVENTS: usize = 1024;

/// One live segment. `end` is the end of its data when known (sealed in this
/// process, or scanned at recovery); otherwise the reader stops at the first
/// all-zero record header or at end of file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seg {
    pub index: u64,
    pub end: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Writer<F> {
    pub index: u64,
    pub file: F,
    /// Next write offset.
    pub pos: u64,
    /// Preallocated size.
    pub cap: u64,
    /// A failed write may have left bytes past `pos`.
    pub junk: bool,
}

#[derive(Debug)]
pub(crate) struct OpenSeg<F> {
    pub index: u64,
    pub file: F,
    pub size: u64,
}

/// A window of one file, so small records cost one `read_at` per
/// `read_buffer` bytes instead of two per record.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf {
    data: Vec<u8>,
    start: u64,
    len: usize,
}

impl ReadBuf {
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Exactly `need` bytes at `off`, or `None` if the file (capped at
    /// `limit`) has fewer. Bytes below `limit` never change once written,
    /// so a cached window stays valid while `limit` grows.
    pub fn get<F: StorageFile>(
        &mut self,
        file: &F,
        off: u64,
        need: u64,
        limit: u64,
        chunk: usize,
    ) -> io::Result<Option<&[u8]>> {
        if off.saturating_add(need) > limit {
            return Ok(None);
        }
        let (Ok(need_u), Ok(room)) = (usize::try_from(need), usize::try_from(limit - off)) else {
            return Ok(None);
        };
        let cached =
            off >= self.start && off + need <= self.start + self.len as u64 && self.len > 0;
        if !cached {
            let want = need_u.max(chunk).min(room);
            if self.data.len() < want {
                self.data.resize(want, 0);
            }
            self.len = 0;
            self.start = off;
            self.len = read_full_at(file, &mut self.data[..want], off)?;
            if self.len < need_u {
                return Ok(None);
            }
        }
        let at = (off - self.start) as usize;
        Ok(Some(&self.data[at..at + need_u]))
    }
}

/// What the reader holds.
#[derive(Debug)]
pub(crate) struct Reader<F> {
    pub pos: Pos,
    pub file: Option<OpenSeg<F>>,
    pub buf: ReadBuf,
}

/// How one step of [`DiskQueue::read_next`] ended.
enum Step<T> {
    /// Done: this is what the step was for.
    Ready(T),
    /// Nothing more to read for now.
    End,
    /// The cursor moved, or the segment under it changed: start over.
    Again,
}

/// What one pass of [`DiskQueue::read_next`] knows about the segment under
/// the read cursor. A copy, so framing borrows only the reader's file and
/// buffer and leaves the queue free for repairs.
#[derive(Clone, Copy, Debug)]
struct Pass {
    /// The segment.
    seg: u64,
    /// End of its data if known: the writer's position in the active
    /// segment, else [`Seg::end`].
    known_end: Option<u64>,
    /// Its file size, as last seen.
    size: u64,
    /// Framing stops here: `known_end` capped at `size`.
    limit: u64,
    /// `Options::read_buffer`.
    chunk: usize,
    /// `Options::max_record_size`.
    max: u64,
}

/// What the bytes at a read offset hold.
enum Framed<'a> {
    /// A whole record. `intact`: its checksum matches.
    Record {
        payload: &'a [u8],
        len: u32,
        /// The offset just after it.
        next: u64,
        intact: bool,
    },
    /// No record header here (for the reason given, if that is damage).
    DataEnd(&'static str),
    /// A header whose record cannot be there; nothing past it can be framed.
    Broken(&'static str),
}

/// Frame the record at `off`: header, length checks, then the whole record
/// and its checksum. Only reads; deciding what to do is the caller's part.
fn frame_at<'a, F: StorageFile>(
    file: &F,
    buf: &'a mut ReadBuf,
    off: u64,
    pass: &Pass,
) -> io::Result<Framed<'a>> {
    let Some(h) = buf.get(file, off, REC_HEADER_LEN, pass.limit, pass.chunk)? else {
        return Ok(Framed::DataEnd("file shorter than its known end"));
    };
    let (len, crc) = match format::parse_rec_header(h) {
        RecHeader::End => return Ok(Framed::DataEnd("zeroed data before the known end")),
        RecHeader::Record { len, crc } => (len, crc),
    };
    let total = REC_HEADER_LEN + u64::from(len);
    if u64::from(len) > pass.max || off + total > pass.limit {
        return Ok(Framed::Broken(if off + total > pass.size {
            "record runs past end of file"
        } else {
            "record length implausible"
        }));
    }
    let Some(rec) = buf.get(file, off, total, pass.limit, pass.chunk)? else {
        return Ok(Framed::Broken("record cut short"));
    };
    let payload = &rec[REC_HEADER_LEN as usize..];
    Ok(Framed::Record {
        payload,
        len,
        next: off + total,
        intact: format::record_crc(len, payload) == crc,
    })
}

/// Whether a record boundary is at `next`: the end of the data, or a header
/// whose length fits. Tells a flipped byte in a record (skip it) from a
/// damaged length field (nothing after it can be framed).
fn boundary_at<F: StorageFile>(
    file: &F,
    buf: &mut ReadBuf,
    next: u64,
    pass: &Pass,
) -> io::Result<bool> {
    Ok(
        match buf.get(file, next, REC_HEADER_LEN, pass.limit, pass.chunk)? {
            None => true,
            Some(h) => match format::parse_rec_header(h) {
                RecHeader::End => true,
                RecHeader::Record { len, .. } => {
                    u64::from(len) <= pass.max
                        && next + REC_HEADER_LEN + u64::from(len) <= pass.limit
                }
            },
        },
    )
}

/// An append-only, crash-safe FIFO of records in segment files.
///
/// Owned by one core; every call is synchronous and may block on the disk
/// (see `FORMAT.md` for what each costs).
#[derive(Debug)]
pub struct DiskQueue<S: Storage> {
    pub(crate) storage: S,
    pub(crate) name: String,
    pub(crate) opts: Options,
    /// Live segments, oldest first; the writer's is last.
    pub(crate) segs: VecDeque<Seg>,
    pub(crate) writer: Option<Writer<S::File>>,
    pub(crate) write_seq: u64,
    pub(crate) next_index: u64,
    pub(crate) reader: Reader<S::File>,
    pub(crate) committed: Pos,
    pub(crate) persisted_commit: Pos,
    pub(crate) synced: Pos,
    pub(crate) dir_dirty: bool,
    pub(crate) meta_dirty: bool,
    /// A data sync failed: the next append starts a new segment, so data
    /// written after the failure never shares a segment with the window the
    /// kernel may have dropped.
    pub(crate) poisoned: bool,
    pub(crate) ops: u64,
    pub(crate) force_sync: bool,
    /// Consumed segments, removed once a meta with a later cursor is durable.
    pub(crate) doomed: Vec<u64>,
    pub(crate) stats: Stats,
    pub(crate) events: Vec<Event>,
    pub(crate) scratch: Vec<u8>,
}

/// A data sync taken out of the queue so it can run off the core, for
/// example in glommio's `spawn_blocking`: `let r = ds.run();` there, then
/// [`DiskQueue::finish_sync_data`] back on the owning core.
#[derive(Debug)]
#[must_use = "pass it to finish_sync_data after run()"]
pub struct DataSync {
    file: File,
    segment: u64,
    upto: Pos,
}

impl DataSync {
    pub(crate) fn new(file: File, segment: u64, upto: Pos) -> Self {
        Self {
            file,
            segment,
            upto,
        }
    }

    pub(crate) fn segment(&self) -> u64 {
        self.segment
    }

    /// `fdatasync` the segment (blocking; `Send`, so any thread may do it).
    pub fn run(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The write position this sync makes durable.
    pub fn upto(&self) -> Pos {
        self.upto
    }
}

impl<S: Storage> DiskQueue<S> {
    /// Append one record. Returns the position just after it: the record is
    /// durable once [`synced_pos`](Self::synced_pos) reaches it.
    ///
    /// On error nothing was appended (bytes a failed write left past the
    /// write position are overwritten by the next append, and cut by
    /// recovery after a crash).
    pub fn append(&mut self, record: &[u8]) -> Result<Pos> {
        self.append_batch(&[record])
    }

    /// Append several records (an MPUB) with one write per segment they
    /// span. Returns the position after the last one.
    ///
    /// Sizes are checked first, so `TooLarge` appends nothing. On an I/O
    /// error, the records before the failing write may have been appended,
    /// as with nsqd's MPUB; `write_pos().seq` tells how many.
    pub fn append_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<Pos> {
        let max = self.opts.max_record_size;
        if let Some(r) = records.iter().find(|r| r.as_ref().len() > max as usize) {
            return Err(Error::TooLarge {
                len: r.as_ref().len(),
                max,
            });
        }
        let mut i = 0;
        while i < records.len() {
            self.make_room(REC_HEADER_LEN + records[i].as_ref().len() as u64)?;
            let Some(w) = self.writer.as_mut() else {
                // make_room() either leaves a writer or returns an error.
                return Err(Error::BadOptions("no active segment after roll"));
            };
            self.scratch.clear();
            let mut end = w.pos;
            let mut n = 0;
            for r in &records[i..] {
                let need = REC_HEADER_LEN + r.as_ref().len() as u64;
                if n > 0 && end + need > w.cap {
                    break;
                }
                format::encode_record(&mut self.scratch, r.as_ref());
                end += need;
                n += 1;
            }
            if let Err(e) = write_all_at(&mut w.file, &self.scratch, w.pos) {
                w.junk = true;
                let name = format::seg_name(&self.name, w.index);
                return Err(Error::io("write", &name, e));
            }
            w.pos = end;
            w.junk = false;
            self.write_seq += n as u64;
            self.ops += n as u64;
            i += n;
        }
        Ok(self.write_pos())
    }

    /// Make sure the active segment has `need` bytes free: grow an empty
    /// segment for an oversized record, otherwise roll.
    fn make_room(&mut self, need: u64) -> Result<()> {
        let fits = self.writer.as_ref().is_some_and(|w| w.pos + need <= w.cap);
        if fits && !self.poisoned {
            return Ok(());
        }
        // A segment may grow up to max_bytes_per_file (or to one record, if
        // a single record is larger than that).
        let limit = self.opts.max_bytes_per_file.max(SEG_HEADER_LEN + need);
        match self.writer.as_mut() {
            Some(w) if !self.poisoned && w.pos + need <= limit => {
                // Extend the allocation (doubling, capped): space is
                // reserved ahead of the writes, so a full disk is still an
                // ENOSPC here, never a failed write to mapped memory.
                let cap = (w.cap.saturating_mul(2)).max(w.pos + need).min(limit);
                w.file.allocate(cap).map_err(|e| {
                    Error::io("fallocate", &format::seg_name(&self.name, w.index), e)
                })?;
                w.cap = cap;
                Ok(())
            }
            _ => self.roll(need),
        }
    }

    /// Seal the active segment (synced) and start a new one with room for a
    /// record of `need` bytes.
    pub(crate) fn roll(&mut self, need: u64) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            if w.junk {
                // Best effort: an end marker over the leftovers of a failed
                // write, so a later reader does not count them as corrupt.
                let _ = write_all_at(&mut w.file, &[0u8; REC_HEADER_LEN as usize], w.pos);
            }
            // The old segment must be durable before a later one exists:
            // then only the newest segments can have a torn tail, and the
            // recovery scan (from the meta's write position on) covers them.
            let here = Pos {
                segment: w.index,
                offset: w.pos,
                seq: self.write_seq,
            };
            if self.synced < here || self.poisoned {
                if let Err(e) = w.file.sync_data() {
                    let index = w.index;
                    self.writer = Some(w);
                    return Err(self.sync_failed(index, e));
                }
                self.synced = self.synced.max(here);
            }
            if let Some(s) = self.segs.iter_mut().rev().find(|s| s.index == w.index) {
                s.end = Some(w.pos);
            }
        }
        let w = self.create_segment(need)?;
        self.segs.push_back(Seg {
            index: w.index,
            end: None,
        });
        self.writer = Some(w);
        self.poisoned = false;
        self.force_sync = true;
        Ok(())
    }

    /// Create, preallocate and head the next segment. On failure the file is
    /// removed again and nothing changes.
    pub(crate) fn create_segment(&mut self, need: u64) -> Result<Writer<S::File>> {
        let index = self.next_index;
        let name = format::seg_name(&self.name, index);
        // Start small and grow (make_room): a queue that holds a few
        // messages must not reserve max_bytes_per_file (100 MiB by default)
        // on disk; many topics and channels would fill the disk with
        // preallocated zeros.
        let cap = self
            .opts
            .max_bytes_per_file
            .min(INITIAL_ALLOCATION)
            .max(SEG_HEADER_LEN + need);
        let mut file = self
            .storage
            .create(&name)
            .map_err(|e| Error::io("create", &name, e))?;
        // fallocate before the first byte goes in (and before anything is
        // mapped): a full disk is ENOSPC here, not SIGBUS later.
        let res = file
            .allocate(cap)
            .map_err(|e| Error::io("fallocate", &name, e))
            .and_then(|()| {
                write_all_at(&mut file, &format::encode_seg_header(index), 0)
                    .map_err(|e| Error::io("write", &name, e))
            });
        if let Err(e) = res {
            drop(file);
            let _ = self.storage.remove(&name);
            return Err(e);
        }
        self.next_index += 1;
        self.dir_dirty = true;
        Ok(Writer {
            index,
            file,
            pos: SEG_HEADER_LEN,
            cap,
            junk: false,
        })
    }

    pub(crate) fn sync_failed(&mut self, segment: u64, e: io::Error) -> Error {
        self.stats.sync_failures += 1;
        self.poisoned = true;
        self.event(Event::SyncFailed {
            segment,
            error: e.to_string(),
        });
        Error::io("fdatasync", &format::seg_name(&self.name, segment), e)
    }

    pub(crate) fn event(&mut self, e: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(e);
        }
    }

    /// The next record in FIFO order, or `None` when everything appended has
    /// been read. Damaged records are skipped (counted in [`Stats`], reported
    /// as [`Event`]s); a segment that cannot be framed any further is set
    /// aside as `.bad` and reading goes on with the next one.
    ///
    /// An I/O error leaves the cursor where it was; calling again retries.
    pub fn read_next(&mut self) -> Result<Option<Record>> {
        // Each pass returns, moves the read offset forward, or leaves the
        // current segment for good: the loop ends after at most
        // records + segments passes.
        loop {
            let step = match self.begin_pass()? {
                Step::Ready(pass) => self.read_record(pass)?,
                Step::End => Step::End,
                Step::Again => Step::Again,
            };
            match step {
                Step::Ready(record) => return Ok(Some(record)),
                Step::End => return Ok(self.at_end()),
                Step::Again => {}
            }
        }
    }

    /// First half of a [`read_next`](Self::read_next) pass: find the live
    /// segment under the read cursor, open it if the reader has not yet, and
    /// work out how far into it records may be framed. Kept apart from the
    /// framing because every step here may move the cursor to another
    /// segment, which restarts the pass.
    fn begin_pass(&mut self) -> Result<Step<Pass>> {
        let seg = self.reader.pos.segment;
        let Some(info) = self.segs.iter().find(|s| s.index >= seg).copied() else {
            return Ok(Step::End);
        };
        if info.index != seg {
            self.move_reader(info.index);
            return Ok(Step::Again);
        }
        let active = self
            .writer
            .as_ref()
            .filter(|w| w.index == seg)
            .map(|w| w.pos);
        let known_end = active.or(info.end);
        if active.is_some_and(|end| self.reader.pos.offset >= end) {
            return Ok(Step::End);
        }
        if self.reader.file.as_ref().is_none_or(|f| f.index != seg)
            && !self.open_for_read(seg, active.is_some())?
        {
            return Ok(Step::Again);
        }
        let Some(open) = self.reader.file.as_mut() else {
            return Ok(Step::Again);
        };
        if known_end.is_some_and(|e| e > open.size) {
            // The data may have grown past the size seen at open. (The name
            // is built only on error: this runs once per record.)
            open.size = open
                .file
                .size()
                .map_err(|e| Error::io("stat", &format::seg_name(&self.name, seg), e))?;
        }
        let size = open.size;
        Ok(Step::Ready(Pass {
            seg,
            known_end,
            size,
            limit: known_end.map_or(size, |e| e.min(size)),
            chunk: self.opts.read_buffer,
            max: u64::from(self.opts.max_record_size),
        }))
    }

    /// Second half of a [`read_next`](Self::read_next) pass: frame the
    /// record at the read cursor and act on what was found: return it, skip
    /// it, finish the segment or set it aside.
    fn read_record(&mut self, pass: Pass) -> Result<Step<Record>> {
        let off = self.reader.pos.offset.max(SEG_HEADER_LEN);
        let Some(open) = self.reader.file.as_ref() else {
            return Ok(Step::Again);
        };
        let buf = &mut self.reader.buf;
        // The name is built only on error: this runs once per record.
        let read_error = |e| Error::io("read", &format::seg_name(&self.name, pass.seg), e);
        let reason = match frame_at(&open.file, buf, off, &pass).map_err(read_error)? {
            Framed::Record {
                payload,
                next,
                intact: true,
                ..
            } => {
                let data = Bytes::copy_from_slice(payload);
                self.reader.pos.offset = next;
                self.reader.pos.seq += 1;
                self.ops += 1;
                return Ok(Step::Ready(Record {
                    data,
                    next: self.reader.pos,
                }));
            }
            // Checksum mismatch. If the length field looks right (a record
            // boundary or the end follows), skip just this record; if not,
            // the length itself is damaged and nothing after it can be
            // framed.
            Framed::Record { len, next, .. } => {
                if boundary_at(&open.file, buf, next, &pass).map_err(read_error)? {
                    self.skip_corrupt(pass.seg, off, len, next);
                    return Ok(Step::Again);
                }
                "checksum mismatch with no record boundary after it"
            }
            Framed::DataEnd(reason) => return self.data_ended(&pass, off, reason),
            Framed::Broken(reason) => reason,
        };
        self.set_aside(pass.seg, off, reason)?;
        Ok(Step::Again)
    }

    /// No record header at `off`: the file is shorter, or the header is
    /// zeros. Before the segment's known end that is damage (`reason`), so
    /// the segment is set aside; at or past it (or with no known end) the
    /// segment is finished, and reading goes on with the next one, if any.
    fn data_ended(&mut self, pass: &Pass, off: u64, reason: &'static str) -> Result<Step<Record>> {
        if pass.known_end.is_some_and(|e| off < e) {
            self.set_aside(pass.seg, off, reason)?;
        } else if !self.next_segment(pass.seg) {
            return Ok(Step::End);
        }
        Ok(Step::Again)
    }

    /// Count, report and step over the `len`-byte record at `off`, whose
    /// checksum failed although a record boundary follows it at `next`.
    fn skip_corrupt(&mut self, segment: u64, offset: u64, len: u32, next: u64) {
        self.stats.corrupt_records += 1;
        self.event(Event::CorruptRecord {
            segment,
            offset,
            len,
        });
        self.reader.pos.offset = next;
        self.reader.pos.seq += 1;
    }

    /// Open `seg` for the reader and check its header. `Ok(false)`: the
    /// segment is gone (missing or set aside); look again.
    fn open_for_read(&mut self, seg: u64, active: bool) -> Result<bool> {
        self.reader.file = None;
        self.reader.buf.clear();
        let name = format::seg_name(&self.name, seg);
        let opened = if active {
            self.storage.open(&name)
        } else {
            self.storage.open_sealed(&name)
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !active => {
                self.segs.retain(|s| s.index != seg);
                return Ok(false);
            }
            // EMFILE, EIO...: not the segment's fault; report, keep it.
            Err(e) => return Err(Error::io("open", &name, e)),
        };
        let size = file.size().map_err(|e| Error::io("stat", &name, e))?;
        let mut head = [0u8; SEG_HEADER_LEN as usize];
        let n = read_full_at(&file, &mut head, 0).map_err(|e| Error::io("read", &name, e))?;
        match format::check_seg_header(&head[..n], seg) {
            format::HeaderCheck::Ok => {
                self.reader.file = Some(OpenSeg {
                    index: seg,
                    file,
                    size,
                });
                Ok(true)
            }
            format::HeaderCheck::Blank => {
                drop(file);
                self.set_aside(seg, 0, "blank segment header")?;
                Ok(false)
            }
            format::HeaderCheck::Bad(reason) => {
                drop(file);
                self.set_aside(seg, 0, reason)?;
                Ok(false)
            }
        }
    }

    fn move_reader(&mut self, segment: u64) {
        self.reader.pos.segment = segment;
        self.reader.pos.offset = SEG_HEADER_LEN;
        self.reader.file = None;
        self.reader.buf.clear();
    }

    /// The reader finished `seg`: go to the next segment. False if there is
    /// none yet (the reader stays at the end of `seg`).
    fn next_segment(&mut self, seg: u64) -> bool {
        match self.segs.iter().find(|s| s.index > seg) {
            Some(s) => {
                let index = s.index;
                self.move_reader(index);
                true
            }
            None => false,
        }
    }

    /// Nothing more to read: bring `depth` back to 0 if damage made the
    /// count drift.
    fn at_end(&mut self) -> Option<Record> {
        if self.reader.pos.seq != self.write_seq {
            self.stats.depth_resyncs += 1;
            let believed = self.depth();
            self.event(Event::DepthResync { believed });
            self.reader.pos.seq = self.write_seq;
        }
        None
    }

    /// Rename segment `seg` to `.bad` and continue after it. If it is the
    /// active segment, a new one is started first.
    pub(crate) fn set_aside(&mut self, seg: u64, offset: u64, reason: &'static str) -> Result<()> {
        if self.writer.as_ref().is_some_and(|w| w.index == seg) {
            self.roll(0)?;
        }
        if self.reader.file.as_ref().is_some_and(|f| f.index == seg) {
            self.reader.file = None;
            self.reader.buf.clear();
        }
        let from = format::seg_name(&self.name, seg);
        let to = format::bad_name(&self.name, seg);
        let renamed_to = match self.storage.rename(&from, &to) {
            Ok(()) => {
                self.dir_dirty = true;
                Some(to)
            }
            Err(_) => None,
        };
        self.stats.bad_segments += 1;
        self.event(Event::BadSegment {
            segment: seg,
            offset,
            reason,
            renamed_to,
        });
        self.segs.retain(|s| s.index != seg);
        if self.reader.pos.segment == seg {
            // If there is no later segment, the reader stays on the removed
            // index and finds the next one when it appears.
            self.next_segment(seg);
        }
        Ok(())
    }
}
