//! The fleet summary and version labels on a real redb file: 10,000 devices that checked
//! in, with offers, failures and another partner's records in the shared platform number
//! space; the cost of one summary at that size is printed.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use otad::ids::now_ms;
use otad::model::{OtaState, RecordFields};
use otad::secrets::token_hash;
use otad::store::{DeviceFilter, ImportRow, NewRecord, Store};

use common::*;

fn record(store: &Store, p: &str, dt: &str, name: &str, version: &str, seed: u64) -> u64 {
    let (sha, url) = upload(store, p, &bytes(3000 + seed as usize, seed));
    store
        .create_pool_record(
            "test",
            NewRecord {
                partner_id: p.to_string(),
                fw_type: 3,
                fields: RecordFields {
                    name: name.into(),
                    description: String::new(),
                    version: version.into(),
                    tags: vec![],
                },
                binary: Some((sha, url)),
                associations: vec![dt.to_string()],
            },
        )
        .unwrap()
        .version_number
}

#[test]
fn summary_of_ten_thousand_devices_with_labels_states_and_failures() {
    let t = temp_store();
    let (p, dt) = partner_with_device_type(&t.store, "p");
    let empty_dt = t
        .store
        .create_device_type("test", &p, "empty kind", "")
        .unwrap();
    let vn1 = record(&t.store, &p, &dt, "main", "1.4.1", 1);
    // Another partner's record takes the next number of the shared platform type 3.
    let (q, dt_q) = partner_with_device_type(&t.store, "q");
    let vn_q = record(&t.store, &q, &dt_q, "secret-name", "6.6.6", 2);

    let rows: Vec<ImportRow> = (0..10_000)
        .map(|i| ImportRow {
            line: i + 1,
            device_id: format!("dev-{i:05}"),
            device_type_id: dt.clone(),
            token_hash: token_hash(format!("token-{i}")),
            labels: Default::default(),
        })
        .collect();
    t.store.import_devices("test", &p, rows, true).unwrap();
    // Everyone checks in on 1.4.1, except ten on q's number (which p may not read) and
    // 1,000 that never do.
    let started = Instant::now();
    for i in 0..9_000 {
        let running = if i < 10 { vn_q } else { vn1 };
        t.store
            .check_in(&format!("dev-{i:05}"), BTreeMap::from([(3, running)]))
            .unwrap();
    }
    eprintln!("9,000 check-ins: {:?}", started.elapsed());
    // 1.4.2 arrives: the next check-in of 100 devices is offered it, 30 of them fail.
    let vn2 = record(&t.store, &p, &dt, "main", "1.4.2", 3);
    for i in 100..200 {
        let offers = t
            .store
            .check_in(&format!("dev-{i:05}"), BTreeMap::from([(3, vn1)]))
            .unwrap();
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].record.version_number, vn2);
    }
    for i in 100..130 {
        t.store
            .report(&format!("dev-{i:05}"), 3, vn2, 5, 5, 100)
            .unwrap();
    }

    let started = Instant::now();
    let s = t.store.fleet_summary(&p, None, now_ms(), 20).unwrap();
    let took = started.elapsed();
    eprintln!("fleet summary of 10,000 devices (store, one read transaction): {took:?}");
    assert_eq!(s.device_types.len(), 2);
    let kettles = s
        .device_types
        .iter()
        .find(|d| d.device_type.id == dt)
        .unwrap();
    let empty = s
        .device_types
        .iter()
        .find(|d| d.device_type.id == empty_dt.id)
        .unwrap();
    assert_eq!(empty.devices, 0);
    assert!(empty.fw_types.is_empty());
    assert_eq!(kettles.devices, 10_000);
    assert_eq!(kettles.never_seen, 1_000);
    assert_eq!(kettles.seen_last_hour, 9_000);
    assert_eq!(kettles.seen_last_day, 9_000);
    let fw = &kettles.fw_types[0];
    assert_eq!(fw.fw_type, 3);
    assert_eq!(fw.reporting, 9_000);
    // Highest number first: q's number is above 1.4.1's.
    let versions: Vec<(u64, u64)> = fw
        .versions
        .iter()
        .map(|v| (v.version_number, v.devices))
        .collect();
    assert_eq!(versions, vec![(vn_q, 10), (vn1, 8_990)]);
    let states: Vec<(OtaState, u64, u64)> = fw
        .states
        .iter()
        .map(|s| (s.state, s.version_number, s.devices))
        .collect();
    assert_eq!(
        states,
        vec![(OtaState::Offered, vn2, 70), (OtaState::Failed, vn2, 30)]
    );
    assert_eq!(
        fw.newest_associated.as_ref().map(|r| r.version.as_str()),
        Some("1.4.2")
    );
    assert_eq!(kettles.failures_total, 30);
    assert_eq!(kettles.failures.len(), 20, "bounded by the limit given");
    assert!(
        kettles
            .failures
            .windows(2)
            .all(|w| w[0].at_ms >= w[1].at_ms),
        "newest first"
    );
    assert!(kettles.failures.iter().all(|f| f.result == 5));
    // Labels: p's records by number; q's record stays q's.
    assert_eq!(s.labels[&(3, vn1)].version, "1.4.1");
    assert_eq!(s.labels[&(3, vn1)].name, "main");
    assert_eq!(s.labels[&(3, vn2)].version, "1.4.2");
    assert!(!s.labels.contains_key(&(3, vn_q)), "{:?}", s.labels);

    // One device type only; and q sees only its own fleet.
    let one = t.store.fleet_summary(&p, Some(&dt), now_ms(), 5).unwrap();
    assert_eq!(one.device_types.len(), 1);
    assert_eq!(one.device_types[0].failures.len(), 5);
    let theirs = t.store.fleet_summary(&q, None, now_ms(), 20).unwrap();
    assert_eq!(theirs.device_types.len(), 1);
    assert_eq!(theirs.device_types[0].devices, 0);
    assert!(
        t.store
            .fleet_summary(&q, Some(&dt), now_ms(), 20)
            .unwrap()
            .device_types
            .is_empty()
    );

    // A version string names the numbers that carry it, for the partner only.
    let of = |partner: &str, version: &str| {
        t.store
            .version_numbers_of(partner, 3, version)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(of(&p, "1.4.1"), vec![vn1]);
    assert!(of(&p, "6.6.6").is_empty());
    assert_eq!(of(&q, "6.6.6"), vec![vn_q]);
    let on_141 = t
        .store
        .devices(
            &p,
            &DeviceFilter {
                installed_among: Some((3, [vn1].into())),
                id_contains: Some("DEV-000".into()),
                ..DeviceFilter::default()
            },
        )
        .unwrap();
    // dev-00010 … dev-00099 (dev-00000 … dev-00009 run q's number).
    assert_eq!(on_141.len(), 90);
}
