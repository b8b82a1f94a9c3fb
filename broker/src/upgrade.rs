//! Upgrade in place from the original nsqd: import the backlog that Go
//! nsqd (v1.x, go-diskqueue) left in `--data-path` into our disk queues.
//!
//! Runs once at startup on the main thread ([`import_go_queues`], called by
//! `server::run` next to `backend::adopt_orphan_parts`), after the data-path
//! lock and the metadata load and before any shard starts: blocking I/O is
//! fine, nothing else touches the files. A data path without go-diskqueue
//! files costs one directory listing.
//!
//! # The go-diskqueue format (nsqd v1.3, go-diskqueue v1.1)
//!
//! Queue name: the topic name for a topic, `<topic>:<channel>` for a
//! channel (`;` on Windows builds of nsqd, not handled here). `#ephemeral`
//! topics and channels have no disk queue. Files in `--data-path`:
//!
//! | file | what |
//! |---|---|
//! | `<name>.diskqueue.meta.dat` | text `"%d\n%d,%d\n%d,%d\n"`: depth, readFileNum,readPos, writeFileNum,writePos |
//! | `<name>.diskqueue.%06d.dat` | records, back to back: `[len i32 BE][payload]` |
//! | `<name>.diskqueue.%06d.dat.bad` | a file nsqd failed to read and set aside (not read again) |
//! | `<name>.diskqueue.meta.dat.<n>.tmp` | a meta write cut short |
//!
//! The payload is nsqd's message encoding `[timestamp ns i64 BE][attempts
//! u16 BE][id 16 bytes][body]`; nsqd accepts lengths 26 ..= 26 +
//! `--max-msg-size`. The reader starts at (readFileNum, readPos), reads a
//! file that is not the write file to its end (nsqd takes the file's size,
//! `maxBytesPerFileRead`), then goes on at offset 0 of the next file; in
//! the write file it stops at writePos. nsqd deletes a file once read past.
//!
//! What we read, per queue: every data file numbered from readFileNum on,
//! from readPos in the first and offset 0 in the others, each to the end of
//! the file. That is nsqd's own reading, including its salvage after an
//! unclean shutdown (a write file longer than the stale writePos makes
//! nsqd start a new write file and read the old one to its end). A missing
//! or unparsable meta file means every data file is read from offset 0
//! (logged: messages consumed before may come back). Damage (a length below
//! 26 or above 26 + `--max-msg-size`, a record running past the end of its
//! file) keeps every message before it, skips the rest of that file with one
//! log line naming the file, the offset and the reason, and goes on with the
//! next file. Records are streamed and appended in batches: memory stays
//! bounded whatever the backlog.
//!
//! # Where messages go
//!
//! A topic's backlog goes into the disk queue of the topic's part on shard
//! 0 (`<topic>~0`), a channel's into the channel's disk queue
//! (`<topic>:<channel>~`, the same files whatever shard owns it), in order,
//! with their IDs, timestamps and attempts, through [`Backend`] (our record
//! encoding, checksummed segments). A queue whose topic or channel is not in
//! `nsqd.dat` still is imported, and the topic or channel is created.
//!
//! # Exactly once, even if killed in the middle
//!
//! Queues are imported one at a time. For Go queue `Q` into our queue `D`:
//!
//! 0. Before the first queue: every topic and channel with a Go queue on
//!    disk is added to `nsqd.dat` if missing (tmp, fsync, rename, fsync of
//!    the directory), so what gets imported is restored at every later start.
//! 1. Open `D` (recovery, full sync) and note `base`, its write sequence
//!    number (records ever appended to `D`).
//! 2. Write the journal `go-nsqd-import.journal`: `Q`, `D`, `base`, state
//!    `importing` (tmp, fsync, rename, fsync of the directory).
//! 3. Stream `Q`'s messages into `D`, then a full sync of `D`.
//! 4. Journal state `imported` (same atomic write).
//! 5. Rename each of `Q`'s files into `go-nsqd-imported/` (a name already
//!    taken there gets a `.1`, `.2`... suffix); fsync both directories.
//! 6. Remove the journal; fsync the directory.
//!
//! At the next start:
//! - no journal: any Go file still in `--data-path` belongs to a queue not
//!   imported yet (files move only after step 4, and the journal goes only
//!   after step 5): import it from the start. Nothing was appended without
//!   a journal (step 2 comes before step 3).
//! - journal `importing`: `Q`'s files are all still in place; `D` holds
//!   `k = D.seq - base` records from step 3, and since appends are in order
//!   and a crash keeps a prefix of them (recovery cuts a torn tail), they are
//!   `Q`'s first `k` messages. Read `Q` again, skip `k`, append the rest,
//!   continue at step 3. (The journal also records the length limit used, so
//!   the second reading parses exactly as the first.)
//! - journal `imported`: `D` has everything; finish step 5 with the files
//!   still in place, then step 6.
//!
//! A queue with nothing left to read (its consumers were caught up) skips
//! steps 1 to 4: nothing can be duplicated or lost, its files are only moved.
//!
//! The old files are never deleted: once the imported backlog is drained,
//! the operator may delete `go-nsqd-imported/`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::BytesMut;
use nsq_proto::names;
use nsq_proto::MessageId;

use crate::backend::Backend;
use crate::config::Options;
use crate::message::Message;
use crate::metadata::{self, ChannelMeta, Metadata, TopicMeta};

/// Folder of `--data-path` the imported Go files are moved into.
pub const ASIDE_DIR: &str = "go-nsqd-imported";
/// The journal of the queue being imported (see the module doc).
pub const JOURNAL_FILE: &str = "go-nsqd-import.journal";
/// nsqd's message header: timestamp 8, attempts 2, ID 16.
const GO_HEADER: u64 = 26;
/// Messages appended per batch (one write per segment touched).
const BATCH_MESSAGES: usize = 1024;
/// Body bytes per batch, so large messages keep a batch small.
const BATCH_BYTES: usize = 4 << 20;
/// Read buffer per Go file.
const READ_BUFFER: usize = 1 << 20;

/// What kind of go-diskqueue file a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoFile {
    /// `<name>.diskqueue.meta.dat`
    Meta,
    /// `<name>.diskqueue.meta.dat.<n>.tmp`
    MetaTmp,
    /// `<name>.diskqueue.<n>.dat`
    Data(u64),
    /// `<name>.diskqueue.<n>.dat.bad`
    Bad(u64),
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Split a file name into (go-diskqueue name, kind). Suffix-anchored, so a
/// topic named `a.diskqueue.b` is no trouble.
fn parse_file_name(file: &str) -> Option<(&str, GoFile)> {
    const META: &str = ".diskqueue.meta.dat";
    if let Some(queue) = file.strip_suffix(META) {
        return Some((queue, GoFile::Meta));
    }
    if let Some(rest) = file.strip_suffix(".tmp") {
        let (head, n) = rest.rsplit_once('.')?;
        let queue = head.strip_suffix(META)?;
        return all_digits(n).then_some((queue, GoFile::MetaTmp));
    }
    let (rest, bad) = match file.strip_suffix(".bad") {
        Some(rest) => (rest, true),
        None => (file, false),
    };
    let (head, n) = rest.strip_suffix(".dat")?.rsplit_once('.')?;
    if !all_digits(n) {
        return None;
    }
    let num = n.parse().ok()?;
    let queue = head.strip_suffix(".diskqueue")?;
    Some((
        queue,
        if bad {
            GoFile::Bad(num)
        } else {
            GoFile::Data(num)
        },
    ))
}

/// A topic or a channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct QueueId {
    topic: String,
    channel: Option<String>,
}

impl QueueId {
    /// From a go-diskqueue name; `Err(why)` for names we leave alone.
    fn from_go_name(name: &str) -> Result<QueueId, &'static str> {
        let (topic, channel) = match name.split_once(':') {
            Some((t, c)) => (t, Some(c)),
            None => (name, None),
        };
        if !names::is_valid_topic_name(topic) || !channel.is_none_or(names::is_valid_channel_name) {
            return Err("not a valid topic or channel name");
        }
        if names::is_ephemeral(topic) || channel.is_some_and(names::is_ephemeral) {
            return Err("#ephemeral topics and channels have no disk queue");
        }
        Ok(QueueId {
            topic: topic.to_string(),
            channel: channel.map(str::to_string),
        })
    }

    /// Our disk queue: must match `topic::queue_name(topic, 0)` and the
    /// channel's queue name in `channel::Channel::create`.
    fn our_name(&self) -> String {
        match &self.channel {
            None => format!("{}~0", self.topic),
            Some(c) => format!("{}:{c}~", self.topic),
        }
    }

    fn describe(&self) -> String {
        match &self.channel {
            None => format!("TOPIC({})", self.topic),
            Some(c) => format!("CHANNEL({}/{c})", self.topic),
        }
    }
}

/// A go-diskqueue meta file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GoMeta {
    depth: i64,
    read_file: i64,
    read_pos: i64,
    write_file: i64,
    write_pos: i64,
}

impl GoMeta {
    /// Parse `"%d\n%d,%d\n%d,%d\n"` (whitespace around numbers tolerated).
    fn parse(text: &str) -> Option<GoMeta> {
        let mut lines = text.lines();
        let depth = lines.next()?.trim().parse().ok()?;
        let pair = |line: Option<&str>| -> Option<(i64, i64)> {
            let (a, b) = line?.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        };
        let (read_file, read_pos) = pair(lines.next())?;
        let (write_file, write_pos) = pair(lines.next())?;
        if lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        Some(GoMeta {
            depth,
            read_file,
            read_pos,
            write_file,
            write_pos,
        })
    }

    /// Positions nsqd itself would accept.
    fn is_consistent(&self) -> bool {
        self.read_file >= 0
            && self.read_pos >= 0
            && self.write_pos >= 0
            && (self.read_file, self.read_pos) <= (self.write_file, self.write_pos)
    }
}

/// One go-diskqueue queue found in `--data-path`.
#[derive(Debug)]
struct GoQueue {
    name: String,
    id: QueueId,
    has_meta: bool,
    /// Data file number to its file name.
    data: BTreeMap<u64, String>,
    bad_files: usize,
    /// Every file of the queue (what is moved aside).
    files: Vec<String>,
}

impl GoQueue {
    /// Something to import (a meta or a data file), not only leftovers.
    fn has_backlog(&self) -> bool {
        self.has_meta || !self.data.is_empty()
    }
}

/// The go-diskqueue queues in `dir`, by name. Files of names we must not
/// touch (invalid, ephemeral) are logged and left where they are.
fn discover(dir: &Path) -> anyhow::Result<BTreeMap<String, GoQueue>> {
    let mut queues: BTreeMap<String, GoQueue> = BTreeMap::new();
    let mut skipped: BTreeMap<String, &'static str> = BTreeMap::new();
    let entries = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some((name, kind)) = parse_file_name(file) else {
            continue;
        };
        if entry.file_type().map(|t| !t.is_file()).unwrap_or(true) {
            continue;
        }
        let id = match QueueId::from_go_name(name) {
            Ok(id) => id,
            Err(why) => {
                skipped.insert(name.to_string(), why);
                continue;
            }
        };
        let queue = queues.entry(name.to_string()).or_insert_with(|| GoQueue {
            name: name.to_string(),
            id,
            has_meta: false,
            data: BTreeMap::new(),
            bad_files: 0,
            files: Vec::new(),
        });
        match kind {
            GoFile::Meta => queue.has_meta = true,
            GoFile::Data(n) => {
                queue.data.insert(n, file.to_string());
            }
            GoFile::Bad(_) => queue.bad_files += 1,
            GoFile::MetaTmp => {}
        }
        queue.files.push(file.to_string());
    }
    for (name, why) in skipped {
        crate::log_warn!("UPGRADE: leaving the go-diskqueue files of {name:?} alone: {why}");
    }
    for queue in queues.values_mut() {
        queue.files.sort();
    }
    Ok(queues)
}

/// One data file to read, from `start` to `size`.
#[derive(Debug, Clone)]
struct PlanFile {
    path: PathBuf,
    start: u64,
    size: u64,
}

/// What to read of a queue.
#[derive(Debug, Default)]
struct Plan {
    files: Vec<PlanFile>,
    /// Data files before the read position (already consumed, left behind).
    consumed_files: usize,
    /// nsqd's depth, when the meta file was usable.
    depth: Option<i64>,
    /// Where reading starts, for the log.
    from: String,
}

fn file_size(path: &Path) -> anyhow::Result<u64> {
    fs::metadata(path)
        .map(|m| m.len())
        .with_context(|| format!("cannot stat {}", path.display()))
}

/// Work out which files to read and where (see the module doc).
fn plan(dir: &Path, queue: &GoQueue) -> anyhow::Result<Plan> {
    let label = &queue.name;
    let meta_path = dir.join(format!("{}.diskqueue.meta.dat", queue.name));
    let meta = if queue.has_meta {
        let text =
            fs::read(&meta_path).with_context(|| format!("cannot read {}", meta_path.display()))?;
        match std::str::from_utf8(&text).ok().and_then(GoMeta::parse) {
            Some(m) if m.is_consistent() => Some(m),
            Some(m) => {
                crate::log_error!(
                    "UPGRADE({label}): {}: inconsistent positions (read {},{} write {},{}): reading every data file from its start; messages consumed before may be delivered again",
                    meta_path.display(), m.read_file, m.read_pos, m.write_file, m.write_pos
                );
                None
            }
            None => {
                crate::log_error!(
                    "UPGRADE({label}): {}: not a go-diskqueue meta file ({:?}): reading every data file from its start; messages consumed before may be delivered again",
                    meta_path.display(),
                    String::from_utf8_lossy(&text[..text.len().min(64)])
                );
                None
            }
        }
    } else {
        if !queue.data.is_empty() {
            crate::log_warn!(
                "UPGRADE({label}): no meta file (nsqd killed before its first sync?): reading every data file from its start; messages consumed before may be delivered again"
            );
        }
        None
    };
    let mut plan = Plan::default();
    let Some(meta) = meta else {
        for file in queue.data.values() {
            let path = dir.join(file);
            let size = file_size(&path)?;
            plan.files.push(PlanFile {
                path,
                start: 0,
                size,
            });
        }
        plan.from = match queue.data.keys().next() {
            Some(n) => format!("file {n} offset 0, no usable meta"),
            None => "nothing".into(),
        };
        return Ok(plan);
    };
    plan.depth = Some(meta.depth);
    plan.from = format!("file {} offset {}", meta.read_file, meta.read_pos);
    let (read_file, write_file) = (meta.read_file as u64, meta.write_file as u64);
    // Files that should hold unread messages and are gone. Bounded walk: a
    // damaged meta may claim billions of files.
    let should_exist = |n: u64| {
        n < write_file
            || (n == write_file
                && (meta.write_pos > 0 && (n != read_file || meta.read_pos < meta.write_pos)))
    };
    let missing: Vec<u64> = (read_file..=write_file)
        .filter(|n| should_exist(*n) && !queue.data.contains_key(n))
        .take(10)
        .collect();
    if !missing.is_empty() {
        let span = write_file - read_file + 1;
        let present = queue.data.range(read_file..=write_file).count() as u64;
        crate::log_error!(
            "UPGRADE({label}): {} data files between the meta's read file {read_file} and write file {write_file} are missing (first: {missing:?}): their messages are lost",
            span - present
        );
    }
    for (&n, file) in &queue.data {
        if n < read_file {
            plan.consumed_files += 1;
            continue;
        }
        let path = dir.join(file);
        let size = file_size(&path)?;
        let start = if n == read_file {
            meta.read_pos as u64
        } else {
            0
        };
        if n == write_file && size != meta.write_pos as u64 {
            if size > meta.write_pos as u64 {
                crate::log_warn!(
                    "UPGRADE({label}): {}: {} bytes past the meta's write position {} (nsqd stopped without syncing its meta?): importing them, as nsqd would",
                    path.display(),
                    size - meta.write_pos as u64,
                    meta.write_pos
                );
            } else {
                crate::log_error!(
                    "UPGRADE({label}): {}: shorter ({size} bytes) than the meta's write position {}: the missing messages are lost",
                    path.display(),
                    meta.write_pos
                );
            }
        }
        if n > write_file {
            crate::log_warn!(
                "UPGRADE({label}): {}: after the meta's write file {write_file} (stale meta?): importing it",
                path.display()
            );
        }
        if start > size {
            crate::log_error!(
                "UPGRADE({label}): {}: read position {start} is past the end of the file ({size} bytes): nothing to read in it",
                path.display()
            );
            continue;
        }
        plan.files.push(PlanFile { path, start, size });
    }
    Ok(plan)
}

/// Streams the messages of a planned queue, one file after the other.
struct GoReader<'a> {
    label: &'a str,
    files: std::vec::IntoIter<PlanFile>,
    cur: Option<Current>,
    /// Largest record length accepted (26 + --max-msg-size).
    max_len: u64,
    messages: u64,
    bytes: u64,
    files_read: u64,
    damaged_files: u64,
}

struct Current {
    file: PlanFile,
    reader: BufReader<File>,
    pos: u64,
    messages: u64,
}

impl<'a> GoReader<'a> {
    fn new(label: &'a str, plan: Vec<PlanFile>, max_len: u64) -> Self {
        GoReader {
            label,
            files: plan.into_iter(),
            cur: None,
            max_len,
            messages: 0,
            bytes: 0,
            files_read: 0,
            damaged_files: 0,
        }
    }

    /// Log damage in the current file and drop the rest of it.
    fn damaged(&mut self, why: String) {
        if let Some(cur) = self.cur.take() {
            self.damaged_files += 1;
            crate::log_error!(
                "UPGRADE({}): {}: at offset {}: {why}; skipping the rest of this file ({} bytes), keeping the {} messages read before it in this file",
                self.label,
                cur.file.path.display(),
                cur.pos,
                cur.file.size - cur.pos,
                cur.messages
            );
        }
    }

    /// The next message, `None` at the end of the queue. Errors are I/O
    /// errors (the file could not be read at all), not damage.
    fn next_message(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            let Some(cur) = self.cur.as_mut() else {
                let Some(file) = self.files.next() else {
                    return Ok(None);
                };
                let mut f = File::open(&file.path)
                    .with_context(|| format!("cannot open {}", file.path.display()))?;
                f.seek(SeekFrom::Start(file.start))
                    .with_context(|| format!("cannot seek in {}", file.path.display()))?;
                self.files_read += 1;
                self.cur = Some(Current {
                    pos: file.start,
                    reader: BufReader::with_capacity(READ_BUFFER, f),
                    file,
                    messages: 0,
                });
                continue;
            };
            let left = cur.file.size - cur.pos;
            if left == 0 {
                self.cur = None;
                continue;
            }
            if left < 4 {
                let why =
                    format!("truncated record: the file ends {left} bytes into a record length");
                self.damaged(why);
                continue;
            }
            let mut len = [0u8; 4];
            read_exact(&mut cur.reader, &mut len, &cur.file.path)?;
            let len = i32::from_be_bytes(len);
            if len < GO_HEADER as i32 {
                let why = format!(
                    "corrupt record: length {len} is below the message header size {GO_HEADER}"
                );
                self.damaged(why);
                continue;
            }
            let len = len as u64;
            if len > self.max_len {
                let why = format!(
                    "corrupt record: length {len} is larger than --max-msg-size + {GO_HEADER} ({}) (or the old nsqd ran with a larger --max-msg-size: then start with that and move the files back from {ASIDE_DIR}/)",
                    self.max_len
                );
                self.damaged(why);
                continue;
            }
            if len > left - 4 {
                let why = format!(
                    "truncated record: length {len} runs past the end of the file ({} bytes)",
                    cur.file.size
                );
                self.damaged(why);
                continue;
            }
            let mut buf = BytesMut::zeroed(len as usize);
            read_exact(&mut cur.reader, &mut buf, &cur.file.path)?;
            let data = buf.freeze();
            let (Ok(ts), Ok(attempts), Some(id)) = (
                <[u8; 8]>::try_from(&data[0..8]),
                <[u8; 2]>::try_from(&data[8..10]),
                MessageId::from_slice(&data[10..26]),
            ) else {
                // Unreachable (len >= 26), but nothing a file holds may panic.
                self.damaged("undecodable record".into());
                continue;
            };
            cur.pos += 4 + len;
            cur.messages += 1;
            self.messages += 1;
            self.bytes += len - GO_HEADER;
            return Ok(Some(Message {
                id,
                body: data.slice(GO_HEADER as usize..),
                timestamp: i64::from_be_bytes(ts),
                attempts: u16::from_be_bytes(attempts),
                deliver_at: None,
            }));
        }
    }
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> anyhow::Result<()> {
    reader.read_exact(buf).with_context(|| {
        format!(
            "cannot read {} (fix or remove it and start again: the import resumes where it stopped)",
            path.display()
        )
    })
}

/// The state of the queue being imported, in `go-nsqd-import.journal`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Journal {
    /// The go-diskqueue name.
    queue: String,
    /// Our disk queue.
    into: String,
    /// The write sequence number of `into` before the import.
    base: u64,
    /// The record length limit the Go files were parsed with.
    max_len: u64,
    /// Step 3 finished: everything is in `into`.
    imported: bool,
}

const JOURNAL_MAGIC: &str = "go-nsqd-import v1";

impl Journal {
    fn encode(&self) -> String {
        format!(
            "{JOURNAL_MAGIC}\nqueue {}\ninto {}\nbase {}\nmax-len {}\nstate {}\n",
            self.queue,
            self.into,
            self.base,
            self.max_len,
            if self.imported {
                "imported"
            } else {
                "importing"
            }
        )
    }

    fn decode(text: &str) -> Option<Journal> {
        let mut lines = text.lines();
        if lines.next()? != JOURNAL_MAGIC {
            return None;
        }
        let mut field = |key: &str| -> Option<String> {
            let (k, v) = lines.next()?.split_once(' ')?;
            (k == key).then(|| v.to_string())
        };
        let queue = field("queue")?;
        let into = field("into")?;
        let base = field("base")?.parse().ok()?;
        let max_len = field("max-len")?.parse().ok()?;
        let imported = match field("state")?.as_str() {
            "imported" => true,
            "importing" => false,
            _ => return None,
        };
        Some(Journal {
            queue,
            into,
            base,
            max_len,
            imported,
        })
    }

    fn load(dir: &Path) -> anyhow::Result<Option<Journal>> {
        let path = dir.join(JOURNAL_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        match Journal::decode(&text) {
            Some(j) => Ok(Some(j)),
            // Written atomically, so this is not a torn write: someone
            // edited it. Guessing could duplicate or lose messages.
            None => bail!(
                "{} is not a valid import journal ({text:?}); remove it to import the go-diskqueue files still in --data-path again from their start (the queue it names may then get duplicates)",
                path.display()
            ),
        }
    }

    fn store(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(JOURNAL_FILE);
        let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(self.encode().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(dir)
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }

    fn remove(dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(JOURNAL_FILE);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
        sync_dir(dir).with_context(|| format!("cannot sync {}", dir.display()))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Move the files of a queue that are still in `dir` into the aside folder.
fn move_aside(
    dir: &Path,
    files: &[String],
    crash: Option<Crash>,
) -> anyhow::Result<(usize, PathBuf)> {
    let aside = dir.join(ASIDE_DIR);
    if !aside.is_dir() {
        fs::create_dir_all(&aside).with_context(|| format!("cannot create {}", aside.display()))?;
        sync_dir(dir).with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    let mut moved = 0;
    for file in files {
        if let Some(Crash::AfterMoves(n)) = crash {
            if moved == n {
                bail!("simulated crash after {n} files moved");
            }
        }
        let from = dir.join(file);
        match fs::symlink_metadata(&from) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // moved before a crash
            _ => {}
        }
        let mut to = aside.join(file);
        let mut n = 1;
        while fs::symlink_metadata(&to).is_ok() {
            to = aside.join(format!("{file}.{n}"));
            n += 1;
        }
        fs::rename(&from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        moved += 1;
    }
    sync_dir(&aside).with_context(|| format!("cannot sync {}", aside.display()))?;
    sync_dir(dir).with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok((moved, aside))
}

/// Add the topic (and channel) to `topics` if missing; true if added.
fn ensure_listed(topics: &mut Vec<TopicMeta>, id: &QueueId) -> bool {
    let mut added = false;
    let topic = match topics.iter().position(|t| t.name == id.topic) {
        Some(i) => &mut topics[i],
        None => {
            added = true;
            topics.push(TopicMeta {
                name: id.topic.clone(),
                paused: false,
                channels: Some(Vec::new()),
            });
            let last = topics.len() - 1;
            &mut topics[last]
        }
    };
    if let Some(channel) = &id.channel {
        let channels = topic.channels.get_or_insert_with(Vec::new);
        if !channels.iter().any(|c| &c.name == channel) {
            added = true;
            channels.push(ChannelMeta {
                name: channel.clone(),
                paused: false,
            });
        }
    }
    added
}

/// Where a test stops the import, as if the process were killed there.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Journal `importing` written, nothing appended.
    AfterJournal,
    /// This many messages appended (not synced).
    AfterMessages(u64),
    /// Everything appended and synced, journal still `importing`.
    BeforeImportedMark,
    /// Journal `imported`, this many files moved.
    AfterMoves(usize),
    /// Files moved, journal not removed.
    BeforeJournalRemoved,
}

/// What one queue's import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct QueueReport {
    messages: u64,
    bytes: u64,
    files_read: u64,
    damaged_files: u64,
    /// Messages found already imported before an interruption.
    resumed: u64,
}

/// What the whole import did.
#[derive(Debug, Default)]
struct Summary {
    queues: usize,
    messages: u64,
    bytes: u64,
    damaged_files: u64,
    /// Per go-diskqueue name.
    reports: BTreeMap<String, QueueReport>,
}

/// Import every go-diskqueue backlog in `data_path` (see the module doc).
/// Returns the topics and channels to restore: `restored` plus any that only
/// had a Go queue on disk.
pub fn import_go_queues(
    data_path: &Path,
    opts: &Options,
    restored: &[TopicMeta],
) -> anyhow::Result<Vec<TopicMeta>> {
    let mut topics = restored.to_vec();
    run(data_path, opts, &mut topics, None)?;
    Ok(topics)
}

fn run(
    dir: &Path,
    opts: &Options,
    topics: &mut Vec<TopicMeta>,
    crash: Option<Crash>,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let journal = Journal::load(dir)?;
    let mut queues = discover(dir)?;
    if queues.is_empty() && journal.is_none() {
        return Ok(summary);
    }
    let started = Instant::now();

    // Step 0: every topic and channel with a backlog is in nsqd.dat.
    let mut added = false;
    for queue in queues.values().filter(|q| q.has_backlog()) {
        if ensure_listed(topics, &queue.id) {
            added = true;
            crate::log_info!(
                "UPGRADE: {} has a go-diskqueue backlog but is not in {}: creating it",
                queue.id.describe(),
                metadata::FILE_NAME
            );
        }
    }
    if added {
        metadata::save(dir, &Metadata::merge(vec![topics.clone()]))
            .with_context(|| format!("cannot write {}", metadata::FILE_NAME))?;
    }

    // An import interrupted by a crash first.
    if let Some(journal) = journal {
        match queues.remove(&journal.queue) {
            Some(queue) if journal.imported => {
                crate::log_info!(
                    "UPGRADE({}): finishing an interrupted import: the messages were imported, moving the old files aside",
                    journal.queue
                );
                let (moved, aside) = move_aside(dir, &queue.files, crash)?;
                Journal::remove(dir)?;
                crate::log_info!(
                    "UPGRADE({}): {moved} old files moved to {}",
                    journal.queue,
                    aside.display()
                );
            }
            Some(queue) => {
                let report = import_queue(dir, opts, &queue, Some(&journal), crash)?;
                summary.add(&queue.name, report);
            }
            None if journal.imported => {
                // Killed after the last file moved, before the journal went.
                Journal::remove(dir)?;
                crate::log_info!(
                    "UPGRADE({}): finished an interrupted import (old files already in {ASIDE_DIR}/)",
                    journal.queue
                );
            }
            None => {
                crate::log_warn!(
                    "UPGRADE({}): the import journal names this queue but its files are gone from --data-path; dropping the journal",
                    journal.queue
                );
                Journal::remove(dir)?;
            }
        }
    }

    for queue in queues.values() {
        if !queue.has_backlog() {
            let (moved, aside) = move_aside(dir, &queue.files, crash)?;
            crate::log_info!(
                "UPGRADE({}): only leftover files ({} .bad); {moved} moved to {}",
                queue.name,
                queue.bad_files,
                aside.display()
            );
            continue;
        }
        let report = import_queue(dir, opts, queue, None, crash)?;
        summary.add(&queue.name, report);
    }
    let aside = dir.join(ASIDE_DIR);
    crate::log_info!(
        "UPGRADE: imported {} go-diskqueue queues of the original nsqd: {} messages ({} bytes){} in {:.3}s; the old files are in {} (delete them once the backlog is drained)",
        summary.queues,
        summary.messages,
        summary.bytes,
        if summary.damaged_files > 0 {
            format!(", {} damaged files (see above)", summary.damaged_files)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64(),
        aside.display()
    );
    Ok(summary)
}

impl Summary {
    fn add(&mut self, name: &str, report: QueueReport) {
        self.queues += 1;
        self.messages += report.messages;
        self.bytes += report.bytes;
        self.damaged_files += report.damaged_files;
        self.reports.insert(name.to_string(), report);
    }
}

/// Steps 1 to 6 for one queue; `journal` when resuming an interrupted one.
fn import_queue(
    dir: &Path,
    opts: &Options,
    queue: &GoQueue,
    journal: Option<&Journal>,
    crash: Option<Crash>,
) -> anyhow::Result<QueueReport> {
    let into = queue.id.our_name();
    let what = queue.id.describe();
    let fail = || format!("importing go-diskqueue {} into {into}", queue.name);
    let plan = plan(dir, queue)?;
    if journal.is_none() && plan.files.iter().all(|f| f.start >= f.size) {
        // Nothing to read (consumers were caught up): no message can be
        // duplicated or lost, so no journal and no queue; set aside only.
        let (moved, aside) = move_aside(dir, &queue.files, crash)?;
        crate::log_info!(
            "UPGRADE: go-diskqueue {} of {what} is empty{}; {moved} old files moved to {}",
            queue.name,
            match plan.depth {
                Some(depth) if depth != 0 => format!(" (nsqd's meta file said depth {depth})"),
                _ => String::new(),
            },
            aside.display()
        );
        return Ok(QueueReport::default());
    }
    // Step 1.
    let mut dest = Backend::open(dir, &into, opts).with_context(fail)?;
    let now = dest.write_pos().seq;
    let (base, max_len, skip) = match journal {
        Some(j) => {
            if j.into != into {
                bail!(
                    "{JOURNAL_FILE} says {} was being imported into {}, not {into}; remove the journal to import it again from its start",
                    j.queue,
                    j.into
                );
            }
            let skip = now.saturating_sub(j.base);
            crate::log_info!(
                "UPGRADE({}): resuming an interrupted import: {skip} messages were already imported",
                queue.name
            );
            (j.base, j.max_len, skip)
        }
        None => (now, opts.max_msg_size.saturating_add(GO_HEADER), 0),
    };
    // Step 2.
    let mut journal = Journal {
        queue: queue.name.clone(),
        into: into.clone(),
        base,
        max_len,
        imported: false,
    };
    journal.store(dir)?;
    if crash == Some(Crash::AfterJournal) {
        bail!("simulated crash after the journal");
    }

    // Step 3.
    let mut reader = GoReader::new(&queue.name, plan.files, max_len);
    let mut skipped = 0;
    let mut appended = 0u64;
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH_MESSAGES);
    let mut batch_bytes = 0;
    loop {
        let msg = reader.next_message().with_context(fail)?;
        let end = msg.is_none();
        if let Some(msg) = msg {
            if skipped < skip {
                skipped += 1;
                continue;
            }
            batch_bytes += msg.body.len();
            batch.push(msg);
        }
        let crash_now =
            matches!(crash, Some(Crash::AfterMessages(n)) if appended + batch.len() as u64 == n);
        if !batch.is_empty()
            && (end || crash_now || batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES)
        {
            dest.put_batch(&batch).with_context(fail)?;
            appended += batch.len() as u64;
            batch.clear();
            batch_bytes = 0;
        }
        if crash_now {
            bail!("simulated crash after {appended} messages");
        }
        if end {
            break;
        }
    }
    if skipped < skip {
        crate::log_warn!(
            "UPGRADE({}): {into} had {skip} messages from the interrupted import but only {skipped} were read this time",
            queue.name
        );
    }
    dest.sync().with_context(fail)?;
    drop(dest);
    if crash == Some(Crash::BeforeImportedMark) {
        bail!("simulated crash before the imported mark");
    }
    // Step 4.
    journal.imported = true;
    journal.store(dir)?;
    // Step 5.
    let (moved, aside) = move_aside(dir, &queue.files, crash)?;
    if crash == Some(Crash::BeforeJournalRemoved) {
        bail!("simulated crash before the journal removal");
    }
    // Step 6.
    Journal::remove(dir)?;

    let report = QueueReport {
        messages: reader.messages,
        bytes: reader.bytes,
        files_read: reader.files_read,
        damaged_files: reader.damaged_files,
        resumed: skipped,
    };
    let mut notes = Vec::new();
    if skipped > 0 {
        notes.push(format!("{skipped} of them imported before an interruption"));
    }
    if plan.consumed_files > 0 {
        notes.push(format!(
            "{} consumed files before the read position not imported",
            plan.consumed_files
        ));
    }
    if queue.bad_files > 0 {
        notes.push(format!(
            "{} .bad files (set aside by nsqd) not imported",
            queue.bad_files
        ));
    }
    if report.damaged_files > 0 {
        notes.push(format!(
            "{} damaged files, partly imported (see above)",
            report.damaged_files
        ));
    }
    match plan.depth {
        Some(depth) if depth != report.messages as i64 && report.damaged_files == 0 => {
            notes.push(format!("nsqd's meta file said depth {depth}"));
        }
        _ => {}
    }
    crate::log_info!(
        "UPGRADE: imported go-diskqueue {} into {what} (disk queue {into}): {} messages ({} bytes) from {} files, reading from {}{}; {moved} old files moved to {}",
        queue.name,
        report.messages,
        report.bytes,
        report.files_read,
        plan.from,
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        },
        aside.display()
    );
    Ok(report)
}

#[cfg(test)]
mod tests;
