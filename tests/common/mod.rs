//! Helpers shared by the integration tests: a store in a fresh temporary directory, a
//! bootstrapped partner with a device type, deterministic test bytes.
#![allow(dead_code)]

use std::path::PathBuf;

use otad::config::StorageConfig;
use otad::store::Store;

mod seeded;
#[allow(unused_imports)] // not every test file that includes this module uses it
pub use seeded::bytes;

pub struct TempStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TempStore {
    pub fn path(&self) -> PathBuf {
        otad::datadir::DataDir::new(self.dir.path()).db()
    }
}

pub fn storage_config() -> StorageConfig {
    StorageConfig::default()
}

/// A new store in a new temporary directory, bootstrapped (platform partner and types).
pub fn temp_store() -> TempStore {
    temp_store_with(storage_config())
}

pub fn temp_store_with(config: StorageConfig) -> TempStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Store::open(&otad::datadir::DataDir::new(dir.path()).db(), &config).expect("open store");
    store.bootstrap().expect("bootstrap");
    TempStore { dir, store }
}

/// A partner with one device type; returns (partner id, device type id).
pub fn partner_with_device_type(store: &Store, name: &str) -> (String, String) {
    let (partner, _) = store.create_partner("test", name, None).expect("partner");
    let dt = store
        .create_device_type("test", &partner.id, &format!("{name} kettle"), "")
        .expect("device type");
    (partner.id, dt.id)
}

/// Uploads and publishes bytes for a partner; returns (sha256, url).
pub fn upload(store: &Store, partner: &str, data: &[u8]) -> ([u8; 32], String) {
    let staged = store.ingest_bytes(partner, data).expect("ingest");
    let published = store
        .publish("test", partner, staged.sha256)
        .expect("publish");
    let sha = otad::model::hex(&published.sha256);
    (
        published.sha256,
        format!("https://otad.test/v1/ota/partners/{partner}/binaries/{sha}"),
    )
}
