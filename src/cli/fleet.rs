//! `otad fleet status`: the server's fleet summary (`GET …/fleet`, one request): per device
//! type how many devices there are and were seen lately, and per firmware type how many run
//! which version (number, name and version string), the OTA states and recent failures
//! with their reasons. `--json` prints the server's document as it is.
//!
//! Not here: the device registry commands (`devices.rs`).

use clap::Args;
use serde_json::Value;

use super::client::{Context, Result};
use super::devices::labelled;
use super::output::{items, table, text, time};
use super::session::Ctx;
use crate::client::http::seg;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only devices of this device type.
    #[arg(long, value_name = "ID")]
    device_type: Option<String>,
}

/// One line of the summary table.
fn row(dt: &Value, what: String, version: String, devices: String) -> Vec<String> {
    vec![
        text(dt, "name"),
        text(dt, "deviceTypeId"),
        what,
        version,
        devices,
    ]
}

/// The summary table's lines for one device type.
fn device_type_rows(dt: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![row(
        dt,
        "devices".into(),
        String::new(),
        text(dt, "devices"),
    )];
    for (key, what) in [
        ("neverSeen", "never seen"),
        ("seenLastHour", "seen last hour"),
        ("seenLastDay", "seen last day"),
    ] {
        rows.push(row(dt, what.into(), String::new(), text(dt, key)));
    }
    for f in dt.get("firmwareTypes").map_or(&[][..], items) {
        let t = text(f, "type");
        for v in f.get("versions").map_or(&[][..], items) {
            rows.push(row(
                dt,
                format!("type {t} installed"),
                labelled(v),
                text(v, "devices"),
            ));
        }
        for s in f.get("otaStates").map_or(&[][..], items) {
            rows.push(row(
                dt,
                format!("type {t} ota {}", text(s, "state")),
                labelled(s),
                text(s, "devices"),
            ));
        }
    }
    rows
}

pub fn status(args: StatusArgs, ctx: &mut Ctx) -> Result<()> {
    let base = ctx.base()?;
    let path = match &args.device_type {
        Some(dt) => format!("{base}/fleet?deviceTypeId={}", seg(dt)),
        None => format!("{base}/fleet"),
    };
    let doc = ctx
        .client
        .get(&path)
        .map_err(|e| e.context("cannot read the fleet summary"))?;
    ctx.out.show(&doc, || {
        let types = doc.get("deviceTypes").map_or(&[][..], items);
        let rows: Vec<Vec<String>> = types.iter().flat_map(device_type_rows).collect();
        let mut out = format!("{} devices\n", text(&doc, "devices"));
        if !rows.is_empty() {
            out.push_str(&table(
                &["DEVICE TYPE", "ID", "WHAT", "VERSION", "DEVICES"],
                &rows,
            ));
        }
        let failures: Vec<Vec<String>> = types
            .iter()
            .flat_map(|dt| {
                dt.get("failures")
                    .map_or(&[][..], items)
                    .iter()
                    .map(|f| {
                        vec![
                            text(dt, "name"),
                            text(f, "deviceId"),
                            text(f, "type"),
                            labelled(f),
                            text(f, "reason"),
                            time(f, "timestamp"),
                        ]
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("\nrecent failures\n");
            out.push_str(&table(
                &["DEVICE TYPE", "DEVICE", "TYPE", "VERSION", "REASON", "AT"],
                &failures,
            ));
        }
        out
    });
    Ok(())
}
