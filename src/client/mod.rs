//! Clients of otad's servers: the HTTP client of the admin API (`http.rs`), the reference
//! OCP/1 device client (`device.rs`), a device's install step after a download
//! (`install.rs`) and the fleet simulator built on both (`simulate/`).
//!
//! Clients never import a server: they share only the body types (`body.rs`), the protocol
//! codec (`ocp/`) and the pure cores with them. Not here: the command line that drives them
//! (`cli/`).

pub mod device;
pub mod http;
pub mod install;
pub mod simulate;
