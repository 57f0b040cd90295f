//! Firmware types (platform 1–100, partner MCU types 101–200) and device types.
//!
//! Not here: the records of a type (`records.rs`), the devices of a device type
//! (`devices.rs`).

use redb::{ReadableTable, WriteTransaction};

use super::partners::find_platform;
use super::{counter_scope, get_device_type, own_device_type, put};
use crate::ids::{new_uuid, now_ms};
use crate::model::{self, DeviceType, FirmwareType, ModelError, Partner, TypeClass};
use crate::store::tables::{
    ASSOCIATIONS, DEVICE_TYPES, DEVICE_TYPES_BY_PARTNER, DEVICES_BY_TYPE, FW_TYPES, PARTNERS,
};
use crate::store::{Result, Store, StoreError, audit, codec, signing};

/// Whether firmware type `fw_type` exists for the partner (platform types for everyone).
pub(super) fn type_exists(txn: &WriteTransaction, partner_id: &str, fw_type: u16) -> Result<bool> {
    Ok(txn
        .open_table(FW_TYPES)?
        .get((counter_scope(partner_id, fw_type), fw_type))?
        .is_some())
}

impl Store {
    /// Creates a firmware type. 1–100 only for admins (platform), 101–200 per partner.
    pub fn create_type(
        &self,
        actor: &str,
        admin: bool,
        partner_id: &str,
        fw_type: i64,
        name: &str,
        description: &str,
    ) -> Result<FirmwareType> {
        let (t, class) = model::type_class(fw_type)?;
        if class == TypeClass::Platform && !admin {
            return Err(StoreError::Invalid(ModelError::new(
                "type",
                "type_reserved",
                "types 1-100 are platform types; partners use 101-200",
            )));
        }
        model::validate_name(name)?;
        model::validate_description(description)?;
        let (pid, name, description, actor) = (
            partner_id.to_string(),
            name.to_string(),
            description.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let owner = match class {
                TypeClass::Platform => {
                    find_platform(&txn.open_table(PARTNERS)?)?
                        .ok_or_else(|| {
                            StoreError::Corrupt(
                                "no platform partner; the store was not bootstrapped".into(),
                            )
                        })?
                        .id
                }
                TypeClass::Mcu => pid.clone(),
            };
            let scope = counter_scope(&pid, t).to_string();
            let mut types = txn.open_table(FW_TYPES)?;
            if types.get((scope.as_str(), t))?.is_some() {
                return Err(StoreError::conflict(
                    "type_exists",
                    format!("firmware type {t} already exists"),
                ));
            }
            let now = now_ms();
            let ft = FirmwareType {
                fw_type: t,
                name,
                description,
                partner_id: owner,
                created_ms: now,
                updated_ms: now,
            };
            types.insert((scope.as_str(), t), codec::encode(&ft)?.as_slice())?;
            drop(types);
            audit::append(
                txn,
                &actor,
                "type.create",
                &format!("partner/{pid}/types/{t}"),
                &ft.name,
            )?;
            Ok(ft)
        })
    }

    /// Renames a firmware type; partners cannot change platform types (403).
    pub fn update_type(
        &self,
        actor: &str,
        admin: bool,
        partner_id: &str,
        fw_type: u16,
        name: &str,
        description: &str,
    ) -> Result<()> {
        model::validate_name(name)?;
        model::validate_description(description)?;
        let (pid, name, description, actor) = (
            partner_id.to_string(),
            name.to_string(),
            description.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let scope = counter_scope(&pid, fw_type).to_string();
            let mut types = txn.open_table(FW_TYPES)?;
            let current = types
                .get((scope.as_str(), fw_type))?
                .map(|v| v.value().to_vec());
            let Some(bytes) = current else {
                return Err(StoreError::not_found("firmware type", "unknown_type"));
            };
            if scope.is_empty() && !admin {
                return Err(StoreError::forbidden(
                    "platform_type",
                    "platform types can only be changed by an appliance admin",
                ));
            }
            let mut ft: FirmwareType = codec::decode(&bytes)?;
            ft.name = name;
            ft.description = description;
            ft.updated_ms = now_ms();
            types.insert((scope.as_str(), fw_type), codec::encode(&ft)?.as_slice())?;
            drop(types);
            audit::append(
                txn,
                &actor,
                "type.update",
                &format!("partner/{pid}/types/{fw_type}"),
                &ft.name,
            )?;
            Ok(())
        })
    }

    /// Platform types plus the partner's own, by number.
    pub fn types(&self, partner_id: &str) -> Result<Vec<FirmwareType>> {
        let txn = self.read()?;
        let table = txn.open_table(FW_TYPES)?;
        let mut out = Vec::new();
        for scope in ["", partner_id] {
            for entry in table.range((scope, 0u16)..=(scope, u16::MAX))? {
                let (_, v) = entry?;
                out.push(codec::decode(v.value())?);
            }
        }
        Ok(out)
    }

    pub fn fw_type(&self, partner_id: &str, fw_type: u16) -> Result<Option<FirmwareType>> {
        let table = self.read()?.open_table(FW_TYPES)?;
        codec::get(&table, (counter_scope(partner_id, fw_type), fw_type))
    }

    pub fn create_device_type(
        &self,
        actor: &str,
        partner_id: &str,
        name: &str,
        description: &str,
    ) -> Result<DeviceType> {
        model::validate_name(name)?;
        model::validate_description(description)?;
        let now = now_ms();
        let dt = DeviceType {
            id: new_uuid(),
            partner_id: partner_id.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            created_ms: now,
            updated_ms: now,
        };
        let d = dt.clone();
        let actor = actor.to_string();
        self.write(true, move |txn| {
            let partner: Option<Partner> =
                codec::get(&txn.open_table(PARTNERS)?, d.partner_id.as_str())?;
            if partner.is_none() {
                return Err(StoreError::not_found("partner", "unknown_partner"));
            }
            put(txn, DEVICE_TYPES, &d.id, &d)?;
            txn.open_table(DEVICE_TYPES_BY_PARTNER)?
                .insert((d.partner_id.as_str(), d.id.as_str()), ())?;
            audit::append(
                txn,
                &actor,
                "device_type.create",
                &format!("partner/{}/deviceTypes/{}", d.partner_id, d.id),
                &d.name,
            )?;
            Ok(())
        })?;
        Ok(dt)
    }

    /// A device type of this partner (`None` for another partner's).
    pub fn device_type(&self, partner_id: &str, id: &str) -> Result<Option<DeviceType>> {
        let dt = get_device_type(&self.read()?.open_table(DEVICE_TYPES)?, id)?;
        Ok(dt.filter(|d| d.partner_id == partner_id))
    }

    pub fn device_types(&self, partner_id: &str) -> Result<Vec<DeviceType>> {
        let txn = self.read()?;
        let index = txn.open_table(DEVICE_TYPES_BY_PARTNER)?;
        let table = txn.open_table(DEVICE_TYPES)?;
        let mut out = Vec::new();
        for entry in index.range((partner_id, "")..)? {
            let (k, _) = entry?;
            let (pid, id) = k.value();
            if pid != partner_id {
                break;
            }
            if let Some(dt) = get_device_type(&table, id)? {
                out.push(dt);
            }
        }
        Ok(out)
    }

    pub fn update_device_type(
        &self,
        actor: &str,
        partner_id: &str,
        id: &str,
        name: &str,
        description: &str,
    ) -> Result<()> {
        model::validate_name(name)?;
        model::validate_description(description)?;
        let (pid, id, name, description, actor) = (
            partner_id.to_string(),
            id.to_string(),
            name.to_string(),
            description.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let mut dt = own_device_type(txn, &pid, &id)?;
            dt.name = name;
            dt.description = description;
            dt.updated_ms = now_ms();
            put(txn, DEVICE_TYPES, &id, &dt)?;
            audit::append(
                txn,
                &actor,
                "device_type.update",
                &format!("partner/{pid}/deviceTypes/{id}"),
                &dt.name,
            )?;
            Ok(())
        })
    }

    /// Deletes a device type that has no devices and no associations (else 409).
    pub fn delete_device_type(&self, actor: &str, partner_id: &str, id: &str) -> Result<()> {
        let (pid, id, actor) = (partner_id.to_string(), id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            own_device_type(txn, &pid, &id)?;
            let has_devices = txn
                .open_table(DEVICES_BY_TYPE)?
                .range((id.as_str(), "")..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == id);
            let has_images = txn
                .open_table(ASSOCIATIONS)?
                .range((id.as_str(), 0u16, 0u64)..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == id);
            if has_devices || has_images {
                return Err(StoreError::conflict(
                    "device_type_in_use",
                    "the device type still has devices or firmware images",
                ));
            }
            txn.open_table(DEVICE_TYPES)?.remove(id.as_str())?;
            txn.open_table(DEVICE_TYPES_BY_PARTNER)?
                .remove((pid.as_str(), id.as_str()))?;
            signing::forget_device_type(txn, &id)?;
            audit::append(
                txn,
                &actor,
                "device_type.delete",
                &format!("partner/{pid}/deviceTypes/{id}"),
                "",
            )?;
            Ok(())
        })
    }
}
