//! The fleet simulator behind `otad device simulate`, usable from tests and benchmarks.
//!
//! Lives here: the options, the per-device flows, the latency statistics and the
//! [`Report`] with its stable JSON form.
//!
//! Three modes ([`Mode`]):
//! - **once** (the default): every device connects + HELLO, CHECKs, downloads the offered
//!   image once (every chunk verified, the whole image checked against both hashes),
//!   REPORTs DOWNLOADED and disconnects; a bounded worker pool runs C devices at a time.
//! - **repeat**: every device connects at once and downloads the image over and over; only
//!   the chunks that arrive inside a measuring window (after a warm-up) are counted, so the
//!   figures are steady-state throughput (chunks/s, MB/s, GET → DATA latency).
//! - **hold**: every device connects, CHECKs, then stays idle (a PING now and then) until a
//!   given time after the last one connected: idle authenticated connections, for memory
//!   measurements of the server.
//!
//! GETs are verified slices of one group by default; [`Options::raw`] asks for raw bytes
//! without proof and [`Options::get_size`] for more than one group per GET.
//!
//! Not here: argument parsing and human output (`src/cli/device/`) and the protocol itself
//! (`device.rs`; its verified download is what the default once mode uses).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::{Semaphore, watch};

use super::device::{Client, ClientConfig, ClientError, Progress};
use crate::hashtree;
use crate::ocp::wire::{Message, OfferItem, PROOF_ROOM};

/// How many device failures a [`Report`] keeps (the first ones, by time).
pub const MAX_ERRORS: usize = 10;

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

    fn emit(&self, event: SimEvent) {
        if let Some(hook) = &self.hook {
            (hook.0)(event);
        }
    }
}

/// Why a simulation could not start at all (per-device failures go into the [`Report`]).
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

/// Where in its flow a device failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Check,
    Download,
    Verify,
    Report,
    Hold,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Check => "check",
            Stage::Download => "download",
            Stage::Verify => "verify",
            Stage::Report => "report",
            Stage::Hold => "hold",
        }
    }
}

/// One failed device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub device_id: String,
    pub stage: Stage,
    pub error: String,
}

/// Percentiles of one measured step, over the devices that completed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles (no interpolation: every figure is a measured value).
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        if n == 0 {
            return Self::default();
        }
        let rank = |p: usize| samples[(p * n).div_ceil(100).clamp(1, n) - 1];
        Self {
            count: n,
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: samples[n - 1],
        }
    }

    fn to_json(self) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        json!({
            "count": self.count,
            "p50": ms(self.p50),
            "p90": ms(self.p90),
            "p99": ms(self.p99),
            "max": ms(self.max),
        })
    }
}

/// Totals of one simulation.
#[derive(Debug, Clone)]
pub struct Report {
    pub mode: Mode,
    pub devices: usize,
    pub concurrency: usize,
    pub ok: usize,
    pub failed: usize,
    /// Whether GETs asked for raw bytes (no proof).
    pub raw: bool,
    /// Image bytes received by the devices that succeeded (verified unless raw); in repeat
    /// mode only those that arrived inside the window.
    pub bytes: u64,
    /// DATA frames counted like `bytes` (one GET each).
    pub chunks: u64,
    /// Of `chunks`, those checked against the BLAKE3 tree (all of them unless raw).
    pub verified_chunks: u64,
    /// Bytes per verification group (1024 · 2^chunk_log).
    pub chunk_bytes: u64,
    /// Bytes asked for per GET.
    pub get_bytes: u64,
    /// Whole images received (repeat: including those finished before the window).
    pub images: u64,
    pub elapsed: Duration,
    /// Repeat: how long the measuring window lasted; the rates are over it.
    pub window: Option<Duration>,
    /// Hold: devices still connected when the hold ended, and PINGs answered.
    pub held: usize,
    pub pings: u64,
    /// TCP connect + TLS handshake + HELLO → HELLO_OK.
    pub connect: Percentiles,
    /// CHECK → OFFER.
    pub check: Percentiles,
    /// Once: first GET → last byte of the image.
    pub download: Percentiles,
    /// Repeat: GET sent → its DATA received (and verified), inside the window.
    pub chunk: Percentiles,
    /// The first failures (by time), at most [`MAX_ERRORS`].
    pub errors: Vec<Failure>,
}

impl Report {
    /// The measuring time: the window in repeat mode, else the whole run.
    pub fn measured(&self) -> Duration {
        self.window.unwrap_or(self.elapsed)
    }

    fn per_second(&self, n: f64) -> f64 {
        let secs = self.measured().as_secs_f64();
        if secs > 0.0 { n / secs } else { 0.0 }
    }

    pub fn devices_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Decimal megabytes (10^6 bytes) per second of image data.
    pub fn mb_per_sec(&self) -> f64 {
        self.per_second(self.bytes as f64 / 1e6)
    }

    /// DATA frames per second (verified ones unless raw).
    pub fn chunks_per_sec(&self) -> f64 {
        self.per_second(self.chunks as f64)
    }

    /// The machine form printed by `otad device simulate --json`; field names are stable.
    pub fn to_json(&self) -> Value {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let mut v = json!({
            "mode": self.mode.as_str(),
            "devices": self.devices,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "failed": self.failed,
            "raw": self.raw,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "verifiedChunks": self.verified_chunks,
            "chunkBytes": self.chunk_bytes,
            "getBytes": self.get_bytes,
            "images": self.images,
            "elapsedSeconds": round(self.elapsed.as_secs_f64()),
            "devicesPerSecond": round(self.devices_per_sec()),
            "mbPerSecond": round(self.mb_per_sec()),
            "chunksPerSecond": round(self.chunks_per_sec()),
            "latencyMs": {
                "connect": self.connect.to_json(),
                "check": self.check.to_json(),
                "download": self.download.to_json(),
                "chunk": self.chunk.to_json(),
            },
            "errors": self.errors.iter().map(|f| json!({
                "deviceId": f.device_id,
                "stage": f.stage.as_str(),
                "error": f.error,
            })).collect::<Vec<_>>(),
        });
        if let Some(m) = v.as_object_mut() {
            match self.mode {
                Mode::Once => {}
                Mode::Repeat { warmup, .. } => {
                    m.insert("warmupSeconds".into(), json!(warmup.as_secs_f64()));
                    m.insert(
                        "windowSeconds".into(),
                        json!(round(self.measured().as_secs_f64())),
                    );
                }
                Mode::Hold { hold, ping_every } => {
                    m.insert("holdSeconds".into(), json!(hold.as_secs_f64()));
                    m.insert("pingEverySeconds".into(), json!(ping_every.as_secs_f64()));
                    m.insert("held".into(), json!(self.held));
                    m.insert("pings".into(), json!(self.pings));
                }
            }
        }
        v
    }
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
fn check_ca(path: &std::path::Path) -> Result<(), SimError> {
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

/// What one device measured.
#[derive(Debug, Default)]
struct Outcome {
    connect: Option<Duration>,
    check: Option<Duration>,
    download: Option<Duration>,
    tally: Tally,
    held: bool,
    pings: u64,
    failure: Option<(Instant, Failure)>,
}

/// Counted DATA frames of one device.
#[derive(Debug, Default)]
struct Tally {
    bytes: u64,
    chunks: u64,
    images: u64,
    /// GET → DATA, repeat mode only.
    latencies: Vec<Duration>,
}

/// Runs the simulation. Per-device failures are counted and listed in the report; only a
/// setup problem is an `Err`.
pub async fn run(opts: Options) -> Result<Report, SimError> {
    if opts.devices.is_empty() {
        return Err(SimError::NoDevices);
    }
    if opts.concurrency == 0 {
        return Err(SimError::Concurrency);
    }
    let g = hashtree::group_size(opts.chunk_log);
    let get = opts.get_bytes();
    if get == 0 || !get.is_multiple_of(g) || get > u64::from(u32::MAX) {
        return Err(SimError::GetSize(g));
    }
    check_ca(&opts.ca_file)?;
    let opts = Arc::new(opts);
    let started = Instant::now();
    let outcomes = match opts.mode {
        Mode::Once => run_pool(&opts).await?,
        Mode::Repeat { .. } | Mode::Hold { .. } => run_together(&opts, started).await?,
    };
    let elapsed = started.elapsed();
    Ok(summarize(&opts, outcomes, elapsed))
}

/// Once: a fixed pool of workers pulling the next device index keeps exactly
/// `concurrency` devices in flight without one task (and its buffers) per device waiting on
/// a permit.
async fn run_pool(opts: &Arc<Options>) -> Result<Vec<Outcome>, SimError> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers = opts.concurrency.min(opts.devices.len());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let opts = Arc::clone(opts);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(device) = opts.devices.get(i) else {
                    break;
                };
                let mut out = Outcome::default();
                let result = once_flow(&opts, device, &mut out).await;
                record(&mut out, device, result);
                outcomes.push(out);
            }
            outcomes
        });
    }
    join_all(tasks).await
}

/// Shared by the devices of a repeat or hold run.
struct Together {
    /// Devices done connecting (successfully or not).
    settled: AtomicUsize,
    connected: AtomicUsize,
    /// When counting starts and when everything stops; set once every device settled.
    times: watch::Sender<Option<(Instant, Instant)>>,
    /// Bounds how many devices connect at the same time.
    connecting: Semaphore,
}

/// Repeat and hold: one task per device, all connected at once.
async fn run_together(opts: &Arc<Options>, started: Instant) -> Result<Vec<Outcome>, SimError> {
    let n = opts.devices.len();
    let (times, _) = watch::channel(None);
    let shared = Arc::new(Together {
        settled: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        times,
        connecting: Semaphore::new(opts.concurrency.min(Semaphore::MAX_PERMITS)),
    });
    // Reports the window's (or the hold's) end points as they pass.
    let announcer = {
        let opts = Arc::clone(opts);
        let mut rx = shared.times.subscribe();
        tokio::spawn(async move {
            let times = match rx.wait_for(Option::is_some).await {
                Ok(times) => *times,
                Err(_) => return,
            };
            let Some((start, end)) = times else { return };
            match opts.mode {
                Mode::Repeat { .. } => {
                    tokio::time::sleep_until(start.into()).await;
                    opts.emit(SimEvent::WindowStart);
                    tokio::time::sleep_until(end.into()).await;
                    opts.emit(SimEvent::WindowEnd);
                }
                Mode::Hold { .. } => {
                    tokio::time::sleep_until(end.into()).await;
                    opts.emit(SimEvent::HoldEnd);
                }
                Mode::Once => {}
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let opts = Arc::clone(opts);
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let device = &opts.devices[i];
            let mut out = Outcome::default();
            let result = together_flow(&opts, i, device, &shared, started, &mut out).await;
            record(&mut out, device, result);
            vec![out]
        });
    }
    let outcomes = join_all(tasks).await;
    // The devices stopped at the end the announcer waits for; let it say so, unless they all
    // failed early and that end is still far off.
    let mut announcer = announcer;
    if tokio::time::timeout(Duration::from_millis(500), &mut announcer)
        .await
        .is_err()
    {
        announcer.abort();
    }
    outcomes
}

/// Marks a device settled; the last one fixes the run's times and says so.
fn settle(opts: &Options, shared: &Together, ok: bool, started: Instant) {
    if ok {
        shared.connected.fetch_add(1, Ordering::Relaxed);
    }
    let n = opts.devices.len();
    if shared.settled.fetch_add(1, Ordering::AcqRel) + 1 != n {
        return;
    }
    let now = Instant::now();
    let times = match opts.mode {
        Mode::Repeat { warmup, window } => (now + warmup, now + warmup + window),
        Mode::Hold { hold, .. } => (now, now + hold),
        Mode::Once => (now, now),
    };
    let connected = shared.connected.load(Ordering::Relaxed);
    opts.emit(SimEvent::AllConnected {
        connected,
        failed: n - connected,
        after: now - started,
    });
    shared.times.send_replace(Some(times));
}

async fn join_all(mut tasks: tokio::task::JoinSet<Vec<Outcome>>) -> Result<Vec<Outcome>, SimError> {
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes
            .extend(joined.map_err(|e| SimError::Runtime(format!("a device task failed: {e}")))?);
    }
    Ok(outcomes)
}

fn record(out: &mut Outcome, device: &DeviceCreds, result: Result<(), (Stage, String)>) {
    if let Err((stage, error)) = result {
        out.failure = Some((
            Instant::now(),
            Failure {
                device_id: device.id.clone(),
                stage,
                error,
            },
        ));
    }
}

fn summarize(opts: &Options, outcomes: Vec<Outcome>, elapsed: Duration) -> Report {
    let mut failures = Vec::new();
    let (mut connect, mut check, mut download, mut chunk) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut bytes, mut chunks, mut images, mut held, mut pings) = (0u64, 0u64, 0u64, 0, 0u64);
    for o in outcomes {
        connect.extend(o.connect);
        check.extend(o.check);
        download.extend(o.download);
        pings += o.pings;
        match o.failure {
            Some(f) => failures.push(f),
            None => {
                bytes += o.tally.bytes;
                chunks += o.tally.chunks;
                images += o.tally.images;
                chunk.extend(o.tally.latencies);
                held += usize::from(o.held);
            }
        }
    }
    let failed = failures.len();
    failures.sort_by_key(|(at, _)| *at);
    let window = match opts.mode {
        Mode::Repeat { window, .. } => Some(window),
        _ => None,
    };
    Report {
        mode: opts.mode,
        devices: opts.devices.len(),
        concurrency: opts.concurrency.min(opts.devices.len()),
        ok: opts.devices.len() - failed,
        failed,
        raw: opts.raw,
        bytes,
        chunks,
        verified_chunks: if opts.raw { 0 } else { chunks },
        chunk_bytes: hashtree::group_size(opts.chunk_log),
        get_bytes: opts.get_bytes(),
        images,
        elapsed,
        window,
        held,
        pings,
        connect: Percentiles::of(connect),
        check: Percentiles::of(check),
        download: Percentiles::of(download),
        chunk: Percentiles::of(chunk),
        errors: failures
            .into_iter()
            .take(MAX_ERRORS)
            .map(|(_, f)| f)
            .collect(),
    }
}

/// Runs one step against a deadline.
async fn within<T>(
    deadline: tokio::time::Instant,
    stage: Stage,
    addr: &str,
    step: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, (Stage, String)> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((stage, e.explain(addr))),
        Err(_) => Err((stage, "timed out".to_string())),
    }
}

/// Connect + HELLO, then CHECK for the simulated firmware type; returns the offer.
async fn connect_and_check(
    opts: &Options,
    device: &DeviceCreds,
    deadline: tokio::time::Instant,
    out: &mut Outcome,
) -> Result<(Client, OfferItem), (Stage, String)> {
    let addr = opts.addr.as_str();
    let get = opts.get_bytes();
    let cfg = ClientConfig {
        addr: opts.addr.clone(),
        server_name: opts.server_name.clone(),
        ca_file: opts.ca_file.clone(),
        device_id: device.id.clone(),
        token: device.token.clone(),
        // Room for the largest DATA a GET may bring (the server grants no more than its own
        // limit, and answers TOO_LARGE past it).
        max_frame: opts
            .max_frame
            .max(u32::try_from(get + u64::from(PROOF_ROOM)).unwrap_or(u32::MAX)),
        max_inflight: opts.max_inflight,
        chunk_log: opts.chunk_log,
    };
    let t = Instant::now();
    let mut client = within(deadline, Stage::Connect, addr, Client::connect(&cfg)).await?;
    out.connect = Some(t.elapsed());

    let t = Instant::now();
    let offers = within(
        deadline,
        Stage::Check,
        addr,
        client.check(&[(opts.fw_type, 0)]),
    )
    .await?;
    out.check = Some(t.elapsed());
    let offer = offers
        .into_iter()
        .find(|o| o.fw_type == opts.fw_type)
        .ok_or_else(|| {
            (
                Stage::Check,
                format!(
                    "nothing offered for type {} at installed version 0; associate an image with the device's type",
                    opts.fw_type
                ),
            )
        })?;
    Ok((client, offer))
}

/// Once: connect, CHECK, download the image, check it, REPORT DOWNLOADED.
async fn once_flow(
    opts: &Options,
    device: &DeviceCreds,
    out: &mut Outcome,
) -> Result<(), (Stage, String)> {
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let addr = opts.addr.as_str();
    let (mut client, offer) = connect_and_check(opts, device, deadline, out).await?;
    let t = Instant::now();
    let mut tally = Tally::default();
    if opts.raw || opts.get_size.is_some() || !opts.hash_image {
        let fetch = Fetch::new(opts, &client);
        let end = fetch_image(&mut client, &offer, &fetch, None, deadline, &mut tally).await?;
        debug_assert!(matches!(end, PassEnd::Complete));
    } else {
        reference_download(&mut client, &offer, deadline, addr, &mut tally).await?;
    }
    out.download = Some(t.elapsed());
    within(
        deadline,
        Stage::Report,
        addr,
        client.report(opts.fw_type, offer.version_number, 2, 0, offer.size),
    )
    .await?;
    out.tally = tally;
    Ok(())
}

/// The reference client's verified download, and both hashes of the whole image on top.
async fn reference_download(
    client: &mut Client,
    offer: &OfferItem,
    deadline: tokio::time::Instant,
    addr: &str,
    tally: &mut Tally,
) -> Result<(), (Stage, String)> {
    let mut progress = Progress {
        blake3: offer.blake3,
        size: offer.size,
        verified_upto: 0,
    };
    // The client verified every chunk against the root already; hashing the delivered
    // stream as well checks the whole image against both hashes of the offer, end to end.
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut chunks = 0u64;
    within(
        deadline,
        Stage::Download,
        addr,
        client.download(&mut progress, None, |_, data| {
            b3.update(data);
            sha.update(data);
            chunks += 1;
            Ok(())
        }),
    )
    .await?;
    let sha: [u8; 32] = sha.finalize().into();
    if progress.verified_upto != offer.size
        || b3.finalize().as_bytes() != &offer.blake3
        || sha != offer.sha256
    {
        return Err((
            Stage::Verify,
            format!(
                "the image ({} of {} bytes) does not match the offer's hashes",
                progress.verified_upto, offer.size
            ),
        ));
    }
    tally.bytes += offer.size;
    tally.chunks += chunks;
    tally.images += 1;
    Ok(())
}

/// Repeat and hold: connect (bounded by the semaphore), settle, then stream or idle.
async fn together_flow(
    opts: &Options,
    index: usize,
    device: &DeviceCreds,
    shared: &Together,
    started: Instant,
    out: &mut Outcome,
) -> Result<(), (Stage, String)> {
    let connected = {
        let _permit = shared.connecting.acquire().await;
        let deadline = tokio::time::Instant::now() + opts.timeout;
        connect_and_check(opts, device, deadline, out).await
    };
    settle(opts, shared, connected.is_ok(), started);
    let (mut client, offer) = connected?;
    let mut times = shared.times.subscribe();
    match opts.mode {
        Mode::Repeat { .. } => {
            let fetch = Fetch::new(opts, &client);
            let mut window = Window {
                rx: times,
                known: None,
            };
            let mut tally = Tally::default();
            loop {
                let deadline = tokio::time::Instant::now() + opts.timeout;
                let end = fetch_image(
                    &mut client,
                    &offer,
                    &fetch,
                    Some(&mut window),
                    deadline,
                    &mut tally,
                )
                .await;
                match end {
                    Ok(PassEnd::Complete) => continue,
                    Ok(PassEnd::WindowOver) => break,
                    Err(e) => {
                        out.tally = tally;
                        return Err(e);
                    }
                }
            }
            out.tally = tally;
            Ok(())
        }
        Mode::Hold { ping_every, .. } => {
            let addr = opts.addr.as_str();
            // Spread the PINGs of a fleet that connected at once over half an interval.
            let spread = ping_every.mul_f64(0.5 + 0.5 * ((index * 7919) % 1000) as f64 / 1000.0);
            let mut next_ping = tokio::time::Instant::now() + spread;
            loop {
                let end = times
                    .borrow()
                    .map(|(_, end)| tokio::time::Instant::from(end));
                let wake = end.map_or(next_ping, |e| e.min(next_ping));
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    changed = times.changed(), if end.is_none() => {
                        if changed.is_err() {
                            // The run is over (should not happen before settling).
                            break;
                        }
                        continue;
                    }
                }
                let now = tokio::time::Instant::now();
                if end.is_some_and(|e| now >= e) {
                    break;
                }
                if now >= next_ping {
                    within(now + opts.timeout, Stage::Hold, addr, client.ping()).await?;
                    out.pings += 1;
                    next_ping += ping_every;
                }
            }
            out.held = true;
            Ok(())
        }
        Mode::Once => Ok(()),
    }
}

/// The measuring window of a repeat run, as the device learns it.
struct Window {
    rx: watch::Receiver<Option<(Instant, Instant)>>,
    known: Option<(Instant, Instant)>,
}

impl Window {
    fn times(&mut self) -> Option<(Instant, Instant)> {
        if self.known.is_none() {
            self.known = *self.rx.borrow();
        }
        self.known
    }
}

/// How a device asks for an image.
struct Fetch {
    with_proof: bool,
    get_len: u32,
    chunk_log: u8,
    max_inflight: usize,
    hash_image: bool,
    timeout: Duration,
    addr: String,
}

impl Fetch {
    fn new(opts: &Options, client: &Client) -> Self {
        Self {
            with_proof: !opts.raw,
            get_len: u32::try_from(opts.get_bytes()).unwrap_or(u32::MAX),
            chunk_log: client.granted.chunk_log,
            max_inflight: usize::from(client.granted.max_inflight.max(1)),
            hash_image: opts.hash_image,
            timeout: opts.timeout,
            addr: opts.addr.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassEnd {
    /// Every byte of the image arrived (and, with `hash_image`, matched the offer).
    Complete,
    /// The measuring window closed; the remaining requests are abandoned.
    WindowOver,
}

/// Hashes of the image as its bytes come in, in order.
struct ImageHash {
    b3: blake3::Hasher,
    sha: sha2::Sha256,
    upto: u64,
    ready: BTreeMap<u64, Vec<u8>>,
}

impl ImageHash {
    fn add(&mut self, offset: u64, data: Vec<u8>) {
        self.ready.insert(offset, data);
        while let Some(data) = self.ready.remove(&self.upto) {
            self.b3.update(&data);
            self.sha.update(&data);
            self.upto += data.len() as u64;
        }
    }
}

/// Downloads the whole image once with pipelined GETs of `fetch.get_len` bytes, verifying
/// each slice (with proof) and checking offsets and lengths (always). Counts DATA frames in
/// `tally`: all of them without a window, else those received inside it. Stops early when
/// the window closed. `deadline` bounds the whole pass without a window; with one, each
/// round of GETs and the next answer must come within `fetch.timeout`.
async fn fetch_image(
    client: &mut Client,
    offer: &OfferItem,
    fetch: &Fetch,
    mut window: Option<&mut Window>,
    deadline: tokio::time::Instant,
    tally: &mut Tally,
) -> Result<PassEnd, (Stage, String)> {
    let addr = fetch.addr.as_str();
    let size = offer.size;
    let get_len = u64::from(fetch.get_len);
    let protocol = |text: String| {
        (
            Stage::Download,
            format!("protocol error from {addr}: {text}"),
        )
    };
    let refused = |code, retry_after_ms, message| {
        let e = ClientError::Server {
            code,
            retry_after_ms,
            message,
        };
        (Stage::Download, e.explain(addr))
    };
    let mut hash = fetch.hash_image.then(|| ImageHash {
        b3: blake3::Hasher::new(),
        sha: sha2::Sha256::new(),
        upto: 0,
        ready: BTreeMap::new(),
    });
    let mut pending: HashMap<u32, (u64, Instant)> = HashMap::with_capacity(fetch.max_inflight);
    let (mut next, mut received) = (0u64, 0u64);
    while received < size {
        // Without a window the deadline bounds the whole pass; with one, each step.
        let step_by = if window.is_some() {
            tokio::time::Instant::now() + fetch.timeout
        } else {
            deadline
        };
        // Refill the pipeline once half of it is answered, all in one write: fewer and
        // larger writes on both sides, as a device that pipelines should.
        if pending.len() <= fetch.max_inflight / 2 && next < size {
            let sent = Instant::now();
            while next < size && pending.len() < fetch.max_inflight {
                let rid = client.queue(&Message::Get {
                    blake3: offer.blake3,
                    offset: next,
                    length: fetch.get_len,
                    with_proof: fetch.with_proof,
                });
                pending.insert(rid, (next, sent));
                next += get_len;
            }
            within(step_by, Stage::Download, addr, client.send_queued()).await?;
        }
        let (rid, msg) = within(step_by, Stage::Download, addr, client.recv()).await?;
        let now = Instant::now();
        if rid == 0 {
            match msg {
                // A push while downloading: not an answer; the simulation ignores it.
                Message::Offer { .. } => continue,
                Message::Error {
                    code,
                    retry_after_ms,
                    message,
                } => return Err(refused(code, retry_after_ms, message)),
                other => return Err(protocol(format!("unexpected {:?}", other.msg_type()))),
            }
        }
        let Some((offset, sent)) = pending.remove(&rid) else {
            return Err(protocol(format!("answer to unknown request {rid}")));
        };
        let expected = get_len.min(size - offset);
        let (length, payload) = match msg {
            Message::Data {
                offset: o,
                length,
                with_proof,
                payload,
            } if o == offset && with_proof == fetch.with_proof => (length, payload),
            Message::Error {
                code,
                retry_after_ms,
                message,
            } => return Err(refused(code, retry_after_ms, message)),
            other => {
                return Err(protocol(format!(
                    "unexpected answer {:?} to the GET at {offset}",
                    other.msg_type()
                )));
            }
        };
        if u64::from(length) != expected {
            return Err(protocol(format!(
                "DATA at {offset} has {length} bytes, expected {expected}"
            )));
        }
        let data = if fetch.with_proof {
            hashtree::verify_slice(
                &offer.blake3,
                size,
                fetch.chunk_log,
                offset,
                fetch.get_len,
                &payload,
            )
            .map_err(|e| {
                (
                    Stage::Verify,
                    format!(
                        "verification failed at {offset}: {e}: the server sent data that does not match the offered image"
                    ),
                )
            })?
        } else {
            if payload.len() as u64 != expected {
                return Err(protocol(format!(
                    "raw DATA at {offset} carries {} bytes, expected {expected}",
                    payload.len()
                )));
            }
            payload
        };
        received += expected;
        match window.as_deref_mut().map(Window::times) {
            // No window: count everything.
            None => count(tally, expected, None),
            // The window is not fixed yet (devices still connecting): warm-up.
            Some(None) => {}
            Some(Some((start, end))) => {
                if now >= end {
                    return Ok(PassEnd::WindowOver);
                }
                if now >= start {
                    count(tally, expected, Some(now - sent));
                }
            }
        }
        if let Some(h) = hash.as_mut() {
            h.add(offset, data);
        }
    }
    if let Some(h) = hash {
        let sha: [u8; 32] = h.sha.finalize().into();
        if h.upto != size || h.b3.finalize().as_bytes() != &offer.blake3 || sha != offer.sha256 {
            return Err((
                Stage::Verify,
                format!(
                    "the image ({} of {size} bytes) does not match the offer's hashes",
                    h.upto
                ),
            ));
        }
    }
    tally.images += 1;
    Ok(PassEnd::Complete)
}

fn count(tally: &mut Tally, bytes: u64, latency: Option<Duration>) {
    tally.bytes += bytes;
    tally.chunks += 1;
    tally.latencies.extend(latency);
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

    #[test]
    fn nearest_rank_percentiles() {
        let ms = Duration::from_millis;
        let p = Percentiles::of((1..=100).rev().map(ms).collect());
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, ms(50), ms(90), ms(99), ms(100))
        );
        let one = Percentiles::of(vec![ms(7)]);
        assert_eq!((one.p50, one.p99, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }
}
