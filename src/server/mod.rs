//! The network servers: the HTTPS listener for the API and the OTA Manager (`http.rs`), the
//! OCP/1 device listener (`device.rs`), and their TLS configuration (`tls.rs`).
//!
//! Not here: what a request does (`api/`, `web/`), the protocol codec (`ocp/`), start-up and
//! wiring (`serve.rs`).

pub mod accept;
pub mod device;
pub mod http;
pub mod maintenance;
pub mod tls;
