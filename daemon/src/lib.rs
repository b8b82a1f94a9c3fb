//! What nsqd (`nsq-broker`) and nsqlookupd (`nsq-lookupd`) share as
//! daemons, so the two binaries behave the same where nsqd and nsqlookupd
//! do:
//!
//! * [`log`]: `LogLevel`, the log line format (local time, as Go's `log`)
//!   and the `log_*!` macros.
//! * [`goparse`]: Go value syntax (`strconv` booleans and integers,
//!   `time.ParseDuration`, `%q`).
//! * [`flags`]: Go `flag` package syntax, `--help` layout and go-options'
//!   config-file precedence over a daemon's own flag table.
//! * [`host`]: the OS host name.
//! * [`signals`]: SIGINT/SIGTERM blocked everywhere, awaited by `main`.
//! * [`accept`]: the accept loop with its backoff.
//! * [`http`]: HTTP request reading (`100 Continue`) and argument checks
//!   both HTTP APIs use.
//!
//! Nothing here knows NSQ's wire protocol (that is `nsq_proto`) or either
//! daemon's state.

#![warn(missing_docs)]

pub mod accept;
pub mod flags;
pub mod goparse;
pub mod host;
pub mod http;
pub mod log;
pub mod signals;
