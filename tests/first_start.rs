//! First start cannot lock the operator out: a start that fails because of something the
//! operator fixes (a busy port, a bad certificate path, a bad device client CA) creates no
//! admin, so the next start after the fix writes the first credentials and they sign in.

mod api_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api_common::{Server, s};
use serde_json::Value;

/// Runs `otad serve` on `data` with `args`; it must exit non-zero within 30 s. Returns its
/// stderr.
fn failing_start(data: &Path, args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn otad serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("otad serve {args:?} kept running; it should have failed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!status.success(), "otad serve {args:?} succeeded: {stderr}");
    assert!(
        !data.join("initial-credentials.json").exists(),
        "a failed first start wrote credentials"
    );
    stderr
}

/// The first admin's credentials of a started server sign in.
fn first_admin_signs_in(server: &Server) {
    let text = std::fs::read_to_string(server.data.join("initial-credentials.json"))
        .expect("the start after the failed one wrote initial-credentials.json");
    let c: Value = serde_json::from_str(&text).expect("credentials are JSON");
    server.api.login(
        &s(&c, "clientId"),
        &s(&c, "clientSecret"),
        &s(&c, "username"),
        &s(&c, "password"),
    );
}

#[test]
fn a_busy_port_at_first_start_leaves_no_admin_behind() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let server = Server::start_prepared(None, |data| {
        let listen = format!("127.0.0.1:{port}");
        let err = failing_start(
            data,
            &["--api-listen", &listen, "--device-listen", "127.0.0.1:0"],
        );
        assert!(err.contains("cannot listen on"), "{err}");
        let err = failing_start(
            data,
            &["--api-listen", "127.0.0.1:0", "--device-listen", &listen],
        );
        assert!(err.contains("cannot listen on"), "{err}");
    });
    drop(busy);
    first_admin_signs_in(&server);
}

#[test]
fn bad_tls_paths_at_first_start_leave_no_admin_behind() {
    let server = Server::start_prepared(None, |data| {
        let root = data.parent().expect("data has a parent");
        for (name, toml) in [
            (
                "cert.toml",
                "[api]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
            ),
            ("ca.toml", "[device]\nclient_ca = \"/nonexistent/ca.pem\"\n"),
        ] {
            let path = root.join(name);
            std::fs::write(&path, toml).expect("write config");
            let err = failing_start(
                data,
                &[
                    "--config",
                    path.to_str().expect("utf-8"),
                    "--api-listen",
                    "127.0.0.1:0",
                    "--device-listen",
                    "127.0.0.1:0",
                ],
            );
            assert!(err.contains("/nonexistent/"), "{name}: {err}");
        }
    });
    first_admin_signs_in(&server);
}
