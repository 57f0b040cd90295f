//! Debian's `swupdate` (its suricatta hawkBit client, unmodified) against a real otad over
//! TLS: a CMS-signed `.swu` built here (openssl and cpio) whose `rawfile` handler writes to
//! a temporary path is uploaded, associated and installed; the payload lands byte for byte;
//! swupdate's confirm run (`-c 2`) makes the device confirmed in the API. A corrupted stored
//! artifact (the served bytes no longer match the advertised SHA-1) is refused by swupdate,
//! otad records the failure with its reason, and nothing is written.
//!
//! Needs `swupdate`, `openssl` and `cpio` (`.ci/run` installs them); fails, never skips,
//! without them.

mod api_common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_common::{Server, bytes, s, sha256_hex};
use redb::ReadableTable;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);

fn tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} is required by this test (apt-get install swupdate openssl cpio)"
    );
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `update.swu` in `dir`: sw-description (hardware-compatible with `1.0`) signed
/// with a fresh key (CMS, DER), then the payload, in a `crc` cpio archive.
fn build_swu(dir: &Path, payload: &[u8], target: &Path) -> PathBuf {
    std::fs::write(dir.join("payload.bin"), payload).unwrap();
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "signer.key",
            "-out",
            "signer.pem",
            "-subj",
            "/O=otad test/CN=swu signer",
            "-days",
            "2",
        ],
    );
    let description = format!(
        "software = {{\n  version = \"1.0.0\";\n  hardware-compatibility = [ \"1.0\" ];\n  \
         images: ( {{\n    filename = \"payload.bin\";\n    type = \"rawfile\";\n    \
         path = \"{}\";\n    sha256 = \"{}\";\n  }} );\n}};\n",
        target.display(),
        sha256_hex(payload)
    );
    std::fs::write(dir.join("sw-description"), description).unwrap();
    run(
        dir,
        "openssl",
        &[
            "cms",
            "-sign",
            "-in",
            "sw-description",
            "-out",
            "sw-description.sig",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-outform",
            "DER",
            "-nosmimecap",
            "-binary",
        ],
    );
    let swu = dir.join("update.swu");
    let out = Command::new("sh")
        .args([
            "-c",
            "printf 'sw-description\\nsw-description.sig\\npayload.bin\\n' | cpio -o -H crc > update.swu",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cpio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    swu
}

/// A running swupdate (and the children it starts, in their own process group).
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(dir: &Path, config: &Path, suricatta: &str, log: &str) -> Agent {
        let log = dir.join(log);
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("swupdate")
            .args(["-v", "-H", "otad-test:1.0", "-f"])
            .arg(config)
            .arg("-k")
            .arg(dir.join("signer.pem"))
            .args(["-u", suricatta])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("start swupdate");
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds or the deadline passes (then fails with the agent's log).
fn wait_for(agent: &Agent, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for {what}; swupdate said:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn swupdate_config(
    dir: &Path,
    name: &str,
    url: &str,
    tenant: &str,
    device: &str,
    token: &str,
    ca: &Path,
) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "globals : {{ verbose = true; loglevel = 6; }};\nsuricatta : {{\n  tenant = \"{tenant}\";\n  \
             id = \"{device}\";\n  url = \"{url}\";\n  targettoken = \"{token}\";\n  cafile = \"{}\";\n  \
             polldelay = 1;\n  retry = 1;\n  retrywait = 1;\n}};\n",
            ca.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn swupdate_installs_confirms_and_refuses_a_corrupt_artifact() {
    for t in ["swupdate", "openssl", "cpio"] {
        tool(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let target = dir.join("installed.bin");
    let payload = bytes(400_000, 33);
    let swu = build_swu(dir, &payload, &target);
    let swu_bytes = std::fs::read(&swu).unwrap();

    let mut server = Server::start_with_config("[ddi]\npoll_interval_secs = 1\n");
    let admin = server.admin_token();
    let api = server.api.clone();
    let a = api.tenant(&admin, "Suricatta");
    let tok = &a.token;
    api.fw_type(&a.id, tok, 140, "ROOTFS");
    let v = api
        .post_bytes(
            &format!("/v1/ota/partners/{}/binaries?filename=update.swu", a.id),
            tok,
            "application/octet-stream",
            swu_bytes.clone(),
        )
        .ok_json(200);
    let sha = s(&v, "value");
    let url = api.move_to_repo(&a.id, tok, &sha);
    let record = api.pool_create(
        &a.id,
        tok,
        &json!({"name": "rootfs", "type": 140, "version": "1.0.0", "url": url}),
    );
    let dt = api.device_type(&a.id, tok, "swu-gw");
    api.associate(&a.id, tok, &dt, &record);
    let t1 = api.register_device(&a.id, tok, "swu-1", &dt);
    let t2 = api.register_device(&a.id, tok, "swu-2", &dt);
    let ca = server.data.join("tls/cert.pem");
    let device = |id: &str| -> Value {
        api.get(&format!("/v1/ota/partners/{}/devices/{id}", a.id), tok)
            .ok_json(200)
    };
    let state = |d: &Value| d["ota"][0]["state"].as_str().unwrap_or("").to_string();

    // Install: the payload lands byte for byte; swupdate reports it is installing.
    let cfg = swupdate_config(dir, "swu-1.cfg", &api.base, &a.id, "swu-1", &t1, &ca);
    {
        let agent = Agent::start(dir, &cfg, "-p 1", "install.log");
        wait_for(&agent, "the payload and the installing state", || {
            std::fs::read(&target).is_ok_and(|b| b == payload)
                && state(&device("swu-1")) == "installing"
        });
    }
    // The action stays advertised until the confirm run closes it.
    let d = device("swu-1");
    assert_eq!(state(&d), "installing", "{d}");
    {
        let agent = Agent::start(dir, &cfg, "-p 1 -c 2", "confirm.log");
        wait_for(&agent, "the confirmed state", || {
            state(&device("swu-1")) == "confirmed"
        });
    }
    let d = device("swu-1");
    assert_eq!(
        d["installed"][0]["versionNumber"], record["versionNumber"],
        "{d}"
    );

    // Corrupt the stored artifact inside sw-description (so its signature fails before
    // anything is installed), offline, then serve it again.
    std::fs::remove_file(&target).unwrap();
    server.stop();
    {
        let store = otad::store::Store::open(
            &server.data.join("otad.redb"),
            &otad::config::StorageConfig::default(),
        )
        .expect("open the stopped server's database");
        let sha = otad::model::parse_hash_hex(&sha).unwrap();
        let (_, meta) = store.owned_blob(&a.id, &sha).unwrap().expect("the blob");
        let data_id = meta.data_id;
        store
            .write(true, move |txn| {
                let mut chunks = txn.open_table(otad::store::tables::CHUNKS)?;
                let mut row = chunks
                    .get((data_id, 0))?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                row[140] ^= 0x20;
                chunks.insert((data_id, 0), row.as_slice())?;
                Ok(())
            })
            .unwrap();
    }
    server.spawn();
    let api = server.api.clone();
    let device2 = || -> Value {
        api.get(&format!("/v1/ota/partners/{}/devices/swu-2", a.id), tok)
            .ok_json(200)
    };
    let cfg2 = swupdate_config(dir, "swu-2.cfg", &api.base, &a.id, "swu-2", &t2, &ca);
    {
        let agent = Agent::start(dir, &cfg2, "-p 1", "corrupt.log");
        wait_for(&agent, "the failed state", || state(&device2()) == "failed");
    }
    let d = device2();
    let reason = d["ota"][0]["reason"].as_str().unwrap_or("");
    assert!(
        !reason.is_empty(),
        "the failure carries swupdate's reason: {d}"
    );
    assert!(
        !target.exists(),
        "nothing was written for a corrupt artifact"
    );
    api.get("/healthz", "").expect(200);
}
