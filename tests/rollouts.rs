//! Staged rollouts against a real `otad serve`, with real OCP/1 devices (the reference
//! client over real TLS): a healthy 1,000-device fleet in groups 1/10/50/100 % completes and
//! releases the image; injected failures stop the rollout in the first group that passes
//! the threshold, and no device outside the started groups was ever offered the image;
//! devices that never confirm time out; pause, `autoAdvance: false` + advance, a closed
//! window and `maxPerMinute` hold back first offers; a push wins over a held image; a
//! restart keeps membership and counters; and every bad create gets its 4xx.
//!
//! Timings come from the configuration (a 50 ms timer pass) and the rollout (second-scale
//! confirm timeouts), and every wait polls for a condition with a deadline.

mod api_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_common::*;
use otad::client::device::{Client, ClientConfig};
use serde_json::{Value, json};

const CONFIG: &str = "[storage]\nrollout_tick_ms = 50\n";
/// The firmware type the fleet reports; devices start at version number 0.
const FW: u16 = 3;
const WAIT: Duration = Duration::from_secs(90);

/// How a simulated device behaves when offered the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Reports installed, then checks in running the new number (confirmation).
    Healthy,
    /// Reports an install failure.
    Fails,
    /// Reports installed but keeps running the old number.
    NeverConfirms,
}

struct Setup {
    server: Server,
    tenant: Tenant,
    dt: String,
    image: String,
    vn: u64,
    /// device id → token
    devices: BTreeMap<String, String>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server, a tenant with a device type, `n` imported devices and a pool image of type 3
/// with a binary, not associated (the rollout associates it, held).
fn setup(name: &str, n: usize) -> Setup {
    let server = Server::start_with_config(CONFIG);
    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, name);
    let dt = server.api.device_type(&tenant.id, &tenant.token, "fleet");
    let (_, url) = server
        .api
        .publish(&tenant.id, &tenant.token, &bytes(4096, 11));
    let record = server.api.pool_create(
        &tenant.id,
        &tenant.token,
        &json!({"name": "fw", "type": FW, "version": "2.0", "url": url}),
    );
    let mut csv = String::from("deviceId,deviceTypeId\n");
    for i in 0..n {
        csv.push_str(&format!("dev-{i:05},{dt}\n"));
    }
    let answer = server
        .api
        .post_bytes(
            &format!("{}/devices/import", tenant.base()),
            &tenant.token,
            "text/csv",
            csv.into_bytes(),
        )
        .expect(200)
        .text();
    let devices = answer
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect();
    Setup {
        image: s(&record, "id"),
        vn: num(&record, "versionNumber"),
        server,
        tenant,
        dt,
        devices,
    }
}

impl Setup {
    fn base(&self) -> String {
        self.tenant.base()
    }

    fn create(&self, extra: Value) -> Value {
        let mut body = json!({"deviceTypeId": self.dt, "firmwareImageId": self.image});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        self.server
            .api
            .post_json(
                &format!("{}/rollouts", self.base()),
                &self.tenant.token,
                &body,
            )
            .ok_json(201)
    }

    fn rollout(&self, id: &str) -> Value {
        self.server
            .api
            .get(
                &format!("{}/rollouts/{id}", self.base()),
                &self.tenant.token,
            )
            .ok_json(200)
    }

    fn post(&self, id: &str, verb: &str) -> Resp {
        self.server.api.post_json(
            &format!("{}/rollouts/{id}/{verb}", self.base()),
            &self.tenant.token,
            &json!({}),
        )
    }

    /// Every device outcome of the rollout: device id → (group, outcome).
    fn outcomes(&self, id: &str) -> BTreeMap<String, (u64, String)> {
        let mut out = BTreeMap::new();
        let mut page = 0;
        loop {
            let v = self
                .server
                .api
                .get(
                    &format!("{}/rollouts/{id}/devices?size=500&page={page}", self.base()),
                    &self.tenant.token,
                )
                .ok_json(200);
            let items = check_page(&v);
            for d in &items {
                out.insert(
                    s(d, "deviceId"),
                    (d["group"].as_u64().unwrap(), s(d, "outcome")),
                );
            }
            if items.len() < 500 {
                return out;
            }
            page += 1;
        }
    }

    /// Polls the rollout until `done` holds for it.
    fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.rollout(id);
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "rollout never {what}: {r:#}\n{}",
                self.server.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn config(&self, device: &str) -> ClientConfig {
        ClientConfig {
            addr: self.server.device_addr(),
            server_name: "localhost".into(),
            ca_file: self.server.data.join("tls").join("cert.pem"),
            device_id: device.into(),
            token: self.devices[device].clone(),
            max_frame: 256 * 1024,
            max_inflight: 4,
            chunk_log: 4,
        }
    }

    /// One round: every device (32 at a time) connects, CHECKs with what it runs and acts
    /// on an offer of the image as its behaviour says. Returns the devices offered now.
    fn round(
        &self,
        rt: &tokio::runtime::Runtime,
        installed: &mut BTreeMap<String, u64>,
        behaviour: &dyn Fn(&str) -> Behaviour,
    ) -> Vec<String> {
        let vn = self.vn;
        let jobs: Vec<(String, ClientConfig, u64, Behaviour)> = self
            .devices
            .keys()
            .map(|d| {
                (
                    d.clone(),
                    self.config(d),
                    installed.get(d).copied().unwrap_or(0),
                    behaviour(d),
                )
            })
            .collect();
        let results = rt.block_on(async move {
            let gate = Arc::new(tokio::sync::Semaphore::new(32));
            let mut tasks = Vec::new();
            for (id, cfg, running, b) in jobs {
                let gate = Arc::clone(&gate);
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire().await.expect("semaphore");
                    let mut c = Client::connect(&cfg).await.expect("connect");
                    let offers = c.check(&[(FW, running)]).await.expect("check");
                    let offered = offers
                        .iter()
                        .any(|o| o.fw_type == FW && o.version_number == vn);
                    let mut now_runs = running;
                    if offered {
                        c.report(FW, vn, 1, 0, 0).await.expect("report downloading");
                        match b {
                            Behaviour::Healthy => {
                                c.report(FW, vn, 4, 0, 4096)
                                    .await
                                    .expect("report installed");
                                c.check(&[(FW, vn)]).await.expect("confirming check");
                                now_runs = vn;
                            }
                            Behaviour::Fails => {
                                c.report(FW, vn, 5, 3, 0).await.expect("report failure");
                            }
                            Behaviour::NeverConfirms => {
                                c.report(FW, vn, 4, 0, 4096)
                                    .await
                                    .expect("report installed");
                            }
                        }
                    }
                    (id, offered, now_runs)
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("device task"));
            }
            out
        });
        let mut offered = Vec::new();
        for (id, was_offered, runs) in results {
            installed.insert(id.clone(), runs);
            if was_offered {
                offered.push(id);
            }
        }
        offered
    }

    /// Devices whose OTA state (over the device API) ever mentions the image.
    fn ever_offered(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut page = 0;
        loop {
            let v = self
                .server
                .api
                .get(
                    &format!("{}/devices?size=500&page={page}", self.base()),
                    &self.tenant.token,
                )
                .ok_json(200);
            let items = check_page(&v);
            for d in &items {
                let touched = d["ota"].as_array().is_some_and(|list| {
                    list.iter().any(|o| {
                        o["type"] == FW
                            && (s(o, "versionNumber") == self.vn.to_string()
                                || o["history"].as_array().is_some_and(|h| {
                                    h.iter()
                                        .any(|e| s(e, "versionNumber") == self.vn.to_string())
                                }))
                    })
                });
                if touched {
                    out.push(s(d, "deviceId"));
                }
            }
            if items.len() < 500 {
                return out;
            }
            page += 1;
        }
    }
}

fn groups(r: &Value) -> Vec<Value> {
    r["groups"].as_array().cloned().unwrap_or_default()
}

fn count(g: &Value, key: &str) -> u64 {
    g[key].as_u64().unwrap_or_else(|| panic!("{key} in {g}"))
}

#[test]
fn healthy_fleet_completes_and_releases() {
    let st = setup("Healthy", 1000);
    let rt = runtime();
    let r = st.create(json!({
        "groups": [{"percent": 1}, {"percent": 10}, {"percent": 50}, {"percent": 100}],
        "successThreshold": 1.0,
    }));
    let id = s(&r, "id");
    assert_eq!(s(&r, "state"), "running", "{r}");
    let sizes: Vec<u64> = groups(&r).iter().map(|g| count(g, "size")).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 1000, "{r}");
    // Cumulative 1/10/50/100 %: sizes within sampling error of 10/90/400/500.
    for (size, expect) in sizes.iter().zip([10.0, 90.0, 400.0, 500.0]) {
        let p = expect / 1000.0;
        let sd = (1000.0_f64 * p * (1.0 - p)).sqrt();
        assert!(
            (*size as f64 - expect).abs() <= 5.0 * sd + 1.0,
            "group sizes {sizes:?}"
        );
    }
    let membership = st.outcomes(&id);
    let mut installed = BTreeMap::new();
    let mut rounds = 0;
    let done = loop {
        rounds += 1;
        st.round(&rt, &mut installed, &|_| Behaviour::Healthy);
        let r = st.rollout(&id);
        if s(&r, "state") == "completed" {
            break r;
        }
        assert!(rounds < 20, "not completed after {rounds} rounds: {r:#}");
    };
    for g in groups(&done) {
        assert_eq!(count(&g, "confirmed"), count(&g, "size"), "{g}");
        assert_eq!(s(&g, "state"), "done", "{g}");
    }
    // Nothing was reshuffled on the way.
    let after = st.outcomes(&id);
    assert_eq!(after.len(), 1000);
    for (d, (g, _)) in &membership {
        assert_eq!(after[d].0, *g, "{d} moved");
        assert_eq!(after[d].1, "confirmed", "{d}");
    }
    // Released: a device registered now is offered the image like any association.
    let token = st
        .server
        .api
        .register_device(&st.tenant.id, &st.tenant.token, "late", &st.dt);
    let cfg = ClientConfig {
        device_id: "late".into(),
        token,
        ..st.config("dev-00000")
    };
    let offers = rt.block_on(async {
        let mut c = Client::connect(&cfg).await.expect("connect");
        c.check(&[(FW, 0)]).await.expect("check")
    });
    assert!(
        offers.iter().any(|o| o.version_number == st.vn),
        "{offers:?}"
    );
    // A second rollout of the same image is refused: it is released now.
    st.server
        .api
        .post_json(
            &format!("{}/rollouts", st.base()),
            &st.tenant.token,
            &json!({"deviceTypeId": st.dt, "firmwareImageId": st.image, "groups": [{"percent": 100}]}),
        )
        .expect_error(409, Some("already_released"));
}

#[test]
fn injected_failures_stop_in_the_first_group_past_the_threshold() {
    let st = setup("Failing", 300);
    let rt = runtime();
    let r = st.create(json!({
        "groups": [{"percent": 10}, {"percent": 50}, {"percent": 100}],
        "errorThreshold": 0.1,
        "minFailures": 2,
    }));
    let id = s(&r, "id");
    // Every fifth device fails its install: 20 %.
    let fails = |d: &str| {
        let n: usize = d.trim_start_matches("dev-").parse().unwrap();
        if n.is_multiple_of(5) {
            Behaviour::Fails
        } else {
            Behaviour::Healthy
        }
    };
    let mut installed = BTreeMap::new();
    for _ in 0..5 {
        st.round(&rt, &mut installed, &fails);
    }
    let r = st.wait_for(&id, "stopped", |r| s(r, "state") == "stopped");
    let reason = s(&r, "stopReason");
    assert!(reason.contains("group 1"), "{reason}");
    let g = groups(&r);
    assert_eq!(s(&g[0], "state"), "stopped", "{r:#}");
    assert!(count(&g[0], "failed") >= 2, "{r:#}");
    for later in &g[1..] {
        assert_eq!(s(later, "state"), "pending", "{r:#}");
        assert_eq!(
            count(later, "offered") + count(later, "confirmed"),
            0,
            "{r:#}"
        );
    }
    // No device outside group 1 was ever offered the image (each device's own history).
    let outcomes = st.outcomes(&id);
    let offered = st.ever_offered();
    assert!(!offered.is_empty());
    for d in &offered {
        assert_eq!(
            outcomes[d].0, 0,
            "{d} of group {} was offered",
            outcomes[d].0
        );
    }
    // A stop is final: no moves, no more offers.
    for verb in ["resume", "advance", "pause", "cancel"] {
        st.post(&id, verb).expect_error(409, Some("wrong_state"));
    }
    let more = st.round(&rt, &mut installed, &fails);
    assert!(more.is_empty(), "offers after the stop: {more:?}");
    let admin = st.server.admin_token();
    let metrics = st.server.api.get("/metrics", &admin).expect(200).text();
    assert!(
        metrics.contains("otad_rollouts{state=\"stopped\"} 1"),
        "{metrics}"
    );
    let failed = st.rollout(&id)["groups"][0]["failed"].as_u64().unwrap();
    assert!(
        metrics.contains(&format!(
            "otad_rollout_devices{{rollout=\"{id}\",group=\"0\",outcome=\"failed\"}} {failed}"
        )),
        "{metrics}"
    );
    let audit = st
        .server
        .api
        .get("/v1/admin/audit?size=100", &admin)
        .ok_json(200);
    assert!(
        check_page(&audit)
            .iter()
            .any(|e| s(e, "action") == "rollout.stop" && s(e, "detail") == reason),
        "{audit}"
    );
}

#[test]
fn devices_that_never_confirm_time_out() {
    let st = setup("Silent", 20);
    let rt = runtime();
    let r = st.create(json!({
        "groups": [{"percent": 100}],
        "confirmTimeoutSecs": 1,
        "errorThreshold": 0.5,
        "minFailures": 10,
    }));
    let id = s(&r, "id");
    let mut installed = BTreeMap::new();
    let offered = st.round(&rt, &mut installed, &|_| Behaviour::NeverConfirms);
    assert_eq!(offered.len(), 20);
    let r = st.wait_for(&id, "stopped by timeouts", |r| {
        s(r, "state") == "stopped" && count(&groups(r)[0], "timedOut") == 20
    });
    assert_eq!(count(&groups(&r)[0], "timedOut"), 20, "{r:#}");
    let v = st
        .server
        .api
        .get(
            &format!("{}/rollouts/{id}/devices?outcome=timedOut", st.base()),
            &st.tenant.token,
        )
        .ok_json(200);
    let items = check_page(&v);
    assert_eq!(items.len(), 20);
    assert!(
        s(&items[0], "reason").contains("not confirmed within 1 s"),
        "{v}"
    );
}

#[test]
fn pause_window_pacing_and_advance_hold_first_offers() {
    let st = setup("Held", 40);
    let rt = runtime();
    let healthy = |_: &str| Behaviour::Healthy;

    // Paused: no first offers; resumed: offers.
    let r = st.create(json!({"groups": [{"percent": 50}, {"percent": 100}], "autoAdvance": false}));
    let id = s(&r, "id");
    st.post(&id, "pause").ok_json(200);
    st.post(&id, "pause").expect_error(409, Some("wrong_state"));
    let mut installed = BTreeMap::new();
    assert!(st.round(&rt, &mut installed, &healthy).is_empty());
    st.post(&id, "resume").ok_json(200);
    let first = st.round(&rt, &mut installed, &healthy);
    let outcomes = st.outcomes(&id);
    assert!(!first.is_empty());
    assert!(first.iter().all(|d| outcomes[d].0 == 0), "only group 1");
    // autoAdvance false: group 1 succeeded, group 2 waits for advance.
    let r = st.wait_for(&id, "waiting for advance", |r| {
        s(&groups(r)[0], "state") == "succeeded"
    });
    assert_eq!(s(&groups(&r)[1], "state"), "pending");
    assert!(st.round(&rt, &mut installed, &healthy).is_empty());
    st.post(&id, "advance").ok_json(200);
    let second = st.round(&rt, &mut installed, &healthy);
    assert!(!second.is_empty() && second.iter().all(|d| outcomes[d].0 == 1));
    // The last group's success completes the rollout without an advance.
    st.wait_for(&id, "completed", |r| s(r, "state") == "completed");
}

#[test]
fn closed_window_and_max_per_minute() {
    let st = setup("Paced", 30);
    let rt = runtime();
    let healthy = |_: &str| Behaviour::Healthy;
    // A window on a day other than today: no first offers.
    let today = (now_days() + 3) % 7;
    let other = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][((today + 3) % 7) as usize];
    let r = st.create(json!({
        "groups": [{"percent": 100}],
        "window": {"days": [other], "start": "00:00", "durationMinutes": 60},
    }));
    let id = s(&r, "id");
    let mut installed = BTreeMap::new();
    assert!(st.round(&rt, &mut installed, &healthy).is_empty());
    assert_eq!(count(&groups(&st.rollout(&id))[0], "offered"), 0);
    st.post(&id, "cancel").ok_json(200);
    st.post(&id, "cancel")
        .expect_error(409, Some("wrong_state"));
    assert!(
        st.round(&rt, &mut installed, &healthy).is_empty(),
        "cancelled"
    );

    // A second rollout of the same (held) image, paced at 7 first offers per minute.
    let r = st.create(json!({"groups": [{"percent": 100}], "maxPerMinute": 7}));
    let id = s(&r, "id");
    let mut offered = Vec::new();
    for _ in 0..2 {
        offered.extend(st.round(&rt, &mut installed, &healthy));
    }
    assert!(!offered.is_empty());
    // First offers per wall-clock minute, as the server recorded them.
    let v = st
        .server
        .api
        .get(
            &format!("{}/rollouts/{id}/devices?size=100", st.base()),
            &st.tenant.token,
        )
        .ok_json(200);
    let mut per_minute: BTreeMap<u64, usize> = BTreeMap::new();
    for d in check_page(&v) {
        if let Some(t) = d["firstOfferTimestamp"].as_u64() {
            *per_minute.entry(t / 60_000).or_default() += 1;
        }
    }
    assert_eq!(per_minute.values().sum::<usize>(), offered.len());
    assert!(per_minute.values().all(|&n| n <= 7), "{per_minute:?}");
}

/// Days since the Unix epoch, now.
fn now_days() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
}

#[test]
fn a_push_wins_over_a_held_image() {
    let st = setup("Pushy", 10);
    let rt = runtime();
    let r = st.create(json!({"groups": [{"percent": 100}]}));
    let id = s(&r, "id");
    st.post(&id, "pause").ok_json(200);
    st.server
        .api
        .put_json(
            &format!(
                "{}/deviceTypes/{}/firmwareImages/{}/push",
                st.base(),
                st.dt,
                st.image
            ),
            &st.tenant.token,
            &json!({"value": "dev-00003"}),
        )
        .expect(202);
    let mut installed = BTreeMap::new();
    let offered = st.round(&rt, &mut installed, &|_| Behaviour::Healthy);
    assert_eq!(offered, ["dev-00003"], "only the pushed device");
}

#[test]
fn restart_keeps_membership_and_counters() {
    let mut st = setup("Restart", 200);
    let rt = runtime();
    let r =
        st.create(json!({"groups": [{"percent": 20}, {"percent": 100}], "successThreshold": 1.0}));
    let id = s(&r, "id");
    let mut installed = BTreeMap::new();
    let fails = |d: &str| {
        if d.ends_with('7') {
            Behaviour::NeverConfirms
        } else {
            Behaviour::Healthy
        }
    };
    st.round(&rt, &mut installed, &fails);
    let before = st.rollout(&id);
    let members = st.outcomes(&id);
    st.server.restart();
    let after = st.rollout(&id);
    assert_eq!(before["groups"], after["groups"], "counters changed");
    assert_eq!(before["state"], after["state"]);
    assert_eq!(members, st.outcomes(&id), "membership or outcomes changed");
    // It goes on from where it was.
    st.round(&rt, &mut installed, &fails);
    let r = st.rollout(&id);
    let total: u64 = groups(&r)
        .iter()
        .map(|g| count(g, "confirmed") + count(g, "offered") + count(g, "installed"))
        .sum();
    assert!(total >= count(&groups(&before)[0], "confirmed"), "{r:#}");
    // Offline check after a clean stop: counters equal a recount of the outcomes.
    st.server.stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(["db", "verify", "--data-dir"])
        .arg(&st.server.data)
        .output()
        .expect("run otad db verify");
    assert!(
        out.status.success(),
        "db verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_creates_get_their_4xx() {
    let st = setup("Picky", 3);
    let api = &st.server.api;
    let path = format!("{}/rollouts", st.base());
    let tok = &st.tenant.token;
    let body = |extra: Value| {
        let mut b = json!({"deviceTypeId": st.dt, "firmwareImageId": st.image, "groups": [{"percent": 100}]});
        if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
            o.extend(e);
        }
        b
    };
    for (extra, status, trace) in [
        (json!({"deviceTypeId": "nope"}), 400, "unknown_device_type"),
        (json!({"firmwareImageId": "999999"}), 400, "unknown_image"),
        (
            json!({"successThreshold": 1.5}),
            400,
            "threshold_out_of_range",
        ),
        (
            json!({"errorThreshold": -0.1}),
            400,
            "threshold_out_of_range",
        ),
        (
            json!({"groups": [{"percent": 50}, {"percent": 10}, {"percent": 100}]}),
            400,
            "groups_not_ascending",
        ),
        (
            json!({"groups": [{"percent": 10}, {"percent": 50}]}),
            400,
            "groups_not_ending_at_100",
        ),
        (
            json!({"groups": [{"percent": 50}, {"devices": ["dev-00000"]}]}),
            400,
            "invalid_groups",
        ),
        (
            json!({"groups": [{"devices": ["ghost"]}, {"percent": 100}]}),
            400,
            "unknown_device",
        ),
        (json!({"groups": "all"}), 400, "invalid_groups"),
        (
            json!({"window": {"days": ["mon"], "start": "25:00", "durationMinutes": 60}}),
            400,
            "invalid_window",
        ),
        (
            json!({"window": {"days": [], "start": "02:00", "durationMinutes": 60}}),
            400,
            "invalid_window",
        ),
        (json!({"window": "nightly"}), 400, "invalid_window"),
        (json!({"maxPerMinute": 0}), 400, "invalid_field"),
        (json!({"confirmTimeoutSecs": 0}), 400, "invalid_field"),
    ] {
        let err = api
            .post_json(&path, tok, &body(extra.clone()))
            .expect_error(status, Some(trace));
        assert_error_body(&err, status, &path);
    }
    // Nothing was recorded half-way: no rollout exists, the image is not associated.
    let list = api.get(&path, tok).ok_json(200);
    assert_eq!(list["totalElements"], 0, "{list}");
    let r = api
        .post_json(&path, tok, &body(json!({"startAt": 4_102_444_800_000u64})))
        .ok_json(201);
    assert_eq!(s(&r, "state"), "scheduled");
    api.post_json(&path, tok, &body(json!({})))
        .expect_error(409, Some("rollout_unfinished"));
    let id = s(&r, "id");
    st.post(&id, "resume")
        .expect_error(409, Some("wrong_state"));
    st.post("424242", "pause")
        .expect_error(404, Some("unknown_rollout"));
    let listed = api
        .get(&format!("{path}?state=scheduled"), tok)
        .ok_json(200);
    assert_eq!(listed["totalElements"], 1);
    api.get(&format!("{path}?state=bogus"), tok)
        .expect_error(400, Some("bad_filter"));
    // Image already released to the device type (a plain association).
    let other_dt = api.device_type(&st.tenant.id, tok, "plain");
    let rec = api
        .get(
            &format!("{}/pool/types/{FW}/versionNumbers/{}", st.base(), st.vn),
            tok,
        )
        .ok_json(200);
    api.associate(&st.tenant.id, tok, &other_dt, &rec);
    api.post_json(&path, tok, &json!({"deviceTypeId": other_dt, "firmwareImageId": st.image, "groups": [{"percent": 100}]}))
        .expect_error(409, Some("already_released"));
}
