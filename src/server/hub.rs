//! The connected devices: who has a session now (a newer session of the same device
//! replaces the older one), how many TLS connections are open, and the channel through which
//! the HTTP API tells a connected device that a push waits for it.
//!
//! Not here: the sessions themselves (`device.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::counters::OcpCounters;

/// What the rest of otad may tell a connected device's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    /// A newer session of the same device took over.
    Replaced,
    /// A push was stored for this device: send an unsolicited OFFER.
    Push,
}

struct SessionEntry {
    serial: u64,
    tx: mpsc::Sender<Notice>,
}

/// The connected devices, shared with the HTTP API (pushes) and `/metrics`.
#[derive(Default)]
pub struct DeviceHub {
    sessions: Mutex<HashMap<String, SessionEntry>>,
    next_serial: AtomicU64,
    connections: AtomicUsize,
    /// What the device listener sent and received, for `/metrics`.
    pub counters: OcpCounters,
}

impl DeviceHub {
    /// Authenticated sessions now.
    pub fn connected(&self) -> usize {
        self.sessions.lock().map_or(0, |s| s.len())
    }

    /// TLS connections now, authenticated or not.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Tells a connected device that a push is waiting; nothing happens if it is offline
    /// (it gets the push at its next CHECK).
    pub fn notify_push(&self, device_id: &str) {
        if let Ok(sessions) = self.sessions.lock()
            && let Some(entry) = sessions.get(device_id)
        {
            let _ = entry.tx.try_send(Notice::Push);
        }
    }

    pub(super) fn register(&self, device_id: &str, tx: mpsc::Sender<Notice>) -> u64 {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sessions) = self.sessions.lock()
            && let Some(old) = sessions.insert(device_id.to_string(), SessionEntry { serial, tx })
        {
            let _ = old.tx.try_send(Notice::Replaced);
        }
        serial
    }

    pub(super) fn unregister(&self, device_id: &str, serial: u64) {
        if let Ok(mut sessions) = self.sessions.lock()
            && sessions.get(device_id).is_some_and(|e| e.serial == serial)
        {
            sessions.remove(device_id);
        }
    }
}

/// Counts a connection for as long as it lives.
pub(super) struct ConnectionGuard(Arc<DeviceHub>);

impl ConnectionGuard {
    pub(super) fn new(hub: &Arc<DeviceHub>) -> Self {
        hub.connections.fetch_add(1, Ordering::Relaxed);
        hub.counters.connection();
        Self(Arc::clone(hub))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
