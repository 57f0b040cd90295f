//! The device side of otad: the OCP/1 chunk protocol (docs/protocol.md).
//!
//! `wire.rs` is the pure frame and message codec, `server.rs` the listener and sessions,
//! `client.rs` the reference device client (tests, CLI, simulator, benchmarks).

pub mod client;
pub mod server;
pub mod session;
pub mod simulate;
pub mod wire;
