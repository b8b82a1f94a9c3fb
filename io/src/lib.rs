//! Runtime primitives.
