//! Channels that nsqlookupd knows are created with the topic (nsqd's
//! `GetTopic`): when nsqd creates a topic it asks its nsqlookupds for the
//! topic's channels and creates them before handing out any message, so a
//! message published before a consumer connects is not lost to a channel
//! that exists only in the cluster's registry. Ephemeral channels are not
//! pre-created (they exist only with a consumer).

use std::collections::BTreeSet;

use anyhow::{ensure, Result};
use nsq_tests::cluster::{channels, eventually, nsqd, post, set, wait_lookup, Daemon, REGISTER};
use nsq_tests::{consumer, unique_name, TestNsqd};
use serde_json::{json, Value};

/// The channel names in `nsqd`'s /stats for `topic` (empty if no topic).
fn stats_channels(n: &TestNsqd, topic: &str) -> Result<BTreeSet<String>> {
    Ok(n.topic_stats(topic)?
        .map(|t| {
            t["channels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["channel_name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default())
}

fn depth(c: &Value) -> i64 {
    c["depth"].as_i64().unwrap_or(-1)
}

/// Two nsqd, one with two shards: channels created on the first (one
/// ephemeral, with its consumer connected) are pre-created on the second when
/// it first sees the topic, and hold what is published there before any
/// consumer connects.
#[test]
fn channels_known_to_lookupd_are_created_with_the_topic() -> Result<()> {
    let l = Daemon::lookupd(&[])?;
    let a = nsqd(&[&l], &[])?;
    let b = nsqd(&[&l], &["--shards=2"])?;
    let topic = unique_name("pre");
    post(a.http_addr(), &format!("/topic/create?topic={topic}"))?;
    for ch in ["c1", "c2"] {
        post(
            a.http_addr(),
            &format!("/channel/create?topic={topic}&channel={ch}"),
        )?;
    }
    let _ephemeral = consumer(a.tcp_addr(), &topic, "e#ephemeral", 0, json!({}))?;
    wait_lookup(&l, &topic, &[&a], &["c1", "c2", "e#ephemeral"])?;
    // b must know the lookupd (its IDENTIFY answer gives the HTTP address).
    eventually(
        REGISTER,
        "b registered with lookupd",
        || Ok(nsq_tests::cluster::lookupd_nodes(l.http_addr())?.len()),
        |n| *n == 2,
    )?;

    // The topic is new on b: several connections, so both shards publish.
    for i in 0..10 {
        b.connect()?.pub_ok(&topic, format!("m{i}").as_bytes())?;
    }
    for ch in ["c1", "c2"] {
        b.wait_channel(&topic, ch, "10 messages waiting", |c| depth(c) == 10)?;
    }
    ensure!(
        stats_channels(&b, &topic)? == set(&["c1", "c2"]),
        "b's channels: {:?} (the ephemeral one must not be pre-created)",
        stats_channels(&b, &topic)?
    );
    // A consumer connecting later gets every message.
    let mut c = consumer(b.tcp_addr(), &topic, "c2", 10, json!({}))?;
    let mut got = BTreeSet::new();
    for _ in 0..10 {
        let m = c.expect_message_skip_heartbeats()?;
        c.fin(&m.id)?;
        got.insert(String::from_utf8_lossy(&m.body).into_owned());
    }
    let want: BTreeSet<String> = (0..10).map(|i| format!("m{i}")).collect();
    ensure!(got == want, "consumed {got:?}");
    ensure!(
        !b.stderr().contains("failed to query"),
        "b logged a failed query:\n{}",
        b.stderr()
    );
    Ok(())
}

/// nsqlookupd keeps a channel registration when its last producer
/// unregisters it (non-ephemeral), so a channel deleted on nsqd comes back
/// when its topic is recreated, as with nsqd.
#[test]
fn a_deleted_channel_comes_back_with_its_recreated_topic() -> Result<()> {
    let l = Daemon::lookupd(&[])?;
    let n = nsqd(&[&l], &["--shards=2"])?;
    let topic = unique_name("back");
    post(n.http_addr(), &format!("/topic/create?topic={topic}"))?;
    post(
        n.http_addr(),
        &format!("/channel/create?topic={topic}&channel=kept"),
    )?;
    wait_lookup(&l, &topic, &[&n], &["kept"])?;
    post(
        n.http_addr(),
        &format!("/channel/delete?topic={topic}&channel=kept"),
    )?;
    post(n.http_addr(), &format!("/topic/delete?topic={topic}"))?;
    eventually(
        REGISTER,
        "nsqd gone from the topic's producers",
        || nsq_tests::cluster::lookupd_lookup(l.http_addr(), &topic),
        |(producers, _)| producers.is_empty(),
    )?;
    ensure!(
        channels(&l, &topic)?.contains("kept"),
        "lookupd forgot the channel: {:?}",
        channels(&l, &topic)?
    );

    n.connect()?.pub_ok(&topic, b"after recreate")?;
    n.wait_channel(&topic, "kept", "the message waiting in the channel", |c| {
        depth(c) == 1
    })?;
    Ok(())
}

/// Without a reachable nsqlookupd HTTP API the topic still starts (nsqd logs
/// the failure and goes on): messages reach the channels that exist.
#[test]
fn an_unreachable_lookupd_http_api_does_not_hold_the_topic_forever() -> Result<()> {
    // A lookupd that advertises an HTTP port where nothing listens.
    let dead = nsq_tests::cluster::free_loopback_pair()?.0;
    let l = Daemon::lookupd(&[&format!("--broadcast-address={}", dead.ip())])?;
    let n = nsqd(&[&l], &[])?;
    eventually(
        REGISTER,
        "nsqd registered",
        || Ok(nsq_tests::cluster::lookupd_nodes(l.http_addr())?.len()),
        |c| *c == 1,
    )?;
    let topic = unique_name("deadhttp");
    let mut c = consumer(n.tcp_addr(), &topic, "ch", 1, json!({}))?;
    n.connect()?.pub_ok(&topic, b"still delivered")?;
    let m = c.expect_message_skip_heartbeats()?;
    ensure!(&m.body[..] == b"still delivered");
    Ok(())
}
