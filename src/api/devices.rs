//! Handlers for devices: registration with a one-time token, bulk import (CSV or NDJSON in,
//! `deviceId,token` CSV out, all or nothing), list with filters, get, delete, token rotation.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::body::{full, json_response, read_limited, status_only};
use super::errors::ApiError;
use super::extract::{Fields, path_number, path_type, query_form};
use super::{Answer, App, Ctx, render};
use crate::secrets::{new_secret, token_hash};
use crate::store::{DeviceFilter, ImportRow};

pub async fn register(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let device_id = f.req_str("deviceId")?;
    let device_type = f.req_str("deviceTypeId")?;
    let token = new_secret();
    let hash = token_hash(&token);
    let actor = ctx.principal.actor();
    let device = app
        .blocking(move |s| {
            Ok(s.register_device(&actor, &partner, &device_id, &device_type, hash)?)
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"deviceId": device.id, "deviceTypeId": device.device_type_id, "token": token}),
    ))
}

/// Parses an import body into (line, deviceId, deviceTypeId) rows; errors name the line.
pub fn parse_import(text: &str, ndjson: bool) -> Result<Vec<(usize, String, String)>, ApiError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad =
            |what: &str| ApiError::bad_request("bad_import_line", format!("line {n}: {what}"));
        if ndjson {
            let v: Value =
                serde_json::from_str(line).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            match (field("deviceId"), field("deviceTypeId")) {
                (Some(d), Some(t)) => rows.push((n, d, t)),
                _ => return Err(bad("deviceId and deviceTypeId (strings) are required")),
            }
        } else {
            let mut cols = line.split(',').map(|c| c.trim().trim_matches('"'));
            let (Some(d), Some(t), None) = (cols.next(), cols.next(), cols.next()) else {
                return Err(bad("expected deviceId,deviceTypeId"));
            };
            if rows.is_empty() && n == 1 && d.eq_ignore_ascii_case("deviceId") {
                continue;
            }
            rows.push((n, d.to_string(), t.to_string()));
        }
    }
    if rows.is_empty() {
        return Err(ApiError::bad_request(
            "empty_import",
            "the import holds no devices",
        ));
    }
    Ok(rows)
}

pub async fn import(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = read_limited(body, app.config.api.max_import_body, app.request_timeout()).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("bad_import", "the import is not UTF-8 text"))?;
    let ndjson = if content_type.starts_with("text/csv") {
        false
    } else if content_type.starts_with("application/x-ndjson") {
        true
    } else {
        text.trim_start().starts_with('{')
    };
    let parsed = parse_import(text, ndjson)?;
    let mut csv = String::with_capacity(parsed.len() * 64);
    csv.push_str("deviceId,token\n");
    let mut rows = Vec::with_capacity(parsed.len());
    for (line, device_id, device_type_id) in parsed {
        let token = new_secret();
        csv.push_str(&device_id);
        csv.push(',');
        csv.push_str(&token);
        csv.push('\n');
        rows.push(ImportRow {
            line,
            device_id,
            device_type_id,
            token_hash: token_hash(&token),
        });
    }
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.import_devices(&actor, &partner, rows, true)?))
        .await?;
    let mut resp = Response::new(full(csv));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    Ok(resp)
}

pub async fn list(app: &Arc<App>, ctx: &Ctx, partner: String) -> Answer {
    let mut filter = DeviceFilter::default();
    let mut window = super::paging::Window::default();
    let (mut fw_type, mut installed) = (None, None);
    for (k, v) in query_form(ctx.query.as_deref()) {
        match k.as_str() {
            "deviceTypeId" => filter.device_type_id = Some(v),
            "type" => fw_type = Some(path_type(&v)?),
            "installedVersion" => installed = Some(path_number(&v, "installedVersion")?),
            _ if window.take(&k, &v)? => {}
            _ => {}
        }
    }
    filter.installed = match (fw_type, installed) {
        (Some(t), Some(vn)) => Some((t, vn)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "bad_filter",
                "type and installedVersion go together",
            ));
        }
    };
    let devices = app
        .blocking(move |s| Ok(s.devices(&partner, &filter)?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &window.envelope(&devices, "deviceId: ASC", render::device),
    ))
}

pub async fn get(app: &Arc<App>, partner: String, device: String) -> Answer {
    let found = app
        .blocking(move |s| {
            let Some(d) = s.device(&device)?.filter(|d| d.partner_id == partner) else {
                return Ok(None);
            };
            let ddi = s.ddi_state(&d.id)?;
            Ok(Some((d, ddi)))
        })
        .await?;
    let (d, ddi) =
        found.ok_or_else(|| ApiError::not_found("unknown_device", "device not found"))?;
    Ok(json_response(
        StatusCode::OK,
        &render::with_ddi(render::device(&d), &d, &ddi),
    ))
}

pub async fn delete(app: &Arc<App>, ctx: &Ctx, partner: String, device: String) -> Answer {
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.delete_device(&actor, &partner, &device)?))
        .await?;
    app.auth.clear();
    Ok(status_only(StatusCode::NO_CONTENT))
}

pub async fn rotate_token(app: &Arc<App>, ctx: &Ctx, partner: String, device: String) -> Answer {
    let token = new_secret();
    let hash = token_hash(&token);
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.rotate_device_token(&actor, &partner, &device, hash)?))
        .await?;
    app.auth.clear();
    Ok(json_response(StatusCode::OK, &json!({ "token": token })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_formats() {
        let rows = parse_import("deviceId,deviceTypeId\n a ,t1\n\n\"b\",t2\n", false).unwrap();
        assert_eq!(
            rows,
            vec![(2, "a".into(), "t1".into()), (4, "b".into(), "t2".into())]
        );
        let rows = parse_import("{\"deviceId\":\"a\",\"deviceTypeId\":\"t\"}\n", true).unwrap();
        assert_eq!(rows, vec![(1, "a".into(), "t".into())]);
        let e = parse_import("a,t\nb\n", false).unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parse_import("{\"deviceId\":1}\n", true).unwrap_err();
        assert!(e.message.contains("line 1"));
        assert!(parse_import("deviceId,deviceTypeId\n", false).is_err());
    }
}
