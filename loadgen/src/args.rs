//! Command-line options (hand-parsed: `--name=value` or `--name value`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// The host part of each address as given (same order as `addrs`): the
    /// name a TLS certificate is checked against by default.
    #[serde(skip)]
    pub hosts: Vec<String>,
    /// nsqlookupd HTTP addresses (`HOST:PORT`): when given, consumers
    /// connect to the nsqd these list for each topic instead of `addrs`.
    pub lookupds: Vec<String>,
    /// How often the lookupds are asked again during the run.
    #[serde(serialize_with = "secs")]
    pub lookupd_poll_interval: Duration,
    /// Topics; producers are spread over them.
    pub topics: Vec<String>,
    /// Channels subscribed on every topic.
    pub channels: Vec<String>,
    /// Producer connections in total.
    pub producers: usize,
    /// Consumer connections per (topic, channel, nsqd), nsqd as given or
    /// discovered.
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
    /// TLS, compression and AUTH (every connection).
    pub security: Security,
}

/// Compression negotiated in IDENTIFY (nsqd grants at most one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// None: the plaintext protocol.
    #[default]
    None,
    /// Snappy framing format.
    Snappy,
    /// Raw deflate at `Security::deflate_level`.
    Deflate,
}

/// `--tls*`, `--snappy`, `--deflate*` and `--auth-secret`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Security {
    /// Ask for `tls_v1` and upgrade.
    pub tls: bool,
    /// PEM root CA(s) the server certificate must chain to; None: the
    /// certificate is not verified.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate (chain).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Name to check the certificate against instead of the address's host.
    pub tls_server_name: Option<String>,
    /// Compression to ask for.
    pub compression: Compression,
    /// Deflate level (1-9), sent as `deflate_level` and used for our writes.
    pub deflate_level: u32,
    /// Secret sent with AUTH after IDENTIFY (never printed).
    #[serde(serialize_with = "redacted")]
    pub auth_secret: Option<String>,
    /// The TLS client configuration built from the files above.
    #[serde(skip)]
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl Security {
    /// Whether IDENTIFY must negotiate features (and producers IDENTIFY
    /// at all): true when any of TLS, compression or AUTH is on.
    pub fn negotiates(&self) -> bool {
        self.tls || self.compression != Compression::None || self.auth_secret.is_some()
    }

    /// `tls+snappy`, `deflate(6)`, `auth`...: for the summary line; empty
    /// for the plaintext protocol.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.tls {
            parts.push(if self.tls_ca.is_some() {
                "tls".to_string()
            } else {
                "tls (unverified)".to_string()
            });
        }
        match self.compression {
            Compression::None => {}
            Compression::Snappy => parts.push("snappy".to_string()),
            Compression::Deflate => parts.push(format!("deflate({})", self.deflate_level)),
        }
        if self.auth_secret.is_some() {
            parts.push("auth".to_string());
        }
        parts.join("+")
    }
}

fn redacted<S: serde::Serializer>(secret: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("(set)"),
        None => s.serialize_none(),
    }
}

impl Config {
    /// The name `addr`'s TLS certificate must carry: `--tls-server-name`,
    /// else the host part of the address as given (a DNS name or an IP).
    pub fn server_name(&self, addr: SocketAddr) -> String {
        if let Some(name) = &self.security.tls_server_name {
            return name.clone();
        }
        self.addrs
            .iter()
            .position(|a| *a == addr)
            .and_then(|i| self.hosts.get(i))
            .cloned()
            .unwrap_or_else(|| addr.ip().to_string())
    }
}

/// The host part of `host:port`, `[v6]:port` or `v4:port`.
fn host_part(addr: &str) -> String {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((host, _)) = rest.split_once(']') {
            return host.to_string();
        }
    }
    addr.rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .to_string()
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
  --nsqd-tcp-address ADDR  nsqd TCP address, repeatable or comma-separated [127.0.0.1:4150];
                           producers are spread over them, consumers connect to each
  --lookupd-http-address ADDR  nsqlookupd HTTP address, repeatable or comma-separated: consumers
                           connect to every nsqd /lookup?topic= lists (not to --nsqd-tcp-address),
                           and keep asking during the run to pick up nsqd that appear later
  --lookupd-poll-interval D  how often to ask the lookupds again [1s]
  --topic NAME             topic, repeatable [loadgen]
  --channel NAME           channel, repeatable [loadgen]
  --channels N             subscribe N channels named <channel>0..N-1 on each topic
  --producers N            producer connections in total [2]
  --consumers N            consumer connections per topic/channel/nsqd (per discovered nsqd
                           with --lookupd-http-address) [2]
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
  --tls                    negotiate TLS (IDENTIFY tls_v1) and upgrade every connection
  --tls-ca FILE            PEM root CA(s) to verify nsqd's certificate [none: not verified, warns]
  --tls-cert FILE          PEM client certificate (needs --tls-key)
  --tls-key FILE           PEM private key for --tls-cert
  --tls-server-name NAME   name (or IP) the certificate must carry [host of the address]
  --snappy                 negotiate snappy compression
  --deflate                negotiate deflate compression (not with --snappy)
  --deflate-level N        deflate level 1-9 [6]
  --auth-secret SECRET     send AUTH with SECRET after IDENTIFY; fail if refused
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
    let mut hosts = Vec::new();
    let mut snappy = false;
    let mut deflate = false;
    let mut deflate_level = None;
    let mut cfg = Config {
        mode: Mode::Pub,
        addrs: Vec::new(),
        hosts: Vec::new(),
        lookupds: Vec::new(),
        lookupd_poll_interval: Duration::from_secs(1),
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
        security: Security::default(),
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
            "tls" => cfg.security.tls = true,
            "snappy" => snappy = true,
            "deflate" => deflate = true,
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
                            hosts.push(host_part(part));
                        }
                    }
                    "lookupd-http-address" => {
                        for part in value.split(',').filter(|p| !p.is_empty()) {
                            cfg.lookupds.push(crate::lookup::normalize_address(part)?);
                        }
                    }
                    "lookupd-poll-interval" => {
                        cfg.lookupd_poll_interval = parse_duration(&value).with_context(ctx)?
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
                    "tls-ca" => cfg.security.tls_ca = Some(PathBuf::from(&value)),
                    "tls-cert" => cfg.security.tls_cert = Some(PathBuf::from(&value)),
                    "tls-key" => cfg.security.tls_key = Some(PathBuf::from(&value)),
                    "tls-server-name" => cfg.security.tls_server_name = Some(value.clone()),
                    "deflate-level" => deflate_level = Some(value.parse().with_context(ctx)?),
                    "auth-secret" => cfg.security.auth_secret = Some(value.clone()),
                    _ => bail!("unknown option --{name} (see --help)"),
                }
            }
        }
    }
    let Some((mode, default_channels)) = mode else {
        bail!("missing mode: pub, sub, pubsub or fanout (see --help)");
    };
    cfg.mode = mode;
    (cfg.addrs, cfg.hosts) = if addrs.is_empty() {
        (
            vec![SocketAddr::from(([127, 0, 0, 1], 4150))],
            vec!["127.0.0.1".to_string()],
        )
    } else {
        (addrs, hosts)
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
    cfg.security.compression = match (snappy, deflate) {
        (true, true) => bail!("--snappy and --deflate are exclusive: nsqd grants one compression"),
        (true, false) => Compression::Snappy,
        (false, true) => Compression::Deflate,
        (false, false) => Compression::None,
    };
    cfg.security.deflate_level = match deflate_level {
        Some(_) if !deflate => bail!("--deflate-level needs --deflate"),
        Some(level @ 1..=9) => level,
        Some(level) => bail!("--deflate-level must be 1 to 9, not {level}"),
        None => 6,
    };
    validate(&cfg)?;
    let sec = &cfg.security;
    if !sec.tls
        && (sec.tls_ca.is_some()
            || sec.tls_cert.is_some()
            || sec.tls_key.is_some()
            || sec.tls_server_name.is_some())
    {
        bail!("--tls-ca, --tls-cert, --tls-key and --tls-server-name need --tls");
    }
    if sec.tls_cert.is_some() != sec.tls_key.is_some() {
        bail!("--tls-cert and --tls-key go together");
    }
    if sec.tls {
        for addr in &cfg.addrs {
            crate::tls::server_name(&cfg.server_name(*addr))?;
        }
        cfg.security.tls_config = Some(crate::tls::client_config(&cfg.security)?);
    }
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
    if cfg.mode == Mode::Pub && !cfg.lookupds.is_empty() {
        bail!("--lookupd-http-address is for consumers: sub, pubsub or fanout (producers publish to --nsqd-tcp-address, as NSQ clients do)");
    }
    if cfg.lookupd_poll_interval < Duration::from_millis(10) {
        bail!("--lookupd-poll-interval must be at least 10ms");
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

    #[test]
    fn security_options() {
        let plain = parse_strs(&["pub"]).unwrap().unwrap();
        assert!(!plain.security.negotiates());
        assert_eq!(plain.security.describe(), "");

        let cfg = parse_strs(&["pub", "--tls", "--deflate", "--deflate-level=9"])
            .unwrap()
            .unwrap();
        assert!(cfg.security.negotiates());
        assert!(cfg.security.tls_config.is_some());
        assert_eq!(cfg.security.compression, Compression::Deflate);
        assert_eq!(cfg.security.deflate_level, 9);
        assert_eq!(cfg.security.describe(), "tls (unverified)+deflate(9)");

        let cfg = parse_strs(&["sub", "--snappy", "--auth-secret", "hunter2"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.security.compression, Compression::Snappy);
        assert!(cfg.security.tls_config.is_none());
        assert!(cfg.security.negotiates());
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("hunter2"), "secret printed: {json}");

        for bad in [
            &["pub", "--snappy", "--deflate"][..],
            &["pub", "--deflate-level=6"],
            &["pub", "--deflate", "--deflate-level=0"],
            &["pub", "--deflate", "--deflate-level=10"],
            &["pub", "--tls-ca=/nonexistent"],
            &["pub", "--tls-server-name=x"],
            &["pub", "--tls", "--tls-cert=/nonexistent"],
            &["pub", "--tls", "--tls-ca=/nonexistent/ca.pem"],
            &["pub", "--tls", "--tls-server-name=not a name"],
        ] {
            assert!(parse_strs(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn lookupd_addresses() {
        let cfg = parse_strs(&[
            "pubsub",
            "--lookupd-http-address=127.0.0.1:4161,http://lookupd:4161/",
            "--lookupd-http-address",
            "10.0.0.1:4261",
            "--lookupd-poll-interval=250ms",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            cfg.lookupds,
            vec!["127.0.0.1:4161", "lookupd:4161", "10.0.0.1:4261"]
        );
        assert_eq!(cfg.lookupd_poll_interval, Duration::from_millis(250));
        assert_eq!(parse_strs(&["sub"]).unwrap().unwrap().lookupds.len(), 0);
        assert!(parse_strs(&["pub", "--lookupd-http-address=127.0.0.1:4161"]).is_err());
        assert!(parse_strs(&["sub", "--lookupd-http-address=127.0.0.1"]).is_err());
        assert!(parse_strs(&["sub", "--lookupd-poll-interval=0"]).is_err());
    }

    #[test]
    fn server_names_come_from_the_address() {
        assert_eq!(host_part("127.0.0.1:4150"), "127.0.0.1");
        assert_eq!(host_part("localhost:4150"), "localhost");
        assert_eq!(host_part("[::1]:4150"), "::1");
        let cfg = parse_strs(&["pub", "--nsqd-tcp-address=localhost:4150,127.0.0.1:4151"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.server_name(cfg.addrs[0]), "localhost");
        assert_eq!(cfg.server_name(cfg.addrs[1]), "127.0.0.1");
        let cfg = parse_strs(&["pub", "--tls", "--tls-server-name=nsqd.example"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.server_name(cfg.addrs[0]), "nsqd.example");
        let cfg = parse_strs(&["pub"]).unwrap().unwrap();
        assert_eq!(cfg.server_name(cfg.addrs[0]), "127.0.0.1");
    }
}
