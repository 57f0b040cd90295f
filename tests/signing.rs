//! Signed images end to end, against a real `otad serve` (real TLS, the real redb file, the
//! real binary): `otad keygen`, registered keys, `image upload --sign-key` and `image sign`,
//! a device type that requires signatures (unsigned images neither offered nor pushed),
//! `otad device download --trust-key` verifying the signed OFFER and the bytes and keeping
//! its anti-rollback floor, a replayed older signed offer refused, revocation withdrawing
//! offers, bad signatures and unknown keys refused at upload with nothing stored, and a
//! signature row changed in the database behind a stopped server refused by the device
//! (and reported by `db verify`). The wire form is checked with the reference client: a
//! session that does not ask sees unsigned items, one that asks gets the signature block.

mod api_common;
mod cli_common;

use std::path::Path;

use serde_json::{Value, json};

use api_common::{Server, bytes, sha256_hex};
use cli_common::{Cli, array, field, mode};
use otad::client::device::{Client, ClientConfig, verify_offer};
use otad::ocp::wire;
use otad::signing::{self, Manifest};
use otad::store::{ImageSignature, codec, tables};

fn write(cli: &Cli, name: &str, data: &[u8]) -> String {
    let path = cli.dir().join(name);
    std::fs::write(&path, data).expect("write test file");
    path.to_string_lossy().into_owned()
}

/// `otad device check` for type 3 at `installed`: the offered version numbers.
fn offered(cli: &Cli, device: &str, token: &str, installed: u64) -> Vec<String> {
    let v = cli.json(&[
        "device",
        "check",
        "--device-id",
        device,
        "--token",
        token,
        "--installed",
        &format!("3={installed}"),
    ]);
    v["offers"]
        .as_array()
        .expect("offers")
        .iter()
        .map(|o| field(o, "versionNumber"))
        .collect()
}

struct Device<'a> {
    cli: &'a Cli,
    id: String,
    token: String,
    trust: String,
    state: String,
    out: String,
}

impl Device<'_> {
    fn download(&self) -> cli_common::Run {
        self.cli.run(&[
            "device",
            "download",
            "--device-id",
            &self.id,
            "--token",
            &self.token,
            "--type",
            "3",
            "--installed",
            "0",
            "--trust-key",
            &self.trust,
            "--state",
            &self.state,
            "--out",
            &self.out,
            "--json",
        ])
    }

    fn accepted(&self) -> Value {
        let text = std::fs::read_to_string(&self.state).expect("state file");
        let v: Value = serde_json::from_str(&text).expect("state JSON");
        v["accepted"].clone()
    }
}

fn signatures(cli: &Cli, vn: &str) -> Vec<Value> {
    array(&cli.json(&["image", "signatures", "3", vn]))
}

#[test]
fn signed_images_from_upload_to_device_with_policy_revocation_and_rollback() {
    let mut server = Server::start();
    let cli = Cli::local(&server.data);
    let admin = server.admin_token();

    // keygen: a 0600 private key file, the public key printed; never an overwrite.
    let key_path = cli.dir().join("ci.key");
    let key_file = key_path.to_string_lossy().into_owned();
    let k = cli.json(&["keygen", "--out", &key_file]);
    assert_eq!(mode(&key_path) & 0o777, 0o600);
    let public = field(&k, "publicKey");
    let key_id = field(&k, "keyId");
    assert_eq!(public.len(), 64, "{k}");
    cli.run(&["keygen", "--out", &key_file])
        .fails(4, &["exists already"]);
    // Registering from the private key file sends only its public half.
    let reg = cli.json(&["signing-key", "add", "ci-2026", &key_file]);
    assert_eq!(field(&reg, "keyId"), key_id);
    assert_eq!(field(&reg, "publicKey"), public);
    cli.run(&["signing-key", "add", "again", &public])
        .fails(4, &["signing_key_exists"]);

    let dt = field(&cli.json(&["device-type", "create", "Signed kettle"]), "id");
    let p = cli.json(&["device-type", "require-signature", &dt, "on"]);
    assert_eq!(p["requireSignature"], true);
    let reg = cli.json(&["device", "register", "kettle-1", "--device-type", &dt]);
    let token = field(&reg, "token");

    // An unsigned image of a device type that requires signatures: never offered, never
    // pushed.
    let v1_data = bytes(150_001, 1);
    let v1_file = write(&cli, "v1.bin", &v1_data);
    let v1 = cli.json(&[
        "image",
        "upload",
        &v1_file,
        "--type",
        "3",
        "--name",
        "app",
        "--version",
        "1.0.0",
        "--associate",
        &dt,
    ]);
    let vn1 = field(&v1, "versionNumber");
    let partner = field(&v1, "partnerId");
    assert!(offered(&cli, "kettle-1", &token, 0).is_empty());
    cli.run(&["image", "push", "3", &vn1, "kettle-1"])
        .fails(4, &["signature_required"]);
    // Nor through a staged rollout: creating one is refused for the same reason, and
    // nothing is held.
    let v1b_file = write(&cli, "v1b.bin", &bytes(150_002, 2));
    let v1b = cli.json(&[
        "image",
        "upload",
        &v1b_file,
        "--type",
        "3",
        "--name",
        "app",
        "--version",
        "1.0.1",
    ]);
    let rollouts = format!("/v1/ota/partners/{partner}/rollouts");
    server
        .api
        .post_json(
            &rollouts,
            &admin,
            &json!({"deviceTypeId": dt, "firmwareImageId": field(&v1b, "id"),
                    "groups": [{"percent": 100}]}),
        )
        .expect_error(409, Some("signature_required"));
    assert_eq!(server.api.get(&rollouts, &admin).json()["totalElements"], 0);
    let release = |vn: &str| {
        let store_view = server
            .api
            .get(
                &format!("/v1/ota/partners/{partner}/pool/types/3/versionNumbers/{vn}/signatures"),
                &admin,
            )
            .json();
        array(&store_view).len()
    };
    assert_eq!(release(&vn1), 0);

    // Signed in one step: record, hashes while streaming, signature, then association.
    let v2_data = bytes(300_007, 2);
    let v2_file = write(&cli, "v2.bin", &v2_data);
    let v2 = cli.json(&[
        "image",
        "upload",
        &v2_file,
        "--type",
        "3",
        "--name",
        "app",
        "--version",
        "2.0.0",
        "--sign-key",
        &key_file,
        "--associate",
        &dt,
    ]);
    let vn2 = field(&v2, "versionNumber");
    assert_eq!(field(&v2, "sha256"), sha256_hex(&v2_data));
    assert_eq!(field(&v2["signature"], "keyId"), key_id);
    let sigs = signatures(&cli, &vn2);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0]["valid"], true);
    assert_eq!(offered(&cli, "kettle-1", &token, 0), vec![vn2.clone()]);

    // The device verifies the signed offer and the bytes, and keeps its floor.
    let device = Device {
        cli: &cli,
        id: "kettle-1".into(),
        token: token.clone(),
        trust: public.clone(),
        state: cli
            .dir()
            .join("kettle.state")
            .to_string_lossy()
            .into_owned(),
        out: cli.dir().join("kettle.bin").to_string_lossy().into_owned(),
    };
    let got = device.download().ok().json();
    assert_eq!(field(&got, "versionNumber"), vn2, "{got}");
    assert_eq!(got["signedBy"], json!([key_id]), "{got}");
    assert_eq!(std::fs::read(&device.out).unwrap(), v2_data);
    assert_eq!(device.accepted()["3"], json!(vn2.parse::<u64>().unwrap()));

    // Two-stage signing of the older image makes it releasable; a server that then offers
    // it (the newer one dissociated) is replaying an older signed offer: refused.
    cli.run(&[
        "image",
        "sign",
        "3",
        &vn1,
        "--sign-key",
        &key_file,
        "--file",
        &v2_file,
    ])
    .fails(1, &["is not the binary attached"]);
    cli.json(&[
        "image",
        "sign",
        "3",
        &vn1,
        "--sign-key",
        &key_file,
        "--file",
        &v1_file,
    ]);
    cli.run(&["image", "dissociate", "3", &vn2, &dt]).ok();
    assert_eq!(offered(&cli, "kettle-1", &token, 0), vec![vn1.clone()]);
    device.download().fails(1, &["anti-rollback"]);
    assert_eq!(device.accepted()["3"], json!(vn2.parse::<u64>().unwrap()));
    // The device told the server (FAILED, integrity check failure).
    let seen = server
        .api
        .get(
            &format!("/v1/ota/partners/{partner}/devices/kettle-1"),
            &admin,
        )
        .json();
    assert!(seen.to_string().contains("failed"), "{seen}");

    // Upload-time checks: a bad signature, an unknown key, a manifest of another image are
    // 400 and store nothing.
    let sig_path =
        format!("/v1/ota/partners/{partner}/pool/types/3/versionNumbers/{vn2}/signatures");
    let good = sigs[0].clone();
    let mut bad_sig = good.clone();
    let mut s = signing::from_hex::<64>(&field(&good, "signature")).unwrap();
    s[10] ^= 1;
    bad_sig["signature"] = json!(signing::to_hex(&s));
    for (body, trace) in [
        (bad_sig, "bad_signature"),
        (
            json!({ "keyId": "0011223344556677", "manifest": good["manifest"], "signature": good["signature"] }),
            "unknown_signing_key",
        ),
        (
            json!({ "keyId": key_id, "manifest": signatures(&cli, &vn1)[0]["manifest"], "signature": good["signature"] }),
            "manifest_mismatch",
        ),
        (
            json!({ "keyId": key_id, "manifest": "4f54", "signature": good["signature"] }),
            "bad_manifest",
        ),
    ] {
        server
            .api
            .post_json(&sig_path, &admin, &body)
            .expect_error(400, Some(trace));
    }
    let after = signatures(&cli, &vn2);
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0]["signature"], good["signature"],
        "nothing was stored"
    );

    // Revocation withdraws at once what only that key signed.
    cli.run(&["image", "associate", "3", &vn2, &dt]).ok();
    assert_eq!(offered(&cli, "kettle-1", &token, 0), vec![vn2.clone()]);
    let revoked = cli.json(&["signing-key", "revoke", &key_id]);
    assert_eq!(revoked["revoked"], true);
    assert!(offered(&cli, "kettle-1", &token, 0).is_empty());
    cli.run(&["image", "push", "3", &vn2, "kettle-1"])
        .fails(4, &["signature_required"]);
    server
        .api
        .post_json(&sig_path, &admin, &good)
        .expect_error(400, Some("signing_key_revoked"));

    // A second key signs a new image; then its signature row is changed in the database
    // while the server is stopped.
    let key2_path = cli.dir().join("ci2.key");
    let key2_file = key2_path.to_string_lossy().into_owned();
    let public2 = field(&cli.json(&["keygen", "--out", &key2_file]), "publicKey");
    cli.json(&["signing-key", "add", "ci-2027", &public2]);
    let v3_data = bytes(70_003, 3);
    let v3_file = write(&cli, "v3.bin", &v3_data);
    let v3 = cli.json(&[
        "image",
        "upload",
        &v3_file,
        "--type",
        "3",
        "--name",
        "app",
        "--version",
        "3.0.0",
        "--sign-key",
        &key2_file,
        "--associate",
        &dt,
    ]);
    let vn3 = field(&v3, "versionNumber");
    assert_eq!(offered(&cli, "kettle-1", &token, 0), vec![vn3.clone()]);
    server.stop();
    tamper_signature(&server.data.join("otad.redb"), num(&v3, "id"));
    let verify = cli.run(&["db", "verify"]);
    verify.code(1);
    assert!(
        verify
            .stdout
            .contains("does not verify (changed after it was stored)"),
        "{}",
        verify.stdout
    );
    server.start_again();
    // The server still offers it (it verified at upload, not per offer); the device refuses.
    assert_eq!(offered(&cli, "kettle-1", &token, 0), vec![vn3.clone()]);
    let fresh = Device {
        trust: public2.clone(),
        state: cli.dir().join("fresh.state").to_string_lossy().into_owned(),
        out: cli.dir().join("fresh.bin").to_string_lossy().into_owned(),
        ..device
    };
    fresh
        .download()
        .fails(1, &["no signature by a trusted key verifies"]);
    assert!(!Path::new(&fresh.out).exists() || std::fs::read(&fresh.out).unwrap().is_empty());
    // A key the device does not trust is no better.
    let other = Device {
        trust: public.clone(),
        ..fresh
    };
    other
        .download()
        .fails(1, &["no signature by a trusted key verifies"]);
}

fn num(v: &Value, key: &str) -> u64 {
    field(v, key).parse().expect("a number")
}

/// Flips one bit of the stored signature of `record_id`, as someone with the database file
/// could.
fn tamper_signature(db_path: &Path, record_id: u64) {
    use redb::ReadableTable;
    let db = redb::Database::open(db_path).expect("open the stopped server's database");
    let txn = db.begin_write().expect("write txn");
    {
        let mut table = txn.open_table(tables::IMAGE_SIGNATURES).expect("table");
        let (key, mut sig) = {
            let (k, v) = table
                .range((record_id, "")..)
                .expect("range")
                .next()
                .expect("a signature row")
                .expect("row");
            let sig: ImageSignature = codec::decode(v.value()).expect("decode");
            (k.value().1.to_string(), sig)
        };
        assert_eq!(sig.record_id, record_id);
        sig.signature[0] ^= 0x01;
        let bytes = codec::encode(&sig).expect("encode");
        table
            .insert((record_id, key.as_str()), bytes.as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
}

#[test]
fn a_session_that_asks_gets_the_signature_block_and_one_that_does_not_sees_todays_bytes() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let key_file = cli.dir().join("k.key").to_string_lossy().into_owned();
    let public = field(&cli.json(&["keygen", "--out", &key_file]), "publicKey");
    cli.json(&["signing-key", "add", "k", &public]);
    let dt = field(&cli.json(&["device-type", "create", "Wire kettle"]), "id");
    let token = field(
        &cli.json(&["device", "register", "wire-1", "--device-type", &dt]),
        "token",
    );
    let data = bytes(9_000, 9);
    let file = write(&cli, "w.bin", &data);
    let r = cli.json(&[
        "image",
        "upload",
        &file,
        "--type",
        "3",
        "--name",
        "wire",
        "--version",
        "1.2.3",
        "--sign-key",
        &key_file,
        "--associate",
        &dt,
        "--not-before",
        "1000",
    ]);
    let vn: u64 = num(&r, "versionNumber");
    let public: signing::PublicKey = signing::from_hex(&public).unwrap();

    let cfg = ClientConfig {
        addr: server.device_addr(),
        server_name: "localhost".into(),
        ca_file: server.data.join("tls/cert.pem"),
        device_id: "wire-1".into(),
        token,
        max_frame: 256 * 1024,
        max_inflight: 4,
        chunk_log: 2,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut plain = Client::connect(&cfg).await.expect("connect");
        assert_eq!(plain.granted.features, None);
        let items = plain.check(&[(3, 0)]).await.expect("check");
        assert_eq!(items.len(), 1);
        assert!(items[0].signed.is_none(), "a session that did not ask");
        drop(plain);

        let mut asking =
            Client::connect_with_features(&cfg, None, Some(wire::FEATURE_SIGNED_OFFERS))
                .await
                .expect("connect asking for signatures");
        assert_eq!(asking.granted.features, Some(wire::FEATURE_SIGNED_OFFERS));
        let items = asking.check(&[(3, 0)]).await.expect("check");
        let item = &items[0];
        let block = item.signed.as_ref().expect("a signature block");
        assert_eq!(block.signatures.len(), 1);
        assert_eq!(block.signatures[0].0, signing::key_id(&public));
        let m: Manifest = verify_offer(item, &[public], 0, 2_000).expect("verifies");
        assert_eq!(m.version_number, vn);
        assert_eq!(m.not_before, 1000);
        assert_eq!(m.blake3, *blake3::hash(&data).as_bytes());
        // The device's rules: not before its time, not at or below its floor, not with
        // another key.
        assert!(verify_offer(item, &[public], 0, 999).is_err());
        assert!(verify_offer(item, &[public], vn, 2_000).is_err());
        assert!(verify_offer(item, &[[7u8; 32]], 0, 2_000).is_err());
        let mut changed = item.clone();
        changed.size += 1;
        assert!(verify_offer(&changed, &[public], 0, 2_000).is_err());
    });
}

#[test]
fn signatures_per_image_are_bounded_by_the_config_and_go_with_their_record() {
    let mut server = Server::start_with_config("[storage]\nmax_signatures_per_image = 1\n");
    let cli = Cli::local(&server.data);
    let keys: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            let path = cli.dir().join(format!("{n}.key"));
            let file = path.to_string_lossy().into_owned();
            cli.json(&["keygen", "--out", &file]);
            cli.json(&["signing-key", "add", n, &file]);
            file
        })
        .collect();
    let data = bytes(5_000, 5);
    let file = write(&cli, "x.bin", &data);
    let r = cli.json(&[
        "image",
        "upload",
        &file,
        "--type",
        "3",
        "--name",
        "lim",
        "--version",
        "1",
        "--sign-key",
        &keys[0],
    ]);
    let vn = field(&r, "versionNumber");
    // The same key signs again: its signature is replaced, still one.
    cli.json(&[
        "image",
        "sign",
        "3",
        &vn,
        "--sign-key",
        &keys[0],
        "--file",
        &file,
    ]);
    assert_eq!(signatures(&cli, &vn).len(), 1);
    // Another key would be the second: refused (4, conflict), nothing stored.
    cli.run(&[
        "image",
        "sign",
        "3",
        &vn,
        "--sign-key",
        &keys[1],
        "--file",
        &file,
    ])
    .fails(4, &["too_many_signatures"]);
    assert_eq!(signatures(&cli, &vn).len(), 1);
    // Deleting the record deletes its signature: the database stays consistent.
    cli.run(&["image", "delete", "3", &vn]).ok();
    server.stop();
    let verify = cli.run(&["db", "verify"]);
    verify.code(0);
}

/// A hawkBit DDI agent is handed the signed manifest and every signature over it as the
/// chunk's metadata, and they verify against the partner's public key.
#[test]
fn a_ddi_agent_gets_the_signed_manifest_as_chunk_metadata() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let key_file = cli.dir().join("ddi.key").to_string_lossy().into_owned();
    let k = cli.json(&["keygen", "--out", &key_file]);
    let public: signing::PublicKey =
        signing::from_hex(&field(&k, "publicKey")).expect("public key hex");
    let key_id = field(&k, "keyId");
    cli.json(&["signing-key", "add", "ci", &key_file]);
    let dt = field(&cli.json(&["device-type", "create", "Linux gateway"]), "id");
    let token = field(
        &cli.json(&["device", "register", "gw-1", "--device-type", &dt]),
        "token",
    );
    let file = write(&cli, "gw.bin", &bytes(90_000, 7));
    let up = cli.json(&[
        "image",
        "upload",
        &file,
        "--type",
        "3",
        "--name",
        "gw",
        "--version",
        "3.0.0",
        "--sign-key",
        &key_file,
        "--associate",
        &dt,
    ]);
    let vn: u64 = field(&up, "versionNumber").parse().expect("number");
    let partner = field(&up, "partnerId");

    let get = |url: &str| -> Value {
        let url = if url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", server.api.base)
        };
        let r = server
            .api
            .client
            .get(url)
            .header("authorization", format!("TargetToken {token}"))
            .send()
            .expect("DDI request");
        assert_eq!(r.status().as_u16(), 200);
        r.json().expect("DDI JSON")
    };
    let poll = get(&format!("/{partner}/controller/v1/gw-1"));
    let href = poll["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("a deployment: {poll}"))
        .to_string();
    let deployment = get(&href);
    let chunk = &deployment["deployment"]["chunks"][0];
    let meta: Vec<(String, String)> = chunk["metadata"]
        .as_array()
        .unwrap_or_else(|| panic!("metadata on a signed chunk: {chunk}"))
        .iter()
        .map(|m| (field(m, "key"), field(m, "value")))
        .collect();
    let value = |key: &str| {
        meta.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {key} in {meta:?}"))
    };
    let manifest = hex_bytes(&value("otad.manifest"));
    let signature: signing::Signature =
        signing::from_hex(&value(&format!("otad.signature.{key_id}"))).expect("signature hex");
    assert!(
        signing::verify(&public, &manifest, &signature),
        "the metadata's signature verifies over its manifest"
    );
    let m = Manifest::decode(&manifest).expect("manifest decodes");
    assert_eq!(
        (m.partner_id.as_str(), m.fw_type, m.version_number),
        (partner.as_str(), 3, vn)
    );
    assert_eq!(
        signing::to_hex(&m.sha256),
        chunk["artifacts"][0]["hashes"]["sha256"]
            .as_str()
            .unwrap_or_default()
    );
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16).expect("hex"))
        .collect()
}
