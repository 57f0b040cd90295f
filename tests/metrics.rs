//! `/metrics` after real traffic: uploads (stored and failed), moveToRepository, an OCP/1
//! download by the real device client (`otad device download`), a refused HELLO, and the
//! store's commit times, file size and free space, read with the configured scrape token.
//! Also: every series the server shows is listed in docs/operations.md.

mod api_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use api_common::*;
use serde_json::json;

const SCRAPE_TOKEN: &str = "scrape-0123456789abcdef0123456789abcdef";

fn otad_device(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("device")
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .env_remove("OTAD_DEVICE_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run otad device")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sample lines of a scrape: `name{labels}` → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("bad value in {l:?}: {e}"));
            (key.to_string(), value)
        })
        .collect()
}

fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let r = server.api.get("/metrics", SCRAPE_TOKEN);
    r.expect(200);
    samples(&r.text())
}

#[track_caller]
fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no series {key} in {m:#?}"))
}

#[test]
fn series_follow_real_traffic() {
    let server = Server::start_with_config(&format!("[api]\nmetrics_token = \"{SCRAPE_TOKEN}\"\n"));
    let before = scrape(&server);
    for zero in [
        "otad_uploads_total{result=\"stored\"}",
        "otad_ocp_sessions_total",
        "otad_ocp_checks_total",
        "otad_ocp_chunks_total",
        "otad_ota_states{state=\"downloaded\"}",
        "otad_ocp_errors_total{code=\"AUTH_FAILED\"}",
    ] {
        assert_eq!(value(&before, zero), 0.0, "{zero} before any traffic");
    }

    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, "Metered");
    let (id, tok) = (&tenant.id, &tenant.token);
    let dt = server.api.device_type(id, tok, "metered kettle");
    let device_token = server.api.register_device(id, tok, "metered-1", &dt);
    let size = 300_000usize;
    let data = bytes(size, 17);
    let (_, url) = server.api.publish(id, tok, &data);
    // An empty upload is refused: a failed upload, no bytes.
    server
        .api
        .post_bytes(
            &format!("{}/binaries", tenant.base()),
            tok,
            "application/octet-stream",
            Vec::new(),
        )
        .expect_error(400, Some("empty_binary"));
    let record = server.api.pool_create(
        id,
        tok,
        &json!({"name": "metered-app", "type": 3, "version": "1.0.0", "url": url}),
    );
    server.api.associate(id, tok, &dt, &record);

    // A device downloads the image over OCP/1; another HELLO has a wrong token.
    let work = tempfile::tempdir().expect("temp dir");
    let image = work.path().join("fw.bin");
    let state = work.path().join("fw.state");
    let download = otad_device(
        &server.data,
        &[
            "download",
            "--device-id",
            "metered-1",
            "--token",
            &device_token,
            "--type",
            "3",
            "--state",
            state.to_str().expect("utf-8 path"),
            "--out",
            image.to_str().expect("utf-8 path"),
        ],
    );
    assert!(download.status.success(), "{}", text(&download));
    assert_eq!(std::fs::read(&image).expect("image"), data);
    let refused = otad_device(
        &server.data,
        &[
            "check",
            "--device-id",
            "metered-1",
            "--token",
            "not-the-token",
            "--installed",
            "3=0",
        ],
    );
    assert!(!refused.status.success(), "{}", text(&refused));

    let m = scrape(&server);
    assert_eq!(value(&m, "otad_uploads_total{result=\"stored\"}"), 1.0);
    assert_eq!(value(&m, "otad_uploads_total{result=\"failed\"}"), 1.0);
    assert_eq!(value(&m, "otad_upload_bytes_total"), size as f64);
    assert_eq!(value(&m, "otad_publishes_total"), 1.0);
    assert_eq!(value(&m, "otad_published_bytes_total"), size as f64);
    assert_eq!(value(&m, "otad_blobs"), 1.0);
    assert_eq!(value(&m, "otad_blob_bytes"), size as f64);
    assert_eq!(value(&m, "otad_devices"), 1.0);

    assert!(value(&m, "otad_ocp_connections_total") >= 2.0, "{m:#?}");
    assert!(value(&m, "otad_ocp_sessions_total") >= 1.0, "{m:#?}");
    assert!(value(&m, "otad_ocp_checks_total") >= 1.0, "{m:#?}");
    assert!(value(&m, "otad_ocp_reports_total") >= 1.0, "{m:#?}");
    // Every byte of the image went out in DATA frames, in groups of at most 16 KiB.
    assert_eq!(value(&m, "otad_ocp_chunk_bytes_total"), size as f64);
    assert!(
        value(&m, "otad_ocp_chunks_total") >= (size / 16384) as f64,
        "{m:#?}"
    );
    assert_eq!(
        value(&m, "otad_ocp_errors_total{code=\"AUTH_FAILED\"}"),
        1.0
    );
    assert_eq!(value(&m, "otad_ocp_errors_total{code=\"BUSY\"}"), 0.0);
    assert_eq!(value(&m, "otad_ota_states{state=\"downloaded\"}"), 1.0);
    assert_eq!(value(&m, "otad_ota_states{state=\"failed\"}"), 0.0);

    let durable = "otad_store_commit_seconds_count{durable=\"true\"}";
    assert!(value(&m, durable) >= 5.0, "{m:#?}");
    assert_eq!(
        value(
            &m,
            "otad_store_commit_seconds_bucket{durable=\"true\",le=\"+Inf\"}"
        ),
        value(&m, durable)
    );
    assert!(value(&m, "otad_store_commit_seconds_sum{durable=\"true\"}") > 0.0);
    let file = std::fs::metadata(server.data.join("otad.redb")).expect("db file");
    assert!(value(&m, "otad_database_file_bytes") > 0.0);
    assert!(value(&m, "otad_database_file_bytes") <= file.len() as f64 * 2.0);
    assert!(value(&m, "otad_database_free_bytes") > 0.0);
    assert!(
        value(
            &m,
            "otad_http_requests_total{route=\"/metrics\",status=\"200\"}"
        ) >= 1.0
    );
}

#[test]
fn every_series_is_documented() {
    let server = Server::start_with_config(&format!("[api]\nmetrics_token = \"{SCRAPE_TOKEN}\"\n"));
    let body = server.api.get("/metrics", SCRAPE_TOKEN).text();
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/operations.md");
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 20, "{body}");
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "series not listed in docs/operations.md: {missing:?}"
    );
}
