//! The pure part of hawkBit DDI: the JSON shapes otad answers (poll, deploymentBase,
//! cancelAction, the error body), the parsing of feedback bodies, and the mapping of DDI's
//! `execution`/`result.finished` values to otad's OTA outcomes (docs/ddi.md).
//!
//! No I/O here: the handlers (`mod.rs`) read bodies, ask the store and send the answers.
//! Ids are JSON strings (hawkbit-rs insists); action ids are small numbers because SWUpdate
//! sends them back as JSON numbers.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::errors::ApiError;
use crate::model::hex;
use crate::store::{Artifact, ConfigMode, DdiOutcome, DdiPoll, ImageSignature};

/// `config.polling.sleep`: `HH:MM:SS` (mandatory for every client).
pub fn sleep(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn href(url: String) -> Value {
    json!({ "href": url })
}

/// The base poll. `base` is `https://host/{tenant}/controller/v1/{controllerId}`.
pub fn poll(base: &str, poll: &DdiPoll, sleep_secs: u64) -> Value {
    let mut links = Map::new();
    if let Some(id) = poll.deployment {
        // rauc-hawkbit-updater matches `/deploymentBase/(.+)\?c=(.+)$`.
        links.insert(
            "deploymentBase".into(),
            href(format!("{base}/deploymentBase/{id}?c=-{id:x}")),
        );
    }
    if let Some(id) = poll.cancel {
        links.insert(
            "cancelAction".into(),
            href(format!("{base}/cancelAction/{id}")),
        );
    }
    if poll.config_wanted {
        links.insert("configData".into(), href(format!("{base}/configData")));
    }
    json!({
        "config": { "polling": { "sleep": sleep(sleep_secs) } },
        "_links": links,
    })
}

/// One chunk of a deployment: a firmware type's offered record and its binary.
pub struct ChunkView {
    /// The firmware type's name.
    pub part: String,
    pub version: String,
    pub name: String,
    /// The record id, the chunk's software module in URLs.
    pub module_id: u64,
    pub artifact: Artifact,
    /// The record's signatures that count for the device (docs/signing.md), as chunk
    /// metadata; empty for an unsigned image.
    pub signatures: Vec<ImageSignature>,
}

/// Percent-encodes a path segment (filenames may hold anything but `/` and controls).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn chunk(base: &str, c: &ChunkView) -> Value {
    let a = &c.artifact;
    let file = format!(
        "{base}/softwaremodules/{}/artifacts/{}",
        c.module_id,
        segment(&a.filename)
    );
    let md5 = format!("{file}.MD5SUM");
    let mut chunk = json!({
        "part": c.part,
        "version": c.version,
        "name": c.name,
        "artifacts": [{
            "filename": a.filename,
            "size": a.size,
            "hashes": {
                "sha1": hex(&a.digests.sha1),
                "md5": hex(&a.digests.md5),
                "sha256": hex(&a.sha256),
            },
            "_links": {
                "download": href(file.clone()),
                "download-http": href(file),
                "md5sum": href(md5.clone()),
                "md5sum-http": href(md5),
            },
        }],
    });
    let metadata = signature_metadata(&c.signatures);
    if let (false, Some(m)) = (metadata.is_empty(), chunk.as_object_mut()) {
        m.insert("metadata".into(), Value::Array(metadata));
    }
    chunk
}

/// hawkBit chunk metadata for a signed image: `otad.manifest` (the signed manifest bytes,
/// hex) and one `otad.signature.<keyId>` (the Ed25519 signature, hex) per key that signed
/// those same bytes. Only the newest manifest is given, as in a signed OCP/1 OFFER.
fn signature_metadata(signatures: &[ImageSignature]) -> Vec<Value> {
    let Some(newest) = signatures.iter().max_by_key(|s| s.created_ms) else {
        return Vec::new();
    };
    let mut out = vec![json!({"key": "otad.manifest", "value": hex(&newest.manifest)})];
    for s in signatures.iter().filter(|s| s.manifest == newest.manifest) {
        out.push(json!({
            "key": format!("otad.signature.{}", s.key_id),
            "value": hex(&s.signature),
        }));
    }
    out
}

/// `deploymentBase/{id}` (and `installedBase/{id}`): both forced, one chunk per type.
pub fn deployment(base: &str, action_id: u64, chunks: &[ChunkView]) -> Value {
    json!({
        "id": action_id.to_string(),
        "deployment": {
            "download": "forced",
            "update": "forced",
            "chunks": chunks.iter().map(|c| chunk(base, c)).collect::<Vec<_>>(),
        },
    })
}

/// `cancelAction/{id}`.
pub fn cancel(action_id: u64) -> Value {
    json!({
        "id": action_id.to_string(),
        "cancelAction": { "stopId": action_id.to_string() },
    })
}

/// The `.MD5SUM` file of an artifact, as `md5sum` prints it.
pub fn md5sum(artifact: &Artifact) -> String {
    format!("{}  {}", hex(&artifact.digests.md5), artifact.filename)
}

/// The DDI error body (hawkBit's shape) for an API error.
pub fn error(e: &ApiError) -> Value {
    json!({
        "exceptionClass": format!("otad.{}", e.trace),
        "errorCode": format!("hawkbit.server.error.{}", e.trace),
        "message": e.message,
    })
}

/// A parsed feedback body: what it says, whatever other fields (`id`, `time`) it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub execution: String,
    pub finished: String,
    /// `result.progress.cnt`, when sent.
    pub progress: u64,
    /// `status.details`, joined.
    pub details: String,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_feedback", message)
}

/// Parses `{"status":{"execution","result":{"finished","progress"?},"details"?}}`. Extra
/// fields are ignored (SWUpdate adds `id` as a number and a zone-less `time`).
pub fn parse_feedback(bytes: &[u8]) -> Result<Feedback, ApiError> {
    let v: Value = crate::api::body::parse_json(bytes)?;
    let status = v
        .get("status")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("status must be an object"))?;
    let execution = status
        .get("execution")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("status.execution must be a string"))?
        .to_string();
    let result = status
        .get("result")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("status.result must be an object"))?;
    let finished = result
        .get("finished")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("status.result.finished must be a string"))?
        .to_string();
    if !matches!(finished.as_str(), "success" | "failure" | "none") {
        return Err(bad(format!(
            "status.result.finished {finished:?} is not success, failure or none"
        )));
    }
    let progress = match result.get("progress") {
        None | Some(Value::Null) => 0,
        Some(Value::Object(p)) => p.get("cnt").and_then(Value::as_u64).unwrap_or(0),
        Some(_) => return Err(bad("status.result.progress must be an object")),
    };
    let details = match status.get("details") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("status.details must be a list of strings")),
    };
    Ok(Feedback {
        execution,
        finished,
        progress,
        details,
    })
}

/// The OTA outcome of a deployment feedback (docs/ddi.md's state map).
pub fn outcome(f: &Feedback) -> Result<DdiOutcome, ApiError> {
    Ok(match (f.execution.as_str(), f.finished.as_str()) {
        ("download", _) => DdiOutcome::Downloading,
        ("downloaded", _) => DdiOutcome::Downloaded,
        ("proceeding" | "resumed" | "scheduled", _) => DdiOutcome::Installing,
        ("closed", "success") => DdiOutcome::Succeeded,
        ("closed", "failure") | ("rejected", _) => DdiOutcome::Failed,
        ("closed", _) => {
            return Err(bad(
                "execution closed needs result.finished success or failure",
            ));
        }
        ("canceled", _) => DdiOutcome::Deferred,
        (other, _) => {
            return Err(bad(format!(
                "status.execution {other:?} is not one of closed, proceeding, canceled, \
                 scheduled, rejected, resumed, downloaded, download"
            )));
        }
    })
}

/// Parses configData: `{"mode"?: "merge|replace|remove", "data": {key: value}}`; other
/// fields (SWUpdate's old-style `id`, `time`, `status`) are ignored. Numbers and booleans
/// are kept as their text.
pub fn parse_config(bytes: &[u8]) -> Result<(ConfigMode, BTreeMap<String, String>), ApiError> {
    let bad = |m: &str| ApiError::bad_request("bad_config_data", m.to_string());
    let v: Value = crate::api::body::parse_json(bytes)?;
    let mode = match v.get("mode") {
        None | Some(Value::Null) => ConfigMode::Merge,
        Some(Value::String(m)) => match m.as_str() {
            "merge" => ConfigMode::Merge,
            "replace" => ConfigMode::Replace,
            "remove" => ConfigMode::Remove,
            _ => return Err(bad("mode must be merge, replace or remove")),
        },
        Some(_) => return Err(bad("mode must be a string")),
    };
    let data = v
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("data must be an object"))?;
    let mut out = BTreeMap::new();
    for (k, v) in data {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(bad("attribute values must be strings")),
        };
        out.insert(k.clone(), text);
    }
    Ok((mode, out))
}

/// Whether a cancelAction feedback ends the cancellation (any final answer does).
pub fn cancel_done(f: &Feedback) -> Result<bool, ApiError> {
    match f.execution.as_str() {
        "closed" | "rejected" | "canceled" => Ok(true),
        "proceeding" | "scheduled" | "resumed" | "download" | "downloaded" => Ok(false),
        other => Err(bad(format!(
            "status.execution {other:?} is not a DDI execution"
        ))),
    }
}

/// The failure reason kept from a feedback's details: at most `max` characters.
pub fn reason(details: &str, max: usize) -> String {
    details.chars().take(max).collect()
}

/// An action id from the path: the decimal number otad handed out.
pub fn action_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found("unknown_action", "no such action"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_is_hh_mm_ss() {
        assert_eq!(sleep(300), "00:05:00");
        assert_eq!(sleep(3_661), "01:01:01");
        assert_eq!(sleep(359_999), "99:59:59");
    }

    #[test]
    fn feedback_parsing_and_the_state_map() {
        let swupdate = br#"{"id":17,"time":"20261202T041500","status":{"result":{"finished":"none","progress":{"cnt":0,"of":0}},"execution":"proceeding","details":["Installing"]}}"#;
        let f = parse_feedback(swupdate).unwrap();
        assert_eq!(outcome(&f).unwrap(), DdiOutcome::Installing);
        assert_eq!(f.details, "Installing");
        let closed = br#"{"status":{"execution":"closed","result":{"finished":"success"}}}"#;
        assert_eq!(
            outcome(&parse_feedback(closed).unwrap()).unwrap(),
            DdiOutcome::Succeeded
        );
        let failed = br#"{"status":{"execution":"closed","result":{"finished":"failure"},"details":["hash mismatch","sha1"]}}"#;
        let f = parse_feedback(failed).unwrap();
        assert_eq!(outcome(&f).unwrap(), DdiOutcome::Failed);
        assert_eq!(f.details, "hash mismatch; sha1");
        assert_eq!(reason(&f.details, 4), "hash");
        for (body, trace) in [
            (&b"{"[..], "invalid_json"),
            (
                br#"{"status":{"execution":"exploded","result":{"finished":"none"}}}"#,
                "bad_feedback",
            ),
            (
                br#"{"status":{"execution":"closed","result":{"finished":"maybe"}}}"#,
                "bad_feedback",
            ),
            (br#"{"status":{"execution":"closed"}}"#, "bad_feedback"),
            (br#"{"status":"closed"}"#, "bad_feedback"),
        ] {
            let e = parse_feedback(body).and_then(|f| outcome(&f)).unwrap_err();
            assert_eq!(e.trace, trace, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn links_have_the_shapes_clients_match() {
        let p = DdiPoll {
            deployment: Some(42),
            cancel: None,
            config_wanted: true,
        };
        let v = poll("https://h/t/controller/v1/d", &p, 60);
        let href = v["_links"]["deploymentBase"]["href"].as_str().unwrap();
        assert_eq!(href, "https://h/t/controller/v1/d/deploymentBase/42?c=-2a");
        assert_eq!(v["config"]["polling"]["sleep"], "00:01:00");
        assert!(v["_links"]["configData"]["href"].is_string());
        assert!(v["_links"].get("cancelAction").is_none());
        assert_eq!(segment("fw 1.swu"), "fw%201.swu");
    }
}
