//! The path → route table of the HTTP API: every endpoint, its method and its path template
//! (used in logs and metrics). Pure: takes the method and raw path, returns the route with its
//! decoded path parameters, 404 for no route, 405 for a known path with another method.

use http::Method;

use super::errors::ApiError;

/// One endpoint with its path parameters (percent-decoded, not otherwise validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    OauthToken,
    OauthRevoke,
    AdminPartners,
    AdminPartnersCreate,
    AdminPartnerSecret {
        partner: String,
    },
    AdminUsersCreate {
        partner: String,
    },
    AdminUsersList {
        partner: String,
    },
    AdminUserDelete {
        partner: String,
        username: String,
    },
    AdminAudit,
    AdminBackup,
    /// The caller of the token (extension for the web UI).
    Me,
    TypesList {
        partner: String,
    },
    TypesCreate {
        partner: String,
    },
    TypeGet {
        partner: String,
        fw_type: String,
    },
    TypeUpdate {
        partner: String,
        fw_type: String,
    },
    BinaryUpload {
        partner: String,
    },
    BinaryMove {
        partner: String,
    },
    BinaryDownload {
        partner: String,
        sha: String,
        head: bool,
    },
    PoolList {
        partner: String,
        fw_type: Option<String>,
    },
    PoolCreate {
        partner: String,
    },
    PoolExists {
        partner: String,
        fw_type: String,
        name: String,
        version: String,
    },
    PoolGet {
        partner: String,
        fw_type: String,
        vn: String,
    },
    PoolUpdate {
        partner: String,
        fw_type: String,
        vn: String,
    },
    PoolDelete {
        partner: String,
        fw_type: String,
        vn: String,
    },
    PoolAssociations {
        partner: String,
        fw_type: String,
        vn: String,
    },
    Tags {
        partner: String,
    },
    DeviceTypesList {
        partner: String,
    },
    DeviceTypesCreate {
        partner: String,
    },
    DeviceTypeGet {
        partner: String,
        dt: String,
    },
    DeviceTypeUpdate {
        partner: String,
        dt: String,
    },
    DeviceTypeDelete {
        partner: String,
        dt: String,
    },
    ImagesList {
        partner: String,
        dt: String,
        fw_type: Option<String>,
    },
    ImageCreate {
        partner: String,
        dt: String,
    },
    ImageGet {
        partner: String,
        dt: String,
        fw_type: String,
        vn: String,
    },
    ImageDelete {
        partner: String,
        dt: String,
        fw_type: String,
        vn: String,
    },
    ImagePush {
        partner: String,
        dt: String,
        image: String,
    },
    DevicesList {
        partner: String,
    },
    DeviceRegister {
        partner: String,
    },
    DevicesImport {
        partner: String,
    },
    DeviceGet {
        partner: String,
        device: String,
    },
    DeviceDelete {
        partner: String,
        device: String,
    },
    DeviceToken {
        partner: String,
        device: String,
    },
}

impl Route {
    /// The partner id in the path, for partner-scoped routes.
    pub fn partner(&self) -> Option<&str> {
        use Route::*;
        match self {
            TypesList { partner }
            | TypesCreate { partner }
            | TypeGet { partner, .. }
            | TypeUpdate { partner, .. }
            | BinaryUpload { partner }
            | BinaryMove { partner }
            | BinaryDownload { partner, .. }
            | PoolList { partner, .. }
            | PoolCreate { partner }
            | PoolExists { partner, .. }
            | PoolGet { partner, .. }
            | PoolUpdate { partner, .. }
            | PoolDelete { partner, .. }
            | PoolAssociations { partner, .. }
            | Tags { partner }
            | DeviceTypesList { partner }
            | DeviceTypesCreate { partner }
            | DeviceTypeGet { partner, .. }
            | DeviceTypeUpdate { partner, .. }
            | DeviceTypeDelete { partner, .. }
            | ImagesList { partner, .. }
            | ImageCreate { partner, .. }
            | ImageGet { partner, .. }
            | ImageDelete { partner, .. }
            | ImagePush { partner, .. }
            | DevicesList { partner }
            | DeviceRegister { partner }
            | DevicesImport { partner }
            | DeviceGet { partner, .. }
            | DeviceDelete { partner, .. }
            | DeviceToken { partner, .. } => Some(partner),
            _ => None,
        }
    }
}

/// Percent-decodes one path segment (`+` stays literal); the result must be UTF-8.
pub fn decode_segment(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            // Two hex digits exactly: from_str_radix alone also takes "+7".
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("bad_path", "malformed percent-encoding in the path")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("bad_path", "the path is not valid UTF-8"))
}

/// Matches a request to a route. Returns the route and its path template.
pub fn route(method: &Method, path: &str) -> Result<(Route, &'static str), ApiError> {
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut segs = Vec::with_capacity(raw.len());
    for s in &raw {
        segs.push(decode_segment(s)?);
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method;
    let get = *m == Method::GET || *m == Method::HEAD;
    let post = *m == Method::POST;
    let delete = *m == Method::DELETE;
    let own = |x: &str| x.to_string();
    macro_rules! pick {
        ($tpl:literal, $($cond:expr => $route:expr),+ $(,)?) => {{
            $( if $cond { return Ok(($route, $tpl)); } )+
            return Err(method_not_allowed(path));
        }};
    }
    match s.as_slice() {
        ["healthz"] => pick!("/healthz", get => Route::Health),
        ["metrics"] => pick!("/metrics", get => Route::Metrics),
        ["oauth", "token"] => pick!("/oauth/token", post => Route::OauthToken),
        ["oauth", "revoke"] => pick!("/oauth/revoke", post => Route::OauthRevoke),
        ["v1", "admin", "partners"] => pick!("/v1/admin/partners",
            get => Route::AdminPartners, post => Route::AdminPartnersCreate),
        ["v1", "admin", "partners", p, "secret"] => pick!("/v1/admin/partners/{partnerId}/secret",
            post => Route::AdminPartnerSecret { partner: own(p) }),
        ["v1", "admin", "partners", p, "users"] => pick!("/v1/admin/partners/{partnerId}/users",
            post => Route::AdminUsersCreate { partner: own(p) },
            get => Route::AdminUsersList { partner: own(p) }),
        ["v1", "admin", "partners", p, "users", u] => {
            pick!("/v1/admin/partners/{partnerId}/users/{username}",
            delete => Route::AdminUserDelete { partner: own(p), username: own(u) })
        }
        ["v1", "admin", "audit"] => pick!("/v1/admin/audit", get => Route::AdminAudit),
        ["v1", "admin", "backup"] => pick!("/v1/admin/backup", get => Route::AdminBackup),
        ["v1", "me"] => pick!("/v1/me", get => Route::Me),
        ["v1", "ota", "partners", p, rest @ ..] => partner_route(m, path, p, rest),
        _ => Err(ApiError::not_found(
            "no_route",
            format!("no such endpoint: {path}"),
        )),
    }
}

fn partner_route(
    m: &Method,
    path: &str,
    p: &str,
    rest: &[&str],
) -> Result<(Route, &'static str), ApiError> {
    let get = *m == Method::GET;
    let head = *m == Method::HEAD;
    let post = *m == Method::POST;
    let put = *m == Method::PUT;
    let delete = *m == Method::DELETE;
    let partner = p.to_string();
    let own = |x: &str| x.to_string();
    macro_rules! pick {
        ($tpl:literal, $($cond:expr => $route:expr),+ $(,)?) => {{
            $( if $cond { return Ok(($route, concat!("/v1/ota/partners/{partnerId}", $tpl))); } )+
            return Err(method_not_allowed(path));
        }};
    }
    match rest {
        ["types"] => pick!("/types",
            get => Route::TypesList { partner },
            post => Route::TypesCreate { partner }),
        ["types", t] => pick!("/types/{type}",
            get => Route::TypeGet { partner: partner.clone(), fw_type: own(t) },
            put => Route::TypeUpdate { partner, fw_type: own(t) }),
        ["binaries"] => pick!("/binaries", post => Route::BinaryUpload { partner }),
        ["binaries", "moveToRepository"] => pick!("/binaries/moveToRepository",
            post => Route::BinaryMove { partner }),
        ["binaries", sha] => pick!("/binaries/{sha256}",
            get || head => Route::BinaryDownload { partner, sha: own(sha), head }),
        ["pool"] => pick!("/pool",
            get => Route::PoolList { partner: partner.clone(), fw_type: None },
            post => Route::PoolCreate { partner }),
        ["pool", "types", t] => pick!("/pool/types/{type}",
            get => Route::PoolList { partner, fw_type: Some(own(t)) }),
        ["pool", "types", t, "names", n, "versions", v, "exists"] => pick!(
            "/pool/types/{type}/names/{name}/versions/{version}/exists",
            get => Route::PoolExists { partner, fw_type: own(t), name: own(n), version: own(v) }),
        ["pool", "types", t, "versionNumbers", vn] => {
            pick!("/pool/types/{type}/versionNumbers/{versionNumber}",
            get => Route::PoolGet { partner: partner.clone(), fw_type: own(t), vn: own(vn) },
            put => Route::PoolUpdate { partner: partner.clone(), fw_type: own(t), vn: own(vn) },
            delete => Route::PoolDelete { partner, fw_type: own(t), vn: own(vn) })
        }
        ["pool", "types", t, "versionNumbers", vn, "associations"] => pick!(
            "/pool/types/{type}/versionNumbers/{versionNumber}/associations",
            get => Route::PoolAssociations { partner, fw_type: own(t), vn: own(vn) }),
        ["tags"] => pick!("/tags", get => Route::Tags { partner }),
        ["deviceTypes"] => pick!("/deviceTypes",
            get => Route::DeviceTypesList { partner: partner.clone() },
            post => Route::DeviceTypesCreate { partner }),
        ["deviceTypes", dt] => pick!("/deviceTypes/{deviceTypeId}",
            get => Route::DeviceTypeGet { partner: partner.clone(), dt: own(dt) },
            put => Route::DeviceTypeUpdate { partner: partner.clone(), dt: own(dt) },
            delete => Route::DeviceTypeDelete { partner, dt: own(dt) }),
        ["deviceTypes", dt, "firmwareImages"] => {
            pick!("/deviceTypes/{deviceTypeId}/firmwareImages",
            get => Route::ImagesList { partner: partner.clone(), dt: own(dt), fw_type: None },
            post => Route::ImageCreate { partner, dt: own(dt) })
        }
        ["deviceTypes", dt, "firmwareImages", "types", t] => pick!(
            "/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}",
            get => Route::ImagesList { partner, dt: own(dt), fw_type: Some(own(t)) }),
        [
            "deviceTypes",
            dt,
            "firmwareImages",
            "types",
            t,
            "versionNumbers",
            vn,
        ] => pick!(
            "/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}/versionNumbers/{versionNumber}",
            get => Route::ImageGet { partner: partner.clone(), dt: own(dt), fw_type: own(t), vn: own(vn) },
            delete => Route::ImageDelete { partner, dt: own(dt), fw_type: own(t), vn: own(vn) }),
        ["deviceTypes", dt, "firmwareImages", id, "push"] => pick!(
            "/deviceTypes/{deviceTypeId}/firmwareImages/{firmwareImageId}/push",
            put => Route::ImagePush { partner, dt: own(dt), image: own(id) }),
        ["devices"] => pick!("/devices",
            get => Route::DevicesList { partner: partner.clone() },
            post => Route::DeviceRegister { partner }),
        ["devices", "import"] => pick!("/devices/import", post => Route::DevicesImport { partner }),
        ["devices", d] => pick!("/devices/{deviceId}",
            get => Route::DeviceGet { partner: partner.clone(), device: own(d) },
            delete => Route::DeviceDelete { partner, device: own(d) }),
        ["devices", d, "token"] => pick!("/devices/{deviceId}/token",
            post => Route::DeviceToken { partner, device: own(d) }),
        _ => Err(ApiError::not_found(
            "no_route",
            format!("no such endpoint: {path}"),
        )),
    }
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

    #[test]
    fn routes_and_templates() {
        let (r, t) = route(
            &Method::GET,
            "/v1/ota/partners/p1/pool/types/3/versionNumbers/17",
        )
        .unwrap();
        assert_eq!(
            r,
            Route::PoolGet {
                partner: "p1".into(),
                fw_type: "3".into(),
                vn: "17".into()
            }
        );
        assert_eq!(
            t,
            "/v1/ota/partners/{partnerId}/pool/types/{type}/versionNumbers/{versionNumber}"
        );
        let (r, _) = route(
            &Method::GET,
            "/v1/ota/partners/p/pool/types/3/names/a%20b+c/versions/1.0%2B7/exists",
        )
        .unwrap();
        assert_eq!(
            r,
            Route::PoolExists {
                partner: "p".into(),
                fw_type: "3".into(),
                name: "a b+c".into(),
                version: "1.0+7".into()
            }
        );
        let (r, _) = route(&Method::HEAD, "/v1/ota/partners/p/binaries/abc").unwrap();
        assert_eq!(
            r,
            Route::BinaryDownload {
                partner: "p".into(),
                sha: "abc".into(),
                head: true
            }
        );
        assert_eq!(r.partner(), Some("p"));
        let (r, _) = route(
            &Method::POST,
            "/v1/ota/partners/p/binaries/moveToRepository",
        )
        .unwrap();
        assert_eq!(
            r,
            Route::BinaryMove {
                partner: "p".into()
            }
        );
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
