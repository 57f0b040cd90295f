//! What `device simulate` learns from the HTTP API when not told: without
//! `--devices-file`, the simulated fleet registered for the acting partner (one import of
//! fresh device ids); without `--type`, the firmware type of the images associated with the
//! devices' device type. The session is the admin commands' (`otad login`, the environment,
//! or the local server's first admin).
//!
//! Not here: the simulation (`client/simulate/`) and the flags (`mod.rs`).

use std::path::Path;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use super::Fail;
use crate::cli::client::{CliError, api_error};
use crate::cli::output::{items, text};
use crate::cli::session::{Common, Ctx};
use crate::client::http::{HttpError, seg};
use crate::client::simulate::{DeviceCreds, parse_devices_csv};
use crate::model::hex;

/// Firmware type 4 is a device description, never offered over OCP/1.
const DEVICE_DESCRIPTION: u16 = 4;

/// A connected API client acting on `partner` (else the session's partner).
pub(super) fn connect(partner: Option<String>, data_dir: &Path) -> Result<Ctx, Fail> {
    let common = Common {
        json: false,
        partner,
    };
    Ctx::connect(&common, data_dir).map_err(Fail::Cli)
}

fn cli(e: HttpError, what: &str) -> Fail {
    Fail::Cli(CliError::from(e).context(what))
}

/// The firmware types of the images associated with device type `dt`.
fn image_types(ctx: &mut Ctx, dt: &str) -> Result<Vec<u16>, Fail> {
    let base = ctx.base().map_err(Fail::Cli)?;
    let images = ctx
        .pages(&format!("{base}/deviceTypes/{}/firmwareImages", seg(dt)))
        .map_err(|e| {
            Fail::Cli(e.context(&format!("cannot list the images of device type {dt}")))
        })?;
    let mut types: Vec<u16> = images
        .iter()
        .filter_map(|i| i.get("type").and_then(Value::as_u64))
        .filter_map(|t| u16::try_from(t).ok())
        .filter(|t| *t != DEVICE_DESCRIPTION)
        .collect();
    types.sort_unstable();
    types.dedup();
    Ok(types)
}

/// The one firmware type to simulate among `types`, the image types of device type `dt`.
pub(super) fn firmware_type(types: &[u16], dt: &str) -> Result<u16, Fail> {
    match types {
        [t] => Ok(*t),
        [] => Err(Fail::Error(format!(
            "no firmware image is associated with device type {dt}; associate one (`otad image associate`) or pass --type T"
        ))),
        many => Err(Fail::Usage(format!(
            "device type {dt} has images of firmware types {}; pick one with --type T",
            many.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The device type to register the fleet under: `--device-type`, else the partner's only
/// device type with an associated image. Returns it with its firmware types.
pub(super) fn pick_device_type(
    ctx: &mut Ctx,
    given: Option<&str>,
) -> Result<(String, Vec<u16>), Fail> {
    if let Some(dt) = given {
        let types = image_types(ctx, dt)?;
        return Ok((dt.to_string(), types));
    }
    let base = ctx.base().map_err(Fail::Cli)?;
    let partner = ctx.partner().map_err(Fail::Cli)?.to_string();
    let list = ctx
        .client
        .get(&format!("{base}/deviceTypes"))
        .map_err(|e| cli(e, "cannot list the device types"))?;
    let mut with_images = Vec::new();
    for d in items(&list) {
        let id = text(d, "id");
        let types = image_types(ctx, &id)?;
        if !types.is_empty() {
            with_images.push((id, text(d, "name"), types));
        }
    }
    match with_images.len() {
        1 => {
            let (id, _, types) = with_images.swap_remove(0);
            Ok((id, types))
        }
        0 => Err(Fail::Error(format!(
            "partner {partner} has no device type with an associated image; act on another with --partner ID, upload one with `otad image upload ... --associate DT`, or pass --devices-file"
        ))),
        _ => Err(Fail::Usage(format!(
            "partner {partner} has several device types with images ({}); pick one with --device-type ID",
            with_images
                .iter()
                .map(|(id, name, _)| format!("{name} = {id}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The firmware type of the images of `device_id`'s device type (for a `--devices-file`
/// without `--type`).
pub(super) fn firmware_type_of_device(ctx: &mut Ctx, device_id: &str) -> Result<u16, Fail> {
    let base = ctx.base().map_err(Fail::Cli)?;
    let device = ctx
        .client
        .get(&format!("{base}/devices/{}", seg(device_id)))
        .map_err(|e| cli(e, &format!("cannot look up device {device_id}")))?;
    let dt = text(&device, "deviceTypeId");
    let types = image_types(ctx, &dt)?;
    firmware_type(&types, &dt)
}

/// Registers `n` new devices of `dt` in one import, named `sim-<6 hex>-<index>` (fresh on
/// every run, so runs never collide); returns their credentials.
pub(super) fn register(ctx: &mut Ctx, dt: &str, n: usize) -> Result<Vec<DeviceCreds>, Fail> {
    let base = ctx.base().map_err(Fail::Cli)?;
    let run = hex(&crate::ids::random_bytes::<3>());
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for i in 0..n {
        csv.push_str(&format!("sim-{run}-{i:05},{dt}\n"));
    }
    let answer = ctx
        .client
        .send(
            Method::POST,
            &format!("{base}/devices/import"),
            Some("text/csv"),
            Bytes::from(csv),
        )
        .map_err(|e| cli(e, "cannot register the simulated devices"))?;
    if !answer.status.is_success() {
        return Err(Fail::Cli(
            api_error(answer.status, &answer.body).context("cannot register the simulated devices"),
        ));
    }
    let text = String::from_utf8_lossy(&answer.body);
    parse_devices_csv(&text).map_err(|e| {
        Fail::Error(format!(
            "the import answer is not a deviceId,token CSV ({e})"
        ))
    })
}
