//! Runs one scenario against one broker binary: a fresh broker on free
//! loopback ports and a temporary data directory, the loadgen steps, then
//! the broker's peak RSS and CPU time, and a clean kill.
//!
//! Nothing here panics on a broker or loadgen failure: a failed scenario
//! comes back as a result with `ok == false` and the reason.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::scenario::{Focus, Scenario};

/// Which broker a run used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Our nsqd.
    Ours,
    /// The reference broker (`--reference`).
    Reference,
}

/// The outcome of one scenario on one broker.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Broker.
    pub target: Target,
    /// Round (A/B alternation), from 0.
    pub round: usize,
    /// Everything passed: broker up, every step exited 0 with `ok`.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Each step's loadgen JSON summary, in order (as far as it got).
    pub steps: Vec<Value>,
    /// Broker peak resident set (VmHWM), bytes.
    pub broker_peak_rss: Option<u64>,
    /// Broker user+system CPU, s.
    pub broker_cpu_s: Option<f64>,
    /// loadgen user+system CPU over all steps, s.
    pub loadgen_cpu_s: f64,
    /// Wall time of the steps, s.
    pub wall_s: f64,
    /// Named figures of a custom scenario (see `custom`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Remarks of a custom scenario for the report (tool output, limits).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the scenario did not run (not a failure: `ok` stays true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Paths and knobs shared by every run.
#[derive(Debug, Clone)]
pub struct Env {
    /// loadgen binary.
    pub loadgen: PathBuf,
    /// Where broker logs go (one file per run).
    pub log_dir: PathBuf,
    /// Extra flags for our broker only (e.g. `--shards=2`).
    pub ours_extra: Vec<String>,
    /// Directory with NSQ's `bench_writer` and `bench_reader` (`bench_nsq`).
    pub nsq_bench_dir: Option<PathBuf>,
    /// `--runfor` of the bench tools.
    pub bench_runfor: Duration,
    /// Connections `idle_conns` opens.
    pub idle_conns: usize,
}

/// A running broker, killed (SIGKILL) on drop.
pub struct Broker {
    child: Child,
    /// TCP (client protocol) address.
    pub tcp: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    /// Its data directory (removed on drop).
    pub data_dir: PathBuf,
}

impl Broker {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.data_dir);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A minimal HTTP/1.0 request; returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP response: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn start_broker(bin: &Path, flags: &[String], log: &Path) -> Result<Broker> {
    let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let data_dir =
        std::env::temp_dir().join(format!("nsq-perf-{}-{}", std::process::id(), tcp.port()));
    fs::create_dir_all(&data_dir)?;
    let log_file = fs::File::create(log)?;
    let child = Command::new(bin)
        .arg(format!("--tcp-address={tcp}"))
        .arg(format!("--http-address={http_addr}"))
        // HTTPS listens only with a certificate (the TLS scenarios); keep
        // it off nsqd's default 0.0.0.0:4152 so runs never collide.
        .arg("--https-address=127.0.0.1:0")
        .arg(format!("--data-path={}", data_dir.display()))
        .args(flags)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut broker = Broker {
        child,
        tcp,
        http: http_addr,
        data_dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = broker.child.try_wait()? {
            bail!("broker exited at startup ({status}); log {}", log.display());
        }
        if matches!(http(broker.http, "GET", "/ping"), Ok((200, _)))
            && TcpStream::connect_timeout(&broker.tcp, Duration::from_millis(500)).is_ok()
        {
            return Ok(broker);
        }
        if Instant::now() > deadline {
            bail!(
                "broker did not answer /ping within 10 s; log {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `(peak RSS bytes, CPU seconds)` of a live process, from /proc.
pub fn proc_usage(pid: u32) -> (Option<u64>, Option<f64>) {
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    let cpu = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime
            // are fields 14 and 15 of the whole line.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            Some((utime + stime) / hz.max(1.0))
        });
    (rss, cpu)
}

/// CPU seconds used by waited-for children so far (user + system).
pub fn children_cpu() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs loadgen, enforcing a wall-clock limit; returns its JSON summary
/// (present even when the run failed) and whether it exited 0.
pub fn run_loadgen(loadgen: &Path, args: &[String], limit: Duration) -> Result<(Value, bool)> {
    let (status, stdout, stderr) =
        crate::custom::run_bounded(Command::new(loadgen).args(args), limit)
            .with_context(|| format!("loadgen {}", loadgen.display()))?;
    let summary: Value = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "loadgen exited {status} without a JSON summary: {}",
            stderr.trim()
        )
    })?;
    Ok((summary, status.success()))
}

/// First error lines of a loadgen summary, for the report.
fn summary_errors(summary: &Value) -> String {
    let errors: Vec<String> = summary["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !errors.is_empty() {
        return errors.into_iter().take(2).collect::<Vec<_>>().join("; ");
    }
    let total = &summary["integrity"]["total"];
    format!(
        "integrity: missing {} corrupted {} of {}",
        total["missing"], total["corrupted"], total["sent"]
    )
}

/// Runs `scenario` on the broker at `bin`.
pub fn run(
    env: &Env,
    scenario: &Scenario,
    bin: &Path,
    target: Target,
    round: usize,
    step_limit: Duration,
) -> RunResult {
    let mut result = RunResult {
        scenario: scenario.name.to_string(),
        target,
        round,
        ok: false,
        error: None,
        steps: Vec::new(),
        broker_peak_rss: None,
        broker_cpu_s: None,
        loadgen_cpu_s: 0.0,
        wall_s: 0.0,
        metrics: BTreeMap::new(),
        notes: Vec::new(),
        skipped: None,
    };
    if let Err(err) = run_inner(env, scenario, bin, target, step_limit, &mut result) {
        result.error = Some(format!("{err:#}"));
    }
    result
}

fn run_inner(
    env: &Env,
    scenario: &Scenario,
    bin: &Path,
    target: Target,
    step_limit: Duration,
    result: &mut RunResult,
) -> Result<()> {
    let mut flags = scenario.broker_flags.clone();
    if target == Target::Ours {
        flags.extend(env.ours_extra.iter().cloned());
    }
    let log = env.log_dir.join(format!(
        "{}-{:?}-{}.log",
        scenario.name, target, result.round
    ));
    let custom = match scenario.focus {
        Focus::Custom(kind) => Some(kind),
        _ => None,
    };
    if let Some(reason) = custom.and_then(|kind| kind.before_start(env, result)) {
        println!("perf: {reason}");
        result.skipped = Some(reason);
        result.ok = true;
        return Ok(());
    }
    let broker = start_broker(bin, &flags, &log)?;
    if let Some((topic, channel)) = scenario.precreate {
        for path in [
            format!("/topic/create?topic={topic}"),
            format!("/channel/create?topic={topic}&channel={channel}"),
        ] {
            let (status, body) = http(broker.http, "POST", &path)?;
            if status != 200 {
                bail!("POST {path}: {status} {body}");
            }
        }
    }
    if let Some(kind) = custom {
        let started = Instant::now();
        let outcome = kind.run(env, &broker, result);
        result.wall_s = started.elapsed().as_secs_f64();
        (result.broker_peak_rss, result.broker_cpu_s) = proc_usage(broker.pid());
        drop(broker);
        outcome?;
        result.ok = true;
        return Ok(());
    }
    let started = Instant::now();
    let cpu_before = children_cpu();
    let scraper = scenario.scrape_metrics.then(|| Scraper::start(broker.http));
    let mut failure = None;
    let mut previous_published = 0u64;
    for step in &scenario.steps {
        let mut args = step.args.clone();
        args.push(format!("--nsqd-tcp-address={}", broker.tcp));
        args.push("--json".into());
        args.push("--no-progress".into());
        args.push(format!("--deadline={}s", step_limit.as_secs()));
        if step.expect_previous {
            if previous_published == 0 {
                failure = Some("nothing was published to drain".to_string());
                break;
            }
            args.push(format!("--expect={previous_published}"));
        }
        let (summary, success) =
            run_loadgen(&env.loadgen, &args, step_limit + Duration::from_secs(15))?;
        previous_published = summary["acknowledged"].as_u64().unwrap_or(0);
        let ok = success && summary["ok"] == true;
        if !ok && failure.is_none() {
            failure = Some(format!(
                "step `loadgen {}`: {}",
                step.args.first().map(String::as_str).unwrap_or(""),
                summary_errors(&summary)
            ));
        }
        result.steps.push(summary);
        if !ok {
            break;
        }
    }
    if let Some(scraper) = scraper {
        let scrapes = scraper.stop();
        println!("perf:   {scrapes} scrapes of /metrics");
    }
    result.wall_s = started.elapsed().as_secs_f64();
    result.loadgen_cpu_s = children_cpu() - cpu_before;
    let (rss, cpu) = proc_usage(broker.child.id());
    result.broker_peak_rss = rss;
    result.broker_cpu_s = cpu;
    drop(broker);
    match failure {
        Some(reason) => Err(anyhow!(reason)),
        None => {
            result.ok = true;
            Ok(())
        }
    }
}

/// GETs `/metrics` every [`crate::scenario::SCRAPE_EVERY`] on its own thread
/// until stopped, as a Prometheus server would (much more often).
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Scraper {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                if http(addr, "GET", "/metrics").is_ok() {
                    scrapes += 1;
                }
                std::thread::sleep(crate::scenario::SCRAPE_EVERY);
            }
            scrapes
        });
        Scraper { stop, thread }
    }

    /// Stops scraping; how many scrapes were answered.
    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
