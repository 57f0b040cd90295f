//! `otad type create|list|show|update` (firmware types, `.../types`) and
//! `otad device-type create|list|show` (`.../deviceTypes`) of the partner in scope.
//! Not here: images (`images.rs`) or devices (`devices.rs`).

use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::client::{CliError, Context, Result};
use super::output::{fields, items, table, text, time};
use super::session::Ctx;
use crate::client::http::seg;

#[derive(Debug, Subcommand)]
pub enum TypeCommand {
    /// Create a firmware type: 101-200 for the partner's MCU types; 1-100 are platform
    /// types (appliance admins only).
    ///
    /// Example: otad type create 101 MCU_MAIN --description "main controller"
    Create {
        /// Type number.
        number: u16,
        /// Name, e.g. MCU_MAIN.
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the firmware types visible to the partner (platform types and its own).
    ///
    /// Example: otad type list
    List,
    /// Show one firmware type.
    ///
    /// Example: otad type show 101
    Show { number: u16 },
    /// Rename or re-describe a firmware type (its number never changes).
    ///
    /// Example: otad type update 101 --name MCU_MAIN --description "main board"
    Update {
        number: u16,
        #[arg(long)]
        name: String,
        /// New description (omit to clear it).
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceTypeCommand {
    /// Create a device type; prints its id (a UUID).
    ///
    /// Example: otad device-type create "Kettle v2" --description "2025 model"
    Create {
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the partner's device types.
    ///
    /// Example: otad device-type list --json
    List,
    /// Show one device type.
    ///
    /// Example: otad device-type show 0b7c...
    Show { id: String },
    /// Require signed images for a device type (on), or not (off); without a state, show
    /// the policy. With on, images without a valid signature are neither offered nor pushed
    /// to its devices (docs/signing.md).
    ///
    /// Example: otad device-type require-signature 0b7c... on
    RequireSignature {
        id: String,
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
}

fn type_row(t: &Value) -> Vec<String> {
    vec![
        text(t, "type"),
        text(t, "name"),
        text(t, "description"),
        text(t, "partnerId"),
        time(t, "updatedTimestamp"),
    ]
}

const TYPE_HEADER: &[&str] = &["TYPE", "NAME", "DESCRIPTION", "OWNER", "UPDATED"];

pub fn fw_type(cmd: TypeCommand, ctx: &mut Ctx) -> Result<()> {
    let base = format!("{}/types", ctx.base()?);
    match cmd {
        TypeCommand::Create {
            number,
            name,
            description,
        } => {
            let mut body = json!({ "name": name, "type": number });
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let t = ctx
                .client
                .json(Method::POST, &base, Some(&body))
                .map_err(|e| e.context(&format!("cannot create type {number}")))?;
            ctx.out.show(&t, || table(TYPE_HEADER, &[type_row(&t)]));
        }
        TypeCommand::List => {
            let list = ctx.client.get(&base)?;
            let rows: Vec<Vec<String>> = items(&list).iter().map(type_row).collect();
            ctx.out.show(&list, || table(TYPE_HEADER, &rows));
        }
        TypeCommand::Show { number } => {
            let list = ctx
                .client
                .get(&format!("{base}/{number}"))
                .map_err(|e| e.context(&format!("type {number}")))?;
            // The API answers an array holding the one record (as the Afero API does).
            let t = items(&list)
                .first()
                .cloned()
                .ok_or_else(|| CliError::not_found(format!("type {number}: not found")))?;
            ctx.out.show(&t, || {
                fields(&[
                    ("type", text(&t, "type")),
                    ("name", text(&t, "name")),
                    ("description", text(&t, "description")),
                    ("partnerId", text(&t, "partnerId")),
                    ("versionAttributeId", text(&t, "versionAttributeId")),
                    ("created", time(&t, "createdTimestamp")),
                    ("updated", time(&t, "updatedTimestamp")),
                ])
            });
        }
        TypeCommand::Update {
            number,
            name,
            description,
        } => {
            let mut body = json!({ "name": name });
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            ctx.client
                .json(Method::PUT, &format!("{base}/{number}"), Some(&body))
                .map_err(|e| e.context(&format!("cannot update type {number}")))?;
            if ctx.out.json {
                ctx.out
                    .show(&json!({ "type": number, "updated": true }), String::new);
            }
        }
    }
    Ok(())
}

fn device_type_row(d: &Value) -> Vec<String> {
    vec![
        text(d, "id"),
        text(d, "name"),
        text(d, "description"),
        time(d, "updatedTimestamp"),
    ]
}

const DEVICE_TYPE_HEADER: &[&str] = &["ID", "NAME", "DESCRIPTION", "UPDATED"];

pub fn device_type(cmd: DeviceTypeCommand, ctx: &mut Ctx) -> Result<()> {
    let base = format!("{}/deviceTypes", ctx.base()?);
    match cmd {
        DeviceTypeCommand::Create { name, description } => {
            let mut body = json!({ "name": name });
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let d = ctx
                .client
                .json(Method::POST, &base, Some(&body))
                .map_err(|e| e.context(&format!("cannot create device type {name:?}")))?;
            ctx.out
                .show(&d, || table(DEVICE_TYPE_HEADER, &[device_type_row(&d)]));
        }
        DeviceTypeCommand::List => {
            let list = ctx.client.get(&base)?;
            let rows: Vec<Vec<String>> = items(&list).iter().map(device_type_row).collect();
            ctx.out.show(&list, || table(DEVICE_TYPE_HEADER, &rows));
        }
        DeviceTypeCommand::RequireSignature { id, state } => {
            let path = format!("{base}/{}/signaturePolicy", seg(&id));
            let p = match state {
                Some(state) => ctx
                    .client
                    .json(
                        Method::PUT,
                        &path,
                        Some(&json!({ "requireSignature": state == "on" })),
                    )
                    .map_err(|e| e.context(&format!("cannot set the signature policy of {id}")))?,
                None => ctx
                    .client
                    .get(&path)
                    .map_err(|e| e.context(&format!("device type {id}")))?,
            };
            let on = p.get("requireSignature").and_then(Value::as_bool) == Some(true);
            ctx.out.show(&p, || {
                format!(
                    "device type {id} {} signed images",
                    if on { "requires" } else { "does not require" }
                )
            });
        }
        DeviceTypeCommand::Show { id } => {
            let d = ctx
                .client
                .get(&format!("{base}/{}", seg(&id)))
                .map_err(|e| e.context(&format!("device type {id}")))?;
            ctx.out.show(&d, || {
                fields(&[
                    ("id", text(&d, "id")),
                    ("name", text(&d, "name")),
                    ("description", text(&d, "description")),
                    ("partnerId", text(&d, "partnerId")),
                    ("created", time(&d, "createdTimestamp")),
                    ("updated", time(&d, "updatedTimestamp")),
                ])
            });
        }
    }
    Ok(())
}
