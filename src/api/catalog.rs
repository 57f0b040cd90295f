//! Handlers for firmware types, the firmware pool, device types, device-type firmware images
//! (associations, type 4, push) and tags.
//!
//! Each handler parses its inputs (400 on bad ones), calls the store off the reactor, and
//! renders the answer; rules live in the store and model.

use std::sync::Arc;

use http::{Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::body::{Body, json_response, status_only};
use super::errors::ApiError;
use super::extract::{Fields, path_number, path_type, path_version, query_form};
use super::paging::PageQuery;
use super::{Answer, App, Ctx, render};
use crate::model::{DEVICE_DESCRIPTION_TYPE, parse_hash_hex};
use crate::store::{NewDeviceDescription, NewRecord};

/// Resolves a record's `url`: empty = no binary; otherwise it must name a binary of this
/// partner as moveToRepository returned it (any base URL, so a changed public_base_url keeps
/// older URLs valid). Whether the partner really moved it is checked by the store.
pub fn binary_from_url(partner: &str, url: &str) -> Result<Option<([u8; 32], String)>, ApiError> {
    if url.is_empty() {
        return Ok(None);
    }
    let marker = format!("/v1/ota/partners/{partner}/binaries/");
    let sha = url
        .rfind(&marker)
        .map(|at| &url[at + marker.len()..])
        .and_then(parse_hash_hex)
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_binary",
                "url must be one that moveToRepository returned for this partner",
            )
        })?;
    Ok(Some((sha, url.to_string())))
}

fn created(value: &Value) -> Response<Body> {
    json_response(StatusCode::CREATED, value)
}

fn ok(value: &Value) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

pub async fn types(app: &Arc<App>, partner: String) -> Answer {
    let list = app.blocking(move |s| Ok(s.types(&partner)?)).await?;
    Ok(ok(&Value::Array(
        list.iter().map(render::fw_type).collect(),
    )))
}

pub async fn get_type(app: &Arc<App>, partner: String, raw: String) -> Answer {
    let t = path_type(&raw)?;
    let found = app.blocking(move |s| Ok(s.fw_type(&partner, t)?)).await?;
    let ft = found.ok_or_else(|| {
        ApiError::not_found("unknown_type", format!("firmware type {t} not found"))
    })?;
    Ok(ok(&json!([render::fw_type(&ft)])))
}

pub async fn create_type(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let fw_type = f.req_int("type")?;
    let (name, description) = f.name_description()?;
    let (actor, admin) = (ctx.principal.actor(), ctx.principal.is_admin());
    let ft = app
        .blocking(move |s| {
            Ok(s.create_type(&actor, admin, &partner, fw_type, &name, &description)?)
        })
        .await?;
    Ok(created(&render::fw_type(&ft)))
}

pub async fn update_type(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    raw: String,
    body: Incoming,
) -> Answer {
    let t = path_type(&raw)?;
    let f = Fields::read(app, body).await?;
    let (name, description) = f.name_description()?;
    let (actor, admin) = (ctx.principal.actor(), ctx.principal.is_admin());
    app.blocking(move |s| Ok(s.update_type(&actor, admin, &partner, t, &name, &description)?))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

pub async fn pool_list(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    raw_type: Option<String>,
) -> Answer {
    let query = PageQuery::parse(ctx.query.as_deref())?;
    let t = raw_type.as_deref().map(path_type).transpose()?;
    let records = app
        .blocking(move |s| Ok(s.pool_records(&partner, t)?))
        .await?;
    Ok(ok(&query.apply(records, render::pool_record)))
}

pub async fn pool_create(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let fw_type = f.req_int("type")?;
    let fields = f.record_fields()?;
    let url = f.opt_str("url")?.unwrap_or_default();
    let binary = binary_from_url(&partner, &url)?;
    let associations = f.associations(&partner, ctx.principal.is_admin())?;
    let actor = ctx.principal.actor();
    let record = app
        .blocking(move |s| {
            // A device type named under another partner's key must really be that partner's.
            for (owner, dt) in &associations {
                if s.device_type(owner, dt)?.is_none() {
                    return Err(ApiError::bad_request(
                        "unknown_device_type",
                        format!("device type {dt} of partner {owner} does not exist"),
                    ));
                }
            }
            Ok(s.create_pool_record(
                &actor,
                NewRecord {
                    partner_id: partner,
                    fw_type,
                    fields,
                    binary,
                    associations: associations.into_iter().map(|(_, dt)| dt).collect(),
                },
            )?)
        })
        .await?;
    Ok(created(&render::pool_record(&record)))
}

pub async fn pool_exists(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    raw_type: String,
    name: String,
    version: String,
) -> Answer {
    let t = path_type(&raw_type)?;
    let exclude = match query_form(ctx.query.as_deref())
        .into_iter()
        .find(|(k, _)| k == "excludeFirmwareImageId")
    {
        Some((_, v)) if !v.is_empty() => Some(path_number(&v, "excludeFirmwareImageId")?),
        _ => None,
    };
    let exists = app
        .blocking(move |s| Ok(s.version_exists(&partner, t, &name, &version, exclude)?))
        .await?;
    Ok(ok(&json!({ "value": exists })))
}

async fn find_pool_record(
    app: &Arc<App>,
    partner: String,
    raw_type: &str,
    raw_vn: &str,
) -> Result<crate::model::Record, ApiError> {
    let (t, vn) = path_version(raw_type, raw_vn)?;
    app.blocking(move |s| Ok(s.pool_record(&partner, t, vn)?))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_version_number",
                format!("no pool record of type {t} with version number {vn}"),
            )
        })
}

pub async fn pool_get(app: &Arc<App>, partner: String, raw_type: String, raw_vn: String) -> Answer {
    let record = find_pool_record(app, partner, &raw_type, &raw_vn).await?;
    let (record, artifact) = with_artifact(app, record).await?;
    Ok(ok(&render::with_artifact(
        render::pool_record(&record),
        artifact.as_ref(),
    )))
}

pub async fn pool_update(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    raw_type: String,
    raw_vn: String,
    body: Incoming,
) -> Answer {
    let (t, vn) = path_version(&raw_type, &raw_vn)?;
    let f = Fields::read(app, body).await?;
    let fields = f.record_fields()?;
    let url = f.req_str("url")?;
    let binary = binary_from_url(&partner, &url)?;
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.update_pool_record(&actor, &partner, t, vn, fields, binary)?))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

pub async fn pool_delete(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    raw_type: String,
    raw_vn: String,
) -> Answer {
    let (t, vn) = path_version(&raw_type, &raw_vn)?;
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.delete_pool_record(&actor, &partner, t, vn)?))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

pub async fn pool_associations(
    app: &Arc<App>,
    partner: String,
    raw_type: String,
    raw_vn: String,
) -> Answer {
    let record = find_pool_record(app, partner, &raw_type, &raw_vn).await?;
    let id = record.id;
    let list = app.blocking(move |s| Ok(s.associations_of(id)?)).await?;
    Ok(ok(&Value::Array(
        list.iter().map(render::association).collect(),
    )))
}

pub async fn tags(app: &Arc<App>, partner: String) -> Answer {
    let list = app.blocking(move |s| Ok(s.tags(&partner)?)).await?;
    Ok(ok(&json!(list)))
}

pub async fn device_types(app: &Arc<App>, partner: String) -> Answer {
    let list = app.blocking(move |s| Ok(s.device_types(&partner)?)).await?;
    Ok(ok(&Value::Array(
        list.iter().map(render::device_type).collect(),
    )))
}

pub async fn create_device_type(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    body: Incoming,
) -> Answer {
    let f = Fields::read(app, body).await?;
    let (name, description) = f.name_description()?;
    let actor = ctx.principal.actor();
    let dt = app
        .blocking(move |s| Ok(s.create_device_type(&actor, &partner, &name, &description)?))
        .await?;
    Ok(created(&render::device_type(&dt)))
}

async fn find_device_type(
    app: &Arc<App>,
    partner: String,
    dt: String,
) -> Result<crate::model::DeviceType, ApiError> {
    app.blocking(move |s| Ok(s.device_type(&partner, &dt)?))
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_device_type", "device type not found"))
}

pub async fn get_device_type(app: &Arc<App>, partner: String, dt: String) -> Answer {
    let d = find_device_type(app, partner, dt).await?;
    Ok(ok(&render::device_type(&d)))
}

pub async fn update_device_type(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    body: Incoming,
) -> Answer {
    let f = Fields::read(app, body).await?;
    let (name, description) = f.name_description()?;
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.update_device_type(&actor, &partner, &dt, &name, &description)?))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

pub async fn delete_device_type(app: &Arc<App>, ctx: &Ctx, partner: String, dt: String) -> Answer {
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.delete_device_type(&actor, &partner, &dt)?))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// The images of a device type that must exist (404 otherwise), of one firmware type or all.
async fn images_of(
    app: &Arc<App>,
    partner: String,
    dt: &str,
    t: Option<u16>,
) -> Result<Vec<crate::model::Record>, ApiError> {
    find_device_type(app, partner, dt.to_string()).await?;
    let id = dt.to_string();
    app.blocking(move |s| Ok(s.images(&id, t)?)).await
}

pub async fn images(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    raw_type: Option<String>,
) -> Answer {
    let query = PageQuery::parse(ctx.query.as_deref())?;
    let t = raw_type.as_deref().map(path_type).transpose()?;
    let records = images_of(app, partner, &dt, t).await?;
    Ok(ok(&query.apply(records, |r| render::image_record(r, &dt))))
}

pub async fn image_get(
    app: &Arc<App>,
    partner: String,
    dt: String,
    raw_type: String,
    raw_vn: String,
) -> Answer {
    let (t, vn) = path_version(&raw_type, &raw_vn)?;
    let records = images_of(app, partner, &dt, Some(t)).await?;
    let record = records
        .into_iter()
        .find(|r| r.version_number == vn)
        .ok_or_else(|| {
            ApiError::not_found(
                "not_associated",
                "this image is not associated with the device type",
            )
        })?;
    let (record, artifact) = with_artifact(app, record).await?;
    Ok(ok(&render::with_artifact(
        render::image_record(&record, &dt),
        artifact.as_ref(),
    )))
}

/// The record with its binary's filename and digests (computed now for older binaries).
async fn with_artifact(
    app: &Arc<App>,
    record: crate::model::Record,
) -> Result<(crate::model::Record, Option<crate::store::Artifact>), ApiError> {
    app.blocking(move |s| {
        let artifact = s.artifact(&record)?;
        Ok((record, artifact))
    })
    .await
}

/// `POST .../firmwareImages`: associates a pool record (matched on type + versionNumber), or
/// creates a type-4 record under the device type.
pub async fn image_create(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    body: Incoming,
) -> Answer {
    let f = Fields::read(app, body).await?;
    let fw_type = f.req_int("type")?;
    let actor = ctx.principal.actor();
    if fw_type == i64::from(DEVICE_DESCRIPTION_TYPE) {
        let fields = f.record_fields()?;
        let url = f.req_str("url")?;
        let binary = binary_from_url(&partner, &url)?.ok_or_else(|| {
            ApiError::bad_request(
                "missing_binary",
                "a device description needs a url (upload the binary first)",
            )
        })?;
        let new = NewDeviceDescription {
            partner_id: partner,
            device_type_id: dt.clone(),
            fields,
            binary,
            device_description_id: f.opt_str("deviceDescriptionId")?,
            device_profile_id: f.opt_str("deviceProfileId")?,
        };
        let record = app
            .blocking(move |s| Ok(s.create_device_description(&actor, new)?))
            .await?;
        return Ok(created(&render::image_record(&record, &dt)));
    }
    let t = u16::try_from(fw_type).map_err(|_| {
        ApiError::bad_request("type_out_of_range", "firmware type is outside 1-200")
    })?;
    let vn = f
        .opt_id("versionNumber")?
        .ok_or_else(|| ApiError::bad_request("missing_field", "versionNumber is required"))?;
    let admin = ctx.principal.is_admin();
    let id = dt.clone();
    let record = app
        .blocking(move |s| {
            // An admin may associate another partner's platform-type pool record: find its owner.
            let owner = if admin && s.pool_record(&partner, t, vn)?.is_none() {
                s.platform_record(t, vn)?
                    .map(|r| r.partner_id)
                    .unwrap_or_else(|| partner.clone())
            } else {
                partner.clone()
            };
            Ok(s.associate(&actor, &owner, &partner, &id, t, vn)?)
        })
        .await?;
    Ok(created(&render::image_record(&record, &dt)))
}

pub async fn image_delete(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    raw_type: String,
    raw_vn: String,
) -> Answer {
    let (t, vn) = path_version(&raw_type, &raw_vn)?;
    let actor = ctx.principal.actor();
    app.blocking(move |s| Ok(s.dissociate(&actor, &partner, &dt, t, vn)?))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

pub async fn push(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    raw_image: String,
    body: Incoming,
) -> Answer {
    let image = path_number(&raw_image, "firmwareImageId")?;
    let f = Fields::read(app, body).await?;
    if let Some(list) = f.values("values")? {
        return push_many(app, ctx, partner, dt, image, list).await;
    }
    let device = f.req_str("value")?;
    let actor = ctx.principal.actor();
    let d = device.clone();
    let record = app
        .blocking(move |s| Ok(s.push(&actor, &partner, &dt, image, &d)?))
        .await?;
    app.devices.notify_push(&device);
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"deviceId": device, "firmwareImageId": record.id.to_string(), "state": "pending"}),
    ))
}

/// The extension of the push call: `{"values": [deviceId, …]}` (at most
/// `api.push_batch_max`) in one transaction; 202 with the devices pushed and, for each one
/// refused, its reason.
async fn push_many(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    image: u64,
    devices: Vec<String>,
) -> Answer {
    let max = app.config.api.push_batch_max;
    if devices.is_empty() || devices.len() > max {
        return Err(ApiError::bad_request(
            "bad_device_list",
            format!("values must hold 1-{max} device ids"),
        ));
    }
    let actor = ctx.principal.actor();
    let asked = devices.clone();
    let (record, refused) = app
        .blocking(move |s| Ok(s.push_many(&actor, &partner, &dt, image, devices)?))
        .await?;
    let refused: Vec<(String, ApiError)> = refused
        .into_iter()
        .map(|(id, e)| (id, ApiError::from(e)))
        .collect();
    let pushed: Vec<&String> = asked
        .iter()
        .filter(|id| !refused.iter().any(|(r, _)| r == *id))
        .collect();
    for id in &pushed {
        app.devices.notify_push(id);
    }
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({
            "firmwareImageId": record.id.to_string(),
            "state": "pending",
            "pushed": pushed,
            "refused": refused.iter().map(|(id, e)| json!({
                "deviceId": id, "trace": e.trace, "message": e.message,
            })).collect::<Vec<_>>(),
        }),
    ))
}
