//! Edge-of-the-envelope measurements that loadgen does not cover:
//!
//! * `idle_conns`: what an idle client costs the broker (RSS, fds). Each
//!   connection sends only the V2 magic and then nothing, the state of a
//!   connected client between messages.
//! * `create_churn`: whether creating topics and channels (HTTP) stalls the
//!   publish path; PUB round trips on one connection are timed during a
//!   burst of creations and during a quiet baseline before it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;

use crate::custom::{fd_count, read_frame, socket_count, status_bytes};
use crate::runner::{http, Broker, Env, RunResult};

/// Frame type of a response (`OK`, `_heartbeat_`).
const FRAME_RESPONSE: u32 = 0;
/// Frame type of an error.
const FRAME_ERROR: u32 = 1;

/// Raises our RLIMIT_NOFILE soft limit to the hard limit (the broker,
/// started afterwards, inherits it); returns the new soft limit.
pub fn raise_nofile() -> Result<u64> {
    // SAFETY: rlimit is plain data that getrlimit fills.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit");
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: a valid pointer to an initialised rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setrlimit");
        }
    }
    Ok(lim.rlim_cur)
}

/// A V2 client connection: connected, magic sent, bounded timeouts.
fn connect_v2(addr: SocketAddr) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    stream.write_all(b"  V2")?;
    Ok(stream)
}

/// One PUB and its `OK`, answering heartbeats on the way.
fn pub_round_trip(stream: &mut TcpStream, command: &[u8]) -> Result<()> {
    stream.write_all(command)?;
    loop {
        let (kind, data) = read_frame(stream)?;
        match (kind, data.as_slice()) {
            (FRAME_RESPONSE, b"OK") => return Ok(()),
            (FRAME_RESPONSE, b"_heartbeat_") => stream.write_all(b"NOP\n")?,
            (FRAME_ERROR, e) => bail!("PUB: {}", String::from_utf8_lossy(e)),
            (k, d) => bail!(
                "PUB: unexpected frame {k}: {:?}",
                String::from_utf8_lossy(d)
            ),
        }
    }
}

/// `PUB <topic>\n<u32 BE size><body>`.
fn pub_command(topic: &str, body: &[u8]) -> Vec<u8> {
    let mut cmd = format!("PUB {topic}\n").into_bytes();
    cmd.extend_from_slice(&(body.len() as u32).to_be_bytes());
    cmd.extend_from_slice(body);
    cmd
}

/// `idle_conns`: broker RSS and fds before and after `env.idle_conns` idle
/// connections (fewer when the fd limit does not fit them; noted).
pub fn idle_conns(env: &Env, broker: &Broker, result: &mut RunResult) -> Result<()> {
    let pid = broker.pid();
    // Both we and the broker hold one fd per connection; keep a margin for
    // the rest (files, listeners, pipes).
    let soft = raise_nofile().unwrap_or(1024) as usize;
    let used = fd_count("self")
        .unwrap_or(0)
        .max(fd_count(&pid.to_string()).unwrap_or(0));
    let fits = soft.saturating_sub(used + 100);
    let count = env.idle_conns.min(fits);
    if count < env.idle_conns {
        result.notes.push(format!(
            "RLIMIT_NOFILE {soft} fits only {count} of the {} connections asked for",
            env.idle_conns
        ));
    }
    if count == 0 {
        bail!("RLIMIT_NOFILE {soft} leaves no room for connections");
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = status_bytes(pid, "VmRSS").ok_or_else(|| anyhow!("broker RSS unreadable"))?;
    let fds0 = fd_count(&pid.to_string()).ok_or_else(|| anyhow!("broker fds unreadable"))?;
    let sockets0 = socket_count(pid).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let stream = connect_v2(broker.tcp).with_context(|| format!("connection {i}"))?;
        conns.push(stream);
        if Instant::now() > deadline {
            bail!("opened only {i} connections in 120 s");
        }
    }
    // Settle: at least 1 s, and until the broker holds every connection
    // (distinct sockets: a broker may hold more than one fd per socket),
    // bounded at 10 s; one it cannot accept (its own fd limit) stays short.
    let settle = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let held = || socket_count(pid).unwrap_or(0).saturating_sub(sockets0);
    while held() < count && settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = held();
    if held < count {
        result.notes.push(format!(
            "the broker holds only {held} of the {count} connections (sockets in /proc/<pid>/fd)"
        ));
    }
    // Then until the fd count is steady for 500 ms (a broker may add fds
    // per connection after accepting it), within the same 10 s.
    let mut fds1 = fd_count(&pid.to_string()).unwrap_or(0);
    while settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        let now = fd_count(&pid.to_string()).unwrap_or(0);
        if now == fds1 {
            break;
        }
        fds1 = now;
    }
    let rss1 = status_bytes(pid, "VmRSS").ok_or_else(|| anyhow!("broker RSS unreadable"))?;
    // A few connections, spread over the list, must still work.
    let command = pub_command("idle_check", b"alive?");
    let picks = [0, count / 4, count / 2, 3 * count / 4, count - 1];
    let mut alive = 0;
    let mut dead = Vec::new();
    for &i in &picks {
        match pub_round_trip(&mut conns[i], &command) {
            Ok(()) => alive += 1,
            Err(e) => dead.push(format!("connection {i}: {e:#}")),
        }
    }
    let n = count as f64;
    let m = &mut result.metrics;
    m.insert("conns".into(), n);
    m.insert("held".into(), held as f64);
    m.insert("rss_before".into(), rss0 as f64);
    m.insert("rss_after".into(), rss1 as f64);
    m.insert(
        "kib_per_conn".into(),
        (rss1 as f64 - rss0 as f64) / 1024.0 / n,
    );
    m.insert("fds_per_conn".into(), (fds1 as f64 - fds0 as f64) / n);
    m.insert("alive_ok".into(), alive as f64);
    drop(conns);
    if !dead.is_empty() {
        bail!(
            "{} of {} checked connections dead: {}",
            dead.len(),
            picks.len(),
            dead.join("; ")
        );
    }
    Ok(())
}

/// Topics made by `create_churn`, each with two channels.
const CHURN_TOPICS: usize = 200;
/// Quiet period of PUBs before the creations.
const BASELINE: Duration = Duration::from_secs(2);
/// Publisher phases.
const PHASE_BASELINE: u8 = 0;
const PHASE_CREATE: u8 = 1;
const PHASE_STOP: u8 = 2;

/// Round-trip histograms (ns) of the baseline and creation phases.
struct PubTimes {
    baseline: Histogram<u64>,
    during: Histogram<u64>,
}

/// Unbatched PUBs of 100 B to `churn_pub`, one in flight, until
/// `PHASE_STOP`; each round trip goes to the current phase's histogram.
fn publisher(addr: SocketAddr, phase: &AtomicU8) -> Result<PubTimes> {
    let new = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3);
    let mut times = PubTimes {
        baseline: new()?,
        during: new()?,
    };
    let mut stream = connect_v2(addr)?;
    let command = pub_command("churn_pub", &[b'x'; 100]);
    loop {
        let now = phase.load(Ordering::Acquire);
        if now == PHASE_STOP {
            return Ok(times);
        }
        let start = Instant::now();
        pub_round_trip(&mut stream, &command)?;
        let ns = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        let hist = if now == PHASE_BASELINE {
            &mut times.baseline
        } else {
            &mut times.during
        };
        hist.saturating_record(ns);
    }
}

fn post(addr: SocketAddr, path: &str) -> Result<()> {
    let (status, body) = http(addr, "POST", path)?;
    if status != 200 {
        bail!("POST {path}: {status} {}", body.trim());
    }
    Ok(())
}

/// The creations of `create_churn`, bounded at 300 s from `start`.
fn create_topics(http_addr: SocketAddr, start: Instant) -> Result<()> {
    for i in 0..CHURN_TOPICS {
        post(http_addr, &format!("/topic/create?topic=churn_{i}"))?;
        for channel in ["c0", "c1"] {
            post(
                http_addr,
                &format!("/channel/create?topic=churn_{i}&channel={channel}"),
            )?;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("created only {} topics in 300 s", i + 1);
        }
    }
    Ok(())
}

/// `create_churn`: a publisher thread times PUBs for [`BASELINE`], then
/// during the creation of [`CHURN_TOPICS`] topics with channels `c0` and
/// `c1`, timed as a whole; the publisher stops when creation ends.
pub fn create_churn(broker: &Broker, result: &mut RunResult) -> Result<()> {
    let phase = Arc::new(AtomicU8::new(PHASE_BASELINE));
    let tcp = broker.tcp;
    let publisher_phase = Arc::clone(&phase);
    let handle = std::thread::spawn(move || {
        let out = publisher(tcp, &publisher_phase);
        // On an early error, stop here and let the main thread see it.
        publisher_phase.store(PHASE_STOP, Ordering::Release);
        out
    });
    std::thread::sleep(BASELINE);
    let created = if phase
        .compare_exchange(
            PHASE_BASELINE,
            PHASE_CREATE,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        let start = Instant::now();
        let made = create_topics(broker.http, start);
        let elapsed = start.elapsed();
        phase.store(PHASE_STOP, Ordering::Release);
        made.map(|()| elapsed)
    } else {
        Err(anyhow!("publisher stopped during the baseline"))
    };
    // The publisher ends after its current round trip (5 s read timeout).
    let times = handle
        .join()
        .map_err(|_| anyhow!("publisher thread panicked"))?
        .context("publisher")?;
    let elapsed = created?;
    let m = &mut result.metrics;
    m.insert("create_s".into(), elapsed.as_secs_f64());
    if !times.during.is_empty() {
        m.insert(
            "during_p50".into(),
            times.during.value_at_quantile(0.50) as f64,
        );
        m.insert(
            "during_p99".into(),
            times.during.value_at_quantile(0.99) as f64,
        );
        m.insert("during_max".into(), times.during.max() as f64);
    }
    m.insert("during_pubs".into(), times.during.len() as f64);
    if !times.baseline.is_empty() {
        m.insert(
            "baseline_p50".into(),
            times.baseline.value_at_quantile(0.50) as f64,
        );
        m.insert(
            "baseline_p99".into(),
            times.baseline.value_at_quantile(0.99) as f64,
        );
    }
    result.notes.push(format!(
        "{} PUBs in the {:.0} s baseline, {} during creation",
        times.baseline.len(),
        BASELINE.as_secs_f64(),
        times.during.len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pub_command_layout() {
        assert_eq!(pub_command("t", b"ab"), b"PUB t\n\0\0\0\x02ab".to_vec());
    }
}
