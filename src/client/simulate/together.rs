//! The state the devices of a repeat or hold run share: how many settled and connected, and
//! the run's counting window, fixed by the last device to settle.
//!
//! Not here: the drivers that create it (`fleet.rs`) and what each device does (`flow.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};

use super::options::{Mode, Options, SimEvent};

/// Shared by the devices of a repeat or hold run.
pub(super) struct Together {
    /// Devices done connecting (successfully or not).
    pub(super) settled: AtomicUsize,
    pub(super) connected: AtomicUsize,
    /// When counting starts and when everything stops; set once every device settled.
    pub(super) times: watch::Sender<Option<(Instant, Instant)>>,
    /// Bounds how many devices connect at the same time.
    pub(super) connecting: Semaphore,
}

/// Marks a device settled; the last one fixes the run's times and says so.
pub(super) fn settle(opts: &Options, shared: &Together, ok: bool, started: Instant) {
    if ok {
        shared.connected.fetch_add(1, Ordering::Relaxed);
    }
    let n = opts.devices.len();
    if shared.settled.fetch_add(1, Ordering::AcqRel) + 1 != n {
        return;
    }
    let now = Instant::now();
    let times = match opts.mode {
        Mode::Repeat { warmup, window } => (now + warmup, now + warmup + window),
        Mode::Hold { hold, .. } => (now, now + hold),
        Mode::Once => (now, now),
    };
    let connected = shared.connected.load(Ordering::Relaxed);
    opts.emit(SimEvent::AllConnected {
        connected,
        failed: n - connected,
        after: now - started,
    });
    shared.times.send_replace(Some(times));
}
