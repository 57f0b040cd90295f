//! hawkBit DDI (docs/ddi.md): partners' DDI tenant names, their gateway tokens, the check of
//! a DDI request's credentials, and per device the actions advertised to its agent (the
//! open deployment, a withdrawn one awaiting the agent's cancel answer, the last closed one)
//! with the feedback that moves its OTA state.
//!
//! A DDI device is an ordinary device: a poll is a check-in (`devices.rs`) with the device
//! taken to run 0 for every type associated with its device type until a `closed`/`success`
//! records the number. Not here: the JSON shapes and the mapping of DDI's execution and
//! result values (`api/ddi/`).

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::devices::CheckIn;
use super::tables::{
    ASSOCIATIONS, DDI_ACTIONS, DDI_TENANTS, DEVICE_TOKENS, DEVICES, GATEWAY_BY_PARTNER,
    GATEWAY_TOKENS, PARTNER_TENANTS, PARTNERS,
};
use super::{AttributeUpdate, Result, Store, StoreError, audit, codec, rollouts};
use crate::ids::now_ms;
use crate::model::{self, Device, OtaEvent, OtaState};
use crate::rollout::Outcome;
use crate::secrets::{same_hash, token_hash};

/// One firmware type of an action: the record offered for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdiChunk {
    pub fw_type: u16,
    pub record_id: u64,
    pub version_number: u64,
}

/// What one deployment offers a device. The id is derived from the device and the offer,
/// so it is the same across polls and restarts and changes when the offer does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdiAction {
    pub id: u64,
    pub chunks: Vec<DdiChunk>,
}

/// A device's DDI actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdiState {
    /// Advertised as `deploymentBase` until the agent sends `closed`.
    pub open: Option<DdiAction>,
    /// Withdrawn before it was closed: advertised as `cancelAction` until the agent answers.
    pub cancel: Option<DdiAction>,
    /// The last closed action (`installedBase`); never advertised again.
    pub closed: Option<DdiAction>,
    /// Per firmware type, the details of the agent's last failure report.
    pub reasons: BTreeMap<u16, String>,
    /// The device's attributes as its agent's last configData left them (the attributes
    /// themselves live with the device's labels, where a partner may change them too);
    /// `None` until the agent sent configData, which the poll asks for until then.
    pub attributes: Option<BTreeMap<String, String>>,
}

/// How configData changes the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMode {
    Merge,
    Replace,
    Remove,
}

/// A partner's gateway token, stored hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayToken {
    pub hash: [u8; 32],
    pub created_ms: u64,
}

/// The credential of a DDI request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdiCredential<'a> {
    /// The device's own token (the one OCP/1 HELLO uses).
    Target(&'a str),
    /// The partner's gateway token, valid for any of its devices.
    Gateway(&'a str),
}

/// What a poll advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdiPoll {
    pub deployment: Option<u64>,
    pub cancel: Option<u64>,
    /// The agent has not sent its attributes yet.
    pub config_wanted: bool,
}

/// Which of a device's actions a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdiSlot {
    Open,
    Cancel,
    Closed,
}

/// What a deployment feedback reports, already mapped from DDI's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdiOutcome {
    Downloading,
    Downloaded,
    Installing,
    /// `canceled`: the agent put it off; the action stays open.
    Deferred,
    /// `closed`/`success`: installed and running.
    Succeeded,
    /// `closed`/`failure` or `rejected`.
    Failed,
}

/// LwM2M result codes recorded with DDI outcomes (docs/protocol.md section 14).
const RESULT_SUCCESS: u8 = 1;
const RESULT_UPDATE_FAILED: u8 = 8;
const RESULT_CANCELLED: u8 = 10;
const RESULT_DEFERRED: u8 = 11;

/// The stable action id of an offer to a device: positive and below 2^31, because
/// SWUpdate reads it back as a JSON number into a C int.
pub fn action_id(device_id: &str, chunks: &[DdiChunk]) -> u64 {
    let mut input = Vec::with_capacity(device_id.len() + 1 + chunks.len() * 18);
    input.extend_from_slice(device_id.as_bytes());
    input.push(0);
    for c in chunks {
        input.extend_from_slice(&c.fw_type.to_be_bytes());
        input.extend_from_slice(&c.record_id.to_be_bytes());
        input.extend_from_slice(&c.version_number.to_be_bytes());
    }
    let h = token_hash(&input);
    let mut n = [0u8; 8];
    n.copy_from_slice(h.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(n) % 0x7fff_fffe + 1
}

fn get_state(txn: &WriteTransaction, device_id: &str) -> Result<DdiState> {
    Ok(codec::get(&txn.open_table(DDI_ACTIONS)?, device_id)?.unwrap_or_default())
}

fn put_state(txn: &WriteTransaction, device_id: &str, state: &DdiState) -> Result<()> {
    let bytes = codec::encode(state)?;
    txn.open_table(DDI_ACTIONS)?
        .insert(device_id, bytes.as_slice())?;
    Ok(())
}

fn unknown_action() -> StoreError {
    StoreError::not_found("action", "unknown_action")
}

/// The partner a tenant name stands for: an explicit tenant, or the id of a partner that
/// has none.
fn tenant_partner(
    tenants: &impl ReadableTable<&'static str, &'static str>,
    partner_tenants: &impl ReadableTable<&'static str, &'static str>,
    partners: &impl ReadableTable<&'static str, &'static [u8]>,
    tenant: &str,
) -> Result<Option<String>> {
    let lower = tenant.to_ascii_lowercase();
    if let Some(p) = tenants.get(lower.as_str())? {
        return Ok(Some(p.value().to_string()));
    }
    if partners.get(lower.as_str())?.is_some() && partner_tenants.get(lower.as_str())?.is_none() {
        return Ok(Some(lower));
    }
    Ok(None)
}

impl Store {
    /// The partner's DDI tenant name (its id unless one was set).
    pub fn ddi_tenant(&self, partner_id: &str) -> Result<String> {
        let txn = self.read()?;
        let table = txn.open_table(PARTNER_TENANTS)?;
        let set = table.get(partner_id)?.map(|v| v.value().to_string());
        Ok(set.unwrap_or_else(|| partner_id.to_string()))
    }

    /// Every tenant name that was set, by partner id.
    pub fn ddi_tenants(&self) -> Result<BTreeMap<String, String>> {
        let txn = self.read()?;
        let mut out = BTreeMap::new();
        for entry in txn.open_table(PARTNER_TENANTS)?.iter()? {
            let (k, v) = entry?;
            out.insert(k.value().to_string(), v.value().to_string());
        }
        Ok(out)
    }

    /// Sets a partner's DDI tenant name: unique without regard to case, also against the
    /// ids of partners that use theirs.
    pub fn set_ddi_tenant(&self, actor: &str, partner_id: &str, tenant: &str) -> Result<()> {
        model::validate_ddi_tenant(tenant)?;
        let (pid, tenant, actor) = (
            partner_id.to_string(),
            tenant.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            if txn.open_table(PARTNERS)?.get(pid.as_str())?.is_none() {
                return Err(StoreError::not_found("partner", "unknown_partner"));
            }
            let lower = tenant.to_ascii_lowercase();
            let holder = tenant_partner(
                &txn.open_table(DDI_TENANTS)?,
                &txn.open_table(PARTNER_TENANTS)?,
                &txn.open_table(PARTNERS)?,
                &lower,
            )?;
            if holder.as_ref().is_some_and(|h| *h != pid) {
                return Err(StoreError::conflict(
                    "ddi_tenant_taken",
                    format!("the DDI tenant {tenant:?} belongs to another partner"),
                ));
            }
            let old = txn
                .open_table(PARTNER_TENANTS)?
                .get(pid.as_str())?
                .map(|v| v.value().to_ascii_lowercase());
            let mut tenants = txn.open_table(DDI_TENANTS)?;
            if let Some(old) = old {
                tenants.remove(old.as_str())?;
            }
            tenants.insert(lower.as_str(), pid.as_str())?;
            drop(tenants);
            txn.open_table(PARTNER_TENANTS)?
                .insert(pid.as_str(), tenant.as_str())?;
            audit::append(
                txn,
                &actor,
                "partner.ddi_tenant",
                &format!("partner/{pid}"),
                &tenant,
            )?;
            Ok(())
        })
    }

    /// Creates or replaces the partner's gateway token (the old one stops working at once).
    pub fn set_gateway_token(&self, actor: &str, partner_id: &str, hash: [u8; 32]) -> Result<()> {
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            if txn.open_table(PARTNERS)?.get(pid.as_str())?.is_none() {
                return Err(StoreError::not_found("partner", "unknown_partner"));
            }
            let old: Option<GatewayToken> =
                codec::get(&txn.open_table(GATEWAY_BY_PARTNER)?, pid.as_str())?;
            let mut tokens = txn.open_table(GATEWAY_TOKENS)?;
            if let Some(old) = &old {
                tokens.remove(&old.hash)?;
            }
            tokens.insert(&hash, pid.as_str())?;
            drop(tokens);
            let record = GatewayToken {
                hash,
                created_ms: now_ms(),
            };
            let bytes = codec::encode(&record)?;
            txn.open_table(GATEWAY_BY_PARTNER)?
                .insert(pid.as_str(), bytes.as_slice())?;
            let verb = if old.is_some() { "rotate" } else { "create" };
            audit::append(
                txn,
                &actor,
                "partner.gateway_token",
                &format!("partner/{pid}"),
                verb,
            )?;
            Ok(())
        })
    }

    /// Withdraws the partner's gateway token; 404 when it has none.
    pub fn delete_gateway_token(&self, actor: &str, partner_id: &str) -> Result<()> {
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let old: Option<GatewayToken> =
                codec::get(&txn.open_table(GATEWAY_BY_PARTNER)?, pid.as_str())?;
            let old =
                old.ok_or_else(|| StoreError::not_found("gateway token", "no_gateway_token"))?;
            txn.open_table(GATEWAY_TOKENS)?.remove(&old.hash)?;
            txn.open_table(GATEWAY_BY_PARTNER)?.remove(pid.as_str())?;
            audit::append(
                txn,
                &actor,
                "partner.gateway_token",
                &format!("partner/{pid}"),
                "delete",
            )?;
            Ok(())
        })
    }

    /// When the partner's gateway token was made, if it has one.
    pub fn gateway_token(&self, partner_id: &str) -> Result<Option<GatewayToken>> {
        codec::get(&self.read()?.open_table(GATEWAY_BY_PARTNER)?, partner_id)
    }

    /// The device a DDI request may act for: `controller` of the tenant's partner, with its
    /// own token or the partner's gateway token. `None` for every failure alike.
    pub fn ddi_device(
        &self,
        tenant: &str,
        controller: &str,
        credential: DdiCredential<'_>,
    ) -> Result<Option<Device>> {
        let txn = self.read()?;
        let Some(partner) = tenant_partner(
            &txn.open_table(DDI_TENANTS)?,
            &txn.open_table(PARTNER_TENANTS)?,
            &txn.open_table(PARTNERS)?,
            tenant,
        )?
        else {
            return Ok(None);
        };
        let device: Option<Device> = codec::get(&txn.open_table(DEVICES)?, controller)?;
        let Some(device) = device.filter(|d| d.partner_id == partner) else {
            return Ok(None);
        };
        let allowed = match credential {
            DdiCredential::Target(token) => {
                let hash = token_hash(token);
                same_hash(&hash, &device.token_hash)
                    && txn.open_table(DEVICE_TOKENS)?.get(&hash)?.is_some()
            }
            DdiCredential::Gateway(token) => txn
                .open_table(GATEWAY_TOKENS)?
                .get(&token_hash(token))?
                .is_some_and(|p| p.value() == partner),
        };
        Ok(allowed.then_some(device))
    }

    /// configData: the agent's attributes become the device's (bounded and audited as the
    /// labels rules say), then the poll stops asking for them.
    pub fn ddi_config_data(
        &self,
        device_id: &str,
        mode: ConfigMode,
        data: BTreeMap<String, String>,
    ) -> Result<()> {
        let update = match mode {
            ConfigMode::Merge => AttributeUpdate::Merge(data),
            ConfigMode::Replace => AttributeUpdate::Replace(data),
            ConfigMode::Remove => AttributeUpdate::Remove(data.into_keys().collect()),
        };
        let now =
            self.update_device_attributes(&format!("device:{device_id}"), device_id, update)?;
        let id = device_id.to_string();
        self.write(false, move |txn| {
            let mut state = get_state(txn, &id)?;
            if state.attributes.as_ref() != Some(&now) {
                state.attributes = Some(now);
                put_state(txn, &id, &state)?;
            }
            Ok(())
        })
    }

    /// The device's DDI actions as stored.
    pub fn ddi_state(&self, device_id: &str) -> Result<DdiState> {
        Ok(codec::get(&self.read()?.open_table(DDI_ACTIONS)?, device_id)?.unwrap_or_default())
    }

    /// A poll, read: a check-in with the device's running numbers (0 for each type
    /// associated with its device type that no closed action set). Its write,
    /// [`DdiPollPlan::apply`], records the check-in and decides what to advertise in one
    /// transaction: an offer that changed or went away while its action was open becomes a
    /// cancellation.
    pub fn ddi_poll_plan(&self, device: &Device) -> Result<DdiPollPlan> {
        let mut reported = device.reported.clone();
        {
            let txn = self.read()?;
            let assoc = txn.open_table(ASSOCIATIONS)?;
            let dt = device.device_type_id.as_str();
            let mut types = BTreeSet::new();
            for entry in assoc.range((dt, 0u16, 0u64)..=(dt, u16::MAX, u64::MAX))? {
                let (k, _) = entry?;
                types.insert(k.value().1);
            }
            for t in types.into_iter().chain(device.pushes.keys().copied()) {
                reported.entry(t).or_insert(0);
            }
        }
        Ok(DdiPollPlan {
            check_in: self.check_in_plan(&device.id, reported)?,
            device_id: device.id.clone(),
        })
    }
    /// The device's action `id` in `slot`, if that is the one it holds.
    pub fn ddi_action(&self, device_id: &str, slot: DdiSlot, id: u64) -> Result<Option<DdiAction>> {
        let state = self.ddi_state(device_id)?;
        let action = match slot {
            DdiSlot::Open => state.open,
            DdiSlot::Cancel => state.cancel,
            DdiSlot::Closed => state.closed,
        };
        Ok(action.filter(|a| a.id == id))
    }

    /// Feedback on the open action `action_id`: records the outcome for each of its types.
    /// A closing outcome closes the action; repeating it for the closed action is accepted
    /// and changes nothing. Any other action is 404 `unknown_action`.
    pub fn ddi_feedback(
        &self,
        device_id: &str,
        action_id: u64,
        outcome: DdiOutcome,
        progress: u64,
        reason: String,
    ) -> Result<()> {
        let id = device_id.to_string();
        let history = self.config().ota_history;
        self.write(false, move |txn| {
            let mut state = get_state(txn, &id)?;
            let closing = matches!(outcome, DdiOutcome::Succeeded | DdiOutcome::Failed);
            let Some(action) = state.open.clone().filter(|a| a.id == action_id) else {
                if closing && state.closed.as_ref().is_some_and(|a| a.id == action_id) {
                    return Ok(());
                }
                return Err(unknown_action());
            };
            let mut device: Device = codec::get(&txn.open_table(DEVICES)?, id.as_str())?
                .ok_or_else(|| StoreError::not_found("device", "unknown_device"))?;
            let now = now_ms();
            for c in &action.chunks {
                let event = |state: OtaState, result: u8| OtaEvent {
                    at_ms: now,
                    version_number: c.version_number,
                    state,
                    result,
                    bytes_done: progress,
                };
                let Some(ota) = device.ota.get_mut(&c.fw_type) else {
                    return Err(unknown_action());
                };
                match outcome {
                    DdiOutcome::Downloading => ota.record(event(OtaState::Downloading, 0), history),
                    DdiOutcome::Downloaded => ota.record(event(OtaState::Downloaded, 0), history),
                    DdiOutcome::Installing => ota.record(event(OtaState::Installing, 0), history),
                    DdiOutcome::Deferred => {
                        ota.record(event(OtaState::Deferred, RESULT_DEFERRED), history);
                    }
                    DdiOutcome::Succeeded => {
                        ota.record(event(OtaState::Installed, RESULT_SUCCESS), history);
                        ota.record(event(OtaState::Confirmed, RESULT_SUCCESS), history);
                        device.reported.insert(c.fw_type, c.version_number);
                        if device.pushes.get(&c.fw_type) == Some(&c.record_id) {
                            device.pushes.remove(&c.fw_type);
                        }
                        state.reasons.remove(&c.fw_type);
                    }
                    DdiOutcome::Failed => {
                        ota.record(event(OtaState::Failed, RESULT_UPDATE_FAILED), history);
                        state.reasons.insert(c.fw_type, reason.clone());
                    }
                }
            }
            // The same news for the rollout that holds the image, in this transaction.
            let rollout_outcome = match outcome {
                DdiOutcome::Downloading | DdiOutcome::Downloaded | DdiOutcome::Installing => {
                    Some(Outcome::Downloading)
                }
                DdiOutcome::Succeeded => Some(Outcome::Confirmed),
                DdiOutcome::Failed => Some(Outcome::Failed),
                DdiOutcome::Deferred => None,
            };
            if let Some(to) = rollout_outcome {
                let why = (to == Outcome::Failed).then(|| reason.clone());
                for c in &action.chunks {
                    rollouts::feedback_in(
                        txn,
                        &device,
                        c.fw_type,
                        c.version_number,
                        to,
                        why.clone(),
                        now,
                    )?;
                }
            }
            if closing {
                state.closed = state.open.take();
            }
            let bytes = codec::encode(&device)?;
            txn.open_table(DEVICES)?
                .insert(id.as_str(), bytes.as_slice())?;
            put_state(txn, &id, &state)
        })
    }

    /// The agent's answer to a cancellation: any final answer ends it, and the withdrawn
    /// action's types are recorded as cancelled (deferred). Another id is 404.
    pub fn ddi_cancel_feedback(&self, device_id: &str, action_id: u64, done: bool) -> Result<()> {
        let id = device_id.to_string();
        let history = self.config().ota_history;
        self.write(false, move |txn| {
            let mut state = get_state(txn, &id)?;
            let Some(action) = state.cancel.clone().filter(|a| a.id == action_id) else {
                return Err(unknown_action());
            };
            if !done {
                return Ok(());
            }
            let mut device: Device = codec::get(&txn.open_table(DEVICES)?, id.as_str())?
                .ok_or_else(|| StoreError::not_found("device", "unknown_device"))?;
            let now = now_ms();
            for c in &action.chunks {
                if let Some(ota) = device.ota.get_mut(&c.fw_type)
                    && ota.current.version_number == c.version_number
                {
                    let mut ev = ota.current.clone();
                    ev.at_ms = now;
                    ev.state = OtaState::Deferred;
                    ev.result = RESULT_CANCELLED;
                    ota.record(ev, history);
                }
            }
            state.cancel = None;
            let bytes = codec::encode(&device)?;
            txn.open_table(DEVICES)?
                .insert(id.as_str(), bytes.as_slice())?;
            put_state(txn, &id, &state)
        })
    }
}

/// A poll read and ready to be written (see [`Store::ddi_poll_plan`]).
pub struct DdiPollPlan {
    check_in: CheckIn,
    device_id: String,
}

impl DdiPollPlan {
    /// The poll's write: the check-in, then the actions advertised from its offers.
    pub fn apply(self, txn: &WriteTransaction) -> Result<DdiPoll> {
        let offers = self.check_in.apply(txn)?;
        let mut chunks: Vec<DdiChunk> = offers
            .iter()
            .map(|o| DdiChunk {
                fw_type: o.offer.fw_type,
                record_id: o.offer.record_id,
                version_number: o.offer.version_number,
            })
            .collect();
        chunks.sort_by_key(|c| c.fw_type);
        let offered = (!chunks.is_empty()).then(|| DdiAction {
            id: action_id(&self.device_id, &chunks),
            chunks,
        });
        let current = get_state(txn, &self.device_id)?;
        let next = advance(current.clone(), offered);
        if next != current {
            put_state(txn, &self.device_id, &next)?;
        }
        Ok(DdiPoll {
            deployment: next
                .open
                .as_ref()
                .filter(|_| next.cancel.is_none())
                .map(|a| a.id),
            cancel: next.cancel.as_ref().map(|a| a.id),
            config_wanted: next.attributes.is_none(),
        })
    }
}

/// The next state after a poll offered `offered`: an open action that is no longer the
/// offer becomes the cancellation (unless one is already waiting); the last closed action
/// is never opened again.
pub fn advance(mut state: DdiState, offered: Option<DdiAction>) -> DdiState {
    let offered = offered.filter(|a| state.closed.as_ref().is_none_or(|c| c.id != a.id));
    let same = match (&state.open, &offered) {
        (Some(open), Some(new)) => open.id == new.id,
        (None, None) => true,
        _ => false,
    };
    if same {
        return state;
    }
    if let Some(old) = state.open.take()
        && state.cancel.is_none()
    {
        state.cancel = Some(old);
    }
    state.open = offered;
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: u64) -> DdiAction {
        DdiAction {
            id,
            chunks: vec![DdiChunk {
                fw_type: 3,
                record_id: id,
                version_number: id,
            }],
        }
    }

    #[test]
    fn action_ids_are_stable_small_and_follow_the_offer() {
        let c = action(5).chunks;
        let a = action_id("dev-1", &c);
        assert_eq!(a, action_id("dev-1", &c));
        assert!((1..0x7fff_ffff).contains(&a));
        assert_ne!(a, action_id("dev-2", &c));
        assert_ne!(a, action_id("dev-1", &action(6).chunks));
    }

    #[test]
    fn a_changed_offer_cancels_the_open_action_first() {
        let s = advance(DdiState::default(), Some(action(1)));
        assert_eq!(s.open, Some(action(1)));
        assert_eq!(advance(s.clone(), Some(action(1))), s);
        let s = advance(s, Some(action(2)));
        assert_eq!(
            (s.open.clone(), s.cancel.clone()),
            (Some(action(2)), Some(action(1)))
        );
        // Withdrawn altogether while a cancellation waits: nothing more to cancel.
        let s = advance(s, None);
        assert_eq!((s.open.clone(), s.cancel.clone()), (None, Some(action(1))));
        // A closed action is not opened again.
        let closed = DdiState {
            closed: Some(action(3)),
            ..DdiState::default()
        };
        assert_eq!(advance(closed.clone(), Some(action(3))), closed);
    }
}
