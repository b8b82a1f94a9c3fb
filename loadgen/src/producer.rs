//! A producer connection: PUB (batch 1) or MPUB frames, built once and
//! patched per send, with acknowledgements matched in order.
//!
//! One thread, one blocking socket, a `ppoll` between sends: at full speed
//! it keeps `--pipeline` batches in flight (nsq's bench_writer keeps one);
//! at a fixed rate it sends each batch when [`Pacer`] says it is due, stamped
//! with that due time, and never waits for an acknowledgement first.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use nsq_proto::command::encode;
use nsq_proto::frame::{Frame, HEARTBEAT};

use crate::args::Config;
use crate::body;
use crate::integrity::SeqSet;
use crate::net::{identify_body, is_timeout, now_ns, Conn};
use crate::pacing::Pacer;
use crate::run::{new_histogram, Shared};

/// Longest wait between checks of the stop flags.
const MAX_WAIT_NS: u64 = 50_000_000;

/// Which producer this is and where it publishes.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    /// Producer id written into every body.
    pub id: u32,
    /// Index into `Config::topics`.
    pub topic: usize,
    /// nsqd to publish to.
    pub addr: SocketAddr,
    /// This producer's share of `--rate` (0: as fast as possible).
    pub rate: u64,
    /// When its first batch is due, ns.
    pub start_ns: u64,
}

/// What a producer did.
#[derive(Debug)]
pub struct ProducerResult {
    /// Its spec.
    pub spec: ProducerSpec,
    /// Sequence numbers nsqd acknowledged.
    pub acked: SeqSet,
    /// Messages written to the socket.
    pub written: u64,
    /// Messages in batches nsqd refused.
    pub failed: u64,
    /// Messages acknowledged inside the measurement window.
    pub window_msgs: u64,
    /// First send and last acknowledgement, ns (for count-bounded runs).
    pub first_send_ns: u64,
    /// See `first_send_ns`.
    pub last_ack_ns: u64,
    /// Acknowledgement latency, ns from the (intended) send time.
    pub ack_latency: Histogram<u64>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// A frame sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    count: u64,
    send_ns: u64,
}

/// A PUB or MPUB command for `count` template bodies, and where each body
/// starts in it (the wire layout is in `nsq_proto`'s crate docs).
fn build_frame(topic: &str, template: &[u8], count: usize) -> (Vec<u8>, Vec<usize>) {
    let mut buf = BytesMut::new();
    if count == 1 {
        encode::pub_(&mut buf, topic, template);
    } else {
        encode::mpub(&mut buf, topic, &vec![template; count]);
    }
    let line = topic.len() + if count == 1 { 5 } else { 6 };
    let offsets = if count == 1 {
        vec![line + 4]
    } else {
        (0..count)
            .map(|i| line + 8 + i * (4 + template.len()) + 4)
            .collect()
    };
    (buf.to_vec(), offsets)
}

struct Producer<'a> {
    cfg: &'a Config,
    shared: &'a Shared,
    topic: &'a str,
    template: Vec<u8>,
    fill_hash: u64,
    frame: Vec<u8>,
    offsets: Vec<usize>,
    next_seq: u64,
    pending: VecDeque<Pending>,
    out: Vec<u8>,
}

impl Producer<'_> {
    /// Messages still allowed by `--count` (u64::MAX when unbounded).
    fn remaining(&self) -> u64 {
        if self.cfg.count == 0 {
            u64::MAX
        } else {
            self.cfg.count.saturating_sub(self.next_seq)
        }
    }

    /// Appends one batch stamped with `send_ns` to the output buffer.
    fn append_batch(&mut self, id: u32, send_ns: u64) {
        let count = (self.cfg.batch as u64).min(self.remaining());
        if count == 0 {
            return;
        }
        if count != self.offsets.len() as u64 {
            // The last batch of a --count run is short: build it once.
            (self.frame, self.offsets) = build_frame(self.topic, &self.template, count as usize);
        }
        let base = self.out.len();
        self.out.extend_from_slice(&self.frame);
        let size = self.template.len();
        for (i, off) in self.offsets.iter().enumerate() {
            let start = base + off;
            body::stamp(
                &mut self.out[start..start + size],
                self.fill_hash,
                send_ns,
                self.next_seq + i as u64,
                id,
            );
        }
        self.pending.push_back(Pending {
            seq: self.next_seq,
            count,
            send_ns,
        });
        self.next_seq += count;
    }

    /// True while a channel of this producer's topic lags too far behind.
    fn backlogged(&self, topic: usize) -> bool {
        if self.cfg.max_backlog == 0 {
            return false;
        }
        let acked = self.shared.topic_acked[topic].load(Ordering::Relaxed);
        let slowest = self
            .shared
            .streams_of(topic)
            .map(|s| s.load(Ordering::Relaxed))
            .min()
            .unwrap_or(acked);
        acked.saturating_sub(slowest) >= self.cfg.max_backlog
    }
}

/// Runs one producer until its time or count is up, the run stops, or nsqd
/// refuses a batch. Never panics on I/O: failures land in `error`.
pub fn run(cfg: &Config, shared: &Shared, spec: ProducerSpec) -> ProducerResult {
    let mut result = ProducerResult {
        spec: spec.clone(),
        acked: SeqSet::default(),
        written: 0,
        failed: 0,
        window_msgs: 0,
        first_send_ns: u64::MAX,
        last_ack_ns: 0,
        ack_latency: new_histogram(),
        error: None,
    };
    if let Err(err) = run_inner(cfg, shared, &spec, &mut result) {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        result.error = Some(format!("producer {} ({}): {err:#}", spec.id, spec.addr));
    }
    result
}

fn run_inner(
    cfg: &Config,
    shared: &Shared,
    spec: &ProducerSpec,
    result: &mut ProducerResult,
) -> Result<()> {
    let topic = &cfg.topics[spec.topic];
    let mut conn = Conn::connect(spec.addr)?;
    if cfg.security.negotiates() {
        // Only for TLS, compression or AUTH: plain producers send no
        // IDENTIFY, as nsq's bench_writer.
        let identify = identify_body(format!("loadgen-producer-{}", spec.id));
        conn.identify(&cfg.security, &cfg.server_name(spec.addr), identify)?;
    }
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let template = body::template(cfg.size, spec.id);
    let fill_hash = body::fill_hash(template.len(), &template[body::HEADER_LEN..]);
    let (frame, offsets) = build_frame(topic, &template, cfg.batch);
    let mut producer = Producer {
        cfg,
        shared,
        topic,
        template,
        fill_hash,
        frame,
        offsets,
        next_seq: 0,
        pending: VecDeque::new(),
        out: Vec::with_capacity(1 << 20),
    };
    let mut pacer = (spec.rate > 0).then(|| Pacer::new(spec.start_ns, spec.rate, cfg.batch as u64));
    let mut replies = BytesMut::new();
    loop {
        let now = now_ns();
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let sending = now < shared.send_end && producer.remaining() > 0;
        if !sending && producer.pending.is_empty() {
            return Ok(());
        }
        let backlogged = sending && producer.backlogged(spec.topic);
        let mut wait_ns = MAX_WAIT_NS;
        if sending && !backlogged {
            let before = producer.next_seq;
            match pacer.as_mut() {
                Some(pacer) => {
                    let room = cfg.max_outstanding.saturating_sub(producer.pending.len());
                    for k in pacer.take_due(now, room as u64) {
                        producer.append_batch(spec.id, pacer.due(k));
                    }
                    if room > 0 {
                        wait_ns = pacer.next_due().saturating_sub(now).min(MAX_WAIT_NS);
                    }
                }
                None => {
                    while producer.pending.len() < cfg.pipeline && producer.remaining() > 0 {
                        producer.append_batch(spec.id, now);
                    }
                }
            }
            if producer.next_seq > before {
                result.first_send_ns = result.first_send_ns.min(now);
                result.written += producer.next_seq - before;
            }
        } else if backlogged {
            wait_ns = 200_000;
        }
        if !producer.out.is_empty() {
            conn.write_all(&producer.out)?;
            producer.out.clear();
        }
        if !conn.wait_readable(wait_ns)? {
            continue;
        }
        match conn.read_some() {
            Ok(0) => bail!(
                "nsqd closed the connection with {} batches unacknowledged",
                producer.pending.len()
            ),
            Ok(_) => {}
            // With TLS or compression: part of a record or chunk.
            Err(err) if is_timeout(&err) => continue,
            Err(err) => return Err(err.into()),
        }
        let now = now_ns();
        let mut acked_now = 0;
        while let Some(frame) = conn.next_frame()? {
            match frame {
                Frame::Response(data) if data[..] == *HEARTBEAT => encode::nop(&mut replies),
                Frame::Response(_) => {
                    let Some(done) = producer.pending.pop_front() else {
                        bail!("response with no command outstanding");
                    };
                    if done.send_ns >= shared.measure_start && done.send_ns < shared.measure_end {
                        result
                            .ack_latency
                            .saturating_record(now.saturating_sub(done.send_ns));
                    }
                    if now >= shared.measure_start && now < shared.measure_end {
                        result.window_msgs += done.count;
                    }
                    result.acked.insert_range(done.seq, done.count);
                    result.last_ack_ns = now;
                    acked_now += done.count;
                }
                Frame::Error(data) => {
                    if let Some(done) = producer.pending.pop_front() {
                        result.failed += done.count;
                    }
                    shared.topic_acked[spec.topic].fetch_add(acked_now, Ordering::Relaxed);
                    shared.pub_acked.fetch_add(acked_now, Ordering::Relaxed);
                    bail!("nsqd refused a publish: {}", String::from_utf8_lossy(&data));
                }
                Frame::Message(_) => bail!("message frame on a producer connection"),
            }
        }
        shared.topic_acked[spec.topic].fetch_add(acked_now, Ordering::Relaxed);
        shared.pub_acked.fetch_add(acked_now, Ordering::Relaxed);
        if !replies.is_empty() {
            conn.write_all(&replies)?;
            replies.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsq_proto::{decode_command, Command, Limits};

    #[test]
    fn frame_offsets_point_at_bodies() {
        let template = body::template(40, 1);
        for count in [1, 3] {
            let (mut frame, offsets) = build_frame("t", &template, count);
            let fh = body::fill_hash(template.len(), &template[body::HEADER_LEN..]);
            for (i, off) in offsets.iter().enumerate() {
                body::stamp(&mut frame[*off..off + 40], fh, 5, i as u64, 1);
            }
            let mut buf = BytesMut::from(&frame[..]);
            let bodies = match decode_command(&mut buf, &Limits::default()) {
                Ok(Some(Command::Pub { body, .. })) => vec![body],
                Ok(Some(Command::Mpub { bodies, .. })) => bodies,
                other => panic!("bad frame: {other:?}"),
            };
            assert_eq!(bodies.len(), count);
            for (i, b) in bodies.iter().enumerate() {
                assert_eq!(body::verify(b).map(|s| s.seq), Some(i as u64));
            }
        }
    }
}
