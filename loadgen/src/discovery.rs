//! `--lookupd-http-address`: consumers find nsqd the way NSQ consumers
//! (go-nsq) do. Every topic is looked up on every nsqlookupd once before
//! the producers start (those consumers subscribe first, like the static
//! ones), then again every `--lookupd-poll-interval` from a thread of its
//! own, which starts `--consumers` connections per channel on each nsqd
//! that shows up later. Those consumers go through the same integrity
//! accounting: a message is expected once, from whichever nsqd took it.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::thread::{self, Scope};
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::args::{Config, Mode};
use crate::consumer::{self, ConsumerResult, ConsumerSpec};
use crate::lookup;
use crate::net::now_ns;
use crate::run::{join_all, Handle, Shared};

/// How often the discovery thread checks whether the run is over.
const TICK: Duration = Duration::from_millis(20);

/// What discovery did, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiscoveryStats {
    /// The lookupds asked.
    pub lookupds: Vec<String>,
    /// `/lookup` requests made (one per topic per lookupd per round).
    pub queries: u64,
    /// Requests that failed (unreachable lookupd, bad answer).
    pub failures: u64,
    /// The last failure, if any.
    pub last_failure: Option<String>,
    /// Every nsqd found (`broadcast_address:tcp_port`), in order found.
    pub nsqd: Vec<String>,
    /// (topic, nsqd) pairs found after the producers had started.
    pub found_late: u64,
}

/// What the discovery thread leaves behind.
#[derive(Debug, Default)]
pub struct DiscoveryResult {
    /// Results of the consumers it started.
    pub consumers: Vec<ConsumerResult>,
    /// Consumer threads that could not be started or panicked, and nsqd
    /// addresses that did not resolve.
    pub errors: Vec<String>,
    /// Its figures.
    pub stats: DiscoveryStats,
}

/// Discovery state: what has been found, and the next consumer index.
#[derive(Debug)]
pub struct Discovery {
    /// (topic index, nsqd) pairs that already have consumers.
    known: HashSet<(usize, SocketAddr)>,
    /// Broadcast addresses that did not resolve (reported once).
    unresolved: HashSet<String>,
    next_index: usize,
    stats: DiscoveryStats,
    /// Setup-time problems (unresolvable broadcast addresses).
    errors: Vec<String>,
}

impl Discovery {
    /// Nothing found yet.
    pub fn new(cfg: &Config) -> Discovery {
        Discovery {
            known: HashSet::new(),
            unresolved: HashSet::new(),
            next_index: 0,
            stats: DiscoveryStats {
                lookupds: cfg.lookupds.clone(),
                ..DiscoveryStats::default()
            },
            errors: Vec::new(),
        }
    }

    /// The first round, before producers start: consumer specs for every
    /// nsqd found. Fails only when no lookupd answered at all (then there
    /// is nothing to discover with).
    pub fn initial(&mut self, cfg: &Config) -> Result<Vec<ConsumerSpec>> {
        let failures_before = self.stats.failures;
        let specs = self.round(cfg);
        let queries = (cfg.lookupds.len() * cfg.topics.len()) as u64;
        if self.stats.failures - failures_before == queries {
            return Err(anyhow!(
                "no nsqlookupd answered: {}",
                self.stats.last_failure.as_deref().unwrap_or("?")
            ));
        }
        self.stats.found_late = 0;
        Ok(specs)
    }

    /// Setup errors so far (unresolvable nsqd addresses), emptied.
    pub fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    /// Looks every topic up on every lookupd; returns consumer specs for
    /// the (topic, nsqd) pairs not seen before.
    fn round(&mut self, cfg: &Config) -> Vec<ConsumerSpec> {
        let mut specs = Vec::new();
        for (t, topic) in cfg.topics.iter().enumerate() {
            for lookupd in &cfg.lookupds {
                self.stats.queries += 1;
                let producers = match lookup::lookup(lookupd, topic) {
                    Ok(p) => p,
                    Err(err) => {
                        self.stats.failures += 1;
                        self.stats.last_failure = Some(format!("{err:#}"));
                        continue;
                    }
                };
                for producer in producers {
                    let address = producer.address();
                    let addr = match resolve(&address) {
                        Ok(addr) => addr,
                        Err(err) => {
                            // Reported once, not every round.
                            if self.unresolved.insert(address.clone()) {
                                self.errors.push(format!("nsqd {address}: {err:#}"));
                            }
                            continue;
                        }
                    };
                    if !self.known.insert((t, addr)) {
                        continue;
                    }
                    self.stats.found_late += 1;
                    if !self.stats.nsqd.contains(&address) {
                        self.stats.nsqd.push(address);
                    }
                    let server_name = cfg
                        .security
                        .tls_server_name
                        .clone()
                        .unwrap_or_else(|| producer.host.clone());
                    specs.extend(consumer::specs_for(
                        cfg,
                        t,
                        addr,
                        &server_name,
                        &mut self.next_index,
                    ));
                }
            }
        }
        specs
    }

    /// The discovery thread: polls until the run is over, starting
    /// consumers (threads of `scope`) for nsqd that appear, then joins them.
    pub fn run<'scope, 'env>(
        mut self,
        scope: &'scope Scope<'scope, 'env>,
        cfg: &'env Config,
        shared: &'env Shared,
    ) -> DiscoveryResult {
        let mut handles: Vec<Handle<'scope, ConsumerResult>> = Vec::new();
        let interval = cfg.lookupd_poll_interval.as_nanos() as u64;
        let mut next_poll = now_ns() + interval;
        let mut end = EndWatch::new(shared);
        loop {
            thread::sleep(TICK);
            let now = now_ns();
            if end.over(cfg, shared, now) {
                break;
            }
            if now < next_poll {
                continue;
            }
            for spec in self.round(cfg) {
                handles.push(
                    thread::Builder::new()
                        .name(format!("consumer-{}", spec.index))
                        .spawn_scoped(scope, move || {
                            consumer::subscribe_and_run(cfg, shared, spec)
                        }),
                );
            }
            next_poll = now_ns() + interval;
        }
        let mut errors = self.take_errors();
        let consumers = join_all(handles, "consumer", &mut errors);
        DiscoveryResult {
            consumers,
            errors,
            stats: self.stats,
        }
    }

    /// The figures so far (when no discovery thread ran).
    pub fn into_stats(self) -> DiscoveryStats {
        self.stats
    }
}

/// `host:port` to the first address it resolves to.
fn resolve(address: &str) -> Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("resolves to nothing"))
}

/// Decides when nothing more can be discovered that matters: the same end
/// conditions as a consumer's, taken over all streams.
struct EndWatch {
    last_received: u64,
    /// Last time any consumer received a message, ns.
    active_at: u64,
    /// When the producers were first seen done, ns.
    producers_done_at: Option<u64>,
}

impl EndWatch {
    fn new(shared: &Shared) -> EndWatch {
        EndWatch {
            last_received: shared.sub_received.load(Ordering::Relaxed),
            active_at: now_ns(),
            producers_done_at: None,
        }
    }

    fn over(&mut self, cfg: &Config, shared: &Shared, now: u64) -> bool {
        if shared.stop.load(Ordering::Relaxed) {
            return true;
        }
        let received = shared.sub_received.load(Ordering::Relaxed);
        if received != self.last_received {
            self.last_received = received;
            self.active_at = now;
        }
        if self.producers_done_at.is_none() && shared.producers_done.load(Ordering::Relaxed) {
            self.producers_done_at = Some(now);
        }
        let Some(done_at) = self.producers_done_at else {
            return false;
        };
        // Idle since the later of the last delivery and the producers'
        // end: a run whose nsqd were never found still drains this long.
        let idle =
            now.saturating_sub(self.active_at.max(done_at)) >= cfg.drain_timeout.as_nanos() as u64;
        let streams = shared.stream_received.len().max(1);
        let per_topic = streams / cfg.topics.len().max(1);
        let all = |want: &dyn Fn(usize) -> u64| {
            shared
                .stream_received
                .iter()
                .enumerate()
                .all(|(i, got)| got.load(Ordering::Relaxed) >= want(i))
        };
        match cfg.mode {
            Mode::Sub if cfg.expect > 0 => all(&|_| cfg.expect) || idle,
            Mode::Sub => now >= shared.measure_end,
            _ => all(&|i| shared.topic_acked[i / per_topic].load(Ordering::Relaxed)) || idle,
        }
    }
}
