//! The drivers: [`run`] checks the setup, then runs the fleet as a worker pool (once) or
//! all devices together (repeat, hold), settling the run's moments and summing the outcomes.
//!
//! Not here: what each device does (`flow.rs`) and the statistics (`report.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::flow::{once_flow, together_flow};
use super::options::{Mode, Options, SimError, SimEvent, check_ca};
use super::report::{Outcome, Report, record, summarize};
use super::together::Together;
use crate::hashtree;

/// Runs the simulation. Per-device failures are counted and listed in the report; only a
/// setup problem is an `Err`.
pub async fn run(opts: Options) -> Result<Report, SimError> {
    if opts.devices.is_empty() {
        return Err(SimError::NoDevices);
    }
    if opts.concurrency == 0 {
        return Err(SimError::Concurrency);
    }
    let g = hashtree::group_size(opts.chunk_log);
    let get = opts.get_bytes();
    if get == 0 || !get.is_multiple_of(g) || get > u64::from(u32::MAX) {
        return Err(SimError::GetSize(g));
    }
    if let Some(install) = &opts.install {
        install.check()?;
        if opts.mode != Mode::Once {
            return Err(SimError::InstallMode);
        }
    }
    check_ca(&opts.ca_file)?;
    let opts = Arc::new(opts);
    let started = Instant::now();
    let outcomes = match opts.mode {
        Mode::Once => run_pool(&opts).await?,
        Mode::Repeat { .. } | Mode::Hold { .. } => run_together(&opts, started).await?,
    };
    let elapsed = started.elapsed();
    Ok(summarize(&opts, outcomes, elapsed))
}

/// Once: a fixed pool of workers pulling the next device index keeps exactly
/// `concurrency` devices in flight without one task (and its buffers) per device waiting on
/// a permit.
async fn run_pool(opts: &Arc<Options>) -> Result<Vec<Outcome>, SimError> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers = opts.concurrency.min(opts.devices.len());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let opts = Arc::clone(opts);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(device) = opts.devices.get(i) else {
                    break;
                };
                let mut out = Outcome::default();
                if opts.install.is_some() {
                    out.device_id.clone_from(&device.id);
                }
                let result = once_flow(&opts, device, &mut out).await;
                record(&mut out, device, result);
                outcomes.push(out);
            }
            outcomes
        });
    }
    join_all(tasks).await
}

/// Repeat and hold: one task per device, all connected at once.
async fn run_together(opts: &Arc<Options>, started: Instant) -> Result<Vec<Outcome>, SimError> {
    let n = opts.devices.len();
    let (times, _) = watch::channel(None);
    let shared = Arc::new(Together {
        settled: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        times,
        connecting: Semaphore::new(opts.concurrency.min(Semaphore::MAX_PERMITS)),
    });
    // Reports the window's (or the hold's) end points as they pass.
    let announcer = {
        let opts = Arc::clone(opts);
        let mut rx = shared.times.subscribe();
        tokio::spawn(async move {
            let times = match rx.wait_for(Option::is_some).await {
                Ok(times) => *times,
                Err(_) => return,
            };
            let Some((start, end)) = times else { return };
            match opts.mode {
                Mode::Repeat { .. } => {
                    tokio::time::sleep_until(start.into()).await;
                    opts.emit(SimEvent::WindowStart);
                    tokio::time::sleep_until(end.into()).await;
                    opts.emit(SimEvent::WindowEnd);
                }
                Mode::Hold { .. } => {
                    tokio::time::sleep_until(end.into()).await;
                    opts.emit(SimEvent::HoldEnd);
                }
                Mode::Once => {}
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let opts = Arc::clone(opts);
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let device = &opts.devices[i];
            let mut out = Outcome::default();
            let result = together_flow(&opts, i, device, &shared, started, &mut out).await;
            record(&mut out, device, result);
            vec![out]
        });
    }
    let outcomes = join_all(tasks).await;
    // The devices stopped at the end the announcer waits for; let it say so, unless they all
    // failed early and that end is still far off.
    let mut announcer = announcer;
    if tokio::time::timeout(Duration::from_millis(500), &mut announcer)
        .await
        .is_err()
    {
        announcer.abort();
    }
    outcomes
}

async fn join_all(mut tasks: tokio::task::JoinSet<Vec<Outcome>>) -> Result<Vec<Outcome>, SimError> {
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes
            .extend(joined.map_err(|e| SimError::Runtime(format!("a device task failed: {e}")))?);
    }
    Ok(outcomes)
}
