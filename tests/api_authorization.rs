//! The authorization matrix of docs/security.md, run cell by cell against a real server:
//! every route × {anonymous, partner A user, partner A client credentials, partner B user,
//! appliance admin, device of A} → allow (2xx), 401 or 403, read from the table in the
//! document so that the document and the server cannot drift. Two more tests hold the table to
//! the router's route table (`otad::api::ROUTES`): the same routes, and the cells
//! that a route's access rule fixes.

mod api_common;

use std::collections::BTreeSet;
use std::path::Path;

use api_common::{Api, Server, Tenant, num, s};
use otad::api::Access;
use otad::signing;
use reqwest::Method;
use serde_json::{Value, json};

const CONFIG: &str = "[api]\nlogin_attempts_per_minute = 1000\n";
const COLUMNS: [&str; 6] = [
    "anonymous",
    "A user",
    "A client",
    "B user",
    "admin",
    "device A",
];
/// Routes under `/v1/ota/partners/{partnerId}` are written relative in the table.
const PARTNER_PREFIXES: [&str; 8] = [
    "/types",
    "/binaries",
    "/pool",
    "/tags",
    "/deviceTypes",
    "/devices",
    "/signingKeys",
    "/rollouts",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Status(u16),
}

#[derive(Debug)]
struct Row {
    method: String,
    route: String,
    cells: Vec<Expect>,
}

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The table between the markers of docs/security.md.
fn matrix() -> Vec<Row> {
    let doc = repo_file("docs/security.md");
    let begin = doc
        .find("<!-- authorization-matrix:begin -->")
        .expect("docs/security.md has no authorization-matrix:begin marker");
    let end = doc
        .find("<!-- authorization-matrix:end -->")
        .expect("docs/security.md has no authorization-matrix:end marker");
    let mut lines = doc[begin..end].lines().filter(|l| l.starts_with('|'));
    let header: Vec<String> = cells(lines.next().expect("matrix header"));
    assert_eq!(
        header[2..],
        COLUMNS.map(String::from),
        "matrix columns changed"
    );
    lines
        .skip(1) // the |---| line
        .map(|line| {
            let c = cells(line);
            assert_eq!(c.len(), 2 + COLUMNS.len(), "bad matrix row: {line}");
            let cells = c[2..]
                .iter()
                .map(|v| match v.as_str() {
                    "allow" => Expect::Allow,
                    n => Expect::Status(
                        n.parse()
                            .unwrap_or_else(|_| panic!("bad cell {n:?} in: {line}")),
                    ),
                })
                .collect();
            Row {
                method: c[0].clone(),
                route: c[1].clone(),
                cells,
            }
        })
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// (METHOD, template) of every row of the route table, partner routes written relative as
/// in the matrix.
fn router_routes() -> BTreeSet<(String, String)> {
    otad::api::ROUTES
        .iter()
        .map(|r| (r.verb.name().to_string(), relative(r.template).to_string()))
        .collect()
}

/// A template as the matrix writes it.
fn relative(template: &str) -> &str {
    template
        .strip_prefix("/v1/ota/partners/{partnerId}")
        .unwrap_or(template)
}

#[test]
fn the_matrix_names_every_route_of_the_router() {
    let table: BTreeSet<(String, String)> =
        matrix().into_iter().map(|r| (r.method, r.route)).collect();
    let router = router_routes();
    assert!(router.len() > 40, "parsed only {} routes", router.len());
    let missing: Vec<_> = router.difference(&table).collect();
    let extra: Vec<_> = table.difference(&router).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/security.md matrix out of date: routes without a row {missing:?}, rows without a route {extra:?}"
    );
}

/// The rules that fix a whole row (the others leave some cells to the handler), as
/// (anonymous, A user, A client, B user, admin, device A).
fn cells_of(access: Access) -> Option<[Expect; 6]> {
    use Expect::{Allow, Status};
    match access {
        // The metrics token is not one of the matrix's callers: to them it is Admin.
        Access::Admin | Access::AdminOrScraper => Some([
            Status(401),
            Status(403),
            Status(403),
            Status(403),
            Allow,
            Status(403),
        ]),
        Access::Partner => Some([Status(401), Allow, Allow, Status(403), Allow, Status(403)]),
        Access::PartnerOrDevice => Some([Status(401), Allow, Allow, Status(403), Allow, Allow]),
        // Bearer tokens are no DDI credential: every matrix caller gets the one DDI 401 (the
        // DDI credentials have their own matrix below).
        Access::Ddi => Some([Status(401); 6]),
        Access::Anonymous | Access::Authenticated => None,
    }
}

#[test]
fn the_matrix_agrees_with_each_routes_access_rule() {
    let rows = matrix();
    for r in otad::api::ROUTES {
        let Some(expected) = cells_of(r.access) else {
            continue;
        };
        let relative = relative(r.template);
        let row = rows
            .iter()
            .find(|row| row.method == r.verb.name() && row.route == relative)
            .unwrap_or_else(|| panic!("no matrix row for {} {relative}", r.verb.name()));
        assert_eq!(
            row.cells,
            expected,
            "{} {relative} is {:?} in the route table",
            r.verb.name(),
            r.access
        );
    }
}

/// What the cells run against: two partners and A's resources.
struct World {
    a: Tenant,
    tokens: [String; 6],
    /// A's MCU firmware type.
    fw_type: i64,
    sha: String,
    record: Value,
    dt: String,
    image: Value,
    device: String,
    /// The password of each column's user ("" where the caller has none).
    passwords: [String; 6],
    /// A's registered signing key, and the signature body for `record` it makes.
    signature: Value,
}

/// A signing key from a seed byte (each cell that registers one uses its own).
fn signing_key(seed: u8) -> signing::SigningKey {
    signing::SigningKey::from_pkcs8(&signing::pkcs8_from_seed(&[seed; 32])).expect("key")
}

fn world(server: &Server) -> World {
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Alpha");
    let b = api.tenant(&admin, "Bravo");
    let a_client = api.client_token(&a.id, &a.secret);
    let tok = &a.token;
    let fw_type = 150;
    api.fw_type(&a.id, tok, fw_type, "MATRIX_MCU");
    let data = api_common::bytes(20_000, 7);
    let (sha, url) = api.publish(&a.id, tok, &data);
    let record = api.pool_create(
        &a.id,
        tok,
        &json!({ "name": "matrix-fw", "type": fw_type, "version": "1.0", "url": url }),
    );
    let dt = api.device_type(&a.id, tok, "matrix-dt");
    let image = api.associate(&a.id, tok, &dt, &record);
    let device = "matrix-device".to_string();
    let device_token = api.register_device(&a.id, tok, &device, &dt);
    let key = signing_key(200);
    api.post_json(
        &format!("{}/signingKeys", a.base()),
        tok,
        &json!({ "name": "matrix-key", "publicKey": signing::to_hex(&key.public_key()) }),
    )
    .expect(201);
    let manifest = signing::Manifest {
        partner_id: a.id.clone(),
        fw_type: u16::try_from(fw_type).expect("type"),
        version_number: num(&record, "versionNumber") as u64,
        version: "1.0".into(),
        size: data.len() as u64,
        sha256: signing::from_hex(&sha).expect("sha"),
        blake3: *blake3::hash(&data).as_bytes(),
        ..Default::default()
    }
    .encode()
    .expect("manifest");
    let signature = json!({
        "keyId": signing::to_hex(&key.key_id()),
        "manifest": signing::to_hex(&manifest),
        "signature": signing::to_hex(&key.sign(&manifest)),
    });
    World {
        tokens: [
            String::new(),
            a.token.clone(),
            a_client,
            b.token.clone(),
            admin,
            device_token,
        ],
        passwords: [
            String::new(),
            a.password.clone(),
            String::new(),
            b.password.clone(),
            server.creds().password,
            String::new(),
        ],
        a,
        fw_type,
        sha,
        record,
        dt,
        image,
        device,
        signature,
    }
}

/// A fresh device type of A with a fresh image (with a binary) that no rollout holds yet:
/// (device type id, image id).
fn fresh_rollout_target(api: &Api, w: &World, name: &str) -> (String, String) {
    let a = &w.a;
    let dt = api.device_type(&a.id, &a.token, &format!("rollout-{name}"));
    let url = s(&w.record, "url");
    let record = api.pool_create(
        &a.id,
        &a.token,
        &json!({ "name": format!("rollout-{name}"), "type": w.fw_type, "version": "1.0", "url": url }),
    );
    (dt, s(&record, "id"))
}

/// A rollout scheduled far ahead (so it stays scheduled until a move).
fn rollout_body(dt: &str, image: &str) -> Value {
    json!({
        "deviceTypeId": dt,
        "firmwareImageId": image,
        "groups": [{"percent": 100}],
        "startAt": 4_102_444_800_000u64,
    })
}

enum Payload {
    None,
    Json(Value),
    Bytes(&'static str, Vec<u8>),
}

/// The concrete request for one cell. Routes that consume something (delete, rotate,
/// move) get a fresh object made by partner A first, so each cell stands alone.
fn request(api: &Api, w: &World, method: &str, route: &str, col: usize) -> (String, Payload) {
    let a = &w.a;
    let tok = &a.token;
    let base = a.base();
    let t = w.fw_type;
    let vn = num(&w.record, "versionNumber");
    let dt = &w.dt;
    let admin = &w.tokens[4];
    let fresh_record = |name: String| -> Value {
        api.pool_create(
            &a.id,
            tok,
            &json!({ "name": name, "type": t, "version": "1.0", "url": "" }),
        )
    };
    let partner_path = |rel: &str| format!("{base}{rel}");
    match (method, route) {
        ("GET", "/healthz") | ("GET", "/metrics") | ("GET", "/v1/admin/partners") => {
            (route.to_string(), Payload::None)
        }
        ("GET", "/v1/admin/audit") | ("GET", "/v1/admin/backup") | ("GET", "/v1/me") => {
            (route.to_string(), Payload::None)
        }
        ("POST", "/oauth/token") => (
            route.to_string(),
            Payload::Bytes(
                "application/x-www-form-urlencoded",
                b"grant_type=client_credentials".to_vec(),
            ),
        ),
        ("POST", "/oauth/revoke") => (
            route.to_string(),
            Payload::Bytes(
                "application/x-www-form-urlencoded",
                format!("token={}", w.tokens[1]).into_bytes(),
            ),
        ),
        ("POST", "/v1/admin/partners") => (
            route.to_string(),
            Payload::Json(json!({ "name": format!("Matrix Partner {col}") })),
        ),
        ("POST", "/v1/admin/partners/{partnerId}/secret") => {
            let (id, _, _) = api.create_partner(admin, &format!("Rotated {col}"), None);
            (format!("/v1/admin/partners/{id}/secret"), Payload::None)
        }
        ("GET", "/v1/admin/partners/{partnerId}/users") => {
            (format!("/v1/admin/partners/{}/users", a.id), Payload::None)
        }
        ("POST", "/v1/admin/partners/{partnerId}/users") => (
            format!("/v1/admin/partners/{}/users", a.id),
            Payload::Json(json!({
                "username": format!("matrix-new-{col}"),
                "password": "matrix-password-123",
                "role": "partner",
            })),
        ),
        ("DELETE", "/v1/admin/partners/{partnerId}/users/{username}") => {
            let user = format!("matrix-gone-{col}");
            api.create_user(admin, &a.id, &user, "matrix-password-123", "partner");
            (
                format!("/v1/admin/partners/{}/users/{user}", a.id),
                Payload::None,
            )
        }
        ("GET", "/types") | ("GET", "/pool") | ("GET", "/tags") | ("GET", "/deviceTypes") => {
            (partner_path(route), Payload::None)
        }
        ("GET", "/devices") | ("GET", "/fleet") => (partner_path(route), Payload::None),
        // The caller's own password, kept: every cell changes it to what it was.
        ("POST", "/v1/me/password") => (
            route.to_string(),
            Payload::Json(json!({
                "currentPassword": w.passwords[col],
                "newPassword": w.passwords[col],
            })),
        ),
        ("POST", "/types") => (
            partner_path(route),
            Payload::Json(json!({
                "name": format!("MATRIX_NEW_{col}"),
                "type": 160 + col as i64,
                "description": "matrix",
            })),
        ),
        ("GET", "/types/{type}") => (partner_path(&format!("/types/{t}")), Payload::None),
        ("PUT", "/types/{type}") => (
            partner_path(&format!("/types/{t}")),
            Payload::Json(json!({ "name": "MATRIX_MCU", "description": format!("edit {col}") })),
        ),
        ("POST", "/binaries") => (
            partner_path(route),
            Payload::Bytes(
                "application/octet-stream",
                format!("matrix upload {col}").into_bytes(),
            ),
        ),
        ("POST", "/binaries/moveToRepository") => {
            let sha = api.upload(&a.id, tok, format!("matrix move {col}").as_bytes());
            (partner_path(route), Payload::Json(json!({ "value": sha })))
        }
        ("GET", "/binaries/{sha256}") | ("HEAD", "/binaries/{sha256}") => {
            (partner_path(&format!("/binaries/{}", w.sha)), Payload::None)
        }
        ("POST", "/pool") => (
            partner_path(route),
            Payload::Json(json!({
                "name": format!("matrix-new-{col}"),
                "type": t,
                "version": "1.0",
                "url": "",
            })),
        ),
        ("GET", "/pool/types/{type}") => (partner_path(&format!("/pool/types/{t}")), Payload::None),
        ("GET", "/pool/types/{type}/names/{name}/versions/{version}/exists") => (
            partner_path(&format!(
                "/pool/types/{t}/names/matrix-fw/versions/1.0/exists"
            )),
            Payload::None,
        ),
        ("GET", "/pool/types/{type}/versionNumbers/{versionNumber}") => (
            partner_path(&format!("/pool/types/{t}/versionNumbers/{vn}")),
            Payload::None,
        ),
        ("PUT", "/pool/types/{type}/versionNumbers/{versionNumber}") => {
            let r = fresh_record(format!("matrix-put-{col}"));
            let n = num(&r, "versionNumber");
            (
                partner_path(&format!("/pool/types/{t}/versionNumbers/{n}")),
                Payload::Json(json!({
                    "name": format!("matrix-put-{col}"),
                    "version": "1.0",
                    "url": "",
                    "description": "edited",
                })),
            )
        }
        ("DELETE", "/pool/types/{type}/versionNumbers/{versionNumber}") => {
            let r = fresh_record(format!("matrix-del-{col}"));
            let n = num(&r, "versionNumber");
            (
                partner_path(&format!("/pool/types/{t}/versionNumbers/{n}")),
                Payload::None,
            )
        }
        ("GET", "/pool/types/{type}/versionNumbers/{versionNumber}/associations") => (
            partner_path(&format!("/pool/types/{t}/versionNumbers/{vn}/associations")),
            Payload::None,
        ),
        ("POST", "/deviceTypes") => (
            partner_path(route),
            Payload::Json(json!({ "name": format!("matrix-new-dt-{col}") })),
        ),
        ("GET", "/deviceTypes/{deviceTypeId}") => {
            (partner_path(&format!("/deviceTypes/{dt}")), Payload::None)
        }
        ("PUT", "/deviceTypes/{deviceTypeId}") => (
            partner_path(&format!("/deviceTypes/{dt}")),
            Payload::Json(json!({ "name": "matrix-dt", "description": format!("edit {col}") })),
        ),
        ("DELETE", "/deviceTypes/{deviceTypeId}") => {
            let gone = api.device_type(&a.id, tok, &format!("matrix-gone-dt-{col}"));
            (partner_path(&format!("/deviceTypes/{gone}")), Payload::None)
        }
        ("GET", "/deviceTypes/{deviceTypeId}/firmwareImages") => (
            partner_path(&format!("/deviceTypes/{dt}/firmwareImages")),
            Payload::None,
        ),
        ("POST", "/deviceTypes/{deviceTypeId}/firmwareImages") => {
            let r = fresh_record(format!("matrix-assoc-{col}"));
            (
                partner_path(&format!("/deviceTypes/{dt}/firmwareImages")),
                Payload::Json(r),
            )
        }
        ("GET", "/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}") => (
            partner_path(&format!("/deviceTypes/{dt}/firmwareImages/types/{t}")),
            Payload::None,
        ),
        (
            "GET",
            "/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}/versionNumbers/{versionNumber}",
        ) => {
            let n = num(&w.image, "versionNumber");
            (
                partner_path(&format!(
                    "/deviceTypes/{dt}/firmwareImages/types/{t}/versionNumbers/{n}"
                )),
                Payload::None,
            )
        }
        (
            "DELETE",
            "/deviceTypes/{deviceTypeId}/firmwareImages/types/{type}/versionNumbers/{versionNumber}",
        ) => {
            let r = fresh_record(format!("matrix-unassoc-{col}"));
            let image = api.associate(&a.id, tok, dt, &r);
            let n = num(&image, "versionNumber");
            (
                partner_path(&format!(
                    "/deviceTypes/{dt}/firmwareImages/types/{t}/versionNumbers/{n}"
                )),
                Payload::None,
            )
        }
        ("PUT", "/deviceTypes/{deviceTypeId}/firmwareImages/{firmwareImageId}/push") => (
            partner_path(&format!(
                "/deviceTypes/{dt}/firmwareImages/{}/push",
                s(&w.image, "id")
            )),
            Payload::Json(json!({ "value": w.device })),
        ),
        ("POST", "/devices") => (
            partner_path(route),
            Payload::Json(json!({ "deviceId": format!("matrix-new-{col}"), "deviceTypeId": dt })),
        ),
        ("POST", "/devices/import") => (
            partner_path(route),
            Payload::Bytes(
                "text/csv",
                format!("deviceId,deviceTypeId\nmatrix-imp-{col},{dt}\n").into_bytes(),
            ),
        ),
        ("GET", "/devices/{deviceId}") => (
            partner_path(&format!("/devices/{}", w.device)),
            Payload::None,
        ),
        ("GET", "/rollouts") => (partner_path("/rollouts"), Payload::None),
        ("POST", "/rollouts") => {
            let (dt, image) = fresh_rollout_target(api, w, &format!("post-{col}"));
            (
                partner_path("/rollouts"),
                Payload::Json(rollout_body(&dt, &image)),
            )
        }
        ("GET", "/rollouts/{rolloutId}")
        | ("GET", "/rollouts/{rolloutId}/devices")
        | ("POST", "/rollouts/{rolloutId}/pause")
        | ("POST", "/rollouts/{rolloutId}/resume")
        | ("POST", "/rollouts/{rolloutId}/advance")
        | ("POST", "/rollouts/{rolloutId}/cancel") => {
            let name = format!(
                "{}{}-{col}",
                method.to_lowercase(),
                route.replace(['/', '{', '}'], "-")
            );
            let (dt, image) = fresh_rollout_target(api, w, &name);
            let r = api
                .post_json(&partner_path("/rollouts"), tok, &rollout_body(&dt, &image))
                .ok_json(201);
            let id = s(&r, "id");
            if route.ends_with("/resume") {
                api.post_json(
                    &partner_path(&format!("/rollouts/{id}/pause")),
                    tok,
                    &json!({}),
                )
                .ok_json(200);
            }
            let rel = route.replace("{rolloutId}", &id);
            let payload = if method == "POST" {
                Payload::Json(json!({}))
            } else {
                Payload::None
            };
            (partner_path(&rel), payload)
        }
        ("PUT", "/devices/{deviceId}") => (
            partner_path(&format!("/devices/{}", w.device)),
            Payload::Json(json!({ "tags": [format!("matrix-{col}")] })),
        ),
        ("DELETE", "/devices/{deviceId}") | ("POST", "/devices/{deviceId}/token") => {
            let id = format!("matrix-{}-{col}", method.to_lowercase());
            api.register_device(&a.id, tok, &id, dt);
            let rel = if method == "DELETE" {
                format!("/devices/{id}")
            } else {
                format!("/devices/{id}/token")
            };
            let payload = if method == "POST" {
                Payload::Json(json!({}))
            } else {
                Payload::None
            };
            (partner_path(&rel), payload)
        }
        ("GET", "/pool/types/{type}/versionNumbers/{versionNumber}/signatures") => (
            partner_path(&format!("/pool/types/{t}/versionNumbers/{vn}/signatures")),
            Payload::None,
        ),
        // The same key signing again replaces its signature, so every allowed cell is a 201.
        ("POST", "/pool/types/{type}/versionNumbers/{versionNumber}/signatures") => (
            partner_path(&format!("/pool/types/{t}/versionNumbers/{vn}/signatures")),
            Payload::Json(w.signature.clone()),
        ),
        ("GET", "/deviceTypes/{deviceTypeId}/signaturePolicy") => (
            partner_path(&format!("/deviceTypes/{dt}/signaturePolicy")),
            Payload::None,
        ),
        // false, so that the push cells still find the image releasable.
        ("PUT", "/deviceTypes/{deviceTypeId}/signaturePolicy") => (
            partner_path(&format!("/deviceTypes/{dt}/signaturePolicy")),
            Payload::Json(json!({ "requireSignature": false })),
        ),
        ("GET", "/signingKeys") => (partner_path(route), Payload::None),
        ("POST", "/signingKeys") => {
            let key = signing_key(col as u8 + 1);
            (
                partner_path(route),
                Payload::Json(json!({
                    "name": format!("matrix-key-{col}"),
                    "publicKey": signing::to_hex(&key.public_key()),
                })),
            )
        }
        ("DELETE", "/signingKeys/{keyId}") => {
            let key = signing_key(col as u8 + 100);
            api.post_json(
                &partner_path("/signingKeys"),
                tok,
                &json!({ "name": format!("matrix-gone-{col}"), "publicKey": signing::to_hex(&key.public_key()) }),
            )
            .expect(201);
            (
                partner_path(&format!("/signingKeys/{}", signing::to_hex(&key.key_id()))),
                Payload::None,
            )
        }
        ("PUT", "/v1/admin/partners/{partnerId}/ddiTenant") => {
            let (id, _, _) = api.create_partner(admin, &format!("Tenant {col}"), None);
            (
                format!("/v1/admin/partners/{id}/ddiTenant"),
                Payload::Json(json!({ "ddiTenant": format!("matrix-tenant-{col}") })),
            )
        }
        ("GET", "/ddi") => (partner_path(route), Payload::None),
        ("POST", "/ddi/gatewayToken") | ("DELETE", "/ddi/gatewayToken") => {
            if method == "DELETE" {
                api.send(api.req(Method::POST, &partner_path(route), tok))
                    .expect(200);
            }
            (partner_path(route), Payload::None)
        }
        (_, r) if r.starts_with("/{tenant}/") => {
            let path = r
                .replace("{tenant}", &a.id)
                .replace("{controllerId}", &w.device)
                .replace("{actionId}", "1")
                .replace("{moduleId}", &s(&w.record, "id"))
                .replace("{filename}", "matrix-fw-1.0.bin");
            let payload = if method == "GET" {
                Payload::None
            } else {
                Payload::Json(
                    json!({"status": {"execution": "proceeding", "result": {"finished": "none"}}}),
                )
            };
            (path, payload)
        }
        _ => panic!("the matrix test has no request for {method} {route}: add one"),
    }
}

#[test]
fn every_route_answers_every_caller_as_the_matrix_says() {
    let rows = matrix();
    assert!(
        rows.iter()
            .any(|r| PARTNER_PREFIXES.iter().any(|p| r.route.starts_with(p))),
        "no partner rows in the matrix"
    );
    let server = Server::start_with_config(CONFIG);
    let api = &server.api;
    let w = world(&server);
    let mut wrong = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for (col, expect) in row.cells.iter().enumerate() {
            let (path, payload) = request(api, &w, &row.method, &row.route, col);
            let method = Method::from_bytes(row.method.as_bytes()).expect("method");
            let mut rb = api.req(method, &path, &w.tokens[col]);
            rb = match payload {
                Payload::None => rb,
                Payload::Json(v) => rb.json(&v),
                Payload::Bytes(ct, data) => rb.header("content-type", ct).body(data),
            };
            let r = api.send(rb);
            cells += 1;
            let ok = match expect {
                Expect::Allow => (200..300).contains(&r.status),
                Expect::Status(code) => r.status == *code,
            };
            if !ok {
                wrong.push(format!(
                    "{} {} as {}: expected {:?}, got {} {}",
                    row.method,
                    path,
                    COLUMNS[col],
                    expect,
                    r.status,
                    r.text().chars().take(200).collect::<String>()
                ));
            }
            // A 401 says how to authenticate (DDI agents know their schemes).
            if r.status == 401
                && !row.route.starts_with("/oauth/")
                && !row.route.starts_with("/{tenant}/")
            {
                assert_eq!(
                    r.header("www-authenticate").as_deref(),
                    Some("Bearer"),
                    "{} {path} as {}",
                    row.method,
                    COLUMNS[col]
                );
            }
        }
    }
    assert_eq!(cells, rows.len() * COLUMNS.len());
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells disagree with docs/security.md:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The server kept serving throughout.
    api.get("/healthz", "").expect(200);
}
