//! The fleet simulator behind `otad device simulate`, usable from tests and benchmarks.
//!
//! Lives here: the options, the per-device flow (connect + HELLO, CHECK, verified download,
//! REPORT DOWNLOADED, disconnect), a bounded worker pool running C devices at a time, the
//! latency statistics and the [`Report`] with its stable JSON form. Also the one-line
//! explanation of a [`ClientError`], shared with the other `otad device` commands.
//!
//! Not here: argument parsing and human output (`src/cli/device.rs`) and the protocol itself
//! (`client.rs`, which verifies every chunk against the offered BLAKE3 root).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::Digest;

use super::client::{Client, ClientConfig, ClientError, Progress};
use super::wire::ErrorCode;
use crate::hashtree;

/// How many device failures a [`Report`] keeps (the first ones, by time).
pub const MAX_ERRORS: usize = 10;

/// One device's credentials, as `POST .../devices/import` hands them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCreds {
    pub id: String,
    pub token: String,
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
    /// How many devices run at once.
    pub concurrency: usize,
    /// The firmware type every device reports (installed version 0) and downloads.
    pub fw_type: u16,
    pub max_frame: u32,
    pub max_inflight: u8,
    pub chunk_log: u8,
    /// A device that has not finished within this time counts as failed.
    pub timeout: Duration,
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
            timeout: Duration::from_secs(60),
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
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Check => "check",
            Stage::Download => "download",
            Stage::Verify => "verify",
            Stage::Report => "report",
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
    pub devices: usize,
    pub concurrency: usize,
    pub ok: usize,
    pub failed: usize,
    /// Verified image bytes of the devices that succeeded.
    pub bytes: u64,
    /// Verified DATA frames (one verification group each) of the devices that succeeded.
    pub verified_chunks: u64,
    /// Bytes per verification group (1024 · 2^chunk_log).
    pub chunk_bytes: u64,
    pub elapsed: Duration,
    /// TCP connect + TLS handshake + HELLO → HELLO_OK.
    pub connect: Percentiles,
    /// CHECK → OFFER.
    pub check: Percentiles,
    /// First GET → last verified byte.
    pub download: Percentiles,
    /// The first failures (by time), at most [`MAX_ERRORS`].
    pub errors: Vec<Failure>,
}

impl Report {
    fn per_second(&self, n: f64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { n / secs } else { 0.0 }
    }

    pub fn devices_per_sec(&self) -> f64 {
        self.per_second(self.ok as f64)
    }

    /// Decimal megabytes (10^6 bytes) per second of verified image data.
    pub fn mb_per_sec(&self) -> f64 {
        self.per_second(self.bytes as f64 / 1e6)
    }

    pub fn chunks_per_sec(&self) -> f64 {
        self.per_second(self.verified_chunks as f64)
    }

    /// The machine form printed by `otad device simulate --json`; field names are stable.
    pub fn to_json(&self) -> Value {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "devices": self.devices,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "failed": self.failed,
            "bytes": self.bytes,
            "verifiedChunks": self.verified_chunks,
            "chunkBytes": self.chunk_bytes,
            "elapsedSeconds": round(self.elapsed.as_secs_f64()),
            "devicesPerSecond": round(self.devices_per_sec()),
            "mbPerSecond": round(self.mb_per_sec()),
            "chunksPerSecond": round(self.chunks_per_sec()),
            "latencyMs": {
                "connect": self.connect.to_json(),
                "check": self.check.to_json(),
                "download": self.download.to_json(),
            },
            "errors": self.errors.iter().map(|f| json!({
                "deviceId": f.device_id,
                "stage": f.stage.as_str(),
                "error": f.error,
            })).collect::<Vec<_>>(),
        })
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

/// The protocol name of an OCP error code.
pub fn error_code_name(code: u16) -> &'static str {
    match ErrorCode::from_u16(code) {
        Some(ErrorCode::BadFrame) => "BAD_FRAME",
        Some(ErrorCode::UnsupportedVersion) => "UNSUPPORTED_VERSION",
        Some(ErrorCode::AuthFailed) => "AUTH_FAILED",
        Some(ErrorCode::Forbidden) => "FORBIDDEN",
        Some(ErrorCode::NotFound) => "NOT_FOUND",
        Some(ErrorCode::BadRange) => "BAD_RANGE",
        Some(ErrorCode::TooLarge) => "TOO_LARGE",
        Some(ErrorCode::TooManyInflight) => "TOO_MANY_INFLIGHT",
        Some(ErrorCode::Busy) => "BUSY",
        Some(ErrorCode::BadState) => "BAD_STATE",
        Some(ErrorCode::Internal) => "INTERNAL",
        None => "UNKNOWN",
    }
}

/// One line saying what went wrong talking to `addr` and, where it is clear, what to do.
pub fn explain(e: &ClientError, addr: &str) -> String {
    let text = match e {
        ClientError::Server {
            code,
            retry_after_ms,
            message,
        } => {
            let name = error_code_name(*code);
            match ErrorCode::from_u16(*code) {
                Some(ErrorCode::AuthFailed) => format!(
                    "the server refused the device ({name}: {message}); check the device id and token"
                ),
                Some(ErrorCode::Busy) => {
                    format!("the server is busy ({name}); retry in {retry_after_ms} ms")
                }
                _ => format!("the server answered {name} ({code}): {message}"),
            }
        }
        ClientError::Io(io) => {
            use std::io::ErrorKind;
            match io.kind() {
                ErrorKind::ConnectionRefused => format!(
                    "cannot connect to {addr}: connection refused (is otad serve listening there?)"
                ),
                // tokio-rustls reports TLS failures (certificate, ALPN) as InvalidData.
                ErrorKind::InvalidData => {
                    format!("TLS with {addr} failed: {io} (check the CA file and the server name)")
                }
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => {
                    format!("the server at {addr} closed the connection ({io})")
                }
                // EMFILE: every device is a socket; the limit is the usual culprit.
                _ if io.raw_os_error() == Some(24) => {
                    format!("{addr}: {io} (raise `ulimit -n` or lower the concurrency)")
                }
                _ => format!("{addr}: {io}"),
            }
        }
        ClientError::Tls(t) => format!("TLS setup: {t} (check the CA file and the server name)"),
        ClientError::Protocol(p) => format!("protocol error from {addr}: {p}"),
        ClientError::Verify(v) => format!(
            "verification failed {v}: the server sent data that does not match the offered image"
        ),
    };
    // Errors are printed as one line; nothing from the network may break that.
    text.replace(['\n', '\r'], " ")
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
    bytes: u64,
    chunks: u64,
    failure: Option<(Instant, Failure)>,
}

/// Runs the simulation: every device once, `concurrency` at a time. Per-device failures are
/// counted and listed in the report; only a setup problem is an `Err`.
pub async fn run(opts: Options) -> Result<Report, SimError> {
    if opts.devices.is_empty() {
        return Err(SimError::NoDevices);
    }
    if opts.concurrency == 0 {
        return Err(SimError::Concurrency);
    }
    check_ca(&opts.ca_file)?;
    let opts = Arc::new(opts);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = opts.concurrency.min(opts.devices.len());
    let started = Instant::now();
    // A fixed pool of workers pulling the next device index keeps exactly `concurrency`
    // devices in flight without one task (and its buffers) per device waiting on a permit.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let opts = Arc::clone(&opts);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(device) = opts.devices.get(i) else {
                    break;
                };
                outcomes.push(one_device(&opts, device).await);
            }
            outcomes
        });
    }
    let mut outcomes = Vec::with_capacity(opts.devices.len());
    while let Some(joined) = tasks.join_next().await {
        outcomes.extend(joined.map_err(|e| SimError::Runtime(format!("a worker failed: {e}")))?);
    }
    let elapsed = started.elapsed();

    let mut failures = Vec::new();
    let (mut connect, mut check, mut download) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bytes, mut chunks) = (0u64, 0u64);
    for o in outcomes {
        connect.extend(o.connect);
        check.extend(o.check);
        download.extend(o.download);
        match o.failure {
            Some(f) => failures.push(f),
            None => {
                bytes += o.bytes;
                chunks += o.chunks;
            }
        }
    }
    let failed = failures.len();
    failures.sort_by_key(|(at, _)| *at);
    Ok(Report {
        devices: opts.devices.len(),
        concurrency: workers,
        ok: opts.devices.len() - failed,
        failed,
        bytes,
        verified_chunks: chunks,
        chunk_bytes: hashtree::group_size(opts.chunk_log),
        elapsed,
        connect: Percentiles::of(connect),
        check: Percentiles::of(check),
        download: Percentiles::of(download),
        errors: failures
            .into_iter()
            .take(MAX_ERRORS)
            .map(|(_, f)| f)
            .collect(),
    })
}

/// Runs one step against the device's overall deadline.
async fn within<T>(
    deadline: tokio::time::Instant,
    stage: Stage,
    addr: &str,
    step: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, (Stage, String)> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((stage, explain(&e, addr))),
        Err(_) => Err((stage, "timed out".to_string())),
    }
}

async fn one_device(opts: &Options, device: &DeviceCreds) -> Outcome {
    let mut out = Outcome::default();
    if let Err((stage, error)) = device_flow(opts, device, &mut out).await {
        out.failure = Some((
            Instant::now(),
            Failure {
                device_id: device.id.clone(),
                stage,
                error,
            },
        ));
    }
    out
}

async fn device_flow(
    opts: &Options,
    device: &DeviceCreds,
    out: &mut Outcome,
) -> Result<(), (Stage, String)> {
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let addr = opts.addr.as_str();
    let cfg = ClientConfig {
        addr: opts.addr.clone(),
        server_name: opts.server_name.clone(),
        ca_file: opts.ca_file.clone(),
        device_id: device.id.clone(),
        token: device.token.clone(),
        max_frame: opts.max_frame,
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
    let t = Instant::now();
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
    out.download = Some(t.elapsed());
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

    within(
        deadline,
        Stage::Report,
        addr,
        client.report(opts.fw_type, offer.version_number, 2, 0, offer.size),
    )
    .await?;
    out.bytes = offer.size;
    out.chunks = chunks;
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

    #[test]
    fn explanations_are_one_line() {
        let e = ClientError::Server {
            code: 3,
            retry_after_ms: 0,
            message: "authentication\nfailed".into(),
        };
        let text = explain(&e, "127.0.0.1:1");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("AUTH_FAILED"), "{text}");
    }
}
