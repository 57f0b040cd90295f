//! The data directory: every path otad keeps in it, and the typed files the server writes
//! there for local clients (`listen.json`, `initial-credentials.json`).
//!
//! A leaf: the server writes these files, the CLI and the device commands read them, and
//! neither needs the other for it. Also the two private-file helpers every writer of a
//! secret uses. Not here: what the database holds (`store/`), TLS material itself (`server/tls.rs`).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the listen file: where the listeners are bound, written once they are.
pub const LISTEN_FILE: &str = "listen.json";
/// Name of the first-start credentials file, mode 0600.
pub const CREDENTIALS_FILE: &str = "initial-credentials.json";

/// A data directory and every path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.root.join("otad.redb")
    }

    pub fn listen_file(&self) -> PathBuf {
        self.root.join(LISTEN_FILE)
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.root.join(CREDENTIALS_FILE)
    }

    /// The self-signed certificate: the CA bundle clients on this host trust.
    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("tls").join("cert.pem")
    }

    /// The self-signed certificate's private key (0600).
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls").join("key.pem")
    }

    /// Where `otad admin reset-password` writes a new password (0600) by default.
    pub fn reset_credentials_file(&self) -> PathBuf {
        self.root.join("reset-credentials.json")
    }

    /// Where the server stages a backup before streaming it.
    pub fn backup_tmp(&self) -> PathBuf {
        self.root.join("backup-tmp")
    }

    /// Creates the directory (0700) if it does not exist.
    pub fn create(&self) -> std::io::Result<()> {
        create_private_dir(&self.root)
    }

    /// Reads `listen.json`: `None` when no server ever listened here.
    pub fn read_listen(&self) -> Result<Option<ListenFile>, String> {
        read_json(&self.listen_file())
    }

    pub fn write_listen(&self, listen: &ListenFile) -> std::io::Result<()> {
        write_json(&self.listen_file(), listen)
    }

    /// Reads the first-start credentials: `None` when there are none.
    pub fn read_credentials(&self) -> Result<Option<Credentials>, String> {
        read_json(&self.credentials_file())
    }

    pub fn write_credentials(&self, credentials: &Credentials) -> std::io::Result<()> {
        write_json(&self.credentials_file(), credentials)
    }
}

/// `listen.json`: the bound addresses of both listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenFile {
    pub api: SocketAddr,
    pub device: SocketAddr,
}

/// `initial-credentials.json`: the first admin and the platform's OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
    pub url: String,
}

/// The address a client on this host uses for a listener bound to `addr`: a wildcard bind
/// is reached over loopback (a name the self-signed certificate holds).
pub fn local_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Writes a file readable only by its owner, replacing it atomically.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Creates a directory (and its parents) that only its owner may enter; an existing
/// directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_private_file(path, &text)
}

/// `Ok(None)` for a missing file; a file that is there but unreadable or malformed is an
/// error naming it.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{} is malformed ({e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_file_round_trips_and_keeps_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        assert_eq!(data.read_listen().unwrap(), None);
        let listen = ListenFile {
            api: "127.0.0.1:8443".parse().unwrap(),
            device: "0.0.0.0:8444".parse().unwrap(),
        };
        data.write_listen(&listen).unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.listen_file()).unwrap()).unwrap();
        assert_eq!(raw["api"], "127.0.0.1:8443");
        assert_eq!(raw["device"], "0.0.0.0:8444");
        assert_eq!(data.read_listen().unwrap(), Some(listen));
        std::fs::write(data.listen_file(), b"{").unwrap();
        assert!(data.read_listen().unwrap_err().contains("malformed"));
    }

    #[test]
    fn credentials_use_the_documented_names_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let c = Credentials {
            username: "admin".into(),
            password: "p".into(),
            client_id: "id".into(),
            client_secret: "s".into(),
            url: "https://localhost:8443".into(),
        };
        data.write_credentials(&c).unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.credentials_file()).unwrap()).unwrap();
        for key in ["username", "password", "clientId", "clientSecret", "url"] {
            assert!(raw.get(key).is_some(), "{key} missing");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.credentials_file())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(data.read_credentials().unwrap(), Some(c));
    }

    #[test]
    fn wildcard_binds_are_reached_over_loopback() {
        let v4: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let v6: SocketAddr = "[::]:2".parse().unwrap();
        let ip: SocketAddr = "10.0.0.1:3".parse().unwrap();
        assert_eq!(local_address(v4).to_string(), "127.0.0.1:1");
        assert_eq!(local_address(v6).to_string(), "[::1]:2");
        assert_eq!(local_address(ip), ip);
    }
}
