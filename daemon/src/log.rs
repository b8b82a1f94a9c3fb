//! Logging in nsqd's and nsqlookupd's format:
//! `<prefix>2006/01/02 15:04:05.000000 INFO: msg` on stderr, filtered by
//! `--log-level`. The prefix is the daemon's `--log-prefix` (`[nsqd] `,
//! `[nsqlookupd] ` by default).
//!
//! Both daemons log through Go's `log` package with
//! `log.Ldate|log.Ltime|log.Lmicroseconds`, which stamps lines with local
//! time, so we do too (through `localtime_r`): operators grep these lines
//! next to real nsqd and nsqlookupd logs.
//!
//! The prefix is set once at startup; the level can change at run time
//! (nsqd's `PUT /config/log_level`). A global atomic and a `OnceLock` are the
//! only shared state.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Log verbosity (`--log-level`), numbered as Go's `lg.LogLevel` (nsqd's
/// `/config/log_level` reports the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug` (1)
    Debug = 1,
    /// `info` (2), the default
    Info = 2,
    /// `warn` (3)
    Warn = 3,
    /// `error` (4)
    Error = 4,
    /// `fatal` (5)
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
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    /// `lg.ParseLogLevel`: case-insensitive, with Go's error text.
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

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static PREFIX: OnceLock<String> = OnceLock::new();

/// Set the minimum level printed and the line prefix (the prefix once, at
/// startup; lines logged before carry none).
pub fn init(level: LogLevel, prefix: &str) {
    set_level(level);
    let _ = PREFIX.set(prefix.to_string());
}

/// Change the minimum level printed.
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Would a message at `level` be printed?
pub fn enabled(level: LogLevel) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Print one line (use the macros, which check [`enabled`] first).
pub fn write(level: LogLevel, args: std::fmt::Arguments<'_>) {
    let prefix = PREFIX.get().map_or("", String::as_str);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (year, month, day, hour, minute, second) = local_time(now.as_secs());
    let micros = now.subsec_micros();
    eprintln!(
        "{prefix}{year:04}/{month:02}/{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06} {}: {args}",
        level.label()
    );
}

/// Unix seconds as local (year, month, day, hour, minute, second), through
/// `localtime_r`; the epoch if the C library cannot convert them.
fn local_time(secs: u64) -> (i64, i32, i32, i32, i32, i32) {
    let secs = libc::time_t::try_from(secs).unwrap_or(0);
    // SAFETY: `tm` is plain data; localtime_r only writes into it and is
    // thread-safe (unlike localtime).
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            tm = std::mem::zeroed();
            tm.tm_mday = 1;
            tm.tm_year = 70;
        }
        tm
    };
    (
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    )
}

/// Log at a given level: `log_at!(LogLevel::Info, "...", args)`.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, format_args!($($arg)*));
        }
    };
}

/// Log at INFO.
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::LogLevel::Info, $($arg)*) };
}

/// Log at WARNING.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::LogLevel::Warn, $($arg)*) };
}

/// Log at ERROR.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::LogLevel::Error, $($arg)*) };
}

/// Log at FATAL (the caller exits afterwards).
#[macro_export]
macro_rules! log_fatal {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::LogLevel::Fatal, $($arg)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("debug".parse::<LogLevel>(), Ok(LogLevel::Debug));
        assert_eq!(
            "loud".parse::<LogLevel>(),
            Err("invalid log level 'loud' (debug, info, warn, error, fatal)".to_string())
        );
        assert_eq!(LogLevel::Warn.label(), "WARNING");
        assert!(LogLevel::Error > LogLevel::Info);
    }

    #[test]
    fn local_time_is_a_calendar_date() {
        let (year, month, day, hour, minute, second) = local_time(1_700_000_000);
        // 2023-11-14 22:13:20 UTC: within a day either way in any time zone.
        assert_eq!(year, 2023);
        assert_eq!(month, 11);
        assert!((14..=15).contains(&day), "{day}");
        assert!((0..24).contains(&hour) && (0..60).contains(&minute) && second == 20);
    }
}
