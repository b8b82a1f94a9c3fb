//! `bench_nsq`: NSQ's own `bench_writer` and `bench_reader`, run the way
//! NSQ's bench.sh runs them, so our figures can be set next to the numbers
//! people get from NSQ's tooling. The broker runs with
//! `--mem-queue-size=1000000` and topic `sub_bench` / channel `ch` are
//! created over HTTP first (the scenario's `precreate`); the writer
//! publishes for `runfor`, then the reader consumes for `runfor`, and the
//! broker is SIGKILLed (dropping [`Broker`]), as bench.sh does.
//!
//! `runfor` is bench.sh's 10 s unless perf's `--duration` is given, which
//! then sets it too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::custom::{dir_size, run_bounded, status_bytes};
use crate::runner::{proc_usage, Broker, Env, RunResult};

/// Where the bench tools are: `flag` (`--nsq-bench-bin`), else env
/// `NSQ_REFERENCE_BIN`, else the directory of `reference`, whichever holds
/// both `bench_writer` and `bench_reader`. A path to a file means its
/// directory.
pub fn find_tools(flag: Option<&Path>, reference: Option<&Path>) -> Option<PathBuf> {
    let has_tools =
        |dir: &Path| dir.join("bench_writer").is_file() && dir.join("bench_reader").is_file();
    let as_dir = |p: &Path| -> PathBuf {
        if p.is_file() {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p.to_path_buf()
        }
    };
    if let Some(flag) = flag {
        let dir = as_dir(flag);
        if has_tools(&dir) {
            return Some(dir);
        }
        eprintln!(
            "perf: --nsq-bench-bin {}: no bench_writer and bench_reader there",
            flag.display()
        );
        return None;
    }
    let env_dir = std::env::var_os("NSQ_REFERENCE_BIN").map(PathBuf::from);
    [env_dir, reference.map(as_dir)]
        .into_iter()
        .flatten()
        .map(|p| as_dir(&p))
        .find(|d| has_tools(d))
}

/// A bench tool's result line, e.g. `[bench_writer] ... duration:
/// 10.000428788s - 304.785mb/s - 1597951.482ops/s - 0.626us/op`.
struct BenchLine {
    ops_per_s: f64,
    duration_s: f64,
    line: String,
}

fn parse_line(output: &str) -> Option<BenchLine> {
    let line = output.lines().rev().find(|l| l.contains("ops/s"))?.trim();
    let mut ops = None;
    let mut duration = None;
    for part in line.split(" - ") {
        let part = part.trim();
        if let Some(v) = part.strip_suffix("ops/s") {
            ops = v.trim().parse::<f64>().ok();
        } else if let Some((_, d)) = part.split_once("duration: ") {
            // Go prints e.g. 10.000428788s; anything else falls back below.
            duration = d
                .trim()
                .strip_suffix('s')
                .and_then(|v| v.parse::<f64>().ok());
        }
    }
    Some(BenchLine {
        ops_per_s: ops?,
        duration_s: duration.unwrap_or(0.0),
        line: line.to_string(),
    })
}

/// Runs one tool against the broker; bounded to `runfor` plus a minute.
fn run_tool(dir: &Path, tool: &str, args: &[String], runfor: Duration) -> Result<BenchLine> {
    let bin = dir.join(tool);
    let (status, stdout, stderr) = run_bounded(
        Command::new(&bin).args(args),
        runfor + Duration::from_secs(60),
    )
    .with_context(|| format!("running {}", bin.display()))?;
    let output = format!("{stdout}\n{stderr}");
    let tail = || {
        output
            .trim()
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    if !status.success() {
        bail!("{tool} exited {status}: {}", tail());
    }
    parse_line(&output).ok_or_else(|| anyhow!("{tool}: no ops/s line in its output: {}", tail()))
}

/// The scenario: writer, then reader, with broker CPU sampled around each.
pub fn run(env: &Env, broker: &Broker, result: &mut RunResult) -> Result<()> {
    let dir = env
        .nsq_bench_dir
        .as_deref()
        .ok_or_else(|| anyhow!("bench tools not found"))?;
    let pid = broker.pid();
    let cpu = || {
        proc_usage(pid)
            .1
            .ok_or_else(|| anyhow!("broker CPU unreadable"))
    };
    let runfor = format!("--runfor={}s", env.bench_runfor.as_secs_f64());
    let addr = format!("--nsqd-tcp-address={}", broker.tcp);
    let cpu0 = cpu()?;
    let writer = run_tool(
        dir,
        "bench_writer",
        &[
            addr.clone(),
            "--size=200".into(),
            "--batch-size=200".into(),
            runfor.clone(),
        ],
        env.bench_runfor,
    )?;
    let cpu1 = cpu()?;
    let reader = run_tool(
        dir,
        "bench_reader",
        &[addr, "--size=200".into(), "--channel=ch".into(), runfor],
        env.bench_runfor,
    )?;
    let cpu2 = cpu()?;
    let m = &mut result.metrics;
    m.insert("pub_rate".into(), writer.ops_per_s);
    m.insert("sub_rate".into(), reader.ops_per_s);
    // Messages = rate × the tool's own duration (its ops/s is exactly that).
    for (key, line, spent) in [
        ("cpu_us_per_pub", &writer, cpu1 - cpu0),
        ("cpu_us_per_sub", &reader, cpu2 - cpu1),
    ] {
        let msgs = line.ops_per_s * line.duration_s;
        if msgs > 0.0 {
            m.insert(key.into(), spent / msgs * 1e6);
        }
    }
    if let Some(v) = status_bytes(pid, "VmHWM") {
        m.insert("peak_rss".into(), v as f64);
    }
    if let Some(v) = status_bytes(pid, "VmRSS") {
        m.insert("end_rss".into(), v as f64);
    }
    m.insert("data_dir".into(), dir_size(&broker.data_dir) as f64);
    result.notes.push(writer.line);
    result.notes.push(reader.line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_result_line() {
        let out = "noise\n2024/01/01 00:00:00 [bench_writer] duration: 10.000428788s - 304.785mb/s - 1597951.482ops/s - 0.626us/op\n";
        let line = parse_line(out).unwrap();
        assert!((line.ops_per_s - 1_597_951.482).abs() < 1e-6);
        assert!((line.duration_s - 10.000428788).abs() < 1e-9);
        assert!(parse_line("nothing here").is_none());
    }
}
