//! The load generator against our nsqd: a short pub/sub and a fan-out must
//! account for every message (sent == received, nothing missing or
//! corrupt). No timing assertions: throughput depends on the machine.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::{unique_name, TestNsqd};
use serde_json::Value;

/// `$LOADGEN_BIN`, else `<workspace>/target/debug/loadgen`.
fn loadgen_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LOADGEN_BIN") {
        return PathBuf::from(p);
    }
    nsq_tests::workspace_root()
        .join("target")
        .join("debug")
        .join("loadgen")
}

/// Runs loadgen with `--json` against `nsqd` and returns its summary.
fn run_loadgen(nsqd: &TestNsqd, args: &[&str]) -> Result<Value> {
    let bin = loadgen_bin();
    if !bin.exists() {
        bail!(
            "loadgen binary not found at {} (build it with `cargo build -p nsq-loadgen`, or set LOADGEN_BIN)",
            bin.display()
        );
    }
    let output = Command::new(&bin)
        .args(args)
        .arg(format!("--nsqd-tcp-address={}", nsqd.tcp_addr()))
        .args(["--json", "--no-progress", "--deadline=60s"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "loadgen exited {} without a JSON summary\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n--- nsqd stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            nsqd.stderr()
        )
    })?;
    ensure!(
        output.status.success() && summary["ok"] == true,
        "loadgen failed ({}): {summary:#}\n--- nsqd stderr ---\n{}",
        output.status,
        nsqd.stderr()
    );
    Ok(summary)
}

/// Checks the integrity block: every acknowledged message arrived on every
/// channel, none corrupt; returns the number sent per channel.
fn assert_all_accounted(summary: &Value, channels: u64) -> Result<u64> {
    let integrity = &summary["integrity"];
    let total = &integrity["total"];
    let published = integrity["published"].as_u64().context("published")?;
    ensure!(published > 0, "nothing was published: {summary:#}");
    ensure!(
        total["sent"].as_u64() == Some(published * channels),
        "each channel expects every published message: {integrity:#}"
    );
    ensure!(
        total["received"] == total["sent"],
        "sent != received: {integrity:#}"
    );
    ensure!(
        total["missing"] == 0 && total["corrupted"] == 0 && total["duplicated"] == 0,
        "lost, corrupt or duplicated messages: {integrity:#}"
    );
    ensure!(
        integrity["refused"] == 0 && integrity["unacknowledged"] == 0,
        "publishes refused or unacknowledged: {integrity:#}"
    );
    let streams = integrity["streams"].as_array().context("streams")?;
    ensure!(streams.len() as u64 == channels, "{integrity:#}");
    Ok(published)
}

/// MPUB at full speed, two producers and two consumers, across two shards.
#[test]
fn pubsub_accounts_for_every_message() -> Result<()> {
    let nsqd = TestNsqd::start(&["--shards=2"])?;
    let topic = unique_name("loadgen_pubsub");
    let summary = run_loadgen(
        &nsqd,
        &[
            "pubsub",
            &format!("--topic={topic}"),
            "--producers=2",
            "--consumers=2",
            "--size=64",
            "--batch=50",
            "--count=2000",
            "--max-backlog=20000",
        ],
    )?;
    let published = assert_all_accounted(&summary, 1)?;
    ensure!(published == 4000, "2 producers x 2000: {summary:#}");
    Ok(())
}

/// Plain PUB at a fixed rate (open loop) fanned out to three channels.
#[test]
fn fanout_open_loop_accounts_for_every_message() -> Result<()> {
    let nsqd = TestNsqd::start(&["--shards=2"])?;
    let topic = unique_name("loadgen_fanout");
    let summary = run_loadgen(
        &nsqd,
        &[
            "fanout",
            &format!("--topic={topic}"),
            "--channels=3",
            "--producers=2",
            "--consumers=1",
            "--size=32",
            "--batch=1",
            "--rate=2000",
            "--warmup=0.2s",
            "--duration=1s",
        ],
    )?;
    assert_all_accounted(&summary, 3)?;
    ensure!(
        summary["publish"]["latency"]["count"].as_u64() > Some(0)
            && summary["consume"]["latency"]["count"].as_u64() > Some(0),
        "latency samples recorded: {summary:#}"
    );
    Ok(())
}

/// A backlog published first is drained by a separate `sub` run that stops
/// once it has the expected count.
#[test]
fn sub_drains_a_backlog() -> Result<()> {
    let nsqd = TestNsqd::start(&["--shards=2"])?;
    let topic = unique_name("loadgen_drain");
    // Create the channel first so the backlog is queued in it.
    let (status, body) = nsqd.http_post(&format!("/topic/create?topic={topic}"), b"")?;
    ensure!(status == 200, "topic create: {status} {body}");
    let (status, body) =
        nsqd.http_post(&format!("/channel/create?topic={topic}&channel=drain"), b"")?;
    ensure!(status == 200, "channel create: {status} {body}");
    let published = run_loadgen(
        &nsqd,
        &[
            "pub",
            &format!("--topic={topic}"),
            "--producers=2",
            "--batch=100",
            "--count=1500",
        ],
    )?;
    ensure!(
        published["publish"]["messages"] == 3000,
        "published: {published:#}"
    );
    let drained = run_loadgen(
        &nsqd,
        &[
            "sub",
            &format!("--topic={topic}"),
            "--channel=drain",
            "--consumers=2",
            "--expect=3000",
        ],
    )?;
    let total = &drained["integrity"]["total"];
    ensure!(
        total["received"] == 3000 && total["missing"] == 0 && total["corrupted"] == 0,
        "drain: {drained:#}"
    );
    Ok(())
}
