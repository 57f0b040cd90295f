//! Disk full: the server runs on a 96 MiB tmpfs mounted by the test (root is required; the
//! test fails with a message otherwise). Uploads that would leave less than
//! `storage.min_free_mib` free are refused with 507 — before reading the body when its
//! length is declared, and mid-stream when it is chunked — while everything already stored
//! stays intact and readable and small writes go on. When space returns (a filler file that
//! another program wrote is deleted), uploads succeed again without a restart. Last, a
//! filler takes every byte so that redb itself meets ENOSPC on a small write: writes and
//! `/healthz` fail, and once the space returns the watchdog reopens the file and service
//! resumes with every acknowledged write intact. `otad db verify` is clean at the end.

mod api_common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use api_common::{Server, bytes, sha256_hex};
use serde_json::json;

const MIB: u64 = 1 << 20;
const CONFIG: &str = "[storage]\nmin_free_mib = 16\ncache_mib = 8\n";

/// A tmpfs of a fixed size, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("otad-small-disk")
            .tempdir()
            .expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (CAP_SYS_ADMIN): mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        otad::store::free_bytes(self.path()).expect("statvfs")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A reader of `len` pseudo-random bytes, sent chunked (no Content-Length).
struct Chunked {
    data: Vec<u8>,
    at: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.at).min(64 * 1024);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn fill(path: &PathBuf, len: u64) {
    let f = std::fs::File::create(path).expect("filler");
    // Written, not sparse: tmpfs must really give the pages away.
    let block = vec![0x5au8; MIB as usize];
    let mut w = std::io::BufWriter::new(f);
    for _ in 0..len / MIB {
        std::io::Write::write_all(&mut w, &block).expect("write filler");
    }
    std::io::Write::flush(&mut w).expect("flush filler");
}

#[test]
fn a_full_disk_refuses_uploads_with_507_and_keeps_serving() {
    let disk = SmallDisk::mount(96);
    let mut server = Server::start_in(disk.path(), Some(CONFIG));
    let api = &server.api;
    let admin = server.admin_token();
    let t = api.tenant(&admin, "Full");
    api.fw_type(&t.id, &t.token, 150, "FULL_MCU");
    let upload_url = format!("{}/binaries", t.base());

    // Space taken by another program: a filler file eats the filesystem down below the
    // reserve.
    let filler = disk.path().join("filler.bin");
    let take = disk.free().saturating_sub(12 * MIB) / MIB * MIB;
    fill(&filler, take);
    let small = bytes(MIB as usize, 9);
    api.post_bytes(
        &upload_url,
        &t.token,
        "application/octet-stream",
        small.clone(),
    )
    .expect_error(507, Some("insufficient_storage"));
    // Space returns: the same upload succeeds, without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let sha = api.upload(&t.id, &t.token, &small);
    api.move_to_repo(&t.id, &t.token, &sha);
    let got = api.get(&format!("{}/binaries/{sha}", t.base()), &t.token);
    assert_eq!(sha256_hex(&got.body), sha);

    // Fill the disk with uploads until the guard refuses one.
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..40u64 {
        let data = bytes(6 * MIB as usize, 100 + i);
        let r = api.post_bytes(
            &upload_url,
            &t.token,
            "application/octet-stream",
            data.clone(),
        );
        if r.status == 507 {
            refused = Some(r);
            break;
        }
        r.expect(200);
        let sha = sha256_hex(&data);
        api.move_to_repo(&t.id, &t.token, &sha);
        let rec = api.pool_create(
            &t.id,
            &t.token,
            &json!({"name": format!("fw-{i}"), "type": 150, "version": "1",
                    "url": format!("{}{}/binaries/{sha}", api.base, t.base())}),
        );
        stored.push((sha, rec));
    }
    let refused = refused.expect("no upload was refused on a 96 MiB disk");
    let body = refused.expect_error(507, Some("insufficient_storage"));
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("disk")),
        "{body}"
    );
    assert!(stored.len() >= 3, "only {} uploads fit", stored.len());
    let free = disk.free();
    assert!(
        free >= 8 * MIB,
        "the guard let the disk fall to {free} bytes free"
    );

    // A chunked upload (no length to check up front) is stopped mid-stream. (It is kept
    // under the 16 MiB the server drains from a refused body, so the client reads the 507
    // instead of meeting a reset while still sending.)
    let data = bytes(12 * MIB as usize, 7);
    let r = api.send(
        api.req(reqwest::Method::POST, &upload_url, &t.token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(Chunked { data, at: 0 })),
    );
    r.expect_error(507, Some("insufficient_storage"));

    // What is stored is intact and served; small writes still work.
    for (sha, _) in &stored {
        let got = api.get(&format!("{}/binaries/{sha}", t.base()), &t.token);
        assert_eq!(got.status, 200);
        assert_eq!(&sha256_hex(&got.body), sha, "a stored binary changed");
    }
    api.pool_create(
        &t.id,
        &t.token,
        &json!({"name": "small-write", "type": 150, "version": "1", "url": ""}),
    );
    api.get("/healthz", "").expect(200);

    // The hard case: another program takes every last byte, so even small writes reach
    // redb's ENOSPC (after which redb refuses the open file). Writes fail, /healthz says so,
    // and once the space returns the watchdog reopens the file: service resumes without a
    // restart and nothing acknowledged is lost.
    let filler = disk.path().join("filler-all.bin");
    fill(&filler, disk.free() / MIB * MIB);
    let mut topped = std::fs::OpenOptions::new()
        .append(true)
        .open(&filler)
        .expect("filler");
    let kib = [0x5au8; 4096];
    while std::io::Write::write_all(&mut topped, &kib).is_ok() {}
    drop(topped);
    let mut acked = Vec::new();
    let mut failed = None;
    for i in 0..5000 {
        let name = format!("squeeze-{i}");
        let r = api.post_json(
            &format!("{}/pool", t.base()),
            &t.token,
            &json!({"name": name, "type": 150, "version": "1", "url": "",
                    "description": "d".repeat(1000), "tags": (0..30).map(|k| format!("tag-{i}-{k}")).collect::<Vec<_>>()}),
        );
        if r.status == 201 {
            acked.push((api_common::num(&r.json(), "versionNumber"), name));
        } else {
            failed = Some(r.status);
            break;
        }
    }
    let failed = failed.expect("5000 record creations fit on a full disk");
    assert!(failed >= 500, "a write on a full disk answered {failed}");
    let health = api.get("/healthz", "");
    assert!(
        health.status >= 500,
        "/healthz answered {} on a failed store",
        health.status
    );
    std::fs::remove_file(&filler).expect("remove filler");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = api.get("/healthz", "");
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "service did not resume within 30 s of the space returning: /healthz {}\n{}",
            r.status,
            server.stderr_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    api.pool_create(
        &t.id,
        &t.token,
        &json!({"name": "after-recovery", "type": 150, "version": "1", "url": ""}),
    );
    for (vn, name) in &acked {
        let v = api
            .get(
                &format!("{}/pool/types/150/versionNumbers/{vn}", t.base()),
                &t.token,
            )
            .ok_json(200);
        assert_eq!(&api_common::s(&v, "name"), name);
    }
    for (sha, _) in &stored {
        let got = api.get(&format!("{}/binaries/{sha}", t.base()), &t.token);
        assert_eq!(&sha256_hex(&got.body), sha, "a stored binary changed");
    }

    server.assert_alive();
    server.stop();
    let out = Command::new(env!("CARGO_BIN_EXE_otad"))
        .args(["db", "verify", "--data-dir"])
        .arg(&server.data)
        .output()
        .expect("run db verify");
    assert!(
        out.status.success(),
        "db verify after the full disk: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
