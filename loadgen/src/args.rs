//! Command-line options (hand-parsed: `--name=value` or `--name value`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Producers only (nsq's bench_writer).
    Pub,
    /// Consumers only (nsq's bench_reader).
    Sub,
    /// Producers and consumers at once.
    Pubsub,
}

/// Every option, resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// Mode; `fanout` is `pubsub` with 4 channels unless told otherwise.
    pub mode: Mode,
    /// nsqd TCP addresses; producers are spread over them and consumers
    /// connect to each (as NSQ consumers do).
    pub addrs: Vec<SocketAddr>,
    /// Topics; producers are spread over them.
    pub topics: Vec<String>,
    /// Channels subscribed on every topic.
    pub channels: Vec<String>,
    /// Producer connections in total.
    pub producers: usize,
    /// Consumer connections per (topic, channel, nsqd).
    pub consumers: usize,
    /// Body size, bytes (at least 24: the integrity header).
    pub size: usize,
    /// Messages per MPUB; 1 sends plain PUB.
    pub batch: usize,
    /// Batches in flight per producer when publishing as fast as possible.
    pub pipeline: usize,
    /// Total publish rate, msg/s; 0 means as fast as possible.
    pub rate: u64,
    /// Measured time, after the warm-up.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Time before measuring starts (messages are still checked).
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    /// Messages per producer; 0 means until the duration ends.
    pub count: u64,
    /// Sub mode: stop once each channel has this many messages.
    pub expect: u64,
    /// RDY count per consumer connection.
    pub rdy: u64,
    /// Everything stops by then, whatever its state.
    #[serde(serialize_with = "secs")]
    pub deadline: Duration,
    /// After publishing ends, how long consumers wait without a message
    /// before giving up on the rest.
    #[serde(serialize_with = "secs")]
    pub drain_timeout: Duration,
    /// Producers pause while a channel lags this many messages behind them
    /// (0: no limit), so pubsub measures a rate both ends sustain.
    pub max_backlog: u64,
    /// Open loop: most unacknowledged batches per producer before it stalls.
    pub max_outstanding: usize,
    /// First producer id (for several loadgen processes on one topic).
    pub producer_id_base: u32,
    /// IDENTIFY `output_buffer_size` for consumers (None: broker default).
    pub output_buffer_size: Option<i64>,
    /// IDENTIFY `output_buffer_timeout` in ms for consumers.
    pub output_buffer_timeout: Option<i64>,
    /// Print the summary as one JSON document.
    pub json: bool,
    /// Progress line each second: None means "when stderr is a terminal".
    pub progress: Option<bool>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `--help` text.
pub const USAGE: &str = "\
loadgen: load generator for any NSQ-compatible nsqd

usage: loadgen <pub|sub|pubsub|fanout> [options]

  pub       publish (like nsq's bench_writer)
  sub       consume and FIN (like bench_reader); --expect N stops at N per channel
  pubsub    both at once; every acknowledged message must arrive on every channel
  fanout    pubsub with --channels 4 unless given

options (value as --name=V or --name V; durations: 5, 2.5, 500ms, 3s, 1m):
  --nsqd-tcp-address ADDR  nsqd TCP address, repeatable or comma-separated [127.0.0.1:4150]
  --topic NAME             topic, repeatable [loadgen]
  --channel NAME           channel, repeatable [loadgen]
  --channels N             subscribe N channels named <channel>0..N-1 on each topic
  --producers N            producer connections in total [2]
  --consumers N            consumer connections per topic/channel/nsqd [2]
  --size BYTES             body size, >= 24 [200]
  --batch N                messages per MPUB, 1 = plain PUB [200]
  --pipeline N             batches in flight per producer at full speed [1]
  --rate MSG/S             total open-loop publish rate, 0 = as fast as possible [0]
  --duration D             measured time [10s]
  --warmup D               unmeasured time before it [1s]
  --count N                messages per producer, 0 = until the duration ends [0]
  --expect N               sub: messages expected per channel [0]
  --rdy N                  RDY per consumer connection [2500]
  --deadline D             hard stop for the whole run [warmup + duration + 60s]
  --drain-timeout D        give up on missing messages after this long idle [5s]
  --max-backlog N          pause producers while a channel lags by N messages [0 = off]
  --max-outstanding N      open loop: most unacknowledged batches per producer [10000]
  --producer-id-base N     first producer id, for several loadgen processes [0]
  --output-buffer-size B   consumers' IDENTIFY output_buffer_size
  --output-buffer-timeout MS  consumers' IDENTIFY output_buffer_timeout
  --json                   print the summary as JSON on stdout
  --progress / --no-progress  live line on stderr each second [when a terminal]

exit status: 0 clean; 1 errors, missing or corrupt messages; 2 bad usage
";

/// Parses the arguments after the program name. `Ok(None)` means `--help`.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>> {
    let mut args = args.into_iter();
    let mut mode = None;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut topics = Vec::new();
    let mut channels = Vec::new();
    let mut channel_count: Option<usize> = None;
    let mut deadline = None;
    let mut cfg = Config {
        mode: Mode::Pub,
        addrs: Vec::new(),
        topics: Vec::new(),
        channels: Vec::new(),
        producers: 2,
        consumers: 2,
        size: 200,
        batch: 200,
        pipeline: 1,
        rate: 0,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        count: 0,
        expect: 0,
        rdy: 2500,
        deadline: Duration::ZERO,
        drain_timeout: Duration::from_secs(5),
        max_backlog: 0,
        max_outstanding: 10_000,
        producer_id_base: 0,
        output_buffer_size: None,
        output_buffer_timeout: None,
        json: false,
        progress: None,
    };
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            if mode.is_some() {
                bail!("unexpected argument {arg:?}");
            }
            mode = Some(match arg.as_str() {
                "pub" => (Mode::Pub, None),
                "sub" => (Mode::Sub, None),
                "pubsub" => (Mode::Pubsub, None),
                "fanout" => (Mode::Pubsub, Some(4)),
                other => bail!("unknown mode {other:?} (pub, sub, pubsub, fanout)"),
            });
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        match name {
            "json" => cfg.json = true,
            "progress" => cfg.progress = Some(true),
            "no-progress" => cfg.progress = Some(false),
            _ => {
                let value = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .ok_or_else(|| anyhow!("--{name} needs a value"))?,
                };
                let ctx = || format!("--{name}={value}");
                match name {
                    "nsqd-tcp-address" => {
                        for part in value.split(',').filter(|p| !p.is_empty()) {
                            let addr = part
                                .to_socket_addrs()
                                .with_context(ctx)?
                                .next()
                                .ok_or_else(|| anyhow!("--{name}: {part} resolves to nothing"))?;
                            addrs.push(addr);
                        }
                    }
                    "topic" => topics.push(value.clone()),
                    "channel" => channels.push(value.clone()),
                    "channels" => channel_count = Some(value.parse().with_context(ctx)?),
                    "producers" => cfg.producers = value.parse().with_context(ctx)?,
                    "consumers" => cfg.consumers = value.parse().with_context(ctx)?,
                    "size" => cfg.size = value.parse().with_context(ctx)?,
                    "batch" => cfg.batch = value.parse().with_context(ctx)?,
                    "pipeline" => cfg.pipeline = value.parse().with_context(ctx)?,
                    "rate" => cfg.rate = value.parse().with_context(ctx)?,
                    "duration" => cfg.duration = parse_duration(&value).with_context(ctx)?,
                    "warmup" => cfg.warmup = parse_duration(&value).with_context(ctx)?,
                    "count" => cfg.count = value.parse().with_context(ctx)?,
                    "expect" => cfg.expect = value.parse().with_context(ctx)?,
                    "rdy" => cfg.rdy = value.parse().with_context(ctx)?,
                    "deadline" => deadline = Some(parse_duration(&value).with_context(ctx)?),
                    "drain-timeout" => {
                        cfg.drain_timeout = parse_duration(&value).with_context(ctx)?
                    }
                    "max-backlog" => cfg.max_backlog = value.parse().with_context(ctx)?,
                    "max-outstanding" => cfg.max_outstanding = value.parse().with_context(ctx)?,
                    "producer-id-base" => cfg.producer_id_base = value.parse().with_context(ctx)?,
                    "output-buffer-size" => {
                        cfg.output_buffer_size = Some(value.parse().with_context(ctx)?)
                    }
                    "output-buffer-timeout" => {
                        cfg.output_buffer_timeout = Some(value.parse().with_context(ctx)?)
                    }
                    _ => bail!("unknown option --{name} (see --help)"),
                }
            }
        }
    }
    let Some((mode, default_channels)) = mode else {
        bail!("missing mode: pub, sub, pubsub or fanout (see --help)");
    };
    cfg.mode = mode;
    cfg.addrs = if addrs.is_empty() {
        vec![SocketAddr::from(([127, 0, 0, 1], 4150))]
    } else {
        addrs
    };
    cfg.topics = if topics.is_empty() {
        vec!["loadgen".to_string()]
    } else {
        topics
    };
    cfg.channels = match channel_count.or(default_channels) {
        Some(n) => {
            let base = channels.first().map_or("loadgen", String::as_str);
            (0..n).map(|i| format!("{base}{i}")).collect()
        }
        None if channels.is_empty() => vec!["loadgen".to_string()],
        None => channels,
    };
    cfg.deadline = deadline.unwrap_or(cfg.warmup + cfg.duration + Duration::from_secs(60));
    validate(&cfg)?;
    Ok(Some(cfg))
}

fn validate(cfg: &Config) -> Result<()> {
    if cfg.size < crate::body::HEADER_LEN {
        bail!(
            "--size must be at least {} bytes (the integrity header)",
            crate::body::HEADER_LEN
        );
    }
    if cfg.batch == 0 || cfg.pipeline == 0 || cfg.max_outstanding == 0 {
        bail!("--batch, --pipeline and --max-outstanding must be at least 1");
    }
    if cfg.mode != Mode::Sub && cfg.producers == 0 {
        bail!("--producers must be at least 1");
    }
    if cfg.mode != Mode::Pub && (cfg.consumers == 0 || cfg.channels.is_empty()) {
        bail!("--consumers and --channels must be at least 1");
    }
    if cfg.rate > 0 && cfg.rate < cfg.producers as u64 {
        bail!("--rate must be at least one message per second per producer");
    }
    for name in cfg.topics.iter().chain(&cfg.channels) {
        if !nsq_proto::names::is_valid_name(name.as_bytes()) {
            bail!("invalid topic or channel name {name:?}");
        }
    }
    Ok(())
}

/// `5`, `2.5`, `500ms`, `3s`, `1m`: seconds unless a unit is given.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse()?;
    if !value.is_finite() || value < 0.0 {
        bail!("not a duration: {text}");
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Option<Config>> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn fanout_and_defaults() {
        let cfg = parse_strs(&["fanout", "--channel=c", "--rate", "1000"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.mode, Mode::Pubsub);
        assert_eq!(cfg.channels, vec!["c0", "c1", "c2", "c3"]);
        assert_eq!(cfg.rate, 1000);
        assert_eq!(cfg.addrs.len(), 1);
        assert_eq!(cfg.deadline, Duration::from_secs(71));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_strs(&["pub", "--size=8"]).is_err());
        assert!(parse_strs(&["pub", "--bogus=1"]).is_err());
        assert!(parse_strs(&["nope"]).is_err());
        assert!(parse_strs(&["sub", "--channel=bad name"]).is_err());
        assert!(parse_strs(&["pub", "--batch"]).is_err());
        assert!(parse_strs(&["--help"]).unwrap().is_none());
    }
}
