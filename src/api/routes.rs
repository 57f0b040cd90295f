//! The route table of the HTTP API: every endpoint once, as method, path template (the name
//! in logs and metrics), access rule and handler; and the matcher that finds a request's row
//! (404 for no route, 405 for a known path with another method). The dispatcher (`mod.rs`)
//! and tests/api_authorization.rs read `ROUTES`; that test holds docs/security.md's matrix
//! to it.
//!
//! Not here: what the handlers do (the handler files), token checks and the rules themselves
//! (`auth.rs`), percent-decoding (`extract.rs`).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use http::Method;
use hyper::body::Incoming;

use super::auth::{Access, Principal};
use super::errors::ApiError;
use super::extract::path_segment;
use super::{Answer, App, Ctx, admin, binaries, catalog, ddi, devices, fleet, rollouts, signing};
use crate::rollout::Move;

/// Path parameters a template holds at the most.
pub const MAX_PARAMS: usize = 4;

/// A route's path parameters in template order, percent-decoded and not otherwise validated;
/// the slots past the template's parameters are empty.
pub type Params = [String; MAX_PARAMS];

/// What a handler returns, boxed so that every row has the same handler type.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// A row's handler: the app, the request's context, its path parameters and its body.
pub type Handler = for<'a> fn(&'a Arc<App>, &'a Ctx, Params, Incoming) -> Reply<'a>;

/// The methods a row answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET, and HEAD answered the same way (the routes outside the partner paths; the matrix
    /// names only the GET).
    GetHead,
    Get,
    Head,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn allows(self, method: &Method) -> bool {
        match self {
            Verb::GetHead => *method == Method::GET || *method == Method::HEAD,
            Verb::Get => *method == Method::GET,
            Verb::Head => *method == Method::HEAD,
            Verb::Post => *method == Method::POST,
            Verb::Put => *method == Method::PUT,
            Verb::Delete => *method == Method::DELETE,
        }
    }

    /// The method as docs/security.md's matrix names it.
    pub fn name(self) -> &'static str {
        match self {
            Verb::GetHead | Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

/// One row of the table.
pub struct Route {
    pub verb: Verb,
    /// The path, `{name}` for a parameter.
    pub template: &'static str,
    pub access: Access,
    pub handler: Handler,
    /// The template's segment count, so that most rows are passed over at a glance.
    segments: usize,
}

/// The number of `/`-separated segments of a template.
const fn segment_count(template: &str) -> usize {
    let mut count = 0;
    let mut rest = template.as_bytes();
    while let [byte, tail @ ..] = rest {
        if *byte == b'/' {
            count += 1;
        }
        rest = tail;
    }
    count
}

/// Segments a template holds at the most; a longer path is no route.
const MAX_SEGMENTS: usize = 12;

/// Builds `ROUTES`, one line a row: verb, template, access rule, then the handler call as a
/// closure over (app, ctx, params, body), which the macro boxes.
macro_rules! table {
    ($($verb:ident $template:literal $access:ident |$($arg:pat_param),*| $call:expr;)*) => {
        /// Every endpoint, in matching order: the first template that fits the path decides
        /// (so a literal segment is listed before a parameter in its place), then the row of
        /// that template for the method (the rows of one template stand together).
        pub static ROUTES: &[Route] = &[$(Route {
            verb: Verb::$verb,
            template: $template,
            access: Access::$access,
            handler: |$($arg),*| Box::pin($call),
            segments: segment_count($template),
        }),*];
    };
}

table! {
    GetHead "/healthz" Anonymous |a, _, _, _| admin::health(a);
    GetHead "/metrics" AdminOrScraper |a, _, _, _| admin::metrics(a);
    Post "/oauth/token" Anonymous |a, c, _, b| admin::oauth_token(a, c, b);
    Post "/oauth/revoke" Anonymous |a, c, _, b| admin::oauth_revoke(a, c, b);
    GetHead "/v1/admin/partners" Admin |a, _, _, _| admin::partners(a);
    Post "/v1/admin/partners" Admin |a, c, _, b| admin::create_partner(a, c, b);
    Post "/v1/admin/partners/{partnerId}/secret" Admin |a, c, [p, ..], _| admin::rotate_secret(a, c, p);
    Post "/v1/admin/partners/{partnerId}/users" Admin |a, c, [p, ..], b| admin::create_user(a, c, p, b);
    GetHead "/v1/admin/partners/{partnerId}/users" Admin |a, _, [p, ..], _| admin::users(a, p);
    Delete "/v1/admin/partners/{partnerId}/users/{username}" Admin |a, c, [p, u, ..], _| admin::delete_user(a, c, p, u);
    Put "/v1/admin/partners/{partnerId}/ddiTenant" Admin |a, c, [p, ..], b| ddi::set_tenant(a, c, p, b);
    GetHead "/v1/admin/audit" Admin |a, c, _, _| admin::audit(a, c);
    GetHead "/v1/admin/backup" Admin |a, _, _, _| admin::backup(a);
    GetHead "/v1/me" Authenticated |a, c, _, _| admin::me(a, c);
    Post "/v1/me/password" Authenticated |a, c, _, b| admin::change_password(a, c, b);
    Get "/v1/ota/partners/{partnerId}/types" Partner |a, _, [p, ..], _| catalog::types(a, p);
    Post "/v1/ota/partners/{partnerId}/types" Partner |a, c, [p, ..], b| catalog::create_type(a, c, p, b);
    Get "/v1/ota/partners/{partnerId}/types/{type}" Partner |a, _, [p, t, ..], _| catalog::get_type(a, p, t);
    Put "/v1/ota/partners/{partnerId}/types/{type}" Partner |a, c, [p, t, ..], b| catalog::update_type(a, c, p, t, b);
    Post "/v1/ota/partners/{partnerId}/binaries" Partner |a, c, [p, ..], b| binaries::upload(a, c, p, b);
    Post "/v1/ota/partners/{partnerId}/binaries/moveToRepository" Partner |a, c, [p, ..], b| binaries::move_to_repository(a, c, p, b);
    Get "/v1/ota/partners/{partnerId}/binaries/{sha256}" PartnerOrDevice |a, c, [p, sha, ..], _| binaries::download(a, c, p, sha);
    Head "/v1/ota/partners/{partnerId}/binaries/{sha256}" PartnerOrDevice |a, c, [p, sha, ..], _| binaries::download(a, c, p, sha);
    Get "/v1/ota/partners/{partnerId}/pool" Partner |a, c, [p, ..], _| catalog::pool_list(a, c, p, None);
    Post "/v1/ota/partners/{partnerId}/pool" Partner |a, c, [p, ..], b| catalog::pool_create(a, c, p, b);
    Get "/v1/ota/partners/{partnerId}/pool/types/{type}" Partner |a, c, [p, t, ..], _| catalog::pool_list(a, c, p, Some(t));
    Get "/v1/ota/partners/{partnerId}/pool/types/{type}/names/{name}/versions/{version}/exists" Partner |a, c, [p, t, n, v], _| catalog::pool_exists(a, c, p, t, n, v);
    Get "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}" Partner |a, _, [p, t, vn, _], _| catalog::pool_get(a, p, t, vn);
    Put "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}" Partner |a, c, [p, t, vn, _], b| catalog::pool_update(a, c, p, t, vn, b);
    Delete "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}" Partner |a, c, [p, t, vn, _], _| catalog::pool_delete(a, c, p, t, vn);
    Get "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}/associations" Partner |a, _, [p, t, vn, _], _| catalog::pool_associations(a, p, t, vn);
    Get "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}/signatures" Partner |a, _, [p, t, vn, _], _| signing::signatures(a, p, t, vn);
    Post "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}/signatures" Partner |a, c, [p, t, vn, _], b| signing::add_signature(a, c, p, t, vn, b);
    Get "/v1/ota/partners/{partnerId}/signingKeys" Partner |a, _, [p, ..], _| signing::keys(a, p);
    Post "/v1/ota/partners/{partnerId}/signingKeys" Partner |a, c, [p, ..], b| signing::add_key(a, c, p, b);
    Delete "/v1/ota/partners/{partnerId}/signingKeys/{keyId}" Partner |a, c, [p, k, ..], _| signing::revoke_key(a, c, p, k);
    Get "/v1/ota/partners/{partnerId}/tags" Partner |a, _, [p, ..], _| catalog::tags(a, p);
    Get "/v1/ota/partners/{partnerId}/rollouts" Partner |a, c, [p, ..], _| rollouts::list(a, c, p);
    Post "/v1/ota/partners/{partnerId}/rollouts" Partner |a, c, [p, ..], b| rollouts::create(a, c, p, b);
    Get "/v1/ota/partners/{partnerId}/rollouts/{rolloutId}" Partner |a, _, [p, r, ..], _| rollouts::get(a, p, r);
    Get "/v1/ota/partners/{partnerId}/rollouts/{rolloutId}/devices" Partner |a, c, [p, r, ..], _| rollouts::devices(a, c, p, r);
    Post "/v1/ota/partners/{partnerId}/rollouts/{rolloutId}/pause" Partner |a, c, [p, r, ..], _| rollouts::operate(a, c, p, r, Move::Pause);
    Post "/v1/ota/partners/{partnerId}/rollouts/{rolloutId}/resume" Partner |a, c, [p, r, ..], _| rollouts::operate(a, c, p, r, Move::Resume);
    Post "/v1/ota/partners/{partnerId}/rollouts/{rolloutId}/advance" Partner |a, c, [p, r, ..], _| rollouts::operate(a, c, p, r, Move::Advance);
    Post "/v1/ota/partners/{partnerId}/rollouts/{rolloutId}/cancel" Partner |a, c, [p, r, ..], _| rollouts::operate(a, c, p, r, Move::Cancel);
    Get "/v1/ota/partners/{partnerId}/deviceTypes" Partner |a, _, [p, ..], _| catalog::device_types(a, p);
    Post "/v1/ota/partners/{partnerId}/deviceTypes" Partner |a, c, [p, ..], b| catalog::create_device_type(a, c, p, b);
    Get "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}" Partner |a, _, [p, dt, ..], _| catalog::get_device_type(a, p, dt);
    Put "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}" Partner |a, c, [p, dt, ..], b| catalog::update_device_type(a, c, p, dt, b);
    Delete "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}" Partner |a, c, [p, dt, ..], _| catalog::delete_device_type(a, c, p, dt);
    Get "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/signaturePolicy" Partner |a, _, [p, dt, ..], _| signing::policy(a, p, dt);
    Put "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/signaturePolicy" Partner |a, c, [p, dt, ..], b| signing::set_policy(a, c, p, dt, b);
    Get "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/firmwareImages" Partner |a, c, [p, dt, ..], _| catalog::images(a, c, p, dt, None);
    Post "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/firmwareImages" Partner |a, c, [p, dt, ..], b| catalog::image_create(a, c, p, dt, b);
    Get "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}" Partner |a, c, [p, dt, t, _], _| catalog::images(a, c, p, dt, Some(t));
    Get "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}/versionNumbers/{versionNumber}" Partner |a, _, [p, dt, t, vn], _| catalog::image_get(a, p, dt, t, vn);
    Delete "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}/versionNumbers/{versionNumber}" Partner |a, c, [p, dt, t, vn], _| catalog::image_delete(a, c, p, dt, t, vn);
    Put "/v1/ota/partners/{partnerId}/deviceTypes/{deviceTypeId}/firmwareImages/{firmwareImageId}/push" Partner |a, c, [p, dt, id, _], b| catalog::push(a, c, p, dt, id, b);
    Get "/v1/ota/partners/{partnerId}/ddi" Partner |a, _, [p, ..], _| ddi::settings(a, p);
    Post "/v1/ota/partners/{partnerId}/ddi/gatewayToken" Partner |a, c, [p, ..], _| ddi::rotate_gateway_token(a, c, p);
    Delete "/v1/ota/partners/{partnerId}/ddi/gatewayToken" Partner |a, c, [p, ..], _| ddi::delete_gateway_token(a, c, p);
    Get "/v1/ota/partners/{partnerId}/devices" Partner |a, c, [p, ..], _| devices::list(a, c, p);
    Post "/v1/ota/partners/{partnerId}/devices" Partner |a, c, [p, ..], b| devices::register(a, c, p, b);
    Post "/v1/ota/partners/{partnerId}/devices/import" Partner |a, c, [p, ..], b| devices::import(a, c, p, b);
    Get "/v1/ota/partners/{partnerId}/devices/{deviceId}" Partner |a, _, [p, d, ..], _| devices::get(a, p, d);
    Put "/v1/ota/partners/{partnerId}/devices/{deviceId}" Partner |a, c, [p, d, ..], b| devices::update(a, c, p, d, b);
    Delete "/v1/ota/partners/{partnerId}/devices/{deviceId}" Partner |a, c, [p, d, ..], _| devices::delete(a, c, p, d);
    Post "/v1/ota/partners/{partnerId}/devices/{deviceId}/token" Partner |a, c, [p, d, ..], _| devices::rotate_token(a, c, p, d);
    Get "/v1/ota/partners/{partnerId}/fleet" Partner |a, c, [p, ..], _| fleet::summary(a, c, p);
    Get "/{tenant}/controller/v1/{controllerId}" Ddi |a, c, [t, d, ..], _| ddi::poll(a, c, t, d);
    Put "/{tenant}/controller/v1/{controllerId}/configData" Ddi |a, c, [t, d, ..], b| ddi::config_data(a, c, t, d, b);
    Get "/{tenant}/controller/v1/{controllerId}/deploymentBase/{actionId}" Ddi |a, c, [t, d, id, _], _| ddi::deployment_base(a, c, t, d, id);
    Post "/{tenant}/controller/v1/{controllerId}/deploymentBase/{actionId}/feedback" Ddi |a, c, [t, d, id, _], b| ddi::feedback(a, c, t, d, id, b);
    Get "/{tenant}/controller/v1/{controllerId}/cancelAction/{actionId}" Ddi |a, c, [t, d, id, _], _| ddi::cancel_action(a, c, t, d, id);
    Post "/{tenant}/controller/v1/{controllerId}/cancelAction/{actionId}/feedback" Ddi |a, c, [t, d, id, _], b| ddi::cancel_feedback(a, c, t, d, id, b);
    Get "/{tenant}/controller/v1/{controllerId}/installedBase/{actionId}" Ddi |a, c, [t, d, id, _], _| ddi::installed_base(a, c, t, d, id);
    GetHead "/{tenant}/controller/v1/{controllerId}/softwaremodules/{moduleId}/artifacts/{filename}" Ddi |a, c, [t, d, m, f], _| ddi::artifact(a, c, t, d, m, f);
}

/// A request's row and its path parameters.
pub struct Matched {
    pub route: &'static Route,
    pub params: Params,
}

impl Matched {
    /// The partner id in the path, for partner-scoped routes.
    pub fn partner(&self) -> Option<&str> {
        let [partner, ..] = &self.params;
        self.route
            .access
            .partner_scoped()
            .then_some(partner.as_str())
    }

    /// 403 unless the route's access rule admits `principal`.
    pub fn authorize(&self, principal: &Principal) -> Result<(), ApiError> {
        let [partner, ..] = &self.params;
        self.route.access.check(principal, partner)
    }
}

impl PartialEq for Matched {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.route, other.route) && self.params == other.params
    }
}

impl Eq for Matched {}

impl fmt::Debug for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matched")
            .field("verb", &self.route.verb)
            .field("template", &self.route.template)
            .field("params", &self.params)
            .finish()
    }
}

fn is_param(part: &str) -> bool {
    part.starts_with('{')
}

/// The template's segments after the leading `/`.
fn parts(template: &str) -> std::str::Split<'_, char> {
    template.strip_prefix('/').unwrap_or(template).split('/')
}

/// Every row's template split into segments, once: matching compares slices instead of
/// splitting each candidate template again on every request (that splitting was a tenth of
/// a small download's CPU).
fn template_parts() -> &'static [Box<[&'static str]>] {
    static PARTS: OnceLock<Vec<Box<[&'static str]>>> = OnceLock::new();
    PARTS.get_or_init(|| ROUTES.iter().map(|r| parts(r.template).collect()).collect())
}

/// Does a template (as its segments) fit the decoded path segments?
fn fits(template: &[&str], segments: &[Cow<'_, str>]) -> bool {
    template.len() == segments.len()
        && template
            .iter()
            .zip(segments)
            .all(|(p, s)| is_param(p) || *p == s.as_ref())
}

/// Matches a request to a route. Returns the route and its path template.
pub fn route(method: &Method, path: &str) -> Result<(Matched, &'static str), ApiError> {
    // Every segment is decoded first: a bad one is 400 wherever it stands.
    let mut segments: [Cow<'_, str>; MAX_SEGMENTS] = Default::default();
    let mut count = 0;
    for raw in path.strip_prefix('/').unwrap_or(path).split('/') {
        let segment = path_segment(raw)?;
        if let Some(slot) = segments.get_mut(count) {
            *slot = segment;
        }
        count += 1;
    }
    let segments = segments.get_mut(..count).unwrap_or_default();
    let mut rows = ROUTES
        .iter()
        .zip(template_parts())
        .skip_while(|(r, p)| r.segments != count || !fits(p, segments))
        .peekable();
    let Some((template, template_parts)) = rows.peek().map(|&(r, p)| (r.template, p)) else {
        return Err(ApiError::not_found(
            "no_route",
            format!("no such endpoint: {path}"),
        ));
    };
    let Some((route, _)) = rows
        .take_while(|(r, _)| r.template == template)
        .find(|(r, _)| r.verb.allows(method))
    else {
        return Err(method_not_allowed(path));
    };
    let mut params = Params::default();
    let values = template_parts
        .iter()
        .zip(segments)
        .filter(|(part, _)| is_param(part))
        .map(|(_, segment)| std::mem::take(segment).into_owned());
    for (slot, value) in params.iter_mut().zip(values) {
        *slot = value;
    }
    Ok((Matched { route, params }, template))
}

fn method_not_allowed(path: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this method is not allowed on {path}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(values: &[&str]) -> Params {
        let mut out = Params::default();
        for (slot, v) in out.iter_mut().zip(values) {
            *slot = v.to_string();
        }
        out
    }

    #[test]
    fn routes_and_templates() {
        let (r, t) = route(
            &Method::GET,
            "/v1/ota/partners/p1/pool/types/3/versionNumbers/17",
        )
        .unwrap();
        assert_eq!(r.route.verb, Verb::Get);
        assert_eq!(r.params, params(&["p1", "3", "17"]));
        assert_eq!(
            t,
            "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}"
        );
        let (r, _) = route(
            &Method::GET,
            "/v1/ota/partners/p/pool/types/3/names/a%20b+c/versions/1.0%2B7/exists",
        )
        .unwrap();
        assert_eq!(r.params, params(&["p", "3", "a b+c", "1.0+7"]));
        let (r, t) = route(&Method::HEAD, "/v1/ota/partners/p/binaries/abc").unwrap();
        assert_eq!(t, "/v1/ota/partners/{partnerId}/binaries/{sha256}");
        assert_eq!(r.route.verb, Verb::Head);
        assert_eq!(r.params, params(&["p", "abc"]));
        assert_eq!(r.partner(), Some("p"));
        let (r, t) = route(
            &Method::POST,
            "/v1/ota/partners/p/binaries/moveToRepository",
        )
        .unwrap();
        assert_eq!(t, "/v1/ota/partners/{partnerId}/binaries/moveToRepository");
        assert_eq!(r.params, params(&["p"]));
    }

    #[test]
    fn every_row_fits_the_table() {
        for (i, r) in ROUTES.iter().enumerate() {
            let names: Vec<&str> = parts(r.template).filter(|p| is_param(p)).collect();
            assert!(names.len() <= MAX_PARAMS, "{}", r.template);
            assert!(r.segments <= MAX_SEGMENTS, "{}", r.template);
            assert_eq!(r.segments, parts(r.template).count(), "{}", r.template);
            // The rows of one template stand together, as the matcher expects.
            if ROUTES[..i].iter().any(|o| o.template == r.template) {
                assert_eq!(ROUTES[i - 1].template, r.template, "{}", r.template);
            }
            if r.access.partner_scoped() {
                assert_eq!(names.first(), Some(&"{partnerId}"), "{}", r.template);
            }
        }
    }

    #[test]
    fn unknown_and_wrong_method() {
        assert_eq!(
            route(&Method::GET, "/nope").unwrap_err().status,
            http::StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::GET, "/v1/ota/partners/p/zzz")
                .unwrap_err()
                .status,
            http::StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/ota/partners/p/pool")
                .unwrap_err()
                .status,
            http::StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            route(&Method::GET, "/v1/ota/partners/p/pool/types/%zz")
                .unwrap_err()
                .trace,
            "bad_path"
        );
        assert_eq!(
            route(&Method::GET, "/v1/ota/partners/%ff/pool")
                .unwrap_err()
                .trace,
            "bad_path"
        );
        assert_eq!(
            route(&Method::GET, "/v1/ota/partners/p/pool/%")
                .unwrap_err()
                .trace,
            "bad_path"
        );
        // Found by the query_paging fuzz target: "%+7" decoded to byte 7.
        assert_eq!(
            route(&Method::GET, "/v1/ota/partners/p/pool/types/%+3")
                .unwrap_err()
                .trace,
            "bad_path"
        );
    }
}
