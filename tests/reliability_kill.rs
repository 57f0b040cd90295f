//! Kill -9 under mixed load: a driver runs uploads, pool creations, associations, pushes,
//! device check-ins and verified downloads against a real `otad serve`, records every
//! request the server acknowledged, and SIGKILLs the server at a random moment once the
//! cycle's load is under way. After each kill: `otad db verify` is clean; after the
//! restart every acknowledged write is there (records by number and name, binaries byte for
//! byte, associations, pushes), the version numbers of the type form 1..=N with no gap and
//! no number given twice, and the devices resume their downloads from what they had
//! verified, finishing with the right BLAKE3.
//!
//! A rollout runs through it all: a fleet of its own checks in, installs, confirms or fails
//! (one device in seven), and after every kill `db verify` recounts its outcome rows against
//! its counters, and after the restart the API's counters equal a recount of its device
//! list, with no device moved to another group.
//!
//! `OTAD_KILL_CYCLES` (default 20) sets the cycles; `OTAD_KILL_SEED` replays a run (the seed
//! is printed). The second test takes an online backup while the same load runs, restores it
//! into a fresh directory with `otad db restore`, verifies it and serves it.

mod api_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use api_common::{Api, Server, Tenant, bytes, num, s, sha256_hex};
use otad::client::device::{Client, ClientConfig, Progress};
use serde_json::{Value, json};

const CONFIG: &str = "[api]\nlogin_attempts_per_minute = 100000\n";
/// MCU type of the records the creators make.
const FW_TYPE: i64 = 150;
const DOWNLOADERS: usize = 4;
const PUSH_TARGETS: usize = 3;
/// Firmware the downloading devices fetch across the kills.
const BIG: usize = 24 * 1024 * 1024 + 12_345;
/// Devices of the rollout that runs under the load.
const ROLLOUT_FLEET: usize = 60;

/// Tiny deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Everything the server acknowledged, over all cycles.
#[derive(Default)]
struct Acked {
    /// versionNumber → name of records created with 201.
    records: BTreeMap<u64, String>,
    /// versionNumber → sha256 of records created with a binary (upload + move + create).
    binaries: BTreeMap<u64, String>,
    /// Pool versionNumbers associated with the churn device type (201).
    associations: BTreeSet<u64>,
    /// device → image ids pushed to it, in the order sent: (id, acknowledged).
    pushes: BTreeMap<String, Vec<(String, bool)>>,
    /// Pool versionNumbers whose association was acknowledged, usable for pushes.
    pushable: Vec<String>,
}

/// What a downloading device keeps across server kills (its "flash").
struct DeviceState {
    id: String,
    token: String,
    progress: Option<Progress>,
    flash: Vec<u8>,
    /// Verified bytes when the previous cycle ended (to check that resume never restarts).
    resumed_from: Vec<u64>,
}

struct Setup {
    tenant: Tenant,
    /// Device type that receives associations and pushes during the load.
    churn_dt: String,
    push_targets: Vec<String>,
    big: Vec<u8>,
    big_blake3: [u8; 32],
    /// The rollout under the load, its image's version number and its devices' tokens.
    rollout: String,
    rollout_vn: u64,
    rollout_devices: Vec<(String, String)>,
    /// What each rollout device runs (its "flash"), across kills.
    rollout_installed: Mutex<BTreeMap<String, u64>>,
}

fn setup(server: &Server) -> (Setup, Vec<DeviceState>) {
    let api = &server.api;
    let admin = server.admin_token();
    let tenant = api.tenant(&admin, "Kill");
    let tok = &tenant.token;
    api.fw_type(&tenant.id, tok, FW_TYPE, "KILL_MCU");
    let big = bytes(BIG, 42);
    let (_, url) = api.publish(&tenant.id, tok, &big);
    let app = api.pool_create(
        &tenant.id,
        tok,
        &json!({"name": "kill-app", "type": 3, "version": "9.9", "url": url}),
    );
    let fleet_dt = api.device_type(&tenant.id, tok, "kill-fleet");
    api.associate(&tenant.id, tok, &fleet_dt, &app);
    let churn_dt = api.device_type(&tenant.id, tok, "kill-churn");
    let push_targets = (0..PUSH_TARGETS)
        .map(|i| {
            let id = format!("kill-push-{i}");
            api.register_device(&tenant.id, tok, &id, &churn_dt);
            id
        })
        .collect();
    let devices = (0..DOWNLOADERS)
        .map(|i| {
            let id = format!("kill-dl-{i}");
            let token = api.register_device(&tenant.id, tok, &id, &fleet_dt);
            DeviceState {
                id,
                token,
                progress: None,
                flash: Vec::new(),
                resumed_from: Vec::new(),
            }
        })
        .collect();
    let big_blake3 = *blake3::hash(&big).as_bytes();
    let rollout_dt = api.device_type(&tenant.id, tok, "kill-rollout");
    let rollout_devices: Vec<(String, String)> = (0..ROLLOUT_FLEET)
        .map(|i| {
            let id = format!("kill-ro-{i:03}");
            let token = api.register_device(&tenant.id, tok, &id, &rollout_dt);
            (id, token)
        })
        .collect();
    let rollout = api
        .post_json(
            &format!("{}/rollouts", tenant.base()),
            tok,
            &json!({
                "deviceTypeId": rollout_dt,
                "firmwareImageId": s(&app, "id"),
                "groups": [{"percent": 20}, {"percent": 60}, {"percent": 100}],
                "successThreshold": 0.8,
                "errorThreshold": 0.5,
                "minFailures": 100,
            }),
        )
        .ok_json(201);
    (
        Setup {
            tenant,
            churn_dt,
            push_targets,
            big,
            big_blake3,
            rollout: s(&rollout, "id"),
            rollout_vn: num(&app, "versionNumber"),
            rollout_devices,
            rollout_installed: Mutex::new(BTreeMap::new()),
        },
        devices,
    )
}

/// The answer's JSON when it has `status`; None when the request died with the server
/// (a transport error). Any other answer is a bug under load and fails the test.
fn ok(r: &Result<api_common::Resp, String>, status: u16) -> Option<Value> {
    match r {
        Ok(resp) if resp.status == status => Some(resp.json()),
        Ok(resp) => panic!(
            "{} {} answered {} under load: {}",
            resp.method,
            resp.path,
            resp.status,
            resp.text()
        ),
        Err(_) => None,
    }
}

/// Upload + moveToRepository: (sha256, url), or None when the server died meanwhile.
fn publish(api: &Api, t: &Tenant, data: Vec<u8>) -> Option<(String, String)> {
    let sha = sha256_hex(&data);
    let up = api.try_send(
        api.req(
            reqwest::Method::POST,
            &format!("{}/binaries", t.base()),
            &t.token,
        )
        .header("content-type", "application/octet-stream")
        .body(data),
    );
    ok(&up, 200)?;
    let mv = api.try_send(
        api.req(
            reqwest::Method::POST,
            &format!("{}/binaries/moveToRepository", t.base()),
            &t.token,
        )
        .json(&json!({"value": sha})),
    );
    let v = ok(&mv, 200)?;
    Some((sha, s(&v, "value")))
}

/// Creates a pool record of the type: its JSON, or None when the server died meanwhile.
fn create_record(api: &Api, t: &Tenant, name: &str, version: &str, url: &str) -> Option<Value> {
    let r = api.try_send(
        api.req(
            reqwest::Method::POST,
            &format!("{}/pool", t.base()),
            &t.token,
        )
        .json(&json!({"name": name, "type": FW_TYPE, "version": version, "url": url})),
    );
    ok(&r, 201)
}

impl Acked {
    /// Records an acknowledged creation; a number handed out twice fails the test.
    fn record(&mut self, vn: u64, name: String) {
        assert!(
            self.records.insert(vn, name).is_none(),
            "version number {vn} given twice"
        );
    }
}

/// One cycle of load: threads that stop when `stop` is set or the server dies.
struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    devices: Vec<JoinHandle<DeviceState>>,
}

fn start_load(
    server: &Server,
    setup: &Arc<Setup>,
    acked: &Arc<Mutex<Acked>>,
    devices: Vec<DeviceState>,
    cycle: u64,
    seed: u64,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    // Pool creations without binaries.
    for w in 0..2 {
        let (api, setup, acked, stop, acks) = (
            server.api.clone(),
            setup.clone(),
            acked.clone(),
            stop.clone(),
            acks.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let t = &setup.tenant;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("rec-{cycle}-{w}-{i}");
                i += 1;
                let Some(v) = create_record(&api, t, &name, "1", "") else {
                    return;
                };
                acked.lock().unwrap().record(num(&v, "versionNumber"), name);
                acks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Uploads: stage, move, create a record with the binary.
    {
        let (api, setup, acked, stop, acks) = (
            server.api.clone(),
            setup.clone(),
            acked.clone(),
            stop.clone(),
            acks.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let t = &setup.tenant;
            let mut rng = Rng(seed ^ 0x5555 ^ cycle);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let data = bytes(20_000 + rng.below(400_000) as usize, rng.next());
                let Some((sha, url)) = publish(&api, t, data) else {
                    return;
                };
                let name = format!("bin-{cycle}-{i}");
                i += 1;
                let Some(v) = create_record(&api, t, &name, "2", &url) else {
                    return;
                };
                let vn = num(&v, "versionNumber");
                let mut a = acked.lock().unwrap();
                a.record(vn, name);
                a.binaries.insert(vn, sha);
                acks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Associations and pushes on the churn device type.
    {
        let (api, setup, acked, stop, acks) = (
            server.api.clone(),
            setup.clone(),
            acked.clone(),
            stop.clone(),
            acks.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let t = &setup.tenant;
            let images = format!("{}/deviceTypes/{}/firmwareImages", t.base(), setup.churn_dt);
            let mut rng = Rng(seed ^ 0xaaaa ^ cycle);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("assoc-{cycle}-{i}");
                i += 1;
                // A push needs an image with a binary.
                let data = format!("pushed firmware {name} {}", rng.next()).into_bytes();
                let Some((sha, url)) = publish(&api, t, data) else {
                    return;
                };
                let Some(record) = create_record(&api, t, &name, "3", &url) else {
                    return;
                };
                let vn = num(&record, "versionNumber");
                {
                    let mut a = acked.lock().unwrap();
                    a.record(vn, name);
                    a.binaries.insert(vn, sha);
                }
                let r = api.try_send(
                    api.req(reqwest::Method::POST, &images, &t.token)
                        .json(&record),
                );
                let Some(image) = ok(&r, 201) else { return };
                {
                    let mut a = acked.lock().unwrap();
                    a.associations.insert(vn);
                    a.pushable.push(s(&image, "id"));
                }
                let device = setup.push_targets[rng.below(PUSH_TARGETS as u64) as usize].clone();
                let image_id = s(&image, "id");
                acked
                    .lock()
                    .unwrap()
                    .pushes
                    .entry(device.clone())
                    .or_default()
                    .push((image_id.clone(), false));
                let r = api.try_send(
                    api.req(
                        reqwest::Method::PUT,
                        &format!("{images}/{image_id}/push"),
                        &t.token,
                    )
                    .json(&json!({"value": device})),
                );
                if ok(&r, 202).is_none() {
                    return;
                }
                if let Some(last) = acked
                    .lock()
                    .unwrap()
                    .pushes
                    .get_mut(&device)
                    .and_then(|v| v.last_mut())
                {
                    last.1 = true;
                }
                acks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Devices: check in, then download with proofs, a piece at a time, until killed.
    let device_addr = server.device_addr();
    let ca = server.data.join("tls").join("cert.pem");
    // The rollout's fleet: check in, report, confirm (one in seven fails), round after round.
    {
        let (setup, stop, acks, addr, ca) = (
            setup.clone(),
            stop.clone(),
            acks.clone(),
            device_addr.clone(),
            ca.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let vn = setup.rollout_vn;
            rt.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    for (i, (id, token)) in setup.rollout_devices.iter().enumerate() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let cfg = ClientConfig {
                            addr: addr.clone(),
                            server_name: "localhost".into(),
                            ca_file: ca.clone(),
                            device_id: id.clone(),
                            token: token.clone(),
                            max_frame: 256 * 1024,
                            max_inflight: 4,
                            chunk_log: 4,
                        };
                        let running = setup
                            .rollout_installed
                            .lock()
                            .unwrap()
                            .get(id)
                            .copied()
                            .unwrap_or(0);
                        let Ok(mut c) = Client::connect(&cfg).await else {
                            return;
                        };
                        let Ok(offers) = c.check(&[(3, running)]).await else {
                            return;
                        };
                        acks.fetch_add(1, Ordering::Relaxed);
                        if !offers.iter().any(|o| o.version_number == vn) {
                            continue;
                        }
                        if i % 7 == 3 {
                            if c.report(3, vn, 5, 4, 0).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        if c.report(3, vn, 4, 0, 0).await.is_err() {
                            return;
                        }
                        setup
                            .rollout_installed
                            .lock()
                            .unwrap()
                            .insert(id.clone(), vn);
                        if c.check(&[(3, vn)]).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }));
    }
    let device_threads = devices
        .into_iter()
        .map(|mut dev| {
            let (setup, stop, acks, addr, ca) = (
                setup.clone(),
                stop.clone(),
                acks.clone(),
                device_addr.clone(),
                ca.clone(),
            );
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let cfg = ClientConfig {
                        addr,
                        server_name: "localhost".into(),
                        ca_file: ca,
                        device_id: dev.id.clone(),
                        token: dev.token.clone(),
                        max_frame: 256 * 1024,
                        max_inflight: 8,
                        chunk_log: 4,
                    };
                    if let Some(p) = dev.progress {
                        dev.resumed_from.push(p.verified_upto);
                    }
                    let Ok(mut c) = Client::connect(&cfg).await else {
                        return;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let installed = if dev.progress.is_some_and(|p| p.verified_upto == p.size) {
                            1
                        } else {
                            0
                        };
                        let Ok(offers) = c.check(&[(3, installed)]).await else {
                            return;
                        };
                        acks.fetch_add(1, Ordering::Relaxed);
                        if installed == 1 {
                            continue;
                        }
                        let Some(o) = offers.iter().find(|o| o.fw_type == 3) else {
                            panic!("{}: no offer for type 3: {offers:?}", dev.id);
                        };
                        assert_eq!(o.blake3, setup.big_blake3, "offered the wrong image");
                        let mut p = dev.progress.unwrap_or(Progress {
                            blake3: o.blake3,
                            size: o.size,
                            verified_upto: 0,
                        });
                        let flash = &mut dev.flash;
                        let r = c
                            .download(&mut p, Some(128 * 1024), |at, data| {
                                let at = at as usize;
                                if flash.len() < at + data.len() {
                                    flash.resize(at + data.len(), 0);
                                }
                                flash[at..at + data.len()].copy_from_slice(data);
                                Ok(())
                            })
                            .await;
                        dev.progress = Some(p);
                        if r.is_err() {
                            return;
                        }
                    }
                });
                dev
            })
        })
        .collect();
    Load {
        stop,
        acks,
        threads,
        devices: device_threads,
    }
}

impl Load {
    /// Sets the stop flag and collects the threads (their requests fail once the server is
    /// gone).
    fn finish(self) -> Vec<DeviceState> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread panicked");
        }
        self.devices
            .into_iter()
            .map(|t| t.join().expect("device thread panicked"))
            .collect()
    }
}

fn otad(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(args)
        .output()
        .expect("run otad")
}

fn db_verify(dir: &std::path::Path) {
    let out = otad(&["db", "verify", "--data-dir", &dir.display().to_string()]);
    assert!(
        out.status.success(),
        "db verify failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rollout's counters, as the API shows them, equal a recount of its device list; no
/// device changed group since `groups` was taken (the first time, it is filled in).
fn check_rollout(api: &Api, setup: &Setup, groups: &mut BTreeMap<String, u64>) -> u64 {
    let t = &setup.tenant;
    let r = api
        .get(
            &format!("{}/rollouts/{}", t.base(), setup.rollout),
            &t.token,
        )
        .ok_json(200);
    let list = api
        .get(
            &format!("{}/rollouts/{}/devices?size=1000", t.base(), setup.rollout),
            &t.token,
        )
        .ok_json(200);
    let items = list["content"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), ROLLOUT_FLEET, "{list}");
    let mut recount: BTreeMap<(u64, String), u64> = BTreeMap::new();
    for d in &items {
        let g = d["group"].as_u64().unwrap();
        let id = s(d, "deviceId");
        assert_eq!(
            *groups.entry(id.clone()).or_insert(g),
            g,
            "{id} changed group"
        );
        *recount.entry((g, s(d, "outcome"))).or_default() += 1;
    }
    for g in r["groups"].as_array().unwrap() {
        let index = g["index"].as_u64().unwrap();
        for outcome in [
            "waiting",
            "offered",
            "downloading",
            "installed",
            "confirmed",
            "failed",
            "timedOut",
        ] {
            assert_eq!(
                g[outcome].as_u64().unwrap(),
                recount
                    .get(&(index, outcome.to_string()))
                    .copied()
                    .unwrap_or(0),
                "rollout counters differ from a recount, group {index} {outcome}: {r}"
            );
        }
    }
    recount
        .iter()
        .filter(|((_, o), _)| o == "confirmed")
        .map(|(_, n)| n)
        .sum()
}

/// Every record of the type, by paging through the pool listing.
fn all_records(api: &Api, t: &Tenant) -> BTreeMap<u64, Value> {
    let mut out = BTreeMap::new();
    let mut page = 0;
    loop {
        let v = api
            .get(
                &format!("{}/pool/types/{FW_TYPE}?page={page}&size=1000", t.base()),
                &t.token,
            )
            .ok_json(200);
        let content = v["content"].as_array().cloned().unwrap_or_default();
        for r in &content {
            out.insert(num(r, "versionNumber"), r.clone());
        }
        if content.len() < 1000 {
            return out;
        }
        page += 1;
    }
}

/// Checks every acknowledged write against the restarted server.
fn check_acked(api: &Api, setup: &Setup, acked: &Acked, associations: bool) {
    let t = &setup.tenant;
    let records = all_records(api, t);
    let numbers: Vec<u64> = records.keys().copied().collect();
    let expect: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(
        numbers, expect,
        "version numbers of type {FW_TYPE} are not 1..=N"
    );
    for (vn, name) in &acked.records {
        let r = records
            .get(vn)
            .unwrap_or_else(|| panic!("acknowledged record {vn} ({name}) is gone"));
        assert_eq!(&s(r, "name"), name, "record {vn} changed");
    }
    for (vn, sha) in &acked.binaries {
        // The record's url names the listener of the run that created it (port 0 moves on
        // every restart), so ask this server for the same path.
        let url = s(&records[vn], "url");
        assert!(
            url.ends_with(&format!("/binaries/{sha}")),
            "record {vn} url {url}"
        );
        let got = api.get(&format!("{}/binaries/{sha}", t.base()), &t.token);
        assert_eq!(got.status, 200, "binary of record {vn}");
        assert_eq!(&sha256_hex(&got.body), sha, "binary of record {vn} differs");
    }
    if associations {
        let images = api
            .get(
                &format!(
                    "{}/deviceTypes/{}/firmwareImages/types/{FW_TYPE}?size=1000",
                    t.base(),
                    setup.churn_dt
                ),
                &t.token,
            )
            .ok_json(200);
        let associated: BTreeSet<u64> = images["content"]
            .as_array()
            .map(|a| a.iter().map(|r| num(r, "versionNumber")).collect())
            .unwrap_or_default();
        let missing: Vec<_> = acked.associations.difference(&associated).collect();
        assert!(missing.is_empty(), "associations lost: {missing:?}");
    }
    for (device, pushes) in &acked.pushes {
        let Some(last_acked) = pushes.iter().rposition(|(_, ok)| *ok) else {
            continue;
        };
        let v = api
            .get(&format!("{}/devices/{device}", t.base()), &t.token)
            .ok_json(200);
        let pending: Vec<String> = v["pushes"]
            .as_array()
            .map(|a| a.iter().map(|p| s(p, "firmwareImageId")).collect())
            .unwrap_or_default();
        // The last acknowledged push, or one sent after it whose answer the kill cut off.
        let allowed: Vec<&String> = pushes[last_acked..].iter().map(|(id, _)| id).collect();
        assert!(
            pending.iter().any(|p| allowed.contains(&p)),
            "{device}: pending pushes {pending:?}, expected one of {allowed:?}"
        );
    }
}

fn seed() -> u64 {
    std::env::var("OTAD_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

#[test]
fn sigkill_under_mixed_load_loses_nothing_acknowledged() {
    let cycles: u64 = std::env::var("OTAD_KILL_CYCLES")
        .ok()
        .map(|v| v.parse().expect("OTAD_KILL_CYCLES is a number"))
        .unwrap_or(20);
    let seed = seed();
    eprintln!("kill test: {cycles} cycles, OTAD_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server = Server::start_with_config(CONFIG);
    let (setup, mut devices) = setup(&server);
    let setup = Arc::new(setup);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let started = Instant::now();
    let mut total_acks = 0;
    let mut loaded = Duration::ZERO;
    let mut rollout_groups = BTreeMap::new();
    let mut rollout_confirmed = check_rollout(&server.api, &setup, &mut rollout_groups);
    for cycle in 0..cycles {
        let load_started = Instant::now();
        let load = start_load(&server, &setup, &acked, devices, cycle, seed);
        // Kill at a random moment once this cycle's load is under way.
        let need = 5 + rng.below(20) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while load.acks.load(Ordering::Relaxed) < need {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: load made no progress\n{}",
                server.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        server.kill9();
        loaded += load_started.elapsed();
        total_acks += load.acks.load(Ordering::Relaxed);
        devices = load.finish();
        db_verify(&server.data);
        server.start_again();
        rollout_confirmed = check_rollout(&server.api, &setup, &mut rollout_groups);
        let a = acked.lock().unwrap();
        check_acked(
            &server.api,
            &setup,
            &a,
            cycle % 5 == 4 || cycle + 1 == cycles,
        );
    }
    // Finish the downloads on the last server: every device resumes and completes.
    let mut dl_cycles = 0;
    while devices
        .iter()
        .any(|d| d.progress.is_none_or(|p| p.verified_upto < p.size))
    {
        dl_cycles += 1;
        assert!(dl_cycles < 200, "downloads do not finish");
        let load = start_load(&server, &setup, &acked, devices, cycles + dl_cycles, seed);
        std::thread::sleep(Duration::from_millis(300));
        devices = load.finish();
    }
    for d in &devices {
        assert_eq!(d.flash.len(), setup.big.len(), "{}", d.id);
        assert!(
            d.flash == setup.big,
            "{}: downloaded image differs from the firmware",
            d.id
        );
        // Resume continued from what was verified: the recorded starting points only grow.
        assert!(
            d.resumed_from.windows(2).all(|w| w[0] <= w[1]),
            "{}: a resume went backwards: {:?}",
            d.id,
            d.resumed_from
        );
    }
    let resumed_mid = devices
        .iter()
        .flat_map(|d| d.resumed_from.iter())
        .filter(|&&v| v > 0 && v < setup.big.len() as u64)
        .count();
    assert!(resumed_mid > 0, "no download was resumed mid-way");
    assert!(
        rollout_confirmed > 0,
        "the rollout under the load confirmed no device"
    );
    let a = acked.lock().unwrap();
    eprintln!(
        "kill test: {cycles} kills in {:.1} s; acknowledged {} records ({} with binaries), {} associations, {} pushes, {} acks in all ({:.0}/s over {:.1} s of load, 4 threads of HTTP clients and {DOWNLOADERS} devices); {} mid-download resumes",
        started.elapsed().as_secs_f64(),
        a.records.len(),
        a.binaries.len(),
        a.associations.len(),
        a.pushes.values().flatten().filter(|p| p.1).count(),
        total_acks,
        total_acks as f64 / loaded.as_secs_f64().max(1e-9),
        loaded.as_secs_f64(),
        resumed_mid
    );
    server.assert_alive();
}

#[test]
fn online_backup_under_mixed_load_restores_and_verifies() {
    let seed = seed();
    eprintln!("backup test: OTAD_KILL_SEED={seed}");
    let mut server = Server::start_with_config(CONFIG);
    let (setup, devices) = setup(&server);
    let setup = Arc::new(setup);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let load = start_load(&server, &setup, &acked, devices, 0, seed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.acks.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "load made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let before: BTreeSet<u64> = acked.lock().unwrap().records.keys().copied().collect();
    let started = Instant::now();
    let backup = server.root().join("backup.redb");
    let admin = server.admin_token();
    let mut resp = server
        .api
        .client
        .get(format!("{}/v1/admin/backup", server.api.base))
        .bearer_auth(&admin)
        .send()
        .expect("backup request");
    assert_eq!(resp.status().as_u16(), 200, "backup answer");
    let mut file = std::fs::File::create(&backup).expect("backup file");
    let copied = resp.copy_to(&mut file).expect("stream the backup");
    drop(file);
    let took = started.elapsed();
    // Everything acknowledged or still in flight by now bounds what the backup can hold.
    let acks_during = load.acks.load(Ordering::Relaxed);
    let after: BTreeSet<u64> = acked.lock().unwrap().records.keys().copied().collect();
    drop(load.finish());
    server.stop();
    assert!(acks_during >= 100);

    let restored_dir = server.root().join("restored");
    let out = otad(&[
        "db",
        "restore",
        &backup.display().to_string(),
        "--data-dir",
        &restored_dir.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "db restore: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    db_verify(&restored_dir);

    let restored = Server::start_from_backup(&restored_dir.join("otad.redb"), Some(CONFIG));
    let t = &setup.tenant;
    let token = restored.api.login(&t.id, &t.secret, &t.user, &t.password);
    let records = {
        let mut t = t.clone();
        t.token = token;
        all_records(&restored.api, &t)
    };
    let numbers: BTreeSet<u64> = records.keys().copied().collect();
    let expect: BTreeSet<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expect, "restored numbers are not 1..=N");
    let missing: Vec<_> = before.difference(&numbers).collect();
    assert!(
        missing.is_empty(),
        "records acknowledged before the backup started are missing: {missing:?}"
    );
    // Every restored number was handed out by the live server (acknowledged then or later,
    // or in flight when the backup's snapshot was taken, which is at most one per creator).
    let max_live = after.iter().max().copied().unwrap_or(0) + 4;
    assert!(
        numbers.iter().all(|n| *n <= max_live),
        "the backup holds numbers the server never reached: max {:?} > {max_live}",
        numbers.iter().max()
    );
    eprintln!(
        "backup test: {copied} bytes in {:.2} s under load; {} records acknowledged before, {} restored, {} acknowledged by the end of the copy",
        took.as_secs_f64(),
        before.len(),
        numbers.len(),
        after.len()
    );
}
