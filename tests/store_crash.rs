//! Crash consistency: a child process creates records and ingests blobs on a real redb file
//! and is killed with SIGKILL at random moments. After each kill the database must open,
//! `db verify` must be clean, every creation the child reported as committed must be there,
//! no record may point at a partial blob, and counters must never go backwards.
//!
//! The child is this test binary itself, re-run with the ignored `crash_child` test selected.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use otad::model::RecordFields;
use otad::store::NewRecord;
use otad::store::{Store, verify};
use redb::ReadableDatabase;

use common::*;

const CYCLES: u64 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Committed {
    fw_type: u16,
    version_number: u64,
    name: String,
    blake3: String,
}

fn parse(line: &str) -> Option<Committed> {
    let mut it = line.strip_prefix("committed ")?.split(' ');
    Some(Committed {
        fw_type: it.next()?.parse().ok()?,
        version_number: it.next()?.parse().ok()?,
        name: it.next()?.to_string(),
        blake3: it.next()?.to_string(),
    })
}

/// Finds the test partner, creating it (and its MCU type) on the first run.
fn crash_partner(store: &Store) -> String {
    if let Some(p) = store
        .partners()
        .unwrap()
        .into_iter()
        .find(|p| p.name == "crash")
    {
        return p.id;
    }
    let (p, _) = store.create_partner("test", "crash", None).unwrap();
    store
        .create_type("test", false, &p.id, 150, "MCU", "")
        .unwrap();
    p.id
}

#[test]
#[ignore = "child process body of crash_consistency_under_sigkill; run by it"]
fn crash_child() {
    let dir = std::env::var("OTAD_CRASH_DIR").expect("OTAD_CRASH_DIR");
    let seed: u64 = std::env::var("OTAD_CRASH_SEED")
        .expect("seed")
        .parse()
        .expect("seed");
    let store = Store::open(&otad::datadir::DataDir::new(&dir).db(), &storage_config()).unwrap();
    store.bootstrap().unwrap();
    let p = crash_partner(&store);
    println!("\nready");
    for i in 0u64.. {
        let fw_type = if i % 2 == 0 { 3 } else { 150 };
        let size = 1 + ((seed * 7919 + i * 104_729) % (3 << 20)) as usize;
        let name = format!("s{seed}-{i}");
        let (binary, blake3) = if i % 3 == 2 {
            (None, "-".to_string())
        } else {
            let data = bytes(size, seed * 1000 + i);
            let staged = store.ingest_bytes(&p, &data).unwrap();
            let published = store.publish("crash", &p, staged.sha256).unwrap();
            let url = format!("https://x/{}", otad::model::hex(&published.sha256));
            (
                Some((published.sha256, url)),
                otad::model::hex(&published.blake3),
            )
        };
        let record = store
            .create_pool_record(
                "crash",
                NewRecord {
                    partner_id: p.clone(),
                    fw_type,
                    fields: RecordFields {
                        name: name.clone(),
                        description: String::new(),
                        version: "1".into(),
                        tags: vec![],
                    },
                    binary,
                    associations: vec![],
                },
            )
            .unwrap();
        println!(
            "committed {fw_type} {} {name} {blake3}",
            record.version_number
        );
    }
}

#[test]
fn crash_consistency_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed: Vec<Committed> = Vec::new();
    let mut max_counter = std::collections::BTreeMap::<u16, u64>::new();
    for cycle in 0..CYCLES {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OTAD_CRASH_DIR", dir.path())
            .env("OTAD_CRASH_SEED", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child is working, then kill it at a pseudo-random moment.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(_) => {}
                Err(e) => panic!("cycle {cycle}: child never got ready ({e})"),
            }
        }
        std::thread::sleep(Duration::from_millis(20 + (cycle * 397) % 900));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited on its own in cycle {cycle}: {status}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let lines: Vec<String> = rx.try_iter().collect();
        committed.extend(lines.iter().filter_map(|l| parse(l)));

        // The parent now opens the same file, as a restarted server would.
        let store = Store::open(
            &otad::datadir::DataDir::new(dir.path()).db(),
            &storage_config(),
        )
        .unwrap();
        let report = verify(&store.database().unwrap()).unwrap();
        assert!(report.is_clean(), "cycle {cycle}: {:?}", report.problems);
        let p = crash_partner(&store);
        for c in &committed {
            let record = store
                .pool_record(&p, c.fw_type, c.version_number)
                .unwrap()
                .unwrap_or_else(|| panic!("cycle {cycle}: committed {c:?} is missing"));
            assert_eq!(record.name, c.name);
            let blake3 = record
                .binary
                .as_ref()
                .map_or("-".to_string(), |b| otad::model::hex(&b.blake3));
            assert_eq!(blake3, c.blake3, "cycle {cycle}: binary of {c:?}");
        }
        // Counters never go backwards and cover every committed number.
        let txn = store.database().unwrap().begin_read().unwrap();
        let counters = txn.open_table(otad::store::tables::COUNTERS).unwrap();
        for t in [3u16, 150] {
            let scope = if t == 3 { "" } else { p.as_str() };
            let now = counters.get((scope, t)).unwrap().map_or(0, |v| v.value());
            let before = max_counter.get(&t).copied().unwrap_or(0);
            assert!(
                now >= before,
                "cycle {cycle}: counter {t} went back {before} -> {now}"
            );
            let top = committed
                .iter()
                .filter(|c| c.fw_type == t)
                .map(|c| c.version_number)
                .max()
                .unwrap_or(0);
            assert!(
                now >= top,
                "cycle {cycle}: counter {t} {now} below committed {top}"
            );
            max_counter.insert(t, now);
        }
        drop(counters);
        drop(txn);
        store.close();
    }
    assert!(
        committed.len() as u64 >= CYCLES,
        "too few committed creations ({}) to mean anything",
        committed.len()
    );
    println!(
        "{} creations acknowledged across {CYCLES} kills",
        committed.len()
    );
    // Numbers of acknowledged creations are unique per counter.
    let mut seen = std::collections::BTreeSet::new();
    for c in &committed {
        assert!(seen.insert((c.fw_type, c.version_number)), "reused {c:?}");
    }
}
