//! otad: an on-premise over-the-air firmware update service in one binary.
//!
//! The rooms, from the pure core outwards:
//!
//! - [`model`]: domain types (partners, firmware types, records, devices, audit entries) and
//!   the rules that make them valid. Pure.
//! - [`ota`]: eligibility, i.e. what a device should be offered. Pure.
//! - [`hashtree`]: BLAKE3 outboards and verified-slice plans for chunked delivery. Pure.
//! - [`store`]: the one redb file: catalog, counters, devices, audit log and the
//!   content-addressed binaries, behind a group-committing writer thread.
//! - [`api`]: the partner HTTP API (Afero-compatible, plus extensions).
//! - [`serve`]: `otad serve`, the HTTPS listener, start-up and shutdown; [`tls`] its
//!   certificates.
//! - [`device`]: the OCP/1 device protocol (wire codec).
//! - [`config`]: the TOML configuration, its defaults and validation; [`logsink`] where log
//!   lines go.
//! - [`cli`]: the `otad` command line: `serve`, the offline database tools, the device
//!   commands, and the admin client of the HTTP API (tables or JSON, documented exit codes).
//! - [`web`]: the OTA Manager web UI, static assets embedded in the binary.

// Input reaches the library: it returns errors, never panics on them (tests may).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod body;
pub mod cli;
pub mod client;
pub mod config;
pub mod datadir;
pub mod hashtree;
pub mod ids;
pub mod logsink;
pub mod model;
pub mod ocp;
pub mod ota;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod store;
pub mod web;
