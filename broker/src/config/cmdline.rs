//! The command line, read with Go `flag` package syntax (`-flag`,
//! `--flag=value`, `-flag value`, `--` to stop), and the `--help` text.

use std::fmt::Write as _;

use super::flags::{find_flag, FlagSpec, FLAGS};
use super::{ConfigError, Options};

/// The command line after Go `flag` parsing.
pub(super) struct CommandLine {
    /// Flags in the order given, each with its value ("true" for a bare
    /// boolean).
    pub(super) values: Vec<(&'static FlagSpec, String)>,
    /// The defaults with only the command line applied; read for
    /// `--config` and `--version` before the file is loaded.
    pub(super) flags_only: Options,
}

impl CommandLine {
    /// Go's `FlagSet.Parse`: values are checked as they are met, so the
    /// first bad argument is the one reported.
    pub(super) fn parse<I: IntoIterator<Item = String>>(
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

    pub(super) fn has(&self, spec: &FlagSpec) -> bool {
        self.values.iter().any(|(given, _)| given.name == spec.name)
    }
}

/// Go's `flag.PrintDefaults` for every flag, sorted by name, with the
/// defaults taken from `defaults`.
pub(super) fn usage_text(defaults: &Options) -> String {
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
