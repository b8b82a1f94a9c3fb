//! `perf`: runs the named scenarios of issue 3 against our nsqd and,
//! optionally, a reference broker (A/B, alternating order), and writes a
//! Markdown report with SVG plots and the raw results.
//!
//! ```text
//! cargo run --release -p nsq-perf -- --nsqd target/release/nsqd \
//!     --loadgen target/release/loadgen [--reference /path/to/nsqd] [--out DIR]
//! ```
//!
//! # Layout
//!
//! * `scenario`: the scenarios, their broker flags and loadgen steps.
//! * `runner`: one scenario on one broker (fresh process, RSS, CPU).
//! * `report`: the Markdown report; `plot`: the SVGs.

#![allow(clippy::print_stdout)]

mod bench_nsq;
mod cluster;
mod custom;
mod edges;
mod plot;
mod report;
mod runner;
mod scenario;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use report::Header;
use runner::{Env, RunResult, Target};

const USAGE: &str = "\
perf: end-to-end scenarios against our nsqd and an optional reference broker

usage: perf --nsqd PATH --loadgen PATH [options]

  --nsqd PATH          our broker binary (e.g. target/release/nsqd)
  --loadgen PATH       load generator (e.g. target/release/loadgen)
  --reference PATH     a reference nsqd (e.g. the original Go nsqd) for A/B runs
  --out DIR            report directory [perf/reports/<UTC date>]
  --duration SECS      measured seconds per timed step [5]
  --warmup SECS        warm-up seconds before it [1]
  --rounds N           A/B rounds; figures are medians [1]
  --only A,B           run only these scenarios
  --nsqd-arg FLAG      extra flag for our broker only, repeatable (e.g. --shards=2)
  --nsq-bench-bin DIR  where NSQ's bench_writer/bench_reader are (bench_nsq);
                       else env NSQ_REFERENCE_BIN, else --reference's directory.
                       They run for 10 s each (bench.sh), or --duration if given
  --idle-conns N       connections idle_conns opens [5000]
  --list               list the scenarios and exit

exit status: 0 when every scenario passed on every broker, 1 otherwise
";

#[derive(Debug)]
struct Args {
    nsqd: PathBuf,
    loadgen: PathBuf,
    reference: Option<PathBuf>,
    out: Option<PathBuf>,
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    only: Vec<String>,
    ours_extra: Vec<String>,
    list: bool,
    nsq_bench_bin: Option<PathBuf>,
    bench_runfor: Duration,
    idle_conns: usize,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = std::env::args().skip(1);
    let mut nsqd = None;
    let mut loadgen = None;
    let mut parsed = Args {
        nsqd: PathBuf::new(),
        loadgen: PathBuf::new(),
        reference: None,
        out: None,
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        rounds: 1,
        only: Vec::new(),
        ours_extra: Vec::new(),
        list: false,
        nsq_bench_bin: None,
        // bench.sh's --runfor; an explicit --duration replaces it.
        bench_runfor: Duration::from_secs(10),
        idle_conns: 5000,
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--list" => {
                parsed.list = true;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| anyhow!("{name} needs a value"))?,
        };
        let secs = |v: &str| -> Result<Duration> {
            let s: f64 = v
                .trim_end_matches('s')
                .parse()
                .with_context(|| format!("{name}={v}"))?;
            if !s.is_finite() || s <= 0.0 {
                bail!("{name} must be positive");
            }
            Ok(Duration::from_secs_f64(s))
        };
        match name.as_str() {
            "--nsqd" => nsqd = Some(PathBuf::from(value)),
            "--loadgen" => loadgen = Some(PathBuf::from(value)),
            "--reference" => parsed.reference = Some(PathBuf::from(value)),
            "--out" => parsed.out = Some(PathBuf::from(value)),
            "--duration" => {
                parsed.duration = secs(&value)?;
                parsed.bench_runfor = parsed.duration;
            }
            "--warmup" => parsed.warmup = secs(&value)?,
            "--rounds" => {
                parsed.rounds = value.parse().with_context(|| format!("--rounds={value}"))?
            }
            "--only" => parsed.only.extend(value.split(',').map(String::from)),
            "--nsqd-arg" => parsed.ours_extra.push(value),
            "--nsq-bench-bin" => parsed.nsq_bench_bin = Some(PathBuf::from(value)),
            "--idle-conns" => {
                parsed.idle_conns = value
                    .parse()
                    .with_context(|| format!("--idle-conns={value}"))?
            }
            other => bail!("unknown option {other} (see --help)"),
        }
    }
    if parsed.list {
        return Ok(Some(parsed));
    }
    parsed.nsqd = nsqd.ok_or_else(|| anyhow!("--nsqd is required"))?;
    parsed.loadgen = loadgen.ok_or_else(|| anyhow!("--loadgen is required"))?;
    if parsed.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(Some(parsed))
}

/// Output of a command, trimmed; empty on failure.
fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Today's date in UTC, YYYY-MM-DD (civil-from-days, no date crate).
fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn version_line(bin: &Path) -> String {
    let out = command_output(&bin.to_string_lossy(), &["--version"]);
    let first = out.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        bin.display().to_string()
    } else {
        format!("{} ({first})", bin.display())
    }
}

fn header(args: &Args) -> Header {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: f64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !command_output("git", &["status", "--porcelain"]).is_empty();
    Header {
        date: utc_date(),
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_gib: mem_kib / (1024.0 * 1024.0),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        load_at_start: fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        commit: if commit.is_empty() {
            "unknown".into()
        } else if dirty {
            format!("{commit}+dirty")
        } else {
            commit
        },
        ours: version_line(&args.nsqd),
        reference: args.reference.as_deref().map(version_line),
        command: std::iter::once("perf".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        rounds: args.rounds,
    }
}

fn run(args: &Args) -> Result<bool> {
    let certs = std::env::temp_dir().join(format!("nsq-perf-certs-{}", std::process::id()));
    scenario::write_test_certs(&certs).context("making TLS test certificates")?;
    let mut scenarios = scenario::all(args.duration, args.warmup, &certs);
    if args.list {
        for s in &scenarios {
            println!("{:<14} {}", s.name, s.title);
        }
        println!("{:<14} {}", cluster::NAME, cluster::TITLE);
        return Ok(true);
    }
    if !args.only.is_empty() {
        for name in &args.only {
            if !scenarios.iter().any(|s| s.name == name) && name != cluster::NAME {
                bail!("unknown scenario {name} (see --list)");
            }
        }
        scenarios.retain(|s| args.only.iter().any(|n| n == s.name));
    }
    for (what, path) in [
        ("--nsqd", Some(&args.nsqd)),
        ("--loadgen", Some(&args.loadgen)),
        ("--reference", args.reference.as_ref()),
    ] {
        if let Some(path) = path {
            if !path.is_file() {
                bail!("{what}: {} is not a file", path.display());
            }
        }
    }
    let header = header(args);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("perf/reports").join(&header.date));
    // Broker logs stay out of the report directory (which is meant to be
    // committed); failures name their log file.
    let log_dir = std::env::temp_dir().join(format!("nsq-perf-logs-{}", std::process::id()));
    fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!("perf: broker logs in {}", log_dir.display());
    let env = Env {
        loadgen: args.loadgen.clone(),
        log_dir,
        ours_extra: args.ours_extra.clone(),
        nsq_bench_dir: bench_nsq::find_tools(
            args.nsq_bench_bin.as_deref(),
            args.reference.as_deref(),
        ),
        bench_runfor: args.bench_runfor,
        idle_conns: args.idle_conns,
    };
    // Generous per-step limit: a drain or a stalled broker must not hang us.
    let step_limit = args.duration + args.warmup + Duration::from_secs(60);
    let mut results: Vec<RunResult> = Vec::new();
    for round in 0..args.rounds {
        for (i, scenario) in scenarios.iter().enumerate() {
            let mut order = vec![(Target::Ours, args.nsqd.clone())];
            if let Some(reference) = &args.reference {
                order.push((Target::Reference, reference.clone()));
                if (round + i) % 2 == 1 {
                    order.reverse();
                }
            }
            for (target, bin) in order {
                eprintln!("perf: round {round} {} on {target:?} ...", scenario.name);
                let result = runner::run(&env, scenario, &bin, target, round, step_limit);
                match &result.error {
                    None => eprintln!("perf:   ok"),
                    Some(e) => eprintln!("perf:   FAILED: {e}"),
                }
                results.push(result);
            }
        }
    }
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "header": header,
            "results": results,
        }))?,
    )?;
    plot::throughput(&out.join("throughput.svg"), &scenarios, &results)?;
    plot::latency(&out.join("latency.svg"), &scenarios, &results)?;
    fs::write(
        out.join("report.md"),
        report::markdown(&header, &scenarios, &results),
    )?;
    // Several brokers per run: its own runner, section and cluster.json.
    let cluster_ok = !cluster::selected(&args.only) || {
        let opts = cluster::Options {
            ours: &args.nsqd,
            reference: args.reference.as_deref(),
            duration: args.duration,
            warmup: args.warmup,
            rounds: args.rounds,
        };
        cluster::run(&env, &opts, &out)?
    };
    println!(
        "perf: report written to {}",
        out.join("report.md").display()
    );
    Ok(results.iter().all(|r| r.ok) && cluster_ok)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("perf: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("perf: {err:#}");
            ExitCode::from(1)
        }
    }
}
