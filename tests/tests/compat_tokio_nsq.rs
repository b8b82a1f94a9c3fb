//! tokio-nsq (crates.io) as an in-Rust compatibility oracle: its producers
//! publish 1000 messages (PUB and MPUB) and its consumers read them back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use nsq_tests::{unique_name, TestNsqd};
use tokio_nsq::{
    NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQEvent, NSQProducerConfig, NSQTopic,
};

const TOTAL: usize = 1000;

async fn produce(addr: String, topic: Arc<NSQTopic>, bodies: Vec<Vec<u8>>) -> Result<()> {
    let mut producer = NSQProducerConfig::new(addr).build();
    match producer.consume().await {
        Some(NSQEvent::Healthy()) => {}
        other => bail!("producer: expected Healthy, got {other:?}"),
    }
    let mut commands = 0;
    for (i, chunk) in bodies.chunks(50).enumerate() {
        if i % 2 == 0 {
            for b in chunk {
                producer
                    .publish(&topic, b.clone())
                    .await
                    .map_err(|e| anyhow!("publish: {e}"))?;
                commands += 1;
            }
        } else {
            producer
                .publish_multiple(&topic, chunk.to_vec())
                .await
                .map_err(|e| anyhow!("publish_multiple: {e}"))?;
            commands += 1;
        }
    }
    for i in 0..commands {
        match producer.consume().await {
            Some(NSQEvent::Ok()) => {}
            other => bail!("producer: acknowledgement {i} of {commands}: got {other:?}"),
        }
    }
    Ok(())
}

async fn round_trip(nsqd: &TestNsqd, producers: usize, consumers: usize) -> Result<()> {
    let addr = nsqd.tcp_addr().to_string();
    let topic = NSQTopic::new(unique_name("tokio_nsq")).context("topic name")?;
    let channel = NSQChannel::new("tokio").context("channel name")?;

    // Consumers first, so delivery runs while producers publish.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<u8>, u16)>(TOTAL * 2);
    let mut consumer_tasks = Vec::new();
    for _ in 0..consumers {
        let mut consumer = NSQConsumerConfig::new(topic.clone(), channel.clone())
            .set_max_in_flight(100)
            .set_sources(NSQConsumerConfigSources::Daemons(vec![addr.clone()]))
            .build();
        let tx = tx.clone();
        consumer_tasks.push(tokio::spawn(async move {
            while let Some(message) = consumer.consume_filtered().await {
                let item = (message.body.clone(), message.attempt);
                message.finish().await;
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let per = TOTAL / producers;
    let mut producer_tasks = Vec::new();
    for p in 0..producers {
        let bodies: Vec<Vec<u8>> = (0..per)
            .map(|i| format!("p{p}-m{i}").into_bytes())
            .collect();
        producer_tasks.push(tokio::spawn(produce(addr.clone(), topic.clone(), bodies)));
    }
    for t in producer_tasks {
        t.await??;
    }

    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    while seen.values().sum::<usize>() < TOTAL {
        let (body, attempt) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "received {} of {TOTAL}, then nothing for 20 s",
                    seen.values().sum::<usize>()
                )
            })?
            .context("consumers stopped")?;
        ensure!(
            attempt == 1,
            "attempt {attempt} for {:?}",
            String::from_utf8_lossy(&body)
        );
        *seen.entry(body).or_default() += 1;
    }
    // Anything more within half a second is a duplicate.
    if let Ok(Some((body, _))) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        bail!("extra delivery of {:?}", String::from_utf8_lossy(&body));
    }
    ensure!(
        seen.len() == TOTAL,
        "{} distinct bodies for {TOTAL} messages",
        seen.len()
    );
    for t in consumer_tasks {
        t.abort();
    }
    Ok(())
}

fn run(shards: u32, producers: usize, consumers: usize) -> Result<()> {
    let nsqd = TestNsqd::start(&[&format!("--shards={shards}")])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(90),
            round_trip(&nsqd, producers, consumers),
        )
        .await
        .map_err(|_| anyhow!("tokio-nsq round trip did not finish within 90 s"))?
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

#[test]
fn tokio_nsq_round_trip_shards_1() -> Result<()> {
    run(1, 1, 1)
}

#[test]
fn tokio_nsq_round_trip_shards_2() -> Result<()> {
    run(2, 2, 2)
}
