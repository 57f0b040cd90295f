//! hawkBit DDI against a real server over HTTPS, request by request: the credential matrix
//! of docs/security.md, a whole update (poll, deploymentBase, download with Range, If-Range
//! and HEAD, `.MD5SUM`, feedback to closed/success → confirmed in the API), cancellation,
//! configData, tenants and gateway tokens, and bad input answered in the DDI error shape
//! with nothing recorded and the server still serving. The real agents run in
//! tests/ddi_hawkbit.rs and tests/ddi_swupdate.rs.

mod api_common;

use std::collections::BTreeSet;
use std::path::Path;

use api_common::{Api, Server, Tenant, bytes, hex, s, sha256_hex};
use reqwest::Method;
use serde_json::{Value, json};

const CONFIG: &str =
    "[ddi]\npoll_interval_secs = 7\nmax_feedback_body = 2048\nmax_details_chars = 20\n";

fn sha1_hex(data: &[u8]) -> String {
    hex(&otad::store::Digests::of(data).sha1)
}

fn md5_hex(data: &[u8]) -> String {
    hex(&otad::store::Digests::of(data).md5)
}

/// A DDI request with an `Authorization` header value (`""` = none).
fn ddi(api: &Api, method: Method, url: &str, auth: &str) -> reqwest::blocking::RequestBuilder {
    let url = if url.starts_with("https://") {
        url.to_string()
    } else {
        format!("{}{url}", api.base)
    };
    let rb = api.client.request(method, url);
    if auth.is_empty() {
        rb
    } else {
        rb.header("authorization", auth)
    }
}

fn feedback(execution: &str, finished: &str) -> Value {
    json!({"id": 1, "time": "20261202T041500", "status": {"execution": execution,
        "result": {"finished": finished, "progress": {"cnt": 1, "of": 0}}, "details": ["step"]}})
}

/// A partner with a firmware type, a device type with one associated image, and devices.
struct Fleet {
    a: Tenant,
    dt: String,
    data: Vec<u8>,
    record: Value,
    image: Value,
}

fn fleet(api: &Api, admin: &str, name: &str, filename: &str) -> Fleet {
    let a = api.tenant(admin, name);
    let tok = &a.token;
    api.fw_type(&a.id, tok, 120, "ROOTFS");
    let data = bytes(300_000, 9);
    let v = api
        .post_bytes(
            &format!("/v1/ota/partners/{}/binaries?filename={filename}", a.id),
            tok,
            "application/octet-stream",
            data.clone(),
        )
        .ok_json(200);
    let url = api.move_to_repo(&a.id, tok, &s(&v, "value"));
    let record = api.pool_create(
        &a.id,
        tok,
        &json!({"name": "rootfs", "type": 120, "version": "2.1.0", "url": url}),
    );
    let dt = api.device_type(&a.id, tok, &format!("{name}-gw"));
    let image = api.associate(&a.id, tok, &dt, &record);
    Fleet {
        a,
        dt,
        data,
        record,
        image,
    }
}

fn poll(api: &Api, tenant: &str, device: &str, auth: &str) -> Value {
    ddi(
        api,
        Method::GET,
        &format!("/{tenant}/controller/v1/{device}"),
        auth,
    )
    .send()
    .map(|r| {
        assert_eq!(r.status().as_u16(), 200, "poll of {device}");
        r.json::<Value>().expect("poll JSON")
    })
    .expect("poll")
}

fn link(poll: &Value, name: &str) -> Option<String> {
    poll["_links"][name]["href"].as_str().map(str::to_string)
}

fn device_json(api: &Api, a: &Tenant, device: &str) -> Value {
    api.get(
        &format!("/v1/ota/partners/{}/devices/{device}", a.id),
        &a.token,
    )
    .ok_json(200)
}

fn ota_state(device: &Value) -> String {
    device["ota"][0]["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_whole_update_by_hand_and_bad_input_in_the_ddi_shape() {
    let server = Server::start_with_config(CONFIG);
    let api = &server.api;
    let admin = server.admin_token();
    let f = fleet(api, &admin, "Delta", "rootfs.swu");
    let a = &f.a;
    let token = api.register_device(&a.id, &a.token, "gw-1", &f.dt);
    let auth = format!("TargetToken {token}");
    // The record shows its binary's filename and digests.
    let rec = api
        .get(
            &format!(
                "/v1/ota/partners/{}/pool/types/120/versionNumbers/{}",
                a.id,
                s(&f.record, "versionNumber")
            ),
            &a.token,
        )
        .ok_json(200);
    assert_eq!(rec["binary"]["filename"], "rootfs.swu", "{rec}");
    assert_eq!(rec["binary"]["sha1"], sha1_hex(&f.data).as_str());
    assert_eq!(rec["binary"]["md5"], md5_hex(&f.data).as_str());

    // The tenant is the partner id by default, in any case.
    let p = poll(api, &a.id.to_uppercase(), "gw-1", &auth);
    assert_eq!(p["config"]["polling"]["sleep"], "00:00:07", "{p}");
    assert!(link(&p, "configData").is_some(), "{p}");
    assert!(link(&p, "deploymentBase").is_some(), "{p}");
    let href = link(&poll(api, &a.id, "gw-1", &auth), "deploymentBase").expect("an offer");
    let action = href
        .split("/deploymentBase/")
        .nth(1)
        .and_then(|r| r.split('?').next())
        .unwrap()
        .to_string();
    // Stable across polls.
    assert_eq!(
        link(&poll(api, &a.id, "gw-1", &auth), "deploymentBase"),
        Some(href.clone())
    );
    let d: Value = ddi(api, Method::GET, &href, &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(d["id"], action.as_str(), "{d}");
    assert_eq!(d["deployment"]["update"], "forced");
    let chunk = &d["deployment"]["chunks"][0];
    assert_eq!(chunk["part"], "ROOTFS");
    assert_eq!(chunk["version"], "2.1.0");
    assert_eq!(chunk["name"], "rootfs");
    let art = &chunk["artifacts"][0];
    assert_eq!(art["filename"], "rootfs.swu");
    assert_eq!(art["size"], f.data.len());
    assert_eq!(art["hashes"]["sha1"], sha1_hex(&f.data).as_str());
    assert_eq!(art["hashes"]["md5"], md5_hex(&f.data).as_str());
    assert_eq!(art["hashes"]["sha256"], sha256_hex(&f.data).as_str());
    let file = art["_links"]["download-http"]["href"].as_str().unwrap();
    assert_eq!(art["_links"]["download"]["href"].as_str(), Some(file));

    // Download: whole, HEAD, Range, If-Range, .MD5SUM; none without a credential.
    let r = ddi(api, Method::GET, file, &auth).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().unwrap().as_ref(), f.data.as_slice());
    let r = ddi(api, Method::HEAD, file, &auth).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-length"],
        f.data.len().to_string().as_str()
    );
    let r = ddi(api, Method::GET, file, &auth)
        .header("range", "bytes=100-199")
        .header("if-range", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &f.data[100..200]);
    let r = ddi(api, Method::GET, file, &auth)
        .header("range", "bytes=100-199")
        .header("if-range", "\"another\"")
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "a stale If-Range gets the whole binary"
    );
    let r = ddi(api, Method::GET, &format!("{file}.MD5SUM"), &auth)
        .send()
        .unwrap();
    assert_eq!(
        r.text().unwrap(),
        format!("{}  rootfs.swu", md5_hex(&f.data))
    );
    let r = ddi(api, Method::GET, file, "").send().unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Bad input: DDI error shape, 4xx, nothing recorded.
    let fb = format!(
        "{href_base}/feedback",
        href_base = href.split('?').next().unwrap()
    );
    let before = device_json(api, a, "gw-1");
    for (body, status) in [
        ("{not json".to_string(), 400),
        (feedback("exploded", "none").to_string(), 400),
        (feedback("closed", "maybe").to_string(), 400),
        (json!({"status": {"execution": "closed"}}).to_string(), 400),
        ("x".repeat(3000), 413),
    ] {
        let r = ddi(api, Method::POST, &fb, &auth)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body:.60}");
        let e: Value = r.json().unwrap();
        assert!(
            e["errorCode"]
                .as_str()
                .unwrap()
                .starts_with("hawkbit.server.error."),
            "{e}"
        );
        assert!(e["message"].is_string(), "{e}");
    }
    // Another action id, and the action of another device: 404.
    let other = api.register_device(&a.id, &a.token, "gw-2", &f.dt);
    let wrong = fb.replace(
        &format!("/deploymentBase/{action}/"),
        "/deploymentBase/12345/",
    );
    let r = ddi(api, Method::POST, &wrong, &auth)
        .json(&feedback("proceeding", "none"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let theirs = fb.replace("/gw-1/", "/gw-2/");
    let r = ddi(api, Method::POST, &theirs, &format!("TargetToken {other}"))
        .json(&feedback("closed", "success"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "gw-2 has no such action");
    let after = device_json(api, a, "gw-1");
    assert_eq!(
        before["ota"], after["ota"],
        "refused feedback recorded nothing"
    );

    // The state map, step by step; the action stays advertised until closed.
    for (execution, state) in [
        ("download", "downloading"),
        ("downloaded", "downloaded"),
        ("proceeding", "installing"),
    ] {
        let r = ddi(api, Method::POST, &fb, &auth)
            .json(&feedback(execution, "none"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{execution}");
        assert_eq!(ota_state(&device_json(api, a, "gw-1")), state);
        assert_eq!(
            link(&poll(api, &a.id, "gw-1", &auth), "deploymentBase"),
            Some(href.clone())
        );
    }
    let r = ddi(api, Method::POST, &fb, &auth)
        .json(&feedback("closed", "success"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let dev = device_json(api, a, "gw-1");
    assert_eq!(ota_state(&dev), "confirmed", "{dev}");
    assert_eq!(
        dev["installed"][0]["versionNumber"], f.image["versionNumber"],
        "{dev}"
    );
    let p = poll(api, &a.id, "gw-1", &auth);
    assert_eq!(link(&p, "deploymentBase"), None, "{p}");
    // The closed action is the installed base; repeating closed is harmless.
    let installed = href
        .split('?')
        .next()
        .unwrap()
        .replace("/deploymentBase/", "/installedBase/");
    let r = ddi(api, Method::GET, &installed, &auth).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = ddi(api, Method::POST, &fb, &auth)
        .json(&feedback("closed", "success"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A failure on gw-2 is recorded with its (cut) reason.
    let auth2 = format!("TargetToken {other}");
    let p = poll(api, &a.id, "gw-2", &auth2);
    let href2 = link(&p, "deploymentBase").unwrap();
    let fb2 = format!("{}/feedback", href2.split('?').next().unwrap());
    let body = json!({"status": {"execution": "closed", "result": {"finished": "failure"},
        "details": ["sha1 mismatch on the artifact", "more"]}});
    let r = ddi(api, Method::POST, &fb2, &auth2)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let dev = device_json(api, a, "gw-2");
    assert_eq!(ota_state(&dev), "failed");
    assert_eq!(dev["ota"][0]["reason"], "sha1 mismatch on the", "{dev}");
    assert_eq!(
        link(&poll(api, &a.id, "gw-2", &auth2), "deploymentBase"),
        None,
        "a failed action is not offered again"
    );

    // configData: bounded, merged, and asked for only until sent.
    let cfg = format!("/{}/controller/v1/gw-1/configData", a.id);
    let r = ddi(api, Method::PUT, &cfg, &auth)
        .json(&json!({"id": "", "time": "20261202T041500", "status": {"result": {"finished": "success"}, "execution": "closed"}, "data": {"hw": "rev3", "serial": 77}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(link(&poll(api, &a.id, "gw-1", &auth), "configData"), None);
    let dev = device_json(api, a, "gw-1");
    assert_eq!(
        dev["attributes"],
        json!({"hw": "rev3", "serial": "77"}),
        "{dev}"
    );
    for body in [
        json!({"mode": "sideways", "data": {}}),
        json!({"data": {"k": "v".repeat(257)}}),
        json!({"data": (0..65).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"data": "flat"}),
    ] {
        let r = ddi(api, Method::PUT, &cfg, &auth)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body:.80}");
    }
    assert_eq!(
        device_json(api, a, "gw-1")["attributes"],
        json!({"hw": "rev3", "serial": "77"})
    );
    api.get("/healthz", "").expect(200);
}

#[test]
fn withdrawn_offers_are_cancelled_and_tenants_and_gateway_tokens_are_managed() {
    let server = Server::start_with_config(CONFIG);
    let api = &server.api;
    let admin = server.admin_token();
    let f = fleet(api, &admin, "Echo", "echo.bin");
    let g = fleet(api, &admin, "Foxtrot", "fox.bin");
    let a = &f.a;
    // A tenant name set by an admin; unique without regard to case.
    let put = |partner: &str, tenant: &str| {
        api.put_json(
            &format!("/v1/admin/partners/{partner}/ddiTenant"),
            &admin,
            &json!({ "ddiTenant": tenant }),
        )
    };
    // Another partner's id is its tenant until it sets one.
    put(&g.a.id, &a.id).expect_error(409, Some("ddi_tenant_taken"));
    put(&a.id, "Echo-Fleet").expect(200);
    put(&g.a.id, "echo-fleet").expect_error(409, Some("ddi_tenant_taken"));
    put(&g.a.id, "bad tenant!").expect_error(400, Some("invalid_ddi_tenant"));
    let settings = api
        .get(&format!("/v1/ota/partners/{}/ddi", a.id), &a.token)
        .ok_json(200);
    assert_eq!(settings["ddiTenant"], "Echo-Fleet");
    assert_eq!(settings["gatewayToken"], false);
    // Gateway token: shown once, rotated, withdrawn.
    let gw = |p: &Tenant| {
        let v = api
            .send(api.req(
                Method::POST,
                &format!("/v1/ota/partners/{}/ddi/gatewayToken", p.id),
                &p.token,
            ))
            .ok_json(200);
        format!("GatewayToken {}", s(&v, "gatewayToken"))
    };
    let first = gw(a);
    api.register_device(&a.id, &a.token, "cx-1", &f.dt);
    let p = poll(api, "echo-FLEET", "cx-1", &first);
    let href = link(&p, "deploymentBase").expect("offer");
    let r = ddi(
        api,
        Method::GET,
        &format!("/{}/controller/v1/cx-1", a.id),
        &first,
    )
    .send()
    .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "the old default tenant is gone once one is set"
    );
    let second = gw(a);
    let r = ddi(api, Method::GET, "/echo-fleet/controller/v1/cx-1", &first)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "a rotated gateway token stops working"
    );
    // Withdrawing the offer (dissociating the image) turns it into a cancellation.
    api.delete(
        &format!(
            "/v1/ota/partners/{}/deviceTypes/{}/firmwareImages/types/120/versionNumbers/{}",
            a.id,
            f.dt,
            s(&f.image, "versionNumber")
        ),
        &a.token,
    )
    .expect(204);
    let p = poll(api, "echo-fleet", "cx-1", &second);
    assert_eq!(link(&p, "deploymentBase"), None, "{p}");
    let cancel = link(&p, "cancelAction").expect("a cancellation");
    let id = href
        .split("/deploymentBase/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let c: Value = ddi(api, Method::GET, &cancel, &second)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(c["cancelAction"]["stopId"], id, "{c}");
    let r = ddi(api, Method::POST, &format!("{cancel}/feedback"), &second)
        .json(&feedback("closed", "success"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let p = poll(api, "echo-fleet", "cx-1", &second);
    assert_eq!(link(&p, "cancelAction"), None, "{p}");
    assert_eq!(ota_state(&device_json(api, a, "cx-1")), "deferred");
    api.send(api.req(
        Method::DELETE,
        &format!("/v1/ota/partners/{}/ddi/gatewayToken", a.id),
        &a.token,
    ))
    .expect(204);
    let r = ddi(api, Method::GET, "/echo-fleet/controller/v1/cx-1", &second)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Each change is audited.
    let audit = api.get("/v1/admin/audit", &admin).ok_json(200);
    let text = audit.to_string();
    assert!(
        text.contains("partner.ddi_tenant") && text.contains("partner.gateway_token"),
        "{text:.400}"
    );
}

/// The artifact URL of the device's open deployment.
fn artifact_url(api: &Api, tenant: &str, device: &str, auth: &str) -> String {
    let href = link(&poll(api, tenant, device, auth), "deploymentBase").expect("an offer");
    let d: Value = ddi(api, Method::GET, &href, auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    d["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download"]["href"]
        .as_str()
        .expect("an artifact link")
        .to_string()
}

/// Status of a 4 KiB range request of `url`.
fn range_status(api: &Api, url: &str, auth: &str) -> u16 {
    ddi(api, Method::GET, url, auth)
        .header("range", "bytes=0-4095")
        .send()
        .unwrap()
        .status()
        .as_u16()
}

// Repeated downloads skip the credential check in the store (a recent check is reused):
// whatever withdraws a credential or an image must still stop the very next request.
#[test]
fn a_withdrawn_credential_or_image_stops_the_next_artifact_request() {
    let server = Server::start_with_config(CONFIG);
    let api = &server.api;
    let admin = server.admin_token();
    let f = fleet(api, &admin, "Golf", "golf.bin");
    let a = &f.a;
    let devices = format!("/v1/ota/partners/{}/devices", a.id);
    let token = api.register_device(&a.id, &a.token, "g-1", &f.dt);
    let target = format!("TargetToken {token}");
    let url = artifact_url(api, &a.id, "g-1", &target);
    for _ in 0..3 {
        assert_eq!(range_status(api, &url, &target), 206);
    }
    // A rotated device token.
    let v = api
        .send(api.req(Method::POST, &format!("{devices}/g-1/token"), &a.token))
        .ok_json(200);
    assert_eq!(range_status(api, &url, &target), 401, "old device token");
    let target = format!("TargetToken {}", s(&v, "token"));
    assert_eq!(range_status(api, &url, &target), 206, "new device token");
    // A rotated, then withdrawn gateway token.
    let gateway = |method: Method| {
        api.send(api.req(
            method,
            &format!("/v1/ota/partners/{}/ddi/gatewayToken", a.id),
            &a.token,
        ))
    };
    let first = format!(
        "GatewayToken {}",
        s(&gateway(Method::POST).ok_json(200), "gatewayToken")
    );
    assert_eq!(range_status(api, &url, &first), 206);
    let second = format!(
        "GatewayToken {}",
        s(&gateway(Method::POST).ok_json(200), "gatewayToken")
    );
    assert_eq!(
        range_status(api, &url, &first),
        401,
        "rotated gateway token"
    );
    assert_eq!(range_status(api, &url, &second), 206);
    gateway(Method::DELETE).expect(204);
    assert_eq!(
        range_status(api, &url, &second),
        401,
        "deleted gateway token"
    );
    // A renamed tenant: the old tenant's URLs stop answering.
    assert_eq!(range_status(api, &url, &target), 206);
    api.put_json(
        &format!("/v1/admin/partners/{}/ddiTenant", a.id),
        &admin,
        &json!({ "ddiTenant": "golf-fleet" }),
    )
    .expect(200);
    assert_eq!(range_status(api, &url, &target), 401, "old tenant");
    let url = artifact_url(api, "golf-fleet", "g-1", &target);
    assert_eq!(range_status(api, &url, &target), 206);
    // A dissociated image: the device is no longer entitled to it.
    api.delete(
        &format!(
            "/v1/ota/partners/{}/deviceTypes/{}/firmwareImages/types/120/versionNumbers/{}",
            a.id,
            f.dt,
            s(&f.image, "versionNumber")
        ),
        &a.token,
    )
    .expect(204);
    assert_eq!(range_status(api, &url, &target), 404, "dissociated image");
    // A deleted device.
    api.delete(&format!("{devices}/g-1"), &a.token).expect(204);
    assert_eq!(range_status(api, &url, &target), 401, "deleted device");
}

// ---- the DDI credential matrix of docs/security.md ----

const DDI_COLUMNS: [&str; 7] = [
    "anonymous",
    "A1 target",
    "A2 target",
    "B target",
    "A gateway",
    "B gateway",
    "A1 bearer",
];

fn ddi_matrix() -> Vec<(String, String, Vec<String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md");
    let doc = std::fs::read_to_string(path).expect("docs/security.md");
    let begin = doc
        .find("<!-- ddi-matrix:begin -->")
        .expect("ddi-matrix:begin marker");
    let end = doc
        .find("<!-- ddi-matrix:end -->")
        .expect("ddi-matrix:end marker");
    let mut lines = doc[begin..end].lines().filter(|l| l.starts_with('|'));
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = cells(lines.next().expect("header"));
    assert_eq!(
        header[2..],
        DDI_COLUMNS.map(String::from),
        "DDI matrix columns changed"
    );
    lines
        .skip(1)
        .map(|l| {
            let c = cells(l);
            assert_eq!(c.len(), 2 + DDI_COLUMNS.len(), "bad row {l}");
            (c[0].clone(), c[1].clone(), c[2..].to_vec())
        })
        .collect()
}

#[test]
fn every_ddi_route_answers_every_credential_as_the_matrix_says() {
    let rows = ddi_matrix();
    let routes: BTreeSet<(String, String)> = otad::api::ROUTES
        .iter()
        .filter(|r| r.access == otad::api::Access::Ddi)
        .map(|r| (r.verb.name().to_string(), r.template.to_string()))
        .collect();
    let table: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(m, r, _)| (m.clone(), r.clone()))
        .collect();
    assert_eq!(routes, table, "the DDI matrix must name every DDI route");

    let server = Server::start_with_config(CONFIG);
    let api = &server.api;
    let admin = server.admin_token();
    let f = fleet(api, &admin, "Golf", "golf.swu");
    let b = fleet(api, &admin, "Hotel", "hotel.swu");
    let a = &f.a;
    let a1 = api.register_device(&a.id, &a.token, "a1", &f.dt);
    let a2 = api.register_device(&a.id, &a.token, "a2", &f.dt);
    let b1 = api.register_device(&b.a.id, &b.a.token, "b1", &b.dt);
    let gateway = |p: &Tenant| {
        let v = api
            .send(api.req(
                Method::POST,
                &format!("/v1/ota/partners/{}/ddi/gatewayToken", p.id),
                &p.token,
            ))
            .ok_json(200);
        format!("GatewayToken {}", s(&v, "gatewayToken"))
    };
    let auths = [
        String::new(),
        format!("TargetToken {a1}"),
        format!("TargetToken {a2}"),
        format!("TargetToken {b1}"),
        gateway(a),
        gateway(&b.a),
        format!("Bearer {a1}"),
    ];
    let own = &auths[1];
    // a1: the first image was offered, closed, then a second offered and withdrawn, and a
    // third is open: every slot holds an action.
    let fb = |href: &str, execution: &str, finished: &str| {
        let r = ddi(
            api,
            Method::POST,
            &format!("{}/feedback", href.split('?').next().unwrap()),
            own,
        )
        .json(&feedback(execution, finished))
        .send()
        .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    };
    let first = link(&poll(api, &a.id, "a1", own), "deploymentBase").unwrap();
    fb(&first, "closed", "success");
    let installed = first
        .split('?')
        .next()
        .unwrap()
        .replace("/deploymentBase/", "/installedBase/");
    let publish = |name: &str, version: &str| {
        let (_, url) = api.publish(&a.id, &a.token, format!("{name} {version}").as_bytes());
        let rec = api.pool_create(
            &a.id,
            &a.token,
            &json!({"name": name, "type": 120, "version": version, "url": url}),
        );
        api.associate(&a.id, &a.token, &f.dt, &rec)
    };
    let second = publish("rootfs", "2.2.0");
    let withdrawn = link(&poll(api, &a.id, "a1", own), "deploymentBase").unwrap();
    api.delete(
        &format!(
            "/v1/ota/partners/{}/deviceTypes/{}/firmwareImages/types/120/versionNumbers/{}",
            a.id,
            f.dt,
            s(&second, "versionNumber")
        ),
        &a.token,
    )
    .expect(204);
    let third = publish("rootfs", "2.3.0");
    let p = poll(api, &a.id, "a1", own);
    let cancel = link(&p, "cancelAction").expect("cancellation");
    assert!(withdrawn.contains(cancel.rsplit('/').next().unwrap()));
    // The open action (2.3.0) waits behind the cancellation; its id follows the rule.
    let third = &third;
    let open_id = otad::store::action_id(
        "a1",
        &[otad::store::DdiChunk {
            fw_type: 120,
            record_id: s(third, "id").parse().unwrap(),
            version_number: s(third, "versionNumber").parse().unwrap(),
        }],
    );
    let record_id = s(&f.record, "id");
    let mut wrong = Vec::new();
    for (method, route, cells) in &rows {
        for (col, expect) in cells.iter().enumerate() {
            let action = |slot: &str| -> String {
                match slot {
                    "cancelAction" => cancel.rsplit('/').next().unwrap().to_string(),
                    "installedBase" => installed.rsplit('/').next().unwrap().to_string(),
                    _ => open_id.to_string(),
                }
            };
            let slot = route.split('/').nth(5).unwrap_or("");
            let path = route
                .replace("{tenant}", &a.id)
                .replace("{controllerId}", "a1")
                .replace("{actionId}", &action(slot))
                .replace("{moduleId}", &record_id)
                .replace("{filename}", "golf.swu");
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let mut rb = ddi(api, m.clone(), &path, &auths[col]);
            if m == Method::POST {
                rb = rb.json(&feedback("proceeding", "none"));
            } else if m == Method::PUT {
                rb = rb.json(&json!({"data": {"col": col.to_string()}}));
            }
            let r = rb.send().unwrap();
            let status = r.status().as_u16();
            let text = r.text().unwrap_or_default();
            let ok = match expect.as_str() {
                "allow" => (200..300).contains(&status),
                n => status.to_string() == n,
            };
            if !ok {
                wrong.push(format!(
                    "{method} {path} as {}: expected {expect}, got {status} {text:.160}",
                    DDI_COLUMNS[col]
                ));
            }
            if status == 401 {
                let e: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert_eq!(
                    e["errorCode"], "hawkbit.server.error.unauthorized",
                    "{text}"
                );
                assert_eq!(
                    e["message"], "authentication failed",
                    "one answer for every refusal"
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells disagree with docs/security.md:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Unknown tenant and unknown device: the same 401.
    for path in [
        "/nobody/controller/v1/a1",
        &format!("/{}/controller/v1/ghost", a.id),
    ] {
        let r = ddi(api, Method::GET, path, own).send().unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    api.get("/healthz", "").expect(200);
}

#[test]
fn an_action_id_survives_a_restart() {
    let mut server = Server::start_with_config(CONFIG);
    let admin = server.admin_token();
    let api = server.api.clone();
    let f = fleet(&api, &admin, "India", "india.swu");
    let token = api.register_device(&f.a.id, &f.a.token, "in-1", &f.dt);
    let auth = format!("TargetToken {token}");
    let path = |api: &Api| {
        let href = link(&poll(api, &f.a.id, "in-1", &auth), "deploymentBase").expect("offer");
        href.strip_prefix(&api.base).unwrap_or(&href).to_string()
    };
    let before = path(&api);
    server.restart();
    let api = server.api.clone();
    assert_eq!(path(&api), before, "the same offer keeps its action id");
}
