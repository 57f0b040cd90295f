//! Handlers for devices: registration with a one-time token, bulk import (CSV or NDJSON in,
//! `deviceId,token` CSV out, all or nothing), list with filters, get, update of tags and
//! attributes, delete, token rotation. Version numbers go out with their record's version
//! string and name. Not here: the fleet summary (`fleet.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::body::{full, json_response, read_limited, status_only};
use super::errors::ApiError;
use super::extract::{Fields, attributes_of, path_number, path_type, query_form};
use super::{Answer, App, Ctx, render};
use crate::model::{Device, DeviceLabels};
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

/// One device line of an import body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    /// Line number in the body (from 1), for errors.
    pub line: usize,
    pub device_id: String,
    pub device_type_id: String,
    pub labels: DeviceLabels,
}

/// Parses an import body into device lines; errors name the line. CSV lines are
/// `deviceId,deviceTypeId[,tags[,attributes]]`, tags separated by `;`, attributes as
/// `key=value` separated by `;` (a header line naming `deviceId` first is skipped); NDJSON
/// lines are objects with `deviceId`, `deviceTypeId` and optional `tags` (array of strings)
/// and `attributes` (object of strings). Label bounds are the store's to check.
pub fn parse_import(text: &str, ndjson: bool) -> Result<Vec<ImportLine>, ApiError> {
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
            let (Some(device_id), Some(device_type_id)) =
                (field("deviceId"), field("deviceTypeId"))
            else {
                return Err(bad("deviceId and deviceTypeId (strings) are required"));
            };
            let tags = match v.get("tags") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("tags must be an array of strings"))?,
                Some(_) => return Err(bad("tags must be an array of strings")),
            };
            let attributes = match v.get("attributes") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(a) => attributes_of(a).map_err(|e| bad(&e.message))?,
            };
            rows.push(ImportLine {
                line: n,
                device_id,
                device_type_id,
                labels: DeviceLabels { tags, attributes },
            });
        } else {
            let mut cols = line.split(',').map(|c| c.trim().trim_matches('"'));
            let (Some(d), Some(t)) = (cols.next(), cols.next()) else {
                return Err(bad("expected deviceId,deviceTypeId[,tags[,attributes]]"));
            };
            let (tags, attributes) = (cols.next().unwrap_or(""), cols.next().unwrap_or(""));
            if cols.next().is_some() {
                return Err(bad("expected deviceId,deviceTypeId[,tags[,attributes]]"));
            }
            if rows.is_empty() && n == 1 && d.eq_ignore_ascii_case("deviceId") {
                continue;
            }
            let tags = tags
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            let mut map = BTreeMap::new();
            for pair in attributes
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(bad("attributes must be key=value pairs separated by ;"));
                };
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
            rows.push(ImportLine {
                line: n,
                device_id: d.to_string(),
                device_type_id: t.to_string(),
                labels: DeviceLabels {
                    tags,
                    attributes: map,
                },
            });
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
    for ImportLine {
        line,
        device_id,
        device_type_id,
        labels,
    } in parsed
    {
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
            labels,
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
    let (mut fw_type, mut installed, mut installed_string) = (None, None, None);
    for (k, v) in query_form(ctx.query.as_deref()) {
        match k.as_str() {
            "deviceTypeId" => filter.device_type_id = Some(v),
            "type" => fw_type = Some(path_type(&v)?),
            "installedVersion" => installed = Some(path_number(&v, "installedVersion")?),
            "installedVersionString" => installed_string = Some(v),
            "search" => filter.id_contains = Some(v).filter(|v| !v.is_empty()),
            "tags" => filter.tags.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            ),
            "attribute" => {
                let Some((key, value)) = v.split_once('=') else {
                    return Err(ApiError::bad_request(
                        "bad_filter",
                        "attribute must be key=value",
                    ));
                };
                filter.attributes.insert(key.to_string(), value.to_string());
            }
            _ if window.take(&k, &v)? => {}
            _ => {}
        }
    }
    let by_string = match (fw_type, installed, installed_string) {
        (Some(t), Some(vn), None) => {
            filter.installed = Some((t, vn));
            None
        }
        (Some(t), None, Some(version)) => Some((t, version)),
        (None, None, None) => None,
        (_, Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "bad_filter",
                "give installedVersion or installedVersionString, not both",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "bad_filter",
                "type goes with installedVersion or installedVersionString",
            ));
        }
    };
    let (devices, labels, pushed) = app
        .blocking(move |s| {
            if let Some((t, version)) = by_string {
                filter.installed_among = Some((t, s.version_numbers_of(&partner, t, &version)?));
            }
            let devices = s.labelled_devices(&partner, &filter)?;
            let shown = || {
                devices
                    .iter()
                    .skip(window.first())
                    .take(window.size)
                    .map(|(d, _)| d)
            };
            let pushed = s.pushed_numbers(shown().flat_map(|d| d.pushes.values().copied()))?;
            let labels = s.version_labels(&partner, shown().flat_map(|d| versions(d, &pushed)))?;
            Ok((devices, labels, pushed))
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &window.envelope(&devices, "deviceId: ASC", |(d, marks)| {
            render::device(d, &labels, &pushed, marks)
        }),
    ))
}

pub async fn get(app: &Arc<App>, partner: String, device: String) -> Answer {
    let (d, labels, pushed, marks, ddi) = app
        .blocking(move |s| {
            let d = s
                .device(&device)?
                .filter(|d| d.partner_id == partner)
                .ok_or_else(|| ApiError::not_found("unknown_device", "device not found"))?;
            let marks = s.device_labels(&device)?;
            let pushed = s.pushed_numbers(d.pushes.values().copied())?;
            let labels = s.version_labels(&partner, versions(&d, &pushed))?;
            let ddi = s.ddi_state(&device)?;
            Ok((d, labels, pushed, marks, ddi))
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &render::with_ddi(render::device(&d, &labels, &pushed, &marks), &d, &ddi),
    ))
}

/// PUT a device: replaces its `tags` and/or `attributes` (a field left out stays).
pub async fn update(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    device: String,
    body: Incoming,
) -> Answer {
    let f = Fields::read(app, body).await?;
    let tags = f.has("tags").then(|| f.tags()).transpose()?;
    let attributes = f.attributes()?;
    if tags.is_none() && attributes.is_none() {
        return Err(ApiError::bad_request(
            "missing_field",
            "give tags, attributes or both",
        ));
    }
    let actor = ctx.principal.actor();
    let (d, labels, pushed, marks) = app
        .blocking(move |s| {
            let (d, marks) = s.set_device_labels(&actor, &partner, &device, tags, attributes)?;
            let pushed = s.pushed_numbers(d.pushes.values().copied())?;
            let labels = s.version_labels(&partner, versions(&d, &pushed))?;
            Ok((d, labels, pushed, marks))
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &render::device(&d, &labels, &pushed, &marks),
    ))
}

/// The (type, version number) pairs a device's JSON names, pushes included.
fn versions<'a>(
    d: &'a Device,
    pushed: &'a BTreeMap<u64, u64>,
) -> impl Iterator<Item = (u16, u64)> + 'a {
    let pushes = d
        .pushes
        .iter()
        .filter_map(|(&t, id)| pushed.get(id).map(|&vn| (t, vn)));
    render::device_versions(d).chain(pushes)
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

    fn ids(rows: &[ImportLine]) -> Vec<(usize, &str, &str)> {
        rows.iter()
            .map(|r| (r.line, r.device_id.as_str(), r.device_type_id.as_str()))
            .collect()
    }

    #[test]
    fn import_formats() {
        let rows = parse_import("deviceId,deviceTypeId\n a ,t1\n\n\"b\",t2\n", false).unwrap();
        assert_eq!(ids(&rows), vec![(2, "a", "t1"), (4, "b", "t2")]);
        assert!(rows.iter().all(|r| r.labels.is_empty()));
        let rows = parse_import("{\"deviceId\":\"a\",\"deviceTypeId\":\"t\"}\n", true).unwrap();
        assert_eq!(ids(&rows), vec![(1, "a", "t")]);
        let e = parse_import("a,t\nb\n", false).unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parse_import("{\"deviceId\":1}\n", true).unwrap_err();
        assert!(e.message.contains("line 1"));
        assert!(parse_import("deviceId,deviceTypeId\n", false).is_err());
    }

    #[test]
    fn import_labels() {
        let rows = parse_import("a,t,beta;eu , hw=rev2;region=eu-west\nb,t,,k=\n", false).unwrap();
        assert_eq!(rows[0].labels.tags, vec!["beta", "eu"]);
        assert_eq!(
            rows[0].labels.attributes.get("region").map(String::as_str),
            Some("eu-west")
        );
        assert!(rows[1].labels.tags.is_empty());
        assert_eq!(
            rows[1].labels.attributes.get("k").map(String::as_str),
            Some("")
        );
        let e = parse_import("a,t,x,novalue\n", false).unwrap_err();
        assert!(e.message.contains("line 1"), "{}", e.message);
        assert!(parse_import("a,t,x,k=v,extra\n", false).is_err());
        let rows = parse_import(
            "{\"deviceId\":\"a\",\"deviceTypeId\":\"t\",\"tags\":[\"x\"],\"attributes\":{\"k\":\"v\"}}\n",
            true,
        )
        .unwrap();
        assert_eq!(rows[0].labels.tags, vec!["x"]);
        for bad in [
            "{\"deviceId\":\"a\",\"deviceTypeId\":\"t\",\"tags\":\"x\"}",
            "{\"deviceId\":\"a\",\"deviceTypeId\":\"t\",\"tags\":[1]}",
            "{\"deviceId\":\"a\",\"deviceTypeId\":\"t\",\"attributes\":{\"k\":1}}",
        ] {
            let e = parse_import(bad, true).unwrap_err();
            assert!(e.message.contains("line 1"), "{}", e.message);
        }
    }
}
