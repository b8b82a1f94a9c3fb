//! Lifecycle: ephemeral topics and channels, deletes, the memory-queue
//! bound, command-line flags, the data-path lock, and restarts. Ported from
//! nsqd's `nsqd_test.go` (v1.3.0) where a Go test exists.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::{consumer, run_nsqd_to_exit, unique_name, Frame, ShowFrame, TempDir, TestNsqd};
use serde_json::json;

fn gone(nsqd: &TestNsqd, what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    nsq_tests::wait_until(Duration::from_secs(10), what, &mut f).with_context(|| {
        format!(
            "stats: {}",
            nsqd.stats("").map(|s| s.to_string()).unwrap_or_default()
        )
    })
}

// ---------------------------------------------------------------------------
// Ephemeral topics and channels
// ---------------------------------------------------------------------------

/// An ephemeral channel is deleted when its last client leaves; the
/// (non-ephemeral) topic stays.
#[test]
fn ephemeral_channel_deleted_with_last_client() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("eph_ch");
    let c1 = consumer(nsqd.tcp_addr(), &topic, "ch#ephemeral", 0, json!({}))?;
    let c2 = consumer(nsqd.tcp_addr(), &topic, "ch#ephemeral", 0, json!({}))?;
    nsqd.wait_channel(&topic, "ch#ephemeral", "2 clients", |ch| {
        ch["client_count"] == 2
    })?;
    drop(c1);
    nsqd.wait_channel(&topic, "ch#ephemeral", "1 client left", |ch| {
        ch["client_count"] == 1
    })?;
    drop(c2);
    gone(&nsqd, "ephemeral channel removed", || {
        Ok(nsqd.channel_stats(&topic, "ch#ephemeral")?.is_none())
    })?;
    ensure!(
        nsqd.topic_stats(&topic)?.is_some(),
        "the non-ephemeral topic stays"
    );
    Ok(())
}

/// TestEphemeralTopicsAndChannels: an ephemeral topic is deleted when its
/// last channel goes.
#[test]
fn ephemeral_topic_deleted_with_last_channel() -> Result<()> {
    let nsqd = TestNsqd::start(&["--mem-queue-size=100"])?;
    let topic = format!("{}#ephemeral", unique_name("eph_t"));
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch1#ephemeral", 1, json!({}))?;
    nsqd.connect()?.pub_ok(&topic, b"an_ephemeral_message")?;
    let m = c.expect_message()?;
    ensure!(&m.body[..] == b"an_ephemeral_message");
    c.fin(&m.id)?;
    drop(c);
    gone(&nsqd, "ephemeral topic removed", || {
        Ok(nsqd.topic_stats(&topic)?.is_none())
    })?;

    // Deleting the last (non-ephemeral) channel of an ephemeral topic also
    // removes the topic.
    let topic = format!("{}#ephemeral", unique_name("eph_t2"));
    let c = consumer(nsqd.tcp_addr(), &topic, "durable", 0, json!({}))?;
    drop(c);
    let (st, body) = nsqd.http_post(
        &format!("/channel/delete?topic={topic}&channel=durable"),
        b"",
    )?;
    ensure!(st == 200, "{st} {body}");
    gone(
        &nsqd,
        "ephemeral topic removed with its last channel",
        || Ok(nsqd.topic_stats(&topic)?.is_none()),
    )
}

/// Deleting a topic or channel closes the connections subscribed to it.
#[test]
fn delete_closes_subscribed_clients() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("del_ch");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 1, json!({}))?;
    let mut other = consumer(nsqd.tcp_addr(), &topic, "other", 1, json!({}))?;
    let (st, body) = nsqd.http_post(&format!("/channel/delete?topic={topic}&channel=ch"), b"")?;
    ensure!(st == 200, "{st} {body}");
    c.expect_closed()
        .context("channel delete closes its consumers")?;
    other.expect_silence(Duration::from_millis(200))?;
    let (st, body) = nsqd.http_post(&format!("/topic/delete?topic={topic}"), b"")?;
    ensure!(st == 200, "{st} {body}");
    other
        .expect_closed()
        .context("topic delete closes its consumers")?;
    ensure!(nsqd.topic_stats(&topic)?.is_none());
    Ok(())
}

// ---------------------------------------------------------------------------
// Memory-queue bound
// ---------------------------------------------------------------------------

/// With --mem-queue-size=N and no channel, the first N publishes are held
/// in memory. Real nsqd then writes the rest to the topic's disk queue (all
/// OK); a broker without disk overflow must refuse with E_PUB_FAILED
/// instead. Either way nothing acknowledged is lost: the first channel gets
/// exactly the acknowledged messages.
#[test]
fn mem_queue_bound_loses_nothing() -> Result<()> {
    const N: usize = 10;
    const EXTRA: usize = 5;
    let nsqd = TestNsqd::start(&["--mem-queue-size=10", "--shards=1"])?;
    let topic = unique_name("bounded");
    let mut acked = BTreeSet::new();
    let mut refused = 0;
    let mut conn = nsqd.connect()?;
    for i in 0..N + EXTRA {
        let body = format!("m{i}");
        conn.publish(&topic, body.as_bytes())?;
        match conn.read_frame()? {
            Frame::Response(b) if &b[..] == b"OK" => {
                ensure!(
                    refused == 0,
                    "PUB {i} accepted after an earlier E_PUB_FAILED"
                );
                acked.insert(body);
            }
            Frame::Error(e) if e.starts_with(b"E_PUB_FAILED") => {
                ensure!(i >= N, "PUB {i} refused within the memory bound of {N}");
                refused += 1;
                conn.expect_closed().context("E_PUB_FAILED is fatal")?;
                conn = nsqd.connect()?;
            }
            other => bail!("PUB {i}: unexpected {}", ShowFrame(&other)),
        }
    }
    // MPUB and DPUB past the bound: OK in nsqd, or refused with their own
    // codes by a broker without disk overflow.
    let mut attempts = N + EXTRA;
    for (i, (cmd, code)) in [("MPUB", "E_MPUB_FAILED"), ("DPUB", "E_DPUB_FAILED")]
        .into_iter()
        .enumerate()
    {
        let bodies = [format!("x{i}-a"), format!("x{i}-b")];
        if cmd == "MPUB" {
            conn.mpub(&topic, &[bodies[0].as_bytes(), bodies[1].as_bytes()])?;
        } else {
            conn.dpub(&topic, 10, bodies[0].as_bytes())?;
        }
        let n = if cmd == "MPUB" { 2 } else { 1 };
        attempts += n;
        match conn.read_frame()? {
            Frame::Response(b) if &b[..] == b"OK" => {
                ensure!(refused == 0, "{cmd} accepted after an earlier refusal");
                acked.extend(bodies.into_iter().take(n));
            }
            Frame::Error(e) if e.starts_with(code.as_bytes()) => {
                ensure!(
                    refused > 0,
                    "{cmd} refused although PUBs past the bound were accepted"
                );
                refused += n;
                conn.expect_closed()
                    .with_context(|| format!("{code} is fatal"))?;
                conn = nsqd.connect()?;
            }
            other => bail!("{cmd}: unexpected {}", ShowFrame(&other)),
        }
    }
    eprintln!(
        "mem-queue bound: {} acknowledged, {refused} refused (E_PUB_FAILED / E_MPUB_FAILED / E_DPUB_FAILED)",
        acked.len()
    );
    ensure!(acked.len() + refused == attempts);
    nsqd.wait_topic(&topic, "topic depth = acknowledged", |t| {
        t["depth"] == acked.len() && t["message_count"] == acked.len()
    })?;

    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 100, json!({}))?;
    let got: Vec<String> = c
        .recv_and_fin(acked.len())?
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    c.expect_silence(Duration::from_millis(300))?;
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    ensure!(got.len() == unique.len(), "duplicates: {got:?}");
    ensure!(
        unique == acked,
        "received {unique:?}, acknowledged {acked:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Flags and process
// ---------------------------------------------------------------------------

#[test]
fn unknown_flag_exits_nonzero() -> Result<()> {
    let (status, out, err) = run_nsqd_to_exit(&["--no-such-flag"], Duration::from_secs(10))?;
    ensure!(!status.success(), "exit status {status}");
    let text = format!("{out}{err}");
    ensure!(
        text.contains("no-such-flag"),
        "the message names the flag: {text:?}"
    );
    Ok(())
}

#[test]
fn version_flag() -> Result<()> {
    let (status, out, err) = run_nsqd_to_exit(&["--version"], Duration::from_secs(10))?;
    ensure!(status.success(), "exit status {status}, stderr {err:?}");
    ensure!(
        out.starts_with("nsqd v"),
        "`nsqd v<version> ...` on stdout: {out:?}"
    );
    Ok(())
}

/// nsqd.New refuses bad values before listening.
#[test]
fn invalid_flag_values_exit_nonzero() -> Result<()> {
    let dir = TempDir::new("nsq-test-flags")?;
    let data = format!("--data-path={}", dir.path().display());
    for (flag, needle) in [
        ("--max-deflate-level=10", "max-deflate-level"),
        ("--max-deflate-level=0", "max-deflate-level"),
        ("--node-id=1024", "node-id"),
    ] {
        let args = [
            "--tcp-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0",
            data.as_str(),
            flag,
        ];
        let (status, out, err) = run_nsqd_to_exit(&args, Duration::from_secs(10))?;
        ensure!(!status.success(), "{flag}: exit status {status}");
        let text = format!("{out}{err}");
        ensure!(
            text.contains(needle),
            "{flag}: message names {needle}: {text:?}"
        );
    }
    Ok(())
}

/// Two nsqd on one --data-path: the second exits with an error (flock).
#[test]
fn data_path_is_locked() -> Result<()> {
    let dir = TempDir::new("nsq-test-shared")?;
    let mut first = TestNsqd::start_in(dir.path(), &[])?;
    let data = format!("--data-path={}", dir.path().display());
    let args = [
        "--tcp-address=127.0.0.1:0",
        "--http-address=127.0.0.1:0",
        data.as_str(),
    ];
    let (status, out, err) = run_nsqd_to_exit(&args, Duration::from_secs(10))?;
    ensure!(
        !status.success(),
        "second nsqd on the same data path: exit status {status}"
    );
    let text = format!("{out}{err}");
    ensure!(
        text.to_lowercase().contains("lock") || text.contains(&dir.path().display().to_string()),
        "the error explains the lock: {text:?}"
    );
    ensure!(first.is_running(), "the first nsqd keeps running");
    let (st, body) = first.http_get("/ping")?;
    ensure!(st == 200 && body == "OK", "{st} {body}");
    Ok(())
}

/// A listen address already in use is a startup error in nsqd
/// ("listen (ADDR) failed - ... address already in use"), not a second
/// broker silently sharing the port.
#[test]
fn address_in_use_exits_nonzero() -> Result<()> {
    let first = TestNsqd::start(&[])?;
    for (which, addr) in [("tcp", first.tcp_addr()), ("http", first.http_addr())] {
        let dir = TempDir::new("nsq-test-inuse")?;
        let spare = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let (tcp, http) = if which == "tcp" {
            (addr, spare)
        } else {
            (spare, addr)
        };
        let args = [
            format!("--tcp-address={tcp}"),
            format!("--http-address={http}"),
            format!("--data-path={}", dir.path().display()),
        ];
        let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        let (status, out, err) = run_nsqd_to_exit(&args, Duration::from_secs(5))
            .with_context(|| format!("second nsqd on the same {which} address {addr}"))?;
        ensure!(
            !status.success(),
            "{which} address in use: exit status {status}"
        );
        let text = format!("{out}{err}");
        ensure!(
            text.contains(&addr.to_string()),
            "the error names {addr}: {text:?}"
        );
    }
    Ok(())
}

#[test]
fn sigterm_exits_cleanly() -> Result<()> {
    let mut nsqd = TestNsqd::start(&[])?;
    let mut c = nsqd.connect()?;
    c.pub_ok(&unique_name("bye"), b"x")?;
    let status = nsqd.stop()?;
    ensure!(status.success(), "exit status {status}");
    c.expect_closed()
        .context("clients are disconnected at shutdown")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------

/// TestStartup: 300 messages with --mem-queue-size=100 (so most overflow to
/// the disk queues), half consumed, graceful restart, the other half is
/// delivered after the restart (and nothing already finished).
#[test]
fn restart_with_disk_overflow() -> Result<()> {
    restart_round_trip(&["--mem-queue-size=100", "--max-bytes-per-file=10240"], 300)
}

/// A graceful restart with everything in memory: shutdown flushes the
/// channel's memory queue to disk and the restarted nsqd delivers it.
#[test]
fn restart_keeps_unconsumed_messages() -> Result<()> {
    restart_round_trip(&[], 100)
}

fn restart_round_trip(args: &[&str], total: usize) -> Result<()> {
    let half = total / 2;
    let mut nsqd = TestNsqd::start(args)?;
    let topic = unique_name("nsqd_test");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch1", 0, json!({}))?;
    let mut p = nsqd.connect()?;
    let mut all = BTreeSet::new();
    for batch in 0..total / 10 {
        let bodies: Vec<Vec<u8>> = (0..10)
            .map(|i| {
                let mut b = format!("msg-{batch}-{i}-").into_bytes();
                b.resize(256, b'.');
                b
            })
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
        p.mpub_ok(&topic, &refs)?;
        all.extend(bodies);
    }
    // A window of exactly `half`: receive them all before finishing any, so
    // no further message is sent.
    c.rdy(half as u32)?;
    let mut taken = Vec::new();
    for i in 0..half {
        taken.push(
            c.expect_message()
                .with_context(|| format!("message {i} of {half}"))?,
        );
    }
    c.rdy(0)?;
    for m in &taken {
        c.fin(&m.id)?;
    }
    c.barrier()?;
    let first: BTreeSet<Vec<u8>> = taken.iter().map(|m| m.body.to_vec()).collect();
    nsqd.wait_channel(&topic, "ch1", "half left, none in flight", |ch| {
        ch["depth"] == total - half && ch["in_flight_count"] == 0
    })?;
    drop(c);
    drop(p);

    nsqd.restart()?;
    let t = nsqd
        .topic_stats(&topic)?
        .context("topic survives restart")?;
    ensure!(t["depth"] == 0, "the topic drained into its channel: {t}");
    let ch = nsqd.wait_channel(&topic, "ch1", "the other half after restart", |ch| {
        ch["depth"] == total - half
    })?;
    ensure!(ch["in_flight_count"] == 0, "{ch}");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch1", 200, json!({}))?;
    let second: BTreeSet<Vec<u8>> = c
        .recv_and_fin(total - half)?
        .into_iter()
        .map(|m| m.body.to_vec())
        .collect();
    c.expect_silence(Duration::from_millis(300))?;
    ensure!(
        first.is_disjoint(&second),
        "finished messages came back after restart"
    );
    let union: BTreeSet<Vec<u8>> = first.union(&second).cloned().collect();
    ensure!(union == all, "lost {} messages", all.len() - union.len());
    Ok(())
}

/// Topics, channels and their paused state are in the metadata; ephemeral
/// ones are not.
#[test]
fn restart_keeps_metadata() -> Result<()> {
    let mut nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("meta");
    let eph = format!("{}#ephemeral", unique_name("meta_eph"));
    for path in [
        format!("/topic/create?topic={topic}"),
        format!("/channel/create?topic={topic}&channel=paused_ch"),
        format!("/channel/create?topic={topic}&channel=open_ch"),
        format!("/channel/pause?topic={topic}&channel=paused_ch"),
        format!("/topic/pause?topic={topic}"),
        format!("/topic/create?topic={eph}"),
    ] {
        let (st, body) = nsqd.http_post(&path, b"")?;
        ensure!(st == 200, "{path}: {st} {body}");
    }
    let _held = consumer(nsqd.tcp_addr(), &topic, "eph_ch#ephemeral", 0, json!({}))?;
    nsqd.restart()?;
    let t = nsqd
        .topic_stats(&topic)?
        .context("topic survives restart")?;
    ensure!(t["paused"] == true, "topic pause persisted: {t}");
    let ch = nsqd
        .channel_stats(&topic, "paused_ch")?
        .context("paused_ch survives")?;
    ensure!(ch["paused"] == true, "{ch}");
    let ch = nsqd
        .channel_stats(&topic, "open_ch")?
        .context("open_ch survives")?;
    ensure!(ch["paused"] == false, "{ch}");
    ensure!(
        nsqd.channel_stats(&topic, "eph_ch#ephemeral")?.is_none(),
        "ephemeral channel not persisted"
    );
    ensure!(
        nsqd.topic_stats(&eph)?.is_none(),
        "ephemeral topic not persisted"
    );
    Ok(())
}
