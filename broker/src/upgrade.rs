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

mod goqueue;
mod journal;

use goqueue::*;
use journal::*;

/// Folder of `--data-path` the imported Go files are moved into.
pub const ASIDE_DIR: &str = "go-nsqd-imported";
/// The journal of the queue being imported (see the module doc).
pub const JOURNAL_FILE: &str = "go-nsqd-import.journal";
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
