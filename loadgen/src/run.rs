//! Runs a whole load test: subscribe every consumer, start the producers,
//! print progress, stop at the deadline, and collect the results.

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, ScopedJoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;

use crate::args::{Config, Mode};
use crate::consumer::{self, ConsumerResult, ConsumerSpec};
use crate::discovery::{Discovery, DiscoveryResult, DiscoveryStats};
use crate::net::{now_ns, Conn, NANOS_PER_SEC};
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

/// Largest latency a histogram records: 1 h, in ns.
const HISTOGRAM_MAX_NS: u64 = 3_600 * NANOS_PER_SEC;

/// Significant decimal digits a histogram keeps.
const HISTOGRAM_SIGFIGS: u8 = 3;

/// An empty latency histogram in ns (1 ns to 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, HISTOGRAM_SIGFIGS)
        .expect("constant bounds are valid")
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
    /// With `--lookupd-http-address`: what discovery did.
    pub discovery: Option<DiscoveryStats>,
}

/// How often the main thread checks the connection threads and the clock.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Time between progress lines, ns.
const PROGRESS_INTERVAL_NS: u64 = NANOS_PER_SEC;

/// How long threads get to return after the hard deadline before loadgen
/// gives up on them and exits, ns (the message it prints says "10 s").
const STOP_GRACE_NS: u64 = 10 * NANOS_PER_SEC;

/// Exit status when threads are still running `STOP_GRACE_NS` after the
/// hard deadline (2 is a usage error, 1 a failed run).
const EXIT_STUCK: i32 = 3;

/// Runs the test described by `cfg`.
pub fn run(cfg: &Config) -> Result<Outcome> {
    let began = now_ns();
    let hard_deadline = began + cfg.deadline.as_nanos() as u64;

    // With lookupds, the nsqd found now get consumers before the producers
    // start; the discovery thread adds the ones found later.
    let mut discovery = None;
    let consumer_specs = if cfg.lookupds.is_empty() || cfg.mode == Mode::Pub {
        consumer_specs(cfg)
    } else {
        let mut found = Discovery::new(cfg);
        let specs = match found.initial(cfg) {
            Ok(specs) => specs,
            Err(err) => {
                let stats = found.into_stats();
                return Ok(setup_failed(vec![format!("{err:#}")], began, Some(stats)));
            }
        };
        discovery = Some(found);
        specs
    };
    // Subscribe first (in parallel: one thread per connection anyway).
    let (conns, mut errors) = subscribe_all(cfg, &consumer_specs);
    if let Some(found) = discovery.as_mut() {
        errors.extend(found.take_errors());
    }
    if !errors.is_empty() {
        let stats = discovery.map(Discovery::into_stats);
        return Ok(setup_failed(errors, began, stats));
    }

    let start = now_ns();
    let shared = Shared::new(cfg, start);
    let producer_specs = producer_specs(cfg, start);
    let consumers = consumer_specs.into_iter().zip(conns).collect();
    let joined = run_threads(
        cfg,
        &shared,
        consumers,
        producer_specs,
        discovery,
        start,
        hard_deadline,
    );
    errors.extend(joined.lost);
    if joined.deadline_hit {
        errors.push(format!("hard deadline of {:?} reached", cfg.deadline));
    }
    Ok(Outcome {
        producers: joined.producers,
        consumers: joined.consumers,
        errors,
        deadline_hit: joined.deadline_hit,
        window_s: cfg.duration.as_secs_f64(),
        elapsed_s: secs_since(began),
        discovery: joined.discovery,
    })
}

/// The outcome of a run that failed before any producer started.
fn setup_failed(errors: Vec<String>, began: u64, discovery: Option<DiscoveryStats>) -> Outcome {
    Outcome {
        producers: Vec::new(),
        consumers: Vec::new(),
        errors,
        deadline_hit: false,
        window_s: 0.0,
        elapsed_s: secs_since(began),
        discovery,
    }
}

/// Seconds from `began` (ns on the monotonic clock) to now.
fn secs_since(began: u64) -> f64 {
    (now_ns() - began) as f64 / NANOS_PER_SEC as f64
}

impl Shared {
    /// Zeroed counters and the run's time windows, counted from `start`
    /// (ns), the moment every consumer has subscribed.
    fn new(cfg: &Config, start: u64) -> Shared {
        let by_count = cfg.count > 0 || (cfg.mode == Mode::Sub && cfg.expect > 0);
        let streams = cfg.topics.len() * cfg.channels.len();
        let (measure_start, measure_end) = if by_count {
            (start, u64::MAX)
        } else {
            let ms = start + cfg.warmup.as_nanos() as u64;
            (ms, ms + cfg.duration.as_nanos() as u64)
        };
        Shared {
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
        }
    }
}

/// One consumer per `--consumers` for every topic, channel and address;
/// none in `pub` mode.
fn consumer_specs(cfg: &Config) -> Vec<ConsumerSpec> {
    let mut specs = Vec::new();
    if cfg.mode == Mode::Pub {
        return specs;
    }
    let mut next_index = 0;
    for t in 0..cfg.topics.len() {
        for addr in &cfg.addrs {
            let name = cfg.server_name(*addr);
            specs.extend(consumer::specs_for(cfg, t, *addr, &name, &mut next_index));
        }
    }
    specs
}

/// Connect and subscribe every consumer, one thread each so a slow server
/// costs one connect time, not one per consumer. Returns the connections
/// and, separately, a line per consumer that failed.
fn subscribe_all(cfg: &Config, specs: &[ConsumerSpec]) -> (Vec<Conn>, Vec<String>) {
    let subscribed: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| s.spawn(|| consumer::subscribe(cfg, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("subscribe thread panicked"))?)
            .collect()
    });
    let mut conns = Vec::new();
    let mut errors = Vec::new();
    for (spec, conn) in specs.iter().zip(subscribed) {
        match conn {
            Ok(conn) => conns.push(conn),
            Err(err) => errors.push(format!(
                "consumer {} ({} {}/{}): {err:#}",
                spec.index, spec.addr, spec.topic, spec.channel
            )),
        }
    }
    (conns, errors)
}

/// `--producers` producers (none in `sub` mode), spread over the topics and
/// addresses, sharing `--rate`.
fn producer_specs(cfg: &Config, start: u64) -> Vec<ProducerSpec> {
    if cfg.mode == Mode::Sub {
        return Vec::new();
    }
    (0..cfg.producers)
        .map(|i| {
            let rate = split_rate(cfg.rate, cfg.producers, i);
            // Stagger open-loop producers across one interval so their
            // sends interleave instead of arriving together.
            let offset = (cfg.batch as u64 * NANOS_PER_SEC)
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
}

/// A connection thread as spawned: `Err` if it could not be started.
pub type Handle<'scope, T> = io::Result<ScopedJoinHandle<'scope, T>>;

/// What the connection threads left behind.
struct Joined {
    producers: Vec<ProducerResult>,
    consumers: Vec<ConsumerResult>,
    /// Threads that could not be started or panicked.
    lost: Vec<String>,
    /// The hard deadline stopped the run.
    deadline_hit: bool,
    /// What the discovery thread did, if one ran.
    discovery: Option<DiscoveryStats>,
}

/// Start a thread per consumer and per producer (and the discovery thread
/// with lookupds), watch them until all have returned, and collect their
/// results.
fn run_threads(
    cfg: &Config,
    shared: &Shared,
    consumers: Vec<(ConsumerSpec, Conn)>,
    producers: Vec<ProducerSpec>,
    discovery: Option<Discovery>,
    start: u64,
    hard_deadline: u64,
) -> Joined {
    let show_progress = cfg
        .progress
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    thread::scope(|s| {
        let consumer_handles: Vec<_> = consumers
            .into_iter()
            .map(|(spec, conn)| {
                thread::Builder::new()
                    .name(format!("consumer-{}", spec.index))
                    .spawn_scoped(s, move || consumer::run(cfg, shared, spec, conn))
            })
            .collect();
        let producer_handles: Vec<_> = producers
            .into_iter()
            .map(|spec| {
                thread::Builder::new()
                    .name(format!("producer-{}", spec.id))
                    .spawn_scoped(s, move || producer::run(cfg, shared, spec))
            })
            .collect();
        let discovery_handle: Vec<Handle<'_, DiscoveryResult>> = discovery
            .into_iter()
            .map(|d| {
                thread::Builder::new()
                    .name("discovery".into())
                    .spawn_scoped(s, move || d.run(s, cfg, shared))
            })
            .collect();
        let watch = Watch {
            cfg,
            shared,
            start,
            hard_deadline,
            show_progress,
        };
        let deadline_hit =
            watch.until_done(&producer_handles, &consumer_handles, &discovery_handle);
        let mut lost = Vec::new();
        let producers = join_all(producer_handles, "producer", &mut lost);
        let mut consumers = join_all(consumer_handles, "consumer", &mut lost);
        let mut discovery = None;
        for found in join_all(discovery_handle, "discovery", &mut lost) {
            consumers.extend(found.consumers);
            lost.extend(found.errors);
            discovery = Some(found.stats);
        }
        Joined {
            producers,
            consumers,
            lost,
            deadline_hit,
            discovery,
        }
    })
}

/// The main thread's part while the connection threads run.
struct Watch<'a> {
    cfg: &'a Config,
    shared: &'a Shared,
    /// When the threads were started, ns.
    start: u64,
    /// When they are told to stop, ns.
    hard_deadline: u64,
    show_progress: bool,
}

impl Watch<'_> {
    /// Poll until every thread has returned: tell the consumers when the
    /// producers are done, stop everyone at the hard deadline, print a
    /// progress line each interval. Exits the process if threads are still
    /// running `STOP_GRACE_NS` after the deadline (one stuck in a blocking
    /// write cannot be interrupted). True if the deadline stopped the run.
    fn until_done<P, C, D>(
        &self,
        producers: &[Handle<'_, P>],
        consumers: &[Handle<'_, C>],
        discovery: &[Handle<'_, D>],
    ) -> bool {
        let shared = self.shared;
        let mut deadline_hit = false;
        let mut progress = Progress::new(self.start);
        let mut next_tick = self.start + PROGRESS_INTERVAL_NS;
        loop {
            let now = now_ns();
            let producers_left = any_running(producers);
            if !producers_left {
                shared.producers_done.store(true, Ordering::Relaxed);
            }
            if !producers_left && !any_running(consumers) && !any_running(discovery) {
                return deadline_hit;
            }
            if now >= self.hard_deadline && !shared.stop.swap(true, Ordering::Relaxed) {
                deadline_hit = true;
            }
            if now >= self.hard_deadline + STOP_GRACE_NS {
                report::eprint_line("loadgen: threads did not stop 10 s after the deadline");
                std::process::exit(EXIT_STUCK);
            }
            if now >= next_tick {
                next_tick += PROGRESS_INTERVAL_NS;
                if self.show_progress {
                    report::eprint_line(&progress.line(shared, self.cfg, now));
                }
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Whether any of `handles` is still running.
fn any_running<T>(handles: &[Handle<'_, T>]) -> bool {
    handles
        .iter()
        .any(|h| h.as_ref().is_ok_and(|h| !h.is_finished()))
}

/// Join every thread of one kind (`what`: "producer" or "consumer") and
/// return their results in spawn order. A thread that could not be started
/// or panicked has a line in `lost` instead.
pub fn join_all<T>(handles: Vec<Handle<'_, T>>, what: &str, lost: &mut Vec<String>) -> Vec<T> {
    handles
        .into_iter()
        .filter_map(|h| {
            match h
                .map_err(anyhow::Error::from)
                .and_then(|h| h.join().map_err(|_| anyhow!("{what} thread panicked")))
            {
                Ok(r) => Some(r),
                Err(err) => {
                    lost.push(format!("{err:#}"));
                    None
                }
            }
        })
        .collect()
}
