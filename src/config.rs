//! The TOML configuration: every key, its default and its validation.
//!
//! `config.example.toml` at the repository root lists the same keys with comments; a test
//! parses it so the two cannot drift. Unknown keys and bad values are errors naming the key.
//! Command-line flags that override keys are applied by the caller (`cli/mod.rs`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::datadir::DataDir;
use crate::model::LabelLimits;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database file and first-start files live.
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub device: DeviceConfig,
    pub storage: StorageConfig,
    pub ddi: DdiConfig,
}

/// hawkBit DDI (docs/ddi.md), served on the API listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdiConfig {
    /// What a poll tells an agent about when to poll next (`config.polling.sleep`).
    pub poll_interval_secs: u64,
    /// Largest feedback or configData body in bytes (413 beyond).
    pub max_feedback_body: usize,
    /// Characters of a feedback's `details` kept as the failure reason (the rest is cut).
    pub max_details_chars: usize,
}

impl Default for DdiConfig {
    fn default() -> Self {
        Self {
            poll_interval_secs: 300,
            max_feedback_body: 64 * 1024,
            max_details_chars: 2048,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Address of the OCP/1 (device protocol) TLS listener. Port 0 = any free port.
    pub listen: String,
    /// Largest frame body in either direction; never below 69,632 (64 KiB + 4096).
    pub max_frame: u32,
    /// Most requests a device may have in flight (it may ask for fewer).
    pub max_inflight: u8,
    /// Most simultaneous device connections; more get ERROR BUSY.
    pub max_connections: usize,
    /// HELLO must arrive within this many seconds of the TLS handshake.
    pub hello_timeout_secs: u64,
    /// A connection without a frame for this long is closed (PING keeps it open).
    pub idle_timeout_secs: u64,
    /// A frame the device does not take within this many seconds closes its connection.
    pub write_timeout_secs: u64,
    /// What HELLO_OK tells a device about when to CHECK next.
    pub poll_interval_secs: u32,
    /// retry_after_ms sent with ERROR BUSY.
    pub busy_retry_ms: u32,
    /// PEM file of a CA for device client certificates (mTLS). Empty = tokens only. A device
    /// whose certificate chains to it and names the device id as a DNS SAN may send HELLO
    /// with an empty token.
    pub client_ca: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the HTTPS listener (API, web UI, health, metrics). Port 0 = any free port.
    pub listen: String,
    /// Base of the URLs handed out by moveToRepository; empty = `https://<listen address>`.
    pub public_base_url: String,
    /// Extra DNS names or IP addresses for the self-signed certificate.
    pub host_names: Vec<String>,
    /// PEM certificate chain and private key; both empty = self-signed in `<data_dir>/tls`.
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest request head (request line + headers) in bytes.
    pub max_header_bytes: usize,
    /// Most header lines in one request.
    pub max_headers: usize,
    /// Largest JSON (or form) request body in bytes.
    pub max_json_body: usize,
    /// Largest device import body (CSV or NDJSON) in bytes.
    pub max_import_body: usize,
    /// A client must finish sending the request head (and the TLS handshake) within this.
    pub header_read_timeout_secs: u64,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_secs: u64,
    /// A request must be answered within this (uploads and downloads: no more than this
    /// between two pieces of the body).
    pub request_timeout_secs: u64,
    /// Most simultaneous connections; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Lifetime of an OAuth access token.
    pub token_ttl_secs: u64,
    /// Failed logins allowed per minute per client id and per username (then 429).
    pub login_attempts_per_minute: u32,
    /// In-flight requests get this long to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// A long-lived bearer token that may read `/metrics` and nothing else (for a scraper,
    /// which cannot renew a 4-hour admin token); empty = none.
    pub metrics_token: String,
    /// Failed devices listed per device type in the fleet summary (the newest).
    pub fleet_failures_max: usize,
    /// A fleet summary is reused for this long (ms), so polling dashboards walk a fleet at
    /// most once per period; 0 = computed for every request.
    pub fleet_cache_ms: u64,
    /// Most device ids in one push request (`{"values": [...]}`).
    pub push_batch_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Largest binary accepted, in bytes.
    pub max_binary_size: u64,
    /// Uploaded-but-never-moved binaries are removed after this many seconds.
    pub staging_ttl_secs: u64,
    /// An upload that stopped receiving bytes this long ago is abandoned and swept.
    pub abandoned_upload_secs: u64,
    /// OTA events kept per device and firmware type besides the current one.
    pub ota_history: usize,
    /// Most operations the writer thread commits in one transaction.
    pub commit_batch_max: usize,
    /// redb page cache, in MiB.
    pub cache_mib: usize,
    /// Published blob rows kept in memory for delivery (HTTP downloads and device GETs),
    /// in MiB; 0 turns the cache off.
    pub delivery_cache_mib: usize,
    /// Uploads stop (507) rather than leave less than this much free space, in MiB.
    pub min_free_mib: usize,
    /// Keys that may sign one image (each signature travels in signed OFFERs).
    pub max_signatures_per_image: usize,
    /// Most tags one device may carry.
    pub device_tags_max: usize,
    /// Most attributes one device may carry.
    pub device_attributes_max: usize,
    /// Longest device attribute key, in bytes.
    pub attribute_key_max: usize,
    /// Longest device attribute value, in bytes.
    pub attribute_value_max: usize,
    /// How often the rollout timer pass runs (confirm timeouts, windows, schedules, soak
    /// times), in milliseconds.
    pub rollout_tick_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./otad-data"),
            api: ApiConfig::default(),
            device: DeviceConfig::default(),
            storage: StorageConfig::default(),
            ddi: DdiConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".to_string(),
            public_base_url: String::new(),
            host_names: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_json_body: 1 << 20,
            max_import_body: 64 << 20,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            request_timeout_secs: 300,
            max_connections: 1024,
            token_ttl_secs: 4 * 3600,
            login_attempts_per_minute: 10,
            shutdown_grace_secs: 10,
            metrics_token: String::new(),
            fleet_failures_max: 20,
            fleet_cache_ms: 2000,
            push_batch_max: 1000,
        }
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8444".to_string(),
            max_frame: 256 * 1024,
            max_inflight: 64,
            max_connections: 20_000,
            hello_timeout_secs: 10,
            idle_timeout_secs: 120,
            write_timeout_secs: 30,
            poll_interval_secs: 3600,
            busy_retry_ms: 5000,
            client_ca: String::new(),
        }
    }
}

/// Smallest allowed `device.max_frame`: a 64 KiB group (chunk_log 6) plus its proof room.
pub const DEVICE_MAX_FRAME_MIN: u32 = 64 * 1024 + 4096;

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_binary_size: 4 << 30,
            staging_ttl_secs: 24 * 3600,
            abandoned_upload_secs: 3600,
            ota_history: 16,
            commit_batch_max: 256,
            cache_mib: 32,
            delivery_cache_mib: 256,
            min_free_mib: 256,
            max_signatures_per_image: 4,
            device_tags_max: LabelLimits::default().tags,
            device_attributes_max: LabelLimits::default().attributes,
            attribute_key_max: LabelLimits::default().key_bytes,
            attribute_value_max: LabelLimits::default().value_bytes,
            rollout_tick_ms: 1000,
        }
    }
}

impl StorageConfig {
    /// The bounds on device tags and attributes.
    pub fn label_limits(&self) -> LabelLimits {
        LabelLimits {
            tags: self.device_tags_max,
            attributes: self.device_attributes_max,
            key_bytes: self.attribute_key_max,
            value_bytes: self.attribute_value_max,
        }
    }
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.storage;
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        let a = &self.api;
        if a.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("api.listen", "must be ADDRESS:PORT, e.g. 127.0.0.1:8443");
        }
        let base = &a.public_base_url;
        if !(base.is_empty() || base.starts_with("https://") || base.starts_with("http://")) {
            return invalid(
                "api.public_base_url",
                "must start with https:// (or http://)",
            );
        }
        if a.tls_cert.is_empty() != a.tls_key.is_empty() {
            return invalid("api.tls_cert", "tls_cert and tls_key must be set together");
        }
        if !(1024..=1 << 20).contains(&a.max_header_bytes) {
            return invalid("api.max_header_bytes", "must be 1024-1048576");
        }
        if !(8..=1000).contains(&a.max_headers) {
            return invalid("api.max_headers", "must be 8-1000");
        }
        if !(1024..=64 << 20).contains(&a.max_json_body) {
            return invalid("api.max_json_body", "must be 1024-67108864");
        }
        if !(1024..=1 << 30).contains(&a.max_import_body) {
            return invalid("api.max_import_body", "must be 1024-1073741824");
        }
        if !(1..=1000).contains(&a.fleet_failures_max) {
            return invalid("api.fleet_failures_max", "must be 1-1000");
        }
        if a.fleet_cache_ms > 60_000 {
            return invalid("api.fleet_cache_ms", "must be 0-60000");
        }
        if !(1..=10_000).contains(&a.push_batch_max) {
            return invalid("api.push_batch_max", "must be 1-10000");
        }
        for (key, value) in [
            ("api.header_read_timeout_secs", a.header_read_timeout_secs),
            ("api.idle_timeout_secs", a.idle_timeout_secs),
            ("api.request_timeout_secs", a.request_timeout_secs),
            ("api.token_ttl_secs", a.token_ttl_secs),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1 second");
            }
        }
        let d = &self.device;
        if d.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("device.listen", "must be ADDRESS:PORT, e.g. 0.0.0.0:8444");
        }
        if !(DEVICE_MAX_FRAME_MIN..=16 << 20).contains(&d.max_frame) {
            return invalid("device.max_frame", "must be 69632-16777216");
        }
        if !(1..=64).contains(&d.max_inflight) {
            return invalid("device.max_inflight", "must be 1-64");
        }
        if d.max_connections == 0 {
            return invalid("device.max_connections", "must be at least 1");
        }
        if d.write_timeout_secs == 0 {
            return invalid("device.write_timeout_secs", "must be at least 1 second");
        }
        if d.hello_timeout_secs == 0 || d.idle_timeout_secs == 0 {
            return invalid(
                "device.idle_timeout_secs",
                "timeouts must be at least 1 second",
            );
        }
        if a.max_connections == 0 {
            return invalid("api.max_connections", "must be at least 1");
        }
        if a.login_attempts_per_minute == 0 {
            return invalid("api.login_attempts_per_minute", "must be at least 1");
        }
        if !a.metrics_token.is_empty()
            && (a.metrics_token.len() < 32
                || !a.metrics_token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return invalid(
                "api.metrics_token",
                "must be at least 32 printable characters without spaces (e.g. `openssl rand -hex 20`)",
            );
        }
        if s.max_binary_size == 0 {
            return invalid("storage.max_binary_size", "must be at least 1 byte");
        }
        if s.staging_ttl_secs == 0 {
            return invalid("storage.staging_ttl_secs", "must be at least 1 second");
        }
        if s.abandoned_upload_secs == 0 {
            return invalid("storage.abandoned_upload_secs", "must be at least 1 second");
        }
        if !(1..=8).contains(&s.max_signatures_per_image) {
            return invalid("storage.max_signatures_per_image", "must be 1-8");
        }
        if s.ota_history > 1000 {
            return invalid("storage.ota_history", "must be at most 1000");
        }
        if !(1..=100_000).contains(&s.commit_batch_max) {
            return invalid("storage.commit_batch_max", "must be 1-100000");
        }
        if !(1..=1 << 20).contains(&s.cache_mib) {
            return invalid("storage.cache_mib", "must be 1-1048576");
        }
        if s.delivery_cache_mib > 1 << 20 {
            return invalid("storage.delivery_cache_mib", "must be 0-1048576");
        }
        if s.min_free_mib > 1 << 20 {
            return invalid("storage.min_free_mib", "must be 0-1048576");
        }
        if !(10..=60_000).contains(&s.rollout_tick_ms) {
            return invalid("storage.rollout_tick_ms", "must be 10-60000");
        }
        let d = &self.ddi;
        // The sleep is rendered HH:MM:SS, so it stays below 100 hours.
        if !(1..=359_999).contains(&d.poll_interval_secs) {
            return invalid("ddi.poll_interval_secs", "must be 1-359999");
        }
        if !(1024..=16 << 20).contains(&d.max_feedback_body) {
            return invalid("ddi.max_feedback_body", "must be 1024-16777216");
        }
        if !(1..=65_536).contains(&d.max_details_chars) {
            return invalid("ddi.max_details_chars", "must be 1-65536");
        }
        for (key, value, max) in [
            ("storage.device_tags_max", s.device_tags_max, 1024),
            (
                "storage.device_attributes_max",
                s.device_attributes_max,
                1024,
            ),
            ("storage.attribute_key_max", s.attribute_key_max, 1024),
            ("storage.attribute_value_max", s.attribute_value_max, 65_536),
        ] {
            if !(1..=max).contains(&value) {
                return invalid(key, &format!("must be 1-{max}"));
            }
        }
        Ok(())
    }

    /// The data directory and every path inside it.
    pub fn data_dir(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../config.example.toml");
        let parsed = Config::from_toml(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn every_example_key_is_live() {
        // Uncommenting each `# key = value` line must still parse: the example names real keys.
        let text = include_str!("../config.example.toml");
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')
                    }) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = Config::from_toml(&uncommented, Path::new("example")).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn ddi_limits_are_checked_and_named() {
        for (text, key) in [
            ("[ddi]\npoll_interval_secs = 0\n", "ddi.poll_interval_secs"),
            (
                "[ddi]\npoll_interval_secs = 360000\n",
                "ddi.poll_interval_secs",
            ),
            ("[ddi]\nmax_feedback_body = 10\n", "ddi.max_feedback_body"),
            ("[ddi]\nmax_details_chars = 0\n", "ddi.max_details_chars"),
        ] {
            let err = Config::from_toml(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
        let ok = Config::from_toml("[ddi]\npoll_interval_secs = 5\n", Path::new("c.toml")).unwrap();
        assert_eq!(ok.ddi.poll_interval_secs, 5);
        assert_eq!(ok.ddi.max_feedback_body, 64 * 1024);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[storage]\nmax_bianry_size = 5\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_bianry_size"), "{err}");
        let err = Config::from_toml("bogus = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn a_metrics_token_must_be_long_and_printable() {
        for bad in ["short", "0123456789abcdef 0123456789abcdef"] {
            let err = Config::from_toml(
                &format!("[api]\nmetrics_token = \"{bad}\"\n"),
                Path::new("c.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("api.metrics_token"), "{err}");
        }
        let ok = Config::from_toml(
            "[api]\nmetrics_token = \"0123456789abcdef0123456789abcdef\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(ok.api.metrics_token.len(), 32);
    }

    #[test]
    fn fleet_failures_max_is_bounded() {
        for bad in ["0", "1001"] {
            let err = Config::from_toml(
                &format!("[api]\nfleet_failures_max = {bad}\n"),
                Path::new("c.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("api.fleet_failures_max"), "{err}");
        }
        let ok = Config::from_toml("[api]\nfleet_failures_max = 3\n", Path::new("c.toml")).unwrap();
        assert_eq!(ok.api.fleet_failures_max, 3);
        let err = Config::from_toml("[api]\nfleet_cache_ms = 60001\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("api.fleet_cache_ms"), "{err}");
        let err = Config::from_toml("[api]\npush_batch_max = 0\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("api.push_batch_max"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::from_toml("[storage]\nmax_binary_size = 0\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.max_binary_size"), "{err}");
        let err = Config::from_toml("[storage]\nota_history = \"x\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml") && err.contains("ota_history"),
            "{err}"
        );
        let err = Config::from_toml("[storage]\ncommit_batch_max = 0\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.commit_batch_max"), "{err}");
        for bad in [0, 9] {
            let err = Config::from_toml(
                &format!("[storage]\nmax_signatures_per_image = {bad}\n"),
                Path::new("c.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("storage.max_signatures_per_image"), "{err}");
        }
        for key in [
            "device_tags_max",
            "device_attributes_max",
            "attribute_key_max",
            "attribute_value_max",
        ] {
            let err = Config::from_toml(&format!("[storage]\n{key} = 0\n"), Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("storage.{key}")), "{err}");
        }
        let tight =
            Config::from_toml("[storage]\ndevice_tags_max = 2\n", Path::new("c.toml")).unwrap();
        assert_eq!(tight.storage.label_limits().tags, 2);
    }
}
