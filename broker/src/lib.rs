//! nsqd broker.
