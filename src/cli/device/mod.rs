//! `otad device …`: the device side of OCP/1 from a shell, for operators and tests.
//!
//! Lives here: the flags of `device check`, `device download` and `device simulate` and the
//! dispatch to them. The rest, one concept a file: finding the server and checking the
//! identity (`target.rs`), the commands (`check.rs`, `download.rs`, `simulate.rs`), the
//! download's resume state file (`state.rs`), its progress line (`progress.rs`) and the human
//! and JSON output (`report.rs`). Not here: the protocol (`client/device.rs`) and the fleet
//! simulation itself (`client/simulate/`, reusable from tests and benchmarks).
//!
//! Exit codes follow `cli/mod.rs`: 0 success, 1 failure (one line on stderr), 2 usage.

mod check;
mod download;
mod progress;
mod report;
mod simulate;
mod state;
mod target;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Connect as a device, CHECK and show what the server offers it.
    ///
    /// Example: otad device check --device-id kettle-1 --token $TOKEN --installed 3=0
    Check(CheckArgs),
    /// Download the offered image, verifying every chunk, resumable across runs.
    ///
    /// Progress is kept in --state; a killed or cut download continues from it on the next
    /// run with the same flags. Afterwards the whole file is checked against the offer's
    /// BLAKE3 and SHA-256 and the server gets REPORT DOWNLOADED.
    ///
    /// Example: otad device download --device-id kettle-1 --type 3 --state fw.state --out fw.bin
    Download(DownloadArgs),
    /// Run many simulated devices (C at a time): connect, CHECK, verified download, REPORT.
    ///
    /// --devices-file is the deviceId,token CSV that POST .../devices/import returns.
    /// Exit code 1 if any device failed. --repeat-seconds measures steady-state throughput
    /// (every device downloads in a loop); --hold keeps every device connected and idle.
    ///
    /// Example: otad device simulate --devices-file fleet.csv --devices 1000 --concurrency 200
    ///
    /// Example: otad device simulate --devices-file fleet.csv --devices 64 --max-inflight 8 --repeat-seconds 15
    ///
    /// Example: otad device simulate --devices-file fleet.csv --devices 10000 --hold 60
    Simulate(SimulateArgs),
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
pub struct SimulateArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// CSV of deviceId,token lines (the answer of POST .../devices/import).
    #[arg(long, value_name = "FILE.csv")]
    devices_file: PathBuf,
    /// How many devices to simulate, from the top of the file (default: all of them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    devices: Option<u64>,
    /// How many devices run at once (each holds one TLS connection).
    #[arg(long, value_name = "C", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Firmware type the devices report (installed version 0) and download.
    #[arg(long = "type", value_name = "T", default_value_t = 3)]
    fw_type: u16,
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

/// A failure of a device command: bad usage (exit 2) or a failed operation (exit 1).
pub(super) enum Fail {
    Usage(String),
    Error(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Error(s)
    }
}

/// Runs a device command; `data_dir` is where `listen.json` and `tls/cert.pem` are looked up.
pub fn run(cmd: DeviceCommand, data_dir: &Path) -> Result<ExitCode, String> {
    let result = match cmd {
        DeviceCommand::Check(args) => check::check(&args, data_dir),
        DeviceCommand::Download(args) => download::download(&args, data_dir),
        DeviceCommand::Simulate(args) => simulate::simulate(&args, data_dir),
    };
    match result {
        Ok(code) => Ok(code),
        Err(Fail::Error(message)) => Err(message),
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
