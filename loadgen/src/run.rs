//! Runs a whole load test: subscribe every consumer, start the producers,
//! print progress, stop at the deadline, and collect the results.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;

use crate::args::{Config, Mode};
use crate::consumer::{self, ConsumerResult, ConsumerSpec};
use crate::net::now_ns;
use crate::pacing::split_rate;
use crate::producer::{self, ProducerResult, ProducerSpec};
use crate::report::{self, Progress};

/// State every connection thread reads; counters are updated once per
/// read or batch, not per message.
#[derive(Debug)]
pub struct Shared {
    /// Set at the hard deadline: every thread returns as soon as it sees it.
    pub stop: AtomicBool,
    /// Set once every producer has returned.
    pub producers_done: AtomicBool,
    /// Measurement window, ns on CLOCK_MONOTONIC.
    pub measure_start: u64,
    /// See `measure_start`.
    pub measure_end: u64,
    /// Producers send nothing after this.
    pub send_end: u64,
    /// Run is bounded by `--count`/`--expect`, not by time: rates are taken
    /// from the first to the last message instead of over the window.
    pub by_count: bool,
    /// Messages acknowledged, all producers.
    pub pub_acked: AtomicU64,
    /// Messages acknowledged, per topic.
    pub topic_acked: Vec<AtomicU64>,
    /// Deliveries, per stream (`topic * channels + channel`).
    pub stream_received: Vec<AtomicU64>,
    /// Deliveries, all streams.
    pub sub_received: AtomicU64,
    /// Body bytes delivered, all streams.
    pub sub_bytes: AtomicU64,
    /// Errors so far (connection failures, refused publishes, FIN errors).
    pub errors: AtomicU64,
    channels: usize,
}

impl Shared {
    /// The delivery counters of every channel of `topic`.
    pub fn streams_of(&self, topic: usize) -> impl Iterator<Item = &AtomicU64> {
        self.stream_received[topic * self.channels..(topic + 1) * self.channels].iter()
    }
}

/// An empty latency histogram in ns (1 ns to 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant bounds are valid")
}

/// Everything the threads returned.
#[derive(Debug)]
pub struct Outcome {
    /// Producer results, in id order.
    pub producers: Vec<ProducerResult>,
    /// Consumer results.
    pub consumers: Vec<ConsumerResult>,
    /// Setup failures and threads that did not return.
    pub errors: Vec<String>,
    /// The hard deadline stopped the run.
    pub deadline_hit: bool,
    /// Measured window, s (time-bounded runs).
    pub window_s: f64,
    /// Wall time of the whole run, s.
    pub elapsed_s: f64,
}

/// Runs the test described by `cfg`.
pub fn run(cfg: &Config) -> Result<Outcome> {
    let began = now_ns();
    let hard_deadline = began + cfg.deadline.as_nanos() as u64;
    let streams = cfg.topics.len() * cfg.channels.len();
    let by_count = cfg.count > 0 || (cfg.mode == Mode::Sub && cfg.expect > 0);
    let mut errors = Vec::new();

    // Subscribe first (in parallel: one thread per connection anyway).
    let mut consumer_specs = Vec::new();
    if cfg.mode != Mode::Pub {
        for (t, topic) in cfg.topics.iter().enumerate() {
            for (c, channel) in cfg.channels.iter().enumerate() {
                for addr in &cfg.addrs {
                    for _ in 0..cfg.consumers {
                        consumer_specs.push(ConsumerSpec {
                            index: consumer_specs.len(),
                            stream: t * cfg.channels.len() + c,
                            topic: topic.clone(),
                            channel: channel.clone(),
                            addr: *addr,
                        });
                    }
                }
            }
        }
    }
    let subscribed: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = consumer_specs
            .iter()
            .map(|spec| s.spawn(|| consumer::subscribe(cfg, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("subscribe thread panicked"))?)
            .collect()
    });
    let mut conns = Vec::new();
    for (spec, conn) in consumer_specs.iter().zip(subscribed) {
        match conn {
            Ok(conn) => conns.push(conn),
            Err(err) => errors.push(format!(
                "consumer {} ({} {}/{}): {err:#}",
                spec.index, spec.addr, spec.topic, spec.channel
            )),
        }
    }
    if !errors.is_empty() {
        return Ok(Outcome {
            producers: Vec::new(),
            consumers: Vec::new(),
            errors,
            deadline_hit: false,
            window_s: 0.0,
            elapsed_s: (now_ns() - began) as f64 / 1e9,
        });
    }

    let start = now_ns();
    let (measure_start, measure_end) = if by_count {
        (start, u64::MAX)
    } else {
        let ms = start + cfg.warmup.as_nanos() as u64;
        (ms, ms + cfg.duration.as_nanos() as u64)
    };
    let shared = Shared {
        stop: AtomicBool::new(false),
        producers_done: AtomicBool::new(cfg.mode == Mode::Sub),
        measure_start,
        measure_end,
        send_end: if cfg.count > 0 { u64::MAX } else { measure_end },
        by_count,
        pub_acked: AtomicU64::new(0),
        topic_acked: cfg.topics.iter().map(|_| AtomicU64::new(0)).collect(),
        stream_received: (0..streams).map(|_| AtomicU64::new(0)).collect(),
        sub_received: AtomicU64::new(0),
        sub_bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        channels: cfg.channels.len(),
    };
    let producer_specs: Vec<ProducerSpec> = if cfg.mode == Mode::Sub {
        Vec::new()
    } else {
        (0..cfg.producers)
            .map(|i| {
                let rate = split_rate(cfg.rate, cfg.producers, i);
                // Stagger open-loop producers across one interval so their
                // sends interleave instead of arriving together.
                let offset = (cfg.batch as u64 * 1_000_000_000)
                    .checked_div(rate)
                    .map_or(0, |interval| interval * i as u64 / cfg.producers as u64);
                ProducerSpec {
                    id: cfg.producer_id_base + i as u32,
                    topic: i % cfg.topics.len(),
                    addr: cfg.addrs[i % cfg.addrs.len()],
                    rate,
                    start_ns: start + offset,
                }
            })
            .collect()
    };

    let show_progress = cfg
        .progress
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    let mut deadline_hit = false;
    let (producers, consumers, lost) = thread::scope(|s| {
        let shared = &shared;
        let consumer_handles: Vec<_> = consumer_specs
            .into_iter()
            .zip(conns)
            .map(|(spec, conn)| {
                thread::Builder::new()
                    .name(format!("consumer-{}", spec.index))
                    .spawn_scoped(s, move || consumer::run(cfg, shared, spec, conn))
            })
            .collect();
        let producer_handles: Vec<_> = producer_specs
            .into_iter()
            .map(|spec| {
                thread::Builder::new()
                    .name(format!("producer-{}", spec.id))
                    .spawn_scoped(s, move || producer::run(cfg, shared, spec))
            })
            .collect();
        let mut progress = Progress::new(start);
        let mut next_tick = start + 1_000_000_000;
        loop {
            let now = now_ns();
            let producers_left = producer_handles
                .iter()
                .any(|h| h.as_ref().is_ok_and(|h| !h.is_finished()));
            if !producers_left {
                shared.producers_done.store(true, Ordering::Relaxed);
            }
            let consumers_left = consumer_handles
                .iter()
                .any(|h| h.as_ref().is_ok_and(|h| !h.is_finished()));
            if !producers_left && !consumers_left {
                break;
            }
            if now >= hard_deadline && !shared.stop.swap(true, Ordering::Relaxed) {
                deadline_hit = true;
            }
            if now >= hard_deadline + 10_000_000_000 {
                // A thread stuck in a blocking write: give up on it.
                report::eprint_line("loadgen: threads did not stop 10 s after the deadline");
                std::process::exit(3);
            }
            if now >= next_tick {
                next_tick += 1_000_000_000;
                if show_progress {
                    report::eprint_line(&progress.line(shared, cfg, now));
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        let mut lost = Vec::new();
        let producers: Vec<ProducerResult> = producer_handles
            .into_iter()
            .filter_map(|h| {
                match h
                    .map_err(anyhow::Error::from)
                    .and_then(|h| h.join().map_err(|_| anyhow!("producer thread panicked")))
                {
                    Ok(r) => Some(r),
                    Err(err) => {
                        lost.push(format!("{err:#}"));
                        None
                    }
                }
            })
            .collect();
        let consumers: Vec<ConsumerResult> = consumer_handles
            .into_iter()
            .filter_map(|h| {
                match h
                    .map_err(anyhow::Error::from)
                    .and_then(|h| h.join().map_err(|_| anyhow!("consumer thread panicked")))
                {
                    Ok(r) => Some(r),
                    Err(err) => {
                        lost.push(format!("{err:#}"));
                        None
                    }
                }
            })
            .collect();
        (producers, consumers, lost)
    });
    errors.extend(lost);
    if deadline_hit {
        errors.push(format!("hard deadline of {:?} reached", cfg.deadline));
    }
    Ok(Outcome {
        producers,
        consumers,
        errors,
        deadline_hit,
        window_s: cfg.duration.as_secs_f64(),
        elapsed_s: (now_ns() - began) as f64 / 1e9,
    })
}
