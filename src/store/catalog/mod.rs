//! The catalog: partners and users (`partners.rs`), firmware types and device types
//! (`types.rs`), firmware records and their version counters (`records.rs`), and the
//! associations of records with device types (`associations.rs`). This file holds the row
//! access those files (and `devices.rs`) share: counter scopes, encoded rows, and the
//! record and device type getters.
//!
//! Version numbers are allocated in the same write transaction that inserts the record, after
//! every check has passed, so a refused request allocates nothing and numbers are gap-free
//! per counter. Counter scope: `("", type)` for platform types 1–100 (type 4 included),
//! `(partner, type)` for MCU types 101–200.
//!
//! Authorization is the API's job; the only role rules here are the data rules of api.md
//! (platform types belong to the platform partner; admin users only there).
//!
//! Not here: devices (`devices.rs`), binaries (`blobs.rs`), tokens (`tokens.rs`).

mod associations;
mod partners;
mod records;
mod types;

use redb::{ReadableTable, WriteTransaction};

pub use associations::AssociationView;
pub(crate) use associations::{associate_in, check_association_target};
pub use partners::FirstStart;
pub use records::{NewDeviceDescription, NewRecord};

use super::tables::DEVICE_TYPES;
use super::{Result, StoreError, codec};
use crate::model::{self, DeviceType, Record};

pub(crate) fn counter_scope(partner_id: &str, fw_type: u16) -> &str {
    if fw_type <= model::PLATFORM_TYPE_MAX {
        ""
    } else {
        partner_id
    }
}

/// The key of a record in the name/version index (`RECORD_NAMES`).
pub(crate) fn name_key(record: &Record) -> (&str, u16, &str, &str, &str) {
    (
        record.partner_id.as_str(),
        record.fw_type,
        record.device_type_id.as_deref().unwrap_or(""),
        record.name.as_str(),
        record.version.as_str(),
    )
}

fn put<T: serde::Serialize>(
    txn: &WriteTransaction,
    def: redb::TableDefinition<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<()> {
    let bytes = codec::encode(value)?;
    txn.open_table(def)?.insert(key, bytes.as_slice())?;
    Ok(())
}

/// A record by id, from the `RECORDS` table of either transaction kind.
pub(crate) fn get_record(
    records: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<Record>> {
    codec::get(records, id)
}

/// The partner-scoped lookup of a record by type and version number (pool or image).
fn record_by_number(
    by_number: &impl ReadableTable<(&'static str, u16, u64), u64>,
    records: &impl ReadableTable<u64, &'static [u8]>,
    partner_id: &str,
    fw_type: u16,
    vn: u64,
) -> Result<Option<Record>> {
    let id = by_number
        .get((counter_scope(partner_id, fw_type), fw_type, vn))?
        .map(|v| v.value());
    let Some(id) = id else { return Ok(None) };
    Ok(get_record(records, id)?.filter(|r| r.partner_id == partner_id))
}

/// A device type by id, whoever owns it.
pub(crate) fn get_device_type(
    device_types: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<DeviceType>> {
    codec::get(device_types, id)
}

/// The partner's device type `id`; 404 `unknown_device_type` when it is missing or another
/// partner's.
pub(crate) fn own_device_type(
    txn: &WriteTransaction,
    partner_id: &str,
    id: &str,
) -> Result<DeviceType> {
    get_device_type(&txn.open_table(DEVICE_TYPES)?, id)?
        .filter(|d| d.partner_id == partner_id)
        .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))
}
