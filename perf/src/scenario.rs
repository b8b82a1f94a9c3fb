//! The named scenarios of issue 3. Each one starts a fresh broker with its
//! flags, then runs one or more loadgen steps against it.
//!
//! The broker flags are the same for ours and the reference (nsqd's flag
//! names), so an A/B pair differs only in the binary.

use std::time::Duration;

use crate::custom::Custom;

/// One loadgen invocation.
#[derive(Debug, Clone)]
pub struct Step {
    /// Arguments (the address, `--json` and `--deadline` are added).
    pub args: Vec<String>,
    /// Append `--expect=<messages the previous step published>`.
    pub expect_previous: bool,
}

/// Which figures a scenario is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// Publish rate.
    Publish,
    /// Consume rate (of the last step).
    Consume,
    /// Both rates and end-to-end latency (one pubsub step).
    Both,
    /// Both rates, from a publish step and a drain step (no latency: the
    /// drain's messages were sent before it started).
    PubThenSub,
    /// End-to-end latency at a fixed rate.
    Latency,
    /// Not loadgen: its own measurement and figures (see `custom`).
    Custom(Custom),
}

/// A named scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (file names, tables).
    pub name: &'static str,
    /// One line on what it measures.
    pub title: String,
    /// Broker flags besides the addresses and data path.
    pub broker_flags: Vec<String>,
    /// Create this topic and channel over HTTP before the first step.
    pub precreate: Option<(&'static str, &'static str)>,
    /// loadgen runs, in order.
    pub steps: Vec<Step>,
    /// What to report.
    pub focus: Focus,
    /// The Go nsqd v1.3 figure issue 3 quotes for this machine class, if any.
    pub published: Option<&'static str>,
    /// GET /metrics every [`SCRAPE_EVERY`] while the steps run (what a
    /// scrape costs the message path; the original nsqd answers 404).
    pub scrape_metrics: bool,
}

/// How often `scrape_metrics` scenarios scrape: far more often than the
/// usual 15 s, so any cost shows.
pub const SCRAPE_EVERY: Duration = Duration::from_millis(100);

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn step(args: &[&str]) -> Step {
    Step {
        args: strs(args),
        expect_previous: false,
    }
}

/// Memory queue of every scenario but `disk_only`: issue 3's figures for
/// Go nsqd use 1,000,000, with the rest of a backlog overflowing to disk.
const MEM_QUEUE: &str = "--mem-queue-size=1000000";

/// Every scenario, in report order. `duration`/`warmup` go to each timed
/// step; `certs`: a directory with `server.pem`, `server.key` and `ca.pem`
/// for the TLS scenarios (see [`write_test_certs`]).
pub fn all(duration: Duration, warmup: Duration, certs: &std::path::Path) -> Vec<Scenario> {
    let d = format!("--duration={}s", duration.as_secs_f64());
    let w = format!("--warmup={}s", warmup.as_secs_f64());
    // A backlog the size of about `duration` of publishing at 400k msg/s.
    let backlog = format!("--count={}", (duration.as_secs_f64() * 200_000.0) as u64);
    let mut list = vec![
        Scenario {
            name: "pub_mpub200",
            title: "PUB 200 B bodies, MPUB batch 200, 2 producers".into(),
            broker_flags: strs(&[MEM_QUEUE]),
            precreate: None,
            steps: vec![step(&["pub", "--topic=perf", "--size=200", "--batch=200", "--producers=2", &d, &w])],
            focus: Focus::Publish,
            published: Some("420k msg/s (80 MiB/s)"),
            scrape_metrics: false,
        },
        Scenario {
            name: "pub_unbatched",
            title: "PUB 100 B bodies, one PUB per message, 2 producers (1 in flight each)".into(),
            broker_flags: strs(&[MEM_QUEUE]),
            precreate: None,
            steps: vec![step(&["pub", "--topic=perf", "--size=100", "--batch=1", "--producers=2", &d, &w])],
            focus: Focus::Publish,
            published: Some("40k msg/s"),
            scrape_metrics: false,
        },
        Scenario {
            name: "sub_drain",
            title: "SUB drain of a backlog (published first with MPUB 200), 2 consumers, RDY 2500".into(),
            broker_flags: strs(&[MEM_QUEUE]),
            precreate: Some(("perf", "drain")),
            steps: vec![
                step(&["pub", "--topic=perf", "--size=200", "--batch=200", "--producers=2", &backlog]),
                Step {
                    args: strs(&["sub", "--topic=perf", "--channel=drain", "--consumers=2", "--rdy=2500"]),
                    expect_previous: true,
                },
            ],
            focus: Focus::Consume,
            published: Some("234k msg/s"),
            scrape_metrics: false,
        },
        Scenario {
            name: "pubsub",
            title: "PUB+SUB steady state: MPUB 200 x 200 B, 2 producers, 2 consumers, backlog capped at 100k".into(),
            broker_flags: strs(&[MEM_QUEUE]),
            precreate: None,
            steps: vec![step(&["pubsub", "--topic=perf", "--size=200", "--batch=200", "--producers=2", "--consumers=2", "--max-backlog=100000", &d, &w])],
            focus: Focus::Both,
            published: None,
            scrape_metrics: false,
        },
        Scenario {
            name: "pubsub_scraped",
            title: "pubsub with e2e percentiles 0.5,0.99 on and GET /metrics every 100 ms (ours; the original answers 404)".into(),
            broker_flags: strs(&[MEM_QUEUE, "--e2e-processing-latency-percentile=0.5,0.99"]),
            precreate: None,
            steps: vec![step(&["pubsub", "--topic=perf", "--size=200", "--batch=200", "--producers=2", "--consumers=2", "--max-backlog=100000", &d, &w])],
            focus: Focus::Both,
            published: None,
            scrape_metrics: true,
        },
        Scenario {
            name: "fanout4",
            title: "Fan-out to 4 channels: MPUB 200 x 200 B, 2 producers, 1 consumer per channel, backlog capped at 100k".into(),
            broker_flags: strs(&[MEM_QUEUE]),
            precreate: None,
            steps: vec![step(&["fanout", "--topic=perf", "--channels=4", "--size=200", "--batch=200", "--producers=2", "--consumers=1", "--max-backlog=100000", &d, &w])],
            focus: Focus::Both,
            published: None,
            scrape_metrics: false,
        },
        Scenario {
            name: "disk_only",
            title: "Disk only (--mem-queue-size=0): PUB MPUB 200 x 200 B, then SUB drain of what was acknowledged".into(),
            broker_flags: strs(&["--mem-queue-size=0"]),
            precreate: Some(("perf", "drain")),
            steps: vec![
                step(&["pub", "--topic=perf", "--size=200", "--batch=200", "--producers=2", &d, &w]),
                Step {
                    args: strs(&["sub", "--topic=perf", "--channel=drain", "--consumers=2", "--rdy=2500"]),
                    expect_previous: true,
                },
            ],
            focus: Focus::PubThenSub,
            published: Some("PUB 150k, SUB 70k msg/s"),
            scrape_metrics: false,
        },
    ];
    // The consumers keep nsqd's default output buffering (16 KiB or 250 ms,
    // whichever comes first), as most clients do; `latency_50k_unbuffered`
    // asks for none (IDENTIFY output_buffer_size -1) to show the broker's
    // own latency without that policy.
    for (name, rate, extra) in [
        ("latency_10k", 10_000u64, None),
        ("latency_50k", 50_000, None),
        ("latency_100k", 100_000, None),
        (
            "latency_50k_unbuffered",
            50_000,
            Some("--output-buffer-size=-1"),
        ),
    ] {
        let buffering = if extra.is_some() {
            "unbuffered consumers"
        } else {
            "default consumer buffering"
        };
        let mut args = strs(&[
            "pubsub",
            "--topic=perf",
            "--size=200",
            "--batch=1",
            "--producers=2",
            "--consumers=2",
            &format!("--rate={rate}"),
            &d,
            &w,
        ]);
        args.extend(extra.map(String::from));
        list.push(Scenario {
            name,
            title: format!("End-to-end latency at {rate} msg/s open loop: plain PUB 200 B, 2 producers, 2 consumers, {buffering}"),
            broker_flags: strs(&[MEM_QUEUE]),
            precreate: None,
            steps: vec![Step {
                args,
                expect_previous: false,
            }],
            focus: Focus::Latency,
            published: None,
            scrape_metrics: false,
        });
    }
    // The secure and compressed paths, same load as `pubsub`: both brokers
    // get the same certificate, loadgen verifies it against the CA.
    let cert = format!("--tls-cert={}", certs.join("server.pem").display());
    let key = format!("--tls-key={}", certs.join("server.key").display());
    let ca = format!("--tls-ca={}", certs.join("ca.pem").display());
    for (name, what, layers) in [
        ("pubsub_tls", "over TLS", vec!["--tls", ca.as_str()]),
        ("pubsub_snappy", "snappy-compressed", vec!["--snappy"]),
        (
            "pubsub_deflate",
            "deflate-compressed (level 1)",
            vec!["--deflate", "--deflate-level=1"],
        ),
        (
            "pubsub_tls_snappy",
            "over TLS, snappy-compressed",
            vec!["--tls", ca.as_str(), "--snappy"],
        ),
    ] {
        let mut args = strs(&[
            "pubsub",
            "--topic=perf",
            "--size=200",
            "--batch=200",
            "--producers=2",
            "--consumers=2",
            "--max-backlog=100000",
            &d,
            &w,
        ]);
        args.extend(layers.iter().map(|s| s.to_string()));
        list.push(Scenario {
            name,
            title: format!("PUB+SUB {what}: MPUB 200 x 200 B, 2 producers, 2 consumers, backlog capped at 100k"),
            broker_flags: strs(&[MEM_QUEUE, &cert, &key]),
            precreate: None,
            steps: vec![Step {
                args,
                expect_previous: false,
            }],
            focus: Focus::Both,
            published: None,
            scrape_metrics: false,
        });
    }
    // Measurements of their own (no loadgen steps), see `custom`.
    let custom = |name, title: &str, flags: &[&str], precreate, kind| Scenario {
        name,
        title: title.into(),
        broker_flags: strs(flags),
        precreate,
        steps: Vec::new(),
        focus: Focus::Custom(kind),
        published: None,
        scrape_metrics: false,
    };
    list.push(custom(
        "bench_nsq",
        "NSQ's bench_writer (200 B, batch 200) then bench_reader (channel ch), as NSQ's bench.sh runs them",
        &[MEM_QUEUE],
        Some(("sub_bench", "ch")),
        Custom::BenchNsq,
    ));
    list.push(custom(
        "idle_conns",
        "Idle connections (V2 magic only, no IDENTIFY): broker RSS and fds per connection (--idle-conns, default 5000)",
        &[],
        None,
        Custom::IdleConns,
    ));
    list.push(custom(
        "create_churn",
        "Unbatched PUB round trips (100 B, one connection) while 200 topics × 2 channels are created over HTTP, vs a 2 s baseline",
        &[],
        Some(("churn_pub", "c0")),
        Custom::CreateChurn,
    ));
    list.push(custom(
        "backlog_memory",
        "Memory for the same backlog: 1M × 200 B published (MPUB 200) into a channel with no consumer, then consumed",
        &[MEM_QUEUE],
        Some(("backlog", "ch")),
        Custom::BacklogMemory,
    ));
    list
}

/// A CA and a server certificate for 127.0.0.1/localhost, made now (rcgen):
/// `ca.pem`, `server.pem`, `server.key` in `dir`.
pub fn write_test_certs(dir: &std::path::Path) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    std::fs::create_dir_all(dir)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "nsq perf CA");
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "nsqd perf");
    let server_key = KeyPair::generate()?;
    let server = server.signed_by(&server_key, &ca, &ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), server.pem())?;
    std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;
    Ok(())
}
