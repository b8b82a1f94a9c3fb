//! Clusters: several nsqd registering with several nsqlookupd (issue 5).
//! Every nsqd broadcasts 127.0.0.1, so a producer is `127.0.0.1:<tcp port>`
//! in lookupd's answers; every wait polls lookupd with a deadline.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use nsq_tests::cluster::{
    call_ok, channel_producers, channels, eventually, get_json, hosts, key, keys, lookupd_nodes,
    lookupd_producers, netns_unavailable, node_topics, nsqd, post, set, strings,
    wait_channel_producers, wait_lookup, wait_nodes, Daemon, PynsqReader, Received, REGISTER,
};
use nsq_tests::{consumer, unique_name, TestNsqd};
use serde_json::{json, Value};

/// How long a restarted lookupd may take to be healed (backoff max 15 s,
/// and an idle nsqd notices a dead lookupd at its next 15 s PING).
const HEAL: Duration = Duration::from_secs(35);

/// Topics and channels created on nsqd (PUB, SUB, /topic/create,
/// /channel/create) appear in both lookupds' /lookup, /topics, /channels and
/// /nodes; deleting them and stopping a node removes the registrations.
#[test]
fn registrations_follow_topics_channels_and_nodes() -> Result<()> {
    let (l1, l2) = (Daemon::lookupd(&[])?, Daemon::lookupd(&[])?);
    let ls = [&l1, &l2];
    let n1 = nsqd(&ls, &["--shards=2"])?;
    let n2 = nsqd(&ls, &[])?;
    let mut n3 = nsqd(&ls, &[])?;
    let (ta, tb, tc) = (unique_name("ta"), unique_name("tb"), unique_name("tc"));

    n1.connect()?.pub_ok(&ta, b"hello")?; // PUB creates ta on n1
    post(n2.http_addr(), &format!("/topic/create?topic={ta}"))?;
    post(n2.http_addr(), &format!("/topic/create?topic={tb}"))?;
    let _sub = consumer(n3.tcp_addr(), &tc, "ch1", 0, json!({}))?; // SUB creates tc and ch1
    post(
        n1.http_addr(),
        &format!("/channel/create?topic={ta}&channel=c2"),
    )?;

    for l in ls {
        wait_lookup(l, &ta, &[&n1, &n2], &["c2"])?;
        wait_lookup(l, &tb, &[&n2], &[])?;
        wait_lookup(l, &tc, &[&n3], &["ch1"])?;
        wait_channel_producers(l, &ta, "c2", &[&n1])?;
        wait_channel_producers(l, &tc, "ch1", &[&n3])?;
        let topics = strings(&get_json(l.http_addr(), "/topics")?["topics"]);
        ensure!(
            topics.is_superset(&set(&[&ta, &tb, &tc])),
            "/topics {topics:?}"
        );
        ensure!(channels(l, &ta)? == set(&["c2"]), "/channels?topic={ta}");
        ensure!(channels(l, &tc)? == set(&["ch1"]), "/channels?topic={tc}");
        wait_nodes(
            l,
            &[(&n1, &[&ta]), (&n2, &[&ta, &tb]), (&n3, &[&tc])],
            REGISTER,
        )?;
    }

    // An ephemeral channel goes with its last client.
    let eph = "live#ephemeral";
    let e1 = consumer(n3.tcp_addr(), &tc, eph, 0, json!({}))?;
    for l in ls {
        eventually(
            REGISTER,
            "ephemeral channel listed",
            || channels(l, &tc),
            |c| c.contains(eph),
        )?;
    }
    drop(e1);
    for l in ls {
        eventually(
            REGISTER,
            "ephemeral channel gone",
            || channels(l, &tc),
            |c| !c.contains(eph),
        )?;
        wait_channel_producers(l, &tc, eph, &[])?;
    }

    // On a 2-shard nsqd the clients of one ephemeral channel may sit on
    // different cores: it stays registered until the last one leaves.
    let two = "two#ephemeral";
    let a = consumer(n1.tcp_addr(), &ta, two, 0, json!({}))?;
    let b = consumer(n1.tcp_addr(), &ta, two, 0, json!({}))?;
    for l in ls {
        wait_channel_producers(l, &ta, two, &[&n1])?;
    }
    drop(a);
    n1.wait_channel(&ta, two, "one client left", |c| {
        c["clients"].as_array().map(Vec::len) == Some(1)
    })?;
    // Registrations reach a lookupd in order: once a later one has arrived,
    // an UNREGISTER sent before it would have too.
    let marker = unique_name("marker");
    post(n1.http_addr(), &format!("/topic/create?topic={marker}"))?;
    for l in ls {
        wait_lookup(l, &marker, &[&n1], &[])?;
        ensure!(
            channel_producers(l, &ta, two)? == keys(&[&n1]),
            "{two} unregistered while a client is still subscribed"
        );
    }
    drop(b);
    for l in ls {
        eventually(
            REGISTER,
            "2-shard ephemeral channel gone",
            || channels(l, &ta),
            |c| !c.contains(two),
        )?;
    }

    // Deletions.
    post(
        n1.http_addr(),
        &format!("/channel/delete?topic={ta}&channel=c2"),
    )?;
    post(n2.http_addr(), &format!("/topic/delete?topic={tb}"))?;
    post(n2.http_addr(), &format!("/topic/delete?topic={ta}"))?;
    for l in ls {
        wait_channel_producers(l, &ta, "c2", &[])?;
        wait_lookup(l, &tb, &[], &[])?;
        wait_lookup(l, &ta, &[&n1], &[])?;
        wait_nodes(
            l,
            &[(&n1, &[&ta, &marker]), (&n2, &[]), (&n3, &[&tc])],
            REGISTER,
        )?;
    }

    // A node that stops leaves every lookupd.
    let status = n3.stop()?;
    ensure!(status.success(), "nsqd exited with {status} on SIGTERM");
    for l in ls {
        wait_lookup(l, &tc, &[], &[])?;
        wait_channel_producers(l, &tc, "ch1", &[])?;
        wait_nodes(l, &[(&n1, &[&ta, &marker]), (&n2, &[])], REGISTER)?;
    }
    Ok(())
}

/// A lookupd restarted on the same ports (SIGTERM, then SIGKILL) gets every
/// topic and channel registered again, including changes made while it was
/// down, without any new event.
#[test]
fn restarted_lookupd_is_healed() -> Result<()> {
    let mut l = Daemon::lookupd(&[])?;
    let n1 = nsqd(&[&l], &["--shards=2"])?;
    let n2 = nsqd(&[&l], &[])?;
    let (t1, t2, t3, t4) = (
        unique_name("t1"),
        unique_name("t2"),
        unique_name("t3"),
        unique_name("t4"),
    );
    post(n1.http_addr(), &format!("/topic/create?topic={t1}"))?;
    post(
        n1.http_addr(),
        &format!("/channel/create?topic={t1}&channel=c1"),
    )?;
    let _sub = consumer(n2.tcp_addr(), &t2, "c2", 0, json!({}))?;
    for n in [&n1, &n2] {
        post(n.http_addr(), &format!("/topic/create?topic={t3}"))?;
    }
    wait_lookup(&l, &t1, &[&n1], &["c1"])?;
    wait_lookup(&l, &t2, &[&n2], &["c2"])?;
    wait_lookup(&l, &t3, &[&n1, &n2], &[])?;

    l.stop()?;
    post(n1.http_addr(), &format!("/topic/create?topic={t4}"))?;
    post(n2.http_addr(), &format!("/topic/delete?topic={t3}"))?;
    l.start_again()?;
    let healed = |l: &Daemon| -> Result<()> {
        wait_nodes(l, &[(&n1, &[&t1, &t3, &t4]), (&n2, &[&t2])], HEAL)?;
        wait_lookup(l, &t1, &[&n1], &["c1"])?;
        wait_lookup(l, &t2, &[&n2], &["c2"])?;
        wait_lookup(l, &t3, &[&n1], &[])?;
        wait_lookup(l, &t4, &[&n1], &[])?;
        wait_channel_producers(l, &t1, "c1", &[&n1])?;
        wait_channel_producers(l, &t2, "c2", &[&n2])
    };
    healed(&l).context("after a SIGTERM restart")?;

    l.kill();
    l.start_again()?;
    healed(&l).context("after a SIGKILL restart")?;
    Ok(())
}

/// A tokio-nsq consumer discovering through `lookupds`, on its own runtime.
fn tokio_nsq_consumer(
    rt: &tokio::runtime::Runtime,
    lookupds: &[&Daemon],
    topic: &str,
    channel: &str,
) -> Result<Receiver<String>> {
    use tokio_nsq::{
        NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQConsumerLookupConfig, NSQTopic,
    };
    let addrs: HashSet<String> = lookupds
        .iter()
        .map(|l| format!("http://{}", l.http_addr()))
        .collect();
    let lookup = NSQConsumerLookupConfig::new()
        .set_poll_interval(Duration::from_secs(1))
        .set_addresses(addrs);
    let topic = NSQTopic::new(topic).context("topic name")?;
    let channel = NSQChannel::new(channel).context("channel name")?;
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        let mut consumer = NSQConsumerConfig::new(topic, channel)
            .set_max_in_flight(100)
            .set_sources(NSQConsumerConfigSources::Lookup(lookup))
            .build();
        while let Some(message) = consumer.consume_filtered().await {
            let line = format!(
                "{} {}",
                message.attempt,
                String::from_utf8_lossy(&message.body)
            );
            message.finish().await;
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Publishes `count` distinct bodies `<tag>-<node>-<i>` to each node.
fn publish_each(
    nodes: &[(&str, &TestNsqd)],
    topic: &str,
    tag: &str,
    count: usize,
) -> Result<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for (name, n) in nodes {
        let bodies: Vec<String> = (0..count).map(|i| format!("{tag}-{name}-{i}")).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
        n.connect()?.mpub_ok(topic, &refs)?;
        all.extend(bodies);
    }
    Ok(all)
}

/// A pynsq Reader and a tokio-nsq consumer that discover nsqd through two
/// lookupds consume from every nsqd, and keep consuming from the others
/// when one is killed.
#[test]
fn lookupd_consumers_read_every_nsqd_and_survive_a_kill() -> Result<()> {
    let (l1, l2) = (Daemon::lookupd(&[])?, Daemon::lookupd(&[])?);
    let ls = [&l1, &l2];
    let n1 = nsqd(&ls, &["--shards=2"])?;
    let n2 = nsqd(&ls, &[])?;
    let mut n3 = nsqd(&ls, &[])?;
    let topic = unique_name("disc");
    for n in [&n1, &n2, &n3] {
        post(n.http_addr(), &format!("/topic/create?topic={topic}"))?;
        for ch in ["pynsq", "tokio"] {
            post(
                n.http_addr(),
                &format!("/channel/create?topic={topic}&channel={ch}"),
            )?;
        }
    }
    for l in ls {
        wait_lookup(l, &topic, &[&n1, &n2, &n3], &["pynsq", "tokio"])?;
    }

    let (_py, py_rx) = PynsqReader::start(&ls, &topic, "pynsq")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let tk_rx = tokio_nsq_consumer(&rt, &ls, &topic, "tokio")?;
    let mut got = [
        Received::new("pynsq", py_rx),
        Received::new("tokio-nsq", tk_rx),
    ];

    let first = publish_each(
        &[("n1", &n1), ("n2", &n2), ("n3", &n3)],
        &topic,
        "before",
        100,
    )?;
    for r in &mut got {
        r.wait_for(&first)?;
    }

    n3.kill();
    let second = publish_each(&[("n1", &n1), ("n2", &n2)], &topic, "after", 100)?;
    for r in &mut got {
        r.wait_for(&second)?;
        let all: BTreeSet<String> = first.union(&second).cloned().collect();
        let strangers: Vec<_> = r.counts.keys().filter(|b| !all.contains(*b)).collect();
        ensure!(
            strangers.is_empty(),
            "{}: unexpected bodies {strangers:?}",
            r.who
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// POST /topic/tombstone hides that producer of that topic from new
/// lookups (and /nodes flags it), even as the node keeps registering.
#[test]
fn tombstoned_producer_is_hidden_from_lookup() -> Result<()> {
    let l = Daemon::lookupd(&[])?;
    let n1 = nsqd(&[&l], &[])?;
    let n2 = nsqd(&[&l], &["--shards=2"])?;
    let (t, u) = (unique_name("tomb"), unique_name("other"));
    for n in [&n1, &n2] {
        post(n.http_addr(), &format!("/topic/create?topic={t}"))?;
    }
    post(n1.http_addr(), &format!("/topic/create?topic={u}"))?;
    wait_lookup(&l, &t, &[&n1, &n2], &[])?;
    wait_lookup(&l, &u, &[&n1], &[])?;

    let node = format!("127.0.0.1:{}", n1.http_addr().port());
    post(
        l.http_addr(),
        &format!("/topic/tombstone?topic={t}&node={node}"),
    )?;
    ensure!(
        lookupd_producers(l.http_addr(), &t)? == keys(&[&n2]),
        "tombstoned n1 still in /lookup?topic={t}"
    );
    ensure!(
        lookupd_producers(l.http_addr(), &u)? == keys(&[&n1]),
        "/lookup?topic={u} lost n1"
    );
    let nodes = lookupd_nodes(l.http_addr())?;
    let (_, topics, tombstones) = nodes
        .iter()
        .find(|(k, _, _)| *k == key(&n1))
        .ok_or_else(|| anyhow!("n1 not in /nodes {nodes:?}"))?;
    let flags: HashMap<&String, bool> = topics.iter().zip(tombstones.iter().copied()).collect();
    ensure!(
        flags.get(&t) == Some(&true)
            && flags.get(&u) == Some(&false)
            && topics.len() == tombstones.len(),
        "/nodes entry of n1: topics {topics:?} tombstones {tombstones:?}"
    );

    // n1 registers a new channel of t: lookupd sees it, n1 stays hidden.
    post(
        n1.http_addr(),
        &format!("/channel/create?topic={t}&channel=late"),
    )?;
    wait_channel_producers(&l, &t, "late", &[&n1])?;
    ensure!(
        lookupd_producers(l.http_addr(), &t)? == keys(&[&n2]),
        "tombstone lost on re-register"
    );
    Ok(())
}

/// PUT /config/nsqlookupd_tcp_addresses adds a lookupd at runtime (it
/// learns every topic and channel) and removes one (connection dropped).
#[test]
fn lookupd_addresses_change_at_runtime() -> Result<()> {
    let (l1, l2) = (Daemon::lookupd(&[])?, Daemon::lookupd(&[])?);
    let n = nsqd(&[&l1], &["--shards=2"])?;
    let (ta, tb, tc) = (unique_name("ra"), unique_name("rb"), unique_name("rc"));
    post(n.http_addr(), &format!("/topic/create?topic={ta}"))?;
    let _sub = consumer(n.tcp_addr(), &tb, "c", 0, json!({}))?;
    wait_lookup(&l1, &ta, &[&n], &[])?;
    wait_lookup(&l1, &tb, &[&n], &["c"])?;
    let path = "/config/nsqlookupd_tcp_addresses";
    let config = |addrs: &[&Daemon]| {
        json!(addrs
            .iter()
            .map(|l| l.tcp_addr().to_string())
            .collect::<Vec<_>>())
    };
    ensure!(
        get_json(n.http_addr(), path)? == config(&[&l1]),
        "GET {path}"
    );

    let answer = call_ok(
        n.http_addr(),
        "PUT",
        path,
        config(&[&l1, &l2]).to_string().as_bytes(),
    )?;
    ensure!(
        serde_json::from_str::<Value>(&answer)? == config(&[&l1, &l2]),
        "PUT answered {answer}"
    );
    ensure!(
        get_json(n.http_addr(), path)? == config(&[&l1, &l2]),
        "GET {path} after PUT"
    );
    wait_lookup(&l2, &ta, &[&n], &[])?;
    wait_lookup(&l2, &tb, &[&n], &["c"])?;
    wait_channel_producers(&l2, &tb, "c", &[&n])?;

    call_ok(
        n.http_addr(),
        "PUT",
        path,
        config(&[&l1]).to_string().as_bytes(),
    )?;
    // lookupd drops a producer when its connection closes.
    wait_nodes(&l2, &[], REGISTER).context("removed lookupd still has the node")?;
    wait_nodes(&l1, &[(&n, &[&ta, &tb])], REGISTER)?;
    post(n.http_addr(), &format!("/topic/create?topic={tc}"))?;
    wait_lookup(&l1, &tc, &[&n], &[])?;
    ensure!(
        lookupd_producers(l2.http_addr(), &tc)?.is_empty(),
        "removed lookupd got a new topic"
    );
    ensure!(
        node_topics(l2.http_addr(), &key(&n))?.is_none(),
        "removed lookupd lists the node"
    );
    Ok(())
}

/// nsqd nodes on their own "hosts" (network namespaces with their own
/// addresses, both on the default ports 4150/4151) register with a lookupd
/// in this namespace; a consumer finds and reads both through it.
#[test]
fn multi_host_network_namespaces() -> Result<()> {
    if let Some(why) = netns_unavailable() {
        eprintln!("SKIPPED multi_host_network_namespaces: {why}");
        return Ok(());
    }
    let net = hosts(2)?; // declared first: dropped after the daemons
    let addr = |ip: &str, port: u16| -> Result<SocketAddr> { Ok(format!("{ip}:{port}").parse()?) };
    let l = Daemon::lookupd_on(
        addr(&net.root_addr(0), 4160)?,
        addr(&net.root_addr(0), 4161)?,
        &[],
    )?;
    let lookupd_flag = format!("--lookupd-tcp-address={}", l.tcp_addr());
    let mut hosts = Vec::new();
    for (i, shards) in [(0u8, "--shards=1"), (1, "--shards=2")] {
        let ip = net.host_addr(i);
        hosts.push(Daemon::nsqd_in_netns(
            net.name(i),
            addr(&ip, 4150)?,
            addr(&ip, 4151)?,
            &[&format!("--broadcast-address={ip}"), &lookupd_flag, shards],
        )?);
    }
    let topic = unique_name("hosts");
    for (i, h) in hosts.iter().enumerate() {
        post(h.http_addr(), &format!("/topic/create?topic={topic}"))?;
        post(
            h.http_addr(),
            &format!("/channel/create?topic={topic}&channel=c"),
        )?;
        call_ok(
            h.http_addr(),
            "POST",
            &format!("/pub?topic={topic}"),
            format!("from-host-{i}").as_bytes(),
        )?;
    }
    let both: BTreeSet<String> = hosts.iter().map(|h| h.tcp_addr().to_string()).collect();
    eventually(
        REGISTER,
        "both hosts in /lookup",
        || lookupd_producers(l.http_addr(), &topic),
        |p| *p == both,
    )?;
    // Each registration came from the node's own address.
    let nodes = get_json(l.http_addr(), "/nodes")?;
    for node in nodes["producers"].as_array().into_iter().flatten() {
        let (ba, ra) = (
            node["broadcast_address"].as_str().unwrap_or(""),
            node["remote_address"].as_str().unwrap_or(""),
        );
        ensure!(
            ra.starts_with(&format!("{ba}:")),
            "node {node} registered from another address"
        );
    }

    let mut bodies = BTreeSet::new();
    for producer in lookupd_producers(l.http_addr(), &topic)? {
        let mut c = consumer(producer.parse()?, &topic, "c", 10, json!({}))?;
        let m = c.expect_message_skip_heartbeats()?;
        c.fin(&m.id)?;
        bodies.insert(String::from_utf8_lossy(&m.body).into_owned());
    }
    ensure!(
        bodies == set(&["from-host-0", "from-host-1"]),
        "consumed {bodies:?}"
    );

    hosts[0].stop()?;
    let rest: BTreeSet<String> = [hosts[1].tcp_addr().to_string()].into();
    eventually(
        REGISTER,
        "stopped host gone from /lookup",
        || lookupd_producers(l.http_addr(), &topic),
        |p| *p == rest,
    )?;
    Ok(())
}
