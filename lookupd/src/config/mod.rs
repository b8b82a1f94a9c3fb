//! nsqlookupd configuration: the `Options` struct, its flag table, and the
//! `--config` TOML file, merged in one place.
//!
//! Flag names, defaults and config keys are nsqlookupd v1.3.0's
//! (`apps/nsqlookupd/main.go`, `nsqlookupd/options.go`). Syntax follows Go's
//! `flag` package (`-f=v`, `--f=v`, `-f v`, `--f v`, bare `-f` for booleans),
//! and precedence follows `go-options`: a flag given on the command line wins
//! over the config file, which wins over the default. The syntax, the
//! precedence and the `--help` layout are nsqd's too: `nsq_daemon::flags`.
//!
//! Where we differ from nsqlookupd (each is a mistake nsqlookupd accepts
//! silently): positional arguments are rejected instead of ending flag
//! parsing, and negative durations are rejected.

use std::path::Path;
use std::time::Duration;

use nsq_daemon::flags::{self, Flag as _, FlagError, HelpEntry, Source};
use nsq_daemon::goparse::go_parse_bool;
pub use nsq_daemon::log::LogLevel;

/// The version we report (`/info`, IDENTIFY, `--version`): the nsqlookupd
/// release we are a drop-in for. nsqd and nsqadmin parse it as semver.
pub const VERSION: &str = "1.3.0";

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
        // Values are checked as they are met, against a scratch copy.
        let mut scratch = Options::defaults("");
        let given = match flags::parse(args, Flag::find, |flag, value| {
            flag.set(&mut scratch, value)
        }) {
            Ok(given) => given,
            Err(FlagError::Help) => return Ok(Parsed::Help(usage(&defaults))),
            Err(e) => return Err(ConfigError::Flag(e)),
        };
        // As nsqlookupd: --version is answered before the config file is read.
        if flags::last_value(&given, Flag::Version).and_then(go_parse_bool) == Some(true) {
            return Ok(Parsed::Version);
        }
        let file = match flags::last_value(&given, Flag::Config).filter(|path| !path.is_empty()) {
            Some(path) => Some(load_config_file(Path::new(path))?),
            None => None,
        };
        let mut opts = defaults;
        flags::merge(FLAGS, &given, |flag, source| match source {
            Source::File => {
                let Some((path, table)) = &file else {
                    return Ok(());
                };
                let Some((key, value)) = flag
                    .config_key()
                    .and_then(|key| Some((key, table.get(key)?)))
                else {
                    return Ok(());
                };
                flag.set_toml(&mut opts, value)
                    .map_err(|reason| ConfigError::ConfigValue {
                        path: path.clone(),
                        key: key.to_string(),
                        value: value.to_string(),
                        reason,
                    })
            }
            // Values were checked while parsing; a failure here is a bug,
            // reported as an error rather than a panic.
            Source::CommandLine(value) => flag.set(&mut opts, value).map_err(|reason| {
                ConfigError::Flag(FlagError::InvalidValue {
                    flag: flag.name().to_string(),
                    value: value.to_string(),
                    reason,
                })
            }),
        })?;
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
    /// The command line (never [`FlagError::Help`], which is
    /// [`Parsed::Help`]).
    #[error("{}", .0.message("nsqlookupd", debug_quote))]
    Flag(FlagError),
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

/// How nsqlookupd's command-line errors have always quoted values: Rust's
/// `{:?}`, the same as Go's `%q` for printable text; kept byte for byte.
fn debug_quote(value: &str) -> String {
    format!("{value:?}")
}

impl ConfigError {
    /// Go exits 2 for command-line errors (`flag.ExitOnError`) and 1 for
    /// config file errors (`logFatal`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::ConfigFile { .. }
            | ConfigError::ConfigLogLevel(_)
            | ConfigError::ConfigValue { .. } => 1,
            ConfigError::Flag(_) => 2,
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

/// Every flag, sorted by name as `--help` lists them.
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

impl flags::Flag for Flag {
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

    fn is_bool(self) -> bool {
        matches!(self, Flag::Version | Flag::Verbose)
    }
}

impl Flag {
    fn find(name: &str) -> Option<Flag> {
        FLAGS.into_iter().find(|flag| flag.name() == name)
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
                go_parse_bool(value).ok_or(flags::PARSE_ERROR)?;
            }
            Flag::LogLevel => opts.log_level = value.parse()?,
            Flag::LogPrefix => opts.log_prefix = value.to_string(),
            Flag::TcpAddress => opts.tcp_address = value.to_string(),
            Flag::HttpAddress => opts.http_address = value.to_string(),
            Flag::BroadcastAddress => opts.broadcast_address = value.to_string(),
            Flag::InactiveProducerTimeout => {
                opts.inactive_producer_timeout = flags::flag_duration(value)?;
            }
            Flag::TombstoneLifetime => opts.tombstone_lifetime = flags::flag_duration(value)?,
        }
        Ok(())
    }

    /// Apply a config file value, coercing types as go-options does
    /// (duration strings parse, integer durations are milliseconds).
    fn set_toml(self, opts: &mut Options, value: &toml::Value) -> Result<(), String> {
        let duration = |value| flags::toml_duration(value, "45s");
        let string = |value: &toml::Value| match value {
            toml::Value::String(s) => Ok(s.clone()),
            _ => Err("expected a string".to_string()),
        };
        match self {
            Flag::LogLevel => opts.log_level = string(value)?.parse()?,
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

    /// The `--help` entry: type word, help text (nsqlookupd's), default.
    fn help(self, defaults: &Options) -> HelpEntry<'static> {
        let (type_name, usage, default) = match self {
            Flag::BroadcastAddress => (
                "string",
                "address of this lookupd node, (default to the OS hostname)",
                Some(format!("{:?}", defaults.broadcast_address)),
            ),
            Flag::Config => ("string", "path to config file", None),
            Flag::HttpAddress => (
                "string",
                "<addr>:<port> to listen on for HTTP clients",
                Some(format!("{:?}", defaults.http_address)),
            ),
            Flag::InactiveProducerTimeout => (
                "duration",
                "duration of time a producer will remain in the active list since its last ping",
                Some("5m0s".to_string()),
            ),
            Flag::LogLevel => (
                "value",
                "set log verbosity: debug, info, warn, error, or fatal",
                Some("INFO".to_string()),
            ),
            Flag::LogPrefix => (
                "string",
                "log message prefix",
                Some(format!("{:?}", defaults.log_prefix)),
            ),
            Flag::TcpAddress => (
                "string",
                "<addr>:<port> to listen on for TCP clients",
                Some(format!("{:?}", defaults.tcp_address)),
            ),
            Flag::TombstoneLifetime => (
                "duration",
                "duration of time a producer will remain tombstoned if registration remains",
                Some("45s".to_string()),
            ),
            Flag::Verbose => ("", "[deprecated] has no effect, use --log-level", None),
            Flag::Version => ("", "print version string", None),
        };
        HelpEntry {
            name: self.name(),
            type_name,
            usage,
            default,
        }
    }
}

/// Read the `--config` file. nsqlookupd checks `log_level` first, with its
/// own message (main.go Validate); unknown keys are ignored.
fn load_config_file(path: &Path) -> Result<(String, toml::Table), ConfigError> {
    let shown = path.display().to_string();
    let table = flags::read_config_file(path).map_err(|reason| ConfigError::ConfigFile {
        path: shown.clone(),
        reason,
    })?;
    if let Some(level) = table.get("log_level") {
        let text = match level {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.parse::<LogLevel>().is_err() {
            return Err(ConfigError::ConfigLogLevel(text));
        }
    }
    Ok((shown, table))
}

/// Go's `flag.PrintDefaults` layout for nsqlookupd's flags.
pub fn usage(defaults: &Options) -> String {
    flags::usage_text("nsqlookupd", FLAGS.map(|flag| flag.help(defaults)))
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
        // nsqlookupd's own wording of each command-line error (the syntax
        // itself is tested in nsq_daemon::flags); every one exits 2.
        let cases: [(&[&str], &str); 8] = [
            (&["-nope"], "flag provided but not defined: -nope"),
            (&["---x"], "bad flag syntax: ---x"),
            (&["-tcp-address"], "flag needs an argument: -tcp-address"),
            (&["-tombstone-lifetime=x"], "invalid value \"x\" for flag -tombstone-lifetime: parse error"),
            (&["-version=maybe"], "invalid boolean value \"maybe\" for -version: parse error"),
            (&["-log-level=loud"], "invalid value \"loud\" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)"),
            (&["stray"], "unexpected argument \"stray\": nsqlookupd takes only flags (a boolean flag's value must be written -flag=value)"),
            // Values are quoted as Rust's {:?} does, as always.
            (&["\u{1}"], "unexpected argument \"\\u{1}\": nsqlookupd takes only flags (a boolean flag's value must be written -flag=value)"),
        ];
        for (list, want) in cases {
            let e = parse(list).unwrap_err();
            assert_eq!(
                (e.to_string().as_str(), e.exit_code()),
                (want, 2),
                "{list:?}"
            );
        }
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
