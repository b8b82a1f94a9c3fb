//! Disk persistence (issue 4): overflow past `--mem-queue-size`, graceful
//! restart with in-flight and deferred messages, kill -9 under load with
//! `--mem-queue-size=0` (with and without `--ack-after-fsync`), metadata
//! after kill -9, `#ephemeral` names off disk, and `/ping`.
//!
//! No timing assertions beyond generous protocol bounds: a deferred message
//! must not arrive a whole second before its due time; every wait is bounded.
//! The kill -9 tests print their random seed (`PERSIST_SEED` repeats a run).

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::persist::{self, all_known, body, drain, exactly_once, show, Rng};
use nsq_tests::{consumer, unique_name, wait_until, TestNsqd};
use serde_json::{json, Value};

fn post_ok(nsqd: &TestNsqd, paths: &[String]) -> Result<()> {
    for path in paths {
        let (st, body) = nsqd.http_post(path, b"")?;
        ensure!(st == 200, "POST {path}: {st} {body}");
    }
    Ok(())
}

fn create(nsqd: &TestNsqd, topic: &str, channel: &str) -> Result<()> {
    post_ok(
        nsqd,
        &[
            format!("/topic/create?topic={topic}"),
            format!("/channel/create?topic={topic}&channel={channel}"),
        ],
    )
}

fn ping_ok(nsqd: &TestNsqd, when: &str) -> Result<()> {
    let (st, body) = nsqd.http_get("/ping")?;
    ensure!(st == 200 && body == "OK", "GET /ping {when}: {st} {body:?}");
    Ok(())
}

/// Polls the stats of `topic/ch` until `pred` holds (at most `secs`).
fn wait_ch(
    nsqd: &TestNsqd,
    topic: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let mut last = None;
    wait_until(Duration::from_secs(secs), "channel stats", || {
        last = nsqd.channel_stats(topic, "ch")?;
        Ok(last.as_ref().is_some_and(&pred))
    })
    .with_context(|| format!("last stats of {topic}/ch: {last:?}"))?;
    Ok(last.unwrap())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

// ---------------------------------------------------------------------------
// 1. Overflow to disk and a graceful restart
// ---------------------------------------------------------------------------

/// 100,000 messages (MPUB of 100) through `--mem-queue-size=100` with 1 MiB
/// segments, SIGTERM, start on the same data dir: every body exactly once,
/// `backend_depth` right, consumed segments deleted.
#[test]
fn overflow_100k_survives_graceful_restart() -> Result<()> {
    const TOTAL: u64 = 100_000;
    let mut nsqd = TestNsqd::start(&["--mem-queue-size=100", "--max-bytes-per-file=1048576"])?;
    let topic = unique_name("overflow");
    create(&nsqd, &topic, "ch")?;
    let started = Instant::now();
    let mut p = nsqd.connect()?;
    let mut sent = HashSet::with_capacity(TOTAL as usize);
    for batch in 0..TOTAL / 100 {
        let bodies: Vec<Vec<u8>> = (batch * 100..(batch + 1) * 100)
            .map(|n| body("m", n, 64))
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
        p.mpub_ok(&topic, &refs)
            .with_context(|| format!("MPUB batch {batch}"))?;
        sent.extend(bodies);
    }
    ensure!(sent.len() == TOTAL as usize);
    eprintln!("published {TOTAL} in {:?}", started.elapsed());
    wait_ch(&nsqd, &topic, 30, |c| c["depth"] == TOTAL)?;
    let prefixes = vec![format!("{topic}~"), format!("{topic}:")];
    let before = persist::segments(nsqd.data_path(), &prefixes)?;
    ensure!(
        before.len() >= 4,
        "~10 MB past the memory queue must roll 1 MiB segments: {before:?}"
    );

    nsqd.restart()?;
    ping_ok(&nsqd, "after restart")?;
    let ch = wait_ch(&nsqd, &topic, 30, |c| c["depth"] == TOTAL)?;
    let backend = ch["backend_depth"].as_u64().unwrap_or(0);
    ensure!(
        backend + 100 >= TOTAL && backend <= TOTAL,
        "at most --mem-queue-size=100 of {TOTAL} in memory, the rest on disk: {ch}"
    );
    let started = Instant::now();
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 500, json!({}))?;
    let d = drain(&mut c, &sent, secs(60), ms(500))?;
    eprintln!("consumed {} in {:?}", d.seen.len(), started.elapsed());
    exactly_once(&d, &sent).context("after a graceful restart")?;
    c.barrier()?;
    wait_ch(&nsqd, &topic, 10, |c| {
        c["depth"] == 0 && c["in_flight_count"] == 0
    })?;
    let mut after = Vec::new();
    wait_until(secs(10), "consumed segments deleted", || {
        after = persist::segments(nsqd.data_path(), &prefixes)?;
        Ok(after.len() <= 2 * prefixes.len() + 1)
    })
    .with_context(|| format!("before consuming: {before:?}\nafter: {after:?}"))?;
    ping_ok(&nsqd, "after draining")
}

// ---------------------------------------------------------------------------
// 2. Graceful shutdown with in-flight and deferred messages
// ---------------------------------------------------------------------------

/// In flight (delivered, not FINished), REQ'd with 3 s, DPUB'd with 3 s and
/// queued messages, SIGTERM ~0.5 s later, start: all delivered again, the
/// deferred ones not before their remaining delay, FINished ones never,
/// attempts kept.
#[test]
fn sigterm_keeps_in_flight_and_deferred() -> Result<()> {
    let mut nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("graceful");
    let group = |tag: &str, n: u64| -> Vec<Vec<u8>> { (0..n).map(|i| body(tag, i, 40)).collect() };
    let (inflight, reqd, done) = (group("inflight", 5), group("req", 3), group("done", 3));
    let (dpub, queued) = (group("dpub", 3), group("queued", 5));

    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 0, json!({}))?;
    let mut p = nsqd.connect()?;
    for b in inflight.iter().chain(&reqd).chain(&done) {
        p.pub_ok(&topic, b)?;
    }
    c.rdy(11)?;
    let mut got = HashMap::new();
    for i in 0..11 {
        let m = c
            .expect_message()
            .with_context(|| format!("message {i} of 11"))?;
        got.insert(m.body.to_vec(), m.id);
    }
    for b in &done {
        c.fin(got.get(b).context("a `done` body was not delivered")?)?;
    }
    let t0 = Instant::now();
    for b in &reqd {
        c.req(got.get(b).context("a `req` body was not delivered")?, 3000)?;
    }
    c.rdy(0)?;
    c.barrier()?;
    for b in &dpub {
        p.dpub_ok(&topic, 3000, b)?;
    }
    for b in &queued {
        p.pub_ok(&topic, b)?;
    }
    nsqd.wait_channel(&topic, "ch", "5 in flight, 6 deferred, 5 queued", |ch| {
        ch["in_flight_count"] == 5 && ch["deferred_count"] == 6 && ch["depth"] == 5
    })?;
    thread::sleep((t0 + ms(500)).saturating_duration_since(Instant::now()));

    nsqd.restart()?;
    let restarted = t0.elapsed();
    let want: HashSet<Vec<u8>> = [&inflight, &reqd, &dpub, &queued]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 50, json!({}))?;
    let d = drain(&mut c, &want, secs(30), ms(500))?;
    exactly_once(&d, &want)
        .context("after a graceful restart (the FINished ones must not come back)")?;
    let seen = d.seen;
    for b in reqd.iter().chain(&dpub) {
        let at = seen[b].first.duration_since(t0);
        ensure!(
            at >= secs(2),
            "{} deferred by 3 s at t0 arrived at t0+{at:?} (restart done at t0+{restarted:?}): \
             the remaining delay was lost",
            show(b)
        );
    }
    for (group, want) in [(&inflight, 2), (&reqd, 2), (&dpub, 1), (&queued, 1)] {
        for b in group {
            let a = seen[b].attempts;
            ensure!(
                a == want,
                "{}: attempts {a}, expected {want} (attempts are kept)",
                show(b)
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3-4. kill -9 with --mem-queue-size=0 (with and without --ack-after-fsync)
// ---------------------------------------------------------------------------

/// `cycles` times: start the load (three producers with PUB, MPUB and DPUB
/// 2 s; a consumer that holds some in flight, REQs some with 2 s and FINs
/// the rest), SIGKILL after a random 200-1500 ms, start on the same data
/// dir, consume until every acknowledged and not FINished body arrived.
/// Finally a graceful restart must bring back nothing that was FINished.
fn kill_cycles(args: &[&str], cycles: usize) -> Result<()> {
    let test_start = Instant::now();
    let mut rng = Rng::from_env_or_clock();
    let mut nsqd = TestNsqd::start(args)?;
    let topic = unique_name("crash");
    create(&nsqd, &topic, "ch")?;
    let (mut all_attempted, mut finished) = (HashSet::new(), HashSet::new());
    let (mut fin_failed, mut last, mut early) = (0usize, None, Vec::new());
    for cycle in 0..cycles {
        if cycle > 0 && test_start.elapsed() > secs(40) {
            break; // keep the test well under a minute on a slow machine
        }
        let (load, threads) = persist::start_load(nsqd.tcp_addr(), &topic, cycle, rng.next_u64())?;
        let delay = ms(rng.range(200, 1500));
        thread::sleep(delay);
        let kill_at = Instant::now();
        let l = persist::end_load(load, threads, || nsqd.kill())?;
        ensure!(
            l.errors.is_empty(),
            "cycle {cycle}: before the kill: {:?}",
            l.errors
        );
        ensure!(
            !l.acked.is_empty(),
            "cycle {cycle}: nothing acknowledged in {delay:?}"
        );
        all_attempted.extend(l.attempted.iter().cloned());

        nsqd.restart()
            .with_context(|| format!("cycle {cycle}: start after kill -9"))?;
        let restarted = kill_at.elapsed();
        let must: HashSet<Vec<u8>> = l.acked.difference(&l.fin_sent).cloned().collect();
        let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 200, json!({}))?;
        let d = drain(&mut c, &must, secs(30), ms(700)).with_context(|| {
            format!(
                "cycle {cycle} (kill after {delay:?}, {args:?}): acknowledged {}, FIN sent {}, \
                 held {}, REQ'd {}, DPUB'd {}",
                l.acked.len(),
                l.fin_sent.len(),
                l.held,
                l.req_at.len(),
                l.dpub_at.len()
            )
        })?;
        all_known(&d.seen, &all_attempted).with_context(|| format!("cycle {cycle}"))?;
        fin_failed += d.fin_failed.len();
        let (mut dups, mut replayed, mut unacked) = (0, 0, 0);
        for (b, a) in &d.seen {
            dups += a.count - 1;
            if l.fin_sent.contains(b) || finished.contains(b) {
                replayed += 1;
            } else if !l.acked.contains(b) {
                unacked += 1;
            }
            if let Some(at) = l.dpub_at.get(b) {
                let after = a.first.duration_since(*at);
                if after < secs(1) {
                    early.push(format!(
                        "cycle {cycle}: DPUB 2 s {} after {after:?}",
                        show(b)
                    ));
                }
            }
            // A REQ sent just before the kill may never have been processed:
            // then the message is merely in flight and comes back at once.
            match l.req_at.get(b) {
                Some(at) if must.contains(b) && *at + ms(500) <= kill_at => {
                    let after = a.first.duration_since(*at);
                    if after < secs(1) {
                        early.push(format!(
                            "cycle {cycle}: REQ 2 s {} after {after:?}",
                            show(b)
                        ));
                    }
                }
                _ => {}
            }
        }
        eprintln!(
            "cycle {cycle}: killed after {delay:?}, restarted in {restarted:?}; acknowledged {} \
             (DPUB {}), FIN sent {}, held {}, REQ'd {}; must arrive {}, arrived {} distinct; \
             duplicates: {dups} extra copies, {replayed} FINished ones replayed; {unacked} \
             unacknowledged delivered; {} FINs refused (E_FIN_FAILED)",
            l.acked.len(),
            l.dpub_at.len(),
            l.fin_sent.len(),
            l.held,
            l.req_at.len(),
            must.len(),
            d.seen.len(),
            d.fin_failed.len()
        );
        finished.extend(d.seen.into_keys());
        finished.extend(l.fin_sent);
        last = Some(c);
    }
    // Let late deferred copies arrive (and be FINished) on the last
    // consumer. Then everything delivered was FINished and the consumer is
    // still connected, its FINs long sent: a graceful restart must bring
    // none of it back. A replayed record never released would pin the
    // queue's committed position and come back on every start.
    if let Some(c) = last.as_mut() {
        let late = drain(c, &HashSet::new(), secs(10), ms(2500))?;
        finished.extend(late.seen.into_keys());
    }
    nsqd.restart()
        .context("graceful restart after the last cycle")?;
    drop(last);
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 200, json!({}))?;
    let d = drain(&mut c, &HashSet::new(), secs(5), ms(1500))?;
    let back: Vec<String> = d
        .seen
        .keys()
        .filter(|b| finished.contains(*b))
        .map(|b| show(b))
        .collect();
    let mut problems = Vec::new();
    if !early.is_empty() {
        problems.push(format!(
            "{} deferred messages delivered a second or more before their due time \
             (first: {:?})",
            early.len(),
            &early[..early.len().min(3)]
        ));
    }
    if !back.is_empty() {
        problems.push(format!(
            "{} FINished bodies delivered again after a final graceful restart (first: {:?}); \
             {fin_failed} FINs were refused with E_FIN_FAILED in the post-crash drains",
            back.len(),
            &back[..back.len().min(5)]
        ));
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

#[test]
fn kill9_under_load_mem_queue_0() -> Result<()> {
    kill_cycles(
        &[
            "--mem-queue-size=0",
            "--shards=1",
            "--max-bytes-per-file=524288",
        ],
        3,
    )
}

#[test]
fn kill9_under_load_mem_queue_0_two_shards() -> Result<()> {
    kill_cycles(
        &[
            "--mem-queue-size=0",
            "--shards=2",
            "--max-bytes-per-file=524288",
        ],
        3,
    )
}

#[test]
fn kill9_under_load_ack_after_fsync() -> Result<()> {
    let args = [
        "--mem-queue-size=0",
        "--ack-after-fsync",
        "--shards=2",
        "--max-bytes-per-file=524288",
    ];
    kill_cycles(&args, 3)
}

/// The crash cycle without randomness: 100 messages delivered, 90
/// FINished, 10 REQ'd with 3 s, 5 DPUB'd with 3 s, kill -9 right after
/// (before positions are synced), start: the deferred ones arrive, not
/// before their due time; replays of FINished ones are allowed, but each
/// delivery can be FINished, and once all are, a graceful restart delivers
/// nothing. Every problem found is reported together.
#[test]
fn kill9_right_after_fin_req_dpub() -> Result<()> {
    let mut nsqd = TestNsqd::start(&["--mem-queue-size=0", "--shards=1"])?;
    let topic = unique_name("settle");
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 0, json!({}))?;
    let mut p = nsqd.connect()?;
    let all: Vec<Vec<u8>> = (0..100).map(|i| body("s", i, 24)).collect();
    let dpub: Vec<Vec<u8>> = (0..5).map(|i| body("dpub", i, 24)).collect();
    for b in &all {
        p.pub_ok(&topic, b)?;
    }
    c.rdy(100)?;
    let msgs = (0..100)
        .map(|_| c.expect_message())
        .collect::<Result<Vec<_>>>()?;
    let t0 = Instant::now();
    let mut deferred = HashSet::new();
    for (i, m) in msgs.iter().enumerate() {
        if i % 10 == 3 {
            c.req(&m.id, 3000)?;
            deferred.insert(m.body.to_vec());
        } else {
            c.fin(&m.id)?;
        }
    }
    for b in &dpub {
        p.dpub_ok(&topic, 3000, b)?;
        deferred.insert(b.clone());
    }
    c.barrier()?;
    nsqd.kill();
    nsqd.restart()?;
    let restarted = t0.elapsed();
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 200, json!({}))?;
    let d = drain(&mut c, &deferred, secs(15), ms(1000))?;
    let known: HashSet<Vec<u8>> = all.iter().chain(&dpub).cloned().collect();
    all_known(&d.seen, &known)?;
    let copies: u32 = d.seen.values().map(|a| a.count).sum();
    eprintln!(
        "after kill -9 (restarted at t0+{restarted:?}): {} distinct bodies, {copies} deliveries, \
         {} FINs refused",
        d.seen.len(),
        d.fin_failed.len()
    );
    let mut problems = Vec::new();
    for b in &deferred {
        let at = d.seen[b].first.duration_since(t0);
        if at < secs(2) {
            problems.push(format!(
                "{} deferred 3 s at t0 arrived at t0+{at:?}",
                show(b)
            ));
        }
    }
    if !d.fin_failed.is_empty() {
        let n = d.fin_failed.len();
        problems.push(format!(
            "{n} FINs of delivered messages refused: {:?}",
            &d.fin_failed[..n.min(3)]
        ));
    }
    nsqd.restart()?;
    drop(c);
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 200, json!({}))?;
    let again = drain(&mut c, &HashSet::new(), secs(5), ms(1000))?;
    if !again.seen.is_empty() {
        let n = again.seen.len();
        problems.push(format!(
            "{n} FINished messages delivered again after a graceful restart"
        ));
    }
    ensure!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Metadata after kill -9
// ---------------------------------------------------------------------------

type TopicState = Option<(bool, Vec<(String, bool)>)>;

/// `(paused, [(channel, paused)])` of a topic from `/stats`.
fn stats_state(nsqd: &TestNsqd, topic: &str) -> Result<TopicState> {
    let Some(t) = nsqd.topic_stats(topic)? else {
        return Ok(None);
    };
    let mut channels: Vec<(String, bool)> = t["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["channel_name"].as_str().unwrap_or_default().to_string(),
                c["paused"] == true,
            )
        })
        .collect();
    channels.sort();
    Ok(Some((t["paused"] == true, channels)))
}

/// Waits until `nsqd.dat` shows `expected` (it is written on every change),
/// kills the broker, starts it on the same data dir, and compares `/stats`.
fn kill_and_check(nsqd: &mut TestNsqd, expected: &[(&str, TopicState)]) -> Result<()> {
    let matches = |meta: &Value| {
        expected
            .iter()
            .all(|(t, want)| &persist::meta_topic(meta, t) == want)
    };
    wait_until(secs(10), "nsqd.dat written after the change", || {
        Ok(persist::read_metadata(nsqd.data_path()).is_some_and(|m| matches(&m)))
    })
    .with_context(|| format!("nsqd.dat: {:?}", persist::read_metadata(nsqd.data_path())))?;
    nsqd.kill();
    nsqd.restart().context("start after kill -9")?;
    for (topic, want) in expected {
        let got = stats_state(nsqd, topic)?;
        ensure!(
            &got == want,
            "{topic} after kill -9: expected {want:?}, got {got:?}"
        );
    }
    Ok(())
}

#[test]
fn metadata_survives_kill9() -> Result<()> {
    let mut nsqd = TestNsqd::start(&["--shards=2"])?;
    let (a, b, c) = (
        unique_name("meta_a"),
        unique_name("meta_b"),
        unique_name("meta_c"),
    );
    post_ok(
        &nsqd,
        &[
            format!("/topic/create?topic={a}"),
            format!("/channel/create?topic={a}&channel=a1"),
            format!("/channel/create?topic={a}&channel=a2"),
            format!("/channel/pause?topic={a}&channel=a1"),
            format!("/topic/create?topic={b}"),
            format!("/topic/pause?topic={b}"),
        ],
    )?;
    let held = [
        consumer(nsqd.tcp_addr(), &b, "b1", 0, json!({}))?,
        consumer(nsqd.tcp_addr(), &b, "e#ephemeral", 0, json!({}))?,
    ];
    nsqd.connect()?.pub_ok(&c, b"creates the topic")?;
    let ch = |n: &str, p: bool| (n.to_string(), p);
    kill_and_check(
        &mut nsqd,
        &[
            (&a, Some((false, vec![ch("a1", true), ch("a2", false)]))),
            (&b, Some((true, vec![ch("b1", false)]))),
            (&c, Some((false, vec![]))),
        ],
    )?;
    drop(held);
    post_ok(
        &nsqd,
        &[
            format!("/topic/unpause?topic={b}"),
            format!("/topic/pause?topic={a}"),
            format!("/channel/unpause?topic={a}&channel=a1"),
            format!("/channel/pause?topic={b}&channel=b1"),
            format!("/channel/delete?topic={a}&channel=a2"),
            format!("/topic/delete?topic={c}"),
        ],
    )?;
    kill_and_check(
        &mut nsqd,
        &[
            (&a, Some((true, vec![ch("a1", false)]))),
            (&b, Some((false, vec![ch("b1", true)]))),
            (&c, None),
        ],
    )
}

// ---------------------------------------------------------------------------
// 6. #ephemeral never on disk
// ---------------------------------------------------------------------------

/// Ephemeral channels (of a durable and of an ephemeral topic) and an
/// ephemeral topic past `--mem-queue-size`: overflow dropped, no file
/// before or after SIGTERM, not in `nsqd.dat`; the durable channel next to
/// them overflows to disk (so the check looks at the right place).
#[test]
fn ephemeral_leaves_no_files() -> Result<()> {
    let mut nsqd = TestNsqd::start(&["--mem-queue-size=10"])?;
    let durable = unique_name("eph_dur");
    let eph = format!("{}#ephemeral", unique_name("eph_top"));
    create(&nsqd, &durable, "dur")?;
    let _held = [
        consumer(nsqd.tcp_addr(), &durable, "ch#ephemeral", 0, json!({}))?,
        consumer(nsqd.tcp_addr(), &eph, "ch#ephemeral", 0, json!({}))?,
    ];
    let mut p = nsqd.connect()?;
    for i in 0..50 {
        p.pub_ok(&durable, &body("d", i, 32))?;
        p.pub_ok(&eph, &body("e", i, 32))
            .context("overflow of an #ephemeral topic is dropped, not refused")?;
    }
    nsqd.wait_channel(&durable, "dur", "the durable channel keeps all 50", |c| {
        c["depth"] == 50
    })?;
    for t in [&durable, &eph] {
        let ch = nsqd
            .channel_stats(t, "ch#ephemeral")?
            .context("ephemeral channel")?;
        ensure!(
            ch["depth"].as_u64().unwrap_or(99) <= 10 && ch["backend_depth"] == 0,
            "an ephemeral channel keeps only its memory queue: {t}: {ch}"
        );
    }
    let dir = nsqd.data_path().to_path_buf();
    let check = |when: &str| -> Result<()> {
        let names = persist::file_names(&dir)?;
        ensure!(
            names
                .iter()
                .any(|n| n.starts_with(&format!("{durable}:dur~"))),
            "{when}: the durable channel's overflow is on disk: {names:?}"
        );
        let bad: Vec<&String> = names.iter().filter(|n| n.contains("ephemeral")).collect();
        ensure!(
            bad.is_empty(),
            "{when}: #ephemeral files in the data dir: {bad:?}"
        );
        Ok(())
    };
    check("running")?;
    let status = nsqd.stop()?;
    ensure!(status.success(), "SIGTERM: {status}");
    check("after SIGTERM")?;
    let dat = std::fs::read_to_string(dir.join("nsqd.dat")).context("nsqd.dat")?;
    ensure!(
        dat.contains(&durable) && !dat.contains("ephemeral"),
        "nsqd.dat: {dat}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. /ping
// ---------------------------------------------------------------------------

/// `/ping` stays `200 OK` while every message goes through disk, across a
/// graceful restart and a kill -9. The unhealthy side (a full disk or an I/O
/// error answered with E_PUB_FAILED / HTTP 500 and `/ping` 500) needs a
/// failing filesystem, which cannot be set up here without root (no small
/// tmpfs or fault-injecting mount); the io crate's fault-injection unit
/// tests cover the store's side of it.
#[test]
fn ping_healthy_with_disk_queues() -> Result<()> {
    let mut nsqd = TestNsqd::start(&["--mem-queue-size=0"])?;
    let topic = unique_name("ping");
    ping_ok(&nsqd, "at start")?;
    let bodies: Vec<Vec<u8>> = (0..1000).map(|i| body("p", i, 32)).collect();
    let mut p = nsqd.connect()?;
    for chunk in bodies.chunks(100) {
        let refs: Vec<&[u8]> = chunk.iter().map(|b| b.as_slice()).collect();
        p.mpub_ok(&topic, &refs)?;
    }
    let (st, text) = nsqd.http_post(&format!("/pub?topic={topic}"), b"via-http")?;
    ensure!(st == 200, "HTTP /pub: {st} {text}");
    ping_ok(&nsqd, "after publishing")?;
    let health = nsqd.stats("")?["health"].clone();
    ensure!(
        health.is_null() || health == "OK",
        "/stats health: {health}"
    );

    // The topic's messages go to its first channel.
    let all: HashSet<Vec<u8>> = bodies
        .iter()
        .cloned()
        .chain([b"via-http".to_vec()])
        .collect();
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 500, json!({}))?;
    let first = (0..500)
        .map(|_| c.expect_message())
        .collect::<Result<Vec<_>>>()?;
    c.rdy(0)?;
    for m in &first {
        c.fin(&m.id)?;
    }
    c.barrier()?;
    ping_ok(&nsqd, "after consuming half")?;
    drop(c);
    nsqd.restart()?;
    ping_ok(&nsqd, "after a graceful restart")?;
    nsqd.kill();
    nsqd.restart()?;
    ping_ok(&nsqd, "after kill -9")?;
    let first: HashSet<Vec<u8>> = first.iter().map(|m| m.body.to_vec()).collect();
    let rest: HashSet<Vec<u8>> = all.difference(&first).cloned().collect();
    let mut c = consumer(nsqd.tcp_addr(), &topic, "ch", 100, json!({}))?;
    let d = drain(&mut c, &rest, secs(20), ms(300))?;
    if let Err(e) = all_known(&d.seen, &all) {
        bail!("after kill -9: {e:#}");
    }
    ping_ok(&nsqd, "after draining")
}
