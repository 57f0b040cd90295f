//! What to simulate: the devices and their credentials (parsed from the import CSV), the
//! [`Mode`], the [`Options`] with the defaults of `otad device simulate`, the event hook,
//! and the setup errors.
//!
//! Not here: running it (`fleet.rs`) and what comes out (`report.rs`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::hashtree;

/// One device's credentials, as `POST .../devices/import` hands them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCreds {
    pub id: String,
    pub token: String,
}

/// What every device does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Download the image once, REPORT DOWNLOADED, disconnect; `concurrency` at a time.
    Once,
    /// All devices at once download the image in a loop. Counting starts `warmup` after the
    /// last device connected (or failed to) and lasts `window`; then every device stops.
    Repeat { warmup: Duration, window: Duration },
    /// All devices connect and CHECK, then idle, sending PING every `ping_every`, until
    /// `hold` after the last device connected (or failed to); then every device closes.
    Hold {
        hold: Duration,
        ping_every: Duration,
    },
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Once => "once",
            Mode::Repeat { .. } => "repeat",
            Mode::Hold { .. } => "hold",
        }
    }
}

/// Moments of a repeat or hold run, for a caller that measures alongside (the benchmark
/// samples the server's CPU time and memory at these points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimEvent {
    /// Every device has connected and CHECKed, or failed to.
    AllConnected {
        connected: usize,
        failed: usize,
        after: Duration,
    },
    /// Repeat: the measuring window opened.
    WindowStart,
    /// Repeat: the measuring window closed; devices stop now.
    WindowEnd,
    /// Hold: the hold time is over; devices close now.
    HoldEnd,
}

/// A callback for [`SimEvent`]s. It runs on the simulator's runtime: keep it short.
#[derive(Clone)]
pub struct Hook(pub Arc<dyn Fn(SimEvent) + Send + Sync>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}

/// What to simulate and against which server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `host:port` of the device listener.
    pub addr: String,
    /// Name checked against the server certificate.
    pub server_name: String,
    /// PEM file of the CA to trust.
    pub ca_file: PathBuf,
    /// The devices, each simulated once, in this order.
    pub devices: Vec<DeviceCreds>,
    /// Once: how many devices run at once. Repeat and hold: every device runs at once, and
    /// this many connect (TLS + HELLO + CHECK) at the same time.
    pub concurrency: usize,
    /// The firmware type every device reports (installed version 0) and downloads.
    pub fw_type: u16,
    pub max_frame: u32,
    pub max_inflight: u8,
    pub chunk_log: u8,
    /// GETs without proof (raw image bytes). Nothing verifies a chunk then; with
    /// `hash_image` the whole image is still checked against the offer's hashes.
    pub raw: bool,
    /// Bytes per GET, a multiple of the group size; `None` = one group.
    pub get_size: Option<u32>,
    /// Hash every completely downloaded image (BLAKE3 and SHA-256) and compare it with the
    /// offer. With proofs every chunk is verified anyway; turning this off saves the client
    /// two hashes of every byte.
    pub hash_image: bool,
    pub mode: Mode,
    /// Once: a device that has not finished within this time counts as failed. Repeat and
    /// hold: the limit for connect + CHECK, and for each answer (DATA, PONG) after it.
    pub timeout: Duration,
    /// Called at the [`SimEvent`]s of repeat and hold runs.
    pub hook: Option<Hook>,
}

impl Options {
    /// Options with the defaults of `otad device simulate`.
    pub fn new(
        addr: impl Into<String>,
        server_name: impl Into<String>,
        ca_file: impl Into<PathBuf>,
        devices: Vec<DeviceCreds>,
    ) -> Self {
        Self {
            addr: addr.into(),
            server_name: server_name.into(),
            ca_file: ca_file.into(),
            devices,
            concurrency: 100,
            fw_type: 3,
            max_frame: 256 * 1024,
            max_inflight: 16,
            chunk_log: 4,
            raw: false,
            get_size: None,
            hash_image: true,
            mode: Mode::Once,
            timeout: Duration::from_secs(60),
            hook: None,
        }
    }

    /// Bytes asked for per GET.
    pub fn get_bytes(&self) -> u64 {
        self.get_size
            .map_or_else(|| hashtree::group_size(self.chunk_log), u64::from)
    }

    pub(super) fn emit(&self, event: SimEvent) {
        if let Some(hook) = &self.hook {
            (hook.0)(event);
        }
    }
}

/// Why a simulation could not start at all (per-device failures go into the [`Report`](super::Report)).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no devices to simulate")]
    NoDevices,
    #[error("concurrency must be at least 1")]
    Concurrency,
    #[error("the GET size must be a positive multiple of the group size ({0} bytes)")]
    GetSize(u64),
    #[error("cannot use the CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("{0}")]
    Runtime(String),
}

/// Parses `deviceId,token` lines: the CSV the import endpoint returns (its header line,
/// blank lines and surrounding quotes are accepted). Errors name the line.
pub fn parse_devices_csv(text: &str) -> Result<Vec<DeviceCreds>, String> {
    let mut devices = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut cols = line.split(',').map(|c| c.trim().trim_matches('"'));
        let (Some(id), Some(token), None) = (cols.next(), cols.next(), cols.next()) else {
            return Err(format!("line {}: expected deviceId,token", i + 1));
        };
        if devices.is_empty() && id.eq_ignore_ascii_case("deviceId") {
            continue;
        }
        if id.is_empty() || token.is_empty() {
            return Err(format!("line {}: empty deviceId or token", i + 1));
        }
        devices.push(DeviceCreds {
            id: id.to_string(),
            token: token.to_string(),
        });
    }
    Ok(devices)
}

/// Checks up front that the CA file holds a certificate, so a wrong path is one error
/// instead of one per device.
pub(super) fn check_ca(path: &std::path::Path) -> Result<(), SimError> {
    let ca_err = |reason: String| SimError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let mut found = 0usize;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))? {
        cert.map_err(|e| ca_err(e.to_string()))?;
        found += 1;
    }
    if found == 0 {
        return Err(ca_err("no PEM certificate in it".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_import_answer() {
        let csv = "deviceId,token\nkettle-1,abc\n\n\"kettle-2\" , def \n";
        let devices = parse_devices_csv(csv).expect("parses");
        assert_eq!(
            devices,
            vec![
                DeviceCreds {
                    id: "kettle-1".into(),
                    token: "abc".into()
                },
                DeviceCreds {
                    id: "kettle-2".into(),
                    token: "def".into()
                },
            ]
        );
        assert_eq!(
            parse_devices_csv("deviceId,token\na,b,c\n").unwrap_err(),
            "line 2: expected deviceId,token"
        );
        assert_eq!(
            parse_devices_csv("a\n").unwrap_err(),
            "line 1: expected deviceId,token"
        );
    }
}
