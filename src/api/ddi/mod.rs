//! hawkBit Direct Device Integration on the API listener (docs/ddi.md): the handlers of
//! `/{tenant}/controller/v1/{controllerId}/…` and of the partner's DDI settings (tenant
//! name, gateway token).
//!
//! Every DDI request is authorized here, downloads included: `TargetToken` (the device's
//! own token) or `GatewayToken` (the partner's); every failure is the same 401. Errors are
//! rendered in hawkBit's error shape by [`error_response`]. Not here: the JSON shapes and
//! the state map (`shapes.rs`), the artifact cache (`artifacts.rs`), the stored DDI state
//! (`store/ddi.rs`).

mod artifacts;
mod shapes;

pub use artifacts::ArtifactCache;

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::auth::{DdiCaller, Principal};
use super::body::{Body, full, json_response, read_limited, status_only};
use super::errors::ApiError;
use super::extract::Fields;
use super::{Answer, App, Ctx};
use crate::model::Device;
use crate::store::{DdiCredential, DdiSlot, Store};
use shapes::ChunkView;

/// Renders an error of a DDI route: hawkBit's body, and no Bearer challenge on 401.
pub fn error_response(e: &ApiError, head: bool) -> Response<Body> {
    if head {
        status_only(e.status)
    } else {
        json_response(e.status, &shapes::error(e))
    }
}

/// The one answer to every refused DDI credential, unknown tenant or unknown device.
fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "authentication failed",
    )
}

/// A DDI request's credential: `TargetToken` (false) or `GatewayToken` (true), and the token.
fn credential(ctx: &Ctx) -> Result<(bool, String), ApiError> {
    let value = ctx
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or_else(unauthorized)?;
    let token = token.trim().to_string();
    if token.is_empty() || token.len() > 512 {
        return Err(unauthorized());
    }
    let gateway = if scheme.eq_ignore_ascii_case("TargetToken") {
        false
    } else if scheme.eq_ignore_ascii_case("GatewayToken") {
        true
    } else {
        return Err(unauthorized());
    };
    Ok((gateway, token))
}

/// The device `controller` of `tenant` if the credential admits it: a few index lookups,
/// cheap enough for the connection's own thread.
fn check_device(
    s: &Store,
    tenant: &str,
    controller: &str,
    (gateway, token): &(bool, String),
) -> Result<Device, ApiError> {
    let credential = if *gateway {
        DdiCredential::Gateway(token)
    } else {
        DdiCredential::Target(token)
    };
    s.ddi_device(tenant, controller, credential)?
        .ok_or_else(unauthorized)
}

/// The device a request acts for, after its credential was checked.
async fn device(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: &str,
    controller: &str,
) -> Result<Device, ApiError> {
    let cred = credential(ctx)?;
    let (tenant, controller) = (tenant.to_string(), controller.to_string());
    app.blocking(move |s| check_device(s, &tenant, &controller, &cred))
        .await
}

/// Who a download is for: from the credential cache when the same credential was checked
/// recently, which keeps an agent's range requests off the blocking pool.
async fn caller(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: &str,
    controller: &str,
) -> Result<DdiCaller, ApiError> {
    let cred = credential(ctx)?;
    let key = crate::secrets::token_hash(format!(
        "{}\0{tenant}\0{controller}\0{}",
        u8::from(cred.0),
        cred.1
    ));
    if let Some(caller) = app.auth.ddi_get(&key) {
        return Ok(caller);
    }
    let (t, c) = (tenant.to_string(), controller.to_string());
    let device = app
        .blocking(move |s| check_device(s, &t, &c, &cred))
        .await?;
    let caller = DdiCaller {
        device_id: device.id,
        partner_id: device.partner_id,
    };
    app.auth.ddi_put(key, caller.clone());
    Ok(caller)
}

/// `https://host/{tenant}/controller/v1/{controllerId}` as the agent addressed it.
fn base(app: &App, tenant: &str, controller: &str) -> String {
    format!(
        "{}/{}/controller/v1/{}",
        app.public_base_url,
        shapes::segment(tenant),
        shapes::segment(controller)
    )
}

fn ok(value: &Value) -> Answer {
    Ok(json_response(StatusCode::OK, value))
}

/// `GET /{tenant}/controller/v1/{controllerId}`: the poll (a check-in).
pub async fn poll(app: &Arc<App>, ctx: &Ctx, tenant: String, controller: String) -> Answer {
    // The credential check and the check-in's reads are index lookups of a few
    // microseconds, done on this thread like a small download's; the write is awaited
    // without holding a thread. No blocking-pool hop, so a poll costs two thread switches
    // (to the writer and back) instead of four.
    let cred = credential(ctx)?;
    let device = check_device(&app.store, &tenant, &controller, &cred)?;
    let plan = app.store.ddi_poll_plan(&device)?;
    let poll = app
        .store
        .write_async(false, move |txn| plan.apply(txn))
        .await?;
    ok(&shapes::poll(
        &base(app, &tenant, &controller),
        &poll,
        app.config.ddi.poll_interval_secs,
    ))
}

/// The chunks of one of the device's actions.
async fn action_chunks(
    app: &Arc<App>,
    device: &Device,
    slot: DdiSlot,
    raw_id: &str,
) -> Result<(u64, Vec<ChunkView>), ApiError> {
    let id = shapes::action_id(raw_id)?;
    let (device_id, partner, device_type) = (
        device.id.clone(),
        device.partner_id.clone(),
        device.device_type_id.clone(),
    );
    app.blocking(move |s| {
        let action = s.ddi_action(&device_id, slot, id)?.ok_or_else(|| {
            ApiError::not_found("unknown_action", "no such action for this device")
        })?;
        let mut chunks = Vec::with_capacity(action.chunks.len());
        for c in &action.chunks {
            let record = s
                .record(c.record_id)?
                .filter(|r| r.partner_id == partner)
                .ok_or_else(|| {
                    ApiError::not_found("unknown_action", "the action's image is gone")
                })?;
            let part = s
                .fw_type(&partner, c.fw_type)?
                .map_or_else(|| c.fw_type.to_string(), |t| t.name);
            let artifact = s.artifact(&record)?.ok_or_else(|| {
                ApiError::not_found("unknown_action", "the action's binary is gone")
            })?;
            let signatures = s.usable_signatures(&record, &device_type)?;
            chunks.push(ChunkView {
                part,
                version: record.version.clone(),
                name: record.name.clone(),
                module_id: record.id,
                artifact,
                signatures,
            });
        }
        Ok((id, chunks))
    })
    .await
}

/// `GET …/deploymentBase/{actionId}`.
pub async fn deployment_base(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    action: String,
) -> Answer {
    deployment_in(app, ctx, &tenant, &controller, DdiSlot::Open, &action).await
}

/// `GET …/installedBase/{actionId}`: the last closed action.
pub async fn installed_base(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    action: String,
) -> Answer {
    deployment_in(app, ctx, &tenant, &controller, DdiSlot::Closed, &action).await
}

/// The deployment document of the device's action `action` in `slot`.
async fn deployment_in(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: &str,
    controller: &str,
    slot: DdiSlot,
    action: &str,
) -> Answer {
    let device = device(app, ctx, tenant, controller).await?;
    let (id, chunks) = action_chunks(app, &device, slot, action).await?;
    ok(&shapes::deployment(
        &base(app, tenant, controller),
        id,
        &chunks,
    ))
}

/// `GET …/cancelAction/{actionId}`.
pub async fn cancel_action(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    action: String,
) -> Answer {
    let device = device(app, ctx, &tenant, &controller).await?;
    let id = shapes::action_id(&action)?;
    let device_id = device.id.clone();
    app.blocking(move |s| Ok(s.ddi_action(&device_id, DdiSlot::Cancel, id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_action", "no such action for this device"))?;
    ok(&shapes::cancel(id))
}

async fn feedback_body(app: &Arc<App>, body: Incoming) -> Result<shapes::Feedback, ApiError> {
    let bytes = read_limited(
        body,
        app.config.ddi.max_feedback_body,
        app.request_timeout(),
    )
    .await?;
    shapes::parse_feedback(&bytes)
}

/// `POST …/deploymentBase/{actionId}/feedback`: 200 (SWUpdate takes nothing else).
pub async fn feedback(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    action: String,
    body: Incoming,
) -> Answer {
    let device = device(app, ctx, &tenant, &controller).await?;
    let id = shapes::action_id(&action)?;
    let f = feedback_body(app, body).await?;
    let outcome = shapes::outcome(&f)?;
    let reason = shapes::reason(&f.details, app.config.ddi.max_details_chars);
    let progress = f.progress;
    app.blocking(move |s| Ok(s.ddi_feedback(&device.id, id, outcome, progress, reason)?))
        .await?;
    Ok(status_only(StatusCode::OK))
}

/// `POST …/cancelAction/{actionId}/feedback`.
pub async fn cancel_feedback(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    action: String,
    body: Incoming,
) -> Answer {
    let device = device(app, ctx, &tenant, &controller).await?;
    let id = shapes::action_id(&action)?;
    let f = feedback_body(app, body).await?;
    let done = shapes::cancel_done(&f)?;
    app.blocking(move |s| Ok(s.ddi_cancel_feedback(&device.id, id, done)?))
        .await?;
    Ok(status_only(StatusCode::OK))
}

/// `PUT …/configData`: the device's attributes; 200 (SWUpdate ignores deployments while
/// this fails).
pub async fn config_data(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    body: Incoming,
) -> Answer {
    let device = device(app, ctx, &tenant, &controller).await?;
    let bytes = read_limited(
        body,
        app.config.ddi.max_feedback_body,
        app.request_timeout(),
    )
    .await?;
    let (mode, data) = shapes::parse_config(&bytes)?;
    app.blocking(move |s| Ok(s.ddi_config_data(&device.id, mode, data)?))
        .await?;
    Ok(status_only(StatusCode::OK))
}

/// `GET|HEAD …/softwaremodules/{moduleId}/artifacts/{filename}`: the binary (the same
/// answer as the partner download path), or `{filename}.MD5SUM`.
pub async fn artifact(
    app: &Arc<App>,
    ctx: &Ctx,
    tenant: String,
    controller: String,
    module: String,
    filename: String,
) -> Answer {
    let who = caller(app, ctx, &tenant, &controller).await?;
    let missing = || ApiError::not_found("unknown_artifact", "no such artifact");
    let module_id: u64 = module.parse().map_err(|_| missing())?;
    // Read before the store: a write in between makes the entry stale at once.
    let generation = app.store.generation();
    let found = match app
        .ddi_artifacts
        .get(&who.partner_id, module_id, generation)
    {
        Some(found) => found,
        None => {
            let partner = who.partner_id.clone();
            let found = app
                .blocking(move |s| {
                    let Some(record) = s.record(module_id)?.filter(|r| r.partner_id == partner)
                    else {
                        return Ok(None);
                    };
                    Ok(s.artifact(&record)?)
                })
                .await?
                .map(Arc::new)
                .ok_or_else(missing)?;
            app.ddi_artifacts
                .put(&who.partner_id, module_id, generation, Arc::clone(&found));
            found
        }
    };
    if filename == found.filename {
        let principal = Principal::Device {
            device_id: who.device_id,
        };
        return super::binaries::deliver(app, ctx, &principal, &who.partner_id, &found.sha256)
            .map_err(|e| {
                if e.status == StatusCode::FORBIDDEN {
                    missing()
                } else {
                    e
                }
            });
    }
    if filename.strip_suffix(".MD5SUM") == Some(found.filename.as_str()) {
        let text = shapes::md5sum(&found);
        let len = text.len();
        let mut resp = Response::new(if ctx.method == Method::HEAD {
            super::body::empty()
        } else {
            full(text)
        });
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(resp);
    }
    Err(missing())
}

/// `GET /v1/ota/partners/{partnerId}/ddi`: the partner's DDI settings.
pub async fn settings(app: &Arc<App>, partner: String) -> Answer {
    let (tenant, gateway) = app
        .blocking(move |s| {
            if s.partner(&partner)?.is_none() {
                return Err(ApiError::not_found("unknown_partner", "partner not found"));
            }
            Ok((s.ddi_tenant(&partner)?, s.gateway_token(&partner)?))
        })
        .await?;
    let mut v = json!({ "ddiTenant": tenant, "gatewayToken": gateway.is_some() });
    if let Some(g) = gateway {
        v["gatewayTokenCreatedTimestamp"] = json!(g.created_ms);
    }
    ok(&v)
}

/// `PUT /v1/admin/partners/{partnerId}/ddiTenant` `{"ddiTenant"}`.
pub async fn set_tenant(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let tenant = f.req_str("ddiTenant")?;
    let actor = ctx.principal.actor();
    let (pid, t) = (partner.clone(), tenant.clone());
    app.blocking(move |s| Ok(s.set_ddi_tenant(&actor, &pid, &t)?))
        .await?;
    app.auth.clear();
    ok(&json!({ "partnerId": partner, "ddiTenant": tenant }))
}

/// `POST /v1/ota/partners/{partnerId}/ddi/gatewayToken`: a new gateway token, shown once;
/// the previous one stops working.
pub async fn rotate_gateway_token(app: &Arc<App>, ctx: &Ctx, partner: String) -> Answer {
    let token = crate::secrets::new_secret();
    let hash = crate::secrets::token_hash(&token);
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.set_gateway_token(&actor, &partner, hash)?))
        .await?;
    app.auth.clear();
    ok(&json!({ "gatewayToken": token }))
}

/// `DELETE /v1/ota/partners/{partnerId}/ddi/gatewayToken`.
pub async fn delete_gateway_token(app: &Arc<App>, ctx: &Ctx, partner: String) -> Answer {
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.delete_gateway_token(&actor, &partner)?))
        .await?;
    app.auth.clear();
    Ok(status_only(StatusCode::NO_CONTENT))
}
