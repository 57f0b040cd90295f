//! The HTTPS listener of the API and the OTA Manager: TLS handshakes (and a readable answer
//! to plain HTTP sent to this port), hyper's HTTP/1.1 connections with their header limits,
//! idle and request timeouts, and the graceful end of requests in flight at shutdown.
//!
//! Not here: what a request does (`api::handle`), binding and the accept loop (`accept.rs`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::accept::{WhenFull, accept_loop};
use crate::api::App;

/// Serves HTTPS on `listener` until `shutdown` turns true, then gives the requests in flight
/// `api.shutdown_grace_secs` to finish.
pub async fn run(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Arc<App>,
    shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.config.api.max_connections));
    accept_loop(
        &listener,
        slots,
        WhenFull::Wait,
        shutdown,
        "accept failed",
        |tcp, peer, permit| {
            let conn = Connection {
                app: Arc::clone(&app),
                acceptor: acceptor.clone(),
                watcher: graceful.watcher(),
            };
            tokio::spawn(async move {
                conn.run(tcp, peer).await;
                drop(permit);
            });
        },
    )
    .await;
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    let grace = Duration::from_secs(app.config.api.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the grace period; closing them");
    }
}

struct Connection {
    app: Arc<App>,
    acceptor: tokio_rustls::TlsAcceptor,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn run(self, tcp: TcpStream, peer: SocketAddr) {
        let api = &self.app.config.api;
        let head_timeout = Duration::from_secs(api.header_read_timeout_secs);
        // One deadline for the first byte and the whole handshake.
        let deadline = tokio::time::Instant::now() + head_timeout;
        if speaks_plain_http(&tcp, deadline).await {
            answer_plain_http(tcp, deadline, self.app.public_base_url.as_str()).await;
            tracing::debug!(%peer, "plain HTTP on the HTTPS port");
            return;
        }
        let tls = match tokio::time::timeout_at(deadline, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(IdleIo {
            inner: tls,
            activity: Arc::clone(&activity),
        });
        let app = Arc::clone(&self.app);
        let active = Arc::clone(&activity);
        let service = service_fn(move |req| {
            let app = Arc::clone(&app);
            let active = Arc::clone(&active);
            async move {
                active.requests.fetch_add(1, Ordering::Relaxed);
                let resp = crate::api::handle(app, req).await;
                active.requests.fetch_sub(1, Ordering::Relaxed);
                active.touch();
                resp
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .max_headers(api.max_headers)
            .max_header_size(api.max_header_bytes)
            .max_buf_size(api.max_header_bytes.max(8192) * 2);
        let conn = self.watcher.watch(builder.serve_connection(io, service));
        let idle = Duration::from_secs(api.idle_timeout_secs);
        let busy = Duration::from_secs(api.request_timeout_secs);
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            () = activity.expired(idle, busy) => {
                tracing::debug!(%peer, "connection closed after inactivity");
            }
        }
    }
}

/// Whether the client's first byte starts a plain HTTP request (a method name) rather than
/// a TLS record (0x16): `http://` typed for `https://`.
async fn speaks_plain_http(tcp: &TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await,
        Ok(Ok(1)) if first[0].is_ascii_uppercase()
    )
}

/// Longest plain request head read before answering (the rest is not waited for).
const PLAIN_HEAD_LIMIT: usize = 8192;
/// Most read and dropped after the answer while waiting for the client to close.
const PLAIN_DRAIN_LIMIT: usize = 64 * 1024;

/// Answers a plain HTTP request with a short readable 400 naming the HTTPS URL, instead of
/// the TLS alert bytes a browser or curl would show as garbage, then closes.
async fn answer_plain_http(mut tcp: TcpStream, deadline: tokio::time::Instant, base_url: &str) {
    // Read the request head first: closing with unread bytes would reset the connection
    // and the client might never see the answer.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < PLAIN_HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            _ => break,
        }
    }
    let text = format!("This port speaks HTTPS only: use {base_url}/\n");
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = tokio::time::timeout_at(deadline, async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await?;
        // Take what the client still sends (bounded) until it closes, for the same reason.
        let mut drained = 0;
        while drained < PLAIN_DRAIN_LIMIT {
            match tcp.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// When a connection last moved a byte, and how many requests it has in a handler.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle` (or `busy` while a handler runs).
    async fn expired(&self, idle: Duration, busy: Duration) {
        loop {
            let limit = if self.requests.load(Ordering::Relaxed) > 0 {
                busy
            } else {
                idle
            };
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.base.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep((limit - quiet).max(Duration::from_millis(100))).await;
        }
    }
}

/// Records I/O activity for the idle timeout.
struct IdleIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
