//! Firmware records: pool records and device descriptions (type 4), their version
//! counters and indexes, and the binaries they link to.
//!
//! Not here: associating records with device types (`associations.rs`), the binaries'
//! bytes and reference counts (`blobs.rs`).

use redb::{ReadableTable, WriteTransaction};

use super::associations::{associate_in, check_association_target};
use super::types::type_exists;
use super::{counter_scope, get_record, name_key, own_device_type, record_by_number};
use crate::ids::now_ms;
use crate::model::{self, BinaryRef, DEVICE_DESCRIPTION_TYPE, ModelError, Record, RecordFields};
use crate::store::tables::{
    ASSOC_BY_RECORD, BLOBS, COUNTERS, OWNED, RECORD_BY_NUMBER, RECORD_NAMES, RECORDS,
    RECORDS_BY_PARTNER, next_seq,
};
use crate::store::{Result, Store, StoreError, audit, blobs, codec, signing};

/// A new pool record as the API hands it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub partner_id: String,
    pub fw_type: i64,
    pub fields: RecordFields,
    /// The binary (sha256 and the URL the partner was given), if the url was not empty.
    pub binary: Option<([u8; 32], String)>,
    /// Device types to associate in the same transaction.
    pub associations: Vec<String>,
}

/// A device description (type 4) record, created under one device type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceDescription {
    pub partner_id: String,
    pub device_type_id: String,
    pub fields: RecordFields,
    pub binary: ([u8; 32], String),
    pub device_description_id: Option<String>,
    pub device_profile_id: Option<String>,
}

fn put_record(txn: &WriteTransaction, record: &Record) -> Result<()> {
    let bytes = codec::encode(record)?;
    txn.open_table(RECORDS)?
        .insert(record.id, bytes.as_slice())?;
    Ok(())
}

/// Resolves a binary the partner moved to its repository into the record's link.
fn attach_binary(
    txn: &WriteTransaction,
    partner_id: &str,
    sha256: &[u8; 32],
    url: &str,
) -> Result<BinaryRef> {
    let blake3 = txn
        .open_table(OWNED)?
        .get((partner_id, sha256))?
        .map(|v| *v.value())
        .ok_or_else(|| {
            StoreError::Invalid(ModelError::new(
                "url",
                "unknown_binary",
                "url must be one that moveToRepository returned for this partner",
            ))
        })?;
    let meta = blobs::get_blob(&txn.open_table(BLOBS)?, &blake3)?
        .ok_or_else(|| StoreError::Corrupt("owned blob missing".into()))?;
    blobs::add_ref(txn, &blake3)?;
    Ok(BinaryRef {
        blake3,
        sha256: *sha256,
        size: meta.size,
        url: url.to_string(),
    })
}

fn allocate_version(txn: &WriteTransaction, scope: &str, fw_type: u16) -> Result<u64> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get((scope, fw_type))?.map_or(1, |v| v.value() + 1);
    counters.insert((scope, fw_type), next)?;
    Ok(next)
}

/// Whether a record other than `except` holds this name/version key (see [`name_key`]).
fn name_taken(
    names: &impl ReadableTable<(&'static str, u16, &'static str, &'static str, &'static str), u64>,
    key: (&str, u16, &str, &str, &str),
    except: Option<u64>,
) -> Result<bool> {
    let found = names.get(key)?.map(|v| v.value());
    Ok(found.is_some_and(|id| Some(id) != except))
}

/// [`name_taken`] for `fields` under `scope` (a device type id, or "" for the pool).
fn fields_taken(
    txn: &WriteTransaction,
    partner_id: &str,
    fw_type: u16,
    scope: &str,
    fields: &RecordFields,
    except: Option<u64>,
) -> Result<bool> {
    let key = (
        partner_id,
        fw_type,
        scope,
        fields.name.as_str(),
        fields.version.as_str(),
    );
    name_taken(&txn.open_table(RECORD_NAMES)?, key, except)
}

fn version_exists_error(fields: &RecordFields) -> StoreError {
    StoreError::conflict(
        "version_exists",
        format!(
            "a record named {:?} with version {:?} already exists for this type",
            fields.name, fields.version
        ),
    )
}

/// The partner's pool record (type, number); 404 `unknown_version_number` if absent.
fn existing_pool_record(
    txn: &WriteTransaction,
    partner_id: &str,
    fw_type: u16,
    vn: u64,
) -> Result<Record> {
    let (by_number, records) = (txn.open_table(RECORD_BY_NUMBER)?, txn.open_table(RECORDS)?);
    record_by_number(&by_number, &records, partner_id, fw_type, vn)?
        .filter(|r| r.device_type_id.is_none())
        .ok_or_else(|| StoreError::not_found("pool record", "unknown_version_number"))
}

/// A record not yet inserted, in the pool: [`insert_record`] gives it its id and number.
fn draft(
    partner_id: &str,
    fw_type: u16,
    fields: RecordFields,
    binary: Option<BinaryRef>,
) -> Record {
    let now = now_ms();
    Record {
        id: 0,
        partner_id: partner_id.to_string(),
        fw_type,
        version_number: 0,
        name: fields.name,
        description: fields.description,
        version: fields.version,
        tags: fields.tags,
        binary,
        device_type_id: None,
        device_description_id: None,
        device_profile_id: None,
        created_ms: now,
        updated_ms: now,
    }
}

/// Inserts a new record with its indexes, allocating its version number. Checks done.
fn insert_record(txn: &WriteTransaction, mut record: Record) -> Result<Record> {
    let scope = counter_scope(&record.partner_id, record.fw_type).to_string();
    record.version_number = allocate_version(txn, &scope, record.fw_type)?;
    record.id = next_seq(txn, "next_record_id")?;
    put_record(txn, &record)?;
    txn.open_table(RECORD_BY_NUMBER)?.insert(
        (scope.as_str(), record.fw_type, record.version_number),
        record.id,
    )?;
    txn.open_table(RECORD_NAMES)?
        .insert(name_key(&record), record.id)?;
    txn.open_table(RECORDS_BY_PARTNER)?
        .insert((record.partner_id.as_str(), record.id), ())?;
    Ok(record)
}

impl Store {
    /// Creates a pool record (and its associations) and allocates its version number, all in
    /// one transaction.
    pub fn create_pool_record(&self, actor: &str, new: NewRecord) -> Result<Record> {
        let (t, _) = model::type_class(new.fw_type)?;
        if t == DEVICE_DESCRIPTION_TYPE {
            return Err(StoreError::Invalid(ModelError::new(
                "type",
                "device_description_in_pool",
                "type 4 (device description) is created under a device type, not in the pool",
            )));
        }
        new.fields.validate()?;
        let actor = actor.to_string();
        self.write(true, move |txn| {
            if !type_exists(txn, &new.partner_id, t)? {
                return Err(StoreError::Invalid(ModelError::new(
                    "type",
                    "unknown_type",
                    format!("firmware type {t} does not exist for this partner"),
                )));
            }
            if fields_taken(txn, &new.partner_id, t, "", &new.fields, None)? {
                return Err(version_exists_error(&new.fields));
            }
            let mut targets = Vec::new();
            for dt in &new.associations {
                if targets.contains(dt) {
                    continue;
                }
                check_association_target(txn, &new.partner_id, t, dt)?;
                targets.push(dt.clone());
            }
            let binary = match &new.binary {
                Some((sha, url)) => Some(attach_binary(txn, &new.partner_id, sha, url)?),
                None => None,
            };
            let record = insert_record(txn, draft(&new.partner_id, t, new.fields, binary))?;
            for dt in &targets {
                associate_in(txn, &record, dt)?;
            }
            audit::append(
                txn,
                &actor,
                "pool.create",
                &format!(
                    "partner/{}/pool/{t}/{}",
                    record.partner_id, record.version_number
                ),
                &format!("{} {}", record.name, record.version),
            )?;
            Ok(record)
        })
    }

    /// Creates a type-4 record under a device type, associated with it, in one transaction.
    pub fn create_device_description(
        &self,
        actor: &str,
        new: NewDeviceDescription,
    ) -> Result<Record> {
        new.fields.validate()?;
        for (field, value) in [
            ("deviceDescriptionId", &new.device_description_id),
            ("deviceProfileId", &new.device_profile_id),
        ] {
            if let Some(v) = value {
                model::validate_optional_text(field, v, model::ID_MAX)?;
            }
        }
        let actor = actor.to_string();
        self.write(true, move |txn| {
            own_device_type(txn, &new.partner_id, &new.device_type_id)?;
            let t = DEVICE_DESCRIPTION_TYPE;
            if fields_taken(
                txn,
                &new.partner_id,
                t,
                &new.device_type_id,
                &new.fields,
                None,
            )? {
                return Err(version_exists_error(&new.fields));
            }
            let (sha, url) = &new.binary;
            let binary = attach_binary(txn, &new.partner_id, sha, url)?;
            let record = insert_record(
                txn,
                Record {
                    device_type_id: Some(new.device_type_id.clone()),
                    device_description_id: new.device_description_id,
                    device_profile_id: new.device_profile_id,
                    ..draft(&new.partner_id, t, new.fields, Some(binary))
                },
            )?;
            associate_in(txn, &record, &new.device_type_id)?;
            audit::append(
                txn,
                &actor,
                "image.create",
                &format!(
                    "partner/{}/deviceTypes/{}/firmwareImages/{t}/{}",
                    record.partner_id, new.device_type_id, record.version_number
                ),
                &format!("{} {}", record.name, record.version),
            )?;
            Ok(record)
        })
    }

    /// A pool record of this partner (type 4 records are not in the pool).
    pub fn pool_record(&self, partner_id: &str, fw_type: u16, vn: u64) -> Result<Option<Record>> {
        let txn = self.read()?;
        let (by_number, records) = (txn.open_table(RECORD_BY_NUMBER)?, txn.open_table(RECORDS)?);
        Ok(
            record_by_number(&by_number, &records, partner_id, fw_type, vn)?
                .filter(|r| r.device_type_id.is_none()),
        )
    }

    /// A platform-type pool record by number, whoever owns it (platform numbers are global).
    pub fn platform_record(&self, fw_type: u16, vn: u64) -> Result<Option<Record>> {
        if fw_type > model::PLATFORM_TYPE_MAX {
            return Ok(None);
        }
        let txn = self.read()?;
        let id = txn
            .open_table(RECORD_BY_NUMBER)?
            .get(("", fw_type, vn))?
            .map(|v| v.value());
        let Some(id) = id else { return Ok(None) };
        Ok(get_record(&txn.open_table(RECORDS)?, id)?.filter(|r| r.device_type_id.is_none()))
    }

    pub fn record(&self, id: u64) -> Result<Option<Record>> {
        get_record(&self.read()?.open_table(RECORDS)?, id)
    }

    /// Replaces a pool record's editable fields. The binary is immutable once attached: a
    /// different url, or "" after one is attached, is 409 `binary_attached`.
    pub fn update_pool_record(
        &self,
        actor: &str,
        partner_id: &str,
        fw_type: u16,
        vn: u64,
        fields: RecordFields,
        binary: Option<([u8; 32], String)>,
    ) -> Result<Record> {
        fields.validate()?;
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let mut record = existing_pool_record(txn, &pid, fw_type, vn)?;
            if fields_taken(txn, &pid, fw_type, "", &fields, Some(record.id))? {
                return Err(version_exists_error(&fields));
            }
            let new_binary = match (&record.binary, binary) {
                (Some(current), Some((sha, _))) if current.sha256 == sha => None,
                (Some(_), _) => {
                    return Err(StoreError::conflict(
                        "binary_attached",
                        "the record's binary is immutable once attached; create a new record",
                    ));
                }
                (None, Some((sha, url))) => Some(attach_binary(txn, &pid, &sha, &url)?),
                (None, None) => None,
            };
            txn.open_table(RECORD_NAMES)?.remove(name_key(&record))?;
            record.name = fields.name;
            record.description = fields.description;
            record.version = fields.version;
            record.tags = fields.tags;
            txn.open_table(RECORD_NAMES)?
                .insert(name_key(&record), record.id)?;
            if new_binary.is_some() {
                record.binary = new_binary;
            }
            record.updated_ms = now_ms();
            put_record(txn, &record)?;
            audit::append(
                txn,
                &actor,
                "pool.update",
                &format!("partner/{pid}/pool/{fw_type}/{vn}"),
                "",
            )?;
            Ok(record)
        })
    }

    /// Deletes a pool record that has no associations (else 409 `associated`).
    pub fn delete_pool_record(
        &self,
        actor: &str,
        partner_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<()> {
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let record = existing_pool_record(txn, &pid, fw_type, vn)?;
            let associated = txn
                .open_table(ASSOC_BY_RECORD)?
                .range((record.id, "")..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == record.id);
            if associated {
                return Err(StoreError::conflict(
                    "associated",
                    "the record is still associated with device types",
                ));
            }
            txn.open_table(RECORDS)?.remove(record.id)?;
            // The number stays allocated (never reused); only the lookup goes.
            txn.open_table(RECORD_BY_NUMBER)?.remove((
                counter_scope(&pid, fw_type),
                fw_type,
                vn,
            ))?;
            txn.open_table(RECORD_NAMES)?.remove(name_key(&record))?;
            txn.open_table(RECORDS_BY_PARTNER)?
                .remove((pid.as_str(), record.id))?;
            if let Some(b) = &record.binary {
                blobs::release(txn, &b.blake3)?;
            }
            signing::forget_record(txn, record.id)?;
            audit::append(
                txn,
                &actor,
                "pool.delete",
                &format!("partner/{pid}/pool/{fw_type}/{vn}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Every record of the partner (pool and type 4), optionally of one type; unordered
    /// (the API sorts and pages).
    pub fn partner_records(&self, partner_id: &str, fw_type: Option<u16>) -> Result<Vec<Record>> {
        let txn = self.read()?;
        let index = txn.open_table(RECORDS_BY_PARTNER)?;
        let records = txn.open_table(RECORDS)?;
        let mut out = Vec::new();
        for entry in index.range((partner_id, 0u64)..=(partner_id, u64::MAX))? {
            let (k, _) = entry?;
            if let Some(r) = get_record(&records, k.value().1)?
                && fw_type.is_none_or(|t| t == r.fw_type)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Pool records of the partner (type 4 excluded).
    pub fn pool_records(&self, partner_id: &str, fw_type: Option<u16>) -> Result<Vec<Record>> {
        let mut all = self.partner_records(partner_id, fw_type)?;
        all.retain(|r| r.device_type_id.is_none());
        Ok(all)
    }

    /// Whether a pool record with this (type, name, version) exists, ignoring one record id.
    pub fn version_exists(
        &self,
        partner_id: &str,
        fw_type: u16,
        name: &str,
        version: &str,
        exclude_id: Option<u64>,
    ) -> Result<bool> {
        let key = (partner_id, fw_type, "", name, version);
        name_taken(&self.read()?.open_table(RECORD_NAMES)?, key, exclude_id)
    }

    /// Distinct tags of the partner's records, sorted.
    pub fn tags(&self, partner_id: &str) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self
            .partner_records(partner_id, None)?
            .into_iter()
            .flat_map(|r| r.tags)
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}
