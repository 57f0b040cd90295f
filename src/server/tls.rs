//! TLS for the listeners: loading a PEM certificate and key, or creating and reusing a
//! self-signed one on first start, and the rustls server configuration (ring provider).
//!
//! Not here: accepting connections (`server/`); where the files live (`datadir.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::datadir::{DataDir, write_private_file};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration rejected: {0}")]
    Config(String),
}

/// How long a self-signed certificate is valid.
const SELF_SIGNED_DAYS: i64 = 3 * 365;
/// A self-signed certificate with less than this left is replaced at start.
const RENEW_BEFORE_DAYS: i64 = 30;

/// Creates the self-signed certificate (ECDSA P-256, subject "otad on HOST", valid three
/// years) if there is none, or replaces it when less than 30 days of it remain; SANs for
/// localhost, 127.0.0.1, ::1 and `host_names`. Returns the certificate and key paths.
pub fn ensure_self_signed(
    data_dir: &DataDir,
    host_names: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    ensure_self_signed_at(data_dir, host_names, crate::ids::now_ms() / 1000)
}

fn ensure_self_signed_at(
    data_dir: &DataDir,
    host_names: &[String],
    now_secs: u64,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert_path, key_path) = (data_dir.tls_cert(), data_dir.tls_key());
    let now = i64::try_from(now_secs).unwrap_or(i64::MAX);
    if cert_path.exists() && key_path.exists() {
        // A certificate whose end cannot be read is kept: it was not made here.
        let Some(end) = self_signed_end(&cert_path) else {
            return Ok((cert_path, key_path));
        };
        if end - now > RENEW_BEFORE_DAYS * 86_400 {
            return Ok((cert_path, key_path));
        }
        tracing::warn!(
            path = %cert_path.display(),
            "the self-signed certificate expires within {RENEW_BEFORE_DAYS} days: replaced; clients must trust the new one"
        );
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(host_names.iter().cloned());
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(generate)?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(
        rcgen::DnType::CommonName,
        format!("otad on {}", host_name()),
    );
    subject.push(rcgen::DnType::OrganizationName, "otad");
    params.distinguished_name = subject;
    let today = now.div_euclid(86_400);
    let date = |days: i64| {
        // rcgen refuses years past 9999; a clock that far off gets the last valid day.
        match crate::ids::civil_from_days(days) {
            (year @ 1..=9999, month, day) => rcgen::date_time_ymd(year as i32, month, day),
            _ => rcgen::date_time_ymd(9999, 12, 31),
        }
    };
    // From yesterday: a client whose clock is a little behind still accepts it.
    params.not_before = date(today - 1);
    params.not_after = date(today + SELF_SIGNED_DAYS);
    let key = rcgen::KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    let dir = cert_path.parent().unwrap_or(data_dir.root());
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private_file(&key_path, key.serialize_pem().as_bytes()).map_err(|source| {
        TlsError::Write {
            path: key_path.clone(),
            source,
        }
    })?;
    std::fs::write(&cert_path, cert.pem()).map_err(|source| TlsError::Write {
        path: cert_path.clone(),
        source,
    })?;
    Ok((cert_path, key_path))
}

/// The notAfter of the first certificate in a PEM file.
fn self_signed_end(path: &Path) -> Option<i64> {
    let cert = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    super::x509::not_after(cert.as_ref())
}

/// This host's name, for the certificate's subject ("localhost" when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "localhost".to_string())
}

/// Reads a PEM certificate chain and private key.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let read_err = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read_err(cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(cert_path, &e))?;
    if certs.is_empty() {
        return Err(read_err(cert_path, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| read_err(key_path, &e))?;
    Ok((certs, key))
}

/// Reads the CA certificates a client certificate may chain to.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Read {
            path: path.to_path_buf(),
            message: "no CA certificate in the file".into(),
        });
    }
    Ok(roots)
}

/// A rustls server configuration on the ring provider with the given ALPN protocols;
/// `tls13_only` for the device listener (OCP/1 requires TLS 1.3). With `client_roots`,
/// clients may present a certificate chaining to them (optional; checked when presented).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
    tls13_only: bool,
    client_roots: Option<rustls::RootCertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    /// 2026-12-02 00:00 UTC.
    const NOW: u64 = 20_789 * DAY;

    fn subject_cn(path: &Path) -> String {
        let cert = CertificateDer::pem_file_iter(path)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let der = rustls_pki_types::CertificateDer::from(cert.as_ref());
        let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
        let cn = crate::server::x509::common_name(parsed.subject()).unwrap();
        String::from_utf8(cn.to_vec()).unwrap()
    }

    #[test]
    fn a_new_self_signed_certificate_names_otad_and_lasts_three_years() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let (cert, key) = ensure_self_signed_at(&data, &["ota.example".into()], NOW).unwrap();
        assert!(
            subject_cn(&cert).starts_with("otad on "),
            "{}",
            subject_cn(&cert)
        );
        let end = self_signed_end(&cert).unwrap();
        assert_eq!(end, (NOW / DAY + 3 * 365) as i64 * DAY as i64);
        let (certs, key) = load(&cert, &key).unwrap();
        server_config(certs, key, &[b"http/1.1"], false, None).unwrap();
    }

    #[test]
    fn it_is_kept_while_valid_and_replaced_near_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let (cert, _) = ensure_self_signed_at(&data, &[], NOW).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let end = self_signed_end(&cert).unwrap() as u64;
        // Later starts with more than 30 days left keep the file byte for byte.
        ensure_self_signed_at(&data, &[], end - 31 * DAY).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        // Within 30 days of its end it is replaced, with a new three-year validity.
        let later = end - 29 * DAY;
        ensure_self_signed_at(&data, &[], later).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first);
        assert_eq!(
            self_signed_end(&cert).unwrap(),
            (later / DAY + 3 * 365) as i64 * DAY as i64
        );
    }

    #[test]
    fn a_certificate_of_unreadable_validity_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        std::fs::create_dir_all(data.tls_cert().parent().unwrap()).unwrap();
        std::fs::write(data.tls_cert(), "not a certificate").unwrap();
        std::fs::write(data.tls_key(), "not a key").unwrap();
        ensure_self_signed_at(&data, &[], NOW).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.tls_cert()).unwrap(),
            "not a certificate"
        );
    }
}
