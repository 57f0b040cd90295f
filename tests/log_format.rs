//! `otad serve --log-format json|text` as journald users run it: with json every line on
//! standard error is one JSON object (timestamp, level, message, the event's fields); text
//! (the default) is plain lines.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs a server with `args`, asks `/healthz` once, stops it with SIGTERM; returns stderr.
fn serve_and_stop(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let err_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--api-listen",
            "127.0.0.1:0",
            "--device-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn otad serve");
    let started = Instant::now();
    let listen: Value = loop {
        if let Ok(text) = fs::read_to_string(data.join("listen.json"))
            && let Ok(v) = serde_json::from_str(&text)
        {
            break v;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "otad serve exited ({status}): {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no listen.json within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let addr = listen["api"].as_str().expect("api address");
    let ca = fs::read(data.join("tls/cert.pem")).expect("cert.pem");
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .build()
        .expect("client");
    let port = addr.rsplit(':').next().expect("port");
    let health = client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .expect("/healthz");
    assert_eq!(health.status(), 200);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no exit within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    fs::read_to_string(&err_path).expect("stderr")
}

#[test]
fn json_logs_are_one_object_per_line() {
    let log = serve_and_stop(&["--log-format", "json"]);
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        for key in ["timestamp", "level", "message"] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
    }
    let request = lines
        .iter()
        .find(|l| l["route"] == "/healthz")
        .unwrap_or_else(|| panic!("no request line for /healthz: {log}"));
    assert_eq!(request["status"], 200, "{request}");
    assert_eq!(request["level"], "INFO", "{request}");
    assert!(
        lines.iter().any(|l| l["message"] == "stopped"),
        "no stop line: {log}"
    );
}

#[test]
fn text_logs_are_the_default() {
    let log = serve_and_stop(&[]);
    assert!(log.contains("otad started"), "{log}");
    assert!(
        log.contains("route=\"/healthz\"") || log.contains("route=/healthz"),
        "{log}"
    );
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "a JSON line in text mode: {log}"
    );
}
