//! Afero compatibility: a partner's existing CI script, run unchanged against `otad serve`.
//!
//! The flow (client-credentials token → exists → create pool record with an empty url →
//! upload → moveToRepository → PUT the url → associate with a device type → push to a
//! device) runs twice in one test, the second time hitting every "already done" answer
//! (`exists` true, 409 `version_exists`, same URL again, 409 `already_associated`). Then the
//! binary is downloaded back (whole, Range, ETag, Repr-Digest), uploaded again as multipart
//! and as multipart-under-octet-stream (same sha256), and the server is restarted: records,
//! the admin credentials and the partner's earlier token still work.

mod api_common;

use api_common::{Server, base64, multipart_body, num, pct, s, sha256, sha256_hex};
use reqwest::Method;
use serde_json::{Value, json};

const FW_TYPE: i64 = 101;
const NAME: &str = "kettle main mcu";
const VERSION: &str = "1.4.2+7d";

/// What one run of the CI script ended with.
struct RunResult {
    version_number: u64,
    url: String,
    image_id: String,
}

/// One run of the partner's CI script. `first` says which answers to expect.
fn ci_run(
    server: &Server,
    pid: &str,
    secret: &str,
    device_type: &str,
    firmware: &[u8],
    device: &str,
    first: bool,
) -> RunResult {
    let api = &server.api;
    let base = format!("/v1/ota/partners/{pid}");
    // 1. token for the CI identity
    let token = api.client_token(pid, secret);

    // 2. does this version exist already? (segments percent-encoded; '+' sent literally)
    let exists_path = format!(
        "{base}/pool/types/{FW_TYPE}/names/{}/versions/{VERSION}/exists",
        pct(NAME)
    );
    let exists = api.get(&exists_path, &token).ok_json(200);
    assert_eq!(exists, json!({ "value": !first }), "exists before creating");

    // 3. create the record before the build, with an empty url
    let create = json!({
        "name": NAME,
        "description": "main MCU firmware",
        "type": FW_TYPE,
        "version": VERSION,
        "url": "",
        "tags": ["ci", "nightly"],
    });
    let created = api.post_json(&format!("{base}/pool"), &token, &create);
    let version_number = if first {
        let rec = created.ok_json(201);
        assert!(
            rec["versionNumber"].is_string(),
            "versionNumber must be a JSON string: {rec}"
        );
        assert!(rec["id"].is_string(), "id must be a JSON string: {rec}");
        assert_eq!(
            rec["type"],
            json!(FW_TYPE),
            "type must be a JSON integer: {rec}"
        );
        assert_eq!(s(&rec, "name"), NAME);
        assert_eq!(s(&rec, "version"), VERSION);
        assert_eq!(s(&rec, "url"), "");
        assert_eq!(s(&rec, "partnerId"), pid);
        assert_eq!(rec["tags"], json!(["ci", "nightly"]));
        assert!(
            rec["createdTimestamp"].is_u64() && rec["updatedTimestamp"].is_u64(),
            "{rec}"
        );
        assert!(
            rec.get("versionAttributeId").is_none(),
            "pool records carry no versionAttributeId: {rec}"
        );
        assert_eq!(num(&rec, "versionNumber"), 1, "every counter starts at 1");
        num(&rec, "versionNumber")
    } else {
        created.expect_error(409, Some("version_exists"));
        // the script then looks the record up in the pool listing
        let page = api
            .get(
                &format!("{base}/pool/types/{FW_TYPE}?sort=versionNumber,desc"),
                &token,
            )
            .ok_json(200);
        let rec = api_common::content(&page)
            .into_iter()
            .find(|r| r["name"] == json!(NAME) && r["version"] == json!(VERSION))
            .unwrap_or_else(|| panic!("record not listed: {page}"));
        num(&rec, "versionNumber")
    };

    // 4. the build uploads the binary
    let sha = api.upload(pid, &token, firmware);
    assert_eq!(sha, sha256_hex(firmware));

    // 5. and moves it into the repository
    let url = api.move_to_repo(pid, &token, &sha);
    assert_eq!(
        url,
        format!("{}/v1/ota/partners/{pid}/binaries/{sha}", api.base),
        "moveToRepository URL"
    );

    // 6. the record gets the url (the script sends the record back whole, with the url)
    let rec_path = format!("{base}/pool/types/{FW_TYPE}/versionNumbers/{version_number}");
    let mut record = api.get(&rec_path, &token).ok_json(200);
    record["url"] = json!(url);
    api.put_json(&rec_path, &token, &record).expect(204);

    // 7. associate the record with the device type, exactly as GET returns it
    let page = api
        .get(&format!("{base}/pool/types/{FW_TYPE}"), &token)
        .ok_json(200);
    let listed = api_common::content(&page)
        .into_iter()
        .find(|r| num(r, "versionNumber") == version_number)
        .unwrap_or_else(|| panic!("record {version_number} not in the listing: {page}"));
    assert_eq!(s(&listed, "url"), url, "PUT url not visible in the listing");
    let assoc = api.post_json(
        &format!("{base}/deviceTypes/{device_type}/firmwareImages"),
        &token,
        &listed,
    );
    let image_id = if first {
        let image = assoc.ok_json(201);
        assert_eq!(s(&image, "deviceTypeId"), device_type);
        assert_eq!(
            s(&image, "id"),
            s(&listed, "id"),
            "image id = pool record id"
        );
        assert_eq!(num(&image, "versionNumber"), version_number);
        assert_eq!(s(&image, "url"), url);
        s(&image, "id")
    } else {
        assoc.expect_error(409, Some("already_associated"));
        let image = api
            .get(
                &format!(
                    "{base}/deviceTypes/{device_type}/firmwareImages/types/{FW_TYPE}/versionNumbers/{version_number}"
                ),
                &token,
            )
            .ok_json(200);
        s(&image, "id")
    };

    // 8. register a device (first run) and push the image to it
    if first {
        api.register_device(pid, &token, device, device_type);
    }
    let push = api
        .put_json(
            &format!("{base}/deviceTypes/{device_type}/firmwareImages/{image_id}/push"),
            &token,
            &json!({ "value": device }),
        )
        .ok_json(202);
    assert_eq!(
        push,
        json!({ "deviceId": device, "firmwareImageId": image_id, "state": "pending" })
    );
    RunResult {
        version_number,
        url,
        image_id,
    }
}

#[test]
fn afero_ci_flow_twice_download_multipart_and_restart() {
    let mut server = Server::start();
    let creds = server.creds();
    let creds_file_before = std::fs::read(server.data.join("initial-credentials.json")).unwrap();
    let admin = server.admin_token();
    let api = server.api.clone();

    // The appliance admin onboards the partner (our extension), the partner owns an MCU type
    // and a device type.
    let (pid, secret, partner) =
        api.create_partner(&admin, "Kettle Co", Some("firmware@kettle.test"));
    assert_eq!(s(&partner, "name"), "Kettle Co");
    assert_eq!(s(&partner, "email"), "firmware@kettle.test");
    let ci = api.client_token(&pid, &secret);
    let tr = api
        .token_request(&pid, &secret, &[("grant_type", "client_credentials")])
        .ok_json(200);
    assert_eq!(
        tr["expires_in"],
        json!(14400),
        "default token lifetime is 4 h: {tr}"
    );
    let t = api.fw_type(&pid, &ci, FW_TYPE, "KETTLE_MCU");
    assert_eq!(t["versionAttributeId"], json!(2000 + FW_TYPE));
    let dt = api.device_type(&pid, &ci, "kettle v2");

    let firmware = api_common::bytes(300_000, 1);
    let first = ci_run(&server, &pid, &secret, &dt, &firmware, "kettle-0001", true);
    let second = ci_run(&server, &pid, &secret, &dt, &firmware, "kettle-0001", false);
    assert_eq!(first.version_number, second.version_number);
    assert_eq!(first.url, second.url, "same bytes → same URL");
    assert_eq!(first.image_id, second.image_id);

    // Download it back with the partner token.
    let whole = api
        .send(api.req_url(Method::GET, &first.url, &ci))
        .expect(200)
        .clone();
    assert_eq!(whole.body.len(), firmware.len(), "whole download length");
    assert!(whole.body == firmware, "whole download bytes differ");
    assert_eq!(
        whole.header("content-length").as_deref(),
        Some(firmware.len().to_string().as_str())
    );
    let etag = whole.header("etag").expect("ETag header");
    assert_eq!(
        etag,
        format!("\"{}\"", blake3::hash(&firmware).to_hex()),
        "ETag = quoted BLAKE3 hex"
    );
    assert_eq!(
        whole.header("repr-digest").as_deref(),
        Some(format!("sha-256=:{}:", base64(&sha256(&firmware))).as_str()),
        "Repr-Digest"
    );
    let ranged = api.send(
        api.req_url(Method::GET, &first.url, &ci)
            .header("Range", "bytes=0-99"),
    );
    ranged.expect(206);
    assert!(ranged.body == firmware[..100], "range body differs");
    assert_eq!(
        ranged.header("content-range").as_deref(),
        Some(format!("bytes 0-99/{}", firmware.len()).as_str())
    );
    assert!(ranged.header("etag").is_some(), "ETag on 206 too");
    let tail_range = api.send(
        api.req_url(Method::GET, &first.url, &ci)
            .header("Range", format!("bytes={}-", firmware.len() - 10)),
    );
    tail_range.expect(206);
    assert!(tail_range.body == firmware[firmware.len() - 10..]);

    // Multipart upload, and the quirk: a multipart body under an octet-stream Content-Type.
    let (ctype, body) = multipart_body(&firmware);
    let v = api
        .post_bytes(
            &format!("/v1/ota/partners/{pid}/binaries"),
            &ci,
            &ctype,
            body.clone(),
        )
        .ok_json(200);
    assert_eq!(
        s(&v, "value"),
        sha256_hex(&firmware),
        "multipart upload sha256"
    );
    let v = api
        .post_bytes(
            &format!("/v1/ota/partners/{pid}/binaries"),
            &ci,
            "application/octet-stream",
            body,
        )
        .ok_json(200);
    assert_eq!(
        s(&v, "value"),
        sha256_hex(&firmware),
        "multipart under octet-stream must be sniffed as multipart"
    );
    // And a small multipart file that is not the same bytes as anything else.
    let small = b"tiny firmware image".to_vec();
    let (ctype, body) = multipart_body(&small);
    let v = api
        .post_bytes(
            &format!("/v1/ota/partners/{pid}/binaries"),
            &ci,
            &ctype,
            body,
        )
        .ok_json(200);
    assert_eq!(s(&v, "value"), sha256_hex(&small));

    // Restart on the same data dir: everything stays, credentials are not rewritten.
    let record_before = api
        .get(
            &format!(
                "/v1/ota/partners/{pid}/pool/types/{FW_TYPE}/versionNumbers/{}",
                first.version_number
            ),
            &ci,
        )
        .ok_json(200);
    server.restart();
    let api = server.api.clone();
    assert_eq!(
        std::fs::read(server.data.join("initial-credentials.json")).unwrap(),
        creds_file_before,
        "a restart must not rewrite initial-credentials.json"
    );
    assert_eq!(server.creds(), creds);
    let record_after = api
        .get(
            &format!(
                "/v1/ota/partners/{pid}/pool/types/{FW_TYPE}/versionNumbers/{}",
                first.version_number
            ),
            &ci,
        )
        .ok_json(200);
    assert_eq!(
        record_before, record_after,
        "pool record changed across a restart"
    );
    // the admin token issued before the restart, and a fresh admin login, both work
    api.get("/v1/admin/partners", &admin).expect(200);
    let admin2 = server.admin_token();
    let partners: Value = api.get("/v1/admin/partners", &admin2).ok_json(200);
    assert!(
        partners
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["partnerId"] == json!(pid))),
        "partner missing after restart: {partners}"
    );
    let image = api
        .get(
            &format!(
                "/v1/ota/partners/{pid}/deviceTypes/{dt}/firmwareImages/types/{FW_TYPE}/versionNumbers/{}",
                first.version_number
            ),
            &ci,
        )
        .ok_json(200);
    assert_eq!(s(&image, "id"), first.image_id);
    let device = api
        .get(&format!("/v1/ota/partners/{pid}/devices/kettle-0001"), &ci)
        .ok_json(200);
    assert_eq!(s(&device, "deviceTypeId"), dt);
    // the binary is still there, under its (old-port) URL's path on the new port
    let path = first
        .url
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .unwrap();
    let again = api.get(&path, &ci).expect(200).clone();
    assert!(again.body == firmware, "binary changed across a restart");
    // and the CI script's first question gets the same answer after the restart
    let exists = api
        .get(
            &format!(
                "/v1/ota/partners/{pid}/pool/types/{FW_TYPE}/names/{}/versions/{VERSION}/exists",
                pct(NAME)
            ),
            &ci,
        )
        .ok_json(200);
    assert_eq!(exists, json!({ "value": true }));
}
