//! Device tags and attributes over the real API: PUT and GET of a device, the list filters,
//! the CSV and NDJSON import with labels, the bounds (design defaults and a tightened
//! configuration) with their 400s leaving nothing changed, and the audit entries.

mod api_common;

use api_common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<String> {
    check_page(page).iter().map(|d| s(d, "deviceId")).collect()
}

#[test]
fn put_get_filter_and_bounds() {
    let srv = Server::start();
    let api = &srv.api;
    let admin = srv.admin_token();
    let t = api.tenant(&admin, "Labels");
    let tok = &t.token;
    let dt = api.device_type(&t.id, tok, "sensor");
    for id in ["d1", "d2", "d3"] {
        api.register_device(&t.id, tok, id, &dt);
    }
    let devices = format!("{}/devices", t.base());

    // A fresh device has none; both halves render as empty collections.
    let v = api.get(&format!("{devices}/d1"), tok).ok_json(200);
    assert_eq!(v["tags"], json!([]), "{v}");
    assert_eq!(v["attributes"], json!({}), "{v}");

    let v = api
        .put_json(
            &format!("{devices}/d1"),
            tok,
            &json!({"tags": ["beta", "eu"], "attributes": {"hw": "rev2", "region": "eu-west"}}),
        )
        .ok_json(200);
    assert_eq!(v["tags"], json!(["beta", "eu"]), "{v}");
    assert_eq!(v["attributes"]["hw"], "rev2", "{v}");
    assert_no_nulls(&v, "device");
    api.put_json(
        &format!("{devices}/d2"),
        tok,
        &json!({"tags": ["eu"], "attributes": {"hw": "rev1"}}),
    )
    .ok_json(200);
    // Only the half given is replaced.
    let v = api
        .put_json(
            &format!("{devices}/d2"),
            tok,
            &json!({"tags": ["eu", "lab"]}),
        )
        .ok_json(200);
    assert_eq!(v["attributes"], json!({"hw": "rev1"}), "{v}");
    let v = api.get(&format!("{devices}/d2"), tok).ok_json(200);
    assert_eq!(v["tags"], json!(["eu", "lab"]), "{v}");

    // Filters: all of the tags, every key = value.
    let page = api.get(&format!("{devices}?tags=eu"), tok).ok_json(200);
    assert_eq!(ids(&page), ["d1", "d2"]);
    let page = api
        .get(&format!("{devices}?tags=eu,beta"), tok)
        .ok_json(200);
    assert_eq!(ids(&page), ["d1"]);
    let page = api
        .get(&format!("{devices}?attribute=hw%3Drev1"), tok)
        .ok_json(200);
    assert_eq!(ids(&page), ["d2"]);
    let page = api
        .get(
            &format!("{devices}?deviceTypeId={dt}&tags=eu&attribute=hw%3Drev2"),
            tok,
        )
        .ok_json(200);
    assert_eq!(ids(&page), ["d1"]);
    let page = api.get(&format!("{devices}?tags=none"), tok).ok_json(200);
    assert!(ids(&page).is_empty());
    api.get(&format!("{devices}?attribute=novalue"), tok)
        .expect_error(400, Some("bad_filter"));

    // Bad input: 400 with the trace, nothing changed.
    let before = api.get(&format!("{devices}/d1"), tok).ok_json(200);
    let too_many_tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let too_many_attrs: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (body, trace) in [
        (json!({"tags": too_many_tags}), "too_many_tags"),
        (json!({"tags": ["a,b"]}), "invalid_tag"),
        (json!({"attributes": too_many_attrs}), "too_many_attributes"),
        (
            json!({"attributes": {"k".repeat(65): "v"}}),
            "invalid_attribute_key",
        ),
        (json!({"attributes": {"a=b": "v"}}), "invalid_attribute_key"),
        (
            json!({"attributes": {"k": "v".repeat(257)}}),
            "attribute_too_long",
        ),
        (
            json!({"attributes": {"k": "a\nb"}}),
            "invalid_attribute_value",
        ),
        (json!({"attributes": {"k": 1}}), "invalid_field"),
        (json!({"attributes": ["k"]}), "invalid_field"),
        (json!({"tags": "beta"}), "invalid_field"),
        (json!({}), "missing_field"),
    ] {
        let path = format!("{devices}/d1");
        let err = api
            .put_json(&path, tok, &body)
            .expect_error(400, Some(trace));
        assert_error_body(&err, 400, &path);
    }
    // The largest allowed values pass.
    let max_attrs: serde_json::Map<String, Value> = (0..64)
        .map(|i| (format!("{i:0>64}"), json!("v".repeat(256))))
        .collect();
    let max_tags: Vec<String> = (0..32).map(|i| format!("{i:0>64}")).collect();
    api.put_json(
        &format!("{devices}/d3"),
        tok,
        &json!({"tags": max_tags, "attributes": max_attrs}),
    )
    .ok_json(200);
    assert_eq!(
        api.get(&format!("{devices}/d1"), tok).ok_json(200),
        before,
        "a refused PUT changed the device"
    );
    api.put_json(&format!("{devices}/nobody"), tok, &json!({"tags": []}))
        .expect_error(404, Some("unknown_device"));

    // Another partner can neither see nor change them.
    let other = api.tenant(&admin, "Other");
    api.put_json(
        &format!("{}/devices/d1", other.base()),
        &other.token,
        &json!({"tags": ["x"]}),
    )
    .expect_error(404, Some("unknown_device"));

    // Audited; deleting the device drops its labels.
    let audit = api.get("/v1/admin/audit?size=200", &admin).ok_json(200);
    let entries: Vec<Value> = check_page(&audit)
        .into_iter()
        .filter(|e| s(e, "action") == "device.labels")
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| s(e, "target").ends_with("/devices/d1")),
        "{audit}"
    );
    api.delete(&format!("{devices}/d1"), tok).expect(204);
    api.register_device(&t.id, tok, "d1", &dt);
    let v = api.get(&format!("{devices}/d1"), tok).ok_json(200);
    assert_eq!(v["tags"], json!([]), "labels outlived their device: {v}");
}

#[test]
fn import_takes_labels_all_or_nothing() {
    let srv = Server::start();
    let api = &srv.api;
    let admin = srv.admin_token();
    let t = api.tenant(&admin, "Importer");
    let tok = &t.token;
    let dt = api.device_type(&t.id, tok, "kettle");
    let devices = format!("{}/devices", t.base());
    let import = format!("{devices}/import");

    let csv = format!(
        "deviceId,deviceTypeId,tags,attributes\nc1,{dt},beta;eu,hw=rev2;region=eu\nc2,{dt},,hw=rev1\nc3,{dt}\n"
    );
    api.post_bytes(&import, tok, "text/csv", csv.into_bytes())
        .expect(200);
    let v = api.get(&format!("{devices}/c1"), tok).ok_json(200);
    assert_eq!(v["tags"], json!(["beta", "eu"]), "{v}");
    assert_eq!(
        v["attributes"],
        json!({"hw": "rev2", "region": "eu"}),
        "{v}"
    );
    let v = api.get(&format!("{devices}/c3"), tok).ok_json(200);
    assert_eq!(
        (v["tags"].clone(), v["attributes"].clone()),
        (json!([]), json!({}))
    );

    let ndjson = format!(
        "{{\"deviceId\":\"n1\",\"deviceTypeId\":\"{dt}\",\"tags\":[\"lab\"],\"attributes\":{{\"hw\":\"rev3\"}}}}\n"
    );
    api.post_bytes(&import, tok, "application/x-ndjson", ndjson.into_bytes())
        .expect(200);
    let page = api
        .get(&format!("{devices}?attribute=hw%3Drev3"), tok)
        .ok_json(200);
    assert_eq!(ids(&page), ["n1"]);

    // A label over the bounds on line 3 refuses the whole import and names the line.
    let bad = format!("x1,{dt},ok\nx2,{dt},ok\nx3,{dt},,{}=v\n", "k".repeat(65));
    let err = api
        .post_bytes(&import, tok, "text/csv", bad.into_bytes())
        .expect_error(400, Some("invalid_attribute_key"));
    assert!(s(&err, "message").contains("line 3"), "{err}");
    api.get(&format!("{devices}/x1"), tok)
        .expect_error(404, None);
    let err = api
        .post_bytes(
            &import,
            tok,
            "text/csv",
            format!("y1,{dt},a,novalue\n").into_bytes(),
        )
        .expect_error(400, Some("bad_import_line"));
    assert!(s(&err, "message").contains("line 1"), "{err}");
}

#[test]
fn configured_bounds_hold() {
    let srv = Server::start_with_config(
        "[storage]\ndevice_tags_max = 2\ndevice_attributes_max = 1\nattribute_key_max = 4\nattribute_value_max = 8\n",
    );
    let api = &srv.api;
    let admin = srv.admin_token();
    let t = api.tenant(&admin, "Tight");
    let tok = &t.token;
    let dt = api.device_type(&t.id, tok, "probe");
    api.register_device(&t.id, tok, "p1", &dt);
    let path = format!("{}/devices/p1", t.base());
    api.put_json(
        &path,
        tok,
        &json!({"tags": ["a", "b"], "attributes": {"abcd": "12345678"}}),
    )
    .ok_json(200);
    for (body, trace) in [
        (json!({"tags": ["a", "b", "c"]}), "too_many_tags"),
        (
            json!({"attributes": {"a": "1", "b": "2"}}),
            "too_many_attributes",
        ),
        (
            json!({"attributes": {"abcde": "1"}}),
            "invalid_attribute_key",
        ),
        (
            json!({"attributes": {"a": "123456789"}}),
            "attribute_too_long",
        ),
    ] {
        api.put_json(&path, tok, &body)
            .expect_error(400, Some(trace));
    }
    let import = format!("{}/devices/import", t.base());
    api.post_bytes(
        &import,
        tok,
        "text/csv",
        format!("p2,{dt},a;b;c\n").into_bytes(),
    )
    .expect_error(400, Some("too_many_tags"));
    let resp = api.send(api.req(Method::GET, &path, tok));
    assert_eq!(resp.json()["tags"], json!(["a", "b"]));
}
