//! `otad serve`: the wiring. Opens the data directory and the store, loads or makes the TLS
//! certificate, binds both listeners, creates the first admin on first start and writes
//! its credentials, writes `listen.json`, runs the HTTPS server, the device server
//! and the background tasks, and stops them in order on SIGINT/SIGTERM.
//!
//! Not here: the listeners themselves (`server/`), request handling (`api/`), storage
//! (`store/`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::App;
use crate::config::Config;
use crate::datadir::{Credentials, DataDir, ListenFile};
use crate::server::DeviceHub;
use crate::server::{device, http, maintenance, tls};
use crate::store::FirstStart;
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

/// Binds `addr` (from the config or a flag) with the listeners' accept queue.
fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    let what = || format!("cannot listen on {addr}");
    let parsed: SocketAddr = addr.parse().map_err(|e| ServeError::Io {
        what: what(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    crate::server::bind(parsed).map_err(io_err(what()))
}

fn local_addr(listener: &TcpListener, what: &str) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(io_err(what))
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

/// Runs blocking store work (open, bootstrap, close) off the reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServeError::Store(StoreError::Db(e.to_string())))?
        .map_err(ServeError::from)
}

/// The TLS configurations of both listeners: the API's, and the device listener's (ALPN
/// `ocp/1`, optional client certificates).
struct TlsConfigs {
    cert_path: PathBuf,
    api: tokio_rustls::TlsAcceptor,
    device: tokio_rustls::TlsAcceptor,
}

fn tls_configs(config: &Config, data_dir: &DataDir) -> Result<TlsConfigs, ServeError> {
    let (cert_path, key_path) = if config.api.tls_cert.is_empty() {
        tls::ensure_self_signed(data_dir, &config.api.host_names)?
    } else {
        (
            PathBuf::from(&config.api.tls_cert),
            PathBuf::from(&config.api.tls_key),
        )
    };
    let (certs, key) = tls::load(&cert_path, &key_path)?;
    let api = tls::server_config(certs.clone(), key.clone_key(), &[b"http/1.1"], false, None)?;
    let client_roots = if config.device.client_ca.is_empty() {
        None
    } else {
        Some(tls::load_roots(Path::new(&config.device.client_ca))?)
    };
    let device = tls::server_config(certs, key, &[b"ocp/1"], true, client_roots)?;
    Ok(TlsConfigs {
        cert_path,
        api: tokio_rustls::TlsAcceptor::from(api),
        device: tokio_rustls::TlsAcceptor::from(device),
    })
}

/// Writes the first-start credentials (0600) and says where.
fn write_credentials(
    data_dir: &DataDir,
    first: FirstStart,
    base_url: &str,
) -> Result<(), ServeError> {
    let path = data_dir.credentials_file();
    let credentials = Credentials {
        username: first.admin_username,
        password: first.admin_password,
        client_id: first.platform_partner_id,
        client_secret: first.client_secret,
        url: base_url.to_string(),
    };
    data_dir
        .write_credentials(&credentials)
        .map_err(io_err(format!("cannot write {}", path.display())))?;
    println!(
        "otad: first start: admin credentials written to {} (readable by this user only)",
        path.display()
    );
    Ok(())
}

async fn serve(config: Config) -> Result<(), ServeError> {
    let data_dir = DataDir::new(&config.data_dir);
    data_dir.create().map_err(io_err(format!(
        "cannot create data directory {}",
        data_dir.root().display()
    )))?;
    // Opening the store takes the data directory's lock first: a second server on it stops
    // here, before it could touch the running one's certificate.
    let (db_path, storage) = (data_dir.db(), config.storage.clone());
    let store = blocking(move || Store::open(&db_path, &storage)).await?;
    // Everything that can fail for a reason the operator fixes (a busy port, a bad TLS or
    // client-CA path) fails before the first admin exists: the first start that succeeds
    // is the one that creates it, and writes its credentials at once.
    let tls = tls_configs(&config, &data_dir)?;
    let listener = bind(&config.api.listen)?;
    let addr = local_addr(&listener, "cannot read the listening address")?;
    let base_url = public_base_url(&config, addr);
    let device_listener = bind(&config.device.listen)?;
    let device_addr = local_addr(&device_listener, "cannot read the device listening address")?;
    let first = {
        let s = store.clone();
        blocking(move || s.bootstrap()).await?
    };
    if let Some(first) = first {
        write_credentials(&data_dir, first, &base_url)?;
    }
    let shutdown = shutdown_signal();
    let listen = ListenFile {
        api: addr,
        device: device_addr,
    };
    data_dir
        .write_listen(&listen)
        .map_err(io_err("cannot write the listen file"))?;
    println!(
        "otad: api listening on {base_url}, devices on {device_addr} (certificate: {})",
        tls.cert_path.display()
    );
    tracing::info!(api = %addr, device = %device_addr, data_dir = %data_dir.root().display(), "otad started");

    let hub = Arc::new(DeviceHub::default());
    let (stop_devices, devices_stopped) = tokio::sync::watch::channel(false);
    let device_task = tokio::spawn(device::run(
        device_listener,
        tls.device,
        store.clone(),
        Arc::clone(&hub),
        config.device.clone(),
        devices_stopped,
    ));
    let app = Arc::new(App::new(store.clone(), config.clone(), base_url, hub));
    let sweeper = tokio::spawn(maintenance::sweep_loop(store.clone()));
    let watchdog = tokio::spawn(maintenance::storage_watchdog(store.clone()));
    let rollouts = tokio::spawn(maintenance::rollout_loop(store.clone()));
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let http_task = tokio::spawn(http::run(listener, tls.api, app, http_stopped));

    shutdown.await;
    // The API first (it pushes to devices), then the devices, then the store.
    let _ = stop_http.send(true);
    let _ = http_task.await;
    let _ = stop_devices.send(true);
    let _ = device_task.await;
    sweeper.abort();
    watchdog.abort();
    rollouts.abort();
    // Flush the writer (check-ins and other batched writes) and close the database.
    blocking(move || {
        store.close();
        Ok(())
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now, so that a signal sent as soon as
/// `listen.json` appears is not lost, and returns the wait for either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::terminate())
            .and_then(|term| signal(SignalKind::interrupt()).map(|int| (term, int)));
        async move {
            match handlers {
                Ok((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
