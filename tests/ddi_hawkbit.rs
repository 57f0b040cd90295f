//! The `hawkbit` crate (hawkbit-rs), unmodified, against a real otad over TLS: poll →
//! configData → deploymentBase → download with its MD5, SHA-1 and SHA-256 checks →
//! feedback → closed/success, and the API shows the device confirmed; then a withdrawn
//! offer reaches the client as a cancelAction and its cancel feedback is recorded.

mod api_common;

use std::time::Duration;

use api_common::{Server, s};
use hawkbit::ddi::{Client, ClientAuthorization, Execution, Finished};
use serde_json::{Value, json};

#[derive(serde::Serialize)]
struct ConfigData {
    #[serde(rename = "HwRevision")]
    hw_revision: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn hawkbit_rs_updates_and_cancels() {
    let server = Server::start_with_config("[ddi]\npoll_interval_secs = 5\n");
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Rust");
    let tok = &a.token;
    api.fw_type(&a.id, tok, 130, "APP");
    let data = api_common::bytes(1_500_000, 21);
    let v = api
        .post_bytes(
            &format!("/v1/ota/partners/{}/binaries?filename=app-3.0.bin", a.id),
            tok,
            "application/octet-stream",
            data.clone(),
        )
        .ok_json(200);
    let url = api.move_to_repo(&a.id, tok, &s(&v, "value"));
    let record = api.pool_create(
        &a.id,
        tok,
        &json!({"name": "app", "type": 130, "version": "3.0", "url": url}),
    );
    let dt = api.device_type(&a.id, tok, "rust-gw");
    let image = api.associate(&a.id, tok, &dt, &record);
    let t1 = api.register_device(&a.id, tok, "rs-1", &dt);
    let t2 = api.register_device(&a.id, tok, "rs-2", &dt);
    let ca = server.root().join("data/tls/cert.pem");
    let ca = ca.to_str().expect("utf-8 path").to_string();
    let client = |device: &str, token: &str| {
        Client::new(
            &api.base,
            &a.id,
            device,
            ClientAuthorization::TargetToken(token.to_string()),
            Some(&ca),
            None,
            Some(Duration::from_secs(20)),
        )
        .expect("hawkbit client")
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();

    let downloaded = rt.block_on(async {
        let ddi = client("rs-1", &t1);
        let reply = ddi.poll().await.expect("poll");
        assert_eq!(
            reply.polling_sleep().expect("sleep"),
            Duration::from_secs(5)
        );
        reply
            .config_data_request()
            .expect("configData asked for")
            .upload(
                Execution::Closed,
                Finished::Success,
                None,
                ConfigData {
                    hw_revision: "3".into(),
                },
                vec![],
            )
            .await
            .expect("configData");
        let reply = ddi.poll().await.expect("poll");
        assert!(reply.config_data_request().is_none());
        let update = reply
            .update()
            .expect("an update")
            .fetch()
            .await
            .expect("deploymentBase");
        update
            .send_feedback(Execution::Proceeding, Finished::None, vec!["Downloading"])
            .await
            .expect("feedback");
        let chunk = update.chunks().next().expect("a chunk");
        assert_eq!(
            (chunk.part(), chunk.name(), chunk.version()),
            ("APP", "app", "3.0")
        );
        let artifacts = update.download(dir.path()).await.expect("download");
        assert_eq!(artifacts.len(), 1);
        for artifact in &artifacts {
            artifact.check_md5().await.expect("md5");
            artifact.check_sha1().await.expect("sha1");
            artifact.check_sha256().await.expect("sha256");
        }
        update
            .send_feedback(Execution::Closed, Finished::Success, vec![])
            .await
            .expect("closed");
        let reply = ddi.poll().await.expect("poll");
        assert!(reply.update().is_none(), "nothing more to do");
        std::fs::read(artifacts[0].file()).expect("the downloaded file")
    });
    assert_eq!(downloaded, data, "the payload landed byte for byte");
    let dev = api
        .get(&format!("/v1/ota/partners/{}/devices/rs-1", a.id), tok)
        .ok_json(200);
    assert_eq!(dev["ota"][0]["state"], "confirmed", "{dev}");
    assert_eq!(dev["installed"][0]["versionNumber"], image["versionNumber"]);
    assert_eq!(dev["attributes"], json!({"HwRevision": "3"}), "{dev}");

    // rs-2 fetches the deployment, then the offer is withdrawn.
    rt.block_on(async {
        let ddi = client("rs-2", &t2);
        let update = ddi.poll().await.unwrap().update().expect("update");
        update.fetch().await.expect("deploymentBase");
    });
    api.delete(
        &format!(
            "/v1/ota/partners/{}/deviceTypes/{dt}/firmwareImages/types/130/versionNumbers/{}",
            a.id,
            s(&image, "versionNumber")
        ),
        tok,
    )
    .expect(204);
    rt.block_on(async {
        let ddi = client("rs-2", &t2);
        let reply = ddi.poll().await.expect("poll");
        assert!(reply.update().is_none());
        let cancel = reply.cancel_action().expect("a cancelAction");
        assert!(!cancel.id().await.expect("cancel id").is_empty());
        cancel
            .send_feedback(Execution::Proceeding, Finished::None, vec!["Cancelling"])
            .await
            .expect("cancel feedback");
        cancel
            .send_feedback(Execution::Closed, Finished::Success, vec![])
            .await
            .expect("cancel closed");
        let reply = ddi.poll().await.expect("poll");
        assert!(
            reply.cancel_action().is_none(),
            "the cancellation is answered"
        );
    });
    let dev: Value = api
        .get(&format!("/v1/ota/partners/{}/devices/rs-2", a.id), tok)
        .ok_json(200);
    assert_eq!(dev["ota"][0]["state"], "deferred", "{dev}");
    assert_eq!(dev["ota"][0]["result"], 10, "cancelled: {dev}");
}
