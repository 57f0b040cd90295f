//! Devices: registration and tokens, the inventory they report (CHECK), pushes, and the
//! per-type OTA state with its bounded history (REPORT).
//!
//! Check-ins and reports are committed without their own fsync: the writer makes them durable
//! with its next durable commit, at most one second later (see `store/mod.rs`). What to offer
//! is decided by `ota.rs`; this file only gathers the candidates.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::blobs::{BlobMeta, get_blob};
use super::catalog::{get_device_type, get_record, own_device_type};
use super::labels::{labels_of, put_labels};
use super::rollouts::{self, gate_of};
use super::signing::{self as sig, ImageSignature};
use super::tables::{
    ASSOC_BY_RECORD, ASSOCIATIONS, BLOBS, DDI_ACTIONS, DEVICE_LABELS, DEVICE_TOKENS, DEVICE_TYPES,
    DEVICES, DEVICES_BY_TYPE, IMAGE_SIGNATURES, RECORDS, ROLLOUT_HELD, SIGNATURE_POLICIES,
    SIGNING_KEYS,
};
use super::{Result, Store, StoreError, audit, codec};
use crate::ids::now_ms;
use crate::model::{self, Device, DeviceLabels, ModelError, OtaEvent, OtaState, Record, TypeOta};
use crate::ota::{self, Candidate, Gate, Offer};

/// One device to register in a bulk import; `line` names it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub line: usize,
    pub device_id: String,
    pub device_type_id: String,
    pub token_hash: [u8; 32],
    /// Tags and attributes to give it (bounded like the API's).
    pub labels: DeviceLabels,
}

/// Filters of the device list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub device_type_id: Option<String>,
    /// Devices that report exactly this installed version number for this type.
    pub installed: Option<(u16, u64)>,
    /// Devices that report one of these version numbers for this type (a version string
    /// resolved to the records that carry it).
    pub installed_among: Option<(u16, BTreeSet<u64>)>,
    /// Devices whose id contains this text, ignoring ASCII case.
    pub id_contains: Option<String>,
    /// Devices carrying every one of these tags.
    pub tags: Vec<String>,
    /// Devices whose attributes hold every one of these `key = value`.
    pub attributes: BTreeMap<String, String>,
}

/// An offer with the record it points at and the signatures that count for the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedImage {
    pub offer: Offer,
    pub record: Record,
    pub signatures: Vec<ImageSignature>,
}

/// Whether a device may GET a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobAccess {
    Allowed(BlobMeta),
    /// The blob exists but no image of the device's type has it.
    Forbidden,
    Missing,
}

/// A device by id, from the `DEVICES` table of either transaction kind.
fn get_device(
    devices: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<Device>> {
    codec::get(devices, id)
}

/// The device `id`; 404 `unknown_device` if absent.
fn existing_device(txn: &WriteTransaction, id: &str) -> Result<Device> {
    get_device(&txn.open_table(DEVICES)?, id)?
        .ok_or_else(|| StoreError::not_found("device", "unknown_device"))
}

fn put_device(txn: &WriteTransaction, device: &Device) -> Result<()> {
    let bytes = codec::encode(device)?;
    txn.open_table(DEVICES)?
        .insert(device.id.as_str(), bytes.as_slice())?;
    Ok(())
}

/// The partner's device `id`; 404 `unknown_device` when it is missing or another partner's.
fn own_device(txn: &WriteTransaction, partner_id: &str, id: &str) -> Result<Device> {
    get_device(&txn.open_table(DEVICES)?, id)?
        .filter(|d| d.partner_id == partner_id)
        .ok_or_else(|| StoreError::not_found("device", "unknown_device"))
}

fn insert_device(txn: &WriteTransaction, device: &Device) -> Result<()> {
    put_device(txn, device)?;
    txn.open_table(DEVICE_TOKENS)?
        .insert(&device.token_hash, device.id.as_str())?;
    txn.open_table(DEVICES_BY_TYPE)?
        .insert((device.device_type_id.as_str(), device.id.as_str()), ())?;
    Ok(())
}

/// A candidate image with its record and usable signatures (see `candidates_in`).
type Found = (Candidate, Record, Vec<ImageSignature>);

/// A CHECK read and ready to be written (see [`Store::check_in_plan`]).
pub(crate) struct CheckIn {
    id: String,
    reported: BTreeMap<u16, u64>,
    found: Vec<Found>,
    spent: Vec<(u16, u64)>,
    history: usize,
}

impl CheckIn {
    /// The CHECK's write: last seen, confirmations, spent pushes, rollout admission and the
    /// offers it records; returns the offers.
    pub(crate) fn apply(self, txn: &WriteTransaction) -> Result<Vec<OfferedImage>> {
        let CheckIn {
            id,
            reported,
            found,
            spent,
            history,
        } = self;
        let mut device = existing_device(txn, &id)?;
        let now = now_ms();
        device.last_seen_ms = Some(now);
        for (&t, &running) in &reported {
            if let Some(ota) = device.ota.get_mut(&t)
                && ota.current.state != OtaState::Confirmed
                && running >= ota.current.version_number
            {
                let mut ev = ota.current.clone();
                ev.at_ms = now;
                ev.state = OtaState::Confirmed;
                ota.record(ev, history);
            }
        }
        for (t, record_id) in &spent {
            if device.pushes.get(t) == Some(record_id) {
                device.pushes.remove(t);
            }
        }
        device.reported = reported;
        let list: Vec<Candidate> = found.iter().map(|(c, _, _)| *c).collect();
        let admitted = rollouts::on_check_in(txn, &device, &list, now)?;
        let offers = with_records(
            ota::offers(&device.reported, &list, &device.pushes, &admitted),
            &found,
        );
        record_offered(&mut device, &offers, now, history);
        put_device(txn, &device)?;
        Ok(offers)
    }
}

/// Candidates for the reported types: per type the associated images with a binary that the
/// device type's signature policy releases, from the newest down to the first one released
/// to the whole device type (newer ones may be held by a rollout), plus the pushed image if
/// the policy releases it; each with its usable signatures. Walks the association index from
/// the top, so the cost does not grow with the number of older images.
fn candidates_in(txn: &ReadTransaction, device: &Device) -> Result<Vec<Found>> {
    let assoc = txn.open_table(ASSOCIATIONS)?;
    let by_record = txn.open_table(ASSOC_BY_RECORD)?;
    let records = txn.open_table(RECORDS)?;
    let held = txn.open_table(ROLLOUT_HELD)?;
    let sigs = txn.open_table(IMAGE_SIGNATURES)?;
    let keys = txn.open_table(SIGNING_KEYS)?;
    let dt = device.device_type_id.as_str();
    let required = sig::requires_signature(&txn.open_table(SIGNATURE_POLICIES)?, dt)?;
    let now = sig::now_s();
    // The signatures that count, or None when the policy does not release the record.
    let released = |record: &Record| -> Result<Option<Vec<ImageSignature>>> {
        let usable = sig::usable_signatures(&sigs, &keys, record, dt, now)?;
        Ok((!required || !usable.is_empty()).then_some(usable))
    };
    let mut out = Vec::new();
    for (&t, &running) in &device.reported {
        for entry in assoc
            .range((dt, t, running.saturating_add(1))..=(dt, t, u64::MAX))?
            .rev()
        {
            let (k, v) = entry?;
            let record = get_record(&records, v.value())?
                .ok_or_else(|| StoreError::Corrupt("association to a missing record".into()))?;
            if record.binary.is_some()
                && let Some(usable) = released(&record)?
            {
                let gate = gate_of(&held, dt, record.id)?;
                out.push((candidate(&record, k.value().2, gate), record, usable));
                if gate == Gate::Released {
                    break;
                }
            }
        }
        if let Some(&pushed) = device.pushes.get(&t)
            && by_record.get((pushed, dt))?.is_some()
            && let Some(record) = get_record(&records, pushed)?
            && let Some(usable) = released(&record)?
        {
            let gate = gate_of(&held, dt, record.id)?;
            out.push((
                candidate(&record, record.version_number, gate),
                record,
                usable,
            ));
        }
    }
    Ok(out)
}

/// The offers `ota::offers` decided, with their records and usable signatures.
fn with_records(offers: Vec<Offer>, found: &[Found]) -> Vec<OfferedImage> {
    offers
        .into_iter()
        .filter_map(|offer| {
            found
                .iter()
                .find(|(c, _, _)| c.record_id == offer.record_id)
                .map(|(_, r, s)| OfferedImage {
                    offer,
                    record: r.clone(),
                    signatures: s.clone(),
                })
        })
        .collect()
}

/// Makes "offered" the current state of each offered type, unless that image already is.
fn record_offered(device: &mut Device, offers: &[OfferedImage], now: u64, history: usize) {
    for o in offers {
        let event = OtaEvent {
            at_ms: now,
            version_number: o.offer.version_number,
            state: OtaState::Offered,
            result: 0,
            bytes_done: 0,
        };
        match device.ota.get_mut(&o.offer.fw_type) {
            Some(ota) if ota.current.version_number == o.offer.version_number => {}
            Some(ota) => {
                ota.record(event, history);
                ota.offered_ms = now;
            }
            None => {
                device.ota.insert(o.offer.fw_type, TypeOta::new(event));
            }
        }
    }
}

fn candidate(record: &Record, version_number: u64, gate: Gate) -> Candidate {
    Candidate {
        record_id: record.id,
        fw_type: record.fw_type,
        version_number,
        has_binary: record.binary.is_some(),
        gate,
    }
}

/// One device's push of `record` (associated with `dt`) inside `txn`: the device must be
/// the partner's and of that device type, the image must have a binary, and the device
/// must not already run its number or a higher one.
fn push_in(
    txn: &WriteTransaction,
    actor: &str,
    pid: &str,
    dt: &str,
    record: &Record,
    id: &str,
) -> Result<()> {
    let mut device = own_device(txn, pid, id)?;
    if device.device_type_id != dt {
        return Err(StoreError::conflict(
            "device_type_mismatch",
            "the device belongs to another device type",
        ));
    }
    if record.binary.is_none() {
        return Err(StoreError::conflict(
            "no_binary",
            "the image has no binary yet",
        ));
    }
    let running = device.reported.get(&record.fw_type).copied();
    if ota::push_would_downgrade(running, record.version_number) {
        return Err(StoreError::conflict(
            "would_downgrade",
            "the device already runs this version number or a higher one",
        ));
    }
    device.pushes.insert(record.fw_type, record.id);
    put_device(txn, &device)?;
    audit::append(
        txn,
        actor,
        "image.push",
        &format!("partner/{pid}/devices/{id}"),
        &format!("type {} version {}", record.fw_type, record.version_number),
    )?;
    Ok(())
}

impl Store {
    /// Registers a device of one of the partner's device types with a token hash.
    pub fn register_device(
        &self,
        actor: &str,
        partner_id: &str,
        device_id: &str,
        device_type_id: &str,
        token_hash: [u8; 32],
    ) -> Result<Device> {
        let row = ImportRow {
            line: 1,
            device_id: device_id.to_string(),
            device_type_id: device_type_id.to_string(),
            token_hash,
            labels: DeviceLabels::default(),
        };
        let mut devices = self.import_devices(actor, partner_id, vec![row], false)?;
        devices
            .pop()
            .ok_or_else(|| StoreError::Db("registration produced no device".into()))
    }

    /// Registers many devices in one transaction: all or nothing. Errors name the row's line
    /// when `name_lines` is set (bulk import).
    pub fn import_devices(
        &self,
        actor: &str,
        partner_id: &str,
        rows: Vec<ImportRow>,
        name_lines: bool,
    ) -> Result<Vec<Device>> {
        let at = move |line: usize| {
            if name_lines {
                format!("line {line}: ")
            } else {
                String::new()
            }
        };
        let limits = self.config().label_limits();
        for row in &rows {
            let named = |mut e: ModelError| {
                e.reason = format!("{}{}", at(row.line), e.reason);
                e
            };
            model::validate_device_id(&row.device_id).map_err(named)?;
            model::validate_labels(&row.labels, &limits).map_err(|e| named(ModelError::from(e)))?;
        }
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let now = now_ms();
            let mut seen = std::collections::HashSet::with_capacity(rows.len());
            let mut dt_ok: BTreeMap<String, bool> = BTreeMap::new();
            for row in &rows {
                let ok = match dt_ok.get(&row.device_type_id) {
                    Some(&ok) => ok,
                    None => {
                        let dt =
                            get_device_type(&txn.open_table(DEVICE_TYPES)?, &row.device_type_id)?;
                        let ok = dt.is_some_and(|d| d.partner_id == pid);
                        dt_ok.insert(row.device_type_id.clone(), ok);
                        ok
                    }
                };
                if !ok {
                    return Err(StoreError::Invalid(ModelError::new(
                        "deviceTypeId",
                        "unknown_device_type",
                        format!(
                            "{}device type {} does not exist",
                            at(row.line),
                            row.device_type_id
                        ),
                    )));
                }
                if !seen.insert(row.device_id.as_str())
                    || txn
                        .open_table(DEVICES)?
                        .get(row.device_id.as_str())?
                        .is_some()
                {
                    return Err(StoreError::conflict(
                        "device_exists",
                        format!("{}device {} already exists", at(row.line), row.device_id),
                    ));
                }
            }
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let device = Device {
                    id: row.device_id,
                    partner_id: pid.clone(),
                    device_type_id: row.device_type_id,
                    token_hash: row.token_hash,
                    created_ms: now,
                    last_seen_ms: None,
                    reported: BTreeMap::new(),
                    ota: BTreeMap::new(),
                    pushes: BTreeMap::new(),
                };
                insert_device(txn, &device)?;
                if !row.labels.is_empty() {
                    put_labels(txn, &device.id, &row.labels, &limits)?;
                }
                out.push(device);
            }
            let detail = match out.as_slice() {
                [one] => one.id.clone(),
                many => format!("{} devices", many.len()),
            };
            audit::append(
                txn,
                &actor,
                "device.register",
                &format!("partner/{pid}/devices"),
                &detail,
            )?;
            Ok(out)
        })
    }

    pub fn device(&self, device_id: &str) -> Result<Option<Device>> {
        get_device(&self.read()?.open_table(DEVICES)?, device_id)
    }

    /// The partner's devices matching `filter`, by id.
    pub fn devices(&self, partner_id: &str, filter: &DeviceFilter) -> Result<Vec<Device>> {
        Ok(self
            .labelled_devices(partner_id, filter)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    /// The partner's devices matching `filter`, by id, each with its labels.
    pub fn labelled_devices(
        &self,
        partner_id: &str,
        filter: &DeviceFilter,
    ) -> Result<Vec<(Device, DeviceLabels)>> {
        let txn = self.read()?;
        let table = txn.open_table(DEVICES)?;
        let label_table = txn.open_table(DEVICE_LABELS)?;
        let mut out = Vec::new();
        let needle = filter.id_contains.as_deref().map(str::to_ascii_lowercase);
        let mut keep = |d: Device| -> Result<()> {
            let installed_ok = filter
                .installed
                .is_none_or(|(t, vn)| d.reported.get(&t) == Some(&vn));
            let among_ok = filter
                .installed_among
                .as_ref()
                .is_none_or(|(t, set)| d.reported.get(t).is_some_and(|vn| set.contains(vn)));
            let id_ok = needle
                .as_deref()
                .is_none_or(|n| d.id.to_ascii_lowercase().contains(n));
            if d.partner_id != partner_id || !installed_ok || !among_ok || !id_ok {
                return Ok(());
            }
            let labels = labels_of(&label_table, &d.id)?;
            if labels.matches(&filter.tags, &filter.attributes) {
                out.push((d, labels));
            }
            Ok(())
        };
        if let Some(dt) = &filter.device_type_id {
            for entry in txn
                .open_table(DEVICES_BY_TYPE)?
                .range((dt.as_str(), "")..)?
            {
                let (k, _) = entry?;
                let (t, id) = k.value();
                if t != dt {
                    break;
                }
                if let Some(v) = table.get(id)? {
                    keep(codec::decode(v.value())?)?;
                }
            }
        } else {
            for entry in table.iter()? {
                let (_, v) = entry?;
                keep(codec::decode(v.value())?)?;
            }
        }
        Ok(out)
    }

    pub fn delete_device(&self, actor: &str, partner_id: &str, device_id: &str) -> Result<()> {
        let (pid, id, actor) = (
            partner_id.to_string(),
            device_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let device = own_device(txn, &pid, &id)?;
            txn.open_table(DEVICES)?.remove(id.as_str())?;
            txn.open_table(DEVICE_TOKENS)?.remove(&device.token_hash)?;
            txn.open_table(DEVICES_BY_TYPE)?
                .remove((device.device_type_id.as_str(), id.as_str()))?;
            txn.open_table(DDI_ACTIONS)?.remove(id.as_str())?;
            txn.open_table(DEVICE_LABELS)?.remove(id.as_str())?;
            audit::append(
                txn,
                &actor,
                "device.delete",
                &format!("partner/{pid}/devices/{id}"),
                "",
            )?;
            Ok(())
        })
    }

    pub fn rotate_device_token(
        &self,
        actor: &str,
        partner_id: &str,
        device_id: &str,
        token_hash: [u8; 32],
    ) -> Result<()> {
        let (pid, id, actor) = (
            partner_id.to_string(),
            device_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let mut device = own_device(txn, &pid, &id)?;
            let mut tokens = txn.open_table(DEVICE_TOKENS)?;
            tokens.remove(&device.token_hash)?;
            tokens.insert(&token_hash, id.as_str())?;
            drop(tokens);
            device.token_hash = token_hash;
            put_device(txn, &device)?;
            audit::append(
                txn,
                &actor,
                "device.rotate_token",
                &format!("partner/{pid}/devices/{id}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Stores a pending push of an associated image to one device.
    pub fn push(
        &self,
        actor: &str,
        partner_id: &str,
        device_type_id: &str,
        record_id: u64,
        device_id: &str,
    ) -> Result<Record> {
        let (pid, dt, id, actor) = (
            partner_id.to_string(),
            device_type_id.to_string(),
            device_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            own_device_type(txn, &pid, &dt)?;
            let associated = txn
                .open_table(ASSOC_BY_RECORD)?
                .get((record_id, dt.as_str()))?
                .is_some();
            let record = get_record(&txn.open_table(RECORDS)?, record_id)?
                .filter(|_| associated)
                .ok_or_else(|| StoreError::not_found("firmware image", "unknown_image"))?;
            sig::check_release(txn, &record, &dt, sig::now_s())?;
            push_in(txn, &actor, &pid, &dt, &record, &id)?;
            Ok(record)
        })
    }

    /// Pushes an associated image to many devices in one transaction. The image and device
    /// type are checked once (an error there refuses the whole request); each device is then
    /// pushed or refused on its own (unknown, another device type, already on the number or
    /// a higher one), and the refusals are returned beside the record.
    pub fn push_many(
        &self,
        actor: &str,
        partner_id: &str,
        device_type_id: &str,
        record_id: u64,
        device_ids: Vec<String>,
    ) -> Result<(Record, Vec<(String, StoreError)>)> {
        let (pid, dt, actor) = (
            partner_id.to_string(),
            device_type_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            own_device_type(txn, &pid, &dt)?;
            let associated = txn
                .open_table(ASSOC_BY_RECORD)?
                .get((record_id, dt.as_str()))?
                .is_some();
            let record = get_record(&txn.open_table(RECORDS)?, record_id)?
                .filter(|_| associated)
                .ok_or_else(|| StoreError::not_found("firmware image", "unknown_image"))?;
            if record.binary.is_none() {
                return Err(StoreError::conflict(
                    "no_binary",
                    "the image has no binary yet",
                ));
            }
            sig::check_release(txn, &record, &dt, sig::now_s())?;
            let mut refused = Vec::new();
            for id in device_ids {
                match push_in(txn, &actor, &pid, &dt, &record, &id) {
                    Ok(()) => {}
                    Err(e @ (StoreError::NotFound { .. } | StoreError::Conflict { .. })) => {
                        refused.push((id, e));
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok((record, refused))
        })
    }

    /// The blob with this sha256 if the device may download it: the binary of an image
    /// associated with the device's own device type, under its own partner's path.
    pub fn device_entitled(
        &self,
        device_id: &str,
        partner_id: &str,
        sha256: &[u8; 32],
    ) -> Result<Option<([u8; 32], BlobMeta)>> {
        let Some(device) = self.device(device_id)? else {
            return Ok(None);
        };
        if device.partner_id != partner_id {
            return Ok(None);
        }
        let txn = self.read()?;
        let assoc = txn.open_table(ASSOCIATIONS)?;
        let records = txn.open_table(RECORDS)?;
        let dt = device.device_type_id.as_str();
        for entry in assoc.range((dt, 0u16, 0u64)..=(dt, u16::MAX, u64::MAX))? {
            let (_, v) = entry?;
            let Some(record) = get_record(&records, v.value())? else {
                continue;
            };
            if let Some(b) = record.binary.filter(|b| &b.sha256 == sha256) {
                return Ok(get_blob(&txn.open_table(BLOBS)?, &b.blake3)?.map(|m| (b.blake3, m)));
            }
        }
        Ok(None)
    }

    /// Whether the device may read the blob `blake3` over OCP: it must be the binary of an
    /// image associated with the device's own device type.
    pub fn device_blob(&self, device: &Device, blake3: &[u8; 32]) -> Result<BlobAccess> {
        let txn = self.read()?;
        let Some(meta) = get_blob(&txn.open_table(BLOBS)?, blake3)? else {
            return Ok(BlobAccess::Missing);
        };
        let assoc = txn.open_table(ASSOCIATIONS)?;
        let records = txn.open_table(RECORDS)?;
        let dt = device.device_type_id.as_str();
        for entry in assoc.range((dt, 0u16, 0u64)..=(dt, u16::MAX, u64::MAX))? {
            let (_, v) = entry?;
            if get_record(&records, v.value())?
                .is_some_and(|r| r.binary.is_some_and(|b| &b.blake3 == blake3))
            {
                return Ok(BlobAccess::Allowed(meta));
            }
        }
        Ok(BlobAccess::Forbidden)
    }

    /// What the device should be offered now, without recording anything. A rollout admits
    /// here only devices it already offered the image to (first offers are made by CHECK).
    pub fn eligible(&self, device: &Device) -> Result<Vec<OfferedImage>> {
        let txn = self.read()?;
        let found = candidates_in(&txn, device)?;
        let list: Vec<Candidate> = found.iter().map(|(c, _, _)| *c).collect();
        let admitted = rollouts::admitted_read(&txn, device, &list)?;
        let offers = ota::offers(&device.reported, &list, &device.pushes, &admitted);
        Ok(with_records(offers, &found))
    }

    /// A CHECK: records the installed versions and last-seen time, confirms updates the device
    /// now runs (in its rollout too), retires spent pushes, and returns (and records as
    /// offered) what to offer. Rollout admission (first offers, pacing) is decided inside
    /// the write, with the counters it changes.
    pub fn check_in(
        &self,
        device_id: &str,
        reported: BTreeMap<u16, u64>,
    ) -> Result<Vec<OfferedImage>> {
        let plan = self.check_in_plan(device_id, reported)?;
        self.write(false, move |txn| plan.apply(txn))
    }

    /// The reads of a CHECK (the device's candidates and spent pushes); its write is
    /// [`CheckIn::apply`], so that a caller can run it in a write of its own.
    pub(crate) fn check_in_plan(
        &self,
        device_id: &str,
        reported: BTreeMap<u16, u64>,
    ) -> Result<CheckIn> {
        let Some(mut device) = self.device(device_id)? else {
            return Err(StoreError::not_found("device", "unknown_device"));
        };
        device.reported = reported.clone();
        let found = candidates_in(&self.read()?, &device)?;
        // A push is spent once the device runs its number (or a higher one).
        let mut spent = Vec::new();
        for (&t, &record_id) in &device.pushes {
            let installed = reported.get(&t).copied();
            let done = match self.record(record_id)? {
                Some(r) => installed.is_some_and(|running| running >= r.version_number),
                None => true,
            };
            if done {
                spent.push((t, record_id));
            }
        }
        Ok(CheckIn {
            id: device_id.to_string(),
            reported,
            found,
            spent,
            history: self.config().ota_history,
        })
    }
    /// Records offers sent without a CHECK (an unsolicited OFFER after a push), so that the
    /// device's REPORTs about them are accepted.
    pub fn note_offered(&self, device_id: &str, offers: Vec<OfferedImage>) -> Result<()> {
        let id = device_id.to_string();
        let history = self.config().ota_history;
        self.write(false, move |txn| {
            let mut device = existing_device(txn, &id)?;
            record_offered(&mut device, &offers, now_ms(), history);
            put_device(txn, &device)
        })
    }

    /// A REPORT: validates the (state, result) pair and that the image was offered, then makes
    /// it the type's current state.
    pub fn report(
        &self,
        device_id: &str,
        fw_type: u16,
        version_number: u64,
        state: u8,
        result: u8,
        bytes_done: u64,
    ) -> Result<()> {
        let Some(ota_state) = OtaState::from_report(state, result) else {
            return Err(StoreError::Invalid(ModelError::new(
                "state",
                "bad_report",
                format!("state {state} with result {result} is not a valid combination"),
            )));
        };
        let id = device_id.to_string();
        let history = self.config().ota_history;
        self.write(false, move |txn| {
            let mut device = existing_device(txn, &id)?;
            let Some(ota) = device.ota.get_mut(&fw_type) else {
                return Err(StoreError::forbidden(
                    "not_offered",
                    "this image was never offered",
                ));
            };
            let offered = std::iter::once(&ota.current)
                .chain(ota.history.iter())
                .any(|e| e.version_number == version_number);
            if !offered {
                return Err(StoreError::forbidden(
                    "not_offered",
                    "this image was never offered",
                ));
            }
            // A device may pipeline its progress REPORTs and the session serves frames
            // concurrently, so they can reach this writer out of order: within one
            // download, progress never goes back (a late one is dropped, not recorded).
            let current = &ota.current;
            if ota_state == OtaState::Downloading
                && current.version_number == version_number
                && matches!(current.state, OtaState::Downloading | OtaState::Downloaded)
                && bytes_done < current.bytes_done
            {
                return Ok(());
            }
            let now = now_ms();
            ota.record(
                OtaEvent {
                    at_ms: now,
                    version_number,
                    state: ota_state,
                    result,
                    bytes_done,
                },
                history,
            );
            put_device(txn, &device)?;
            rollouts::on_report(
                txn,
                &device,
                fw_type,
                version_number,
                ota_state,
                result,
                now,
            )
        })
    }
}
