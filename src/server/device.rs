//! The OCP/1 listener: TLS 1.3 with ALPN `ocp/1`, connection caps, HELLO and device
//! authentication, and the per-connection session (requests in flight, back-pressure, idle
//! timeout, session replacement, unsolicited OFFER on push).
//!
//! One connection = a reader task that decodes frames (bounded before allocating) and a
//! session task that owns the write half. GETs wait in a queue as small records; the session
//! builds the next DATA frame only after the previous one was written, so a connection holds
//! at most one DATA frame whatever the device's max_inflight. Messages are in `ocp/wire.rs`;
//! storage calls go through `Store` on blocking threads; who is connected is in `hub.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::accept::{WhenFull, accept_loop, stopped};
use super::counters::OcpCounters;
use super::hub::{ConnectionGuard, DeviceHub, Notice};
use super::x509::common_name;

use crate::config::DeviceConfig;
use crate::hashtree;
use crate::model::Device;
use crate::ocp::session::Admission;
use crate::ocp::wire::{
    self, ErrorCode, HEADER_LEN, Message, OfferItem, PRE_HELLO_MAX_BODY, SignedManifest, WireError,
};
use crate::store::BlobMeta;
use crate::store::{BlobAccess, OfferedImage};
use crate::store::{Store, StoreError};

/// Accepts device connections until `shutdown` turns true.
pub async fn run(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    store: Store,
    hub: Arc<DeviceHub>,
    config: DeviceConfig,
    shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let stop = shutdown.clone();
    accept_loop(
        &listener,
        slots,
        WhenFull::Refuse,
        shutdown,
        "device accept failed",
        |tcp, peer, permit| {
            let guard = ConnectionGuard::new(&hub);
            let ctx = Conn {
                store: store.clone(),
                hub: Arc::clone(&hub),
                config: Arc::clone(&config),
                peer,
                client_cert: None,
            };
            tokio::spawn(connection(
                ctx,
                acceptor.clone(),
                tcp,
                permit,
                guard,
                stop.clone(),
            ));
        },
    )
    .await;
}

/// One device connection: the TLS handshake, BUSY when over the cap, then the session
/// until it ends or the server stops.
async fn connection(
    mut ctx: Conn,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    permit: Option<OwnedSemaphorePermit>,
    _guard: ConnectionGuard,
    mut stop: watch::Receiver<bool>,
) {
    let hello_timeout = Duration::from_secs(ctx.config.hello_timeout_secs);
    let tls = match tokio::time::timeout(hello_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    ctx.client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let Some(permit) = permit else {
        // Over the global cap: refuse with BUSY instead of HELLO_OK, then close.
        let mut tls = tls;
        let msg = error_msg(ErrorCode::Busy, ctx.config.busy_retry_ms, "server busy");
        let _ = write_frame(&mut tls, &ctx.hub.counters, ctx.write_timeout(), 0, &msg).await;
        let _ = tokio::time::timeout(ctx.write_timeout(), tls.shutdown()).await;
        return;
    };
    tokio::select! {
        () = ctx.serve(tls) => {}
        () = stopped(&mut stop) => {}
    }
    drop(permit);
}

fn error_msg(code: ErrorCode, retry_after_ms: u32, message: &str) -> Message {
    Message::Error {
        code: code as u16,
        retry_after_ms,
        message: message.to_string(),
    }
}

/// Writes one frame, giving up after `limit`: a device that stops reading must not hold its
/// session (and connection slot) forever.
async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    counters: &OcpCounters,
    limit: Duration,
    request_id: u32,
    msg: &Message,
) -> std::io::Result<()> {
    counters.sent(request_id, msg);
    let mut out = Vec::new();
    wire::encode(request_id, msg, &mut out);
    let write = async {
        w.write_all(&out).await?;
        w.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "device stopped reading"))?
}

/// Reads one frame: header (checked against `max_body`), then exactly its body.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: u32,
) -> Result<Option<(u32, Message)>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(_) => return Ok(None),
    }
    let h = wire::decode_header(&header, max_body).map_err(FrameError::Wire)?;
    let mut body = vec![0u8; h.body_len as usize];
    if r.read_exact(&mut body).await.is_err() {
        return Err(FrameError::Wire(WireError::BadFrame(
            "connection closed inside a frame",
        )));
    }
    let msg = wire::decode_body(h.msg_type, &body).map_err(FrameError::Wire)?;
    Ok(Some((h.request_id, msg)))
}

#[derive(Debug)]
enum FrameError {
    Wire(WireError),
}

/// Whether a client certificate (already chain-verified by rustls against the configured
/// device CA) names exactly this device id, as its subject commonName or a DNS subject
/// alternative name. Exact comparison: no wildcards.
fn certificate_names(cert: Option<&[u8]>, device_id: &str) -> bool {
    let Some(der) = cert else { return false };
    let der = rustls_pki_types::CertificateDer::from(der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    cert.valid_dns_names().any(|name| name == device_id)
        || common_name(cert.subject()) == Some(device_id.as_bytes())
}

/// Checks a device's id and token (or, with an empty token, its client certificate);
/// unknown ids and wrong credentials take the same path and give the same answer.
fn authenticate(
    store: &Store,
    device_id: &str,
    token: &[u8],
    cert: Option<&[u8]>,
) -> Result<Option<Device>, StoreError> {
    let presented = crate::secrets::token_hash(token);
    let device = store.device(device_id)?;
    let stored = device.as_ref().map_or([0xA5u8; 32], |d| d.token_hash);
    let token_ok = crate::secrets::same_hash(&presented, &stored) && !token.is_empty();
    let cert_ok = token.is_empty() && certificate_names(cert, device_id);
    Ok(device.filter(|_| token_ok || cert_ok))
}

struct Conn {
    store: Store,
    hub: Arc<DeviceHub>,
    config: Arc<DeviceConfig>,
    peer: SocketAddr,
    /// The client certificate presented in the TLS handshake (verified by rustls), if any.
    client_cert: Option<Vec<u8>>,
}

/// Events the session task waits on.
enum Event {
    Frame(u32, Message),
    /// The reader stopped: a protocol error (sent, then close), idle timeout or EOF.
    Fatal(ErrorCode, &'static str),
    Closed,
}

/// A request that finished on a blocking thread, ready to be written.
struct Done {
    request_id: u32,
    msg: Message,
    /// A blob the device was found entitled to, remembered for its next GETs.
    entitled: Option<([u8; 32], BlobMeta)>,
}

impl Done {
    fn new(request_id: u32, msg: Message) -> Self {
        Self {
            request_id,
            msg,
            entitled: None,
        }
    }
}

impl Conn {
    fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.config.write_timeout_secs)
    }

    async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let hello_timeout = Duration::from_secs(self.config.hello_timeout_secs);
        let first =
            tokio::time::timeout(hello_timeout, read_frame(&mut reader, PRE_HELLO_MAX_BODY)).await;
        let (rid, hello) = match first {
            Err(_) | Ok(Ok(None)) => return,
            Ok(Err(FrameError::Wire(e))) => {
                let _ = write_frame(
                    &mut writer,
                    &self.hub.counters,
                    self.write_timeout(),
                    0,
                    &error_msg(e.code(), 0, &e.to_string()),
                )
                .await;
                return;
            }
            Ok(Ok(Some(frame))) => frame,
        };
        let Message::Hello {
            device_id,
            token,
            max_frame,
            max_inflight,
            chunk_log,
            features,
        } = hello
        else {
            let _ = write_frame(
                &mut writer,
                &self.hub.counters,
                self.write_timeout(),
                0,
                &error_msg(ErrorCode::BadState, 0, "HELLO must come first"),
            )
            .await;
            return;
        };
        if rid == 0 {
            let _ = write_frame(
                &mut writer,
                &self.hub.counters,
                self.write_timeout(),
                0,
                &error_msg(ErrorCode::BadFrame, 0, "request_id 0 is reserved"),
            )
            .await;
            return;
        }
        let store = self.store.clone();
        let id = device_id.clone();
        let cert = self.client_cert.clone();
        let device = match tokio::task::spawn_blocking(move || {
            authenticate(&store, &id, &token, cert.as_deref())
        })
        .await
        {
            Ok(Ok(Some(d))) => d,
            Ok(Ok(None)) => {
                let _ = write_frame(
                    &mut writer,
                    &self.hub.counters,
                    self.write_timeout(),
                    0,
                    &error_msg(ErrorCode::AuthFailed, 0, "authentication failed"),
                )
                .await;
                return;
            }
            _ => {
                let _ = write_frame(
                    &mut writer,
                    &self.hub.counters,
                    self.write_timeout(),
                    0,
                    &error_msg(ErrorCode::Internal, 1000, "internal error"),
                )
                .await;
                return;
            }
        };
        let granted = features.map(|f| f & wire::FEATURES_KNOWN);
        let limits = Limits {
            max_frame: max_frame.min(self.config.max_frame),
            max_inflight: max_inflight.min(self.config.max_inflight),
            chunk_log,
            signed_offers: granted.is_some_and(|f| f & wire::FEATURE_SIGNED_OFFERS != 0),
        };
        let (notice_tx, notice_rx) = mpsc::channel(4);
        let serial = self.hub.register(&device.id, notice_tx);
        let ok = Message::HelloOk {
            max_frame: limits.max_frame,
            max_inflight: limits.max_inflight,
            chunk_log: limits.chunk_log,
            poll_interval_s: self.config.poll_interval_secs,
            features: granted,
        };
        if write_frame(
            &mut writer,
            &self.hub.counters,
            self.write_timeout(),
            rid,
            &ok,
        )
        .await
        .is_ok()
        {
            self.hub.counters.session();
            tracing::debug!(device = %device.id, peer = %self.peer, "device session started");
            let session = Session {
                store: self.store.clone(),
                hub: Arc::clone(&self.hub),
                device,
                limits,
                write_timeout: self.write_timeout(),
                rules: crate::ocp::session::Session::new(limits.max_inflight),
                out: Vec::new(),
                allowed: HashMap::new(),
            };
            session
                .run(
                    reader,
                    writer,
                    notice_rx,
                    Duration::from_secs(self.config.idle_timeout_secs),
                )
                .await;
        }
        self.hub.unregister(&device_id, serial);
    }
}

/// Answers gathered for one write at most (about eight 16 KiB verified chunks); a larger
/// buffer is dropped after the write.
const BATCH_BYTES: usize = 160 * 1024;

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame: u32,
    max_inflight: u8,
    chunk_log: u8,
    /// The device asked for signed OFFERs (HELLO features bit 0).
    signed_offers: bool,
}

struct GetRequest {
    request_id: u32,
    blake3: [u8; 32],
    offset: u64,
    length: u32,
    with_proof: bool,
}

struct Session {
    store: Store,
    /// Its counters see every frame queued.
    hub: Arc<DeviceHub>,
    device: Device,
    limits: Limits,
    write_timeout: Duration,
    rules: crate::ocp::session::Session,
    /// Encoded answers not yet written: everything answered in one turn of the loop leaves
    /// in one write (pipelined GETs share TLS records and system calls).
    out: Vec<u8>,
    /// Blobs this device was found entitled to (its device type's images).
    allowed: HashMap<[u8; 32], BlobMeta>,
}

fn offer_items(offers: &[OfferedImage], signed: bool) -> Vec<OfferItem> {
    offers
        .iter()
        .filter_map(|o| {
            let b = o.record.binary.as_ref()?;
            Some(OfferItem {
                fw_type: o.offer.fw_type,
                version_number: o.offer.version_number,
                size: b.size,
                blake3: b.blake3,
                sha256: b.sha256,
                pushed: o.offer.pushed,
                version: o.record.version.clone(),
                signed: signed.then(|| signature_block(o)).flatten(),
            })
        })
        .collect()
}

/// The OFFER signature block of an image: its usable signatures over one manifest (the
/// newest signature's; others over different bytes cannot share the block).
fn signature_block(o: &OfferedImage) -> Option<SignedManifest> {
    let newest = o.signatures.iter().max_by_key(|s| s.created_ms)?;
    let signatures: Vec<([u8; 8], [u8; 64])> = o
        .signatures
        .iter()
        .filter(|s| s.manifest == newest.manifest)
        .filter_map(|s| Some((s.key_id_bytes()?, s.signature_bytes()?)))
        .take(wire::OFFER_SIGNATURES_MAX)
        .collect();
    (!signatures.is_empty()).then(|| SignedManifest {
        manifest: newest.manifest.clone(),
        signatures,
    })
}

/// An OFFER of `items`, or TOO_LARGE when signature blocks make it exceed the session's
/// max_frame (an unsigned OFFER of at most 32 items always fits).
fn offer_message(items: Vec<OfferItem>, max_frame: u32) -> Message {
    let signed = items.iter().any(|i| i.signed.is_some());
    let msg = Message::Offer { items };
    if !signed {
        return msg;
    }
    let mut probe = Vec::new();
    wire::encode(0, &msg, &mut probe);
    if probe.len() - HEADER_LEN > max_frame as usize {
        return error_msg(
            ErrorCode::TooLarge,
            0,
            "signed OFFER exceeds max_frame; CHECK fewer types at once",
        );
    }
    msg
}

fn store_error_code(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::Invalid(_) => ErrorCode::BadRange,
        StoreError::Forbidden { .. } => ErrorCode::Forbidden,
        StoreError::NotFound { .. } => ErrorCode::NotFound,
        _ => ErrorCode::Internal,
    }
}

impl Session {
    async fn run<R, W>(
        mut self,
        mut reader: R,
        mut writer: W,
        mut notices: mpsc::Receiver<Notice>,
        idle: Duration,
    ) where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin,
    {
        let max_frame = self.limits.max_frame;
        // The reader runs ahead by at most a few frames; the inflight limit bounds the rest.
        let (event_tx, mut events) = mpsc::channel::<Event>(4);
        let reader_task = tokio::spawn(async move {
            loop {
                let next = tokio::time::timeout(idle, read_frame(&mut reader, max_frame)).await;
                let event = match next {
                    Err(_) => Event::Closed,
                    Ok(Ok(None)) => Event::Closed,
                    Ok(Ok(Some((rid, msg)))) => Event::Frame(rid, msg),
                    Ok(Err(FrameError::Wire(e))) => Event::Fatal(
                        e.code(),
                        if e.code() == ErrorCode::UnsupportedVersion {
                            "unsupported version"
                        } else {
                            "bad frame"
                        },
                    ),
                };
                let last = !matches!(event, Event::Frame(..));
                if event_tx.send(event).await.is_err() || last {
                    return;
                }
            }
        });
        let (done_tx, mut done_rx) =
            mpsc::channel::<Done>(usize::from(self.limits.max_inflight) + 1);
        loop {
            let mut go = tokio::select! {
                event = events.recv() => self.on_event(event, &done_tx),
                Some(done) = done_rx.recv() => self.finish(done),
                notice = notices.recv() => match notice {
                    Some(Notice::Replaced) | None => {
                        self.queue(0, &error_msg(ErrorCode::BadState, 0, "session replaced"));
                        false
                    }
                    Some(Notice::Push) => self.push_offer().await,
                },
            };
            // Answer what has already arrived before writing, up to a bounded batch.
            while go && self.out.len() < BATCH_BYTES {
                if let Ok(event) = events.try_recv() {
                    go = self.on_event(Some(event), &done_tx);
                } else if let Ok(done) = done_rx.try_recv() {
                    go = self.finish(done);
                } else {
                    break;
                }
            }
            if !self.out.is_empty() && self.flush(&mut writer).await.is_err() {
                break;
            }
            if !go {
                break;
            }
        }
        reader_task.abort();
        // A device that stopped reading cannot take the close_notify either.
        let _ = tokio::time::timeout(self.write_timeout, writer.shutdown()).await;
    }

    /// Handles what the reader task delivered; false = close the connection.
    fn on_event(&mut self, event: Option<Event>, done_tx: &mpsc::Sender<Done>) -> bool {
        match event {
            Some(Event::Frame(rid, msg)) => self.on_frame(rid, msg, done_tx),
            Some(Event::Fatal(code, text)) => {
                self.queue(0, &error_msg(code, 0, text));
                false
            }
            Some(Event::Closed) | None => false,
        }
    }

    /// Encodes a frame for the next write.
    fn queue(&mut self, request_id: u32, msg: &Message) {
        self.hub.counters.sent(request_id, msg);
        wire::encode(request_id, msg, &mut self.out);
    }

    /// Writes the queued frames, giving up after the write timeout (a device that stopped
    /// reading must not hold its session forever).
    async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<()> {
        let write = async {
            w.write_all(&self.out).await?;
            w.flush().await
        };
        tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "device stopped reading")
            })??;
        self.out.clear();
        // A burst's buffer is not kept by a session that goes back to idling.
        if self.out.capacity() > 2 * BATCH_BYTES {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Handles one request frame; false = close the connection.
    fn on_frame(&mut self, rid: u32, msg: Message, done_tx: &mpsc::Sender<Done>) -> bool {
        match self.rules.admit(rid, msg.msg_type()) {
            Admission::Accept => {}
            Admission::Refuse(code, text) => {
                self.queue(rid, &error_msg(code, 0, text));
                return true;
            }
            Admission::Close(code, text) => {
                self.queue(0, &error_msg(code, 0, text));
                return false;
            }
        }
        match msg {
            Message::Ping => self.finish(Done::new(rid, Message::Pong)),
            Message::Check { items } => {
                self.hub.counters.check();
                let store = self.store.clone();
                let id = self.device.id.clone();
                let tx = done_tx.clone();
                let limits = self.limits;
                tokio::task::spawn_blocking(move || {
                    let reported = items.into_iter().collect();
                    let msg = match store.check_in(&id, reported) {
                        Ok(offers) => offer_message(
                            offer_items(&offers, limits.signed_offers),
                            limits.max_frame,
                        ),
                        Err(e) => error_msg(store_error_code(&e), 1000, "check failed"),
                    };
                    let _ = tx.blocking_send(Done::new(rid, msg));
                });
                true
            }
            Message::Report {
                fw_type,
                version_number,
                state,
                result,
                bytes_done,
            } => {
                self.hub.counters.report();
                let store = self.store.clone();
                let id = self.device.id.clone();
                let tx = done_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let msg =
                        match store.report(&id, fw_type, version_number, state, result, bytes_done)
                        {
                            Ok(()) => Message::ReportOk,
                            Err(e) => error_msg(store_error_code(&e), 0, &e.to_string()),
                        };
                    let _ = tx.blocking_send(Done::new(rid, msg));
                });
                true
            }
            Message::Get {
                blake3,
                offset,
                length,
                with_proof,
            } => {
                let done = self.build_get(GetRequest {
                    request_id: rid,
                    blake3,
                    offset,
                    length,
                    with_proof,
                });
                self.finish(done)
            }
            _ => false,
        }
    }

    /// Builds one DATA (or ERROR) on this reactor thread: an entitlement lookup and cached
    /// rows (`storage.delivery_cache_mib`) cost a few microseconds, far less than the
    /// thread switches of a blocking-pool hop per chunk, which bounded chunks/s before.
    fn build_get(&self, get: GetRequest) -> Done {
        let store = &self.store;
        let device = &self.device;
        let limits = self.limits;
        let cached = self.allowed.get(&get.blake3).cloned();
        let rid = get.request_id;
        let err = |code: ErrorCode, text: &str| Done::new(rid, error_msg(code, 0, text));
        let (meta, entitled) = match cached {
            Some(m) => (m, None),
            None => match store.device_blob(device, &get.blake3) {
                Ok(BlobAccess::Allowed(m)) => (m.clone(), Some((get.blake3, m))),
                Ok(BlobAccess::Missing) => return err(ErrorCode::NotFound, "no such blob"),
                Ok(BlobAccess::Forbidden) => {
                    return err(ErrorCode::Forbidden, "blob not offered to this device");
                }
                Err(_) => return err(ErrorCode::Internal, "storage error"),
            },
        };
        let clipped =
            match hashtree::check_range(meta.size, limits.chunk_log, get.offset, get.length) {
                Ok(c) => c,
                Err(e) => return err(ErrorCode::BadRange, &e.to_string()),
            };
        let payload_len = if get.with_proof {
            hashtree::slice_len(&hashtree::slice_plan(
                meta.size,
                limits.chunk_log,
                get.offset,
                clipped,
            ))
        } else {
            u64::from(clipped)
        };
        if wire::data_body_len(payload_len) > u64::from(limits.max_frame) {
            return err(ErrorCode::TooLarge, "DATA would exceed max_frame");
        }
        let payload = if get.with_proof {
            store
                .slice(&meta, limits.chunk_log, get.offset, get.length)
                .map(|(_, s)| s)
                .map_err(|_| ())
        } else {
            store
                .read_range(&meta, get.offset, get.offset + u64::from(clipped))
                .map(|b| b.to_vec())
                .map_err(|_| ())
        };
        match payload {
            Ok(payload) => Done {
                request_id: rid,
                msg: Message::Data {
                    offset: get.offset,
                    length: clipped,
                    with_proof: get.with_proof,
                    payload,
                },
                entitled,
            },
            Err(()) => err(ErrorCode::Internal, "storage error"),
        }
    }

    /// Queues a finished answer.
    fn finish(&mut self, done: Done) -> bool {
        self.rules.complete(done.request_id);
        if let Some((blake3, meta)) = done.entitled
            && self.allowed.len() < 64
        {
            self.allowed.insert(blake3, meta);
        }
        self.queue(done.request_id, &done.msg);
        true
    }

    /// Queues the pushed offers, unsolicited (request_id 0).
    async fn push_offer(&mut self) -> bool {
        let store = self.store.clone();
        let id = self.device.id.clone();
        let offers =
            tokio::task::spawn_blocking(move || -> Result<Vec<OfferedImage>, StoreError> {
                let Some(device) = store.device(&id)? else {
                    return Ok(Vec::new());
                };
                let pushed: Vec<OfferedImage> = store
                    .eligible(&device)?
                    .into_iter()
                    .filter(|o| o.offer.pushed)
                    .collect();
                if !pushed.is_empty() {
                    store.note_offered(&id, pushed.clone())?;
                }
                Ok(pushed)
            })
            .await;
        let items: Vec<OfferItem> = match offers {
            Ok(Ok(offers)) => offer_items(&offers, self.limits.signed_offers),
            _ => return true,
        };
        if items.is_empty() {
            return true;
        }
        let msg = offer_message(items, self.limits.max_frame);
        // An unsolicited OFFER that does not fit is not sent: the next CHECK reports it.
        if matches!(msg, Message::Offer { .. }) {
            self.queue(0, &msg);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_offer_over_max_frame_is_too_large_and_an_unsigned_one_is_sent() {
        let item = |t: u16, signed: bool| OfferItem {
            fw_type: t,
            version_number: 2,
            size: 10,
            blake3: [1; 32],
            sha256: [2; 32],
            pushed: false,
            version: "1".into(),
            signed: signed.then(|| SignedManifest {
                manifest: vec![0; wire::OFFER_MANIFEST_MAX],
                signatures: vec![([3; 8], [4; 64]); wire::OFFER_SIGNATURES_MAX],
            }),
        };
        // 32 unsigned items fit the smallest frame a device may announce (8192).
        let unsigned: Vec<OfferItem> = (1..=32).map(|t| item(t, false)).collect();
        assert!(matches!(
            offer_message(unsigned, 8192),
            Message::Offer { .. }
        ));
        // Five items at the signature block's limits (about 1.9 KB each) do not.
        let signed: Vec<OfferItem> = (1..=5).map(|t| item(t, true)).collect();
        match offer_message(signed.clone(), 8192) {
            Message::Error { code, .. } => assert_eq!(code, ErrorCode::TooLarge as u16),
            other => panic!("expected TOO_LARGE, got {other:?}"),
        }
        assert!(matches!(
            offer_message(signed, 65536),
            Message::Offer { .. }
        ));
    }

    #[test]
    fn certificate_names_its_dns_san() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["dev-1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(certificate_names(Some(cert.der()), "dev-1"));
        assert!(!certificate_names(Some(cert.der()), "dev-2"));
        assert!(!certificate_names(None, "dev-1"));
        assert!(!certificate_names(Some(b"garbage"), "dev-1"));
    }

    #[test]
    fn certificate_names_its_common_name_exactly() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["*.fleet".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "12345678");
        let cert = params.self_signed(&key).unwrap();
        // A serial-number id that is not a DNS name authenticates through the CN.
        assert!(certificate_names(Some(cert.der()), "12345678"));
        // Wildcard SANs never match a device id.
        assert!(!certificate_names(Some(cert.der()), "x.fleet"));
        assert!(!certificate_names(Some(cert.der()), "1234567"));
        assert_eq!(common_name(&[0x31, 0x03, 0x30, 0x01]), None);
        assert_eq!(common_name(&[0x31, 0xff]), None);
    }
}
