//! The JSON shapes of the API: ids and version numbers as strings, timestamps in
//! milliseconds, optional fields omitted when empty (never `null`).

use serde_json::{Map, Value, json};

use crate::model::{
    AuditEntry, Device, DeviceLabels, DeviceType, FirmwareType, OtaEvent, OtaState, Partner,
    Record, TypeOta, hex, version_attribute_id,
};
use crate::store::{Artifact, AssociationView, DdiState};

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

fn ota_event(e: &OtaEvent) -> Value {
    json!({
        "timestamp": e.at_ms,
        "versionNumber": e.version_number.to_string(),
        "state": e.state.as_str(),
        "result": e.result,
        "bytesDone": e.bytes_done,
    })
}

fn type_ota(t: u16, o: &TypeOta) -> Value {
    let mut v = object(ota_event(&o.current));
    v.insert("type".into(), json!(t));
    v.insert("offeredTimestamp".into(), json!(o.offered_ms));
    v.insert(
        "history".into(),
        Value::Array(o.history.iter().map(ota_event).collect()),
    );
    Value::Object(v)
}

/// A device without its token: inventory, last seen, OTA state per type, pending pushes.
/// A device with its tags and attributes.
pub fn device(d: &Device, labels: &DeviceLabels) -> Value {
    let installed: Vec<Value> = d
        .reported
        .iter()
        .map(|(t, vn)| json!({"type": t, "versionNumber": vn.to_string(), "versionAttributeId": version_attribute_id(*t)}))
        .collect();
    let pushes: Vec<Value> = d
        .pushes
        .iter()
        .map(|(t, id)| json!({"type": t, "firmwareImageId": id.to_string(), "state": "pending"}))
        .collect();
    let mut m = object(json!({
        "deviceId": d.id,
        "deviceTypeId": d.device_type_id,
        "partnerId": d.partner_id,
        "createdTimestamp": d.created_ms,
        "installed": installed,
        "ota": d.ota.iter().map(|(t, o)| type_ota(*t, o)).collect::<Vec<_>>(),
        "pushes": pushes,
        "tags": labels.tags,
        "attributes": labels.attributes,
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
