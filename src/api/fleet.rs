//! `GET …/fleet`: the fleet summary, and the short-lived cache in front of it.
//!
//! A summary is one pass over the partner's devices (`store/fleet.rs`). Dashboards poll
//! it, and several people may watch one fleet, so an answer is reused for
//! `api.fleet_cache_ms` (2 s by default; 0 turns the cache off): however many callers
//! poll, a partner's fleet is walked at most once per period and device type filter. Every
//! answer carries the `timestamp` it was computed at.
//!
//! Not here: the counting (`store/fleet.rs`), the JSON shape (`render.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use super::body::json_response;
use super::errors::ApiError;
use super::extract::query_form;
use super::{Answer, App, Ctx, render};
use crate::ids::now_ms;

/// Cached answers kept at the most; past it, expired ones go first, then all.
const MAX_ENTRIES: usize = 4096;

/// A summary's partner id and device type filter.
type Key = (String, Option<String>);

/// Key → when computed, and the rendered summary.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<Key, (Instant, Arc<Value>)>>,
}

impl Cache {
    fn get(&self, key: &Key, max_age: Duration) -> Option<Arc<Value>> {
        let map = self.entries.lock().ok()?;
        map.get(key)
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, v)| Arc::clone(v))
    }

    fn put(&self, key: Key, value: Arc<Value>, max_age: Duration) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (at, _)| at.elapsed() < max_age);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }
}

/// `GET …/fleet?deviceTypeId=`: 404 `unknown_device_type` for a device type that is not
/// the partner's.
pub async fn summary(app: &Arc<App>, ctx: &Ctx, partner: String) -> Answer {
    let mut device_type = None;
    for (k, v) in query_form(ctx.query.as_deref()) {
        if k == "deviceTypeId" {
            device_type = Some(v);
        }
    }
    let max_age = Duration::from_millis(app.config.api.fleet_cache_ms);
    let key = (partner, device_type);
    if let Some(doc) = app.fleet.get(&key, max_age) {
        return Ok(json_response(StatusCode::OK, &doc));
    }
    let failures_max = app.config.api.fleet_failures_max;
    let (partner, device_type) = key.clone();
    let summary = app
        .blocking(move |s| {
            let summary =
                s.fleet_summary(&partner, device_type.as_deref(), now_ms(), failures_max)?;
            if device_type.is_some() && summary.device_types.is_empty() {
                return Err(ApiError::not_found(
                    "unknown_device_type",
                    "device type not found",
                ));
            }
            Ok(summary)
        })
        .await?;
    let doc = Arc::new(render::fleet(&summary));
    if !max_age.is_zero() {
        app.fleet.put(key, Arc::clone(&doc), max_age);
    }
    Ok(json_response(StatusCode::OK, &doc))
}
