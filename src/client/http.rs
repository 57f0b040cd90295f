//! The HTTP client of otad's admin API: hyper 1's HTTP/1.1 client over a tokio-rustls
//! stream on a single-threaded runtime.
//!
//! Lives here: the server URL parser, the TLS trust set (a given CA bundle, else the
//! system's), the connection (kept between calls), requests with JSON, a streamed file
//! upload and a streamed download to a file, reading answers (bounded, with stall limits),
//! and [`HttpError`], what went wrong in those terms. Not here: what the CLI makes of an
//! error (its messages per status and exit codes: `cli/client.rs`), where the URL, CA and
//! token come from (`cli/session.rs`) and what the commands send.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::Value;
use tokio::sync::mpsc::error::SendTimeoutError;

use crate::body::{Body, ChannelBody, full};

/// What went wrong talking to the server. The messages are whole sentences for a person;
/// a non-success answer carries the status and body for the caller to interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request cannot be made as given: a bad server URL, no CA to trust, a host name
    /// TLS cannot check.
    #[error("{0}")]
    Usage(String),
    /// The exchange failed: connection, TLS, a stall, a cut, oversized or non-JSON answer,
    /// or local I/O.
    #[error("{0}")]
    Failed(String),
    /// The server answered with a status that is not a success.
    #[error("server answered {status}")]
    Status { status: StatusCode, body: Bytes },
}

pub type Result<T> = std::result::Result<T, HttpError>;

/// Where a transfer counts its bytes: the total once known, then each piece as it goes.
/// Shared with the thread that reads an uploaded file.
pub trait Meter: Clone + Send + 'static {
    fn set_total(&self, bytes: Option<u64>);
    fn inc(&self, n: u64);
}

// ---------------------------------------------------------------------------------------
// Server URL and TLS trust

/// An `https://host[:port][/prefix]` server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (usually empty).
    pub prefix: String,
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            HttpError::Usage(format!(
                "server URL {url:?} {why}; expected https://HOST[:PORT]"
            ))
        };
        let rest = if let Some(rest) = url.strip_prefix("https://") {
            rest
        } else if url.starts_with("http://") {
            return Err(bad("is plain HTTP, but otad serves only HTTPS"));
        } else {
            return Err(bad("has no https:// scheme"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("has an unclosed ["))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("has an invalid port"))?,
            None => 443,
        };
        Ok(Self {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The URL as a person types it.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("https://{host}:{}{}", self.port, self.prefix)
    }
}

/// Where a system's CA bundle usually is, for servers with a publicly trusted certificate.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn roots(ca_pem: Option<&[u8]>) -> Result<rustls::RootCertStore> {
    let (pem, from) = match ca_pem {
        Some(pem) => (pem.to_vec(), "the given CA file".to_string()),
        None => {
            let found = SYSTEM_BUNDLES
                .iter()
                .find_map(|p| std::fs::read(p).ok().map(|b| (b, (*p).to_string())));
            found.ok_or_else(|| {
                HttpError::Usage(
                    "no CA to trust: pass the server's CA with --ca FILE (on the appliance: <data-dir>/tls/cert.pem) or OTAD_CA"
                        .into(),
                )
            })?
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| HttpError::Failed(format!("{from} is not a PEM certificate: {e}")))?;
        // A system bundle may hold certificates this rustls cannot use; skip those.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(HttpError::Failed(format!(
            "{from} holds no usable certificate"
        )));
    }
    Ok(roots)
}

/// Turns a connection-time I/O error into advice: untrusted certificates → --ca.
fn connect_error(url: &ServerUrl, e: &io::Error) -> HttpError {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(why) => HttpError::Failed(format!(
                "the certificate of {} is not trusted ({why:?}); pass the CA that signed it with `otad login --server {} --ca FILE` or OTAD_CA (on the appliance: <data-dir>/tls/cert.pem)",
                url.display(),
                url.display()
            )),
            other => HttpError::Failed(format!("TLS with {} failed: {other}", url.display())),
        };
    }
    HttpError::Failed(format!(
        "cannot reach the otad server at {} ({e}); is `otad serve` running there, and is the URL right?",
        url.display()
    ))
}

// ---------------------------------------------------------------------------------------
// The client

/// How long to wait for a TCP connection and TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an answer may take to start, and a body may stall, by default.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest answer read into memory (import answers, pages of 1000 records).
const MAX_ANSWER: usize = 256 << 20;
/// How often a running upload is checked for a stall.
const STALL_CHECK: Duration = Duration::from_secs(5);
/// Upload and download piece size.
const PIECE: usize = 256 << 10;

/// One HTTPS client bound to one server; reuses its connection between calls.
pub struct Client {
    rt: tokio::runtime::Runtime,
    conn: Connection,
    token: Option<String>,
}

/// The server, how to trust it, and the live connection to it, if any.
struct Connection {
    url: ServerUrl,
    tls: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    sender: Option<SendRequest<Body>>,
}

/// The answer to a streamed upload and the SHA-256 of the bytes sent.
pub struct Uploaded {
    pub body: Bytes,
    pub sha256: [u8; 32],
    /// Computed in the same pass when asked for (a signed upload needs it for its manifest).
    pub blake3: Option<[u8; 32]>,
}

/// A whole answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for `url` trusting `ca_pem` (or the system bundle), sending `token`.
    pub fn new(url: ServerUrl, ca_pem: Option<&[u8]>, token: Option<String>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HttpError::Failed(format!("cannot start the async runtime: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Failed(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots(ca_pem)?)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(url.host.clone()).map_err(|_| {
            HttpError::Usage(format!("{:?} is not a valid server host name", url.host))
        })?;
        Ok(Self {
            rt,
            conn: Connection {
                url,
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                name,
                sender: None,
            },
            token,
        })
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// A request for `path` below the URL's prefix, sending the bearer token unless the caller
    /// gives its own `authorization` (OAuth Basic).
    fn request(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        length: Option<u64>,
        body: Body,
    ) -> Result<Request<Body>> {
        let url = &self.conn.url;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", url.prefix))
            .body(body)
            .map_err(|e| HttpError::Failed(format!("cannot build the request for {path}: {e}")))?;
        let h = req.headers_mut();
        let value = |s: &str| {
            HeaderValue::from_str(s)
                .map_err(|_| HttpError::Failed(format!("{s:?} cannot be sent in a header")))
        };
        let host = if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port)
        } else {
            format!("{}:{}", url.host, url.port)
        };
        h.insert(header::HOST, value(&host)?);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("otad-cli/", env!("CARGO_PKG_VERSION"))),
        );
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        if let Some(a) = authorization.or(bearer.as_deref()) {
            h.insert(header::AUTHORIZATION, value(a)?);
        }
        if let Some(ct) = content_type {
            h.insert(header::CONTENT_TYPE, value(ct)?);
        }
        if let Some(n) = length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        Ok(req)
    }

    /// Sends `body` and reads the whole answer (any status).
    pub fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Answer> {
        let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
        let req = self.request(method, path, None, content_type, Some(len), full(body))?;
        self.answer(req, path)
    }

    /// Like [`Client::send`] with an `Authorization` header of the caller's (OAuth Basic).
    pub fn send_with_auth(
        &mut self,
        method: Method,
        path: &str,
        authorization: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer> {
        let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
        let req = self.request(
            method,
            path,
            Some(authorization),
            Some(content_type),
            Some(len),
            full(body),
        )?;
        self.answer(req, path)
    }

    /// Sends `req` and reads the whole answer.
    fn answer(&mut self, req: Request<Body>, path: &str) -> Result<Answer> {
        let conn = &mut self.conn;
        self.rt.block_on(async {
            let (head, incoming) = conn.exchange(req, ANSWER_TIMEOUT).await?;
            Ok(Answer {
                status: head.status,
                body: read_body(incoming, path).await?,
            })
        })
    }

    /// A JSON call: sends `body` (if any) as JSON, fails with [`HttpError::Status`] on a
    /// non-2xx answer, returns the answer as JSON (`Null` for an empty body).
    pub fn json(&mut self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (ct, bytes) = match body {
            Some(v) => (
                Some("application/json"),
                Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            ),
            None => (None, Bytes::new()),
        };
        let answer = self.send(method, path, ct, bytes)?;
        parse_answer(&answer, path)
    }

    pub fn get(&mut self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, None)
    }

    /// Streams a file as the request body (never held whole in memory), counting it on
    /// `progress`; fails like [`Client::json`] on a non-2xx answer and returns the raw
    /// answer body with the SHA-256 of what was sent.
    pub fn upload_file(
        &mut self,
        method: Method,
        path: &str,
        file: &Path,
        content_type: &str,
        progress: &impl Meter,
    ) -> Result<Uploaded> {
        self.upload_file_hashing(method, path, file, content_type, progress, false)
    }

    /// Like [`Self::upload_file`]; with `blake3` the file's BLAKE3 is computed while it is
    /// read, so nothing is read twice.
    pub fn upload_file_hashing(
        &mut self,
        method: Method,
        path: &str,
        file: &Path,
        content_type: &str,
        progress: &impl Meter,
        blake3: bool,
    ) -> Result<Uploaded> {
        let handle = std::fs::File::open(file)
            .map_err(|e| HttpError::Failed(format!("cannot open {}: {e}", file.display())))?;
        let len = handle
            .metadata()
            .map_err(|e| HttpError::Failed(format!("cannot read {}: {e}", file.display())))?
            .len();
        progress.set_total(Some(len));
        let (tx, body) = ChannelBody::channel(8);
        let req = self.request(method, path, None, Some(content_type), Some(len), body)?;
        let conn = &mut self.conn;
        let reader_progress = progress.clone();
        let sent = Arc::new(AtomicU64::new(0));
        let reader_sent = Arc::clone(&sent);
        let shown = file.display().to_string();
        self.rt.block_on(async move {
            // The file is read on a blocking thread; a full channel holds it back, so memory
            // stays at a few pieces whatever the file size.
            let runtime = tokio::runtime::Handle::current();
            type Hashes = ([u8; 32], Option<[u8; 32]>);
            let reader = tokio::task::spawn_blocking(move || -> io::Result<Hashes> {
                use sha2::Digest;
                let mut handle = handle;
                let mut sha = sha2::Sha256::new();
                let mut b3 = blake3.then(blake3::Hasher::new);
                let done = |sha: sha2::Sha256, b3: Option<blake3::Hasher>| {
                    (sha.finalize().into(), b3.map(|h| *h.finalize().as_bytes()))
                };
                loop {
                    let mut buf = vec![0u8; PIECE];
                    let n = handle.read(&mut buf)?;
                    if n == 0 {
                        return Ok(done(sha, b3));
                    }
                    buf.truncate(n);
                    sha.update(&buf);
                    if let Some(h) = b3.as_mut() {
                        h.update(&buf);
                    }
                    reader_progress.inc(n as u64);
                    reader_sent.fetch_add(n as u64, Ordering::Relaxed);
                    // Bounded, so that this thread ends even if the connection stalls.
                    match runtime.block_on(tx.send_timeout(Ok(Bytes::from(buf)), ANSWER_TIMEOUT)) {
                        Ok(()) => {}
                        // The server answered before taking everything (an error answer).
                        Err(SendTimeoutError::Closed(_)) => return Ok(done(sha, b3)),
                        Err(SendTimeoutError::Timeout(_)) => {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the server stopped taking the upload",
                            ));
                        }
                    }
                }
            });
            // A large upload may take long; what must not happen is a stall: no byte taken
            // for ANSWER_TIMEOUT, or no answer that long after the last one.
            let mut exchange = Box::pin(conn.exchange(req, Duration::MAX));
            let mut seen = (0u64, tokio::time::Instant::now());
            let result = loop {
                tokio::select! {
                    r = &mut exchange => break r,
                    () = tokio::time::sleep(STALL_CHECK) => {
                        let now = sent.load(Ordering::Relaxed);
                        if now != seen.0 {
                            seen = (now, tokio::time::Instant::now());
                        } else if seen.1.elapsed() >= ANSWER_TIMEOUT {
                            break Err(HttpError::Failed(format!(
                                "{path}: the upload stalled at {now} bytes for {} s",
                                ANSWER_TIMEOUT.as_secs()
                            )));
                        }
                    }
                }
            };
            drop(exchange);
            // A read error cuts the body short, which fails the exchange too: report the cause.
            let (sha256, blake3) = match reader.await {
                Ok(Ok(hashes)) => hashes,
                Ok(Err(e)) => return Err(HttpError::Failed(format!("cannot read {shown}: {e}"))),
                Err(e) => return Err(HttpError::Failed(format!("cannot read {shown}: {e}"))),
            };
            let (head, incoming) = result?;
            let body = read_body(incoming, path).await?;
            if head.status.is_success() {
                Ok(Uploaded {
                    body,
                    sha256,
                    blake3,
                })
            } else {
                Err(HttpError::Status {
                    status: head.status,
                    body,
                })
            }
        })
    }

    /// GETs `path` and streams a successful answer into `out`, counting on `progress`
    /// (whose total is the answer's Content-Length). Returns the bytes written.
    pub fn download_to(
        &mut self,
        path: &str,
        out: &mut dyn Write,
        progress: &impl Meter,
        timeout: Duration,
    ) -> Result<u64> {
        let req = self.request(Method::GET, path, None, None, None, full(Bytes::new()))?;
        let conn = &mut self.conn;
        self.rt.block_on(async {
            let (head, mut incoming) = conn.exchange(req, timeout).await?;
            if !head.status.is_success() {
                return Err(HttpError::Status {
                    status: head.status,
                    body: read_body(incoming, path).await?,
                });
            }
            let total = head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            progress.set_total(total);
            let mut written = 0u64;
            while let Some(piece) = next_piece(&mut incoming, path).await? {
                out.write_all(&piece)
                    .map_err(|e| HttpError::Failed(format!("cannot write the download: {e}")))?;
                written += piece.len() as u64;
                progress.inc(piece.len() as u64);
            }
            if let Some(t) = total
                && t != written
            {
                return Err(HttpError::Failed(format!(
                    "{path}: the answer ended after {written} of {t} bytes"
                )));
            }
            Ok(written)
        })
    }
}

impl Connection {
    /// The live connection, or a new one.
    async fn sender(&mut self) -> Result<SendRequest<Body>> {
        if let Some(s) = self.sender.take()
            && !s.is_closed()
        {
            let mut s = s;
            if s.ready().await.is_ok() {
                return Ok(s);
            }
        }
        let url = &self.url;
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port)).await?;
            tcp.set_nodelay(true)?;
            self.tls.connect(self.name.clone(), tcp).await
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                HttpError::Failed(format!(
                    "cannot reach the otad server at {}: no answer within {} s",
                    url.display(),
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| connect_error(url, &e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpError::Failed(format!("HTTP with {} failed: {e}", url.display())))?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; its
            // error, if any, surfaces on the request that was using it.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends a request and returns the answer's head and body stream.
    async fn exchange(
        &mut self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<(http::response::Parts, hyper::body::Incoming)> {
        let mut sender = self.sender().await?;
        let path = req.uri().path().to_string();
        let resp = tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(|_| {
                HttpError::Failed(format!(
                    "{path}: the server did not answer within {} s",
                    timeout.as_secs()
                ))
            })?
            .map_err(|e| {
                HttpError::Failed(format!(
                    "{path}: the connection to {} failed: {e}",
                    self.url.display()
                ))
            })?;
        self.sender = Some(sender);
        Ok(resp.into_parts())
    }
}

fn path_of(path: &str) -> String {
    path.split('?').next().unwrap_or(path).to_string()
}

/// The next data piece of an answer body; a stall longer than [`ANSWER_TIMEOUT`] fails.
async fn next_piece(body: &mut hyper::body::Incoming, path: &str) -> Result<Option<Bytes>> {
    loop {
        let frame = tokio::time::timeout(ANSWER_TIMEOUT, body.frame())
            .await
            .map_err(|_| HttpError::Failed(format!("{path}: the answer stalled")))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(HttpError::Failed(format!(
                    "{path}: the answer was cut off: {e}"
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// A whole answer body, at most [`MAX_ANSWER`] bytes.
async fn read_body(mut incoming: hyper::body::Incoming, path: &str) -> Result<Bytes> {
    let path = path_of(path);
    let mut buf = Vec::new();
    while let Some(piece) = next_piece(&mut incoming, &path).await? {
        if buf.len() + piece.len() > MAX_ANSWER {
            return Err(HttpError::Failed(format!(
                "{path}: the answer is larger than {MAX_ANSWER} bytes"
            )));
        }
        buf.extend_from_slice(&piece);
    }
    Ok(Bytes::from(buf))
}

/// A JSON answer: the value on 2xx, the mapped API error otherwise.
pub fn parse_answer(answer: &Answer, path: &str) -> Result<Value> {
    if !answer.status.is_success() {
        return Err(HttpError::Status {
            status: answer.status,
            body: answer.body.clone(),
        });
    }
    if answer.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        HttpError::Failed(format!(
            "{}: the server's answer is not JSON ({e}); is this an otad server?",
            path_of(path)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("a b/c+1.0"), "a%20b%2Fc%2B1.0");
    }
}
