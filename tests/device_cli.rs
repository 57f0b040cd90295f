//! `otad device check`, `download` and `report` as a user runs them: the real binary
//! against a real `otad serve` over real TLS (the harness of `api_common`). Covered: the
//! check table and its JSON, an end-to-end download with its state file and REPORTs (its
//! progress reports in the server's history), a download killed part-way (its progress
//! seen through the API while it ran) and resumed, `download --install` up to confirmed,
//! `report` of a failure with its reason and of the other states, and the exit codes of
//! bad usage (2) and of failures (1, one line). The fleet simulator has its own file
//! (`device_fleet.rs`).

mod api_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use api_common::*;
use serde_json::{Value, json};

/// Longest a single CLI run may take here (debug build, busy machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A server with one partner, one device type, one registered device and one image of
/// type 3 ("2.0.0") associated with the device type.
struct Setup {
    server: Server,
    tenant: Tenant,
    device: String,
    token: String,
    data: Vec<u8>,
    sha256: String,
    version_number: String,
}

fn setup(name: &str, size: usize, seed: u64) -> Setup {
    let server = Server::start();
    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, name);
    let dt = server
        .api
        .device_type(&tenant.id, &tenant.token, &format!("{name} kettle"));
    let device = format!("{name}-dev-1");
    let token = server
        .api
        .register_device(&tenant.id, &tenant.token, &device, &dt);
    let data = bytes(size, seed);
    let (sha256, url) = server.api.publish(&tenant.id, &tenant.token, &data);
    let record = server.api.pool_create(
        &tenant.id,
        &tenant.token,
        &json!({"name": format!("{name}-app"), "type": 3, "version": "2.0.0", "url": url}),
    );
    server
        .api
        .associate(&tenant.id, &tenant.token, &dt, &record);
    Setup {
        version_number: s(&record, "versionNumber"),
        server,
        tenant,
        device,
        token,
        data,
        sha256,
    }
}

/// `otad --data-dir <dir> device <args…>`, with no inherited OTAD_* variables.
fn otad(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otad"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .arg("device")
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .env_remove("OTAD_DEVICE_TOKEN")
        // Never the session of whoever runs the tests: a fresh config home.
        .env("XDG_CONFIG_HOME", data_dir.with_file_name("config-home"))
        .stdin(Stdio::null());
    cmd
}

/// Runs to completion (bounded); returns the output.
fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn otad");
    wait_output(child)
}

fn wait_output(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(out) => out.expect("wait for otad"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("otad device did not finish within {RUN_TIMEOUT:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[track_caller]
fn stdout_json(out: &Output) -> Value {
    expect_code(out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// The error contract: exactly one line on stderr, `otad: …`, no debug dump.
#[track_caller]
fn one_line_error(out: &Output, code: i32, needle: &str) -> String {
    expect_code(out, code);
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err:?}");
    let line = lines[0];
    assert!(line.starts_with("otad: "), "{line:?}");
    assert!(
        line.contains(needle),
        "error line should mention {needle:?}: {line:?}"
    );
    for dump in ["Server {", "Io(", "Custom {", "kind:", "panicked", ".rs:"] {
        assert!(!line.contains(dump), "debug output in the error: {line:?}");
    }
    line.to_string()
}

fn device_addr(server: &Server) -> String {
    let text = std::fs::read_to_string(server.data.join("listen.json")).expect("listen.json");
    let v: Value = serde_json::from_str(&text).expect("listen.json is JSON");
    s(&v, "device")
}

fn read_state(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn state_u64(state: &Value, field: &str) -> u64 {
    state[field]
        .as_u64()
        .unwrap_or_else(|| panic!("state field {field:?} missing or not a number: {state}"))
}

/// The device as the API shows it.
fn device_json(f: &Setup) -> Value {
    f.server
        .api
        .get(
            &format!("{}/devices/{}", f.tenant.base(), f.device),
            &f.tenant.token,
        )
        .ok_json(200)
}

fn sha256_of_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn check_lists_the_offer_as_json_and_as_a_table() {
    let f = setup("chk", 300_123, 1);
    let data_dir = &f.server.data;

    let out = run(otad(
        data_dir,
        &[
            "check",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--installed",
            "3=0",
            "--installed",
            "5=0",
            "--json",
        ],
    ));
    let v = stdout_json(&out);
    assert_eq!(v["deviceId"], f.device.as_str(), "{v}");
    assert_eq!(v["pollIntervalSeconds"], 3600, "{v}");
    let offers = v["offers"].as_array().expect("offers array");
    assert_eq!(offers.len(), 1, "one image, for type 3 only: {v}");
    let o = &offers[0];
    assert_eq!(o["type"], 3, "{o}");
    assert_eq!(o["versionNumber"], f.version_number.as_str(), "{o}");
    assert_eq!(o["version"], "2.0.0", "{o}");
    assert_eq!(o["size"], f.data.len() as u64, "{o}");
    assert_eq!(o["sha256"], f.sha256.as_str(), "{o}");
    assert_eq!(
        o["blake3"],
        hex(blake3::hash(&f.data).as_bytes()).as_str(),
        "{o}"
    );
    assert_eq!(o["pushed"], false, "{o}");

    // Explicit --server/--ca (nothing from the data directory: it does not exist), the
    // token from the environment, and the human table.
    let elsewhere = f.server.root().join("no-such-data-dir");
    let ca = f.server.data.join("tls").join("cert.pem");
    let mut cmd = otad(
        &elsewhere,
        &[
            "check",
            "--server",
            &device_addr(&f.server),
            "--ca",
            ca.to_str().expect("utf-8 path"),
            "--device-id",
            &f.device,
            "--installed",
            "3=0",
        ],
    );
    cmd.env("OTAD_DEVICE_TOKEN", &f.token);
    let out = run(cmd);
    expect_code(&out, 0);
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "header and one row: {table}");
    assert!(
        lines[0].starts_with("TYPE") && lines[0].contains("VERSION_NUMBER"),
        "{table}"
    );
    for cell in [
        "3",
        f.version_number.as_str(),
        "2.0.0",
        &f.data.len().to_string(),
        f.sha256.as_str(),
        "no",
    ] {
        assert!(
            lines[1].split_whitespace().any(|c| c == cell),
            "row lacks {cell:?}: {table}"
        );
    }
    // Columns line up: every header starts where its cell starts.
    let col = lines[0].find("SHA256").expect("SHA256 column");
    assert_eq!(lines[1].find(&f.sha256), Some(col), "{table}");

    // Running the offered number: up to date.
    let out = run(otad(
        data_dir,
        &[
            "check",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--installed",
            &format!("3={}", f.version_number),
            "--json",
        ],
    ));
    let v = stdout_json(&out);
    assert_eq!(v["offers"], json!([]), "{v}");
}

#[test]
fn download_end_to_end_reports_and_is_idempotent() {
    let f = setup("dl", 300_123, 2);
    let work = f.server.root().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let state = work.join("fw.state");
    let image = work.join("fw.bin");
    let args = |json: bool| {
        let mut a = vec![
            "download".to_string(),
            "--device-id".into(),
            f.device.clone(),
            "--token".into(),
            f.token.clone(),
            "--type".into(),
            "3".into(),
            "--installed".into(),
            "0".into(),
            "--state".into(),
            state.display().to_string(),
            "--out".into(),
            image.display().to_string(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };

    // Human mode, stdout not a terminal: plain progress lines, about one per 10%.
    let a = args(false);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(otad(&f.server.data, &a));
    expect_code(&out, 0);
    let stdout = text(&out.stdout);
    let progress: Vec<&str> = stdout.lines().filter(|l| l.contains('%')).collect();
    assert!(
        (5..=11).contains(&progress.len()),
        "expected a progress line per ~10%: {stdout}"
    );
    assert!(
        !stdout.contains('\r'),
        "no carriage returns off a terminal: {stdout:?}"
    );
    assert!(
        progress.last().is_some_and(|l| l.contains("100.0%")),
        "{stdout}"
    );
    assert!(stdout.contains("downloaded "), "{stdout}");
    assert_eq!(sha256_of_file(&image), f.sha256, "the image on disk");

    let st = read_state(&state).expect("state file is JSON");
    assert_eq!(st["blake3"], hex(blake3::hash(&f.data).as_bytes()).as_str());
    assert_eq!(state_u64(&st, "size"), f.data.len() as u64);
    assert_eq!(state_u64(&st, "verified_upto"), f.data.len() as u64);
    assert_eq!(
        state_u64(&st, "version_number").to_string(),
        f.version_number
    );
    assert_eq!(state_u64(&st, "fw_type"), 3);
    assert!(
        !work.join("fw.state.tmp").exists(),
        "temporary state file left behind"
    );

    // The server saw DOWNLOADING from 0, then progress now and then (about every 10 %),
    // then DOWNLOADED (the current state; history is the past).
    let dev = device_json(&f);
    let ota = &dev["ota"][0];
    assert_eq!(ota["state"], "downloaded", "{dev}");
    let history = ota["history"].as_array().expect("history");
    assert_eq!(history[0]["state"], "offered", "{dev}");
    let progress: Vec<u64> = history[1..]
        .iter()
        .map(|e| {
            assert_eq!(e["state"], "downloading", "{dev}");
            e["bytesDone"].as_u64().expect("bytesDone")
        })
        .collect();
    let size = f.data.len() as u64;
    assert_eq!(progress[0], 0, "the start: {dev}");
    assert!(
        (5..=10).contains(&(progress.len() - 1)),
        "a progress report about every 10 %: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]) && progress.iter().all(|b| *b < size),
        "progress rises and stays below the size: {progress:?}"
    );
    assert_eq!(ota["bytesDone"], size, "{dev}");

    // A second run finds the finished state: nothing fetched, file re-checked, exit 0.
    let a = args(true);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let v = stdout_json(&run(otad(&f.server.data, &a)));
    assert_eq!(v["resumedFrom"], f.data.len() as u64, "{v}");
    assert_eq!(v["fetched"], 0, "{v}");
    assert_eq!(v["sha256"], f.sha256.as_str(), "{v}");
    assert_eq!(sha256_of_file(&image), f.sha256);
}

#[test]
fn download_killed_part_way_resumes_from_the_state_file() {
    const SIZE: usize = 20 << 20;
    let f = setup("big", SIZE, 3);
    let work = f.server.root().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let state = work.join("big.state");
    let image = work.join("big.bin");
    let a = [
        "download",
        "--device-id",
        &f.device,
        "--token",
        &f.token,
        "--type",
        "3",
        "--state",
        state.to_str().expect("utf-8 path"),
        "--out",
        image.to_str().expect("utf-8 path"),
        // Frequent saves so the first one comes long before the end of 20 MiB.
        "--save-every",
        "1",
        "--json",
    ];
    let stderr_log = work.join("first-run.stderr");
    let mut first = otad(&f.server.data, &a)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_log).expect("stderr log"))
        .spawn()
        .expect("spawn download");

    // Kill it as soon as the state file shows verified progress.
    let started = Instant::now();
    loop {
        if let Some(st) = read_state(&state)
            && state_u64(&st, "verified_upto") > 0
        {
            break;
        }
        if let Some(status) = first.try_wait().expect("try_wait") {
            panic!(
                "the download ended ({status}) before the state showed progress: {}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < RUN_TIMEOUT,
            "no progress in the state file within {RUN_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // And until the server shows progress part-way: a REPORT DOWNLOADING past 0.
    let seen = loop {
        let dev = device_json(&f);
        let ota = &dev["ota"][0];
        if ota["state"] == "downloading" && ota["bytesDone"].as_u64().is_some_and(|b| b > 0) {
            break ota["bytesDone"].as_u64().unwrap_or(0);
        }
        if let Some(status) = first.try_wait().expect("try_wait") {
            panic!("the download ended ({status}) before the server showed its progress: {dev}");
        }
        assert!(
            started.elapsed() < RUN_TIMEOUT,
            "no progress on the server within {RUN_TIMEOUT:?}: {dev}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        first.try_wait().expect("try_wait").is_none(),
        "the download finished before it could be killed; the test needs a larger image"
    );
    first.kill().expect("kill the download");
    assert!(seen < SIZE as u64, "progress part-way: {seen} of {SIZE}");
    let status = first.wait().expect("wait");
    assert_eq!(
        status.code(),
        None,
        "killed by a signal, not exited: {status}"
    );

    let st = read_state(&state).expect("state after the kill");
    let saved = state_u64(&st, "verified_upto");
    assert!(
        saved > 0 && saved < SIZE as u64,
        "the state must show partial progress: {st}"
    );
    assert_eq!(st["blake3"], hex(blake3::hash(&f.data).as_bytes()).as_str());
    // What the state vouches for is on disk.
    let partial = std::fs::read(&image).expect("partial image");
    assert!(partial.len() as u64 >= saved, "{} < {saved}", partial.len());
    assert!(
        partial[..saved as usize] == f.data[..saved as usize],
        "the first {saved} bytes on disk differ from the image"
    );

    let second = run(otad(&f.server.data, &a));
    let v = stdout_json(&second);
    assert_eq!(v["resumedFrom"], saved, "resumed from the saved state: {v}");
    assert_eq!(v["fetched"], SIZE as u64 - saved, "{v}");
    assert_eq!(v["size"], SIZE as u64, "{v}");
    assert!(
        text(&second.stderr).contains("resuming at"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(
        sha256_of_file(&image),
        f.sha256,
        "the resumed image is correct"
    );
    let st = read_state(&state).expect("final state");
    assert_eq!(state_u64(&st, "verified_upto"), SIZE as u64, "{st}");
    println!(
        "resume: killed after {saved} of {SIZE} bytes were saved; second run fetched the rest"
    );
}

#[test]
fn download_install_ends_confirmed() {
    let f = setup("inst", 200_000, 7);
    let work = f.server.root().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let state = work.join("fw.state");
    let image = work.join("fw.bin");
    let v = stdout_json(&run(otad(
        &f.server.data,
        &[
            "download",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--type",
            "3",
            "--state",
            state.to_str().expect("utf-8 path"),
            "--out",
            image.to_str().expect("utf-8 path"),
            "--install",
            "--json",
        ],
    )));
    assert_eq!(v["installed"], true, "{v}");
    assert_eq!(
        v["nextOffers"],
        json!([]),
        "up to date after the install: {v}"
    );
    assert_eq!(sha256_of_file(&image), f.sha256);

    // The server: confirmed, after downloaded, installing and installed; the device runs
    // the new number.
    let dev = device_json(&f);
    let ota = &dev["ota"][0];
    assert_eq!(ota["state"], "confirmed", "{dev}");
    assert_eq!(ota["versionNumber"], f.version_number.as_str(), "{dev}");
    let states: Vec<&str> = ota["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert!(
        states.ends_with(&["downloaded", "installing", "installed"]),
        "{states:?}"
    );
    let installed = &dev["installed"];
    assert_eq!(installed.as_array().map(Vec::len), Some(1), "{dev}");
    assert_eq!(installed[0]["type"], 3, "{dev}");
    assert_eq!(
        installed[0]["versionNumber"],
        f.version_number.as_str(),
        "{dev}"
    );
    assert_eq!(installed[0]["versionAttributeId"], 2003, "{dev}");

    // Human output says so too.
    let out = run(otad(
        &f.server.data,
        &[
            "download",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--type",
            "3",
            "--state",
            work.join("again.state").to_str().expect("utf-8 path"),
            "--out",
            work.join("again.bin").to_str().expect("utf-8 path"),
            "--install",
        ],
    ));
    expect_code(&out, 0);
    assert!(
        text(&out.stdout).contains("installed: reported INSTALLING and INSTALLED"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn report_sends_any_state_and_failures_with_their_reason() {
    let f = setup("rep", 50_000, 8);
    let dir = &f.server.data;
    // The device is offered the image first (the server takes reports on offers only).
    stdout_json(&run(otad(
        dir,
        &[
            "check",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--installed",
            "3=0",
            "--json",
        ],
    )));
    let report = |extra: &[&str]| {
        let mut a = vec![
            "report",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--type",
            "3",
            "--version-number",
            &f.version_number,
        ];
        a.extend_from_slice(extra);
        run(otad(dir, &a))
    };

    let v = stdout_json(&report(&[
        "--state",
        "downloading",
        "--bytes-done",
        "25000",
        "--json",
    ]));
    assert_eq!(
        (
            v["state"].as_str(),
            v["result"].as_u64(),
            v["bytesDone"].as_u64()
        ),
        (Some("downloading"), Some(0), Some(25_000)),
        "{v}"
    );
    let ota = &device_json(&f)["ota"][0];
    assert_eq!(
        (ota["state"].as_str(), ota["bytesDone"].as_u64()),
        (Some("downloading"), Some(25_000))
    );

    // A failure with its reason, by name; the server keeps the reason.
    let v = stdout_json(&report(&[
        "--state",
        "failed",
        "--result",
        "integrity-failure",
        "--json",
    ]));
    assert_eq!(
        (v["result"].as_u64(), v["resultName"].as_str()),
        (Some(5), Some("integrity-failure")),
        "{v}"
    );
    let ota = &device_json(&f)["ota"][0];
    assert_eq!(
        (ota["state"].as_str(), ota["result"].as_u64()),
        (Some("failed"), Some(5)),
        "{ota}"
    );

    // Numbers work as well as names; defaults: installed → success, deferred → deferred.
    let out = report(&["--state", "3"]);
    expect_code(&out, 0);
    assert!(
        text(&out.stdout).contains("reported installing (result 0 initial)"),
        "{}",
        text(&out.stdout)
    );
    stdout_json(&report(&["--state", "installed", "--json"]));
    assert_eq!(device_json(&f)["ota"][0]["result"], 1);
    stdout_json(&report(&["--state", "deferred", "--json"]));
    let ota = &device_json(&f)["ota"][0];
    assert_eq!(
        (ota["state"].as_str(), ota["result"].as_u64()),
        (Some("deferred"), Some(11)),
        "{ota}"
    );

    // Bad input: usage errors naming what is allowed, before any connection.
    let out = report(&["--state", "failed"]);
    one_line_error(&out, 2, "needs --result");
    assert!(
        text(&out.stderr).contains("update-failed"),
        "{}",
        text(&out.stderr)
    );
    let out = report(&["--state", "installed", "--result", "out-of-ram"]);
    one_line_error(&out, 2, "not allowed with --state installed");
    for (flag, value, needle) in [
        ("--state", "rebooting", "unknown state"),
        ("--state", "7", "unknown state"),
        ("--result", "12", "unknown result"),
    ] {
        let mut a = vec![flag, value];
        if flag == "--result" {
            a.extend(["--state", "failed"]);
        }
        let out = report(&a);
        expect_code(&out, 2);
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
    // An image never offered: the server refuses, one line, exit 1; nothing recorded.
    let out = run(otad(
        dir,
        &[
            "report",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--type",
            "3",
            "--version-number",
            "999",
            "--state",
            "installed",
        ],
    ));
    one_line_error(&out, 1, "FORBIDDEN");
    assert!(
        text(&out.stderr).contains("offered"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(device_json(&f)["ota"][0]["state"], "deferred");
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--token", "t"], "--device-id"),
        (
            &[
                "check",
                "--device-id",
                "d",
                "--token",
                "t",
                "--installed",
                "3",
            ],
            "TYPE=VN",
        ),
        (&["frobnicate"], "frobnicate"),
        (
            &["simulate", "--devices-file", "x.csv", "--concurrency", "0"],
            "--concurrency",
        ),
    ];
    for (args, needle) in cases {
        let out = run(otad(&data, args));
        expect_code(&out, 2);
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: stderr should mention {needle:?}: {}",
            text(&out.stderr)
        );
    }
    // Usage errors found after parsing: one line, still exit 2, before any connection.
    let out = run(otad(
        &data,
        &[
            "download",
            "--device-id",
            "d",
            "--token",
            "t",
            "--state",
            "s",
            "--out",
            "o",
            "--installed",
            "5",
        ],
    ));
    one_line_error(&out, 2, "--type");
    let out = run(otad(
        &data,
        &[
            "download",
            "--device-id",
            "d",
            "--token",
            "t",
            "--state",
            "s",
            "--out",
            "o",
        ],
    ));
    one_line_error(&out, 2, "--type");
    let out = run(otad(
        &data,
        &["check", "--device-id", "not a/valid id", "--token", "t"],
    ));
    one_line_error(&out, 2, "--device-id");
    let out = run(otad(
        &data,
        &[
            "check",
            "--server",
            "no-port",
            "--device-id",
            "d",
            "--token",
            "t",
        ],
    ));
    one_line_error(&out, 2, "HOST:PORT");
}

#[test]
fn failures_exit_1_with_one_line() {
    let f = setup("tok", 10_000, 5);
    let data_dir: PathBuf = f.server.data.clone();
    let out = run(otad(
        &data_dir,
        &[
            "check",
            "--device-id",
            &f.device,
            "--token",
            "not-the-token",
            "--installed",
            "3=0",
        ],
    ));
    one_line_error(&out, 1, "AUTH_FAILED");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let work = f.server.root().join("work");
    let out = run(otad(
        &data_dir,
        &[
            "download",
            "--device-id",
            "tok-unknown",
            "--token",
            &f.token,
            "--type",
            "3",
            "--state",
            work.join("s").to_str().expect("utf-8"),
            "--out",
            work.join("o").to_str().expect("utf-8"),
        ],
    ));
    one_line_error(&out, 1, "token");

    // Nothing offered for the type asked.
    let out = run(otad(
        &data_dir,
        &[
            "download",
            "--device-id",
            &f.device,
            "--token",
            &f.token,
            "--type",
            "9",
            "--state",
            work.join("s").to_str().expect("utf-8"),
            "--out",
            work.join("o").to_str().expect("utf-8"),
        ],
    ));
    one_line_error(&out, 1, "nothing to download");

    // No server in this data directory.
    let empty = f.server.root().join("empty");
    let out = run(otad(
        &empty,
        &["check", "--device-id", &f.device, "--token", &f.token],
    ));
    one_line_error(&out, 1, "listen.json");

    // A port nobody listens on.
    let ca = data_dir.join("tls").join("cert.pem");
    let out = run(otad(
        &empty,
        &[
            "check",
            "--server",
            "127.0.0.1:1",
            "--ca",
            ca.to_str().expect("utf-8"),
            "--device-id",
            &f.device,
            "--token",
            &f.token,
        ],
    ));
    one_line_error(&out, 1, "connection refused");

    // A certificate that is not the server's.
    let other_ca = f.server.root().join("other.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    std::fs::write(&other_ca, cert.cert.pem()).expect("write other CA");
    let out = run(otad(
        &data_dir,
        &[
            "check",
            "--ca",
            other_ca.to_str().expect("utf-8"),
            "--device-id",
            &f.device,
            "--token",
            &f.token,
        ],
    ));
    one_line_error(&out, 1, "TLS");
}
