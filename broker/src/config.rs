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
//! * `FLAGS`: the single flag table. Each entry names the flag, its config
//!   file key and the field it sets. Parsing, the config file, `--help` and
//!   `GET /config/:opt` all read this table, so they cannot drift apart.
//! * [`Options::parse_args`]: Go `flag` package syntax, then the `--config`
//!   file, merged in one place (`resolve`): flag > config file > default, as
//!   `mreiferson/go-options` does for nsqd.
//! * [`Options::validate`]: the checks `nsqd.New` makes.
//!
//! Where we deliberately differ from nsqd (each is a misconfiguration nsqd
//! accepts silently): leftover positional arguments are rejected instead of
//! ignored; negative durations, negative sizes and out-of-range ports are
//! rejected; integers for boolean keys in the config file are rejected (go-options
//! maps 0 to true); NaN percentiles are rejected.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;

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
    /// An argument that looks like a flag but cannot be one (`---x`, `-=x`).
    #[error("bad flag syntax: {0}")]
    BadFlagSyntax(String),
    /// A flag nsqd does not define.
    #[error("flag provided but not defined: -{0}")]
    UndefinedFlag(String),
    /// A non-boolean flag was last on the command line with no value.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A non-boolean flag's value did not parse.
    #[error("invalid value {} for flag -{flag}: {reason}", go_quote(.value))]
    InvalidValue {
        /// Flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A boolean flag's `=value` did not parse.
    #[error("invalid boolean value {} for -{flag}: {reason}", go_quote(.value))]
    InvalidBool {
        /// Flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A positional argument. Go's `flag` stops there and nsqd ignores the
    /// rest of the command line; we reject it so no flag is silently dropped.
    #[error(
        "unexpected argument {}: nsqd takes only flags (a boolean flag's value must be written -flag=value)",
        go_quote(.0)
    )]
    UnexpectedArgument(String),
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
            ConfigError::BadFlagSyntax(_)
            | ConfigError::UndefinedFlag(_)
            | ConfigError::MissingValue(_)
            | ConfigError::InvalidValue { .. }
            | ConfigError::InvalidBool { .. }
            | ConfigError::UnexpectedArgument(_) => 2,
            ConfigError::ConfigFile { .. }
            | ConfigError::ConfigValue { .. }
            | ConfigError::Invalid(_) => 1,
        }
    }
}

/// Log verbosity (`--log-level`). `/config/log_level` reports the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug` (1)
    Debug = 1,
    /// `info` (2)
    Info = 2,
    /// `warn` (3)
    Warn = 3,
    /// `error` (4)
    Error = 4,
    /// `fatal` (5)
    Fatal = 5,
}

impl LogLevel {
    /// The label nsqd prints before a log line (`lg.LogLevel.String`).
    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    /// Case-insensitive, as `lg.ParseLogLevel` (also used by `PUT /config/log_level`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "fatal" => Ok(LogLevel::Fatal),
            _ => Err(format!(
                "invalid log level '{s}' (debug, info, warn, error, fatal)"
            )),
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
}

impl Default for Options {
    /// nsqd's defaults for this machine's hostname.
    fn default() -> Self {
        Options::defaults_for_hostname(&os_hostname())
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

// ---------------------------------------------------------------------------
// The flag table
// ---------------------------------------------------------------------------

type Get<T> = fn(&Options) -> &T;
type GetMut<T> = fn(&mut Options) -> &mut T;

/// How a flag maps onto its field: the value type decides the parser, the
/// config-file coercion, the JSON encoding and the `--help` rendering.
#[derive(Clone, Copy)]
enum Slot {
    Bool(GetMut<bool>, Get<bool>),
    Str(GetMut<String>, Get<String>),
    Path(GetMut<PathBuf>, Get<PathBuf>),
    U8(GetMut<u8>, Get<u8>),
    U16(GetMut<u16>, Get<u16>),
    U64(GetMut<u64>, Get<u64>),
    Usize(GetMut<usize>, Get<usize>),
    Duration(GetMut<Duration>, Get<Duration>),
    StrList(GetMut<Vec<String>>, Get<Vec<String>>),
    FloatList(GetMut<Vec<f64>>, Get<Vec<f64>>),
    LogLevel,
    TlsRequired,
    TlsMinVersion,
}

macro_rules! slot {
    ($kind:ident, $field:ident) => {
        Slot::$kind(|o| &mut o.$field, |o| &o.$field)
    };
}

struct FlagSpec {
    /// Flag name without dashes.
    name: &'static str,
    /// Config-file key and `/config/:opt` name; `None` for flags nsqd keeps
    /// out of its `Options` (`version`, `config`, the deprecated ones).
    cfg: Option<&'static str>,
    slot: Slot,
    /// Help text, verbatim from nsqd where the flag is nsqd's.
    usage: &'static str,
}

const fn flag(
    name: &'static str,
    cfg: Option<&'static str>,
    slot: Slot,
    usage: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        cfg,
        slot,
        usage,
    }
}

/// Every flag, in nsqd's declaration order (`apps/nsqd/options.go`).
static FLAGS: &[FlagSpec] = &[
    // basic options
    flag("version", None, slot!(Bool, version), "print version string"),
    flag("config", None, slot!(Path, config), "path to config file"),
    flag(
        "log-level",
        Some("log_level"),
        Slot::LogLevel,
        "set log verbosity: debug, info, warn, error, or fatal",
    ),
    flag("log-prefix", Some("log_prefix"), slot!(Str, log_prefix), "log message prefix"),
    flag(
        "verbose",
        None,
        slot!(Bool, verbose),
        "[deprecated] has no effect, use --log-level",
    ),
    flag(
        "node-id",
        Some("id"),
        slot!(U16, node_id),
        "unique part for message IDs, (int) in range [0,1024) (default is hash of hostname)",
    ),
    flag("worker-id", None, slot!(Bool, worker_id), "[deprecated] use --node-id"),
    flag(
        "https-address",
        Some("https_address"),
        slot!(Str, https_address),
        "<addr>:<port> to listen on for HTTPS clients",
    ),
    flag(
        "http-address",
        Some("http_address"),
        slot!(Str, http_address),
        "address to listen on for HTTP clients (<addr>:<port> for TCP/IP or <path> for unix socket)",
    ),
    flag(
        "tcp-address",
        Some("tcp_address"),
        slot!(Str, tcp_address),
        "address to listen on for TCP clients (<addr>:<port> for TCP/IP or <path> for unix socket)",
    ),
    flag(
        "auth-http-address",
        Some("auth_http_addresses"),
        slot!(StrList, auth_http_addresses),
        "<addr>:<port> or a full url to query auth server (may be given multiple times)",
    ),
    flag(
        "auth-http-request-method",
        Some("auth_http_request_method"),
        slot!(Str, auth_http_request_method),
        "HTTP method to use for auth server requests",
    ),
    flag(
        "broadcast-address",
        Some("broadcast_address"),
        slot!(Str, broadcast_address),
        "address that will be registered with lookupd (defaults to the OS hostname)",
    ),
    flag(
        "broadcast-tcp-port",
        Some("broadcast_tcp_port"),
        slot!(U16, broadcast_tcp_port),
        "TCP port that will be registered with lookupd (defaults to the TCP port that this nsqd is listening on)",
    ),
    flag(
        "broadcast-http-port",
        Some("broadcast_http_port"),
        slot!(U16, broadcast_http_port),
        "HTTP port that will be registered with lookupd (defaults to the HTTP port that this nsqd is listening on)",
    ),
    flag(
        "lookupd-tcp-address",
        Some("nsqlookupd_tcp_addresses"),
        slot!(StrList, nsqlookupd_tcp_addresses),
        "lookupd TCP address (may be given multiple times)",
    ),
    flag(
        "http-client-connect-timeout",
        Some("http_client_connect_timeout"),
        slot!(Duration, http_client_connect_timeout),
        "timeout for HTTP connect",
    ),
    flag(
        "http-client-request-timeout",
        Some("http_client_request_timeout"),
        slot!(Duration, http_client_request_timeout),
        "timeout for HTTP request",
    ),
    flag(
        "topology-region",
        Some("topology_region"),
        slot!(Str, topology_region),
        "A region represents a larger domain, made up of one or more zones for preferring closer consumer",
    ),
    flag(
        "topology-zone",
        Some("topology_zone"),
        slot!(Str, topology_zone),
        "A zone represents a logical failure domain for preferring closer consumer",
    ),
    // diskqueue options
    flag(
        "data-path",
        Some("data_path"),
        slot!(Path, data_path),
        "path to store disk-backed messages",
    ),
    flag(
        "mem-queue-size",
        Some("mem_queue_size"),
        slot!(U64, mem_queue_size),
        "number of messages to keep in memory (per topic/channel)",
    ),
    flag(
        "max-bytes-per-file",
        Some("max_bytes_per_file"),
        slot!(U64, max_bytes_per_file),
        "number of bytes per diskqueue file before rolling",
    ),
    flag(
        "sync-every",
        Some("sync_every"),
        slot!(U64, sync_every),
        "number of messages per diskqueue fsync",
    ),
    flag(
        "sync-timeout",
        Some("sync_timeout"),
        slot!(Duration, sync_timeout),
        "duration of time per diskqueue fsync",
    ),
    flag(
        "queue-scan-worker-pool-max",
        Some("queue_scan_worker_pool_max"),
        slot!(U64, queue_scan_worker_pool_max),
        "max concurrency for checking in-flight and deferred message timeouts",
    ),
    flag(
        "queue-scan-selection-count",
        Some("queue_scan_selection_count"),
        slot!(U64, queue_scan_selection_count),
        "number of channels to check per cycle (every 100ms) for in-flight and deferred timeouts",
    ),
    // msg and command options
    flag(
        "msg-timeout",
        Some("msg_timeout"),
        slot!(Duration, msg_timeout),
        "default duration to wait before auto-requeing a message",
    ),
    flag(
        "max-msg-timeout",
        Some("max_msg_timeout"),
        slot!(Duration, max_msg_timeout),
        "maximum duration before a message will timeout",
    ),
    flag(
        "max-msg-size",
        Some("max_msg_size"),
        slot!(U64, max_msg_size),
        "maximum size of a single message in bytes",
    ),
    flag(
        "max-req-timeout",
        Some("max_req_timeout"),
        slot!(Duration, max_req_timeout),
        "maximum requeuing timeout for a message",
    ),
    flag(
        "max-body-size",
        Some("max_body_size"),
        slot!(U64, max_body_size),
        "maximum size of a single command body",
    ),
    // client overridable configuration options
    flag(
        "max-heartbeat-interval",
        Some("max_heartbeat_interval"),
        slot!(Duration, max_heartbeat_interval),
        "maximum client configurable duration of time between client heartbeats",
    ),
    flag(
        "max-rdy-count",
        Some("max_rdy_count"),
        slot!(U64, max_rdy_count),
        "maximum RDY count for a client",
    ),
    flag(
        "max-output-buffer-size",
        Some("max_output_buffer_size"),
        slot!(U64, max_output_buffer_size),
        "maximum client configurable size (in bytes) for a client output buffer",
    ),
    flag(
        "max-output-buffer-timeout",
        Some("max_output_buffer_timeout"),
        slot!(Duration, max_output_buffer_timeout),
        "maximum client configurable duration of time between flushing to a client",
    ),
    flag(
        "min-output-buffer-timeout",
        Some("min_output_buffer_timeout"),
        slot!(Duration, min_output_buffer_timeout),
        "minimum client configurable duration of time between flushing to a client",
    ),
    flag(
        "output-buffer-timeout",
        Some("output_buffer_timeout"),
        slot!(Duration, output_buffer_timeout),
        "default duration of time between flushing data to clients",
    ),
    flag(
        "max-channel-consumers",
        Some("max_channel_consumers"),
        slot!(U64, max_channel_consumers),
        "maximum channel consumer connection count per nsqd instance (default 0, i.e., unlimited)",
    ),
    // statsd integration options
    flag(
        "statsd-address",
        Some("statsd_address"),
        slot!(Str, statsd_address),
        "UDP <addr>:<port> of a statsd daemon for pushing stats",
    ),
    flag(
        "statsd-interval",
        Some("statsd_interval"),
        slot!(Duration, statsd_interval),
        "duration between pushing to statsd",
    ),
    flag(
        "statsd-mem-stats",
        Some("statsd_mem_stats"),
        slot!(Bool, statsd_mem_stats),
        "toggle sending memory and GC stats to statsd",
    ),
    flag(
        "statsd-prefix",
        Some("statsd_prefix"),
        slot!(Str, statsd_prefix),
        "prefix used for keys sent to statsd (%s for host replacement)",
    ),
    flag(
        "statsd-udp-packet-size",
        Some("statsd_udp_packet_size"),
        slot!(U64, statsd_udp_packet_size),
        "the size in bytes of statsd UDP packets",
    ),
    flag(
        "statsd-exclude-ephemeral",
        Some("statsd_exclude_ephemeral"),
        slot!(Bool, statsd_exclude_ephemeral),
        "Skip ephemeral topics and channels when sending stats to statsd",
    ),
    // End to end percentile flags
    flag(
        "e2e-processing-latency-percentile",
        Some("e2e_processing_latency_percentiles"),
        slot!(FloatList, e2e_processing_latency_percentiles),
        "message processing time percentiles (as float (0, 1.0]) to track (can be specified multiple times or comma separated '1.0,0.99,0.95', default none)",
    ),
    flag(
        "e2e-processing-latency-window-time",
        Some("e2e_processing_latency_window_time"),
        slot!(Duration, e2e_processing_latency_window_time),
        "calculate end to end latency quantiles for this duration of time (ie: 60s would only show quantile calculations from the past 60 seconds)",
    ),
    // TLS config
    flag("tls-cert", Some("tls_cert"), slot!(Path, tls_cert), "path to certificate file"),
    flag("tls-key", Some("tls_key"), slot!(Path, tls_key), "path to key file"),
    flag(
        "tls-client-auth-policy",
        Some("tls_client_auth_policy"),
        slot!(Str, tls_client_auth_policy),
        "client certificate auth policy ('require' or 'require-verify')",
    ),
    flag(
        "tls-root-ca-file",
        Some("tls_root_ca_file"),
        slot!(Path, tls_root_ca_file),
        "path to certificate authority file",
    ),
    flag(
        "tls-required",
        Some("tls_required"),
        Slot::TlsRequired,
        "require TLS for client connections (true, false, tcp-https)",
    ),
    flag(
        "tls-min-version",
        Some("tls_min_version"),
        Slot::TlsMinVersion,
        // nsqd's help also lists 'ssl3.0', which it does not accept.
        "minimum SSL/TLS version acceptable ('tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3')",
    ),
    // compression
    flag(
        "deflate",
        Some("deflate"),
        slot!(Bool, deflate),
        "enable deflate feature negotiation (client compression)",
    ),
    flag(
        "max-deflate-level",
        Some("max_deflate_level"),
        slot!(U8, max_deflate_level),
        "max deflate compression level a client can negotiate (> values == > nsqd CPU usage)",
    ),
    flag(
        "snappy",
        Some("snappy"),
        slot!(Bool, snappy),
        "enable snappy feature negotiation (client compression)",
    ),
    // experiments (nsqd master)
    flag(
        "enable-experiment",
        Some("enable_experiment"),
        slot!(StrList, enable_experiment),
        "enable experimental feature (may be given multiple times) (valid options: \"topology-aware-consumption\")",
    ),
    // ours
    flag(
        "shards",
        Some("shards"),
        slot!(Usize, shards),
        "number of shards (executor threads, one per core); 0 means one per CPU this process may use",
    ),
    flag(
        "ack-after-fsync",
        Some("ack_after_fsync"),
        slot!(Bool, ack_after_fsync),
        "acknowledge PUB/MPUB/DPUB only after the message is written to disk and fdatasync'ed (group commit); default: acknowledge once stored in memory, as nsqd",
    ),
];

fn find_flag(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|spec| spec.name == name)
}

impl Slot {
    /// Go's `IsBoolFlag`: `-flag` alone means true and never takes the next
    /// argument as its value.
    fn is_bool(self) -> bool {
        matches!(self, Slot::Bool(..) | Slot::TlsRequired)
    }

    /// Sets the field from a command-line value. The error is the reason
    /// part of Go's message.
    fn set_flag(self, o: &mut Options, v: &str) -> Result<(), String> {
        match self {
            Slot::Bool(m, _) => *m(o) = go_parse_bool(v).ok_or(PARSE_ERROR)?,
            Slot::Str(m, _) => *m(o) = v.to_string(),
            Slot::Path(m, _) => *m(o) = PathBuf::from(v),
            Slot::U8(m, _) => *m(o) = flag_int(v)?,
            Slot::U16(m, _) => *m(o) = flag_int(v)?,
            Slot::U64(m, _) => *m(o) = flag_int(v)?,
            Slot::Usize(m, _) => *m(o) = flag_int(v)?,
            Slot::Duration(m, _) => {
                // Go's flag package reports every duration error as "parse error".
                *m(o) = parse_go_duration(v).map_err(|e| match e {
                    DurationError::Negative => e.message(v),
                    _ => PARSE_ERROR.to_string(),
                })?
            }
            Slot::StrList(m, _) => m(o).push(v.to_string()),
            Slot::FloatList(m, _) => {
                let list = m(o);
                for part in v.split(',') {
                    let f: f64 = part
                        .parse()
                        .map_err(|_| format!("could not parse {}", go_quote(part)))?;
                    list.push(f);
                }
                // nsqd's FloatArray keeps flag values sorted high to low.
                list.sort_by(|a, b| b.total_cmp(a));
            }
            Slot::LogLevel => o.log_level = v.parse()?,
            Slot::TlsRequired => o.tls_required = parse_tls_required(v)?,
            Slot::TlsMinVersion => {
                if let Some(version) = parse_tls_min_version(v)? {
                    o.tls_min_version = version;
                }
            }
        }
        Ok(())
    }

    /// Sets the field from a config-file value, coercing types as
    /// go-options does (strings parse, integer durations are milliseconds).
    fn set_toml(self, o: &mut Options, v: &toml::Value) -> Result<(), String> {
        use toml::Value as T;
        match (self, v) {
            (Slot::Bool(m, _), T::Boolean(b)) => *m(o) = *b,
            (Slot::Bool(m, _), T::String(s)) => *m(o) = go_parse_bool(s).ok_or(PARSE_ERROR)?,
            (Slot::Bool(..), _) => return Err("expected true or false".to_string()),
            (Slot::Str(m, _), T::String(s)) => *m(o) = s.clone(),
            (Slot::Path(m, _), T::String(s)) => *m(o) = PathBuf::from(s),
            (Slot::Str(..) | Slot::Path(..), _) => return Err("expected a string".to_string()),
            (Slot::U8(m, _), _) => *m(o) = toml_int(v)?,
            (Slot::U16(m, _), _) => *m(o) = toml_int(v)?,
            (Slot::U64(m, _), _) => *m(o) = toml_int(v)?,
            (Slot::Usize(m, _), _) => *m(o) = toml_int(v)?,
            (Slot::Duration(m, _), T::String(s)) => {
                *m(o) = parse_go_duration(s).map_err(|e| e.message(s))?
            }
            (Slot::Duration(m, _), T::Integer(ms)) => {
                let ms = u64::try_from(*ms).map_err(|_| "negative durations are not supported")?;
                *m(o) = Duration::from_millis(ms);
            }
            (Slot::Duration(..), _) => {
                return Err(
                    "expected a duration string such as \"60s\" or integer milliseconds"
                        .to_string(),
                )
            }
            (Slot::StrList(m, _), T::Array(items)) => {
                *m(o) = items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or("expected an array of strings")?;
            }
            (Slot::StrList(m, _), T::String(s)) => {
                *m(o) = s
                    .split(',')
                    .filter(|part| !part.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            (Slot::StrList(..), _) => return Err("expected an array of strings".to_string()),
            (Slot::FloatList(m, _), T::Array(items)) => {
                *m(o) = items
                    .iter()
                    .map(|item| match item {
                        T::Float(f) => Some(*f),
                        // Integers are exact in f64 up to 2^53, far beyond (0,1].
                        T::Integer(i) => Some(*i as f64),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .ok_or("expected an array of numbers")?;
            }
            (Slot::FloatList(m, _), T::String(s)) => {
                *m(o) = s
                    .split(',')
                    .map(|part| {
                        part.trim()
                            .parse()
                            .map_err(|_| format!("could not parse {}", go_quote(part)))
                    })
                    .collect::<Result<_, _>>()?;
            }
            (Slot::FloatList(..), _) => return Err("expected an array of numbers".to_string()),
            (Slot::LogLevel, T::String(s)) => o.log_level = s.parse()?,
            (Slot::LogLevel, _) => return Err("expected a string".to_string()),
            (Slot::TlsRequired, T::Boolean(b)) => {
                o.tls_required = if *b {
                    TlsRequired::Required
                } else {
                    TlsRequired::NotRequired
                }
            }
            (Slot::TlsRequired, T::String(s)) => o.tls_required = parse_tls_required(s)?,
            (Slot::TlsRequired, T::Integer(i)) => {
                o.tls_required = parse_tls_required(&i.to_string())?
            }
            (Slot::TlsRequired, _) => {
                return Err("expected true, false or \"tcp-https\"".to_string())
            }
            (Slot::TlsMinVersion, T::String(s)) => {
                if let Some(version) = parse_tls_min_version(s)? {
                    o.tls_min_version = version;
                }
            }
            (Slot::TlsMinVersion, _) => return Err("expected a string".to_string()),
        }
        Ok(())
    }

    /// The field as nsqd's `GET /config/:opt` encodes it.
    fn to_json(self, o: &Options) -> Json {
        match self {
            Slot::Bool(_, g) => Json::Bool(*g(o)),
            Slot::Str(_, g) => Json::String(g(o).clone()),
            Slot::Path(_, g) => Json::String(g(o).to_string_lossy().into_owned()),
            Slot::U8(_, g) => Json::from(*g(o)),
            Slot::U16(_, g) => Json::from(*g(o)),
            Slot::U64(_, g) => Json::from(*g(o)),
            Slot::Usize(_, g) => Json::from(*g(o)),
            Slot::Duration(_, g) => Json::from(duration_nanos(*g(o))),
            Slot::StrList(_, g) => Json::from(g(o).clone()),
            Slot::FloatList(_, g) => Json::Array(g(o).iter().map(|&f| go_json_float(f)).collect()),
            Slot::LogLevel => Json::from(o.log_level as u8),
            Slot::TlsRequired => Json::from(o.tls_required as u8),
            Slot::TlsMinVersion => Json::from(o.tls_min_version.as_u16()),
        }
    }

    /// Go's `flag.DefValue` as `PrintDefaults` shows it, or `None` when Go
    /// omits it (the zero value).
    fn default_text(self, o: &Options) -> Option<String> {
        let text = match self {
            Slot::Bool(_, g) => g(o).then(|| "true".to_string())?,
            Slot::Str(_, g) => go_quote(g(o)),
            Slot::Path(_, g) => go_quote(&g(o).to_string_lossy()),
            Slot::U8(_, g) => u64::from(*g(o)).to_string(),
            Slot::U16(_, g) => u64::from(*g(o)).to_string(),
            Slot::U64(_, g) => g(o).to_string(),
            Slot::Usize(_, g) => g(o).to_string(),
            Slot::Duration(_, g) => go_duration_string(*g(o)),
            Slot::StrList(_, g) => g(o).join(","),
            Slot::FloatList(_, g) => {
                let parts: Vec<String> = g(o).iter().map(|f| format!("{f:.6}")).collect();
                parts.join(",")
            }
            Slot::LogLevel => o.log_level.label().to_string(),
            Slot::TlsRequired => (o.tls_required as u8).to_string(),
            Slot::TlsMinVersion => o.tls_min_version.as_str().to_string(),
        };
        let zero = ["", "\"\"", "0", "0s"];
        (!zero.contains(&text.as_str())).then_some(text)
    }

    /// The type word `PrintDefaults` shows after the flag name.
    fn type_name(self) -> &'static str {
        match self {
            Slot::Bool(..) | Slot::TlsRequired => "",
            Slot::Str(..) | Slot::Path(..) => "string",
            Slot::U8(..) | Slot::U16(..) | Slot::U64(..) | Slot::Usize(..) => "int",
            Slot::Duration(..) => "duration",
            Slot::StrList(..) | Slot::FloatList(..) | Slot::LogLevel | Slot::TlsMinVersion => {
                "value"
            }
        }
    }
}

const PARSE_ERROR: &str = "parse error";
const RANGE_ERROR: &str = "value out of range";

fn flag_int<T: TryFrom<i64>>(v: &str) -> Result<T, String> {
    let n = go_parse_int(v).map_err(|e| match e {
        IntError::Syntax => PARSE_ERROR,
        IntError::Range => RANGE_ERROR,
    })?;
    T::try_from(n).map_err(|_| RANGE_ERROR.to_string())
}

fn toml_int<T: TryFrom<i64>>(v: &toml::Value) -> Result<T, String> {
    let n = match v {
        toml::Value::Integer(n) => *n,
        // go-options parses strings in base 10.
        toml::Value::String(s) => s
            .parse::<i64>()
            .map_err(|_| format!("{} is not an integer", go_quote(s)))?,
        _ => return Err("expected an integer".to_string()),
    };
    T::try_from(n).map_err(|_| RANGE_ERROR.to_string())
}

fn parse_tls_required(v: &str) -> Result<TlsRequired, String> {
    let lower = v.to_ascii_lowercase();
    if lower == "tcp-https" {
        return Ok(TlsRequired::RequiredExceptHttp);
    }
    match go_parse_bool(&lower) {
        Some(true) => Ok(TlsRequired::Required),
        Some(false) => Ok(TlsRequired::NotRequired),
        None => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            go_quote(&lower)
        )),
    }
}

/// `Ok(None)` for "" (keep the current value), as nsqd's `tlsMinVersionOption`.
fn parse_tls_min_version(v: &str) -> Result<Option<TlsVersion>, String> {
    let lower = v.to_ascii_lowercase();
    if lower.is_empty() {
        return Ok(None);
    }
    TlsVersion::ALL
        .into_iter()
        .find(|version| version.as_str() == lower)
        .map(Some)
        .ok_or_else(|| format!("unknown tlsVersionOption {}", go_quote(&lower)))
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Go's `encoding/json` writes integral floats without a fraction (`1`,
/// not `1.0`).
fn go_json_float(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}

// ---------------------------------------------------------------------------
// Command line, config file, resolution
// ---------------------------------------------------------------------------

/// The command line after Go `flag` parsing.
struct CommandLine {
    /// Flags in the order given, each with its value ("true" for a bare
    /// boolean).
    values: Vec<(&'static FlagSpec, String)>,
    /// The defaults with only the command line applied; read for
    /// `--config` and `--version` before the file is loaded.
    flags_only: Options,
}

impl CommandLine {
    /// Go's `FlagSet.Parse`: values are checked as they are met, so the
    /// first bad argument is the one reported.
    fn parse<I: IntoIterator<Item = String>>(
        args: I,
        defaults: &Options,
    ) -> Result<CommandLine, ConfigError> {
        let mut args = args.into_iter();
        let mut cli = CommandLine {
            values: Vec::new(),
            flags_only: defaults.clone(),
        };
        while let Some(arg) = args.next() {
            if arg.len() < 2 || !arg.starts_with('-') {
                return Err(ConfigError::UnexpectedArgument(arg));
            }
            if arg == "--" {
                return match args.next() {
                    Some(rest) => Err(ConfigError::UnexpectedArgument(rest)),
                    None => Ok(cli),
                };
            }
            let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
            if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
                return Err(ConfigError::BadFlagSyntax(arg));
            }
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            let Some(spec) = find_flag(name) else {
                if name == "help" || name == "h" {
                    return Err(ConfigError::Help(usage_text(defaults)));
                }
                return Err(ConfigError::UndefinedFlag(name.to_string()));
            };
            let value = if spec.slot.is_bool() {
                let value = inline.unwrap_or_else(|| "true".to_string());
                spec.slot
                    .set_flag(&mut cli.flags_only, &value)
                    .map_err(|reason| ConfigError::InvalidBool {
                        flag: name.to_string(),
                        value: value.clone(),
                        reason,
                    })?;
                value
            } else {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError::MissingValue(name.to_string()))?;
                spec.slot
                    .set_flag(&mut cli.flags_only, &value)
                    .map_err(|reason| ConfigError::InvalidValue {
                        flag: name.to_string(),
                        value: value.clone(),
                        reason,
                    })?;
                value
            };
            cli.values.push((spec, value));
        }
        Ok(cli)
    }

    fn has(&self, spec: &FlagSpec) -> bool {
        self.values.iter().any(|(given, _)| given.name == spec.name)
    }
}

fn load_config_file(path: &Path) -> Result<(PathBuf, toml::Table), ConfigError> {
    let fail = |reason: String| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let table = toml::from_str::<toml::Table>(&text).map_err(|e| fail(e.to_string()))?;
    Ok((path.to_path_buf(), table))
}

/// The one place precedence is decided: a flag given on the command line
/// wins, then the config file key, then the default. Repeatable flags
/// replace the file's list rather than extend it, as in nsqd. Unknown file
/// keys are ignored, as in nsqd.
fn resolve(
    defaults: Options,
    cli: &CommandLine,
    file: Option<&(PathBuf, toml::Table)>,
) -> Result<Options, ConfigError> {
    let mut opts = defaults;
    if let Some((path, table)) = file {
        for spec in FLAGS {
            let Some(key) = spec.cfg else { continue };
            if cli.has(spec) {
                continue;
            }
            if let Some(value) = table.get(key) {
                spec.slot.set_toml(&mut opts, value).map_err(|reason| {
                    ConfigError::ConfigValue {
                        path: path.clone(),
                        key: key.to_string(),
                        value: value.to_string(),
                        reason,
                    }
                })?;
            }
        }
    }
    for (spec, value) in &cli.values {
        // Already checked by CommandLine::parse; kept as an error, not a panic.
        spec.slot
            .set_flag(&mut opts, value)
            .map_err(|reason| ConfigError::InvalidValue {
                flag: spec.name.to_string(),
                value: value.clone(),
                reason,
            })?;
    }
    opts.validate()?;
    Ok(opts)
}

fn usage_text(defaults: &Options) -> String {
    let mut specs: Vec<&FlagSpec> = FLAGS.iter().collect();
    specs.sort_by_key(|spec| spec.name);
    let mut out = String::from("Usage of nsqd:\n");
    for spec in specs {
        let type_name = spec.slot.type_name();
        out.push_str("  -");
        out.push_str(spec.name);
        if !type_name.is_empty() {
            out.push(' ');
            out.push_str(type_name);
        }
        out.push_str("\n    \t");
        out.push_str(spec.usage);
        if let Some(default) = spec.slot.default_text(defaults) {
            let _ = write!(out, " (default {default})");
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// Go value syntax
// ---------------------------------------------------------------------------

/// `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Debug, PartialEq)]
enum IntError {
    Syntax,
    Range,
}

/// `strconv.ParseInt(s, 0, 64)`, which Go's integer flags use: optional
/// sign, `0x`/`0o`/`0b` prefixes, a leading `0` for octal, and `_` between
/// digits.
fn go_parse_int(s: &str) -> Result<i64, IntError> {
    let (negative, body) = match s.as_bytes().first() {
        None => return Err(IntError::Syntax),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    let magnitude = i128::from(go_parse_uint(body)?);
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| IntError::Range)
}

/// `strconv.ParseUint(s, 0, 64)`.
fn go_parse_uint(s: &str) -> Result<u64, IntError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(IntError::Syntax);
    }
    let (base, digits): (u64, &[u8]) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (2, &bytes[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &bytes[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &bytes[2..]),
            _ => (8, &bytes[1..]),
        }
    } else {
        (10, bytes)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        let lower = c.to_ascii_lowercase();
        let digit = match lower {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u64::from(lower - b'0'),
            b'a'..=b'z' => u64::from(lower - b'a') + 10,
            _ => return Err(IntError::Syntax),
        };
        if digit >= base {
            return Err(IntError::Syntax);
        }
        n = n
            .checked_mul(base)
            .and_then(|n| n.checked_add(digit))
            .ok_or(IntError::Range)?;
    }
    if underscores && !go_underscore_ok(bytes) {
        return Err(IntError::Syntax);
    }
    Ok(n)
}

/// Go's `underscoreOK`: each `_` sits between digits (or after a base prefix).
fn go_underscore_ok(s: &[u8]) -> bool {
    // Last class seen: '^' start, '0' digit or prefix, '_' underscore, '!' other.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

#[derive(Debug, PartialEq)]
enum DurationError {
    Invalid,
    MissingUnit,
    UnknownUnit(String),
    Negative,
}

impl DurationError {
    /// Go's `time.ParseDuration` error text (plus our negative case).
    fn message(&self, input: &str) -> String {
        let quoted = go_quote(input);
        match self {
            DurationError::Invalid => format!("time: invalid duration {quoted}"),
            DurationError::MissingUnit => format!("time: missing unit in duration {quoted}"),
            DurationError::UnknownUnit(unit) => {
                format!("time: unknown unit {} in duration {quoted}", go_quote(unit))
            }
            DurationError::Negative => "negative durations are not supported".to_string(),
        }
    }
}

/// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns, us
/// (or µs/μs), ms, s, m, h; "0" needs no unit. Negative values other than
/// zero are rejected, since every nsqd duration is a length of time.
fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            negative = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(DurationError::Invalid);
        }
        // Integer part.
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &s[..digits] {
            if whole > LIMIT / 10 {
                return Err(DurationError::Invalid);
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > LIMIT {
                return Err(DurationError::Invalid);
            }
        }
        let has_whole = digits > 0;
        s = &s[digits..];
        // Fraction: keep digits while they fit, then ignore the rest.
        let mut frac: u64 = 0;
        let mut scale = 1.0f64;
        let mut has_frac = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..digits] {
                if overflow || frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = frac * 10 + u64::from(c - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            has_frac = digits > 0;
            s = &s[digits..];
        }
        if !has_whole && !has_frac {
            return Err(DurationError::Invalid);
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| !(c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit);
        }
        let unit_nanos: u64 = match &s[..unit_len] {
            b"ns" => 1,
            // "µs" is U+00B5 (micro sign), "μs" is U+03BC (Greek mu).
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit(
                    String::from_utf8_lossy(other).into_owned(),
                ))
            }
        };
        s = &s[unit_len..];
        if whole > LIMIT / unit_nanos {
            return Err(DurationError::Invalid);
        }
        let mut value = whole * unit_nanos;
        if frac > 0 {
            // As Go: float64 arithmetic, truncated.
            let extra = (frac as f64 * (unit_nanos as f64 / scale)) as u64;
            value = value.checked_add(extra).ok_or(DurationError::Invalid)?;
            if value > LIMIT {
                return Err(DurationError::Invalid);
            }
        }
        total = total.checked_add(value).ok_or(DurationError::Invalid)?;
        if total > LIMIT {
            return Err(DurationError::Invalid);
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative);
    }
    if total > LIMIT - 1 {
        return Err(DurationError::Invalid);
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `time.Duration.String`, e.g. `250ms`, `1m30s`, `1h0m0s`.
fn go_duration_string(d: Duration) -> String {
    let nanos = duration_nanos(d);
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (prec, unit) = match nanos {
            0..=999 => (0, "ns"),
            1_000..=999_999 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (whole, frac) = go_fraction(nanos, prec);
        return format!("{whole}{frac}{unit}");
    }
    let (secs, frac) = go_fraction(nanos, 9);
    let mut out = String::new();
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if secs >= 60 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{}{frac}s", secs % 60);
    out
}

/// Splits `v` into `v / 10^prec` and the fraction as ".ddd" without
/// trailing zeros ("" when zero), as Go's `fmtFrac`.
fn go_fraction(v: u64, prec: u32) -> (u64, String) {
    let pow = 10u64.pow(prec);
    let frac = v % pow;
    if frac == 0 {
        return (v / pow, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / pow, format!(".{}", digits.trim_end_matches('0')))
}

/// Go's `%q` (`strconv.Quote`) for the strings that appear in messages.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// Hostname-derived defaults
// ---------------------------------------------------------------------------

/// The OS hostname (Go's `os.Hostname`), or "localhost" if it cannot be read.
fn os_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// CRC-32/IEEE (`hash/crc32.ChecksumIEEE`), bitwise: it runs once at startup.
fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// MD5 (RFC 1321), only for the default node ID; not used for security.
fn md5(data: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in message.chunks_exact(64) {
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(chunk.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for (i, (&k, &shift)) in K.iter().zip(SHIFTS.iter()).enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k).wrapping_add(words[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(shift));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (dst, word) in out.chunks_exact_mut(4).zip(state) {
        dst.copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn defaults() -> Options {
        Options::defaults_for_hostname("nsq-1")
    }

    fn parse(list: &[&str]) -> Result<Options, ConfigError> {
        Options::parse_args_from(defaults(), args(list))
    }

    fn parse_ok(list: &[&str]) -> Options {
        match parse(list) {
            Ok(opts) => opts,
            Err(e) => panic!("{list:?}: {e}"),
        }
    }

    fn parse_err(list: &[&str]) -> String {
        match parse(list) {
            Ok(_) => panic!("{list:?} parsed"),
            Err(e) => e.to_string(),
        }
    }

    /// A config file under the temp dir, removed on drop.
    struct TempConfig(PathBuf);

    impl TempConfig {
        fn new(name: &str, text: &str) -> TempConfig {
            let path = std::env::temp_dir().join(format!(
                "nsqd-config-test-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).expect("write temp config");
            TempConfig(path)
        }

        fn arg(&self) -> String {
            format!("--config={}", self.0.display())
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn parse_with_file(name: &str, text: &str, extra: &[&str]) -> Result<Options, ConfigError> {
        let file = TempConfig::new(name, text);
        let mut list = vec![file.arg()];
        list.extend(extra.iter().map(|s| s.to_string()));
        Options::parse_args_from(defaults(), list)
    }

    #[test]
    fn md5_and_crc32_vectors() {
        let hex = |b: [u8; 16]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        // Crosses a block boundary with the padding.
        assert_eq!(hex(md5(&[b'a'; 56])), "3b0c8ac703f828b04c6c197006d17218");
        assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_ieee(b""), 0);
    }

    #[test]
    fn default_node_id_matches_nsqd() {
        // Checked with Python: zlib.crc32(hashlib.md5(h).digest()) % 1024.
        assert_eq!(Options::defaults_for_hostname("localhost").node_id, 16);
        assert_eq!(Options::defaults_for_hostname("nsq-1").node_id, 715);
        assert_eq!(Options::defaults_for_hostname("vm").node_id, 617);
        let os = Options::default();
        assert!(!os.broadcast_address.is_empty());
        assert!(os.node_id < 1024);
    }

    #[test]
    fn defaults_match_nsqd() {
        let o = parse_ok(&[]);
        assert_eq!(o, defaults());
        assert_eq!(o.broadcast_address, "nsq-1");
        assert_eq!(o.log_level, LogLevel::Info);
        assert_eq!(o.log_prefix, "[nsqd] ");
        assert_eq!(o.tcp_address, "0.0.0.0:4150");
        assert_eq!(o.http_address, "0.0.0.0:4151");
        assert_eq!(o.https_address, "0.0.0.0:4152");
        assert_eq!(o.http_client_connect_timeout, Duration::from_secs(2));
        assert_eq!(o.http_client_request_timeout, Duration::from_secs(5));
        assert_eq!(o.data_path, PathBuf::new());
        assert_eq!(o.mem_queue_size, 10000);
        assert_eq!(o.max_bytes_per_file, 104_857_600);
        assert_eq!(o.sync_every, 2500);
        assert_eq!(o.sync_timeout, Duration::from_secs(2));
        assert_eq!(o.queue_scan_worker_pool_max, 4);
        assert_eq!(o.queue_scan_selection_count, 20);
        assert_eq!(o.msg_timeout, Duration::from_secs(60));
        assert_eq!(o.max_msg_timeout, Duration::from_secs(900));
        assert_eq!(o.max_msg_size, 1_048_576);
        assert_eq!(o.max_body_size, 5_242_880);
        assert_eq!(o.max_req_timeout, Duration::from_secs(3600));
        assert_eq!(o.client_timeout, Duration::from_secs(60));
        assert_eq!(o.max_heartbeat_interval, Duration::from_secs(60));
        assert_eq!(o.max_rdy_count, 2500);
        assert_eq!(o.max_output_buffer_size, 65536);
        assert_eq!(o.max_output_buffer_timeout, Duration::from_secs(30));
        assert_eq!(o.min_output_buffer_timeout, Duration::from_millis(25));
        assert_eq!(o.output_buffer_timeout, Duration::from_millis(250));
        assert_eq!(o.statsd_prefix, "nsq.%s");
        assert_eq!(o.statsd_interval, Duration::from_secs(60));
        assert!(o.statsd_mem_stats);
        assert_eq!(o.statsd_udp_packet_size, 508);
        assert_eq!(
            o.e2e_processing_latency_window_time,
            Duration::from_secs(600)
        );
        assert_eq!(o.tls_required, TlsRequired::NotRequired);
        assert_eq!(o.tls_min_version, TlsVersion::Tls10);
        assert!(o.deflate && o.snappy);
        assert_eq!(o.max_deflate_level, 6);
        assert_eq!(o.auth_http_request_method, "get");
        assert_eq!(o.shards, 0);
    }

    #[test]
    fn four_value_forms() {
        for form in [
            &["-mem-queue-size=7"][..],
            &["--mem-queue-size=7"],
            &["-mem-queue-size", "7"],
            &["--mem-queue-size", "7"],
        ] {
            assert_eq!(parse_ok(form).mem_queue_size, 7, "{form:?}");
        }
        // A separate value is taken as is, even when it starts with '-'.
        assert_eq!(parse_ok(&["--log-prefix", "-x-"]).log_prefix, "-x-");
        // Only the first '=' splits.
        assert_eq!(parse_ok(&["--statsd-prefix=a=b"]).statsd_prefix, "a=b");
        // An empty inline value is a value.
        assert_eq!(parse_ok(&["--http-address="]).http_address, "");
    }

    #[test]
    fn booleans() {
        assert!(!parse_ok(&["--deflate=false"]).deflate);
        assert!(parse_ok(&["-deflate=false", "-deflate"]).deflate);
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(
                parse_ok(&[&format!("--statsd-exclude-ephemeral={v}")]).statsd_exclude_ephemeral
            );
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!parse_ok(&[&format!("-snappy={v}")]).snappy);
        }
        assert_eq!(
            parse_err(&["--snappy=yes"]),
            "invalid boolean value \"yes\" for -snappy: parse error"
        );
        assert_eq!(
            parse_err(&["--snappy=tRUE"]),
            "invalid boolean value \"tRUE\" for -snappy: parse error"
        );
        // A boolean never takes the next argument.
        let err = parse(&["--snappy", "false"]).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnexpectedArgument(a) if a == "false"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
        let o = parse_ok(&["--deflate", "--mem-queue-size", "3"]);
        assert!(o.deflate);
        assert_eq!(o.mem_queue_size, 3);
    }

    #[test]
    fn repeatable_flags_accumulate() {
        let o = parse_ok(&[
            "--lookupd-tcp-address=a:4160",
            "-lookupd-tcp-address",
            "b:4160",
            "--auth-http-address=http://auth/",
            "--auth-http-address",
            "c:1",
            "--enable-experiment=topology-aware-consumption",
        ]);
        assert_eq!(o.nsqlookupd_tcp_addresses, ["a:4160", "b:4160"]);
        assert_eq!(o.auth_http_addresses, ["http://auth/", "c:1"]);
        assert_eq!(o.enable_experiment, ["topology-aware-consumption"]);
        let o = parse_ok(&[
            "--e2e-processing-latency-percentile=0.5,1.0",
            "--e2e-processing-latency-percentile",
            "0.99",
        ]);
        // Sorted high to low, as nsqd's FloatArray.
        assert_eq!(o.e2e_processing_latency_percentiles, [1.0, 0.99, 0.5]);
        assert_eq!(
            parse_err(&["--e2e-processing-latency-percentile=0.5,x"]),
            "invalid value \"0.5,x\" for flag -e2e-processing-latency-percentile: could not parse \"x\""
        );
    }

    #[test]
    fn double_dash_and_positionals() {
        assert_eq!(parse_ok(&["--mem-queue-size=1", "--"]).mem_queue_size, 1);
        let err = parse_err(&["--", "--mem-queue-size=1"]);
        assert!(
            err.starts_with("unexpected argument \"--mem-queue-size=1\""),
            "{err}"
        );
        assert!(parse_err(&["foo"]).starts_with("unexpected argument \"foo\""));
        assert!(parse_err(&["-"]).starts_with("unexpected argument \"-\""));
        // Go's worker-id is a boolean, so "5" is a stray argument.
        assert!(parse_err(&["--worker-id", "5"]).starts_with("unexpected argument \"5\""));
        assert!(parse_err(&["--tls-required", "tcp-https"]).starts_with("unexpected argument"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(parse_err(&["-foo"]), "flag provided but not defined: -foo");
        assert_eq!(
            parse_err(&["--foo=1"]),
            "flag provided but not defined: -foo"
        );
        assert_eq!(parse_err(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(parse_err(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(parse_err(&["--=x"]), "bad flag syntax: --=x");
        assert_eq!(
            parse_err(&["--tcp-address"]),
            "flag needs an argument: -tcp-address"
        );
        assert_eq!(
            parse_err(&["--mem-queue-size=abc"]),
            "invalid value \"abc\" for flag -mem-queue-size: parse error"
        );
        assert_eq!(
            parse_err(&["--mem-queue-size", "-1"]),
            "invalid value \"-1\" for flag -mem-queue-size: value out of range"
        );
        assert_eq!(
            parse_err(&["--broadcast-tcp-port=70000"]),
            "invalid value \"70000\" for flag -broadcast-tcp-port: value out of range"
        );
        assert_eq!(
            parse_err(&["--msg-timeout=60"]),
            "invalid value \"60\" for flag -msg-timeout: parse error"
        );
        assert_eq!(
            parse_err(&["--msg-timeout=-1s"]),
            "invalid value \"-1s\" for flag -msg-timeout: negative durations are not supported"
        );
        // The first bad argument is the one reported, as Go.
        assert_eq!(
            parse_err(&["--mem-queue-size=x", "--foo"]),
            "invalid value \"x\" for flag -mem-queue-size: parse error"
        );
        let err = parse(&["--foo"]).map(|_| ()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn help_lists_every_flag() {
        for form in [
            &["-h"][..],
            &["--help"],
            &["-help=1"],
            &["--tcp-address=x", "-h"],
        ] {
            match parse(form) {
                Err(ConfigError::Help(text)) => {
                    assert!(text.starts_with("Usage of nsqd:\n"));
                    for spec in FLAGS {
                        assert!(text.contains(&format!("  -{}", spec.name)), "{}", spec.name);
                    }
                }
                other => panic!("{form:?}: {other:?}"),
            }
        }
        let text = usage_text(&defaults());
        assert!(text.contains(
            "  -mem-queue-size int\n    \tnumber of messages to keep in memory (per topic/channel) (default 10000)\n"
        ));
        assert!(text.contains("  -tcp-address string\n    \taddress to listen on for TCP clients (<addr>:<port> for TCP/IP or <path> for unix socket) (default \"0.0.0.0:4150\")\n"));
        assert!(text.contains("  -max-msg-timeout duration\n    \tmaximum duration before a message will timeout (default 15m0s)\n"));
        assert!(text.contains("  -deflate\n    \tenable deflate feature negotiation (client compression) (default true)\n"));
        assert!(text.contains("(default INFO)"));
        assert!(text.contains("(default tls1.0)"));
        assert!(text.contains("(default 715)"));
        assert!(text.contains("(default \"nsq-1\")"));
        // Zero values print no default, as Go.
        assert!(text.contains("  -statsd-exclude-ephemeral\n    \tSkip ephemeral topics and channels when sending stats to statsd\n"));
        assert!(text.contains(
            "  -tls-required\n    \trequire TLS for client connections (true, false, tcp-https)\n"
        ));
        assert!(text.contains("  -lookupd-tcp-address value\n    \tlookupd TCP address (may be given multiple times)\n"));
        // Sorted by name.
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  -"))
            .map(|l| l.split(' ').next().unwrap_or(l))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(ConfigError::Help(String::new()).exit_code(), 0);
    }

    #[test]
    fn go_integers() {
        assert_eq!(go_parse_int("10"), Ok(10));
        assert_eq!(go_parse_int("+10"), Ok(10));
        assert_eq!(go_parse_int("-10"), Ok(-10));
        assert_eq!(go_parse_int("0x1F"), Ok(31));
        assert_eq!(go_parse_int("0o17"), Ok(15));
        assert_eq!(go_parse_int("017"), Ok(15));
        assert_eq!(go_parse_int("0b101"), Ok(5));
        assert_eq!(go_parse_int("0"), Ok(0));
        assert_eq!(go_parse_int("1_000"), Ok(1000));
        assert_eq!(go_parse_int("0x_1f"), Ok(31));
        assert_eq!(go_parse_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(go_parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775808"), Err(IntError::Range));
        assert_eq!(go_parse_int("99999999999999999999"), Err(IntError::Range));
        for bad in [
            "", "-", "+", "abc", "1.5", "1e3", "08", "0b", "0x", "_1", "1_", "1__0", " 1", "+-1",
        ] {
            assert_eq!(go_parse_int(bad), Err(IntError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_ok(&["--max-rdy-count=0x10"]).max_rdy_count, 16);
    }

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("60s"), Duration::from_secs(60));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("100us"), Duration::from_micros(100));
        assert_eq!(ok("100µs"), Duration::from_micros(100));
        assert_eq!(ok("100μs"), Duration::from_micros(100));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(
            ok("1h2m3s4ms5us6ns"),
            Duration::from_nanos(3_723_004_005_006)
        );
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            Duration::from_nanos(i64::MAX as u64)
        );
        assert_eq!(
            parse_go_duration("2562047h47m16.854775808s"),
            Err(DurationError::Invalid)
        );
        assert_eq!(
            parse_go_duration("9999999999h"),
            Err(DurationError::Invalid)
        );
        for bad in ["", "-", "+", ".", ".s", "s", "x1s"] {
            assert_eq!(
                parse_go_duration(bad),
                Err(DurationError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(parse_go_duration("1"), Err(DurationError::MissingUnit));
        assert_eq!(parse_go_duration("1s2"), Err(DurationError::MissingUnit));
        assert_eq!(parse_go_duration("1.2.3s"), Err(DurationError::MissingUnit));
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit("d".to_string()))
        );
        assert_eq!(
            parse_go_duration("1 s"),
            Err(DurationError::UnknownUnit(" s".to_string()))
        );
        assert_eq!(parse_go_duration("-1s"), Err(DurationError::Negative));
        assert_eq!(
            DurationError::UnknownUnit("d".into()).message("1d"),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            DurationError::Invalid.message("x"),
            "time: invalid duration \"x\""
        );
        assert_eq!(
            DurationError::MissingUnit.message("1"),
            "time: missing unit in duration \"1\""
        );
    }

    #[test]
    fn go_duration_strings() {
        let s = |nanos: u64| go_duration_string(Duration::from_nanos(nanos));
        assert_eq!(s(0), "0s");
        assert_eq!(s(7), "7ns");
        assert_eq!(s(1_500), "1.5µs");
        assert_eq!(s(25_000_000), "25ms");
        assert_eq!(s(250_000_000), "250ms");
        assert_eq!(s(1_500_000_000), "1.5s");
        assert_eq!(s(2_000_000_000), "2s");
        assert_eq!(s(90_000_000_000), "1m30s");
        assert_eq!(s(900_000_000_000), "15m0s");
        assert_eq!(s(3_600_000_000_000), "1h0m0s");
        assert_eq!(s(3_723_000_000_001), "1h2m3.000000001s");
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("abc"), "\"abc\"");
        assert_eq!(
            go_quote("a\"b\\c\n\t\x01\x7f"),
            "\"a\\\"b\\\\c\\n\\t\\x01\\x7f\""
        );
        assert_eq!(go_quote("µs"), "\"µs\"");
    }

    #[test]
    fn special_flags() {
        assert_eq!(parse_ok(&["--log-level=DEBUG"]).log_level, LogLevel::Debug);
        assert_eq!(parse_ok(&["--log-level", "warn"]).log_level, LogLevel::Warn);
        assert_eq!(
            parse_err(&["--log-level=verbose"]),
            "invalid value \"verbose\" for flag -log-level: invalid log level 'verbose' (debug, info, warn, error, fatal)"
        );
        assert_eq!(
            parse_ok(&["--tls-min-version=TLS1.2"]).tls_min_version,
            TlsVersion::Tls12
        );
        assert_eq!(
            parse_ok(&["--tls-min-version="]).tls_min_version,
            TlsVersion::Tls10
        );
        assert_eq!(
            parse_err(&["--tls-min-version=ssl3.0"]),
            "invalid value \"ssl3.0\" for flag -tls-min-version: unknown tlsVersionOption \"ssl3.0\""
        );
        let tls = ["--tls-cert=c.pem", "--tls-key=k.pem"];
        let with_tls = |extra: &str| parse_ok(&[tls[0], tls[1], extra]).tls_required;
        assert_eq!(with_tls("--tls-required"), TlsRequired::Required);
        assert_eq!(
            with_tls("--tls-required=TCP-HTTPS"),
            TlsRequired::RequiredExceptHttp
        );
        assert_eq!(with_tls("--tls-required=false"), TlsRequired::NotRequired);
        assert_eq!(with_tls("--tls-required=T"), TlsRequired::Required);
        assert_eq!(
            parse_err(&["--tls-required=maybe"]),
            "invalid boolean value \"maybe\" for -tls-required: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(parse_ok(&["--shards=2"]).shards, 2);
        assert_eq!(
            parse_ok(&["--data-path", "/var/lib/nsq"]).data_path,
            PathBuf::from("/var/lib/nsq")
        );
    }

    #[test]
    fn validation_errors() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--max-deflate-level=0"],
                "--max-deflate-level must be [1,9]",
            ),
            (
                &["--max-deflate-level=10"],
                "--max-deflate-level must be [1,9]",
            ),
            (&["--node-id=1024"], "--node-id must be [0,1024)"),
            (
                &["--tls-required"],
                "cannot require TLS client connections without TLS key and cert",
            ),
            (
                &["--tls-required=tcp-https"],
                "cannot require TLS client connections without TLS key and cert",
            ),
            (
                &["--tls-client-auth-policy=require"],
                "cannot require TLS client connections without TLS key and cert",
            ),
            (
                &["--tls-cert=c.pem"],
                "failed to build TLS config - --tls-cert and --tls-key must be given together",
            ),
            (
                &["--auth-http-request-method=GET"],
                "--auth-http-request-method must be post or get",
            ),
            (
                &["--e2e-processing-latency-percentile=0"],
                "invalid E2E processing latency percentile: 0",
            ),
            (
                &["--e2e-processing-latency-percentile=1.5"],
                "invalid E2E processing latency percentile: 1.5",
            ),
            (
                &["--e2e-processing-latency-percentile=NaN"],
                "invalid E2E processing latency percentile: NaN",
            ),
        ];
        for (list, msg) in cases {
            let err = parse(list).map(|_| ()).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{list:?}: {err:?}");
            assert_eq!(err.to_string(), *msg, "{list:?}");
            assert_eq!(err.exit_code(), 1);
        }
        assert_eq!(parse_ok(&["--max-deflate-level=9"]).max_deflate_level, 9);
        assert_eq!(parse_ok(&["--node-id=0"]).node_id, 0);
        assert_eq!(parse_ok(&["--node-id=1023"]).node_id, 1023);
        assert_eq!(
            parse_ok(&["--auth-http-request-method=post"]).auth_http_request_method,
            "post"
        );
        assert_eq!(
            parse_ok(&["--e2e-processing-latency-percentile=1"]).e2e_processing_latency_percentiles,
            [1.0]
        );
        // A client auth policy turns TLS on, as nsqd.New does.
        let o = parse_ok(&[
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-client-auth-policy=require-verify",
        ]);
        assert_eq!(o.tls_required, TlsRequired::Required);
        assert_eq!(o.get_config_value("tls_required"), Some(Json::from(2)));
    }

    #[test]
    fn version_flag_skips_config_and_validation() {
        let o = parse_ok(&[
            "--version",
            "--config=/nonexistent/nsqd.toml",
            "--node-id=5000",
        ]);
        assert!(o.version);
        assert_eq!(Options::version_string(), "nsqd v1.3.0 (built w/rust)");
        // Flag errors still come first, as in Go.
        assert!(parse(&["--version", "--foo"]).is_err());
    }

    const FULL_FILE: &str = r#"
        log_level = "debug"
        log_prefix = "[x] "
        id = 42
        tcp_address = "127.0.0.1:5150"
        http_address = ""
        https_address = "127.0.0.1:5152"
        broadcast_address = "nsq.example"
        broadcast_tcp_port = 6150
        broadcast_http_port = "6151"
        nsqlookupd_tcp_addresses = ["l1:4160", "l2:4160"]
        auth_http_addresses = "a1:4181,a2:4181"
        auth_http_request_method = "post"
        http_client_connect_timeout = "3s"
        http_client_request_timeout = 7000
        topology_region = "eu"
        topology_zone = "eu-1"
        data_path = "/var/lib/nsq"
        mem_queue_size = 0
        max_bytes_per_file = 1048576
        sync_every = 1
        sync_timeout = "1m30s"
        queue_scan_worker_pool_max = 8
        queue_scan_selection_count = 40
        msg_timeout = "30s"
        max_msg_timeout = "1h"
        max_msg_size = 1024768
        max_body_size = 5123840
        max_req_timeout = "2h"
        max_heartbeat_interval = "90s"
        max_rdy_count = 100
        max_output_buffer_size = 1000
        max_output_buffer_timeout = "1s"
        min_output_buffer_timeout = "10ms"
        output_buffer_timeout = "100ms"
        max_channel_consumers = 3
        statsd_address = "127.0.0.1:8125"
        statsd_prefix = "p.%s"
        statsd_interval = "10s"
        statsd_mem_stats = false
        statsd_udp_packet_size = 1400
        statsd_exclude_ephemeral = "true"
        e2e_processing_latency_percentiles = [1.0, 0.99, 0.95]
        e2e_processing_latency_window_time = "5m"
        tls_cert = "/c.pem"
        tls_key = "/k.pem"
        tls_client_auth_policy = ""
        tls_root_ca_file = "/ca.pem"
        tls_required = "tcp-https"
        tls_min_version = "tls1.2"
        deflate = false
        max_deflate_level = 9
        snappy = false
        enable_experiment = ["topology-aware-consumption"]
        shards = 2
        unknown_key = "ignored"
        version = true
        config = "/ignored"
        verbose = "not even a bool"
        [some_table]
        mem_queue_size = 5
    "#;

    #[test]
    fn config_file_sets_every_key() {
        let o = match parse_with_file("full", FULL_FILE, &[]) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        assert!(!o.version);
        assert_eq!(o.log_level, LogLevel::Debug);
        assert_eq!(o.log_prefix, "[x] ");
        assert_eq!(o.node_id, 42);
        assert_eq!(o.tcp_address, "127.0.0.1:5150");
        assert_eq!(o.http_address, "");
        assert_eq!(o.https_address, "127.0.0.1:5152");
        assert_eq!(o.broadcast_address, "nsq.example");
        assert_eq!((o.broadcast_tcp_port, o.broadcast_http_port), (6150, 6151));
        assert_eq!(o.nsqlookupd_tcp_addresses, ["l1:4160", "l2:4160"]);
        assert_eq!(o.auth_http_addresses, ["a1:4181", "a2:4181"]);
        assert_eq!(o.auth_http_request_method, "post");
        assert_eq!(o.http_client_connect_timeout, Duration::from_secs(3));
        // go-options reads integer durations as milliseconds.
        assert_eq!(o.http_client_request_timeout, Duration::from_secs(7));
        assert_eq!(
            (o.topology_region.as_str(), o.topology_zone.as_str()),
            ("eu", "eu-1")
        );
        assert_eq!(o.data_path, PathBuf::from("/var/lib/nsq"));
        assert_eq!(o.mem_queue_size, 0);
        assert_eq!(o.max_bytes_per_file, 1_048_576);
        assert_eq!(o.sync_every, 1);
        assert_eq!(o.sync_timeout, Duration::from_secs(90));
        assert_eq!(o.queue_scan_worker_pool_max, 8);
        assert_eq!(o.queue_scan_selection_count, 40);
        assert_eq!(o.msg_timeout, Duration::from_secs(30));
        assert_eq!(o.max_msg_timeout, Duration::from_secs(3600));
        assert_eq!(o.max_msg_size, 1_024_768);
        assert_eq!(o.max_body_size, 5_123_840);
        assert_eq!(o.max_req_timeout, Duration::from_secs(7200));
        assert_eq!(o.max_heartbeat_interval, Duration::from_secs(90));
        assert_eq!(o.max_rdy_count, 100);
        assert_eq!(o.max_output_buffer_size, 1000);
        assert_eq!(o.max_output_buffer_timeout, Duration::from_secs(1));
        assert_eq!(o.min_output_buffer_timeout, Duration::from_millis(10));
        assert_eq!(o.output_buffer_timeout, Duration::from_millis(100));
        assert_eq!(o.max_channel_consumers, 3);
        assert_eq!(o.statsd_address, "127.0.0.1:8125");
        assert_eq!(o.statsd_prefix, "p.%s");
        assert_eq!(o.statsd_interval, Duration::from_secs(10));
        assert!(!o.statsd_mem_stats);
        assert_eq!(o.statsd_udp_packet_size, 1400);
        assert!(o.statsd_exclude_ephemeral);
        // File lists keep their order (nsqd sorts only flag values).
        assert_eq!(o.e2e_processing_latency_percentiles, [1.0, 0.99, 0.95]);
        assert_eq!(
            o.e2e_processing_latency_window_time,
            Duration::from_secs(300)
        );
        assert_eq!(o.tls_cert, PathBuf::from("/c.pem"));
        assert_eq!(o.tls_key, PathBuf::from("/k.pem"));
        assert_eq!(o.tls_root_ca_file, PathBuf::from("/ca.pem"));
        assert_eq!(o.tls_required, TlsRequired::RequiredExceptHttp);
        assert_eq!(o.tls_min_version, TlsVersion::Tls12);
        assert!(!o.deflate && !o.snappy);
        assert_eq!(o.max_deflate_level, 9);
        assert_eq!(o.enable_experiment, ["topology-aware-consumption"]);
        assert_eq!(o.shards, 2);
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let file = "mem_queue_size = 5\nmsg_timeout = \"5s\"\nnsqlookupd_tcp_addresses = [\"f:4160\"]\nid = 5000\n";
        let o = match parse_with_file(
            "precedence",
            file,
            &[
                "--mem-queue-size=9",
                "--lookupd-tcp-address=c:4160",
                "--node-id=7",
            ],
        ) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(o.mem_queue_size, 9); // flag
        assert_eq!(o.msg_timeout, Duration::from_secs(5)); // file
        assert_eq!(o.max_rdy_count, 2500); // default
                                           // A repeatable flag replaces the file's list.
        assert_eq!(o.nsqlookupd_tcp_addresses, ["c:4160"]);
        // The file's out-of-range id never counts: the flag wins.
        assert_eq!(o.node_id, 7);
        // The flag may come before or after --config.
        let path = TempConfig::new("order", "mem_queue_size = 5\n");
        let o = Options::parse_args_from(
            defaults(),
            vec!["--mem-queue-size=9".to_string(), path.arg()],
        )
        .map_err(|e| e.to_string());
        assert_eq!(o.map(|o| o.mem_queue_size), Ok(9));
    }

    #[test]
    fn file_tls_required_forms() {
        let tls = "tls_cert = \"c\"\ntls_key = \"k\"\n";
        for (value, want) in [
            ("true", TlsRequired::Required),
            ("false", TlsRequired::NotRequired),
            ("1", TlsRequired::Required),
            ("0", TlsRequired::NotRequired),
            ("\"TRUE\"", TlsRequired::Required),
            ("\"tcp-https\"", TlsRequired::RequiredExceptHttp),
        ] {
            let text = format!("{tls}tls_required = {value}\n");
            let got = parse_with_file("tlsreq", &text, &[]).map(|o| o.tls_required);
            assert_eq!(got.map_err(|e| e.to_string()), Ok(want), "{value}");
        }
        let o =
            parse_with_file("tlsmin", "tls_min_version = \"\"\n", &[]).map(|o| o.tls_min_version);
        assert_eq!(o.map_err(|e| e.to_string()), Ok(TlsVersion::Tls10));
    }

    #[test]
    fn file_errors_name_the_key() {
        let err = |name: &str, text: &str| match parse_with_file(name, text, &[]) {
            Ok(_) => panic!("{text} parsed"),
            Err(e) => {
                assert!(matches!(e, ConfigError::ConfigValue { .. }), "{e:?}");
                assert_eq!(e.exit_code(), 1);
                e.to_string()
            }
        };
        let msg = err("e1", "mem_queue_size = \"abc\"\n");
        assert!(
            msg.ends_with(
                "invalid value \"abc\" for key \"mem_queue_size\": \"abc\" is not an integer"
            ),
            "{msg}"
        );
        let msg = err("e2", "mem_queue_size = 1.5\n");
        assert!(
            msg.ends_with("invalid value 1.5 for key \"mem_queue_size\": expected an integer"),
            "{msg}"
        );
        let msg = err("e3", "msg_timeout = \"60\"\n");
        assert!(
            msg.ends_with("for key \"msg_timeout\": time: missing unit in duration \"60\""),
            "{msg}"
        );
        let msg = err("e4", "msg_timeout = -5\n");
        assert!(
            msg.contains("\"msg_timeout\": negative durations are not supported"),
            "{msg}"
        );
        let msg = err("e5", "deflate = 1\n");
        assert!(
            msg.ends_with("invalid value 1 for key \"deflate\": expected true or false"),
            "{msg}"
        );
        let msg = err("e6", "nsqlookupd_tcp_addresses = [1, 2]\n");
        assert!(
            msg.contains("\"nsqlookupd_tcp_addresses\": expected an array of strings"),
            "{msg}"
        );
        let msg = err("e7", "log_level = \"loud\"\n");
        assert!(
            msg.contains("\"log_level\": invalid log level 'loud'"),
            "{msg}"
        );
        let msg = err("e8", "tls_required = 2\n");
        assert!(
            msg.contains("\"tls_required\": strconv.ParseBool: parsing \"2\": invalid syntax"),
            "{msg}"
        );
        let msg = err("e9", "tls_min_version = \"ssl3.0\"\n");
        assert!(
            msg.contains("\"tls_min_version\": unknown tlsVersionOption \"ssl3.0\""),
            "{msg}"
        );
        let msg = err("e10", "broadcast_tcp_port = 65536\n");
        assert!(
            msg.ends_with("\"broadcast_tcp_port\": value out of range"),
            "{msg}"
        );
        let msg = err("e11", "id = \"x\"\n");
        assert!(msg.contains("for key \"id\""), "{msg}");
        let msg = err("e12", "tcp_address = 4150\n");
        assert!(msg.ends_with("\"tcp_address\": expected a string"), "{msg}");
        let msg = err("e13", "e2e_processing_latency_percentiles = \"0.9, x\"\n");
        assert!(msg.ends_with("could not parse \" x\""), "{msg}");
        // Validation still applies to values from the file.
        let e = parse_with_file("e14", "max_deflate_level = 0\n", &[])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.to_string(), "--max-deflate-level must be [1,9]");
        let e = parse_with_file("e15", "id = 1024\n", &[])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.to_string(), "--node-id must be [0,1024)");
    }

    #[test]
    fn file_string_forms() {
        let text = "e2e_processing_latency_percentiles = \"0.5, 1\"\nsync_every = \"12\"\nnsqlookupd_tcp_addresses = \"\"\n";
        let o = parse_with_file("strings", text, &[]).map_err(|e| e.to_string());
        let o = o.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.e2e_processing_latency_percentiles, [0.5, 1.0]);
        assert_eq!(o.sync_every, 12);
        assert!(o.nsqlookupd_tcp_addresses.is_empty());
    }

    #[test]
    fn unreadable_config_file() {
        let e = parse(&["--config=/nonexistent/nsqd.toml"])
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, ConfigError::ConfigFile { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("failed to load config file /nonexistent/nsqd.toml - "));
        let e = parse_with_file("syntax", "mem_queue_size = = 3\n", &[])
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, ConfigError::ConfigFile { .. }), "{e:?}");
        // An empty --config means no file.
        assert_eq!(parse_ok(&["--config="]).config, PathBuf::new());
    }

    #[test]
    fn config_values_as_nsqd_json() {
        let o = parse_ok(&[
            "--lookupd-tcp-address=a:4160",
            "--e2e-processing-latency-percentile=1.0,0.99",
            "--log-level=warn",
            "--tls-min-version=tls1.3",
        ]);
        let get = |name: &str| o.get_config_value(name);
        assert_eq!(get("id"), Some(Json::from(715)));
        assert_eq!(get("node_id"), None);
        assert_eq!(get("msg_timeout"), Some(Json::from(60_000_000_000u64)));
        assert_eq!(
            get("output_buffer_timeout"),
            Some(Json::from(250_000_000u64))
        );
        assert_eq!(
            get("nsqlookupd_tcp_addresses"),
            Some(serde_json::json!(["a:4160"]))
        );
        assert_eq!(get("auth_http_addresses"), Some(serde_json::json!([])));
        assert_eq!(
            get("e2e_processing_latency_percentiles").map(|v| v.to_string()),
            Some("[1,0.99]".to_string())
        );
        assert_eq!(get("log_level"), Some(Json::from(3)));
        assert_eq!(get("tls_required"), Some(Json::from(0)));
        assert_eq!(get("tls_min_version"), Some(Json::from(0x0304)));
        assert_eq!(
            defaults().get_config_value("tls_min_version"),
            Some(Json::from(769))
        );
        assert_eq!(get("data_path"), Some(Json::from("")));
        assert_eq!(get("deflate"), Some(Json::Bool(true)));
        assert_eq!(get("mem_queue_size"), Some(Json::from(10000)));
        assert_eq!(get("broadcast_address"), Some(Json::from("nsq-1")));
        assert_eq!(get("statsd_prefix"), Some(Json::from("nsq.%s")));
        assert_eq!(get("shards"), Some(Json::from(0)));
        // Flags without an Options field in nsqd are not config options.
        for name in [
            "version",
            "config",
            "verbose",
            "worker_id",
            "lookupd_tcp_address",
            "nope",
        ] {
            assert_eq!(get(name), None, "{name}");
        }
    }

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<&str> = FLAGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FLAGS.len(), "duplicate flag name");
        let mut keys: Vec<&str> = FLAGS.iter().filter_map(|s| s.cfg).collect();
        let count = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), count, "duplicate config key");
        let renamed = [
            ("node-id", "id"),
            ("lookupd-tcp-address", "nsqlookupd_tcp_addresses"),
            ("auth-http-address", "auth_http_addresses"),
            (
                "e2e-processing-latency-percentile",
                "e2e_processing_latency_percentiles",
            ),
        ];
        for spec in FLAGS {
            let Some(cfg) = spec.cfg else { continue };
            let expected = renamed
                .iter()
                .find(|(flag, _)| *flag == spec.name)
                .map_or_else(|| spec.name.replace('-', "_"), |(_, key)| key.to_string());
            assert_eq!(cfg, expected, "{}", spec.name);
        }
    }

    #[test]
    fn example_config_parses_to_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.example.toml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        for key in table.keys() {
            assert!(
                FLAGS.iter().any(|spec| spec.cfg == Some(key.as_str())),
                "unknown key {key} in example"
            );
        }
        for spec in FLAGS.iter().filter(|spec| spec.cfg.is_some()) {
            let key = spec.cfg.unwrap_or_default();
            assert!(text.contains(&format!("{key} =")), "example lacks {key}");
        }
        let file = TempConfig::new("example", &text);
        let o = Options::parse_args_from(defaults(), vec![file.arg()]).map_err(|e| e.to_string());
        let mut want = defaults();
        want.config = file.0.clone();
        assert_eq!(o, Ok(want));
    }
}
