//! Upgrade in place from the original nsqd (issue 8 part 5): our nsqd
//! started on a `--data-path` written by nsqd v1.3 brings every topic's and
//! channel's go-diskqueue backlog into its own queues, in order, exactly
//! once, with the original message IDs, and sets the old files aside.
//!
//! The data directories are written here byte for byte as go-diskqueue
//! writes them (`[len i32 BE][timestamp i64 BE][attempts u16 BE][id 16][body]`
//! records, a new file when a record would pass `--max-bytes-per-file`, the
//! text meta file). `real_go_nsqd_data_dir` makes one with the real Go nsqd
//! when `NSQ_REFERENCE_BIN` names the directory holding its binaries.
//! `import_rate_1m` (ignored) measures the import of a 1M-message backlog.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::{consumer, http, persist, wait_until, TempDir, TestNsqd};
use serde_json::json;

// ---------------------------------------------------------------------------
// go-diskqueue, written as nsqd v1.3 writes it
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct GoMsg {
    id: [u8; 16],
    ts: i64,
    attempts: u16,
    body: Vec<u8>,
}

/// `n` messages with distinct nsqd-style hex IDs (`tag` keeps sets apart).
fn go_msgs(tag: u8, n: usize, body_len: usize) -> Vec<GoMsg> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 16];
            id.copy_from_slice(format!("0{tag:x}{:014x}", 0x5eed_0000 + i).as_bytes());
            GoMsg {
                id,
                ts: 1_700_000_000_000_000_000 + (tag as i64) * 1_000_000_000 + i as i64,
                attempts: (i % 3) as u16,
                body: persist::body(&format!("go{tag}"), i as u64, body_len),
            }
        })
        .collect()
}

/// go-diskqueue's writer (writeOne), reader (readOne + moveForward, which
/// deletes a file once read past) and meta file (persistMetaData).
struct GoWriter {
    dir: PathBuf,
    name: String,
    max_bytes: i64,
    read: (i64, i64),
    write: (i64, i64),
    depth: i64,
    /// Unread records: (file, position, total bytes).
    unread: VecDeque<(i64, i64, i64)>,
    out: Option<(i64, std::io::BufWriter<fs::File>)>,
}

impl GoWriter {
    fn new(dir: &Path, name: &str, max_bytes: i64) -> GoWriter {
        GoWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            max_bytes,
            read: (0, 0),
            write: (0, 0),
            depth: 0,
            unread: VecDeque::new(),
            out: None,
        }
    }

    fn file(&self, n: i64) -> PathBuf {
        self.dir
            .join(format!("{}.diskqueue.{:06}.dat", self.name, n))
    }

    fn put(&mut self, m: &GoMsg) -> Result<()> {
        let len = 26 + m.body.len() as i64;
        let total = 4 + len;
        if self.write.1 > 0 && self.write.1 + total > self.max_bytes {
            self.write = (self.write.0 + 1, 0);
        }
        if self.out.as_ref().map(|(n, _)| *n) != Some(self.write.0) {
            self.flush()?;
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.file(self.write.0))?;
            self.out = Some((self.write.0, std::io::BufWriter::with_capacity(1 << 20, f)));
        }
        if let Some((_, out)) = self.out.as_mut() {
            out.write_all(&(len as i32).to_be_bytes())?;
            out.write_all(&(m.ts as u64).to_be_bytes())?;
            out.write_all(&m.attempts.to_be_bytes())?;
            out.write_all(&m.id)?;
            out.write_all(&m.body)?;
        }
        self.unread.push_back((self.write.0, self.write.1, total));
        self.write.1 += total;
        self.depth += 1;
        Ok(())
    }

    fn put_all(&mut self, msgs: &[GoMsg]) -> Result<()> {
        for m in msgs {
            self.put(m)?;
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        if let Some((_, mut out)) = self.out.take() {
            out.flush()?;
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) -> Result<()> {
        self.flush()?;
        for _ in 0..n {
            let (file, pos, total) = self.unread.pop_front().context("nothing to consume")?;
            ensure!((file, pos) == self.read);
            self.read = (file, pos + total);
            if file < self.write.0 && self.read.1 >= fs::metadata(self.file(file))?.len() as i64 {
                fs::remove_file(self.file(file))?;
                self.read = (file + 1, 0);
            }
            self.depth -= 1;
        }
        Ok(())
    }

    fn write_meta(&mut self) -> Result<()> {
        self.flush()?;
        fs::write(
            self.dir.join(format!("{}.diskqueue.meta.dat", self.name)),
            format!(
                "{}\n{},{}\n{},{}\n",
                self.depth, self.read.0, self.read.1, self.write.0, self.write.1
            ),
        )?;
        Ok(())
    }
}

fn go_queue(
    dir: &Path,
    name: &str,
    max_bytes: i64,
    msgs: &[GoMsg],
    consumed: usize,
) -> Result<GoWriter> {
    let mut w = GoWriter::new(dir, name, max_bytes);
    w.put_all(msgs)?;
    w.consume(consumed)?;
    w.write_meta()?;
    Ok(w)
}

// ---------------------------------------------------------------------------
// Consuming and checking
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Got {
    id: [u8; 16],
    body: Vec<u8>,
    attempts: u16,
    ts: i64,
}

fn show_id(id: &[u8; 16]) -> String {
    String::from_utf8_lossy(id).into_owned()
}

/// Subscribe to `topic/channel`, FIN exactly `n` messages, then expect
/// nothing more for half a second (a duplicate would show up there).
fn drain_exactly(addr: SocketAddr, topic: &str, channel: &str, n: usize) -> Result<Vec<Got>> {
    let mut c = consumer(addr, topic, channel, 200, json!({}))?;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let m = c
            .expect_message_skip_heartbeats()
            .with_context(|| format!("{topic}/{channel}: after {} of {n} messages", out.len()))?;
        c.fin(&m.id)?;
        out.push(Got {
            id: m.id.0,
            body: m.body.to_vec(),
            attempts: m.attempts,
            ts: m.timestamp_ns,
        });
    }
    c.expect_silence(Duration::from_millis(500))
        .with_context(|| format!("{topic}/{channel}: more than the {n} messages expected"))?;
    Ok(out)
}

/// `got` holds every message of every source exactly once, with its
/// original ID, timestamp and body, one more attempt than stored, and the
/// messages of each source in their order (sources may interleave: a
/// channel serves its memory queue before its disk queue, as nsqd may).
fn check_exactly_once_in_order(what: &str, got: &[Got], sources: &[&[GoMsg]]) -> Result<()> {
    let mut index: HashMap<[u8; 16], (usize, usize)> = HashMap::new();
    for (s, msgs) in sources.iter().enumerate() {
        for (i, m) in msgs.iter().enumerate() {
            index.insert(m.id, (s, i));
        }
    }
    let total: usize = sources.iter().map(|s| s.len()).sum();
    ensure!(
        got.len() == total,
        "{what}: {} messages, expected {total}",
        got.len()
    );
    let mut next = vec![0usize; sources.len()];
    for (k, g) in got.iter().enumerate() {
        let Some(&(s, i)) = index.get(&g.id) else {
            bail!(
                "{what}: message {k} has an unknown ID {} (not an original one)",
                show_id(&g.id)
            );
        };
        ensure!(
            i == next[s],
            "{what}: message {k} (ID {}) is number {i} of source {s}, expected number {} (duplicate or out of order)",
            show_id(&g.id),
            next[s]
        );
        next[s] += 1;
        let m = &sources[s][i];
        ensure!(g.body == m.body, "{what}: body of {}", show_id(&g.id));
        ensure!(g.ts == m.ts, "{what}: timestamp of {}", show_id(&g.id));
        ensure!(
            g.attempts == m.attempts + 1,
            "{what}: attempts of {}: {} delivered, {} stored",
            show_id(&g.id),
            g.attempts,
            m.attempts
        );
    }
    Ok(())
}

fn go_files(dir: &Path) -> Result<Vec<String>> {
    Ok(persist::file_names(dir)?
        .into_iter()
        .filter(|f| f.contains(".diskqueue."))
        .collect())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// nsqd.dat lists topic `up` and its channel `a`; on disk: `up`'s own
/// backlog, `up:a` partly consumed (read position mid-file, file > 0), `up:b`
/// (not in nsqd.dat), and topic `solo` (not in nsqd.dat, no channel), all
/// spanning several files. Every message arrives exactly once with its
/// original ID, then a restart brings nothing back.
#[test]
fn go_data_dir_imported_exactly_once_then_never_again() -> Result<()> {
    let dir = TempDir::new("nsq-upgrade")?;
    let path = dir.path();
    fs::write(
        path.join("nsqd.dat"),
        r#"{"topics":[{"name":"up","paused":false,"channels":[{"name":"a","paused":false}]}],"version":"1.3.0"}"#,
    )?;
    let topic_backlog = go_msgs(1, 300, 120);
    let a = go_msgs(2, 1500, 100);
    let b = go_msgs(3, 1500, 100);
    let solo = go_msgs(4, 200, 50);
    let w = go_queue(path, "up", 8192, &topic_backlog, 0)?;
    ensure!(w.write.0 >= 3, "topic queue spans files");
    let w = go_queue(path, "up:a", 8192, &a, 400)?;
    ensure!(
        w.read.0 > 0 && w.read.1 > 0,
        "partly read mid-file: {:?}",
        w.read
    );
    let w = go_queue(path, "up:b", 8192, &b, 0)?;
    ensure!(w.write.0 >= 10, "channel queue spans files");
    go_queue(path, "solo", 4096, &solo, 0)?;
    let old_files = go_files(path)?;

    let mut nsqd = TestNsqd::start_in(path, &[])?;
    let log = nsqd.stderr();
    ensure!(
        log.contains("UPGRADE: imported 4 go-diskqueue queues of the original nsqd: 3100 messages"),
        "summary line:\n{log}"
    );
    for q in ["up ", "up:a ", "up:b ", "solo "] {
        ensure!(
            log.contains(&format!("UPGRADE: imported go-diskqueue {q}")),
            "line for {q}:\n{log}"
        );
    }
    ensure!(go_files(path)?.is_empty(), "old files left in --data-path");
    let mut aside = persist::file_names(&path.join("go-nsqd-imported"))?;
    aside.sort();
    ensure!(
        aside == old_files,
        "set aside: {aside:?}\nwas: {old_files:?}"
    );

    let got = drain_exactly(nsqd.tcp_addr(), "up", "a", 1100 + 300)?;
    check_exactly_once_in_order("up/a", &got, &[&a[400..], &topic_backlog])?;
    let got = drain_exactly(nsqd.tcp_addr(), "up", "b", 1500 + 300)?;
    check_exactly_once_in_order("up/b", &got, &[&b, &topic_backlog])?;
    let got = drain_exactly(nsqd.tcp_addr(), "solo", "late", 200)?;
    check_exactly_once_in_order("solo/late", &got, &[&solo])?;
    // nsqd.dat now lists what only had a queue on disk.
    let meta = persist::read_metadata(path).context("nsqd.dat")?;
    let (_, chans) = persist::meta_topic(&meta, "up").context("up in nsqd.dat")?;
    ensure!(
        chans.iter().any(|(c, _)| c == "a") && chans.iter().any(|(c, _)| c == "b"),
        "{meta}"
    );
    ensure!(persist::meta_topic(&meta, "solo").is_some(), "{meta}");

    // Restart: nothing is imported again, nothing is delivered again.
    nsqd.restart()?;
    let log = nsqd.stderr();
    ensure!(
        !log.contains("UPGRADE"),
        "second start imported again:\n{log}"
    );
    for (topic, channel) in [("up", "a"), ("up", "b"), ("solo", "late")] {
        drain_exactly(nsqd.tcp_addr(), topic, channel, 0)?;
        let c = nsqd
            .channel_stats(topic, channel)?
            .context("channel stats")?;
        ensure!(c["depth"] == 0, "{topic}/{channel} after restart: {c}");
    }
    Ok(())
}

/// A corrupt length in the middle of one file and a truncated last record:
/// every readable message is imported, a clear line names file and offset.
#[test]
fn damaged_go_files_keep_every_readable_message() -> Result<()> {
    let dir = TempDir::new("nsq-upgrade-damaged")?;
    let path = dir.path();
    let msgs = go_msgs(5, 800, 100);
    let w = go_queue(path, "dmg:c", 8192, &msgs, 0)?;
    // Record 200: its length becomes 0xffffffff.
    let (file, pos, _) = w.unread[200];
    let next_file = w
        .unread
        .iter()
        .position(|r| r.0 == file + 1)
        .context("next file")?;
    let mut data = fs::read(w.file(file))?;
    data[pos as usize..pos as usize + 4].copy_from_slice(&[0xff; 4]);
    fs::write(w.file(file), &data)?;
    // The last record loses its last 3 bytes.
    let last = w.file(w.write.0);
    let len = fs::metadata(&last)?.len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)?
        .set_len(len - 3)?;

    let nsqd = TestNsqd::start_in(path, &[])?;
    let log = nsqd.stderr();
    let corrupt =
        format!("dmg:c.diskqueue.{file:06}.dat: at offset {pos}: corrupt record: length -1");
    ensure!(log.contains(&corrupt), "expected {corrupt:?} in:\n{log}");
    ensure!(
        log.contains("truncated record"),
        "truncation logged:\n{log}"
    );
    let want: Vec<GoMsg> = msgs[..200]
        .iter()
        .chain(&msgs[next_file..799])
        .cloned()
        .collect();
    let got = drain_exactly(nsqd.tcp_addr(), "dmg", "c", want.len())?;
    check_exactly_once_in_order("dmg/c", &got, &[&want])?;
    Ok(())
}

// ---------------------------------------------------------------------------
// With the real Go nsqd (NSQ_REFERENCE_BIN)
// ---------------------------------------------------------------------------

/// The original nsqd, killed on drop.
struct GoNsqd {
    child: Option<Child>,
    tcp: SocketAddr,
    http: SocketAddr,
}

impl GoNsqd {
    fn start(bin_dir: &Path, data: &Path, log_dir: &Path) -> Result<GoNsqd> {
        let (tcp, http) = {
            let a = TcpListener::bind("127.0.0.1:0")?;
            let b = TcpListener::bind("127.0.0.1:0")?;
            (a.local_addr()?, b.local_addr()?)
        };
        let child = Command::new(bin_dir.join("nsqd"))
            .arg(format!("--tcp-address={tcp}"))
            .arg(format!("--http-address={http}"))
            .arg("--broadcast-address=127.0.0.1")
            .arg(format!("--data-path={}", data.display()))
            .arg("--mem-queue-size=0")
            .arg("--max-bytes-per-file=16384")
            .stdin(Stdio::null())
            .stdout(fs::File::create(log_dir.join("go-nsqd.out"))?)
            .stderr(fs::File::create(log_dir.join("go-nsqd.log"))?)
            .spawn()
            .context("spawning the Go nsqd")?;
        let go = GoNsqd {
            child: Some(child),
            tcp,
            http,
        };
        wait_until(Duration::from_secs(10), "Go nsqd /ping", || {
            Ok(http::get(go.http, "/ping")
                .map(|(s, _)| s == 200)
                .unwrap_or(false))
        })?;
        Ok(go)
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<()> {
        let (status, text) = http::post(self.http, path, body)?;
        ensure!(status == 200, "Go nsqd POST {path}: {status} {text}");
        Ok(())
    }

    /// SIGTERM and wait for the exit (nsqd flushes its queues).
    fn stop(&mut self) -> Result<()> {
        let mut child = self.child.take().context("not running")?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("Go nsqd did not exit on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for GoNsqd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real nsqd v1.3 writes the data directory: topic `up` with channels
/// `a` and `b` and topic `solo` without channels, `--mem-queue-size=0` so
/// everything is on disk; a consumer FINs 500 messages of `up/a` and keeps
/// 100 in flight (nsqd writes them back to disk at exit). Our nsqd then
/// delivers the rest exactly once with nsqd's own IDs and attempts.
#[test]
fn real_go_nsqd_data_dir() -> Result<()> {
    let Some(bin_dir) = std::env::var_os("NSQ_REFERENCE_BIN").map(PathBuf::from) else {
        eprintln!("skipped: NSQ_REFERENCE_BIN not set (the directory holding the original nsqd v1.3 binaries)");
        return Ok(());
    };
    const N: u64 = 2000;
    const SOLO: u64 = 300;
    let dir = TempDir::new("nsq-upgrade-real")?;
    let logs = TempDir::new("nsq-upgrade-real-logs")?;
    let path = dir.path();
    let mut go = GoNsqd::start(&bin_dir, path, logs.path())?;
    go.post("/topic/create?topic=up", b"")?;
    go.post("/channel/create?topic=up&channel=a", b"")?;
    go.post("/channel/create?topic=up&channel=b", b"")?;
    go.post("/topic/create?topic=solo", b"")?;
    let bodies: Vec<Vec<u8>> = (0..N).map(|i| persist::body("real", i, 100)).collect();
    for chunk in bodies.chunks(500) {
        go.post("/mpub?topic=up", &chunk.join(&b'\n'))?;
    }
    let solo: Vec<Vec<u8>> = (0..SOLO).map(|i| persist::body("solo", i, 60)).collect();
    go.post("/mpub?topic=solo", &solo.join(&b'\n'))?;
    wait_until(
        Duration::from_secs(10),
        "Go nsqd: both channels hold every message",
        || {
            let (_, stats) = http::get(go.http, "/stats?format=json&topic=up")?;
            let v: serde_json::Value = serde_json::from_str(&stats)?;
            let depths: Vec<u64> = v["topics"][0]["channels"]
                .as_array()
                .map(|cs| cs.iter().filter_map(|c| c["depth"].as_u64()).collect())
                .unwrap_or_default();
            Ok(depths == vec![N, N])
        },
    )?;
    // Consume from the Go nsqd: FIN 500, keep 100 in flight.
    let mut seen: HashMap<Vec<u8>, Got> = HashMap::new();
    let mut in_flight = Vec::new();
    {
        let mut c = consumer(go.tcp, "up", "a", 100, json!({}))?;
        for i in 0..600 {
            let m = c
                .expect_message_skip_heartbeats()
                .context("from the Go nsqd")?;
            if i < 500 {
                c.fin(&m.id)?;
            } else {
                in_flight.push(m.body.to_vec());
            }
            seen.insert(
                m.body.to_vec(),
                Got {
                    id: m.id.0,
                    body: m.body.to_vec(),
                    attempts: m.attempts,
                    ts: m.timestamp_ns,
                },
            );
        }
        ensure!(in_flight == bodies[500..600], "Go nsqd delivered in order");
        go.stop()?;
    }
    let files = go_files(path)?;
    eprintln!("Go nsqd left {} go-diskqueue files: {files:?}", files.len());
    ensure!(
        files.iter().any(|f| f.starts_with("up:a.diskqueue.")),
        "{files:?}"
    );

    let mut nsqd = TestNsqd::start_in(path, &[])?;
    eprintln!("{}", nsqd.stderr());
    let a = drain_exactly(nsqd.tcp_addr(), "up", "a", (N - 500) as usize)?;
    // Never delivered: in order, first attempt. In flight at exit: nsqd
    // flushed them at the end, second attempt, same IDs.
    let (fresh, again): (Vec<&Got>, Vec<&Got>) =
        a.iter().partition(|g| !seen.contains_key(&g.body));
    let fresh_bodies: Vec<&[u8]> = fresh.iter().map(|g| g.body.as_slice()).collect();
    let want: Vec<&[u8]> = bodies[600..].iter().map(|b| b.as_slice()).collect();
    ensure!(
        fresh_bodies == want,
        "up/a: the never-delivered messages in order"
    );
    ensure!(
        fresh.iter().all(|g| g.attempts == 1),
        "up/a: first attempts"
    );
    ensure!(
        again.len() == 100,
        "up/a: the 100 in flight at exit: {}",
        again.len()
    );
    for g in &again {
        let before = &seen[&g.body];
        ensure!(
            g.id == before.id && g.ts == before.ts,
            "up/a: {} keeps its ID",
            show_id(&g.id)
        );
        ensure!(
            g.attempts == 2,
            "up/a: {} second attempt, got {}",
            show_id(&g.id),
            g.attempts
        );
    }
    let b = drain_exactly(nsqd.tcp_addr(), "up", "b", N as usize)?;
    let b_bodies: Vec<&[u8]> = b.iter().map(|g| g.body.as_slice()).collect();
    let want: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    ensure!(b_bodies == want, "up/b: every message in publish order");
    for g in &b {
        if let Some(before) = seen.get(&g.body) {
            ensure!(
                g.id == before.id && g.ts == before.ts,
                "up/b: {} has nsqd's ID",
                show_id(&g.id)
            );
        }
    }
    let s = drain_exactly(nsqd.tcp_addr(), "solo", "late", SOLO as usize)?;
    let s_bodies: Vec<&[u8]> = s.iter().map(|g| g.body.as_slice()).collect();
    let want: Vec<&[u8]> = solo.iter().map(|b| b.as_slice()).collect();
    ensure!(s_bodies == want, "solo/late in order");

    nsqd.restart()?;
    for (topic, channel) in [("up", "a"), ("up", "b"), ("solo", "late")] {
        drain_exactly(nsqd.tcp_addr(), topic, channel, 0)?;
    }
    ensure!(go_files(path)?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------
// Import rate (ignored: run with a release build)
// ---------------------------------------------------------------------------

/// 1M messages of 200 bytes in one channel's go-diskqueue (100 MiB files,
/// nsqd's default): time to ready and the import rate from the summary line.
/// `NSQD_BIN=target/release/nsqd cargo nextest run -p nsq-tests --test upgrade
/// --run-ignored only --no-capture` (UPGRADE_BENCH_MESSAGES to change N).
#[test]
#[ignore]
fn import_rate_1m() -> Result<()> {
    let n: usize = std::env::var("UPGRADE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = TempDir::new("nsq-upgrade-bench")?;
    let path = dir.path();
    fs::write(
        path.join("nsqd.dat"),
        r#"{"topics":[{"name":"bench","paused":false,"channels":[{"name":"c","paused":false}]}],"version":"1.3.0"}"#,
    )?;
    let started = Instant::now();
    let mut w = GoWriter::new(path, "bench:c", 100 * 1024 * 1024);
    for chunk in 0..n.div_ceil(10_000) {
        let msgs = go_msgs(7, 10_000, 200);
        let count = (n - chunk * 10_000).min(10_000);
        for (i, m) in msgs.iter().take(count).enumerate() {
            let mut m = m.clone();
            m.id.copy_from_slice(format!("{:016x}", chunk * 10_000 + i).as_bytes());
            w.put(&m)?;
        }
    }
    w.write_meta()?;
    eprintln!(
        "wrote {n} messages in go-diskqueue format ({} files) in {:.2?}",
        w.write.0 + 1,
        started.elapsed()
    );
    // Drop the page cache's advantage as far as we can without root: sync.
    let _ = Command::new("sync").status();

    let spawned = Instant::now();
    let nsqd = TestNsqd::start_in(path, &[])?;
    let ready = spawned.elapsed();
    let log = nsqd.stderr();
    let summary = log
        .lines()
        .find(|l| l.contains("UPGRADE: imported") && l.contains("queues of the original"))
        .context("summary line")?;
    let secs: f64 = summary
        .split_once(" in ")
        .and_then(|(_, s)| s.split_once("s;"))
        .and_then(|(s, _)| s.parse().ok())
        .context("import seconds")?;
    eprintln!("{summary}");
    eprintln!(
        "import: {n} messages in {secs:.3}s = {:.0} messages/s; spawn to /ping OK: {ready:.2?}",
        n as f64 / secs
    );
    let c = nsqd.channel_stats("bench", "c")?.context("stats")?;
    ensure!(c["depth"] == n as u64, "{c}");
    Ok(())
}
