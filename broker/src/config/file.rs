//! The `--config` TOML file: loading it, coercing its values the way
//! `mreiferson/go-options` does, and merging it with the command line.

use std::path::{Path, PathBuf};

use nsq_daemon::flags::{self, FlagError, Source, PARSE_ERROR, RANGE_ERROR};
use nsq_daemon::goparse::{go_parse_bool, go_quote};

use super::cmdline::CommandLine;
use super::flags::{parse_tls_min_version, parse_tls_required, Slot, FLAGS};
use super::{ConfigError, Options, TlsRequired};

pub(super) fn load_config_file(path: &Path) -> Result<(PathBuf, toml::Table), ConfigError> {
    let table = flags::read_config_file(path).map_err(|reason| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok((path.to_path_buf(), table))
}

/// The one place precedence is decided (`nsq_daemon::flags::merge`): a flag
/// given on the command line wins, then the config file key, then the
/// default. Repeatable flags replace the file's list rather than extend it,
/// as in nsqd. Unknown file keys are ignored, as in nsqd.
pub(super) fn resolve(
    defaults: Options,
    cli: &CommandLine,
    file: Option<&(PathBuf, toml::Table)>,
) -> Result<Options, ConfigError> {
    let mut opts = defaults;
    flags::merge(FLAGS, &cli.values, |spec, source| match source {
        Source::File => {
            let Some(((path, table), key)) = file.zip(spec.cfg) else {
                return Ok(());
            };
            let Some(value) = table.get(key) else {
                return Ok(());
            };
            spec.slot
                .set_toml(&mut opts, value)
                .map_err(|reason| ConfigError::ConfigValue {
                    path: path.clone(),
                    key: key.to_string(),
                    value: value.to_string(),
                    reason,
                })
        }
        // Already checked by CommandLine::parse; kept as an error, not a panic.
        Source::CommandLine(value) => spec.slot.set_flag(&mut opts, value).map_err(|reason| {
            ConfigError::Flag(FlagError::InvalidValue {
                flag: spec.name.to_string(),
                value: value.to_string(),
                reason,
            })
        }),
    })?;
    opts.validate()?;
    Ok(opts)
}

impl Slot {
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
            (Slot::Duration(m, _), _) => *m(o) = flags::toml_duration(v, "60s")?,
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
