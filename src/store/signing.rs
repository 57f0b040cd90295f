//! Signed images in the store: partners' registered public keys (add, list, revoke), the
//! signatures submitted for pool records (each verified before it is stored), device types'
//! signature policy, and the one release rule every path that hands an image to devices
//! asks: eligibility, push, and rollouts.
//!
//! Signatures are verified once, when submitted; offers only look up which stored ones still
//! count (key unrevoked, manifest still matching the record and admitting the device type
//! now). The manifest bytes and their rules are `signing.rs`; devices verify again on their
//! side, which is what protects them from a tampered database.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{DEVICE_TYPES, IMAGE_SIGNATURES, RECORDS, SIGNATURE_POLICIES, SIGNING_KEYS};
use super::{Result, Store, StoreError, audit, codec};
use crate::ids::now_ms;
use crate::model::{DeviceType, ModelError, Record, validate_name};
use crate::signing::{self, Manifest, PublicKey, Signature};

/// A partner's registered public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyInfo {
    /// Hex of `signing::key_id(public_key)`.
    pub key_id: String,
    pub partner_id: String,
    pub name: String,
    pub public_key: PublicKey,
    pub created_ms: u64,
    /// Set once revoked; a revoked key stays listed so its id is never taken again.
    pub revoked_ms: Option<u64>,
}

/// A verified signature of one record's manifest by one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSignature {
    pub record_id: u64,
    pub key_id: String,
    /// The signed manifest bytes, exactly as submitted.
    pub manifest: Vec<u8>,
    /// 64 bytes (postcard has no 64-byte array).
    pub signature: Vec<u8>,
    pub created_ms: u64,
}

impl ImageSignature {
    pub fn key_id_bytes(&self) -> Option<signing::KeyId> {
        signing::from_hex(&self.key_id)
    }

    pub fn signature_bytes(&self) -> Option<Signature> {
        self.signature.as_slice().try_into().ok()
    }
}

/// A device type's signature policy; a device type without a row requires nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignaturePolicy {
    pub require_signature: bool,
    pub updated_ms: u64,
}

/// A signature as a partner submits it: the manifest bytes, which key, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedSignature {
    pub manifest: Vec<u8>,
    /// Hex, either case.
    pub key_id: String,
    pub signature: Signature,
}

/// A signature as listed for a record: whether it still counts, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureView {
    pub signature: ImageSignature,
    pub key_revoked: bool,
    /// The manifest no longer matches the record (its version string was changed).
    pub stale: bool,
}

fn invalid(field: &'static str, trace: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid(ModelError::new(field, trace, reason))
}

/// Why a manifest does not describe `record`, if it does not.
pub(crate) fn manifest_mismatch(m: &Manifest, record: &Record) -> Option<&'static str> {
    let Some(b) = &record.binary else {
        return Some("the record has no binary");
    };
    if m.partner_id != record.partner_id {
        Some("partner id")
    } else if m.fw_type != record.fw_type {
        Some("firmware type")
    } else if m.version_number != record.version_number {
        Some("version number")
    } else if m.version != record.version {
        Some("version string")
    } else if m.size != b.size {
        Some("size")
    } else if m.sha256 != b.sha256 {
        Some("sha256")
    } else if m.blake3 != b.blake3 {
        Some("blake3")
    } else {
        None
    }
}

/// Whether device type `dt` requires signed images.
pub(crate) fn requires_signature(
    policies: &impl ReadableTable<&'static str, &'static [u8]>,
    dt: &str,
) -> Result<bool> {
    Ok(codec::get::<&str, SignaturePolicy>(policies, dt)?.is_some_and(|p| p.require_signature))
}

/// Every stored signature of a record.
fn signatures_of(
    sigs: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    record_id: u64,
) -> Result<Vec<ImageSignature>> {
    let mut out = Vec::new();
    for entry in sigs.range((record_id, "")..)? {
        let (k, v) = entry?;
        if k.value().0 != record_id {
            break;
        }
        out.push(codec::decode(v.value())?);
    }
    Ok(out)
}

/// The record's signatures that count for device type `dt` at `now_s`: by a registered,
/// unrevoked key of the record's partner, over a manifest that still describes the record
/// and admits `dt` now.
pub(crate) fn usable_signatures(
    sigs: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    keys: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    record: &Record,
    dt: &str,
    now_s: u64,
) -> Result<Vec<ImageSignature>> {
    let mut out = Vec::new();
    for s in signatures_of(sigs, record.id)? {
        let key: Option<SigningKeyInfo> =
            codec::get(keys, (record.partner_id.as_str(), s.key_id.as_str()))?;
        if key.is_none_or(|k| k.revoked_ms.is_some()) {
            continue;
        }
        let Ok(m) = Manifest::decode(&s.manifest) else {
            continue;
        };
        if manifest_mismatch(&m, record).is_none() && m.admits(dt, now_s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Removes a deleted record's signatures (the record's deletion calls this in its
/// transaction).
pub(crate) fn forget_record(txn: &WriteTransaction, record_id: u64) -> Result<()> {
    let mut table = txn.open_table(IMAGE_SIGNATURES)?;
    let keys: Vec<String> = signatures_of(&table, record_id)?
        .into_iter()
        .map(|s| s.key_id)
        .collect();
    for k in keys {
        table.remove((record_id, k.as_str()))?;
    }
    Ok(())
}

/// Removes a deleted device type's policy.
pub(crate) fn forget_device_type(txn: &WriteTransaction, dt: &str) -> Result<()> {
    txn.open_table(SIGNATURE_POLICIES)?.remove(dt)?;
    Ok(())
}

/// The answer of the release rule for a record that a device type may not get.
fn unsigned_error() -> StoreError {
    StoreError::conflict(
        "signature_required",
        "the device type requires signed images and this image has no valid signature by an unrevoked key for it",
    )
}

/// The release rule inside a transaction: Ok when `record` may go to devices of `dt`.
pub(crate) fn check_release(
    txn: &WriteTransaction,
    record: &Record,
    dt: &str,
    now_s: u64,
) -> Result<()> {
    if !requires_signature(&txn.open_table(SIGNATURE_POLICIES)?, dt)? {
        return Ok(());
    }
    let usable = usable_signatures(
        &txn.open_table(IMAGE_SIGNATURES)?,
        &txn.open_table(SIGNING_KEYS)?,
        record,
        dt,
        now_s,
    )?;
    if usable.is_empty() {
        Err(unsigned_error())
    } else {
        Ok(())
    }
}

/// A record by id. (The catalog's getter is not used: the catalog calls into this file.)
fn record_by_id(
    records: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<Record>> {
    codec::get(records, id)
}

pub(crate) fn now_s() -> u64 {
    now_ms() / 1000
}

impl Store {
    /// Registers a partner's public key; 409 `signing_key_exists` if it is registered (or
    /// was, and is revoked: a revoked key never comes back).
    pub fn add_signing_key(
        &self,
        actor: &str,
        partner_id: &str,
        name: &str,
        public_key: PublicKey,
    ) -> Result<SigningKeyInfo> {
        validate_name(name)?;
        if !signing::public_key_usable(&public_key) {
            return Err(invalid(
                "publicKey",
                "invalid_public_key",
                "publicKey is not an Ed25519 public key",
            ));
        }
        let key = SigningKeyInfo {
            key_id: signing::to_hex(&signing::key_id(&public_key)),
            partner_id: partner_id.to_string(),
            name: name.to_string(),
            public_key,
            created_ms: now_ms(),
            revoked_ms: None,
        };
        let actor = actor.to_string();
        self.write(true, move |txn| {
            let mut table = txn.open_table(SIGNING_KEYS)?;
            let k = (key.partner_id.as_str(), key.key_id.as_str());
            if table.get(k)?.is_some() {
                return Err(StoreError::conflict(
                    "signing_key_exists",
                    "this public key is registered already (revoked keys cannot be added again)",
                ));
            }
            let bytes = codec::encode(&key)?;
            table.insert(k, bytes.as_slice())?;
            drop(table);
            audit::append(
                txn,
                &actor,
                "signing_key.add",
                &format!("partner/{}/signingKeys/{}", key.partner_id, key.key_id),
                &key.name,
            )?;
            Ok(key)
        })
    }

    /// The partner's keys, revoked ones included, oldest first.
    pub fn signing_keys(&self, partner_id: &str) -> Result<Vec<SigningKeyInfo>> {
        let txn = self.read()?;
        let table = txn.open_table(SIGNING_KEYS)?;
        let mut out = Vec::new();
        for entry in table.range((partner_id, "")..)? {
            let (k, v) = entry?;
            if k.value().0 != partner_id {
                break;
            }
            out.push(codec::decode::<SigningKeyInfo>(v.value())?);
        }
        out.sort_by_key(|k| k.created_ms);
        Ok(out)
    }

    /// Revokes a key: images signed only by it are no longer released to device types that
    /// require signatures, and it signs nothing new. Revoking a revoked key changes nothing.
    pub fn revoke_signing_key(
        &self,
        actor: &str,
        partner_id: &str,
        key_id: &str,
    ) -> Result<SigningKeyInfo> {
        let (pid, kid, actor) = (
            partner_id.to_string(),
            key_id.to_ascii_lowercase(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let mut table = txn.open_table(SIGNING_KEYS)?;
            let mut key: SigningKeyInfo = codec::get(&table, (pid.as_str(), kid.as_str()))?
                .ok_or_else(|| StoreError::not_found("signing key", "unknown_signing_key"))?;
            if key.revoked_ms.is_some() {
                return Ok(key);
            }
            key.revoked_ms = Some(now_ms());
            let bytes = codec::encode(&key)?;
            table.insert((pid.as_str(), kid.as_str()), bytes.as_slice())?;
            drop(table);
            audit::append(
                txn,
                &actor,
                "signing_key.revoke",
                &format!("partner/{pid}/signingKeys/{kid}"),
                &key.name,
            )?;
            Ok(key)
        })
    }

    /// Stores a signature of the partner's pool record `(fw_type, vn)` after verifying it:
    /// the manifest must decode and describe the record (which must have its binary), the
    /// key must be the partner's and unrevoked, and the signature must verify. Any failure
    /// is a 400 and nothing is stored. A second signature by the same key replaces the
    /// first; at most `storage.max_signatures_per_image` keys sign one image.
    pub fn add_signature(
        &self,
        actor: &str,
        partner_id: &str,
        fw_type: u16,
        vn: u64,
        submitted: SubmittedSignature,
    ) -> Result<ImageSignature> {
        let SubmittedSignature {
            manifest,
            key_id,
            signature,
        } = submitted;
        let decoded = Manifest::decode(&manifest)
            .map_err(|e| invalid("manifest", "bad_manifest", e.to_string()))?;
        let record = self
            .pool_record(partner_id, fw_type, vn)?
            .ok_or_else(|| StoreError::not_found("pool record", "unknown_version_number"))?;
        let (pid, kid, actor) = (
            partner_id.to_string(),
            key_id.to_ascii_lowercase(),
            actor.to_string(),
        );
        let limit = self.config().max_signatures_per_image;
        self.write(true, move |txn| {
            let record = record_by_id(&txn.open_table(RECORDS)?, record.id)?
                .filter(|r| r.partner_id == pid)
                .ok_or_else(|| StoreError::not_found("pool record", "unknown_version_number"))?;
            if record.binary.is_none() {
                return Err(StoreError::conflict(
                    "no_binary",
                    "attach the binary before signing the image",
                ));
            }
            if let Some(field) = manifest_mismatch(&decoded, &record) {
                return Err(invalid(
                    "manifest",
                    "manifest_mismatch",
                    format!("the manifest's {field} differs from the image's"),
                ));
            }
            let key: SigningKeyInfo = codec::get(
                &txn.open_table(SIGNING_KEYS)?,
                (pid.as_str(), kid.as_str()),
            )?
            .ok_or_else(|| {
                invalid(
                    "keyId",
                    "unknown_signing_key",
                    "keyId names no signing key of this partner",
                )
            })?;
            if key.revoked_ms.is_some() {
                return Err(invalid(
                    "keyId",
                    "signing_key_revoked",
                    "the signing key is revoked",
                ));
            }
            if !signing::verify(&key.public_key, &manifest, &signature) {
                return Err(invalid(
                    "signature",
                    "bad_signature",
                    "the signature does not verify with this key over this manifest",
                ));
            }
            let mut table = txn.open_table(IMAGE_SIGNATURES)?;
            let others = signatures_of(&table, record.id)?
                .iter()
                .filter(|s| s.key_id != kid)
                .count();
            if others >= limit {
                return Err(StoreError::conflict(
                    "too_many_signatures",
                    format!(
                        "the image has {others} signatures already (storage.max_signatures_per_image)"
                    ),
                ));
            }
            let sig = ImageSignature {
                record_id: record.id,
                key_id: kid.clone(),
                manifest,
                signature: signature.to_vec(),
                created_ms: now_ms(),
            };
            let bytes = codec::encode(&sig)?;
            table.insert((record.id, kid.as_str()), bytes.as_slice())?;
            drop(table);
            audit::append(
                txn,
                &actor,
                "image.sign",
                &format!("partner/{pid}/pool/{fw_type}/{vn}"),
                &format!("key {kid}"),
            )?;
            Ok(sig)
        })
    }

    /// The signatures of a pool record, with whether each still counts.
    pub fn signatures(
        &self,
        partner_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<Vec<SignatureView>> {
        let record = self
            .pool_record(partner_id, fw_type, vn)?
            .ok_or_else(|| StoreError::not_found("pool record", "unknown_version_number"))?;
        let txn = self.read()?;
        let keys = txn.open_table(SIGNING_KEYS)?;
        let mut out = Vec::new();
        for s in signatures_of(&txn.open_table(IMAGE_SIGNATURES)?, record.id)? {
            let key: Option<SigningKeyInfo> = codec::get(&keys, (partner_id, s.key_id.as_str()))?;
            let stale = Manifest::decode(&s.manifest)
                .map_or(true, |m| manifest_mismatch(&m, &record).is_some());
            out.push(SignatureView {
                key_revoked: key.is_none_or(|k| k.revoked_ms.is_some()),
                stale,
                signature: s,
            });
        }
        Ok(out)
    }

    /// The signatures of `record` that count for device type `dt` (verified at upload, by
    /// an unrevoked key of its partner, over a manifest that still matches the record and
    /// admits `dt`): what an offer to a device of `dt` carries.
    pub fn usable_signatures(&self, record: &Record, dt: &str) -> Result<Vec<ImageSignature>> {
        let txn = self.read()?;
        usable_signatures(
            &txn.open_table(IMAGE_SIGNATURES)?,
            &txn.open_table(SIGNING_KEYS)?,
            record,
            dt,
            now_s(),
        )
    }

    /// Sets whether the partner's device type `dt` requires signed images.
    pub fn set_signature_policy(
        &self,
        actor: &str,
        partner_id: &str,
        dt: &str,
        require_signature: bool,
    ) -> Result<SignaturePolicy> {
        let (pid, dt, actor) = (partner_id.to_string(), dt.to_string(), actor.to_string());
        self.write(true, move |txn| {
            codec::get::<&str, DeviceType>(&txn.open_table(DEVICE_TYPES)?, dt.as_str())?
                .filter(|d| d.partner_id == pid)
                .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
            let policy = SignaturePolicy {
                require_signature,
                updated_ms: now_ms(),
            };
            let bytes = codec::encode(&policy)?;
            txn.open_table(SIGNATURE_POLICIES)?
                .insert(dt.as_str(), bytes.as_slice())?;
            audit::append(
                txn,
                &actor,
                "device_type.signature_policy",
                &format!("partner/{pid}/deviceTypes/{dt}"),
                &format!("requireSignature {require_signature}"),
            )?;
            Ok(policy)
        })
    }

    /// The signature policy of the partner's device type `dt` (404 if it is not theirs).
    pub fn signature_policy(&self, partner_id: &str, dt: &str) -> Result<SignaturePolicy> {
        self.device_type(partner_id, dt)?
            .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
        let txn = self.read()?;
        Ok(
            codec::get(&txn.open_table(SIGNATURE_POLICIES)?, dt)?.unwrap_or(SignaturePolicy {
                require_signature: false,
                updated_ms: 0,
            }),
        )
    }

    /// May record `record_id` be released (offered, pushed, rolled out) to devices of device
    /// type `dt` under its signature policy? Ok if the type requires nothing or the record
    /// has a usable signature; 409 `signature_required` otherwise.
    pub fn may_release(&self, record_id: u64, dt: &str) -> Result<()> {
        let txn = self.read()?;
        let record = record_by_id(&txn.open_table(RECORDS)?, record_id)?
            .ok_or_else(|| StoreError::not_found("firmware image", "unknown_image"))?;
        if !requires_signature(&txn.open_table(SIGNATURE_POLICIES)?, dt)? {
            return Ok(());
        }
        let usable = usable_signatures(
            &txn.open_table(IMAGE_SIGNATURES)?,
            &txn.open_table(SIGNING_KEYS)?,
            &record,
            dt,
            now_s(),
        )?;
        if usable.is_empty() {
            Err(unsigned_error())
        } else {
            Ok(())
        }
    }
}
