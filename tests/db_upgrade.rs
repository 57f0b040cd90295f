//! The database file's format version across releases: a file made by release 0.1.0 (the
//! committed fixture `tests/fixtures/db-0.1.0/`, see its README) opens in this release with
//! everything in it readable, and gets its version recorded; a file of a newer format is
//! refused by the server and by every offline tool, with a message naming both versions.

mod api_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use api_common::*;
use redb::ReadableDatabase;

use otad::store::schema::{FILE_SCHEMA, SCHEMA_KEY};
use otad::store::tables::META;

const FIXTURE_PARTNER: &str = "28c76acf-cfdd-4927-b469-2cc71a514896";
const FIXTURE_DEVICE_TYPE: &str = "197701a8-7796-4f95-a926-9a0daade7ce5";
const FIXTURE_SHA256: &str = "62d0fa864075f816745a02396f2fd26ff4064e7b4315b5e747953bca1afd06f9";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/db-0.1.0")
        .join(name)
}

fn otad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(args)
        .env_remove("OTAD_DATA_DIR")
        .stdin(Stdio::null())
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

/// The version recorded in a (closed) database file.
fn recorded(db: &Path) -> Option<u64> {
    let db = redb::Database::open(db).expect("open the database file");
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta table");
    meta.get(SCHEMA_KEY).expect("get").map(|v| v.value())
}

fn set_version(db: &Path, version: u64) {
    let db = redb::Database::open(db).expect("open the database file");
    let txn = db.begin_write().expect("write");
    txn.open_table(META)
        .expect("meta table")
        .insert(SCHEMA_KEY, version)
        .expect("insert");
    txn.commit().expect("commit");
}

#[test]
fn a_database_made_by_release_0_1_0_opens_and_serves_what_it_holds() {
    // Opening a redb file writes to it: read the fixture's version from a copy, so the
    // committed file stays as release 0.1.0 wrote it.
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = copy.path().join("otad.redb");
    fs::copy(fixture("otad.redb"), &copied).expect("copy the fixture");
    assert_eq!(recorded(&copied), None, "release 0.1.0 recorded no version");
    let mut server = Server::start_prepared(None, |data| {
        fs::copy(fixture("otad.redb"), data.join("otad.redb")).expect("copy the fixture");
        let creds = data.join("initial-credentials.json");
        fs::copy(fixture("initial-credentials.json"), &creds).expect("copy the credentials");
        fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).expect("chmod");
    });
    let admin = server.admin_token();
    let api = &server.api;
    let partners = api.get("/v1/admin/partners", &admin).ok_json(200);
    assert!(
        partners.to_string().contains("Fixture Kettles"),
        "partner of 0.1.0 missing: {partners}"
    );
    let base = format!("/v1/ota/partners/{FIXTURE_PARTNER}");
    let dt = api
        .get(&format!("{base}/deviceTypes/{FIXTURE_DEVICE_TYPE}"), &admin)
        .ok_json(200);
    assert_eq!(s(&dt, "name"), "Kettle v1");
    let record = api
        .get(&format!("{base}/pool/types/101/versionNumbers/1"), &admin)
        .ok_json(200);
    assert_eq!(s(&record, "version"), "1.0.0");
    let url = s(&record, "url");
    assert!(url.ends_with(FIXTURE_SHA256), "{record}");
    let binary = api.get(&format!("{base}/binaries/{FIXTURE_SHA256}"), &admin);
    binary.expect(200);
    assert_eq!(
        sha256_hex(&binary.body),
        FIXTURE_SHA256,
        "the stored binary"
    );
    let device = api
        .get(&format!("{base}/devices/fixture-0002"), &admin)
        .ok_json(200);
    assert_eq!(s(&device, "deviceTypeId"), FIXTURE_DEVICE_TYPE);

    // A device of 0.1.0 still authenticates with its token and is offered the image.
    let tokens = fs::read_to_string(fixture("tokens.csv")).expect("tokens.csv");
    let token = tokens
        .lines()
        .find_map(|l| l.strip_prefix("fixture-0001,"))
        .expect("fixture-0001 in tokens.csv");
    let data = server.data.to_str().expect("utf-8 path").to_string();
    let check = otad(&[
        "--data-dir",
        &data,
        "device",
        "check",
        "--device-id",
        "fixture-0001",
        "--token",
        token,
        "--installed",
        "101=0",
        "--json",
    ]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains(FIXTURE_SHA256), "{}", text(&check));

    // The new release wrote the version down, and the file stays consistent.
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "{}", server.stderr_tail());
    assert_eq!(recorded(&server.data.join("otad.redb")), Some(FILE_SCHEMA));
    let verify = otad(&["db", "verify", "--data-dir", &data]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains("database is consistent"));
}

/// `db verify` (and `db restore`, which verifies) reads a file as release 0.1.0 left it,
/// before any newer server created the tables added since: a missing table reads as empty.
#[test]
fn db_verify_reads_a_release_0_1_0_file_that_no_newer_server_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::copy(fixture("otad.redb"), dir.path().join("otad.redb")).expect("copy the fixture");
    let data = dir.path().to_str().expect("utf-8 path");
    let verify = otad(&["db", "verify", "--data-dir", data]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains("database is consistent"),
        "{}",
        text(&verify)
    );
}

#[test]
fn a_new_database_records_its_version() {
    let mut server = Server::start();
    server.stop();
    assert_eq!(recorded(&server.data.join("otad.redb")), Some(FILE_SCHEMA));
}

#[test]
fn a_newer_database_is_refused_with_both_versions_named() {
    let mut server = Server::start();
    server.stop();
    let db = server.data.join("otad.redb");
    let newer = FILE_SCHEMA + 1;
    set_version(&db, newer);
    let data = server.data.to_str().expect("utf-8 path").to_string();
    let expect_refusal = |out: &Output, what: &str| {
        let t = text(out);
        assert_eq!(out.status.code(), Some(1), "{what}: {t}");
        assert!(
            t.contains(&format!("database format version {newer}")),
            "{what}: {t}"
        );
        assert!(
            t.contains(&format!("reads versions up to {FILE_SCHEMA}")),
            "{what}: {t}"
        );
        assert!(!t.contains("panicked"), "{what}: {t}");
    };
    let serve = otad(&[
        "serve",
        "--data-dir",
        &data,
        "--api-listen",
        "127.0.0.1:0",
        "--device-listen",
        "127.0.0.1:0",
    ]);
    expect_refusal(&serve, "serve");
    expect_refusal(&otad(&["db", "verify", "--data-dir", &data]), "db verify");
    expect_refusal(&otad(&["db", "compact", "--data-dir", &data]), "db compact");
    expect_refusal(
        &otad(&["admin", "reset-password", "admin", "--data-dir", &data]),
        "admin reset-password",
    );
    let other = server.root().join("restored");
    let restore = otad(&[
        "db",
        "restore",
        db.to_str().expect("utf-8 path"),
        "--data-dir",
        other.to_str().expect("utf-8 path"),
    ]);
    expect_refusal(&restore, "db restore");
    assert!(
        !other.join("otad.redb").exists(),
        "a refused restore places nothing"
    );
    // Refusing changed nothing in the file.
    assert_eq!(recorded(&db), Some(newer));
}
