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
//! Run: `cargo bench --bench check_latency` (`-- --devices N --images M --checks K` to
//! change the scale).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use otad::config::StorageConfig;
use otad::model::RecordFields;
use otad::secrets::token_hash;
use otad::store::ImportRow;
use otad::store::NewRecord;
use otad::store::Store;

struct Options {
    devices: usize,
    images: usize,
    device_types: usize,
    checks: usize,
    threads: usize,
}

fn options() -> Options {
    let mut o = Options {
        devices: 1_000_000,
        images: 10_000,
        device_types: 100,
        checks: 20_000,
        threads: 4,
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
    store.close();
}
