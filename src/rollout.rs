//! Staged rollouts, the pure engine: a rollout's definition and validation, group membership
//! by BLAKE3 rank, per-device outcomes and per-group counters, and [`evaluate`], which takes
//! (rollout, now) and returns the transitions due (start, next group, success awaiting an
//! advance, completion, stop), plus the first-offer gate (state, window, pacing).
//!
//! Pure: no I/O and no clock (callers pass `now` in milliseconds). The store keeps rollouts,
//! outcomes and counters and applies what this module decides in the same transaction as
//! the device event that caused it (`store/rollouts.rs`); eligibility itself stays in
//! `ota.rs`, which only sees a candidate's gate and the device's admission.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::ModelError;

/// Shares (thresholds, cumulative percents) are kept in millionths: exact and `Eq`.
pub const MILLION: u32 = 1_000_000;
/// Most groups one rollout may have.
pub const GROUPS_MAX: usize = 100;
/// Most devices an explicit canary group may list.
pub const CANARY_MAX: usize = 10_000;
const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// One group of the definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupSpec {
    /// Cumulative share of the target, in millionths (100 % = [`MILLION`]).
    Percent(u32),
    /// An explicit canary list (first group only).
    Devices(Vec<String>),
}

/// A maintenance window: first offers only on `days` (bit 0 = Monday … bit 6 = Sunday,
/// UTC), from `start_minute` after midnight for `duration_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub days: u8,
    pub start_minute: u16,
    pub duration_minutes: u32,
}

pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    /// Parses `"HH:MM"` and day names into a window; errors name the `window` field.
    pub fn parse(days: &[String], start: &str, duration_minutes: u64) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::new("window", "invalid_window", reason.to_string());
        let mut mask = 0u8;
        for d in days {
            let i = DAY_NAMES
                .iter()
                .position(|n| n == &d.to_ascii_lowercase())
                .ok_or_else(|| bad("window.days must name days as mon, tue, … sun"))?;
            mask |= 1 << i;
        }
        if mask == 0 {
            return Err(bad("window.days must name at least one day"));
        }
        let (h, m) = start
            .split_once(':')
            .filter(|(h, m)| h.len() == 2 && m.len() == 2)
            .and_then(|(h, m)| Some((h.parse::<u16>().ok()?, m.parse::<u16>().ok()?)))
            .filter(|&(h, m)| h < 24 && m < 60)
            .ok_or_else(|| bad("window.start must be HH:MM (UTC)"))?;
        if !(1..=7 * 1440).contains(&duration_minutes) {
            return Err(bad("window.durationMinutes must be 1-10080"));
        }
        Ok(Window {
            days: mask,
            start_minute: h * 60 + m,
            duration_minutes: duration_minutes as u32,
        })
    }

    /// The day names of the mask, Monday first.
    pub fn day_names(&self) -> Vec<&'static str> {
        DAY_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.days & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// Is `now_ms` (Unix milliseconds) inside an opening? An opening may run past midnight.
    pub fn is_open(&self, now_ms: u64) -> bool {
        let today = now_ms / DAY_MS;
        let span_days = u64::from(self.duration_minutes).div_ceil(1440) + 1;
        (0..=span_days.min(today)).any(|back| {
            let day = today - back;
            // 1970-01-01 was a Thursday (index 3 from Monday).
            let weekday = (day + 3) % 7;
            if self.days & (1 << weekday) == 0 {
                return false;
            }
            let open = day * DAY_MS + u64::from(self.start_minute) * MINUTE_MS;
            let close = open + u64::from(self.duration_minutes) * MINUTE_MS;
            (open..close).contains(&now_ms)
        })
    }
}

/// Which devices of the device type the rollout targets: all of `tags`, every attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

/// What a rollout was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    pub device_type_id: String,
    pub record_id: u64,
    pub fw_type: u16,
    pub version_number: u64,
    pub groups: Vec<GroupSpec>,
    /// Millionths of a group that must confirm.
    pub success: u32,
    /// Millionths of a group whose failures stop the rollout.
    pub error: u32,
    pub min_failures: u32,
    pub confirm_timeout_secs: u64,
    pub soak_secs: u64,
    pub auto_advance: bool,
    pub max_per_minute: Option<u32>,
    pub window: Option<Window>,
    pub start_at_ms: Option<u64>,
    pub filter: Filter,
}

impl Definition {
    /// The rules of a definition on its own (the store checks the image and device type):
    /// groups ascending and ending at 100 %, a canary list only first, thresholds in 0–1
    /// (checked when parsed), timeouts at least one second.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, trace: &'static str, reason: &str| {
            Err(ModelError::new(field, trace, reason.to_string()))
        };
        if self.groups.is_empty() || self.groups.len() > GROUPS_MAX {
            return bad(
                "groups",
                "invalid_groups",
                &format!("give 1-{GROUPS_MAX} groups"),
            );
        }
        let mut last = 0u32;
        let mut percents = 0;
        for (i, g) in self.groups.iter().enumerate() {
            match g {
                GroupSpec::Devices(ids) => {
                    if i != 0 {
                        return bad(
                            "groups",
                            "invalid_groups",
                            "an explicit device list may only be the first group",
                        );
                    }
                    if ids.is_empty() || ids.len() > CANARY_MAX {
                        return bad(
                            "groups",
                            "invalid_groups",
                            &format!("a device list holds 1-{CANARY_MAX} device ids"),
                        );
                    }
                    for (j, id) in ids.iter().enumerate() {
                        crate::model::validate_device_id(id)?;
                        if ids[..j].contains(id) {
                            return bad(
                                "groups",
                                "invalid_groups",
                                &format!("device {id} is listed twice"),
                            );
                        }
                    }
                }
                GroupSpec::Percent(p) => {
                    if *p <= last || *p > MILLION {
                        return bad(
                            "groups",
                            "groups_not_ascending",
                            "group percents must be above 0, ascending, and at most 100",
                        );
                    }
                    last = *p;
                    percents += 1;
                }
            }
        }
        if percents == 0 || last != MILLION {
            return bad(
                "groups",
                "groups_not_ending_at_100",
                "the last group must be {\"percent\": 100}",
            );
        }
        if self.success > MILLION || self.error > MILLION {
            return bad(
                "successThreshold",
                "threshold_out_of_range",
                "thresholds must be between 0 and 1",
            );
        }
        if self.confirm_timeout_secs == 0 {
            return bad(
                "confirmTimeoutSecs",
                "invalid_field",
                "confirmTimeoutSecs must be at least 1",
            );
        }
        if self.max_per_minute == Some(0) {
            return bad(
                "maxPerMinute",
                "invalid_field",
                "maxPerMinute must be at least 1",
            );
        }
        crate::model::validate_name(&self.name)?;
        Ok(())
    }
}

/// A share in 0–1 (a JSON number) as millionths; `None` when outside 0–1 or not finite.
pub fn share(value: f64) -> Option<u32> {
    (value.is_finite() && (0.0..=1.0).contains(&value))
        .then(|| (value * f64::from(MILLION)).round() as u32)
}

/// A device's rank: the first 8 bytes of BLAKE3(rollout id ‖ device id), big-endian, read
/// as a fraction of 2^64.
pub fn rank(rollout_id: u64, device_id: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(rollout_id.to_string().as_bytes());
    h.update(device_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// The group of a device: a canary list names its own; otherwise the first percent group
/// whose cumulative share exceeds the device's rank.
pub fn group_of(groups: &[GroupSpec], rollout_id: u64, device_id: &str) -> usize {
    let r = u128::from(rank(rollout_id, device_id));
    let mut fallback = groups.len().saturating_sub(1);
    for (i, g) in groups.iter().enumerate() {
        match g {
            GroupSpec::Devices(ids) => {
                if ids.iter().any(|d| d == device_id) {
                    return i;
                }
            }
            GroupSpec::Percent(p) => {
                let bound = (u128::from(*p) << 64) / u128::from(MILLION);
                if r < bound {
                    return i;
                }
                fallback = i;
            }
        }
    }
    fallback
}

/// Where one device stands in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Not offered yet (its group has not started, or it has not checked in since).
    Waiting,
    Offered,
    Downloading,
    /// The device said it installed the image; not yet confirmed.
    Installed,
    /// The device came back running the number (or a higher one).
    Confirmed,
    Failed,
    TimedOut,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Waiting,
        Outcome::Offered,
        Outcome::Downloading,
        Outcome::Installed,
        Outcome::Confirmed,
        Outcome::Failed,
        Outcome::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Waiting => "waiting",
            Outcome::Offered => "offered",
            Outcome::Downloading => "downloading",
            Outcome::Installed => "installed",
            Outcome::Confirmed => "confirmed",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timedOut",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Still expecting news from the device (a confirm timeout applies).
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Outcome::Offered | Outcome::Downloading | Outcome::Installed
        )
    }
}

/// One device's record inside a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOutcome {
    pub group: u16,
    pub outcome: Outcome,
    pub first_offer_ms: Option<u64>,
    pub updated_ms: u64,
    /// Why it failed: the REPORT result code, a timeout, or DDI's words.
    pub reason: Option<String>,
}

/// Per-group counts of outcomes; `size` is their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub size: u64,
    pub waiting: u64,
    pub offered: u64,
    pub downloading: u64,
    pub installed: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub timed_out: u64,
}

impl Counts {
    fn slot(&mut self, o: Outcome) -> &mut u64 {
        match o {
            Outcome::Waiting => &mut self.waiting,
            Outcome::Offered => &mut self.offered,
            Outcome::Downloading => &mut self.downloading,
            Outcome::Installed => &mut self.installed,
            Outcome::Confirmed => &mut self.confirmed,
            Outcome::Failed => &mut self.failed,
            Outcome::TimedOut => &mut self.timed_out,
        }
    }

    pub fn get(&self, o: Outcome) -> u64 {
        let mut c = *self;
        *c.slot(o)
    }

    /// A device joins with outcome `o`.
    pub fn add(&mut self, o: Outcome) {
        self.size += 1;
        *self.slot(o) += 1;
    }

    /// A device moves from `from` to `to`.
    pub fn shift(&mut self, from: Outcome, to: Outcome) {
        let f = self.slot(from);
        *f = f.saturating_sub(1);
        *self.slot(to) += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Scheduled,
    Running,
    Paused,
    Completed,
    Stopped,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Running => "running",
            State::Paused => "paused",
            State::Completed => "completed",
            State::Stopped => "stopped",
            State::Cancelled => "cancelled",
        }
    }

    pub const ALL: [State; 6] = [
        State::Scheduled,
        State::Running,
        State::Paused,
        State::Completed,
        State::Stopped,
        State::Cancelled,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    pub fn finished(self) -> bool {
        matches!(self, State::Completed | State::Stopped | State::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    Pending,
    Running,
    /// Succeeded; the next group waits for an explicit advance.
    Succeeded,
    /// Succeeded and the next group started (or the rollout completed).
    Done,
    Stopped,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Pending => "pending",
            GroupState::Running => "running",
            GroupState::Succeeded => "succeeded",
            GroupState::Done => "done",
            GroupState::Stopped => "stopped",
        }
    }

    /// Devices of a group in this state may get offers.
    pub fn started(self) -> bool {
        !matches!(self, GroupState::Pending)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub state: GroupState,
    pub counts: Counts,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
}

/// A rollout: definition, state, groups with their counters, and the pacing window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: u64,
    pub partner_id: String,
    pub def: Definition,
    pub state: State,
    pub stop_reason: Option<String>,
    pub groups: Vec<Group>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Start of the pacing minute and the first offers made in it.
    pub minute_start_ms: u64,
    pub minute_offers: u32,
}

/// What [`evaluate`] found due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The schedule came: state running, group 0 starts.
    Start,
    /// Group `index` starts (the one before it succeeded).
    StartGroup(usize),
    /// Group `index` succeeded; the next waits for an advance.
    AwaitAdvance(usize),
    /// The last group succeeded.
    Complete,
    Stop(String),
}

/// The index of the group that is running or awaiting an advance.
pub fn current_group(r: &Rollout) -> Option<usize> {
    r.groups
        .iter()
        .position(|g| matches!(g.state, GroupState::Running | GroupState::Succeeded))
}

fn at_least(share: u32, size: u64) -> u64 {
    (u128::from(share) * u128::from(size)).div_ceil(u128::from(MILLION)) as u64
}

/// Does the running group `g` meet the stop rule?
fn stops(def: &Definition, g: &Group) -> bool {
    let bad = g.counts.failed + g.counts.timed_out;
    g.counts.size > 0
        && bad >= at_least(def.error, g.counts.size).max(1)
        && bad >= u64::from(def.min_failures)
}

fn succeeded(def: &Definition, g: &Group, now: u64) -> bool {
    if g.counts.size == 0 {
        return true;
    }
    let soaked = g
        .started_ms
        .is_some_and(|s| now >= s.saturating_add(def.soak_secs.saturating_mul(1000)));
    g.counts.confirmed >= at_least(def.success, g.counts.size) && soaked
}

/// The transitions due for `r` at `now`, in order. Applying them with [`apply`] and
/// evaluating again yields nothing new until counters or time move.
pub fn evaluate(r: &Rollout, now: u64) -> Vec<Transition> {
    let mut r = r.clone();
    let mut out = Vec::new();
    // Each step settles one group; a rollout has at most GROUPS_MAX of them.
    for _ in 0..=r.groups.len() + 1 {
        let Some(t) = next_transition(&r, now) else {
            break;
        };
        apply(&mut r, &t, now);
        out.push(t);
    }
    out
}

fn next_transition(r: &Rollout, now: u64) -> Option<Transition> {
    match r.state {
        State::Scheduled => r
            .def
            .start_at_ms
            .is_none_or(|at| now >= at)
            .then_some(Transition::Start),
        State::Running | State::Paused => {
            let i = current_group(r)?;
            let g = r.groups.get(i)?;
            if g.state != GroupState::Running {
                return None;
            }
            if stops(&r.def, g) {
                let bad = g.counts.failed + g.counts.timed_out;
                return Some(Transition::Stop(format!(
                    "group {} of {}: {} of {} devices failed or timed out (error threshold {}, minimum failures {})",
                    i + 1,
                    r.groups.len(),
                    bad,
                    g.counts.size,
                    f64::from(r.def.error) / f64::from(MILLION),
                    r.def.min_failures
                )));
            }
            if r.state == State::Paused || !succeeded(&r.def, g, now) {
                return None;
            }
            if i + 1 == r.groups.len() {
                Some(Transition::Complete)
            } else if r.def.auto_advance {
                Some(Transition::StartGroup(i + 1))
            } else {
                Some(Transition::AwaitAdvance(i))
            }
        }
        State::Completed | State::Stopped | State::Cancelled => None,
    }
}

/// Applies one transition to the rollout.
pub fn apply(r: &mut Rollout, t: &Transition, now: u64) {
    r.updated_ms = now;
    let finish = |g: &mut Group, state: GroupState| {
        g.state = state;
        g.finished_ms.get_or_insert(now);
    };
    match t {
        Transition::Start => {
            r.state = State::Running;
            if let Some(g) = r.groups.first_mut() {
                g.state = GroupState::Running;
                g.started_ms = Some(now);
            }
        }
        Transition::StartGroup(i) => {
            if let Some(prev) = i.checked_sub(1).and_then(|p| r.groups.get_mut(p)) {
                finish(prev, GroupState::Done);
            }
            if let Some(g) = r.groups.get_mut(*i) {
                g.state = GroupState::Running;
                g.started_ms = Some(now);
            }
        }
        Transition::AwaitAdvance(i) => {
            if let Some(g) = r.groups.get_mut(*i) {
                finish(g, GroupState::Succeeded);
            }
        }
        Transition::Complete => {
            r.state = State::Completed;
            if let Some(g) = r.groups.last_mut() {
                finish(g, GroupState::Done);
            }
        }
        Transition::Stop(reason) => {
            r.state = State::Stopped;
            r.stop_reason = Some(reason.clone());
            if let Some(g) = current_group(r).and_then(|i| r.groups.get_mut(i)) {
                finish(g, GroupState::Stopped);
            }
        }
    }
}

/// An operator's move on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Pause,
    Resume,
    Advance,
    Cancel,
}

impl Move {
    pub fn as_str(self) -> &'static str {
        match self {
            Move::Pause => "pause",
            Move::Resume => "resume",
            Move::Advance => "advance",
            Move::Cancel => "cancel",
        }
    }
}

/// Applies an operator's move, or says why it is not allowed from the current state.
/// `advance` starts the next group once the current one succeeded (or the first group of a
/// scheduled rollout at once).
pub fn operate(r: &mut Rollout, m: Move, now: u64) -> Result<(), String> {
    let refuse = || {
        Err(format!(
            "cannot {} a rollout that is {}",
            m.as_str(),
            r.state.as_str()
        ))
    };
    match (m, r.state) {
        (Move::Pause, State::Running | State::Scheduled) => r.state = State::Paused,
        (Move::Resume, State::Paused) => {
            r.state = if r.groups.iter().any(|g| g.state.started()) {
                State::Running
            } else {
                State::Scheduled
            }
        }
        (Move::Advance, State::Scheduled) => apply(r, &Transition::Start, now),
        (Move::Advance, State::Running) => {
            let Some(i) = current_group(r) else {
                return refuse();
            };
            if r.groups.get(i).map(|g| g.state) != Some(GroupState::Succeeded) {
                return Err(format!(
                    "group {} has not succeeded yet; advance starts the next group only after it",
                    i + 1
                ));
            }
            if i + 1 == r.groups.len() {
                apply(r, &Transition::Complete, now);
            } else {
                apply(r, &Transition::StartGroup(i + 1), now);
            }
        }
        (Move::Cancel, s) if !s.finished() => {
            r.state = State::Cancelled;
            if let Some(g) = current_group(r).and_then(|i| r.groups.get_mut(i)) {
                g.state = GroupState::Stopped;
                g.finished_ms.get_or_insert(now);
            }
        }
        _ => return refuse(),
    }
    r.updated_ms = now;
    Ok(())
}

/// May a device of group `group` get its first offer at `now`? Running rollout, started
/// group, window open, pacing budget left. Consumes one unit of the minute's budget when it
/// answers yes.
pub fn take_first_offer(r: &mut Rollout, group: usize, now: u64) -> bool {
    if r.state != State::Running
        || !r.groups.get(group).is_some_and(|g| g.state.started())
        || r.def.window.is_some_and(|w| !w.is_open(now))
    {
        return false;
    }
    if let Some(max) = r.def.max_per_minute {
        if now >= r.minute_start_ms.saturating_add(MINUTE_MS) {
            r.minute_start_ms = now - now % MINUTE_MS;
            r.minute_offers = 0;
        }
        if r.minute_offers >= max {
            return false;
        }
        r.minute_offers += 1;
    }
    true
}

/// May a device that already had its first offer be offered again (a retry)? Not once the
/// rollout stopped or was cancelled.
pub fn may_reoffer(r: &Rollout) -> bool {
    !matches!(r.state, State::Stopped | State::Cancelled)
}

/// The outcome a device report moves to, if it concerns the rollout's image.
pub fn outcome_of_report(state: crate::model::OtaState) -> Option<Outcome> {
    use crate::model::OtaState as S;
    match state {
        S::Downloading | S::Downloaded | S::Installing => Some(Outcome::Downloading),
        S::Installed => Some(Outcome::Installed),
        S::Failed => Some(Outcome::Failed),
        S::Confirmed => Some(Outcome::Confirmed),
        S::Offered | S::Deferred => None,
    }
}

/// Whether moving from `from` to `to` is a change the rollout records: confirmed is final;
/// a failure or timeout changes only to confirmed (the device recovered and runs the
/// image); nothing goes back to waiting.
pub fn moves(from: Outcome, to: Outcome) -> bool {
    let failed = matches!(from, Outcome::Failed | Outcome::TimedOut);
    from != to
        && from != Outcome::Confirmed
        && to != Outcome::Waiting
        && (!failed || to == Outcome::Confirmed)
}

/// A new rollout in state scheduled, with empty groups.
pub fn new_rollout(id: u64, partner_id: &str, def: Definition, now: u64) -> Rollout {
    let groups = def
        .groups
        .iter()
        .map(|_| Group {
            state: GroupState::Pending,
            counts: Counts::default(),
            started_ms: None,
            finished_ms: None,
        })
        .collect();
    Rollout {
        id,
        partner_id: partner_id.to_string(),
        def,
        state: State::Scheduled,
        stop_reason: None,
        groups,
        created_ms: now,
        updated_ms: now,
        minute_start_ms: 0,
        minute_offers: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn def(groups: Vec<GroupSpec>) -> Definition {
        Definition {
            name: "r".into(),
            device_type_id: "dt".into(),
            record_id: 1,
            fw_type: 3,
            version_number: 2,
            groups,
            success: 950_000,
            error: 50_000,
            min_failures: 1,
            confirm_timeout_secs: 60,
            soak_secs: 0,
            auto_advance: true,
            max_per_minute: None,
            window: None,
            start_at_ms: None,
            filter: Filter::default(),
        }
    }

    fn pct(p: &[u32]) -> Vec<GroupSpec> {
        p.iter().map(|p| GroupSpec::Percent(p * 10_000)).collect()
    }

    #[test]
    fn validation() {
        def(pct(&[1, 10, 50, 100])).validate().unwrap();
        let canary = vec![
            GroupSpec::Devices(vec!["a".into()]),
            GroupSpec::Percent(MILLION),
        ];
        def(canary).validate().unwrap();
        for (groups, trace) in [
            (pct(&[10, 5, 100]), "groups_not_ascending"),
            (pct(&[10, 50]), "groups_not_ending_at_100"),
            (vec![], "invalid_groups"),
            (
                vec![
                    GroupSpec::Percent(MILLION / 2),
                    GroupSpec::Devices(vec!["a".into()]),
                ],
                "invalid_groups",
            ),
            (
                vec![GroupSpec::Devices(vec!["a".into()])],
                "groups_not_ending_at_100",
            ),
        ] {
            assert_eq!(def(groups).validate().unwrap_err().trace, trace);
        }
        let mut d = def(pct(&[100]));
        d.success = MILLION + 1;
        assert_eq!(d.validate().unwrap_err().trace, "threshold_out_of_range");
        assert_eq!(share(0.95), Some(950_000));
        assert_eq!(share(1.5), None);
        assert_eq!(share(-0.1), None);
        assert_eq!(share(f64::NAN), None);
    }

    #[test]
    fn windows() {
        // 2026-12-02 is a Wednesday.
        let wed_0300 = 1_796_180_400_000u64;
        assert_eq!((wed_0300 / DAY_MS + 3) % 7, 2);
        let w = Window::parse(&["wed".into()], "02:00", 180).unwrap();
        assert!(w.is_open(wed_0300));
        assert!(!w.is_open(wed_0300 + 2 * 3_600_000));
        let late = Window::parse(&["tue".into()], "23:00", 300).unwrap();
        assert!(
            late.is_open(wed_0300),
            "a Tuesday opening runs past midnight"
        );
        let other = Window::parse(&["mon".into(), "fri".into()], "02:00", 180).unwrap();
        assert!(!other.is_open(wed_0300));
        assert_eq!(other.day_names(), ["mon", "fri"]);
        for (days, start, dur) in [
            (vec![], "02:00", 60),
            (vec!["xyz".to_string()], "02:00", 60),
            (vec!["mon".to_string()], "24:00", 60),
            (vec!["mon".to_string()], "2:00", 60),
            (vec!["mon".to_string()], "02:00", 0),
        ] {
            assert_eq!(
                Window::parse(&days, start, dur).unwrap_err().trace,
                "invalid_window"
            );
        }
    }

    fn running(groups: Vec<GroupSpec>, sizes: &[u64]) -> Rollout {
        let mut r = new_rollout(7, "p", def(groups), 0);
        for (g, &n) in r.groups.iter_mut().zip(sizes) {
            for _ in 0..n {
                g.counts.add(Outcome::Waiting);
            }
        }
        assert_eq!(evaluate(&r, 0).first(), Some(&Transition::Start));
        apply(&mut r, &Transition::Start, 0);
        r
    }

    #[test]
    fn groups_advance_on_confirmations_and_soak() {
        let mut r = running(pct(&[10, 100]), &[10, 90]);
        r.def.soak_secs = 5;
        assert!(evaluate(&r, 1).is_empty());
        for _ in 0..10 {
            r.groups[0]
                .counts
                .shift(Outcome::Waiting, Outcome::Confirmed);
        }
        assert!(evaluate(&r, 4_999).is_empty(), "soak not over");
        assert_eq!(evaluate(&r, 5_000), vec![Transition::StartGroup(1)]);
        r.def.auto_advance = false;
        assert_eq!(evaluate(&r, 5_000), vec![Transition::AwaitAdvance(0)]);
        apply(&mut r, &Transition::AwaitAdvance(0), 5_000);
        assert!(evaluate(&r, 9_000).is_empty());
        operate(&mut r, Move::Advance, 9_000).unwrap();
        assert_eq!(r.groups[1].state, GroupState::Running);
        assert!(operate(&mut r, Move::Advance, 9_000).is_err());
    }

    #[test]
    fn empty_groups_succeed_at_once_and_stops_are_final() {
        let r = running(pct(&[1, 10, 100]), &[0, 0, 3]);
        assert_eq!(
            evaluate(&r, 0),
            vec![Transition::StartGroup(1), Transition::StartGroup(2)]
        );
        let mut r = running(pct(&[100]), &[20]);
        r.groups[0].counts.shift(Outcome::Waiting, Outcome::Failed);
        let t = evaluate(&r, 1);
        assert!(matches!(t.as_slice(), [Transition::Stop(_)]), "{t:?}");
        apply(&mut r, &t[0], 1);
        for _ in 0..20 {
            r.groups[0]
                .counts
                .shift(Outcome::Waiting, Outcome::Confirmed);
        }
        assert!(evaluate(&r, 2).is_empty());
        for m in [Move::Pause, Move::Resume, Move::Advance, Move::Cancel] {
            assert!(operate(&mut r, m, 3).is_err(), "{m:?}");
        }
        assert!(!take_first_offer(&mut r, 0, 3));
        assert!(!may_reoffer(&r));
    }

    #[test]
    fn min_failures_holds_the_stop() {
        let mut r = running(pct(&[100]), &[10]);
        r.def.min_failures = 3;
        r.groups[0].counts.shift(Outcome::Waiting, Outcome::Failed);
        r.groups[0]
            .counts
            .shift(Outcome::Waiting, Outcome::TimedOut);
        assert!(evaluate(&r, 1).is_empty());
        r.groups[0].counts.shift(Outcome::Waiting, Outcome::Failed);
        assert!(matches!(evaluate(&r, 1).as_slice(), [Transition::Stop(_)]));
    }

    #[test]
    fn pacing_window_and_pause_gate_first_offers() {
        let mut r = running(pct(&[100]), &[10]);
        r.def.max_per_minute = Some(2);
        let t0 = 600_000;
        assert!(take_first_offer(&mut r, 0, t0));
        assert!(take_first_offer(&mut r, 0, t0 + 1));
        assert!(!take_first_offer(&mut r, 0, t0 + 59_999));
        assert!(take_first_offer(&mut r, 0, t0 + 60_000));
        operate(&mut r, Move::Pause, t0).unwrap();
        assert!(!take_first_offer(&mut r, 0, t0 + 200_000));
        assert!(may_reoffer(&r));
        operate(&mut r, Move::Resume, t0).unwrap();
        r.def.window = Some(Window::parse(&["mon".into()], "00:00", 1).unwrap());
        // 1970-01-01 00:10 was a Thursday.
        assert!(!take_first_offer(&mut r, 0, t0 + 200_000));
        let mut pending = new_rollout(1, "p", def(pct(&[50, 100])), 0);
        apply(&mut pending, &Transition::Start, 0);
        assert!(!take_first_offer(&mut pending, 1, 1), "group 2 not started");
    }

    #[test]
    fn scheduled_start() {
        let mut d = def(pct(&[100]));
        d.start_at_ms = Some(1000);
        let r = new_rollout(1, "p", d, 0);
        assert!(evaluate(&r, 999).is_empty());
        assert_eq!(evaluate(&r, 1000).first(), Some(&Transition::Start));
    }

    proptest! {
        #[test]
        fn membership_is_stable_and_matches_percentages(id in 1u64..1_000_000, cut in 1u32..99) {
            let groups = pct(&[cut, 100]);
            let n = 4000;
            let mut first = 0u32;
            for i in 0..n {
                let dev = format!("dev-{i}");
                let g = group_of(&groups, id, &dev);
                prop_assert_eq!(g, group_of(&groups, id, &dev));
                prop_assert!(g < 2);
                if g == 0 { first += 1; }
            }
            // Binomial sampling error: within 5 standard deviations.
            let p = f64::from(cut) / 100.0;
            let sd = (f64::from(n) * p * (1.0 - p)).sqrt();
            let diff = (f64::from(first) - f64::from(n) * p).abs();
            prop_assert!(diff <= 5.0 * sd + 1.0, "{first} of {n} for {cut}%");
        }

        #[test]
        fn groups_start_in_order_and_stops_are_final(
            events in proptest::collection::vec((0usize..3, 0u8..4, 0u64..50_000), 1..300),
        ) {
            let mut r = running(pct(&[10, 50, 100]), &[10, 40, 50]);
            r.def.soak_secs = 3;
            r.def.min_failures = 2;
            let mut stopped_at: Option<Rollout> = None;
            let mut now = 0;
            for (g, kind, dt) in events {
                now += dt;
                let to = match kind { 0 => Outcome::Confirmed, 1 => Outcome::Failed, 2 => Outcome::TimedOut, _ => Outcome::Offered };
                // Only devices of started groups hear of the image.
                if r.groups[g].state.started() && r.groups[g].counts.waiting > 0 && r.state != State::Stopped {
                    r.groups[g].counts.shift(Outcome::Waiting, to);
                }
                let mut probe = r.clone();
                if take_first_offer(&mut probe, g, now) {
                    prop_assert!(r.groups[g].state.started(), "offer outside a started group");
                    prop_assert_eq!(r.state, State::Running);
                }
                let before: Vec<GroupState> = r.groups.iter().map(|g| g.state).collect();
                for t in evaluate(&r, now) {
                    if let Transition::StartGroup(i) = t {
                        let prev = &r.groups[i - 1];
                        prop_assert!(matches!(prev.state, GroupState::Running | GroupState::Succeeded));
                        prop_assert!(prev.counts.confirmed >= at_least(r.def.success, prev.counts.size));
                    }
                    apply(&mut r, &t, now);
                }
                for (i, g) in r.groups.iter().enumerate() {
                    if g.state.started() && i > 0 {
                        prop_assert!(r.groups[i - 1].state.started());
                    }
                    if before[i].started() { prop_assert!(g.state.started()); }
                }
                if let Some(s) = &stopped_at {
                    prop_assert_eq!(r.state, State::Stopped);
                    prop_assert_eq!(&r.stop_reason, &s.stop_reason);
                    prop_assert_eq!(
                        r.groups.iter().map(|g| g.state).collect::<Vec<_>>(),
                        s.groups.iter().map(|g| g.state).collect::<Vec<_>>()
                    );
                } else if r.state == State::Stopped {
                    stopped_at = Some(r.clone());
                }
            }
        }
    }
}
