//! otad: an on-premise over-the-air firmware update service in one binary.
//!
//! The rooms, from the pure core outwards. Each may import only the rooms above it in this
//! list, as `tests/layout.rs` checks on the source (with no import cycle between files):
//!
//! - Pure cores, which import nothing of otad's I/O: [`model`] (domain types and their
//!   rules), [`ota`] (eligibility: what a device is offered), [`rollout`] (staged rollouts:
//!   groups, outcomes, the stop and advance rules), [`hashtree`] (BLAKE3 outboards and
//!   verified-slice plans), [`ocp`] (the OCP/1 frame codec and session rules),
//!   [`signing`] (the signed image manifest, key ids, Ed25519 signing and verification).
//! - Leaves every layer may use: [`ids`] (clock and calendar, randomness, UUIDs),
//!   [`secrets`] (secret creation, hashing, constant-time comparison), [`datadir`] (every
//!   path of the data directory, `listen.json` and the first-start credentials), [`config`]
//!   (the TOML configuration), [`logsink`] (where log lines go), [`body`] (HTTP body types).
//! - [`store`]: the one redb file: catalog, counters, devices, tokens, audit log and the
//!   content-addressed binaries, behind a group-committing writer. Imports cores and leaves.
//! - Servers: [`server`] (the HTTPS and OCP/1 listeners, their shared accept loop, TLS, the
//!   registry of connected devices), [`api`] (the partner HTTP API and hawkBit DDI for
//!   Linux update agents: one route table, handlers per resource), [`web`] (the OTA Manager's embedded assets), and [`serve`]
//!   (`otad serve`: the wiring). They may use the store; they never import a client.
//! - Clients: [`client`] (the HTTPS client of the API, the reference OCP/1 device client and
//!   the fleet simulator). Cores and leaves only: never the store or a server.
//! - [`cli`]: the `otad` command line. It uses the clients, the store for the offline
//!   database tools, and `serve` to run the server.

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
pub mod rollout;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod signing;
pub mod store;
pub mod web;
