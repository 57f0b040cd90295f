//! Versions people read and the fleet summary, against a real server: 10,000 imported
//! devices, a few checking in and failing over OCP/1; `GET …/fleet` (counts, labels,
//! states, failures with reasons, one device type, errors), the device list and view with
//! version strings beside numbers, and the list filters by version string and by id; the
//! summary cache (`api.fleet_cache_ms`); and the push to many devices in one request that
//! the Deploy screen uses at fleet size. The time of one summary of 10,000 devices over
//! HTTPS, computed for the request, and of one push to 1,000 devices are printed.

mod api_common;

use std::time::{Duration, Instant};

use api_common::*;
use serde_json::{Value, json};

/// Waits (bounded) until the fleet summary satisfies `ready`; returns it.
fn fleet_until(api: &Api, path: &str, token: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = api.get(path, token).ok_json(200);
        if ready(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the summary never got there: {v}"
        );
        std::thread::sleep(POLL);
    }
}

fn device_type<'a>(fleet: &'a Value, id: &str) -> &'a Value {
    fleet["deviceTypes"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["deviceTypeId"] == id))
        .unwrap_or_else(|| panic!("no device type {id} in {fleet}"))
}

#[test]
fn fleet_summary_and_version_strings_at_ten_thousand_devices() {
    // No cache: every request below walks the fleet, as the figure printed should show.
    let server = Server::start_with_config("[api]\nfleet_cache_ms = 0\n");
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Fleet");
    let b = api.tenant(&admin, "Other");
    let tok = &a.token;
    let base = a.base();
    api.fw_type(&a.id, tok, 150, "MCU_MAIN");
    let dt = api.device_type(&a.id, tok, "Kettle");
    let spare = api.device_type(&a.id, tok, "Spare");
    let publish = |version: &str, seed: u64| -> Value {
        let (_, url) = api.publish(&a.id, tok, &bytes(4000 + seed as usize, seed));
        let r = api.pool_create(
            &a.id,
            tok,
            &json!({ "name": "main", "type": 150, "version": version, "url": url }),
        );
        api.associate(&a.id, tok, &dt, &r);
        r
    };
    let v141 = publish("1.4.1", 1);
    let vn141: u64 = s(&v141, "versionNumber").parse().unwrap();

    // 10,000 devices in one import; three of them check in, one of which then fails.
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for i in 0..10_000 {
        csv.push_str(&format!("kettle-{i:05},{dt}\n"));
    }
    let tokens = api
        .post_bytes(
            &format!("{base}/devices/import"),
            tok,
            "text/csv",
            csv.into_bytes(),
        )
        .expect(200)
        .text();
    let token_of = |id: &str| -> String {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{id},")))
            .unwrap_or_else(|| panic!("no token for {id}"))
            .to_string()
    };
    for id in ["kettle-00001", "kettle-00002"] {
        RawDevice::connect(&server, id, &token_of(id)).check(&[(150, vn141)]);
    }
    let v142 = publish("1.4.2", 2);
    let vn142: u64 = s(&v142, "versionNumber").parse().unwrap();
    let mut failing = RawDevice::connect(&server, "kettle-00003", &token_of("kettle-00003"));
    let offer = failing.check(&[(150, vn141)]);
    assert_eq!(offer.len(), 1, "1.4.2 is offered");
    failing.report(150, vn142, 5, 5, 1000);

    let fleet_path = format!("{base}/fleet");
    let fleet = fleet_until(api, &fleet_path, tok, |v| {
        device_type(v, &dt)["failuresTotal"] == 1 && device_type(v, &dt)["seenLastHour"] == 3
    });
    assert_no_nulls(&fleet, "fleet");
    assert_eq!(fleet["devices"], 10_000);
    let k = device_type(&fleet, &dt);
    assert_eq!(k["name"], "Kettle");
    assert_eq!(k["devices"], 10_000);
    assert_eq!(k["neverSeen"], 9_997);
    assert_eq!(k["seenLastDay"], 3);
    let fw = &k["firmwareTypes"][0];
    assert_eq!(fw["type"], 150);
    assert_eq!(fw["reporting"], 3);
    assert_eq!(
        fw["versions"],
        json!([{ "versionNumber": vn141.to_string(), "version": "1.4.1", "name": "main", "devices": 3 }])
    );
    assert_eq!(
        fw["otaStates"],
        json!([{ "state": "failed", "versionNumber": vn142.to_string(), "version": "1.4.2", "name": "main", "devices": 1 }])
    );
    assert_eq!(fw["newestAssociated"]["version"], "1.4.2");
    assert_eq!(fw["newestAssociated"]["hasBinary"], true);
    let failure = &k["failures"][0];
    assert_eq!(failure["deviceId"], "kettle-00003");
    assert_eq!(failure["reason"], "integrity check failure");
    assert_eq!(failure["result"], 5);
    assert_eq!(failure["version"], "1.4.2");
    // A device type without devices is listed too.
    assert_eq!(device_type(&fleet, &spare)["devices"], 0);

    // The cost at 10,000 devices: one request, one pass.
    let started = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        api.get(&fleet_path, tok).expect(200);
    }
    eprintln!(
        "GET /fleet with 10,000 devices over HTTPS, uncached: {:?} per request",
        started.elapsed() / rounds
    );

    // One device type; unknown or another partner's device type is 404; B sees nothing.
    let one = api
        .get(&format!("{fleet_path}?deviceTypeId={dt}"), tok)
        .ok_json(200);
    assert_eq!(one["deviceTypes"].as_array().unwrap().len(), 1);
    api.get(
        &format!("{fleet_path}?deviceTypeId=00000000-0000-0000-0000-000000000000"),
        tok,
    )
    .expect_error(404, Some("unknown_device_type"));
    let b_dt = api.device_type(&b.id, &b.token, "Theirs");
    api.get(&format!("{fleet_path}?deviceTypeId={b_dt}"), tok)
        .expect_error(404, Some("unknown_device_type"));
    api.get(&fleet_path, &b.token).expect_error(403, None);

    // The device view: every number with its version string and name.
    let d = api
        .get(&format!("{base}/devices/kettle-00003"), tok)
        .ok_json(200);
    assert_eq!(d["installed"][0]["version"], "1.4.1");
    assert_eq!(d["installed"][0]["name"], "main");
    assert_eq!(d["ota"][0]["version"], "1.4.2");
    assert_eq!(d["ota"][0]["state"], "failed");
    assert_eq!(d["ota"][0]["history"][0]["version"], "1.4.2");

    // A pending push names its version too.
    api.put_json(
        &format!(
            "{base}/deviceTypes/{dt}/firmwareImages/{}/push",
            s(&v142, "id")
        ),
        tok,
        &json!({ "value": "kettle-00005" }),
    )
    .expect(202);
    let pushed = api
        .get(&format!("{base}/devices/kettle-00005"), tok)
        .ok_json(200);
    assert_eq!(pushed["pushes"][0]["versionNumber"], vn142.to_string());
    assert_eq!(pushed["pushes"][0]["version"], "1.4.2");
    assert_eq!(pushed["pushes"][0]["name"], "main");

    // The list: by version string or number (same answer), by id, both at once.
    let list = |q: &str| content(&api.get(&format!("{base}/devices?{q}"), tok).ok_json(200));
    let by_string = list("type=150&installedVersionString=1.4.1");
    let ids: Vec<String> = by_string.iter().map(|d| s(d, "deviceId")).collect();
    assert_eq!(ids, ["kettle-00001", "kettle-00002", "kettle-00003"]);
    assert_eq!(by_string[0]["installed"][0]["version"], "1.4.1");
    let by_number = list(&format!("type=150&installedVersion={vn141}"));
    assert_eq!(by_number, by_string);
    assert!(list("type=150&installedVersionString=9.9.9").is_empty());
    let searched = list("search=KETTLE-0000&size=1000");
    assert_eq!(searched.len(), 10, "kettle-00000 … kettle-00009");
    let both = list("search=00002&type=150&installedVersionString=1.4.1");
    assert_eq!(both.len(), 1);
    api.get(
        &format!("{base}/devices?type=150&installedVersion=1&installedVersionString=1.4.1"),
        tok,
    )
    .expect_error(400, Some("bad_filter"));
    api.get(&format!("{base}/devices?installedVersionString=1.4.1"), tok)
        .expect_error(400, Some("bad_filter"));
    // The server keeps serving.
    api.get(&fleet_path, tok).expect(200);
}

#[test]
fn a_summary_is_reused_for_the_cache_period() {
    let server = Server::start_with_config("[api]\nfleet_cache_ms = 60000\n");
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Cached");
    let dt = api.device_type(&a.id, &a.token, "Kettle");
    let path = format!("{}/fleet", a.base());
    let first = api.get(&path, &a.token).ok_json(200);
    assert_eq!(first["devices"], 0);
    api.register_device(&a.id, &a.token, "k-1", &dt);
    // Within the period the same answer comes back, computed at the same time.
    let again = api.get(&path, &a.token).ok_json(200);
    assert_eq!(again, first);
    // Another filter is another summary, computed now; so is another partner's.
    let one = api
        .get(&format!("{path}?deviceTypeId={dt}"), &a.token)
        .ok_json(200);
    assert_eq!(one["devices"], 1);
    let b = api.tenant(&admin, "Other");
    let theirs = api
        .get(&format!("{}/fleet", b.base()), &b.token)
        .ok_json(200);
    assert_eq!(theirs["devices"], 0);
    assert!(theirs["deviceTypes"].as_array().unwrap().is_empty());
    // Errors are not cached: an unknown device type stays 404.
    for _ in 0..2 {
        api.get(&format!("{path}?deviceTypeId=nope"), &a.token)
            .expect_error(404, Some("unknown_device_type"));
    }
}

#[test]
fn a_push_to_many_devices_in_one_request() {
    let server = Server::start_with_config("[api]\npush_batch_max = 1000\n");
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Bulk");
    let tok = &a.token;
    let base = a.base();
    api.fw_type(&a.id, tok, 150, "MCU_MAIN");
    let dt = api.device_type(&a.id, tok, "Kettle");
    let other = api.device_type(&a.id, tok, "Toaster");
    let (_, url) = api.publish(&a.id, tok, &bytes(3000, 5));
    let r = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "main", "type": 150, "version": "2.0.0", "url": url }),
    );
    api.associate(&a.id, tok, &dt, &r);
    let vn = num(&r, "versionNumber");
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for i in 0..1_000 {
        csv.push_str(&format!("k-{i:04},{dt}\n"));
    }
    csv.push_str(&format!("t-0,{other}\n"));
    let tokens = api
        .post_bytes(
            &format!("{base}/devices/import"),
            tok,
            "text/csv",
            csv.into_bytes(),
        )
        .expect(200)
        .text();
    // k-0000 already runs the image's number.
    let token0 = tokens
        .lines()
        .find_map(|l| l.strip_prefix("k-0000,"))
        .unwrap()
        .to_string();
    RawDevice::connect(&server, "k-0000", &token0).check(&[(150, vn)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.get(&format!("{base}/devices/k-0000"), tok).json()["installed"]
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        assert!(Instant::now() < deadline, "the check-in never showed");
        std::thread::sleep(POLL);
    }
    let push = format!(
        "{base}/deviceTypes/{dt}/firmwareImages/{}/push",
        s(&r, "id")
    );

    // Too many, none, not strings: 400, and nothing is pushed.
    let too_many: Vec<String> = (0..1_001).map(|i| format!("k-{i:04}")).collect();
    api.put_json(&push, tok, &json!({ "values": too_many }))
        .expect_error(400, Some("bad_device_list"));
    api.put_json(&push, tok, &json!({ "values": [] }))
        .expect_error(400, Some("bad_device_list"));
    api.put_json(&push, tok, &json!({ "values": [1, 2] }))
        .expect_error(400, Some("bad_field"));
    assert!(
        api.get(&format!("{base}/devices/k-0001"), tok).ok_json(200)["pushes"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // 1,000 ids in one request: 997 pushed, three refused with their reasons.
    let mut ids: Vec<String> = (0..998).map(|i| format!("k-{i:04}")).collect();
    ids.push("t-0".into());
    ids.push("nobody".into());
    let started = Instant::now();
    let answer = api
        .put_json(&push, tok, &json!({ "values": ids }))
        .ok_json(202);
    eprintln!(
        "one push request for 1,000 devices: {:?}",
        started.elapsed()
    );
    assert_eq!(answer["pushed"].as_array().unwrap().len(), 997, "{answer}");
    let refused: Vec<(String, String)> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (s(x, "deviceId"), s(x, "trace")))
        .collect();
    assert_eq!(
        refused,
        [
            ("k-0000".to_string(), "would_downgrade".to_string()),
            ("t-0".to_string(), "device_type_mismatch".to_string()),
            ("nobody".to_string(), "unknown_device".to_string()),
        ]
    );
    let d = api.get(&format!("{base}/devices/k-0997"), tok).ok_json(200);
    assert_eq!(d["pushes"][0]["version"], "2.0.0", "{d}");
    // Every push is in the audit log.
    let audit = api.get("/v1/admin/audit?size=1000", &admin).ok_json(200);
    let pushes = content(&audit)
        .iter()
        .filter(|e| e["action"] == "image.push")
        .count();
    assert_eq!(pushes, 997);
    // An image not associated with the device type refuses the whole request.
    api.put_json(
        &format!(
            "{base}/deviceTypes/{other}/firmwareImages/{}/push",
            s(&r, "id")
        ),
        tok,
        &json!({ "values": ["t-0"] }),
    )
    .expect_error(404, Some("unknown_image"));
}
