//! A drained backlog's memory goes back to the OS (issue 11): after a burst
//! is published and consumed, nsqd's anonymous memory returns near where it
//! started instead of staying at the burst's peak (`shard::tasks::trim`).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nsq_tests::{unique_name, wait_until, TestNsqd};

/// Messages in the burst and their size: 100 MB of bodies.
const MESSAGES: usize = 100_000;
const BODY: usize = 1_000;
const PER_MPUB: usize = 200;

/// `RssAnon` of `pid` in bytes.
fn anon_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .context("no RssAnon line")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

#[test]
fn a_drained_backlog_gives_its_memory_back() -> Result<()> {
    let nsqd = TestNsqd::start(&["--mem-queue-size=1000000"])?;
    let pid = nsqd.pid().context("nsqd not running")?;
    let topic = unique_name("burst");
    let (st, text) = nsqd.http_post(&format!("/topic/create?topic={topic}"), b"")?;
    ensure!(st == 200, "topic/create: {st} {text}");
    let (st, text) = nsqd.http_post(&format!("/channel/create?topic={topic}&channel=ch"), b"")?;
    ensure!(st == 200, "channel/create: {st} {text}");
    let before = anon_bytes(pid)?;

    let body = vec![b'm'; BODY];
    let batch: Vec<&[u8]> = vec![&body[..]; PER_MPUB];
    let mut producer = nsqd.connect()?;
    for _ in 0..MESSAGES / PER_MPUB {
        producer.mpub_ok(&topic, &batch)?;
    }
    let full = anon_bytes(pid)?;
    // The burst is really held in memory (else the test proves nothing).
    ensure!(
        full > before + (MESSAGES * BODY) as u64 * 3 / 4,
        "the burst should be in memory: {before} -> {full} bytes"
    );

    let mut consumer = nsqd.connect()?;
    consumer.sub_ok(&topic, "ch")?;
    consumer.rdy(2500)?;
    for _ in 0..MESSAGES {
        let msg = consumer.expect_message_skip_heartbeats()?;
        consumer.fin(&msg.id)?;
    }
    let depth = |nsqd: &TestNsqd| -> Result<(u64, u64)> {
        let ch = nsqd
            .channel_stats(&topic, "ch")?
            .context("channel missing")?;
        Ok((
            ch["depth"].as_u64().unwrap_or(u64::MAX),
            ch["in_flight_count"].as_u64().unwrap_or(u64::MAX),
        ))
    };
    wait_until(Duration::from_secs(30), "every message finished", || {
        Ok(depth(&nsqd)? == (0, 0))
    })?;
    let mut last = 0;
    wait_until(
        Duration::from_secs(30),
        "anonymous memory back near its level before the burst",
        || {
            last = anon_bytes(pid)?;
            Ok(last < before + 30 * 1024 * 1024)
        },
    )
    .with_context(|| format!("before {before}, full {full}, now {last} bytes"))?;
    drop(producer);
    Ok(())
}
