//! The network servers: the HTTPS listener for the API and the OTA Manager (`http.rs`), the
//! OCP/1 device listener (`device.rs`) with its registry of connected devices (`hub.rs`)
//! and its traffic counters (`counters.rs`),
//! the accept loop and binding both share (`accept.rs`), their TLS configuration
//! (`tls.rs`) with the little X.509 reading it needs (`x509.rs`), and the background tasks
//! of a running server (`maintenance.rs`).
//!
//! Not here: what a request does (`api/`, `web/`), the protocol codec (`ocp/`), start-up and
//! wiring (`serve.rs`).

mod accept;
pub(crate) mod counters;
pub(crate) mod device;
pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod maintenance;
pub(crate) mod tls;
mod x509;

pub(crate) use accept::bind;
pub(crate) use hub::DeviceHub;
