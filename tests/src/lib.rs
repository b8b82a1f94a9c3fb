//! Test harness: starts the real `nsqd` binary on loopback and talks to it
//! over the wire, so integration tests read like transcripts.
//!
//! * [`TestNsqd`] runs one broker process with free ports and a temporary
//!   data directory, and kills it on drop.
//! * [`RawClient`] (in `raw`) is a blocking V2 protocol client (every read
//!   is bounded).
//! * [`http`] is a tiny HTTP/1.1 client over `std::net::TcpStream`.
//!
//! Every wait in this crate has a timeout: a hung broker fails a test, it
//! never hangs the run.

pub mod authd;
pub mod cluster;
pub mod http;
pub mod lookupd;
pub mod persist;
pub mod promql;
mod raw;
pub mod scripts;
pub mod tls;
pub mod wire;

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub use nsq_proto::frame::Frame;
pub use nsq_proto::message::{DecodedMessage, MessageId};
pub use raw::*;

/// How long any single read from the broker may take before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker may take to answer `GET /ping` after being spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Broker process
// ---------------------------------------------------------------------------

/// Path of the broker binary: `$NSQD_BIN`, else `<workspace>/target/debug/nsqd`.
pub fn nsqd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NSQD_BIN") {
        return PathBuf::from(p);
    }
    workspace_root().join("target").join("debug").join("nsqd")
}

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Two distinct free loopback ports (the listeners are held together so the
/// kernel cannot hand out the same port twice).
pub(crate) fn free_ports() -> Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    let b = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Last `n` lines of a text file (for failure messages).
fn tail_file(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// One running `nsqd` process on loopback, killed (and its temporary
/// directory removed) on drop.
pub struct TestNsqd {
    child: Option<Child>,
    tcp: SocketAddr,
    http: SocketAddr,
    data_path: PathBuf,
    extra_args: Vec<String>,
    log_dir: TempDir,
    starts: u32,
    /// Owned data directory (None when the caller supplied one).
    _data_dir: Option<TempDir>,
}

impl TestNsqd {
    /// Starts `nsqd` with free loopback ports and a fresh data directory,
    /// plus `extra_args`, and waits (at most 10 s) until `GET /ping` is `OK`.
    pub fn start(extra_args: &[&str]) -> Result<TestNsqd> {
        let data_dir = TempDir::new("nsq-test-data")?;
        let path = data_dir.path().to_path_buf();
        let mut nsqd = Self::spawn_with_retries(&path, extra_args)?;
        nsqd._data_dir = Some(data_dir);
        Ok(nsqd)
    }

    /// Like [`TestNsqd::start`], but on a caller-owned data directory that is
    /// not removed on drop.
    pub fn start_in(data_path: &Path, extra_args: &[&str]) -> Result<TestNsqd> {
        Self::spawn_with_retries(data_path, extra_args)
    }

    fn spawn_with_retries(data_path: &Path, extra_args: &[&str]) -> Result<TestNsqd> {
        let log_dir = TempDir::new("nsq-test-log")?;
        let mut nsqd = TestNsqd {
            child: None,
            tcp: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:0".parse().unwrap(),
            data_path: data_path.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_dir,
            starts: 0,
            _data_dir: None,
        };
        nsqd.spawn()?;
        Ok(nsqd)
    }

    /// Spawns the process, retrying with new ports if a port was taken
    /// between picking it and the broker binding it.
    fn spawn(&mut self) -> Result<()> {
        let mut last_err = None;
        for _ in 0..3 {
            match self.spawn_once() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let text = format!("{e:#}").to_lowercase();
                    let port_race = text.contains("in use") || text.contains("addrinuse");
                    last_err = Some(e);
                    if !port_race {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap())
    }

    fn spawn_once(&mut self) -> Result<()> {
        let bin = nsqd_bin();
        if !bin.exists() {
            bail!(
                "nsqd binary not found at {} (build it with `cargo build -p nsq-broker`, or set NSQD_BIN)",
                bin.display()
            );
        }
        let (tcp_port, http_port) = free_ports()?;
        self.tcp = SocketAddr::from(([127, 0, 0, 1], tcp_port));
        self.http = SocketAddr::from(([127, 0, 0, 1], http_port));
        self.starts += 1;
        let stderr_path = self.stderr_path();
        let stdout_path = self
            .log_dir
            .path()
            .join(format!("nsqd.{}.stdout", self.starts));
        let stderr = File::create(&stderr_path)?;
        let stdout = File::create(&stdout_path)?;

        let mut cmd = Command::new(&bin);
        kill_with_parent(&mut cmd);
        cmd.arg(format!("--tcp-address={}", self.tcp))
            .arg(format!("--http-address={}", self.http))
            // HTTPS listens only with a TLS certificate; keep it on loopback
            // (nsqd's default is 0.0.0.0:4152). A test's own flag wins.
            .arg("--https-address=127.0.0.1:0")
            .arg(format!("--data-path={}", self.data_path.display()))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        self.child = Some(child);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait()? {
                self.child = None;
                bail!(
                    "nsqd exited during startup ({status}); args {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                    self.extra_args,
                    tail_file(&stderr_path, 80),
                    tail_file(&stdout_path, 40)
                );
            }
            if self.ping_ok()
                && TcpStream::connect_timeout(&self.tcp, Duration::from_millis(500)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "nsqd did not answer GET /ping on {} within {:?}; args {:?}\n--- stderr ---\n{}",
                    self.http,
                    STARTUP_TIMEOUT,
                    self.extra_args,
                    tail_file(&stderr_path, 80)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn ping_ok(&self) -> bool {
        match http::request_with_timeout(
            self.http,
            "GET",
            "/ping",
            &[],
            b"",
            Duration::from_secs(1),
        ) {
            Ok(resp) => {
                (resp.status == 200 && resp.body == b"OK")
                    // --tls-required=true: plain HTTP only points to HTTPS.
                    || (resp.status == 403 && resp.body.starts_with(b"{\"message\": \"TLS_REQUIRED\""))
            }
            Err(_) => false,
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.log_dir
            .path()
            .join(format!("nsqd.{}.stderr", self.starts))
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// The broker's stderr so far (current process only).
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGTERM and waits up to 10 s for a graceful exit (then SIGKILL).
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("nsqd is not running"))?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "nsqd did not exit within 10 s of SIGTERM\n--- stderr ---\n{}",
                    tail_file(&self.stderr_path(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Graceful stop, then start again on the same data path with the same
    /// extra arguments (and new ports).
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            let status = self.stop()?;
            if !status.success() {
                bail!(
                    "nsqd exited with {status} on SIGTERM\n--- stderr ---\n{}",
                    tail_file(&self.stderr_path(), 60)
                );
            }
        }
        self.spawn()
    }

    /// Replace the extra flags used by the next `restart` (e.g. a new
    /// `--shards`), keeping ports and data directory.
    pub fn set_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
    }

    /// A new raw V2 connection (magic already sent).
    pub fn connect(&self) -> Result<RawClient> {
        RawClient::connect(self.tcp)
    }

    /// `GET path` on the HTTP port.
    pub fn http_get(&self, path: &str) -> Result<(u16, String)> {
        http::get(self.http, path)
    }

    /// `POST path` with `body` on the HTTP port.
    pub fn http_post(&self, path: &str, body: &[u8]) -> Result<(u16, String)> {
        http::post(self.http, path, body)
    }

    /// `GET /stats?format=json[&query]`, parsed.
    pub fn stats(&self, query: &str) -> Result<Value> {
        let path = if query.is_empty() {
            "/stats?format=json".to_string()
        } else {
            format!("/stats?format=json&{query}")
        };
        let (status, body) = self.http_get(&path)?;
        if status != 200 {
            bail!("GET {path} returned {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: invalid JSON: {body}"))
    }

    /// The `/stats` object of one topic, if it exists.
    pub fn topic_stats(&self, topic: &str) -> Result<Option<Value>> {
        let stats = self.stats("")?;
        Ok(find_topic(&stats, topic).cloned())
    }

    /// The `/stats` object of one channel, if it exists.
    pub fn channel_stats(&self, topic: &str, channel: &str) -> Result<Option<Value>> {
        let stats = self.stats("")?;
        Ok(find_topic(&stats, topic)
            .and_then(|t| find_channel(t, channel))
            .cloned())
    }

    /// Polls `/stats` until `pred(channel stats)` holds (bounded).
    pub fn wait_channel(
        &self,
        topic: &str,
        channel: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let mut last = None;
        wait_until(READ_TIMEOUT, what, || {
            let c = self.channel_stats(topic, channel)?;
            let ok = c.as_ref().map(&pred).unwrap_or(false);
            last = c;
            Ok(ok)
        })
        .with_context(|| format!("last stats of {topic}/{channel}: {last:?}"))?;
        Ok(last.unwrap())
    }

    /// Polls `/stats` until `pred(topic stats)` holds (bounded).
    pub fn wait_topic(
        &self,
        topic: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let mut last = None;
        wait_until(READ_TIMEOUT, what, || {
            let t = self.topic_stats(topic)?;
            let ok = t.as_ref().map(&pred).unwrap_or(false);
            last = t;
            Ok(ok)
        })
        .with_context(|| format!("last stats of topic {topic}: {last:?}"))?;
        Ok(last.unwrap())
    }
}

impl Drop for TestNsqd {
    fn drop(&mut self) {
        self.kill();
        // The test runner shows captured output only for failing tests, so
        // always printing the broker's log tail costs nothing on success.
        let log = tail_file(&self.stderr_path(), 60);
        if !log.trim().is_empty() {
            eprintln!(
                "--- nsqd stderr (last 60 lines, tcp {} http {}) ---\n{log}\n--- end nsqd stderr ---",
                self.tcp, self.http
            );
        }
    }
}

/// Makes the kernel SIGKILL the child if the test thread that spawned it
/// dies (e.g. the runner kills a timed-out test), so no broker outlives its
/// test.
pub(crate) fn kill_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() == 1 {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// Runs the broker binary with `args` only (no addresses added) until it
/// exits, at most `timeout`. Returns (exit status, stdout, stderr); a broker
/// still running at the deadline is killed and reported as an error.
pub fn run_nsqd_to_exit(args: &[&str], timeout: Duration) -> Result<(ExitStatus, String, String)> {
    run_to_exit(&nsqd_bin(), args, timeout)
}

/// Runs `program args` in a fresh temporary directory until it exits, at
/// most `timeout` (then it is killed and that is an error). Returns (exit
/// status, stdout, stderr).
pub fn run_to_exit(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<(ExitStatus, String, String)> {
    let dir = TempDir::new("nsq-test-run")?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut cmd = Command::new(program);
    kill_with_parent(&mut cmd);
    let mut child = cmd
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {}", program.display()))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} {args:?} still running after {timeout:?}\n--- stderr ---\n{}",
                program.display(),
                tail_file(&err_path, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((
        status,
        fs::read_to_string(&out_path).unwrap_or_default(),
        fs::read_to_string(&err_path).unwrap_or_default(),
    ))
}

/// Calls `f` every 20 ms until it returns `Ok(true)`, failing after `timeout`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = f();
        match last {
            Ok(true) => return Ok(()),
            Ok(false) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}")
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("timed out after {timeout:?} waiting for {what}")))
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The topic object named `name` in a `/stats?format=json` document.
pub fn find_topic<'a>(stats: &'a Value, name: &str) -> Option<&'a Value> {
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == name)
}

/// The channel object named `name` in a topic's stats object.
pub fn find_channel<'a>(topic: &'a Value, name: &str) -> Option<&'a Value> {
    topic["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_name"] == name)
}

/// A unique, valid topic or channel name for one test.
pub fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", SEQ.fetch_add(1, Ordering::Relaxed))
}
