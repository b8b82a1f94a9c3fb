//! A queue's files: the startup listing of the data directory, and the
//! jobs (probe, open, empty, delete) a [`QueueStore`](super::QueueStore)
//! runs on the blocking pool. Nothing here runs on a shard's thread except
//! [`Inventory::take`] and an open at startup (the shard is not serving yet).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nsq_io::segment;

use super::ACKLOG_SUFFIX;
use crate::acklog::{AckLog, Acked};
use crate::backend::{Backend, Superseded};
use crate::config::Options;

/// Whose queue: a channel also keeps an acknowledgement log and, at open,
/// looks for superseding records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A topic part.
    Topic,
    /// A channel.
    Channel,
}

/// A queue's files, from the shard's one listing at startup.
#[derive(Debug, Default)]
pub struct QueueFiles {
    pub(super) queue: Vec<String>,
    pub(super) acks: Vec<String>,
}

impl QueueFiles {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.acks.is_empty()
    }
}

/// How a store's disk starts.
#[derive(Debug)]
pub enum Start {
    /// Created at run time: probe for leftover files on the blocking pool.
    Probe,
    /// Restored at startup with the files the listing found: none is
    /// `Absent`, some are opened at once on the calling thread.
    Listed(QueueFiles),
}

/// The data directory's queue files, listed once per shard at startup:
/// reading a directory costs in proportion to all it holds, so one listing
/// serves every queue instead of one per queue.
#[derive(Debug, Default)]
pub struct Inventory {
    files: HashMap<String, Vec<String>>,
}

impl Inventory {
    /// List `dir` (missing: empty).
    pub fn list(dir: &Path) -> std::io::Result<Inventory> {
        let mut files: HashMap<String, Vec<String>> = HashMap::new();
        for name in list_dir(dir)? {
            if let Some(queue) = segment::queue_of(&name) {
                files.entry(queue.to_string()).or_default().push(name);
            }
        }
        Ok(Inventory { files })
    }

    /// The files of queue `queue` (and of its acknowledgement log for a
    /// channel).
    pub fn take(&mut self, queue: &str, kind: Kind) -> QueueFiles {
        let acks = match kind {
            Kind::Channel => self
                .files
                .remove(&format!("{queue}{ACKLOG_SUFFIX}"))
                .unwrap_or_default(),
            Kind::Topic => Vec::new(),
        };
        QueueFiles {
            queue: self.files.remove(queue).unwrap_or_default(),
            acks,
        }
    }
}

/// The names in `dir`; none if it does not exist.
pub(super) fn list_dir(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// What opening a channel's queue found for its recovery state
/// (`channel::recovery`): rules 1 and 2 of ARCHITECTURE.md.
#[derive(Debug, Default)]
pub struct Found {
    /// Rule 2: records a later superseding record replaces.
    pub superseded: Superseded,
    /// Rule 1: IDs the acknowledgement log holds.
    pub acked: Acked,
    /// The queue had unconsumed records.
    pub backlog: bool,
}

/// A queue's files, open: the disk queue and, for a channel, its
/// acknowledgement log. `Send`, to move to the blocking pool and back.
#[derive(Debug)]
pub(super) struct OnDisk {
    pub(super) backend: Backend,
    pub(super) acks: Option<AckLog>,
}

/// What a store's file job needs on the blocking pool.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) data_path: PathBuf,
    pub(super) name: String,
    pub(super) opts: Arc<Options>,
    pub(super) kind: Kind,
}

/// A blocking file operation, run on the pool.
pub(super) enum Job {
    /// Open the queue if it has files; with `create`, create it if not.
    Open { create: bool },
    /// Drop everything (topic/channel empty).
    Empty(Box<OnDisk>),
    /// Remove the files.
    Delete(Box<OnDisk>),
}

/// A job's outcome.
pub(super) enum Done {
    Opened(segment::Result<Option<(Box<OnDisk>, Found)>>),
    Emptied(Box<OnDisk>, segment::Result<()>),
    Deleted(segment::Result<()>),
}

impl Job {
    pub(super) fn run(self, spec: &Spec) -> Done {
        match self {
            Job::Open { create } => Done::Opened(probe_and_open(spec, create)),
            Job::Empty(mut disk) => {
                let res = disk.acks.as_mut().map_or(Ok(()), AckLog::empty);
                let res = res.and(disk.backend.empty());
                Done::Emptied(disk, res)
            }
            Job::Delete(disk) => {
                let res = disk.acks.map_or(Ok(()), AckLog::delete);
                Done::Deleted(res.and(disk.backend.delete()))
            }
        }
    }
}

/// A queue has files iff its meta exists (`segment::meta_file`): one
/// `stat`, not a listing. With files, open and recover them (listing the
/// directory once for all opens); without, create them only if asked.
pub(super) fn probe_and_open(
    spec: &Spec,
    create: bool,
) -> segment::Result<Option<(Box<OnDisk>, Found)>> {
    let stat_err = |source| segment::Error::Io {
        op: "stat",
        name: spec.name.clone(),
        source,
    };
    let meta = |queue: &str| {
        spec.data_path
            .join(segment::meta_file(queue))
            .try_exists()
            .map_err(stat_err)
    };
    let mut exists = meta(&spec.name)?;
    if !exists && spec.kind == Kind::Channel {
        exists = meta(&format!("{}{ACKLOG_SUFFIX}", spec.name))?;
    }
    if exists {
        let files = list_dir(&spec.data_path).map_err(|source| segment::Error::Io {
            op: "list",
            name: spec.data_path.display().to_string(),
            source,
        })?;
        open_files(spec, &files, &files, false).map(Some)
    } else if create {
        open_files(spec, &[], &[], true).map(Some)
    } else {
        Ok(None)
    }
}

/// Open the queue (a channel: scan for superseding records first, then
/// its acknowledgement log) with its files listed beforehand; `fresh`: it
/// has none, so there is nothing to scan.
pub(super) fn open_files(
    spec: &Spec,
    queue: &[String],
    acks: &[String],
    fresh: bool,
) -> segment::Result<(Box<OnDisk>, Found)> {
    let (path, name, opts) = (&spec.data_path, spec.name.as_str(), &*spec.opts);
    let mut found = Found::default();
    if spec.kind == Kind::Channel && !fresh {
        found.superseded = Backend::scan_superseding(path, name, opts, Some(queue))?;
    }
    let backend = Backend::open_listed(path, name, opts, Some(queue))?;
    let acks = match spec.kind {
        Kind::Channel => {
            let log = format!("{name}{ACKLOG_SUFFIX}");
            let (log, acked) = AckLog::open(path, &log, opts, Some(acks))?;
            found.acked = acked;
            Some(log)
        }
        Kind::Topic => None,
    };
    found.backlog = backend.depth() > 0;
    Ok((Box::new(OnDisk { backend, acks }), found))
}
