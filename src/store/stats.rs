//! What `/metrics` reads of the store: sizes (binaries, records, devices, the file and the
//! free space beside it), how many device firmware types are in each OTA state, and how
//! long the writer's commits take.
//!
//! Sizes and states are counted at scrape time in one read transaction; commit times are
//! gathered by the writer thread (`mod.rs`) as it commits. Not here: the Prometheus text
//! (`api/metrics.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata};

use super::tables::{BLOBS, DEVICES, RECORDS};
use super::{Result, Store, codec};
use crate::model::Device;

/// Upper bounds (seconds) of the commit-time histogram's buckets; one more counts the rest.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Sizes and states reported by `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub records: u64,
    pub devices: u64,
    pub file_bytes: u64,
    /// Bytes free for otad on the filesystem holding the file.
    pub free_bytes: u64,
    /// OTA state name → how many (device, firmware type) pairs are in it now.
    pub ota_states: BTreeMap<&'static str, u64>,
}

/// One histogram: per-bucket counts (not cumulative), the total count and the summed time.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; COMMIT_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = COMMIT_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(COMMIT_BUCKETS.len());
        if let Some(b) = self.buckets.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CommitHistogram {
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut running = 0u64;
        for b in &self.buckets {
            running += b.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        CommitHistogram {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Commit times of the writer, split by durability: fsynced commits and the others.
#[derive(Default)]
pub(super) struct CommitTimes {
    durable: Histogram,
    lazy: Histogram,
}

impl CommitTimes {
    pub(super) fn observe(&self, durable: bool, took: Duration) {
        if durable {
            self.durable.observe(took);
        } else {
            self.lazy.observe(took);
        }
    }
}

/// A histogram as Prometheus shows it: cumulative counts per bucket of [`COMMIT_BUCKETS`]
/// and a last one for +Inf (equal to `count`).
#[derive(Debug, Clone, PartialEq)]
pub struct CommitHistogram {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Store {
    pub fn stats(&self) -> Result<StoreStats> {
        let txn = self.read()?;
        let mut stats = StoreStats::default();
        for entry in txn.open_table(BLOBS)?.iter()? {
            let (_, v) = entry?;
            let meta: super::blobs::BlobMeta = codec::decode(v.value())?;
            stats.blobs += 1;
            stats.blob_bytes += meta.size;
        }
        stats.records = txn.open_table(RECORDS)?.len()?;
        for entry in txn.open_table(DEVICES)?.iter()? {
            let (_, v) = entry?;
            let device: Device = codec::decode(v.value())?;
            stats.devices += 1;
            for ota in device.ota.values() {
                *stats
                    .ota_states
                    .entry(ota.current.state.as_str())
                    .or_default() += 1;
            }
        }
        stats.file_bytes = std::fs::metadata(self.path()).map_or(0, |m| m.len());
        let dir = self.path().parent().unwrap_or(self.path());
        stats.free_bytes = super::space::free_bytes(dir).unwrap_or(0);
        Ok(stats)
    }

    /// Commit-time histograms of the writer: (durable commits, commits without fsync).
    pub fn commit_times(&self) -> (CommitHistogram, CommitHistogram) {
        let times = &self.inner.commits;
        (times.durable.snapshot(), times.lazy.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative.len(), COMMIT_BUCKETS.len() + 1);
        assert_eq!(s.cumulative[0], 1, "0.1 ms is within 0.5 ms");
        assert_eq!(s.cumulative[3], 2, "3 ms is within 5 ms");
        assert_eq!(*s.cumulative.last().unwrap(), 3);
        assert!((s.sum_seconds - 10.0031).abs() < 1e-9);
    }
}
