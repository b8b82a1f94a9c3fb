//! nsqd's statsd loop (shard 0): every `--statsd-interval`, gather the stats
//! of every shard as `/stats` does, turn them into statsd lines against the
//! previous push (`stats::statsd`), and send them over UDP in packets of at
//! most `--statsd-udp-packet-size`, spread over the interval minus a second
//! as nsqd's `SpreadWriter` does.
//!
//! The address is resolved on the blocking pool each time (a DNS lookup must
//! not stall the core; nsqd dials anew each interval too), and the memory
//! figures are read there as well.

use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Weak;
use std::time::{Duration, Instant};

use crate::metrics::process::ProcessFigures;
use crate::peers::msg::{ControlOp, ControlReply};
use crate::shard::Shard;
use crate::stats::snapshot::{self, TopicStats};
use crate::stats::statsd::{packets, Lines, MemLines};

/// Run until the shard is gone. `prefix` is already expanded.
pub async fn run(shard: Weak<Shard>, prefix: String) {
    let mut last: Vec<TopicStats> = Vec::new();
    let mut next = Instant::now();
    loop {
        let Some(interval) = shard.upgrade().map(|s| s.opts().statsd_interval) else {
            return;
        };
        let interval = interval.max(Duration::from_millis(1));
        next += interval;
        glommio::timer::sleep(next.saturating_duration_since(Instant::now())).await;
        if Instant::now() > next + interval {
            // A push ran long (spreading, slow DNS): skip missed ticks.
            next = Instant::now();
        }
        let Some(s) = shard.upgrade() else { return };
        last = push(&s, &prefix, interval, last).await;
    }
}

/// One push; returns the stats it was computed from, for the next delta.
async fn push(
    shard: &std::rc::Rc<Shard>,
    prefix: &str,
    interval: Duration,
    last: Vec<TopicStats>,
) -> Vec<TopicStats> {
    let opts = shard.opts();
    let address = opts.statsd_address.clone();
    let mem_stats = opts.statsd_mem_stats;
    let data_path = shard.data_path().to_path_buf();
    let (target, mem) = shard
        .ctx
        .counters
        .blocking(move || {
            let target = resolve(&address);
            let mem = mem_stats.then(|| ProcessFigures::read(&data_path));
            (target, mem)
        })
        .await;
    let target = match target {
        Ok(target) => target,
        Err(e) => {
            crate::log_error!(
                "failed to create UDP socket to statsd({}) - {e}",
                opts.statsd_address
            );
            return last;
        }
    };
    let mut parts = Vec::new();
    for reply in shard
        .call_all(ControlOp::Stats {
            topic: None,
            channel: None,
            include_clients: false,
        })
        .await
    {
        if let ControlReply::Stats(topics, _) = reply {
            parts.push(topics);
        }
    }
    let mut now = snapshot::merge(parts);
    snapshot::with_latency(&mut now, &opts.e2e_processing_latency_percentiles);

    let mut lines = Lines::new(prefix);
    lines.stats(&now, &last, opts.statsd_exclude_ephemeral);
    if let Some(p) = mem {
        lines.mem(&MemLines {
            rss_bytes: p.rss_bytes,
            anon_bytes: p.anon_bytes,
            heap_in_use_bytes: p.allocator_committed_bytes,
        });
    }
    let packets = packets(&lines.into_lines(), opts.statsd_udp_packet_size as usize);
    crate::log_info!("STATSD: pushing stats to {}", opts.statsd_address);
    if let Err(e) = send(target, &packets, interval).await {
        crate::log_error!("STATSD: sending to {} failed - {e}", opts.statsd_address);
    }
    now
}

/// Sends the packets, spread evenly over `interval` minus one second.
async fn send(target: SocketAddr, packets: &[Vec<u8>], interval: Duration) -> std::io::Result<()> {
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = glommio::net::UdpSocket::bind(local)?;
    let gap = interval
        .saturating_sub(Duration::from_secs(1))
        .checked_div(packets.len().max(1) as u32)
        .unwrap_or_default();
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 && !gap.is_zero() {
            glommio::timer::sleep(gap).await;
        }
        socket.send_to(packet, target).await?;
    }
    Ok(())
}

/// `host:port` to an address (blocking: DNS).
fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host"))
}
