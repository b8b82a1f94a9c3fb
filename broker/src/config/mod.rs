//! nsqd configuration: the `Options` struct, command-line flags, the TOML
//! config file, and the checks nsqd makes at startup.
//!
//! Lives on: built once in `main` before any shard starts; shards get an
//! immutable copy.
//!
//! # Layout
//! * [`Options`]: one typed field per nsqd flag (names from nsqd v1.3.0,
//!   plus the master-only `auth-http-request-method`, `topology-*`,
//!   `enable-experiment`, and our own `--shards`).
//! * `flags.rs`: `FLAGS`, the single flag table. Each entry names the flag,
//!   its config file key and the field it sets. Parsing, the config file,
//!   `--help` and `GET /config/:opt` all read this table, so they cannot
//!   drift apart.
//! * [`Options::parse_args`]: Go `flag` package syntax (`cmdline.rs`), then
//!   the `--config` file (`file.rs`), merged in one place (`file::resolve`):
//!   flag > config file > default, as `mreiferson/go-options` does for nsqd.
//!   The syntax, the precedence and the `--help` layout are nsqlookupd's
//!   too: `nsq_daemon::flags`.
//! * [`Options::validate`]: the checks `nsqd.New` makes (this file).
//! * `nsq_daemon::goparse`: Go value syntax (`strconv` integers and booleans,
//!   `time.ParseDuration`, `%q`); `nodeid.rs`: the hostname-derived default
//!   node ID (MD5 + CRC-32, as nsqd).
//!
//! Where we deliberately differ from nsqd (each is a misconfiguration nsqd
//! accepts silently): leftover positional arguments are rejected instead of
//! ignored; negative durations, negative sizes and out-of-range ports are
//! rejected; integers for boolean keys in the config file are rejected (go-options
//! maps 0 to true); NaN percentiles are rejected.

mod cmdline;
mod file;
mod flags;

mod nodeid;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

use cmdline::{usage_text, CommandLine};
use file::{load_config_file, resolve};
use flags::FLAGS;
use nodeid::{crc32_ieee, md5};
pub use nsq_daemon::flags::FlagError;
use nsq_daemon::goparse::go_quote;
pub use nsq_daemon::log::LogLevel;

/// The nsqd release whose behaviour we match (reported by `--version`,
/// `/info` and IDENTIFY).
pub const NSQD_VERSION: &str = "1.3.0";

/// A failed parse or validation, or a request for `--help`.
///
/// Messages follow Go's `flag` package and `nsqd.New` where those exist.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-h` or `--help` was given; carries the usage text (every flag with
    /// its help and default). Print it and exit 0.
    #[error("{0}")]
    Help(String),
    /// A bad command line (never [`FlagError::Help`], which is
    /// [`ConfigError::Help`]): bad syntax, an unknown flag, a missing or bad
    /// value, or a positional argument (Go's `flag` stops there and nsqd
    /// ignores the rest; we reject it so no flag is silently dropped).
    #[error("{}", .0.message("nsqd", go_quote))]
    Flag(FlagError),
    /// The `--config` file could not be read or is not valid TOML.
    #[error("failed to load config file {} - {reason}", .path.display())]
    ConfigFile {
        /// The `--config` path.
        path: PathBuf,
        /// The I/O or TOML error.
        reason: String,
    },
    /// A key in the config file has a value of the wrong type or range.
    #[error("failed to load config file {} - invalid value {value} for key {key:?}: {reason}", .path.display())]
    ConfigValue {
        /// The `--config` path.
        path: PathBuf,
        /// The config key, e.g. `mem_queue_size`.
        key: String,
        /// The value as TOML.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The merged options fail one of nsqd's startup checks.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// The exit status nsqd uses for this error: 0 for help, 2 for a bad
    /// command line (Go `flag.ExitOnError`), 1 otherwise (`logFatal`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Help(_) => 0,
            ConfigError::Flag(_) => 2,
            ConfigError::ConfigFile { .. }
            | ConfigError::ConfigValue { .. }
            | ConfigError::Invalid(_) => 1,
        }
    }
}

/// `--tls-required`. `/config/tls_required` reports the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsRequired {
    /// `false` (0): TLS is optional.
    NotRequired = 0,
    /// `tcp-https` (1): TCP clients must upgrade; plain HTTP is still served.
    RequiredExceptHttp = 1,
    /// `true` (2): TCP clients must upgrade and plain HTTP answers 403.
    Required = 2,
}

/// Minimum TLS version (`--tls-min-version`). `/config/tls_min_version`
/// reports the IANA number (0x0301 = 769 for TLS 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// `tls1.0`
    Tls10,
    /// `tls1.1`
    Tls11,
    /// `tls1.2`
    Tls12,
    /// `tls1.3`
    Tls13,
}

impl TlsVersion {
    const ALL: [TlsVersion; 4] = [
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];

    /// The protocol version number (Go's `tls.VersionTLS1x`).
    pub fn as_u16(self) -> u16 {
        match self {
            TlsVersion::Tls10 => 0x0301,
            TlsVersion::Tls11 => 0x0302,
            TlsVersion::Tls12 => 0x0303,
            TlsVersion::Tls13 => 0x0304,
        }
    }

    /// The flag spelling, e.g. `tls1.2`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "tls1.0",
            TlsVersion::Tls11 => "tls1.1",
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        }
    }
}

/// Every nsqd setting. Field names follow nsqd's config-file keys; each doc
/// gives the flag, the unit and the default.
///
/// Lives on: `main`, then an immutable copy on every shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    // --- basic ---
    /// `--version`: print [`Options::version_string`] and exit. When set,
    /// `parse_args` neither reads the config file nor validates.
    pub version: bool,
    /// `--config`: TOML config file; empty = none. Default "".
    pub config: PathBuf,
    /// `--log-level`: debug, info, warn, error or fatal. Default info.
    pub log_level: LogLevel,
    /// `--log-prefix`: prefix of every log line. Default `"[nsqd] "`.
    pub log_prefix: String,
    /// `--verbose`: deprecated, no effect. Default false.
    pub verbose: bool,
    /// `--node-id` (config key `id`): part of every message ID, in [0,1024).
    /// Default crc32(md5(hostname)) % 1024.
    pub node_id: u16,
    /// `--worker-id`: deprecated boolean, no effect. Default false.
    pub worker_id: bool,

    // --- listeners ---
    /// `--tcp-address`: `<addr>:<port>`, or a path for a unix socket.
    /// Default `0.0.0.0:4150`.
    pub tcp_address: String,
    /// `--http-address`: `<addr>:<port>`, a unix socket path, or "" for no
    /// HTTP listener. Default `0.0.0.0:4151`.
    pub http_address: String,
    /// `--https-address`: `<addr>:<port>`; only listens when a TLS cert and
    /// key are set. Default `0.0.0.0:4152`.
    pub https_address: String,

    // --- cluster ---
    /// `--broadcast-address`: address registered with nsqlookupd. Default:
    /// the OS hostname.
    pub broadcast_address: String,
    /// `--broadcast-tcp-port`: TCP port registered with nsqlookupd; 0 = the
    /// port actually listened on. Default 0.
    pub broadcast_tcp_port: u16,
    /// `--broadcast-http-port`: HTTP port registered with nsqlookupd; 0 = the
    /// port actually listened on. Default 0.
    pub broadcast_http_port: u16,
    /// `--lookupd-tcp-address` (repeatable; config key
    /// `nsqlookupd_tcp_addresses`): nsqlookupd TCP addresses. Default none.
    pub nsqlookupd_tcp_addresses: Vec<String>,
    /// `--auth-http-address` (repeatable; config key `auth_http_addresses`):
    /// `<addr>:<port>` or full URL of auth servers. Default none.
    pub auth_http_addresses: Vec<String>,
    /// `--auth-http-request-method` (nsqd master only): `get` or `post`.
    /// Default `get`.
    pub auth_http_request_method: String,
    /// `--http-client-connect-timeout`: connect timeout for lookupd and auth
    /// HTTP requests. Default 2s.
    pub http_client_connect_timeout: Duration,
    /// `--http-client-request-timeout`: whole-request timeout for lookupd
    /// and auth HTTP requests. Default 5s.
    pub http_client_request_timeout: Duration,
    /// `--topology-region` (nsqd master only). Default "".
    pub topology_region: String,
    /// `--topology-zone` (nsqd master only). Default "".
    pub topology_zone: String,

    // --- disk queue ---
    /// `--data-path`: directory for disk-backed messages and metadata; empty
    /// = the current directory. Default "".
    pub data_path: PathBuf,
    /// `--mem-queue-size`: messages kept in memory per topic and per channel
    /// before spilling to disk. Default 10000.
    pub mem_queue_size: u64,
    /// `--max-bytes-per-file`: bytes per disk-queue file before rolling.
    /// Default 104857600 (100 MiB).
    pub max_bytes_per_file: u64,
    /// `--sync-every`: messages (reads and writes) per disk-queue fsync.
    /// Default 2500.
    pub sync_every: u64,
    /// `--sync-timeout`: fsync at least this often when there was activity.
    /// Default 2s.
    pub sync_timeout: Duration,

    // --- queue scan ---
    /// `--queue-scan-worker-pool-max`: max concurrent in-flight/deferred
    /// timeout scanners. Default 4.
    pub queue_scan_worker_pool_max: u64,
    /// `--queue-scan-selection-count`: channels checked per scan cycle.
    /// Default 20.
    pub queue_scan_selection_count: u64,
    /// Not a flag: interval between scan cycles. Default 100ms.
    pub queue_scan_interval: Duration,
    /// Not a flag: how often the scan's channel list is refreshed. Default 5s.
    pub queue_scan_refresh_interval: Duration,
    /// Not a flag: rescan at once when more than this fraction of the
    /// selected channels were dirty. Default 0.25.
    pub queue_scan_dirty_percent: f64,

    // --- messages and commands ---
    /// `--msg-timeout`: default time before an unacknowledged message is
    /// requeued. Default 60s.
    pub msg_timeout: Duration,
    /// `--max-msg-timeout`: cap for a client's `msg_timeout` and for TOUCH.
    /// Default 15m.
    pub max_msg_timeout: Duration,
    /// `--max-msg-size`: bytes in one message body. Default 1048576 (1 MiB).
    pub max_msg_size: u64,
    /// `--max-body-size`: bytes in one command body (MPUB, IDENTIFY, AUTH).
    /// Default 5242880 (5 MiB).
    pub max_body_size: u64,
    /// `--max-req-timeout`: cap for REQ and DPUB delays. Default 1h.
    pub max_req_timeout: Duration,
    /// Not a flag: client read timeout; the default heartbeat is half of it.
    /// Default 60s.
    pub client_timeout: Duration,

    // --- client-overridable limits ---
    /// `--max-heartbeat-interval`: largest heartbeat interval a client may
    /// ask for. Default 60s.
    pub max_heartbeat_interval: Duration,
    /// `--max-rdy-count`: largest RDY a client may send. Default 2500.
    pub max_rdy_count: u64,
    /// `--max-output-buffer-size`: largest output buffer (bytes) a client
    /// may ask for. Default 65536.
    pub max_output_buffer_size: u64,
    /// `--max-output-buffer-timeout`: longest flush interval a client may
    /// ask for. Default 30s.
    pub max_output_buffer_timeout: Duration,
    /// `--min-output-buffer-timeout`: shortest flush interval a client may
    /// ask for. Default 25ms.
    pub min_output_buffer_timeout: Duration,
    /// `--output-buffer-timeout`: default flush interval. Default 250ms.
    pub output_buffer_timeout: Duration,
    /// `--max-channel-consumers`: consumers per channel; 0 = unlimited.
    /// Default 0.
    pub max_channel_consumers: u64,

    // --- statsd ---
    /// `--statsd-address`: UDP `<addr>:<port>` of statsd; "" = off. Default "".
    pub statsd_address: String,
    /// `--statsd-prefix`: key prefix; `%s` becomes the host key. Default
    /// `nsq.%s`.
    pub statsd_prefix: String,
    /// `--statsd-interval`: time between pushes. Default 60s.
    pub statsd_interval: Duration,
    /// `--statsd-mem-stats`: also send memory stats. Default true.
    pub statsd_mem_stats: bool,
    /// `--statsd-udp-packet-size`: bytes per statsd UDP packet. Default 508.
    pub statsd_udp_packet_size: u64,
    /// `--statsd-exclude-ephemeral`: skip ephemeral topics and channels.
    /// Default false.
    pub statsd_exclude_ephemeral: bool,

    // --- end-to-end latency ---
    /// `--e2e-processing-latency-percentile` (repeatable or comma-separated;
    /// config key `e2e_processing_latency_percentiles`): quantiles in (0,1].
    /// Flags are kept sorted high to low, as nsqd. Default none.
    pub e2e_processing_latency_percentiles: Vec<f64>,
    /// `--e2e-processing-latency-window-time`: window of the quantiles.
    /// Default 10m.
    pub e2e_processing_latency_window_time: Duration,

    // --- TLS ---
    /// `--tls-cert`: certificate file. Default "".
    pub tls_cert: PathBuf,
    /// `--tls-key`: private key file. Default "".
    pub tls_key: PathBuf,
    /// `--tls-client-auth-policy`: `require` or `require-verify`; any
    /// non-empty value makes TLS required. Default "".
    pub tls_client_auth_policy: String,
    /// `--tls-root-ca-file`: CA file for client certificates. Default "".
    pub tls_root_ca_file: PathBuf,
    /// `--tls-required`: true, false or tcp-https. Default false.
    pub tls_required: TlsRequired,
    /// `--tls-min-version`: tls1.0 .. tls1.3. Default tls1.0.
    pub tls_min_version: TlsVersion,

    // --- compression ---
    /// `--deflate`: allow clients to negotiate deflate. Default true.
    pub deflate: bool,
    /// `--max-deflate-level`: highest deflate level a client may ask for,
    /// 1..=9. Default 6.
    pub max_deflate_level: u8,
    /// `--snappy`: allow clients to negotiate snappy. Default true.
    pub snappy: bool,

    // --- experiments (nsqd master only) ---
    /// `--enable-experiment` (repeatable; config key `enable_experiment`),
    /// e.g. `topology-aware-consumption`. Default none.
    pub enable_experiment: Vec<String>,

    // --- ours ---
    /// `--shards`: executors, one thread per core; 0 = one per CPU this
    /// process may run on. Default 0.
    pub shards: usize,
    /// `--ack-after-fsync`: every PUB/MPUB/DPUB goes straight to the topic's
    /// disk queue and is acknowledged only after an fdatasync covering it has
    /// completed (publishes waiting at the same time share one fdatasync:
    /// group commit). Default false (nsqd's behaviour: acknowledged once in
    /// memory or in the page cache).
    pub ack_after_fsync: bool,
    /// `--metrics-per-client`: per-consumer series in `GET /metrics`.
    /// Default false (bounded label cardinality).
    pub metrics_per_client: bool,
}

impl Default for Options {
    /// nsqd's defaults for this machine's hostname.
    fn default() -> Self {
        Options::defaults_for_hostname(&nsq_daemon::host::hostname())
    }
}

impl Options {
    /// nsqd's defaults (`nsqd.NewOptions`) as if the OS hostname were
    /// `hostname`: it sets `broadcast_address` and the default `node_id`.
    pub fn defaults_for_hostname(hostname: &str) -> Options {
        let node_id = crc32_ieee(&md5(hostname.as_bytes())) % 1024;
        Options {
            version: false,
            config: PathBuf::new(),
            log_level: LogLevel::Info,
            log_prefix: "[nsqd] ".to_string(),
            verbose: false,
            // The modulo keeps it below 1024.
            node_id: u16::try_from(node_id).unwrap_or(0),
            worker_id: false,

            tcp_address: "0.0.0.0:4150".to_string(),
            http_address: "0.0.0.0:4151".to_string(),
            https_address: "0.0.0.0:4152".to_string(),

            broadcast_address: hostname.to_string(),
            broadcast_tcp_port: 0,
            broadcast_http_port: 0,
            nsqlookupd_tcp_addresses: Vec::new(),
            auth_http_addresses: Vec::new(),
            auth_http_request_method: "get".to_string(),
            http_client_connect_timeout: Duration::from_secs(2),
            http_client_request_timeout: Duration::from_secs(5),
            topology_region: String::new(),
            topology_zone: String::new(),

            data_path: PathBuf::new(),
            mem_queue_size: 10_000,
            max_bytes_per_file: 100 * 1024 * 1024,
            sync_every: 2500,
            sync_timeout: Duration::from_secs(2),

            queue_scan_worker_pool_max: 4,
            queue_scan_selection_count: 20,
            queue_scan_interval: Duration::from_millis(100),
            queue_scan_refresh_interval: Duration::from_secs(5),
            queue_scan_dirty_percent: 0.25,

            msg_timeout: Duration::from_secs(60),
            max_msg_timeout: Duration::from_secs(15 * 60),
            max_msg_size: 1024 * 1024,
            max_body_size: 5 * 1024 * 1024,
            max_req_timeout: Duration::from_secs(3600),
            client_timeout: Duration::from_secs(60),

            max_heartbeat_interval: Duration::from_secs(60),
            max_rdy_count: 2500,
            max_output_buffer_size: 64 * 1024,
            max_output_buffer_timeout: Duration::from_secs(30),
            min_output_buffer_timeout: Duration::from_millis(25),
            output_buffer_timeout: Duration::from_millis(250),
            max_channel_consumers: 0,

            statsd_address: String::new(),
            statsd_prefix: "nsq.%s".to_string(),
            statsd_interval: Duration::from_secs(60),
            statsd_mem_stats: true,
            statsd_udp_packet_size: 508,
            statsd_exclude_ephemeral: false,

            e2e_processing_latency_percentiles: Vec::new(),
            e2e_processing_latency_window_time: Duration::from_secs(10 * 60),

            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_client_auth_policy: String::new(),
            tls_root_ca_file: PathBuf::new(),
            tls_required: TlsRequired::NotRequired,
            tls_min_version: TlsVersion::Tls10,

            deflate: true,
            max_deflate_level: 6,
            snappy: true,

            enable_experiment: Vec::new(),

            shards: 0,
            ack_after_fsync: false,
            metrics_per_client: false,
        }
    }

    /// Parses the command line (without argv\[0\]) the way nsqd does: Go
    /// `flag` syntax, then the `--config` file, then [`Options::validate`].
    pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, ConfigError> {
        Options::parse_args_from(Options::default(), args)
    }

    fn parse_args_from<I: IntoIterator<Item = String>>(
        defaults: Options,
        args: I,
    ) -> Result<Options, ConfigError> {
        let cli = CommandLine::parse(args, &defaults)?;
        // nsqd prints the version before it looks at the config file.
        if cli.flags_only.version {
            return Ok(cli.flags_only);
        }
        let file = if cli.flags_only.config.as_os_str().is_empty() {
            None
        } else {
            Some(load_config_file(&cli.flags_only.config)?)
        };
        resolve(defaults, &cli, file.as_ref())
    }

    /// The checks `nsqd.New` makes before listening. Like nsqd, a non-empty
    /// `tls_client_auth_policy` turns on `tls_required`.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if !(1..=9).contains(&self.max_deflate_level) {
            return Err(invalid("--max-deflate-level must be [1,9]"));
        }
        if self.node_id >= 1024 {
            return Err(invalid("--node-id must be [0,1024)"));
        }
        if !self.tls_client_auth_policy.is_empty() && self.tls_required == TlsRequired::NotRequired
        {
            self.tls_required = TlsRequired::Required;
        }
        let has_cert = !self.tls_cert.as_os_str().is_empty();
        let has_key = !self.tls_key.as_os_str().is_empty();
        if has_cert != has_key {
            // nsqd fails here loading the key pair from an empty path.
            return Err(invalid(
                "failed to build TLS config - --tls-cert and --tls-key must be given together",
            ));
        }
        if !has_cert && self.tls_required != TlsRequired::NotRequired {
            return Err(invalid(
                "cannot require TLS client connections without TLS key and cert",
            ));
        }
        if self.auth_http_request_method != "get" && self.auth_http_request_method != "post" {
            return Err(invalid("--auth-http-request-method must be post or get"));
        }
        for &p in &self.e2e_processing_latency_percentiles {
            // NaN is rejected too; nsqd lets it through.
            if p.is_nan() || p <= 0.0 || p > 1.0 {
                return Err(invalid(&format!(
                    "invalid E2E processing latency percentile: {p}"
                )));
            }
        }
        Ok(())
    }

    /// The value `GET /config/:opt` returns for a config-file key, encoded
    /// as Go's `encoding/json` would (durations in nanoseconds, log level,
    /// `tls_required` and `tls_min_version` as numbers). `None` for a name
    /// nsqd answers with 400 `INVALID_OPTION`.
    pub fn get_config_value(&self, cfg_name: &str) -> Option<Json> {
        FLAGS
            .iter()
            .find(|spec| spec.cfg == Some(cfg_name))
            .map(|spec| spec.slot.to_json(self))
    }

    /// The `--version` line, e.g. `nsqd v1.3.0 (built w/rust)`.
    pub fn version_string() -> String {
        format!("nsqd v{NSQD_VERSION} (built w/rust)")
    }

    /// The `--help` text for this machine's defaults, in Go's
    /// `flag.PrintDefaults` layout (sorted, one flag per entry).
    pub fn usage() -> String {
        usage_text(&Options::default())
    }
}

fn invalid(msg: &str) -> ConfigError {
    ConfigError::Invalid(msg.to_string())
}
