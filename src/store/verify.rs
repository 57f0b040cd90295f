//! `otad db verify`: a read-only consistency check of the whole database.
//!
//! It re-hashes every blob (BLAKE3, SHA-256, the outboard, and SHA-1 and MD5 where they are
//! recorded) from its rows, recounts every
//! reference, checks that every index points at what it names, that counters are at or above
//! every allocated number, that stored image signatures still verify, and that no data rows
//! are orphaned. It reports every problem it finds instead of stopping at the first. Runs in
//! one read transaction, so it sees one consistent snapshot even while a server writes.

use std::collections::{BTreeMap, BTreeSet};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};
use sha2::{Digest, Sha256};

use super::blobs::{BlobMeta, OUTBOARD_ROW_PAIRS, ROW_BYTES, Upload, UploadState};
use super::catalog::{counter_scope, name_key};
use super::ddi::{DdiState, GatewayToken};
use super::digests::{DigestPair, Digests};
use super::signing::{ImageSignature, SignaturePolicy, SigningKeyInfo};
use super::tables::{
    ASSOC_BY_RECORD, ASSOCIATIONS, BINARY_NAMES, BLOB_BY_SHA, BLOBS, CHUNKS, COUNTERS, DDI_ACTIONS,
    DDI_TENANTS, DEVICE_LABELS, DEVICE_TOKENS, DEVICE_TYPES, DEVICES, DEVICES_BY_TYPE, DIGESTS,
    GATEWAY_BY_PARTNER, GATEWAY_TOKENS, IMAGE_SIGNATURES, OUTBOARDS, OWNED, PARTNER_TENANTS,
    PARTNERS, RECORD_BY_NUMBER, RECORD_NAMES, RECORDS, RECORDS_BY_PARTNER, ROLLOUT_DEVICES,
    ROLLOUT_DUE, ROLLOUT_HELD, ROLLOUT_LATEST, ROLLOUTS, SIGNATURE_POLICIES, SIGNING_KEYS, STAGED,
    UPLOADS, USERS,
};
use super::{Result, codec};
use crate::hashtree::{OutboardBuilder, PAIR, pair_count};
use crate::model::{Device, DeviceLabels, DeviceType, Partner, Record, User, hex};
use crate::rollout::{Counts, DeviceOutcome, Rollout};
use crate::signing::{self, Manifest};

/// What a verification found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub records: u64,
    pub devices: u64,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the database; `Err` only when it cannot be read at all.
pub fn verify(db: &Database) -> Result<Report> {
    let txn = db.begin_read()?;
    let mut report = Report::default();
    let mut refs: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut live_data: BTreeSet<u64> = BTreeSet::new();
    check_blobs(&txn, &mut report, &mut live_data)?;
    check_uploads(&txn, &mut report, &mut live_data)?;
    check_orphan_rows(&txn, &mut report, &live_data)?;
    check_digests_and_names(&txn, &mut report)?;
    for entry in txn.open_table(OWNED)?.iter()? {
        let (k, v) = entry?;
        let (partner, sha) = k.value();
        let blake3 = *v.value();
        *refs.entry(blake3).or_default() += 1;
        if txn.open_table(BLOBS)?.get(&blake3)?.is_none() {
            report.problems.push(format!(
                "partner {partner} owns {} but the blob is missing",
                hex(sha)
            ));
        }
    }
    check_records(&txn, &mut report, &mut refs)?;
    for entry in txn.open_table(BLOBS)?.iter()? {
        let (k, v) = entry?;
        let Ok(meta) = codec::decode::<BlobMeta>(v.value()) else {
            continue;
        };
        let counted = refs.get(k.value()).copied().unwrap_or(0);
        if meta.refs != counted {
            report.problems.push(format!(
                "blob {} has refcount {} but {counted} references",
                hex(k.value()),
                meta.refs
            ));
        }
    }
    check_devices(&txn, &mut report)?;
    check_rollouts(&txn, &mut report)?;
    check_people(&txn, &mut report)?;
    check_signing(&txn, &mut report)?;
    check_ddi(&txn, &mut report)?;
    Ok(report)
}

fn check_blobs(txn: &ReadTransaction, report: &mut Report, live: &mut BTreeSet<u64>) -> Result<()> {
    let by_sha = txn.open_table(BLOB_BY_SHA)?;
    for entry in txn.open_table(BLOBS)?.iter()? {
        let (k, v) = entry?;
        let blake3 = *k.value();
        let name = hex(&blake3);
        let meta: BlobMeta = match codec::decode(v.value()) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("blob {name}: {e}"));
                continue;
            }
        };
        report.blobs += 1;
        report.blob_bytes += meta.size;
        if !live.insert(meta.data_id) {
            report
                .problems
                .push(format!("blob {name}: data id {} used twice", meta.data_id));
        }
        if by_sha.get(&meta.sha256)?.map(|v| *v.value()) != Some(blake3) {
            report.problems.push(format!(
                "blob {name}: sha256 index does not point back to it"
            ));
        }
        if let Some(problem) = rehash(txn, &meta, &blake3)? {
            report.problems.push(format!("blob {name}: {problem}"));
        }
    }
    for entry in by_sha.iter()? {
        let (k, v) = entry?;
        if txn.open_table(BLOBS)?.get(v.value())?.is_none() {
            report.problems.push(format!(
                "sha256 index {} points at a missing blob",
                hex(k.value())
            ));
        }
    }
    Ok(())
}

/// Re-reads a blob's rows and recomputes every hash; `Some(problem)` on any mismatch.
fn rehash(txn: &ReadTransaction, meta: &BlobMeta, blake3: &[u8; 32]) -> Result<Option<String>> {
    let mut tree = OutboardBuilder::new();
    let mut sha = Sha256::new();
    let mut pair = DigestPair::default();
    let mut size = 0u64;
    let chunks = txn.open_table(CHUNKS)?;
    for (expected_index, entry) in
        (0u32..).zip(chunks.range((meta.data_id, 0)..=(meta.data_id, u32::MAX))?)
    {
        let (k, v) = entry?;
        if k.value().1 != expected_index {
            return Ok(Some(format!("row {expected_index} missing")));
        }
        let row = v.value();
        if row.len() != ROW_BYTES && size + row.len() as u64 != meta.size {
            return Ok(Some(format!(
                "row {expected_index} has {} bytes",
                row.len()
            )));
        }
        tree.update(row);
        sha.update(row);
        pair.update(row);
        size += row.len() as u64;
    }
    if size != meta.size {
        return Ok(Some(format!(
            "rows hold {size} bytes, expected {}",
            meta.size
        )));
    }
    let root = tree.finalize();
    if root.as_bytes() != blake3 {
        return Ok(Some("BLAKE3 of the stored bytes does not match".into()));
    }
    let digest: [u8; 32] = sha.finalize().into();
    if digest != meta.sha256 {
        return Ok(Some("SHA-256 of the stored bytes does not match".into()));
    }
    if !present(txn, DIGESTS)? {
        return Ok(None);
    }
    let recorded: Option<Digests> = match codec::get(&txn.open_table(DIGESTS)?, blake3) {
        Ok(d) => d,
        Err(e) => return Ok(Some(format!("digests: {e}"))),
    };
    if recorded.is_some_and(|d| d != pair.finish()) {
        return Ok(Some(
            "SHA-1 or MD5 of the stored bytes does not match".into(),
        ));
    }
    let pairs = tree.take_pairs();
    let mut stored = Vec::with_capacity(pairs.len());
    let full_row = OUTBOARD_ROW_PAIRS * PAIR;
    for entry in txn
        .open_table(OUTBOARDS)?
        .range((meta.data_id, 0)..=(meta.data_id, u32::MAX))?
    {
        let (k, v) = entry?;
        // Slices locate a pair by row = index / OUTBOARD_ROW_PAIRS: rows must be full and dense.
        if stored.len() % full_row != 0 || stored.len() / full_row != k.value().1 as usize {
            return Ok(Some(format!("outboard row {} out of place", k.value().1)));
        }
        stored.extend_from_slice(v.value());
    }
    let expected_len = pair_count(meta.size) as usize * PAIR;
    if stored.len() != expected_len || stored != pairs {
        return Ok(Some("outboard does not match the stored bytes".into()));
    }
    Ok(None)
}

fn check_uploads(
    txn: &ReadTransaction,
    report: &mut Report,
    live: &mut BTreeSet<u64>,
) -> Result<()> {
    let uploads = txn.open_table(UPLOADS)?;
    for entry in uploads.iter()? {
        let (k, v) = entry?;
        if !live.insert(k.value()) {
            report.problems.push(format!(
                "upload {} shares its data id with a blob",
                k.value()
            ));
        }
        if let Err(e) = codec::decode::<Upload>(v.value()) {
            report.problems.push(format!("upload {}: {e}", k.value()));
        }
    }
    for entry in txn.open_table(STAGED)?.iter()? {
        let (k, v) = entry?;
        let (partner, sha) = k.value();
        let ok = match uploads.get(v.value())? {
            Some(u) => matches!(
                codec::decode::<Upload>(u.value()).map(|u| u.state),
                Ok(UploadState::Staged { sha256, .. }) if &sha256 == sha
            ),
            None => false,
        };
        if !ok {
            report.problems.push(format!(
                "staged entry {partner}/{} does not name a complete upload",
                hex(sha)
            ));
        }
    }
    Ok(())
}

/// Digests belong to a published or staged binary; filenames to a staged or owned one.
fn check_digests_and_names(txn: &ReadTransaction, report: &mut Report) -> Result<()> {
    if !present(txn, DIGESTS)? || !present(txn, BINARY_NAMES)? {
        return Ok(());
    }
    let blobs = txn.open_table(BLOBS)?;
    let mut staged_content = BTreeSet::new();
    for entry in txn.open_table(UPLOADS)?.iter()? {
        let (_, v) = entry?;
        if let Ok(Upload {
            state: UploadState::Staged { blake3, .. },
            ..
        }) = codec::decode::<Upload>(v.value())
        {
            staged_content.insert(blake3);
        }
    }
    for entry in txn.open_table(DIGESTS)?.iter()? {
        let (k, v) = entry?;
        let blake3 = *k.value();
        if blobs.get(&blake3)?.is_none() && !staged_content.contains(&blake3) {
            report.problems.push(format!(
                "digests of {} belong to no stored binary",
                hex(&blake3)
            ));
        }
        if let Err(e) = codec::decode::<Digests>(v.value()) {
            report
                .problems
                .push(format!("digests of {}: {e}", hex(&blake3)));
        }
    }
    let (staged, owned) = (txn.open_table(STAGED)?, txn.open_table(OWNED)?);
    for entry in txn.open_table(BINARY_NAMES)?.iter()? {
        let (k, v) = entry?;
        let (partner, sha) = k.value();
        if staged.get((partner, sha))?.is_none() && owned.get((partner, sha))?.is_none() {
            report.problems.push(format!(
                "filename of {partner}/{} names no staged or owned binary",
                hex(sha)
            ));
        }
        if super::digests::clean_filename(v.value()).as_deref() != Ok(v.value()) {
            report.problems.push(format!(
                "filename of {partner}/{} is not a valid filename",
                hex(sha)
            ));
        }
    }
    Ok(())
}

fn check_orphan_rows(
    txn: &ReadTransaction,
    report: &mut Report,
    live: &BTreeSet<u64>,
) -> Result<()> {
    for (name, table) in [("chunk", CHUNKS), ("outboard", OUTBOARDS)] {
        let mut last: Option<u64> = None;
        for entry in txn.open_table(table)?.iter()? {
            let (k, _) = entry?;
            let data_id = k.value().0;
            if last == Some(data_id) {
                continue;
            }
            last = Some(data_id);
            if !live.contains(&data_id) {
                report
                    .problems
                    .push(format!("orphan {name} rows of data id {data_id}"));
            }
        }
    }
    Ok(())
}

fn check_records(
    txn: &ReadTransaction,
    report: &mut Report,
    refs: &mut BTreeMap<[u8; 32], u64>,
) -> Result<()> {
    let counters = txn.open_table(COUNTERS)?;
    let by_number = txn.open_table(RECORD_BY_NUMBER)?;
    let names = txn.open_table(RECORD_NAMES)?;
    let by_partner = txn.open_table(RECORDS_BY_PARTNER)?;
    let blobs = txn.open_table(BLOBS)?;
    let mut max_allocated: BTreeMap<(String, u16), u64> = BTreeMap::new();
    for entry in txn.open_table(RECORDS)?.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        let record: Record = match codec::decode(v.value()) {
            Ok(r) => r,
            Err(e) => {
                report.problems.push(format!("record {id}: {e}"));
                continue;
            }
        };
        report.records += 1;
        let scope = counter_scope(&record.partner_id, record.fw_type);
        let slot = max_allocated
            .entry((scope.to_string(), record.fw_type))
            .or_default();
        *slot = (*slot).max(record.version_number);
        if by_number
            .get((scope, record.fw_type, record.version_number))?
            .map(|v| v.value())
            != Some(id)
        {
            report.problems.push(format!(
                "record {id}: version-number index does not point back"
            ));
        }
        if names.get(name_key(&record))?.map(|v| v.value()) != Some(id) {
            report.problems.push(format!(
                "record {id}: name/version index does not point back"
            ));
        }
        if by_partner.get((record.partner_id.as_str(), id))?.is_none() {
            report
                .problems
                .push(format!("record {id}: missing from its partner's index"));
        }
        if let Some(b) = &record.binary {
            *refs.entry(b.blake3).or_default() += 1;
            if blobs.get(&b.blake3)?.is_none() {
                report
                    .problems
                    .push(format!("record {id}: binary {} is missing", hex(&b.blake3)));
            }
        }
    }
    for ((scope, t), max) in &max_allocated {
        let counter = counters.get((scope.as_str(), *t))?.map_or(0, |v| v.value());
        if counter < *max {
            report.problems.push(format!(
                "counter ({scope:?}, {t}) is {counter}, below allocated number {max}"
            ));
        }
    }
    let records = txn.open_table(RECORDS)?;
    for entry in by_number.iter()? {
        let (k, v) = entry?;
        if records.get(v.value())?.is_none() {
            let (scope, t, vn) = k.value();
            report.problems.push(format!(
                "version index ({scope:?}, {t}, {vn}) names a missing record"
            ));
        }
    }
    let device_types = txn.open_table(DEVICE_TYPES)?;
    let by_record = txn.open_table(ASSOC_BY_RECORD)?;
    for entry in txn.open_table(ASSOCIATIONS)?.iter()? {
        let (k, v) = entry?;
        let (dt, t, vn) = k.value();
        let id = v.value();
        let record_ok = match records.get(id)? {
            Some(r) => codec::decode::<Record>(r.value())
                .is_ok_and(|r| r.fw_type == t && r.version_number == vn),
            None => false,
        };
        if !record_ok {
            report.problems.push(format!(
                "association {dt}/{t}/{vn} names a missing or different record"
            ));
        }
        if device_types.get(dt)?.is_none() {
            report.problems.push(format!(
                "association {dt}/{t}/{vn} names a missing device type"
            ));
        }
        if by_record.get((id, dt))?.is_none() {
            report.problems.push(format!(
                "association {dt}/{t}/{vn} missing from the reverse index"
            ));
        }
    }
    Ok(())
}

fn check_devices(txn: &ReadTransaction, report: &mut Report) -> Result<()> {
    let device_types = txn.open_table(DEVICE_TYPES)?;
    let by_type = txn.open_table(DEVICES_BY_TYPE)?;
    let tokens = txn.open_table(DEVICE_TOKENS)?;
    let devices = txn.open_table(DEVICES)?;
    for entry in tokens.iter()? {
        let (k, v) = entry?;
        let owner = devices
            .get(v.value())?
            .map(|d| codec::decode::<Device>(d.value()).map(|d| d.token_hash));
        if !matches!(owner, Some(Ok(hash)) if &hash == k.value()) {
            report.problems.push(format!(
                "device token index names {} which does not hold that token",
                v.value()
            ));
        }
    }
    for entry in txn.open_table(DEVICES)?.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        let device: Device = match codec::decode(v.value()) {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(format!("device {id}: {e}"));
                continue;
            }
        };
        report.devices += 1;
        if device_types.get(device.device_type_id.as_str())?.is_none() {
            report
                .problems
                .push(format!("device {id}: device type is missing"));
        }
        if by_type.get((device.device_type_id.as_str(), id))?.is_none() {
            report
                .problems
                .push(format!("device {id}: missing from its type's index"));
        }
        if tokens.get(&device.token_hash)?.map(|v| v.value() == id) != Some(true) {
            report
                .problems
                .push(format!("device {id}: missing from the token index"));
        }
    }
    if !present(txn, DEVICE_LABELS)? {
        return Ok(());
    }
    for entry in txn.open_table(DEVICE_LABELS)?.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        if let Err(e) = codec::decode::<DeviceLabels>(v.value()) {
            report.problems.push(format!("labels of device {id}: {e}"));
        }
        if devices.get(id)?.is_none() {
            report
                .problems
                .push(format!("labels of device {id}: the device does not exist"));
        }
    }
    Ok(())
}

/// Every rollout's per-group counters equal a recount of its device outcomes; the latest,
/// held and due indexes name rollouts (and in-flight outcomes) that exist.
fn check_rollouts(txn: &ReadTransaction, report: &mut Report) -> Result<()> {
    let all = present(txn, ROLLOUTS)?
        && present(txn, ROLLOUT_DEVICES)?
        && present(txn, ROLLOUT_DUE)?
        && present(txn, ROLLOUT_HELD)?
        && present(txn, ROLLOUT_LATEST)?;
    if !all {
        return Ok(());
    }
    let rollouts = txn.open_table(ROLLOUTS)?;
    let outcomes = txn.open_table(ROLLOUT_DEVICES)?;
    let mut known: BTreeMap<u64, Rollout> = BTreeMap::new();
    for entry in rollouts.iter()? {
        let (k, v) = entry?;
        match codec::decode::<Rollout>(v.value()) {
            Ok(r) => {
                known.insert(k.value(), r);
            }
            Err(e) => report.problems.push(format!("rollout {}: {e}", k.value())),
        }
    }
    let mut recount: BTreeMap<u64, Vec<Counts>> = known
        .iter()
        .map(|(id, r)| (*id, vec![Counts::default(); r.groups.len()]))
        .collect();
    for entry in outcomes.iter()? {
        let (k, v) = entry?;
        let (id, device) = k.value();
        let o: DeviceOutcome = match codec::decode(v.value()) {
            Ok(o) => o,
            Err(e) => {
                report
                    .problems
                    .push(format!("rollout {id}, device {device}: {e}"));
                continue;
            }
        };
        match recount
            .get_mut(&id)
            .and_then(|groups| groups.get_mut(usize::from(o.group)))
        {
            Some(c) => c.add(o.outcome),
            None => report.problems.push(format!(
                "rollout {id}, device {device}: no such rollout or group {}",
                o.group
            )),
        }
    }
    for (id, r) in &known {
        let stored: Vec<Counts> = r.groups.iter().map(|g| g.counts).collect();
        if recount.get(id) != Some(&stored) {
            report.problems.push(format!(
                "rollout {id}: group counters {stored:?} differ from a recount of its devices {:?}",
                recount.get(id)
            ));
        }
    }
    for entry in txn.open_table(ROLLOUT_LATEST)?.iter()? {
        let (k, v) = entry?;
        let (dt, t) = k.value();
        if !known.contains_key(&v.value()) {
            report.problems.push(format!(
                "latest rollout of {dt}/{t} names missing rollout {}",
                v.value()
            ));
        }
    }
    for entry in txn.open_table(ROLLOUT_HELD)?.iter()? {
        let (k, v) = entry?;
        let (dt, record) = k.value();
        if !known.contains_key(&v.value()) {
            report.problems.push(format!(
                "held association {dt}/{record} names missing rollout {}",
                v.value()
            ));
        }
    }
    for entry in txn.open_table(ROLLOUT_DUE)?.iter()? {
        let (k, _) = entry?;
        let (_, id, device) = k.value();
        let o: Option<DeviceOutcome> = codec::get(&outcomes, (id, device)).unwrap_or(None);
        if !o.is_some_and(|o| o.outcome.in_flight()) {
            report.problems.push(format!(
                "rollout {id}: a confirm timeout for {device}, which is not in flight"
            ));
        }
    }
    Ok(())
}

fn check_people(txn: &ReadTransaction, report: &mut Report) -> Result<()> {
    let partners = txn.open_table(PARTNERS)?;
    for entry in txn.open_table(USERS)?.iter()? {
        let (k, v) = entry?;
        match codec::decode::<User>(v.value()) {
            Ok(u) if partners.get(u.partner_id.as_str())?.is_none() => report
                .problems
                .push(format!("user {}: partner is missing", k.value())),
            Ok(_) => {}
            Err(e) => report.problems.push(format!("user {}: {e}", k.value())),
        }
    }
    for entry in txn.open_table(DEVICE_TYPES)?.iter()? {
        let (k, v) = entry?;
        match codec::decode::<DeviceType>(v.value()) {
            Ok(d) if partners.get(d.partner_id.as_str())?.is_none() => report
                .problems
                .push(format!("device type {}: partner is missing", k.value())),
            Ok(_) => {}
            Err(e) => report
                .problems
                .push(format!("device type {}: {e}", k.value())),
        }
    }
    for entry in partners.iter()? {
        let (k, v) = entry?;
        if let Err(e) = codec::decode::<Partner>(v.value()) {
            report.problems.push(format!("partner {}: {e}", k.value()));
        }
    }
    Ok(())
}

/// Keys: their id is their public key's, under a partner that exists. Signatures: of an
/// existing record, by a key of its partner, over a manifest that decodes, and they still
/// verify (a row changed behind the server is found here). Policies: of device types that
/// exist.
fn check_signing(txn: &ReadTransaction, report: &mut Report) -> Result<()> {
    let all = present(txn, SIGNING_KEYS)?
        && present(txn, IMAGE_SIGNATURES)?
        && present(txn, SIGNATURE_POLICIES)?;
    if !all {
        return Ok(());
    }
    let partners = txn.open_table(PARTNERS)?;
    let keys = txn.open_table(SIGNING_KEYS)?;
    for entry in keys.iter()? {
        let (k, v) = entry?;
        let (partner, id) = k.value();
        match codec::decode::<SigningKeyInfo>(v.value()) {
            Ok(key) => {
                if signing::to_hex(&signing::key_id(&key.public_key)) != id || key.key_id != id {
                    report.problems.push(format!(
                        "signing key {id} of partner {partner}: id is not its public key's"
                    ));
                }
                if key.partner_id != partner || partners.get(partner)?.is_none() {
                    report.problems.push(format!(
                        "signing key {id}: partner {partner} is missing or differs"
                    ));
                }
            }
            Err(e) => report
                .problems
                .push(format!("signing key {id} of partner {partner}: {e}")),
        }
    }
    let records = txn.open_table(RECORDS)?;
    for entry in txn.open_table(IMAGE_SIGNATURES)?.iter()? {
        let (k, v) = entry?;
        let (record_id, key_id) = k.value();
        let name = format!("signature of record {record_id} by key {key_id}");
        let sig = match codec::decode::<ImageSignature>(v.value()) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let Some(record) = codec::get::<u64, Record>(&records, record_id)
            .ok()
            .flatten()
        else {
            report
                .problems
                .push(format!("{name}: the record is missing"));
            continue;
        };
        let key =
            codec::get::<(&str, &str), SigningKeyInfo>(&keys, (record.partner_id.as_str(), key_id))
                .ok()
                .flatten();
        let Some(key) = key else {
            report
                .problems
                .push(format!("{name}: the key is not the record's partner's"));
            continue;
        };
        if let Err(e) = Manifest::decode(&sig.manifest) {
            report.problems.push(format!("{name}: {e}"));
        }
        let verifies = sig
            .signature_bytes()
            .is_some_and(|s| signing::verify(&key.public_key, &sig.manifest, &s));
        if sig.record_id != record_id || sig.key_id != key_id || !verifies {
            report.problems.push(format!(
                "{name}: does not verify (changed after it was stored)"
            ));
        }
    }
    let device_types = txn.open_table(DEVICE_TYPES)?;
    for entry in txn.open_table(SIGNATURE_POLICIES)?.iter()? {
        let (k, v) = entry?;
        if let Err(e) = codec::decode::<SignaturePolicy>(v.value()) {
            report
                .problems
                .push(format!("signature policy of {}: {e}", k.value()));
        }
        if device_types.get(k.value())?.is_none() {
            report.problems.push(format!(
                "signature policy of device type {}: the device type is missing",
                k.value()
            ));
        }
    }
    Ok(())
}

/// DDI tenants name existing partners both ways, gateway tokens likewise, and DDI actions
/// belong to existing devices.
fn check_ddi(txn: &ReadTransaction, report: &mut Report) -> Result<()> {
    let all = present(txn, DDI_TENANTS)?
        && present(txn, PARTNER_TENANTS)?
        && present(txn, GATEWAY_TOKENS)?
        && present(txn, GATEWAY_BY_PARTNER)?
        && present(txn, DDI_ACTIONS)?;
    if !all {
        return Ok(());
    }
    let partners = txn.open_table(PARTNERS)?;
    let tenants = txn.open_table(DDI_TENANTS)?;
    let partner_tenants = txn.open_table(PARTNER_TENANTS)?;
    for entry in tenants.iter()? {
        let (k, v) = entry?;
        let back = partner_tenants
            .get(v.value())?
            .map(|t| t.value().to_ascii_lowercase());
        if partners.get(v.value())?.is_none() || back.as_deref() != Some(k.value()) {
            report.problems.push(format!(
                "DDI tenant {} does not match partner {}",
                k.value(),
                v.value()
            ));
        }
    }
    for entry in partner_tenants.iter()? {
        let (k, v) = entry?;
        let lower = v.value().to_ascii_lowercase();
        let indexed = tenants.get(lower.as_str())?.map(|p| p.value() == k.value());
        if crate::model::validate_ddi_tenant(v.value()).is_err() || indexed != Some(true) {
            report.problems.push(format!(
                "partner {}: DDI tenant {:?} is invalid or not indexed",
                k.value(),
                v.value()
            ));
        }
    }
    let gateway = txn.open_table(GATEWAY_TOKENS)?;
    for entry in txn.open_table(GATEWAY_BY_PARTNER)?.iter()? {
        let (k, v) = entry?;
        let ok = match codec::decode::<GatewayToken>(v.value()) {
            Ok(g) => gateway
                .get(&g.hash)?
                .is_some_and(|p| p.value() == k.value()),
            Err(_) => false,
        };
        if !ok || partners.get(k.value())?.is_none() {
            report.problems.push(format!(
                "partner {}: gateway token is undecodable or not indexed",
                k.value()
            ));
        }
    }
    for entry in gateway.iter()? {
        let (k, v) = entry?;
        let own: Option<GatewayToken> =
            codec::get(&txn.open_table(GATEWAY_BY_PARTNER)?, v.value()).unwrap_or(None);
        if own.is_none_or(|g| &g.hash != k.value()) {
            report.problems.push(format!(
                "gateway token of partner {} is not its current one",
                v.value()
            ));
        }
    }
    let devices = txn.open_table(DEVICES)?;
    for entry in txn.open_table(DDI_ACTIONS)?.iter()? {
        let (k, v) = entry?;
        if devices.get(k.value())?.is_none() {
            report
                .problems
                .push(format!("DDI actions of missing device {}", k.value()));
        }
        if let Err(e) = codec::decode::<DdiState>(v.value()) {
            report
                .problems
                .push(format!("DDI actions of device {}: {e}", k.value()));
        }
    }
    Ok(())
}

/// Whether the file has this table: a database (or backup) written before the table
/// existed has none, which reads as empty (the server creates it at its next start).
fn present(txn: &ReadTransaction, def: impl redb::TableHandle) -> Result<bool> {
    use redb::TableHandle;
    for table in txn.list_tables()? {
        if table.name() == def.name() {
            return Ok(true);
        }
    }
    Ok(false)
}
