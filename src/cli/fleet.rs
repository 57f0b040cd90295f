//! `otad fleet status`: how many devices run which version of each firmware type, per
//! device type, and how many are in which OTA state.
//!
//! The server has no summary endpoint, so this pages through the device list API and
//! counts here (one pass, memory per distinct (device type, type, version), not per
//! device). Not here: the device registry commands (`devices.rs`).

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{Value, json};

use super::client::Result;
use super::output::{items, table, text};
use super::session::Ctx;
use crate::client::http::seg;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only devices of this device type.
    #[arg(long, value_name = "ID")]
    device_type: Option<String>,
}

/// Counts for one device type.
#[derive(Default)]
struct Tally {
    devices: u64,
    never_seen: u64,
    /// (firmware type, version number) → devices reporting it installed.
    versions: BTreeMap<(u64, u64), u64>,
    /// (firmware type, OTA state) → devices whose latest OTA event for that type is in it.
    states: BTreeMap<(u64, String), u64>,
}

fn num(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

pub fn status(args: StatusArgs, ctx: &mut Ctx) -> Result<()> {
    let base = ctx.base()?;
    let names: BTreeMap<String, String> = items(&ctx.client.get(&format!("{base}/deviceTypes"))?)
        .iter()
        .map(|d| (text(d, "id"), text(d, "name")))
        .collect();
    let path = match &args.device_type {
        Some(dt) => format!("{base}/devices?deviceTypeId={}", seg(dt)),
        None => format!("{base}/devices"),
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    ctx.each_item(&path, |d| {
        let t = tallies.entry(text(&d, "deviceTypeId")).or_default();
        t.devices += 1;
        if d.get("lastSeenTimestamp").is_none() {
            t.never_seen += 1;
        }
        for i in d
            .get("installed")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            *t.versions
                .entry((num(i, "type"), num(i, "versionNumber")))
                .or_default() += 1;
        }
        for o in d.get("ota").and_then(Value::as_array).into_iter().flatten() {
            *t.states
                .entry((num(o, "type"), text(o, "state")))
                .or_default() += 1;
        }
    })?;
    let total: u64 = tallies.values().map(|t| t.devices).sum();
    let doc = json!({
        "devices": total,
        "deviceTypes": tallies.iter().map(|(id, t)| json!({
            "deviceTypeId": id,
            "name": names.get(id).cloned().unwrap_or_default(),
            "devices": t.devices,
            "neverSeen": t.never_seen,
            "versions": t.versions.iter().map(|((ty, vn), n)| json!({
                "type": ty, "versionNumber": vn.to_string(), "devices": n
            })).collect::<Vec<_>>(),
            "otaStates": t.states.iter().map(|((ty, st), n)| json!({
                "type": ty, "state": st, "devices": n
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    ctx.out.show(&doc, || {
        let mut rows = Vec::new();
        for (id, t) in &tallies {
            let name = names.get(id).cloned().unwrap_or_default();
            rows.push(vec![
                name.clone(),
                id.clone(),
                "devices".into(),
                String::new(),
                t.devices.to_string(),
            ]);
            if t.never_seen > 0 {
                rows.push(vec![
                    name.clone(),
                    id.clone(),
                    "never seen".into(),
                    String::new(),
                    t.never_seen.to_string(),
                ]);
            }
            for ((ty, vn), n) in &t.versions {
                rows.push(vec![
                    name.clone(),
                    id.clone(),
                    format!("type {ty}"),
                    format!("installed {vn}"),
                    n.to_string(),
                ]);
            }
            for ((ty, st), n) in &t.states {
                rows.push(vec![
                    name.clone(),
                    id.clone(),
                    format!("type {ty}"),
                    format!("ota {st}"),
                    n.to_string(),
                ]);
            }
        }
        format!(
            "{total} devices\n{}",
            if rows.is_empty() {
                String::new()
            } else {
                table(&["DEVICE TYPE", "ID", "WHAT", "STATE", "DEVICES"], &rows)
            }
        )
    });
    Ok(())
}
