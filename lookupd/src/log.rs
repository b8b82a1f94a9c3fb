//! Logging in nsqlookupd's format: `[nsqlookupd] 2006/01/02 15:04:05.000000 INFO: msg`
//! on stderr, filtered by `--log-level`.
//!
//! Go's `log` package stamps lines with local time, so we do too (through
//! `localtime_r`); operators grep these lines next to real nsqlookupd logs.
//! The level and prefix are set once at startup; a global atomic and a
//! `OnceLock` are the only shared state.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LogLevel;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static PREFIX: OnceLock<String> = OnceLock::new();

/// Set the minimum level printed and the line prefix (once, at startup).
pub fn init(level: LogLevel, prefix: &str) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let _ = PREFIX.set(prefix.to_string());
}

/// Would a message at `level` be printed?
pub fn enabled(level: LogLevel) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Print one line (use the macros, which check [`enabled`] first).
pub fn write(level: LogLevel, args: std::fmt::Arguments<'_>) {
    let prefix = PREFIX.get().map_or("[nsqlookupd] ", String::as_str);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = libc::time_t::try_from(now.as_secs()).unwrap_or(0);
    let micros = now.subsec_micros();
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
    eprintln!(
        "{prefix}{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{micros:06} {}: {args}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        level.label()
    );
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
    ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Info, $($arg)*) };
}

/// Log at WARNING.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Warn, $($arg)*) };
}

/// Log at ERROR.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Error, $($arg)*) };
}

/// Log at FATAL (the caller exits afterwards).
#[macro_export]
macro_rules! log_fatal {
    ($($arg:tt)*) => { $crate::log_at!($crate::config::LogLevel::Fatal, $($arg)*) };
}
