//! Request counters for `/metrics` (Prometheus text format). Store sizes and rollout
//! counters are read at scrape time by the handler.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::rollout::{Outcome, Rollout, State};
use crate::store::StoreStats;

#[derive(Default)]
pub struct Metrics {
    /// (route template, status) → count. Templates are a fixed set, so this stays small.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    upload_bytes: AtomicU64,
}

impl Metrics {
    pub fn count_request(&self, route: &'static str, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route, status)).or_default() += 1;
        }
    }

    pub fn add_upload_bytes(&self, n: u64) {
        self.upload_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self, stats: &StoreStats, connected_devices: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP otad_http_requests_total HTTP requests by route template and status.\n",
        );
        out.push_str("# TYPE otad_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "otad_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let gauges = [
            (
                "otad_upload_bytes_total",
                "counter",
                "Binary bytes received by uploads.",
                self.upload_bytes.load(Ordering::Relaxed),
            ),
            (
                "otad_blobs",
                "gauge",
                "Published binaries stored.",
                stats.blobs,
            ),
            (
                "otad_blob_bytes",
                "gauge",
                "Bytes of published binaries.",
                stats.blob_bytes,
            ),
            ("otad_records", "gauge", "Firmware records.", stats.records),
            (
                "otad_devices",
                "gauge",
                "Registered devices.",
                stats.devices,
            ),
            (
                "otad_database_file_bytes",
                "gauge",
                "Size of the database file.",
                stats.file_bytes,
            ),
            (
                "otad_connected_devices",
                "gauge",
                "Authenticated OCP/1 device sessions.",
                connected_devices as u64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
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
