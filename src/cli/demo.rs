//! `otad demo`: sample data on a running server, through the API, for a first look: the
//! partner "Demo Kettles", firmware types 101 (MCU_MAIN) and 102 (WIFI), the device type
//! "Demo Kettle", one firmware image of each type (files it writes, then uploads and
//! associates with the device type) and a few devices, whose tokens go to a 0600 CSV that
//! `otad device check|download|simulate` read.
//!
//! Running it again finds what exists by name or number and creates only what is missing;
//! devices already registered keep the tokens the CSV holds (a device the CSV does not list
//! gets a new token), so the CSV always works. Not here: the commands it stands in for
//! (`partners.rs`, `types.rs`, `images.rs`, `devices.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{CliError, Context, Result};
use super::images::send_binary;
use super::output::{fields, items, text};
use super::session::Ctx;
use crate::client::http::{HttpError, seg};
use crate::datadir::write_private_file;

const PARTNER_NAME: &str = "Demo Kettles";
const PARTNER_EMAIL: &str = "demo@kettles.example";
const DEVICE_TYPE_NAME: &str = "Demo Kettle";

/// (firmware type, type name, image name, version, size in bytes)
const IMAGES: [(u16, &str, &str, &str, usize); 2] = [
    (101, "MCU_MAIN", "main", "1.0.0", 256 * 1024),
    (102, "WIFI", "wifi", "1.0.0", 64 * 1024),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for what the demo writes: the firmware files, partner.json (the partner's
    /// client secret, 0600, first run only) and devices.csv (device tokens, 0600).
    #[arg(long, value_name = "DIR", default_value = "otad-demo")]
    out: PathBuf,
    /// How many devices to register (demo-kettle-0001 …).
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    devices: u16,
}

fn missing(e: &HttpError) -> bool {
    matches!(e, HttpError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
}

/// Deterministic firmware-like bytes, so every run writes the same files.
fn firmware_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes)
        .map_err(|e| CliError::fail(format!("cannot write {}: {e}", path.display())))
}

/// The partner's id: found by name, or created (its secret goes to `partner.json`).
fn partner(ctx: &mut Ctx, out: &Path) -> Result<(String, bool)> {
    let list = ctx
        .client
        .get("/v1/admin/partners")
        .map_err(|e| e.context("the demo needs an appliance admin's login"))?;
    if let Some(p) = items(&list)
        .iter()
        .find(|p| text(p, "name") == PARTNER_NAME)
    {
        return Ok((text(p, "partnerId"), false));
    }
    let p = ctx
        .client
        .json(
            Method::POST,
            "/v1/admin/partners",
            Some(&json!({ "name": PARTNER_NAME, "email": PARTNER_EMAIL })),
        )
        .map_err(|e| e.context(&format!("cannot create partner {PARTNER_NAME:?}")))?;
    let id = text(&p, "partnerId");
    let doc = serde_json::to_vec_pretty(&p).map_err(|e| CliError::fail(e.to_string()))?;
    let path = out.join("partner.json");
    write_private_file(&path, &doc).map_err(|e| {
        CliError::fail(format!(
            "partner {id} created, but {} cannot be written ({e}); issue a new secret with `otad partner rotate-secret {id}`",
            path.display()
        ))
    })?;
    Ok((id, true))
}

fn fw_type(ctx: &mut Ctx, base: &str, number: u16, name: &str) -> Result<bool> {
    match ctx.client.get(&format!("{base}/types/{number}")) {
        Ok(_) => Ok(false),
        Err(e) if missing(&e) => {
            ctx.client
                .json(
                    Method::POST,
                    &format!("{base}/types"),
                    Some(&json!({ "type": number, "name": name, "description": "demo" })),
                )
                .map_err(|e| e.context(&format!("cannot create type {number}")))?;
            Ok(true)
        }
        Err(e) => Err(e.context(&format!("type {number}"))),
    }
}

fn device_type(ctx: &mut Ctx, base: &str) -> Result<String> {
    let list = ctx.client.get(&format!("{base}/deviceTypes"))?;
    if let Some(d) = items(&list)
        .iter()
        .find(|d| text(d, "name") == DEVICE_TYPE_NAME)
    {
        return Ok(text(d, "id"));
    }
    let d = ctx
        .client
        .json(
            Method::POST,
            &format!("{base}/deviceTypes"),
            Some(&json!({ "name": DEVICE_TYPE_NAME, "description": "demo" })),
        )
        .map_err(|e| e.context(&format!("cannot create device type {DEVICE_TYPE_NAME:?}")))?;
    Ok(text(&d, "id"))
}

/// Writes the image's file and, unless the record exists, uploads and associates it.
/// Returns (file, created).
fn image(
    ctx: &mut Ctx,
    base: &str,
    dt: &str,
    (t, _, name, version, size): (u16, &str, &str, &str, usize),
    out: &Path,
) -> Result<(PathBuf, bool)> {
    let file = out.join(format!("kettle-{name}-{version}.bin"));
    write_file(&file, &firmware_bytes(size, u64::from(t)))?;
    let exists = ctx.client.get(&format!(
        "{base}/pool/types/{t}/names/{}/versions/{}/exists",
        seg(name),
        seg(version)
    ))?;
    if exists.get("value").and_then(Value::as_bool) == Some(true) {
        return Ok((file, false));
    }
    let (_, url) = send_binary(ctx, base, &file)?;
    let partner = ctx.partner()?.to_string();
    let body = json!({
        "name": name, "type": t, "version": version, "url": url, "tags": ["demo"],
        "associations": { partner: [dt] },
    });
    ctx.client
        .json(Method::POST, &format!("{base}/pool"), Some(&body))
        .map_err(|e| e.context(&format!("cannot create image {name} {version}")))?;
    Ok((file, true))
}

/// Registers the devices the server lacks; returns every device's token (kept from
/// `devices.csv` where it lists one, else new) and how many were registered now.
fn devices(
    ctx: &mut Ctx,
    base: &str,
    dt: &str,
    n: u16,
    csv: &Path,
) -> Result<(Vec<(String, String)>, usize)> {
    let known: BTreeMap<String, String> = std::fs::read_to_string(csv)
        .ok()
        .and_then(|t| crate::client::simulate::parse_devices_csv(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.id, d.token))
        .collect();
    let ids: Vec<String> = (1..=n).map(|i| format!("demo-kettle-{i:04}")).collect();
    let mut tokens = Vec::with_capacity(ids.len());
    let mut registered = 0;
    for id in ids {
        let path = format!("{base}/devices/{}", seg(&id));
        let answer = match ctx.client.get(&path) {
            Ok(_) => match known.get(&id) {
                Some(token) => {
                    tokens.push((id, token.clone()));
                    continue;
                }
                None => ctx
                    .client
                    .json(Method::POST, &format!("{path}/token"), None)
                    .map_err(|e| e.context(&format!("cannot rotate the token of {id}")))?,
            },
            Err(e) if missing(&e) => {
                registered += 1;
                ctx.client
                    .json(
                        Method::POST,
                        &format!("{base}/devices"),
                        Some(&json!({ "deviceId": id, "deviceTypeId": dt })),
                    )
                    .map_err(|e| e.context(&format!("cannot register device {id}")))?
            }
            Err(e) => return Err(e.context(&format!("device {id}"))),
        };
        tokens.push((id, text(&answer, "token")));
    }
    Ok((tokens, registered))
}

pub fn run(args: DemoArgs, ctx: &mut Ctx) -> Result<()> {
    let out = &args.out;
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::fail(format!("cannot create {}: {e}", out.display())))?;
    let (partner_id, new_partner) = partner(ctx, out)?;
    ctx.set_partner(&partner_id);
    let base = ctx.base()?;
    let mut types_created = 0;
    for (t, type_name, ..) in IMAGES {
        types_created += usize::from(fw_type(ctx, &base, t, type_name)?);
    }
    let dt = device_type(ctx, &base)?;
    let mut files = Vec::new();
    let mut images_created = 0;
    for spec in IMAGES {
        let (file, created) = image(ctx, &base, &dt, spec, out)?;
        files.push(file.display().to_string());
        images_created += usize::from(created);
    }
    let csv_path = out.join("devices.csv");
    let (tokens, registered) = devices(ctx, &base, &dt, args.devices, &csv_path)?;
    let mut csv = String::from("deviceId,token\n");
    for (id, token) in &tokens {
        csv.push_str(&format!("{id},{token}\n"));
    }
    write_private_file(&csv_path, csv.as_bytes())
        .map_err(|e| CliError::fail(format!("cannot write {}: {e}", csv_path.display())))?;
    let doc = json!({
        "partnerId": partner_id,
        "deviceTypeId": dt,
        "types": IMAGES.iter().map(|i| i.0).collect::<Vec<_>>(),
        "files": files,
        "devicesFile": csv_path.display().to_string(),
        "devices": tokens.len(),
        "created": {
            "partner": new_partner, "types": types_created,
            "images": images_created, "devices": registered,
        },
    });
    ctx.out.show(&doc, || {
        let made = if new_partner || types_created + images_created + registered > 0 {
            format!(
                "created: partner {}, {types_created} types, {images_created} images, {registered} devices",
                if new_partner { "yes" } else { "no (found)" }
            )
        } else {
            "everything was there already; nothing created".to_string()
        };
        fields(&[
            ("partnerId", partner_id.clone()),
            ("deviceTypeId", dt.clone()),
            ("images", "101 main 1.0.0, 102 wifi 1.0.0".into()),
            ("devicesFile", csv_path.display().to_string()),
        ]) + &format!(
            "{made}\nnext: otad login --partner {partner_id}; otad device simulate --devices-file {} --type 101",
            csv_path.display()
        )
    });
    Ok(())
}
