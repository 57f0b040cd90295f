//! The HTTP API (api.md): one entry point per request that routes, authenticates, calls the
//! handler, renders any error as the one error body, and logs and counts the request.
//!
//! Rooms: `routes.rs` (path → route), `auth.rs` (OAuth, tokens, roles), `errors.rs` (the
//! error body and the store-error mapping), `body.rs` (bounded bodies, JSON, streaming),
//! `paging.rs`, `render.rs` (JSON shapes), handlers in `catalog.rs` (types, pool, images,
//! device types, tags), `binaries.rs` (+ `multipart.rs`), `devices.rs`, `admin.rs` (partners,
//! users, audit, backup, health, metrics) and `metrics.rs`. The listener is in `server/`.

pub mod admin;
pub mod auth;
pub mod binaries;
pub mod body;
pub mod catalog;
pub mod devices;
pub mod errors;
pub mod metrics;
pub mod multipart;
pub mod paging;
pub mod render;
pub mod routes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use self::auth::{LoginLimiter, Principal};
use self::body::{Body, json_response};
use self::errors::ApiError;
use self::routes::Route;
use crate::config::Config;
use crate::store::Store;

/// Everything a request handler needs.
pub struct App {
    pub store: Store,
    pub config: Config,
    /// Base of binary URLs, without a trailing slash.
    pub public_base_url: String,
    pub data_dir: PathBuf,
    pub metrics: metrics::Metrics,
    pub logins: LoginLimiter,
    /// Connected devices: pushes are announced to them.
    pub devices: Arc<crate::server::DeviceHub>,
    pub auth: auth::AuthCache,
    /// Recently resolved downloads (see `binaries::DownloadCache`).
    pub downloads: binaries::DownloadCache,
}

/// What a handler knows about its request besides the route.
pub struct Ctx {
    pub principal: Principal,
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

impl App {
    pub fn new(
        store: Store,
        config: Config,
        public_base_url: String,
        devices: Arc<crate::server::DeviceHub>,
    ) -> Self {
        let logins = LoginLimiter::new(config.api.login_attempts_per_minute);
        let data_dir = config.data_dir.clone();
        Self {
            store,
            config,
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
            data_dir,
            metrics: metrics::Metrics::default(),
            logins,
            devices,
            auth: auth::AuthCache::default(),
            downloads: binaries::DownloadCache::default(),
        }
    }

    /// Runs blocking store work off the reactor threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.config.api.request_timeout_secs)
    }

    pub fn max_json(&self) -> usize {
        self.config.api.max_json_body
    }

    /// The URL moveToRepository hands out for a partner's binary.
    pub fn binary_url(&self, partner_id: &str, sha256: &[u8; 32]) -> String {
        format!(
            "{}/v1/ota/partners/{partner_id}/binaries/{}",
            self.public_base_url,
            crate::model::hex(sha256)
        )
    }
}

/// Serves one request: never fails; every error becomes the JSON error body.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let head = method == Method::HEAD;
    // The OTA Manager's static files (GET/HEAD of `/` and `/ui/*`); nothing else matches.
    if let Some(resp) = crate::web::respond(&method, &path, req.headers()) {
        return Ok(resp);
    }
    let (template, label, result) = match routes::route(&method, &path) {
        Ok((route, template)) => {
            let (label, result) = dispatch(&app, route, req).await;
            (template, label, result)
        }
        Err(e) => ("(unmatched)", String::new(), Err(e)),
    };
    let mut resp = result.unwrap_or_else(|e| error_response(&e, &path, head));
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let status = resp.status();
    app.metrics.count_request(template, status.as_u16());
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        method = %method,
        route = template,
        status = status.as_u16(),
        ms = format_args!("{ms:.1}"),
        partner = label.as_str(),
        "request"
    );
    Ok(resp)
}

pub fn error_response(e: &ApiError, path: &str, head: bool) -> Response<Body> {
    let mut resp = if head {
        body::status_only(e.status)
    } else {
        json_response(e.status, &e.body(path))
    };
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if e.status == StatusCode::UNAUTHORIZED && e.oauth.is_none() {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

async fn dispatch(
    app: &Arc<App>,
    route: Route,
    req: Request<Incoming>,
) -> (String, Result<Response<Body>, ApiError>) {
    let (parts, body) = req.into_parts();
    match route {
        Route::Health => return (String::new(), admin::health(app).await),
        Route::OauthToken => {
            return (
                String::new(),
                admin::oauth_token(app, &parts.headers, body).await,
            );
        }
        Route::OauthRevoke => {
            return (
                String::new(),
                admin::oauth_revoke(app, &parts.headers, body).await,
            );
        }
        _ => {}
    }
    let principal = match principal_of(app, &parts.headers).await {
        Ok(p) => p,
        Err(e) => return (String::new(), Err(e)),
    };
    let label = principal.partner_label().to_string();
    if let Some(partner) = route.partner()
        && !matches!(route, Route::BinaryDownload { .. })
        && let Err(e) = principal.require_partner(partner)
    {
        return (label, Err(e));
    }
    let ctx = Ctx {
        principal,
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
    };
    let result = route_to_handler(app, &ctx, route, body).await;
    (label, result)
}

/// The caller of a request: from the token cache, or checked in the store and cached.
async fn principal_of(app: &Arc<App>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = auth::bearer(headers) else {
        return Err(ApiError::unauthorized("a bearer token is required"));
    };
    if let Some(p) = app.auth.get(token) {
        return Ok(p);
    }
    let text = token.to_string();
    let (principal, expires) = app
        .blocking(move |store| auth::authenticate(store, &text))
        .await?;
    app.auth.put(token, principal.clone(), expires);
    Ok(principal)
}

async fn route_to_handler(
    app: &Arc<App>,
    ctx: &Ctx,
    route: Route,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    use Route::*;
    match route {
        Health | OauthToken | OauthRevoke => Err(ApiError::internal("route handled earlier")),
        Metrics => admin::metrics(app, ctx).await,
        AdminPartners => admin::partners(app, ctx).await,
        AdminPartnersCreate => admin::create_partner(app, ctx, body).await,
        AdminPartnerSecret { partner } => admin::rotate_secret(app, ctx, partner).await,
        AdminUsersCreate { partner } => admin::create_user(app, ctx, partner, body).await,
        AdminUsersList { partner } => admin::users(app, ctx, partner).await,
        AdminUserDelete { partner, username } => {
            admin::delete_user(app, ctx, partner, username).await
        }
        AdminAudit => admin::audit(app, ctx).await,
        AdminBackup => admin::backup(app, ctx).await,
        Me => admin::me(app, ctx).await,
        TypesList { partner } => catalog::types(app, partner).await,
        TypesCreate { partner } => catalog::create_type(app, ctx, partner, body).await,
        TypeGet { partner, fw_type } => catalog::get_type(app, partner, fw_type).await,
        TypeUpdate { partner, fw_type } => {
            catalog::update_type(app, ctx, partner, fw_type, body).await
        }
        BinaryUpload { partner } => binaries::upload(app, ctx, partner, body).await,
        BinaryMove { partner } => binaries::move_to_repository(app, ctx, partner, body).await,
        BinaryDownload { partner, sha, head } => {
            binaries::download(app, ctx, partner, sha, head).await
        }
        PoolList { partner, fw_type } => catalog::pool_list(app, ctx, partner, fw_type).await,
        PoolCreate { partner } => catalog::pool_create(app, ctx, partner, body).await,
        PoolExists {
            partner,
            fw_type,
            name,
            version,
        } => catalog::pool_exists(app, ctx, partner, fw_type, name, version).await,
        PoolGet {
            partner,
            fw_type,
            vn,
        } => catalog::pool_get(app, partner, fw_type, vn).await,
        PoolUpdate {
            partner,
            fw_type,
            vn,
        } => catalog::pool_update(app, ctx, partner, fw_type, vn, body).await,
        PoolDelete {
            partner,
            fw_type,
            vn,
        } => catalog::pool_delete(app, ctx, partner, fw_type, vn).await,
        PoolAssociations {
            partner,
            fw_type,
            vn,
        } => catalog::pool_associations(app, partner, fw_type, vn).await,
        Tags { partner } => catalog::tags(app, partner).await,
        DeviceTypesList { partner } => catalog::device_types(app, partner).await,
        DeviceTypesCreate { partner } => catalog::create_device_type(app, ctx, partner, body).await,
        DeviceTypeGet { partner, dt } => catalog::get_device_type(app, partner, dt).await,
        DeviceTypeUpdate { partner, dt } => {
            catalog::update_device_type(app, ctx, partner, dt, body).await
        }
        DeviceTypeDelete { partner, dt } => {
            catalog::delete_device_type(app, ctx, partner, dt).await
        }
        ImagesList {
            partner,
            dt,
            fw_type,
        } => catalog::images(app, ctx, partner, dt, fw_type).await,
        ImageCreate { partner, dt } => catalog::image_create(app, ctx, partner, dt, body).await,
        ImageGet {
            partner,
            dt,
            fw_type,
            vn,
        } => catalog::image_get(app, partner, dt, fw_type, vn).await,
        ImageDelete {
            partner,
            dt,
            fw_type,
            vn,
        } => catalog::image_delete(app, ctx, partner, dt, fw_type, vn).await,
        ImagePush { partner, dt, image } => catalog::push(app, ctx, partner, dt, image, body).await,
        DevicesList { partner } => devices::list(app, ctx, partner).await,
        DeviceRegister { partner } => devices::register(app, ctx, partner, body).await,
        DevicesImport { partner } => devices::import(app, ctx, partner, body).await,
        DeviceGet { partner, device } => devices::get(app, partner, device).await,
        DeviceDelete { partner, device } => devices::delete(app, ctx, partner, device).await,
        DeviceToken { partner, device } => devices::rotate_token(app, ctx, partner, device).await,
    }
}
