//! The catalog on a real redb file: version counters under concurrency, record rules,
//! associations, and bad input that must be refused with nothing written.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use otad::model::{RecordFields, Role};
use otad::store::{NewDeviceDescription, NewRecord};
use otad::store::{Store, StoreError, verify};

use common::*;

fn fields(name: &str, version: &str) -> RecordFields {
    RecordFields {
        name: name.to_string(),
        description: String::new(),
        version: version.to_string(),
        tags: Vec::new(),
    }
}

fn new_record(partner: &str, fw_type: i64, name: &str, version: &str) -> NewRecord {
    NewRecord {
        partner_id: partner.to_string(),
        fw_type,
        fields: fields(name, version),
        binary: None,
        associations: Vec::new(),
    }
}

fn create(store: &Store, partner: &str, fw_type: i64, name: &str, version: &str) -> u64 {
    store
        .create_pool_record("test", new_record(partner, fw_type, name, version))
        .expect("create record")
        .version_number
}

fn mcu_type(store: &Store, partner: &str, t: i64) {
    store
        .create_type("test", false, partner, t, &format!("MCU{t}"), "")
        .expect("mcu type");
}

/// Counts every table's rows, so a refused call can be shown to have written nothing.
fn snapshot(store: &Store) -> (u64, u64, usize) {
    let v = verify(&store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    (
        v.records,
        store.audit_len().unwrap(),
        store.partners().unwrap().len(),
    )
}

#[test]
fn sixteen_threads_get_distinct_contiguous_numbers() {
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "acme");
    let store = Arc::new(t.store.clone());
    let threads: Vec<_> = (0..16)
        .map(|th| {
            let store = Arc::clone(&store);
            let p = p.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| create(&store, &p, 3, &format!("app-{th}"), &format!("1.{i}")))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for th in threads {
        let numbers = th.join().unwrap();
        // Each thread's own creations are strictly increasing.
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        all.extend(numbers);
    }
    let set: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(set.len(), 1600, "duplicates");
    assert_eq!(set.first(), Some(&1));
    assert_eq!(set.last(), Some(&1600));
}

#[test]
fn counters_are_independent_per_type_and_per_partner_mcu_type() {
    let t = temp_store();
    let (a, _) = partner_with_device_type(&t.store, "a");
    let (b, _) = partner_with_device_type(&t.store, "b");
    mcu_type(&t.store, &a, 150);
    mcu_type(&t.store, &b, 150);
    assert_eq!(create(&t.store, &a, 3, "app", "1"), 1);
    assert_eq!(create(&t.store, &a, 3, "app", "2"), 2);
    assert_eq!(create(&t.store, &a, 1, "boot", "1"), 1);
    // Platform counters are shared by every partner.
    assert_eq!(create(&t.store, &b, 3, "app", "1"), 3);
    // MCU counters are per partner.
    assert_eq!(create(&t.store, &a, 150, "mcu", "1"), 1);
    assert_eq!(create(&t.store, &b, 150, "mcu", "1"), 1);
    assert_eq!(create(&t.store, &b, 150, "mcu", "2"), 2);
    assert_eq!(create(&t.store, &a, 150, "mcu", "2"), 2);
}

#[test]
fn refused_requests_allocate_nothing() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    assert_eq!(create(&t.store, &p, 3, "app", "1"), 1);
    let before = snapshot(&t.store);
    // Duplicate (name, version).
    let dup = t
        .store
        .create_pool_record("test", new_record(&p, 3, "app", "1"));
    assert!(
        matches!(
            dup,
            Err(StoreError::Conflict {
                trace: "version_exists",
                ..
            })
        ),
        "{dup:?}"
    );
    // Type 4 in the pool, unknown type, out-of-range type, partner type not created.
    for (ty, trace) in [
        (4, "device_description_in_pool"),
        (9, "unknown_type"),
        (0, "type_out_of_range"),
        (201, "type_out_of_range"),
        (150, "unknown_type"),
    ] {
        let r = t
            .store
            .create_pool_record("test", new_record(&p, ty, "x", "1"));
        assert!(
            matches!(&r, Err(StoreError::Invalid(e)) if e.trace == trace),
            "type {ty}: {r:?}"
        );
    }
    // Over-long fields.
    let long_name = t
        .store
        .create_pool_record("test", new_record(&p, 3, &"n".repeat(129), "1"));
    assert!(matches!(long_name, Err(StoreError::Invalid(_))));
    let long_version = t
        .store
        .create_pool_record("test", new_record(&p, 3, "x", &"v".repeat(65)));
    assert!(matches!(long_version, Err(StoreError::Invalid(_))));
    let mut tagged = new_record(&p, 3, "x", "1");
    tagged.fields.tags = vec!["a,b".into()];
    assert!(matches!(
        t.store.create_pool_record("test", tagged),
        Err(StoreError::Invalid(_))
    ));
    // A url that moveToRepository never returned.
    let mut bad_url = new_record(&p, 3, "x", "1");
    bad_url.binary = Some(([7; 32], "https://x/y".into()));
    let r = t.store.create_pool_record("test", bad_url);
    assert!(
        matches!(&r, Err(StoreError::Invalid(e)) if e.trace == "unknown_binary"),
        "{r:?}"
    );
    // Unknown device type in associations.
    let mut bad_assoc = new_record(&p, 3, "x", "1");
    bad_assoc.associations = vec!["no-such-type".into()];
    let r = t.store.create_pool_record("test", bad_assoc);
    assert!(
        matches!(&r, Err(StoreError::Invalid(e)) if e.trace == "unknown_device_type"),
        "{r:?}"
    );
    assert_eq!(snapshot(&t.store), before);
    // The counter did not move: the next creation gets 2.
    assert_eq!(create(&t.store, &p, 3, "app", "2"), 2);
    let _ = dt;
}

#[test]
fn type_rules() {
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "p");
    let types = t.store.types(&p).unwrap();
    let seeded: Vec<(u16, &str)> = types
        .iter()
        .map(|ty| (ty.fw_type, ty.name.as_str()))
        .collect();
    assert_eq!(seeded, otad::model::SEEDED_PLATFORM_TYPES.to_vec());
    let r = t.store.create_type("test", false, &p, 50, "X", "");
    assert!(matches!(&r, Err(StoreError::Invalid(e)) if e.trace == "type_reserved"));
    t.store
        .create_type("admin", true, &p, 50, "RADIO", "")
        .unwrap();
    mcu_type(&t.store, &p, 101);
    let r = t.store.create_type("test", false, &p, 101, "again", "");
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "type_exists",
            ..
        })
    ));
    let r = t.store.update_type("test", false, &p, 3, "APP", "");
    assert!(matches!(r, Err(StoreError::Forbidden { .. })));
    t.store
        .update_type("test", false, &p, 101, "renamed", "d")
        .unwrap();
    assert_eq!(t.store.fw_type(&p, 101).unwrap().unwrap().name, "renamed");
    let r = t.store.update_type("test", false, &p, 102, "x", "");
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
    // A partner can own all 100 MCU numbers (the range is the cap of 100 per partner).
    for ty in 102..=200 {
        mcu_type(&t.store, &p, ty);
    }
    assert_eq!(t.store.types(&p).unwrap().len(), 9 + 100);
    // Another partner sees platform types only.
    let (q, _) = partner_with_device_type(&t.store, "q");
    assert_eq!(t.store.types(&q).unwrap().len(), 9);
}

#[test]
fn users_and_roles() {
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "p");
    t.store
        .create_user("admin", &p, "dev@p.example", "long enough", Role::Partner)
        .unwrap();
    let r = t
        .store
        .create_user("admin", &p, "dev@p.example", "long enough", Role::Partner);
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "username_exists",
            ..
        })
    ));
    let r = t
        .store
        .create_user("admin", &p, "boss", "long enough", Role::Admin);
    assert!(matches!(r, Err(StoreError::Invalid(_))));
    let platform = t.store.platform_partner().unwrap().unwrap();
    t.store
        .create_user("admin", &platform.id, "boss", "long enough", Role::Admin)
        .unwrap();
    let user = t.store.user("dev@p.example").unwrap().unwrap();
    assert!(otad::secrets::verify_secret(
        "long enough",
        &user.password_hash
    ));
    assert!(!otad::secrets::verify_secret(
        "wrong one",
        &user.password_hash
    ));
    t.store.remove_user("admin", &p, "dev@p.example").unwrap();
    assert!(t.store.user("dev@p.example").unwrap().is_none());
    let r = t.store.remove_user("admin", &p, "boss");
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
}

#[test]
fn bootstrap_runs_once_and_its_secrets_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = otad::datadir::DataDir::new(dir.path()).db();
    let store = Store::open(&path, &storage_config()).unwrap();
    let first = store.bootstrap().unwrap().expect("first start");
    assert!(store.bootstrap().unwrap().is_none());
    let platform = store.platform_partner().unwrap().unwrap();
    assert_eq!(platform.id, first.platform_partner_id);
    assert!(otad::secrets::verify_secret(
        &first.client_secret,
        &platform.secret_hash
    ));
    let admin = store.user(&first.admin_username).unwrap().unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(otad::secrets::verify_secret(
        &first.admin_password,
        &admin.password_hash
    ));
    store.close();
    drop(store);
    // After a restart the same credentials are there and nothing is re-seeded.
    let store = Store::open(&path, &storage_config()).unwrap();
    assert!(store.bootstrap().unwrap().is_none());
    assert_eq!(
        store.platform_partner().unwrap().unwrap().id,
        first.platform_partner_id
    );
}

#[test]
fn records_update_binary_rules_and_delete() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    let (sha, url) = upload(&t.store, &p, &bytes(10_000, 1));
    let (sha2, url2) = upload(&t.store, &p, &bytes(10_000, 2));
    let vn = create(&t.store, &p, 3, "app", "1.0");
    assert!(t.store.version_exists(&p, 3, "app", "1.0", None).unwrap());
    let rec = t.store.pool_record(&p, 3, vn).unwrap().unwrap();
    assert!(
        !t.store
            .version_exists(&p, 3, "app", "1.0", Some(rec.id))
            .unwrap()
    );
    // Attach the binary later (the two-stage CI flow).
    let updated = t
        .store
        .update_pool_record(
            "test",
            &p,
            3,
            vn,
            fields("app", "1.0"),
            Some((sha, url.clone())),
        )
        .unwrap();
    assert_eq!(updated.url(), url);
    // Same url again: fine. Another url or none: binary_attached.
    t.store
        .update_pool_record("test", &p, 3, vn, fields("app", "1.0"), Some((sha, url)))
        .unwrap();
    for other in [Some((sha2, url2)), None] {
        let r = t
            .store
            .update_pool_record("test", &p, 3, vn, fields("app", "1.0"), other);
        assert!(
            matches!(
                r,
                Err(StoreError::Conflict {
                    trace: "binary_attached",
                    ..
                })
            ),
            "{r:?}"
        );
    }
    // Renaming into another record's (name, version) collides.
    let vn2 = create(&t.store, &p, 3, "app", "2.0");
    let r = t
        .store
        .update_pool_record("test", &p, 3, vn2, fields("app", "1.0"), None);
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "version_exists",
            ..
        })
    ));
    // Associated records cannot be deleted.
    t.store.associate("test", &p, &p, &dt, 3, vn).unwrap();
    let r = t.store.associate("test", &p, &p, &dt, 3, vn);
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "already_associated",
            ..
        })
    ));
    let r = t.store.delete_pool_record("test", &p, 3, vn);
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "associated",
            ..
        })
    ));
    assert_eq!(t.store.associations_of(rec.id).unwrap().len(), 1);
    t.store.dissociate("test", &p, &dt, 3, vn).unwrap();
    let r = t.store.dissociate("test", &p, &dt, 3, vn);
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
    t.store.delete_pool_record("test", &p, 3, vn).unwrap();
    assert!(t.store.pool_record(&p, 3, vn).unwrap().is_none());
    // The number is never reused.
    assert_eq!(create(&t.store, &p, 3, "app", "3.0"), vn2 + 1);
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

#[test]
fn tenants_do_not_see_each_other() {
    let t = temp_store();
    let (a, dt_a) = partner_with_device_type(&t.store, "a");
    let (b, dt_b) = partner_with_device_type(&t.store, "b");
    let vn = create(&t.store, &a, 3, "app", "1");
    assert!(t.store.pool_record(&b, 3, vn).unwrap().is_none());
    assert!(t.store.pool_records(&b, None).unwrap().is_empty());
    assert!(t.store.device_type(&b, &dt_a).unwrap().is_none());
    // b cannot associate a's record, nor use a's device type.
    let r = t.store.associate("test", &b, &b, &dt_b, 3, vn);
    assert!(
        matches!(&r, Err(StoreError::Invalid(e)) if e.trace == "unknown_version_number"),
        "{r:?}"
    );
    let r = t.store.associate("test", &a, &b, &dt_a, 3, vn);
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
    // An admin may associate a's platform-type record with b's device type …
    t.store.associate("admin", &a, &b, &dt_b, 3, vn).unwrap();
    // … but never an MCU-type record across partners.
    mcu_type(&t.store, &a, 150);
    let vn_mcu = create(&t.store, &a, 150, "mcu", "1");
    let r = t.store.associate("admin", &a, &b, &dt_b, 150, vn_mcu);
    assert!(
        matches!(&r, Err(StoreError::Invalid(e)) if e.trace == "foreign_mcu_type"),
        "{r:?}"
    );
    // Binaries: b cannot attach a url that a moved.
    let (sha, url) = upload(&t.store, &a, &bytes(3000, 3));
    let mut rec = new_record(&b, 3, "steal", "1");
    rec.binary = Some((sha, url));
    let r = t.store.create_pool_record("test", rec);
    assert!(matches!(&r, Err(StoreError::Invalid(e)) if e.trace == "unknown_binary"));
}

#[test]
fn device_descriptions_live_under_one_device_type() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    let dt2 = t
        .store
        .create_device_type("test", &p, "second", "")
        .unwrap()
        .id;
    let (sha, url) = upload(&t.store, &p, &bytes(2000, 4));
    let dd = |dt: &str| NewDeviceDescription {
        partner_id: p.clone(),
        device_type_id: dt.to_string(),
        fields: fields("profile", "7"),
        binary: (sha, url.clone()),
        device_description_id: Some("dd-1".into()),
        device_profile_id: None,
    };
    let rec = t.store.create_device_description("test", dd(&dt)).unwrap();
    assert_eq!(rec.fw_type, 4);
    assert_eq!(rec.version_number, 1);
    assert_eq!(rec.device_type_id.as_deref(), Some(dt.as_str()));
    // Same name/version under the same device type: 409; under another: allowed.
    let r = t.store.create_device_description("test", dd(&dt));
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "version_exists",
            ..
        })
    ));
    assert_eq!(
        t.store
            .create_device_description("test", dd(&dt2))
            .unwrap()
            .version_number,
        2
    );
    // Never in the pool.
    assert!(t.store.pool_record(&p, 4, 1).unwrap().is_none());
    assert!(t.store.pool_records(&p, None).unwrap().is_empty());
    assert!(!t.store.version_exists(&p, 4, "profile", "7", None).unwrap());
    assert_eq!(t.store.images(&dt, Some(4)).unwrap().len(), 1);
    // The blob is referenced by the owner link and both records.
    let (_, meta) = t.store.owned_blob(&p, &sha).unwrap().unwrap();
    assert_eq!(meta.refs, 3);
    // A device type with images cannot be deleted.
    let r = t.store.delete_device_type("test", &p, &dt);
    assert!(matches!(
        r,
        Err(StoreError::Conflict {
            trace: "device_type_in_use",
            ..
        })
    ));
}

#[test]
fn every_mutation_is_audited() {
    let t = temp_store();
    let before = t.store.audit_len().unwrap();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    let vn = create(&t.store, &p, 3, "app", "1");
    t.store.associate("alice", &p, &p, &dt, 3, vn).unwrap();
    let entries = t.store.audit_since(before, 100).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "partner.create",
            "device_type.create",
            "pool.create",
            "image.associate"
        ]
    );
    assert_eq!(entries[3].actor, "alice");
    assert!(entries.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
}

#[test]
fn audit_pages_newest_first_with_since() {
    let t = temp_store();
    let before = t.store.audit_len().unwrap() as usize;
    let start = otad::ids::now_ms();
    for i in 0..7 {
        t.store
            .create_partner("pager", &format!("p{i}"), None)
            .unwrap();
    }
    let (total, page) = t.store.audit_page(0, 0, 3).unwrap();
    assert_eq!(total, before + 7);
    let names: Vec<&str> = page.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(names, ["p6", "p5", "p4"]);
    let (_, page) = t.store.audit_page(0, 6, 3).unwrap();
    assert_eq!(page.first().map(|e| e.detail.as_str()), Some("p0"));
    let (recent, _) = t.store.audit_page(start, 0, 100).unwrap();
    let expected = t
        .store
        .audit_since(0, usize::MAX)
        .unwrap()
        .iter()
        .filter(|e| e.at_ms >= start)
        .count();
    assert_eq!(recent, expected);
    assert!(recent >= 7, "the seven new entries are at or after `start`");
    let (none, page) = t.store.audit_page(u64::MAX, 0, 10).unwrap();
    assert_eq!((none, page.len()), (0, 0));
}
