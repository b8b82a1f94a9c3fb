//! The TCP protocol V2, nsqd's `protocol_v2.go`: the per-connection loop
//! (`conn`), command execution (`exec`), IDENTIFY negotiation (`identify`)
//! and the writer with nsqd's flush rules and heartbeats (`pump`).
//!
//! Lives on: the shard running the connection (a consumer's moves to its
//! channel's owner at SUB). Above the shard state in the module order: it
//! drives topics, channels and the shard, none of which know it.

pub mod conn;
pub mod exec;
pub mod identify;
pub mod pump;
