//! Who is calling: OAuth token issue and revocation (`/oauth/*`, RFC 6749/7009 errors), bearer
//! token checks, the roles (appliance admin, partner user or client, device), the access
//! rules a route may name, and the failed-login limiter.
//!
//! Precedence (api.md): 401 (no or bad token) before 403 (wrong partner) before any 400/404.
//!
//! Not here: which route has which rule (`routes.rs`), form parsing (`extract.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use http::{HeaderMap, StatusCode, header};

use super::errors::ApiError;
use crate::secrets::{token_hash, verify_secret};
use crate::store::Store;
use crate::store::Token;

/// The caller of a request, after its bearer token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user of the platform partner with role admin, or the platform's client.
    Admin { actor: String },
    /// A partner's user or machine client.
    Partner { actor: String, partner_id: String },
    /// A device presenting its own token.
    Device { device_id: String },
    /// The configured metrics token (`api.metrics_token`): `/metrics` only.
    Scraper,
    /// Nobody checked: the caller of a route open to anyone (health, OAuth).
    Anonymous,
}

impl Principal {
    /// Name written to the audit log.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { actor } | Principal::Partner { actor, .. } => actor.clone(),
            Principal::Device { device_id } => format!("device:{device_id}"),
            Principal::Scraper => "metrics".to_string(),
            Principal::Anonymous => "anonymous".to_string(),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    /// Partner shown in request logs.
    pub fn partner_label(&self) -> &str {
        match self {
            Principal::Admin { .. } => "admin",
            Principal::Partner { partner_id, .. } => partner_id,
            Principal::Device { device_id } => device_id,
            Principal::Scraper => "metrics",
            Principal::Anonymous => "",
        }
    }

    /// May this caller act on `partner_id`'s paths? Devices never (downloads admit them by
    /// their own rule, `Access::PartnerOrDevice`).
    pub fn require_partner(&self, partner_id: &str) -> Result<(), ApiError> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Partner {
                partner_id: own, ..
            } if own == partner_id => Ok(()),
            _ => Err(ApiError::forbidden(
                "forbidden",
                "this token may not act on this partner",
            )),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "admin_only",
                "this call needs an appliance admin",
            ))
        }
    }
}

/// Who may call a route (the `auth` column of the route table), checked after the token and
/// before the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no token is asked for (the handler checks any credentials itself).
    Anonymous,
    /// Any valid token; the handler may refuse some callers.
    Authenticated,
    /// An appliance admin.
    Admin,
    /// An appliance admin, or the metrics token: `/metrics`.
    AdminOrScraper,
    /// The partner of the path's `{partnerId}`, or an admin.
    Partner,
    /// As `Partner`, or any device: a binary download, where the handler checks that the
    /// device is entitled to the binary.
    PartnerOrDevice,
    /// hawkBit DDI: no bearer token; the handler checks the DDI credential (`TargetToken`
    /// or `GatewayToken`) of the path's tenant and device, and answers one 401 otherwise.
    Ddi,
}

impl Access {
    /// Does the route act on the path's partner (its first path parameter)?
    pub fn partner_scoped(self) -> bool {
        matches!(self, Access::Partner | Access::PartnerOrDevice)
    }

    /// 403 unless `principal` may call a route with this rule; `partner` is the path's
    /// partner id for partner-scoped routes.
    pub fn check(self, principal: &Principal, partner: &str) -> Result<(), ApiError> {
        match self {
            Access::Anonymous | Access::Authenticated | Access::Ddi => Ok(()),
            Access::Admin => principal.require_admin(),
            Access::AdminOrScraper if matches!(principal, Principal::Scraper) => Ok(()),
            Access::AdminOrScraper => principal.require_admin(),
            Access::Partner => principal.require_partner(partner),
            Access::PartnerOrDevice if matches!(principal, Principal::Device { .. }) => Ok(()),
            Access::PartnerOrDevice => principal.require_partner(partner),
        }
    }
}

fn principal_of(token: Token) -> Principal {
    let actor = token
        .username
        .clone()
        .unwrap_or_else(|| format!("client:{}", token.partner_id));
    if token.admin {
        Principal::Admin { actor }
    } else {
        Principal::Partner {
            actor,
            partner_id: token.partner_id,
        }
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks a bearer token (API token first, then device token) in the store. Blocking: call
/// from a blocking task. Returns the caller and, for API tokens, when the token expires.
pub fn authenticate(store: &Store, token: &str) -> Result<(Principal, Option<u64>), ApiError> {
    if token.is_empty() || token.len() > 512 {
        return Err(ApiError::unauthorized("invalid or expired token"));
    }
    if let Some(t) = store.token(token)? {
        let expires = t.expires_ms;
        return Ok((principal_of(t), Some(expires)));
    }
    if let Some(device_id) = store.device_id_by_token(token)? {
        return Ok((Principal::Device { device_id }, None));
    }
    Err(ApiError::unauthorized("invalid or expired token"))
}

/// How long a checked token is trusted without asking the store again.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most; the cache is emptied when full (it refills from busy clients).
const AUTH_CACHE_MAX: usize = 10_000;

/// Recently checked tokens, so that a busy client's requests do not each wait for a storage
/// lookup on a blocking thread. Keyed by the token's SHA-256; an entry lives at most
/// `AUTH_CACHE_TTL` and never past the token's own expiry. Only valid tokens are kept.
/// Whatever withdraws a token (revocation, token rotation, deleting a device or user, a DDI
/// tenant or gateway token change) clears the cache at once.
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    /// DDI credentials: SHA-256 of (scheme, tenant, controller, token) → the device.
    ddi: Mutex<HashMap<[u8; 32], (DdiCaller, Instant)>>,
}

/// The device a checked DDI credential acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdiCaller {
    pub device_id: String,
    pub partner_id: String,
}

impl AuthCache {
    pub fn get(&self, token: &str) -> Option<Principal> {
        let key = token_hash(token);
        let map = self.entries.lock().ok()?;
        let (principal, until) = map.get(&key)?;
        (Instant::now() < *until).then(|| principal.clone())
    }

    pub fn put(&self, token: &str, principal: Principal, expires_ms: Option<u64>) {
        let mut ttl = AUTH_CACHE_TTL;
        if let Some(expires) = expires_ms {
            let left = expires.saturating_sub(crate::ids::now_ms());
            ttl = ttl.min(Duration::from_millis(left));
        }
        let key = token_hash(token);
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= AUTH_CACHE_MAX {
                map.clear();
            }
            map.insert(key, (principal, Instant::now() + ttl));
        }
    }

    pub fn ddi_get(&self, key: &[u8; 32]) -> Option<DdiCaller> {
        let map = self.ddi.lock().ok()?;
        let (caller, until) = map.get(key)?;
        (Instant::now() < *until).then(|| caller.clone())
    }

    pub fn ddi_put(&self, key: [u8; 32], caller: DdiCaller) {
        if let Ok(mut map) = self.ddi.lock() {
            if map.len() >= AUTH_CACHE_MAX {
                map.clear();
            }
            map.insert(key, (caller, Instant::now() + AUTH_CACHE_TTL));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.lock() {
            map.clear();
        }
        if let Ok(mut map) = self.ddi.lock() {
            map.clear();
        }
    }
}

/// Failed logins per key (client id, username) in the last minute.
pub struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at most; the oldest are forgotten first, bounding memory under attack.
const MAX_KEYS: usize = 100_000;

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when a key is over its budget.
    pub fn check(&self, keys: &[&str]) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let mut wait = 0u64;
        for key in keys {
            if let Some(q) = map.get_mut(*key) {
                while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                    q.pop_front();
                }
                if q.len() >= self.per_minute as usize
                    && let Some(oldest) = q.front()
                {
                    let left = WINDOW.saturating_sub(now.duration_since(*oldest));
                    wait = wait.max(left.as_secs() + 1);
                }
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    pub fn fail(&self, keys: &[&str]) {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= WINDOW));
        }
        for key in keys {
            if map.len() < MAX_KEYS || map.contains_key(*key) {
                map.entry((*key).to_string()).or_default().push_back(now);
            }
        }
    }
}

/// `Authorization: Basic base64(clientId:clientSecret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The successful token answer.
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
}

/// `POST /oauth/token`. Blocking (argon2): call from a blocking task.
pub fn token_grant(
    store: &Store,
    limiter: &LoginLimiter,
    ttl_secs: u64,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Issued, ApiError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(grant) = field("grant_type") else {
        return Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ));
    };
    if grant != "password" && grant != "client_credentials" {
        return Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be password or client_credentials",
        ));
    }
    // The OTA Manager signs in as a public client: no Basic header, its id in the form.
    let basic = basic_credentials(headers);
    let public =
        grant == "password" && basic.is_none() && field("client_id") == Some(WEB_CLIENT_ID);
    let (client_id, secret) = match basic {
        Some(pair) => pair,
        None if public => (WEB_CLIENT_ID.to_string(), String::new()),
        None => {
            return Err(ApiError::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication (HTTP Basic) is required",
            ));
        }
    };
    let username = if grant == "password" {
        match (field("username"), field("password")) {
            (Some(u), Some(_)) if !u.is_empty() => Some(u.to_string()),
            _ => {
                return Err(ApiError::oauth(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                ));
            }
        }
    } else {
        None
    };
    let user_key = username.as_deref().map(|u| format!("user:{u}"));
    let client_key = format!("client:{client_id}");
    // Every browser shares the public client's id: counting failures against it would let
    // anyone lock all web sign-ins out, so the web client is limited per user name only.
    let mut keys = if public {
        Vec::new()
    } else {
        vec![client_key.as_str()]
    };
    if let Some(k) = &user_key {
        keys.push(k.as_str());
    }
    if let Err(wait) = limiter.check(&keys) {
        let mut e = ApiError::oauth(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!("too many failed logins; retry in {wait} s"),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    // A confidential client proves itself with its secret; the public web client has none,
    // and its users act for the partner they belong to.
    let client = if public {
        None
    } else {
        let partner = store.partner(&client_id)?;
        let client_ok = partner
            .as_ref()
            .is_some_and(|p| verify_secret(&secret, &p.secret_hash));
        let Some(partner) = partner.filter(|_| client_ok) else {
            limiter.fail(&keys);
            return Err(ApiError::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong client secret",
            ));
        };
        Some(partner)
    };
    let wrong_password = || {
        limiter.fail(&keys);
        ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "wrong username or password",
        )
    };
    let (partner, user) = match (&username, client) {
        (None, Some(partner)) => (partner, None),
        (None, None) => return Err(wrong_password()),
        (Some(name), client) => {
            let password = field("password").unwrap_or_default();
            let user = store
                .user(name)?
                .filter(|u| verify_secret(password, &u.password_hash))
                .ok_or_else(wrong_password)?;
            let partner = match client {
                Some(p) if p.id == user.partner_id => p,
                Some(_) => return Err(wrong_password()),
                None => store
                    .partner(&user.partner_id)?
                    .ok_or_else(wrong_password)?,
            };
            (partner, Some(user))
        }
    };
    let admin = partner.platform
        && user
            .as_ref()
            .is_none_or(|u| u.role == crate::model::Role::Admin);
    let (access_token, _) = store.issue_token(
        &partner.id,
        user.as_ref().map(|u| u.username.as_str()),
        admin,
        ttl_secs,
    )?;
    Ok(Issued {
        access_token,
        expires_in: ttl_secs,
    })
}

/// The OAuth client id of the OTA Manager web UI: a browser cannot keep a client secret.
const WEB_CLIENT_ID: &str = crate::model::PUBLIC_CLIENT_ID;

/// `POST /oauth/revoke` (RFC 7009): client-authenticated; unknown tokens are fine.
pub fn revoke(
    store: &Store,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<(), ApiError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some((client_id, secret)) = basic_credentials(headers) else {
        // The web client signs out by revoking its own token: holding the token is the
        // proof, as a public client has no secret (RFC 7009 §5).
        if field("client_id") == Some(WEB_CLIENT_ID) {
            if let Some(token) = field("token")
                && store.token(token)?.is_some()
            {
                store.revoke_token(token)?;
            }
            return Ok(());
        }
        return Err(ApiError::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication (HTTP Basic) is required",
        ));
    };
    let ok = store
        .partner(&client_id)?
        .is_some_and(|p| verify_secret(&secret, &p.secret_hash));
    if !ok {
        return Err(ApiError::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong client secret",
        ));
    }
    let Some((_, token)) = form.iter().find(|(k, _)| k == "token") else {
        return Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    // A client may only revoke its own partner's tokens; others are silently ignored.
    if store
        .token(token)?
        .is_some_and(|t| t.partner_id == client_id)
    {
        store.revoke_token(token)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_failures_per_key() {
        let l = LoginLimiter::new(2);
        assert!(l.check(&["c", "u"]).is_ok());
        l.fail(&["c", "u"]);
        l.fail(&["c2", "u"]);
        let wait = l.check(&["c3", "u"]).unwrap_err();
        assert!((1..=61).contains(&wait));
        assert!(l.check(&["c"]).is_ok());
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
