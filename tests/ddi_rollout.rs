//! A mixed fleet under one staged rollout, against a real `otad serve` over TLS: an OCP/1
//! device (the reference client) and a hawkBit DDI device (the `hawkbit` crate, unmodified)
//! of the same device type are offered the held image through the rollout, install it and
//! both end confirmed in the rollout's own counters; the rollout then completes and
//! releases the image to the device type.

mod api_common;

use std::time::{Duration, Instant};

use api_common::{Server, num, s};
use hawkbit::ddi::{Client as DdiClient, ClientAuthorization, Execution, Finished};
use otad::client::device::{Client, ClientConfig};
use serde_json::{Value, json};

const FW: u16 = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn an_ocp_device_and_a_ddi_device_both_confirm_under_one_rollout() {
    let server = Server::start_with_config(
        "[storage]\nrollout_tick_ms = 50\n[ddi]\npoll_interval_secs = 5\n",
    );
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Mixed");
    let tok = &a.token;
    let data = api_common::bytes(300_000, 31);
    let (_, url) = api.publish(&a.id, tok, &data);
    let record = api.pool_create(
        &a.id,
        tok,
        &json!({"name": "fw", "type": FW, "version": "2.0", "url": url}),
    );
    let vn = num(&record, "versionNumber");
    let dt = api.device_type(&a.id, tok, "gateway");
    let ocp_token = api.register_device(&a.id, tok, "ocp-1", &dt);
    let ddi_token = api.register_device(&a.id, tok, "ddi-1", &dt);
    let base = a.base();
    let rollout = api
        .post_json(
            &format!("{base}/rollouts"),
            tok,
            &json!({"deviceTypeId": dt, "firmwareImageId": s(&record, "id"),
                    "groups": [{"percent": 100}], "successThreshold": 1.0}),
        )
        .ok_json(201);
    let id = s(&rollout, "id");
    assert_eq!(rollout["groups"][0]["size"], 2, "{rollout}");

    let ca = server.data.join("tls").join("cert.pem");
    let rt = runtime();

    // The OCP/1 device: CHECK → offer, REPORT downloading and installed, then the
    // confirming CHECK running the new number.
    let cfg = ClientConfig {
        addr: server.device_addr(),
        server_name: "localhost".into(),
        ca_file: ca.clone(),
        device_id: "ocp-1".into(),
        token: ocp_token,
        max_frame: 256 * 1024,
        max_inflight: 4,
        chunk_log: 4,
    };
    rt.block_on(async {
        let mut c = Client::connect(&cfg).await.expect("connect");
        let offers = c.check(&[(FW, 0)]).await.expect("check");
        assert!(
            offers
                .iter()
                .any(|o| o.fw_type == FW && o.version_number == vn),
            "the rollout offers the OCP/1 device the image: {offers:?}"
        );
        c.report(FW, vn, 1, 0, 0).await.expect("report downloading");
        c.report(FW, vn, 4, 0, 300_000)
            .await
            .expect("report installed");
        c.check(&[(FW, vn)]).await.expect("confirming check");
    });

    // The DDI device: poll → deployment → download with every hash checked → closed/success.
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_text = ca.to_str().expect("utf-8 path").to_string();
    let downloaded = rt.block_on(async {
        let ddi = DdiClient::new(
            &api.base,
            &a.id,
            "ddi-1",
            ClientAuthorization::TargetToken(ddi_token),
            Some(&ca_text),
            None,
            Some(Duration::from_secs(20)),
        )
        .expect("hawkbit client");
        let update = ddi
            .poll()
            .await
            .expect("poll")
            .update()
            .expect("the rollout offers the DDI device the image")
            .fetch()
            .await
            .expect("deploymentBase");
        update
            .send_feedback(Execution::Proceeding, Finished::None, vec!["Downloading"])
            .await
            .expect("feedback");
        let artifacts = update.download(dir.path()).await.expect("download");
        for artifact in &artifacts {
            artifact.check_md5().await.expect("md5");
            artifact.check_sha1().await.expect("sha1");
            artifact.check_sha256().await.expect("sha256");
        }
        update
            .send_feedback(Execution::Closed, Finished::Success, vec![])
            .await
            .expect("closed");
        std::fs::read(artifacts[0].file()).expect("the downloaded file")
    });
    assert_eq!(downloaded, data, "the DDI payload landed byte for byte");

    // Both confirmed in the rollout itself; it completes and releases the image.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let r = api.get(&format!("{base}/rollouts/{id}"), tok).ok_json(200);
        if r["state"] == "completed" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not complete: {r:#}\n{}",
            server.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["groups"][0]["confirmed"], 2, "{done}");
    assert_eq!(done["groups"][0]["failed"], 0, "{done}");
    let devices = api
        .get(&format!("{base}/rollouts/{id}/devices"), tok)
        .ok_json(200);
    let outcomes: Vec<(String, String)> = devices["content"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|d: &Value| (s(d, "deviceId"), s(d, "outcome")))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        outcomes,
        [
            ("ddi-1".to_string(), "confirmed".to_string()),
            ("ocp-1".to_string(), "confirmed".to_string())
        ],
        "{devices}"
    );
}
