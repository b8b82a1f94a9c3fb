//! NSQ wire protocol codec.
