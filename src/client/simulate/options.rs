//! What to simulate: the devices and their credentials (parsed from the import CSV), the
//! [`Mode`], the [`Options`] with the defaults of `otad device simulate`, the install step
//! with its failure injection ([`Install`], and which devices it picks), the event hook,
//! and the setup errors.
//!
//! Not here: running it (`fleet.rs`) and what comes out (`report.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::client::install::Ending;
use crate::hashtree;
use crate::ocp::report;

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
    /// The firmware type every device reports (at `installed_version`) and downloads.
    pub fw_type: u16,
    /// The version number every device reports as installed in its first CHECK.
    pub installed_version: u64,
    /// Per device id, a version number that replaces `installed_version` (what an earlier
    /// run installed on it).
    pub installed_by_device: HashMap<String, u64>,
    /// Once: a device offered nothing counts as up to date (`Report::not_offered`), not
    /// as failed: devices a staged rollout has not reached yet.
    pub no_offer_ok: bool,
    /// Once: install after the download (and maybe fail or never confirm); `None` stops
    /// at REPORT DOWNLOADED.
    pub install: Option<Install>,
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
            installed_version: 0,
            installed_by_device: HashMap::new(),
            no_offer_ok: false,
            install: None,
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

    /// The version number `device_id` runs for `fw_type` at its first CHECK.
    pub fn installed_of(&self, device_id: &str) -> u64 {
        self.installed_by_device
            .get(device_id)
            .copied()
            .unwrap_or(self.installed_version)
    }

    pub(super) fn emit(&self, event: SimEvent) {
        if let Some(hook) = &self.hook {
            (hook.0)(event);
        }
    }
}

/// The install step of a once run, and the failures injected into it. Which devices fail
/// or never confirm is decided per device by a seeded hash of its id, so the same seed
/// and fleet give the same devices every run, and the shares hold within sampling error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Install {
    /// How long each install takes (between REPORT INSTALLING and its end).
    pub delay: Duration,
    /// Share of devices (0-1) whose install fails: REPORT FAILED with `fail_result`.
    pub fail_share: f64,
    /// LwM2M result code (2-10) the failing devices report as the reason.
    pub fail_result: u8,
    /// Share of devices (0-1) that report INSTALLED but never send the confirming CHECK.
    pub never_confirm_share: f64,
    pub seed: u64,
}

impl Default for Install {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            fail_share: 0.0,
            fail_result: report::RESULT_UPDATE_FAILED,
            never_confirm_share: 0.0,
            seed: 0,
        }
    }
}

impl Install {
    /// How the install of `device_id` ends: its rank, the first 8 bytes of
    /// BLAKE3(seed ‖ id) as a fraction of 2^64, below `fail_share` fails, in the next
    /// `never_confirm_share` never confirms, else confirms.
    pub fn ending(&self, device_id: &str) -> Ending {
        let mut h = blake3::Hasher::new();
        h.update(&self.seed.to_be_bytes());
        h.update(device_id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.finalize().as_bytes()[..8]);
        let rank = u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0;
        if rank < self.fail_share {
            Ending::Fail(self.fail_result)
        } else if rank < self.fail_share + self.never_confirm_share {
            Ending::NeverConfirm
        } else {
            Ending::Confirm
        }
    }

    pub(super) fn check(&self) -> Result<(), SimError> {
        let share = |s: f64| (0.0..=1.0).contains(&s);
        if !share(self.fail_share)
            || !share(self.never_confirm_share)
            || self.fail_share + self.never_confirm_share > 1.0 + 1e-9
        {
            return Err(SimError::Shares);
        }
        if !report::allowed(report::FAILED, self.fail_result) {
            return Err(SimError::FailResult(self.fail_result));
        }
        Ok(())
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
    #[error(
        "the fail and never-confirm shares must each be between 0 and 1, and together at most 1"
    )]
    Shares,
    #[error("result {0} is not a failure reason (2-10)")]
    FailResult(u8),
    #[error("the install step needs the once mode (not repeat or hold)")]
    InstallMode,
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
    fn endings_are_seeded_and_keep_their_shares() {
        let plan = Install {
            fail_share: 0.2,
            never_confirm_share: 0.1,
            seed: 7,
            ..Install::default()
        };
        let ids: Vec<String> = (0..10_000).map(|i| format!("dev-{i}")).collect();
        let endings: Vec<Ending> = ids.iter().map(|id| plan.ending(id)).collect();
        let again: Vec<Ending> = ids.iter().map(|id| plan.ending(id)).collect();
        assert_eq!(endings, again, "the same seed picks the same devices");
        let share = |e: Ending| endings.iter().filter(|x| **x == e).count() as f64 / 1e4;
        // 4 standard deviations of a binomial share at n = 10,000.
        assert!((share(Ending::Fail(8)) - 0.2).abs() < 0.016);
        assert!((share(Ending::NeverConfirm) - 0.1).abs() < 0.012);
        let other = Install { seed: 8, ..plan };
        assert!(ids.iter().any(|id| other.ending(id) != plan.ending(id)));
        assert!(plan.check().is_ok());
        assert!(
            Install {
                fail_share: 0.8,
                never_confirm_share: 0.3,
                ..plan
            }
            .check()
            .is_err()
        );
        assert!(
            Install {
                fail_share: -0.1,
                ..plan
            }
            .check()
            .is_err()
        );
        assert!(
            Install {
                fail_result: 1,
                ..plan
            }
            .check()
            .is_err()
        );
    }

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
