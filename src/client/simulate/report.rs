//! What a simulation measured: the per-device outcomes and their tally, the failures by
//! [`Stage`], how the installs ended ([`Installs`]), nearest-rank [`Percentiles`], and the
//! [`Report`] summed from them with its stable JSON form.
//!
//! Not here: the human form of the report (`cli/device/report.rs`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::options::{DeviceCreds, Mode, Options};
use crate::client::install::Ending;
use crate::hashtree;

/// How many device failures a [`Report`] keeps (the first ones, by time).
pub const MAX_ERRORS: usize = 10;

/// Where in its flow a device failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Check,
    Download,
    Verify,
    Report,
    Install,
    Confirm,
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
            Stage::Install => "install",
            Stage::Confirm => "confirm",
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

/// How the installs of a run with the install step ended, over the devices that got
/// through it (a device that failed on the way is a failure of the run instead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Installs {
    /// Reported INSTALLED (confirmed or not).
    pub installed: usize,
    /// Came back with the new number (the confirming CHECK).
    pub confirmed: usize,
    /// Reported FAILED, as injected.
    pub failed: usize,
    /// Reported INSTALLED and stayed away, as injected.
    pub never_confirmed: usize,
}

impl Installs {
    fn add(&mut self, ending: Ending) {
        match ending {
            Ending::Confirm => {
                self.installed += 1;
                self.confirmed += 1;
            }
            Ending::NeverConfirm => {
                self.installed += 1;
                self.never_confirmed += 1;
            }
            Ending::Fail(_) => self.failed += 1,
        }
    }
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
    /// Once with `no_offer_ok`: devices that were offered nothing (counted in `ok`).
    pub not_offered: usize,
    /// Once with the install step: how the installs ended; `None` without it.
    pub installs: Option<Installs>,
    /// Once with the install step: each device that got through it, how its install ended
    /// and the version number it installed, in no particular order (for a caller that
    /// keeps the fleet's state between runs).
    pub endings: Vec<(String, Ending, u64)>,
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
            "notOffered": self.not_offered,
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
            if let Some(i) = self.installs {
                m.insert(
                    "install".into(),
                    json!({
                        "installed": i.installed,
                        "confirmed": i.confirmed,
                        "failed": i.failed,
                        "neverConfirmed": i.never_confirmed,
                    }),
                );
            }
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

/// What one device measured.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) connect: Option<Duration>,
    pub(super) check: Option<Duration>,
    pub(super) download: Option<Duration>,
    pub(super) tally: Tally,
    pub(super) held: bool,
    pub(super) pings: u64,
    /// The device's id, kept when its install ending is (the install step only).
    pub(super) device_id: String,
    /// How the install ended, when the device got through it, and the version number.
    pub(super) ending: Option<(Ending, u64)>,
    /// Offered nothing, and that was accepted.
    pub(super) not_offered: bool,
    pub(super) failure: Option<(Instant, Failure)>,
}

/// Counted DATA frames of one device.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) bytes: u64,
    pub(super) chunks: u64,
    pub(super) images: u64,
    /// GET → DATA, repeat mode only.
    pub(super) latencies: Vec<Duration>,
}

pub(super) fn record(out: &mut Outcome, device: &DeviceCreds, result: Result<(), (Stage, String)>) {
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

pub(super) fn summarize(opts: &Options, outcomes: Vec<Outcome>, elapsed: Duration) -> Report {
    let mut failures = Vec::new();
    let (mut connect, mut check, mut download, mut chunk) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut bytes, mut chunks, mut images, mut held, mut pings) = (0u64, 0u64, 0u64, 0, 0u64);
    let mut installs = Installs::default();
    let mut not_offered = 0;
    let mut endings = Vec::new();
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
                not_offered += usize::from(o.not_offered);
                if let Some((ending, vn)) = o.ending {
                    installs.add(ending);
                    endings.push((o.device_id, ending, vn));
                }
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
        not_offered,
        installs: opts.install.map(|_| installs),
        endings,
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

pub(super) fn count(tally: &mut Tally, bytes: u64, latency: Option<Duration>) {
    tally.bytes += bytes;
    tally.chunks += 1;
    tally.latencies.extend(latency);
}

#[cfg(test)]
mod tests {
    use super::*;

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
