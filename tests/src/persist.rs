//! Helpers for the disk-persistence tests (`tests/tests/persistence.rs`):
//! a seeded random source, unique self-describing bodies, a bounded
//! "consume until every expected body arrived" loop, the publish/consume
//! load of the kill -9 tests, and the files of a data directory.
//!
//! Restarting on the same data directory after `kill()` is
//! [`crate::TestNsqd::restart`]: with no running child it only spawns.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::{Frame, RawClient, ShowFrame};

/// xorshift64*: a small, seeded random source (the seed is printed so a
/// failing run can be reproduced).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `$PERSIST_SEED` if set, else from the clock.
    pub fn from_env_or_clock() -> Rng {
        let seed = std::env::var("PERSIST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9E37_79B9_7F4A_7C15)
            });
        eprintln!("random seed {seed} (set PERSIST_SEED={seed} to repeat)");
        Rng::new(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// A unique body: `"<tag>-<n:08>|"` followed by filler derived from `n`,
/// `len` bytes in all (at least the tag part). Two different `(tag, n)`
/// never share a body, and a flipped byte never yields another valid body
/// of the same run.
pub fn body(tag: &str, n: u64, len: usize) -> Vec<u8> {
    let mut b = format!("{tag}-{n:08}|").into_bytes();
    let mut i = 0u64;
    while b.len() < len {
        b.push(b'a' + ((n.wrapping_mul(31).wrapping_add(i)) % 26) as u8);
        i += 1;
    }
    b
}

/// Shows a body in a failure message.
pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned()
}

/// What a drain saw of one body.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Deliveries of this body.
    pub count: u32,
    /// When it first arrived.
    pub first: Instant,
    /// `attempts` of the first delivery.
    pub attempts: u16,
}

/// What a drain saw.
#[derive(Debug, Default)]
pub struct Drained {
    /// Every body delivered.
    pub seen: HashMap<Vec<u8>, Arrival>,
    /// `E_FIN_FAILED` answers (non-fatal) to FINs of delivered messages.
    pub fin_failed: Vec<String>,
}

/// Consumes from `c` (already subscribed, RDY set), FIN-ing every message,
/// until every body in `want` has arrived (failing after `timeout` with a
/// sample of what is missing), then until no message came for `quiet`
/// (bounded by another 10 s). `E_FIN_FAILED` answers are collected, any
/// other error frame fails.
pub fn drain(
    c: &mut RawClient,
    want: &HashSet<Vec<u8>>,
    timeout: Duration,
    quiet: Duration,
) -> Result<Drained> {
    let mut d = Drained::default();
    let seen = &mut d.seen;
    let failed = &mut d.fin_failed;
    let mut missing = want.len();
    let deadline = Instant::now() + timeout;
    while missing > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let mut sample: Vec<String> = want
                .iter()
                .filter(|b| !seen.contains_key(*b))
                .map(|b| show(b))
                .collect();
            sample.sort();
            sample.truncate(10);
            bail!(
                "after {timeout:?}: {missing} of {} expected bodies never arrived ({} distinct \
                 bodies received); first missing: {sample:?}",
                want.len(),
                seen.len()
            );
        }
        if let Some(frame) = c.read_frame_within(left.min(Duration::from_secs(1)))? {
            if record(c, frame, seen, failed)?.is_some_and(|b| want.contains(&b)) {
                missing -= 1;
            }
        }
    }
    let hard_stop = Instant::now() + quiet + Duration::from_secs(10);
    while Instant::now() < hard_stop {
        match c.read_frame_within(quiet)? {
            None => return Ok(d),
            Some(frame) => {
                record(c, frame, seen, failed)?;
            }
        }
    }
    bail!("messages still arriving 10 s after all expected ones had arrived")
}

/// Handles one frame of a drain: a message is FINished and recorded (the
/// body is returned when seen for the first time), a heartbeat answered.
fn record(
    c: &mut RawClient,
    frame: Frame,
    seen: &mut HashMap<Vec<u8>, Arrival>,
    fin_failed: &mut Vec<String>,
) -> Result<Option<Vec<u8>>> {
    match frame {
        Frame::Message(m) => {
            c.fin(&m.id)?;
            let body = m.body.to_vec();
            match seen.get_mut(&body) {
                Some(a) => {
                    a.count += 1;
                    Ok(None)
                }
                None => {
                    let a = Arrival {
                        count: 1,
                        first: Instant::now(),
                        attempts: m.attempts,
                    };
                    seen.insert(body.clone(), a);
                    Ok(Some(body))
                }
            }
        }
        Frame::Response(b) if &b[..] == b"_heartbeat_" => {
            c.nop()?;
            Ok(None)
        }
        Frame::Error(e) if e.starts_with(b"E_FIN_FAILED") => {
            fin_failed.push(String::from_utf8_lossy(&e).into_owned());
            Ok(None)
        }
        other => bail!("while consuming: unexpected {}", ShowFrame(&other)),
    }
}

/// Every body in `seen` is in `known` (a body we never sent is corrupt).
pub fn all_known(seen: &HashMap<Vec<u8>, Arrival>, known: &HashSet<Vec<u8>>) -> Result<()> {
    let mut unknown: Vec<String> = seen
        .keys()
        .filter(|b| !known.contains(*b))
        .map(|b| show(b))
        .collect();
    unknown.sort();
    if !unknown.is_empty() {
        bail!(
            "{} bodies never sent (corrupt?), first: {:?}",
            unknown.len(),
            &unknown[..unknown.len().min(5)]
        );
    }
    Ok(())
}

/// `seen` is exactly `sent`, each body once, and no FIN was refused.
pub fn exactly_once(d: &Drained, sent: &HashSet<Vec<u8>>) -> Result<()> {
    all_known(&d.seen, sent)?;
    let mut dups: Vec<String> = d
        .seen
        .iter()
        .filter(|(_, a)| a.count > 1)
        .map(|(b, a)| format!("{} x{}", show(b), a.count))
        .collect();
    dups.sort();
    if !dups.is_empty() {
        bail!(
            "{} bodies delivered more than once, first: {:?}",
            dups.len(),
            &dups[..dups.len().min(5)]
        );
    }
    if !d.fin_failed.is_empty() {
        bail!(
            "{} FINs refused, first: {:?}",
            d.fin_failed.len(),
            &d.fin_failed[..d.fin_failed.len().min(5)]
        );
    }
    if d.seen.len() != sent.len() {
        bail!(
            "{} distinct bodies received, {} sent",
            d.seen.len(),
            sent.len()
        );
    }
    Ok(())
}

/// Names of the regular files directly in `dir`, sorted.
pub fn file_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Disk-queue segment files (`*.seg`) in `dir` whose name starts with one
/// of `prefixes`.
pub fn segments(dir: &Path, prefixes: &[String]) -> Result<Vec<String>> {
    Ok(file_names(dir)?
        .into_iter()
        .filter(|n| n.ends_with(".seg") && prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .collect())
}

/// `<dir>/nsqd.dat` parsed, if it exists and is complete JSON.
pub fn read_metadata(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join("nsqd.dat")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `(paused, [(channel, paused)])` of `topic` in a parsed `nsqd.dat`.
pub fn meta_topic(meta: &serde_json::Value, topic: &str) -> Option<(bool, Vec<(String, bool)>)> {
    let t = meta["topics"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == topic)?;
    let mut channels: Vec<(String, bool)> = t["channels"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["paused"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    channels.sort();
    Some((t["paused"] == true, channels))
}

// ---------------------------------------------------------------------------
// The load of the kill -9 tests
// ---------------------------------------------------------------------------

/// What the load threads did in one cycle.
#[derive(Default)]
pub struct Ledger {
    /// Every body a PUB/MPUB/DPUB was sent with.
    pub attempted: HashSet<Vec<u8>>,
    /// Bodies whose publish was answered OK.
    pub acked: HashSet<Vec<u8>>,
    /// Acknowledged DPUB bodies (2 s): when the DPUB was sent.
    pub dpub_at: HashMap<Vec<u8>, Instant>,
    /// Bodies REQ'd with 2 s: when the REQ was sent.
    pub req_at: HashMap<Vec<u8>, Instant>,
    /// Bodies a FIN was sent for (it may not have been processed).
    pub fin_sent: HashSet<Vec<u8>>,
    /// Messages left in flight on purpose.
    pub held: usize,
    /// Anything unexpected before the kill.
    pub errors: Vec<String>,
}

pub struct Load {
    pub ledger: Mutex<Ledger>,
    pub stop: AtomicBool,
    pub killed: AtomicBool,
}

impl Load {
    pub fn fail(&self, what: String) {
        if !self.killed.load(Ordering::SeqCst) {
            self.ledger.lock().unwrap().errors.push(what);
        }
    }
}

/// One producer: PUBs, MPUBs of 20 and (with `dpub`) DPUBs of 2 s, one
/// command at a time, recording what was acknowledged. Ends on `stop` or
/// when the kill closes the connection.
pub fn producer(addr: SocketAddr, topic: String, tag: String, dpub: bool, load: Arc<Load>) {
    let mut p = match RawClient::connect(addr) {
        Ok(p) => p,
        Err(e) => return load.fail(format!("{tag}: connect: {e:#}")),
    };
    let (mut n, mut k) = (0u64, 0u64);
    while !load.stop.load(Ordering::SeqCst) {
        k += 1;
        let deferred = dpub && k % 8 == 0;
        let count = if !deferred && k % 3 == 0 { 20 } else { 1 };
        let bodies: Vec<Vec<u8>> = (n..n + count).map(|i| body(&tag, i, 48)).collect();
        n += count;
        let sent_at = Instant::now();
        load.ledger
            .lock()
            .unwrap()
            .attempted
            .extend(bodies.iter().cloned());
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
        let sent = if deferred {
            p.dpub(&topic, 2000, refs[0])
        } else if count > 1 {
            p.mpub(&topic, &refs)
        } else {
            p.publish(&topic, refs[0])
        };
        if let Err(e) = sent {
            return load.fail(format!("{tag}: send: {e:#}"));
        }
        match p.read_frame() {
            Ok(Frame::Response(b)) if &b[..] == b"OK" => {
                let mut l = load.ledger.lock().unwrap();
                if deferred {
                    l.dpub_at.insert(bodies[0].clone(), sent_at);
                }
                l.acked.extend(bodies);
            }
            Ok(other) => {
                return load.fail(format!("{tag}: publish answered {}", ShowFrame(&other)))
            }
            Err(e) => return load.fail(format!("{tag}: {e:#}")),
        }
    }
}

/// The consumer during the load: holds up to 25 messages in flight, REQs up
/// to 60 with 2 s, FINs the rest (and every redelivery).
pub fn load_consumer(mut c: RawClient, mut rng: Rng, load: Arc<Load>) {
    let (mut held, mut reqd) = (0, 0);
    while !load.stop.load(Ordering::SeqCst) {
        let m = match c.read_frame_within(Duration::from_millis(50)) {
            Ok(None) => continue,
            Ok(Some(Frame::Message(m))) => m,
            Ok(Some(Frame::Response(b))) if &b[..] == b"_heartbeat_" => {
                let _ = c.nop();
                continue;
            }
            Ok(Some(other)) => return load.fail(format!("consumer got {}", ShowFrame(&other))),
            Err(e) => return load.fail(format!("consumer: {e:#}")),
        };
        let body = m.body.to_vec();
        let now = Instant::now();
        let r = rng.range(0, 10);
        let mut l = load.ledger.lock().unwrap();
        if let Some(at) = l.dpub_at.get(&body) {
            if now < *at + Duration::from_secs(1) {
                let early = now.duration_since(*at);
                l.errors.push(format!(
                    "DPUB 2 s {} delivered after {early:?}",
                    show(&body)
                ));
            }
        }
        let res = if m.attempts == 1 && r < 2 && held < 25 {
            held += 1;
            l.held += 1;
            Ok(())
        } else if m.attempts == 1 && r < 4 && reqd < 60 {
            reqd += 1;
            l.req_at.insert(body, now);
            c.req(&m.id, 2000)
        } else {
            l.fin_sent.insert(body);
            c.fin(&m.id)
        };
        drop(l);
        if let Err(e) = res {
            return load.fail(format!("consumer: {e:#}"));
        }
    }
}

/// Starts one load cycle on `topic` (channel `ch`): the consumer and three
/// producers (`c<cycle>p<i>-...` bodies, producer 0 also DPUBing).
pub fn start_load(
    addr: SocketAddr,
    topic: &str,
    cycle: usize,
    seed: u64,
) -> Result<(Arc<Load>, Vec<JoinHandle<()>>)> {
    let load = Arc::new(Load {
        ledger: Mutex::default(),
        stop: AtomicBool::new(false),
        killed: AtomicBool::new(false),
    });
    let sub = crate::consumer(addr, topic, "ch", 100, serde_json::json!({}))?;
    let l = load.clone();
    let mut threads = vec![thread::spawn(move || load_consumer(sub, Rng::new(seed), l))];
    for i in 0..3 {
        let (l, t) = (load.clone(), topic.to_string());
        threads.push(thread::spawn(move || {
            producer(addr, t, format!("c{cycle}p{i}"), i == 0, l)
        }));
    }
    Ok((load, threads))
}

/// Marks the load as killed (errors from now on are expected), runs
/// `kill`, stops and joins the threads, and returns the ledger.
pub fn end_load(
    load: Arc<Load>,
    threads: Vec<JoinHandle<()>>,
    kill: impl FnOnce(),
) -> Result<Ledger> {
    load.killed.store(true, Ordering::SeqCst);
    kill();
    load.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().map_err(|_| anyhow!("a load thread panicked"))?;
    }
    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    Ok(ledger)
}
