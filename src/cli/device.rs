//! `otad device …`: the device side of OCP/1 from a shell, for operators and tests.
//!
//! Lives here: the flags of `device check`, `device download` and `device simulate`, finding
//! the server (flags, or `listen.json` and `tls/cert.pem` in the data directory), the
//! resumable download (its state file, output file and progress line) and the human and
//! JSON output. Not here: the protocol (`client/device.rs`) and the fleet simulation itself
//! (`client/simulate.rs`, reusable from tests and benchmarks).
//!
//! Exit codes follow `cli/mod.rs`: 0 success, 1 failure (one line on stderr), 2 usage.

use std::fs;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use super::output::{size, table};
use crate::client::device::{Client, ClientConfig, ClientError, Progress};
use crate::client::simulate::{self, DeviceCreds, Options};
use crate::datadir::{DataDir, local_address};
use crate::model::hex;
use crate::ocp::wire::{self, OfferItem};

/// Frame, pipelining and group size a `check`/`download` device announces: 16 KiB groups,
/// 16 in flight, room for the largest group the server may grant.
const MAX_FRAME: u32 = 256 * 1024;
const MAX_INFLIGHT: u8 = 16;
const CHUNK_LOG: u8 = 4;

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
enum Fail {
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
        DeviceCommand::Check(args) => check(&args, data_dir),
        DeviceCommand::Download(args) => download(&args, data_dir),
        DeviceCommand::Simulate(args) => simulate_cmd(&args, data_dir),
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

/// The resolved server: address, certificate name and CA file.
struct Target {
    addr: String,
    server_name: String,
    ca_file: PathBuf,
}

fn resolve(endpoint: &Endpoint, data_dir: &Path) -> Result<Target, Fail> {
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
fn check_identity(identity: &Identity) -> Result<(), Fail> {
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

fn client_config(target: &Target, identity: &Identity) -> ClientConfig {
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

/// A runtime for one device connection; everything it does is sequential.
fn single_runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::Error(format!("cannot start the async runtime: {e}")))
}

fn offer_json(o: &OfferItem) -> Value {
    // versionNumber is a string, as everywhere in the API (u64 does not fit a JS number).
    json!({
        "type": o.fw_type,
        "versionNumber": o.version_number.to_string(),
        "version": o.version,
        "size": o.size,
        "sha256": hex(&o.sha256),
        "blake3": hex(&o.blake3),
        "pushed": o.pushed,
    })
}

/// Left-aligned columns, two spaces apart.
fn check(args: &CheckArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    check_identity(&args.identity)?;
    let target = resolve(&args.endpoint, data_dir)?;
    let cfg = client_config(&target, &args.identity);
    let installed: Vec<(u16, u64)> = args
        .installed
        .iter()
        .map(|i| (i.fw_type, i.version_number))
        .collect();
    if installed.len() > wire::CHECK_MAX_ITEMS {
        return Err(Fail::Usage(format!(
            "at most {} --installed values per CHECK",
            wire::CHECK_MAX_ITEMS
        )));
    }
    let rt = single_runtime()?;
    let (granted, offers) = rt
        .block_on(async {
            let mut client = Client::connect(&cfg).await?;
            let offers = client.check(&installed).await?;
            Ok::<_, ClientError>((client.granted, offers))
        })
        .map_err(|e| Fail::Error(e.explain(&target.addr)))?;
    if args.json {
        let v = json!({
            "deviceId": cfg.device_id,
            "pollIntervalSeconds": granted.poll_interval_s,
            "offers": offers.iter().map(offer_json).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    if offers.is_empty() {
        if installed.is_empty() {
            println!(
                "no offers: the server offers only for reported types; pass --installed TYPE=VN"
            );
        } else {
            println!("up to date: nothing offered for the reported types");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = offers
        .iter()
        .map(|o| {
            vec![
                o.fw_type.to_string(),
                o.version_number.to_string(),
                o.version.clone(),
                o.size.to_string(),
                hex(&o.sha256),
                if o.pushed { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TYPE",
                "VERSION_NUMBER",
                "VERSION",
                "SIZE",
                "SHA256",
                "PUSHED"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// download

/// The `--state` file: enough to resume the same image, and to notice a different one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DownloadState {
    /// BLAKE3 of the image, lowercase hex: the image's identity.
    blake3: String,
    size: u64,
    /// Bytes from offset 0 that were verified and are on disk in --out.
    verified_upto: u64,
    version_number: u64,
    fw_type: u16,
}

/// Replaces the state file atomically (temporary file, fsync, rename), so a kill at any
/// moment leaves either the old or the new state, never a torn one.
fn save_state(path: &Path, state: &DownloadState) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let text = serde_json::to_string(state).map_err(std::io::Error::other)?;
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    // Losing the rename itself in a power cut leaves the older state: resume then redoes
    // a little more, which is safe, so the directory is not fsynced.
    fs::rename(&tmp, path)
}

/// The saved state, if there is a readable one (an unreadable one only costs a restart).
fn load_state(path: &Path, json_mode: bool) -> Option<DownloadState> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            note(
                json_mode,
                &format!("cannot read {} ({e}); starting over", path.display()),
            );
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            note(
                json_mode,
                &format!(
                    "{} is not a download state ({e}); starting over",
                    path.display()
                ),
            );
            None
        }
    }
}

/// A message beside the result: stdout normally, stderr when stdout carries JSON.
fn note(json_mode: bool, text: &str) {
    if json_mode {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// The CHECK list of `download`: the TYPE=VN values plus --type with its VN (default 0).
fn download_check_list(args: &DownloadArgs) -> Result<Vec<(u16, u64)>, Fail> {
    let mut list: Vec<(u16, u64)> = Vec::new();
    let mut plain = None;
    for i in &args.installed {
        match *i {
            InstalledArg::Typed(t) => {
                list.retain(|(ft, _)| *ft != t.fw_type);
                list.push((t.fw_type, t.version_number));
            }
            InstalledArg::Plain(vn) => {
                if plain.replace(vn).is_some() {
                    return Err(Fail::Usage(
                        "--installed VN may be given once (use TYPE=VN for more types)".into(),
                    ));
                }
            }
        }
    }
    match args.fw_type {
        Some(t) => {
            if let Some(vn) = plain {
                list.retain(|(ft, _)| *ft != t);
                list.push((t, vn));
            } else if !list.iter().any(|(ft, _)| *ft == t) {
                list.push((t, 0));
            }
        }
        None if plain.is_some() => {
            return Err(Fail::Usage(
                "--installed VN needs --type T (or write it as --installed TYPE=VN)".into(),
            ));
        }
        None => {}
    }
    if list.is_empty() {
        return Err(Fail::Usage(
            "say which firmware to download: --type T [--installed VN], or --installed TYPE=VN"
                .into(),
        ));
    }
    if list.len() > wire::CHECK_MAX_ITEMS {
        return Err(Fail::Usage(format!(
            "at most {} firmware types per CHECK",
            wire::CHECK_MAX_ITEMS
        )));
    }
    Ok(list)
}

fn pick_offer(offers: Vec<OfferItem>, fw_type: Option<u16>) -> Result<OfferItem, Fail> {
    if let Some(t) = fw_type {
        return offers.into_iter().find(|o| o.fw_type == t).ok_or_else(|| {
            Fail::Error(format!(
                "nothing to download: no update offered for type {t}"
            ))
        });
    }
    if offers.len() > 1 {
        let types: Vec<String> = offers.iter().map(|o| o.fw_type.to_string()).collect();
        return Err(Fail::Usage(format!(
            "updates are offered for types {}; pick one with --type T",
            types.join(", ")
        )));
    }
    offers.into_iter().next().ok_or_else(|| {
        Fail::Error("nothing to download: no update offered for the reported types".into())
    })
}

/// Progress output: one redrawn line on a terminal, else a plain line every 10%.
struct Meter {
    total: u64,
    started: Instant,
    from: u64,
    to_stderr: bool,
    tty: bool,
    next_tenth: u64,
    last_draw: Option<Instant>,
}

impl Meter {
    fn new(total: u64, from: u64, to_stderr: bool) -> Self {
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Self {
            total,
            started: Instant::now(),
            from,
            to_stderr,
            tty,
            next_tenth: from.saturating_mul(10) / total.max(1) + 1,
            last_draw: None,
        }
    }

    fn emit(&self, text: &str) {
        let result = if self.to_stderr {
            let mut e = std::io::stderr().lock();
            e.write_all(text.as_bytes()).and_then(|()| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes()).and_then(|()| o.flush())
        };
        // Progress is decoration: a closed pipe must not abort the download.
        let _ = result;
    }

    fn line(&self, done: u64) -> String {
        let pct = done as f64 * 100.0 / self.total.max(1) as f64;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (done - self.from) as f64 / secs / (1 << 20) as f64
        } else {
            0.0
        };
        format!(
            "{pct:5.1}%  {} of {}  {rate:.1} MiB/s",
            size(done),
            size(self.total)
        )
    }

    fn update(&mut self, done: u64) {
        if self.tty {
            // Redraw at most ten times a second: the terminal is slower than the network.
            if self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
                && done < self.total
            {
                return;
            }
            self.last_draw = Some(Instant::now());
            self.emit(&format!("\r{}\x1b[K", self.line(done)));
        } else {
            let tenth = done.saturating_mul(10) / self.total.max(1);
            if tenth >= self.next_tenth {
                self.next_tenth = tenth + 1;
                self.emit(&format!("{}\n", self.line(done)));
            }
        }
    }

    fn finish(&mut self) {
        if self.tty && self.last_draw.is_some() {
            self.emit("\n");
        }
    }
}

/// BLAKE3 and SHA-256 of a whole file.
fn hash_file(path: &Path) -> std::io::Result<([u8; 32], [u8; 32], u64)> {
    let mut f = fs::File::open(path)?;
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        b3.update(&buf[..n]);
        sha.update(&buf[..n]);
        len += n as u64;
    }
    Ok((*b3.finalize().as_bytes(), sha.finalize().into(), len))
}

fn download(args: &DownloadArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    let check_list = download_check_list(args)?;
    if args.state == args.out {
        return Err(Fail::Usage(
            "--state and --out must be different files".into(),
        ));
    }
    check_identity(&args.identity)?;
    let target = resolve(&args.endpoint, data_dir)?;
    let cfg = client_config(&target, &args.identity);
    let saved = load_state(&args.state, args.json);
    let rt = single_runtime()?;
    // Blocking file I/O inside the runtime is deliberate: this runtime serves exactly this
    // one download, so a write or fsync only delays the next frame, which is the point.
    rt.block_on(download_async(args, &target, &cfg, &check_list, saved))
}

async fn download_async(
    args: &DownloadArgs,
    target: &Target,
    cfg: &ClientConfig,
    check_list: &[(u16, u64)],
    saved: Option<DownloadState>,
) -> Result<ExitCode, Fail> {
    let addr = target.addr.as_str();
    let net = |e: ClientError| Fail::Error(e.explain(addr));
    let out_path = &args.out;
    let file_err = |what: &str, p: &Path, e: std::io::Error| {
        Fail::Error(format!("cannot {what} {}: {e}", p.display()))
    };

    let mut client = Client::connect(cfg).await.map_err(net)?;
    let offers = client.check(check_list).await.map_err(net)?;
    let offer = pick_offer(offers, args.fw_type)?;
    let blake3_hex = hex(&offer.blake3);

    // Resume only the very same image (content-addressed: same BLAKE3, same bytes) into an
    // output file that is still there; anything else starts over.
    let resume_from = match &saved {
        Some(s) if s.blake3 == blake3_hex && s.size == offer.size && out_path.is_file() => {
            // GETs start on group boundaries; a finished download needs none.
            let g = crate::hashtree::group_size(client.granted.chunk_log);
            match s.verified_upto.min(offer.size) {
                done if done == offer.size => done,
                part => part - part % g,
            }
        }
        Some(s) if s.blake3 != blake3_hex => {
            note(
                args.json,
                &format!(
                    "the offer changed since {} was written (image {} now, was {}); starting over",
                    args.state.display(),
                    blake3_hex.get(..16).unwrap_or(&blake3_hex),
                    s.blake3.get(..16).unwrap_or(&s.blake3)
                ),
            );
            0
        }
        _ => 0,
    };
    let mut state = DownloadState {
        blake3: blake3_hex.clone(),
        size: offer.size,
        verified_upto: resume_from,
        version_number: offer.version_number,
        fw_type: offer.fw_type,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(out_path)
        .map_err(|e| file_err("open", out_path, e))?;
    if resume_from == 0 {
        file.set_len(0)
            .map_err(|e| file_err("truncate", out_path, e))?;
    }
    // Written before any new byte, so a stale state can never vouch for the new image.
    save_state(&args.state, &state).map_err(|e| file_err("write", &args.state, e))?;
    if resume_from > 0 {
        note(
            args.json,
            &format!(
                "resuming at {} of {} ({})",
                size(resume_from),
                size(offer.size),
                args.state.display()
            ),
        );
    }

    client
        .report(offer.fw_type, offer.version_number, 1, 0, resume_from)
        .await
        .map_err(net)?;

    let mut progress = Progress {
        blake3: offer.blake3,
        size: offer.size,
        verified_upto: resume_from,
    };
    let started = Instant::now();
    let save_every = args.save_every << 20;
    let mut meter = Meter::new(offer.size, resume_from, args.json);
    let mut sink_error: Option<Fail> = None;
    let mut written = resume_from;
    let mut last_saved = resume_from;
    let result = if progress.verified_upto == offer.size {
        Ok(())
    } else {
        client
            .download(&mut progress, None, |offset, data| {
                let step = (|| -> std::io::Result<()> {
                    file.seek(SeekFrom::Start(offset))?;
                    file.write_all(data)?;
                    let upto = offset + data.len() as u64;
                    if upto - last_saved >= save_every {
                        // Data first, durable, then the state that vouches for it.
                        file.sync_data()?;
                        state.verified_upto = upto;
                        save_state(&args.state, &state)?;
                        last_saved = upto;
                    }
                    written = upto;
                    Ok(())
                })();
                if let Err(e) = step {
                    let message = format!(
                        "cannot write {} or {}: {e}",
                        out_path.display(),
                        args.state.display()
                    );
                    sink_error = Some(Fail::Error(message));
                    return Err(std::io::Error::other("local write failed"));
                }
                meter.update(written);
                Ok(())
            })
            .await
    };
    meter.finish();
    if let Err(e) = result {
        if let Some(local) = sink_error {
            return Err(local);
        }
        // Keep what verified so the next run continues from there.
        let kept = file
            .sync_data()
            .and_then(|()| {
                state.verified_upto = progress.verified_upto;
                save_state(&args.state, &state)
            })
            .is_ok();
        let how = if kept {
            format!(
                "; run the same command again to resume from {}",
                size(state.verified_upto)
            )
        } else {
            String::new()
        };
        return Err(Fail::Error(format!(
            "download stopped at {} of {}: {}{how}",
            size(progress.verified_upto),
            size(offer.size),
            e.explain(addr)
        )));
    }
    file.set_len(offer.size)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_err("write", out_path, e))?;
    drop(file);
    state.verified_upto = offer.size;
    save_state(&args.state, &state).map_err(|e| file_err("write", &args.state, e))?;

    let (b3, sha, len) = hash_file(out_path).map_err(|e| file_err("read", out_path, e))?;
    if b3 != offer.blake3 || sha != offer.sha256 || len != offer.size {
        // The chunks verified, so the file was changed underneath (or resumed from a file
        // that was): forget the progress so the next run starts clean.
        let _ = fs::remove_file(&args.state);
        let _ = client
            .report(offer.fw_type, offer.version_number, 5, 5, offer.size)
            .await;
        return Err(Fail::Error(format!(
            "{} does not match the offered image's BLAKE3/SHA-256 (was it changed while downloading?); progress reset, run again to download it anew",
            out_path.display()
        )));
    }
    client
        .report(offer.fw_type, offer.version_number, 2, 0, offer.size)
        .await
        .map_err(net)?;

    let fetched = offer.size - resume_from;
    let elapsed = started.elapsed();
    if args.json {
        let mut v = offer_json(&offer);
        if let Some(m) = v.as_object_mut() {
            m.insert("out".into(), json!(out_path.display().to_string()));
            m.insert("resumedFrom".into(), json!(resume_from));
            m.insert("fetched".into(), json!(fetched));
            m.insert(
                "elapsedSeconds".into(),
                json!((elapsed.as_secs_f64() * 1000.0).round() / 1000.0),
            );
        }
        println!("{v}");
    } else {
        println!(
            "downloaded {}: type {} version {} (versionNumber {}), {} bytes, sha256 {}",
            out_path.display(),
            offer.fw_type,
            offer.version,
            offer.version_number,
            offer.size,
            hex(&offer.sha256)
        );
        println!(
            "fetched {} in {:.2} s{}; reported DOWNLOADED",
            size(fetched),
            elapsed.as_secs_f64(),
            if resume_from > 0 {
                format!(" (resumed at {})", size(resume_from))
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// simulate

fn simulate_cmd(args: &SimulateArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    let target = resolve(&args.endpoint, data_dir)?;
    let text = fs::read_to_string(&args.devices_file)
        .map_err(|e| Fail::Error(format!("cannot read {}: {e}", args.devices_file.display())))?;
    let mut devices: Vec<DeviceCreds> = simulate::parse_devices_csv(&text)
        .map_err(|e| Fail::Error(format!("{}: {e}", args.devices_file.display())))?;
    if devices.is_empty() {
        return Err(Fail::Error(format!(
            "{} lists no devices (expected deviceId,token lines)",
            args.devices_file.display()
        )));
    }
    if let Some(n) = args.devices {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > devices.len() {
            return Err(Fail::Usage(format!(
                "--devices {n} but {} lists only {}; import more devices or lower --devices",
                args.devices_file.display(),
                devices.len()
            )));
        }
        devices.truncate(n);
    }
    let mut opts = Options::new(
        target.addr.clone(),
        target.server_name.clone(),
        target.ca_file.clone(),
        devices,
    );
    opts.concurrency = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
    opts.fw_type = args.fw_type;
    opts.chunk_log = args.chunk_log;
    opts.max_inflight = args.max_inflight;
    opts.timeout = Duration::from_secs(args.timeout);
    opts.raw = args.raw;
    opts.hash_image = !args.skip_image_hash;
    if let Some(size) = args.get_size {
        let group = crate::hashtree::group_size(args.chunk_log);
        if !u64::from(size).is_multiple_of(group) {
            return Err(Fail::Usage(format!(
                "--get-size {size} must be a multiple of the group size {group} (1024·2^{})",
                args.chunk_log
            )));
        }
        opts.get_size = Some(size);
    }
    opts.mode = match (args.repeat_seconds, args.hold) {
        (Some(window), _) => simulate::Mode::Repeat {
            warmup: Duration::from_secs(args.warmup_seconds),
            window: Duration::from_secs(window),
        },
        (None, Some(hold)) => simulate::Mode::Hold {
            hold: Duration::from_secs(hold),
            ping_every: Duration::from_secs(args.ping_every),
        },
        (None, None) => simulate::Mode::Once,
    };
    if opts.mode != simulate::Mode::Once {
        // Progress lines for whoever measures alongside (bench/ocp/run.sh waits for them).
        opts.hook = Some(simulate::Hook(std::sync::Arc::new(announce)));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::Error(format!("cannot start the async runtime: {e}")))?;
    let report = rt
        .block_on(simulate::run(opts))
        .map_err(|e| Fail::Error(e.to_string()))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_report(&report);
    }
    if report.failed > 0 {
        if !args.json {
            eprintln!(
                "otad: {} of {} devices failed",
                report.failed, report.devices
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One stderr line per moment of a repeat or hold run, with the wall-clock time.
fn announce(event: simulate::SimEvent) {
    use simulate::SimEvent;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let text = match event {
        SimEvent::AllConnected {
            connected,
            failed,
            after,
        } => format!(
            "all connected: {connected} devices ({failed} failed) after {:.2} s",
            after.as_secs_f64()
        ),
        SimEvent::WindowStart => "window started".to_string(),
        SimEvent::WindowEnd => "window ended".to_string(),
        SimEvent::HoldEnd => "hold ended".to_string(),
    };
    let cpu = process_cpu_seconds().map_or(String::new(), |s| format!(", process CPU {s:.2} s"));
    eprintln!("otad: simulate: {text} (at {now:.3}{cpu})");
}

/// User + system CPU time of this process so far, from /proc/self/stat (Linux; the kernel
/// reports it in USER_HZ = 100 ticks per second), so a benchmark can charge the simulator's
/// own CPU to exactly its measuring window.
fn process_cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn print_report(r: &simulate::Report) {
    let secs = r.elapsed.as_secs_f64();
    let how = match r.mode {
        simulate::Mode::Once => format!("{} at a time", r.concurrency),
        _ => format!("all at once, {} connecting at a time", r.concurrency),
    };
    println!(
        "devices     {} ok, {} failed (of {}, {how})",
        r.ok, r.failed, r.devices
    );
    println!(
        "elapsed     {secs:.2} s: {:.1} devices/s",
        r.devices_per_sec()
    );
    match r.mode {
        simulate::Mode::Hold { hold, ping_every } => println!(
            "held        {} devices for {:.0} s after the last connected, {} PINGs (every {:.0} s)",
            r.held,
            hold.as_secs_f64(),
            r.pings,
            ping_every.as_secs_f64()
        ),
        simulate::Mode::Repeat { warmup, .. } => println!(
            "window      {:.2} s after {:.0} s of warm-up; {} whole images (all passes)",
            r.measured().as_secs_f64(),
            warmup.as_secs_f64(),
            r.images
        ),
        simulate::Mode::Once => {}
    }
    let what = if r.raw { "raw, unverified" } else { "verified" };
    println!(
        "data        {:.2} MB {what}: {:.2} MB/s",
        r.bytes as f64 / 1e6,
        r.mb_per_sec()
    );
    println!(
        "chunks      {} {what} ({} bytes per GET, groups of {}): {:.0} chunks/s",
        r.chunks,
        r.get_bytes,
        r.chunk_bytes,
        r.chunks_per_sec()
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let rows: Vec<Vec<String>> = [
        ("connect+HELLO", r.connect),
        ("CHECK→OFFER", r.check),
        ("download", r.download),
        ("GET→DATA", r.chunk),
    ]
    .iter()
    .filter(|(_, p)| p.count > 0)
    .map(|(name, p)| {
        vec![
            (*name).to_string(),
            p.count.to_string(),
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max),
        ]
    })
    .collect();
    print!(
        "{}",
        table(&["LATENCY", "N", "P50", "P90", "P99", "MAX"], &rows)
    );
    if !r.errors.is_empty() {
        println!("first {} errors:", r.errors.len());
        for f in &r.errors {
            println!("  {} ({}): {}", f.device_id, f.stage.as_str(), f.error);
        }
    }
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

    #[test]
    fn host_of_server() {
        assert_eq!(split_host("ota.example.com:8444"), Some("ota.example.com"));
        assert_eq!(split_host("[::1]:8444"), Some("::1"));
        assert_eq!(split_host("127.0.0.1"), None);
        assert_eq!(split_host(":8444"), None);
        assert_eq!(split_host("host:port"), None);
    }
}
