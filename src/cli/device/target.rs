//! Which server a device command talks to and as whom: `--server`/`--ca`/`--server-name`,
//! else `listen.json` and `tls/cert.pem` in the data directory; the identity checked before
//! anything touches the network, and the [`ClientConfig`] built from both.
//!
//! Not here: the flags themselves (`mod.rs`) and the connection (`client/device.rs`).

use std::path::{Path, PathBuf};

use super::{Endpoint, Fail, Identity};
use crate::client::device::ClientConfig;
use crate::datadir::{DataDir, local_address};
use crate::ocp::wire;

/// Frame, pipelining and group size a `check`/`download` device announces: 16 KiB groups,
/// 16 in flight, room for the largest group the server may grant.
const MAX_FRAME: u32 = 256 * 1024;
const MAX_INFLIGHT: u8 = 16;
const CHUNK_LOG: u8 = 4;

/// The resolved server: address, certificate name and CA file.
pub(super) struct Target {
    pub(super) addr: String,
    pub(super) server_name: String,
    pub(super) ca_file: PathBuf,
}

pub(super) fn resolve(endpoint: &Endpoint, data_dir: &Path) -> Result<Target, Fail> {
    let (addr, default_name) = match &endpoint.server {
        Some(server) => {
            let host = split_host(server).ok_or_else(|| {
                Fail::Usage(format!(
                    "--server {server:?} must be HOST:PORT (e.g. ota.example.com:8444)"
                ))
            })?;
            (server.clone(), host.to_string())
        }
        None => (listen_address(data_dir)?, "localhost".to_string()),
    };
    let ca_file = match &endpoint.ca {
        Some(ca) => ca.clone(),
        None => DataDir::new(data_dir).tls_cert(),
    };
    if !ca_file.is_file() {
        return Err(Fail::Error(format!(
            "no CA certificate at {}; pass --ca FILE or --data-dir DIR",
            ca_file.display()
        )));
    }
    Ok(Target {
        addr,
        server_name: endpoint.server_name.clone().unwrap_or(default_name),
        ca_file,
    })
}

/// The host of `host:port` or `[v6]:port`, if the port is a number.
fn split_host(server: &str) -> Option<&str> {
    let (host, port) = server.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// The device address from `listen.json`; a wildcard bind is reached over loopback.
fn listen_address(data_dir: &Path) -> Result<String, Fail> {
    let dir = DataDir::new(data_dir);
    let path = dir.listen_file();
    let listen = dir
        .read_listen()
        .map_err(|e| {
            Fail::Error(format!(
                "{e}; start otad serve there, or pass --server HOST:PORT or --data-dir DIR"
            ))
        })?
        .ok_or_else(|| {
            Fail::Error(format!(
                "cannot read {} (no such file); start otad serve there, or pass --server HOST:PORT or --data-dir DIR",
                path.display()
            ))
        })?;
    Ok(local_address(listen.device).to_string())
}

/// Rejects an id or token no server would take, before anything touches the network.
pub(super) fn check_identity(identity: &Identity) -> Result<(), Fail> {
    let id = identity.device_id.as_bytes();
    let valid_id = (1..=wire::DEVICE_ID_MAX).contains(&id.len())
        && id
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if !valid_id {
        return Err(Fail::Usage(format!(
            "--device-id {:?} must be 1-64 characters of A-Z a-z 0-9 . _ -",
            identity.device_id
        )));
    }
    if identity.token.is_empty() || identity.token.len() > wire::TOKEN_MAX {
        return Err(Fail::Usage(format!(
            "--token must be 1-{} bytes (or set OTAD_DEVICE_TOKEN)",
            wire::TOKEN_MAX
        )));
    }
    Ok(())
}

pub(super) fn client_config(target: &Target, identity: &Identity) -> ClientConfig {
    ClientConfig {
        addr: target.addr.clone(),
        server_name: target.server_name.clone(),
        ca_file: target.ca_file.clone(),
        device_id: identity.device_id.clone(),
        token: identity.token.clone(),
        max_frame: MAX_FRAME,
        max_inflight: MAX_INFLIGHT,
        chunk_log: CHUNK_LOG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_server() {
        assert_eq!(split_host("ota.example.com:8444"), Some("ota.example.com"));
        assert_eq!(split_host("[::1]:8444"), Some("::1"));
        assert_eq!(split_host("127.0.0.1"), None);
        assert_eq!(split_host(":8444"), None);
        assert_eq!(split_host("host:port"), None);
    }
}
