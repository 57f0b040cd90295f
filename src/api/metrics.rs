//! `/metrics` in the Prometheus text format: the HTTP request and upload counters kept
//! here, and what the handler gathers at scrape time ([`Scrape`]: the store's sizes, OTA
//! states and commit times, the device listener's counters; and the rollouts' states and
//! outcome counts). Every series is listed in docs/operations.md.
//!
//! Not here: the OCP/1 counters themselves (`server/counters.rs`), the store's statistics
//! (`store/stats.rs`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::OtaState;
use crate::rollout::{Outcome, Rollout, State};
use crate::server::counters::OcpSnapshot;
use crate::store::{COMMIT_BUCKETS, CommitHistogram, StoreStats};

/// Every OTA state, so a scrape shows zeros rather than missing series.
const OTA_STATES: [OtaState; 8] = [
    OtaState::Offered,
    OtaState::Downloading,
    OtaState::Downloaded,
    OtaState::Installing,
    OtaState::Installed,
    OtaState::Failed,
    OtaState::Deferred,
    OtaState::Confirmed,
];

#[derive(Default)]
pub struct Metrics {
    /// (route template, status) → count. Templates are a fixed set, so this stays small.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    uploads_stored: AtomicU64,
    uploads_failed: AtomicU64,
    upload_bytes: AtomicU64,
    publishes: AtomicU64,
    published_bytes: AtomicU64,
}

/// What the handler reads at scrape time.
pub struct Scrape {
    pub stats: StoreStats,
    /// (durable commits, commits without fsync).
    pub commits: (CommitHistogram, CommitHistogram),
    pub ocp: OcpSnapshot,
    pub connected_devices: usize,
    pub device_connections: usize,
}

/// Writes one metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn histogram(out: &mut String, name: &str, label: &str, h: &CommitHistogram) {
    for (i, n) in h.cumulative.iter().enumerate() {
        let le = COMMIT_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum{{{label}}} {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count{{{label}}} {}", h.count);
}

impl Metrics {
    pub fn count_request(&self, route: &'static str, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route, status)).or_default() += 1;
        }
    }

    /// An upload (`POST .../binaries`) that was stored: `bytes` of binary.
    pub fn upload_stored(&self, bytes: u64) {
        self.uploads_stored.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// An upload that was refused or broke off (nothing of it is kept).
    pub fn upload_failed(&self) {
        self.uploads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A binary moved into a partner's repository (moveToRepository).
    pub fn published(&self, bytes: u64) {
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.published_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn render(&self, s: &Scrape) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "otad_http_requests_total",
            "counter",
            "HTTP requests by route template and status.",
        );
        if let Ok(map) = self.requests.lock() {
            for ((route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "otad_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        family(
            &mut out,
            "otad_uploads_total",
            "counter",
            "Binary uploads by result (stored, or failed: refused or broken off).",
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "otad_uploads_total{{result=\"stored\"}} {}\notad_uploads_total{{result=\"failed\"}} {}",
            load(&self.uploads_stored),
            load(&self.uploads_failed)
        );
        let counters = [
            (
                "otad_upload_bytes_total",
                "Binary bytes of stored uploads.",
                load(&self.upload_bytes),
            ),
            (
                "otad_publishes_total",
                "Binaries moved into a repository (moveToRepository).",
                load(&self.publishes),
            ),
            (
                "otad_published_bytes_total",
                "Bytes of the binaries moved into a repository.",
                load(&self.published_bytes),
            ),
            (
                "otad_ocp_connections_total",
                "OCP/1 TLS connections accepted.",
                s.ocp.connections,
            ),
            (
                "otad_ocp_sessions_total",
                "OCP/1 sessions that passed HELLO (device authenticated).",
                s.ocp.sessions,
            ),
            (
                "otad_ocp_checks_total",
                "OCP/1 CHECK requests.",
                s.ocp.checks,
            ),
            (
                "otad_ocp_reports_total",
                "OCP/1 REPORT requests.",
                s.ocp.reports,
            ),
            (
                "otad_ocp_chunks_total",
                "OCP/1 DATA frames sent.",
                s.ocp.chunks,
            ),
            (
                "otad_ocp_chunk_bytes_total",
                "Firmware bytes sent in OCP/1 DATA frames (proofs excluded).",
                s.ocp.chunk_bytes,
            ),
            (
                "otad_ocp_pushed_offers_total",
                "OCP/1 OFFERs sent unasked after a push.",
                s.ocp.pushed_offers,
            ),
        ];
        for (name, help, value) in counters {
            single(&mut out, name, "counter", help, value);
        }
        family(
            &mut out,
            "otad_ocp_errors_total",
            "counter",
            "OCP/1 ERROR frames sent, by code.",
        );
        for (code, n) in &s.ocp.errors {
            let _ = writeln!(out, "otad_ocp_errors_total{{code=\"{code}\"}} {n}");
        }
        family(
            &mut out,
            "otad_ota_states",
            "gauge",
            "Device firmware types in each OTA state now (one per device and firmware type).",
        );
        for state in OTA_STATES {
            let name = state.as_str();
            let n = s.stats.ota_states.get(name).copied().unwrap_or(0);
            let _ = writeln!(out, "otad_ota_states{{state=\"{name}\"}} {n}");
        }
        family(
            &mut out,
            "otad_store_commit_seconds",
            "histogram",
            "Time of the store writer's commits, fsynced (durable) or not.",
        );
        histogram(
            &mut out,
            "otad_store_commit_seconds",
            "durable=\"true\"",
            &s.commits.0,
        );
        histogram(
            &mut out,
            "otad_store_commit_seconds",
            "durable=\"false\"",
            &s.commits.1,
        );
        let gauges = [
            ("otad_blobs", "Published binaries stored.", s.stats.blobs),
            (
                "otad_blob_bytes",
                "Bytes of published binaries.",
                s.stats.blob_bytes,
            ),
            ("otad_records", "Firmware records.", s.stats.records),
            ("otad_devices", "Registered devices.", s.stats.devices),
            (
                "otad_database_file_bytes",
                "Size of the database file.",
                s.stats.file_bytes,
            ),
            (
                "otad_database_free_bytes",
                "Free bytes for otad on the filesystem holding the database.",
                s.stats.free_bytes,
            ),
            (
                "otad_connected_devices",
                "Authenticated OCP/1 device sessions.",
                s.connected_devices as u64,
            ),
            (
                "otad_ocp_connections",
                "OCP/1 TLS connections open now, authenticated or not.",
                s.device_connections as u64,
            ),
        ];
        for (name, help, value) in gauges {
            single(&mut out, name, "gauge", help, value);
        }
        out
    }
}

/// `otad_rollouts{state}` over every rollout, and `otad_rollout_devices{rollout,group,
/// outcome}` for `latest` (the latest rollout of each device type and firmware type, so the
/// series stay bounded as rollouts accumulate).
pub fn render_rollouts(states: &BTreeMap<&'static str, u64>, latest: &[Rollout]) -> String {
    let mut out =
        String::from("# HELP otad_rollouts Rollouts by state.\n# TYPE otad_rollouts gauge\n");
    for state in State::ALL {
        let n = states.get(state.as_str()).copied().unwrap_or(0);
        let _ = writeln!(out, "otad_rollouts{{state=\"{}\"}} {n}", state.as_str());
    }
    out.push_str(
        "# HELP otad_rollout_devices Devices of the latest rollouts by group and outcome.\n# TYPE otad_rollout_devices gauge\n",
    );
    for r in latest {
        for (i, g) in r.groups.iter().enumerate() {
            for o in Outcome::ALL {
                let _ = writeln!(
                    out,
                    "otad_rollout_devices{{rollout=\"{}\",group=\"{i}\",outcome=\"{}\"}} {}",
                    r.id,
                    o.as_str(),
                    g.counts.get(o)
                );
            }
        }
    }
    out
}
