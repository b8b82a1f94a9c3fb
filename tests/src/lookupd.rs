//! Harness for `nsqlookupd`.
//!
//! * [`TestLookupd`] runs one `nsqlookupd` process on free loopback ports and
//!   kills it on drop.
//! * [`LookupClient`] is a blocking protocol V1 client, standing in for an
//!   nsqd peer: it speaks `IDENTIFY`, `REGISTER`, `UNREGISTER` and `PING`
//!   and reads nsqlookupd's `[4B size][data]` answers.
//!
//! Every wait is bounded ([`crate::READ_TIMEOUT`], [`crate::STARTUP_TIMEOUT`]).

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::http::{self, Response};
use crate::{
    free_ports, kill_with_parent, wait_until, workspace_root, TempDir, READ_TIMEOUT,
    STARTUP_TIMEOUT,
};

/// Largest answer the client accepts (IDENTIFY replies are ~150 bytes).
const MAX_RESPONSE: usize = 1 << 20;

/// Path of the binary: `$NSQLOOKUPD_BIN`, else `<workspace>/target/debug/nsqlookupd`.
pub fn nsqlookupd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NSQLOOKUPD_BIN") {
        return PathBuf::from(path);
    }
    workspace_root()
        .join("target")
        .join("debug")
        .join("nsqlookupd")
}

/// One running `nsqlookupd` on loopback, killed on drop.
pub struct TestLookupd {
    child: Option<Child>,
    tcp: SocketAddr,
    http: SocketAddr,
    args: Vec<String>,
    log_dir: TempDir,
}

impl TestLookupd {
    /// Starts `nsqlookupd` on free loopback ports with `extra_args` and waits
    /// (bounded) until `GET /ping` answers `OK` and the TCP port accepts.
    pub fn start(extra_args: &[&str]) -> Result<TestLookupd> {
        let mut lookupd = TestLookupd {
            child: None,
            tcp: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_dir: TempDir::new("nsqlookupd-test-log")?,
        };
        // A port picked free can be taken before the process binds it; retry.
        let mut last = None;
        for _ in 0..3 {
            match lookupd.spawn() {
                Ok(()) => return Ok(lookupd),
                Err(e) => {
                    let port_race = format!("{e:#}").to_lowercase().contains("in use");
                    last = Some(e);
                    if !port_race {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("nsqlookupd did not start")))
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = nsqlookupd_bin();
        if !bin.exists() {
            bail!(
                "nsqlookupd binary not found at {} (build it with `cargo build -p nsq-lookupd`, or set NSQLOOKUPD_BIN)",
                bin.display()
            );
        }
        let (tcp_port, http_port) = free_ports()?;
        self.tcp = SocketAddr::from(([127, 0, 0, 1], tcp_port));
        self.http = SocketAddr::from(([127, 0, 0, 1], http_port));
        let mut cmd = Command::new(&bin);
        kill_with_parent(&mut cmd);
        cmd.arg(format!("--tcp-address={}", self.tcp))
            .arg(format!("--http-address={}", self.http))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(File::create(self.log_dir.path().join("stdout"))?)
            .stderr(File::create(self.stderr_path())?);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("spawning {}", bin.display()))?,
        );
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "nsqlookupd exited during startup ({status}); args {:?}\n--- stderr ---\n{}",
                        self.args,
                        self.stderr()
                    );
                }
            }
            let ping = http::request_with_timeout(
                self.http,
                "GET",
                "/ping",
                &[],
                b"",
                Duration::from_secs(1),
            );
            if ping.is_ok_and(|r| r.status == 200 && r.body == b"OK")
                && TcpStream::connect_timeout(&self.tcp, Duration::from_millis(500)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "nsqlookupd did not answer GET /ping within {STARTUP_TIMEOUT:?}\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.log_dir.path().join("stderr")
    }

    /// The process's stderr (its log) so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The TCP (protocol V1) address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("nsqlookupd is not running"))?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("nsqlookupd did not exit within {READ_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new V1 connection, magic already sent.
    pub fn connect(&self) -> Result<LookupClient> {
        LookupClient::connect(self.tcp)
    }

    /// A new V1 connection that has IDENTIFYed as `peer` (see [`peer_info`]).
    pub fn connect_as(&self, peer: &Value) -> Result<LookupClient> {
        let mut client = self.connect()?;
        client.identify(peer)?;
        Ok(client)
    }

    /// One HTTP request on a fresh connection.
    pub fn request(&self, method: &str, path: &str) -> Result<Response> {
        http::request(self.http, method, path, b"")
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let resp = self.request("GET", path)?;
        if resp.status != 200 {
            bail!("GET {path}: status {} body {:?}", resp.status, resp.text());
        }
        resp.json().with_context(|| format!("GET {path}"))
    }

    /// `POST path`, which must answer 200 with an empty body.
    pub fn post_ok(&self, path: &str) -> Result<()> {
        let resp = self.request("POST", path)?;
        if resp.status != 200 || !resp.body.is_empty() {
            bail!("POST {path}: status {} body {:?}", resp.status, resp.text());
        }
        Ok(())
    }

    /// `(status, message)` of an error answer `{"message": ...}`.
    pub fn error(&self, method: &str, path: &str) -> Result<(u16, String)> {
        let resp = self.request(method, path)?;
        let body = resp.json()?;
        let message = body["message"]
            .as_str()
            .ok_or_else(|| anyhow!("{method} {path}: no message in {body}"))?;
        Ok((resp.status, message.to_string()))
    }

    /// `GET /lookup?topic=` (must be 200).
    pub fn lookup(&self, topic: &str) -> Result<Value> {
        self.get_json(&format!("/lookup?topic={topic}"))
    }

    /// The `tcp_port`s of `/lookup?topic=`'s producers, sorted.
    pub fn lookup_ports(&self, topic: &str) -> Result<Vec<i64>> {
        let doc = self.lookup(topic)?;
        let mut ports: Vec<i64> = doc["producers"]
            .as_array()
            .ok_or_else(|| anyhow!("no producers array in {doc}"))?
            .iter()
            .filter_map(|p| p["tcp_port"].as_i64())
            .collect();
        ports.sort_unstable();
        Ok(ports)
    }

    /// Polls `/lookup?topic=` until its producer ports equal `want` (bounded).
    pub fn wait_lookup_ports(&self, topic: &str, want: &[i64]) -> Result<()> {
        let mut last = Vec::new();
        wait_until(
            READ_TIMEOUT,
            &format!("/lookup?topic={topic} ports {want:?}"),
            || {
                last = self.lookup_ports(topic)?;
                Ok(last == want)
            },
        )
        .with_context(|| format!("last ports {last:?}"))
    }
}

impl Drop for TestLookupd {
    fn drop(&mut self) {
        self.kill();
        // Shown by the test runner only when the test fails.
        let log = self.stderr();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        if !tail.is_empty() {
            eprintln!("--- nsqlookupd stderr (last 40 lines) ---\n{tail}\n--- end ---");
        }
    }
}

/// An IDENTIFY body as nsqd sends it.
pub fn peer_info(broadcast_address: &str, tcp_port: u16, http_port: u16) -> Value {
    json!({
        "broadcast_address": broadcast_address,
        "hostname": broadcast_address,
        "tcp_port": tcp_port,
        "http_port": http_port,
        "version": "1.3.0",
    })
}

/// Runs the binary with `args` only until it exits (bounded), returning
/// (status, stdout, stderr).
pub fn run_nsqlookupd_to_exit(
    args: &[&str],
    timeout: Duration,
) -> Result<(ExitStatus, String, String)> {
    crate::run_to_exit(&nsqlookupd_bin(), args, timeout)
}

/// A blocking protocol V1 client; every read waits at most [`READ_TIMEOUT`].
pub struct LookupClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl LookupClient {
    /// Connects and sends the `"  V1"` magic.
    pub fn connect(addr: SocketAddr) -> Result<LookupClient> {
        let mut client = Self::connect_no_magic(addr)?;
        client.send(b"  V1")?;
        Ok(client)
    }

    /// Connects without sending anything.
    pub fn connect_no_magic(addr: SocketAddr) -> Result<LookupClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(LookupClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// This end's address: the peer id nsqlookupd shows as `remote_address`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .context("writing to nsqlookupd")
    }

    /// Half-closes the connection (the peer sees EOF; answers still arrive).
    pub fn shutdown_write(&self) -> Result<()> {
        Ok(self.stream.shutdown(std::net::Shutdown::Write)?)
    }

    /// Writes `line\n`.
    pub fn command(&mut self, line: &str) -> Result<()> {
        self.send(format!("{line}\n").as_bytes())
    }

    /// Reads more bytes; `Ok(false)` on EOF or reset.
    fn fill(&mut self, deadline: Instant) -> Result<bool> {
        let now = Instant::now();
        if now >= deadline {
            bail!("no answer from nsqlookupd within {READ_TIMEOUT:?}");
        }
        self.stream.set_read_timeout(Some(deadline - now))?;
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                bail!("no answer from nsqlookupd within {READ_TIMEOUT:?}")
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(e).context("reading from nsqlookupd"),
        }
    }

    /// Reads one `[4B BE size][data]` answer.
    pub fn read_response(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if self.buf.len() >= 4 {
                let size = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                let size = size as usize;
                if size > MAX_RESPONSE {
                    bail!("answer of {size} bytes is not plausible");
                }
                if self.buf.len() >= 4 + size {
                    let data = self.buf[4..4 + size].to_vec();
                    self.buf.drain(..4 + size);
                    return Ok(data);
                }
            }
            if !self.fill(deadline)? {
                bail!(
                    "connection closed before a full answer (have {:?})",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads one answer and checks its text.
    pub fn expect(&mut self, text: &str) -> Result<()> {
        let data = self.read_response()?;
        if data != text.as_bytes() {
            bail!(
                "expected {text:?}, got {:?}",
                String::from_utf8_lossy(&data)
            );
        }
        Ok(())
    }

    /// Reads an error answer, then checks the connection is closed.
    pub fn expect_fatal(&mut self, text: &str) -> Result<()> {
        self.expect(text)?;
        self.expect_closed()
    }

    /// Checks that the server closed the connection (bounded).
    pub fn expect_closed(&mut self) -> Result<()> {
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.fill(deadline)? {}
        if !self.buf.is_empty() {
            bail!(
                "unexpected bytes before close: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        Ok(())
    }

    /// `IDENTIFY` + body; returns the JSON answer.
    pub fn identify(&mut self, body: &Value) -> Result<Value> {
        let body = serde_json::to_vec(body)?;
        self.send(&identify_bytes(&body))?;
        let answer = self.read_response()?;
        serde_json::from_slice(&answer).with_context(|| {
            format!(
                "IDENTIFY answer is not JSON: {:?}",
                String::from_utf8_lossy(&answer)
            )
        })
    }

    /// `REGISTER topic [channel]`, expecting `OK`.
    pub fn register(&mut self, topic: &str, channel: Option<&str>) -> Result<()> {
        self.command(&with_channel("REGISTER", topic, channel))?;
        self.expect("OK")
            .with_context(|| format!("REGISTER {topic} {channel:?}"))
    }

    /// `UNREGISTER topic [channel]`, expecting `OK`.
    pub fn unregister(&mut self, topic: &str, channel: Option<&str>) -> Result<()> {
        self.command(&with_channel("UNREGISTER", topic, channel))?;
        self.expect("OK")
            .with_context(|| format!("UNREGISTER {topic} {channel:?}"))
    }

    /// `PING`, expecting `OK`.
    pub fn ping(&mut self) -> Result<()> {
        self.command("PING")?;
        self.expect("OK")
    }
}

/// `IDENTIFY\n[4B BE size][body]`.
pub fn identify_bytes(body: &[u8]) -> Vec<u8> {
    let mut bytes = b"IDENTIFY\n".to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn with_channel(command: &str, topic: &str, channel: Option<&str>) -> String {
    match channel {
        Some(channel) => format!("{command} {topic} {channel}"),
        None => format!("{command} {topic}"),
    }
}
