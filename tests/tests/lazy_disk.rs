//! Queue files exist only once something needs them (issue 11): topics and
//! channels created at run time open no disk queue until messages overflow
//! their memory queue, as nsqd creates no file before that; once one
//! overflows its files appear, and a graceful restart loses and repeats
//! nothing.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nsq_tests::persist::{self, body, drain, exactly_once};
use nsq_tests::{consumer, unique_name, TestNsqd};
use serde_json::json;

/// `--mem-queue-size` default.
const MEM_QUEUE_SIZE: u64 = 10_000;

fn post_ok(nsqd: &TestNsqd, path: &str, body: &[u8]) -> Result<()> {
    let (st, text) = nsqd.http_post(path, body)?;
    ensure!(st == 200, "POST {path}: {st} {text}");
    Ok(())
}

/// Disk-queue files (`*.seg`, `*.meta`, per ARCHITECTURE's file table) in
/// the data directory.
fn queue_files(nsqd: &TestNsqd) -> Result<Vec<String>> {
    Ok(persist::file_names(nsqd.data_path())?
        .into_iter()
        .filter(|n| n.ends_with(".seg") || n.ends_with(".meta") || n.ends_with(".meta.tmp"))
        .collect())
}

#[test]
fn queues_get_files_only_when_they_overflow() -> Result<()> {
    let mut nsqd = TestNsqd::start(&[])?;
    let prefix = unique_name("lazy");
    let topics: Vec<String> = (0..50).map(|i| format!("{prefix}_{i}")).collect();
    let channels = ["a", "b"];
    for topic in &topics {
        post_ok(&nsqd, &format!("/topic/create?topic={topic}"), b"")?;
        for ch in channels {
            post_ok(
                &nsqd,
                &format!("/channel/create?topic={topic}&channel={ch}"),
                b"",
            )?;
        }
    }
    let mut few = HashSet::new();
    for (t, topic) in topics.iter().enumerate() {
        for n in 0..3 {
            let b = body(&format!("few{t}"), n, 32);
            post_ok(&nsqd, &format!("/pub?topic={topic}"), &b)?;
            if t == 0 {
                few.insert(b);
            }
        }
    }
    for ch in channels {
        nsqd.wait_channel(&topics[0], ch, "the few messages", |c| c["depth"] == 3)?;
    }
    let files = queue_files(&nsqd)?;
    ensure!(
        files.is_empty(),
        "no queue overflowed, yet there are {} queue files, first: {:?}",
        files.len(),
        &files[..files.len().min(8)]
    );

    // One topic past --mem-queue-size: its channels (no consumer) overflow.
    let topic = &topics[0];
    let total = MEM_QUEUE_SIZE + 2_000;
    let mut sent = few.clone();
    let mut p = nsqd.connect()?;
    for batch in 0..total / 500 {
        let bodies: Vec<Vec<u8>> = (batch * 500..(batch + 1) * 500)
            .map(|n| body("over", n, 64))
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
        p.mpub_ok(topic, &refs)
            .with_context(|| format!("MPUB batch {batch}"))?;
        sent.extend(bodies);
    }
    let want = sent.len() as u64;
    for ch in channels {
        nsqd.wait_channel(topic, ch, "every message", |c| c["depth"] == want)?;
    }
    let files = queue_files(&nsqd)?;
    for ch in channels {
        let queue = format!("{topic}:{ch}~");
        ensure!(
            files.contains(&format!("{queue}.meta"))
                && files
                    .iter()
                    .any(|f| f.starts_with(&format!("{queue}.")) && f.ends_with(".seg")),
            "channel {ch} overflowed: its queue files exist: {files:?}"
        );
        ensure!(
            files.contains(&format!("{queue}acks.meta")),
            "channel {ch}: its acknowledgement log opens with its queue: {files:?}"
        );
    }
    let others: Vec<&String> = files
        .iter()
        .filter(|f| !f.starts_with(&format!("{topic}:")) && !f.starts_with(&format!("{topic}~")))
        .collect();
    ensure!(
        others.is_empty(),
        "only the overflowing topic has files: {others:?}"
    );

    nsqd.restart()?;
    for ch in channels {
        nsqd.wait_channel(topic, ch, "after the restart", |c| c["depth"] == want)?;
        let mut c = consumer(nsqd.tcp_addr(), topic, ch, 500, json!({}))?;
        let d = drain(
            &mut c,
            &sent,
            Duration::from_secs(60),
            Duration::from_millis(500),
        )?;
        exactly_once(&d, &sent).with_context(|| format!("channel {ch} after SIGTERM"))?;
    }
    Ok(())
}
