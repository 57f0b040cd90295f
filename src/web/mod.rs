//! The OTA Manager web UI: static assets embedded in the binary (`assets/`, plain ES modules
//! and CSS, no build step) and the one function that serves them on the API listener, with
//! ETag revalidation and the security headers (a strict Content-Security-Policy without
//! inline script or style, no framing, no MIME sniffing).
//!
//! Not here: any data. The UI is a client of the HTTP API (`api/`) with the user's bearer
//! token; nothing on these paths needs or reads a token.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::body::{Body, empty, full};

/// One embedded file: its URL path, media type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// `/` serves `index.html`; the rest live under `/ui/`. A new file here needs a row.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/ui/style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/style.css"),
    },
    Asset {
        path: "/ui/favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("assets/favicon.svg"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/ui/api.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/api.js"),
    },
    Asset {
        path: "/ui/dom.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/dom.js"),
    },
    Asset {
        path: "/ui/types.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/types.js"),
    },
    Asset {
        path: "/ui/wizard.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/wizard.js"),
    },
    Asset {
        path: "/ui/images.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/images.js"),
    },
    Asset {
        path: "/ui/devices.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/devices.js"),
    },
    Asset {
        path: "/ui/rollouts.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/rollouts.js"),
    },
    Asset {
        path: "/ui/admin.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/admin.js"),
    },
    Asset {
        path: "/ui/versions.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/versions.js"),
    },
    Asset {
        path: "/ui/dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/dashboard.js"),
    },
    Asset {
        path: "/ui/audit.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/audit.js"),
    },
    Asset {
        path: "/ui/account.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/account.js"),
    },
    Asset {
        path: "/ui/signing.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/signing.js"),
    },
];

/// Scripts, styles, images and API calls only from this origin; no plugins, no `<base>`, no
/// framing. Inline script and style are refused, so injected markup cannot run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The ETag of each asset (BLAKE3 of its bytes), computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &blake3::hash(a.bytes).to_hex()[..32]))
            .collect()
    })
}

/// Answers a GET or HEAD of a UI path; `None` for everything else (the API routes it).
pub fn respond(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<Body>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let path = if path == "/index.html" { "/" } else { path };
    let index = ASSETS.iter().position(|a| a.path == path)?;
    let asset = ASSETS.get(index)?;
    let etag = etags().get(index)?;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if method == Method::HEAD {
        Response::new(empty())
    } else {
        Response::new(full(asset.bytes))
    };
    let h = resp.headers_mut();
    if !fresh {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Every file revalidates (a cheap 304): after an upgrade the browser never mixes
    // old and new modules.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_index_with_headers_and_revalidates() {
        let resp = respond(&Method::GET, "/", &HeaderMap::new()).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        let etag = h[header::ETAG].clone();
        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, etag);
        let again = respond(&Method::GET, "/", &req).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn only_get_and_head_of_known_paths() {
        assert!(respond(&Method::POST, "/", &HeaderMap::new()).is_none());
        assert!(respond(&Method::GET, "/ui/nope.js", &HeaderMap::new()).is_none());
        assert!(respond(&Method::GET, "/v1/me", &HeaderMap::new()).is_none());
        assert!(respond(&Method::HEAD, "/ui/app.js", &HeaderMap::new()).is_some());
    }

    #[test]
    fn every_module_import_is_embedded() {
        let paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.bytes);
            for piece in text.split("from \"./").skip(1) {
                let name = piece.split('"').next().unwrap_or_default();
                let path = format!("/ui/{name}");
                assert!(
                    paths.contains(&path.as_str()),
                    "{} imports {path}",
                    asset.path
                );
            }
            assert!(
                !text.contains("innerHTML") && !text.contains("eval("),
                "{} must build the DOM with textContent",
                asset.path
            );
        }
    }
}
