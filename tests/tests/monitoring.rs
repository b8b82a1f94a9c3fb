//! Monitoring: end-to-end processing latency in `/stats`, the statsd push,
//! and Prometheus `GET /metrics`.

use anyhow::{ensure, Context, Result};
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
    let done = nsq_tests::wait_until(std::time::Duration::from_secs(10), "30 samples", || {
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
