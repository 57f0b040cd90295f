//! The reference OCP/1 device client: connect and HELLO, CHECK, REPORT, PING, and a
//! pipelined, verifying, resumable download. Used by the tests, the `otad device` commands
//! and the fleet simulator; it is also the executable companion of docs/protocol.md. Its
//! [`ClientError`] explains itself in one line ([`ClientError::explain`]).
//!
//! Not here: the fleet simulator (`simulate.rs`) and the codec (`ocp/wire.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::hashtree;
use crate::ocp::report;
use crate::ocp::wire::{self, ErrorCode, HEADER_LEN, Message, OfferItem};
use crate::signing::{self, Manifest, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("server error {code}: {message}")]
    Server {
        code: u16,
        retry_after_ms: u32,
        message: String,
    },
    #[error("verification failed: {0}")]
    Verify(String),
}

impl ClientError {
    /// One line saying what went wrong talking to `addr` and, where it is clear, what to
    /// do: the form every `otad device` command and the simulator's report print.
    pub fn explain(&self, addr: &str) -> String {
        let text = match self {
            ClientError::Server {
                code,
                retry_after_ms,
                message,
            } => {
                let known = ErrorCode::from_u16(*code);
                let name = known.map_or("UNKNOWN", ErrorCode::name);
                match known {
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
                        format!(
                            "TLS with {addr} failed: {io} (check the CA file and the server name)"
                        )
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
            ClientError::Tls(t) => {
                format!("TLS setup: {t} (check the CA file and the server name)")
            }
            ClientError::Protocol(p) => format!("protocol error from {addr}: {p}"),
            ClientError::Verify(v) => format!(
                "verification failed {v}: the server sent data that does not match the offered image"
            ),
        };
        // Errors are printed as one line; nothing from the network may break that.
        text.replace(['\n', '\r'], " ")
    }

    /// An ERROR frame becomes [`ClientError::Server`]; any other message is passed on.
    fn from_error_frame(msg: Message) -> Result<Message, ClientError> {
        match msg {
            Message::Error {
                code,
                retry_after_ms,
                message,
            } => Err(ClientError::Server {
                code,
                retry_after_ms,
                message,
            }),
            other => Ok(other),
        }
    }
}

/// How to reach the server and who this device is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the device listener.
    pub addr: String,
    /// Name checked against the server certificate (e.g. `localhost` or `127.0.0.1`).
    pub server_name: String,
    /// PEM file of the CA (or self-signed certificate) to trust.
    pub ca_file: std::path::PathBuf,
    pub device_id: String,
    pub token: String,
    pub max_frame: u32,
    pub max_inflight: u8,
    pub chunk_log: u8,
}

/// What HELLO_OK granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub max_frame: u32,
    pub max_inflight: u8,
    pub chunk_log: u8,
    pub poll_interval_s: u32,
    pub features: Option<u8>,
}

pub struct Client {
    reader: ReadHalf<TlsStream<TcpStream>>,
    writer: WriteHalf<TlsStream<TcpStream>>,
    next_rid: u32,
    /// Requests encoded by [`Client::queue`] and not yet sent.
    queued: Vec<u8>,
    pub granted: Granted,
    /// OFFERs the server sent unsolicited (request_id 0), oldest first.
    pub unsolicited: Vec<Vec<OfferItem>>,
}

/// Progress of one download: verified bytes so far. Persist it to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub blake3: [u8; 32],
    pub size: u64,
    pub verified_upto: u64,
}

/// A client certificate chain and its private key (mTLS devices).
pub type Identity = (
    Vec<CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
);

fn tls_connector(
    ca_file: &Path,
    identity: Option<Identity>,
) -> Result<tokio_rustls::TlsConnector, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ClientError::Tls(format!("{}: {e}", ca_file.display())))?
    {
        let cert = cert.map_err(|e| ClientError::Tls(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClientError::Tls(e.to_string()))?,
    };
    config.alpn_protocols = vec![b"ocp/1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The device's check of a signed OFFER item, in the order of docs/signing.md: a
/// signature by one of the `trusted` keys verifies over the manifest bytes; the manifest
/// decodes and names exactly the offered image (type, version number, version string, size,
/// SHA-256, BLAKE3); its version number is above `highest_accepted` (anti-rollback); and it
/// is within its time bounds at `now_s`. The returned manifest is what the download is
/// then verified against (its BLAKE3 root and size).
pub fn verify_offer(
    item: &OfferItem,
    trusted: &[PublicKey],
    highest_accepted: u64,
    now_s: u64,
) -> Result<Manifest, ClientError> {
    let refuse = |why: String| Err(ClientError::Verify(why));
    let Some(signed) = &item.signed else {
        return refuse(format!(
            "of the offer for type {}: it is not signed",
            item.fw_type
        ));
    };
    let trusted_sig = signed.signatures.iter().any(|(key_id, sig)| {
        trusted
            .iter()
            .any(|k| signing::key_id(k) == *key_id && signing::verify(k, &signed.manifest, sig))
    });
    if !trusted_sig {
        return refuse(format!(
            "of the offer for type {}: no signature by a trusted key verifies",
            item.fw_type
        ));
    }
    let m = Manifest::decode(&signed.manifest)
        .map_err(|e| ClientError::Verify(format!("of the signed manifest: {e}")))?;
    let same = m.fw_type == item.fw_type
        && m.version_number == item.version_number
        && m.version == item.version
        && m.size == item.size
        && m.sha256 == item.sha256
        && m.blake3 == item.blake3;
    if !same {
        return refuse(format!(
            "of the offer for type {}: it differs from the signed manifest",
            item.fw_type
        ));
    }
    if m.version_number <= highest_accepted {
        return refuse(format!(
            "of the offer for type {}: version number {} is not above {highest_accepted}, the highest accepted before (anti-rollback)",
            item.fw_type, m.version_number
        ));
    }
    if !m.admits_time(now_s) {
        return refuse(format!(
            "of the offer for type {}: outside the manifest's not-before/expiry time",
            item.fw_type
        ));
    }
    Ok(m)
}

impl Client {
    /// Connects, sends HELLO and waits for HELLO_OK.
    pub async fn connect(cfg: &ClientConfig) -> Result<Client, ClientError> {
        Self::connect_with_identity(cfg, None).await
    }

    /// Like [`Client::connect`], presenting a client certificate (mTLS devices may then send
    /// an empty token).
    pub async fn connect_with_identity(
        cfg: &ClientConfig,
        identity: Option<Identity>,
    ) -> Result<Client, ClientError> {
        Self::connect_with_features(cfg, identity, None).await
    }

    /// Like [`Client::connect_with_identity`], sending HELLO's features byte (e.g.
    /// `wire::FEATURE_SIGNED_OFFERS`); `granted.features` then holds what the server granted.
    pub async fn connect_with_features(
        cfg: &ClientConfig,
        identity: Option<Identity>,
        features: Option<u8>,
    ) -> Result<Client, ClientError> {
        let connector = tls_connector(&cfg.ca_file, identity)?;
        let tcp = TcpStream::connect(&cfg.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(cfg.server_name.clone())
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let tls = connector.connect(name, tcp).await?;
        let (reader, writer) = tokio::io::split(tls);
        let mut client = Client {
            reader,
            writer,
            next_rid: 1,
            queued: Vec::new(),
            granted: Granted {
                max_frame: wire::PRE_HELLO_MAX_BODY,
                max_inflight: 1,
                chunk_log: cfg.chunk_log,
                poll_interval_s: 0,
                features: None,
            },
            unsolicited: Vec::new(),
        };
        let hello = Message::Hello {
            device_id: cfg.device_id.clone(),
            token: cfg.token.as_bytes().to_vec(),
            max_frame: cfg.max_frame,
            max_inflight: cfg.max_inflight,
            chunk_log: cfg.chunk_log,
            features,
        };
        match client.call(hello).await? {
            Message::HelloOk {
                max_frame,
                max_inflight,
                chunk_log,
                poll_interval_s,
                features: granted,
            } => {
                if features.is_some() != granted.is_some() {
                    return Err(ClientError::Protocol(
                        "HELLO_OK's features byte does not match the HELLO's".into(),
                    ));
                }
                client.granted = Granted {
                    max_frame,
                    max_inflight,
                    chunk_log,
                    poll_interval_s,
                    features: granted,
                };
                Ok(client)
            }
            other => Err(ClientError::Protocol(format!(
                "expected HELLO_OK, got {:?}",
                other.msg_type()
            ))),
        }
    }

    /// Sends one request; returns its request_id.
    pub async fn send(&mut self, msg: &Message) -> Result<u32, ClientError> {
        let rid = self.queue(msg);
        self.send_queued().await?;
        Ok(rid)
    }

    /// Encodes a request for the next [`Client::send_queued`]; returns its request_id.
    /// Several requests then leave in one write (one TLS record, one system call).
    pub fn queue(&mut self, msg: &Message) -> u32 {
        let rid = self.next_rid;
        self.next_rid = self.next_rid.wrapping_add(1).max(1);
        wire::encode(rid, msg, &mut self.queued);
        rid
    }

    /// Sends what [`Client::queue`] encoded.
    pub async fn send_queued(&mut self) -> Result<(), ClientError> {
        self.writer.write_all(&self.queued).await?;
        self.writer.flush().await?;
        self.queued.clear();
        Ok(())
    }

    /// Sends raw bytes (tests of malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Reads the next frame from the server.
    pub async fn recv(&mut self) -> Result<(u32, Message), ClientError> {
        let mut header = [0u8; HEADER_LEN];
        self.reader.read_exact(&mut header).await?;
        let h = wire::decode_header(
            &header,
            self.granted.max_frame.max(wire::PRE_HELLO_MAX_BODY),
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut body = vec![0u8; h.body_len as usize];
        self.reader.read_exact(&mut body).await?;
        let msg = wire::decode_body(h.msg_type, &body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((h.request_id, msg))
    }

    /// Handles a frame with request_id 0: an unsolicited OFFER is kept aside; an ERROR (the
    /// server is closing the connection) or anything else ends the exchange.
    fn server_initiated(&mut self, msg: Message) -> Result<(), ClientError> {
        match msg {
            Message::Offer { items } => {
                self.unsolicited.push(items);
                Ok(())
            }
            other => Err(ClientError::Protocol(format!(
                "unexpected {:?}",
                ClientError::from_error_frame(other)?.msg_type()
            ))),
        }
    }

    /// Sends a request and waits for its answer (unsolicited OFFERs are kept aside). An
    /// ERROR answer becomes `ClientError::Server`.
    pub async fn call(&mut self, msg: Message) -> Result<Message, ClientError> {
        let rid = self.send(&msg).await?;
        loop {
            let (got, answer) = self.recv().await?;
            if got == 0 {
                self.server_initiated(answer)?;
                continue;
            }
            if got != rid {
                return Err(ClientError::Protocol(format!(
                    "answer to {got}, expected {rid}"
                )));
            }
            return ClientError::from_error_frame(answer);
        }
    }

    pub async fn check(&mut self, installed: &[(u16, u64)]) -> Result<Vec<OfferItem>, ClientError> {
        match self
            .call(Message::Check {
                items: installed.to_vec(),
            })
            .await?
        {
            Message::Offer { items } => Ok(items),
            other => Err(ClientError::Protocol(format!(
                "expected OFFER, got {:?}",
                other.msg_type()
            ))),
        }
    }

    pub async fn report(
        &mut self,
        fw_type: u16,
        version_number: u64,
        state: u8,
        result: u8,
        bytes_done: u64,
    ) -> Result<(), ClientError> {
        match self
            .call(Message::Report {
                fw_type,
                version_number,
                state,
                result,
                bytes_done,
            })
            .await?
        {
            Message::ReportOk => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "expected REPORT_OK, got {:?}",
                other.msg_type()
            ))),
        }
    }

    pub async fn ping(&mut self) -> Result<(), ClientError> {
        match self.call(Message::Ping).await? {
            Message::Pong => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "expected PONG, got {:?}",
                other.msg_type()
            ))),
        }
    }

    /// Downloads `[progress.verified_upto, size)` with pipelined verified GETs (one group
    /// each, up to the granted max_inflight in flight), handing verified bytes to `sink` in
    /// order and advancing `progress` only past verified bytes. Stops after `limit` bytes if
    /// given (tests of resume).
    pub async fn download(
        &mut self,
        progress: &mut Progress,
        limit: Option<u64>,
        sink: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        self.download_reporting(progress, limit, None, sink).await
    }

    /// [`Client::download`] that also tells the server how far it got: a REPORT
    /// DOWNLOADING with the verified bytes whenever `reports` says one is due, sent inside
    /// the same pipeline (counted against max_inflight), every REPORT_OK awaited before
    /// returning.
    pub async fn download_reporting(
        &mut self,
        progress: &mut Progress,
        limit: Option<u64>,
        mut reports: Option<&mut ProgressReports>,
        mut sink: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let g = hashtree::group_size(self.granted.chunk_log);
        let end = limit.map_or(progress.size, |l| {
            (progress.verified_upto + l).min(progress.size)
        });
        // Resume from a group boundary: anything past the last whole verified group is redone.
        progress.verified_upto -= progress.verified_upto % g;
        let mut next = progress.verified_upto;
        let mut pending: BTreeMap<u32, u64> = BTreeMap::new();
        let mut ready: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        // The REPORTs in flight.
        let mut report_rids: BTreeSet<u32> = BTreeSet::new();
        let group_len =
            u32::try_from(g).map_err(|_| ClientError::Protocol("group too large".into()))?;
        let window = usize::from(self.granted.max_inflight);
        while progress.verified_upto < end || !report_rids.is_empty() {
            let in_flight = pending.len() + report_rids.len();
            // Refill once half the window is answered, in one write.
            if pending.len() <= window / 2 && next < end && in_flight < window {
                let mut in_flight = in_flight;
                while next < end && in_flight < window {
                    let rid = self.queue(&Message::Get {
                        blake3: progress.blake3,
                        offset: next,
                        length: group_len,
                        with_proof: true,
                    });
                    pending.insert(rid, next);
                    in_flight += 1;
                    next += g;
                }
                self.send_queued().await?;
            }
            let (rid, msg) = self.recv().await?;
            if rid == 0 {
                self.server_initiated(msg)?;
                continue;
            }
            if report_rids.remove(&rid) {
                match ClientError::from_error_frame(msg)? {
                    Message::ReportOk => continue,
                    other => {
                        return Err(ClientError::Protocol(format!(
                            "expected REPORT_OK, got {:?}",
                            other.msg_type()
                        )));
                    }
                }
            }
            let Some(offset) = pending.remove(&rid) else {
                return Err(ClientError::Protocol(format!(
                    "answer to unknown request {rid}"
                )));
            };
            let (length, payload) = match msg {
                Message::Data {
                    offset: o,
                    length,
                    with_proof: true,
                    payload,
                } if o == offset => (length, payload),
                Message::Error {
                    code,
                    retry_after_ms,
                    message,
                } => {
                    return Err(ClientError::Server {
                        code,
                        retry_after_ms,
                        message,
                    });
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected answer {:?}",
                        other.msg_type()
                    )));
                }
            };
            let data = hashtree::verify_slice(
                &progress.blake3,
                progress.size,
                self.granted.chunk_log,
                offset,
                length,
                &payload,
            )
            .map_err(|e| ClientError::Verify(format!("at {offset}: {e}")))?;
            ready.insert(offset, data);
            while let Some(data) = ready.remove(&progress.verified_upto) {
                sink(progress.verified_upto, &data)?;
                progress.verified_upto += data.len() as u64;
            }
            // One answer was just taken off the window, so a REPORT fits in it.
            if let Some(r) = reports.as_deref_mut()
                && progress.verified_upto < progress.size
                && r.due(progress.verified_upto)
            {
                let rid = self.queue(&Message::Report {
                    fw_type: r.fw_type,
                    version_number: r.version_number,
                    state: report::DOWNLOADING,
                    result: report::RESULT_INITIAL,
                    bytes_done: progress.verified_upto,
                });
                self.send_queued().await?;
                r.sent(progress.verified_upto);
                report_rids.insert(rid);
            }
        }
        Ok(())
    }
}

/// When a download tells the server its progress: every `step` verified bytes (10 % of
/// the image by default) or after `interval` (a minute), whichever comes first, as
/// docs/protocol.md section 14 asks ("now and then, not for every group").
#[derive(Debug, Clone)]
pub struct ProgressReports {
    pub fw_type: u16,
    pub version_number: u64,
    pub step: u64,
    pub interval: Duration,
    next_at: u64,
    last: Instant,
    /// How many progress REPORTs were sent.
    pub sent: u64,
}

impl ProgressReports {
    /// Reports for the image of this offer, from `from` verified bytes on, every tenth of
    /// it or every minute.
    pub fn new(offer: &OfferItem, from: u64) -> Self {
        let step = offer.size.div_ceil(10).max(1);
        Self {
            fw_type: offer.fw_type,
            version_number: offer.version_number,
            step,
            interval: Duration::from_secs(60),
            next_at: (from / step + 1) * step,
            last: Instant::now(),
            sent: 0,
        }
    }

    fn due(&self, verified: u64) -> bool {
        verified >= self.next_at || self.last.elapsed() >= self.interval
    }

    fn sent(&mut self, verified: u64) {
        self.next_at = (verified / self.step + 1) * self.step;
        self.last = Instant::now();
        self.sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_are_one_line() {
        let e = ClientError::Server {
            code: 3,
            retry_after_ms: 0,
            message: "authentication\nfailed".into(),
        };
        let text = e.explain("127.0.0.1:1");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("AUTH_FAILED"), "{text}");
    }
}
