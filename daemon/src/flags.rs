//! The flag-table machinery both daemons share: Go's `flag` package syntax
//! and `--help` layout, and `mreiferson/go-options`' precedence for the
//! `--config` TOML file (a flag given on the command line wins over the file,
//! which wins over the default).
//!
//! Each daemon keeps its own table of flags (a type implementing [`Flag`])
//! and its own `Options`; this module only knows flag names, which flags are
//! boolean, and Go's rules:
//!
//! * [`parse`]: `-flag=value`, `--flag=value`, `-flag value`,
//!   `--flag value`, a bare `-flag` for booleans, `--` to stop, `-h`/`-help`;
//!   values are checked as they are met, so the first bad argument is the
//!   one reported (Go's `FlagSet.Parse`). Positional arguments are refused
//!   (Go stops parsing there and the daemons ignore the rest: a flag would
//!   be dropped silently).
//! * [`merge`]: apply the config file ([`read_config_file`]), then the
//!   command line.
//! * [`usage_text`]: Go's `flag.PrintDefaults` layout.
//! * [`flag_int`], [`flag_duration`], [`toml_duration`]: value rules with
//!   Go's (and go-options') error texts.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::goparse::{go_parse_int, parse_go_duration, DurationError, IntError};

/// An entry of a daemon's flag table.
pub trait Flag: Copy {
    /// The name, without dashes.
    fn name(self) -> &'static str;
    /// Go's `IsBoolFlag`: `-flag` alone means true, and the next argument
    /// is never taken as its value.
    fn is_bool(self) -> bool;
}

/// The reason Go's `flag` package reports for a value that does not parse.
pub const PARSE_ERROR: &str = "parse error";
/// The reason Go's `flag` package reports for an integer out of range.
pub const RANGE_ERROR: &str = "value out of range";

/// Why a command line was rejected (exit status 2 in Go), or a request for
/// `--help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `-help` (any dash and value form): print the usage, exit 0.
    Help,
    /// `---x`, `-=x` and similar.
    BadSyntax(String),
    /// `-foo` where no flag `foo` exists (name without dashes).
    Undefined(String),
    /// A non-boolean flag last on the command line, with no value.
    MissingValue(String),
    /// A non-boolean flag's value did not parse.
    InvalidValue {
        /// Flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A boolean flag's `=value` did not parse.
    InvalidBool {
        /// Flag name without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A positional argument.
    UnexpectedArgument(String),
}

impl FlagError {
    /// The message, worded as Go's `flag` package words it (ours for
    /// [`FlagError::UnexpectedArgument`], naming `program`), with values
    /// quoted by `quote`.
    pub fn message(&self, program: &str, quote: fn(&str) -> String) -> String {
        match self {
            FlagError::Help => "flag: help requested".to_string(),
            FlagError::BadSyntax(arg) => format!("bad flag syntax: {arg}"),
            FlagError::Undefined(name) => format!("flag provided but not defined: -{name}"),
            FlagError::MissingValue(name) => format!("flag needs an argument: -{name}"),
            FlagError::InvalidValue {
                flag,
                value,
                reason,
            } => format!("invalid value {} for flag -{flag}: {reason}", quote(value)),
            FlagError::InvalidBool {
                flag,
                value,
                reason,
            } => format!("invalid boolean value {} for -{flag}: {reason}", quote(value)),
            FlagError::UnexpectedArgument(arg) => format!(
                "unexpected argument {}: {program} takes only flags (a boolean flag's value must be written -flag=value)",
                quote(arg)
            ),
        }
    }
}

/// Go's `FlagSet.Parse` over `args` (without the program name): the flags
/// given, in order, each with its value (`"true"` for a bare boolean).
/// `find` looks a name up in the daemon's table; `check` parses a value
/// (the error is the reason part of Go's message).
pub fn parse<F: Flag>(
    args: impl IntoIterator<Item = String>,
    find: impl Fn(&str) -> Option<F>,
    mut check: impl FnMut(F, &str) -> Result<(), String>,
) -> Result<Vec<(F, String)>, FlagError> {
    let mut given = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg.len() < 2 || !arg.starts_with('-') {
            return Err(FlagError::UnexpectedArgument(arg));
        }
        if arg == "--" {
            return match args.next() {
                Some(rest) => Err(FlagError::UnexpectedArgument(rest)),
                None => Ok(given),
            };
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::BadSyntax(arg));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let Some(flag) = find(name) else {
            if name == "help" || name == "h" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Undefined(name.to_string()));
        };
        let value = if flag.is_bool() {
            inline.unwrap_or_else(|| "true".to_string())
        } else {
            inline
                .or_else(|| args.next())
                .ok_or_else(|| FlagError::MissingValue(name.to_string()))?
        };
        if let Err(reason) = check(flag, &value) {
            let flag_name = name.to_string();
            return Err(if flag.is_bool() {
                FlagError::InvalidBool {
                    flag: flag_name,
                    value,
                    reason,
                }
            } else {
                FlagError::InvalidValue {
                    flag: flag_name,
                    value,
                    reason,
                }
            });
        }
        given.push((flag, value));
    }
    Ok(given)
}

/// Whether `flag` is among the flags [`parse`] returned.
pub fn was_given<F: Flag>(given: &[(F, String)], flag: F) -> bool {
    given.iter().any(|(f, _)| f.name() == flag.name())
}

/// The value the command line gives `flag` last, if any.
pub fn last_value<F: Flag>(given: &[(F, String)], flag: F) -> Option<&str> {
    given
        .iter()
        .rev()
        .find(|(f, _)| f.name() == flag.name())
        .map(|(_, value)| value.as_str())
}

/// Where [`merge`] takes a flag's value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The config file's key for the flag, if the file has one.
    File,
    /// The command line.
    CommandLine(&'a str),
}

/// go-options' precedence, decided in this one place: `apply` is called
/// with [`Source::File`] for every flag of `table` not given on the command
/// line, then with [`Source::CommandLine`] for every flag given, in order
/// (so a repeatable flag replaces the file's list).
pub fn merge<F: Flag, E>(
    table: impl IntoIterator<Item = F>,
    given: &[(F, String)],
    mut apply: impl FnMut(F, Source<'_>) -> Result<(), E>,
) -> Result<(), E> {
    for flag in table {
        if !was_given(given, flag) {
            apply(flag, Source::File)?;
        }
    }
    for (flag, value) in given {
        apply(*flag, Source::CommandLine(value))?;
    }
    Ok(())
}

/// Read a `--config` file as a TOML table; the error is the I/O or TOML
/// error's text.
pub fn read_config_file(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    toml::from_str::<toml::Table>(&text).map_err(|e| e.to_string())
}

/// One flag in the `--help` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpEntry<'a> {
    /// Name without dashes.
    pub name: &'a str,
    /// The type word after the name (`string`, `int`, `duration`,
    /// `value`), empty for booleans.
    pub type_name: &'a str,
    /// The help text.
    pub usage: &'a str,
    /// The default as Go shows it, `None` where Go omits it (zero values).
    pub default: Option<String>,
}

/// Go's `flag.PrintDefaults` after `Usage of <program>:`: every flag sorted
/// by name, as `  -name type\n    \tusage (default X)\n`.
pub fn usage_text<'a>(program: &str, entries: impl IntoIterator<Item = HelpEntry<'a>>) -> String {
    let mut entries: Vec<HelpEntry<'a>> = entries.into_iter().collect();
    entries.sort_by_key(|entry| entry.name);
    let mut out = format!("Usage of {program}:\n");
    for entry in entries {
        out.push_str("  -");
        out.push_str(entry.name);
        if !entry.type_name.is_empty() {
            out.push(' ');
            out.push_str(entry.type_name);
        }
        out.push_str("\n    \t");
        out.push_str(entry.usage);
        if let Some(default) = entry.default {
            let _ = write!(out, " (default {default})");
        }
        out.push('\n');
    }
    out
}

/// An integer flag's value (`strconv.ParseInt(s, 0, 64)`), with Go's
/// reasons, converted to the field's type.
pub fn flag_int<T: TryFrom<i64>>(value: &str) -> Result<T, String> {
    let n = go_parse_int(value).map_err(|e| match e {
        IntError::Syntax => PARSE_ERROR,
        IntError::Range => RANGE_ERROR,
    })?;
    T::try_from(n).map_err(|_| RANGE_ERROR.to_string())
}

/// A duration flag's value: Go's `flag` package reports every bad duration
/// as "parse error"; we refuse negative ones with our own text.
pub fn flag_duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|e| match e {
        DurationError::Negative => e.message(value),
        _ => PARSE_ERROR.to_string(),
    })
}

/// A duration in the config file, coerced as go-options does: a string in
/// `time.ParseDuration` syntax, or integer milliseconds. `example` is a
/// sample duration for the error text (e.g. `"60s"`).
pub fn toml_duration(value: &toml::Value, example: &str) -> Result<Duration, String> {
    match value {
        toml::Value::String(s) => parse_go_duration(s).map_err(|e| e.message(s)),
        toml::Value::Integer(ms) => u64::try_from(*ms)
            .map(Duration::from_millis)
            .map_err(|_| "negative durations are not supported".to_string()),
        _ => Err(format!(
            "expected a duration string such as \"{example}\" or integer milliseconds"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum F {
        Name,
        On,
    }

    impl Flag for F {
        fn name(self) -> &'static str {
            match self {
                F::Name => "name",
                F::On => "on",
            }
        }
        fn is_bool(self) -> bool {
            self == F::On
        }
    }

    fn find(name: &str) -> Option<F> {
        [F::Name, F::On].into_iter().find(|f| f.name() == name)
    }

    fn check(flag: F, value: &str) -> Result<(), String> {
        match flag {
            F::On => crate::goparse::go_parse_bool(value)
                .map(drop)
                .ok_or_else(|| PARSE_ERROR.to_string()),
            F::Name if value == "bad" => Err("no".to_string()),
            F::Name => Ok(()),
        }
    }

    impl Source<'_> {
        fn to_owned_value(self) -> Option<String> {
            match self {
                Source::File => None,
                Source::CommandLine(v) => Some(v.to_string()),
            }
        }
    }

    fn run(list: &[&str]) -> Result<Vec<(F, String)>, FlagError> {
        parse(list.iter().map(|s| s.to_string()), find, check)
    }

    #[test]
    fn go_forms() {
        let given = run(&[
            "-name=a",
            "--name=b",
            "-name",
            "c",
            "--name",
            "d",
            "-on",
            "--on=false",
        ]);
        let values: Vec<(F, &str)> = given
            .as_ref()
            .unwrap()
            .iter()
            .map(|(f, v)| (*f, v.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                (F::Name, "a"),
                (F::Name, "b"),
                (F::Name, "c"),
                (F::Name, "d"),
                (F::On, "true"),
                (F::On, "false")
            ]
        );
        let given = given.unwrap();
        assert_eq!(last_value(&given, F::Name), Some("d"));
        assert!(was_given(&given, F::On));
        assert_eq!(run(&["--"]), Ok(vec![]));
    }

    #[test]
    fn errors_in_order() {
        let msg = |list: &[&str]| {
            run(list)
                .unwrap_err()
                .message("d", crate::goparse::go_quote)
        };
        assert_eq!(run(&["-h"]), Err(FlagError::Help));
        assert_eq!(run(&["-name=x", "--help=1"]), Err(FlagError::Help));
        // The first bad argument is the one reported.
        let cases: [(&[&str], &str); 7] = [
            (&["-nope"], "flag provided but not defined: -nope"),
            (&["---x"], "bad flag syntax: ---x"),
            (&["-=x"], "bad flag syntax: -=x"),
            (&["-name"], "flag needs an argument: -name"),
            (&["-name=bad", "-nope"], "invalid value \"bad\" for flag -name: no"),
            (&["-on=maybe"], "invalid boolean value \"maybe\" for -on: parse error"),
            (&["-on", "false"], "unexpected argument \"false\": d takes only flags (a boolean flag's value must be written -flag=value)"),
        ];
        for (list, want) in cases {
            assert_eq!(msg(list), want, "{list:?}");
        }
        assert_eq!(
            run(&["--", "x"]),
            Err(FlagError::UnexpectedArgument("x".into()))
        );
        assert_eq!(run(&["-"]), Err(FlagError::UnexpectedArgument("-".into())));
    }

    #[test]
    fn precedence() {
        let given = run(&["-name=flag"]).unwrap();
        let mut log = Vec::new();
        merge::<F, ()>([F::Name, F::On], &given, |f, source| {
            log.push((f, source.to_owned_value()));
            Ok(())
        })
        .unwrap();
        assert_eq!(log, [(F::On, None), (F::Name, Some("flag".to_string()))]);
    }

    #[test]
    fn help_layout() {
        let text = usage_text(
            "d",
            [
                HelpEntry {
                    name: "on",
                    type_name: "",
                    usage: "turn on",
                    default: None,
                },
                HelpEntry {
                    name: "name",
                    type_name: "string",
                    usage: "a name",
                    default: Some("\"x\"".to_string()),
                },
            ],
        );
        assert_eq!(
            text,
            "Usage of d:\n  -name string\n    \ta name (default \"x\")\n  -on\n    \tturn on\n"
        );
    }

    #[test]
    fn values() {
        assert_eq!(flag_int::<u16>("0x10"), Ok(16));
        assert_eq!(flag_int::<u16>("70000"), Err(RANGE_ERROR.to_string()));
        assert_eq!(flag_int::<u64>("x"), Err(PARSE_ERROR.to_string()));
        assert_eq!(flag_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(flag_duration("60"), Err(PARSE_ERROR.to_string()));
        assert_eq!(
            flag_duration("-1s"),
            Err("negative durations are not supported".to_string())
        );
        let ms = toml::Value::Integer(1500);
        assert_eq!(toml_duration(&ms, "1s"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            toml_duration(&toml::Value::Boolean(true), "45s"),
            Err("expected a duration string such as \"45s\" or integer milliseconds".to_string())
        );
        assert_eq!(
            toml_duration(&toml::Value::String("1d".into()), "1s"),
            Err("time: unknown unit \"d\" in duration \"1d\"".to_string())
        );
    }
}
