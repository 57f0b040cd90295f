//! `otad serve`: zero-config start (data directory, self-signed TLS, first admin), the HTTPS
//! listener with its connection limits and timeouts, periodic sweeps, and graceful shutdown
//! on SIGINT/SIGTERM.
//!
//! Request handling is in `api/`; storage in `store/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::App;
use crate::config::Config;
use crate::datadir::{Credentials, DataDir, ListenFile};
use crate::server::tls;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Pending connections the kernel may queue per listener. mio's default (128) drops SYNs
/// when a fleet reconnects at once, and the devices then wait a full SYN retry.
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds a listener with a deep accept queue.
fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    let what = || format!("cannot listen on {addr}");
    let parsed: SocketAddr = addr.parse().map_err(|e| ServeError::Io {
        what: what(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let socket = if parsed.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(io_err(what()))?;
    socket.set_reuseaddr(true).map_err(io_err(what()))?;
    socket.bind(parsed).map_err(io_err(what()))?;
    socket.listen(ACCEPT_BACKLOG).map_err(io_err(what()))
}

/// The public base URL: configured, or derived from the bound address.
fn public_base_url(config: &Config, addr: SocketAddr) -> String {
    if !config.api.public_base_url.is_empty() {
        return config.api.public_base_url.clone();
    }
    if addr.ip().is_unspecified() {
        format!("https://localhost:{}", addr.port())
    } else {
        format!("https://{addr}")
    }
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(config: Config) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("otad-worker")
        // Storage calls run on blocking threads; more than this only adds switching.
        .max_blocking_threads(64)
        .build()
        .map_err(io_err("cannot start the async runtime"))?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), ServeError> {
    let data_dir = DataDir::new(&config.data_dir);
    data_dir.create().map_err(io_err(format!(
        "cannot create data directory {}",
        data_dir.root().display()
    )))?;
    let db_path = data_dir.db();
    let storage = config.storage.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<Store, StoreError> {
        let store = Store::open(&db_path, &storage)?;
        Ok(store)
    })
    .await
    .map_err(|e| ServeError::Store(StoreError::Db(e.to_string())))??;
    let first = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.bootstrap())
            .await
            .map_err(|e| ServeError::Store(StoreError::Db(e.to_string())))??
    };

    let (cert_path, key_path) = if config.api.tls_cert.is_empty() {
        tls::ensure_self_signed(&data_dir, &config.api.host_names)?
    } else {
        (
            PathBuf::from(&config.api.tls_cert),
            PathBuf::from(&config.api.tls_key),
        )
    };
    let (certs, key) = tls::load(&cert_path, &key_path)?;
    let api_tls = tls::server_config(certs.clone(), key.clone_key(), &[b"http/1.1"], false, None)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(api_tls);
    let client_roots = if config.device.client_ca.is_empty() {
        None
    } else {
        Some(tls::load_roots(Path::new(&config.device.client_ca))?)
    };
    let device_tls = tls::server_config(certs, key, &[b"ocp/1"], true, client_roots)?;

    let listener = bind(&config.api.listen)?;
    let addr = listener
        .local_addr()
        .map_err(io_err("cannot read the listening address"))?;
    let base_url = public_base_url(&config, addr);
    let device_listener = bind(&config.device.listen)?;
    let device_addr = device_listener
        .local_addr()
        .map_err(io_err("cannot read the device listening address"))?;

    if let Some(first) = first {
        let path = data_dir.credentials_file();
        let credentials = Credentials {
            username: first.admin_username,
            password: first.admin_password,
            client_id: first.platform_partner_id,
            client_secret: first.client_secret,
            url: base_url.clone(),
        };
        data_dir
            .write_credentials(&credentials)
            .map_err(io_err(format!("cannot write {}", path.display())))?;
        println!(
            "otad: first start: admin credentials written to {} (readable by this user only)",
            path.display()
        );
    }
    let listen = ListenFile {
        api: addr,
        device: device_addr,
    };
    data_dir
        .write_listen(&listen)
        .map_err(io_err("cannot write the listen file"))?;
    println!(
        "otad: api listening on {base_url}, devices on {device_addr} (certificate: {})",
        cert_path.display()
    );
    tracing::info!(api = %addr, device = %device_addr, data_dir = %data_dir.root().display(), "otad started");

    let hub = Arc::new(crate::server::device::DeviceHub::default());
    let (stop_devices, devices_stopped) = tokio::sync::watch::channel(false);
    let device_task = tokio::spawn(crate::server::device::run(
        device_listener,
        tokio_rustls::TlsAcceptor::from(device_tls),
        store.clone(),
        Arc::clone(&hub),
        config.device.clone(),
        devices_stopped,
    ));
    let app = Arc::new(App::new(store.clone(), config.clone(), base_url, hub));
    let sweeper = tokio::spawn(sweep_loop(store.clone()));
    let watchdog = tokio::spawn(storage_watchdog(store.clone()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(config.api.max_connections));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = Connection {
            app: Arc::clone(&app),
            acceptor: acceptor.clone(),
            watcher: graceful.watcher(),
        };
        tokio::spawn(async move {
            conn.run(tcp, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    let grace = Duration::from_secs(config.api.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the grace period; closing them");
    }
    let _ = stop_devices.send(true);
    let _ = device_task.await;
    sweeper.abort();
    watchdog.abort();
    drop(app);
    // Flush the writer (check-ins and other batched writes) and close the database.
    tokio::task::spawn_blocking(move || store.close())
        .await
        .map_err(|e| ServeError::Store(StoreError::Db(e.to_string())))?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Removes abandoned uploads and expired tokens every minute.
async fn sweep_loop(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let s = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let now = crate::ids::now_ms();
            let uploads = s.sweep(now)?;
            let tokens = s.sweep_tokens(now)?;
            Ok::<_, StoreError>((uploads, tokens))
        })
        .await;
        match result {
            Ok(Ok((uploads, tokens))) if uploads.uploads_removed > 0 || tokens > 0 => {
                tracing::info!(
                    uploads = uploads.uploads_removed,
                    rows = uploads.rows_removed,
                    tokens,
                    "sweep"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed"),
            _ => {}
        }
    }
}

/// Probes the database every 2 s. After an I/O error (a disk another program filled up),
/// redb refuses the open file until it is reopened: once a quarter of the free-space
/// reserve is back, the watchdog reopens it, so service resumes without a restart.
async fn storage_watchdog(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether the last tick already reported that reopening waits: said once, not every 2 s.
    let mut waiting = false;
    loop {
        tick.tick().await;
        let s = store.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let Err(failure) = s.probe() else {
                return Ok(None);
            };
            // A quarter of the reserve is room enough to reopen (redb may repair on open)
            // without failing again at once; uploads still wait for the whole reserve.
            s.check_space_fraction(4)?;
            s.reopen()?;
            s.probe()?;
            Ok::<_, StoreError>(Some(failure))
        })
        .await;
        match outcome {
            Ok(Ok(Some(failure))) => {
                waiting = false;
                tracing::warn!(error = %failure, "storage failed; database file reopened");
            }
            Ok(Err(e)) if !waiting => {
                waiting = true;
                tracing::error!(error = %e, "storage failed; reopening waits");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "storage failed; reopening still waits"),
            Ok(Ok(None)) => waiting = false,
            Err(_) => {}
        }
    }
}

struct Connection {
    app: Arc<App>,
    acceptor: tokio_rustls::TlsAcceptor,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn run(self, tcp: tokio::net::TcpStream, peer: SocketAddr) {
        let api = &self.app.config.api;
        let head_timeout = Duration::from_secs(api.header_read_timeout_secs);
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(head_timeout, self.acceptor.accept(tcp)).await {
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
