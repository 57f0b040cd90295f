//! CHECK → OFFER latency inside the server, at fleet scale.
//!
//! Builds a store with many registered devices and many associated images (defaults:
//! 1,000,000 devices, 10,000 images over 100 device types), then times `Store::check_in` —
//! the whole server-side work of a CHECK: read the device, pick the offer with the
//! eligibility rule, record the inventory (batched commit) — for random devices, from one
//! thread and from several. Prints p50/p90/p99/max. It does not include TLS or framing
//! (bench/http and the device simulator cover the wire).
//!
//! Half of the device types (the even ones) require signed images and their newest image
//! is signed (docs/signing.md): the same run prints the single-thread figures of devices
//! of signed and of unsigned device types apart, and the ratio of their p99: what signing
//! costs a CHECK (signatures are verified at upload; an offer only reads them).
//!
//! Rollout phase (issue 13, Performance): a further device type with `--rollout-devices`
//! devices (default 1,000,000) and one image held by a rollout covering all of them, in the
//! same store after the figures above. It prints how long creating the rollout took (one
//! transaction that places every device in its group), CHECK → OFFER for devices inside the
//! rollout (its first group started: a first offer, with the outcome, timeout and counter
//! writes; the second group not started: held back) beside devices outside it, interleaved
//! at random in one thread, and the rollout timer pass (`Store::rollout_tick`) with nothing
//! due, over many passes. Those rows carry their goals (CHECK p99 ≤ 2 ms, timer pass p99
//! ≤ 1 ms) and say `met` or `MISSED`.
//!
//! Run: `cargo bench --bench check_latency` (`-- --devices N --images M --checks K
//! --rollout-devices R --ticks T` to change the scale; `--rollout-devices 0` skips the
//! rollout phase).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use otad::config::StorageConfig;
use otad::model::RecordFields;
use otad::rollout::{Definition, Filter, GroupSpec, MILLION};
use otad::secrets::token_hash;
use otad::store::ImportRow;
use otad::store::NewRecord;
use otad::store::NewRollout;
use otad::store::Store;

struct Options {
    devices: usize,
    images: usize,
    device_types: usize,
    checks: usize,
    threads: usize,
    rollout_devices: usize,
    ticks: usize,
}

fn options() -> Options {
    let mut o = Options {
        devices: 1_000_000,
        images: 10_000,
        device_types: 100,
        checks: 20_000,
        threads: 4,
        rollout_devices: 1_000_000,
        ticks: 10_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match (args[i].as_str(), value) {
            ("--devices", Some(v)) => o.devices = v,
            ("--images", Some(v)) => o.images = v,
            ("--device-types", Some(v)) => o.device_types = v.max(1),
            ("--checks", Some(v)) => o.checks = v,
            ("--threads", Some(v)) => o.threads = v.max(1),
            ("--rollout-devices", Some(v)) => o.rollout_devices = v,
            ("--ticks", Some(v)) => o.ticks = v.max(1),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// A small deterministic generator so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(i).copied().unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}

/// The `p`-quantile of sorted samples.
fn quantile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// One row of the goal table: what, the measured value, the goal, met or MISSED.
fn goal_row(what: &str, value: &str, goal: &str, met: bool) {
    println!(
        "{what:<58} {value:<46} {goal:<14} {}",
        if met { "met" } else { "MISSED" }
    );
}

fn main() {
    let o = options();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(
        &otad::datadir::DataDir::new(dir.path()).db(),
        &StorageConfig::default(),
    )
    .expect("open store");
    store.bootstrap().expect("bootstrap");
    let (partner, _) = store
        .create_partner("bench", "bench", None)
        .expect("partner");
    let p = partner.id;
    let started = Instant::now();
    let device_types: Vec<String> = (0..o.device_types)
        .map(|i| {
            store
                .create_device_type("bench", &p, &format!("type {i}"), "")
                .expect("device type")
                .id
        })
        .collect();
    // One shared binary (content-addressed: stored once, referenced by every record).
    let staged = store.ingest_bytes(&p, &vec![7u8; 20_000]).expect("ingest");
    let published = store.publish("bench", &p, staged.sha256).expect("publish");
    let url = format!(
        "https://bench/v1/ota/partners/{p}/binaries/{}",
        otad::model::hex(&published.sha256)
    );
    let per_type = o.images.div_ceil(o.device_types);
    let mut top: BTreeMap<usize, u64> = BTreeMap::new();
    let mut top_version: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..o.images {
        let dt = i % o.device_types;
        let record = store
            .create_pool_record(
                "bench",
                NewRecord {
                    partner_id: p.clone(),
                    fw_type: 3,
                    fields: RecordFields {
                        name: format!("app-{dt}"),
                        description: String::new(),
                        version: format!("1.{i}"),
                        tags: vec![],
                    },
                    binary: Some((published.sha256, url.clone())),
                    associations: vec![device_types[dt].clone()],
                },
            )
            .expect("record");
        top.insert(dt, record.version_number);
        top_version.insert(dt, format!("1.{i}"));
    }
    // Sign the newest image of every even device type and require signatures there.
    let key = otad::signing::SigningKey::from_pkcs8(&otad::signing::pkcs8_from_seed(&[9; 32]))
        .expect("signing key");
    store
        .add_signing_key("bench", &p, "bench", key.public_key())
        .expect("register the key");
    for (dt, id) in device_types
        .iter()
        .enumerate()
        .filter(|(dt, _)| dt.is_multiple_of(2))
    {
        let (Some(&vn), Some(version)) = (top.get(&dt), top_version.get(&dt)) else {
            continue;
        };
        let manifest = otad::signing::Manifest {
            partner_id: p.clone(),
            fw_type: 3,
            version_number: vn,
            version: version.clone(),
            size: 20_000,
            sha256: published.sha256,
            blake3: published.blake3,
            not_before: 0,
            expires: 0,
            device_types: vec![],
        }
        .encode()
        .expect("manifest");
        let signature = key.sign(&manifest);
        store
            .add_signature(
                "bench",
                &p,
                3,
                vn,
                otad::store::SubmittedSignature {
                    manifest,
                    key_id: otad::signing::to_hex(&key.key_id()),
                    signature,
                },
            )
            .expect("signature");
        store
            .set_signature_policy("bench", &p, id, true)
            .expect("policy");
    }
    println!(
        "images: {} over {} device types ({per_type} each) in {:.1} s",
        o.images,
        o.device_types,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let batch = 20_000;
    let mut registered = 0;
    while registered < o.devices {
        let n = batch.min(o.devices - registered);
        let rows: Vec<ImportRow> = (registered..registered + n)
            .map(|i| ImportRow {
                line: i + 1,
                device_id: format!("dev-{i:07}"),
                device_type_id: device_types[i % o.device_types].clone(),
                token_hash: token_hash(format!("t{i}")),
                labels: Default::default(),
            })
            .collect();
        store
            .import_devices("bench", &p, rows, true)
            .expect("import");
        registered += n;
    }
    let file =
        std::fs::metadata(otad::datadir::DataDir::new(dir.path()).db()).map_or(0, |m| m.len());
    println!(
        "devices: {} registered in {:.1} s; database {} MiB",
        o.devices,
        started.elapsed().as_secs_f64(),
        file >> 20
    );

    // Devices report an older version, so every CHECK finds an offer. Each sample is
    // marked with whether its device type requires (and has) a signed image.
    let run = |seed: u64, n: usize| {
        let mut rng = Rng(seed | 1);
        let mut samples = Vec::with_capacity(n);
        let mut signed = Vec::with_capacity(n);
        for _ in 0..n {
            let i = (rng.next() % o.devices as u64) as usize;
            let installed = BTreeMap::from([(3u16, rng.next() % 50)]);
            let t = Instant::now();
            let offers = store
                .check_in(&format!("dev-{i:07}"), installed)
                .expect("check");
            samples.push(t.elapsed());
            let is_signed = (i % o.device_types).is_multiple_of(2);
            signed.push(is_signed);
            assert_eq!(
                offers.len(),
                1,
                "a device with an old version gets one offer"
            );
            assert_eq!(
                Some(&offers[0].offer.version_number),
                top.get(&(i % o.device_types))
            );
            if is_signed {
                assert_eq!(
                    offers[0].signatures.len(),
                    1,
                    "a signed device type's offer carries its signature"
                );
            }
        }
        (samples, signed)
    };
    let (one, marks) = run(42, o.checks);
    let (mut signed, mut unsigned) = (Vec::new(), Vec::new());
    for (d, s) in one.iter().zip(&marks) {
        if *s {
            signed.push(*d);
        } else {
            unsigned.push(*d);
        }
    }
    let p99 = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v.get(v.len() * 99 / 100).copied().unwrap_or_default()
    };
    let ratio = p99(&signed).as_secs_f64() / p99(&unsigned).as_secs_f64().max(1e-9);
    println!(
        "CHECK→OFFER, 1 thread, {} checks: {}",
        o.checks,
        percentiles(one)
    );
    println!(
        "  of which signed device types ({}): {}",
        signed.len(),
        percentiles(signed)
    );
    println!(
        "  of which unsigned device types ({}): {}",
        unsigned.len(),
        percentiles(unsigned)
    );
    println!("  p99 signed / unsigned: {ratio:.3}");
    let per_thread = o.checks / o.threads;
    let started = Instant::now();
    let many: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.threads)
            .map(|t| {
                let run = &run;
                s.spawn(move || run(1000 + t as u64, per_thread).0)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let rate = many.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "CHECK→OFFER, {} threads, {} checks ({rate:.0}/s): {}",
        o.threads,
        many.len(),
        percentiles(many)
    );
    if o.rollout_devices > 0 {
        rollout_phase(&store, &o, &p, &url, published.sha256, &top);
    }
    store.close();
}

/// The rollout rows: a device type of `o.rollout_devices` devices whose newest image is
/// held by a rollout covering all of them; CHECKs inside and outside it; the timer pass.
fn rollout_phase(
    store: &Store,
    o: &Options,
    p: &str,
    url: &str,
    sha256: [u8; 32],
    top: &BTreeMap<usize, u64>,
) {
    let started = Instant::now();
    let dt = store
        .create_device_type("bench", p, "rollout type", "")
        .expect("rollout device type")
        .id;
    let batch = 20_000;
    let mut registered = 0;
    while registered < o.rollout_devices {
        let n = batch.min(o.rollout_devices - registered);
        let rows: Vec<ImportRow> = (registered..registered + n)
            .map(|i| ImportRow {
                line: i + 1,
                device_id: format!("rol-{i:07}"),
                device_type_id: dt.clone(),
                token_hash: token_hash(format!("r{i}")),
                labels: Default::default(),
            })
            .collect();
        store
            .import_devices("bench", p, rows, true)
            .expect("import rollout devices");
        registered += n;
    }
    println!(
        "rollout devices: {} more devices of one device type registered in {:.1} s",
        o.rollout_devices,
        started.elapsed().as_secs_f64()
    );
    let record = store
        .create_pool_record(
            "bench",
            NewRecord {
                partner_id: p.to_string(),
                fw_type: 3,
                fields: RecordFields {
                    name: "app-rollout".into(),
                    description: String::new(),
                    version: "2.0".into(),
                    tags: vec![],
                },
                binary: Some((sha256, url.to_string())),
                // Not associated: the rollout associates it and holds it.
                associations: vec![],
            },
        )
        .expect("rollout record");
    // Two groups, 10 % and the rest. Every device of the first must confirm before the
    // second starts, and none does here: during the run group 1 makes first offers and
    // group 2 is held back, the two cases a CHECK inside a rollout takes.
    let def = Definition {
        name: "bench".into(),
        device_type_id: dt.clone(),
        record_id: record.id,
        fw_type: 0,
        version_number: 0,
        groups: vec![
            GroupSpec::Percent(MILLION / 10),
            GroupSpec::Percent(MILLION),
        ],
        success: MILLION,
        error: MILLION,
        min_failures: 1_000_000,
        confirm_timeout_secs: 24 * 3600,
        soak_secs: 0,
        auto_advance: true,
        max_per_minute: None,
        window: None,
        start_at_ms: None,
        filter: Filter::default(),
    };
    let t = Instant::now();
    let rollout = store
        .create_rollout(
            "bench",
            NewRollout {
                partner_id: p.to_string(),
                def,
            },
        )
        .expect("create the rollout");
    let created = t.elapsed();
    let placed: u64 = rollout.groups.iter().map(|g| g.counts.size).sum();
    assert_eq!(placed, o.rollout_devices as u64, "every device placed");
    let sizes: Vec<String> = rollout
        .groups
        .iter()
        .map(|g| g.counts.size.to_string())
        .collect();
    println!(
        "rollout {}: created over {placed} devices in {:.2} s (groups of {}), state {}",
        rollout.id,
        created.as_secs_f64(),
        sizes.join(" / "),
        rollout.state.as_str()
    );
    let vn = record.version_number;

    // Inside and outside, interleaved at random in one thread so both see the same noise.
    let mut rng = Rng(7);
    let (mut offered, mut held_back, mut outside) = (Vec::new(), Vec::new(), Vec::new());
    // Each device inside checks once, so every offer there is a first offer (a second CHECK
    // would be a retry, which the counters below would not show).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..o.checks {
        if rng.next().is_multiple_of(2) && seen.len() < o.rollout_devices {
            let i = loop {
                let i = (rng.next() % o.rollout_devices as u64) as usize;
                if seen.insert(i) {
                    break i;
                }
            };
            let t = Instant::now();
            let offers = store
                .check_in(&format!("rol-{i:07}"), BTreeMap::from([(3u16, 0u64)]))
                .expect("check inside the rollout");
            let d = t.elapsed();
            match offers.first() {
                Some(first) => {
                    assert_eq!(first.offer.version_number, vn, "the rollout's image");
                    offered.push(d);
                }
                None => held_back.push(d),
            }
        } else {
            let i = (rng.next() % o.devices as u64) as usize;
            let installed = BTreeMap::from([(3u16, rng.next() % 50)]);
            let t = Instant::now();
            let offers = store
                .check_in(&format!("dev-{i:07}"), installed)
                .expect("check outside the rollout");
            outside.push(t.elapsed());
            assert_eq!(
                offers.first().map(|x| x.offer.version_number),
                top.get(&(i % o.device_types)).copied(),
                "outside: the newest image of its type"
            );
        }
    }
    let now = store
        .rollout(p, rollout.id)
        .expect("read the rollout")
        .expect("the rollout exists");
    let first_offers = now.groups.first().map_or(0, |g| g.counts.offered);
    assert_eq!(
        first_offers,
        offered.len() as u64,
        "each offer inside was a first offer, counted once"
    );

    // The timer pass with nothing due: the first offers above are due in a day.
    let mut ticks = Vec::with_capacity(o.ticks);
    for _ in 0..o.ticks {
        let t = Instant::now();
        let report = store.rollout_tick(otad::ids::now_ms()).expect("timer pass");
        ticks.push(t.elapsed());
        assert_eq!(report, Default::default(), "nothing was due");
    }
    ticks.sort();
    let mut inside: Vec<Duration> = offered.iter().chain(&held_back).copied().collect();
    inside.sort();
    offered.sort();
    held_back.sort();
    outside.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let row = |v: &[Duration]| {
        format!(
            "p50 {:.3} p99 {:.3} max {:.3} ms (n {})",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.99)),
            ms(quantile(v, 1.0)),
            v.len()
        )
    };
    let goal_check = Duration::from_millis(2);
    let goal_tick = Duration::from_millis(1);
    println!();
    println!(
        "{:<58} {:<46} {:<14} status",
        "measure (rollout phase, 1 thread)", "value", "goal"
    );
    println!("{}", "-".repeat(126));
    goal_row(
        "CHECK→OFFER inside the rollout, all",
        &row(&inside),
        "p99 <= 2 ms",
        quantile(&inside, 0.99) <= goal_check,
    );
    println!("  group 1 started (first offer): {}", row(&offered));
    println!("  group 2 not started (held back): {}", row(&held_back));
    goal_row(
        "CHECK→OFFER outside it (same run, interleaved)",
        &row(&outside),
        "p99 <= 2 ms",
        quantile(&outside, 0.99) <= goal_check,
    );
    println!(
        "  p99 inside / outside: {:.3}",
        quantile(&inside, 0.99).as_secs_f64() / quantile(&outside, 0.99).as_secs_f64().max(1e-9)
    );
    goal_row(
        &format!(
            "timer pass, {} devices in the rollout, nothing due",
            o.rollout_devices
        ),
        &format!(
            "p50 {:.1} p99 {:.1} max {:.1} µs ({} passes)",
            quantile(&ticks, 0.5).as_secs_f64() * 1e6,
            quantile(&ticks, 0.99).as_secs_f64() * 1e6,
            quantile(&ticks, 1.0).as_secs_f64() * 1e6,
            ticks.len()
        ),
        "p99 <= 1 ms",
        quantile(&ticks, 0.99) <= goal_tick,
    );
    println!(
        "rollout creation over {placed} devices: {:.2} s (no goal; one transaction)",
        created.as_secs_f64()
    );
}
