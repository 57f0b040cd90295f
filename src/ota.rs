//! OTA eligibility: which image a device should be offered, per firmware type.
//!
//! Pure: the store gathers the images associated with the device's device type and the
//! device's pushes; this module decides. The rule (api.md, "OTA eligibility"): for each type
//! the device reports, offer the associated image with a binary and the highest version
//! number, if it is above what the device runs; a pending push that is still associated,
//! has a binary and is above the installed number wins over that choice. Nothing at or below
//! the installed number is ever offered, and types the device does not report get nothing.
//!
//! Rollouts: an image a rollout holds ([`Gate::Held`]) is offered only to a device the
//! caller says that rollout admits now; a pending push wins regardless (explicit operator
//! intent). What admits a device (its group, the window, pacing) is `rollout.rs`'s rule.

use std::collections::BTreeMap;

/// Whether an associated image is offered to the whole device type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Released,
    /// Offered only through rollout `id`.
    Held(u64),
}

/// An image associated with the device's device type, as eligibility sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub record_id: u64,
    pub fw_type: u16,
    pub version_number: u64,
    pub has_binary: bool,
    pub gate: Gate,
}

/// What to offer for one firmware type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub fw_type: u16,
    pub record_id: u64,
    pub version_number: u64,
    pub pushed: bool,
}

/// Decides the offers for one device.
///
/// `installed`: the version number the device reports per type. `associated`: every image
/// associated with its device type (any order). `pushes`: type → pushed record id.
/// `admitted`: the rollouts that admit this device now.
pub fn offers(
    installed: &BTreeMap<u16, u64>,
    associated: &[Candidate],
    pushes: &BTreeMap<u16, u64>,
    admitted: &[u64],
) -> Vec<Offer> {
    installed
        .iter()
        .filter_map(|(&fw_type, &running)| {
            let usable =
                |c: &&Candidate| c.fw_type == fw_type && c.has_binary && c.version_number > running;
            let pushed = pushes
                .get(&fw_type)
                .and_then(|&id| associated.iter().filter(usable).find(|c| c.record_id == id));
            if let Some(c) = pushed {
                return Some(offer(c, true));
            }
            associated
                .iter()
                .filter(usable)
                .filter(|c| match c.gate {
                    Gate::Released => true,
                    Gate::Held(r) => admitted.contains(&r),
                })
                .max_by_key(|c| c.version_number)
                .map(|c| offer(c, false))
        })
        .collect()
}

fn offer(c: &Candidate, pushed: bool) -> Offer {
    Offer {
        fw_type: c.fw_type,
        record_id: c.record_id,
        version_number: c.version_number,
        pushed,
    }
}

/// The types for which a pending push decides the offer (so no rollout admission is
/// needed there).
pub fn pushed_types(
    installed: &BTreeMap<u16, u64>,
    associated: &[Candidate],
    pushes: &BTreeMap<u16, u64>,
) -> Vec<u16> {
    offers(installed, associated, pushes, &[])
        .into_iter()
        .filter(|o| o.pushed)
        .map(|o| o.fw_type)
        .collect()
}

/// Whether pushing an image of `version_number` to a device that last reported `installed`
/// for that type would be a downgrade (or a no-op); such pushes are refused.
pub fn push_would_downgrade(installed: Option<u64>, version_number: u64) -> bool {
    installed.is_some_and(|running| version_number <= running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(record_id: u64, fw_type: u16, version_number: u64, has_binary: bool) -> Candidate {
        Candidate {
            record_id,
            fw_type,
            version_number,
            has_binary,
            gate: Gate::Released,
        }
    }

    fn held(record_id: u64, fw_type: u16, version_number: u64, rollout: u64) -> Candidate {
        Candidate {
            gate: Gate::Held(rollout),
            ..c(record_id, fw_type, version_number, true)
        }
    }

    #[test]
    fn held_images_need_admission_and_pushes_win() {
        let imgs = [c(1, 3, 6, true), held(2, 3, 9, 7)];
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[]), &[]);
        assert_eq!(got[0].record_id, 1, "not admitted: the released image");
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[]), &[8]);
        assert_eq!(got[0].record_id, 1, "another rollout admits nothing here");
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[]), &[7]);
        assert_eq!(got[0].record_id, 2);
        let only_held = [held(2, 3, 9, 7)];
        assert!(offers(&map(&[(3, 5)]), &only_held, &map(&[]), &[]).is_empty());
        // A push of the held image wins without admission; so does a push of an older one.
        let got = offers(&map(&[(3, 5)]), &only_held, &map(&[(3, 2)]), &[]);
        assert!(got[0].pushed && got[0].record_id == 2);
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[(3, 1)]), &[7]);
        assert!(got[0].pushed && got[0].record_id == 1);
        assert_eq!(pushed_types(&map(&[(3, 5)]), &imgs, &map(&[(3, 1)])), [3]);
        assert!(pushed_types(&map(&[(3, 5)]), &imgs, &map(&[])).is_empty());
    }

    fn map(pairs: &[(u16, u64)]) -> BTreeMap<u16, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn newest_above_installed_is_offered() {
        let imgs = [c(1, 3, 5, true), c(2, 3, 9, true), c(3, 3, 7, true)];
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[]), &[]);
        assert_eq!(
            got,
            vec![Offer {
                fw_type: 3,
                record_id: 2,
                version_number: 9,
                pushed: false
            }]
        );
    }

    #[test]
    fn equal_or_lower_versions_are_never_offered() {
        let imgs = [c(1, 3, 5, true), c(2, 3, 4, true)];
        assert!(offers(&map(&[(3, 5)]), &imgs, &map(&[]), &[]).is_empty());
        assert!(offers(&map(&[(3, 6)]), &imgs, &map(&[]), &[]).is_empty());
    }

    #[test]
    fn records_without_binary_are_skipped() {
        let imgs = [c(1, 3, 6, true), c(2, 3, 9, false)];
        let got = offers(&map(&[(3, 1)]), &imgs, &map(&[]), &[]);
        assert_eq!(got[0].record_id, 1);
        let only_empty = [c(2, 3, 9, false)];
        assert!(offers(&map(&[(3, 1)]), &only_empty, &map(&[]), &[]).is_empty());
    }

    #[test]
    fn unreported_types_get_nothing() {
        let imgs = [c(1, 3, 6, true), c(2, 101, 2, true)];
        let got = offers(&map(&[(101, 1)]), &imgs, &map(&[]), &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].fw_type, 101);
        assert!(offers(&map(&[]), &imgs, &map(&[]), &[]).is_empty());
    }

    #[test]
    fn push_wins_over_newest_but_never_downgrades() {
        let imgs = [c(1, 3, 6, true), c(2, 3, 9, true)];
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[(3, 1)]), &[]);
        assert_eq!(
            got,
            vec![Offer {
                fw_type: 3,
                record_id: 1,
                version_number: 6,
                pushed: true
            }]
        );
        // The device already runs 6: the push is spent, the newest is offered instead.
        let got = offers(&map(&[(3, 6)]), &imgs, &map(&[(3, 1)]), &[]);
        assert_eq!(got[0].record_id, 2);
        assert!(!got[0].pushed);
    }

    #[test]
    fn push_of_dissociated_or_binaryless_image_is_ignored() {
        let imgs = [c(2, 3, 9, true), c(4, 3, 12, false)];
        // Record 1 is no longer associated.
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[(3, 1)]), &[]);
        assert_eq!(got[0].record_id, 2);
        assert!(!got[0].pushed);
        // Record 4 has no binary.
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[(3, 4)]), &[]);
        assert_eq!(got[0].record_id, 2);
        // A push for another type does not leak.
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[(5, 2)]), &[]);
        assert!(!got[0].pushed);
    }

    #[test]
    fn dissociated_newest_is_not_offered() {
        // Only what the store hands in as associated is eligible.
        let imgs = [c(1, 3, 6, true)];
        let got = offers(&map(&[(3, 5)]), &imgs, &map(&[]), &[]);
        assert_eq!(got[0].version_number, 6);
        assert!(offers(&map(&[(3, 5)]), &[], &map(&[]), &[]).is_empty());
    }

    #[test]
    fn downgrade_check() {
        assert!(!push_would_downgrade(None, 1));
        assert!(!push_would_downgrade(Some(4), 5));
        assert!(push_would_downgrade(Some(5), 5));
        assert!(push_would_downgrade(Some(6), 5));
    }
}
