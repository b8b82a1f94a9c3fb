//! nsqlookupd configuration: the `Options` struct, Go-style flags and the
//! `--config` TOML file, merged in one place.
//!
//! Flag names, defaults and config keys are nsqlookupd v1.3.0's
//! (`apps/nsqlookupd/main.go`, `nsqlookupd/options.go`). Syntax follows Go's
//! `flag` package (`-f=v`, `--f=v`, `-f v`, `--f v`, bare `-f` for booleans),
//! and precedence follows `go-options`: a flag given on the command line wins
//! over the config file, which wins over the default.
//!
//! Where we differ from nsqlookupd (each is a mistake nsqlookupd accepts
//! silently): positional arguments are rejected instead of ending flag
//! parsing, and negative durations are rejected.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The version we report (`/info`, IDENTIFY, `--version`): the nsqlookupd
/// release we are a drop-in for. nsqd and nsqadmin parse it as semver.
pub const VERSION: &str = "1.3.0";

/// Log verbosity (`--log-level`), numbered as nsqlookupd's `lg.LogLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug`
    Debug = 1,
    /// `info` (default)
    Info = 2,
    /// `warn`
    Warn = 3,
    /// `error`
    Error = 4,
    /// `fatal`
    Fatal = 5,
}

impl LogLevel {
    /// The label printed before a log line (`lg.LogLevel.String`).
    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }

    /// `lg.ParseLogLevel`: case-insensitive, with Go's error text.
    pub fn parse(s: &str) -> Result<LogLevel, String> {
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

/// Everything nsqlookupd can be told at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--log-level` (default `info`).
    pub log_level: LogLevel,
    /// `--log-prefix` (default `"[nsqlookupd] "`).
    pub log_prefix: String,
    /// `--tcp-address`: where nsqd peers connect (default `0.0.0.0:4160`).
    pub tcp_address: String,
    /// `--http-address`: the HTTP API (default `0.0.0.0:4161`).
    pub http_address: String,
    /// `--broadcast-address`: this node's address, sent back in IDENTIFY
    /// (default: the OS host name).
    pub broadcast_address: String,
    /// `--inactive-producer-timeout`: a producer not heard from (IDENTIFY or
    /// PING) for longer is left out of `/lookup` and `/nodes` (default 300s).
    pub inactive_producer_timeout: Duration,
    /// `--tombstone-lifetime`: how long a tombstoned producer stays hidden
    /// from `/lookup` (default 45s).
    pub tombstone_lifetime: Duration,
}

impl Options {
    /// nsqlookupd's `NewOptions` for a host called `hostname`.
    pub fn defaults(hostname: &str) -> Options {
        Options {
            log_level: LogLevel::Info,
            log_prefix: "[nsqlookupd] ".to_string(),
            tcp_address: "0.0.0.0:4160".to_string(),
            http_address: "0.0.0.0:4161".to_string(),
            broadcast_address: hostname.to_string(),
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
        }
    }

    /// The `--version` line.
    pub fn version_string() -> String {
        format!("nsqlookupd v{VERSION} (built w/rust)")
    }

    /// Parse the command line (without the program name) and the config
    /// file it names, for a host called `hostname`.
    pub fn parse_args<I>(args: I, hostname: &str) -> Result<Parsed, ConfigError>
    where
        I: IntoIterator<Item = String>,
    {
        let defaults = Options::defaults(hostname);
        let flags = match parse_flags(args)? {
            Some(flags) => flags,
            None => return Ok(Parsed::Help(usage(&defaults))),
        };
        // As nsqlookupd: --version is answered before the config file is read.
        let version = flags
            .iter()
            .rev()
            .find(|(flag, _)| *flag == Flag::Version)
            .is_some_and(|(_, value)| go_parse_bool(value) == Some(true));
        if version {
            return Ok(Parsed::Version);
        }
        let config_path = flags
            .iter()
            .rev()
            .find(|(flag, _)| *flag == Flag::Config)
            .map(|(_, value)| value.clone())
            .filter(|path| !path.is_empty());
        let mut opts = defaults;
        if let Some(path) = config_path {
            apply_config_file(&mut opts, &flags, PathBuf::from(path))?;
        }
        for (flag, value) in &flags {
            // Values were checked while parsing; a failure here is a bug,
            // reported as an error rather than a panic.
            flag.set(&mut opts, value)
                .map_err(|reason| ConfigError::InvalidValue {
                    flag: flag.name().to_string(),
                    value: value.clone(),
                    reason,
                })?;
        }
        Ok(Parsed::Run(opts))
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// `--version`: print [`Options::version_string`] and exit 0.
    Version,
    /// `-h`/`--help`: print this usage text and exit 0.
    Help(String),
}

/// Why the configuration was rejected, worded as Go's `flag` package and
/// nsqlookupd's `main.go` word it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `-foo` where no flag `foo` exists.
    #[error("flag provided but not defined: -{0}")]
    UndefinedFlag(String),
    /// `---x`, `-=x` and similar.
    #[error("bad flag syntax: {0}")]
    BadFlagSyntax(String),
    /// A non-boolean flag at the end of the command line.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A flag value that does not parse.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// Flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A boolean flag's `=value` that does not parse.
    #[error("invalid boolean value {value:?} for -{flag}: parse error")]
    InvalidBool {
        /// Flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
    },
    /// A positional argument. Go stops parsing there and nsqlookupd ignores
    /// the rest; we reject it so no flag is silently dropped.
    #[error("unexpected argument {0:?}: nsqlookupd takes only flags (a boolean flag's value must be written -flag=value)")]
    UnexpectedArgument(String),
    /// The `--config` file cannot be read or is not TOML.
    #[error("failed to load config file {path} - {reason}")]
    ConfigFile {
        /// The `--config` path.
        path: String,
        /// The I/O or TOML error.
        reason: String,
    },
    /// `log_level` in the config file is not a level.
    #[error("failed parsing log_level {0}")]
    ConfigLogLevel(String),
    /// A config file key with a value of the wrong type or range.
    #[error("failed to load config file {path} - invalid value {value} for key {key:?}: {reason}")]
    ConfigValue {
        /// The `--config` path.
        path: String,
        /// The key, e.g. `tombstone_lifetime`.
        key: String,
        /// The value as TOML.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl ConfigError {
    /// Go exits 2 for command-line errors (`flag.ExitOnError`) and 1 for
    /// config file errors (`logFatal`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::ConfigFile { .. }
            | ConfigError::ConfigLogLevel(_)
            | ConfigError::ConfigValue { .. } => 1,
            _ => 2,
        }
    }

    /// Whether Go would print the usage text after this error.
    pub fn is_usage_error(&self) -> bool {
        self.exit_code() == 2
    }
}

/// One nsqlookupd flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Config,
    Version,
    LogLevel,
    LogPrefix,
    Verbose,
    TcpAddress,
    HttpAddress,
    BroadcastAddress,
    InactiveProducerTimeout,
    TombstoneLifetime,
}

const FLAGS: [Flag; 10] = [
    Flag::BroadcastAddress,
    Flag::Config,
    Flag::HttpAddress,
    Flag::InactiveProducerTimeout,
    Flag::LogLevel,
    Flag::LogPrefix,
    Flag::TcpAddress,
    Flag::TombstoneLifetime,
    Flag::Verbose,
    Flag::Version,
];

impl Flag {
    fn name(self) -> &'static str {
        match self {
            Flag::Config => "config",
            Flag::Version => "version",
            Flag::LogLevel => "log-level",
            Flag::LogPrefix => "log-prefix",
            Flag::Verbose => "verbose",
            Flag::TcpAddress => "tcp-address",
            Flag::HttpAddress => "http-address",
            Flag::BroadcastAddress => "broadcast-address",
            Flag::InactiveProducerTimeout => "inactive-producer-timeout",
            Flag::TombstoneLifetime => "tombstone-lifetime",
        }
    }

    fn find(name: &str) -> Option<Flag> {
        FLAGS.into_iter().find(|flag| flag.name() == name)
    }

    fn is_bool(self) -> bool {
        matches!(self, Flag::Version | Flag::Verbose)
    }

    /// The config file key (go-options: the flag name with `_` for `-`).
    /// `config`, `version` and `verbose` are not options.
    fn config_key(self) -> Option<&'static str> {
        match self {
            Flag::LogLevel => Some("log_level"),
            Flag::LogPrefix => Some("log_prefix"),
            Flag::TcpAddress => Some("tcp_address"),
            Flag::HttpAddress => Some("http_address"),
            Flag::BroadcastAddress => Some("broadcast_address"),
            Flag::InactiveProducerTimeout => Some("inactive_producer_timeout"),
            Flag::TombstoneLifetime => Some("tombstone_lifetime"),
            Flag::Config | Flag::Version | Flag::Verbose => None,
        }
    }

    /// Apply a command-line value; the error is the reason part of Go's message.
    fn set(self, opts: &mut Options, value: &str) -> Result<(), String> {
        match self {
            Flag::Config => {}
            Flag::Version | Flag::Verbose => {
                go_parse_bool(value).ok_or("parse error")?;
            }
            Flag::LogLevel => opts.log_level = LogLevel::parse(value)?,
            Flag::LogPrefix => opts.log_prefix = value.to_string(),
            Flag::TcpAddress => opts.tcp_address = value.to_string(),
            Flag::HttpAddress => opts.http_address = value.to_string(),
            Flag::BroadcastAddress => opts.broadcast_address = value.to_string(),
            // Go's flag package reports every bad duration as "parse error".
            Flag::InactiveProducerTimeout => {
                opts.inactive_producer_timeout = flag_duration(value)?;
            }
            Flag::TombstoneLifetime => opts.tombstone_lifetime = flag_duration(value)?,
        }
        Ok(())
    }

    /// Apply a config file value, coercing types as go-options does
    /// (duration strings parse, integer durations are milliseconds).
    fn set_toml(self, opts: &mut Options, value: &toml::Value) -> Result<(), String> {
        use toml::Value as T;
        let duration = |value: &T| match value {
            T::String(s) => parse_go_duration(s),
            T::Integer(ms) => u64::try_from(*ms)
                .map(Duration::from_millis)
                .map_err(|_| "negative durations are not supported".to_string()),
            _ => Err("expected a duration string such as \"45s\" or integer milliseconds".into()),
        };
        let string = |value: &T| match value {
            T::String(s) => Ok(s.clone()),
            _ => Err("expected a string".to_string()),
        };
        match self {
            Flag::LogLevel => opts.log_level = LogLevel::parse(&string(value)?)?,
            Flag::LogPrefix => opts.log_prefix = string(value)?,
            Flag::TcpAddress => opts.tcp_address = string(value)?,
            Flag::HttpAddress => opts.http_address = string(value)?,
            Flag::BroadcastAddress => opts.broadcast_address = string(value)?,
            Flag::InactiveProducerTimeout => opts.inactive_producer_timeout = duration(value)?,
            Flag::TombstoneLifetime => opts.tombstone_lifetime = duration(value)?,
            Flag::Config | Flag::Version | Flag::Verbose => {}
        }
        Ok(())
    }
}

/// Go's `time.ParseDuration` with Go's error text (shared with nsqd).
fn parse_go_duration(value: &str) -> Result<Duration, String> {
    nsq_proto::goparse::parse_go_duration(value).map_err(|e| e.message(value))
}

fn flag_duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|e| {
        if e.starts_with("negative") {
            e
        } else {
            "parse error".to_string()
        }
    })
}

/// Go's `FlagSet.Parse`: values are checked as they are met, so the first
/// bad argument is the one reported. `Ok(None)` means `-h`/`-help`.
fn parse_flags<I>(args: I) -> Result<Option<Vec<(Flag, String)>>, ConfigError>
where
    I: IntoIterator<Item = String>,
{
    let mut scratch = Options::defaults("");
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg.len() < 2 || !arg.starts_with('-') {
            return Err(ConfigError::UnexpectedArgument(arg));
        }
        if arg == "--" {
            return match args.next() {
                Some(rest) => Err(ConfigError::UnexpectedArgument(rest)),
                None => Ok(Some(out)),
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
        let Some(flag) = Flag::find(name) else {
            if name == "help" || name == "h" {
                return Ok(None);
            }
            return Err(ConfigError::UndefinedFlag(name.to_string()));
        };
        let value = if flag.is_bool() {
            let value = inline.unwrap_or_else(|| "true".to_string());
            if go_parse_bool(&value).is_none() {
                return Err(ConfigError::InvalidBool {
                    flag: name.to_string(),
                    value,
                });
            }
            value
        } else {
            let value = inline
                .or_else(|| args.next())
                .ok_or_else(|| ConfigError::MissingValue(name.to_string()))?;
            flag.set(&mut scratch, &value)
                .map_err(|reason| ConfigError::InvalidValue {
                    flag: name.to_string(),
                    value: value.clone(),
                    reason,
                })?;
            value
        };
        out.push((flag, value));
    }
    Ok(Some(out))
}

/// Apply the config file's keys for every option not given as a flag.
/// Unknown keys are ignored, as in nsqlookupd.
fn apply_config_file(
    opts: &mut Options,
    flags: &[(Flag, String)],
    path: PathBuf,
) -> Result<(), ConfigError> {
    let shown = path.display().to_string();
    let fail = |reason: String| ConfigError::ConfigFile {
        path: shown.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
    let table = toml::from_str::<toml::Table>(&text).map_err(|e| fail(e.to_string()))?;
    // nsqlookupd checks log_level first, with its own message (main.go Validate).
    if let Some(level) = table.get("log_level") {
        let text = match level {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if LogLevel::parse(&text).is_err() {
            return Err(ConfigError::ConfigLogLevel(text));
        }
    }
    for flag in FLAGS {
        let Some(key) = flag.config_key() else {
            continue;
        };
        if flags.iter().any(|(given, _)| *given == flag) {
            continue;
        }
        if let Some(value) = table.get(key) {
            flag.set_toml(opts, value)
                .map_err(|reason| ConfigError::ConfigValue {
                    path: shown.clone(),
                    key: key.to_string(),
                    value: value.to_string(),
                    reason,
                })?;
        }
    }
    Ok(())
}

/// Go's `flag.PrintDefaults` layout for nsqlookupd's flags.
pub fn usage(defaults: &Options) -> String {
    let mut out = String::from("Usage of nsqlookupd:\n");
    for flag in FLAGS {
        let (kind, help, default) = match flag {
            Flag::BroadcastAddress => (
                " string",
                "address of this lookupd node, (default to the OS hostname)",
                Some(format!("{:?}", defaults.broadcast_address)),
            ),
            Flag::Config => (" string", "path to config file", None),
            Flag::HttpAddress => (
                " string",
                "<addr>:<port> to listen on for HTTP clients",
                Some(format!("{:?}", defaults.http_address)),
            ),
            Flag::InactiveProducerTimeout => (
                " duration",
                "duration of time a producer will remain in the active list since its last ping",
                Some("5m0s".to_string()),
            ),
            Flag::LogLevel => (
                " value",
                "set log verbosity: debug, info, warn, error, or fatal",
                Some("INFO".to_string()),
            ),
            Flag::LogPrefix => (
                " string",
                "log message prefix",
                Some(format!("{:?}", defaults.log_prefix)),
            ),
            Flag::TcpAddress => (
                " string",
                "<addr>:<port> to listen on for TCP clients",
                Some(format!("{:?}", defaults.tcp_address)),
            ),
            Flag::TombstoneLifetime => (
                " duration",
                "duration of time a producer will remain tombstoned if registration remains",
                Some("45s".to_string()),
            ),
            Flag::Verbose => ("", "[deprecated] has no effect, use --log-level", None),
            Flag::Version => ("", "print version string", None),
        };
        let _ = write!(out, "  -{}{kind}\n    \t{help}", flag.name());
        if let Some(default) = default {
            let _ = write!(out, " (default {default})");
        }
        out.push('\n');
    }
    out
}

/// `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Result<Options, ConfigError> {
        match Options::parse_args(args(list), "host1")? {
            Parsed::Run(opts) => Ok(opts),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_nsqlookupd() {
        let opts = run(&[]).unwrap();
        assert_eq!(opts.tcp_address, "0.0.0.0:4160");
        assert_eq!(opts.http_address, "0.0.0.0:4161");
        assert_eq!(opts.broadcast_address, "host1");
        assert_eq!(opts.inactive_producer_timeout, Duration::from_secs(300));
        assert_eq!(opts.tombstone_lifetime, Duration::from_secs(45));
        assert_eq!(opts.log_prefix, "[nsqlookupd] ");
        assert_eq!(opts.log_level, LogLevel::Info);
    }

    #[test]
    fn go_flag_forms() {
        let opts = run(&[
            "-tcp-address=127.0.0.1:1",
            "--http-address=127.0.0.1:2",
            "-broadcast-address",
            "b",
            "--tombstone-lifetime",
            "1m30s",
            "-inactive-producer-timeout=250ms",
            "--log-level=WARN",
            "-verbose",
        ])
        .unwrap();
        assert_eq!(opts.tcp_address, "127.0.0.1:1");
        assert_eq!(opts.http_address, "127.0.0.1:2");
        assert_eq!(opts.broadcast_address, "b");
        assert_eq!(opts.tombstone_lifetime, Duration::from_secs(90));
        assert_eq!(opts.inactive_producer_timeout, Duration::from_millis(250));
        assert_eq!(opts.log_level, LogLevel::Warn);
    }

    #[test]
    fn version_help_and_errors() {
        let parse = |list: &[&str]| Options::parse_args(args(list), "h");
        assert_eq!(parse(&["--version"]), Ok(Parsed::Version));
        assert_eq!(
            run(&["-version=false"]).map(|o| o.tcp_address),
            Ok("0.0.0.0:4160".to_string())
        );
        assert!(
            matches!(parse(&["-h"]), Ok(Parsed::Help(text)) if text.contains("-tombstone-lifetime duration"))
        );
        let err = |list: &[&str]| parse(list).unwrap_err().to_string();
        assert_eq!(err(&["-nope"]), "flag provided but not defined: -nope");
        assert_eq!(err(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(
            err(&["-tcp-address"]),
            "flag needs an argument: -tcp-address"
        );
        assert_eq!(
            err(&["-tombstone-lifetime=x"]),
            "invalid value \"x\" for flag -tombstone-lifetime: parse error"
        );
        assert_eq!(
            err(&["-version=maybe"]),
            "invalid boolean value \"maybe\" for -version: parse error"
        );
        assert_eq!(
            err(&["-log-level=loud"]),
            "invalid value \"loud\" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)"
        );
        assert!(err(&["stray"]).starts_with("unexpected argument \"stray\""));
        assert_eq!(parse(&["-nope"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn config_file_and_precedence() {
        let dir = std::env::temp_dir().join(format!("lookupd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.toml");
        std::fs::write(
            &path,
            "tcp_address = \"127.0.0.1:9\"\nhttp_address = \"127.0.0.1:8\"\n\
             tombstone_lifetime = \"10s\"\ninactive_producer_timeout = 1500\n\
             log_level = \"debug\"\nunknown_key = 1\n",
        )
        .unwrap();
        let config = format!("--config={}", path.display());
        let opts = run(&[&config, "--http-address=127.0.0.1:7"]).unwrap();
        assert_eq!(opts.tcp_address, "127.0.0.1:9");
        assert_eq!(opts.http_address, "127.0.0.1:7");
        assert_eq!(opts.tombstone_lifetime, Duration::from_secs(10));
        assert_eq!(opts.inactive_producer_timeout, Duration::from_millis(1500));
        assert_eq!(opts.log_level, LogLevel::Debug);

        std::fs::write(&path, "log_level = \"loud\"\n").unwrap();
        let err = run(&[&config]).unwrap_err();
        assert_eq!(err.to_string(), "failed parsing log_level loud");
        assert_eq!(err.exit_code(), 1);
        std::fs::write(&path, "tombstone_lifetime = true\n").unwrap();
        assert!(matches!(
            run(&[&config]),
            Err(ConfigError::ConfigValue { .. })
        ));
        std::fs::write(&path, "not toml [").unwrap();
        assert!(matches!(
            run(&[&config]),
            Err(ConfigError::ConfigFile { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            run(&["--config=/nonexistent/lookupd.toml"]),
            Err(ConfigError::ConfigFile { .. })
        ));
    }
}
