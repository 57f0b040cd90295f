//! The JSON shapes of the API: ids and version numbers as strings, timestamps in
//! milliseconds, optional fields omitted when empty (never `null`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::model::{
    AuditEntry, Device, DeviceLabels, DeviceType, FirmwareType, OtaEvent, OtaState, Partner,
    Record, TypeOta, hex, result_reason, version_attribute_id,
};
use crate::rollout::{self, DeviceOutcome, GroupSpec, Rollout};
use crate::store::{
    Artifact, AssociationView, DdiState, DeviceTypeFleet, FleetSummary, FwTypeFleet, Labels,
};

fn put_opt(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        map.insert(key.to_string(), Value::String(v.to_string()));
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub fn fw_type(t: &FirmwareType) -> Value {
    let mut m = object(json!({
        "id": t.fw_type.to_string(),
        "name": t.name,
        "type": t.fw_type,
        "partnerId": t.partner_id,
        "createdTimestamp": t.created_ms,
        "updatedTimestamp": t.updated_ms,
        "versionAttributeId": version_attribute_id(t.fw_type),
    }));
    put_opt(&mut m, "description", Some(&t.description));
    Value::Object(m)
}

/// A pool record.
pub fn pool_record(r: &Record) -> Value {
    let mut m = object(json!({
        "id": r.id.to_string(),
        "name": r.name,
        "type": r.fw_type,
        "versionNumber": r.version_number.to_string(),
        "version": r.version,
        "url": r.url(),
        "tags": r.tags,
        "createdTimestamp": r.created_ms,
        "updatedTimestamp": r.updated_ms,
        "partnerId": r.partner_id,
    }));
    put_opt(&mut m, "description", Some(&r.description));
    Value::Object(m)
}

/// A record as seen under a device type (image record).
pub fn image_record(r: &Record, device_type_id: &str) -> Value {
    let mut m = object(pool_record(r));
    m.insert(
        "deviceTypeId".into(),
        Value::String(device_type_id.to_string()),
    );
    put_opt(
        &mut m,
        "deviceDescriptionId",
        r.device_description_id.as_deref(),
    );
    put_opt(&mut m, "deviceProfileId", r.device_profile_id.as_deref());
    Value::Object(m)
}

pub fn association(a: &AssociationView) -> Value {
    let mut m = object(json!({
        "name": a.partner.name,
        "partnerId": a.partner.id,
        "deviceTypeId": a.device_type.id,
        "deviceTypeName": a.device_type.name,
        "firmwareImageId": a.record_id.to_string(),
    }));
    put_opt(&mut m, "email", a.partner.email.as_deref());
    Value::Object(m)
}

pub fn device_type(d: &DeviceType) -> Value {
    let mut m = object(json!({
        "id": d.id,
        "name": d.name,
        "partnerId": d.partner_id,
        "createdTimestamp": d.created_ms,
        "updatedTimestamp": d.updated_ms,
    }));
    put_opt(&mut m, "description", Some(&d.description));
    Value::Object(m)
}

pub fn partner(p: &Partner) -> Value {
    let mut m = object(json!({
        "partnerId": p.id,
        "name": p.name,
        "createdTimestamp": p.created_ms,
    }));
    put_opt(&mut m, "email", p.email.as_deref());
    if p.platform {
        m.insert("platform".into(), Value::Bool(true));
    }
    Value::Object(m)
}

/// Adds the record's `version` string and `name` for (type, number) when a record has it.
fn put_label(m: &mut Map<String, Value>, labels: &Labels, t: u16, vn: u64) {
    if let Some(l) = labels.get(&(t, vn)) {
        m.insert("version".into(), Value::String(l.version.clone()));
        m.insert("name".into(), Value::String(l.name.clone()));
    }
}

fn ota_event(e: &OtaEvent, t: u16, labels: &Labels) -> Value {
    let mut m = object(json!({
        "timestamp": e.at_ms,
        "versionNumber": e.version_number.to_string(),
        "state": e.state.as_str(),
        "result": e.result,
        "bytesDone": e.bytes_done,
    }));
    put_label(&mut m, labels, t, e.version_number);
    Value::Object(m)
}

fn type_ota(t: u16, o: &TypeOta, labels: &Labels) -> Value {
    let mut v = object(ota_event(&o.current, t, labels));
    v.insert("type".into(), json!(t));
    v.insert("offeredTimestamp".into(), json!(o.offered_ms));
    v.insert(
        "history".into(),
        Value::Array(o.history.iter().map(|e| ota_event(e, t, labels)).collect()),
    );
    Value::Object(v)
}

/// The (type, version number) pairs a device's JSON names, to label them.
pub fn device_versions(d: &Device) -> impl Iterator<Item = (u16, u64)> + '_ {
    let reported = d.reported.iter().map(|(&t, &vn)| (t, vn));
    let ota = d.ota.iter().flat_map(|(&t, o)| {
        std::iter::once(&o.current)
            .chain(o.history.iter())
            .map(move |e| (t, e.version_number))
    });
    reported.chain(ota)
}

/// A device without its token: inventory, last seen, OTA state per type, pending pushes;
/// every version number with its record's version string and name when `labels` has them
/// (`pushed`: the version number of each pushed record id).
/// With its tags and attributes (`marks`).
pub fn device(
    d: &Device,
    labels: &Labels,
    pushed: &BTreeMap<u64, u64>,
    marks: &DeviceLabels,
) -> Value {
    let installed: Vec<Value> = d
        .reported
        .iter()
        .map(|(&t, &vn)| {
            let mut m = object(json!({"type": t, "versionNumber": vn.to_string(), "versionAttributeId": version_attribute_id(t)}));
            put_label(&mut m, labels, t, vn);
            Value::Object(m)
        })
        .collect();
    let pushes: Vec<Value> = d
        .pushes
        .iter()
        .map(|(&t, id)| {
            let mut m =
                object(json!({"type": t, "firmwareImageId": id.to_string(), "state": "pending"}));
            if let Some(&vn) = pushed.get(id) {
                m.insert("versionNumber".into(), Value::String(vn.to_string()));
                put_label(&mut m, labels, t, vn);
            }
            Value::Object(m)
        })
        .collect();
    let mut m = object(json!({
        "deviceId": d.id,
        "deviceTypeId": d.device_type_id,
        "partnerId": d.partner_id,
        "createdTimestamp": d.created_ms,
        "installed": installed,
        "ota": d.ota.iter().map(|(t, o)| type_ota(*t, o, labels)).collect::<Vec<_>>(),
        "pushes": pushes,
        "tags": marks.tags,
        "attributes": marks.attributes,
    }));
    if let Some(seen) = d.last_seen_ms {
        m.insert("lastSeenTimestamp".into(), json!(seen));
    }
    Value::Object(m)
}

/// A device with what its DDI agent reported: per type the reason of a current failure.
pub fn with_ddi(mut v: Value, d: &Device, ddi: &DdiState) -> Value {
    if let Some(list) = v["ota"].as_array_mut() {
        for (entry, (t, o)) in list.iter_mut().zip(&d.ota) {
            if o.current.state == OtaState::Failed
                && let Some(reason) = ddi.reasons.get(t)
            {
                entry["reason"] = json!(reason);
            }
        }
    }
    v
}

pub fn audit(e: &AuditEntry) -> Value {
    let mut m = object(json!({
        "seq": e.seq.to_string(),
        "timestamp": e.at_ms,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
    }));
    put_opt(&mut m, "detail", Some(&e.detail));
    Value::Object(m)
}

fn fw_type_fleet(f: &FwTypeFleet, labels: &Labels) -> Value {
    let t = f.fw_type;
    let versions: Vec<Value> = f
        .versions
        .iter()
        .map(|v| {
            let mut m = object(
                json!({"versionNumber": v.version_number.to_string(), "devices": v.devices}),
            );
            put_label(&mut m, labels, t, v.version_number);
            Value::Object(m)
        })
        .collect();
    let states: Vec<Value> = f
        .states
        .iter()
        .map(|s| {
            let mut m = object(json!({
                "state": s.state.as_str(),
                "versionNumber": s.version_number.to_string(),
                "devices": s.devices,
            }));
            put_label(&mut m, labels, t, s.version_number);
            Value::Object(m)
        })
        .collect();
    let mut m = object(json!({
        "type": t,
        "reporting": f.reporting,
        "versions": versions,
        "otaStates": states,
    }));
    if let Some(r) = &f.newest_associated {
        m.insert(
            "newestAssociated".into(),
            json!({
                "firmwareImageId": r.id.to_string(),
                "versionNumber": r.version_number.to_string(),
                "version": r.version,
                "name": r.name,
                "hasBinary": r.binary.is_some(),
            }),
        );
    }
    Value::Object(m)
}

fn share(millionths: u32) -> f64 {
    f64::from(millionths) / f64::from(rollout::MILLION)
}

/// A rollout with its groups and their counts.
pub fn rollout(r: &Rollout) -> Value {
    let groups: Vec<Value> = r
        .groups
        .iter()
        .zip(&r.def.groups)
        .enumerate()
        .map(|(i, (g, spec))| {
            let c = &g.counts;
            let mut m = object(json!({
                "index": i,
                "state": g.state.as_str(),
                "size": c.size,
                "waiting": c.waiting,
                "offered": c.offered,
                "downloading": c.downloading,
                "installed": c.installed,
                "confirmed": c.confirmed,
                "failed": c.failed,
                "timedOut": c.timed_out,
            }));
            match spec {
                GroupSpec::Percent(p) => {
                    let percent = share(*p) * 100.0;
                    // Whole percents render as integers, as they are usually given.
                    let value = if percent.fract() == 0.0 {
                        json!(percent as u64)
                    } else {
                        json!(percent)
                    };
                    m.insert("percent".into(), value)
                }
                GroupSpec::Devices(ids) => m.insert("devices".into(), json!(ids)),
            };
            if let Some(t) = g.started_ms {
                m.insert("startedTimestamp".into(), json!(t));
            }
            if let Some(t) = g.finished_ms {
                m.insert("finishedTimestamp".into(), json!(t));
            }
            Value::Object(m)
        })
        .collect();
    let d = &r.def;
    let mut m = object(json!({
        "id": r.id.to_string(),
        "name": d.name,
        "partnerId": r.partner_id,
        "deviceTypeId": d.device_type_id,
        "firmwareImageId": d.record_id.to_string(),
        "type": d.fw_type,
        "versionNumber": d.version_number.to_string(),
        "state": r.state.as_str(),
        "successThreshold": share(d.success),
        "errorThreshold": share(d.error),
        "minFailures": d.min_failures,
        "confirmTimeoutSecs": d.confirm_timeout_secs,
        "soakSecs": d.soak_secs,
        "autoAdvance": d.auto_advance,
        "filter": {"tags": d.filter.tags, "attributes": d.filter.attributes},
        "groups": groups,
        "createdTimestamp": r.created_ms,
        "updatedTimestamp": r.updated_ms,
    }));
    put_opt(&mut m, "stopReason", r.stop_reason.as_deref());
    if let Some(n) = d.max_per_minute {
        m.insert("maxPerMinute".into(), json!(n));
    }
    if let Some(at) = d.start_at_ms {
        m.insert("startAt".into(), json!(at));
    }
    if let Some(w) = &d.window {
        m.insert(
            "window".into(),
            json!({
                "days": w.day_names(),
                "start": format!("{:02}:{:02}", w.start_minute / 60, w.start_minute % 60),
                "durationMinutes": w.duration_minutes,
            }),
        );
    }
    Value::Object(m)
}

fn device_type_fleet(d: &DeviceTypeFleet, labels: &Labels) -> Value {
    let failures: Vec<Value> = d
        .failures
        .iter()
        .map(|f| {
            let mut m = object(json!({
                "deviceId": f.device_id,
                "type": f.fw_type,
                "versionNumber": f.version_number.to_string(),
                "result": f.result,
                "reason": result_reason(f.result),
                "timestamp": f.at_ms,
            }));
            put_label(&mut m, labels, f.fw_type, f.version_number);
            Value::Object(m)
        })
        .collect();
    json!({
        "deviceTypeId": d.device_type.id,
        "name": d.device_type.name,
        "devices": d.devices,
        "neverSeen": d.never_seen,
        "seenLastHour": d.seen_last_hour,
        "seenLastDay": d.seen_last_day,
        "firmwareTypes": d.fw_types.iter().map(|f| fw_type_fleet(f, labels)).collect::<Vec<_>>(),
        "failures": failures,
        "failuresTotal": d.failures_total,
    })
}

/// The fleet summary (`GET …/fleet`).
pub fn fleet(s: &FleetSummary) -> Value {
    json!({
        "timestamp": s.at_ms,
        "devices": s.device_types.iter().map(|d| d.devices).sum::<u64>(),
        "deviceTypes": s.device_types.iter().map(|d| device_type_fleet(d, &s.labels)).collect::<Vec<_>>(),
    })
}

/// One device's outcome in a rollout.
pub fn rollout_device(device_id: &str, o: &DeviceOutcome) -> Value {
    let mut m = object(json!({
        "deviceId": device_id,
        "group": o.group,
        "outcome": o.outcome.as_str(),
        "updatedTimestamp": o.updated_ms,
    }));
    if let Some(t) = o.first_offer_ms {
        m.insert("firstOfferTimestamp".into(), json!(t));
    }
    put_opt(&mut m, "reason", o.reason.as_deref());
    Value::Object(m)
}

/// A record's binary as clients download it: filename, size and every digest.
pub fn artifact(a: &Artifact) -> Value {
    json!({
        "filename": a.filename,
        "size": a.size,
        "sha256": hex(&a.sha256),
        "sha1": hex(&a.digests.sha1),
        "md5": hex(&a.digests.md5),
    })
}

/// A record with its binary's details, when it has one.
pub fn with_artifact(mut record: Value, artifact: Option<&Artifact>) -> Value {
    if let (Some(a), Some(m)) = (artifact, record.as_object_mut()) {
        m.insert("binary".into(), self::artifact(a));
    }
    record
}
