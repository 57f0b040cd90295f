//! First start cannot lock the operator out: a start that fails because of something the
//! operator fixes (a busy port, a bad certificate path, a bad device client CA) creates no
//! admin, so the next start after the fix writes the first credentials and they sign in; and
//! an operator who lost the password resets it offline (`otad admin reset-password`).

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
    stderr
}

/// `failing_start` as a first start: it must leave no credentials (so no admin) behind.
fn failing_first_start(data: &Path, args: &[&str]) -> String {
    let stderr = failing_start(data, args);
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
        let err = failing_first_start(
            data,
            &["--api-listen", &listen, "--device-listen", "127.0.0.1:0"],
        );
        assert!(err.contains("cannot listen on"), "{err}");
        let err = failing_first_start(
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
            let err = failing_first_start(
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

/// Runs `otad admin reset-password` on the server's data directory.
fn reset_password(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(["admin", "reset-password"])
        .args(args)
        .arg("--data-dir")
        .arg(&server.data)
        .env_remove("OTAD_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run otad admin reset-password")
}

#[test]
fn a_lost_password_is_reset_offline_and_old_sessions_end() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = Server::start();
    let creds = server.creds();
    let old_token = server.admin_token();

    // Refused while the server holds the directory, and nothing changes.
    let out = reset_password(&server, &["admin"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    assert!(!server.data.join("reset-credentials.json").exists());
    server.api.get("/v1/me", &old_token).ok_json(200);

    server.stop();
    let out = reset_password(&server, &["no-such-user"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = reset_password(&server, &["admin"]);
    assert!(out.status.success(), "{out:?}");
    let path = server.data.join("reset-credentials.json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(path.to_str().expect("utf-8")), "{stdout}");
    let mode = std::fs::metadata(&path).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let new: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
    assert_eq!(s(&new, "username"), "admin");
    let password = s(&new, "password");
    assert!(!stdout.contains(&password), "the password is not printed");
    assert_ne!(password, creds.password);

    server.start_again();
    let api = &server.api;
    api.token_request(
        &creds.client_id,
        &creds.client_secret,
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", &creds.password),
        ],
    )
    .expect_error(400, None);
    api.get("/v1/me", &old_token).expect_error(401, None);
    let token = api.login(&creds.client_id, &creds.client_secret, "admin", &password);
    api.get("/v1/me", &token).ok_json(200);
    let audit = api.get("/v1/admin/audit", &token).ok_json(200);
    assert!(
        audit.to_string().contains("user.password_reset"),
        "the reset is audited: {audit}"
    );
}

/// A second `otad serve` on a directory a server holds stops at the database lock, before
/// the certificate step: even a self-signed certificate due for renewal is left as it is
/// under the running server.
#[test]
fn a_second_server_leaves_the_running_ones_certificate_alone() {
    let server = Server::start();
    // Put a certificate due for renewal (valid for one more day) in place of the running
    // server's files, as a long-running appliance would have.
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let tomorrow = i64::try_from(now / 86_400 + 1).expect("days");
    let (y, m, d) = otad::ids::civil_from_days(tomorrow);
    params.not_after = rcgen::date_time_ymd(i32::try_from(y).expect("year"), m, d);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let tls = server.data.join("tls");
    std::fs::write(tls.join("cert.pem"), cert.pem()).expect("write cert");
    std::fs::write(tls.join("key.pem"), key.serialize_pem()).expect("write key");

    let err = failing_start(
        &server.data,
        &[
            "--api-listen",
            "127.0.0.1:0",
            "--device-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(err.contains("already"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tls.join("cert.pem")).expect("read cert"),
        cert.pem(),
        "the second start replaced the certificate under the running server"
    );
}
