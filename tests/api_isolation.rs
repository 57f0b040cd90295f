//! Tenant isolation, table-driven: partner A's token on partner B's paths gets 403 for every
//! resource kind (types, pool, exists, associations, binaries, device types, firmware images,
//! push, devices, tags) and never any of B's data, also when B's ids do not exist (401 before
//! 403 before 400/404); no or garbage tokens get 401; a device token gets 403 on partner
//! paths except the download of a binary associated with its device type; partner tokens get
//! 403 on /v1/admin/*; and a partner asking its own path for a sha only B stored gets 404.

mod api_common;

use api_common::{Api, Resp, Server, Tenant, check_page, int, s, sha256_hex};
use reqwest::Method;
use serde_json::{Value, json};

const CONFIG: &str = "[api]\nlogin_attempts_per_minute = 1000\n";
const NO_SUCH_UUID: &str = "0f0e0d0c-0b0a-4908-8706-050403020100";
const NO_SUCH_SHA: &str = "00000000000000000000000000000000000000000000000000000000000000aa";

/// Strings that only B's data contains: none may appear in an answer to someone else.
const B_MARKERS: [&str; 5] = [
    "BravoCorp",
    "b-secret-firmware",
    "b-secret-devicetype",
    "B_SECRET_TYPE",
    "b-secret-tag",
];

/// One request of the table.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    body: Option<Body>,
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Bytes(&'static str, Vec<u8>),
}

impl Call {
    fn new(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            body: None,
        }
    }
    fn json(method: Method, path: String, body: Value) -> Call {
        Call {
            method,
            path,
            body: Some(Body::Json(body)),
        }
    }
    fn bytes(path: String, ctype: &'static str, data: Vec<u8>) -> Call {
        Call {
            method: Method::POST,
            path,
            body: Some(Body::Bytes(ctype, data)),
        }
    }

    fn send(&self, api: &Api, token: &str) -> Resp {
        let mut rb = api.req(self.method.clone(), &self.path, token);
        match &self.body {
            Some(Body::Json(v)) => rb = rb.json(v),
            Some(Body::Bytes(ct, data)) => {
                rb = rb.header("Content-Type", *ct).body(data.clone());
            }
            None => {}
        }
        api.send(rb)
    }
}

/// Ids on a partner's path that the table fills in.
#[derive(Clone, Copy)]
struct Ids<'a> {
    partner: &'a str,
    fw_type: &'a str,
    vn: &'a str,
    device_type: &'a str,
    image: &'a str,
    device: &'a str,
    sha: &'a str,
}

/// Every partner-path route of api.md, on the given ids.
fn table(ids: &Ids) -> Vec<Call> {
    let base = format!("/v1/ota/partners/{}", ids.partner);
    let t = ids.fw_type;
    let vn = ids.vn;
    let dt = ids.device_type;
    let img = ids.image;
    let dev = ids.device;
    let sha = ids.sha;
    let record = json!({ "id": img, "name": "x", "type": 101, "version": "9", "versionNumber": vn, "url": "", "tags": [] });
    use Method as M;
    vec![
        // types
        Call::new(M::GET, format!("{base}/types")),
        Call::new(M::GET, format!("{base}/types/{t}")),
        Call::json(
            M::POST,
            format!("{base}/types"),
            json!({ "name": "EVIL", "type": 150 }),
        ),
        Call::json(
            M::PUT,
            format!("{base}/types/{t}"),
            json!({ "name": "EVIL" }),
        ),
        // pool
        Call::new(M::GET, format!("{base}/pool")),
        Call::new(M::GET, format!("{base}/pool?tags=b-secret-tag")),
        Call::new(M::GET, format!("{base}/pool/types/{t}")),
        Call::json(
            M::POST,
            format!("{base}/pool"),
            json!({ "name": "evil", "type": 101, "version": "1", "url": "" }),
        ),
        Call::new(M::GET, format!("{base}/pool/types/{t}/versionNumbers/{vn}")),
        Call::json(
            M::PUT,
            format!("{base}/pool/types/{t}/versionNumbers/{vn}"),
            json!({ "name": "evil", "version": "1", "url": "" }),
        ),
        Call::new(
            M::DELETE,
            format!("{base}/pool/types/{t}/versionNumbers/{vn}"),
        ),
        Call::new(
            M::GET,
            format!("{base}/pool/types/{t}/names/b-secret-firmware/versions/1.0/exists"),
        ),
        Call::new(
            M::GET,
            format!("{base}/pool/types/{t}/versionNumbers/{vn}/associations"),
        ),
        // binaries
        Call::bytes(
            format!("{base}/binaries"),
            "application/octet-stream",
            b"evil bytes".to_vec(),
        ),
        Call::json(
            M::POST,
            format!("{base}/binaries/moveToRepository"),
            json!({ "value": sha }),
        ),
        Call::new(M::GET, format!("{base}/binaries/{sha}")),
        // device types
        Call::new(M::GET, format!("{base}/deviceTypes")),
        Call::json(
            M::POST,
            format!("{base}/deviceTypes"),
            json!({ "name": "evil" }),
        ),
        Call::new(M::GET, format!("{base}/deviceTypes/{dt}")),
        Call::json(
            M::PUT,
            format!("{base}/deviceTypes/{dt}"),
            json!({ "name": "evil" }),
        ),
        Call::new(M::DELETE, format!("{base}/deviceTypes/{dt}")),
        // firmware images
        Call::new(M::GET, format!("{base}/deviceTypes/{dt}/firmwareImages")),
        Call::new(
            M::GET,
            format!("{base}/deviceTypes/{dt}/firmwareImages/types/{t}"),
        ),
        Call::new(
            M::GET,
            format!("{base}/deviceTypes/{dt}/firmwareImages/types/{t}/versionNumbers/{vn}"),
        ),
        Call::json(
            M::POST,
            format!("{base}/deviceTypes/{dt}/firmwareImages"),
            record,
        ),
        Call::new(
            M::DELETE,
            format!("{base}/deviceTypes/{dt}/firmwareImages/types/{t}/versionNumbers/{vn}"),
        ),
        Call::json(
            M::PUT,
            format!("{base}/deviceTypes/{dt}/firmwareImages/{img}/push"),
            json!({ "value": dev }),
        ),
        // devices
        Call::new(M::GET, format!("{base}/devices")),
        Call::json(
            M::POST,
            format!("{base}/devices"),
            json!({ "deviceId": "evil-device", "deviceTypeId": dt }),
        ),
        Call::new(M::GET, format!("{base}/devices/{dev}")),
        Call::json(M::POST, format!("{base}/devices/{dev}/token"), json!({})),
        Call::new(M::DELETE, format!("{base}/devices/{dev}")),
        Call::bytes(
            format!("{base}/devices/import"),
            "text/csv",
            format!("evil-2,{dt}\n").into_bytes(),
        ),
        // tags
        Call::new(M::GET, format!("{base}/tags")),
    ]
}

/// Asserts that no B marker appears in an answer, except in the error body's `path` (which
/// only echoes what the caller sent).
#[track_caller]
fn assert_no_markers(r: &Resp) {
    let text = match serde_json::from_slice::<Value>(&r.body) {
        Ok(Value::Object(mut map)) => {
            map.remove("path");
            Value::Object(map).to_string()
        }
        _ => r.text(),
    };
    for m in B_MARKERS {
        assert!(
            !text.contains(m),
            "{} {} leaks B's data ({m:?}): {text}",
            r.method,
            r.path
        );
    }
}

/// Everything B owns, for the table and the entitlement checks.
struct World {
    server: Server,
    admin: String,
    a: Tenant,
    b: Tenant,
    a_device_token: String,
    b_dt: String,
    b_vn: String,
    b_image: String,
    b_sha: String,
    b_unassociated_sha: String,
    b_staged_sha: String,
    b_device_token: String,
    b_other_device_token: String,
    b_firmware: Vec<u8>,
}

fn world() -> World {
    let server = Server::start_with_config(CONFIG);
    let admin = server.admin_token();
    let api = server.api.clone();
    let a = api.tenant(&admin, "AlphaCorp");
    let b = api.tenant(&admin, "BravoCorp");

    // A: its own MCU type, device type and device
    api.fw_type(&a.id, &a.token, 101, "A_TYPE");
    let a_dt = api.device_type(&a.id, &a.token, "a-devicetype");
    let a_device_token = api.register_device(&a.id, &a.token, "a-device", &a_dt);

    // B: type, device types, a record with a binary associated, devices, more binaries
    api.fw_type(&b.id, &b.token, 101, "B_SECRET_TYPE");
    let b_dt = api.device_type(&b.id, &b.token, "b-secret-devicetype");
    let b_dt2 = api.device_type(&b.id, &b.token, "b-secret-devicetype-2");
    let b_firmware = api_common::bytes(50_000, 77);
    let (b_sha, url) = api.publish(&b.id, &b.token, &b_firmware);
    let rec = api.pool_create(
        &b.id,
        &b.token,
        &json!({ "name": "b-secret-firmware", "type": 101, "version": "1.0", "url": url, "tags": ["b-secret-tag"] }),
    );
    let image = api.associate(&b.id, &b.token, &b_dt, &rec);
    let (b_unassociated_sha, _) = api.publish(&b.id, &b.token, &api_common::bytes(3000, 78));
    let staged = api_common::bytes(3000, 79);
    let b_staged_sha = api.upload(&b.id, &b.token, &staged);
    let b_device_token = api.register_device(&b.id, &b.token, "b-device", &b_dt);
    let b_other_device_token = api.register_device(&b.id, &b.token, "b-device-other", &b_dt2);
    World {
        admin,
        a_device_token,
        b_dt,
        b_vn: s(&rec, "versionNumber"),
        b_image: s(&image, "id"),
        b_sha,
        b_unassociated_sha,
        b_staged_sha,
        b_device_token,
        b_other_device_token,
        b_firmware,
        a,
        b,
        server,
    }
}

/// B's state is unchanged after everything the others tried.
fn assert_b_intact(w: &World) {
    let api = &w.server.api;
    let b = &w.b;
    let base = b.base();
    let rec = api
        .get(
            &format!("{base}/pool/types/101/versionNumbers/{}", w.b_vn),
            &b.token,
        )
        .ok_json(200);
    assert_eq!(
        s(&rec, "name"),
        "b-secret-firmware",
        "B's record was changed"
    );
    let p = api.get(&format!("{base}/pool"), &b.token).ok_json(200);
    assert_eq!(
        int(&p, "totalElements"),
        1,
        "records appeared in B's pool: {p}"
    );
    let t = api.get(&format!("{base}/types/101"), &b.token).ok_json(200);
    assert_eq!(t[0]["name"], json!("B_SECRET_TYPE"), "B's type was changed");
    let dt = api
        .get(&format!("{base}/deviceTypes/{}", w.b_dt), &b.token)
        .ok_json(200);
    assert_eq!(
        s(&dt, "name"),
        "b-secret-devicetype",
        "B's device type was changed"
    );
    let dts = api
        .get(&format!("{base}/deviceTypes"), &b.token)
        .ok_json(200);
    assert_eq!(
        dts.as_array().map(Vec::len),
        Some(2),
        "device types appeared: {dts}"
    );
    api.get(&format!("{base}/devices/b-device"), &b.token)
        .expect(200);
    let devs = api.get(&format!("{base}/devices"), &b.token).ok_json(200);
    assert_eq!(
        int(&devs, "totalElements"),
        2,
        "devices appeared or vanished: {devs}"
    );
    api.get(
        &format!(
            "{base}/deviceTypes/{}/firmwareImages/types/101/versionNumbers/{}",
            w.b_dt, w.b_vn
        ),
        &b.token,
    )
    .expect(200);
    // B's device token still works for its download (it was not rotated by anyone else)
    let r = api.get(&format!("{base}/binaries/{}", w.b_sha), &w.b_device_token);
    r.expect(200);
}

#[test]
fn partner_token_on_another_partners_paths_is_403() {
    let w = world();
    let api = &w.server.api;
    let real = Ids {
        partner: &w.b.id,
        fw_type: "101",
        vn: &w.b_vn,
        device_type: &w.b_dt,
        image: &w.b_image,
        device: "b-device",
        sha: &w.b_sha,
    };
    let missing = Ids {
        partner: &w.b.id,
        fw_type: "150",
        vn: "999",
        device_type: NO_SUCH_UUID,
        image: "999999",
        device: "no-such-device",
        sha: NO_SUCH_SHA,
    };
    let unknown_partner = Ids {
        partner: NO_SUCH_UUID,
        ..real
    };
    let mut count = 0;
    for ids in [&real, &missing, &unknown_partner] {
        for call in table(ids) {
            let r = call.send(api, &w.a.token);
            assert_eq!(
                r.status,
                403,
                "A's token on {} {} must be 403, got {}: {}",
                call.method,
                call.path,
                r.status,
                r.text()
            );
            r.expect_error(403, None);
            assert_no_markers(&r);
            count += 1;
        }
    }
    assert!(count > 90, "the table ran {count} calls");
    // HEAD of B's binary: 403 without a body
    let r = api.send(api.req(
        Method::HEAD,
        &format!("{}/binaries/{}", w.b.base(), w.b_sha),
        &w.a.token,
    ));
    r.expect(403);
    assert!(r.body.is_empty(), "HEAD answers carry no body");

    // A's own lists show nothing of B's
    let a = &w.a;
    for path in [
        format!("{}/pool", a.base()),
        format!("{}/pool/types/101", a.base()),
        format!("{}/devices", a.base()),
    ] {
        let r = api.get(&path, &a.token);
        let page = r.ok_json(200);
        check_page(&page);
        assert_no_markers(&r);
    }
    for path in [
        format!("{}/types", a.base()),
        format!("{}/deviceTypes", a.base()),
        format!("{}/tags", a.base()),
    ] {
        let r = api.get(&path, &a.token);
        r.expect(200);
        assert_no_markers(&r);
    }
    // A cannot reach B's objects from its own path either
    let ex = api
        .get(
            &format!(
                "{}/pool/types/101/names/b-secret-firmware/versions/1.0/exists",
                a.base()
            ),
            &a.token,
        )
        .ok_json(200);
    assert_eq!(
        ex,
        json!({ "value": false }),
        "exists sees B's record on A's path"
    );
    api.get(
        &format!("{}/pool/types/101/versionNumbers/{}", a.base(), w.b_vn),
        &a.token,
    )
    .expect_error(404, None);
    api.get(&format!("{}/devices/b-device", a.base()), &a.token)
        .expect_error(404, None);
    api.get(&format!("{}/deviceTypes/{}", a.base(), w.b_dt), &a.token)
        .expect_error(404, None);
    api.get(
        &format!("{}/deviceTypes/{}/firmwareImages", a.base(), w.b_dt),
        &a.token,
    )
    .expect_error(404, None);
    let a_rec = api.pool_create(
        &a.id,
        &a.token,
        &json!({ "name": "a-fw", "type": 101, "version": "1", "url": "" }),
    );
    api.post_json(
        &format!("{}/deviceTypes/{}/firmwareImages", a.base(), w.b_dt),
        &a.token,
        &a_rec,
    )
    .expect_error(404, None);
    api.post_json(
        &format!("{}/pool", a.base()),
        &a.token,
        &json!({ "name": "a-fw2", "type": 101, "version": "1", "url": "", "associations": { a.id.clone(): [w.b_dt.clone()] } }),
    )
    .expect_error(400, None);
    api.post_json(
        &format!("{}/devices", a.base()),
        &a.token,
        &json!({ "deviceId": "a-into-b", "deviceTypeId": w.b_dt }),
    )
    .expect_error_in(&[400, 403, 404]);
    // a pool record of A may not take B's binary URL
    let b_url = format!(
        "{}/v1/ota/partners/{}/binaries/{}",
        api.base, w.b.id, w.b_sha
    );
    api.post_json(
        &format!("{}/pool", a.base()),
        &a.token,
        &json!({ "name": "a-fw3", "type": 101, "version": "1", "url": b_url }),
    )
    .expect_error(400, None);
    // pushing A's image to B's device: the device is unknown to A
    let a_dt = api.device_type(&a.id, &a.token, "a-devicetype-2");
    api.associate(&a.id, &a.token, &a_dt, &a_rec);
    api.put_json(
        &format!(
            "{}/deviceTypes/{a_dt}/firmwareImages/{}/push",
            a.base(),
            s(&a_rec, "id")
        ),
        &a.token,
        &json!({ "value": "b-device" }),
    )
    .expect_error(404, None);

    // the appliance admin may act on every partner's paths
    let r = api.get(&format!("{}/pool", w.b.base()), &w.admin);
    assert_eq!(int(&r.ok_json(200), "totalElements"), 1);
    api.get(&format!("{}/devices/b-device", w.b.base()), &w.admin)
        .expect(200);

    assert_b_intact(&w);
}

#[test]
fn missing_or_invalid_tokens_are_401() {
    let w = world();
    let api = &w.server.api;
    let ids = Ids {
        partner: &w.b.id,
        fw_type: "101",
        vn: &w.b_vn,
        device_type: &w.b_dt,
        image: &w.b_image,
        device: "b-device",
        sha: &w.b_sha,
    };
    let garbage = "garbage-token-0123456789abcdef0123456789";
    for call in table(&ids) {
        for token in ["", garbage] {
            let r = call.send(api, token);
            assert_eq!(
                r.status,
                401,
                "{} {} with token {token:?} must be 401: {}",
                call.method,
                call.path,
                r.text()
            );
            r.expect_error(401, None);
            assert_no_markers(&r);
        }
        // a Basic header is not a bearer token
        let mut rb = api.req(call.method.clone(), &call.path, "");
        rb = rb.basic_auth(&w.b.id, Some(&w.b.secret));
        let r = api.send(rb);
        r.expect_error(401, None);
    }
    // admin paths too
    for path in [
        "/v1/admin/partners",
        "/v1/admin/audit",
        "/v1/admin/backup",
        "/metrics",
    ] {
        api.get(path, "").expect_error(401, None);
        api.get(path, garbage).expect_error(401, None);
    }
    // a revoked-looking but well-formed bearer for a real partner id is still 401
    api.get(&format!("{}/pool", w.a.base()), &format!("{}x", w.a.token))
        .expect_error(401, None);
    assert_b_intact(&w);
}

/// An unknown route under a partner's path reveals nothing before the caller is known:
/// 401 without a valid token, 403 with another partner's, 404 (or 405) only for its own.
#[test]
fn unknown_routes_under_a_partner_path_check_the_caller_first() {
    let w = world();
    let api = &w.server.api;
    let garbage = "garbage-token-0123456789abcdef0123456789";
    for rest in ["/no-such-thing", "/pool/no/such/route/at/all", ""] {
        let path = format!("{}{rest}", w.b.base());
        for token in ["", garbage] {
            api.get(&path, token).expect_error(401, None);
        }
        let r = api
            .get(&path, &w.a.token)
            .expect_error(403, Some("forbidden"));
        assert_eq!(s(&r, "path"), path);
        api.get(&path, &w.a_device_token)
            .expect_error(403, Some("forbidden"));
        api.get(&path, &w.b.token)
            .expect_error(404, Some("no_route"));
        api.get(&path, &w.admin).expect_error(404, Some("no_route"));
    }
    // A known path with a method it does not take: the same order, then 405.
    let types = format!("{}/types", w.b.base());
    let delete = |token: &str| api.send(api.req(Method::DELETE, &types, token));
    delete("").expect_error(401, None);
    delete(&w.a.token).expect_error(403, None);
    delete(&w.b.token).expect_error(405, Some("method_not_allowed"));
    assert_b_intact(&w);
}

#[test]
fn device_tokens_only_download_entitled_binaries() {
    let w = world();
    let api = &w.server.api;
    let ids = Ids {
        partner: &w.b.id,
        fw_type: "101",
        vn: &w.b_vn,
        device_type: &w.b_dt,
        image: &w.b_image,
        device: "b-device",
        sha: &w.b_sha,
    };
    let download = format!("/v1/ota/partners/{}/binaries/{}", w.b.id, w.b_sha);
    for call in table(&ids) {
        let is_download = call.method == Method::GET && call.path == download;
        for token in [
            &w.b_device_token,
            &w.a_device_token,
            &w.b_other_device_token,
        ] {
            let r = call.send(api, token);
            if is_download && token == &w.b_device_token {
                r.expect(200);
                assert!(r.body == w.b_firmware, "device download bytes differ");
            } else {
                assert_eq!(
                    r.status,
                    403,
                    "a device token on {} {} must be 403: {}",
                    call.method,
                    call.path,
                    r.text()
                );
                r.expect_error(403, None);
            }
        }
    }
    // the same device token on its own partner's other routes: 403 (checked above), and on
    // the download with Range
    let r = api.send(
        api.req(Method::GET, &download, &w.b_device_token)
            .header("Range", "bytes=10-19"),
    );
    r.expect(206);
    assert!(r.body == w.b_firmware[10..20]);
    // HEAD works for the entitled device
    let r = api.send(api.req(Method::HEAD, &download, &w.b_device_token));
    r.expect(200);
    assert!(r.body.is_empty());
    // not entitled: a binary not associated with the device's type
    let other = format!(
        "/v1/ota/partners/{}/binaries/{}",
        w.b.id, w.b_unassociated_sha
    );
    api.get(&other, &w.b_device_token).expect_error(403, None);
    // a device token on its own partner's admin-only or listing paths
    for path in ["/v1/admin/partners", "/metrics"] {
        api.get(path, &w.b_device_token).expect_error(403, None);
    }
    // rotating the device token kills the old one
    let v = api
        .post_json(
            &format!("{}/devices/b-device/token", w.b.base()),
            &w.b.token,
            &json!({}),
        )
        .ok_json(200);
    let new_token = s(&v, "token");
    api.get(&download, &w.b_device_token)
        .expect_error(401, None);
    api.get(&download, &new_token).expect(200);
    // after the association is removed the device is no longer entitled
    api.delete(
        &format!(
            "{}/deviceTypes/{}/firmwareImages/types/101/versionNumbers/{}",
            w.b.base(),
            w.b_dt,
            w.b_vn
        ),
        &w.b.token,
    )
    .expect(204);
    api.get(&download, &new_token).expect_error(403, None);
}

#[test]
fn partner_tokens_on_admin_paths_are_403() {
    let w = world();
    let api = &w.server.api;
    let a = &w.a;
    let calls = [
        Call::new(Method::GET, "/v1/admin/partners".into()),
        Call::json(
            Method::POST,
            "/v1/admin/partners".into(),
            json!({ "name": "Evil" }),
        ),
        Call::json(
            Method::POST,
            format!("/v1/admin/partners/{}/users", a.id),
            json!({ "username": "evil-admin", "password": "evil-password", "role": "admin" }),
        ),
        Call::json(
            Method::POST,
            format!("/v1/admin/partners/{}/users", a.id),
            json!({ "username": "evil-user", "password": "evil-password", "role": "partner" }),
        ),
        Call::json(
            Method::POST,
            format!("/v1/admin/partners/{}/secret", a.id),
            json!({}),
        ),
        Call::json(
            Method::POST,
            format!("/v1/admin/partners/{}/secret", w.b.id),
            json!({}),
        ),
        Call::new(
            Method::DELETE,
            format!("/v1/admin/partners/{}/users/{}", w.b.id, w.b.user),
        ),
        Call::new(Method::GET, "/v1/admin/audit".into()),
        Call::new(Method::GET, "/v1/admin/backup".into()),
        Call::new(Method::GET, "/metrics".into()),
    ];
    let ci = api.client_token(&a.id, &a.secret);
    for call in &calls {
        for token in [&a.token, &ci] {
            let r = call.send(api, token);
            assert_eq!(
                r.status,
                403,
                "a partner token on {} {} must be 403: {}",
                call.method,
                call.path,
                r.text()
            );
            r.expect_error(403, None);
            assert_no_markers(&r);
        }
    }
    // nothing happened: B's user can still log in with B's secret
    api.login(&w.b.id, &w.b.secret, &w.b.user, &w.b.password);
    let partners = api.get("/v1/admin/partners", &w.admin).ok_json(200);
    assert!(
        !partners.to_string().contains("Evil"),
        "a partner created a partner: {partners}"
    );
}

#[test]
fn foreign_or_staged_binaries_are_404_on_own_path() {
    let w = world();
    let api = &w.server.api;
    let a = &w.a;
    // a sha only B stored, asked on A's own path
    let path = format!("{}/binaries/{}", a.base(), w.b_sha);
    let r = api.get(&path, &a.token);
    r.expect_error(404, None);
    assert_no_markers(&r);
    let r = api.send(api.req(Method::HEAD, &path, &a.token));
    r.expect(404);
    assert!(r.body.is_empty());
    api.post_json(
        &format!("{}/binaries/moveToRepository", a.base()),
        &a.token,
        &json!({ "value": w.b_sha }),
    )
    .expect_error(404, None);
    // B's staged (never moved) binary: not downloadable, not even by B
    api.get(
        &format!("{}/binaries/{}", w.b.base(), w.b_staged_sha),
        &w.b.token,
    )
    .expect_error(404, None);
    api.post_json(
        &format!("{}/binaries/moveToRepository", a.base()),
        &a.token,
        &json!({ "value": w.b_staged_sha }),
    )
    .expect_error(404, None);
    // a sha nobody stored, and a malformed one
    api.get(&format!("{}/binaries/{NO_SUCH_SHA}", a.base()), &a.token)
        .expect_error(404, None);
    api.post_json(
        &format!("{}/binaries/moveToRepository", a.base()),
        &a.token,
        &json!({ "value": "not-a-sha" }),
    )
    .expect_error(400, None);
    // once A uploads and moves the same bytes itself, the URL is on A's path and works for A
    let (sha, url) = api.publish(&a.id, &a.token, &w.b_firmware);
    assert_eq!(sha, sha256_hex(&w.b_firmware));
    assert!(url.contains(&format!("/partners/{}/", a.id)), "{url}");
    let r = api.send(api.req_url(Method::GET, &url, &a.token));
    r.expect(200);
    assert!(r.body == w.b_firmware);
    // and B's own download is unaffected
    let r = api.get(&format!("{}/binaries/{}", w.b.base(), w.b_sha), &w.b.token);
    r.expect(200);
    assert!(r.body == w.b_firmware, "B's download changed");
}

// api.md only says revocation is client-authenticated and answers 200 for unknown tokens;
// RFC 7009 §2.1 adds that the server checks the token was issued to the revoking client.
// Reading: partner B's client credentials cannot revoke partner A's tokens (the answer may be
// 200, as for an unknown token, but A's token must keep working).
#[test]
fn a_partner_cannot_revoke_another_partners_token() {
    let w = world();
    let api = &w.server.api;
    let pool = format!("{}/pool", w.a.base());
    api.get(&pool, &w.a.token).expect(200);
    let r = api.send(
        api.client
            .post(format!("{}/oauth/revoke", api.base))
            .basic_auth(&w.b.id, Some(&w.b.secret))
            .form(&[("token", w.a.token.as_str())]),
    );
    assert!(
        r.status == 200 || r.status == 400,
        "revocation by another client: {} {}",
        r.status,
        r.text()
    );
    api.get(&pool, &w.a.token).expect(200);
}
