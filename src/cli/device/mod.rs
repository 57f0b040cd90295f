//! `otad device …`: the device side of OCP/1 from a shell, for operators and tests.
//!
//! Lives here: the flags of `device check`, `device download`, `device report` and `device
//! simulate` and the dispatch to them. The rest, one concept a file: finding the server and
//! checking the identity (`target.rs`), the commands (`check.rs`, `download.rs`,
//! `report_state.rs`, `simulate.rs` with `fleet_setup.rs` and `fleet_state.rs`), the
//! download's resume state file (`state.rs`), its progress line (`progress.rs`) and the human
//! and JSON output (`report.rs`). Not here: the protocol (`client/device.rs`) and the fleet
//! simulation itself (`client/simulate/`, reusable from tests and benchmarks).
//!
//! Exit codes follow `cli/mod.rs`: 0 success, 1 failure (one line on stderr), 2 usage.

mod check;
mod download;
mod fleet_setup;
mod fleet_state;
mod progress;
mod report;
mod report_state;
mod simulate;
mod state;
mod target;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::CliError;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Connect as a device, CHECK and show what the server offers it.
    ///
    /// Example: otad device check --device-id kettle-1 --token $TOKEN --installed 3=0
    Check(CheckArgs),
    /// Download the offered image, verifying every chunk, resumable across runs.
    ///
    /// Progress is kept in --state; a killed or cut download continues from it on the next
    /// run with the same flags. The server hears of the progress (REPORT DOWNLOADING every
    /// 10% or every minute). Afterwards the whole file is checked against the offer's
    /// BLAKE3 and SHA-256 and the server gets REPORT DOWNLOADED. With --install the device
    /// then reports INSTALLING and INSTALLED, reconnects as after a reboot and CHECKs with
    /// the new version number, which the server records as confirmed.
    ///
    /// Example: otad device download --device-id kettle-1 --type 3 --state fw.state --out fw.bin
    ///
    /// Example: otad device download --device-id kettle-1 --type 3 --state fw.state --out fw.bin --install
    Download(DownloadArgs),
    /// Send one REPORT: any OTA state with its result, e.g. a failure and its reason.
    ///
    /// States: downloading, downloaded, installing, installed, failed, deferred (or 1-6).
    /// Results (LwM2M codes, by name or 0-11): initial, success, not-enough-flash,
    /// out-of-ram, connection-lost, integrity-failure, unsupported-package, invalid-uri,
    /// update-failed, unsupported-protocol, cancelled, deferred. Without --result: success
    /// for installed, deferred for deferred, initial otherwise; failed needs one. The
    /// server takes reports only on an image it offered the device.
    ///
    /// Example: otad device report --device-id kettle-1 --type 3 --version-number 7 --state failed --result integrity-failure
    Report(ReportArgs),
    /// Run many simulated devices (C at a time): connect, CHECK, verified download, REPORT,
    /// and with --install the install step, with injected failures if asked.
    ///
    /// --devices-file is the deviceId,token CSV that POST .../devices/import returns;
    /// without it the simulator registers its own devices through the API. Exit code 1 if any device failed (injected install failures are outcomes, not
    /// failures). --repeat-seconds measures steady-state throughput (every device downloads
    /// in a loop); --hold keeps every device connected and idle.
    ///
    /// Example: otad device simulate --devices 200 --install
    ///
    /// Example: otad device simulate --devices-file fleet.csv --devices 1000 --concurrency 200
    ///
    /// Example: otad device simulate --devices-file fleet.csv --devices 64 --max-inflight 8 --repeat-seconds 15
    ///
    /// Example: otad device simulate --devices-file fleet.csv --devices 10000 --hold 60
    ///
    /// Example: otad device simulate --devices-file fleet.csv --fail-share 0.2 --never-confirm-share 0.05 --install-secs 2
    Simulate(Box<SimulateArgs>),
}

/// Where the device listener is and which certificate to trust.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// Device listener (default: "device" in <data-dir>/listen.json, written by otad serve).
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// CA or self-signed certificate to trust, PEM (default: <data-dir>/tls/cert.pem).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Name to check in the server certificate (default: the host of --server, else localhost).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
}

/// Who the device is.
#[derive(Debug, Args)]
pub struct Identity {
    /// Device id (1-64 of A-Z a-z 0-9 . _ -), as registered.
    #[arg(long, value_name = "ID")]
    device_id: String,
    /// Device token, as shown once at registration.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "OTAD_DEVICE_TOKEN",
        hide_env_values = true
    )]
    token: String,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(flatten)]
    identity: Identity,
    /// A firmware type the device runs and its installed version number; repeat per type.
    /// The server offers only for types the device reports.
    #[arg(long, value_name = "TYPE=VN", value_parser = parse_typed)]
    installed: Vec<Installed>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(flatten)]
    identity: Identity,
    /// Progress file (JSON, replaced atomically); resume starts from it.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Image file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Firmware type to download (needed when several types are offered).
    #[arg(long = "type", value_name = "T")]
    fw_type: Option<u16>,
    /// Installed version: VN of --type (default 0), or TYPE=VN for any type; repeatable.
    #[arg(long, value_name = "VN|TYPE=VN", value_parser = parse_installed)]
    installed: Vec<InstalledArg>,
    /// Save progress every this many MiB of verified data (each save costs an fsync).
    #[arg(long, value_name = "MIB", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    save_every: u64,
    /// After the download: REPORT INSTALLING and INSTALLED, reconnect and CHECK with the
    /// new version number (the confirming CHECK).
    #[arg(long)]
    install: bool,
    /// Accept only images signed by this Ed25519 public key (64 hex digits, or a file holding
    /// them, as `otad keygen` prints); repeat for several. Then the offer must be signed,
    /// match its manifest, and have a version number above the highest accepted before
    /// (kept in --state).
    #[arg(long = "trust-key", value_name = "HEX|FILE")]
    trust_keys: Vec<String>,
    /// Print the result as JSON (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(flatten)]
    identity: Identity,
    /// Firmware type of the image reported on.
    #[arg(long = "type", value_name = "T")]
    fw_type: u16,
    /// Version number of the offered image reported on.
    #[arg(long, value_name = "VN")]
    version_number: u64,
    /// The OTA state: downloading, downloaded, installing, installed, failed, deferred
    /// (or 1-6).
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    state: u8,
    /// The LwM2M result code by name or number 0-11; for failed, the reason.
    #[arg(long, value_name = "RESULT", value_parser = parse_result)]
    result: Option<u8>,
    /// Verified bytes so far (what DOWNLOADING reports).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    bytes_done: u64,
    /// Print what was reported as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// CSV of deviceId,token lines (the answer of POST .../devices/import). Without it,
    /// --devices new devices are registered through the API for the acting partner (the
    /// session of `otad login`, or the local server's first admin).
    #[arg(long, value_name = "FILE.csv")]
    devices_file: Option<PathBuf>,
    /// How many devices to simulate: from the top of --devices-file (default: all of
    /// them), else how many to register (default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    devices: Option<u64>,
    /// Without --devices-file: the device type to register the devices under (default:
    /// the partner's only device type with an associated image).
    #[arg(long, value_name = "ID", conflicts_with = "devices_file")]
    device_type: Option<String>,
    /// Without --devices-file: write the registered devices' deviceId,token CSV to this
    /// new file (mode 0600), to simulate the same devices again.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "devices_file")]
    devices_out: Option<PathBuf>,
    /// Partner the registered devices belong to (appliance admins; default: the session's).
    #[arg(long, value_name = "ID", env = "OTAD_PARTNER")]
    partner: Option<String>,
    /// How many devices run at once (each holds one TLS connection).
    #[arg(long, value_name = "C", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Firmware type the devices report (at --installed) and download (default: the type
    /// of the images associated with the devices' device type, asked of the API).
    #[arg(long = "type", value_name = "T")]
    fw_type: Option<u16>,
    /// Version number the devices report as installed in their first CHECK.
    #[arg(long, value_name = "VN", default_value_t = 0)]
    installed: u64,
    /// After the download, install: REPORT INSTALLING, INSTALLED, then reconnect and CHECK
    /// with the new number (the server then shows the device confirmed). Implied by the
    /// failure-injection flags below.
    #[arg(long, conflicts_with_all = ["repeat_seconds", "hold"])]
    install: bool,
    /// Share of devices (0-1) whose install fails: they REPORT FAILED with --fail-result
    /// as the reason. Which devices is decided by a hash of --seed and the device id.
    #[arg(long, value_name = "X", value_parser = parse_share,
          conflicts_with_all = ["repeat_seconds", "hold"])]
    fail_share: Option<f64>,
    /// The failure reason the failing devices report: an LwM2M result name or number 2-10
    /// (not-enough-flash, out-of-ram, connection-lost, integrity-failure,
    /// unsupported-package, invalid-uri, update-failed, unsupported-protocol, cancelled).
    #[arg(long, value_name = "RESULT", default_value = "update-failed",
          value_parser = parse_fail_result)]
    fail_result: u8,
    /// Share of devices (0-1) that report INSTALLED but never send the confirming CHECK
    /// (chosen after the failing ones, from the rest of the hash range).
    #[arg(long, value_name = "Y", value_parser = parse_share,
          conflicts_with_all = ["repeat_seconds", "hold"])]
    never_confirm_share: Option<f64>,
    /// How long each install takes, in seconds (decimals allowed).
    #[arg(long, value_name = "S", value_parser = parse_secs,
          conflicts_with_all = ["repeat_seconds", "hold"])]
    install_secs: Option<f64>,
    /// A device offered nothing counts as up to date (in the totals), not as failed: for
    /// a staged rollout that has not reached every device yet.
    #[arg(long, conflicts_with_all = ["repeat_seconds", "hold"])]
    allow_no_offer: bool,
    /// What each device runs after earlier runs (deviceId,type,versionNumber,state CSV):
    /// read before the run (a device listed CHECKs with its number; one listed away, which
    /// never confirmed, is left out), updated after it. For the passes of a staged rollout.
    #[arg(long, value_name = "FILE.csv", conflicts_with_all = ["repeat_seconds", "hold"])]
    fleet_state: Option<PathBuf>,
    /// Seed of the choice of failing and never-confirming devices.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Verification group of 1024·2^chunk_log bytes per GET.
    #[arg(long, value_name = "2-6", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(2..=6))]
    chunk_log: u8,
    /// GETs each device keeps in flight.
    #[arg(long, value_name = "1-64", default_value_t = 16,
          value_parser = clap::value_parser!(u8).range(1..=64))]
    max_inflight: u8,
    /// A device not done after this many seconds counts as failed. With --repeat-seconds
    /// and --hold: the limit for connect + CHECK and for each answer after it.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// GETs without proof: raw image bytes, nothing verified per chunk (the whole image is
    /// still checked against the offer's hashes unless --skip-image-hash).
    #[arg(long)]
    raw: bool,
    /// Bytes per GET, a multiple of the group size 1024·2^chunk_log (default: one group).
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(4096..=16 * 1024 * 1024))]
    get_size: Option<u32>,
    /// Do not hash each downloaded image (BLAKE3 and SHA-256) against the offer; saves the
    /// client two hashes of every byte. With --raw nothing then checks the bytes.
    #[arg(long)]
    skip_image_hash: bool,
    /// Throughput mode: every device connects at once and downloads the image over and
    /// over; counting starts --warmup-seconds after the last device connected and lasts
    /// this many seconds. No REPORT is sent. --concurrency then limits only how many
    /// devices connect at the same time.
    #[arg(long, value_name = "SECS", conflicts_with = "hold",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    repeat_seconds: Option<u64>,
    /// Warm-up before the window of --repeat-seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2, requires = "repeat_seconds",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    warmup_seconds: u64,
    /// Idle mode: every device connects and CHECKs, then stays connected (PING every
    /// --ping-every seconds) until this many seconds after the last one connected. Prints
    /// a line on stderr when all are connected. --concurrency then limits only how many
    /// devices connect at the same time.
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    hold: Option<u64>,
    /// Seconds between PINGs of an idle device (--hold); the server closes a connection
    /// after 120 s without a frame by default.
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "hold",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    ping_every: u64,
    /// Print the totals as JSON.
    #[arg(long)]
    json: bool,
}

/// `TYPE=VN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    fw_type: u16,
    version_number: u64,
}

/// `TYPE=VN`, or a bare `VN` that belongs to `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstalledArg {
    Typed(Installed),
    Plain(u64),
}

fn parse_typed(s: &str) -> Result<Installed, String> {
    let (t, vn) = s
        .split_once('=')
        .ok_or_else(|| format!("expected TYPE=VN (e.g. 3=0), got {s:?}"))?;
    let fw_type = t
        .trim()
        .parse()
        .map_err(|_| format!("firmware type {t:?} is not a number 0-65535"))?;
    let version_number = parse_vn(vn)?;
    Ok(Installed {
        fw_type,
        version_number,
    })
}

/// A share 0-1, e.g. `0.2`.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (e.g. 0.2)")),
    }
}

/// Seconds, decimals allowed, at most a day.
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=86_400.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "{s:?} is not a number of seconds 0-86400 (e.g. 2.5)"
        )),
    }
}

fn parse_state(s: &str) -> Result<u8, String> {
    use crate::ocp::report;
    report::state_code(s).ok_or_else(|| {
        let names: Vec<&str> = report::STATES.iter().map(|(_, n)| *n).collect();
        format!(
            "unknown state {s:?}; use one of {} (or 1-6)",
            names.join(", ")
        )
    })
}

fn parse_result(s: &str) -> Result<u8, String> {
    use crate::ocp::report;
    report::result_code(s).ok_or_else(|| {
        let names: Vec<&str> = report::RESULTS.iter().map(|(_, n)| *n).collect();
        format!(
            "unknown result {s:?}; use one of {} (or 0-11)",
            names.join(", ")
        )
    })
}

/// A failure reason: a result name or number allowed with state FAILED.
fn parse_fail_result(s: &str) -> Result<u8, String> {
    use crate::ocp::report;
    match report::result_code(s) {
        Some(r) if report::allowed(report::FAILED, r) => Ok(r),
        _ => Err(format!(
            "{s:?} is not a failure reason; use one of {} (or 2-10)",
            report::results_for(report::FAILED).join(", ")
        )),
    }
}

fn parse_vn(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("version number {s:?} is not a whole number"))
}

fn parse_installed(s: &str) -> Result<InstalledArg, String> {
    if s.contains('=') {
        parse_typed(s).map(InstalledArg::Typed)
    } else {
        parse_vn(s).map(InstalledArg::Plain)
    }
}

/// A failure of a device command: bad usage (exit 2), a failed operation (exit 1), or an
/// error of the HTTP API with its own exit code (`simulate` registering its fleet).
pub(super) enum Fail {
    Usage(String),
    Error(String),
    Cli(CliError),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Error(s)
    }
}

/// Runs a device command; `data_dir` is where `listen.json` and `tls/cert.pem` are looked up.
pub fn run(cmd: DeviceCommand, data_dir: &Path) -> Result<ExitCode, CliError> {
    let result = match cmd {
        DeviceCommand::Check(args) => check::check(&args, data_dir),
        DeviceCommand::Download(args) => download::download(&args, data_dir),
        DeviceCommand::Report(args) => report_state::send(&args, data_dir),
        DeviceCommand::Simulate(args) => simulate::simulate(&args, data_dir),
    };
    match result {
        Ok(code) => Ok(code),
        Err(Fail::Error(message)) => Err(CliError::fail(message)),
        Err(Fail::Cli(e)) => Err(e),
        Err(Fail::Usage(message)) => {
            eprintln!("otad: {message}");
            Ok(ExitCode::from(2))
        }
    }
}

/// A runtime for one device connection; everything it does is sequential.
pub(super) fn single_runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::Error(format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_forms() {
        assert_eq!(
            parse_installed("3=17"),
            Ok(InstalledArg::Typed(Installed {
                fw_type: 3,
                version_number: 17
            }))
        );
        assert_eq!(parse_installed("42"), Ok(InstalledArg::Plain(42)));
        assert!(parse_typed("3").is_err());
        assert!(parse_typed("x=1").is_err());
        assert!(parse_installed("3=-1").is_err());
    }
}
