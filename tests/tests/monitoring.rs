//! Monitoring: end-to-end processing latency in `/stats`, the statsd push,
//! and Prometheus `GET /metrics`.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nsq_tests::lookupd::TestLookupd;
use nsq_tests::scripts::{require, run_script, tests_dir};
use nsq_tests::{consumer, find_channel, find_topic, unique_name, TestNsqd};
use serde_json::{json, Value};

/// Publishes `n` messages to `topic` and has one consumer per channel
/// receive and FIN all of them.
fn publish_and_finish(nsqd: &TestNsqd, topic: &str, channels: &[&str], n: usize) -> Result<()> {
    let mut consumers = channels
        .iter()
        .map(|channel| consumer(nsqd.tcp_addr(), topic, channel, n as u32, json!({})))
        .collect::<Result<Vec<_>>>()?;
    let mut producer = nsqd.connect()?;
    for i in 0..n {
        producer.pub_ok(topic, format!("m{i}").as_bytes())?;
    }
    for c in &mut consumers {
        c.recv_and_fin(n)?;
    }
    Ok(())
}

fn latency(v: &Value) -> &Value {
    &v["e2e_processing_latency"]
}

/// `--e2e-processing-latency-percentile`: per channel and, merged over
/// its channels (on whatever cores they live), per topic, in nsqd's shape.
#[test]
fn e2e_latency_in_stats() -> Result<()> {
    let nsqd = TestNsqd::start(&["--e2e-processing-latency-percentile=1.0,0.5"])?;
    let topic = unique_name("e2e");
    let channels = ["a", "b", "c"];
    publish_and_finish(&nsqd, &topic, &channels, 10)?;

    let mut last = Value::Null;
    let done = nsq_tests::wait_until(Duration::from_secs(10), "30 samples", || {
        let stats = nsqd.stats("format=json")?;
        let t = find_topic(&stats, &topic).cloned().unwrap_or(Value::Null);
        last = t.clone();
        Ok(latency(&t)["count"] == json!(30))
    });
    ensure!(done.is_ok(), "topic latency count never reached 30: {last}");
    let t = last;
    let percentiles = latency(&t)["percentiles"]
        .as_array()
        .context("percentiles")?;
    let quantiles: Vec<f64> = percentiles
        .iter()
        .filter_map(|p| p["quantile"].as_f64())
        .collect();
    ensure!(quantiles == [1.0, 0.5], "order of configuration: {t}");
    let max = percentiles[0]["value"].as_f64().context("value")?;
    let median = percentiles[1]["value"].as_f64().context("value")?;
    ensure!(max > 0.0 && median > 0.0 && median <= max, "{t}");
    for name in channels {
        let c = find_channel(&t, name).context("channel")?;
        ensure!(latency(c)["count"] == json!(10), "{c}");
        let p = latency(c)["percentiles"].as_array().context("{c}")?;
        ensure!(p.len() == 2, "{c}");
        ensure!(p[0]["value"].as_f64().unwrap_or(0.0) <= max, "{c} vs {t}");
    }

    let text = nsqd.http_get("/stats")?.1;
    let line = text
        .lines()
        .find(|l| l.contains(&format!("[{topic}")))
        .context("topic line")?;
    ensure!(
        line.split("e2e%: ")
            .nth(1)
            .is_some_and(|v| v.contains(", ")),
        "text stats show both percentiles: {line}"
    );
    Ok(())
}

/// Without percentiles nsqd keeps no stream: `{"count":0,"percentiles":null}`
/// even after FINs.
#[test]
fn no_latency_without_percentiles() -> Result<()> {
    let nsqd = TestNsqd::start(&[])?;
    let topic = unique_name("e2e_off");
    publish_and_finish(&nsqd, &topic, &["a"], 3)?;
    let stats = nsqd.stats("format=json")?;
    // The memory block: the heap's size is real (the allocator's committed
    // memory); Go's GC figures have no equivalent and stay 0.
    let memory = &stats["memory"];
    ensure!(
        memory["heap_in_use_bytes"].as_u64().unwrap_or(0) > 0,
        "{memory}"
    );
    ensure!(memory["gc_total_runs"] == json!(0), "{memory}");
    let t = find_topic(&stats, &topic).context("topic")?;
    ensure!(
        *latency(t) == json!({"count": 0, "percentiles": null}),
        "{t}"
    );
    let c = find_channel(t, "a").context("channel")?;
    ensure!(
        *latency(c) == json!({"count": 0, "percentiles": null}),
        "{c}"
    );
    Ok(())
}

/// `GET /metrics` parses with prometheus_client's parser (PyPI) and agrees
/// with `/stats` after a known workload on two cores: publishes, FINs, a
/// requeue, a deferred message, a paused channel.
#[test]
fn metrics_parse_and_agree_with_stats() -> Result<()> {
    let python = tests_dir().join(".venv/bin/python");
    require(&python, "prometheus_client (Python venv)")?;
    let nsqd = TestNsqd::start(&[
        "--shards=2",
        "--e2e-processing-latency-percentile=0.5,0.99",
        "--mem-queue-size=5",
    ])?;
    let topic = unique_name("prom");
    // Three channels, so at least two cores own one and hand-offs happen.
    publish_and_finish(&nsqd, &topic, &["a", "b", "c"], 8)?;
    let mut producer = nsqd.connect()?;
    producer.dpub_ok(&topic, 60_000, b"later")?;
    for i in 0..12 {
        producer.pub_ok(&topic, format!("backlog{i}").as_bytes())?;
    }
    let (status, _) = nsqd.http_post(&format!("/channel/pause?topic={topic}&channel=b"), b"")?;
    ensure!(status == 200, "pause: {status}");
    // Let it settle, so /metrics and /stats read one after the other see
    // the same state: every channel has all 21 messages, and the first
    // round's consumers are gone. (What was in flight to them stays in
    // flight until its timeout, a minute away, as in nsqd.)
    let mut last = Value::Null;
    let quiet = nsq_tests::wait_until(Duration::from_secs(10), "a quiet broker", || {
        let stats = nsqd.stats("format=json")?;
        let t = find_topic(&stats, &topic).context("topic")?;
        last = t.clone();
        Ok(t["channels"].as_array().is_some_and(|cs| {
            cs.iter()
                .all(|c| c["message_count"] == json!(21) && c["client_count"] == json!(0))
        }))
    });
    quiet.with_context(|| format!("{last}"))?;

    let out = run_script(
        &python,
        &[
            tests_dir()
                .join("compat/prom_check.py")
                .display()
                .to_string(),
            "--http".into(),
            nsqd.http_addr().to_string(),
            "--quantiles".into(),
            "0.5,0.99".into(),
        ],
    )?;
    eprintln!("{out}");

    // Per-core figures: both cores listed; what was sent to consumers
    // (8 x 3) counted; nothing left in the cross-core queues once quiet.
    let text = nsqd.http_get("/metrics")?.1;
    let series = |name: &str| -> Vec<f64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect()
    };
    ensure!(series("nsqd_shard_busy_seconds_total").len() == 2, "{text}");
    let out_total: f64 = series("nsqd_shard_messages_out_total").iter().sum();
    ensure!(out_total >= 24.0, "messages out {out_total}");
    ensure!(
        series("nsqd_shard_mesh_queued").iter().all(|v| *v == 0.0),
        "{text}"
    );
    ensure!(
        series("nsqd_shard_handoffs_total").iter().sum::<f64>() > 0.0,
        "{text}"
    );
    ensure!(
        series("nsqd_fsync_duration_seconds_count").len() == 2,
        "{text}"
    );
    // Each channel's consumer finished the 8 messages of the first round.
    // It may have been sent some of the backlog before its connection
    // closed (requeued then), so deliveries are at least 8.
    for channel in ["a", "b", "c"] {
        let labels = format!("{{topic=\"{topic}\",channel=\"{channel}\"}}");
        let value = |family: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{family}{labels} ")))
                .and_then(|v| v.parse().ok())
        };
        ensure!(
            value("nsqd_channel_finished_total") == Some(8.0),
            "{channel}: {text}"
        );
        ensure!(
            value("nsqd_channel_delivered_total").is_some_and(|v| v >= 8.0),
            "{channel}: {text}"
        );
    }
    ensure!(text.contains("\nprocess_max_fds "), "{text}");
    Ok(())
}

/// `--metrics-per-client` adds per-consumer series; they are off by default.
#[test]
fn per_client_series_are_opt_in() -> Result<()> {
    for (flag, want) in [(None, false), (Some("--metrics-per-client"), true)] {
        let nsqd = TestNsqd::start(flag.as_slice())?;
        let topic = unique_name("perclient");
        publish_and_finish(&nsqd, &topic, &["a"], 2)?;
        let _c = consumer(nsqd.tcp_addr(), &topic, "a", 1, json!({"client_id": "who"}))?;
        let mut text = String::new();
        nsq_tests::wait_until(Duration::from_secs(10), "client series", || {
            text = nsqd.http_get("/metrics")?.1;
            Ok(!want || text.contains("client_id=\"who\""))
        })?;
        ensure!(
            text.contains("\nnsqd_client_ready{") == want,
            "{flag:?}: {text}"
        );
    }
    Ok(())
}

/// statsd as nsqd sends it: names under `nsq.<host_port>.`, `|c` counters
/// as deltas that add up to the messages sent, `|g` gauges, e2e
/// percentiles, memory gauges, packets within --statsd-udp-packet-size.
#[test]
fn statsd_lines_and_deltas() -> Result<()> {
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let nsqd = TestNsqd::start(&[
        &format!("--statsd-address={}", udp.local_addr()?),
        "--statsd-interval=1s",
        "--statsd-udp-packet-size=200",
        "--broadcast-address=127.0.0.1",
        "--e2e-processing-latency-percentile=0.99",
    ])?;
    let prefix = format!("nsq.127_0_0_1_{}.", nsqd.http_addr().port());
    let topic = unique_name("statsd");
    let mut channel_fin = consumer(nsqd.tcp_addr(), &topic, "c", 10, json!({}))?;
    let mut producer = nsqd.connect()?;
    for i in 0..4 {
        producer.pub_ok(&topic, format!("m{i}").as_bytes())?;
    }
    channel_fin.recv_and_fin(4)?;

    let mut sums: HashMap<String, i64> = HashMap::new();
    let mut gauges: HashMap<String, i64> = HashMap::new();
    let mut published_more = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let key = |suffix: &str| format!("{prefix}topic.{topic}.{suffix}");
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok(n) = udp.recv(&mut buf) else { continue };
        ensure!(n <= 200, "packet of {n} bytes");
        let packet = std::str::from_utf8(&buf[..n])?;
        ensure!(packet.ends_with('\n'), "{packet:?}");
        for line in packet.lines() {
            let (name, rest) = line.split_once(':').context(line.to_string())?;
            let (value, kind) = rest.split_once('|').context(line.to_string())?;
            let value: i64 = value.parse().context(line.to_string())?;
            ensure!(name.starts_with(&prefix), "{line}");
            let counter = [
                "message_count",
                "message_bytes",
                "requeue_count",
                "timeout_count",
            ]
            .iter()
            .any(|s| name.ends_with(s));
            ensure!(
                kind == if counter { "c" } else { "g" },
                "{line}: counters are |c, the rest |g"
            );
            if counter {
                *sums.entry(name.to_string()).or_default() += value;
            } else {
                gauges.insert(name.to_string(), value);
            }
        }
        let topic_count = sums.get(&key("message_count")).copied().unwrap_or(0);
        if topic_count == 4 && !published_more {
            // The next interval's deltas add the new messages only.
            for i in 0..3 {
                producer.pub_ok(&topic, format!("n{i}").as_bytes())?;
            }
            channel_fin.recv_and_fin(3)?;
            published_more = true;
        }
        if published_more
            && topic_count == 7
            && sums.get(&key("channel.c.message_count")) == Some(&7)
            && gauges.contains_key(&format!("{prefix}mem.rss_bytes"))
        {
            break;
        }
    }
    ensure!(
        sums.get(&key("message_count")) == Some(&7),
        "topic message_count deltas must add up to 7: {sums:?}"
    );
    ensure!(sums.get(&key("message_bytes")) == Some(&14), "{sums:?}");
    ensure!(
        sums.get(&key("channel.c.message_count")) == Some(&7),
        "{sums:?}"
    );
    for gauge in [
        "depth",
        "backend_depth",
        "channel.c.depth",
        "channel.c.in_flight_count",
        "channel.c.deferred_count",
        "channel.c.clients",
        "channel.c.e2e_processing_latency_99",
        "e2e_processing_latency_99",
    ] {
        ensure!(gauges.contains_key(&key(gauge)), "no {gauge}: {gauges:?}");
    }
    ensure!(
        gauges.get(&key("channel.c.clients")) == Some(&1),
        "{gauges:?}"
    );
    ensure!(
        gauges
            .get(&format!("{prefix}mem.rss_bytes"))
            .is_some_and(|v| *v > 0),
        "{gauges:?}"
    );
    ensure!(
        !gauges.keys().any(|k| k.contains("gc_")),
        "no made-up GC figures: {gauges:?}"
    );
    Ok(())
}

/// nsqlookupd's `GET /metrics`: producers, topics, channels, tombstones.
#[test]
fn lookupd_metrics() -> Result<()> {
    let lookupd = TestLookupd::start(&[])?;
    let nsqd = TestNsqd::start(&[
        &format!("--lookupd-tcp-address={}", lookupd.tcp_addr()),
        "--broadcast-address=127.0.0.1",
    ])?;
    let topic = unique_name("lkm");
    nsqd.http_post(&format!("/topic/create?topic={topic}"), b"")?;
    nsqd.http_post(&format!("/channel/create?topic={topic}&channel=c"), b"")?;
    let node = format!("127.0.0.1:{}", nsqd.http_addr().port());
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
    };
    let mut text = String::new();
    nsq_tests::wait_until(Duration::from_secs(10), "registration", || {
        text = lookupd.request("GET", "/metrics")?.text();
        Ok(value(&text, "nsqlookupd_channels") == Some(1.0))
    })?;
    ensure!(text.contains("# TYPE nsqlookupd_producers gauge"), "{text}");
    ensure!(value(&text, "nsqlookupd_producers") == Some(1.0), "{text}");
    ensure!(value(&text, "nsqlookupd_topics") == Some(1.0), "{text}");
    ensure!(value(&text, "nsqlookupd_tombstones") == Some(0.0), "{text}");
    let r = lookupd.request(
        "POST",
        &format!("/topic/tombstone?topic={topic}&node={node}"),
    )?;
    ensure!(r.status == 200, "tombstone: {}", r.status);
    let text = lookupd.request("GET", "/metrics")?.text();
    ensure!(value(&text, "nsqlookupd_tombstones") == Some(1.0), "{text}");
    Ok(())
}

/// `--e2e-processing-latency-window-time`: samples leave the quantiles once
/// they are older than the window (nsqd's two half-window streams), while
/// the Prometheus `_count` keeps counting up.
#[test]
fn e2e_window_forgets_old_samples() -> Result<()> {
    let nsqd = TestNsqd::start(&[
        "--e2e-processing-latency-percentile=0.99",
        "--e2e-processing-latency-window-time=1s",
    ])?;
    let topic = unique_name("e2e_window");
    publish_and_finish(&nsqd, &topic, &["a"], 3)?;
    let count = || -> Result<Value> {
        let stats = nsqd.stats("format=json")?;
        let t = find_topic(&stats, &topic).context("topic")?;
        Ok(latency(find_channel(t, "a").context("channel")?)["count"].clone())
    };
    nsq_tests::wait_until(Duration::from_secs(10), "3 samples", || {
        Ok(count()? == json!(3))
    })?;
    nsq_tests::wait_until(Duration::from_secs(10), "the window to empty", || {
        Ok(count()? == json!(0))
    })?;
    let text = nsqd.http_get("/metrics")?.1;
    let line = format!(
        "nsqd_channel_e2e_processing_latency_seconds_count{{topic=\"{topic}\",channel=\"a\"}} 3"
    );
    ensure!(text.lines().any(|l| l == line), "no {line:?} in {text}");
    Ok(())
}

/// `--statsd-exclude-ephemeral`: no line for `#ephemeral` topics or
/// channels, the others as usual.
#[test]
fn statsd_excludes_ephemeral() -> Result<()> {
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let nsqd = TestNsqd::start(&[
        &format!("--statsd-address={}", udp.local_addr()?),
        "--statsd-interval=1s",
        "--statsd-exclude-ephemeral=true",
    ])?;
    let topic = unique_name("statsd_eph");
    let ephemeral_topic = format!("{}#ephemeral", unique_name("statsd_eph"));
    let _keep = consumer(nsqd.tcp_addr(), &topic, "x#ephemeral", 1, json!({}))?;
    let _keep_too = consumer(nsqd.tcp_addr(), &ephemeral_topic, "y", 1, json!({}))?;
    nsqd.http_post(&format!("/channel/create?topic={topic}&channel=kept"), b"")?;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok(n) = udp.recv(&mut buf) else { continue };
        seen.push_str(std::str::from_utf8(&buf[..n])?);
        if seen.contains(&format!(".topic.{topic}.channel.kept.depth:")) {
            break;
        }
    }
    ensure!(
        seen.contains(&format!(".topic.{topic}.channel.kept.depth:")),
        "the plain channel is sent: {seen}"
    );
    ensure!(
        !seen.contains("#ephemeral"),
        "ephemeral names are skipped: {seen}"
    );
    Ok(())
}
