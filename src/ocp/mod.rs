//! OCP/1, the device protocol (docs/protocol.md), as pure code: the frame and message codec
//! (`wire.rs`), the state and result codes of a REPORT (`report.rs`) and the session rules a
//! server enforces (`session.rs`).
//!
//! Pure: no I/O, no clock, nothing of the store. The listener is `server/device.rs`, the
//! reference client and the fleet simulator are in `client/`.

pub mod report;
pub mod session;
pub mod wire;
