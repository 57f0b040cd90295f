//! Handlers for the appliance: OAuth endpoints, partners and users, the audit log, online
//! backup, `/healthz`, `/metrics`, `/v1/me` and a signed-in user's password change.
//!
//! Not here: who may call them (the route table in `routes.rs`; most are admin only).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::auth;
use super::body::{ChannelBody, full, json_response, status_only};
use super::errors::ApiError;
use super::extract::{Fields, query_form, read_form};
use super::{Answer, App, Ctx, render};
use crate::model::Role;

pub async fn health(app: &Arc<App>) -> Answer {
    // A real table read: a file redb refuses after an I/O error must not look healthy.
    app.blocking(|s| Ok(s.probe()?)).await?;
    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
}

/// Reads an OAuth endpoint's form body and runs its check off the reactor (argon2, store)
/// with the request headers (HTTP Basic client credentials) and the form.
async fn oauth<T, F>(app: &Arc<App>, ctx: &Ctx, body: Incoming, check: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&App, &HeaderMap, &[(String, String)]) -> Result<T, ApiError> + Send + 'static,
{
    let form = read_form(app, body).await?;
    let headers = ctx.headers.clone();
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || check(&app, &headers, &form))
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

pub async fn oauth_token(app: &Arc<App>, ctx: &Ctx, body: Incoming) -> Answer {
    let ttl = app.config.api.token_ttl_secs;
    let issued = oauth(app, ctx, body, move |app, headers, form| {
        auth::token_grant(&app.store, &app.logins, ttl, headers, form)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "scope": "partner account",
        }),
    ))
}

pub async fn oauth_revoke(app: &Arc<App>, ctx: &Ctx, body: Incoming) -> Answer {
    oauth(app, ctx, body, |app, headers, form| {
        auth::revoke(&app.store, headers, form)
    })
    .await?;
    app.auth.clear();
    Ok(status_only(StatusCode::OK))
}

pub async fn metrics(app: &Arc<App>) -> Answer {
    let (stats, states, latest) = app
        .blocking(|s| Ok((s.stats()?, s.rollout_states()?, s.latest_rollouts()?)))
        .await?;
    let scrape = super::metrics::Scrape {
        stats,
        commits: app.store.commit_times(),
        ocp: app.devices.counters.snapshot(),
        connected_devices: app.devices.connected(),
        device_connections: app.devices.connections(),
    };
    let mut text = app.metrics.render(&scrape);
    text.push_str(&super::metrics::render_rollouts(&states, &latest));
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(resp)
}

pub async fn partners(app: &Arc<App>) -> Answer {
    let (list, tenants) = app
        .blocking(|s| Ok((s.partners()?, s.ddi_tenants()?)))
        .await?;
    let rendered = list
        .iter()
        .map(|p| {
            let mut v = render::partner(p);
            v["ddiTenant"] = Value::String(tenants.get(&p.id).unwrap_or(&p.id).clone());
            v
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(rendered)))
}

pub async fn create_partner(app: &Arc<App>, ctx: &Ctx, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let name = f.req_str("name")?;
    let email = f.opt_str("email")?.filter(|e| !e.is_empty());
    let actor = ctx.principal.actor();
    let (partner, secret) = app
        .blocking(move |s| Ok(s.create_partner(&actor, &name, email.as_deref())?))
        .await?;
    let mut value = render::partner(&partner);
    value["clientSecret"] = Value::String(secret);
    Ok(json_response(StatusCode::CREATED, &value))
}

async fn require_partner_exists(app: &Arc<App>, partner: &str) -> Result<(), ApiError> {
    let id = partner.to_string();
    app.blocking(move |s| Ok(s.partner(&id)?))
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("unknown_partner", "partner not found"))
}

pub async fn rotate_secret(app: &Arc<App>, ctx: &Ctx, partner: String) -> Answer {
    let actor = ctx.principal.actor();
    let secret = app
        .blocking(move |s| Ok(s.rotate_partner_secret(&actor, &partner)?))
        .await?;
    app.auth.clear();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "clientSecret": secret }),
    ))
}

pub async fn create_user(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    require_partner_exists(app, &partner).await?;
    let f = Fields::read(app, body).await?;
    let username = f.req_str("username")?;
    let password = f.req_str("password")?;
    let role = Role::parse(&f.opt_str("role")?.unwrap_or_else(|| "partner".into()))
        .map_err(|e| ApiError::bad_request(e.trace, e.to_string()))?;
    let actor = ctx.principal.actor();
    let user = app
        .blocking(move |s| Ok(s.create_user(&actor, &partner, &username, &password, role)?))
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"username": user.username, "role": user.role.as_str(), "partnerId": user.partner_id}),
    ))
}

pub async fn users(app: &Arc<App>, partner: String) -> Answer {
    require_partner_exists(app, &partner).await?;
    let list = app.blocking(move |s| Ok(s.users(&partner)?)).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|u| json!({"username": u.username, "role": u.role.as_str(), "partnerId": u.partner_id, "createdTimestamp": u.created_ms}))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

pub async fn delete_user(app: &Arc<App>, ctx: &Ctx, partner: String, username: String) -> Answer {
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.remove_user(&actor, &partner, &username)?))
        .await?;
    app.auth.clear();
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// `GET /v1/admin/audit?page=&size=&since=<ms>`: newest first, paged.
pub async fn audit(app: &Arc<App>, ctx: &Ctx) -> Answer {
    let mut window = super::paging::Window::default();
    let mut since = 0u64;
    for (k, v) in query_form(ctx.query.as_deref()) {
        if window.take(&k, &v)? {
            continue;
        }
        if k == "since" {
            since = v
                .parse()
                .map_err(|_| ApiError::bad_request("bad_query", "since must be a number"))?;
        }
    }
    let (skip, take) = (window.first(), window.size);
    let (total, page) = app
        .blocking(move |s| Ok(s.audit_page(since, skip, take)?))
        .await?;
    let content = page.iter().map(render::audit).collect();
    Ok(json_response(
        StatusCode::OK,
        &window.wrap(total, content, "seq: DESC"),
    ))
}

/// `GET /v1/admin/backup`: a consistent copy of the database, streamed as a redb file.
pub async fn backup(app: &Arc<App>) -> Answer {
    let dir = app.data_dir.backup_tmp();
    let path = dir.join(format!("backup-{}.redb", crate::secrets::new_secret()));
    let target = path.clone();
    app.blocking(move |s| {
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        s.backup_to(&target).map_err(ApiError::from)
    })
    .await?;
    let file = std::fs::File::open(&path)
        .map_err(|e| ApiError::internal(format!("cannot open backup: {e}")))?;
    // The file is unlinked now; the open handle keeps it readable until the stream ends.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    let (tx, body) = ChannelBody::channel(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = file;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"otad-backup.redb\""),
    );
    Ok(resp)
}

/// `GET /v1/me`: who the token belongs to, so that the web UI knows the partner to show and
/// whether to offer the admin screens. Device tokens get 403 (they have no partner view).
pub async fn me(app: &Arc<App>, ctx: &Ctx) -> Answer {
    let (actor, partner_id, role) = match &ctx.principal {
        auth::Principal::Admin { actor } => (actor.clone(), None, "admin"),
        auth::Principal::Partner { actor, partner_id } => {
            (actor.clone(), Some(partner_id.clone()), "partner")
        }
        auth::Principal::Device { .. } | auth::Principal::Scraper | auth::Principal::Anonymous => {
            return Err(ApiError::forbidden(
                "forbidden",
                "a device token has no partner view",
            ));
        }
    };
    let partner = app
        .blocking(move |s| {
            Ok(match partner_id {
                Some(id) => s.partner(&id)?,
                None => s.partners()?.into_iter().find(|p| p.platform),
            })
        })
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_partner", "partner not found"))?;
    let mut body = json!({
        "partnerId": partner.id,
        "partnerName": partner.name,
        "role": role,
    });
    // Machine clients have no username: their actor is `client:<partnerId>`.
    if !actor.starts_with("client:") {
        body["username"] = Value::String(actor);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1/me/password {currentPassword, newPassword}`: a signed-in user changes its own
/// password. A wrong current password counts against the user's sign-in budget
/// (`api.login_attempts_per_minute`), so a stolen token cannot guess it faster than the
/// sign-in form could. Every other token of the user is revoked; this one stays.
pub async fn change_password(app: &Arc<App>, ctx: &Ctx, body: Incoming) -> Answer {
    let username = match &ctx.principal {
        auth::Principal::Admin { actor } | auth::Principal::Partner { actor, .. }
            if !actor.starts_with("client:") =>
        {
            actor.clone()
        }
        _ => {
            return Err(ApiError::forbidden(
                "no_password",
                "only a signed-in user has a password to change",
            ));
        }
    };
    let f = Fields::read(app, body).await?;
    let current = f.req_str("currentPassword")?;
    let new = f.req_str("newPassword")?;
    let keep = auth::bearer(&ctx.headers)
        .map(crate::secrets::token_hash)
        .ok_or_else(|| ApiError::forbidden("no_password", "a bearer token is required"))?;
    let app2 = Arc::clone(app);
    app.blocking(move |s| {
        let key = format!("user:{username}");
        if let Err(wait) = app2.logins.check(&[key.as_str()]) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                format!("too many wrong passwords; retry in {wait} s"),
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        let ok = s
            .user(&username)?
            .is_some_and(|u| crate::secrets::verify_secret(&current, &u.password_hash));
        if !ok {
            app2.logins.fail(&[key.as_str()]);
            return Err(ApiError::forbidden(
                "wrong_password",
                "currentPassword is not the current password",
            ));
        }
        s.change_password(&username, &new, keep)?;
        Ok(())
    })
    .await?;
    // The revoked tokens must not live on in the token cache.
    app.auth.clear();
    Ok(status_only(StatusCode::NO_CONTENT))
}
