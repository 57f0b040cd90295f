//! Rollouts in redb: creation (one validation function), operator moves, the per-device
//! outcomes and per-group counters updated inside the transaction of the device event that
//! changes them (CHECK, REPORT, DDI feedback), and the timer pass for confirm timeouts,
//! windows and schedules.
//!
//! Cost: an event touches its device's outcome row and its rollout's row (O(1)); the timer
//! pass walks `ROLLOUT_DUE` up to now and the unfinished rollouts, never the fleet. Only
//! creation walks the target once, to place every device in its group. What is decided
//! (membership, the group and stop rules, pacing) is `rollout.rs`'s; this file stores it.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::catalog::{associate_in, check_association_target, get_record, own_device_type};
use super::labels::labels_of;
use super::tables::{
    ASSOC_BY_RECORD, DEVICE_LABELS, DEVICES, DEVICES_BY_TYPE, RECORDS, ROLLOUT_DEVICES,
    ROLLOUT_DUE, ROLLOUT_HELD, ROLLOUT_LATEST, ROLLOUTS, next_seq,
};
use super::{Result, Store, StoreError, audit, codec};
use crate::ids::now_ms;
use crate::model::{self, Device, DeviceLabels, ModelError, OtaState, Record};
use crate::ota::{Candidate, Gate};
use crate::rollout::{
    self, Definition, DeviceOutcome, GroupSpec, Move, Outcome, Rollout, State, Transition,
};

/// Most confirm timeouts one timer pass handles (the rest wait for the next pass).
const DUE_PER_PASS: usize = 10_000;

/// What a device protocol adapter tells about the rollout image (DDI feedback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Downloading or installing.
    Progress,
    Installed,
    /// The device runs the image.
    Confirmed,
    Failed(String),
}

/// Filters of a rollout's device list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeFilter {
    pub group: Option<u16>,
    pub outcome: Option<Outcome>,
}

/// What one timer pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub timed_out: usize,
    pub transitions: usize,
}

fn get_rollout(table: &impl ReadableTable<u64, &'static [u8]>, id: u64) -> Result<Option<Rollout>> {
    codec::get(table, id)
}

fn put_rollout(txn: &WriteTransaction, r: &Rollout) -> Result<()> {
    txn.open_table(ROLLOUTS)?
        .insert(r.id, codec::encode(r)?.as_slice())?;
    Ok(())
}

fn get_outcome(txn: &WriteTransaction, id: u64, device: &str) -> Result<Option<DeviceOutcome>> {
    codec::get(&txn.open_table(ROLLOUT_DEVICES)?, (id, device))
}

fn put_outcome(txn: &WriteTransaction, id: u64, device: &str, o: &DeviceOutcome) -> Result<()> {
    txn.open_table(ROLLOUT_DEVICES)?
        .insert((id, device), codec::encode(o)?.as_slice())?;
    Ok(())
}

fn due_at(r: &Rollout, first_offer_ms: u64) -> u64 {
    first_offer_ms.saturating_add(r.def.confirm_timeout_secs.saturating_mul(1000))
}

/// Moves a device's outcome (and the group counters) to `to`, dropping its timeout once it
/// is no longer in flight. Returns whether anything changed.
fn shift(
    txn: &WriteTransaction,
    r: &mut Rollout,
    device: &str,
    o: &mut DeviceOutcome,
    to: Outcome,
    reason: Option<String>,
    now: u64,
) -> Result<bool> {
    if !rollout::moves(o.outcome, to) {
        return Ok(false);
    }
    if let Some(g) = r.groups.get_mut(usize::from(o.group)) {
        g.counts.shift(o.outcome, to);
    }
    if o.outcome.in_flight()
        && !to.in_flight()
        && let Some(first) = o.first_offer_ms
    {
        txn.open_table(ROLLOUT_DUE)?
            .remove((due_at(r, first), r.id, device))?;
    }
    o.outcome = to;
    o.updated_ms = now;
    if reason.is_some() {
        o.reason = reason;
    }
    Ok(true)
}

/// Applies every transition now due, with its audit entry; completion releases the
/// association to the whole device type.
fn settle(txn: &WriteTransaction, r: &mut Rollout, now: u64) -> Result<usize> {
    let due = rollout::evaluate(r, now);
    for t in &due {
        rollout::apply(r, t, now);
        let (action, detail) = match t {
            Transition::Start => ("rollout.start", String::new()),
            Transition::StartGroup(i) => ("rollout.group", format!("group {} started", i + 1)),
            Transition::AwaitAdvance(i) => (
                "rollout.group",
                format!("group {} succeeded; waiting for advance", i + 1),
            ),
            Transition::Complete => {
                txn.open_table(ROLLOUT_HELD)?
                    .remove((r.def.device_type_id.as_str(), r.def.record_id))?;
                (
                    "rollout.complete",
                    "released to the device type".to_string(),
                )
            }
            Transition::Stop(reason) => ("rollout.stop", reason.clone()),
        };
        audit::append(txn, "system", action, &target(r), &detail)?;
    }
    Ok(due.len())
}

fn target(r: &Rollout) -> String {
    format!("partner/{}/rollouts/{}", r.partner_id, r.id)
}

/// The latest rollout of (device type, firmware type), if any.
fn latest(txn: &WriteTransaction, dt: &str, fw_type: u16) -> Result<Option<Rollout>> {
    let id = txn
        .open_table(ROLLOUT_LATEST)?
        .get((dt, fw_type))?
        .map(|v| v.value());
    match id {
        Some(id) => get_rollout(&txn.open_table(ROLLOUTS)?, id),
        None => Ok(None),
    }
}

/// The gate of an associated record for a device type: held by a rollout, or released.
pub(super) fn gate_of(
    held: &impl ReadableTable<(&'static str, u64), u64>,
    device_type_id: &str,
    record_id: u64,
) -> Result<Gate> {
    Ok(held
        .get((device_type_id, record_id))?
        .map_or(Gate::Released, |v| Gate::Held(v.value())))
}

/// The rollout bookkeeping of a CHECK, inside its transaction: late devices join the
/// target, devices running the number confirm, and devices of started groups are admitted
/// (a first offer within the window and pacing, or a retry). Returns the admitting
/// rollouts for `ota::offers`.
pub(super) fn on_check_in(
    txn: &WriteTransaction,
    device: &Device,
    candidates: &[Candidate],
    now: u64,
) -> Result<Vec<u64>> {
    let dt = device.device_type_id.as_str();
    let pushed = crate::ota::pushed_types(&device.reported, candidates, &device.pushes);
    let mut admitted = Vec::new();
    // The candidates were read before this transaction. A rollout that completed since
    // released its image to the whole device type: read each held gate again here, where
    // it counts, and admit a candidate whose hold is gone while its association stays
    // (a dissociation drops both). Otherwise the finished rollout below admits nobody and
    // the device would be refused an image every other device of its type is offered.
    {
        let held = txn.open_table(ROLLOUT_HELD)?;
        let by_record = txn.open_table(ASSOC_BY_RECORD)?;
        for c in candidates {
            if let Gate::Held(id) = c.gate
                && gate_of(&held, dt, c.record_id)? == Gate::Released
                && by_record.get((c.record_id, dt))?.is_some()
            {
                admitted.push(id);
            }
        }
    }
    for (&t, &running) in &device.reported {
        let Some(mut r) = latest(txn, dt, t)? else {
            continue;
        };
        let vn = r.def.version_number;
        let mut dirty = false;
        let existing = get_outcome(txn, r.id, &device.id)?;
        let mut o = match existing {
            Some(o) => o,
            None if !r.state.finished() => {
                let labels = labels_of(&txn.open_table(DEVICE_LABELS)?, &device.id)?;
                if !labels.matches(&r.def.filter.tags, &r.def.filter.attributes) {
                    continue;
                }
                let o = joining(&r, &device.id, running >= vn, now);
                if let Some(g) = r.groups.get_mut(usize::from(o.group)) {
                    g.counts.add(o.outcome);
                }
                dirty = true;
                o
            }
            None => continue,
        };
        let mut row_dirty = dirty;
        if running >= vn {
            row_dirty |= shift(
                txn,
                &mut r,
                &device.id,
                &mut o,
                Outcome::Confirmed,
                None,
                now,
            )?;
        } else if candidates.iter().any(|c| c.gate == Gate::Held(r.id)) && !pushed.contains(&t) {
            let group = usize::from(o.group);
            match o.first_offer_ms {
                None if o.outcome == Outcome::Waiting => {
                    let before = (r.minute_start_ms, r.minute_offers);
                    if rollout::take_first_offer(&mut r, group, now) {
                        o.first_offer_ms = Some(now);
                        shift(txn, &mut r, &device.id, &mut o, Outcome::Offered, None, now)?;
                        txn.open_table(ROLLOUT_DUE)?
                            .insert((due_at(&r, now), r.id, device.id.as_str()), ())?;
                        admitted.push(r.id);
                        row_dirty = true;
                    }
                    dirty |= before != (r.minute_start_ms, r.minute_offers);
                }
                Some(_) if o.outcome.in_flight() && rollout::may_reoffer(&r) => {
                    admitted.push(r.id);
                }
                _ => {}
            }
        }
        dirty |= row_dirty;
        if row_dirty {
            put_outcome(txn, r.id, &device.id, &o)?;
        }
        if dirty {
            settle(txn, &mut r, now)?;
            put_rollout(txn, &r)?;
        }
    }
    Ok(admitted)
}

/// The rollouts that admit `device` again without a CHECK (an unsolicited OFFER after a
/// push): only those that already made it a first offer it has not yet answered.
pub(super) fn admitted_read(
    txn: &ReadTransaction,
    device: &Device,
    candidates: &[Candidate],
) -> Result<Vec<u64>> {
    let latest = txn.open_table(ROLLOUT_LATEST)?;
    let rollouts = txn.open_table(ROLLOUTS)?;
    let outcomes = txn.open_table(ROLLOUT_DEVICES)?;
    let mut admitted = Vec::new();
    for &t in device.reported.keys() {
        let Some(id) = latest
            .get((device.device_type_id.as_str(), t))?
            .map(|v| v.value())
        else {
            continue;
        };
        if !candidates.iter().any(|c| c.gate == Gate::Held(id)) {
            continue;
        }
        let Some(r) = get_rollout(&rollouts, id)? else {
            continue;
        };
        let o: Option<DeviceOutcome> = codec::get(&outcomes, (id, device.id.as_str()))?;
        if o.is_some_and(|o| o.first_offer_ms.is_some() && o.outcome.in_flight())
            && rollout::may_reoffer(&r)
        {
            admitted.push(id);
        }
    }
    Ok(admitted)
}

/// A device joining a rollout after its creation (registered later, or first seen).
fn joining(r: &Rollout, device_id: &str, runs_it: bool, now: u64) -> DeviceOutcome {
    DeviceOutcome {
        group: rollout::group_of(&r.def.groups, r.id, device_id) as u16,
        outcome: if runs_it {
            Outcome::Confirmed
        } else {
            Outcome::Waiting
        },
        first_offer_ms: None,
        updated_ms: now,
        reason: None,
    }
}

/// The rollout bookkeeping of a REPORT about (type, number), inside its transaction.
pub(super) fn on_report(
    txn: &WriteTransaction,
    device: &Device,
    fw_type: u16,
    version_number: u64,
    state: OtaState,
    result: u8,
    now: u64,
) -> Result<()> {
    let Some(to) = rollout::outcome_of_report(state) else {
        return Ok(());
    };
    let reason = (to == Outcome::Failed).then(|| format!("REPORT failure, result {result}"));
    feedback_in(txn, device, fw_type, version_number, to, reason, now)
}

/// A device's news about the rollout image `version_number` of `fw_type`, inside the
/// transaction that records the news itself (REPORT, CHECK, DDI feedback).
pub(super) fn feedback_in(
    txn: &WriteTransaction,
    device: &Device,
    fw_type: u16,
    version_number: u64,
    to: Outcome,
    reason: Option<String>,
    now: u64,
) -> Result<()> {
    let Some(mut r) = latest(txn, &device.device_type_id, fw_type)? else {
        return Ok(());
    };
    if r.def.version_number != version_number {
        return Ok(());
    }
    let Some(mut o) = get_outcome(txn, r.id, &device.id)? else {
        return Ok(());
    };
    // A device reports on an image only after it was offered.
    if o.first_offer_ms.is_none() && to != Outcome::Confirmed {
        return Ok(());
    }
    if shift(txn, &mut r, &device.id, &mut o, to, reason, now)? {
        put_outcome(txn, r.id, &device.id, &o)?;
        settle(txn, &mut r, now)?;
        put_rollout(txn, &r)?;
    }
    Ok(())
}

/// What a new rollout is made of, as the API parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollout {
    pub partner_id: String,
    pub def: Definition,
}

/// Every check a new rollout must pass, in one place: the definition's own rules, the
/// partner's device type, an image of the partner (or a platform image) with a binary, not
/// already released to that device type, released by the device type's signature policy,
/// and no unfinished rollout on (device type, firmware type). Returns the record and
/// whether it is associated already (held by an earlier, finished rollout).
fn check_creation(txn: &WriteTransaction, new: &NewRollout) -> Result<(Record, bool)> {
    new.def.validate()?;
    let dt = new.def.device_type_id.as_str();
    own_device_type(txn, &new.partner_id, dt).map_err(|_| {
        StoreError::Invalid(ModelError::new(
            "deviceTypeId",
            "unknown_device_type",
            format!("device type {dt} does not exist"),
        ))
    })?;
    let record = get_record(&txn.open_table(RECORDS)?, new.def.record_id)?
        .filter(|r| {
            (r.partner_id == new.partner_id || r.fw_type <= model::PLATFORM_TYPE_MAX)
                && r.device_type_id.as_deref().is_none_or(|d| d == dt)
        })
        .ok_or_else(|| {
            StoreError::Invalid(ModelError::new(
                "firmwareImageId",
                "unknown_image",
                format!("firmware image {} does not exist", new.def.record_id),
            ))
        })?;
    if record.binary.is_none() {
        return Err(StoreError::conflict(
            "no_binary",
            "the image has no binary yet",
        ));
    }
    // A device type that requires signed images gets none other through a rollout.
    super::signing::check_release(txn, &record, dt, super::signing::now_s())?;
    let associated = txn
        .open_table(ASSOC_BY_RECORD)?
        .get((record.id, dt))?
        .is_some();
    let held = txn
        .open_table(ROLLOUT_HELD)?
        .get((dt, record.id))?
        .is_some();
    if associated && !held {
        return Err(StoreError::conflict(
            "already_released",
            "the image is already released to this device type",
        ));
    }
    if let Some(r) = latest(txn, dt, record.fw_type)?
        && !r.state.finished()
    {
        return Err(StoreError::conflict(
            "rollout_unfinished",
            format!(
                "rollout {} of this device type and firmware type is still {}",
                r.id,
                r.state.as_str()
            ),
        ));
    }
    if !associated {
        check_association_target(txn, &record.partner_id, record.fw_type, dt)?;
    }
    Ok((record, associated))
}

impl Store {
    /// Creates a rollout: holds the image's association with the device type, places every
    /// device of the target in its group (devices already at or above the number count as
    /// confirmed) and starts it unless `startAt` lies ahead.
    pub fn create_rollout(&self, actor: &str, mut new: NewRollout) -> Result<Rollout> {
        let actor = actor.to_string();
        self.write(true, move |txn| {
            let now = now_ms();
            let (record, associated) = check_creation(txn, &new)?;
            new.def.fw_type = record.fw_type;
            new.def.version_number = record.version_number;
            let dt = new.def.device_type_id.clone();
            // The canary list must name devices of the target.
            let mut targets: Vec<(String, bool)> = Vec::new();
            {
                let by_type = txn.open_table(DEVICES_BY_TYPE)?;
                let devices = txn.open_table(DEVICES)?;
                let labels = txn.open_table(DEVICE_LABELS)?;
                for entry in by_type.range((dt.as_str(), "")..)? {
                    let (k, _) = entry?;
                    let (t, id) = k.value();
                    if t != dt {
                        break;
                    }
                    let Some(device) = codec::get::<_, Device>(&devices, id)? else {
                        continue;
                    };
                    let l: DeviceLabels = labels_of(&labels, id)?;
                    if l.matches(&new.def.filter.tags, &new.def.filter.attributes) {
                        let runs = device
                            .reported
                            .get(&record.fw_type)
                            .is_some_and(|&v| v >= record.version_number);
                        targets.push((id.to_string(), runs));
                    }
                }
            }
            if let Some(GroupSpec::Devices(ids)) = new.def.groups.first() {
                for id in ids {
                    if !targets.iter().any(|(t, _)| t == id) {
                        return Err(StoreError::Invalid(ModelError::new(
                            "groups",
                            "unknown_device",
                            format!("canary device {id} is not a device of the target"),
                        )));
                    }
                }
            }
            let id = next_seq(txn, "next_rollout_id")?;
            let mut r = rollout::new_rollout(id, &new.partner_id, new.def, now);
            for (device_id, runs) in &targets {
                let o = joining(&r, device_id, *runs, now);
                if let Some(g) = r.groups.get_mut(usize::from(o.group)) {
                    g.counts.add(o.outcome);
                }
                put_outcome(txn, id, device_id, &o)?;
            }
            if !associated {
                associate_in(txn, &record, &dt)?;
            }
            txn.open_table(ROLLOUT_HELD)?
                .insert((dt.as_str(), record.id), id)?;
            txn.open_table(ROLLOUT_LATEST)?
                .insert((dt.as_str(), record.fw_type), id)?;
            audit::append(
                txn,
                &actor,
                "rollout.create",
                &target(&r),
                &format!(
                    "device type {dt}, type {} version {}, {} devices",
                    record.fw_type,
                    record.version_number,
                    targets.len()
                ),
            )?;
            settle(txn, &mut r, now)?;
            put_rollout(txn, &r)?;
            Ok(r)
        })
    }

    /// The partner's rollout `id`.
    pub fn rollout(&self, partner_id: &str, id: u64) -> Result<Option<Rollout>> {
        Ok(get_rollout(&self.read()?.open_table(ROLLOUTS)?, id)?
            .filter(|r| r.partner_id == partner_id))
    }

    /// The partner's rollouts, newest first, optionally of one state or device type.
    pub fn rollouts(
        &self,
        partner_id: &str,
        state: Option<State>,
        device_type_id: Option<&str>,
    ) -> Result<Vec<Rollout>> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(ROLLOUTS)?.iter()?.rev() {
            let (_, v) = entry?;
            let r: Rollout = codec::decode(v.value())?;
            if r.partner_id == partner_id
                && state.is_none_or(|s| s == r.state)
                && device_type_id.is_none_or(|d| d == r.def.device_type_id)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// How many rollouts are in each state (metrics).
    pub fn rollout_states(&self) -> Result<BTreeMap<&'static str, u64>> {
        let txn = self.read()?;
        let mut out = BTreeMap::new();
        for entry in txn.open_table(ROLLOUTS)?.iter()? {
            let (_, v) = entry?;
            let r: Rollout = codec::decode(v.value())?;
            *out.entry(r.state.as_str()).or_default() += 1;
        }
        Ok(out)
    }

    /// The latest rollout of each (device type, firmware type) (metrics).
    pub fn latest_rollouts(&self) -> Result<Vec<Rollout>> {
        let txn = self.read()?;
        let rollouts = txn.open_table(ROLLOUTS)?;
        let mut out = Vec::new();
        for entry in txn.open_table(ROLLOUT_LATEST)?.iter()? {
            let (_, v) = entry?;
            if let Some(r) = get_rollout(&rollouts, v.value())? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The devices of rollout `id` with their outcomes, by device id.
    pub fn rollout_devices(
        &self,
        id: u64,
        filter: &OutcomeFilter,
    ) -> Result<Vec<(String, DeviceOutcome)>> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for entry in txn
            .open_table(ROLLOUT_DEVICES)?
            .range((id, "")..(id.saturating_add(1), ""))?
        {
            let (k, v) = entry?;
            let o: DeviceOutcome = codec::decode(v.value())?;
            if filter.group.is_none_or(|g| g == o.group)
                && filter.outcome.is_none_or(|x| x == o.outcome)
            {
                out.push((k.value().1.to_string(), o));
            }
        }
        Ok(out)
    }

    /// An operator's move (pause, resume, advance, cancel); 409 `wrong_state` from a state
    /// that does not allow it.
    pub fn move_rollout(&self, actor: &str, partner_id: &str, id: u64, m: Move) -> Result<Rollout> {
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let now = now_ms();
            let mut r = get_rollout(&txn.open_table(ROLLOUTS)?, id)?
                .filter(|r| r.partner_id == pid)
                .ok_or_else(|| StoreError::not_found("rollout", "unknown_rollout"))?;
            rollout::operate(&mut r, m, now)
                .map_err(|message| StoreError::conflict("wrong_state", message))?;
            if m == Move::Advance && r.state == State::Completed {
                txn.open_table(ROLLOUT_HELD)?
                    .remove((r.def.device_type_id.as_str(), r.def.record_id))?;
            }
            audit::append(
                txn,
                &actor,
                &format!("rollout.{}", m.as_str()),
                &target(&r),
                "",
            )?;
            settle(txn, &mut r, now)?;
            put_rollout(txn, &r)?;
            Ok(r)
        })
    }

    /// Feedback about record `record_id` from device `device_id` through a protocol other
    /// than OCP/1 (DDI): updates its rollout outcome exactly as REPORT and CHECK do. A
    /// record no rollout holds for the device, or a device outside it, is not an error.
    pub fn rollout_feedback(
        &self,
        device_id: &str,
        record_id: u64,
        feedback: Feedback,
    ) -> Result<()> {
        let id = device_id.to_string();
        self.write(false, move |txn| {
            let device: Device = codec::get(&txn.open_table(DEVICES)?, id.as_str())?
                .ok_or_else(|| StoreError::not_found("device", "unknown_device"))?;
            let Some(record) = get_record(&txn.open_table(RECORDS)?, record_id)? else {
                return Ok(());
            };
            let (to, reason) = match feedback {
                Feedback::Progress => (Outcome::Downloading, None),
                Feedback::Installed => (Outcome::Installed, None),
                Feedback::Confirmed => (Outcome::Confirmed, None),
                Feedback::Failed(reason) => (Outcome::Failed, Some(reason)),
            };
            feedback_in(
                txn,
                &device,
                record.fw_type,
                record.version_number,
                to,
                reason,
                now_ms(),
            )
        })
    }

    /// The timer pass: times out devices not confirmed within `confirmTimeoutSecs` of their
    /// first offer, and applies what schedules, soak times and counters made due. Reads
    /// first and writes only when something is due.
    pub fn rollout_tick(&self, now: u64) -> Result<TickReport> {
        if !self.rollout_tick_due(now)? {
            return Ok(TickReport::default());
        }
        self.write(false, move |txn| {
            let mut report = TickReport::default();
            let due: Vec<(u64, u64, String)> = {
                let table = txn.open_table(ROLLOUT_DUE)?;
                let mut out = Vec::new();
                for entry in table.range((0u64, 0u64, "")..(now.saturating_add(1), 0u64, ""))? {
                    let (k, _) = entry?;
                    let (at, rid, dev) = k.value();
                    out.push((at, rid, dev.to_string()));
                    if out.len() >= DUE_PER_PASS {
                        break;
                    }
                }
                out
            };
            let mut touched: BTreeMap<u64, Rollout> = BTreeMap::new();
            for (at, rid, dev) in due {
                if let std::collections::btree_map::Entry::Vacant(slot) = touched.entry(rid) {
                    match get_rollout(&txn.open_table(ROLLOUTS)?, rid)? {
                        Some(r) => {
                            slot.insert(r);
                        }
                        None => {
                            txn.open_table(ROLLOUT_DUE)?
                                .remove((at, rid, dev.as_str()))?;
                            continue;
                        }
                    }
                }
                let Some(r) = touched.get_mut(&rid) else {
                    continue;
                };
                let Some(mut o) = get_outcome(txn, rid, &dev)? else {
                    txn.open_table(ROLLOUT_DUE)?
                        .remove((at, rid, dev.as_str()))?;
                    continue;
                };
                let reason = format!(
                    "not confirmed within {} s of the first offer",
                    r.def.confirm_timeout_secs
                );
                if shift(txn, r, &dev, &mut o, Outcome::TimedOut, Some(reason), now)? {
                    put_outcome(txn, rid, &dev, &o)?;
                    report.timed_out += 1;
                } else {
                    txn.open_table(ROLLOUT_DUE)?
                        .remove((at, rid, dev.as_str()))?;
                }
            }
            let unfinished: Vec<u64> = {
                let table = txn.open_table(ROLLOUT_LATEST)?;
                let mut ids = Vec::new();
                for entry in table.iter()? {
                    let (_, v) = entry?;
                    ids.push(v.value());
                }
                ids
            };
            for rid in unfinished {
                if !touched.contains_key(&rid)
                    && let Some(r) = get_rollout(&txn.open_table(ROLLOUTS)?, rid)?
                    && !r.state.finished()
                {
                    touched.insert(rid, r);
                }
            }
            for r in touched.values_mut() {
                report.transitions += settle(txn, r, now)?;
                put_rollout(txn, r)?;
            }
            Ok(report)
        })
    }

    fn rollout_tick_due(&self, now: u64) -> Result<bool> {
        let txn = self.read()?;
        let due = txn.open_table(ROLLOUT_DUE)?;
        if let Some(first) = due.first()?
            && first.0.value().0 <= now
        {
            return Ok(true);
        }
        let rollouts = txn.open_table(ROLLOUTS)?;
        for entry in txn.open_table(ROLLOUT_LATEST)?.iter()? {
            let (_, v) = entry?;
            if let Some(r) = get_rollout(&rollouts, v.value())?
                && !rollout::evaluate(&r, now).is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::model::RecordFields;
    use crate::rollout::{Filter, MILLION};
    use crate::secrets::token_hash;
    use crate::store::NewRecord;

    /// The race of a CHECK whose candidate's rollout completes between the CHECK's read
    /// (the candidates, with their gates) and its write transaction: the image is released
    /// by then, so the device is offered it like every other device of its type.
    #[test]
    fn a_check_offers_an_image_its_rollout_released_after_the_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(
            &crate::datadir::DataDir::new(dir.path()).db(),
            &StorageConfig::default(),
        )
        .expect("open");
        store.bootstrap().expect("bootstrap");
        let (partner, _) = store.create_partner("test", "p", None).expect("partner");
        let p = partner.id;
        let dt = store
            .create_device_type("test", &p, "kettle", "")
            .expect("device type")
            .id;
        for d in ["d0", "d1"] {
            store
                .register_device("test", &p, d, &dt, token_hash(d))
                .expect("device");
        }
        let staged = store.ingest_bytes(&p, &[5u8; 3000]).expect("ingest");
        let published = store.publish("test", &p, staged.sha256).expect("publish");
        let url = format!("https://otad.test/{}", model::hex(&published.sha256));
        let record = store
            .create_pool_record(
                "test",
                NewRecord {
                    partner_id: p.clone(),
                    fw_type: 3,
                    fields: RecordFields {
                        name: "app".into(),
                        description: String::new(),
                        version: "2.0".into(),
                        tags: vec![],
                    },
                    binary: Some((published.sha256, url)),
                    associations: vec![],
                },
            )
            .expect("record");
        // One group of everyone; half of it confirming completes the rollout.
        let r = store
            .create_rollout(
                "test",
                NewRollout {
                    partner_id: p.clone(),
                    def: Definition {
                        name: "r".into(),
                        device_type_id: dt.clone(),
                        record_id: record.id,
                        fw_type: 0,
                        version_number: 0,
                        groups: vec![GroupSpec::Percent(MILLION)],
                        success: MILLION / 2,
                        error: MILLION,
                        min_failures: 5,
                        confirm_timeout_secs: 3600,
                        soak_secs: 0,
                        auto_advance: true,
                        max_per_minute: None,
                        window: None,
                        start_at_ms: None,
                        filter: Filter::default(),
                    },
                },
            )
            .expect("rollout");
        let vn = r.def.version_number;
        assert_eq!(
            store
                .check_in("d0", [(3u16, 0u64)].into())
                .expect("check")
                .len(),
            1
        );

        // d1's CHECK reads its candidate while the rollout still holds it...
        let gate = gate_of(
            &store
                .read()
                .expect("read")
                .open_table(ROLLOUT_HELD)
                .expect("table"),
            &dt,
            record.id,
        )
        .expect("gate");
        assert_eq!(gate, Gate::Held(r.id));
        let candidates = vec![Candidate {
            record_id: record.id,
            fw_type: 3,
            version_number: vn,
            has_binary: true,
            gate,
        }];
        // ...then d0 confirms, which completes the rollout and releases the image...
        store.check_in("d0", [(3u16, vn)].into()).expect("confirm");
        let done = store.rollout(&p, r.id).expect("rollout").expect("exists");
        assert_eq!(done.state, State::Completed);
        // ...before d1's write transaction decides its offer.
        let mut device = store.device("d1").expect("device").expect("exists");
        device.reported = [(3u16, 0u64)].into();
        let offers = store
            .write(false, move |txn| {
                let admitted = on_check_in(txn, &device, &candidates, now_ms())?;
                Ok(crate::ota::offers(
                    &device.reported,
                    &candidates,
                    &device.pushes,
                    &admitted,
                ))
            })
            .expect("write");
        assert_eq!(offers.len(), 1, "released by its rollout: offered");
        assert_eq!(offers[0].record_id, record.id);
    }
}
