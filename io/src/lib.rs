//! Per-core runtime primitives for the broker. Nothing here knows NSQ.
//!
//! # Layout
//! - [`runtime`]: start one glommio executor per core (pinned), probe io_uring and
//!   the memlock limit first so a misconfigured host gets a clear message.
//! - [`mesh`]: bounded, lock-free single-producer queues between every pair of
//!   shards: the only way data crosses cores.
//! - [`signal`]: a one-slot wake-up between tasks of the same shard.
//! - [`net`]: listeners every shard shares (SO_REUSEPORT, SO_REUSEADDR),
//!   moving a connected socket between shards, name resolution off the core.
//! - [`http`]: a pure HTTP/1.1 request decoder and response encoder, and a
//!   small async GET client for the control plane.
//! - [`segment`]: append-only, checksummed, preallocated disk segments: the
//!   disk queue under every topic part and channel.
#![warn(missing_docs)]

pub mod http;
pub mod mesh;
pub mod net;
pub mod runtime;
pub mod segment;
pub mod signal;
