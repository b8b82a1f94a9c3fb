//! Per-core runtime primitives for the broker. Nothing here knows NSQ.
//!
//! # Layout
//! - [`runtime`]: start one glommio executor per core (pinned), probe io_uring and
//!   the memlock limit first so a misconfigured host gets a clear message.
//! - [`mesh`]: bounded, lock-free single-producer queues between every pair of
//!   shards: the only way data crosses cores.
//! - [`signal`]: a one-slot wake-up between tasks of the same shard.
//! - [`http`]: a pure HTTP/1.1 request decoder and response encoder.
#![warn(missing_docs)]

pub mod http;
pub mod mesh;
pub mod net;
pub mod runtime;
pub mod segment;
pub mod signal;
