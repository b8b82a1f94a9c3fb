//! Command-line, config-file, validation and `/config` tests for nsqd's
//! options.

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
        assert!(parse_ok(&[&format!("--statsd-exclude-ephemeral={v}")]).statsd_exclude_ephemeral);
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
        matches!(&err, ConfigError::Flag(FlagError::UnexpectedArgument(a)) if a == "false"),
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
    assert!(text.contains(
        "  -lookupd-tcp-address value\n    \tlookupd TCP address (may be given multiple times)\n"
    ));
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

/// Go's integer syntax (`nsq_daemon::goparse::go_parse_int`, tested
/// there) reaches integer flags.
#[test]
fn go_integers() {
    assert_eq!(parse_ok(&["--max-rdy-count=0x10"]).max_rdy_count, 16);
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
    let o = parse_with_file("tlsmin", "tls_min_version = \"\"\n", &[]).map(|o| o.tls_min_version);
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
