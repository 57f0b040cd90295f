//! The `--fleet-state` file of `device simulate`: what each simulated device runs after the
//! earlier runs, and which devices never came back from an install, so that the next run
//! (the next pass of a staged rollout) starts where the fleet is. A CSV of
//! `deviceId,type,versionNumber,state` lines, `state` being `running` or `away`; loaded
//! before a run, replaced atomically after it.
//!
//! Not here: the simulation, which reports how each install ended (`client/simulate/`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use super::Fail;
use crate::client::install::Ending;

/// One device's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) fw_type: u16,
    pub(super) version_number: u64,
    /// Installed but never confirmed: it stays away from later runs.
    pub(super) away: bool,
}

/// The file's entries by device id.
pub(super) type FleetState = BTreeMap<String, Entry>;

const HEADER: &str = "deviceId,type,versionNumber,state";

/// The state in `path`; a missing file is an empty fleet state.
pub(super) fn load(path: &Path) -> Result<FleetState, Fail> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FleetState::new()),
        Err(e) => return Err(Fail::Error(format!("cannot read {}: {e}", path.display()))),
    };
    let mut state = FleetState::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line == HEADER) {
            continue;
        }
        let bad = || {
            Fail::Error(format!(
                "{} line {}: expected {HEADER} (state running or away), got {line:?}",
                path.display(),
                i + 1
            ))
        };
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [id, t, vn, st] = cols.as_slice() else {
            return Err(bad());
        };
        let away = match *st {
            "running" => false,
            "away" => true,
            _ => return Err(bad()),
        };
        let entry = Entry {
            fw_type: t.parse().map_err(|_| bad())?,
            version_number: vn.parse().map_err(|_| bad())?,
            away,
        };
        if id.is_empty() {
            return Err(bad());
        }
        state.insert((*id).to_string(), entry);
    }
    Ok(state)
}

/// Records how the installs of a run ended: a confirmed device runs the new number, one
/// that never confirmed is away; a failed install changes nothing.
pub(super) fn record(state: &mut FleetState, fw_type: u16, endings: &[(String, Ending, u64)]) {
    for (id, ending, vn) in endings {
        let away = match ending {
            Ending::Confirm => false,
            Ending::NeverConfirm => true,
            Ending::Fail(_) => continue,
        };
        state.insert(
            id.clone(),
            Entry {
                fw_type,
                version_number: *vn,
                away,
            },
        );
    }
}

/// Replaces `path` atomically (temporary file, fsync, rename).
pub(super) fn save(path: &Path, state: &FleetState) -> Result<(), Fail> {
    let mut text = format!("{HEADER}\n");
    for (id, e) in state {
        let st = if e.away { "away" } else { "running" };
        text.push_str(&format!("{id},{},{},{st}\n", e.fw_type, e.version_number));
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let written = fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| Fail::Error(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fleet.csv");
        assert!(load(&path).is_ok_and(|s| s.is_empty()), "missing = empty");
        let mut state = FleetState::new();
        record(
            &mut state,
            101,
            &[
                ("a".into(), Ending::Confirm, 7),
                ("b".into(), Ending::NeverConfirm, 7),
                ("c".into(), Ending::Fail(8), 7),
            ],
        );
        assert!(save(&path, &state).is_ok());
        let back = load(&path).ok().expect("loads");
        assert_eq!(back, state);
        assert_eq!(back.len(), 2, "a failed install records nothing");
        assert!(back.get("b").is_some_and(|e| e.away));
        fs::write(&path, "deviceId,type,versionNumber,state\na,101,7,gone\n").expect("write");
        assert!(matches!(load(&path), Err(Fail::Error(m)) if m.contains("line 2")));
    }
}
