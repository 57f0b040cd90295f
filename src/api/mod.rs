//! The HTTP API (api.md): one entry point per request that routes, authenticates, calls the
//! handler, renders any error as the one error body, and logs and counts the request.
//!
//! Rooms: `routes.rs` (the route table: method, template, access rule, handler; and the
//! matcher), `auth.rs` (OAuth, tokens, roles, access rules), `extract.rs` (request parsing:
//! path segments, forms and queries, JSON fields), `errors.rs` (the error body and the
//! store-error mapping), `body.rs` (bounded bodies, JSON, streaming), `paging.rs`,
//! `render.rs` (JSON shapes), handlers in `catalog.rs` (types, pool, images, device types,
//! tags), `binaries.rs` (+ `multipart.rs`), `devices.rs`, `fleet.rs` (the fleet summary and
//! its cache), `rollouts.rs`, `signing.rs`, `ddi/` (hawkBit DDI for Linux update agents,
//! and the partner's DDI settings), `admin.rs` (OAuth, partners, users, audit, backup,
//! health, metrics, me, password change) and `metrics.rs` (request counters).
//!
//! Not here: the listener (`server/`), the web UI's files (`web/`).

mod admin;
mod auth;
mod binaries;
mod body;
mod catalog;
mod ddi;
mod devices;
mod errors;
mod extract;
mod fleet;
mod metrics;
mod multipart;
mod paging;
mod render;
mod rollouts;
mod routes;
mod signing;

// The API's surface outside the crate: the route table (the authorization-matrix test reads
// it) and the pure parsers the fuzz targets drive.
pub use auth::{Access, Principal};
pub use binaries::{RangeAnswer, parse_range};
pub use catalog::binary_from_url;
pub use devices::{ImportLine, parse_import};
pub use errors::ApiError;
pub use extract::{Fields, decode_segment, parse_form};
pub use multipart::{MultipartError, MultipartReader, boundary_from_content_type, sniff_boundary};
pub use paging::{DEFAULT_SIZE, MAX_SIZE, PageQuery, SortField};
pub use routes::{MAX_PARAMS, Matched, ROUTES, Route, Verb, route};

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use self::auth::LoginLimiter;
use self::body::{Body, json_response};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::store::Store;

/// Everything a request handler needs.
pub struct App {
    pub store: Store,
    pub config: Config,
    /// Base of binary URLs, without a trailing slash.
    pub public_base_url: String,
    pub data_dir: DataDir,
    pub metrics: metrics::Metrics,
    pub logins: LoginLimiter,
    /// Connected devices: pushes are announced to them.
    pub devices: Arc<crate::server::DeviceHub>,
    pub auth: auth::AuthCache,
    /// Recently resolved downloads (see `binaries::DownloadCache`).
    pub downloads: binaries::DownloadCache,
    /// Recently resolved DDI artifacts (see `ddi::ArtifactCache`).
    pub ddi_artifacts: ddi::ArtifactCache,
    /// Recent fleet summaries (see `fleet::Cache`).
    pub fleet: fleet::Cache,
    /// SHA-256 of `api.metrics_token`, hashed once: requests compare against it.
    metrics_token_hash: Option<[u8; 32]>,
}

/// What a handler answers: the response, or the error `handle` renders as the error body.
pub type Answer = Result<Response<Body>, ApiError>;

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
        let data_dir = config.data_dir();
        let metrics_token_hash = (!config.api.metrics_token.is_empty())
            .then(|| crate::secrets::token_hash(&config.api.metrics_token));
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
            ddi_artifacts: ddi::ArtifactCache::default(),
            fleet: fleet::Cache::default(),
            metrics_token_hash,
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
        Ok((matched, template)) => {
            let (label, result) = dispatch(&app, matched, req).await;
            (template, label, result)
        }
        Err(e) => {
            let (label, e) = unmatched(&app, &path, req.headers(), e).await;
            ("(unmatched)", label, Err(e))
        }
    };
    let mut resp = result.unwrap_or_else(|e| {
        if template.starts_with("/{tenant}/") {
            ddi::error_response(&e, head)
        } else {
            error_response(&e, &path, head)
        }
    });
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

/// Checks the caller as the route's access rule says, then runs its handler. Returns the
/// partner label for the request log with the answer.
async fn dispatch(
    app: &Arc<App>,
    matched: Matched,
    req: Request<Incoming>,
) -> (String, Result<Response<Body>, ApiError>) {
    let (parts, body) = req.into_parts();
    let principal = match matched.route.access {
        Access::Anonymous | Access::Ddi => Principal::Anonymous,
        _ => match principal_of(app, &parts.headers).await {
            Ok(p) => p,
            Err(e) => return (String::new(), Err(e)),
        },
    };
    let label = principal.partner_label().to_string();
    if let Err(e) = matched.authorize(&principal) {
        return (label, Err(e));
    }
    let ctx = Ctx {
        principal,
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
    };
    let result = (matched.route.handler)(app, &ctx, matched.params, body).await;
    (label, result)
}

/// An unknown route (or method) under a partner's path answers what a known one would for
/// the caller first — 401 without a valid token, 403 with another partner's — and only then
/// `not_found`: no one learns which routes exist without credentials (api.md's precedence).
async fn unmatched(
    app: &Arc<App>,
    path: &str,
    headers: &HeaderMap,
    e: ApiError,
) -> (String, ApiError) {
    let Some(partner) = path
        .strip_prefix("/v1/ota/partners/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|raw| extract::decode_segment(raw).ok())
        .filter(|p| !p.is_empty())
    else {
        return (String::new(), e);
    };
    match principal_of(app, headers).await {
        Err(denied) => (String::new(), denied),
        Ok(principal) => {
            let label = principal.partner_label().to_string();
            match principal.require_partner(&partner) {
                Err(denied) => (label, denied),
                Ok(()) => (label, e),
            }
        }
    }
}

/// The caller of a request: from the token cache, or checked in the store and cached.
async fn principal_of(app: &Arc<App>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = auth::bearer(headers) else {
        return Err(ApiError::unauthorized("a bearer token is required"));
    };
    if let Some(scrape) = &app.metrics_token_hash
        && crate::secrets::same_hash(&crate::secrets::token_hash(token), scrape)
    {
        return Ok(Principal::Scraper);
    }
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
