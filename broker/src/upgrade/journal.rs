//! The import journal (`go-nsqd-import.journal`): which queue is being
//! imported and how far, so a restart neither duplicates nor loses.

use super::*;

/// The state of the queue being imported, in `go-nsqd-import.journal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Journal {
    /// The go-diskqueue name.
    pub(super) queue: String,
    /// Our disk queue.
    pub(super) into: String,
    /// The write sequence number of `into` before the import.
    pub(super) base: u64,
    /// The record length limit the Go files were parsed with.
    pub(super) max_len: u64,
    /// Step 3 finished: everything is in `into`.
    pub(super) imported: bool,
}

pub(super) const JOURNAL_MAGIC: &str = "go-nsqd-import v1";

impl Journal {
    pub(super) fn encode(&self) -> String {
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

    pub(super) fn decode(text: &str) -> Option<Journal> {
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

    pub(super) fn load(dir: &Path) -> anyhow::Result<Option<Journal>> {
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

    pub(super) fn store(&self, dir: &Path) -> anyhow::Result<()> {
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

    pub(super) fn remove(dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(JOURNAL_FILE);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
        sync_dir(dir).with_context(|| format!("cannot sync {}", dir.display()))
    }
}
