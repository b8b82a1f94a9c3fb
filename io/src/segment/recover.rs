//! [`DiskQueue::open`]: rebuild the queue from its files after a clean stop
//! or a crash.
//!
//! Steps (numbered as in `FORMAT.md`, "Recovery"):
//! 1. list the queue's files; remove a leftover `meta.tmp` (a meta write cut
//!    short: the old meta is intact);
//! 2. read the meta; if it is missing or damaged, start from the oldest
//!    segment (duplicates, no loss);
//! 3. remove segments wholly before the committed cursor (consumed; their
//!    removal was lost in the crash);
//! 4. scan every segment from the meta's write position on: this is the only
//!    region that can hold unsynced, possibly torn, data. Count the records;
//!    at the first record that is neither valid nor followed by a valid one,
//!    cut the segment (torn tail). A never-written segment is removed, one
//!    with a damaged header set aside as `.bad`;
//! 5. reopen the last segment as the active one: truncate at its data end and
//!    preallocate again, so no stale byte lies past the write position;
//! 6. clamp the committed cursor into what exists and start reading there;
//! 7. sync (data, directory, meta), so the repaired state is the durable one.

use std::collections::VecDeque;
use std::io;

use super::format::{self, HeaderCheck, OwnFile, RecHeader, REC_HEADER_LEN, SEG_HEADER_LEN};
use super::queue::{DiskQueue, ReadBuf, Reader, Seg, Writer};
use super::storage::{read_full_at, Storage, StorageFile};
use super::{Error, Event, Options, Pos, Result, Stats};

/// What the tail scan found in one segment.
struct Scan {
    end: u64,
    records: u64,
    cut: bool,
}

/// Index of a queue's first segment. Indexes start at 1, so a highest index
/// of 0 means no segment was ever made.
const FIRST_SEGMENT_INDEX: u64 = 1;

/// What step 1 found: the queue's own files, by kind.
struct Inventory {
    /// Indexes of the `.seg` files, ascending.
    segments: Vec<u64>,
    /// Highest index of any segment, `.seg` or `.bad`; 0 if none.
    max_index: u64,
    /// A meta file exists.
    have_meta: bool,
}

/// Refuse a queue name that is not one plain file-name stem, and a segment
/// size too small to hold one record. Checked before anything is touched.
fn check_open_args(name: &str, opts: &Options) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return Err(Error::BadName(name.to_string()));
    }
    if opts.max_bytes_per_file < SEG_HEADER_LEN + REC_HEADER_LEN {
        return Err(Error::BadOptions(
            "max_bytes_per_file is smaller than a segment header plus one record header",
        ));
    }
    Ok(())
}

impl<S: Storage> DiskQueue<S> {
    /// Open (or create) the queue `name` in `storage`, recovering from
    /// whatever a crash left. Repairs are counted in [`stats`](Self::stats)
    /// and listed by [`drain_events`](Self::drain_events).
    ///
    /// Each step of the module comment is one helper, run in order.
    pub fn open(storage: S, name: &str, opts: Options) -> Result<Self> {
        check_open_args(name, &opts)?;
        let files = storage.list().map_err(|e| Error::io("list", name, e))?;
        Self::open_listed(storage, name, opts, &files)
    }

    /// [`open`](Self::open) with the directory already listed: `files` are
    /// names in it (other queues' files are ignored). Listing a directory
    /// costs in proportion to everything in it, so a caller opening many
    /// queues lists once; a caller that knows the queue has no file yet
    /// passes none. Files missing since the listing are tolerated.
    pub fn open_listed(storage: S, name: &str, opts: Options, files: &[String]) -> Result<Self> {
        check_open_args(name, &opts)?;
        let mut q = Self::blank(storage, name, opts);
        let inventory = q.take_inventory(files);
        let (committed, tail) = q.load_cursors(&inventory)?;
        q.drop_consumed(&inventory.segments, committed.segment);
        q.scan_tails(tail)?;
        q.open_active()?;
        q.place_cursors(committed);
        // 7. Make the repaired state the durable one.
        q.sync()?;
        Ok(q)
    }

    /// Step 1: sort the queue's files out of the listing `files` (removing a
    /// leftover `meta.tmp`).
    fn take_inventory(&mut self, files: &[String]) -> Inventory {
        let mut inventory = Inventory {
            segments: Vec::new(),
            max_index: 0,
            have_meta: false,
        };
        for f in files {
            match format::parse_own_file(&self.name, f) {
                Some(OwnFile::Segment(i)) => {
                    inventory.segments.push(i);
                    inventory.max_index = inventory.max_index.max(i);
                }
                Some(OwnFile::Bad(i)) => inventory.max_index = inventory.max_index.max(i),
                Some(OwnFile::Meta) => inventory.have_meta = true,
                Some(OwnFile::MetaTmp) => {
                    let _ = self.storage.remove(f);
                }
                None => {}
            }
        }
        inventory.segments.sort_unstable();
        inventory.segments.dedup();
        inventory
    }

    /// Step 2: the committed cursor and the write position the tail scan
    /// starts from, as `(committed, tail)`: the meta's, or without a valid
    /// meta the start of the oldest segment for both. Also sets the next
    /// segment index past every index the files or the meta mention.
    fn load_cursors(&mut self, inventory: &Inventory) -> Result<(Pos, Pos)> {
        let meta = if inventory.have_meta {
            self.load_meta()?
        } else {
            None
        };
        let mut max_index = inventory.max_index;
        let cursors = match meta {
            Some(m) => {
                max_index = max_index.max(m.committed.segment).max(m.write.segment);
                (m.committed, m.write)
            }
            None => {
                let first = inventory.segments.first().copied().unwrap_or(max_index + 1);
                let p = Pos {
                    segment: first,
                    offset: SEG_HEADER_LEN,
                    seq: 0,
                };
                (p, p)
            }
        };
        self.next_index = max_index + 1;
        Ok(cursors)
    }

    /// Step 3: remove the segments (`found`, ascending) wholly before the
    /// committed segment, whose removal a crash lost; the rest are the live
    /// segments.
    fn drop_consumed(&mut self, found: &[u64], committed_segment: u64) {
        for &i in found {
            if i < committed_segment {
                self.remove_stray(i, "before the committed cursor");
            } else {
                self.segs.push_back(Seg {
                    index: i,
                    end: None,
                });
            }
        }
    }

    /// Step 4: scan every live segment from the meta's write position
    /// `tail` on, counting its records into `write_seq`.
    fn scan_tails(&mut self, tail: Pos) -> Result<()> {
        self.write_seq = tail.seq;
        let tail_segs: Vec<u64> = self
            .segs
            .iter()
            .map(|s| s.index)
            .filter(|&i| i >= tail.segment)
            .collect();
        for i in tail_segs {
            let start = if i == tail.segment {
                tail.offset
            } else {
                SEG_HEADER_LEN
            };
            self.scan_tail(i, start)?;
        }
        Ok(())
    }

    /// Step 5: reopen the last segment for writing, or start a new one.
    fn open_active(&mut self) -> Result<()> {
        if let Some(last) = self.segs.back().copied() {
            if let Some(end) = last.end {
                self.reopen_writer(last.index, end)?;
            }
        }
        if self.writer.is_none() {
            match self.roll(0) {
                Ok(()) => {}
                // A full disk must not stop the broker from starting and
                // draining what is there; appends will fail until space is
                // freed.
                Err(e) if e.is_no_space() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Step 6: clamp the `committed` cursor into the live segments and the
    /// written data, and start reading there.
    fn place_cursors(&mut self, committed: Pos) {
        let mut start = committed;
        if start.offset < SEG_HEADER_LEN {
            start.offset = SEG_HEADER_LEN;
        }
        if let Some(first) = self.segs.front() {
            if start.segment < first.index {
                start.segment = first.index;
                start.offset = SEG_HEADER_LEN;
            }
        }
        let wp = self.write_pos();
        if (start.segment, start.offset) > (wp.segment, wp.offset) {
            start = wp;
        }
        start.seq = start.seq.min(self.write_seq);
        self.reader.pos = start;
        self.committed = start;
        self.meta_dirty = true;
    }

    fn blank(storage: S, name: &str, opts: Options) -> Self {
        Self {
            storage,
            name: name.to_string(),
            opts,
            segs: VecDeque::new(),
            writer: None,
            write_seq: 0,
            next_index: FIRST_SEGMENT_INDEX,
            reader: Reader {
                pos: Pos::default(),
                file: None,
                buf: ReadBuf::default(),
            },
            committed: Pos::default(),
            persisted_commit: Pos::default(),
            synced: Pos::default(),
            dir_dirty: false,
            meta_dirty: false,
            poisoned: false,
            ops: 0,
            force_sync: false,
            doomed: Vec::new(),
            stats: Stats::default(),
            events: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The meta, or `None` (with an event) if it is damaged. An I/O error
    /// reading it is an error: the disk, not the file, is the problem.
    fn load_meta(&mut self) -> Result<Option<format::Meta>> {
        let name = format::meta_name(&self.name);
        let f = match self.storage.open(&name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &name, e)),
        };
        // One byte more than a meta, so that a longer file shows as damaged.
        let mut buf = [0u8; format::META_LEN + 1];
        let n = read_full_at(&f, &mut buf, 0).map_err(|e| Error::io("read", &name, e))?;
        match format::decode_meta(&buf[..n]) {
            Ok(m) => Ok(Some(m)),
            Err(reason) => {
                self.stats.meta_invalid += 1;
                self.event(Event::MetaInvalid { reason });
                Ok(None)
            }
        }
    }

    fn remove_stray(&mut self, index: u64, reason: &'static str) {
        let _ = self.storage.remove(&format::seg_name(&self.name, index));
        self.segs.retain(|s| s.index != index);
        self.stats.stray_segments += 1;
        self.event(Event::StraySegment {
            segment: index,
            reason,
        });
    }

    /// Step 4 for one segment, from `start`.
    fn scan_tail(&mut self, index: u64, start: u64) -> Result<()> {
        let name = format::seg_name(&self.name, index);
        let mut file = match self.storage.open(&name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.segs.retain(|s| s.index != index);
                return Ok(());
            }
            Err(e) => return Err(Error::io("open", &name, e)),
        };
        let size = file.size().map_err(|e| Error::io("stat", &name, e))?;
        let mut head = [0u8; SEG_HEADER_LEN as usize];
        let n = read_full_at(&file, &mut head, 0).map_err(|e| Error::io("read", &name, e))?;
        match format::check_seg_header(&head[..n], index) {
            HeaderCheck::Ok => {}
            HeaderCheck::Blank => {
                drop(file);
                self.remove_stray(index, "created but never written");
                return Ok(());
            }
            HeaderCheck::Bad(reason) => {
                drop(file);
                return self.set_aside(index, 0, reason);
            }
        }
        // A meta write position outside the file means the file lost data
        // it once had; rescan it whole (seq may then run ahead until the
        // reader's end-of-queue resync).
        let from = if start < SEG_HEADER_LEN || start > size {
            SEG_HEADER_LEN
        } else {
            start
        };
        let scan = self
            .scan_records(&file, from, size)
            .map_err(|e| Error::io("read", &name, e))?;
        let is_last = self.segs.back().is_some_and(|s| s.index == index);
        if scan.cut {
            self.stats.torn_tails += 1;
            self.event(Event::TornTail {
                segment: index,
                offset: scan.end,
            });
            // The last segment is cut in reopen_writer (with the stale bytes
            // past the end); an earlier one here.
            if !is_last {
                file.truncate(scan.end)
                    .map_err(|e| Error::io("truncate", &name, e))?;
            }
        }
        self.write_seq += scan.records;
        if let Some(s) = self.segs.iter_mut().find(|s| s.index == index) {
            s.end = Some(scan.end);
        }
        Ok(())
    }

    fn scan_records(&self, file: &S::File, from: u64, size: u64) -> io::Result<Scan> {
        let chunk = self.opts.read_buffer;
        let max = u64::from(self.opts.max_record_size);
        let mut buf = ReadBuf::default();
        let mut off = from;
        let mut records = 0;
        let cut = loop {
            let Some(h) = buf.get(file, off, REC_HEADER_LEN, size, chunk)? else {
                break false;
            };
            let (len, crc) = match format::parse_rec_header(h) {
                RecHeader::End => break false,
                RecHeader::Record { len, crc } => (len, crc),
            };
            let total = REC_HEADER_LEN + u64::from(len);
            if u64::from(len) > max || off + total > size {
                break true;
            }
            let Some(rec) = buf.get(file, off, total, size, chunk)? else {
                break true;
            };
            let ok = format::record_crc(len, &rec[REC_HEADER_LEN as usize..]) == crc;
            // A bad checksum followed by a valid record is a flipped byte in
            // a record written whole: keep it (the reader skips and counts
            // it). Followed by anything else, it is where a torn write ends.
            if ok || self.valid_record_at(file, &mut buf, off + total, size)? {
                records += 1;
                off += total;
                continue;
            }
            break true;
        };
        Ok(Scan {
            end: off,
            records,
            cut,
        })
    }

    fn valid_record_at(
        &self,
        file: &S::File,
        buf: &mut ReadBuf,
        off: u64,
        size: u64,
    ) -> io::Result<bool> {
        let chunk = self.opts.read_buffer;
        let Some(h) = buf.get(file, off, REC_HEADER_LEN, size, chunk)? else {
            return Ok(false);
        };
        let RecHeader::Record { len, crc } = format::parse_rec_header(h) else {
            return Ok(false);
        };
        if len > self.opts.max_record_size {
            return Ok(false);
        }
        let total = REC_HEADER_LEN + u64::from(len);
        Ok(match buf.get(file, off, total, size, chunk)? {
            Some(rec) => format::record_crc(len, &rec[REC_HEADER_LEN as usize..]) == crc,
            None => false,
        })
    }

    /// Step 5: make segment `index` the active one, writing from `end`.
    fn reopen_writer(&mut self, index: u64, end: u64) -> Result<()> {
        let name = format::seg_name(&self.name, index);
        let mut file = self
            .storage
            .open(&name)
            .map_err(|e| Error::io("open", &name, e))?;
        let size = file.size().map_err(|e| Error::io("stat", &name, e))?;
        // Keep what was allocated (at least the initial allocation); the
        // writer grows it from there.
        let cap = size
            .max(
                self.opts
                    .max_bytes_per_file
                    .min(super::queue::INITIAL_ALLOCATION),
            )
            .max(end);
        // Truncate then preallocate again: whatever a torn write left past
        // `end` becomes zeros, so no stale record can reappear behind the
        // records appended from here on.
        file.truncate(end)
            .map_err(|e| Error::io("truncate", &name, e))?;
        match file.allocate(cap) {
            Ok(()) => {}
            Err(e) => {
                let err = Error::io("fallocate", &name, e);
                if err.is_no_space() {
                    // Leave the segment sealed at its end; the next append
                    // rolls (and reports the full disk).
                    return Ok(());
                }
                return Err(err);
            }
        }
        if let Some(s) = self.segs.iter_mut().find(|s| s.index == index) {
            s.end = None;
        }
        self.writer = Some(Writer {
            index,
            file,
            pos: end,
            cap,
            junk: false,
        });
        Ok(())
    }
}
