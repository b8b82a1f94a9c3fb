//! The durability half of [`DiskQueue`]: commit, sync, the sync policy,
//! empty, delete, and the read-only accessors.
//!
//! Order inside [`DiskQueue::sync`] (numbered as in `FORMAT.md`):
//! 1. fdatasync the active segment (sealed ones were synced when sealed);
//! 2. fsync the directory if segments were created or set aside;
//! 3. write the meta to `<name>.meta.tmp`, fdatasync it, rename it over
//!    `<name>.meta`, fsync the directory;
//! 4. only then remove segments wholly before the committed cursor.

use super::format::{self, Meta, SEG_HEADER_LEN};
use super::queue::{DataSync, DiskQueue, Seg};
use super::storage::{write_all_at, Storage, StorageFile};
use super::{Error, Event, Options, Pos, Result, Stats};

fn key(p: &Pos) -> (u64, u64) {
    (p.segment, p.offset)
}

impl<S: Storage> DiskQueue<S> {
    /// Mark every record before `pos` finished; `pos` is a [`Record::next`]
    /// this queue returned. Durable at the next [`sync`](Self::sync); until
    /// then a crash replays from the previous committed cursor.
    ///
    /// A position at or before the committed cursor is a no-op (positions
    /// from before an [`empty`](Self::empty) are); one past the read cursor
    /// is [`Error::BadPosition`].
    ///
    /// [`Record::next`]: super::Record::next
    pub fn commit(&mut self, pos: Pos) -> Result<()> {
        if key(&pos) <= key(&self.committed) {
            return Ok(());
        }
        if key(&pos) > key(&self.reader.pos) {
            return Err(Error::BadPosition {
                pos,
                read: self.reader.pos,
            });
        }
        self.committed = pos;
        self.meta_dirty = true;
        self.ops += 1;
        while let Some(front) = self.segs.front() {
            if front.index >= pos.segment {
                break;
            }
            self.doomed.push(front.index);
            self.segs.pop_front();
        }
        Ok(())
    }

    /// Make everything appended so far durable (data and directory entries),
    /// without writing the meta. Enough for fsync-before-ack: recovery scans
    /// forward from the last meta's write position and finds these records.
    pub fn sync_data(&mut self) -> Result<()> {
        if let Some(ds) = self.begin_sync_data()? {
            let res = ds.run();
            self.finish_sync_data(ds, res)?;
        }
        Ok(())
    }

    /// First half of [`sync_data`](Self::sync_data) for running the
    /// `fdatasync` elsewhere. Syncs the directory inline if a segment was
    /// created since (once per roll). `None`: nothing is left to do (already
    /// durable, or this storage has no descriptor and synced inline).
    pub fn begin_sync_data(&mut self) -> Result<Option<DataSync>> {
        if self.dir_dirty {
            self.storage
                .sync_dir()
                .map_err(|e| Error::io("fsync dir", &self.name, e))?;
            self.dir_dirty = false;
        }
        let upto = self.write_pos();
        if upto <= self.synced {
            return Ok(None);
        }
        let Some(w) = self.writer.as_mut() else {
            // Sealed segments were synced when sealed.
            self.synced = upto;
            return Ok(None);
        };
        let segment = w.index;
        match w.file.sync_handle() {
            Some(Ok(file)) => Ok(Some(DataSync::new(file, segment, upto))),
            Some(Err(e)) => Err(Error::io("dup", &format::seg_name(&self.name, segment), e)),
            None => match w.file.sync_data() {
                Ok(()) => {
                    self.synced = self.synced.max(upto);
                    Ok(None)
                }
                Err(e) => Err(self.sync_failed(segment, e)),
            },
        }
    }

    /// Second half: record the outcome of [`DataSync::run`]. On failure the
    /// next append starts a new segment (Linux may have dropped the failed
    /// pages; a retried fsync would falsely succeed).
    pub fn finish_sync_data(&mut self, ds: DataSync, res: std::io::Result<()>) -> Result<()> {
        match res {
            Ok(()) => {
                self.synced = self.synced.max(ds.upto());
                Ok(())
            }
            Err(e) => Err(self.sync_failed(ds.segment(), e)),
        }
    }

    /// Full sync: data, directory, meta (committed cursor), then removal of
    /// consumed segments. Resets the [`needs_sync`](Self::needs_sync) count.
    pub fn sync(&mut self) -> Result<()> {
        self.sync_data()?;
        self.persist_meta()?;
        self.reap_doomed();
        self.ops = 0;
        self.force_sync = false;
        Ok(())
    }

    /// [`sync`](Self::sync) if [`needs_sync`](Self::needs_sync).
    pub fn maybe_sync(&mut self) -> Result<bool> {
        if !self.needs_sync() {
            return Ok(false);
        }
        self.sync()?;
        Ok(true)
    }

    fn persist_meta(&mut self) -> Result<()> {
        let meta = Meta {
            committed: self.committed,
            write: self.synced,
        };
        let bytes = format::encode_meta(&meta);
        let tmp = format::meta_tmp_name(&self.name);
        let dst = format::meta_name(&self.name);
        let mut f = self
            .storage
            .create(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        write_all_at(&mut f, &bytes, 0).map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_data().map_err(|e| Error::io("fdatasync", &tmp, e))?;
        drop(f);
        self.storage
            .rename(&tmp, &dst)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        self.storage
            .sync_dir()
            .map_err(|e| Error::io("fsync dir", &self.name, e))?;
        self.dir_dirty = false;
        self.meta_dirty = false;
        self.persisted_commit = meta.committed;
        Ok(())
    }

    /// Remove consumed segments that a durable meta has moved past. A failed
    /// remove is retried at the next sync (and at open, which removes any
    /// segment before the committed cursor).
    fn reap_doomed(&mut self) {
        let limit = self.persisted_commit.segment;
        let storage = &self.storage;
        let name = &self.name;
        self.doomed.retain(|&index| {
            if index >= limit {
                return true;
            }
            match storage.remove(&format::seg_name(name, index)) {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            }
        });
    }

    /// Drop everything: the next record read is the next one appended. The
    /// new empty state is synced before the old files are removed, so a
    /// crash leaves either the old queue or the empty one.
    pub fn empty(&mut self) -> Result<()> {
        // First the new segment: if that fails nothing has changed.
        let w = self.create_segment(0)?;
        self.doomed.extend(self.segs.drain(..).map(|s| s.index));
        let pos = Pos {
            segment: w.index,
            offset: SEG_HEADER_LEN,
            seq: self.write_seq,
        };
        self.segs.push_back(Seg {
            index: w.index,
            end: None,
        });
        self.writer = Some(w);
        self.reader.file = None;
        self.reader.buf.clear();
        self.reader.pos = pos;
        self.committed = pos;
        self.meta_dirty = true;
        self.poisoned = false;
        self.sync()
    }

    /// Remove every file of this queue (segments, `.bad` files, meta).
    /// Attempts all removals and returns the first error.
    pub fn delete(mut self) -> Result<()> {
        self.writer = None;
        self.reader.file = None;
        let names = self
            .storage
            .list()
            .map_err(|e| Error::io("list", &self.name, e))?;
        // The meta goes last, and only once every other file is gone: a
        // queue without a meta holds no record, so neither a crash nor a
        // failed removal leaves a queue that looks absent but still has
        // data (see `segment::meta_file`).
        let mut own: Vec<(bool, String)> = names
            .into_iter()
            .filter_map(|n| {
                let kind = format::parse_own_file(&self.name, &n)?;
                Some((kind == format::OwnFile::Meta, n))
            })
            .collect();
        own.sort_by_key(|(is_meta, _)| *is_meta);
        let mut first = None;
        for (is_meta, n) in own {
            if is_meta && first.is_some() {
                break;
            }
            if let Err(e) = self.storage.remove(&n) {
                first.get_or_insert(Error::io("remove", &n, e));
            }
        }
        if let Err(e) = self.storage.sync_dir() {
            first.get_or_insert(Error::io("fsync dir", &self.name, e));
        }
        first.map_or(Ok(()), Err)
    }

    /// Records appended and not yet read (nsqd's `backend_depth`). After a
    /// restart: records after the committed cursor.
    pub fn depth(&self) -> u64 {
        self.write_seq.saturating_sub(self.reader.pos.seq)
    }

    /// Where the next append goes. With no active segment (a roll failed),
    /// the start of the segment the next roll creates.
    pub fn write_pos(&self) -> Pos {
        match &self.writer {
            Some(w) => Pos {
                segment: w.index,
                offset: w.pos,
                seq: self.write_seq,
            },
            None => Pos {
                segment: self.next_index,
                offset: 0,
                seq: self.write_seq,
            },
        }
    }

    /// The read cursor: the next record [`read_next`](Self::read_next)
    /// returns is at or after it.
    pub fn read_pos(&self) -> Pos {
        self.reader.pos
    }

    /// The committed cursor (in memory; see [`persisted_commit`](Self::persisted_commit)).
    pub fn committed_pos(&self) -> Pos {
        self.committed
    }

    /// The committed cursor as last written to the meta file.
    pub fn persisted_commit(&self) -> Pos {
        self.persisted_commit
    }

    /// Everything appended before this position is durable.
    pub fn synced_pos(&self) -> Pos {
        self.synced
    }

    /// `--sync-every`: true once [`Options::sync_every`] appends, reads and
    /// commits happened since the last [`sync`](Self::sync), or a segment was
    /// rolled. The caller syncs (inline or through [`DataSync`]).
    pub fn needs_sync(&self) -> bool {
        self.force_sync || (self.opts.sync_every > 0 && self.ops >= self.opts.sync_every)
    }

    /// `--sync-timeout`: true if a [`sync`](Self::sync) would do anything.
    /// The broker's timer calls `sync` only then, as nsqd does.
    pub fn is_dirty(&self) -> bool {
        self.write_pos() > self.synced
            || self.meta_dirty
            || self.dir_dirty
            || !self.doomed.is_empty()
            || self.committed != self.persisted_commit
    }

    /// Counters of what was repaired or skipped since open.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Take the events recorded since the last call (at most 1024 are kept).
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The queue's name (file prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Number of live segment files (including the active one).
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// The storage (for tests and for the data directory path).
    pub fn storage(&self) -> &S {
        &self.storage
    }
}
