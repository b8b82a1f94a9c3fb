//! Scenarios that are not loadgen steps: NSQ's own bench tools
//! (`bench_nsq`), idle connections (`idle_conns`), topic-creation churn
//! (`create_churn`) and the memory a fixed backlog costs
//! (`backlog_memory`). Each run fills named figures ([`RunResult::metrics`]);
//! the report shows them in a small ours / reference / ratio table per
//! scenario, since they do not fit the msg/s columns of the main table.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::report::{human_ns, median, runs_of};
use crate::runner::{Broker, Env, RunResult, Target};
use crate::scenario::{Focus, Scenario};

/// Which custom measurement a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custom {
    /// NSQ's `bench_writer` then `bench_reader`, as NSQ's bench.sh runs them.
    BenchNsq,
    /// Memory and fds per idle connection.
    IdleConns,
    /// PUB round trips while topics and channels are created.
    CreateChurn,
    /// Memory with a fixed backlog in a channel, and after it drained.
    BacklogMemory,
}

/// How a figure is printed.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Messages per second.
    Rate,
    /// Nanoseconds.
    Nanos,
    /// Microseconds.
    Micros,
    /// Bytes, printed in MiB.
    Bytes,
    /// KiB.
    KiB,
    /// Seconds.
    Secs,
    /// A count.
    Count,
    /// A small ratio (two decimals).
    Plain,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Rate => format!("{:.0}k", v / 1e3),
            Unit::Nanos => human_ns(v),
            Unit::Micros => format!("{v:.2} µs"),
            Unit::Bytes => format!("{:.1} MiB", v / (1u64 << 20) as f64),
            Unit::KiB => format!("{v:.1} KiB"),
            Unit::Secs => format!("{v:.2} s"),
            Unit::Count => format!("{v:.0}"),
            Unit::Plain => format!("{v:.2}"),
        }
    }
}

/// One reported figure: metric key, label, unit.
pub type FigureDef = (&'static str, &'static str, Unit);

impl Custom {
    /// The figures this measurement reports, in table order.
    pub fn figures(self) -> &'static [FigureDef] {
        match self {
            Custom::BenchNsq => &[
                ("pub_rate", "PUB msg/s (bench_writer)", Unit::Rate),
                ("sub_rate", "SUB msg/s (bench_reader)", Unit::Rate),
                (
                    "cpu_us_per_pub",
                    "broker CPU per published msg",
                    Unit::Micros,
                ),
                (
                    "cpu_us_per_sub",
                    "broker CPU per consumed msg",
                    Unit::Micros,
                ),
                ("peak_rss", "broker peak RSS (VmHWM)", Unit::Bytes),
                ("end_rss", "broker RSS at the end", Unit::Bytes),
                ("data_dir", "data dir size (allocated)", Unit::Bytes),
            ],
            Custom::IdleConns => &[
                ("conns", "idle connections opened", Unit::Count),
                ("held", "connections the broker holds", Unit::Count),
                ("rss_before", "broker RSS before", Unit::Bytes),
                ("rss_after", "broker RSS with the connections", Unit::Bytes),
                ("kib_per_conn", "RSS per idle connection", Unit::KiB),
                ("fds_per_conn", "broker fds per connection", Unit::Plain),
                (
                    "alive_ok",
                    "checked connections alive (PUB → OK)",
                    Unit::Count,
                ),
            ],
            Custom::CreateChurn => &[
                (
                    "create_s",
                    "creation wall time (200 topics × 2 channels)",
                    Unit::Secs,
                ),
                (
                    "during_p50",
                    "PUB round trip p50 during creation",
                    Unit::Nanos,
                ),
                (
                    "during_p99",
                    "PUB round trip p99 during creation",
                    Unit::Nanos,
                ),
                (
                    "during_max",
                    "PUB round trip max during creation",
                    Unit::Nanos,
                ),
                ("during_pubs", "PUBs during creation", Unit::Count),
                ("baseline_p50", "PUB round trip p50, baseline", Unit::Nanos),
                ("baseline_p99", "PUB round trip p99, baseline", Unit::Nanos),
            ],
            Custom::BacklogMemory => &[
                ("anon_before", "anonymous memory, empty", Unit::Bytes),
                (
                    "anon_full",
                    "anonymous memory, 1M messages queued",
                    Unit::Bytes,
                ),
                (
                    "bytes_per_msg",
                    "bytes per queued 200 B message",
                    Unit::Count,
                ),
                (
                    "anon_drained",
                    "anonymous memory 3 s after they were consumed",
                    Unit::Bytes,
                ),
            ],
        }
    }

    /// Set-up before the broker starts (it inherits our limits); returns a
    /// reason to skip the scenario instead of running it.
    pub fn before_start(self, env: &Env, result: &mut RunResult) -> Option<String> {
        match self {
            Custom::BenchNsq if env.nsq_bench_dir.is_none() => Some(
                "bench_nsq skipped: bench_writer/bench_reader not found; \
                 pass --nsq-bench-bin DIR or set NSQ_REFERENCE_BIN"
                    .into(),
            ),
            Custom::IdleConns => {
                match crate::edges::raise_nofile() {
                    Ok(soft) => result
                        .notes
                        .push(format!("RLIMIT_NOFILE soft limit {soft}")),
                    Err(e) => result.notes.push(format!("raising RLIMIT_NOFILE: {e:#}")),
                }
                None
            }
            _ => None,
        }
    }

    /// Runs the measurement on a started broker (topic and channel of the
    /// scenario's `precreate` already made).
    pub fn run(self, env: &Env, broker: &Broker, result: &mut RunResult) -> Result<()> {
        match self {
            Custom::BenchNsq => crate::bench_nsq::run(env, broker, result),
            Custom::IdleConns => crate::edges::idle_conns(env, broker, result),
            Custom::CreateChurn => crate::edges::create_churn(broker, result),
            Custom::BacklogMemory => backlog_memory(env, broker, result),
        }
    }
}

/// Messages `backlog_memory` queues (two producers, half each).
const BACKLOG: u64 = 1_000_000;

/// `backlog_memory`: publish exactly [`BACKLOG`] 200 B messages (MPUB 200)
/// into topic `backlog`, channel `ch` (created first, no consumer), so
/// both brokers hold the same backlog in their channel's memory queue
/// (`--mem-queue-size=1000000`); read anonymous memory; consume them all;
/// read it again 3 s later.
fn backlog_memory(env: &Env, broker: &Broker, result: &mut RunResult) -> Result<()> {
    let pid = broker.pid();
    let anon = || status_bytes(pid, "RssAnon").ok_or_else(|| anyhow!("no RssAnon for {pid}"));
    let before = anon()?;
    let addr = format!("--nsqd-tcp-address={}", broker.tcp);
    let common = |mode: &str| -> Vec<String> {
        vec![
            mode.into(),
            addr.clone(),
            "--topic=backlog".into(),
            "--channel=ch".into(),
            "--warmup=0".into(),
            "--duration=120s".into(),
            "--json".into(),
        ]
    };
    let mut publish = common("pub");
    publish.extend([format!("--count={}", BACKLOG / 2), "--producers=2".into()]);
    let (_, ok) = crate::runner::run_loadgen(&env.loadgen, &publish, Duration::from_secs(180))?;
    if !ok {
        bail!("loadgen pub failed");
    }
    std::thread::sleep(Duration::from_secs(1));
    let full = anon()?;
    let mut consume = common("sub");
    consume.push(format!("--expect={BACKLOG}"));
    let (_, ok) = crate::runner::run_loadgen(&env.loadgen, &consume, Duration::from_secs(180))?;
    if !ok {
        bail!("loadgen sub failed");
    }
    std::thread::sleep(Duration::from_secs(3));
    let drained = anon()?;
    let m = &mut result.metrics;
    m.insert("anon_before".into(), before as f64);
    m.insert("anon_full".into(), full as f64);
    m.insert(
        "bytes_per_msg".into(),
        full.saturating_sub(before) as f64 / BACKLOG as f64,
    );
    m.insert("anon_drained".into(), drained as f64);
    Ok(())
}

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`, ...).
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Open file descriptors of a process (`/proc/<pid>/fd` entries).
pub fn fd_count(pid: &str) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Distinct sockets a process holds (several fds may share one socket).
pub fn socket_count(pid: u32) -> Option<usize> {
    let inodes: std::collections::HashSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("socket:"))
        .collect();
    Some(inodes.len())
}

/// Runs a command with a wall-clock limit (killed past it); returns its
/// status, stdout and stderr.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(ExitStatus, String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes drained on threads so a chatty child never blocks.
    let mut stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// Allocated size of a directory tree in bytes (what `du` counts).
pub fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Writes the custom scenarios' tables.
pub fn markdown(md: &mut String, scenarios: &[Scenario], results: &[RunResult], has_ref: bool) {
    let custom: Vec<(&Scenario, Custom)> = scenarios
        .iter()
        .filter_map(|s| match s.focus {
            Focus::Custom(kind) => Some((s, kind)),
            _ => None,
        })
        .filter(|(s, _)| !runs_of(results, s.name, Target::Ours).is_empty())
        .collect();
    if custom.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Other measurements\n");
    for (scenario, kind) in custom {
        let _ = writeln!(md, "### `{}`\n\n{}\n", scenario.name, scenario.title);
        let ours = runs_of(results, scenario.name, Target::Ours);
        let reference = runs_of(results, scenario.name, Target::Reference);
        let all = ours.iter().chain(reference.iter());
        let skipped: Vec<&str> = all.clone().filter_map(|r| r.skipped.as_deref()).collect();
        if let Some(reason) = skipped.first() {
            let _ = writeln!(md, "{reason}\n");
            continue;
        }
        let cell = |runs: &[&RunResult], key: &str, unit: Unit| -> String {
            if runs.is_empty() {
                return "–".into();
            }
            if let Some(v) = median(runs, |r| r.metrics.get(key).copied()) {
                return unit.format(v);
            }
            // Figures a failed run got before failing are still worth seeing.
            let mut failed: Vec<f64> = runs
                .iter()
                .filter(|r| !r.ok)
                .filter_map(|r| r.metrics.get(key).copied())
                .collect();
            failed.sort_by(|a, b| a.total_cmp(b));
            match failed.get(failed.len() / 2) {
                Some(v) => format!("{} (failed run)", unit.format(*v)),
                None if runs.iter().all(|r| !r.ok) => "FAILED".into(),
                None => "n/a".into(),
            }
        };
        if has_ref {
            let _ = writeln!(md, "| Figure | Ours | Reference | Ours / reference |");
            let _ = writeln!(md, "|---|---:|---:|---:|");
        } else {
            let _ = writeln!(md, "| Figure | Ours |");
            let _ = writeln!(md, "|---|---:|");
        }
        for (key, label, unit) in kind.figures() {
            let a = cell(&ours, key, *unit);
            if has_ref {
                let b = cell(&reference, key, *unit);
                let ratio = match (
                    median(&ours, |r| r.metrics.get(*key).copied()),
                    median(&reference, |r| r.metrics.get(*key).copied()),
                ) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "–".into(),
                };
                let _ = writeln!(md, "| {label} | {a} | {b} | {ratio} |");
            } else {
                let _ = writeln!(md, "| {label} | {a} |");
            }
        }
        md.push('\n');
        for run in all {
            for note in &run.notes {
                let _ = writeln!(
                    md,
                    "- {:?} (round {}): {}",
                    run.target,
                    run.round,
                    note.replace('\n', " ")
                );
            }
        }
        md.push('\n');
    }
}

/// Response of a V2 frame read: `(frame type, data)`.
pub type Frame = (u32, Vec<u8>);

/// Reads one V2 frame: `[u32 size][u32 frame type][data]`, sizes big-endian.
pub fn read_frame(stream: &mut impl Read) -> Result<Frame> {
    let mut head = [0u8; 8];
    stream
        .read_exact(&mut head)
        .context("reading frame header")?;
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if !(4..=16 << 20).contains(&size) {
        bail!("bad frame size {size}");
    }
    let mut data = vec![0u8; size - 4];
    stream.read_exact(&mut data).context("reading frame body")?;
    Ok((kind, data))
}
