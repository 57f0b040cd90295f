//! Background tasks of a running server: the minute sweep (abandoned uploads, expired
//! tokens), the rollout timer pass, and the storage watchdog that reopens the database
//! after an I/O failure.
//!
//! Not here: what a sweep removes and how a reopen works (`store/`).

use std::time::Duration;

use crate::store::{Store, StoreError};

/// Removes abandoned uploads and expired tokens every minute.
pub async fn sweep_loop(store: Store) {
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

/// Runs the rollout timer pass every `storage.rollout_tick_ms`.
pub async fn rollout_loop(store: Store) {
    let every = Duration::from_millis(store.config().rollout_tick_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = store.clone();
        let result =
            tokio::task::spawn_blocking(move || s.rollout_tick(crate::ids::now_ms())).await;
        match result {
            Ok(Ok(r)) if r.timed_out > 0 || r.transitions > 0 => {
                tracing::info!(
                    timed_out = r.timed_out,
                    transitions = r.transitions,
                    "rollout timer pass"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "rollout timer pass failed"),
            _ => {}
        }
    }
}

/// Probes the database every 2 s. After an I/O error (a disk another program filled up),
/// redb refuses the open file until it is reopened: once a quarter of the free-space
/// reserve is back, the watchdog reopens it, so service resumes without a restart.
pub async fn storage_watchdog(store: Store) {
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
