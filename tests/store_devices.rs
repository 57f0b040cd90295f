//! Devices on a real redb file: registration, bulk import, check-in → offer, push, report
//! with bounded history, confirmation, and their durability across a restart.

mod common;

use std::collections::BTreeMap;

use otad::model::{OtaState, RecordFields};
use otad::secrets::token_hash;
use otad::store::NewRecord;
use otad::store::{AttributeUpdate, DeviceFilter, ImportRow};
use otad::store::{Store, StoreError, verify};

use common::*;

fn record_with_binary(store: &Store, p: &str, dt: &str, version: &str, seed: u64) -> (u64, u64) {
    let (sha, url) = upload(store, p, &bytes(5000 + seed as usize, seed));
    let rec = store
        .create_pool_record(
            "test",
            NewRecord {
                partner_id: p.to_string(),
                fw_type: 3,
                fields: RecordFields {
                    name: "app".into(),
                    description: String::new(),
                    version: version.into(),
                    tags: vec![],
                },
                binary: Some((sha, url)),
                associations: vec![dt.to_string()],
            },
        )
        .unwrap();
    (rec.id, rec.version_number)
}

fn installed(pairs: &[(u16, u64)]) -> BTreeMap<u16, u64> {
    pairs.iter().copied().collect()
}

#[test]
fn check_in_offers_newest_then_confirms() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    t.store
        .register_device("test", &p, "dev-1", &dt, token_hash("secret"))
        .unwrap();
    // Nothing associated yet.
    assert!(
        t.store
            .check_in("dev-1", installed(&[(3, 0)]))
            .unwrap()
            .is_empty()
    );
    let (_, vn1) = record_with_binary(&t.store, &p, &dt, "1.0", 1);
    let (id2, vn2) = record_with_binary(&t.store, &p, &dt, "2.0", 2);
    let offers = t.store.check_in("dev-1", installed(&[(3, vn1)])).unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].record.id, id2);
    assert_eq!(offers[0].offer.version_number, vn2);
    let dev = t.store.device("dev-1").unwrap().unwrap();
    assert_eq!(dev.ota[&3].current.state, OtaState::Offered);
    assert!(dev.last_seen_ms.is_some());
    // Reports move the state; a report for an image never offered is refused.
    t.store.report("dev-1", 3, vn2, 1, 0, 4096).unwrap();
    t.store.report("dev-1", 3, vn2, 2, 0, 5002).unwrap();
    let r = t.store.report("dev-1", 3, vn1, 1, 0, 0);
    assert!(matches!(r, Err(StoreError::Forbidden { .. })), "{r:?}");
    let r = t.store.report("dev-1", 3, vn2, 5, 0, 0);
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    // The device now runs vn2: confirmed, nothing more to offer.
    assert!(
        t.store
            .check_in("dev-1", installed(&[(3, vn2)]))
            .unwrap()
            .is_empty()
    );
    let dev = t.store.device("dev-1").unwrap().unwrap();
    let ota = &dev.ota[&3];
    assert_eq!(ota.current.state, OtaState::Confirmed);
    let states: Vec<OtaState> = ota.history.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            OtaState::Offered,
            OtaState::Downloading,
            OtaState::Downloaded
        ]
    );
    assert_eq!(dev.reported, installed(&[(3, vn2)]));
}

#[test]
fn push_rules_and_push_beats_newest() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    let other_dt = t
        .store
        .create_device_type("test", &p, "other", "")
        .unwrap()
        .id;
    t.store
        .register_device("test", &p, "dev-1", &dt, token_hash("a"))
        .unwrap();
    t.store
        .register_device("test", &p, "dev-2", &other_dt, token_hash("b"))
        .unwrap();
    let (id1, vn1) = record_with_binary(&t.store, &p, &dt, "1.0", 1);
    let (_, vn2) = record_with_binary(&t.store, &p, &dt, "2.0", 2);
    t.store.check_in("dev-1", installed(&[(3, 0)])).unwrap();
    t.store.push("test", &p, &dt, id1, "dev-1").unwrap();
    let offers = t.store.check_in("dev-1", installed(&[(3, 0)])).unwrap();
    assert_eq!(offers[0].offer.version_number, vn1);
    assert!(offers[0].offer.pushed);
    // Once the device runs it, the push is spent and the newest is offered.
    let offers = t.store.check_in("dev-1", installed(&[(3, vn1)])).unwrap();
    assert_eq!(offers[0].offer.version_number, vn2);
    assert!(!offers[0].offer.pushed);
    assert!(t.store.device("dev-1").unwrap().unwrap().pushes.is_empty());
    // Refusals.
    let r = t.store.push("test", &p, &dt, id1, "dev-1");
    assert!(
        matches!(
            r,
            Err(StoreError::Conflict {
                trace: "would_downgrade",
                ..
            })
        ),
        "{r:?}"
    );
    let r = t.store.push("test", &p, &dt, id1, "dev-2");
    assert!(
        matches!(
            r,
            Err(StoreError::Conflict {
                trace: "device_type_mismatch",
                ..
            })
        ),
        "{r:?}"
    );
    let r = t.store.push("test", &p, &dt, id1, "nope");
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");
    let empty = t
        .store
        .create_pool_record(
            "test",
            NewRecord {
                partner_id: p.clone(),
                fw_type: 3,
                fields: RecordFields {
                    name: "app".into(),
                    description: String::new(),
                    version: "3.0".into(),
                    tags: vec![],
                },
                binary: None,
                associations: vec![dt.clone()],
            },
        )
        .unwrap();
    let r = t.store.push("test", &p, &dt, empty.id, "dev-1");
    assert!(
        matches!(
            r,
            Err(StoreError::Conflict {
                trace: "no_binary",
                ..
            })
        ),
        "{r:?}"
    );
    // A record without a binary is never offered even though it is newest.
    let offers = t.store.check_in("dev-1", installed(&[(3, vn1)])).unwrap();
    assert_eq!(offers[0].offer.version_number, vn2);
    // Dissociated images are not offered.
    t.store.dissociate("test", &p, &dt, 3, vn2).unwrap();
    assert!(
        t.store
            .check_in("dev-1", installed(&[(3, vn1)]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn import_is_all_or_nothing_and_names_the_line() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    let row = |line: usize, id: &str| ImportRow {
        line,
        device_id: id.to_string(),
        device_type_id: dt.clone(),
        token_hash: token_hash(id),
        labels: Default::default(),
    };
    let rows: Vec<ImportRow> = (0..5000).map(|i| row(i + 2, &format!("d{i:05}"))).collect();
    assert_eq!(
        t.store
            .import_devices("test", &p, rows, true)
            .unwrap()
            .len(),
        5000
    );
    let r = t
        .store
        .import_devices("test", &p, vec![row(2, "fresh"), row(3, "d00007")], true);
    match r {
        Err(StoreError::Conflict { message, .. }) => {
            assert!(message.contains("line 3"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let r = t
        .store
        .import_devices("test", &p, vec![row(2, "x1"), row(3, "x1")], true);
    assert!(matches!(r, Err(StoreError::Conflict { .. })));
    let r = t
        .store
        .import_devices("test", &p, vec![row(2, "ok"), row(3, "bad id")], true);
    match r {
        Err(StoreError::Invalid(e)) => assert!(e.reason.contains("line 3"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(t.store.device("fresh").unwrap().is_none());
    assert!(t.store.device("ok").unwrap().is_none());
    let listed = t
        .store
        .devices(
            &p,
            &DeviceFilter {
                device_type_id: Some(dt.clone()),
                installed: None,
                ..DeviceFilter::default()
            },
        )
        .unwrap();
    assert_eq!(listed.len(), 5000);
    // Another partner's list is empty, and its device type cannot be used.
    let (q, dt_q) = partner_with_device_type(&t.store, "q");
    assert!(
        t.store
            .devices(&q, &DeviceFilter::default())
            .unwrap()
            .is_empty()
    );
    let r = t
        .store
        .register_device("test", &p, "z", &dt_q, token_hash("z"));
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
}

#[test]
fn check_ins_become_durable_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = otad::datadir::DataDir::new(dir.path()).db();
    let (p, dt);
    {
        let store = Store::open(&path, &storage_config()).unwrap();
        store.bootstrap().unwrap();
        (p, dt) = partner_with_device_type(&store, "p");
        store
            .register_device("test", &p, "dev", &dt, token_hash("t"))
            .unwrap();
        store
            .check_in("dev", installed(&[(3, 17), (5, 2)]))
            .unwrap();
        // A clean close flushes the non-durable check-in.
        store.close();
    }
    let store = Store::open(&path, &storage_config()).unwrap();
    let dev = store.device("dev").unwrap().unwrap();
    assert_eq!(dev.reported, installed(&[(3, 17), (5, 2)]));
    let filtered = store
        .devices(
            &p,
            &DeviceFilter {
                device_type_id: None,
                installed: Some((3, 17)),
                ..DeviceFilter::default()
            },
        )
        .unwrap();
    assert_eq!(filtered.len(), 1);
    store
        .rotate_device_token("test", &p, "dev", token_hash("new"))
        .unwrap();
    assert_eq!(
        store.device("dev").unwrap().unwrap().token_hash,
        token_hash("new")
    );
    store.delete_device("test", &p, "dev").unwrap();
    assert!(store.device("dev").unwrap().is_none());
    let v = verify(&store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

/// Progress REPORTs can arrive out of order (pipelined by the device, served concurrently):
/// within one download progress never goes back, and a late one after DOWNLOADED does not
/// undo it.
#[test]
fn late_progress_reports_do_not_move_progress_back() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    t.store
        .register_device("test", &p, "dev", &dt, token_hash("t"))
        .unwrap();
    let (_, vn) = record_with_binary(&t.store, &p, &dt, "1.0", 1);
    t.store.check_in("dev", installed(&[(3, 0)])).unwrap();
    t.store.report("dev", 3, vn, 1, 0, 8192).unwrap();
    t.store.report("dev", 3, vn, 1, 0, 4096).unwrap();
    let dev = t.store.device("dev").unwrap().unwrap();
    assert_eq!(dev.ota[&3].current.bytes_done, 8192);
    assert_eq!(
        dev.ota[&3].history.len(),
        1,
        "the late report is not history"
    );
    t.store.report("dev", 3, vn, 2, 0, 20_000).unwrap();
    t.store.report("dev", 3, vn, 1, 0, 12_288).unwrap();
    let dev = t.store.device("dev").unwrap().unwrap();
    assert_eq!(dev.ota[&3].current.state, OtaState::Downloaded);
    assert_eq!(dev.ota[&3].current.bytes_done, 20_000);
    // A new download after a failure starts from the beginning again.
    t.store.report("dev", 3, vn, 5, 8, 0).unwrap();
    t.store.report("dev", 3, vn, 1, 0, 0).unwrap();
    let dev = t.store.device("dev").unwrap().unwrap();
    assert_eq!(dev.ota[&3].current.state, OtaState::Downloading);
}

#[test]
fn history_is_bounded_by_config() {
    let mut config = storage_config();
    config.ota_history = 3;
    let t = temp_store_with(config);
    let (p, dt) = partner_with_device_type(&t.store, "p");
    t.store
        .register_device("test", &p, "dev", &dt, token_hash("t"))
        .unwrap();
    let (_, vn) = record_with_binary(&t.store, &p, &dt, "1.0", 1);
    t.store.check_in("dev", installed(&[(3, 0)])).unwrap();
    for i in 0..20 {
        t.store.report("dev", 3, vn, 1, 0, i * 4096).unwrap();
    }
    let dev = t.store.device("dev").unwrap().unwrap();
    assert_eq!(dev.ota[&3].history.len(), 3);
    assert_eq!(dev.ota[&3].current.bytes_done, 19 * 4096);
}

#[test]
fn attributes_update_bounded_and_verified() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    t.store
        .register_device("test", &p, "dev", &dt, token_hash("t"))
        .unwrap();
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let got = t
        .store
        .update_device_attributes(
            "device:dev",
            "dev",
            AttributeUpdate::Set("hw".into(), "r2".into()),
        )
        .unwrap();
    assert_eq!(got, map(&[("hw", "r2")]));
    let got = t
        .store
        .update_device_attributes(
            "device:dev",
            "dev",
            AttributeUpdate::Merge(map(&[("fw", "1"), ("hw", "r3")])),
        )
        .unwrap();
    assert_eq!(got, map(&[("fw", "1"), ("hw", "r3")]));
    // Over the bound: refused whole, nothing changed.
    let many: BTreeMap<String, String> =
        (0..65).map(|i| (format!("k{i}"), String::new())).collect();
    let err = t
        .store
        .update_device_attributes("device:dev", "dev", AttributeUpdate::Merge(many))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(e) if e.trace == "too_many_attributes"),
        "{err:?}"
    );
    assert_eq!(t.store.device_labels("dev").unwrap().attributes.len(), 2);
    let got = t
        .store
        .update_device_attributes(
            "device:dev",
            "dev",
            AttributeUpdate::Remove(vec!["fw".into()]),
        )
        .unwrap();
    assert_eq!(got, map(&[("hw", "r3")]));
    let err = t
        .store
        .update_device_attributes(
            "device:x",
            "nobody",
            AttributeUpdate::Replace(BTreeMap::new()),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    t.store
        .set_device_labels("test", &p, "dev", Some(vec!["beta".into()]), None)
        .unwrap();
    let labels = t.store.device_labels("dev").unwrap();
    assert_eq!((labels.tags.len(), labels.attributes.len()), (1, 1));
    let filter = DeviceFilter {
        tags: vec!["beta".into()],
        attributes: map(&[("hw", "r3")]),
        ..Default::default()
    };
    assert_eq!(t.store.devices(&p, &filter).unwrap().len(), 1);
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    t.store.delete_device("test", &p, "dev").unwrap();
    assert!(t.store.device_labels("dev").unwrap().is_empty());
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}
