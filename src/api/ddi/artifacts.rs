//! Artifacts resolved recently for DDI downloads: (partner, software module id) → the
//! artifact's name and digests, so that an agent's repeated range requests skip the record
//! and digest lookups (and their blocking-pool hop). Not here: the handlers (`mod.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::Artifact;

/// Entries kept at most; emptied when full, refilled by the agents downloading.
const MAX_ENTRIES: usize = 4096;

/// (partner id, module id) → (store generation, artifact).
type Entries = HashMap<(String, u64), (u64, Arc<Artifact>)>;

/// Each entry is tagged with the store generation it was read at and used only while that
/// generation is current: any write (a record deleted, a binary renamed) makes it stale.
#[derive(Default)]
pub struct ArtifactCache {
    entries: Mutex<Entries>,
}

impl ArtifactCache {
    pub fn get(&self, partner: &str, module: u64, generation: u64) -> Option<Arc<Artifact>> {
        let entries = self.entries.lock().ok()?;
        match entries.get(&(partner.to_string(), module)) {
            Some((at, a)) if *at == generation => Some(Arc::clone(a)),
            _ => None,
        }
    }

    pub fn put(&self, partner: &str, module: u64, generation: u64, artifact: Arc<Artifact>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((partner.to_string(), module), (generation, artifact));
    }
}
