//! Associations of firmware records with device types: what a device type may be offered.
//!
//! Not here: the records themselves (`records.rs`), what a device is offered among them
//! (`ota.rs`, `devices.rs`).

use redb::{ReadableTable, WriteTransaction};

use super::{get_device_type, get_record, own_device_type, record_by_number};
use crate::model::{self, DeviceType, ModelError, Partner, Record};
use crate::store::tables::{
    ASSOC_BY_RECORD, ASSOCIATIONS, DEVICE_TYPES, PARTNERS, RECORD_BY_NUMBER, RECORDS, ROLLOUT_HELD,
};
use crate::store::{Result, Store, StoreError, audit, codec};

/// One association of a record, for the associations list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationView {
    pub device_type: DeviceType,
    pub partner: Partner,
    pub record_id: u64,
}

pub(crate) fn associate_in(
    txn: &WriteTransaction,
    record: &Record,
    device_type_id: &str,
) -> Result<()> {
    let mut assoc = txn.open_table(ASSOCIATIONS)?;
    let key = (device_type_id, record.fw_type, record.version_number);
    if assoc.get(key)?.is_some() {
        return Err(StoreError::conflict(
            "already_associated",
            "this image is already associated with the device type",
        ));
    }
    assoc.insert(key, record.id)?;
    txn.open_table(ASSOC_BY_RECORD)?
        .insert((record.id, device_type_id), ())?;
    Ok(())
}

/// Checks that `device_type_id` may receive `record`: it exists, and MCU types (whose numbers
/// mean something only within one partner) stay within the record's partner.
pub(crate) fn check_association_target(
    txn: &WriteTransaction,
    record_partner: &str,
    fw_type: u16,
    device_type_id: &str,
) -> Result<DeviceType> {
    let dt = get_device_type(&txn.open_table(DEVICE_TYPES)?, device_type_id)?.ok_or_else(|| {
        StoreError::Invalid(ModelError::new(
            "associations",
            "unknown_device_type",
            format!("device type {device_type_id} does not exist"),
        ))
    })?;
    if fw_type > model::PLATFORM_TYPE_MAX && dt.partner_id != record_partner {
        return Err(StoreError::Invalid(ModelError::new(
            "associations",
            "foreign_mcu_type",
            "an MCU-type image can only be associated with its own partner's device types",
        )));
    }
    Ok(dt)
}

impl Store {
    /// Associates the partner's pool record (type, vn) with one of its device types.
    /// Admins may associate another partner's platform-type record: pass the record owner.
    pub fn associate(
        &self,
        actor: &str,
        record_partner: &str,
        device_type_partner: &str,
        device_type_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<Record> {
        let (rp, dp, dt, actor) = (
            record_partner.to_string(),
            device_type_partner.to_string(),
            device_type_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            own_device_type(txn, &dp, &dt)?;
            let record = record_by_number(
                &txn.open_table(RECORD_BY_NUMBER)?,
                &txn.open_table(RECORDS)?,
                &rp,
                fw_type,
                vn,
            )?
            .filter(|r| r.device_type_id.is_none())
            .ok_or_else(|| {
                StoreError::Invalid(ModelError::new(
                    "versionNumber",
                    "unknown_version_number",
                    format!("no pool record of type {fw_type} with version number {vn}"),
                ))
            })?;
            check_association_target(txn, &rp, fw_type, &dt)?;
            associate_in(txn, &record, &dt)?;
            audit::append(
                txn,
                &actor,
                "image.associate",
                &format!("partner/{dp}/deviceTypes/{dt}/firmwareImages/{fw_type}/{vn}"),
                "",
            )?;
            Ok(record)
        })
    }

    /// Removes an association (404 if absent). A type-4 record goes with its association.
    pub fn dissociate(
        &self,
        actor: &str,
        device_type_partner: &str,
        device_type_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<()> {
        let (dp, dt, actor) = (
            device_type_partner.to_string(),
            device_type_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            own_device_type(txn, &dp, &dt)?;
            let id = txn
                .open_table(ASSOCIATIONS)?
                .remove((dt.as_str(), fw_type, vn))?
                .map(|v| v.value())
                .ok_or_else(|| StoreError::not_found("association", "not_associated"))?;
            txn.open_table(ASSOC_BY_RECORD)?.remove((id, dt.as_str()))?;
            // A rollout's hold goes with the association: associating it again releases it.
            txn.open_table(ROLLOUT_HELD)?.remove((dt.as_str(), id))?;
            audit::append(
                txn,
                &actor,
                "image.dissociate",
                &format!("partner/{dp}/deviceTypes/{dt}/firmwareImages/{fw_type}/{vn}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Device types a record is associated with, with their partners.
    pub fn associations_of(&self, record_id: u64) -> Result<Vec<AssociationView>> {
        let txn = self.read()?;
        let index = txn.open_table(ASSOC_BY_RECORD)?;
        let dts = txn.open_table(DEVICE_TYPES)?;
        let partners = txn.open_table(PARTNERS)?;
        let mut out = Vec::new();
        for entry in index.range((record_id, "")..)? {
            let (k, _) = entry?;
            let (id, dt_id) = k.value();
            if id != record_id {
                break;
            }
            let Some(device_type) = get_device_type(&dts, dt_id)? else {
                return Err(StoreError::Corrupt(format!(
                    "association to missing device type {dt_id}"
                )));
            };
            let Some(partner) = codec::get(&partners, device_type.partner_id.as_str())? else {
                return Err(StoreError::Corrupt(
                    "device type of a missing partner".into(),
                ));
            };
            out.push(AssociationView {
                device_type,
                partner,
                record_id,
            });
        }
        Ok(out)
    }

    /// Records associated with a device type, optionally of one type, by (type, number).
    pub fn images(&self, device_type_id: &str, fw_type: Option<u16>) -> Result<Vec<Record>> {
        let txn = self.read()?;
        let assoc = txn.open_table(ASSOCIATIONS)?;
        let records = txn.open_table(RECORDS)?;
        let (lo, hi) = fw_type.map_or((0, u16::MAX), |t| (t, t));
        let mut out = Vec::new();
        for entry in assoc.range((device_type_id, lo, 0u64)..=(device_type_id, hi, u64::MAX))? {
            let (_, v) = entry?;
            let record = get_record(&records, v.value())?
                .ok_or_else(|| StoreError::Corrupt("association to a missing record".into()))?;
            out.push(record);
        }
        Ok(out)
    }
}
