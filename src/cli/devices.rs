//! `otad device register|import|list|show|label|rotate-token|delete`: the partner's device
//! registry over the HTTP API. Device tokens are shown only by register, import and
//! rotate-token. Not here: acting as a device over OCP/1 (`otad device check|download|
//! simulate`, in `device/`), or fleet summaries (`fleet.rs`).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::client::{CliError, Context, Result};
use super::output::{Progress, fields, items, table, text, time};
use super::session::{Common, Ctx};
use crate::client::http::seg;

#[derive(Debug, Subcommand)]
pub enum DeviceAdminCommand {
    /// Register a device; prints its token (shown only this once).
    ///
    /// Example: otad device register kettle-0001 --device-type $DEVICE_TYPE_ID
    Register {
        /// Device id (1-64 of A-Z a-z 0-9 . _ -), unique on the appliance.
        device_id: String,
        #[arg(long, value_name = "ID")]
        device_type: String,
        #[command(flatten)]
        common: Common,
    },
    /// Register many devices from a CSV file of deviceId,deviceTypeId[,tags[,attributes]]
    /// lines (header optional; tags as a;b, attributes as k=v;k2=v2) or NDJSON, all or
    /// nothing; writes the deviceId,token CSV (the only copy of the tokens) to --out, or to
    /// standard output.
    ///
    /// Example: otad device import fleet.csv --out fleet-tokens.csv
    Import {
        /// CSV (deviceId,deviceTypeId) or NDJSON file.
        file: PathBuf,
        /// Where to write the deviceId,token CSV (created with mode 0600).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// List the partner's devices.
    ///
    /// Example: otad device list --device-type $DEVICE_TYPE_ID
    ///
    /// Example: otad device list --type 101 --installed 7
    ///
    /// Example: otad device list --type 101 --installed 1.4.2 --search kettle-00
    List {
        /// Only devices of this device type.
        #[arg(long, value_name = "ID")]
        device_type: Option<String>,
        /// With --installed: only devices that report this version of this type.
        #[arg(long = "type", value_name = "T", requires = "installed")]
        fw_type: Option<u16>,
        /// A version number (digits only) or a record's version string such as 1.4.2.
        #[arg(long, value_name = "VERSION", requires = "fw_type")]
        installed: Option<String>,
        /// Only devices whose id contains this text (ignoring case).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Only devices carrying this tag (repeatable: all of them).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Only devices with this attribute value (repeatable: all of them).
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = key_value)]
        attributes: Vec<(String, String)>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a device's tags and/or attributes; what is not given stays as it is.
    ///
    /// Example: otad device label kettle-0001 --tag beta --tag eu --attr hw=rev2
    ///
    /// Example: otad device label kettle-0001 --no-tags
    Label {
        device_id: String,
        /// The device's tags become these (repeatable).
        #[arg(long = "tag", value_name = "TAG", conflicts_with = "no_tags")]
        tags: Vec<String>,
        /// Remove every tag.
        #[arg(long)]
        no_tags: bool,
        /// The device's attributes become these (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = key_value, conflicts_with = "no_attrs")]
        attributes: Vec<(String, String)>,
        /// Remove every attribute.
        #[arg(long)]
        no_attrs: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Show a device: installed versions, last seen, OTA state per firmware type.
    ///
    /// Example: otad device show kettle-0001
    Show {
        device_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Issue a new token for a device (the old one stops working).
    ///
    /// Example: otad device rotate-token kettle-0001
    RotateToken {
        device_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a device.
    ///
    /// Example: otad device delete kettle-0001
    Delete {
        device_id: String,
        #[command(flatten)]
        common: Common,
    },
}

impl DeviceAdminCommand {
    pub fn common(&self) -> &Common {
        match self {
            Self::Register { common, .. }
            | Self::Import { common, .. }
            | Self::List { common, .. }
            | Self::Show { common, .. }
            | Self::Label { common, .. }
            | Self::RotateToken { common, .. }
            | Self::Delete { common, .. } => common,
        }
    }
}

/// A `KEY=VALUE` argument.
fn key_value(arg: &str) -> std::result::Result<(String, String), String> {
    arg.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{arg:?} is not KEY=VALUE"))
}

/// A device's tags, comma-separated.
fn tags(d: &Value) -> String {
    d.get("tags")
        .map_or(&[][..], items)
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// A device's attributes as `key=value` pairs.
fn attributes(d: &Value) -> String {
    d.get("attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A version number with its record's name and version string when the server gave them:
/// `3 (main 1.4.2)`.
pub fn labelled(v: &Value) -> String {
    let vn = text(v, "versionNumber");
    match (text(v, "name"), text(v, "version")) {
        (name, version) if name.is_empty() && version.is_empty() => vn,
        (name, version) if name.is_empty() => format!("{vn} ({version})"),
        (name, version) => format!("{vn} ({name} {version})"),
    }
}

/// `type=versionNumber (name version)` pairs of a device's installed list.
pub fn installed(d: &Value) -> String {
    d.get("installed")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|i| format!("{}={}", text(i, "type"), labelled(i)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The query of an installed-version filter: digits are a version number, anything else a
/// version string.
pub fn installed_query(fw_type: u16, installed: &str) -> String {
    if !installed.is_empty() && installed.bytes().all(|b| b.is_ascii_digit()) {
        format!("type={fw_type}&installedVersion={installed}")
    } else {
        format!("type={fw_type}&installedVersionString={}", seg(installed))
    }
}

fn device_row(d: &Value) -> Vec<String> {
    vec![
        text(d, "deviceId"),
        text(d, "deviceTypeId"),
        installed(d),
        time(d, "lastSeenTimestamp"),
    ]
}

/// Does the file start (after blanks) with `{`? The server takes the Content-Type as the
/// format, so the CLI names the one the file is in.
fn looks_like_ndjson(path: &Path) -> bool {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head.get(..n)
        .and_then(|h| h.iter().find(|b| !b.is_ascii_whitespace()))
        == Some(&b'{')
}

pub fn run(cmd: DeviceAdminCommand, ctx: &mut Ctx) -> Result<()> {
    let base = format!("{}/devices", ctx.base()?);
    match cmd {
        DeviceAdminCommand::Register {
            device_id,
            device_type,
            ..
        } => {
            let v = ctx
                .client
                .json(
                    Method::POST,
                    &base,
                    Some(&json!({ "deviceId": device_id, "deviceTypeId": device_type })),
                )
                .map_err(|e| e.context(&format!("cannot register device {device_id}")))?;
            ctx.out.show(&v, || {
                fields(&[
                    ("deviceId", text(&v, "deviceId")),
                    ("deviceTypeId", text(&v, "deviceTypeId")),
                    ("token", text(&v, "token")),
                ]) + "(the token is shown only this once)"
            });
        }
        DeviceAdminCommand::Import { file, out, .. } => {
            let content_type = if looks_like_ndjson(&file) {
                "application/x-ndjson"
            } else {
                "text/csv"
            };
            let progress = Progress::new(&format!("importing {}", file.display()));
            let sent = ctx.client.upload_file(
                Method::POST,
                &format!("{base}/import"),
                &file,
                content_type,
                &progress,
            );
            progress.finish();
            let sent = sent.map_err(|e| e.context(&format!("cannot import {}", file.display())))?;
            let csv = String::from_utf8_lossy(&sent.body).into_owned();
            let rows: Vec<(&str, &str)> = csv
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(','))
                .collect();
            match &out {
                Some(path) => {
                    // Device tokens are secrets: readable by the owner only.
                    crate::datadir::write_private_file(path, csv.as_bytes()).map_err(|e| {
                        CliError::fail(format!("cannot write {}: {e}", path.display()))
                    })?;
                    ctx.out.show(
                        &json!({ "imported": rows.len(), "out": path.display().to_string() }),
                        || {
                            format!(
                                "imported {} devices; their tokens are in {}",
                                rows.len(),
                                path.display()
                            )
                        },
                    );
                }
                None if ctx.out.json => {
                    let list: Vec<Value> = rows
                        .iter()
                        .map(|(d, t)| json!({ "deviceId": d, "token": t }))
                        .collect();
                    ctx.out.show(&Value::Array(list), String::new);
                }
                None => print!("{csv}"),
            }
        }
        DeviceAdminCommand::List {
            device_type,
            fw_type,
            installed,
            search,
            tags: wanted_tags,
            attributes: wanted,
            ..
        } => {
            let mut query = Vec::new();
            if let Some(dt) = &device_type {
                query.push(format!("deviceTypeId={}", seg(dt)));
            }
            if !wanted_tags.is_empty() {
                query.push(format!("tags={}", seg(&wanted_tags.join(","))));
            }
            for (k, v) in &wanted {
                query.push(format!("attribute={}", seg(&format!("{k}={v}"))));
            }
            if let (Some(t), Some(v)) = (fw_type, &installed) {
                query.push(installed_query(t, v));
            }
            if let Some(text) = &search {
                query.push(format!("search={}", seg(text)));
            }
            let path = if query.is_empty() {
                base.clone()
            } else {
                format!("{base}?{}", query.join("&"))
            };
            let list = ctx.pages(&path)?;
            let rows: Vec<Vec<String>> = list.iter().map(device_row).collect();
            ctx.out.show(&Value::Array(list), || {
                table(
                    &["DEVICE ID", "DEVICE TYPE", "INSTALLED", "LAST SEEN"],
                    &rows,
                )
            });
        }
        DeviceAdminCommand::Show { device_id, .. } => {
            let d = ctx
                .client
                .get(&format!("{base}/{}", seg(&device_id)))
                .map_err(|e| e.context(&format!("device {device_id}")))?;
            ctx.out.show(&d, || {
                let mut t = fields(&[
                    ("deviceId", text(&d, "deviceId")),
                    ("deviceTypeId", text(&d, "deviceTypeId")),
                    ("installed", installed(&d)),
                    ("tags", tags(&d)),
                    ("attributes", attributes(&d)),
                    ("created", time(&d, "createdTimestamp")),
                    ("lastSeen", time(&d, "lastSeenTimestamp")),
                ]);
                t.push_str(&sub_table(
                    &d,
                    "ota",
                    &[
                        "TYPE", "VERSION", "STATE", "RESULT", "BYTES", "AT", "REASON",
                    ],
                    |o| {
                        vec![
                            text(o, "type"),
                            labelled(o),
                            text(o, "state"),
                            text(o, "result"),
                            text(o, "bytesDone"),
                            time(o, "timestamp"),
                            text(o, "reason"),
                        ]
                    },
                ));
                t.push_str(&sub_table(
                    &d,
                    "pushes",
                    &["PUSH TYPE", "IMAGE ID", "VERSION", "STATE"],
                    |p| {
                        vec![
                            text(p, "type"),
                            text(p, "firmwareImageId"),
                            labelled(p),
                            text(p, "state"),
                        ]
                    },
                ));
                t
            });
        }
        DeviceAdminCommand::Label {
            device_id,
            tags: new_tags,
            no_tags,
            attributes: new_attributes,
            no_attrs,
            ..
        } => {
            let mut body = serde_json::Map::new();
            if no_tags || !new_tags.is_empty() {
                body.insert("tags".into(), json!(new_tags));
            }
            if no_attrs || !new_attributes.is_empty() {
                let map: serde_json::Map<String, Value> = new_attributes
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                body.insert("attributes".into(), Value::Object(map));
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "give --tag, --no-tags, --attr or --no-attrs",
                ));
            }
            let d = ctx
                .client
                .json(
                    Method::PUT,
                    &format!("{base}/{}", seg(&device_id)),
                    Some(&Value::Object(body)),
                )
                .map_err(|e| e.context(&format!("cannot label device {device_id}")))?;
            ctx.out.show(&d, || {
                fields(&[
                    ("deviceId", text(&d, "deviceId")),
                    ("tags", tags(&d)),
                    ("attributes", attributes(&d)),
                ])
            });
        }
        DeviceAdminCommand::RotateToken { device_id, .. } => {
            let v = ctx
                .client
                .json(
                    Method::POST,
                    &format!("{base}/{}/token", seg(&device_id)),
                    None,
                )
                .map_err(|e| e.context(&format!("cannot rotate the token of {device_id}")))?;
            let v = json!({ "deviceId": device_id, "token": text(&v, "token") });
            ctx.out.show(&v, || {
                fields(&[
                    ("deviceId", text(&v, "deviceId")),
                    ("token", text(&v, "token")),
                ]) + "(the token is shown only this once)"
            });
        }
        DeviceAdminCommand::Delete { device_id, .. } => {
            ctx.client
                .json(Method::DELETE, &format!("{base}/{}", seg(&device_id)), None)
                .map_err(|e| e.context(&format!("cannot delete device {device_id}")))?;
            if ctx.out.json {
                ctx.out.show(
                    &json!({ "deviceId": device_id, "deleted": true }),
                    String::new,
                );
            }
        }
    }
    Ok(())
}

/// The records of the list `d[key]` as a table after a blank line, below a record's fields;
/// nothing for a missing or empty list.
fn sub_table(d: &Value, key: &str, header: &[&str], row: impl Fn(&Value) -> Vec<String>) -> String {
    let rows: Vec<Vec<String>> = d.get(key).map_or(&[][..], items).iter().map(row).collect();
    if rows.is_empty() {
        return String::new();
    }
    format!("\n{}", table(header, &rows))
}
