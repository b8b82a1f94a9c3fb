//! A consumer connection: IDENTIFY, SUB, RDY once, then read 64 KiB at a
//! time, check every body and answer the whole read with one write of FINs.
//!
//! nsqd's RDY is a window, not a credit to renew, so after the first RDY the
//! loop only reads, verifies and FINs (as nsq's bench_reader does).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use nsq_proto::command::encode;
use nsq_proto::frame::{Frame, HEARTBEAT};

use crate::args::{Config, Mode};
use crate::body;
use crate::integrity::Received;
use crate::net::{identify_body, is_timeout, now_ns, Conn};
use crate::run::{new_histogram, Shared};

/// How often a blocked read returns to check the stop conditions.
const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Which consumer this is.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Index of this connection, for its client_id.
    pub index: usize,
    /// Stream index: `topic * channels + channel`.
    pub stream: usize,
    /// Topic name.
    pub topic: String,
    /// Channel name.
    pub channel: String,
    /// nsqd to subscribe on.
    pub addr: SocketAddr,
    /// Name its TLS certificate must carry (see `Config::server_name`; a
    /// discovered nsqd's `broadcast_address`).
    pub server_name: String,
}

/// `--consumers` specs for every channel of topic `topic` on the nsqd at
/// `addr`, numbered from `next_index` (advanced).
pub fn specs_for(
    cfg: &Config,
    topic: usize,
    addr: SocketAddr,
    server_name: &str,
    next_index: &mut usize,
) -> Vec<ConsumerSpec> {
    let mut specs = Vec::new();
    for (c, channel) in cfg.channels.iter().enumerate() {
        for _ in 0..cfg.consumers {
            specs.push(ConsumerSpec {
                index: *next_index,
                stream: topic * cfg.channels.len() + c,
                topic: cfg.topics[topic].clone(),
                channel: channel.clone(),
                addr,
                server_name: server_name.to_string(),
            });
            *next_index += 1;
        }
    }
    specs
}

/// What a consumer saw.
#[derive(Debug)]
pub struct ConsumerResult {
    /// Its spec.
    pub spec: ConsumerSpec,
    /// Sequences received, per producer.
    pub received: Received,
    /// Messages received inside the measurement window.
    pub window_msgs: u64,
    /// Body bytes received inside the measurement window.
    pub window_bytes: u64,
    /// First and last message, ns (for count-bounded runs).
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
    /// End-to-end latency, ns from the (intended) send time in the body.
    pub e2e_latency: Histogram<u64>,
    /// FIN refusals (non-fatal E_FIN_FAILED).
    pub fin_errors: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Connects and subscribes; the caller starts the producers only after
/// every consumer is subscribed, so no channel misses the first messages.
pub fn subscribe(cfg: &Config, spec: &ConsumerSpec) -> Result<Conn> {
    let mut conn = Conn::connect(spec.addr)?;
    let mut identify = identify_body(format!("loadgen-{}", spec.index));
    if let Some(size) = cfg.output_buffer_size {
        identify["output_buffer_size"] = size.into();
    }
    if let Some(ms) = cfg.output_buffer_timeout {
        identify["output_buffer_timeout"] = ms.into();
    }
    conn.identify(&cfg.security, &spec.server_name, identify)?;
    let mut buf = BytesMut::new();
    encode::sub(&mut buf, &spec.topic, &spec.channel);
    conn.write_all(&buf)?;
    conn.expect_response(Duration::from_secs(10))
        .with_context(|| format!("SUB {} {}", spec.topic, spec.channel))?;
    buf.clear();
    encode::rdy(&mut buf, cfg.rdy as i64);
    conn.write_all(&buf)?;
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(conn)
}

impl ConsumerResult {
    /// Nothing received yet.
    fn new(spec: ConsumerSpec) -> ConsumerResult {
        ConsumerResult {
            spec,
            received: Received::default(),
            window_msgs: 0,
            window_bytes: 0,
            first_ns: u64::MAX,
            last_ns: 0,
            e2e_latency: new_histogram(),
            fin_errors: 0,
            error: None,
        }
    }

    /// Records why this consumer stopped early.
    fn fail(&mut self, shared: &Shared, err: &anyhow::Error) {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        let spec = &self.spec;
        self.error = Some(format!(
            "consumer {} ({} {}/{}): {err:#}",
            spec.index, spec.addr, spec.topic, spec.channel
        ));
    }
}

/// Consumes until the run's end condition (see `done`). Never panics on
/// I/O: failures land in `error`.
pub fn run(cfg: &Config, shared: &Shared, spec: ConsumerSpec, conn: Conn) -> ConsumerResult {
    let mut result = ConsumerResult::new(spec.clone());
    if let Err(err) = run_inner(cfg, shared, &spec, conn, &mut result) {
        result.fail(shared, &err);
    }
    result
}

/// Subscribes, then runs: for consumers of an nsqd discovered while the
/// producers are already publishing (nothing to wait for).
pub fn subscribe_and_run(cfg: &Config, shared: &Shared, spec: ConsumerSpec) -> ConsumerResult {
    match subscribe(cfg, &spec) {
        Ok(conn) => run(cfg, shared, spec, conn),
        Err(err) => {
            let mut result = ConsumerResult::new(spec);
            result.fail(shared, &err);
            result
        }
    }
}

/// Whether this consumer's stream has what it waits for, or waited enough.
fn done(cfg: &Config, shared: &Shared, spec: &ConsumerSpec, now: u64, idle_since: u64) -> bool {
    if shared.stop.load(Ordering::Relaxed) {
        return true;
    }
    let got = shared.stream_received[spec.stream].load(Ordering::Relaxed);
    let idle = now.saturating_sub(idle_since) >= cfg.drain_timeout.as_nanos() as u64;
    match cfg.mode {
        Mode::Sub if cfg.expect > 0 => got >= cfg.expect || idle,
        Mode::Sub => now >= shared.measure_end,
        _ => {
            shared.producers_done.load(Ordering::Relaxed)
                && (got
                    >= shared.topic_acked[spec.stream / cfg.channels.len()].load(Ordering::Relaxed)
                    || idle)
        }
    }
}

fn run_inner(
    cfg: &Config,
    shared: &Shared,
    spec: &ConsumerSpec,
    mut conn: Conn,
    result: &mut ConsumerResult,
) -> Result<()> {
    let mut replies = BytesMut::with_capacity(64 * 1024);
    let by_count = shared.by_count;
    let mut idle_since = now_ns();
    loop {
        if done(cfg, shared, spec, now_ns(), idle_since) {
            return Ok(());
        }
        match conn.read_some() {
            Ok(0) => bail!("nsqd closed the connection"),
            Ok(_) => {}
            Err(err) if is_timeout(&err) => continue,
            Err(err) => return Err(err.into()),
        }
        // One clock read per read(): a few hundred messages share it.
        let now = now_ns();
        let in_window = by_count || (now >= shared.measure_start && now < shared.measure_end);
        let mut msgs = 0u64;
        let mut bytes = 0u64;
        while let Some(frame) = conn.next_frame()? {
            match frame {
                Frame::Message(msg) => {
                    msgs += 1;
                    bytes += msg.body.len() as u64;
                    match body::verify(&msg.body) {
                        Some(stamp) => {
                            result.received.record(stamp.producer, stamp.seq);
                            if stamp.send_ns >= shared.measure_start
                                && stamp.send_ns < shared.measure_end
                            {
                                result
                                    .e2e_latency
                                    .saturating_record(now.saturating_sub(stamp.send_ns));
                            }
                        }
                        None => result.received.corrupted += 1,
                    }
                    encode::fin(&mut replies, &msg.id);
                }
                Frame::Response(data) if data[..] == *HEARTBEAT => encode::nop(&mut replies),
                Frame::Response(_) => {}
                Frame::Error(data) if data.starts_with(b"E_FIN_FAILED") => {
                    result.fin_errors += 1;
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
                Frame::Error(data) => bail!("nsqd error: {}", String::from_utf8_lossy(&data)),
            }
        }
        if !replies.is_empty() {
            conn.write_all(&replies)?;
            replies.clear();
        }
        if msgs > 0 {
            idle_since = now;
            result.first_ns = result.first_ns.min(now);
            result.last_ns = now;
            if in_window {
                result.window_msgs += msgs;
                result.window_bytes += bytes;
            }
            shared.stream_received[spec.stream].fetch_add(msgs, Ordering::Relaxed);
            shared.sub_received.fetch_add(msgs, Ordering::Relaxed);
            shared.sub_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}
