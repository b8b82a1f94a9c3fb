//! Background tasks that run on one shard only (the control plane).
//!
//! Shard 0 is the control-plane home: it registers topics and channels with
//! nsqlookupd. It sees every topic and channel because topic parts and
//! channel announcements reach every shard, so registering from one place
//! registers each name once, however many cores hold a part of it.

pub mod lookupd;
