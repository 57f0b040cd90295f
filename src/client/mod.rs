//! Clients of otad's servers: the reference OCP/1 device client (`device.rs`) and the fleet
//! simulator built on it (`simulate.rs`).
//!
//! Clients never import a server: they share only the protocol codec (`ocp/`) and the pure
//! cores with it.

pub mod device;
pub mod simulate;
