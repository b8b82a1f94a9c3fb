//! Harness for cluster tests: several `nsqd` and `nsqlookupd` together.
//!
//! * [`Daemon`] runs any NSQ binary on given addresses (possibly inside a
//!   network namespace via `ip netns exec`), and can stop and start it again
//!   on the SAME ports, which [`crate::lookupd::TestLookupd`] cannot.
//! * [`lookupd_producers`], [`lookupd_nodes`], [`eventually`]: bounded polls
//!   of nsqlookupd's HTTP API.
//! * [`wait_lookup`], [`wait_nodes`], [`wait_channel_producers`]: the same
//!   for nsqd nodes ([`crate::TestNsqd`] broadcasting 127.0.0.1).
//! * [`Received`], [`PynsqReader`]: consumers' arrivals, checked by body.
//! * [`Netns`]: private network namespaces joined to this one by veth pairs,
//!   removed on drop (see [`netns_unavailable`] for the skip rule).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use crate::http;
use crate::lookupd::nsqlookupd_bin;
use crate::{kill_with_parent, nsqd_bin, wait_until, TempDir, TestNsqd, STARTUP_TIMEOUT};

/// How long registration changes may take to show in lookupd.
pub const REGISTER: Duration = Duration::from_secs(15);
/// How long consumers may take to receive a batch.
pub const CONSUME: Duration = Duration::from_secs(60);

/// One NSQ process on fixed addresses, killed on drop (its log tail is
/// printed then, which the runner shows for failing tests only).
pub struct Daemon {
    name: String,
    argv: Vec<String>,
    tcp: SocketAddr,
    http: SocketAddr,
    child: Option<Child>,
    log_dir: TempDir,
    starts: u32,
    /// A log line that must appear before the process counts as started.
    ready_line: Option<&'static str>,
    _data: Option<TempDir>,
}

impl Daemon {
    /// `nsqlookupd` on free loopback ports.
    pub fn lookupd(extra: &[&str]) -> Result<Daemon> {
        let mut last = None;
        for _ in 0..3 {
            let (tcp, http) = free_loopback_pair()?;
            match Self::lookupd_on(tcp, http, extra) {
                Ok(d) => return Ok(d),
                Err(e) if format!("{e:#}").contains("in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("nsqlookupd did not start")))
    }

    /// `nsqlookupd` on the given addresses.
    pub fn lookupd_on(tcp: SocketAddr, http: SocketAddr, extra: &[&str]) -> Result<Daemon> {
        let mut argv = vec![
            nsqlookupd_bin().display().to_string(),
            format!("--tcp-address={tcp}"),
            format!("--http-address={http}"),
        ];
        // nsqd asks a lookupd's broadcast address for a new topic's channels:
        // make it the address it listens on, not the host name's.
        if !extra.iter().any(|a| a.contains("broadcast-address")) {
            argv.push(format!("--broadcast-address={}", tcp.ip()));
        }
        argv.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn_new("nsqlookupd", argv, tcp, http, None)
    }

    /// Any daemon given as a full command line (`argv[0]` the binary) on the
    /// given addresses; `nsqd` also waits for its "ready" log line.
    pub fn from_argv(
        name: &str,
        argv: Vec<String>,
        tcp: SocketAddr,
        http: SocketAddr,
    ) -> Result<Daemon> {
        Self::spawn_new(name, argv, tcp, http, None)
    }

    /// `nsqd` on the given loopback addresses, with its own temporary data
    /// directory.
    pub fn nsqd_on(tcp: SocketAddr, http: SocketAddr, extra: &[&str]) -> Result<Daemon> {
        let data = TempDir::new("nsq-cluster-data")?;
        let argv = nsqd_argv(tcp, http, &data, extra);
        Self::spawn_new("nsqd", argv, tcp, http, Some(data))
    }

    /// `nsqd` inside network namespace `netns`, on the given addresses, with
    /// its own temporary data directory.
    pub fn nsqd_in_netns(
        netns: &str,
        tcp: SocketAddr,
        http: SocketAddr,
        extra: &[&str],
    ) -> Result<Daemon> {
        let data = TempDir::new("nsq-cluster-data")?;
        let mut argv = vec![
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            netns.into(),
        ];
        argv.extend(nsqd_argv(tcp, http, &data, extra));
        Self::spawn_new(&format!("nsqd@{netns}"), argv, tcp, http, Some(data))
    }

    fn spawn_new(
        name: &str,
        argv: Vec<String>,
        tcp: SocketAddr,
        http: SocketAddr,
        data: Option<TempDir>,
    ) -> Result<Daemon> {
        let mut d = Daemon {
            name: name.to_string(),
            argv,
            tcp,
            http,
            child: None,
            log_dir: TempDir::new("nsq-cluster-log")?,
            starts: 0,
            // nsqd answers /ping from its first started shard; "ready" is
            // logged once every shard has started.
            ready_line: name.starts_with("nsqd").then_some("INFO: ready"),
            _data: data,
        };
        d.spawn()?;
        Ok(d)
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join(format!("{}.log", self.starts))
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let log = File::create(self.log_path())?;
        let mut cmd = Command::new(&self.argv[0]);
        kill_with_parent(&mut cmd);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("spawning {:?}", self.argv))?,
        );
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "{} exited during startup ({status}): {:?}\n{}",
                    self.name,
                    self.argv,
                    self.log()
                );
            }
            let log_ready = || {
                self.ready_line.is_none_or(|line| {
                    fs::read_to_string(self.log_path()).is_ok_and(|log| log.contains(line))
                })
            };
            if self.ping_ok() && log_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "{} did not answer GET /ping on {} (and log {:?}) within {STARTUP_TIMEOUT:?}\n{}",
                    self.name,
                    self.http,
                    self.ready_line,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn ping_ok(&self) -> bool {
        http::request_with_timeout(self.http, "GET", "/ping", &[], b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200 && r.body == b"OK")
    }

    /// Starts the process again on the same addresses (it must be stopped).
    /// A port still held for a moment by the old process is retried.
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is still running", self.name);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if format!("{e:#}").contains("in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts the process again on the same addresses, once: no retry when
    /// a port is still held, as `systemctl restart` or a supervisor does.
    pub fn start_again_once(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is still running", self.name);
        }
        self.spawn()
    }

    /// SIGTERM, then wait (at most 10 s, then SIGKILL) for the exit.
    pub fn stop(&mut self) -> Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{} exited with {status} on SIGTERM\n{}",
                        self.name,
                        self.log()
                    );
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not exit within 10 s of SIGTERM\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The current process's output so far (last 60 lines).
    pub fn log(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {} log (last 60 lines) ---\n{}\n--- end ---",
            self.name,
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        eprintln!("{}", self.log());
    }
}

/// nsqd's command line on `tcp`/`http` with `data` as its data path.
fn nsqd_argv(tcp: SocketAddr, http: SocketAddr, data: &TempDir, extra: &[&str]) -> Vec<String> {
    let mut argv = vec![
        nsqd_bin().display().to_string(),
        format!("--tcp-address={tcp}"),
        format!("--http-address={http}"),
        format!("--https-address={}:0", tcp.ip()),
        format!("--data-path={}", data.path().display()),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

/// Two free loopback ports as addresses (the listeners are held together).
pub fn free_loopback_pair() -> Result<(SocketAddr, SocketAddr)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?, b.local_addr()?))
}

// ---------------------------------------------------------------------------
// nsqlookupd queries
// ---------------------------------------------------------------------------

/// `GET path` on `addr`, which must answer 200 with JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> Result<Value> {
    let resp = http::request(addr, "GET", path, b"")?;
    if resp.status != 200 {
        bail!(
            "GET {addr}{path}: status {} body {:?}",
            resp.status,
            resp.text()
        );
    }
    resp.json().with_context(|| format!("GET {addr}{path}"))
}

/// `method path` with `body` on `addr`, which must answer 200; the body text.
pub fn call_ok(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<String> {
    let resp = http::request(addr, method, path, body)?;
    if resp.status != 200 {
        bail!(
            "{method} {addr}{path}: status {} body {:?}",
            resp.status,
            resp.text()
        );
    }
    Ok(resp.text())
}

/// A producer as `broadcast_address:tcp_port`.
pub fn producer_key(p: &Value) -> String {
    format!(
        "{}:{}",
        p["broadcast_address"].as_str().unwrap_or("?"),
        p["tcp_port"].as_i64().unwrap_or(-1)
    )
}

/// `/lookup?topic=` on a lookupd: (producers as `addr:tcp_port`, channels).
/// A topic lookupd does not know (404) has neither.
pub fn lookupd_lookup(
    lookupd: SocketAddr,
    topic: &str,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let resp = http::request(lookupd, "GET", &format!("/lookup?topic={topic}"), b"")?;
    if resp.status == 404 {
        return Ok(Default::default());
    }
    let doc = resp.json()?;
    let producers = doc["producers"]
        .as_array()
        .ok_or_else(|| anyhow!("/lookup?topic={topic}: no producers in {doc}"))?
        .iter()
        .map(producer_key)
        .collect();
    Ok((producers, strings(&doc["channels"])))
}

/// The producers (`addr:tcp_port`) `/lookup?topic=` returns.
pub fn lookupd_producers(lookupd: SocketAddr, topic: &str) -> Result<BTreeSet<String>> {
    Ok(lookupd_lookup(lookupd, topic)?.0)
}

/// One `/nodes` entry: (`addr:tcp_port`, topics, tombstones).
pub type NodeEntry = (String, Vec<String>, Vec<bool>);

/// `/nodes` as one [`NodeEntry`] per node, sorted.
pub fn lookupd_nodes(lookupd: SocketAddr) -> Result<Vec<NodeEntry>> {
    let doc = get_json(lookupd, "/nodes")?;
    let nodes = doc["producers"]
        .as_array()
        .ok_or_else(|| anyhow!("/nodes: no producers in {doc}"))?;
    let mut out: Vec<_> = nodes
        .iter()
        .map(|n| {
            let topics = n["topics"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let tombstones = n["tombstones"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_bool).collect())
                .unwrap_or_default();
            (producer_key(n), topics, tombstones)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The topics `/nodes` lists for node `key` (`None`: node not listed).
pub fn node_topics(lookupd: SocketAddr, key: &str) -> Result<Option<BTreeSet<String>>> {
    Ok(lookupd_nodes(lookupd)?
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, topics, _)| topics.into_iter().collect()))
}

/// A JSON array of strings as a set.
pub fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `probe` every 50 ms until `ok(&value)`, at most `timeout`; the error
/// names `what` and shows the last value (or the last probe error).
pub fn eventually<T: Debug>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T>,
    ok: impl Fn(&T) -> bool,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = probe();
        if let Ok(v) = &last {
            if ok(v) {
                return last;
            }
        }
        if Instant::now() >= deadline {
            return match last {
                Ok(v) => Err(anyhow!(
                    "timed out after {timeout:?} waiting for {what}; last: {v:?}"
                )),
                Err(e) => Err(e.context(format!("timed out after {timeout:?} waiting for {what}"))),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// nsqd nodes as lookupd sees them
// ---------------------------------------------------------------------------

/// The producer key lookupd shows for `n`.
pub fn key(n: &TestNsqd) -> String {
    format!("127.0.0.1:{}", n.tcp_addr().port())
}

/// [`key`] of each node.
pub fn keys(ns: &[&TestNsqd]) -> BTreeSet<String> {
    ns.iter().map(|n| key(n)).collect()
}

/// Strings as a set.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `POST path` (empty body), which must answer 200.
pub fn post(addr: SocketAddr, path: &str) -> Result<()> {
    call_ok(addr, "POST", path, b"").map(drop)
}

/// Waits until `/lookup?topic=` on `l` lists exactly `producers` and at
/// least `channels`.
pub fn wait_lookup(
    l: &Daemon,
    topic: &str,
    producers: &[&TestNsqd],
    channels: &[&str],
) -> Result<()> {
    let (want_p, want_c) = (keys(producers), set(channels));
    eventually(
        REGISTER,
        &format!(
            "lookupd {} /lookup?topic={topic}: producers {want_p:?}, channels ⊇ {want_c:?}",
            l.http_addr()
        ),
        || lookupd_lookup(l.http_addr(), topic),
        |(p, c)| *p == want_p && c.is_superset(&want_c),
    )
    .map(drop)
}

/// The producers `/debug` lists under `channel:topic:channel`.
pub fn channel_producers(l: &Daemon, topic: &str, channel: &str) -> Result<BTreeSet<String>> {
    let debug = get_json(l.http_addr(), "/debug")?;
    Ok(debug[format!("channel:{topic}:{channel}")]
        .as_array()
        .map(|a| a.iter().map(producer_key).collect())
        .unwrap_or_default())
}

/// Waits until `/debug` lists exactly `want` as producers of the channel.
pub fn wait_channel_producers(
    l: &Daemon,
    topic: &str,
    channel: &str,
    want: &[&TestNsqd],
) -> Result<()> {
    let want = keys(want);
    eventually(
        REGISTER,
        &format!(
            "lookupd {} channel {topic}/{channel} producers {want:?}",
            l.http_addr()
        ),
        || channel_producers(l, topic, channel),
        |p| *p == want,
    )
    .map(drop)
}

/// `/channels?topic=` on a lookupd.
pub fn channels(l: &Daemon, topic: &str) -> Result<BTreeSet<String>> {
    Ok(strings(
        &get_json(l.http_addr(), &format!("/channels?topic={topic}"))?["channels"],
    ))
}

/// Waits until `/nodes` lists exactly `want` (node → its topics).
pub fn wait_nodes(l: &Daemon, want: &[(&TestNsqd, &[&str])], timeout: Duration) -> Result<()> {
    let mut want_sorted: Vec<(String, BTreeSet<String>)> =
        want.iter().map(|(n, t)| (key(n), set(t))).collect();
    want_sorted.sort();
    eventually(
        timeout,
        &format!("lookupd {} /nodes {want_sorted:?}", l.http_addr()),
        || {
            Ok(lookupd_nodes(l.http_addr())?
                .into_iter()
                .map(|(k, topics, _)| (k, topics.into_iter().collect::<BTreeSet<_>>()))
                .collect::<Vec<_>>())
        },
        |got| *got == want_sorted,
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// Consumers
// ---------------------------------------------------------------------------

/// Messages received by one consumer: `attempts body` lines on a channel.
pub struct Received {
    pub who: &'static str,
    rx: Receiver<String>,
    /// Arrivals per body.
    pub counts: HashMap<String, usize>,
}

impl Received {
    pub fn new(who: &'static str, rx: Receiver<String>) -> Received {
        Received {
            who,
            rx,
            counts: HashMap::new(),
        }
    }

    /// Waits until every body of `want` has arrived, each once, first attempt.
    pub fn wait_for(&mut self, want: &BTreeSet<String>) -> Result<()> {
        let deadline = Instant::now() + CONSUME;
        loop {
            let missing: Vec<&String> = want
                .iter()
                .filter(|b| !self.counts.contains_key(*b))
                .collect();
            if missing.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let (attempts, body) = line.split_once(' ').unwrap_or(("?", &line));
                    ensure!(
                        attempts == "1",
                        "{}: {body:?} arrived with attempts {attempts}",
                        self.who
                    );
                    *self.counts.entry(body.to_string()).or_default() += 1;
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{}: {} of {} messages missing after {CONSUME:?}, e.g. {:?}",
                    self.who,
                    missing.len(),
                    want.len(),
                    &missing[..missing.len().min(5)]
                ),
                Err(RecvTimeoutError::Disconnected) => bail!("{}: the consumer stopped", self.who),
            }
        }
        let dups: Vec<_> = self.counts.iter().filter(|(_, n)| **n > 1).collect();
        ensure!(dups.is_empty(), "{}: duplicates {dups:?}", self.who);
        Ok(())
    }
}

/// The pynsq Reader script, stdout lines forwarded to a channel.
pub struct PynsqReader {
    child: Child,
    _dir: TempDir,
    stderr: PathBuf,
}

impl PynsqReader {
    pub fn start(
        lookupds: &[&Daemon],
        topic: &str,
        channel: &str,
    ) -> Result<(PynsqReader, Receiver<String>)> {
        let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = tests.join(".venv/bin/python");
        if !python.exists() {
            bail!(
                "pynsq is not installed ({} is missing): run the test command `./tests/run.sh`, \
                 which creates tests/.venv",
                python.display()
            );
        }
        let dir = TempDir::new("nsq-cluster-pynsq")?;
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(&python);
        cmd.arg(tests.join("compat/pynsq_lookupd_check.py"));
        for l in lookupds {
            cmd.arg("--lookupd")
                .arg(format!("http://{}", l.http_addr()));
        }
        let mut child = cmd
            .args(["--topic", topic, "--channel", channel, "--timeout", "170"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr)?)
            .spawn()
            .context("spawning the pynsq script")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("MSG ") {
                    if tx.send(rest.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Ok((
            PynsqReader {
                child,
                _dir: dir,
                stderr,
            },
            rx,
        ))
    }
}

impl Drop for PynsqReader {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // EOF: the script exits
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        eprintln!("--- pynsq stderr ---\n{log}\n--- end ---");
    }
}

// ---------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------

pub use nsq_netns::{netns_unavailable, Netns};

/// The test's hosts: namespaces `nsqc<N>h<i>` on 10.200.N.0/24 (the perf
/// cluster scenario uses another block, so both can run at once).
pub fn hosts(count: u8) -> Result<Netns> {
    Netns::create("nsqc", 200, count)
}

/// nsqd broadcasting 127.0.0.1 and registering with `lookupds` (one shard
/// unless `extra` says otherwise).
pub fn nsqd(lookupds: &[&Daemon], extra: &[&str]) -> Result<TestNsqd> {
    let mut args: Vec<String> = vec!["--broadcast-address=127.0.0.1".into()];
    args.extend(
        lookupds
            .iter()
            .map(|l| format!("--lookupd-tcp-address={}", l.tcp_addr())),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.iter().any(|a| a.starts_with("--shards")) {
        args.push("--shards=1".into()); // the default is one per CPU
    }
    let n = TestNsqd::start(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    // /ping answers from the first shard up; "ready" means all are.
    wait_until(STARTUP_TIMEOUT, "nsqd to log `ready`", || {
        Ok(n.stderr().contains("INFO: ready"))
    })
    .with_context(|| {
        format!(
            "nsqd {} answers /ping but not every shard started (its log follows)",
            n.http_addr()
        )
    })?;
    Ok(n)
}
