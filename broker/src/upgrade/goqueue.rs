//! The original nsqd's disk queue format (go-diskqueue v1.1, nsqd v1.3):
//! file names, the meta file, finding a data directory's queues, planning
//! what is left to read, and reading records across files, damaged ones
//! included.

use super::*;

/// nsqd's message header: timestamp 8, attempts 2, ID 16.
pub(super) const GO_HEADER: u64 = 26;
/// Messages appended per batch (one write per segment touched).
pub(super) const BATCH_MESSAGES: usize = 1024;
/// Body bytes per batch, so large messages keep a batch small.
pub(super) const BATCH_BYTES: usize = 4 << 20;
/// Read buffer per Go file.
pub(super) const READ_BUFFER: usize = 1 << 20;

/// What kind of go-diskqueue file a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GoFile {
    /// `<name>.diskqueue.meta.dat`
    Meta,
    /// `<name>.diskqueue.meta.dat.<n>.tmp`
    MetaTmp,
    /// `<name>.diskqueue.<n>.dat`
    Data(u64),
    /// `<name>.diskqueue.<n>.dat.bad`
    Bad(u64),
}

pub(super) fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Split a file name into (go-diskqueue name, kind). Suffix-anchored, so a
/// topic named `a.diskqueue.b` is no trouble.
pub(super) fn parse_file_name(file: &str) -> Option<(&str, GoFile)> {
    pub(super) const META: &str = ".diskqueue.meta.dat";
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
pub(super) struct QueueId {
    pub(super) topic: String,
    pub(super) channel: Option<String>,
}

impl QueueId {
    /// From a go-diskqueue name; `Err(why)` for names we leave alone.
    pub(super) fn from_go_name(name: &str) -> Result<QueueId, &'static str> {
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
    /// channel's `channel::queue_name`.
    pub(super) fn our_name(&self) -> String {
        match &self.channel {
            None => format!("{}~0", self.topic),
            Some(c) => format!("{}:{c}~", self.topic),
        }
    }

    pub(super) fn describe(&self) -> String {
        match &self.channel {
            None => format!("TOPIC({})", self.topic),
            Some(c) => format!("CHANNEL({}/{c})", self.topic),
        }
    }
}

/// A go-diskqueue meta file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GoMeta {
    pub(super) depth: i64,
    pub(super) read_file: i64,
    pub(super) read_pos: i64,
    pub(super) write_file: i64,
    pub(super) write_pos: i64,
}

impl GoMeta {
    /// Parse `"%d\n%d,%d\n%d,%d\n"` (whitespace around numbers tolerated).
    pub(super) fn parse(text: &str) -> Option<GoMeta> {
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
    pub(super) fn is_consistent(&self) -> bool {
        self.read_file >= 0
            && self.read_pos >= 0
            && self.write_pos >= 0
            && (self.read_file, self.read_pos) <= (self.write_file, self.write_pos)
    }
}

/// One go-diskqueue queue found in `--data-path`.
#[derive(Debug)]
pub(super) struct GoQueue {
    pub(super) name: String,
    pub(super) id: QueueId,
    pub(super) has_meta: bool,
    /// Data file number to its file name.
    pub(super) data: BTreeMap<u64, String>,
    pub(super) bad_files: usize,
    /// Every file of the queue (what is moved aside).
    pub(super) files: Vec<String>,
}

impl GoQueue {
    /// Something to import (a meta or a data file), not only leftovers.
    pub(super) fn has_backlog(&self) -> bool {
        self.has_meta || !self.data.is_empty()
    }
}

/// The go-diskqueue queues in `dir`, by name. Files of names we must not
/// touch (invalid, ephemeral) are logged and left where they are.
pub(super) fn discover(dir: &Path) -> anyhow::Result<BTreeMap<String, GoQueue>> {
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
pub(super) struct PlanFile {
    pub(super) path: PathBuf,
    pub(super) start: u64,
    pub(super) size: u64,
}

/// What to read of a queue.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) files: Vec<PlanFile>,
    /// Data files before the read position (already consumed, left behind).
    pub(super) consumed_files: usize,
    /// nsqd's depth, when the meta file was usable.
    pub(super) depth: Option<i64>,
    /// Where reading starts, for the log.
    pub(super) from: String,
}

pub(super) fn file_size(path: &Path) -> anyhow::Result<u64> {
    fs::metadata(path)
        .map(|m| m.len())
        .with_context(|| format!("cannot stat {}", path.display()))
}

/// Work out which files to read and where (see the module doc).
pub(super) fn plan(dir: &Path, queue: &GoQueue) -> anyhow::Result<Plan> {
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
pub(super) struct GoReader<'a> {
    pub(super) label: &'a str,
    pub(super) files: std::vec::IntoIter<PlanFile>,
    pub(super) cur: Option<Current>,
    /// Largest record length accepted (26 + --max-msg-size).
    pub(super) max_len: u64,
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) files_read: u64,
    pub(super) damaged_files: u64,
}

pub(super) struct Current {
    pub(super) file: PlanFile,
    pub(super) reader: BufReader<File>,
    pub(super) pos: u64,
    pub(super) messages: u64,
}

impl<'a> GoReader<'a> {
    pub(super) fn new(label: &'a str, plan: Vec<PlanFile>, max_len: u64) -> Self {
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
    pub(super) fn damaged(&mut self, why: String) {
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
    pub(super) fn next_message(&mut self) -> anyhow::Result<Option<Message>> {
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
            return Ok(Some(
                Message::published_at(
                    id,
                    data.slice(GO_HEADER as usize..),
                    None,
                    i64::from_be_bytes(ts),
                )
                .with_attempts(u16::from_be_bytes(attempts)),
            ));
        }
    }
}

pub(super) fn read_exact(
    reader: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
) -> anyhow::Result<()> {
    reader.read_exact(buf).with_context(|| {
        format!(
            "cannot read {} (fix or remove it and start again: the import resumes where it stopped)",
            path.display()
        )
    })
}
