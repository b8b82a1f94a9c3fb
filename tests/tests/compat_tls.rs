//! Real third-party clients over nsqd's connection upgrades: TLS (in-band,
//! after IDENTIFY `tls_v1`), snappy and deflate, alone and TLS plus one of
//! them. nsqjs (Node) and pynsq (Python) run as scripts
//! (`tests/compat/nsqjs_tls_check.js`, `tests/compat/pynsq_tls_check.py`,
//! installed by `./tests/run.sh` as for `compat_scripts.rs`); tokio-nsq runs
//! in-process. Each publishes messages (small, large, incompressible; only
//! small for pynsq with compression, see [`pynsq`]), consumes them on one or
//! more channels and compares every body; `/stats` must show each client
//! with the negotiated upgrades while it is connected. TLS runs use
//! `--tls-required=tcp-https`, so a client that passes really upgraded.
//!
//! nsqjs and pynsq verify nsqd's certificate against the test CA. tokio-nsq
//! 0.14 takes a custom `rustls` 0.19 `ClientConfig` only, which this crate
//! does not depend on, so its TLS runs with tokio-nsq's default: encrypted,
//! server certificate not verified.
//!
//! On a 2-shard nsqd, consumers on 8 channels with TLS and compression
//! mostly move to another core at SUB (each channel is owned by one core),
//! taking their TLS session and compressor along.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use nsq_tests::tls::TestCerts;
use nsq_tests::{find_topic, unique_name, wait_until, TestNsqd};
use serde_json::Value;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConfigSharedCompression, NSQConfigSharedTLS, NSQConsumerConfig,
    NSQConsumerConfigSources, NSQDeflateLevel, NSQEvent, NSQProducerConfig, NSQTopic,
};

use nsq_tests::scripts::{require, run_script, tests_dir};

/// The upgrades a client asks for.
#[derive(Clone, Copy, Debug)]
struct Layers {
    tls: bool,
    snappy: bool,
    deflate: bool,
}

const TLS: Layers = Layers {
    tls: true,
    snappy: false,
    deflate: false,
};
const SNAPPY: Layers = Layers {
    tls: false,
    snappy: true,
    deflate: false,
};
const DEFLATE: Layers = Layers {
    tls: false,
    snappy: false,
    deflate: true,
};
const TLS_SNAPPY: Layers = Layers {
    tls: true,
    snappy: true,
    deflate: false,
};
const TLS_DEFLATE: Layers = Layers {
    tls: true,
    snappy: false,
    deflate: true,
};

impl Layers {
    /// Script flags for these layers.
    fn script_flags(self, certs: &TestCerts) -> Vec<String> {
        let mut flags = Vec::new();
        if self.tls {
            flags.push("--tls".into());
            flags.push("--ca".into());
            flags.push(certs.path("ca.pem").display().to_string());
        }
        if self.snappy {
            flags.push("--snappy".into());
        }
        if self.deflate {
            flags.extend(["--deflate".into(), "--deflate-level".into(), "3".into()]);
        }
        flags
    }

    /// What is wrong with a client's `/stats` entry, if anything.
    fn mismatch(self, client: &Value) -> Option<String> {
        for (key, want) in [
            ("tls", self.tls),
            ("snappy", self.snappy),
            ("deflate", self.deflate),
        ] {
            if client[key] != want {
                return Some(format!(
                    "{key} is {}, expected {want}: {client}",
                    client[key]
                ));
            }
        }
        if self.tls && client["tls_version"].as_str().unwrap_or("").is_empty() {
            return Some(format!("tls without tls_version: {client}"));
        }
        None
    }
}

/// nsqd with the test certificates and `extra` flags.
fn start(certs: &TestCerts, extra: &[&str]) -> Result<TestNsqd> {
    let args = certs.nsqd_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestNsqd::start(&args)
}

// ---------------------------------------------------------------------------
// nsqjs and pynsq scripts (as in compat_scripts.rs)
// ---------------------------------------------------------------------------

/// A script run: which client, on which nsqd, with what.
struct ScriptRun<'a> {
    script: &'a str,
    nsqd: &'a TestNsqd,
    certs: &'a TestCerts,
    layers: Layers,
    channels: u32,
    count: u32,
    /// More flags (e.g. a client certificate).
    extra: Vec<String>,
}

impl ScriptRun<'_> {
    fn args(&self, prefix: &str) -> Vec<String> {
        let mut args = vec![
            tests_dir()
                .join("compat")
                .join(self.script)
                .display()
                .to_string(),
            "--tcp".into(),
            self.nsqd.tcp_addr().to_string(),
            "--http".into(),
            self.nsqd.http_addr().to_string(),
            "--topic".into(),
            unique_name(prefix),
            "--channels".into(),
            self.channels.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--timeout".into(),
            "60".into(),
        ];
        args.extend(self.layers.script_flags(self.certs));
        args.extend(self.extra.iter().cloned());
        args
    }
}

fn nsqjs(run: ScriptRun) -> Result<()> {
    require(
        &tests_dir().join("compat/node_modules/nsqjs"),
        "nsqjs (node_modules)",
    )?;
    let out = run_script(Path::new("node"), &run.args("nsqjs_tls"))?;
    eprintln!("{out}");
    Ok(())
}

fn python() -> Result<PathBuf> {
    let python = tests_dir().join(".venv/bin/python");
    require(&python, "pynsq (Python venv)")?;
    Ok(python)
}

/// pynsq; with snappy or deflate, short bodies only: pynsq 0.9.1 drops the
/// connection when one socket read decompresses to nothing, which large
/// bodies make likely (nsqio/pynsq#258; see the script).
fn pynsq(run: ScriptRun) -> Result<()> {
    let python = python()?;
    let mut args = run.args("pynsq_tls");
    if run.layers.snappy || run.layers.deflate {
        args.push("--small".into());
    }
    let out = run_script(&python, &args)?;
    eprintln!("{out}");
    Ok(())
}

/// pynsq's snappy needs the `python-snappy` package in the venv; without it
/// these tests say so and pass (tests/compat/requirements.txt decides).
fn pynsq_has_snappy() -> Result<bool> {
    let python = python()?;
    let status = Command::new(&python)
        .args(["-c", "import snappy; snappy.StreamDecompressor"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        eprintln!(
            "SKIPPED: python-snappy is not installed in tests/.venv \
             (not in tests/compat/requirements.txt): pynsq cannot use snappy"
        );
    }
    Ok(status.success())
}

/// One script run on a fresh 1-shard nsqd (`nsqd_extra` flags added).
fn script_once(
    client: fn(ScriptRun) -> Result<()>,
    script: &str,
    layers: Layers,
    nsqd_extra: &[&str],
) -> Result<()> {
    let certs = TestCerts::generate()?;
    let mut args = vec!["--shards=1"];
    args.extend_from_slice(nsqd_extra);
    let nsqd = start(&certs, &args)?;
    client(ScriptRun {
        script,
        nsqd: &nsqd,
        certs: &certs,
        layers,
        channels: 1,
        count: 200,
        extra: Vec::new(),
    })
}

/// With TLS, nsqd refuses any other command before the upgrade: a client
/// that passes under `--tls-required` really upgraded. HTTP stays plain
/// (`tcp-https`) for the scripts' `/stats` checks.
const TLS_REQUIRED: &str = "--tls-required=tcp-https";

const NSQJS: &str = "nsqjs_tls_check.js";
const PYNSQ: &str = "pynsq_tls_check.py";

#[test]
fn nsqjs_tls() -> Result<()> {
    script_once(nsqjs, NSQJS, TLS, &[TLS_REQUIRED])
}

#[test]
fn nsqjs_snappy() -> Result<()> {
    script_once(nsqjs, NSQJS, SNAPPY, &[])
}

#[test]
fn nsqjs_deflate() -> Result<()> {
    script_once(nsqjs, NSQJS, DEFLATE, &[])
}

#[test]
fn nsqjs_tls_snappy() -> Result<()> {
    script_once(nsqjs, NSQJS, TLS_SNAPPY, &[TLS_REQUIRED])
}

#[test]
fn nsqjs_tls_deflate() -> Result<()> {
    script_once(nsqjs, NSQJS, TLS_DEFLATE, &[TLS_REQUIRED])
}

/// nsqd requiring a client certificate signed by its CA; the client
/// (`runner` with `script`) presents one.
fn client_certificate(runner: fn(ScriptRun) -> Result<()>, script: &str) -> Result<()> {
    let certs = TestCerts::generate()?;
    let ca = format!("--tls-root-ca-file={}", certs.path("ca.pem").display());
    let nsqd = start(
        &certs,
        &["--tls-client-auth-policy=require-verify", &ca, TLS_REQUIRED],
    )?;
    runner(ScriptRun {
        script,
        nsqd: &nsqd,
        certs: &certs,
        layers: TLS,
        channels: 1,
        count: 50,
        extra: vec![
            "--cert".into(),
            certs.path("client.pem").display().to_string(),
            "--key".into(),
            certs.path("client.key").display().to_string(),
        ],
    })
}

/// nsqd requiring a client certificate signed by its CA: nsqjs presents one.
#[test]
fn nsqjs_tls_client_certificate() -> Result<()> {
    client_certificate(nsqjs, NSQJS)
}

#[test]
fn pynsq_tls() -> Result<()> {
    script_once(pynsq, PYNSQ, TLS, &[TLS_REQUIRED])
}

#[test]
fn pynsq_snappy() -> Result<()> {
    if !pynsq_has_snappy()? {
        return Ok(());
    }
    script_once(pynsq, PYNSQ, SNAPPY, &[])
}

#[test]
fn pynsq_deflate() -> Result<()> {
    script_once(pynsq, PYNSQ, DEFLATE, &[])
}

#[test]
fn pynsq_tls_snappy() -> Result<()> {
    if !pynsq_has_snappy()? {
        return Ok(());
    }
    script_once(pynsq, PYNSQ, TLS_SNAPPY, &[TLS_REQUIRED])
}

#[test]
fn pynsq_tls_deflate() -> Result<()> {
    script_once(pynsq, PYNSQ, TLS_DEFLATE, &[TLS_REQUIRED])
}

/// nsqd requiring a client certificate signed by its CA: pynsq presents one.
#[test]
fn pynsq_tls_client_certificate() -> Result<()> {
    client_certificate(pynsq, PYNSQ)
}

/// 8 nsqjs consumers (TLS + snappy, then TLS + deflate) on 8 channels of a
/// 2-shard nsqd: those whose channel is owned by the other core move there
/// at SUB with their TLS session and compressor; every channel gets every
/// message.
#[test]
fn nsqjs_consumers_move_between_cores() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &["--shards=2"])?;
    for layers in [TLS_SNAPPY, TLS_DEFLATE] {
        nsqjs(ScriptRun {
            script: NSQJS,
            nsqd: &nsqd,
            certs: &certs,
            layers,
            channels: 8,
            count: 100,
            extra: Vec::new(),
        })
        .with_context(|| format!("{layers:?}"))?;
    }
    Ok(())
}

/// As above with pynsq (TLS + deflate; TLS + snappy too when the venv has
/// python-snappy).
#[test]
fn pynsq_consumers_move_between_cores() -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &["--shards=2"])?;
    let mut all = vec![TLS_DEFLATE];
    if pynsq_has_snappy()? {
        all.push(TLS_SNAPPY);
    }
    for layers in all {
        pynsq(ScriptRun {
            script: PYNSQ,
            nsqd: &nsqd,
            certs: &certs,
            layers,
            channels: 8,
            count: 100,
            extra: Vec::new(),
        })
        .with_context(|| format!("{layers:?}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// tokio-nsq
// ---------------------------------------------------------------------------

/// Body `i`: "m<i>:" then a filler; every 20th is 70 000 pseudo-random
/// (incompressible) bytes, every 20th + 10 is 70 000 repetitive bytes, the
/// rest are short.
fn body(i: usize) -> Vec<u8> {
    let mut b = format!("m{i}:").into_bytes();
    match i % 20 {
        0 => {
            let mut x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(1);
            b.extend((0..70_000).map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }));
        }
        10 => b.extend(b"nsq compressed ".repeat(4667)),
        _ => b.extend(format!("tokio-nsq message {i} ").repeat(1 + i % 7).bytes()),
    }
    b
}

/// tokio-nsq's settings for `layers`. TLS: tokio-nsq's default verifier
/// (none); the name is that of the test server certificate.
fn shared_config(layers: Layers) -> Result<NSQConfigShared> {
    let mut shared = NSQConfigShared::new();
    if layers.tls {
        shared = shared.set_tls(NSQConfigSharedTLS::new("localhost").set_required(true));
    }
    if layers.snappy {
        shared = shared.set_compression(NSQConfigSharedCompression::Snappy);
    }
    if layers.deflate {
        let level = NSQDeflateLevel::new(3).context("deflate level")?;
        shared = shared.set_compression(NSQConfigSharedCompression::Deflate(level));
    }
    Ok(shared)
}

/// Polls `/stats` of `topic` until `pred` holds (bounded), returning it.
fn wait_stats(
    nsqd: &TestNsqd,
    topic: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let mut last = Value::Null;
    wait_until(Duration::from_secs(20), what, || {
        last = nsqd.stats(&format!("topic={topic}"))?;
        Ok(pred(&last))
    })
    .with_context(|| format!("last stats: {last}"))?;
    Ok(last)
}

/// Consumers on `channels` channels first, then one producer publishing
/// `count` messages (PUB and MPUB); every channel must get every body
/// exactly once, and `/stats` must show every client's upgrades.
async fn tokio_round_trip(
    nsqd: &TestNsqd,
    layers: Layers,
    channels: usize,
    count: usize,
) -> Result<()> {
    let addr = nsqd.tcp_addr().to_string();
    let topic_name = unique_name("tokio_tls");
    let topic = NSQTopic::new(topic_name.clone()).context("topic name")?;
    let bodies: Vec<Vec<u8>> = (0..count).map(body).collect();

    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Vec<u8>, u16)>(count * channels + 16);
    let mut consumer_tasks = Vec::new();
    for c in 0..channels {
        let channel = NSQChannel::new(format!("ch{c}")).context("channel name")?;
        let mut consumer = NSQConsumerConfig::new(topic.clone(), channel)
            .set_max_in_flight(100)
            .set_sources(NSQConsumerConfigSources::Daemons(vec![addr.clone()]))
            .set_shared(shared_config(layers)?)
            .build();
        let tx = tx.clone();
        consumer_tasks.push(tokio::spawn(async move {
            while let Some(message) = consumer.consume_filtered().await {
                let item = (c, message.body.clone(), message.attempt);
                message.finish().await;
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    // Every channel exists with its consumer, upgraded as asked.
    let stats = tokio::task::block_in_place(|| {
        wait_stats(nsqd, &topic_name, "every consumer subscribed", |s| {
            find_topic(s, &topic_name)
                .and_then(|t| t["channels"].as_array())
                .map(|chs| {
                    chs.len() == channels
                        && chs
                            .iter()
                            .all(|ch| ch["clients"].as_array().is_some_and(|c| c.len() == 1))
                })
                .unwrap_or(false)
        })
    })?;
    let topic_stats = find_topic(&stats, &topic_name).context("topic")?;
    for ch in topic_stats["channels"].as_array().context("channels")? {
        if let Some(wrong) = layers.mismatch(&ch["clients"][0]) {
            bail!("stats: consumer on {}: {wrong}", ch["channel_name"]);
        }
    }

    let mut producer = NSQProducerConfig::new(addr.clone())
        .set_shared(shared_config(layers)?)
        .build();
    match producer.consume().await {
        Some(NSQEvent::Healthy()) => {}
        other => bail!("producer: expected Healthy, got {other:?}"),
    }
    let third = count / 3;
    let mut commands = 0;
    for b in &bodies[..third] {
        producer
            .publish(&topic, b.clone())
            .await
            .map_err(|e| anyhow!("publish: {e}"))?;
        commands += 1;
    }
    for chunk in bodies[third..].chunks(10) {
        producer
            .publish_multiple(&topic, chunk.to_vec())
            .await
            .map_err(|e| anyhow!("publish_multiple: {e}"))?;
        commands += 1;
    }
    let (acked, mut all_acked) = tokio::sync::oneshot::channel::<()>();
    let (stop_producer, producer_task) =
        drive_producer(producer, topic.clone(), commands, acked, layers.deflate);
    if (&mut all_acked).await.is_err() {
        // The task ended early: its error says why.
        producer_task.await??;
        bail!("producer task ended before every acknowledgement");
    }
    // The producer is still connected.
    let stats = tokio::task::block_in_place(|| nsqd.stats(&format!("topic={topic_name}")))?;
    // Producers of this topic (nsqd keeps only its pub_counts with ?topic=).
    let producers: Vec<&Value> = stats["producers"]
        .as_array()
        .context("producers")?
        .iter()
        .filter(|p| p["pub_counts"].as_array().is_some_and(|c| !c.is_empty()))
        .collect();
    ensure!(producers.len() == 1, "stats: producers: {stats}");
    if let Some(wrong) = layers.mismatch(producers[0]) {
        bail!("stats: producer: {wrong}");
    }

    let mut seen: Vec<HashMap<usize, usize>> = vec![HashMap::new(); channels];
    let total = count * channels;
    let mut received = 0;
    while received < total {
        let Ok(next) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await else {
            let stats = tokio::task::block_in_place(|| nsqd.stats(&format!("topic={topic_name}")));
            bail!("received {received} of {total}, then nothing for 20 s; nsqd stats: {stats:?}");
        };
        let (c, got, attempt) = next.context("consumers stopped")?;
        if got.starts_with(TICK) {
            continue;
        }
        let head = String::from_utf8_lossy(&got[..got.len().min(16)]).into_owned();
        let i: usize = head
            .strip_prefix('m')
            .and_then(|h| h.split(':').next())
            .and_then(|n| n.parse().ok())
            .filter(|&i| i < count)
            .with_context(|| format!("ch{c}: unexpected body of {} bytes: {head:?}", got.len()))?;
        ensure!(
            got == bodies[i],
            "ch{c}: body {i} differs ({} bytes)",
            got.len()
        );
        ensure!(attempt == 1, "ch{c}: attempt {attempt} for message {i}");
        let n = seen[c].entry(i).or_default();
        *n += 1;
        ensure!(*n == 1, "ch{c}: message {i} delivered twice");
        received += 1;
    }
    let _ = stop_producer.send(());
    let ticks = producer_task.await??;
    // Anything more within half a second is a duplicate.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some((c, got, _))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        ensure!(
            got.starts_with(TICK),
            "ch{c}: extra delivery of {} bytes",
            got.len()
        );
    }
    for t in consumer_tasks {
        t.abort();
    }
    if ticks > 0 {
        eprintln!("tokio-nsq {layers:?}: {ticks} tick message(s) published while waiting");
    }
    Ok(())
}

/// Bodies of the messages [`drive_producer`] publishes while waiting.
const TICK: &[u8] = b"tick";

/// Reads the producer's acknowledgements until stopped, signalling `acked`
/// once the first `commands` (the published messages) have come; keeps the
/// producer connected meanwhile. Returns the number of ticks published.
///
/// tokio-nsq 0.14 reads deflate through async-compression 0.3's decoder,
/// which can hold decoded bytes back until more compressed input arrives:
/// the last acknowledgements (producer) or messages (consumers) of a burst
/// then wait for the next heartbeat, 30 s later. The same happens against
/// nsqd v1.3.0. So with `deflate` the producer also publishes a small tick
/// message every 100 ms (the first at once): its acknowledgement and its
/// delivery push the held bytes out. Consumers skip ticks.
fn drive_producer(
    mut producer: tokio_nsq::NSQProducer,
    topic: Arc<NSQTopic>,
    commands: usize,
    acked: tokio::sync::oneshot::Sender<()>,
    deflate: bool,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<u32>>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut acked = Some(acked);
        let mut oks = 0;
        let mut ticks = 0u32;
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok(ticks),
                event = producer.consume() => match event {
                    // In order: the messages' first, then the ticks'.
                    Some(NSQEvent::Ok()) => {
                        oks += 1;
                        if oks >= commands {
                            if let Some(acked) = acked.take() {
                                let _ = acked.send(());
                            }
                        }
                    }
                    other => bail!(
                        "producer: after {oks} acknowledgements ({commands} publishes, \
                         {ticks} ticks): got {other:?}"
                    ),
                },
                _ = tokio::time::sleep_until(next), if deflate && ticks < 1000 => {
                    let body = [TICK, ticks.to_string().as_bytes()].concat();
                    producer
                        .publish(&topic, body)
                        .await
                        .map_err(|e| anyhow!("publish tick: {e}"))?;
                    ticks += 1;
                    next += Duration::from_millis(100);
                }
            }
        }
    });
    (stop, task)
}

fn tokio_run(layers: Layers, shards: u32, channels: usize, count: usize) -> Result<()> {
    let certs = TestCerts::generate()?;
    let nsqd = start(&certs, &[&format!("--shards={shards}")])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(90),
            tokio_round_trip(&nsqd, layers, channels, count),
        )
        .await
        .map_err(|_| anyhow!("tokio-nsq {layers:?} round trip did not finish within 90 s"))?
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result.with_context(|| format!("tokio-nsq {layers:?}"))
}

#[test]
fn tokio_nsq_tls() -> Result<()> {
    tokio_run(TLS, 1, 1, 200)
}

#[test]
fn tokio_nsq_snappy() -> Result<()> {
    tokio_run(SNAPPY, 1, 1, 200)
}

#[test]
fn tokio_nsq_deflate() -> Result<()> {
    tokio_run(DEFLATE, 1, 1, 200)
}

#[test]
fn tokio_nsq_tls_snappy() -> Result<()> {
    tokio_run(TLS_SNAPPY, 1, 1, 200)
}

#[test]
fn tokio_nsq_tls_deflate() -> Result<()> {
    tokio_run(TLS_DEFLATE, 1, 1, 200)
}

/// 8 tokio-nsq consumers on 8 channels of a 2-shard nsqd (TLS + snappy):
/// those whose channel is owned by the other core move at SUB.
#[test]
fn tokio_nsq_consumers_move_between_cores_tls_snappy() -> Result<()> {
    tokio_run(TLS_SNAPPY, 2, 8, 100)
}

/// As above with TLS + deflate.
#[test]
fn tokio_nsq_consumers_move_between_cores_tls_deflate() -> Result<()> {
    tokio_run(TLS_DEFLATE, 2, 8, 100)
}
