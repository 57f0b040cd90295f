//! The fleet summary and version labels: per device type and firmware type, how many devices
//! run which version, the OTA states, how many were seen lately and the recent failures;
//! and the record's version string and name for a (type, version number) a device reports.
//!
//! One read transaction walks the partner's devices once (through `DEVICES_BY_TYPE`), so a
//! summary costs one pass over the fleet, never a request per device; labels are looked up
//! once per distinct (type, number). Not here: the device registry and OTA state changes
//! (`devices.rs`), the JSON shape (`api/render.rs`).

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadTransaction, ReadableTable};

use super::catalog::{counter_scope, get_device_type, get_record};
use super::tables::{
    ASSOCIATIONS, DEVICE_TYPES, DEVICE_TYPES_BY_PARTNER, DEVICES, DEVICES_BY_TYPE, PARTNERS,
    RECORD_BY_NUMBER, RECORDS,
};
use super::{Result, Store, codec};
use crate::model::{Device, DeviceType, OtaState, PLATFORM_TYPE_MAX, Partner, Record};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// What a person reads for a version number: the record's version string and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionLabel {
    pub version: String,
    pub name: String,
}

/// Labels of (firmware type, version number) pairs; a pair without a record is absent.
pub type Labels = BTreeMap<(u16, u64), VersionLabel>;

/// How many devices of one device type run one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCount {
    pub version_number: u64,
    pub devices: u64,
}

/// How many devices of one device type have this current OTA state for this image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub state: OtaState,
    pub version_number: u64,
    pub devices: u64,
}

/// A device whose current OTA state for a firmware type is `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub device_id: String,
    pub fw_type: u16,
    pub version_number: u64,
    pub result: u8,
    pub at_ms: u64,
}

/// One firmware type within a device type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwTypeFleet {
    pub fw_type: u16,
    /// Devices that report this type installed.
    pub reporting: u64,
    /// Highest version number first.
    pub versions: Vec<VersionCount>,
    pub states: Vec<StateCount>,
    /// The newest image associated with the device type for this type (with a binary or not).
    pub newest_associated: Option<Record>,
}

/// One device type of the partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTypeFleet {
    pub device_type: DeviceType,
    pub devices: u64,
    pub never_seen: u64,
    pub seen_last_hour: u64,
    pub seen_last_day: u64,
    pub fw_types: Vec<FwTypeFleet>,
    /// Newest first, at most the limit the caller gave.
    pub failures: Vec<Failure>,
    /// All current failures, of which `failures` is the newest part.
    pub failures_total: u64,
}

/// The partner's fleet at `at_ms`, with labels for every version number it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSummary {
    pub at_ms: u64,
    pub device_types: Vec<DeviceTypeFleet>,
    pub labels: Labels,
}

/// Counts of one device type while its devices are walked.
#[derive(Default)]
struct Tally {
    devices: u64,
    never_seen: u64,
    seen_last_hour: u64,
    seen_last_day: u64,
    versions: BTreeMap<(u16, u64), u64>,
    reporting: BTreeMap<u16, u64>,
    states: BTreeMap<(u16, u64, OtaState), u64>,
    failures: Vec<Failure>,
}

impl Tally {
    fn add(&mut self, d: &Device, now: u64) {
        self.devices += 1;
        match d.last_seen_ms {
            None => self.never_seen += 1,
            Some(seen) => {
                let age = now.saturating_sub(seen);
                if age < HOUR_MS {
                    self.seen_last_hour += 1;
                }
                if age < DAY_MS {
                    self.seen_last_day += 1;
                }
            }
        }
        for (&t, &vn) in &d.reported {
            *self.versions.entry((t, vn)).or_default() += 1;
            *self.reporting.entry(t).or_default() += 1;
        }
        for (&t, ota) in &d.ota {
            let c = &ota.current;
            *self
                .states
                .entry((t, c.version_number, c.state))
                .or_default() += 1;
            if c.state == OtaState::Failed {
                self.failures.push(Failure {
                    device_id: d.id.clone(),
                    fw_type: t,
                    version_number: c.version_number,
                    result: c.result,
                    at_ms: c.at_ms,
                });
            }
        }
    }
}

/// May `partner_id` read this record's version string and name? Its own records, and the
/// platform's (platform types share one number space, so a number may be another
/// partner's record, which stays private).
fn readable_by(
    partners: &impl ReadableTable<&'static str, &'static [u8]>,
    record: &Record,
    partner_id: &str,
) -> Result<bool> {
    if record.partner_id == partner_id {
        return Ok(true);
    }
    if record.fw_type > PLATFORM_TYPE_MAX {
        return Ok(false);
    }
    let owner: Option<Partner> = codec::get(partners, record.partner_id.as_str())?;
    Ok(owner.is_some_and(|p| p.platform))
}

fn labels_in(
    txn: &ReadTransaction,
    partner_id: &str,
    pairs: impl IntoIterator<Item = (u16, u64)>,
) -> Result<Labels> {
    let by_number = txn.open_table(RECORD_BY_NUMBER)?;
    let records = txn.open_table(RECORDS)?;
    let partners = txn.open_table(PARTNERS)?;
    let mut out = Labels::new();
    let wanted: BTreeSet<(u16, u64)> = pairs.into_iter().collect();
    for (t, vn) in wanted {
        let Some(id) = by_number
            .get((counter_scope(partner_id, t), t, vn))?
            .map(|v| v.value())
        else {
            continue;
        };
        if let Some(r) = get_record(&records, id)?
            && readable_by(&partners, &r, partner_id)?
        {
            out.insert(
                (t, vn),
                VersionLabel {
                    version: r.version,
                    name: r.name,
                },
            );
        }
    }
    Ok(out)
}

/// Per firmware type, the newest image associated with the device type.
fn newest_associated(txn: &ReadTransaction, device_type_id: &str) -> Result<BTreeMap<u16, Record>> {
    let assoc = txn.open_table(ASSOCIATIONS)?;
    let records = txn.open_table(RECORDS)?;
    let mut out = BTreeMap::new();
    let mut next_type = 0u16;
    // One step per firmware type: the last key below the next type is that type's newest.
    loop {
        let mut range = assoc
            .range((device_type_id, next_type, 0u64)..=(device_type_id, u16::MAX, u64::MAX))?;
        let Some(first) = range.next() else { break };
        let t = first?.0.value().1;
        let newest = assoc
            .range((device_type_id, t, 0u64)..=(device_type_id, t, u64::MAX))?
            .next_back();
        if let Some(entry) = newest {
            let (_, v) = entry?;
            if let Some(r) = get_record(&records, v.value())? {
                out.insert(t, r);
            }
        }
        match t.checked_add(1) {
            Some(n) => next_type = n,
            None => break,
        }
    }
    Ok(out)
}

impl Store {
    /// Labels for the (type, version number) pairs a partner's devices report.
    pub fn version_labels(
        &self,
        partner_id: &str,
        pairs: impl IntoIterator<Item = (u16, u64)>,
    ) -> Result<Labels> {
        labels_in(&self.read()?, partner_id, pairs)
    }

    /// The version number of each pushed record (record id → number); a record gone since is
    /// absent.
    pub fn pushed_numbers(
        &self,
        record_ids: impl IntoIterator<Item = u64>,
    ) -> Result<BTreeMap<u64, u64>> {
        let txn = self.read()?;
        let records = txn.open_table(RECORDS)?;
        let mut out = BTreeMap::new();
        for id in record_ids.into_iter().collect::<BTreeSet<u64>>() {
            if let Some(r) = get_record(&records, id)? {
                out.insert(id, r.version_number);
            }
        }
        Ok(out)
    }

    /// The version numbers of type `fw_type` whose record has the version string `version`
    /// (several records may share one, under different names).
    pub fn version_numbers_of(
        &self,
        partner_id: &str,
        fw_type: u16,
        version: &str,
    ) -> Result<BTreeSet<u64>> {
        let txn = self.read()?;
        let by_number = txn.open_table(RECORD_BY_NUMBER)?;
        let records = txn.open_table(RECORDS)?;
        let partners = txn.open_table(PARTNERS)?;
        let scope = counter_scope(partner_id, fw_type);
        let mut out = BTreeSet::new();
        for entry in by_number.range((scope, fw_type, 0u64)..=(scope, fw_type, u64::MAX))? {
            let (k, v) = entry?;
            if let Some(r) = get_record(&records, v.value())?
                && r.version == version
                && readable_by(&partners, &r, partner_id)?
            {
                out.insert(k.value().2);
            }
        }
        Ok(out)
    }

    /// The partner's fleet, or one device type of it: one pass over its devices.
    /// `failures_max` bounds the failures listed per device type (the newest are kept).
    pub fn fleet_summary(
        &self,
        partner_id: &str,
        device_type_id: Option<&str>,
        now_ms: u64,
        failures_max: usize,
    ) -> Result<FleetSummary> {
        let txn = self.read()?;
        let types = txn.open_table(DEVICE_TYPES)?;
        let mut device_types = Vec::new();
        for entry in txn
            .open_table(DEVICE_TYPES_BY_PARTNER)?
            .range((partner_id, "")..)?
        {
            let (k, _) = entry?;
            let (pid, id) = k.value();
            if pid != partner_id {
                break;
            }
            if device_type_id.is_none_or(|want| want == id)
                && let Some(dt) = get_device_type(&types, id)?
            {
                device_types.push(dt);
            }
        }
        let by_type = txn.open_table(DEVICES_BY_TYPE)?;
        let devices = txn.open_table(DEVICES)?;
        let mut out = Vec::with_capacity(device_types.len());
        let mut pairs = BTreeSet::new();
        for dt in device_types {
            let mut tally = Tally::default();
            for entry in by_type.range((dt.id.as_str(), "")..)? {
                let (k, _) = entry?;
                let (t, id) = k.value();
                if t != dt.id {
                    break;
                }
                if let Some(v) = devices.get(id)? {
                    let device: Device = codec::decode(v.value())?;
                    tally.add(&device, now_ms);
                }
            }
            let newest = newest_associated(&txn, &dt.id)?;
            let fw: BTreeSet<u16> = tally
                .reporting
                .keys()
                .chain(tally.states.keys().map(|(t, _, _)| t))
                .chain(newest.keys())
                .copied()
                .collect();
            let fw_types = fw
                .into_iter()
                .map(|t| FwTypeFleet {
                    fw_type: t,
                    reporting: tally.reporting.get(&t).copied().unwrap_or(0),
                    versions: tally
                        .versions
                        .range((t, 0)..=(t, u64::MAX))
                        .rev()
                        .map(|(&(_, vn), &n)| VersionCount {
                            version_number: vn,
                            devices: n,
                        })
                        .collect(),
                    states: tally
                        .states
                        .range((t, 0, OtaState::Offered)..=(t, u64::MAX, OtaState::Confirmed))
                        .map(|(&(_, vn, state), &n)| StateCount {
                            state,
                            version_number: vn,
                            devices: n,
                        })
                        .collect(),
                    newest_associated: newest.get(&t).cloned(),
                })
                .collect::<Vec<_>>();
            for f in &fw_types {
                pairs.extend(f.versions.iter().map(|v| (f.fw_type, v.version_number)));
                pairs.extend(f.states.iter().map(|s| (f.fw_type, s.version_number)));
            }
            let failures_total = tally.failures.len() as u64;
            tally
                .failures
                .sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(a.device_id.cmp(&b.device_id)));
            tally.failures.truncate(failures_max);
            pairs.extend(tally.failures.iter().map(|f| (f.fw_type, f.version_number)));
            out.push(DeviceTypeFleet {
                device_type: dt,
                devices: tally.devices,
                never_seen: tally.never_seen,
                seen_last_hour: tally.seen_last_hour,
                seen_last_day: tally.seen_last_day,
                fw_types,
                failures: tally.failures,
                failures_total,
            });
        }
        let labels = labels_in(&txn, partner_id, pairs)?;
        Ok(FleetSummary {
            at_ms: now_ms,
            device_types: out,
            labels,
        })
    }
}
