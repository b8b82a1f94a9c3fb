//! The process's own figures for `/metrics` and statsd: memory from
//! `/proc/self/status`, CPU from `/proc/self/stat`, open descriptors, the
//! allocator's committed memory, and the bytes the data directory's queue
//! files take on disk.
//!
//! Lives on: glommio's blocking pool. Reading `/proc` and listing
//! directories are system calls that must not run on a shard's thread
//! (`ProcessFigures::read` is called through `Counters::blocking`).

use std::fs;
use std::path::Path;

/// What the process uses, read at one scrape. `None` where the system did
/// not tell (a field missing from `/proc`): left out rather than made up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    /// Resident set size (`VmRSS`).
    pub rss_bytes: Option<u64>,
    /// Anonymous resident memory (`RssAnon`): heap and queues, not files.
    pub anon_bytes: Option<u64>,
    /// Peak resident set size (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// User plus system CPU time.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on them (`ulimit -n`).
    pub max_fds: Option<u64>,
    /// Memory mimalloc has committed from the OS.
    pub allocator_committed_bytes: Option<u64>,
    /// Peak of that.
    pub allocator_peak_committed_bytes: Option<u64>,
    /// Disk space taken by the files in the data directory.
    pub disk_queue_bytes: Option<u64>,
}

impl ProcessFigures {
    /// Reads everything (blocking: run on the blocking pool).
    pub fn read(data_path: &Path) -> ProcessFigures {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let (committed, peak_committed) = allocator_commit();
        ProcessFigures {
            rss_bytes: status_kib(&status, "VmRSS:"),
            anon_bytes: status_kib(&status, "RssAnon:"),
            peak_rss_bytes: status_kib(&status, "VmHWM:"),
            cpu_seconds: fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|stat| cpu_seconds(&stat)),
            open_fds: fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|limits| max_open_files(&limits)),
            allocator_committed_bytes: committed,
            allocator_peak_committed_bytes: peak_committed,
            disk_queue_bytes: disk_bytes(data_path),
        }
    }
}

/// A `Name:   1234 kB` line of `/proc/self/status`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The soft `Max open files` of `/proc/self/limits` (None if unlimited).
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// utime + stime (fields 14 and 15 of `/proc/self/stat`, in clock ticks).
fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces; count after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (user + system) as f64 / ticks as f64)
}

/// mimalloc's committed memory now and at its peak. No file is read (one
/// getrusage), so a shard may call it directly.
pub fn allocator_commit() -> (Option<u64>, Option<u64>) {
    let (mut elapsed, mut user, mut system) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: every argument is a valid pointer to a local usize, which is
    // all mi_process_info writes.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    (Some(commit as u64), Some(peak_commit as u64))
}

/// Space allocated on disk (`st_blocks`) to the regular files directly in
/// `dir`: the queue segments, their cursors and logs, `nsqd.dat`.
fn disk_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let entries = fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.metadata().ok())
            .filter(|meta| meta.is_file())
            .map(|meta| meta.blocks() * 512)
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_fields() {
        let status = "Name:\tnsqd\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t   512 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024 * 1024));
        assert_eq!(status_kib(status, "RssAnon:"), Some(512 * 1024));
        assert_eq!(status_kib(status, "Missing:"), None);
        let stat = "42 (nsq d) S 1 2 3 4 5 6 7 8 9 10 300 200 0 0 20 0";
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        assert_eq!(cpu_seconds(stat), Some(500.0 / ticks));
        assert_eq!(cpu_seconds("garbage"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files("Max open files  unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn reads_this_process() {
        let dir = std::env::temp_dir();
        let figures = ProcessFigures::read(&dir);
        assert!(figures.rss_bytes.unwrap_or(0) > 0);
        assert!(figures.open_fds.unwrap_or(0) > 0);
        assert!(figures.cpu_seconds.is_some());
    }
}
