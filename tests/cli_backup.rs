//! `otad backup FILE` and `otad db restore FILE` end to end: back up a live server, restore
//! into a fresh data directory, `db verify` it clean, start a server on it and see the same
//! partners, images (with their bytes), devices and logins. Restore refuses while a server
//! holds the directory and will not replace a database without --force.

mod api_common;
mod cli_common;

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use api_common::{POLL, START_TIMEOUT, Server, bytes, sha256_hex, tail};
use cli_common::{Cli, array, field, mode};

/// A server on an existing data directory, killed on drop.
struct Restored {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", tail(&self.log, 60));
        }
    }
}

fn serve(data: &std::path::Path, log: std::path::PathBuf) -> (Restored, String) {
    let listen = data.join("listen.json");
    let child = Command::new(env!("CARGO_BIN_EXE_otad"))
        .args([
            "serve",
            "--api-listen",
            "127.0.0.1:0",
            "--device-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .env_remove("OTAD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn otad serve");
    let mut server = Restored { child, log };
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&listen)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && let Some(a) = v.get("api").and_then(Value::as_str)
        {
            return (server, format!("https://{a}"));
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("otad serve exited ({status}): {}", tail(&server.log, 40));
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "no listen.json: {}",
            tail(&server.log, 40)
        );
        std::thread::sleep(POLL);
    }
}

/// Records without what differs between two servers (the host:port in binary URLs).
fn portable(list: &Value) -> Vec<Value> {
    array(list)
        .into_iter()
        .map(|mut r| {
            if let Some(url) = r.get("url").and_then(Value::as_str) {
                let path = url.splitn(4, '/').nth(3).unwrap_or("").to_string();
                r["url"] = Value::String(path);
            }
            r
        })
        .collect()
}

#[test]
fn backup_restore_verify_and_serve_the_same_records() {
    let mut server = Server::start();
    let admin = Cli::local(&server.data);
    let p = admin.json(&["partner", "create", "Acme"]);
    let (partner, secret) = (field(&p, "partnerId"), field(&p, "clientSecret"));
    let dt = field(
        &admin.json(&["device-type", "create", "Kettle", "--partner", &partner]),
        "id",
    );
    let data = bytes(3 << 20, 9);
    let fw = admin.dir().join("fw.bin");
    std::fs::write(&fw, &data).unwrap();
    let image = admin.json(&[
        "image",
        "upload",
        fw.to_str().unwrap(),
        "--partner",
        &partner,
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "1.0",
        "--associate",
        &dt,
    ]);
    let csv = admin.dir().join("fleet.csv");
    std::fs::write(
        &csv,
        (0..50).map(|i| format!("d-{i},{dt}\n")).collect::<String>(),
    )
    .unwrap();
    admin
        .run(&[
            "device",
            "import",
            csv.to_str().unwrap(),
            "--partner",
            &partner,
            "--out",
            admin.dir().join("tokens.csv").to_str().unwrap(),
        ])
        .ok();

    let partners = admin.json(&["partner", "list"]);
    let images = admin.json(&["image", "list", "--partner", &partner]);
    let devices = admin.json(&["device", "list", "--partner", &partner]);
    let device_types = admin.json(&["device-type", "list", "--partner", &partner]);

    // Online backup while the server runs.
    let file = admin.dir().join("otad-backup.redb");
    let b = admin.json(&["backup", file.to_str().unwrap()]);
    assert_eq!(
        b["bytes"].as_u64(),
        Some(std::fs::metadata(&file).unwrap().len())
    );
    assert_eq!(mode(&file), 0o600);
    admin
        .run(&["backup", file.to_str().unwrap()])
        .fails(4, &["exists"]);

    // Restoring onto the running server's directory is refused.
    admin
        .run(&["db", "restore", file.to_str().unwrap()])
        .fails(1, &["already running", "stop it"]);

    // Into a fresh directory: verified on the way in, then `db verify` agrees.
    let fresh = admin.dir().join("restored");
    let restorer = Cli::local(&fresh);
    let r = restorer.json(&["db", "restore", file.to_str().unwrap()]);
    assert_eq!(r["records"], 1);
    assert_eq!(r["devices"], 50);
    assert_eq!(r["blobs"], 1);
    let verify = restorer.run(&["db", "verify"]);
    verify.ok();
    assert!(
        verify.stdout.contains("database is consistent"),
        "{verify:?}"
    );
    restorer
        .run(&["db", "restore", file.to_str().unwrap()])
        .fails(4, &["--force"]);
    let again = restorer.json(&["db", "restore", file.to_str().unwrap(), "--force"]);
    let kept = std::path::PathBuf::from(field(&again, "replaced"));
    assert!(kept.exists(), "the replaced database is kept");
    restorer
        .run(&["db", "restore", "no-such-file.redb"])
        .fails(3, &["no-such-file"]);
    let junk = admin.dir().join("junk.redb");
    std::fs::write(&junk, b"this is not a database").unwrap();
    let other = Cli::local(&admin.dir().join("other"));
    other
        .run(&["db", "restore", junk.to_str().unwrap()])
        .fails(1, &["not an otad database"]);

    // The original server goes away; one on the restored directory serves the same data.
    server.stop();
    let (_restored, url) = serve(&fresh, admin.dir().join("restored.log"));
    let user = Cli::remote();
    let creds = server.creds();
    let ca = fresh.join("tls").join("cert.pem");
    user.run_stdin(
        &[
            "login",
            "--server",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--client-id",
            &creds.client_id,
            "--client-secret",
            &creds.client_secret,
            "--username",
            &creds.username,
            "--password-stdin",
        ],
        Some(&format!("{}\n", creds.password)),
    )
    .ok();
    assert_eq!(user.json(&["partner", "list"]), partners);
    assert_eq!(
        user.json(&["device-type", "list", "--partner", &partner]),
        device_types
    );
    assert_eq!(
        user.json(&["device", "list", "--partner", &partner]),
        devices
    );
    let restored_images = user.json(&["image", "list", "--partner", &partner]);
    assert_eq!(portable(&restored_images), portable(&images));
    // The partner's own credentials still work, and so do the binary's bytes.
    let mut ci = Cli::remote();
    ci.env("OTAD_CLIENT_SECRET", &secret);
    ci.run(&[
        "login",
        "--server",
        &url,
        "--ca",
        ca.to_str().unwrap(),
        "--client-id",
        &partner,
    ])
    .ok();
    let shown = ci.json(&["image", "show", "3", &field(&image, "versionNumber")]);
    assert_eq!(
        field(&shown, "url").rsplit('/').next(),
        Some(sha256_hex(&data).as_str())
    );
    assert_eq!(array(&shown["associations"]).len(), 1);
}
