//! The flag table: every nsqd flag, its config-file key, the `Options`
//! field it sets, and how a value of that field is parsed from the command
//! line, encoded for `GET /config/:opt` and shown by `--help`.
//!
//! Config-file coercion of the same fields is in `file.rs`; the generic
//! parts (Go syntax, `--help` layout, value rules) are `nsq_daemon::flags`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Options, TlsRequired, TlsVersion};
use nsq_daemon::flags::{flag_duration, flag_int, PARSE_ERROR};
use nsq_daemon::goparse::{duration_nanos, go_duration_string, go_parse_bool, go_quote};

type Get<T> = fn(&Options) -> &T;
type GetMut<T> = fn(&mut Options) -> &mut T;

/// How a flag maps onto its field: the value type decides the parser, the
/// config-file coercion, the JSON encoding and the `--help` rendering.
#[derive(Clone, Copy)]
pub(super) enum Slot {
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

pub(super) struct FlagSpec {
    /// Flag name without dashes.
    pub(super) name: &'static str,
    /// Config-file key and `/config/:opt` name; `None` for flags nsqd keeps
    /// out of its `Options` (`version`, `config`, the deprecated ones).
    pub(super) cfg: Option<&'static str>,
    pub(super) slot: Slot,
    /// Help text, verbatim from nsqd where the flag is nsqd's.
    pub(super) usage: &'static str,
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
pub(super) static FLAGS: &[FlagSpec] = &[
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
    flag(
        "metrics-per-client",
        Some("metrics_per_client"),
        slot!(Bool, metrics_per_client),
        "also expose one series per connected consumer in GET /metrics (labels grow with the number of clients)",
    ),
];

pub(super) fn find_flag(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|spec| spec.name == name)
}

impl Slot {
    /// Go's `IsBoolFlag`: `-flag` alone means true and never takes the next
    /// argument as its value.
    pub(super) fn is_bool(self) -> bool {
        matches!(self, Slot::Bool(..) | Slot::TlsRequired)
    }

    /// Sets the field from a command-line value. The error is the reason
    /// part of Go's message.
    pub(super) fn set_flag(self, o: &mut Options, v: &str) -> Result<(), String> {
        match self {
            Slot::Bool(m, _) => *m(o) = go_parse_bool(v).ok_or(PARSE_ERROR)?,
            Slot::Str(m, _) => *m(o) = v.to_string(),
            Slot::Path(m, _) => *m(o) = PathBuf::from(v),
            Slot::U8(m, _) => *m(o) = flag_int(v)?,
            Slot::U16(m, _) => *m(o) = flag_int(v)?,
            Slot::U64(m, _) => *m(o) = flag_int(v)?,
            Slot::Usize(m, _) => *m(o) = flag_int(v)?,
            Slot::Duration(m, _) => *m(o) = flag_duration(v)?,
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

    /// The field as nsqd's `GET /config/:opt` encodes it.
    pub(super) fn to_json(self, o: &Options) -> Json {
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
    pub(super) fn default_text(self, o: &Options) -> Option<String> {
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
    pub(super) fn type_name(self) -> &'static str {
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

pub(super) fn parse_tls_required(v: &str) -> Result<TlsRequired, String> {
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
pub(super) fn parse_tls_min_version(v: &str) -> Result<Option<TlsVersion>, String> {
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

/// Go's `encoding/json` writes integral floats without a fraction (`1`,
/// not `1.0`).
fn go_json_float(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}
