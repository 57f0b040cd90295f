//! Handlers for rollouts: create (the body parsed into a `rollout::Definition`), list, show,
//! the per-device outcome list, and the operator moves (pause, resume, advance, cancel).
//!
//! Not here: the rules (`rollout.rs`), the checks against stored data and the bookkeeping
//! (`store/rollouts.rs`), the JSON shapes (`render.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use hyper::body::Incoming;
use serde_json::Value;

use super::body::json_response;
use super::errors::ApiError;
use super::extract::{Fields, attributes_of, path_number, query_form};
use super::paging::Window as Page;
use super::{Answer, App, Ctx, render};
use crate::rollout::{Definition, Filter, GroupSpec, MILLION, Move, Outcome, State, Window, share};
use crate::store::{NewRollout, OutcomeFilter};

fn bad(trace: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(trace, message)
}

/// A threshold in 0–1 (a JSON number), or `default` when absent.
fn threshold(f: &Fields, key: &str, default: u32) -> Result<u32, ApiError> {
    match f.value(key) {
        None => Ok(default),
        Some(Value::Number(n)) => n.as_f64().and_then(share).ok_or_else(|| {
            bad(
                "threshold_out_of_range",
                format!("{key} must be between 0 and 1"),
            )
        }),
        Some(_) => Err(bad("invalid_field", format!("{key} must be a number"))),
    }
}

/// A non-negative integer field, or `default` when absent.
fn count(f: &Fields, key: &str, default: u64) -> Result<u64, ApiError> {
    match f.opt_int(key)? {
        None => Ok(default),
        Some(n) => u64::try_from(n)
            .map_err(|_| bad("invalid_field", format!("{key} must not be negative"))),
    }
}

fn groups(value: Option<&Value>) -> Result<Vec<GroupSpec>, ApiError> {
    let Some(Value::Array(items)) = value else {
        return Err(bad(
            "invalid_groups",
            "groups must be an array of {\"percent\": P} or {\"devices\": [ids]}",
        ));
    };
    items
        .iter()
        .map(|g| match (g.get("percent"), g.get("devices")) {
            (Some(Value::Number(p)), None) => p
                .as_f64()
                .filter(|p| p.is_finite() && *p > 0.0 && *p <= 100.0)
                .map(|p| GroupSpec::Percent((p / 100.0 * f64::from(MILLION)).round() as u32))
                .ok_or_else(|| {
                    bad(
                        "groups_not_ascending",
                        "group percents must be above 0 and at most 100",
                    )
                }),
            (None, Some(Value::Array(ids))) => ids
                .iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(GroupSpec::Devices)
                .ok_or_else(|| bad("invalid_groups", "devices must be device id strings")),
            _ => Err(bad(
                "invalid_groups",
                "each group is {\"percent\": P} or {\"devices\": [ids]}",
            )),
        })
        .collect()
}

fn window(value: Option<&Value>) -> Result<Option<Window>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    let malformed = || {
        bad(
            "invalid_window",
            "window is {\"days\":[\"mon\",..],\"start\":\"HH:MM\",\"durationMinutes\":N}",
        )
    };
    let days: Vec<String> = v
        .get("days")
        .and_then(Value::as_array)
        .ok_or_else(malformed)?
        .iter()
        .map(|d| d.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(malformed)?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(malformed)?;
    let minutes = v
        .get("durationMinutes")
        .and_then(Value::as_u64)
        .ok_or_else(malformed)?;
    Window::parse(&days, start, minutes)
        .map(Some)
        .map_err(|e| bad(e.trace, e.to_string()))
}

fn filter(value: Option<&Value>) -> Result<Filter, ApiError> {
    let Some(v) = value else {
        return Ok(Filter::default());
    };
    let tags = match v.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("invalid_field", "filter.tags must be strings"))?,
        Some(_) => return Err(bad("invalid_field", "filter.tags must be an array")),
    };
    let attributes = match v.get("attributes") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(a) => attributes_of(a)?,
    };
    Ok(Filter { tags, attributes })
}

/// Parses a create body into a definition (its own rules are checked by the store's one
/// validation function, with the stored data).
pub fn parse_definition(f: &Fields) -> Result<Definition, ApiError> {
    let record_id = f
        .opt_id("firmwareImageId")?
        .ok_or_else(|| bad("missing_field", "firmwareImageId is required"))?;
    let start_at_ms = match f.opt_int("startAt")? {
        None => None,
        Some(ms) => Some(
            u64::try_from(ms)
                .map_err(|_| bad("invalid_field", "startAt is a timestamp in milliseconds"))?,
        ),
    };
    let max_per_minute = match f.opt_int("maxPerMinute")? {
        None => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("invalid_field", "maxPerMinute must be a positive integer"))?,
        ),
    };
    let auto_advance = match f.value("autoAdvance") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("invalid_field", "autoAdvance must be true or false")),
    };
    Ok(Definition {
        name: f
            .opt_str("name")?
            .unwrap_or_else(|| format!("rollout of image {record_id}")),
        device_type_id: f.req_str("deviceTypeId")?,
        record_id,
        fw_type: 0,
        version_number: 0,
        groups: groups(f.value("groups"))?,
        success: threshold(f, "successThreshold", 950_000)?,
        error: threshold(f, "errorThreshold", 50_000)?,
        min_failures: u32::try_from(count(f, "minFailures", 1)?)
            .map_err(|_| bad("invalid_field", "minFailures is too large"))?,
        confirm_timeout_secs: count(f, "confirmTimeoutSecs", 86_400)?,
        soak_secs: count(f, "soakSecs", 0)?,
        auto_advance,
        max_per_minute,
        window: window(f.value("window"))?,
        start_at_ms,
        filter: filter(f.value("filter"))?,
    })
}

pub async fn create(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let def = parse_definition(&f)?;
    let actor = ctx.principal.actor();
    let r = app
        .blocking(move |s| {
            Ok(s.create_rollout(
                &actor,
                NewRollout {
                    partner_id: partner,
                    def,
                },
            )?)
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, &render::rollout(&r)))
}

pub async fn list(app: &Arc<App>, ctx: &Ctx, partner: String) -> Answer {
    let mut page = Page::default();
    let (mut state, mut device_type) = (None, None);
    for (k, v) in query_form(ctx.query.as_deref()) {
        match k.as_str() {
            "state" => {
                state = Some(State::parse(&v).ok_or_else(|| {
                    bad(
                        "bad_filter",
                        "state is scheduled, running, paused, completed, stopped or cancelled",
                    )
                })?);
            }
            "deviceTypeId" => device_type = Some(v),
            _ if page.take(&k, &v)? => {}
            _ => {}
        }
    }
    let list = app
        .blocking(move |s| Ok(s.rollouts(&partner, state, device_type.as_deref())?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &page.envelope(&list, "id: DESC", render::rollout),
    ))
}

fn rollout_id(raw: &str) -> Result<u64, ApiError> {
    path_number(raw, "rolloutId")
}

pub async fn get(app: &Arc<App>, partner: String, raw: String) -> Answer {
    let id = rollout_id(&raw)?;
    let r = app
        .blocking(move |s| Ok(s.rollout(&partner, id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_rollout", "rollout not found"))?;
    Ok(json_response(StatusCode::OK, &render::rollout(&r)))
}

pub async fn devices(app: &Arc<App>, ctx: &Ctx, partner: String, raw: String) -> Answer {
    let id = rollout_id(&raw)?;
    let mut page = Page::default();
    let mut filter = OutcomeFilter::default();
    for (k, v) in query_form(ctx.query.as_deref()) {
        match k.as_str() {
            "group" => {
                filter.group = Some(
                    v.parse()
                        .map_err(|_| bad("bad_filter", "group is a group index from 0"))?,
                );
            }
            "outcome" => {
                filter.outcome = Some(Outcome::parse(&v).ok_or_else(|| {
                    bad(
                        "bad_filter",
                        "outcome is waiting, offered, downloading, installed, confirmed, failed or timedOut",
                    )
                })?);
            }
            _ if page.take(&k, &v)? => {}
            _ => {}
        }
    }
    let list = app
        .blocking(move |s| {
            if s.rollout(&partner, id)?.is_none() {
                return Err(ApiError::not_found("unknown_rollout", "rollout not found"));
            }
            Ok(s.rollout_devices(id, &filter)?)
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &page.envelope(&list, "deviceId: ASC", |(d, o)| {
            render::rollout_device(d, o)
        }),
    ))
}

pub async fn operate(app: &Arc<App>, ctx: &Ctx, partner: String, raw: String, m: Move) -> Answer {
    let id = rollout_id(&raw)?;
    let actor = ctx.principal.actor();
    let r = app
        .blocking(move |s| Ok(s.move_rollout(&actor, &partner, id, m)?))
        .await?;
    Ok(json_response(StatusCode::OK, &render::rollout(&r)))
}
