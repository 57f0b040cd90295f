//! The codes a REPORT carries (docs/protocol.md, section 14): its states and LwM2M result
//! codes by number and by name, and which (state, result) pairs the protocol allows.
//!
//! Not here: the REPORT frame's layout (`wire.rs`) and what the server stores for a report
//! (`model::OtaState`, whose `from_report` is the one rule of allowed pairs used here).

use crate::model::OtaState;

pub const DOWNLOADING: u8 = 1;
pub const DOWNLOADED: u8 = 2;
pub const INSTALLING: u8 = 3;
pub const INSTALLED: u8 = 4;
pub const FAILED: u8 = 5;
pub const DEFERRED: u8 = 6;

/// Result 0: nothing to say yet (every state but INSTALLED-with-success and the failures).
pub const RESULT_INITIAL: u8 = 0;
/// Result 1: the update succeeded (INSTALLED).
pub const RESULT_SUCCESS: u8 = 1;
/// Result 5: the image does not match its hash.
pub const RESULT_INTEGRITY_FAILURE: u8 = 5;
/// Result 8: the update failed (generic install failure).
pub const RESULT_UPDATE_FAILED: u8 = 8;
/// Result 11: the device postpones the update (DEFERRED).
pub const RESULT_DEFERRED: u8 = 11;

/// REPORT states by number, with the names the CLI and the API use.
pub const STATES: [(u8, &str); 6] = [
    (DOWNLOADING, "downloading"),
    (DOWNLOADED, "downloaded"),
    (INSTALLING, "installing"),
    (INSTALLED, "installed"),
    (FAILED, "failed"),
    (DEFERRED, "deferred"),
];

/// LwM2M firmware-update result codes by number, with short names.
pub const RESULTS: [(u8, &str); 12] = [
    (0, "initial"),
    (1, "success"),
    (2, "not-enough-flash"),
    (3, "out-of-ram"),
    (4, "connection-lost"),
    (5, "integrity-failure"),
    (6, "unsupported-package"),
    (7, "invalid-uri"),
    (8, "update-failed"),
    (9, "unsupported-protocol"),
    (10, "cancelled"),
    (11, "deferred"),
];

/// The number of a state given by name or number.
pub fn state_code(text: &str) -> Option<u8> {
    code_of(&STATES, text)
}

/// The number of a result given by name or number.
pub fn result_code(text: &str) -> Option<u8> {
    code_of(&RESULTS, text)
}

pub fn state_name(code: u8) -> Option<&'static str> {
    name_of(&STATES, code)
}

pub fn result_name(code: u8) -> Option<&'static str> {
    name_of(&RESULTS, code)
}

/// The result a state takes when none is given: success for INSTALLED, deferred for
/// DEFERRED, none for FAILED (a failure must say why), else initial.
pub fn default_result(state: u8) -> Option<u8> {
    match state {
        INSTALLED => Some(RESULT_SUCCESS),
        DEFERRED => Some(RESULT_DEFERRED),
        FAILED => None,
        _ => Some(RESULT_INITIAL),
    }
}

/// Whether the protocol allows this pair (the server refuses others with BAD_RANGE).
pub fn allowed(state: u8, result: u8) -> bool {
    OtaState::from_report(state, result).is_some()
}

/// The results allowed with `state`, by name.
pub fn results_for(state: u8) -> Vec<&'static str> {
    RESULTS
        .iter()
        .filter(|(r, _)| allowed(state, *r))
        .map(|(_, name)| *name)
        .collect()
}

fn code_of(table: &[(u8, &str)], text: &str) -> Option<u8> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u8>() {
        return table.iter().any(|(c, _)| *c == n).then_some(n);
    }
    let wanted = text.to_ascii_lowercase().replace('_', "-");
    table
        .iter()
        .find(|(_, name)| *name == wanted)
        .map(|(c, _)| *c)
}

fn name_of(table: &[(u8, &'static str)], code: u8) -> Option<&'static str> {
    table.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(state_code("installed"), Some(INSTALLED));
        assert_eq!(state_code("4"), Some(INSTALLED));
        assert_eq!(state_code("FAILED"), Some(FAILED));
        assert_eq!(state_code("7"), None);
        assert_eq!(state_code("rebooting"), None);
        assert_eq!(result_code("integrity_failure"), Some(5));
        assert_eq!(result_code("12"), None);
        assert_eq!(result_name(8), Some("update-failed"));
        assert_eq!(state_name(DOWNLOADED), Some("downloaded"));
    }

    #[test]
    fn defaults_are_allowed_and_failures_need_a_reason() {
        for (state, _) in STATES {
            match default_result(state) {
                Some(r) => assert!(allowed(state, r), "state {state} result {r}"),
                None => assert_eq!(state, FAILED),
            }
        }
        assert_eq!(results_for(FAILED).len(), 9);
        assert_eq!(results_for(INSTALLED), ["initial", "success"]);
        assert!(!allowed(FAILED, 0));
    }
}
