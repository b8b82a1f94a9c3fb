//! The `cluster` scenario: one nsqlookupd and N nsqd, each nsqd in a
//! network namespace of its own (so each has its own address, as on
//! separate hosts, and broadcasts it), loadgen publishing to every nsqd and
//! consuming from whatever nsqlookupd lists (`--lookupd-http-address`).
//! The same load runs against 3 nsqd and against 1, on our binaries and on
//! the reference's, and the report gets a small "3 nsqd vs 1 nsqd" table.
//!
//! It does not fit `runner` (one broker on loopback per run), so it runs
//! after the other scenarios, writes `cluster.json` and appends its section
//! to `report.md`. Without permission to create network namespaces (not
//! root, no iproute2) it is skipped with a note, not failed.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nsq_netns::{netns_unavailable, Netns};
use serde::Serialize;
use serde_json::Value;

use crate::runner::{children_cpu, http, proc_usage, Env, Target};

/// Scenario name (`--only cluster`).
pub const NAME: &str = "cluster";

/// One line for `--list`.
pub const TITLE: &str = "3 nsqd (one network namespace each) + nsqlookupd vs 1 nsqd: MPUB 200 x 200 B to every nsqd, consumers found via /lookup";

/// Topic and channel of the load (created on every nsqd before it starts).
const TOPIC: &str = "perf";
const CHANNEL: &str = "perf";

/// nsqd ports inside each namespace (every namespace has its own ports).
const NSQD_TCP_PORT: u16 = 4150;
const NSQD_HTTP_PORT: u16 = 4151;

/// How long a daemon may take to answer /ping, and lookupd to list every
/// nsqd for the topic.
const STARTUP: Duration = Duration::from_secs(15);

/// What `main` passes in.
#[derive(Debug)]
pub struct Options<'a> {
    /// Our nsqd; our nsqlookupd is expected next to it.
    pub ours: &'a Path,
    /// The reference nsqd; its nsqlookupd is expected next to it.
    pub reference: Option<&'a Path>,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Runs per (setup, broker); figures are medians.
    pub rounds: usize,
}

/// Whether `--only` selects this scenario (all do when it is empty).
pub fn selected(only: &[String]) -> bool {
    only.is_empty() || only.iter().any(|n| n == NAME)
}

/// One setup measured.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// Row label and file-name part.
    label: &'static str,
    /// nsqd processes (one namespace each).
    nsqd: u8,
    /// Extra flags for our nsqd only.
    ours_flags: &'static [&'static str],
}

/// The setups, in report order. Our nsqd runs one shard per CPU by
/// default; with three of them on two cores that is six busy shard
/// threads, so the 3-nsqd setup is also measured with `--shards=1` each
/// (the number of threads a Go nsqd's work mostly runs on is not fixed,
/// so the reference gets no such flag).
const SETUPS: [Setup; 3] = [
    Setup {
        label: "1 nsqd",
        nsqd: 1,
        ours_flags: &[],
    },
    Setup {
        label: "3 nsqd",
        nsqd: 3,
        ours_flags: &[],
    },
    Setup {
        label: "3 nsqd, ours --shards=1",
        nsqd: 3,
        ours_flags: &["--shards=1"],
    },
];

/// loadgen's load, the same for every setup: producers are spread over the
/// nsqd given, `--consumers` is per channel per nsqd found.
const LOAD: &[&str] = &[
    "pubsub",
    "--topic=perf",
    "--channel=perf",
    "--size=200",
    "--batch=200",
    "--producers=3",
    "--consumers=2",
    "--max-backlog=100000",
];

/// One run of one setup on one broker.
#[derive(Debug, Clone, Serialize)]
struct ClusterRun {
    setup: &'static str,
    nsqd: u8,
    target: Target,
    round: usize,
    ok: bool,
    error: Option<String>,
    /// nsqd loadgen's discovery found (`broadcast_address:tcp_port`).
    discovered: Vec<String>,
    pub_msgs_per_sec: Option<f64>,
    sub_msgs_per_sec: Option<f64>,
    e2e_p99_ns: Option<f64>,
    /// CPU of every nsqd together, s (whole run, warm-up and drain too).
    nsqd_cpu_s: Option<f64>,
    /// Sum of the nsqd processes' peak RSS, bytes.
    nsqd_peak_rss: Option<u64>,
    loadgen_cpu_s: f64,
    /// loadgen's JSON summary.
    summary: Value,
}

/// Runs the scenario if the machine allows it; writes `cluster.json`,
/// appends the section to `report.md` in `out`. Ok(false) when a run
/// failed; a skip is Ok(true).
pub fn run(env: &Env, opts: &Options<'_>, out: &Path) -> Result<bool> {
    let mut targets = vec![(Target::Ours, opts.ours.to_path_buf())];
    if let Some(reference) = opts.reference {
        targets.push((Target::Reference, reference.to_path_buf()));
    }
    let mut notes = Vec::new();
    let mut runs = Vec::new();
    match netns_unavailable() {
        Some(reason) => {
            let note = format!("skipped: {reason} (needs root and iproute2)");
            eprintln!("perf: {NAME} {note}");
            notes.push(note);
        }
        None => {
            // Each broker's nsqlookupd sits next to its nsqd.
            targets.retain(|(target, nsqd)| {
                let lookupd = lookupd_next_to(nsqd);
                if lookupd.is_file() {
                    return true;
                }
                let note = format!(
                    "{target:?} skipped: no nsqlookupd next to its nsqd ({})",
                    lookupd.display()
                );
                eprintln!("perf: {NAME} {note}");
                notes.push(note);
                false
            });
            for round in 0..opts.rounds {
                for (i, setup) in SETUPS.iter().enumerate() {
                    let mut order = targets.clone();
                    if (round + i) % 2 == 1 {
                        order.reverse();
                    }
                    for (target, nsqd) in &order {
                        if *target == Target::Reference && !setup.ours_flags.is_empty() {
                            continue; // same as the plain 3-nsqd run for it
                        }
                        eprintln!(
                            "perf: round {round} {NAME} ({}) on {target:?} ...",
                            setup.label
                        );
                        let run = run_one(env, opts, setup, *target, nsqd, round);
                        match &run.error {
                            None => eprintln!("perf:   ok"),
                            Some(e) => eprintln!("perf:   FAILED: {e}"),
                        }
                        runs.push(run);
                    }
                }
            }
        }
    }
    fs::write(
        out.join("cluster.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "notes": notes, "runs": runs }))?,
    )?;
    let section = markdown(&runs, &notes, opts.reference.is_some());
    let report = out.join("report.md");
    let mut md = fs::read_to_string(&report).unwrap_or_default();
    md.push_str(&section);
    fs::write(&report, md).with_context(|| format!("writing {}", report.display()))?;
    Ok(runs.iter().all(|r| r.ok))
}

fn lookupd_next_to(nsqd: &Path) -> PathBuf {
    nsqd.with_file_name("nsqlookupd")
}

/// Runs one setup on one broker; failures come back in the result.
fn run_one(
    env: &Env,
    opts: &Options<'_>,
    setup: &Setup,
    target: Target,
    nsqd: &Path,
    round: usize,
) -> ClusterRun {
    let mut run = ClusterRun {
        setup: setup.label,
        nsqd: setup.nsqd,
        target,
        round,
        ok: false,
        error: None,
        discovered: Vec::new(),
        pub_msgs_per_sec: None,
        sub_msgs_per_sec: None,
        e2e_p99_ns: None,
        nsqd_cpu_s: None,
        nsqd_peak_rss: None,
        loadgen_cpu_s: 0.0,
        summary: Value::Null,
    };
    if let Err(err) = run_inner(env, opts, setup, target, nsqd, &mut run) {
        run.error = Some(format!("{err:#}"));
    }
    run
}

fn run_inner(
    env: &Env,
    opts: &Options<'_>,
    setup: &Setup,
    target: Target,
    nsqd_bin: &Path,
    run: &mut ClusterRun,
) -> Result<()> {
    let tag = format!(
        "{NAME}-{}nsqd{}-{target:?}-{}",
        setup.nsqd,
        if setup.ours_flags.is_empty() {
            ""
        } else {
            "-s1"
        },
        run.round
    );
    let mut flags: Vec<String> = vec!["--mem-queue-size=1000000".into()];
    if target == Target::Ours {
        flags.extend(setup.ours_flags.iter().map(|f| f.to_string()));
        flags.extend(env.ours_extra.iter().cloned());
    }
    let cluster = Cluster::start(env, &tag, nsqd_bin, setup.nsqd, &flags)?;
    let limit = opts.duration + opts.warmup + Duration::from_secs(60);
    let mut args: Vec<String> = LOAD.iter().map(|s| s.to_string()).collect();
    args.extend([
        format!("--duration={}s", opts.duration.as_secs_f64()),
        format!("--warmup={}s", opts.warmup.as_secs_f64()),
        format!("--nsqd-tcp-address={}", cluster.nsqd_tcp().join(",")),
        format!("--lookupd-http-address={}", cluster.lookupd_http),
        "--json".into(),
        "--no-progress".into(),
        format!("--deadline={}s", limit.as_secs()),
    ]);
    let cpu_before = children_cpu();
    let loadgen = crate::runner::run_loadgen(&env.loadgen, &args, limit + Duration::from_secs(15));
    run.loadgen_cpu_s = children_cpu() - cpu_before;
    let (cpu, rss) = cluster.nsqd_usage();
    run.nsqd_cpu_s = cpu;
    run.nsqd_peak_rss = rss;
    drop(cluster);
    let (summary, success) = loadgen?;
    run.discovered = summary["discovery"]["nsqd"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    run.pub_msgs_per_sec = summary["publish"]["msgs_per_sec"].as_f64();
    run.sub_msgs_per_sec = summary["consume"]["msgs_per_sec"].as_f64();
    run.e2e_p99_ns = summary["consume"]["latency"]["p99_ns"].as_f64();
    run.summary = summary;
    if !success || run.summary["ok"] != true {
        let errors: Vec<&str> = run.summary["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).take(2).collect())
            .unwrap_or_default();
        let total = &run.summary["integrity"]["total"];
        bail!(
            "loadgen failed: {} (integrity: missing {} corrupted {} of {})",
            errors.join("; "),
            total["missing"],
            total["corrupted"],
            total["sent"]
        );
    }
    if run.discovered.len() != usize::from(setup.nsqd) {
        bail!(
            "loadgen discovered {} nsqd, expected {}: {:?}",
            run.discovered.len(),
            setup.nsqd,
            run.discovered
        );
    }
    run.ok = true;
    Ok(())
}

// ---------------------------------------------------------------------------
// The cluster: namespaces, nsqlookupd, nsqd
// ---------------------------------------------------------------------------

/// A started process (killed on drop) and the data directory it owns.
struct Proc {
    child: Child,
    log: PathBuf,
    data_dir: Option<PathBuf>,
}

impl Proc {
    fn spawn(argv: &[String], log: &Path, data_dir: Option<PathBuf>) -> Result<Proc> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| anyhow!("empty command line"))?;
        let log_file = fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(Proc {
            child,
            log: log.to_path_buf(),
            data_dir,
        })
    }

    /// Fails if the process has exited (naming its log).
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("exited at startup ({status}); log {}", self.log.display());
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// nsqlookupd in this namespace and N nsqd, one per namespace. Fields drop
/// in order: the processes go before their namespaces are deleted.
struct Cluster {
    nsqd: Vec<(Proc, String)>,
    _lookupd: Proc,
    /// nsqlookupd's HTTP address, for loadgen (loopback).
    lookupd_http: SocketAddr,
    _netns: Netns,
}

impl Cluster {
    /// Starts everything, creates the topic and channel on every nsqd and
    /// waits until nsqlookupd lists each of them for the topic.
    fn start(
        env: &Env,
        tag: &str,
        nsqd_bin: &Path,
        count: u8,
        flags: &[String],
    ) -> Result<Cluster> {
        // 10.201.N.0/24 and `nsqpf` names: apart from the test's hosts.
        let netns = Netns::create("nsqpf", 201, count)?;
        // nsqd in namespace i reach this namespace's address on link 0
        // through their default route.
        let lookupd_tcp = SocketAddr::new(netns.root_addr(0).parse()?, free_port("0.0.0.0")?);
        let lookupd_http = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")?));
        let lookupd_bin = lookupd_next_to(nsqd_bin);
        let mut lookupd = Proc::spawn(
            &[
                lookupd_bin.display().to_string(),
                format!("--tcp-address={lookupd_tcp}"),
                format!("--http-address={lookupd_http}"),
                "--broadcast-address=127.0.0.1".into(),
            ],
            &env.log_dir.join(format!("{tag}-nsqlookupd.log")),
            None,
        )?;
        wait_ping(&mut lookupd, lookupd_http, None).context("nsqlookupd")?;
        let mut nsqd = Vec::new();
        for i in 0..count {
            let host = netns.host_addr(i);
            let tcp: SocketAddr = format!("{host}:{NSQD_TCP_PORT}").parse()?;
            let http_addr: SocketAddr = format!("{host}:{NSQD_HTTP_PORT}").parse()?;
            let data_dir = std::env::temp_dir()
                .join(format!("nsq-perf-{NAME}-{}-{tag}-{i}", std::process::id()));
            fs::create_dir_all(&data_dir)?;
            let mut argv = vec![
                "ip".to_string(),
                "netns".into(),
                "exec".into(),
                netns.name(i).to_string(),
                nsqd_bin.display().to_string(),
                format!("--tcp-address={tcp}"),
                format!("--http-address={http_addr}"),
                "--https-address=127.0.0.1:0".into(),
                format!("--data-path={}", data_dir.display()),
                format!("--broadcast-address={host}"),
                format!("--lookupd-tcp-address={lookupd_tcp}"),
            ];
            argv.extend(flags.iter().cloned());
            let log = env.log_dir.join(format!("{tag}-nsqd{i}.log"));
            let mut proc = Proc::spawn(&argv, &log, Some(data_dir))?;
            wait_ping(&mut proc, http_addr, Some(tcp)).with_context(|| format!("nsqd {i}"))?;
            for path in [
                format!("/topic/create?topic={TOPIC}"),
                format!("/channel/create?topic={TOPIC}&channel={CHANNEL}"),
            ] {
                let (status, body) = http(http_addr, "POST", &path)?;
                if status != 200 {
                    bail!("nsqd {i}: POST {path}: {status} {body}");
                }
            }
            nsqd.push((proc, tcp.to_string()));
        }
        let cluster = Cluster {
            nsqd,
            _lookupd: lookupd,
            lookupd_http,
            _netns: netns,
        };
        cluster.wait_registered(usize::from(count))?;
        Ok(cluster)
    }

    /// The nsqd TCP addresses, for producers.
    fn nsqd_tcp(&self) -> Vec<String> {
        self.nsqd.iter().map(|(_, a)| a.clone()).collect()
    }

    /// Waits until nsqlookupd lists `count` producers for the topic.
    fn wait_registered(&self, count: usize) -> Result<()> {
        let deadline = Instant::now() + STARTUP;
        let path = format!("/lookup?topic={TOPIC}");
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok((200, body)) = http(self.lookupd_http, "GET", &path) {
                let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                // v1.x shape, or the older wrapper.
                let producers = doc["producers"]
                    .as_array()
                    .or_else(|| doc["data"]["producers"].as_array())
                    .map_or(0, Vec::len);
                if producers == count {
                    return Ok(());
                }
                last = body;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("nsqlookupd did not list {count} nsqd for {TOPIC} within {STARTUP:?}: {last}")
    }

    /// (CPU s, peak RSS bytes) of every nsqd together.
    fn nsqd_usage(&self) -> (Option<f64>, Option<u64>) {
        let usage: Vec<_> = self
            .nsqd
            .iter()
            .map(|(p, _)| {
                let (rss, cpu) = proc_usage(p.child.id());
                (cpu, rss)
            })
            .collect();
        let cpu = usage.iter().map(|u| u.0).sum::<Option<f64>>();
        let rss = usage.iter().map(|u| u.1).sum::<Option<u64>>();
        (cpu, rss)
    }
}

/// A port free on `ip` now (the daemon binds it right after).
fn free_port(ip: &str) -> Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Waits for `/ping` (and the TCP port, if given) to answer.
fn wait_ping(proc: &mut Proc, http_addr: SocketAddr, tcp: Option<SocketAddr>) -> Result<()> {
    let deadline = Instant::now() + STARTUP;
    loop {
        proc.check_alive()?;
        if matches!(http(http_addr, "GET", "/ping"), Ok((200, _)))
            && tcp
                .is_none_or(|t| TcpStream::connect_timeout(&t, Duration::from_millis(500)).is_ok())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no answer on {http_addr} within {STARTUP:?}; log {}",
                proc.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// Median of the successful runs' values.
fn median(runs: &[&ClusterRun], f: impl Fn(&ClusterRun) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().filter(|r| r.ok).filter_map(|r| f(r)).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Reads a figure from a run.
type Getter = fn(&ClusterRun) -> Option<f64>;
/// Formats a figure.
type Format = fn(f64) -> String;
/// A table row: label, getter, formatter.
type FigureRow = (&'static str, Getter, Format);

/// The figures of the table: label, getter, formatter.
const FIGURES: [FigureRow; 4] = [
    (
        "PUB msg/s",
        |r| r.pub_msgs_per_sec,
        |v| format!("{:.0}k", v / 1e3),
    ),
    (
        "SUB msg/s",
        |r| r.sub_msgs_per_sec,
        |v| format!("{:.0}k", v / 1e3),
    ),
    (
        "end-to-end p99",
        |r| r.e2e_p99_ns,
        |v| format!("{:.2} ms", v / 1e6),
    ),
    ("nsqd CPU s (all)", |r| r.nsqd_cpu_s, |v| format!("{v:.1}")),
];

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// The runs of one setup on one broker.
fn of_setup<'a>(runs: &'a [ClusterRun], label: &str, target: Target) -> Vec<&'a ClusterRun> {
    runs.iter()
        .filter(|r| r.setup == label && r.target == target)
        .collect()
}

/// The report section.
fn markdown(runs: &[ClusterRun], notes: &[String], has_ref: bool) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Cluster: 3 nsqd vs 1 nsqd behind nsqlookupd (`{NAME}`)\n"
    );
    let _ = writeln!(
        md,
        "One nsqlookupd and N nsqd, each nsqd in a network namespace of its own \
         (veth pair, own address, `--broadcast-address` that address, \
         `--lookupd-tcp-address` the nsqlookupd, `--mem-queue-size=1000000`), \
         each broker with its own nsqlookupd. The topic and channel are created \
         on every nsqd and the run starts once nsqlookupd lists all of them. \
         loadgen `{}`: the 3 producers are spread over the nsqd given, consumers \
         find the nsqd through `/lookup` (`--lookupd-http-address`, 2 connections \
         per nsqd found, as an NSQ consumer connects to every nsqd) and every \
         message is accounted for once, from the nsqd it was published to. So \
         1 nsqd serves 3 producer and 2 consumer connections, and each of 3 nsqd \
         serves 1 and 2. 1 nsqd runs in a namespace too, so both setups cross \
         veth.\n",
        LOAD.join(" ")
    );
    let _ = writeln!(
        md,
        "This machine's cores are shared by every nsqd and loadgen, so 3 nsqd \
         cannot add CPU: the figures show that discovery finds every nsqd and \
         what aggregate rate the same cores reach split over 3 brokers (more \
         processes, connections and context switches), not horizontal scaling. \
         Our nsqd starts one shard per CPU by default, so 3 of them run 6 shard \
         threads on 2 cores; the `--shards=1` row gives each one shard.\n"
    );
    if let (Some(one_shard), Some(default)) = (
        median(&of_setup(runs, SETUPS[2].label, Target::Ours), |r| {
            r.pub_msgs_per_sec
        }),
        median(&of_setup(runs, SETUPS[1].label, Target::Ours), |r| {
            r.pub_msgs_per_sec
        }),
    ) {
        let verdict = if one_shard > default {
            "so one shard per nsqd is the better setting when 3 share 2 cores"
        } else {
            "so the plain 3-nsqd row (default shards) is the comparison to read"
        };
        let _ = writeln!(
            md,
            "With `--shards=1` our 3 nsqd published {:.0}k msg/s against {:.0}k with \
             the default shards ({:.2}×), {verdict}.\n",
            one_shard / 1e3,
            default / 1e3,
            one_shard / default
        );
    }
    for note in notes {
        let _ = writeln!(md, "- {note}");
    }
    if !notes.is_empty() {
        md.push('\n');
    }
    if runs.is_empty() {
        return md;
    }
    let of = |label: &str, target: Target| of_setup(runs, label, target);
    if has_ref {
        let _ = writeln!(
            md,
            "| Setup | Figure | Ours | Reference | Ours / reference |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
    } else {
        let _ = writeln!(md, "| Setup | Figure | Ours |");
        let _ = writeln!(md, "|---|---|---:|");
    }
    let cell = |rs: &[&ClusterRun], get: Getter, fmt: Format| -> String {
        if rs.is_empty() {
            "–".into()
        } else if rs.iter().all(|r| !r.ok) {
            "FAILED".into()
        } else {
            median(rs, get).map_or("n/a".into(), fmt)
        }
    };
    for setup in &SETUPS {
        let ours = of(setup.label, Target::Ours);
        let reference = of(setup.label, Target::Reference);
        if ours.is_empty() && reference.is_empty() {
            continue;
        }
        let mut figures: Vec<FigureRow> = FIGURES.to_vec();
        figures.push((
            "nsqd discovered",
            |r| Some(r.discovered.len() as f64),
            |v| format!("{v:.0}"),
        ));
        let last = figures.len() - 1;
        for (i, (label, get, fmt)) in figures.into_iter().enumerate() {
            let name = if i == 0 { setup.label } else { "" };
            if has_ref {
                // A ratio of nsqd counts means nothing.
                let r = if i == last {
                    String::new()
                } else {
                    ratio(median(&ours, get), median(&reference, get))
                };
                let _ = writeln!(
                    md,
                    "| {name} | {label} | {} | {} | {r} |",
                    cell(&ours, get, fmt),
                    cell(&reference, get, fmt),
                );
            } else {
                let _ = writeln!(md, "| {name} | {label} | {} |", cell(&ours, get, fmt));
            }
        }
    }
    // 3 nsqd total / 1 nsqd, per broker.
    let one_ours = of(SETUPS[0].label, Target::Ours);
    let one_ref = of(SETUPS[0].label, Target::Reference);
    for setup in &SETUPS[1..] {
        let ours = of(setup.label, Target::Ours);
        let reference = if setup.ours_flags.is_empty() {
            of(setup.label, Target::Reference)
        } else {
            Vec::new()
        };
        for (i, (label, get, _)) in FIGURES[..2].iter().enumerate() {
            let name = if i == 0 {
                format!("{} total / 1 nsqd", setup.label)
            } else {
                String::new()
            };
            let ours_ratio = ratio(median(&ours, *get), median(&one_ours, *get));
            if has_ref {
                let ref_ratio = if reference.is_empty() {
                    "–".into()
                } else {
                    ratio(median(&reference, *get), median(&one_ref, *get))
                };
                let _ = writeln!(md, "| {name} | {label} | {ours_ratio} | {ref_ratio} | |");
            } else {
                let _ = writeln!(md, "| {name} | {label} | {ours_ratio} |");
            }
        }
    }
    let _ = writeln!(
        md,
        "\nRates are totals over every nsqd inside the measured window (medians \
         over rounds); nsqd CPU is summed over the nsqd processes for the whole \
         run. Raw loadgen summaries: `cluster.json`.\n"
    );
    let failures: Vec<&ClusterRun> = runs.iter().filter(|r| !r.ok).collect();
    for run in failures {
        let _ = writeln!(
            md,
            "- FAILED `{NAME}` {} on {:?} (round {}): {}",
            run.setup,
            run.target,
            run.round,
            run.error.as_deref().unwrap_or("unknown").replace('\n', " ")
        );
    }
    md
}
