//! Every endpoint of the HTTP API contract (api.md), against a real `otad serve`: success
//! shapes and each documented error status for firmware types, the pool (CRUD, `exists`,
//! paging, sorting, tag filters, tags list), device-type firmware images and pushes (type 4
//! included), device types, devices (register, list, import, token rotation, delete), the
//! admin calls (partners, secrets, users), and operations (`/healthz`, `/metrics`, audit,
//! backup); plus gap-free version numbers under 32 concurrent HTTP clients.

mod api_common;

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use api_common::{Api, Server, Tenant, check_page, content, int, num, pct, s};
use serde_json::{Value, json};

/// The login rate limit is not what these tests are about; raise it out of the way.
const CONFIG: &str = "[api]\nlogin_attempts_per_minute = 1000\n";

const SEEDED: [(i64, &str); 8] = [
    (1, "BOOTLOADER"),
    (2, "SOFTDEVICE"),
    (3, "APPLICATION"),
    (4, "DEVICE_DESCRIPTION"),
    (5, "HUB"),
    (6, "WIFI"),
    (7, "WIFI_CERTIFICATES"),
    (8, "WAN_APN_LIST"),
];

/// A random-looking UUID that names nothing.
const NO_SUCH_UUID: &str = "0f0e0d0c-0b0a-4908-8706-050403020100";

fn setup() -> (Server, String, Tenant) {
    let server = Server::start_with_config(CONFIG);
    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, "Alpha");
    (server, admin, tenant)
}

fn page_of(api: &Api, path: &str, token: &str) -> (Value, Vec<Value>) {
    let page = api.get(path, token).ok_json(200);
    let items = check_page(&page);
    if path.contains("/pool") || path.contains("/firmwareImages") {
        items.iter().for_each(api_common::check_record);
    }
    (page, items)
}

fn vns(items: &[Value]) -> Vec<u64> {
    items.iter().map(|r| num(r, "versionNumber")).collect()
}

/// Whether a message names line `n` ("line 4", "line: 4", "Line #4", ...).
fn names_line(message: &str, n: usize) -> bool {
    let lower = message.to_lowercase();
    lower.match_indices("line").any(|(i, _)| {
        let rest = lower[i + 4..].trim_start_matches([' ', ':', '#', 's']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok() == Some(n)
    })
}

// ---------------------------------------------------------------------------------------
// Firmware types

#[test]
fn firmware_types() {
    let (server, admin, a) = setup();
    let api = &server.api;
    let platform = server.creds().client_id;
    let base = a.base();

    let list = api.get(&format!("{base}/types"), &a.token).ok_json(200);
    let list = list.as_array().expect("GET types is a JSON array").clone();
    for (n, name) in SEEDED {
        let t = list
            .iter()
            .find(|t| t["type"] == json!(n))
            .unwrap_or_else(|| panic!("seeded type {n} missing: {list:?}"));
        assert_eq!(s(t, "name"), name);
        assert_eq!(t["versionAttributeId"], json!(2000 + n), "{t}");
        assert_eq!(
            s(t, "partnerId"),
            platform,
            "platform types belong to the platform partner"
        );
        assert!(t["id"].is_string(), "type id must be a string: {t}");
        int(t, "createdTimestamp");
        int(t, "updatedTimestamp");
    }

    // GET one answers an array holding the one record
    let one = api.get(&format!("{base}/types/3"), &a.token).ok_json(200);
    let arr = one.as_array().expect("GET types/3 must be a JSON array");
    assert_eq!(arr.len(), 1, "{one}");
    assert_eq!(arr[0]["type"], json!(3));
    assert_eq!(arr[0]["name"], json!("APPLICATION"));

    // partner creates an MCU type
    let t = api
        .post_json(
            &format!("{base}/types"),
            &a.token,
            &json!({ "name": "MCU_MAIN", "description": "main MCU", "type": 101 }),
        )
        .ok_json(201);
    assert_eq!(t["type"], json!(101));
    assert_eq!(t["versionAttributeId"], json!(2101));
    assert_eq!(s(&t, "partnerId"), a.id);
    assert_eq!(s(&t, "name"), "MCU_MAIN");
    assert_eq!(s(&t, "description"), "main MCU");
    assert!(t["id"].is_string(), "{t}");
    let got = api.get(&format!("{base}/types/101"), &a.token).ok_json(200);
    assert_eq!(got, json!([t.clone()]), "GET one = the created record");
    let list = api.get(&format!("{base}/types"), &a.token).ok_json(200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["type"] == json!(101))
    );

    // rules
    let post = |body: Value| api.post_json(&format!("{base}/types"), &a.token, &body);
    post(json!({ "name": "X", "type": 50 })).expect_error(400, Some("type_reserved"));
    post(json!({ "name": "X", "type": 1 })).expect_error(400, Some("type_reserved"));
    post(json!({ "name": "X", "type": 250 })).expect_error(400, Some("type_out_of_range"));
    post(json!({ "name": "X", "type": 0 })).expect_error(400, Some("type_out_of_range"));
    post(json!({ "name": "X", "type": 201 })).expect_error(400, Some("type_out_of_range"));
    post(json!({ "name": "X", "type": -3 })).expect_error(400, Some("type_out_of_range"));
    post(json!({ "name": "dup", "type": 101 })).expect_error(409, None);
    post(json!({ "type": 102 })).expect_error(400, None);
    post(json!({ "name": "", "type": 102 })).expect_error(400, None);
    post(json!({ "name": "X" })).expect_error(400, None);

    // PUT renames, the number never changes
    api.put_json(
        &format!("{base}/types/101"),
        &a.token,
        &json!({ "name": "MCU_RENAMED", "description": "new", "type": 150 }),
    )
    .expect(204);
    let got = api.get(&format!("{base}/types/101"), &a.token).ok_json(200);
    assert_eq!(got[0]["name"], json!("MCU_RENAMED"));
    assert_eq!(got[0]["type"], json!(101));
    assert_eq!(got[0]["id"], t["id"]);
    api.get(&format!("{base}/types/150"), &a.token)
        .expect_error(404, None);

    // partner PUT on a platform type: 403; unknown type: 404
    api.put_json(
        &format!("{base}/types/3"),
        &a.token,
        &json!({ "name": "MINE" }),
    )
    .expect_error(403, None);
    api.put_json(
        &format!("{base}/types/150"),
        &a.token,
        &json!({ "name": "NOPE" }),
    )
    .expect_error(404, None);
    api.get(&format!("{base}/types/199"), &a.token)
        .expect_error(404, None);
    api.get(&format!("{base}/types/42"), &a.token)
        .expect_error(404, None);

    // admin POST of 1-100 on a partner path creates a platform type, visible to everyone
    let p = api
        .post_json(
            &format!("{base}/types"),
            &admin,
            &json!({ "name": "LTE_MODEM", "type": 50 }),
        )
        .ok_json(201);
    assert_eq!(
        s(&p, "partnerId"),
        platform,
        "admin-created 1-100 types are platform types"
    );
    assert_eq!(p["versionAttributeId"], json!(2050));
    let b = api.tenant(&admin, "Bravo");
    let blist = api
        .get(&format!("{}/types", b.base()), &b.token)
        .ok_json(200);
    let blist = blist.as_array().unwrap();
    assert!(
        blist.iter().any(|x| x["type"] == json!(50)),
        "platform type 50 not visible to B"
    );
    assert!(
        !blist.iter().any(|x| x["type"] == json!(101)),
        "A's MCU type visible to B: {blist:?}"
    );
    api.get(&format!("{}/types/101", b.base()), &b.token)
        .expect_error(404, None);
    // B may own its own 101
    let bt = api.fw_type(&b.id, &b.token, 101, "B_MCU");
    assert_eq!(s(&bt, "partnerId"), b.id);
    // admin may rename a platform type
    api.put_json(
        &format!("{base}/types/50"),
        &admin,
        &json!({ "name": "LTE" }),
    )
    .expect(204);
    let got = api.get(&format!("{base}/types/50"), &a.token).ok_json(200);
    assert_eq!(got[0]["name"], json!("LTE"));
}

// ---------------------------------------------------------------------------------------
// Pool

#[test]
fn pool_crud_exists_and_validation() {
    let (server, admin, a) = setup();
    let api = &server.api;
    let base = a.base();
    let tok = &a.token;
    api.fw_type(&a.id, tok, 101, "MCU");
    let dt = api.device_type(&a.id, tok, "Kettle");
    let pool = format!("{base}/pool");
    let rec_path = |vn: u64| format!("{base}/pool/types/101/versionNumbers/{vn}");

    let r1 = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "fw", "type": 101, "version": "1.0.0", "url": "", "description": "" }),
    );
    assert_eq!(num(&r1, "versionNumber"), 1);
    assert_eq!(r1["tags"], json!([]), "tags always present");
    assert!(
        r1.get("description").is_none(),
        "empty description is absent: {r1}"
    );
    assert_eq!(s(&r1, "url"), "");
    assert_eq!(s(&r1, "partnerId"), a.id);
    assert_eq!(r1["type"], json!(101));
    assert!(r1.get("versionAttributeId").is_none(), "{r1}");
    for v in r1.as_object().unwrap().values() {
        assert!(!v.is_null(), "no nulls in responses: {r1}");
    }

    // validation failures allocate nothing
    let long_name = "n".repeat(129);
    let long_version = "v".repeat(65);
    let too_many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let bad = [
        json!({ "type": 101, "version": "1", "url": "" }),
        json!({ "name": "", "type": 101, "version": "1", "url": "" }),
        json!({ "name": long_name, "type": 101, "version": "1", "url": "" }),
        json!({ "name": "x", "type": 101, "url": "" }),
        json!({ "name": "x", "type": 101, "version": long_version, "url": "" }),
        json!({ "name": "x", "type": 101, "version": "1", "url": "", "tags": ["a,b"] }),
        json!({ "name": "x", "type": 101, "version": "1", "url": "", "tags": too_many }),
        json!({ "name": "x", "type": 101, "version": "1", "url": "https://elsewhere.test/fw.bin" }),
        json!({ "name": "x", "type": 4, "version": "1", "url": "" }),
        json!({ "name": "x", "type": 150, "version": "1", "url": "" }),
        json!({ "name": "x", "type": 60, "version": "1", "url": "" }),
        json!({ "name": "x", "type": "101", "version": "1", "url": "" }),
        json!({ "name": "x", "type": 101, "version": "1", "url": "", "associations": { a.id.clone(): [NO_SUCH_UUID] } }),
    ];
    for body in &bad {
        let r = api.post_json(&pool, tok, body);
        assert_eq!(r.status, 400, "expected 400 for {body}: {}", r.text());
        r.expect_error(400, None);
    }
    api.post_json(
        &pool,
        tok,
        &json!({ "name": "x", "type": 101, "version": "1", "url": "", "associations": { NO_SUCH_UUID: [dt] } }),
    )
    .expect_error(403, None);

    let r2 = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "fw", "type": 101, "version": "1.0.2", "url": "", "tags": ["b", "a"] }),
    );
    assert_eq!(
        num(&r2, "versionNumber"),
        2,
        "failed requests must not allocate numbers"
    );
    assert_eq!(r2["tags"], json!(["b", "a"]));
    // boundaries: 128-byte name, 64-byte version, 32 tags of 64 bytes
    let tags32: Vec<String> = (0..32).map(|i| format!("{i:064}")).collect();
    let r3 = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "n".repeat(128), "type": 101, "version": "v".repeat(64), "url": "", "tags": tags32 }),
    );
    assert_eq!(num(&r3, "versionNumber"), 3);
    // duplicate (type, name, version)
    api.post_json(
        &pool,
        tok,
        &json!({ "name": "fw", "type": 101, "version": "1.0.0", "url": "" }),
    )
    .expect_error(409, Some("version_exists"));
    // associations with the caller's own device type are made in the same transaction
    let r4 = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "assoc", "type": 101, "version": "1", "url": "", "associations": { a.id.clone(): [dt.clone()] } }),
    );
    assert_eq!(num(&r4, "versionNumber"), 4);
    let assocs = api
        .get(&format!("{}/associations", rec_path(4)), tok)
        .ok_json(200);
    assert_eq!(assocs.as_array().map(Vec::len), Some(1), "{assocs}");
    assert_eq!(assocs[0]["deviceTypeId"], json!(dt));

    // GET one (extension) and 404s
    let got = api.get(&rec_path(1), tok).ok_json(200);
    assert_eq!(got, r1, "GET = the created record");
    api.get(&rec_path(99), tok).expect_error(404, None);
    api.get(&format!("{base}/pool/types/150/versionNumbers/1"), tok)
        .expect_error(404, None);

    // exists: percent-decoded segments, '+' literal, unknown type → false
    let odd = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "Main FW/ä 100%", "type": 101, "version": "2.0.0+build 5", "url": "" }),
    );
    let exists = |name: &str, version: &str, query: &str| -> bool {
        let v = api
            .get(
                &format!("{base}/pool/types/101/names/{name}/versions/{version}/exists{query}"),
                tok,
            )
            .ok_json(200);
        v["value"]
            .as_bool()
            .unwrap_or_else(|| panic!("exists must answer {{\"value\":bool}}: {v}"))
    };
    assert!(exists("fw", "1.0.0", ""));
    assert!(!exists("fw", "9.9.9", ""));
    assert!(
        exists(&pct("Main FW/ä 100%"), "2.0.0+build%205", ""),
        "'+' is literal"
    );
    assert!(exists(&pct("Main FW/ä 100%"), "2.0.0%2Bbuild%205", ""));
    assert!(
        !exists(&pct("Main FW/ä 100%"), "2.0.0%20build%205", ""),
        "'+' must not be read as a space"
    );
    let unknown_type = api
        .get(
            &format!("{base}/pool/types/199/names/fw/versions/1.0.0/exists"),
            tok,
        )
        .ok_json(200);
    assert_eq!(unknown_type, json!({ "value": false }));
    let id1 = s(&r1, "id");
    assert!(!exists(
        "fw",
        "1.0.0",
        &format!("?excludeFirmwareImageId={id1}")
    ));
    assert!(exists(
        "fw",
        "1.0.0",
        &format!("?excludeFirmwareImageId={}", s(&odd, "id"))
    ));

    // PUT: replace, clear, validate, collide
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": "", "tags": ["x"], "description": "d",
                 "id": "999", "type": 102, "versionNumber": "77", "partnerId": "someone",
                 "createdTimestamp": 1, "updatedTimestamp": 2 }),
    )
    .expect(204);
    let got = api.get(&rec_path(1), tok).ok_json(200);
    assert_eq!(s(&got, "version"), "1.0.1");
    assert_eq!(got["tags"], json!(["x"]));
    assert_eq!(s(&got, "description"), "d");
    assert_eq!(got["id"], r1["id"], "id in the body is ignored");
    assert_eq!(got["type"], json!(101));
    assert_eq!(num(&got, "versionNumber"), 1);
    assert_eq!(s(&got, "partnerId"), a.id);
    assert_eq!(got["createdTimestamp"], r1["createdTimestamp"]);
    assert!(int(&got, "updatedTimestamp") >= int(&r1, "updatedTimestamp"));
    // omitted description and tags are cleared
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": "" }),
    )
    .expect(204);
    let got = api.get(&rec_path(1), tok).ok_json(200);
    assert_eq!(got["tags"], json!([]));
    assert!(got.get("description").is_none(), "{got}");
    for body in [
        json!({ "name": "fw", "version": "1.0.1" }),
        json!({ "version": "1.0.1", "url": "" }),
        json!({ "name": "fw", "url": "" }),
        json!({ "name": "fw", "version": "1.0.1", "url": "", "tags": ["bad,tag"] }),
    ] {
        api.put_json(&rec_path(1), tok, &body)
            .expect_error(400, None);
    }
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.2", "url": "" }),
    )
    .expect_error(409, Some("version_exists"));
    api.put_json(
        &rec_path(99),
        tok,
        &json!({ "name": "fw", "version": "5", "url": "" }),
    )
    .expect_error(404, None);

    // a binary is attached once, forever
    let (_, url1) = api.publish(&a.id, tok, &api_common::bytes(5000, 11));
    let (_, url2) = api.publish(&a.id, tok, &api_common::bytes(5000, 12));
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": "https://elsewhere.test/x.bin" }),
    )
    .expect_error(400, None);
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": url1 }),
    )
    .expect(204);
    assert_eq!(s(&api.get(&rec_path(1), tok).ok_json(200), "url"), url1);
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": url1 }),
    )
    .expect(204);
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": url2 }),
    )
    .expect_error(409, Some("binary_attached"));
    api.put_json(
        &rec_path(1),
        tok,
        &json!({ "name": "fw", "version": "1.0.1", "url": "" }),
    )
    .expect_error(409, Some("binary_attached"));
    // created with a url straight away
    let r6 = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "direct", "type": 101, "version": "1", "url": url2 }),
    );
    assert_eq!(s(&r6, "url"), url2);
    assert_eq!(num(&r6, "versionNumber"), 6);

    // lists
    api.fw_type(&a.id, tok, 102, "MCU2");
    api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "other", "type": 102, "version": "1", "url": "" }),
    );
    let (page, items) = page_of(api, &pool, tok);
    assert_eq!(int(&page, "totalElements"), 7, "{page}");
    assert!(items.iter().all(|r| s(r, "partnerId") == a.id));
    let (page, items) = page_of(api, &format!("{base}/pool/types/101"), tok);
    assert_eq!(int(&page, "totalElements"), 6);
    assert!(items.iter().all(|r| r["type"] == json!(101)));

    // DELETE (extension): 204, then 404; numbers are never reused
    api.delete(&rec_path(3), tok).expect(204);
    api.get(&rec_path(3), tok).expect_error(404, None);
    api.delete(&rec_path(3), tok).expect_error(404, None);
    let r7 = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "late", "type": 101, "version": "1", "url": "" }),
    );
    assert_eq!(num(&r7, "versionNumber"), 7, "numbers are never reused");
    // pool DELETE while associated: 409
    api.delete(&rec_path(4), tok).expect_error(409, None);
    api.delete(
        &format!("{base}/deviceTypes/{dt}/firmwareImages/types/101/versionNumbers/4"),
        tok,
    )
    .expect(204);
    api.delete(&rec_path(4), tok).expect(204);
    let _ = admin;
}

#[test]
fn paging_sorting_and_tags() {
    let (server, _admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let base = a.base();
    api.fw_type(&a.id, tok, 102, "MCU");
    api.fw_type(&a.id, tok, 103, "EMPTY");
    let names = [
        "delta", "alpha", "kilo", "charlie", "juliet", "echo", "bravo", "lima", "foxtrot", "india",
        "golf", "hotel",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut tags = vec!["all".to_string()];
        if i % 2 == 0 {
            tags.push("even".into());
        }
        if i % 3 == 0 {
            tags.push("three".into());
        }
        if i == 11 {
            tags.push("Zulu".into());
        }
        let r = api.pool_create(
            &a.id,
            tok,
            &json!({ "name": name, "type": 102, "version": format!("1.0.{i}"),
                     "description": format!("d{:02}", (i * 7) % 12), "url": "", "tags": tags }),
        );
        assert_eq!(num(&r, "versionNumber"), i as u64 + 1);
    }
    let list = |q: &str| page_of(api, &format!("{base}/pool/types/102?{q}"), tok);

    // arithmetic
    let (p, items) = list("size=5");
    assert_eq!(
        (
            int(&p, "number"),
            int(&p, "size"),
            int(&p, "totalPages"),
            int(&p, "totalElements")
        ),
        (0, 5, 3, 12),
        "{p}"
    );
    assert_eq!(items.len(), 5);
    let (p, items) = list("size=5&page=2");
    assert_eq!(
        (int(&p, "number"), int(&p, "numberOfElements")),
        (2, 2),
        "{p}"
    );
    assert_eq!(items.len(), 2);
    let (p, items) = list("size=5&page=3");
    assert!(items.is_empty(), "page past the end is empty: {p}");
    assert_eq!(int(&p, "totalElements"), 12);
    let (_, items) = list("size=5&page=100");
    assert!(items.is_empty());
    let (p, items) = list("size=5000");
    assert_eq!(int(&p, "size"), 1000, "size is clamped to 1000: {p}");
    assert_eq!(items.len(), 12);
    assert_eq!(int(&p, "totalPages"), 1);
    for bad in [
        "size=0",
        "size=-1",
        "sort=bogus",
        "sort=bogus,desc",
        "sort=passwordHash,asc",
    ] {
        api.get(&format!("{base}/pool/types/102?{bad}"), tok)
            .expect_error(400, None);
    }

    // default: size 50, updatedTimestamp DESC
    let (p, items) = list("");
    assert_eq!(int(&p, "size"), 50);
    assert_eq!(int(&p, "number"), 0);
    assert_eq!(s(&p, "sort"), "updatedTimestamp: DESC");
    let ts: Vec<i64> = items.iter().map(|r| int(r, "updatedTimestamp")).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "default sort: {ts:?}");

    // versionNumber sorts numerically
    let (p, items) = list("sort=versionNumber,asc");
    assert_eq!(vns(&items), (1..=12).collect::<Vec<u64>>());
    assert_eq!(s(&p, "sort"), "versionNumber: ASC");
    let (p, items) = list("sort=versionNumber");
    assert_eq!(
        vns(&items),
        (1..=12).collect::<Vec<u64>>(),
        "no direction = ascending"
    );
    assert_eq!(s(&p, "sort"), "versionNumber: ASC");
    let (p, items) = list("sort=versionNumber,desc");
    assert_eq!(vns(&items), (1..=12).rev().collect::<Vec<u64>>());
    assert_eq!(s(&p, "sort"), "versionNumber: DESC");
    let (_, items) = list("sort=versionNumber,asc&size=5&page=1");
    assert_eq!(vns(&items), vec![6, 7, 8, 9, 10]);

    // name both ways
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    let (p, items) = list("sort=name,asc");
    let got: Vec<String> = items.iter().map(|r| s(r, "name")).collect();
    assert_eq!(got, sorted);
    assert_eq!(s(&p, "sort"), "name: ASC");
    let (p, items) = list("sort=name,desc");
    let got: Vec<String> = items.iter().map(|r| s(r, "name")).collect();
    sorted.reverse();
    assert_eq!(got, sorted);
    assert_eq!(s(&p, "sort"), "name: DESC");
    // description and createdTimestamp
    let (_, items) = list("sort=description,asc");
    let got: Vec<String> = items.iter().map(|r| s(r, "description")).collect();
    let mut want = got.clone();
    want.sort();
    assert_eq!(got, want);
    let (_, items) = list("sort=createdTimestamp,asc");
    let ts: Vec<i64> = items.iter().map(|r| int(r, "createdTimestamp")).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");

    // after an update, the updated record leads the default order
    std::thread::sleep(std::time::Duration::from_millis(5)); // timestamps are in ms
    api.put_json(
        &format!("{base}/pool/types/102/versionNumbers/1"),
        tok,
        &json!({ "name": "delta", "version": "1.0.0", "url": "", "tags": ["all", "even", "three"] }),
    )
    .expect(204);
    let (_, items) = list("");
    assert_eq!(
        num(&items[0], "versionNumber"),
        1,
        "updated record first under updatedTimestamp DESC"
    );

    // tags: all must match
    let count = |q: &str| int(&list(q).0, "totalElements");
    assert_eq!(count("tags=all"), 12);
    assert_eq!(count("tags=even"), 6);
    assert_eq!(count("tags=three"), 4);
    assert_eq!(count("tags=even,three"), 2);
    let (p, items) = list("tags=nope");
    assert!(items.is_empty());
    assert_eq!(
        (int(&p, "totalElements"), int(&p, "totalPages")),
        (0, 0),
        "{p}"
    );
    let (_, items) = list("tags=three&sort=versionNumber,asc");
    assert_eq!(vns(&items), vec![1, 4, 7, 10]);
    let (p, _) = page_of(api, &format!("{base}/pool?tags=even,three&size=1"), tok);
    assert_eq!(
        (int(&p, "totalElements"), int(&p, "totalPages")),
        (2, 2),
        "{p}"
    );
    // an empty type has totalPages 0
    let (p, items) = page_of(api, &format!("{base}/pool/types/103"), tok);
    assert!(items.is_empty());
    assert_eq!(
        (int(&p, "totalElements"), int(&p, "totalPages")),
        (0, 0),
        "{p}"
    );

    // distinct sorted tags
    let tags = api.get(&format!("{base}/tags"), tok).ok_json(200);
    assert_eq!(tags, json!(["Zulu", "all", "even", "three"]));
}

// ---------------------------------------------------------------------------------------
// Firmware images, associations, push, type 4

#[test]
fn firmware_images_associations_and_push() {
    let (server, _admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let base = a.base();
    api.fw_type(&a.id, tok, 101, "MCU");
    let dt1 = api.device_type(&a.id, tok, "Kettle");
    let dt2 = api.device_type(&a.id, tok, "Toaster");
    let (_, url) = api.publish(&a.id, tok, &api_common::bytes(10_000, 3));
    let rec = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "img", "type": 101, "version": "1.0", "url": url, "tags": ["stable"] }),
    );
    let vn = num(&rec, "versionNumber");
    let id = s(&rec, "id");
    let nobin = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "nobin", "type": 101, "version": "0.1", "url": "" }),
    );
    let images = |dt: &str| format!("{base}/deviceTypes/{dt}/firmwareImages");
    let assoc_path = format!("{base}/pool/types/101/versionNumbers/{vn}/associations");

    assert_eq!(api.get(&assoc_path, tok).ok_json(200), json!([]));

    let image = api.associate(&a.id, tok, &dt1, &rec);
    let mut expected = rec.clone();
    expected["deviceTypeId"] = json!(dt1);
    assert_eq!(image, expected, "image = pool record + deviceTypeId");
    api.post_json(&images(&dt1), tok, &rec)
        .expect_error(409, Some("already_associated"));
    let mut unknown = rec.clone();
    unknown["versionNumber"] = json!("999");
    api.post_json(&images(&dt2), tok, &unknown)
        .expect_error(400, Some("unknown_version_number"));
    // No coercion: versionNumber is a string holding an integer, never a JSON number.
    let mut as_number = rec.clone();
    as_number["versionNumber"] = json!(s(&rec, "versionNumber").parse::<u64>().unwrap());
    let refused = api
        .post_json(&images(&dt2), tok, &as_number)
        .expect_error(400, Some("invalid_field"));
    assert!(
        refused.to_string().contains("versionNumber"),
        "the error names the field: {refused}"
    );
    assert_eq!(
        api.get(&images(&dt2), tok).ok_json(200)["totalElements"],
        json!(0),
        "nothing associated"
    );
    let mut missing = rec.clone();
    missing.as_object_mut().unwrap().remove("versionNumber");
    api.post_json(&images(&dt2), tok, &missing)
        .expect_error(400, None);
    api.post_json(&images(NO_SUCH_UUID), tok, &rec)
        .expect_error(404, None);
    // other fields in the body are ignored, never written
    let mut edited = rec.clone();
    edited["name"] = json!("hacked");
    edited["url"] = json!("https://elsewhere.test/x");
    let image2 = api.associate(&a.id, tok, &dt2, &edited);
    assert_eq!(s(&image2, "name"), "img");
    assert_eq!(s(&image2, "url"), url);
    assert_eq!(
        s(
            &api.get(&format!("{base}/pool/types/101/versionNumbers/{vn}"), tok)
                .ok_json(200),
            "name"
        ),
        "img"
    );

    // lists and single GET
    let (p, items) = page_of(api, &images(&dt1), tok);
    assert_eq!(int(&p, "totalElements"), 1);
    assert_eq!(items[0]["deviceTypeId"], json!(dt1));
    assert_eq!(s(&p, "sort"), "updatedTimestamp: DESC");
    let (p, _) = page_of(api, &format!("{}/types/101", images(&dt1)), tok);
    assert_eq!(int(&p, "totalElements"), 1);
    let (p, _) = page_of(api, &format!("{}/types/3", images(&dt1)), tok);
    assert_eq!(int(&p, "totalElements"), 0);
    let (p, _) = page_of(api, &format!("{}?tags=stable", images(&dt1)), tok);
    assert_eq!(int(&p, "totalElements"), 1);
    let (p, _) = page_of(api, &format!("{}?tags=stable,nope", images(&dt1)), tok);
    assert_eq!(int(&p, "totalElements"), 0);
    let mut one = api
        .get(
            &format!("{}/types/101/versionNumbers/{vn}", images(&dt1)),
            tok,
        )
        .ok_json(200);
    // The one-record view adds the binary's filename and digests to the list's shape.
    let binary = one
        .as_object_mut()
        .and_then(|m| m.remove("binary"))
        .expect("the binary's details");
    assert_eq!(one, expected);
    assert!(
        expected["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(binary["sha256"].as_str().unwrap_or("?"))),
        "{binary}"
    );
    assert_eq!(binary["filename"], "img-1.0.bin", "the default filename");
    api.get(
        &format!("{}/types/101/versionNumbers/999", images(&dt1)),
        tok,
    )
    .expect_error(404, None);
    api.get(
        &format!(
            "{}/types/101/versionNumbers/{}",
            images(&dt1),
            num(&nobin, "versionNumber")
        ),
        tok,
    )
    .expect_error(404, None);
    api.get(&images(NO_SUCH_UUID), tok).expect_error(404, None);

    // associations list
    let assocs = api.get(&assoc_path, tok).ok_json(200);
    let assocs = assocs.as_array().expect("associations is an array").clone();
    assert_eq!(assocs.len(), 2, "{assocs:?}");
    let mut seen = BTreeSet::new();
    for x in &assocs {
        assert_eq!(
            s(x, "name"),
            a.name,
            "name = the device type's partner's name"
        );
        assert_eq!(s(x, "partnerId"), a.id);
        assert_eq!(s(x, "email"), a.email);
        assert_eq!(s(x, "firmwareImageId"), id);
        let dt = s(x, "deviceTypeId");
        let want = if dt == dt1 { "Kettle" } else { "Toaster" };
        assert_eq!(s(x, "deviceTypeName"), want);
        seen.insert(dt);
    }
    assert_eq!(seen, BTreeSet::from([dt1.clone(), dt2.clone()]));

    // an image is a live view of its pool record
    api.put_json(
        &format!("{base}/pool/types/101/versionNumbers/{vn}"),
        tok,
        &json!({ "name": "img", "version": "1.0", "url": url, "description": "changed", "tags": ["stable"] }),
    )
    .expect(204);
    let one = api
        .get(
            &format!("{}/types/101/versionNumbers/{vn}", images(&dt1)),
            tok,
        )
        .ok_json(200);
    assert_eq!(s(&one, "description"), "changed");

    // push
    api.register_device(&a.id, tok, "d1", &dt1);
    api.register_device(&a.id, tok, "d2", &dt2);
    let push = |dt: &str, image: &str, device: &str| {
        api.put_json(
            &format!("{}/{image}/push", images(dt)),
            tok,
            &json!({ "value": device }),
        )
    };
    let v = push(&dt1, &id, "d1").ok_json(202);
    assert_eq!(
        v,
        json!({ "deviceId": "d1", "firmwareImageId": id, "state": "pending" })
    );
    push(&dt1, &id, "nobody").expect_error(404, None);
    push(&dt1, &id, "d2").expect_error(409, Some("device_type_mismatch"));
    api.associate(&a.id, tok, &dt1, &nobin);
    push(&dt1, &s(&nobin, "id"), "d1").expect_error(409, Some("no_binary"));
    // 409 would_downgrade needs a device that has reported an installed version number over
    // the device protocol (OCP/1); the HTTP API alone cannot make one, so it is not tested here.

    // DELETE association: 204, then 404; the pool record stays
    let dt1_assoc = format!("{}/types/101/versionNumbers/{vn}", images(&dt1));
    api.delete(&dt1_assoc, tok).expect(204);
    api.delete(&dt1_assoc, tok).expect_error(404, None);
    api.get(&dt1_assoc, tok).expect_error(404, None);
    let pool_rec = format!("{base}/pool/types/101/versionNumbers/{vn}");
    api.get(&pool_rec, tok).expect(200);
    api.delete(&pool_rec, tok).expect_error(409, None);
    api.delete(
        &format!("{}/types/101/versionNumbers/{vn}", images(&dt2)),
        tok,
    )
    .expect(204);
    api.delete(&pool_rec, tok).expect(204);
    api.get(&pool_rec, tok).expect_error(404, None);

    // type 4: created under a device type, never in the pool
    let (_, url4) = api.publish(&a.id, tok, &api_common::bytes(2000, 4));
    let body4 = json!({ "name": "profile", "version": "7", "type": 4, "url": url4,
                        "deviceDescriptionId": "dd-1", "deviceProfileId": "dp-1", "versionNumber": "77" });
    let d4 = api.associate(&a.id, tok, &dt1, &body4);
    assert_eq!(d4["type"], json!(4));
    assert_eq!(
        num(&d4, "versionNumber"),
        1,
        "type 4 uses the platform counter, from 1"
    );
    assert_eq!(s(&d4, "deviceTypeId"), dt1);
    assert_eq!(s(&d4, "deviceDescriptionId"), "dd-1");
    assert_eq!(s(&d4, "deviceProfileId"), "dp-1");
    assert_eq!(s(&d4, "url"), url4);
    api.post_json(&images(&dt1), tok, &body4)
        .expect_error(409, Some("version_exists"));
    let d4b = api.associate(&a.id, tok, &dt2, &body4);
    assert_eq!(num(&d4b, "versionNumber"), 2);
    let mut no_url = body4.clone();
    no_url["url"] = json!("");
    no_url["version"] = json!("8");
    api.post_json(&images(&dt1), tok, &no_url)
        .expect_error(400, None);
    for path in [
        format!("{base}/pool/types/4/versionNumbers/1"),
        format!("{base}/pool/types/4/versionNumbers/1/associations"),
    ] {
        api.get(&path, tok).expect_error(404, None);
    }
    api.put_json(
        &format!("{base}/pool/types/4/versionNumbers/1"),
        tok,
        &json!({ "name": "profile", "version": "7", "url": url4 }),
    )
    .expect_error(404, None);
    api.delete(&format!("{base}/pool/types/4/versionNumbers/1"), tok)
        .expect_error(404, None);
    let ex = api
        .get(
            &format!("{base}/pool/types/4/names/profile/versions/7/exists"),
            tok,
        )
        .ok_json(200);
    assert_eq!(ex, json!({ "value": false }), "exists does not see type 4");
    let (_, all) = page_of(api, &format!("{base}/pool"), tok);
    assert!(
        all.iter().all(|r| r["type"] != json!(4)),
        "type 4 listed in the pool: {all:?}"
    );
    let t4 = api.get(&format!("{base}/pool/types/4"), tok);
    if t4.status == 200 {
        assert!(
            content(&t4.json()).is_empty(),
            "type 4 listed in the pool: {}",
            t4.text()
        );
    } else {
        t4.expect_error(404, None);
    }
    let (p, _) = page_of(api, &format!("{}/types/4", images(&dt1)), tok);
    assert_eq!(int(&p, "totalElements"), 1);
    let mut got = api
        .get(&format!("{}/types/4/versionNumbers/1", images(&dt1)), tok)
        .ok_json(200);
    let binary = got.as_object_mut().and_then(|m| m.remove("binary"));
    assert_eq!(got, d4);
    assert_eq!(
        binary.map(|b| b["filename"].clone()),
        Some(Value::from("profile-7.bin"))
    );
    api.delete(&format!("{}/types/4/versionNumbers/1", images(&dt1)), tok)
        .expect(204);
}

// ---------------------------------------------------------------------------------------
// Binary download (extension): Range, ETag, Repr-Digest, HEAD, If-None-Match

#[test]
fn binary_download_semantics() {
    let (server, admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let data = api_common::bytes(10_000, 21);
    let (sha, url) = api.publish(&a.id, tok, &data);
    let get = |range: Option<&str>, token: &str| {
        let mut rb = api.req_url(reqwest::Method::GET, &url, token);
        if let Some(r) = range {
            rb = rb.header("Range", r);
        }
        api.send(rb)
    };
    let etag = format!("\"{}\"", blake3::hash(&data).to_hex());
    let digest = format!(
        "sha-256=:{}:",
        api_common::base64(&api_common::sha256(&data))
    );

    let whole = get(None, tok);
    whole.expect(200);
    assert!(whole.body == data);
    assert_eq!(whole.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(
        whole.header("repr-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(whole.header("content-length").as_deref(), Some("10000"));

    let cases: [(&str, usize, usize); 5] = [
        ("bytes=0-99", 0, 100),
        ("bytes=9990-", 9990, 10_000),
        ("bytes=-10", 9990, 10_000),
        ("bytes=9999-20000", 9999, 10_000),
        ("bytes=100-100", 100, 101),
    ];
    for (range, from, to) in cases {
        let r = get(Some(range), tok);
        assert_eq!(r.status, 206, "{range}: {}", r.status);
        assert!(r.body == data[from..to], "{range}: wrong bytes");
        assert_eq!(
            r.header("content-range").as_deref(),
            Some(format!("bytes {from}-{}/10000", to - 1).as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("content-length").as_deref(),
            Some((to - from).to_string().as_str()),
            "{range}"
        );
        assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()), "{range}");
    }
    // unsatisfiable: 416 with the error body and Content-Range: bytes */size
    let r = get(Some("bytes=10000-"), tok);
    r.expect_error(416, None);
    assert_eq!(r.header("content-range").as_deref(), Some("bytes */10000"));
    // a multi-range request gets the whole file
    let r = get(Some("bytes=0-9,20-29"), tok);
    r.expect(200);
    assert!(r.body == data);

    // HEAD: headers, no body
    let r = api.send(api.req_url(reqwest::Method::HEAD, &url, tok));
    r.expect(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length").as_deref(), Some("10000"));
    assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
    // If-None-Match
    let r = api.send(
        api.req_url(reqwest::Method::GET, &url, tok)
            .header("If-None-Match", &etag),
    );
    r.expect(304);
    assert!(r.body.is_empty());
    let r = api.send(
        api.req_url(reqwest::Method::GET, &url, tok)
            .header("If-None-Match", "\"something-else\""),
    );
    r.expect(200);
    // the appliance admin may download any partner's binary
    let r = get(None, &admin);
    r.expect(200);
    assert!(r.body == data);
    // unknown and malformed shas
    let base = a.base();
    api.get(&format!("{base}/binaries/{}", "ab".repeat(32)), tok)
        .expect_error(404, None);
    api.get(&format!("{base}/binaries/xyz"), tok)
        .expect_error_in(&[400, 404]);
    // moving again gives the same URL; a malformed sha is 400
    assert_eq!(api.move_to_repo(&a.id, tok, &sha), url);
    api.post_json(
        &format!("{base}/binaries/moveToRepository"),
        tok,
        &json!({ "value": "ABC" }),
    )
    .expect_error(400, None);
    api.post_json(
        &format!("{base}/binaries/moveToRepository"),
        tok,
        &json!({}),
    )
    .expect_error(400, None);
}

// ---------------------------------------------------------------------------------------
// Device types and devices

#[test]
fn device_types_crud() {
    let (server, _admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let dts = format!("{}/deviceTypes", a.base());
    let k = api
        .post_json(
            &dts,
            tok,
            &json!({ "name": "Kettle", "description": "smart kettle" }),
        )
        .ok_json(201);
    api_common::assert_uuid(&s(&k, "id"));
    assert_eq!(s(&k, "name"), "Kettle");
    assert_eq!(s(&k, "description"), "smart kettle");
    assert_eq!(s(&k, "partnerId"), a.id);
    int(&k, "createdTimestamp");
    int(&k, "updatedTimestamp");
    let bare = api
        .post_json(&dts, tok, &json!({ "name": "Bare" }))
        .ok_json(201);
    assert!(bare.get("description").is_none(), "{bare}");
    api.post_json(&dts, tok, &json!({})).expect_error(400, None);
    api.post_json(&dts, tok, &json!({ "name": "" }))
        .expect_error(400, None);

    let list = api.get(&dts, tok).ok_json(200);
    let list = list.as_array().expect("device types list is an array");
    assert_eq!(list.len(), 2);
    let kid = s(&k, "id");
    assert_eq!(api.get(&format!("{dts}/{kid}"), tok).ok_json(200), k);
    api.put_json(
        &format!("{dts}/{kid}"),
        tok,
        &json!({ "name": "Kettle 2", "description": "v2" }),
    )
    .expect(204);
    let got = api.get(&format!("{dts}/{kid}"), tok).ok_json(200);
    assert_eq!(s(&got, "name"), "Kettle 2");
    assert_eq!(s(&got, "description"), "v2");
    assert_eq!(s(&got, "id"), kid);
    api.put_json(
        &format!("{dts}/{kid}"),
        tok,
        &json!({ "description": "no name" }),
    )
    .expect_error(400, None);
    api.get(&format!("{dts}/{NO_SUCH_UUID}"), tok)
        .expect_error(404, None);
    api.put_json(
        &format!("{dts}/{NO_SUCH_UUID}"),
        tok,
        &json!({ "name": "x" }),
    )
    .expect_error(404, None);
    api.delete(&format!("{dts}/{NO_SUCH_UUID}"), tok)
        .expect_error(404, None);

    // 409 while it has devices
    api.register_device(&a.id, tok, "kettle-1", &kid);
    api.delete(&format!("{dts}/{kid}"), tok)
        .expect_error(409, None);
    api.delete(&format!("{}/devices/kettle-1", a.base()), tok)
        .expect(204);
    api.delete(&format!("{dts}/{kid}"), tok).expect(204);
    api.get(&format!("{dts}/{kid}"), tok)
        .expect_error(404, None);

    // 409 while it has associations
    api.fw_type(&a.id, tok, 101, "MCU");
    let rec = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "f", "type": 101, "version": "1", "url": "" }),
    );
    let bid = s(&bare, "id");
    api.associate(&a.id, tok, &bid, &rec);
    api.delete(&format!("{dts}/{bid}"), tok)
        .expect_error(409, None);
    api.delete(
        &format!(
            "{dts}/{bid}/firmwareImages/types/101/versionNumbers/{}",
            num(&rec, "versionNumber")
        ),
        tok,
    )
    .expect(204);
    api.delete(&format!("{dts}/{bid}"), tok).expect(204);
    assert_eq!(api.get(&dts, tok).ok_json(200), json!([]));
}

#[test]
fn devices_register_get_list_rotate_delete() {
    let (server, admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let devices = format!("{}/devices", a.base());
    let dt1 = api.device_type(&a.id, tok, "Kettle");
    let dt2 = api.device_type(&a.id, tok, "Toaster");
    let t1 = api.register_device(&a.id, tok, "dev-1", &dt1);
    api.register_device(&a.id, tok, "dev-2", &dt1);
    api.register_device(&a.id, tok, "dev-3", &dt2);
    let long_ok = format!("A.b_c-{}", "9".repeat(58));
    assert_eq!(long_ok.len(), 64);
    api.register_device(&a.id, tok, &long_ok, &dt2);

    api.post_json(
        &devices,
        tok,
        &json!({ "deviceId": "dev-1", "deviceTypeId": dt2 }),
    )
    .expect_error(409, None);
    // device ids are unique appliance-wide
    let b = api.tenant(&admin, "Bravo");
    let bdt = api.device_type(&b.id, &b.token, "B kettle");
    api.post_json(
        &format!("{}/devices", b.base()),
        &b.token,
        &json!({ "deviceId": "dev-1", "deviceTypeId": bdt }),
    )
    .expect_error(409, None);
    for bad in ["bad id", "", &"a".repeat(65), "ümlaut", "a/b", "x:y"] {
        let r = api.post_json(
            &devices,
            tok,
            &json!({ "deviceId": bad, "deviceTypeId": dt1 }),
        );
        assert_eq!(r.status, 400, "device id {bad:?}: {}", r.text());
        r.expect_error(400, None);
    }
    api.post_json(&devices, tok, &json!({ "deviceId": "dev-x" }))
        .expect_error(400, None);
    api.post_json(
        &devices,
        tok,
        &json!({ "deviceId": "dev-x", "deviceTypeId": NO_SUCH_UUID }),
    )
    .expect_error_in(&[400, 404]);
    // another partner's device type is not ours to use
    api.post_json(
        &devices,
        tok,
        &json!({ "deviceId": "dev-x", "deviceTypeId": bdt }),
    )
    .expect_error_in(&[400, 403, 404]);

    let d1 = api.get(&format!("{devices}/dev-1"), tok);
    let v = d1.ok_json(200);
    assert_eq!(s(&v, "deviceId"), "dev-1");
    assert_eq!(s(&v, "deviceTypeId"), dt1);
    assert!(v.get("token").is_none(), "GET must never show a token: {v}");
    assert!(!d1.text().contains(&t1), "GET leaks the token");
    api.get(&format!("{devices}/nobody"), tok)
        .expect_error(404, None);

    let (p, items) = page_of(api, &devices, tok);
    assert_eq!(int(&p, "totalElements"), 4, "{p}");
    for d in &items {
        assert!(
            d.get("token").is_none(),
            "list must never show a token: {d}"
        );
    }
    let (p, items) = page_of(api, &format!("{devices}?deviceTypeId={dt2}"), tok);
    assert_eq!(int(&p, "totalElements"), 2);
    assert!(items.iter().all(|d| s(d, "deviceTypeId") == dt2));
    let (p, _) = page_of(api, &format!("{devices}?type=101&installedVersion=1"), tok);
    assert_eq!(
        int(&p, "totalElements"),
        0,
        "no device has reported anything yet"
    );
    let (p, items) = page_of(api, &format!("{devices}?size=3"), tok);
    assert_eq!((int(&p, "totalPages"), items.len()), (2, 3), "{p}");

    // token rotation
    let v = api
        .post_json(&format!("{devices}/dev-1/token"), tok, &json!({}))
        .ok_json(200);
    let t1b = s(&v, "token");
    assert!(
        !t1b.is_empty() && t1b != t1,
        "rotation must give a new token: {v}"
    );
    assert_eq!(
        v.as_object().unwrap().len(),
        1,
        "rotation answers {{\"token\"}}: {v}"
    );
    api.post_json(&format!("{devices}/nobody/token"), tok, &json!({}))
        .expect_error(404, None);

    // DELETE
    api.delete(&format!("{devices}/dev-2"), tok).expect(204);
    api.get(&format!("{devices}/dev-2"), tok)
        .expect_error(404, None);
    api.delete(&format!("{devices}/dev-2"), tok)
        .expect_error(404, None);
    let (p, _) = page_of(api, &devices, tok);
    assert_eq!(int(&p, "totalElements"), 3);
}

#[test]
fn devices_import_csv_bulk() {
    let (server, _admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let devices = format!("{}/devices", a.base());
    let dt = api.device_type(&a.id, tok, "Fleet");
    const N: usize = 6000;
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for i in 0..N {
        csv.push_str(&format!("imp-{i:05},{dt}\n"));
    }
    let started = Instant::now();
    let r = api.post_bytes(
        &format!("{devices}/import"),
        tok,
        "text/csv",
        csv.into_bytes(),
    );
    let elapsed = started.elapsed();
    r.expect(200);
    let text = r.text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.first().copied(),
        Some("deviceId,token"),
        "header line"
    );
    assert_eq!(lines.len(), N + 1, "one line per device plus the header");
    let mut ids = HashSet::new();
    let mut tokens = HashSet::new();
    for line in &lines[1..] {
        let (id, token) = line
            .split_once(',')
            .unwrap_or_else(|| panic!("bad import answer line {line:?}"));
        assert!(id.starts_with("imp-"), "{line:?}");
        assert!(token.len() >= 22, "token too short: {line:?}");
        ids.insert(id.to_string());
        tokens.insert(token.to_string());
    }
    assert_eq!(ids.len(), N, "every device once");
    assert_eq!(tokens.len(), N, "tokens are distinct");
    let rate = N as f64 / elapsed.as_secs_f64();
    println!("device import: {N} devices in {elapsed:?} = {rate:.0} devices/s");
    assert!(
        elapsed.as_secs() < 60,
        "importing {N} devices took {elapsed:?} (contract: thousands per second)"
    );
    let (p, _) = page_of(api, &format!("{devices}?deviceTypeId={dt}&size=1"), tok);
    assert_eq!(int(&p, "totalElements"), N as i64);
    let one = api.get(&format!("{devices}/imp-00042"), tok).ok_json(200);
    assert_eq!(s(&one, "deviceTypeId"), dt);
    assert!(one.get("token").is_none());

    // NDJSON, explicit type and sniffed from the first character
    let nd = format!(
        "{{\"deviceId\":\"nd-1\",\"deviceTypeId\":\"{dt}\"}}\n{{\"deviceId\":\"nd-2\",\"deviceTypeId\":\"{dt}\"}}\n"
    );
    let r = api.post_bytes(
        &format!("{devices}/import"),
        tok,
        "application/x-ndjson",
        nd.into_bytes(),
    );
    let text = r.expect(200).text();
    assert_eq!(text.lines().next(), Some("deviceId,token"));
    assert_eq!(
        text.lines().filter(|l| !l.trim().is_empty()).count(),
        3,
        "{text}"
    );
    let nd = format!("\n  {{\"deviceId\":\"nd-3\",\"deviceTypeId\":\"{dt}\"}}\n");
    let r = api.send(
        api.req(reqwest::Method::POST, &format!("{devices}/import"), tok)
            .body(nd.into_bytes()),
    );
    assert!(
        r.expect(200).text().contains("nd-3,"),
        "sniffed NDJSON: {}",
        r.text()
    );
    // CSV without a header line
    let r = api.post_bytes(
        &format!("{devices}/import"),
        tok,
        "text/csv",
        format!("csv-1,{dt}\ncsv-2,{dt}\n").into_bytes(),
    );
    let text = r.expect(200).text();
    assert!(text.contains("csv-1,") && text.contains("csv-2,"), "{text}");
    api.get(&format!("{devices}/nd-3"), tok).expect(200);
    api.get(&format!("{devices}/csv-2"), tok).expect(200);
}

#[test]
fn devices_import_is_all_or_nothing() {
    let (server, _admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    let devices = format!("{}/devices", a.base());
    let dt = api.device_type(&a.id, tok, "Fleet");
    api.register_device(&a.id, tok, "exists-1", &dt);
    let import = |ctype: &str, body: String| {
        api.post_bytes(&format!("{devices}/import"), tok, ctype, body.into_bytes())
    };

    // a repeat inside the file, on line 4
    let csv = format!("n-1,{dt}\nn-2,{dt}\nn-3,{dt}\nn-2,{dt}\nn-5,{dt}\n");
    let e = import("text/csv", csv).expect_error(409, None);
    assert!(
        names_line(&s(&e, "message"), 4),
        "409 must name line 4: {e}"
    );
    // an id that already exists, on line 3
    let csv = format!("n-1,{dt}\nn-2,{dt}\nexists-1,{dt}\n");
    let e = import("text/csv", csv).expect_error(409, None);
    assert!(
        names_line(&s(&e, "message"), 3),
        "409 must name line 3: {e}"
    );
    // a bad id on line 2
    let csv = format!("n-1,{dt}\nbad id!,{dt}\nn-3,{dt}\n");
    let e = import("text/csv", csv).expect_error(400, None);
    assert!(
        names_line(&s(&e, "message"), 2),
        "400 must name line 2: {e}"
    );
    // an unknown device type on line 2
    let csv = format!("n-1,{dt}\nn-2,{NO_SUCH_UUID}\n");
    let e = import("text/csv", csv).expect_error(400, None);
    assert!(
        names_line(&s(&e, "message"), 2),
        "400 must name line 2: {e}"
    );
    // a malformed line
    let csv = format!("n-1,{dt}\nn-2\n");
    let e = import("text/csv", csv).expect_error(400, None);
    assert!(
        names_line(&s(&e, "message"), 2),
        "400 must name line 2: {e}"
    );
    // NDJSON repeat on line 2
    let nd = format!(
        "{{\"deviceId\":\"n-1\",\"deviceTypeId\":\"{dt}\"}}\n{{\"deviceId\":\"n-1\",\"deviceTypeId\":\"{dt}\"}}\n"
    );
    let e = import("application/x-ndjson", nd).expect_error(409, None);
    assert!(
        names_line(&s(&e, "message"), 2),
        "409 must name line 2: {e}"
    );

    // nothing of any of these was imported
    for id in ["n-1", "n-2", "n-3", "n-5"] {
        api.get(&format!("{devices}/{id}"), tok)
            .expect_error(404, None);
    }
    let (p, _) = page_of(api, &devices, tok);
    assert_eq!(int(&p, "totalElements"), 1);
}

// ---------------------------------------------------------------------------------------
// Admin

#[test]
fn admin_partners_users_and_secrets() {
    let server = Server::start_with_config(CONFIG);
    let api = &server.api;
    let creds = server.creds();
    let admin = server.admin_token();

    let (beta, beta_secret, v) = api.create_partner(&admin, "Beta", Some("ops@beta.test"));
    assert_eq!(s(&v, "email"), "ops@beta.test");
    assert_eq!(s(&v, "name"), "Beta");
    let (gamma, gamma_secret, v) = api.create_partner(&admin, "Gamma", None);
    assert!(v.get("email").is_none(), "absent email omitted: {v}");
    // associations name the device type's partner; email omitted when the partner has none
    let gamma_ci = api.client_token(&gamma, &gamma_secret);
    api.fw_type(&gamma, &gamma_ci, 101, "G_MCU");
    let gdt = api.device_type(&gamma, &gamma_ci, "Gamma gadget");
    // an appliance admin may create records with associations on any partner's path
    let rec = api.pool_create(
        &gamma,
        &admin,
        &json!({ "name": "g", "type": 101, "version": "1", "url": "", "associations": { gamma.clone(): [gdt.clone()] } }),
    );
    let assocs = api
        .get(
            &format!(
                "/v1/ota/partners/{gamma}/pool/types/101/versionNumbers/{}/associations",
                num(&rec, "versionNumber")
            ),
            &gamma_ci,
        )
        .ok_json(200);
    assert_eq!(assocs.as_array().map(Vec::len), Some(1), "{assocs}");
    assert_eq!(assocs[0]["name"], json!("Gamma"));
    assert_eq!(assocs[0]["deviceTypeName"], json!("Gamma gadget"));
    assert!(
        assocs[0].get("email").is_none(),
        "email omitted when unset: {assocs}"
    );
    for bad in [
        json!({}),
        json!({ "name": "" }),
        json!({ "name": "X", "email": "nope" }),
    ] {
        api.post_json("/v1/admin/partners", &admin, &bad)
            .expect_error(400, None);
    }

    let r = api.get("/v1/admin/partners", &admin);
    let list = r.ok_json(200);
    let list = list.as_array().expect("partners list is an array");
    let b = list
        .iter()
        .find(|p| p["partnerId"] == json!(beta))
        .expect("Beta listed");
    assert_eq!(s(b, "name"), "Beta");
    assert_eq!(s(b, "email"), "ops@beta.test");
    assert!(list.iter().any(|p| p["partnerId"] == json!(gamma)));
    for p in list {
        assert!(p.get("clientSecret").is_none(), "secret listed: {p}");
    }
    let text = r.text();
    for secret in [&beta_secret, &gamma_secret, &creds.client_secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a client secret appears in the list"
        );
    }

    // secret rotation
    api.client_token(&beta, &beta_secret);
    let v = api
        .post_json(
            &format!("/v1/admin/partners/{beta}/secret"),
            &admin,
            &json!({}),
        )
        .ok_json(200);
    let new_secret = s(&v, "clientSecret");
    assert_ne!(new_secret, beta_secret);
    api.token_request(&beta, &beta_secret, &[("grant_type", "client_credentials")])
        .expect_error(401, Some("invalid_client"));
    api.client_token(&beta, &new_secret);
    api.post_json(
        &format!("/v1/admin/partners/{NO_SUCH_UUID}/secret"),
        &admin,
        &json!({}),
    )
    .expect_error(404, None);

    // users
    let u = api.create_user(&admin, &beta, "beta-dev", "beta-dev-password", "partner");
    assert_eq!(
        u,
        json!({ "username": "beta-dev", "role": "partner", "partnerId": beta })
    );
    let users = |p: &str| format!("/v1/admin/partners/{p}/users");
    api.post_json(
        &users(&gamma),
        &admin,
        &json!({ "username": "beta-dev", "password": "another-password", "role": "partner" }),
    )
    .expect_error(409, None);
    api.post_json(
        &users(&beta),
        &admin,
        &json!({ "username": "beta-admin", "password": "another-password", "role": "admin" }),
    )
    .expect_error(400, None);
    for bad in [
        json!({ "username": "x1", "password": "another-password", "role": "root" }),
        json!({ "username": "x2", "password": "short", "role": "partner" }),
        json!({ "username": "bad user", "password": "another-password", "role": "partner" }),
        json!({ "password": "another-password", "role": "partner" }),
    ] {
        api.post_json(&users(&beta), &admin, &bad)
            .expect_error(400, None);
    }
    api.post_json(
        &users(NO_SUCH_UUID),
        &admin,
        &json!({ "username": "x3", "password": "another-password", "role": "partner" }),
    )
    .expect_error(404, None);
    // a second appliance admin on the platform partner
    let u = api.create_user(
        &admin,
        &creds.client_id,
        "ops-admin",
        "ops-admin-password",
        "admin",
    );
    assert_eq!(s(&u, "role"), "admin");
    let ops = api.login(
        &creds.client_id,
        &creds.client_secret,
        "ops-admin",
        "ops-admin-password",
    );
    api.get("/v1/admin/partners", &ops).expect(200);
    // a user of Beta presenting Gamma's client credentials
    api.login(&beta, &new_secret, "beta-dev", "beta-dev-password");
    api.token_request(
        &gamma,
        &gamma_secret,
        &[
            ("grant_type", "password"),
            ("username", "beta-dev"),
            ("password", "beta-dev-password"),
        ],
    )
    .expect_error(400, Some("invalid_grant"));

    // user removal
    api.delete(&format!("{}/beta-dev", users(&beta)), &admin)
        .expect(204);
    api.token_request(
        &beta,
        &new_secret,
        &[
            ("grant_type", "password"),
            ("username", "beta-dev"),
            ("password", "beta-dev-password"),
        ],
    )
    .expect_error(400, Some("invalid_grant"));
    api.delete(&format!("{}/beta-dev", users(&beta)), &admin)
        .expect_error(404, None);
}

// ---------------------------------------------------------------------------------------
// Operations

#[test]
fn ops_healthz_metrics_audit_backup() {
    let (server, admin, a) = setup();
    let api = &server.api;
    let tok = &a.token;
    assert_eq!(
        api.get("/healthz", "").ok_json(200),
        json!({ "status": "ok" })
    );

    // some mutations for the audit log
    let dt = api.device_type(&a.id, tok, "Audited");
    api.fw_type(&a.id, tok, 101, "MCU");
    api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "audited-fw", "type": 101, "version": "1", "url": "" }),
    );
    api.register_device(&a.id, tok, "audited-1", &dt);

    // metrics: admin only
    api.get("/metrics", "").expect_error(401, None);
    api.get("/metrics", tok).expect_error(403, None);
    let m = api.get("/metrics", &admin);
    m.expect(200);
    assert!(
        m.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "Prometheus text format: {:?}",
        m.header("content-type")
    );
    assert!(
        m.text().contains("otad_http_requests_total"),
        "{}",
        m.text()
    );

    // audit: paged, has our mutations
    let (p, items) = page_of(api, "/v1/admin/audit?size=1000", &admin);
    let total = int(&p, "totalElements");
    assert!(
        total >= 6,
        "expected at least 6 audited mutations, got {total}: {p}"
    );
    let text = serde_json::to_string(&items).unwrap();
    for needle in [a.id.as_str(), dt.as_str(), "audited-1", &a.user] {
        assert!(text.contains(needle), "audit log lacks {needle:?}: {text}");
    }
    let (p, items) = page_of(api, "/v1/admin/audit?size=2", &admin);
    assert_eq!(items.len(), 2);
    assert_eq!(int(&p, "totalPages"), (total + 1) / 2, "{p}");
    api.get("/v1/admin/audit", tok).expect_error(403, None);

    // backup: a consistent redb file that the offline verifier accepts
    api.get("/v1/admin/backup", tok).expect_error(403, None);
    let r = api.get("/v1/admin/backup", &admin);
    r.expect(200);
    assert!(r.body.len() > 4096, "backup is only {} bytes", r.body.len());
    assert!(r.body.starts_with(b"redb"), "backup is not a redb file");
    let restore = server.root().join("restore");
    std::fs::create_dir_all(&restore).unwrap();
    std::fs::write(restore.join("otad.redb"), &r.body).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(["db", "verify", "--data-dir"])
        .arg(&restore)
        .output()
        .expect("run otad db verify");
    assert!(
        out.status.success(),
        "otad db verify rejects the backup: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency

#[test]
fn concurrent_pool_creation_is_gap_free() {
    let (server, _admin, a) = setup();
    let api = &server.api;
    api.fw_type(&a.id, &a.token, 103, "MCU");
    let pool = format!("{}/pool", a.base());
    let mut numbers: Vec<u64> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..40 {
            let api = api.clone();
            let pool = pool.clone();
            let token = a.token.clone();
            let pid = a.id.clone();
            handles.push(scope.spawn(move || {
                if i % 5 == 4 {
                    // interleaved failures must not consume numbers
                    api.post_json(
                        &pool,
                        &token,
                        &json!({ "name": format!("bad{i}"), "type": 103, "version": "1", "url": "", "tags": ["a,b"] }),
                    )
                    .expect_error(400, None);
                    None
                } else {
                    let r = api.pool_create(
                        &pid,
                        &token,
                        &json!({ "name": format!("c{i}"), "type": 103, "version": "1", "url": "" }),
                    );
                    Some(num(&r, "versionNumber"))
                }
            }));
        }
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("client thread"))
            .collect()
    });
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=32).collect::<Vec<u64>>(),
        "numbers distinct and contiguous"
    );
    let (p, _) = page_of(api, &format!("{}/pool/types/103", a.base()), &a.token);
    assert_eq!(int(&p, "totalElements"), 32);
    let next = api.pool_create(
        &a.id,
        &a.token,
        &json!({ "name": "after", "type": 103, "version": "1", "url": "" }),
    );
    assert_eq!(num(&next, "versionNumber"), 33);
}

/// Request log lines are gathered and written in batches (src/logsink.rs); a graceful stop
/// must still leave exactly one line per request in the log.
#[test]
fn every_request_has_its_log_line_after_a_graceful_stop() {
    let mut server = Server::start();
    for _ in 0..300 {
        server.api.get("/healthz", "").expect(200);
    }
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "{}", server.stderr_tail());
    let log = server.stderr_log();
    let lines = log
        .lines()
        .filter(|l| l.contains("route=\"/healthz\"") && l.contains("status=200"))
        .count();
    // 300, and the harness's own start-up check.
    assert_eq!(lines, 301, "request lines in the log:\n{log}");
    assert!(
        log.lines().last().is_some_and(|l| l.contains("stopped")),
        "{log}"
    );
}
