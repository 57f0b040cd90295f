//! A fleet against a real `otad serve` over real TLS: 1,000 devices registered through the
//! CSV import endpoint check and download at once with `otad device simulate` (every chunk
//! verified, every image checked against both hashes, all must succeed), the simulator's
//! failure accounting through the library API (`otad::client::simulate::run`), its install
//! step with injected failures (seeded shares, every device's state on the server), and its
//! defaults without a devices file (its own devices, the associated firmware type).
//! CLI details of `check`/`download`/`report` are in `device_cli.rs`.

mod api_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api_common::*;
use otad::client::install::Ending;
use otad::client::simulate::{self, Mode, Options, SimEvent, Stage};
use serde_json::{Value, json};

/// Simulated devices in the big test, all connected at once.
const FLEET: usize = 1000;
/// Bound on the simulator run (the whole test should take well under a minute).
const SIM_TIMEOUT: Duration = Duration::from_secs(120);

/// The soft RLIMIT_NOFILE of this process, which the server and the simulator inherit.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// Creates a device type with one image of `size` bytes (type 3) associated; returns the
/// device type id.
fn device_type_with_image(
    server: &Server,
    t: &Tenant,
    name: &str,
    size: usize,
    seed: u64,
) -> String {
    let dt = server.api.device_type(&t.id, &t.token, name);
    let (_, url) = server.api.publish(&t.id, &t.token, &bytes(size, seed));
    let record = server.api.pool_create(
        &t.id,
        &t.token,
        &json!({"name": format!("{name}-fw"), "type": 3, "version": "1.0.0", "url": url}),
    );
    server.api.associate(&t.id, &t.token, &dt, &record);
    dt
}

/// Imports devices as CSV; returns the `deviceId,token` answer, verbatim.
fn import(server: &Server, t: &Tenant, rows: &[(String, String)]) -> String {
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for (id, dt) in rows {
        csv.push_str(&format!("{id},{dt}\n"));
    }
    let r = server.api.post_bytes(
        &format!("{}/devices/import", t.base()),
        &t.token,
        "text/csv",
        csv.into_bytes(),
    );
    r.expect(200);
    r.text()
}

fn groups(size: u64) -> u64 {
    size.div_ceil(16 * 1024)
}

#[test]
fn thousand_devices_check_and_download_at_once() {
    // Each simulated device holds a TLS connection, and the server holds the other end:
    // both processes need FLEET descriptors plus their own files, listeners and threads.
    let needed = FLEET as u64 + 512;
    match open_files_limit() {
        Some(limit) if limit >= needed => {}
        Some(limit) => panic!(
            "the open-files limit is {limit}, but {FLEET} simultaneous devices need at least \
             {needed} descriptors in the simulator and in the server; run `ulimit -n 4096` \
             (or higher) before `cargo test`"
        ),
        None => panic!("cannot read the open-files limit from /proc/self/limits"),
    }
    let test_started = Instant::now();
    let server = Server::start();
    let admin = server.admin_token();
    let t = server.api.tenant(&admin, "Fleet");
    // Two device types with different images (one with a partial last group), so every
    // device must be handed its own type's image and nothing else.
    const SIZE_A: usize = 20 * 1024;
    const SIZE_B: usize = 20 * 1024 + 777;
    let dt_a = device_type_with_image(&server, &t, "fleet-a", SIZE_A, 11);
    let dt_b = device_type_with_image(&server, &t, "fleet-b", SIZE_B, 12);
    let rows: Vec<(String, String)> = (0..FLEET)
        .map(|i| {
            let dt = if i % 2 == 0 { &dt_a } else { &dt_b };
            (format!("fleet-{i:04}"), dt.clone())
        })
        .collect();
    let answer = import(&server, &t, &rows);
    let devices_file = server.root().join("fleet.csv");
    std::fs::write(&devices_file, &answer).expect("write devices file");
    let setup = test_started.elapsed();

    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("--data-dir")
        .arg(&server.data)
        .args(["device", "simulate", "--devices-file"])
        .arg(&devices_file)
        .args([
            "--devices",
            &FLEET.to_string(),
            "--concurrency",
            &FLEET.to_string(),
            // No --type: the firmware type comes from the API (the first device's type).
            "--partner",
            &t.id,
            "--json",
        ])
        .env_remove("OTAD_DATA_DIR")
        // A CLI session of whoever runs the tests must not be used: a fresh config home.
        .env("XDG_CONFIG_HOME", server.root().join("config-home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn otad device simulate");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(SIM_TIMEOUT) {
        Ok(out) => out.expect("wait for the simulator"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the simulator did not finish within {SIM_TIMEOUT:?}");
        }
    };
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "simulate --json printed no JSON ({e}), {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "every device must succeed: {v}\nstderr: {stderr}"
    );
    assert_eq!(v["devices"], FLEET, "{v}");
    assert_eq!(v["concurrency"], FLEET, "{v}");
    assert_eq!(v["ok"], FLEET, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["errors"], json!([]), "{v}");
    let half = (FLEET / 2) as u64;
    assert_eq!(
        v["bytes"],
        half * (SIZE_A + SIZE_B) as u64,
        "every device got its own type's image: {v}"
    );
    assert_eq!(v["chunkBytes"], 16 * 1024, "{v}");
    assert_eq!(
        v["verifiedChunks"],
        half * (groups(SIZE_A as u64) + groups(SIZE_B as u64)),
        "{v}"
    );
    for step in ["connect", "check", "download"] {
        assert_eq!(v["latencyMs"][step]["count"], FLEET, "{step}: {v}");
    }

    // The server recorded the downloads (spot checks across both device types).
    for id in ["fleet-0000", "fleet-0001", "fleet-0998", "fleet-0999"] {
        let dev = server
            .api
            .get(&format!("{}/devices/{id}", t.base()), &t.token)
            .ok_json(200);
        assert_eq!(dev["ota"][0]["state"], "downloaded", "{dev}");
        assert!(dev["lastSeenTimestamp"].is_u64(), "{dev}");
    }

    let lat = |step: &str, p: &str| v["latencyMs"][step][p].as_f64().unwrap_or(f64::NAN);
    println!(
        "fleet: {FLEET} devices in {:.2} s (simulator wall {:.2} s, setup {:.2} s, test {:.2} s): \
         {} devices/s, {} MB/s, {} chunks/s; latency ms p50/p90/p99/max: \
         connect+HELLO {}/{}/{}/{}, CHECK {}/{}/{}/{}, download {}/{}/{}/{}",
        v["elapsedSeconds"].as_f64().unwrap_or(f64::NAN),
        wall.as_secs_f64(),
        setup.as_secs_f64(),
        test_started.elapsed().as_secs_f64(),
        v["devicesPerSecond"],
        v["mbPerSecond"],
        v["chunksPerSecond"],
        lat("connect", "p50"),
        lat("connect", "p90"),
        lat("connect", "p99"),
        lat("connect", "max"),
        lat("check", "p50"),
        lat("check", "p90"),
        lat("check", "p99"),
        lat("check", "max"),
        lat("download", "p50"),
        lat("download", "p90"),
        lat("download", "p99"),
        lat("download", "max"),
    );
}

#[test]
fn failed_devices_are_counted_listed_and_exit_1() {
    let server = Server::start();
    let admin = server.admin_token();
    let t = server.api.tenant(&admin, "Mixed");
    const SIZE: usize = 5000;
    let dt = device_type_with_image(&server, &t, "mixed-a", SIZE, 21);
    let bare = server.api.device_type(&t.id, &t.token, "mixed-bare");
    let mut rows: Vec<(String, String)> =
        (0..4).map(|i| (format!("mixed-{i}"), dt.clone())).collect();
    rows.push(("mixed-bare-0".to_string(), bare));
    let answer = import(&server, &t, &rows);
    let mut devices = simulate::parse_devices_csv(&answer).expect("the import answer parses");
    assert_eq!(devices.len(), 5);
    // Two devices present a wrong token; the bare one has nothing to download.
    devices[1].token.push('x');
    devices[3].token = "0".repeat(40);

    let addr = {
        let text = std::fs::read_to_string(server.data.join("listen.json")).expect("listen.json");
        let v: Value = serde_json::from_str(&text).expect("listen.json is JSON");
        s(&v, "device")
    };
    let ca = server.data.join("tls").join("cert.pem");
    let mut opts = Options::new(addr, "localhost", &ca, devices.clone());
    opts.concurrency = 3;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(simulate::run(opts)).expect("simulation runs");
    assert_eq!((report.ok, report.failed), (2, 3), "{report:?}");
    assert_eq!(report.bytes, 2 * SIZE as u64, "{report:?}");
    assert_eq!(report.connect.count, 3, "two refused at HELLO: {report:?}");
    let mut failed: Vec<(&str, Stage)> = report
        .errors
        .iter()
        .map(|f| (f.device_id.as_str(), f.stage))
        .collect();
    failed.sort_by_key(|(id, _)| *id);
    assert_eq!(
        failed,
        [
            ("mixed-1", Stage::Connect),
            ("mixed-3", Stage::Connect),
            ("mixed-bare-0", Stage::Check),
        ],
        "{report:?}"
    );
    for f in &report.errors {
        let expected = if f.stage == Stage::Connect {
            "AUTH_FAILED"
        } else {
            "nothing offered"
        };
        assert!(f.error.contains(expected), "{f:?}");
        assert!(!f.error.contains('\n'), "{f:?}");
    }

    // The same through the CLI: exit 1, the errors listed, one summary line on stderr.
    let file = server.root().join("mixed.csv");
    let csv: String = devices
        .iter()
        .map(|d| format!("{},{}\n", d.id, d.token))
        .collect();
    std::fs::write(&file, csv).expect("write devices file");
    let out = simulate_cli(&server.data, &file, &["--concurrency", "5"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 ok, 3 failed"), "{stdout}");
    assert!(stdout.contains("first 3 errors"), "{stdout}");
    assert!(stdout.contains("mixed-1 (connect)"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "otad: 3 of 5 devices failed",
        "one summary line on stderr"
    );

    // Asking for more devices than the file has is a usage error.
    let out = simulate_cli(&server.data, &file, &["--devices", "6"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

fn simulate_cli(data: &Path, file: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("--data-dir")
        .arg(data)
        .args(["device", "simulate", "--type", "3", "--devices-file"])
        .arg(file)
        .args(extra)
        .env_remove("OTAD_DATA_DIR")
        .env("XDG_CONFIG_HOME", data.with_file_name("config-home"))
        .stdin(Stdio::null())
        .output()
        .expect("run otad device simulate")
}

/// The device listener's address from `listen.json`.
fn device_addr(server: &Server) -> String {
    let text = std::fs::read_to_string(server.data.join("listen.json")).expect("listen.json");
    let v: Value = serde_json::from_str(&text).expect("listen.json is JSON");
    s(&v, "device")
}

#[test]
fn raw_repeat_and_hold_modes() {
    let server = Server::start();
    let admin = server.admin_token();
    let t = server.api.tenant(&admin, "Modes");
    // Five 64 KiB groups and a partial sixth: the last raw GET is clipped.
    const SIZE: usize = 5 * 65536 + 777;
    let dt = device_type_with_image(&server, &t, "modes-a", SIZE, 31);
    let rows: Vec<(String, String)> = (0..6).map(|i| (format!("modes-{i}"), dt.clone())).collect();
    let answer = import(&server, &t, &rows);
    let devices = simulate::parse_devices_csv(&answer).expect("the import answer parses");
    let ca = server.data.join("tls").join("cert.pem");
    let addr = device_addr(&server);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Once, raw 64 KiB GETs: every image hashed whole against the offer, REPORT sent.
    let mut opts = Options::new(&addr, "localhost", &ca, devices[..2].to_vec());
    opts.raw = true;
    opts.chunk_log = 6;
    opts.get_size = Some(65536);
    let r = rt.block_on(simulate::run(opts)).expect("raw run");
    assert_eq!((r.ok, r.failed), (2, 0), "{r:?}");
    assert_eq!(r.bytes, 2 * SIZE as u64, "{r:?}");
    assert_eq!((r.chunks, r.verified_chunks, r.images), (12, 0, 2), "{r:?}");
    assert_eq!((r.get_bytes, r.chunk_bytes), (65536, 65536), "{r:?}");
    let dev = server
        .api
        .get(&format!("{}/devices/modes-0", t.base()), &t.token)
        .ok_json(200);
    assert_eq!(dev["ota"][0]["state"], "downloaded", "{dev}");

    // A GET size that is not a whole number of groups is refused up front.
    let mut opts = Options::new(&addr, "localhost", &ca, devices[..1].to_vec());
    opts.get_size = Some(20_000);
    assert!(matches!(
        rt.block_on(simulate::run(opts)),
        Err(simulate::SimError::GetSize(16384))
    ));

    // Repeat, verified 16 KiB chunks, two groups per GET: every device loops over the image
    // (each pass hashed whole) and only the window's chunks count.
    for raw in [false, true] {
        let mut opts = Options::new(&addr, "localhost", &ca, devices[..4].to_vec());
        opts.raw = raw;
        opts.get_size = Some(32768);
        opts.max_inflight = 4;
        opts.concurrency = 2;
        opts.mode = Mode::Repeat {
            warmup: Duration::from_millis(200),
            window: Duration::from_secs(1),
        };
        let r = rt.block_on(simulate::run(opts)).expect("repeat run");
        assert_eq!((r.ok, r.failed), (4, 0), "raw {raw}: {r:?}");
        assert_eq!(r.window, Some(Duration::from_secs(1)), "{r:?}");
        assert!(r.images >= 4, "every device finished a pass: {r:?}");
        assert!(r.chunks > 0 && r.chunk.count as u64 == r.chunks, "{r:?}");
        assert!(
            r.bytes <= r.chunks * 32768 && r.bytes > (r.chunks - 1) * 16384,
            "{r:?}"
        );
        assert_eq!(r.verified_chunks, if raw { 0 } else { r.chunks }, "{r:?}");
        let v = r.to_json();
        assert_eq!(v["mode"], "repeat", "{v}");
        assert_eq!(v["windowSeconds"], 1.0, "{v}");
    }

    // Hold: all devices connect and CHECK, the hook says so, the server counts them as
    // connected, they PING and stay until the hold ends.
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let mut opts = Options::new(&addr, "localhost", &ca, devices.clone());
    opts.concurrency = 3;
    opts.mode = Mode::Hold {
        hold: Duration::from_secs(3),
        ping_every: Duration::from_secs(1),
    };
    opts.hook = Some(simulate::Hook(std::sync::Arc::new(move |e| {
        let _ = tx.lock().map(|tx| tx.send(e));
    })));
    let held = std::thread::spawn(move || rt.block_on(simulate::run(opts)));
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the all-connected event");
    assert!(
        matches!(
            first,
            SimEvent::AllConnected {
                connected: 6,
                failed: 0,
                ..
            }
        ),
        "{first:?}"
    );
    let metrics = server.api.get("/metrics", &admin);
    metrics.expect(200);
    assert!(
        metrics
            .text()
            .lines()
            .any(|l| l == "otad_connected_devices 6"),
        "{}",
        metrics.text()
    );
    let r = held.join().expect("hold thread").expect("hold run");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(SimEvent::HoldEnd)
    );
    assert_eq!((r.ok, r.failed, r.held), (6, 0, 6), "{r:?}");
    assert!(r.pings >= 6, "every device pinged at least once: {r:?}");
    assert!(r.elapsed >= Duration::from_secs(3), "{r:?}");
    assert_eq!(r.check.count, 6, "{r:?}");

    // The same through the CLI: the progress lines on stderr, the JSON on stdout.
    let file = server.root().join("modes.csv");
    std::fs::write(&file, &answer).expect("write devices file");
    let out = simulate_cli(
        &server.data,
        &file,
        &["--hold", "1", "--ping-every", "1", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (v["mode"].as_str(), v["held"].as_u64()),
        (Some("hold"), Some(6)),
        "{v}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("otad: simulate: all connected: 6 devices (0 failed)"),
        "{stderr}"
    );
    assert!(stderr.contains("otad: simulate: hold ended"), "{stderr}");
    let out = simulate_cli(
        &server.data,
        &file,
        &[
            "--devices",
            "2",
            "--repeat-seconds",
            "1",
            "--warmup-seconds",
            "0",
            "--chunk-log",
            "6",
            "--raw",
            "--get-size",
            "65536",
            "--skip-image-hash",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("raw, unverified"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("window started") && stderr.contains("window ended"),
        "{stderr}"
    );
    // --get-size must be whole groups; --warmup-seconds belongs to --repeat-seconds.
    let out = simulate_cli(&server.data, &file, &["--get-size", "5000"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = simulate_cli(&server.data, &file, &["--warmup-seconds", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Runs `otad --data-dir <data> device simulate <args>` to completion (bounded), with no
/// inherited OTAD_* variables and a config home of its own (no saved login).
fn simulate_run(server: &Server, args: &[&str]) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("--data-dir")
        .arg(&server.data)
        .args(["device", "simulate"])
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .env_remove("OTAD_PARTNER")
        .env_remove("OTAD_URL")
        .env_remove("OTAD_TOKEN")
        .env("XDG_CONFIG_HOME", server.root().join("config-home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn otad device simulate");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SIM_TIMEOUT) {
        Ok(out) => out.expect("wait for the simulator"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the simulator did not finish within {SIM_TIMEOUT:?}");
        }
    }
}

#[track_caller]
fn json_out(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"))
}

/// Device type `name` with an image of MCU type 101 ("1.0.0") associated; returns the
/// device type id and the image's version number.
fn mcu_device_type(server: &Server, t: &Tenant, name: &str, seed: u64) -> (String, u64) {
    let dt = server.api.device_type(&t.id, &t.token, name);
    let (_, url) = server.api.publish(&t.id, &t.token, &bytes(40_000, seed));
    let record = server.api.pool_create(
        &t.id,
        &t.token,
        &json!({"name": format!("{name}-mcu"), "type": 101, "version": "1.0.0", "url": url}),
    );
    server.api.associate(&t.id, &t.token, &dt, &record);
    let vn: u64 = s(&record, "versionNumber").parse().expect("versionNumber");
    (dt, vn)
}

#[test]
fn simulate_installs_with_injected_failures_and_registers_its_own_fleet() {
    const N: usize = 200;
    let server = Server::start();
    let admin = server.admin_token();
    let t = server.api.tenant(&admin, "Inject");
    server.api.fw_type(&t.id, &t.token, 101, "MCU_MAIN");
    let (dt, vn) = mcu_device_type(&server, &t, "inject-kettle", 41);

    // No --devices-file, no --type: the simulator registers N devices for the partner
    // under its only device type with an image, and simulates that image's type (101).
    let tokens = server.root().join("sim-tokens.csv");
    let fleet_state = server.root().join("fleet-state.csv");
    let started = Instant::now();
    let out = simulate_run(
        &server,
        &[
            "--partner",
            &t.id,
            "--devices",
            &N.to_string(),
            "--concurrency",
            "50",
            "--fail-share",
            "0.2",
            "--fail-result",
            "not-enough-flash",
            "--never-confirm-share",
            "0.1",
            "--install-secs",
            "0.5",
            "--seed",
            "5",
            "--devices-out",
            tokens.to_str().expect("utf-8 path"),
            "--fleet-state",
            fleet_state.to_str().expect("utf-8 path"),
            "--json",
        ],
    );
    let elapsed = started.elapsed();
    let v = json_out(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("registered {N} devices"))
            && stderr.contains(&format!("device type {dt}, firmware type 101")),
        "{stderr}"
    );
    assert_eq!(
        (v["devices"].as_u64(), v["ok"].as_u64()),
        (Some(N as u64), Some(N as u64)),
        "{v}"
    );
    assert_eq!(
        v["failed"], 0,
        "injected failures are outcomes, not failures: {v}"
    );
    assert!(
        elapsed >= Duration::from_millis(500),
        "every install took 0.5 s"
    );

    // The devices it registered, with their tokens, 0600.
    let csv = std::fs::read_to_string(&tokens).expect("tokens file");
    let devices = simulate::parse_devices_csv(&csv).expect("tokens CSV");
    assert_eq!(devices.len(), N);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&tokens)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "tokens are secrets");

    // Exactly the devices the seeded hash picks, in shares within sampling error.
    let plan = simulate::Install {
        fail_share: 0.2,
        fail_result: 2,
        never_confirm_share: 0.1,
        seed: 5,
        ..simulate::Install::default()
    };
    let endings: Vec<Ending> = devices.iter().map(|d| plan.ending(&d.id)).collect();
    let count = |e: Ending| endings.iter().filter(|x| **x == e).count();
    let (failed, never, confirmed) = (
        count(Ending::Fail(2)),
        count(Ending::NeverConfirm),
        count(Ending::Confirm),
    );
    assert_eq!(
        v["install"],
        json!({
            "installed": never + confirmed,
            "confirmed": confirmed,
            "failed": failed,
            "neverConfirmed": never,
        }),
        "{v}"
    );
    // 4 standard deviations of a binomial share at n = 200.
    let share = |k: usize| k as f64 / N as f64;
    assert!((share(failed) - 0.2).abs() < 0.12, "{failed} of {N} failed");
    assert!(
        (share(never) - 0.1).abs() < 0.09,
        "{never} of {N} never confirmed"
    );

    // The server's view of every device matches what it was made to do.
    for (d, ending) in devices.iter().zip(&endings) {
        let dev = server
            .api
            .get(&format!("{}/devices/{}", t.base(), d.id), &t.token)
            .ok_json(200);
        assert_eq!(dev["deviceTypeId"], dt.as_str(), "{dev}");
        let ota = &dev["ota"][0];
        assert_eq!(ota["type"], 101, "{dev}");
        assert_eq!(ota["versionNumber"], vn.to_string(), "{dev}");
        let history: Vec<&str> = ota["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter_map(|e| e["state"].as_str())
            .collect();
        match ending {
            Ending::Fail(_) => {
                assert_eq!(ota["state"], "failed", "{dev}");
                assert_eq!(ota["result"], 2, "the reason: not enough flash: {dev}");
                assert_eq!(history, ["offered", "downloaded", "installing"], "{dev}");
            }
            Ending::NeverConfirm => {
                assert_eq!(ota["state"], "installed", "{dev}");
                assert_eq!(ota["result"], 1, "{dev}");
            }
            Ending::Confirm => {
                assert_eq!(ota["state"], "confirmed", "{dev}");
                assert_eq!(
                    history,
                    ["offered", "downloaded", "installing", "installed"],
                    "{dev}"
                );
                let installed = &dev["installed"];
                assert_eq!(installed.as_array().map(Vec::len), Some(1), "{dev}");
                assert_eq!(installed[0]["type"], 101, "the confirming CHECK: {dev}");
                assert_eq!(
                    installed[0]["versionNumber"],
                    vn.to_string(),
                    "the confirming CHECK: {dev}"
                );
            }
        }
    }

    // The same devices again from the file, installed already: nothing offered for them.
    let out = simulate_run(
        &server,
        &[
            "--devices-file",
            tokens.to_str().expect("utf-8 path"),
            "--type",
            "101",
            "--installed",
            &vn.to_string(),
            "--devices",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("nothing offered for type 101 at installed version"),
        "{out:?}"
    );

    // Accepted as up to date when asked (devices a staged rollout has not reached).
    let v = json_out(&simulate_run(
        &server,
        &[
            "--devices-file",
            tokens.to_str().expect("utf-8 path"),
            "--type",
            "101",
            "--installed",
            &vn.to_string(),
            "--devices",
            "3",
            "--allow-no-offer",
            "--json",
        ],
    ));
    assert_eq!(
        (
            v["ok"].as_u64(),
            v["failed"].as_u64(),
            v["notOffered"].as_u64()
        ),
        (Some(3), Some(0), Some(3)),
        "{v}"
    );

    // The next pass of the same fleet from its state file: the devices that never confirmed
    // stay away, the confirmed ones CHECK with the new number (nothing offered), and the
    // ones that failed try again, this time without injected failures, and confirm.
    let state = std::fs::read_to_string(&fleet_state).expect("fleet state file");
    assert_eq!(state.lines().count(), 1 + confirmed + never, "{state}");
    let v = json_out(&simulate_run(
        &server,
        &[
            "--devices-file",
            tokens.to_str().expect("utf-8 path"),
            "--type",
            "101",
            "--install",
            "--allow-no-offer",
            "--fleet-state",
            fleet_state.to_str().expect("utf-8 path"),
            "--json",
        ],
    ));
    assert_eq!(v["devices"], N - never, "{v}");
    assert_eq!(v["notOffered"], confirmed, "{v}");
    assert_eq!(
        (
            v["install"]["confirmed"].as_u64(),
            v["install"]["failed"].as_u64()
        ),
        (Some(failed as u64), Some(0)),
        "{v}"
    );
    let state = std::fs::read_to_string(&fleet_state).expect("fleet state file");
    assert_eq!(
        state.lines().count(),
        1 + N,
        "every device recorded now: {state}"
    );
    for (d, ending) in devices.iter().zip(&endings) {
        if *ending == Ending::Fail(2) {
            let dev = server
                .api
                .get(&format!("{}/devices/{}", t.base(), d.id), &t.token)
                .ok_json(200);
            assert_eq!(dev["ota"][0]["state"], "confirmed", "retried: {dev}");
        }
    }

    // Defaults that cannot be decided are usage errors that say what to pass.
    let (dt2, _) = mcu_device_type(&server, &t, "inject-toaster", 42);
    let out = simulate_run(&server, &["--partner", &t.id, "--devices", "2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("several device types")
            && stderr.contains(&dt2)
            && stderr.contains("--device-type"),
        "{stderr}"
    );
    // Naming the device type settles it; a plain run (no install) stops at DOWNLOADED.
    let v = json_out(&simulate_run(
        &server,
        &[
            "--partner",
            &t.id,
            "--device-type",
            &dt2,
            "--devices",
            "2",
            "--json",
        ],
    ));
    assert_eq!((v["ok"].as_u64(), v.get("install")), (Some(2), None), "{v}");
    // Shares that cannot hold, and a reason that is no failure.
    for bad in [
        &["--fail-share", "1.5"][..],
        &["--fail-share", "0.7", "--never-confirm-share", "0.4"],
        &["--fail-share", "0.1", "--fail-result", "success"],
        &["--install-secs", "1", "--hold", "5"],
    ] {
        let mut args = vec!["--partner", t.id.as_str(), "--device-type", dt2.as_str()];
        args.extend_from_slice(bad);
        let out = simulate_run(&server, &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
    }
}
