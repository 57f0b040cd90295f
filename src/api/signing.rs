//! Handlers for signed images: a partner's signing keys (add, list, revoke), the
//! signatures of a pool record (list, submit), and a device type's signature policy; with
//! their JSON shapes. Hex is the one encoding of keys, manifests and signatures here.
//!
//! Not here: verification and the release rule (`store/signing.rs`), the manifest bytes
//! (`signing.rs`).

use std::sync::Arc;

use http::StatusCode;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::body::json_response;
use super::errors::ApiError;
use super::extract::{Fields, path_version};
use super::{Answer, App, Ctx};
use crate::signing::{from_hex, to_hex};
use crate::store::{SignaturePolicy, SignatureView, SigningKeyInfo, SubmittedSignature};

fn key_json(k: &SigningKeyInfo) -> Value {
    let mut v = json!({
        "keyId": k.key_id,
        "name": k.name,
        "publicKey": to_hex(&k.public_key),
        "partnerId": k.partner_id,
        "createdTimestamp": k.created_ms,
        "revoked": k.revoked_ms.is_some(),
    });
    if let (Some(at), Some(m)) = (k.revoked_ms, v.as_object_mut()) {
        m.insert("revokedTimestamp".into(), json!(at));
    }
    v
}

fn signature_json(s: &SignatureView) -> Value {
    json!({
        "keyId": s.signature.key_id,
        "manifest": to_hex(&s.signature.manifest),
        "signature": to_hex(&s.signature.signature),
        "createdTimestamp": s.signature.created_ms,
        "keyRevoked": s.key_revoked,
        "stale": s.stale,
        "valid": !s.key_revoked && !s.stale,
    })
}

fn policy_json(p: &SignaturePolicy) -> Value {
    json!({ "requireSignature": p.require_signature })
}

/// A hex field of exactly `N` bytes; 400 `invalid_<what>` otherwise.
fn hex_field<const N: usize>(
    f: &Fields,
    key: &str,
    trace: &'static str,
) -> Result<[u8; N], ApiError> {
    let text = f.req_str(key)?;
    from_hex::<N>(&text)
        .ok_or_else(|| ApiError::bad_request(trace, format!("{key} must be {} hex digits", 2 * N)))
}

pub async fn keys(app: &Arc<App>, partner: String) -> Answer {
    let list = app.blocking(move |s| Ok(s.signing_keys(&partner)?)).await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Array(list.iter().map(key_json).collect()),
    ))
}

pub async fn add_key(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let f = Fields::read(app, body).await?;
    let name = f.req_str("name")?;
    let public_key = hex_field::<32>(&f, "publicKey", "invalid_public_key")?;
    let actor = ctx.principal.actor();
    let key = app
        .blocking(move |s| Ok(s.add_signing_key(&actor, &partner, &name, public_key)?))
        .await?;
    Ok(json_response(StatusCode::CREATED, &key_json(&key)))
}

pub async fn revoke_key(app: &Arc<App>, ctx: &Ctx, partner: String, key_id: String) -> Answer {
    let actor = ctx.principal.actor();
    let key = app
        .blocking(move |s| Ok(s.revoke_signing_key(&actor, &partner, &key_id)?))
        .await?;
    Ok(json_response(StatusCode::OK, &key_json(&key)))
}

pub async fn signatures(
    app: &Arc<App>,
    partner: String,
    raw_type: String,
    raw_vn: String,
) -> Answer {
    let (t, vn) = path_version(&raw_type, &raw_vn)?;
    let list = app
        .blocking(move |s| Ok(s.signatures(&partner, t, vn)?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Array(list.iter().map(signature_json).collect()),
    ))
}

pub async fn add_signature(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    raw_type: String,
    raw_vn: String,
    body: Incoming,
) -> Answer {
    let (t, vn) = path_version(&raw_type, &raw_vn)?;
    let f = Fields::read(app, body).await?;
    let key_id = f.req_str("keyId")?;
    if from_hex::<{ crate::signing::KEY_ID_LEN }>(&key_id).is_none() {
        return Err(ApiError::bad_request(
            "unknown_signing_key",
            "keyId must be 16 hex digits",
        ));
    }
    let manifest_hex = f.req_str("manifest")?;
    let manifest = hex_bytes(&manifest_hex)
        .filter(|m| !m.is_empty() && m.len() <= crate::signing::MANIFEST_MAX)
        .ok_or_else(|| {
            ApiError::bad_request("bad_manifest", "manifest must be 1-1274 bytes in hex")
        })?;
    let signature = hex_field::<64>(&f, "signature", "bad_signature")?;
    let actor = ctx.principal.actor();
    let submitted = SubmittedSignature {
        manifest,
        key_id,
        signature,
    };
    let stored = app
        .blocking(move |s| Ok(s.add_signature(&actor, &partner, t, vn, submitted)?))
        .await?;
    let view = SignatureView {
        signature: stored,
        key_revoked: false,
        stale: false,
    };
    Ok(json_response(StatusCode::CREATED, &signature_json(&view)))
}

/// Any number of bytes from hex.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

pub async fn policy(app: &Arc<App>, partner: String, dt: String) -> Answer {
    let p = app
        .blocking(move |s| Ok(s.signature_policy(&partner, &dt)?))
        .await?;
    Ok(json_response(StatusCode::OK, &policy_json(&p)))
}

pub async fn set_policy(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    dt: String,
    body: Incoming,
) -> Answer {
    let f = Fields::read(app, body).await?;
    let require = f.req_bool("requireSignature")?;
    let actor = ctx.principal.actor();
    let p = app
        .blocking(move |s| Ok(s.set_signature_policy(&actor, &partner, &dt, require)?))
        .await?;
    Ok(json_response(StatusCode::OK, &policy_json(&p)))
}
