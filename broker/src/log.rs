//! Logging in nsqd's format: `[nsqd] 2006/01/02 15:04:05.000000 INFO: msg`
//! on stderr (local time, as nsqd's Go `log`), filtered by `--log-level`
//! (changeable at runtime through `PUT /config/log_level`).
//!
//! The logger is nsqlookupd's too: `nsq_daemon::log`. This module keeps the
//! broker's names for it (`log::Level`, `crate::log_info!`, ...).

pub use nsq_daemon::log::{enabled, init, set_level, write, LogLevel as Level};

/// Log at INFO.
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { ::nsq_daemon::log_info!($($arg)*) };
}

/// Log at ERROR.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { ::nsq_daemon::log_error!($($arg)*) };
}

/// Log at WARNING.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { ::nsq_daemon::log_warn!($($arg)*) };
}
