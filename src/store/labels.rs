//! Device labels: the tags and attributes of a device, one `DEVICE_LABELS` row each (no row
//! = none), bounded by `storage.device_*_max` / `storage.attribute_*_max`.
//!
//! Two ways in: the partner replaces tags and/or attributes (API PUT, import), and a device
//! or a protocol adapter (DDI configData) sets, merges, replaces or removes attributes
//! through [`Store::update_device_attributes`]. Both validate the result before writing and
//! audit the change. Not here: the device row itself (`devices.rs`), the rules of a valid
//! label (`model.rs`).

use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};

use super::tables::{DEVICE_LABELS, DEVICES};
use super::{Result, Store, StoreError, audit, codec};
use crate::model::{self, Device, DeviceLabels, LabelLimits, ModelError};

/// A change to a device's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeUpdate {
    /// Sets one key (adding or overwriting it).
    Set(String, String),
    /// Sets every given key; others stay.
    Merge(BTreeMap<String, String>),
    /// The given map becomes the attributes.
    Replace(BTreeMap<String, String>),
    /// Removes the given keys (absent ones are ignored).
    Remove(Vec<String>),
}

impl AttributeUpdate {
    fn apply(self, attributes: &mut BTreeMap<String, String>) {
        match self {
            AttributeUpdate::Set(k, v) => {
                attributes.insert(k, v);
            }
            AttributeUpdate::Merge(map) => attributes.extend(map),
            AttributeUpdate::Replace(map) => *attributes = map,
            AttributeUpdate::Remove(keys) => {
                for k in keys {
                    attributes.remove(&k);
                }
            }
        }
    }
}

/// The labels of device `id` from either transaction kind; empty when it has none.
pub(super) fn labels_of(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<DeviceLabels> {
    Ok(codec::get(table, id)?.unwrap_or_default())
}

/// Validates and writes `labels` for device `id` (an empty set removes the row).
pub(super) fn put_labels(
    txn: &WriteTransaction,
    id: &str,
    labels: &DeviceLabels,
    limits: &LabelLimits,
) -> Result<()> {
    model::validate_labels(labels, limits).map_err(ModelError::from)?;
    let mut table = txn.open_table(DEVICE_LABELS)?;
    if labels.is_empty() {
        table.remove(id)?;
    } else {
        table.insert(id, codec::encode(labels)?.as_slice())?;
    }
    Ok(())
}

/// The device row `id` (read here rather than through `devices.rs`, which imports this
/// file for the import's labels).
fn device_row(txn: &WriteTransaction, id: &str) -> Result<Option<Device>> {
    codec::get(&txn.open_table(DEVICES)?, id)
}

/// A short audit detail of a label change.
fn detail(labels: &DeviceLabels) -> String {
    format!(
        "{} tags, {} attributes",
        labels.tags.len(),
        labels.attributes.len()
    )
}

impl Store {
    fn label_limits(&self) -> LabelLimits {
        self.config().label_limits()
    }

    /// The tags and attributes of a device (empty when it has none or does not exist).
    pub fn device_labels(&self, device_id: &str) -> Result<DeviceLabels> {
        labels_of(&self.read()?.open_table(DEVICE_LABELS)?, device_id)
    }

    /// Replaces the tags and/or the attributes of one of the partner's devices (`None`
    /// keeps that half). Returns the device and its new labels.
    pub fn set_device_labels(
        &self,
        actor: &str,
        partner_id: &str,
        device_id: &str,
        tags: Option<Vec<String>>,
        attributes: Option<BTreeMap<String, String>>,
    ) -> Result<(Device, DeviceLabels)> {
        let (pid, id, actor) = (
            partner_id.to_string(),
            device_id.to_string(),
            actor.to_string(),
        );
        let limits = self.label_limits();
        self.write(true, move |txn| {
            let device = device_row(txn, &id)?
                .filter(|d| d.partner_id == pid)
                .ok_or_else(|| StoreError::not_found("device", "unknown_device"))?;
            let mut labels = labels_of(&txn.open_table(DEVICE_LABELS)?, &id)?;
            if let Some(tags) = tags {
                labels.tags = tags;
            }
            if let Some(attributes) = attributes {
                labels.attributes = attributes;
            }
            put_labels(txn, &id, &labels, &limits)?;
            audit::append(
                txn,
                &actor,
                "device.labels",
                &format!("partner/{pid}/devices/{id}"),
                &detail(&labels),
            )?;
            Ok((device, labels))
        })
    }

    /// Changes the attributes of device `device_id` (of any partner: the caller, such as a
    /// device protocol adapter, has authenticated the device). Refused whole, with
    /// [`StoreError::Invalid`] (traces `too_many_attributes`, `invalid_attribute_key`,
    /// `attribute_too_long`, `invalid_attribute_value`), when the result breaks the bounds;
    /// 404 `unknown_device` when the device does not exist. Returns the new attributes.
    pub fn update_device_attributes(
        &self,
        actor: &str,
        device_id: &str,
        update: AttributeUpdate,
    ) -> Result<BTreeMap<String, String>> {
        let (id, actor) = (device_id.to_string(), actor.to_string());
        let limits = self.label_limits();
        self.write(true, move |txn| {
            let device = device_row(txn, &id)?
                .ok_or_else(|| StoreError::not_found("device", "unknown_device"))?;
            let mut labels = labels_of(&txn.open_table(DEVICE_LABELS)?, &id)?;
            let before = labels.attributes.clone();
            update.apply(&mut labels.attributes);
            if labels.attributes == before {
                return Ok(before);
            }
            put_labels(txn, &id, &labels, &limits)?;
            audit::append(
                txn,
                &actor,
                "device.attributes",
                &format!("partner/{}/devices/{id}", device.partner_id),
                &detail(&labels),
            )?;
            Ok(labels.attributes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_apply() {
        let mut a = BTreeMap::new();
        AttributeUpdate::Set("k".into(), "v".into()).apply(&mut a);
        AttributeUpdate::Merge([("x".to_string(), "1".to_string())].into()).apply(&mut a);
        assert_eq!(a.len(), 2);
        AttributeUpdate::Remove(vec!["k".into(), "absent".into()]).apply(&mut a);
        assert_eq!(a, [("x".to_string(), "1".to_string())].into());
        AttributeUpdate::Replace(BTreeMap::new()).apply(&mut a);
        assert!(a.is_empty());
    }
}
