//! The OTA Manager web UI in a real headless Chromium, driven over chromedriver's W3C
//! WebDriver HTTP protocol with reqwest's blocking client, against a real `otad serve`
//! (the `api_common` harness) and a simulated device (the `otad device` commands).
//!
//! Covered: sign-in (wrong password, then right) landing on the fleet dashboard (empty, and
//! later with the version chart, OTA states and a failure with its reason), the first-type
//! prompt, creating and editing a type, type folders with image count and newest version,
//! device types and device registration (token read off the screen), the upload wizard
//! with a real file input and API validation shown at its field, its last step's device
//! count and lower-version warning, association (removed and added again), list filters,
//! Deploy by filter (count, search) with live status (a simulated device downloading up to
//! "confirmed", another at 50% and then failed with its reason), the device detail and
//! list filters (version number, version string, id search, the OTA-state column), the
//! audit view, a password change, an XSS attempt in a tag and a description rendered as
//! text, partner isolation, an expired session, the admin screens (partner, user, removal),
//! a file dropped on a type folder, image and device deletion, signing keys (added,
//! refused when malformed, revoked) with a device type's signature policy, a rollout
//! started from an image's page that fills group 1 and stops when injected failures pass
//! its threshold, and (without a browser) the security and cache headers of the assets and
//! the web sign-in client.
//! Screenshots of each main screen go to `target/web-ui-screenshots/` (not committed).
//!
//! Chromium trusts exactly the server's self-signed certificate: the test passes the
//! SHA-256 of its public key with `--ignore-certificate-errors-spki-list`, so any other
//! certificate error would still fail the page load.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`,
//! `chromium-driver`; `.ci/run` installs them): without them the test fails, never skips.

mod api_common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_common::*;
use base64::Engine;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for something to appear on screen (debug server on a busy 2-core machine).
const WAIT: Duration = Duration::from_secs(60);
/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("web-ui-screenshots")
}

// ---------------------------------------------------------------------------------------
// The server certificate's public key, for Chromium's SPKI allow-list

/// (tag, header length, content length) of the DER element at the start of `der`.
fn der_header(der: &[u8]) -> (u8, usize, usize) {
    let tag = der[0];
    let first = der[1];
    if first < 0x80 {
        return (tag, 2, first as usize);
    }
    let n = (first & 0x7f) as usize;
    let len = der[2..2 + n]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    (tag, 2 + n, len)
}

/// The SubjectPublicKeyInfo of an X.509 certificate (DER), as its whole DER element.
fn spki(cert: &[u8]) -> &[u8] {
    let (_, h, _) = der_header(cert);
    let tbs = &cert[h..];
    let (_, h, len) = der_header(tbs);
    let mut rest = &tbs[h..h + len];
    // version [0] (optional), serial, signature algorithm, issuer, validity, subject.
    let mut skipped = 0;
    loop {
        let (tag, h, len) = der_header(rest);
        if skipped == 5 && tag == 0x30 {
            return &rest[..h + len];
        }
        if tag != 0xa0 {
            skipped += 1;
        }
        rest = &rest[h + len..];
    }
}

/// base64(SHA-256(SPKI)) of the server's certificate.
fn spki_hash(cert_pem: &str) -> String {
    let b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .expect("cert.pem is base64");
    base64(&sha256(spki(&der)))
}

// ---------------------------------------------------------------------------------------
// chromedriver + a browser session

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A chromedriver process with one Chromium session; both end on drop.
struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    session: String,
    driver: Child,
    profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    fn start(spki: &str) -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's {package} package \
                 (apt-get install -y chromium chromium-driver; .ci/run does this)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::Builder::new()
            .prefix("otad-chromium")
            .tempdir()
            .expect("profile dir");
        let mut browser = Browser {
            http,
            base,
            session: String::new(),
            driver,
            profile,
            shots: screenshot_dir(),
        };
        let started = Instant::now();
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not become ready on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", browser.profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={spki}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let v = browser.raw("POST", "/session", Some(caps));
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {v}"))
            .to_string();
        // Fresh artifacts each run, no stale shot from an earlier one: the first browser of
        // the test process empties the directory, before any test takes a shot.
        static FRESH: std::sync::Once = std::sync::Once::new();
        FRESH.call_once(|| {
            let _ = std::fs::remove_dir_all(&browser.shots);
        });
        std::fs::create_dir_all(&browser.shots).expect("screenshot dir");
        browser
    }

    /// One WebDriver call; panics with the driver's message on an error.
    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_raw(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let rb = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let resp = rb.send().map_err(|e| e.to_string())?;
        let status = resp.status();
        let v: Value = resp.json().map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", v["value"]));
        }
        Ok(v.get("value").cloned().unwrap_or(Value::Null))
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn goto(&self, url: &str) {
        self.raw("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.raw(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The text of the first element matching `css`, if there is one.
    fn text_of(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .as_str()
        .map(str::to_string)
    }

    fn page_text(&self) -> String {
        self.js("return document.body.innerText;", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls `check` until it gives a value, at most `WAIT`; fails with `what`, the page
    /// text and a screenshot named after the failure.
    fn wait_until<T>(&self, what: &str, mut check: impl FnMut(&Browser) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if started.elapsed() > WAIT {
                let test = std::thread::current().name().unwrap_or("test").to_string();
                self.screenshot(&format!("failure-{test}"));
                panic!(
                    "timed out after {WAIT:?} waiting for {what}\n--- page text ---\n{}",
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for an element matching `css` and returns its WebDriver reference.
    fn find(&self, css: &str) -> String {
        self.wait_until(&format!("element {css}"), |b| {
            b.try_raw(
                "POST",
                &b.s("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()
            .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
        })
    }

    /// Waits until the element matching `css` contains `needle`; returns its text.
    fn wait_text(&self, css: &str, needle: &str) -> String {
        self.wait_until(&format!("{css} to contain {needle:?}"), |b| {
            b.text_of(css).filter(|t| t.contains(needle))
        })
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        // A re-render may replace the element between finding and clicking: retry.
        self.wait_until(&format!("a click on {css}"), |b| {
            b.try_raw("POST", &b.s(&format!("/element/{el}/click")), None)
                .ok()
                .or_else(|| {
                    let again = b.find(css);
                    b.try_raw("POST", &b.s(&format!("/element/{again}/click")), None)
                        .ok()
                })
        });
    }

    /// Clears a field and types into it.
    fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.raw("POST", &self.s(&format!("/element/{el}/clear")), None);
        self.raw(
            "POST",
            &self.s(&format!("/element/{el}/value")),
            Some(json!({ "text": text })),
        );
    }

    /// Screenshots at a laptop width (1400 px) and a tablet width (820 px), named
    /// `{name}-1400` and `{name}-820`; the window is 1280 × 900 again afterwards.
    fn shots(&self, name: &str) {
        for (width, height) in [(1400, 1000), (820, 1180)] {
            self.raw(
                "POST",
                &self.s("/window/rect"),
                Some(json!({"width": width, "height": height})),
            );
            // The layout settles before the picture (a frame after the resize).
            self.js(
                "return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));",
                json!([]),
            );
            self.screenshot(&format!("{name}-{width}"));
        }
        self.raw(
            "POST",
            &self.s("/window/rect"),
            Some(json!({"width": 1280, "height": 900})),
        );
    }

    fn screenshot(&self, name: &str) {
        if let Ok(v) = self.try_raw("GET", &self.s("/screenshot"), None)
            && let Some(b64) = v.as_str()
            && let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The simulated device

fn otad_device(server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("--data-dir")
        .arg(&server.data)
        .arg("device")
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .env_remove("OTAD_DEVICE_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run otad device");
    assert!(
        out.status.success(),
        "otad device {args:?} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------

/// Marker a successful XSS payload would set.
const XSS_TAG: &str = "<img src=x onerror=window.__xss=1>";
const XSS_DESC: &str = "<script>window.__xss=2</script>";

fn xss_ran(b: &Browser) -> bool {
    !b.js("return window.__xss === undefined;", json!([]))
        .as_bool()
        .unwrap_or(false)
}

#[test]
fn release_manager_uploads_pushes_and_sees_confirmed() {
    let started = Instant::now();
    let server = Server::start();
    let admin = server.admin_token();
    let acme = server.api.tenant(&admin, "Acme");
    // Another partner with an image of its own: Acme must never see it.
    let globex = server.api.tenant(&admin, "Globex");
    server
        .api
        .fw_type(&globex.id, &globex.token, 120, "Globex MCU");
    let (_, gurl) = server
        .api
        .publish(&globex.id, &globex.token, &bytes(1000, 9));
    server.api.pool_create(
        &globex.id,
        &globex.token,
        &json!({"name": "globex-secret-fw", "type": 120, "version": "9.9.9", "url": gurl}),
    );

    let cert = std::fs::read_to_string(server.data.join("tls").join("cert.pem")).expect("cert");
    let b = Browser::start(&spki_hash(&cert));
    let base = server.api.base.clone();

    // --- Sign in: wrong password first.
    b.goto(&format!("{base}/"));
    b.find("#login-username");
    b.screenshot("01-sign-in");
    b.fill("#login-username", &acme.user);
    b.fill("#login-password", "not-the-password");
    b.click("#login-submit");
    b.wait_text("#login-message", "Wrong user name or password.");
    b.screenshot("02-wrong-password");
    b.fill("#login-password", &acme.password);
    b.click("#login-submit");

    // --- The fleet dashboard is the landing screen; with no device type yet it says so.
    b.wait_text("#dashboard", "No device types yet");
    b.wait_text("#nav-dashboard[aria-current=page]", "Fleet");
    b.shots("03a-dashboard-empty");

    // --- Image types: no own type yet, so the first-use prompt; create one.
    b.click("#nav-types");
    b.find("#first-type-prompt");
    b.wait_text("#who", "Acme");
    b.screenshot("03-types-first-sign-in");
    b.fill("#new-type-number", "150");
    b.fill("#new-type-name", "Kettle MCU");
    b.fill("#new-type-description", "Heater controller");
    b.click("#new-type-save");
    b.wait_text("#own-types .folder[data-type=\"150\"]", "Kettle MCU");
    assert!(b.text_of("#first-type-prompt").is_none(), "prompt stays");
    // Edit keeps the number.
    b.click("#own-types button[data-edit-type=\"150\"]");
    b.fill("#edit-type-name", "Kettle MCU v2");
    b.click("#edit-type-save");
    b.wait_text("#own-types .folder[data-type=\"150\"]", "Kettle MCU v2");
    b.wait_text(
        "#own-types .folder[data-type=\"150\"] .folder-count",
        "No images yet",
    );
    b.screenshot("04-types");

    // --- Devices: a device type and a device (its token read off the screen).
    b.click("#nav-devices");
    b.fill("#new-dt-name", "Kettle 2000");
    b.click("#new-dt-save");
    b.wait_text("#device-type-list", "Kettle 2000");
    b.fill("#register-id", "kettle-001");
    b.click("#register-save");
    let device_token = b.wait_until("the device token", |b| {
        b.text_of("#register-token").filter(|t| t.len() >= 20)
    });
    b.wait_text("#devices-table", "kettle-001");
    b.screenshot("05-devices-register");

    // --- Upload wizard: file input, real progress, details with an XSS attempt, device type.
    let work = server.root().join("ui-work");
    std::fs::create_dir_all(&work).expect("work dir");
    let firmware = bytes(3 << 20, 42);
    let fw_path = work.join("kettle-mcu-1.0.0.bin");
    std::fs::write(&fw_path, &firmware).expect("write firmware");
    b.click("#nav-types");
    b.click("#own-types .folder[data-type=\"150\"] a.button");
    b.find("#wizard-file");
    let file_input = b.find("#wizard-file");
    b.raw(
        "POST",
        &b.s(&format!("/element/{file_input}/value")),
        Some(json!({ "text": fw_path.display().to_string() })),
    );
    b.wait_text("#wizard-progress-text", "Uploaded (100%)");
    assert_eq!(
        b.js(
            "return document.getElementById('wizard-type').value;",
            json!([])
        ),
        "150",
        "the folder's type is preselected"
    );
    b.screenshot("06-wizard-file");
    b.click("#wizard-next");
    b.fill("#wizard-name", "kettle-mcu");
    b.fill("#wizard-description", XSS_DESC);
    b.fill("#wizard-version", "1.0.0");
    b.fill("#wizard-tags", &format!("beta, {XSS_TAG}"));
    b.screenshot("07-wizard-details");
    b.click("#wizard-next");
    b.find("#wizard-step-3 input[type=checkbox]");
    b.click("#wizard-step-3 input[type=checkbox]");
    b.screenshot("08-wizard-device-types");
    b.click("#wizard-next");
    b.wait_text("#wizard-finished", "kettle-mcu");
    b.click("#wizard-open-image");

    // --- Image detail: hashes, size, association.
    let sha = sha256_hex(&firmware);
    b.wait_text("#image-sha256", &sha);
    b.wait_text("#image-blake3", &hex(blake3::hash(&firmware).as_bytes()));
    b.wait_text("#image-size", "3.0 MiB");
    b.wait_text("#associations", "Kettle 2000");
    b.wait_text("#image-tags", XSS_TAG);
    b.wait_text("#image-description", XSS_DESC);
    assert!(!xss_ran(&b), "a tag or description ran as script");
    let vn = b.text_of("#image-vn").expect("version number");
    b.screenshot("09-image-detail");
    // Remove the association (the button asks once more), then add it back.
    b.click("#associations tr[data-device-type] button.danger");
    b.wait_text("#associations tr[data-device-type] button.danger", "Really");
    b.click("#associations tr[data-device-type] button.danger");
    b.find("#no-associations");
    b.click("#associate-add");
    b.wait_text("#associations .assoc-name", "Kettle 2000");

    // --- Images list: the tag shows as text, Globex's image is not there.
    b.click("#nav-images");
    b.wait_text("#images-table", "kettle-mcu");
    b.wait_text("#images-table .image-tags", XSS_TAG);
    assert!(!xss_ran(&b), "a tag ran as script in the list");
    let list = b.text_of("#images-table").unwrap_or_default();
    assert!(
        !list.contains("globex-secret-fw"),
        "Acme sees Globex's image: {list}"
    );
    // Filtered by tag (exercises the filter form) still finds it.
    b.fill("#filter-tags", "beta");
    b.click("#image-filters button[type=submit]");
    b.wait_until("the tag filter in the address", |b| {
        b.js("return location.hash;", json!([]))
            .as_str()
            .filter(|h| h.contains("tags=beta"))
            .map(str::to_string)
    });
    b.wait_text("#images-table", "kettle-mcu");
    b.screenshot("10-images");
    // Filtered by device type: the image is associated with Kettle 2000.
    b.js(
        "const s = document.getElementById('filter-device-type'); \
         s.selectedIndex = 1; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    b.wait_until("the device type filter in the address", |b| {
        b.js("return location.hash;", json!([]))
            .as_str()
            .filter(|h| h.contains("deviceType="))
            .map(str::to_string)
    });
    b.wait_text("#images-table", "kettle-mcu");
    // The same list on a tablet-sized window.
    b.raw(
        "POST",
        &b.s("/window/rect"),
        Some(json!({"width": 820, "height": 1180})),
    );
    b.screenshot("10b-images-tablet");
    b.raw(
        "POST",
        &b.s("/window/rect"),
        Some(json!({"width": 1280, "height": 900})),
    );
    // The wizard refuses the same name and version again, at the version field.
    b.goto(&format!("{base}/#/upload?type=150"));
    let file_input = b.find("#wizard-file");
    b.raw(
        "POST",
        &b.s(&format!("/element/{file_input}/value")),
        Some(json!({ "text": fw_path.display().to_string() })),
    );
    b.wait_text("#wizard-progress-text", "Uploaded (100%)");
    b.click("#wizard-next");
    b.fill("#wizard-name", "kettle-mcu");
    b.fill("#wizard-version", "1.0.0");
    b.click("#wizard-next");
    b.wait_text("#wizard-version-error", "already exists");
    // A tag the API refuses (over 64 bytes): its message comes back at the tags field.
    b.fill("#wizard-version", "1.0.1");
    b.fill("#wizard-tags", &"t".repeat(70));
    b.click("#wizard-next");
    b.find("#wizard-step-3:not([hidden])");
    b.click("#wizard-next");
    b.wait_text("#wizard-tags-error", "must be 1-64 bytes");
    assert!(
        b.text_of("#wizard-step-2:not([hidden])").is_some(),
        "the wizard went back to the step of the field"
    );

    // --- Deploy: push to the device; a simulated device downloads, then runs it.
    // A second device of the same type, registered through the API, will fail.
    let dts = server
        .api
        .get(&format!("{}/deviceTypes", acme.base()), &acme.token)
        .ok_json(200);
    let dt = s(&dts[0], "id");
    let token2 = server
        .api
        .register_device(&acme.id, &acme.token, "kettle-002", &dt);
    b.goto(&format!("{base}/#/deploy/150/{vn}"));
    // Selection by filter: the search narrows the count, no checkbox per device.
    b.wait_text("#deploy-count", "2 device(s)");
    b.fill("#deploy-search", "002");
    b.wait_text("#deploy-count", "1 device(s)");
    b.wait_text("#deploy-preview", "kettle-002");
    b.fill("#deploy-search", "kettle");
    b.wait_text("#deploy-count", "2 device(s)");
    b.wait_text("#push-now", "Push to 2 device(s)");
    b.shots("11a-deploy-filter");
    b.click("#push-now");
    b.wait_text("#deploy-progress-text", "Pushed 2 of 2");
    for dev in ["kettle-001", "kettle-002"] {
        b.wait_text(
            &format!("#deploy-status tr[data-device=\"{dev}\"] .state"),
            "pending",
        );
    }
    b.screenshot("11-deploy-pushed");
    // kettle-002 is offered the image and reports half of it downloaded, live on screen.
    let mut raw = RawDevice::connect(&server, "kettle-002", &token2);
    let offer = raw.check(&[(150, 0)]);
    assert_eq!(offer.first().map(|o| o.size), Some(firmware.len() as u64));
    let vn_num: u64 = vn.parse().expect("version number");
    raw.report(150, vn_num, 1, 0, firmware.len() as u64 / 2);
    b.wait_text(
        "#deploy-status tr[data-device=\"kettle-002\"] .state",
        "downloading 50%",
    );
    b.screenshot("11b-deploy-downloading");
    let state = work.join("dev.state");
    let out = work.join("dev.bin");
    otad_device(
        &server,
        &[
            "download",
            "--device-id",
            "kettle-001",
            "--token",
            &device_token,
            "--type",
            "150",
            "--installed",
            "0",
            "--state",
            state.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(
        sha256_hex(&std::fs::read(&out).expect("image")),
        sha,
        "device image"
    );
    b.wait_text(
        "#deploy-status tr[data-device=\"kettle-001\"] .state",
        "downloaded",
    );
    b.screenshot("12-deploy-downloaded");
    // The device restarts on the new image and checks in: the update is confirmed.
    otad_device(
        &server,
        &[
            "check",
            "--device-id",
            "kettle-001",
            "--token",
            &device_token,
            "--installed",
            &format!("150={vn}"),
            "--json",
        ],
    );
    b.wait_text(
        "#deploy-status tr[data-device=\"kettle-001\"] .state",
        "confirmed",
    );
    // kettle-002's image fails its integrity check: the reason shows.
    raw.report(150, vn_num, 5, 5, firmware.len() as u64);
    b.wait_text(
        "#deploy-status tr[data-device=\"kettle-002\"] .state",
        "failed: integrity check failure (5)",
    );
    b.wait_text("#deploy-states", "1 failed");
    b.shots("13-deploy-confirmed");

    // --- Device detail: installed version and history.
    b.goto(&format!("{base}/#/devices/kettle-001"));
    b.wait_text("#device-installed", &vn);
    b.wait_text("#device-ota", "confirmed");
    b.wait_text("#device-ota", "downloading");
    b.screenshot("14-device-detail");
    // The device list filtered by installed version finds it at the new number only.
    b.goto(&format!("{base}/#/devices?type=150&installedVersion={vn}"));
    b.wait_text("#devices-table", "kettle-001");
    let list = b.text_of("#devices-table").unwrap_or_default();
    assert!(!list.contains("kettle-002"), "kettle-002 runs 0: {list}");
    b.goto(&format!("{base}/#/devices?type=150&installedVersion=0"));
    b.wait_text("#devices-table", "kettle-002");
    let list = b.text_of("#devices-table").unwrap_or_default();
    assert!(!list.contains("kettle-001"), "kettle-001 runs {vn}: {list}");
    // The hawkBit DDI card: the tenant (the partner id by default) and a gateway token
    // shown once.
    b.wait_until("the DDI card", |b| {
        b.text_of("#ddi-tenant").filter(|t| !t.is_empty())
    });
    b.click("#ddi-token-make");
    let token = b.wait_until("the gateway token", |b| {
        b.text_of("#ddi-token").filter(|t| t.len() == 40)
    });
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    // By version string, with the record's version beside the number and the OTA state.
    b.goto(&format!("{base}/#/devices?type=150&installed=1.0.0"));
    b.wait_text(
        "#devices-table tr[data-device=\"kettle-001\"] .installed",
        &format!("1.0.0 (kettle-mcu, #{vn})"),
    );
    let list = b.text_of("#devices-table").unwrap_or_default();
    assert!(!list.contains("kettle-002"), "kettle-002 runs 0: {list}");
    b.goto(&format!("{base}/#/devices?search=002"));
    b.wait_text(
        "#devices-table tr[data-device=\"kettle-002\"] .ota-state",
        "failed 1.0.0",
    );
    assert!(
        !b.text_of("#devices-table")
            .unwrap_or_default()
            .contains("kettle-001")
    );
    b.goto(&format!("{base}/#/devices"));
    b.wait_text("#devices-table", "kettle-001");
    b.wait_text("#devices-table", "confirmed");
    b.shots("14b-devices");

    // --- The dashboard now: the version distribution, OTA states and the failure.
    b.click("#nav-dashboard");
    b.wait_text("#dashboard .fleet-type", "Kettle 2000");
    b.wait_text("#dashboard [data-stat=devices]", "2");
    b.wait_text("#dashboard [data-stat=hour]", "2");
    b.wait_text("#dashboard svg.chart title", "1.0.0 (kettle-mcu,");
    b.wait_text("#dashboard .chips", "1 failed");
    b.wait_text(
        "#dashboard table.failures tr[data-device=\"kettle-002\"] .reason",
        "integrity check failure (5)",
    );
    b.shots("14c-dashboard");
    // The type folder counts the image and names the newest version.
    b.click("#nav-types");
    b.wait_text(
        "#own-types .folder[data-type=\"150\"] .folder-count",
        &format!("1 image · newest 1.0.0 (#{vn})"),
    );
    b.shots("14d-types-counts");

    // --- The wizard's last step: how many devices get it, and a lower version string.
    b.goto(&format!("{base}/#/upload?type=150"));
    let file_input = b.find("#wizard-file");
    let older = work.join("kettle-mcu-0.9.0.bin");
    std::fs::write(&older, bytes(5000, 43)).expect("write firmware");
    b.raw(
        "POST",
        &b.s(&format!("/element/{file_input}/value")),
        Some(json!({ "text": older.display().to_string() })),
    );
    b.wait_text("#wizard-progress-text", "Uploaded (100%)");
    b.click("#wizard-next");
    b.fill("#wizard-name", "kettle-mcu");
    b.fill("#wizard-version", "0.9.0");
    b.click("#wizard-next");
    b.find("#wizard-step-3:not([hidden])");
    b.wait_text("#wizard-impact", "No device will be offered");
    b.click("#wizard-step-3 input[type=checkbox]");
    b.wait_text("#wizard-offered-count", "2 devices will be offered 0.9.0");
    b.wait_text(
        "#wizard-impact .notice.warn",
        "0.9.0 will be offered to devices running 1.0.0",
    );
    b.shots("14e-wizard-impact");
    b.click("#wizard-next");
    b.wait_text("#wizard-finished-offered", "2 device(s) will be offered it");

    // --- Released in stages instead: the wizard leaves the image unassociated and opens
    // the rollout form with it filled in. "Upload another" opens the wizard again although
    // its address is the one already shown.
    b.click("#wizard-again");
    let file_input = b.find("#wizard-file");
    let staged = work.join("kettle-mcu-1.1.0.bin");
    std::fs::write(&staged, bytes(5000, 44)).expect("write firmware");
    b.raw(
        "POST",
        &b.s(&format!("/element/{file_input}/value")),
        Some(json!({ "text": staged.display().to_string() })),
    );
    b.wait_text("#wizard-progress-text", "Uploaded (100%)");
    b.click("#wizard-next");
    b.fill("#wizard-name", "kettle-mcu");
    b.fill("#wizard-version", "1.1.0");
    b.click("#wizard-next");
    b.find("#wizard-step-3:not([hidden])");
    b.click("#wizard-staged");
    b.wait_text("#wizard-staged-note", "the rollout form opens next");
    b.shots("14f-wizard-staged");
    b.click("#wizard-next");
    b.find("#rollout-image");
    let image = b
        .js(
            "return document.getElementById('rollout-image').value;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pool = server
        .api
        .get(&format!("{}/pool/types/150", acme.base()), &acme.token)
        .ok_json(200);
    let record = pool["content"]
        .as_array()
        .and_then(|items| items.iter().find(|r| r["version"] == "1.1.0"))
        .unwrap_or_else(|| panic!("the staged image was recorded: {pool}"))
        .clone();
    assert_eq!(
        image,
        s(&record, "id"),
        "the rollout form names the new image"
    );
    let associations = server
        .api
        .get(
            &format!(
                "{}/pool/types/150/versionNumbers/{}/associations",
                acme.base(),
                s(&record, "versionNumber")
            ),
            &acme.token,
        )
        .ok_json(200);
    assert_eq!(
        associations.as_array().map(Vec::len),
        Some(0),
        "a staged image is associated only by its rollout: {associations}"
    );

    // --- Isolation: Globex's image by address is refused, not shown.
    b.goto(&format!("{base}/#/images/120/1"));
    b.wait_until("an error instead of Globex's image", |b| {
        let text = b.page_text();
        text.contains("no pool record of type 120").then_some(())
    });
    assert!(!b.page_text().contains("globex-secret-fw"));

    // --- Expired session: the token is revoked behind the UI's back.
    let token = b
        .js(
            "return JSON.parse(sessionStorage.getItem('otad.session')).token;",
            json!([]),
        )
        .as_str()
        .expect("token in sessionStorage")
        .to_string();
    server
        .api
        .send(
            server
                .api
                .req(reqwest::Method::POST, "/oauth/revoke", "")
                .basic_auth(&acme.id, Some(&acme.secret))
                .form(&[("token", token.as_str())]),
        )
        .expect(200);
    b.goto(&format!("{base}/#/images"));
    b.wait_text("#login-message", "Your session has expired");
    b.screenshot("15-session-expired");

    // --- Admin: partners and users; the partner picker shows Acme's data.
    let creds = server.creds();
    b.fill("#login-username", &creds.username);
    b.fill("#login-password", &creds.password);
    b.click("#login-submit");
    b.click("#nav-admin");
    b.wait_text("main", "Globex");
    b.wait_text("main", &acme.user);
    b.fill("#new-partner-name", "Initech");
    b.fill("#new-partner-email", "ops@initech.test");
    b.click("#new-partner-save");
    b.wait_text("#new-partner-result", "Initech");
    let secret = b
        .text_of("#new-partner-result code.secret")
        .unwrap_or_default();
    assert!(
        secret.len() >= 20,
        "the new client secret is shown once: {secret:?}"
    );
    b.screenshot("16-admin");
    // The audit view: newest first, the partner just created among the entries.
    b.click("#nav-audit");
    b.wait_text("#audit-table", "partner.create");
    b.shots("16b-audit");
    // The admin's own password change, from the user name in the header.
    b.click("#who-user");
    b.fill("#pw-current", "not-it-at-all");
    b.fill("#pw-new", "the-new-admin-password-1");
    b.fill("#pw-again", "the-new-admin-password-1");
    b.click("#pw-save");
    b.wait_text("#pw-current-error", "not your current password");
    b.fill("#pw-current", &creds.password);
    b.fill("#pw-new", "the-new-admin-password-1");
    b.fill("#pw-again", "the-new-admin-password-1");
    b.click("#pw-save");
    b.wait_text("#pw-message", "Your password is changed.");
    b.shots("16c-account");
    server.api.login(
        &creds.client_id,
        &creds.client_secret,
        &creds.username,
        "the-new-admin-password-1",
    );
    b.click("#nav-admin");
    b.wait_text("main", "Globex");
    b.js(
        "const p = document.getElementById('partner-picker'); p.value = arguments[0]; \
         p.dispatchEvent(new Event('change'));",
        json!([acme.id]),
    );
    b.goto(&format!("{base}/#/images"));
    b.wait_text("#images-table", "kettle-mcu");
    // Sign out: back to the sign-in screen, and the token no longer works.
    b.click("#signout");
    b.wait_text("#login-message", "signed out");
    assert!(
        b.js("return sessionStorage.getItem('otad.session');", json!([]))
            .is_null()
    );
    eprintln!(
        "web UI flow took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshot_dir().display()
    );
}

#[test]
fn assets_headers_and_the_web_sign_in_client() {
    let server = Server::start();
    let api = &server.api;
    let index = api.get("/", "");
    index.expect(200);
    assert!(index.text().contains("/ui/app.js"), "{}", index.text());
    let csp = index.header("content-security-policy").expect("CSP header");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(
        index.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(index.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(index.header("cache-control").as_deref(), Some("no-cache"));
    let etag = index.header("etag").expect("ETag");
    let again = api.send(
        api.req(reqwest::Method::GET, "/", "")
            .header("If-None-Match", &etag),
    );
    again.expect(304);
    // No inline script or style in the page: the CSP would refuse them anyway.
    let html = index.text();
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style="));
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let r = api.get(path, "");
        r.expect(200);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with(kind)),
            "{path}: {:?}",
            r.header("content-type")
        );
        assert!(r.header("etag").is_some(), "{path} has no ETag");
    }
    // Unknown UI paths and other methods fall through to the API's JSON 404/405.
    api.get("/ui/nope.js", "")
        .expect_error(404, Some("no_route"));
    api.send(api.req(reqwest::Method::POST, "/", ""))
        .expect_error(404, Some("no_route"));

    // The web client: password grant without a client secret, then /v1/me.
    let admin = server.admin_token();
    let acme = api.tenant(&admin, "Acme");
    let form = |user: &str, password: &str| {
        api.send(api.req(reqwest::Method::POST, "/oauth/token", "").form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("client_id", "otad-manager"),
        ]))
    };
    let wrong = form(&acme.user, "nope").expect_error(400, None);
    assert_eq!(wrong["error"], "invalid_grant", "{wrong}");
    let token = check_token_response(&form(&acme.user, &acme.password).ok_json(200));
    let me = api.get("/v1/me", &token).ok_json(200);
    assert_eq!(me["partnerId"], acme.id.as_str(), "{me}");
    assert_eq!(me["partnerName"], "Acme", "{me}");
    assert_eq!(me["role"], "partner", "{me}");
    assert_eq!(me["username"], acme.user.as_str(), "{me}");
    let creds = server.creds();
    let admin_web = check_token_response(&form(&creds.username, &creds.password).ok_json(200));
    let me = api.get("/v1/me", &admin_web).ok_json(200);
    assert_eq!(me["role"], "admin", "{me}");
    assert_eq!(me["partnerId"], creds.client_id.as_str(), "{me}");
    // A client-credentials grant needs the secret; the public client cannot ask for one.
    api.send(api.req(reqwest::Method::POST, "/oauth/token", "").form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "otad-manager"),
    ]))
    .expect_error(401, None);
    // Failed web sign-ins of other user names do not lock this user out: the public
    // client id is shared by every browser, so only user names are rate limited.
    for i in 0..15 {
        let e = form(&format!("mallory-{i}"), "guess").expect_error(400, None);
        assert_eq!(e["error"], "invalid_grant", "{e}");
    }
    check_token_response(&form(&acme.user, &acme.password).ok_json(200));
    // Signing out revokes the token.
    api.send(
        api.req(reqwest::Method::POST, "/oauth/revoke", "")
            .form(&[("token", token.as_str()), ("client_id", "otad-manager")]),
    )
    .expect(200);
    api.get("/v1/me", &token).expect_error(401, None);
}

#[test]
fn admin_adds_a_partner_whose_user_signs_in_and_cleans_up() {
    let server = Server::start();
    let creds = server.creds();
    let cert = std::fs::read_to_string(server.data.join("tls").join("cert.pem")).expect("cert");
    let b = Browser::start(&spki_hash(&cert));
    let base = server.api.base.clone();
    let sign_in = |user: &str, password: &str| {
        b.goto(&format!("{base}/#/types"));
        b.fill("#login-username", user);
        b.fill("#login-password", password);
        b.click("#login-submit");
        b.wait_text("#who-user", user);
    };

    // The admin adds a partner and a user of it.
    sign_in(&creds.username, &creds.password);
    b.find("#dashboard");
    // The platform's admin manages platform types: no first-use prompt.
    b.click("#nav-types");
    b.find("#add-type");
    assert!(b.text_of("#first-type-prompt").is_none());
    b.click("#nav-admin");
    b.fill("#new-partner-name", "Umbrella");
    b.click("#new-partner-save");
    b.wait_text("#new-partner-result", "Umbrella");
    let partner = b.wait_until("the new partner's card", |b| {
        b.js(
            "const c = [...document.querySelectorAll('section.partner-card')] \
               .find((s) => s.querySelector('h2').textContent === 'Umbrella'); \
             return c ? c.dataset.partner : null;",
            json!([]),
        )
        .as_str()
        .map(str::to_string)
    });
    b.fill(&format!("#user-name-{partner}"), "umbrella-rm");
    b.fill(&format!("#user-pass-{partner}"), "umbrella-password-1");
    b.click(&format!(
        "section[data-partner=\"{partner}\"] form button[type=submit]"
    ));
    b.wait_text(
        &format!("section[data-partner=\"{partner}\"]"),
        "umbrella-rm",
    );
    b.click("#signout");

    // The new user: first-use prompt, a type, an image uploaded and deleted again.
    sign_in("umbrella-rm", "umbrella-password-1");
    b.click("#nav-types");
    b.find("#first-type-prompt");
    b.fill("#new-type-number", "101");
    b.fill("#new-type-name", "Umbrella MCU");
    b.click("#new-type-save");
    b.wait_text("#own-types", "Umbrella MCU");
    // A file dropped on the type's folder opens the wizard with it (a synthetic drop event
    // carrying a real File: WebDriver has no file drag and drop).
    b.js(
        "const dt = new DataTransfer(); \
         dt.items.add(new File([new Uint8Array(5000).fill(7)], 'small.bin')); \
         const f = document.querySelector('.folder[data-type=\"101\"]'); \
         f.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true })); \
         f.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
        json!([]),
    );
    b.wait_text("#wizard-progress-text", "Uploaded (100%)");
    b.wait_text("#wizard-file-info", "small.bin");
    assert_eq!(
        b.js(
            "return document.getElementById('wizard-type').value;",
            json!([])
        ),
        "101",
        "the folder's type is chosen"
    );
    b.click("#wizard-next");
    b.fill("#wizard-version", "0.1.0");
    b.click("#wizard-next");
    b.find("#wizard-step-3:not([hidden])");
    b.click("#wizard-next");
    b.click("#wizard-open-image");
    b.wait_text("#image-name", "small");
    b.click("#delete-image");
    b.wait_text("#delete-image", "Really");
    b.click("#delete-image");
    b.find("#images-empty");

    // A device registered and removed again.
    b.click("#nav-devices");
    b.fill("#new-dt-name", "Umbrella box");
    b.click("#new-dt-save");
    b.wait_text("#device-type-list", "Umbrella box");
    b.fill("#register-id", "u-1");
    b.click("#register-save");
    b.wait_text("#devices-table", "u-1");
    b.goto(&format!("{base}/#/devices/u-1"));
    b.wait_text("#device-id", "u-1");
    b.click(".danger-zone button.danger");
    b.wait_text(".danger-zone button.danger", "Really");
    b.click(".danger-zone button.danger");
    b.find("#devices-empty");
    b.click("#signout");

    // The admin removes the user, who can no longer sign in.
    sign_in(&creds.username, &creds.password);
    b.click("#nav-admin");
    let remove = format!("section[data-partner=\"{partner}\"] ul button.danger");
    b.click(&remove);
    b.wait_text(&remove, "Really");
    b.click(&remove);
    b.wait_until("the user gone from the partner card", |b| {
        b.text_of(&format!("section[data-partner=\"{partner}\"]"))
            .filter(|t| t.contains("No users."))
    });
    b.click("#signout");
    b.fill("#login-username", "umbrella-rm");
    b.fill("#login-password", "umbrella-password-1");
    b.click("#login-submit");
    b.wait_text("#login-message", "Wrong user name or password.");
}

#[test]
fn deploy_devices_and_dashboard_at_fleet_size() {
    let server = Server::start();
    let api = &server.api;
    let admin = server.admin_token();
    let acme = api.tenant(&admin, "Acme");
    let tok = &acme.token;
    api.fw_type(&acme.id, tok, 150, "KETTLE_MAIN_CONTROLLER");
    let dt = api.device_type(&acme.id, tok, "Kettle 2000");
    let mut vns = Vec::new();
    for (i, version) in ["1.3.9", "1.4.0", "1.4.2"].iter().enumerate() {
        let (_, url) = api.publish(&acme.id, tok, &bytes(2000 + i, i as u64 + 50));
        let r = api.pool_create(
            &acme.id,
            tok,
            &json!({ "name": "main", "type": 150, "version": version, "url": url }),
        );
        api.associate(&acme.id, tok, &dt, &r);
        vns.push(num(&r, "versionNumber"));
    }
    // 10,000 devices; 30 check in on the older versions (so the chart has bars), 3 fail.
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for i in 0..10_000 {
        csv.push_str(&format!("kettle-{i:05},{dt}\n"));
    }
    let tokens = api
        .post_bytes(
            &format!("{}/devices/import", acme.base()),
            tok,
            "text/csv",
            csv.into_bytes(),
        )
        .expect(200)
        .text();
    for (i, line) in tokens.lines().skip(1).take(30).enumerate() {
        let (id, token) = line.split_once(',').expect("deviceId,token");
        let mut d = RawDevice::connect(&server, id, token);
        let running = if i < 20 { vns[0] } else { vns[1] };
        d.check(&[(150, running)]);
        if i < 3 {
            d.report(150, vns[2], 5, 2, 0);
        }
    }

    let cert = std::fs::read_to_string(server.data.join("tls").join("cert.pem")).expect("cert");
    let b = Browser::start(&spki_hash(&cert));
    let base = api.base.clone();
    b.goto(&format!("{base}/"));
    b.fill("#login-username", &acme.user);
    b.fill("#login-password", &acme.password);
    b.click("#login-submit");

    // The dashboard: 10,000 devices, three bars, the failures with their reason.
    b.wait_text("#dashboard [data-stat=devices]", "10000");
    b.wait_text("#dashboard [data-stat=never]", "9970");
    b.wait_text("#dashboard svg.chart title", "1.3.9 (main,");
    b.wait_text("#dashboard svg.chart title", "1.4.0 (main,");
    b.wait_text("#dashboard table.failures", "not enough flash (2)");
    b.shots("20-dashboard-fleet");

    // Type folders: the long type name breaks only after an underscore.
    b.click("#nav-types");
    b.wait_text(
        "#own-types .folder[data-type=\"150\"] .folder-count",
        "3 images · newest 1.4.2",
    );
    b.shots("21-types-long-name");

    // Devices at fleet size: paged, searched by id on the server.
    b.click("#nav-devices");
    b.wait_text("#devices-list .pager", "Page 1 of 200 · 10000 devices");
    b.fill("#devices-search", "kettle-0999");
    b.click("#device-filters button[type=submit]");
    b.wait_text("#devices-list .pager", "10 devices");
    b.shots("22-devices-fleet-search");

    // Deploy 1.4.2 by filter: the whole fleet is a count, not 10,000 checkboxes; the page
    // stays short. Narrowed to the devices running 1.3.9, then pushed.
    b.goto(&format!("{base}/#/deploy/150/{}", vns[2]));
    b.wait_text("#deploy-count", "10000 device(s)");
    let height = b
        .js("return document.body.scrollHeight;", json!([]))
        .as_u64()
        .expect("page height");
    assert!(height < 1500, "the Deploy page is {height} px tall");
    b.js(
        "const s = document.getElementById('deploy-running'); \
         s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        json!([vns[0].to_string()]),
    );
    b.wait_text("#deploy-count", "20 device(s)");
    b.shots("23-deploy-fleet-filter");
    let started = Instant::now();
    b.click("#push-now");
    b.wait_text("#deploy-progress-text", "Pushed 20 of 20");
    b.wait_text("#deploy-message", "Pushed to 20 device(s).");
    eprintln!("20 pushes from the browser: {:?}", started.elapsed());
    b.wait_text("#deploy-states", "run 1.4.2 or newer");
    b.shots("24-deploy-fleet-pushed");
    let pending = api
        .get(&format!("{}/devices/kettle-00000", acme.base()), tok)
        .ok_json(200);
    assert_eq!(pending["pushes"][0]["type"], 150, "{pending}");
}

#[test]
fn signing_keys_are_added_and_revoked_and_a_device_type_requires_signatures() {
    let server = Server::start();
    let creds = server.creds();
    let admin = server.admin_token();
    let me = server.api.get("/v1/me", &admin).json();
    let partner = s(&me, "partnerId");
    let dt = server.api.device_type(&partner, &admin, "Signed box");
    let key = otad::signing::SigningKey::from_pkcs8(&otad::signing::pkcs8_from_seed(&[5; 32]))
        .expect("key");
    let public = otad::signing::to_hex(&key.public_key());
    let key_id = otad::signing::to_hex(&key.key_id());
    let cert = std::fs::read_to_string(server.data.join("tls").join("cert.pem")).expect("cert");
    let b = Browser::start(&spki_hash(&cert));
    let base = server.api.base.clone();
    b.goto(&format!("{base}/#/types"));
    b.fill("#login-username", &creds.username);
    b.fill("#login-password", &creds.password);
    b.click("#login-submit");
    b.wait_text("#who-user", &creds.username);

    b.click("#nav-signing");
    b.find("#signing-keys-empty");
    // A malformed key is refused at its field before anything is sent.
    b.fill("#new-key-name", "ci-2026");
    b.fill("#new-key-public", "abc");
    b.click("#new-key-save");
    b.wait_text("#new-key-form", "64 hex digits");
    b.fill("#new-key-public", &public);
    b.click("#new-key-save");
    b.wait_text("#signing-keys", &key_id);
    b.screenshot("signing-keys");
    let keys = server
        .api
        .get(&format!("/v1/ota/partners/{partner}/signingKeys"), &admin)
        .json();
    assert_eq!(s(&keys[0], "publicKey"), public);

    // The device type's policy, switched on from the screen.
    b.click(&format!("#require-{dt}"));
    b.wait_text("#signature-policies", "only signed images");
    let policy = server
        .api
        .get(
            &format!("/v1/ota/partners/{partner}/deviceTypes/{dt}/signaturePolicy"),
            &admin,
        )
        .json();
    assert_eq!(policy["requireSignature"], true);

    // Revocation asks twice, then the key stays listed as revoked.
    let revoke = format!("#revoke-{key_id}");
    b.click(&revoke);
    b.wait_text(&revoke, "Really");
    b.click(&revoke);
    b.wait_text(&format!("tr[data-key=\"{key_id}\"] .key-state"), "revoked");
    let keys = server
        .api
        .get(&format!("/v1/ota/partners/{partner}/signingKeys"), &admin)
        .json();
    assert_eq!(keys[0]["revoked"], true);
}

#[test]
fn release_manager_starts_a_rollout_that_stops_on_failures() {
    let server = Server::start();
    let admin = server.admin_token();
    let t = server.api.tenant(&admin, "Rollo");
    let dt = server.api.device_type(&t.id, &t.token, "Lamp");
    let (_, url) = server.api.publish(&t.id, &t.token, &bytes(3000, 5));
    let record = server.api.pool_create(
        &t.id,
        &t.token,
        &json!({"name": "lamp-fw", "type": 3, "version": "3.0", "url": url}),
    );
    let vn = num(&record, "versionNumber");
    let devices: Vec<(String, String)> = (0..20)
        .map(|i| {
            let id = format!("lamp-{i:02}");
            let token = server.api.register_device(&t.id, &t.token, &id, &dt);
            (id, token)
        })
        .collect();

    let cert = std::fs::read_to_string(server.data.join("tls").join("cert.pem")).expect("cert");
    let b = Browser::start(&spki_hash(&cert));
    let base = server.api.base.clone();
    b.goto(&format!("{base}/"));
    b.fill("#login-username", &t.user);
    b.fill("#login-password", &t.password);
    b.click("#login-submit");
    b.find("#nav-rollouts");

    // From the image's page to the rollout form, the image filled in.
    b.goto(&format!("{base}/#/images/3/{vn}"));
    b.click("#rollout-button");
    b.find("#rollout-form");
    let prefilled = b
        .js(
            "return document.querySelector('#rollout-image').value;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(prefilled, s(&record, "id"));
    // A bad threshold is refused with the API's message, nothing started.
    b.fill("#rollout-error", "1.5");
    b.click("#rollout-start");
    b.wait_text("#rollout-message", "between 0 and 1");
    b.fill("#rollout-groups", "50,100");
    b.fill("#rollout-error", "0.2");
    b.fill("#rollout-min-failures", "2");
    b.click("#rollout-start");
    b.wait_text("#rollout-state", "running");
    b.wait_text("#group-0", "0/");
    b.wait_text("#group-1", "pending");

    // Devices check in over OCP/1: the first two offered confirm, the rest of group 1 fail.
    let mut confirmed = 0;
    let mut offered_devices = Vec::new();
    for (id, token) in &devices {
        let mut dev = RawDevice::connect(&server, id, token);
        let offers = dev.check(&[(3, 0)]);
        if !offers.iter().any(|o| o.version_number == vn) {
            continue;
        }
        offered_devices.push((id.clone(), token.clone()));
        if confirmed < 2 {
            dev.report(3, vn, 4, 0, 3000);
            dev.check(&[(3, vn)]);
            confirmed += 1;
        }
    }
    assert!(
        offered_devices.len() >= 4,
        "group 1 too small: {offered_devices:?}"
    );
    b.wait_text("#group-0", "2/");
    b.screenshot("20-rollout-group-1-filling");
    for (id, token) in offered_devices.iter().skip(2) {
        let mut dev = RawDevice::connect(&server, id, token);
        dev.report(3, vn, 5, 4, 0);
    }
    b.wait_text("#rollout-state", "stopped");
    b.wait_text("#rollout-stop-reason", "group 1");
    b.wait_text("#rollout-failures", "REPORT failure, result 4");
    b.wait_text("#group-1", "pending");
    assert!(
        b.text_of("#rollout-pause").is_none(),
        "a stopped rollout offers no pause"
    );
    b.screenshot("21-rollout-stopped");
    // The list shows it stopped.
    b.click("#nav-rollouts");
    b.wait_text("#rollout-list", "stopped");
}
