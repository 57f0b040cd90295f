//! `otad db verify` and `otad db compact` as an operator runs them: the real binary on a
//! real data directory, checking exit codes and what they print.

mod common;

use std::process::{Command, Output};

use redb::ReadableTable;

use common::*;

fn otad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .output()
        .expect("run otad")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn verify_clean_database_then_detect_damage() {
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "p");
    let (sha, _) = upload(&t.store, &p, &bytes(300_000, 1));
    let dir = t.dir.path().to_str().unwrap().to_string();

    // While the store is open, the tools refuse plainly.
    let out = otad(&["db", "verify", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already running"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"));

    // Damage one stored byte, then close.
    let meta = t.store.owned_blob(&p, &sha).unwrap().unwrap().1;
    let data_id = meta.data_id;
    t.store
        .write(true, move |txn| {
            let mut chunks = txn.open_table(otad::store::tables::CHUNKS)?;
            let mut row = chunks
                .get((data_id, 0))?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            row[0] ^= 0x80;
            chunks.insert((data_id, 0), row.as_slice())?;
            Ok(())
        })
        .unwrap();
    t.store.close();
    let TempStore { dir: tmp, store } = t;
    drop(store);

    let out = otad(&["db", "verify", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = text(&out);
    assert!(s.contains("problem: blob"), "{s}");
    assert!(s.contains("1 problems found"), "{s}");

    // Repair it and verify clean; compact succeeds and keeps it clean.
    {
        let store = otad::store::Store::open(
            &otad::datadir::DataDir::new(tmp.path()).db(),
            &storage_config(),
        )
        .unwrap();
        store
            .write(true, move |txn| {
                let mut chunks = txn.open_table(otad::store::tables::CHUNKS)?;
                let mut row = chunks
                    .get((data_id, 0))?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                row[0] ^= 0x80;
                chunks.insert((data_id, 0), row.as_slice())?;
                Ok(())
            })
            .unwrap();
        store.close();
    }
    let out = otad(&["db", "verify", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("database is consistent"));
    assert!(
        text(&out).contains("checked 1 blobs (300000 bytes)"),
        "{}",
        text(&out)
    );
    let out = otad(&["db", "compact", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = otad(&["db", "verify", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn missing_database_and_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = otad(&["db", "verify", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no database at"), "{}", text(&out));
    // Nothing was created by looking.
    assert!(!otad::datadir::DataDir::new(dir.path()).db().exists());
    let out = otad(&["db", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn config_file_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("otad.toml");
    std::fs::write(&cfg, "[storage]\nmax_binary_size = 0\n").unwrap();
    let out = otad(&["db", "verify", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("storage.max_binary_size"),
        "{}",
        text(&out)
    );
    std::fs::write(&cfg, "[storage]\nbogus = 1\n").unwrap();
    let out = otad(&["db", "verify", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bogus"), "{}", text(&out));
}
