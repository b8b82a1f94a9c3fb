//! The command line, read with Go `flag` package syntax (`-flag`,
//! `--flag=value`, `-flag value`, `--` to stop; `nsq_daemon::flags`), and
//! the `--help` text.

use nsq_daemon::flags::{self, FlagError, HelpEntry};

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

impl flags::Flag for &'static FlagSpec {
    fn name(self) -> &'static str {
        self.name
    }

    fn is_bool(self) -> bool {
        self.slot.is_bool()
    }
}

impl CommandLine {
    /// Go's `FlagSet.Parse`: values are checked as they are met, so the
    /// first bad argument is the one reported.
    pub(super) fn parse<I: IntoIterator<Item = String>>(
        args: I,
        defaults: &Options,
    ) -> Result<CommandLine, ConfigError> {
        let mut flags_only = defaults.clone();
        let values = flags::parse(args, find_flag, |spec, value| {
            spec.slot.set_flag(&mut flags_only, value)
        })
        .map_err(|e| match e {
            FlagError::Help => ConfigError::Help(usage_text(defaults)),
            e => ConfigError::Flag(e),
        })?;
        Ok(CommandLine { values, flags_only })
    }
}

/// Go's `flag.PrintDefaults` for every flag, sorted by name, with the
/// defaults taken from `defaults`.
pub(super) fn usage_text(defaults: &Options) -> String {
    let entries = FLAGS.iter().map(|spec| HelpEntry {
        name: spec.name,
        type_name: spec.slot.type_name(),
        usage: spec.usage,
        default: spec.slot.default_text(defaults),
    });
    flags::usage_text("nsqd", entries)
}
