//! Rollout bookkeeping in a real redb file, through the store API: the DDI feedback hook
//! moves outcomes exactly as OCP/1 CHECK and REPORT do, `db verify` notices counters that
//! differ from a recount of the outcome rows, and dissociating a held image drops the hold.

mod common;

use std::collections::BTreeMap;

use common::*;
use otad::model::RecordFields;
use otad::rollout::{Definition, Filter, GroupSpec, MILLION, Rollout};
use otad::secrets::token_hash;
use otad::store::{Feedback, NewRecord, NewRollout, OutcomeFilter, Store, codec, tables, verify};
use redb::ReadableDatabase;

/// A pool record of type 3 with a binary, not associated; returns its id.
fn image(store: &Store, p: &str) -> u64 {
    let (sha, url) = upload(store, p, &bytes(5000, 9));
    store
        .create_pool_record(
            "test",
            NewRecord {
                partner_id: p.to_string(),
                fw_type: 3,
                fields: RecordFields {
                    name: "app".into(),
                    description: String::new(),
                    version: "2.0".into(),
                    tags: vec![],
                },
                binary: Some((sha, url)),
                associations: vec![],
            },
        )
        .unwrap()
        .id
}

fn definition(dt: &str, record_id: u64) -> Definition {
    Definition {
        name: "r".into(),
        device_type_id: dt.into(),
        record_id,
        fw_type: 0,
        version_number: 0,
        groups: vec![GroupSpec::Percent(MILLION)],
        success: MILLION,
        error: MILLION,
        min_failures: 5,
        confirm_timeout_secs: 3600,
        soak_secs: 0,
        auto_advance: true,
        max_per_minute: None,
        window: None,
        start_at_ms: None,
        filter: Filter::default(),
    }
}

#[test]
fn feedback_hook_counts_like_ocp_and_verify_recounts() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    for i in 0..4 {
        t.store
            .register_device(
                "test",
                &p,
                &format!("d{i}"),
                &dt,
                token_hash(format!("t{i}")),
            )
            .unwrap();
    }
    let record = image(&t.store, &p);
    let r = t
        .store
        .create_rollout(
            "test",
            NewRollout {
                partner_id: p.clone(),
                def: definition(&dt, record),
            },
        )
        .unwrap();
    let vn = r.def.version_number;
    // d0 and d1 are offered over OCP/1 (CHECK), then report through "DDI".
    for d in ["d0", "d1"] {
        let offers = t.store.check_in(d, [(3u16, 0u64)].into()).unwrap();
        assert_eq!(offers.len(), 1, "{d}");
    }
    t.store
        .rollout_feedback("d0", record, Feedback::Progress)
        .unwrap();
    t.store
        .rollout_feedback("d0", record, Feedback::Confirmed)
        .unwrap();
    t.store
        .rollout_feedback("d1", record, Feedback::Failed("hash mismatch".into()))
        .unwrap();
    // Feedback from a device never offered the image changes nothing but a confirmation.
    t.store
        .rollout_feedback("d2", record, Feedback::Failed("x".into()))
        .unwrap();
    // A device outside any rollout, or an unknown record, is not an error.
    t.store
        .rollout_feedback("d3", 999_999, Feedback::Installed)
        .unwrap();
    assert!(
        t.store
            .rollout_feedback("ghost", record, Feedback::Installed)
            .is_err()
    );
    let outcomes: BTreeMap<String, String> = t
        .store
        .rollout_devices(r.id, &OutcomeFilter::default())
        .unwrap()
        .into_iter()
        .map(|(d, o)| {
            (
                d,
                format!("{}:{}", o.outcome.as_str(), o.reason.unwrap_or_default()),
            )
        })
        .collect();
    assert_eq!(outcomes["d0"], "confirmed:");
    assert_eq!(outcomes["d1"], "failed:hash mismatch");
    assert_eq!(outcomes["d2"], "waiting:");
    let now = t.store.rollout(&p, r.id).unwrap().unwrap();
    let c = now.groups[0].counts;
    assert_eq!((c.size, c.confirmed, c.failed, c.waiting), (4, 1, 1, 2));
    // A CHECK running the number confirms too.
    t.store.check_in("d2", [(3u16, vn)].into()).unwrap();
    let c = t.store.rollout(&p, r.id).unwrap().unwrap().groups[0].counts;
    assert_eq!(c.confirmed, 2);
    let report = verify(&t.store.database().unwrap()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    // Damage the counters by hand: verify names the rollout.
    let db = t.store.database().unwrap();
    let mut damaged: Rollout = {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(tables::ROLLOUTS).unwrap();
        codec::get(&table, r.id).unwrap().unwrap()
    };
    damaged.groups[0].counts.confirmed += 1;
    t.store
        .write(true, move |txn| {
            txn.open_table(tables::ROLLOUTS)?
                .insert(damaged.id, codec::encode(&damaged)?.as_slice())?;
            Ok(())
        })
        .unwrap();
    let report = verify(&t.store.database().unwrap()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&format!("rollout {}", r.id)) && p.contains("recount")),
        "{:?}",
        report.problems
    );
}

#[test]
fn dissociating_a_held_image_drops_the_hold() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    t.store
        .register_device("test", &p, "d0", &dt, token_hash("t0"))
        .unwrap();
    let record = image(&t.store, &p);
    let r = t
        .store
        .create_rollout(
            "test",
            NewRollout {
                partner_id: p.clone(),
                def: definition(&dt, record),
            },
        )
        .unwrap();
    t.store
        .move_rollout("test", &p, r.id, otad::rollout::Move::Cancel)
        .unwrap();
    // Cancelled: still held, so nothing is offered.
    assert!(
        t.store
            .check_in("d0", [(3u16, 0u64)].into())
            .unwrap()
            .is_empty()
    );
    t.store
        .dissociate("test", &p, &dt, 3, r.def.version_number)
        .unwrap();
    t.store
        .associate("test", &p, &p, &dt, 3, r.def.version_number)
        .unwrap();
    // Associated again, plainly: released to the device type.
    assert_eq!(
        t.store.check_in("d0", [(3u16, 0u64)].into()).unwrap().len(),
        1
    );
    let report = verify(&t.store.database().unwrap()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}
