//! What both listeners share: binding with a deep accept queue, and the accept loop with its
//! connection cap, its back-off on accept errors and its stop on shutdown.
//!
//! Not here: what a connection does once accepted (`http.rs`, `device.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Pending connections the kernel may queue per listener. mio's default (128) drops SYNs
/// when a fleet reconnects at once, and the devices then wait a full SYN retry.
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds a listener with a deep accept queue.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// What the accept loop does while every connection slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Stop accepting until a slot frees (the kernel queue holds the rest): HTTP clients
    /// retry on their own.
    Wait,
    /// Accept anyway and hand the connection over without a slot, so that it can be refused
    /// with a protocol answer (OCP/1's BUSY with a retry time) instead of a silent queue.
    Refuse,
}

/// Resolves once `shutdown` holds `true` (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Accepts connections until `shutdown` turns true, handing each to `handle` with its slot
/// (`None` only with [`WhenFull::Refuse`] when all `slots` are taken). `handle` spawns.
pub async fn accept_loop<F>(
    listener: &TcpListener,
    slots: Arc<Semaphore>,
    when_full: WhenFull,
    mut shutdown: watch::Receiver<bool>,
    failure_message: &'static str,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr, Option<OwnedSemaphorePermit>),
{
    loop {
        let waited = match when_full {
            WhenFull::Wait => tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => Some(p),
                    Err(_) => return,
                },
                () = stopped(&mut shutdown) => return,
            },
            WhenFull::Refuse => None,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "{failure_message}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => return,
        };
        let _ = tcp.set_nodelay(true);
        let permit = match when_full {
            WhenFull::Wait => waited,
            WhenFull::Refuse => Arc::clone(&slots).try_acquire_owned().ok(),
        };
        handle(tcp, peer, permit);
    }
}
