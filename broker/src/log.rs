//! Minimal logging in nsqd's format: `[nsqd] 2006/01/02 15:04:05.000000 INFO: msg`
//! on stderr, filtered by `--log-level` (changeable at runtime through
//! `PUT /config/log_level`). A global atomic is the only shared state.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

pub use crate::config::LogLevel as Level;

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static PREFIX: OnceLock<String> = OnceLock::new();

/// Set the minimum level printed.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Set the line prefix (once, at startup).
pub fn set_prefix(prefix: &str) {
    let _ = PREFIX.set(prefix.to_string());
}

/// Would a message at `level` be printed?
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Print one line (use the macros).
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let prefix = PREFIX.get().map(String::as_str).unwrap_or("[nsqd] ");
    let now = crate::message::now_ns();
    let secs = now.div_euclid(1_000_000_000);
    let micros = now.rem_euclid(1_000_000_000) / 1000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    eprintln!(
        "{prefix}{y:04}/{mo:02}/{d:02} {:02}:{:02}:{:02}.{micros:06} {}: {args}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        level.label()
    );
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Log at INFO.
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Info) {
            $crate::log::write($crate::log::Level::Info, format_args!($($arg)*));
        }
    };
}

/// Log at ERROR.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Error) {
            $crate::log::write($crate::log::Level::Error, format_args!($($arg)*));
        }
    };
}

/// Log at WARNING.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Warn) {
            $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
