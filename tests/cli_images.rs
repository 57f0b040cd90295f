//! `otad image ...` against a real server: the one-shot upload of a 50 MiB binary (streamed,
//! its SHA-256 matching the server's record and the bytes served back), the two-stage CI
//! flow (`--record-only`, then `--attach VN`), list/show/exists/update/delete,
//! associate/dissociate and push, with tables, JSON and the exit codes for conflicts and
//! missing records.

mod api_common;
mod cli_common;

use std::time::Instant;

use serde_json::Value;

use api_common::{Server, bytes, sha256_hex};
use cli_common::{Cli, array, field};

#[test]
fn upload_of_50_mib_streams_and_its_sha256_matches() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let dt = field(&cli.json(&["device-type", "create", "Kettle"]), "id");
    let data = bytes(50 << 20, 50);
    let sha = sha256_hex(&data);
    let file = cli.dir().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    drop(data);

    let started = Instant::now();
    let r = cli.json(&[
        "image",
        "upload",
        file.to_str().unwrap(),
        "--type",
        "3",
        "--name",
        "big",
        "--version",
        "1.0.0",
        "--tag",
        "beta",
        "--tag",
        "eu",
        "--associate",
        &dt,
    ]);
    eprintln!(
        "50 MiB upload through the CLI (upload, move, record, association): {:?}",
        started.elapsed()
    );
    assert_eq!(field(&r, "sha256"), sha);
    let url = field(&r, "url");
    assert!(url.ends_with(&format!("/binaries/{sha}")), "{url}");
    assert_eq!(r["tags"], serde_json::json!(["beta", "eu"]));
    let vn = field(&r, "versionNumber");

    // The server's own record agrees, the association exists, and the bytes come back.
    let admin = server.admin_token();
    let partner = field(&r, "partnerId");
    let record = server
        .api
        .get(
            &format!("/v1/ota/partners/{partner}/pool/types/3/versionNumbers/{vn}"),
            &admin,
        )
        .ok_json(200);
    assert_eq!(record["url"], url.as_str());
    let assoc = server
        .api
        .get(
            &format!("/v1/ota/partners/{partner}/pool/types/3/versionNumbers/{vn}/associations"),
            &admin,
        )
        .ok_json(200);
    assert_eq!(assoc[0]["deviceTypeId"], dt.as_str(), "{assoc}");
    let served = server
        .api
        .send(server.api.req_url(reqwest::Method::GET, &url, &admin));
    served.expect(200);
    assert_eq!(sha256_hex(&served.body), sha);

    // The same name and version again is refused before any byte is sent.
    let started = Instant::now();
    cli.run(&[
        "image",
        "upload",
        file.to_str().unwrap(),
        "--type",
        "3",
        "--name",
        "big",
        "--version",
        "1.0.0",
    ])
    .fails(4, &["big", "1.0.0", "exists"]);
    assert!(started.elapsed().as_secs() < 30);
}

#[test]
fn image_lifecycle_from_record_to_push() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let dt = field(&cli.json(&["device-type", "create", "Kettle"]), "id");
    let other_dt = field(&cli.json(&["device-type", "create", "Toaster"]), "id");
    let token = field(
        &cli.json(&["device", "register", "k-1", "--device-type", &dt]),
        "token",
    );
    let fw = cli.dir().join("fw.bin");
    std::fs::write(&fw, bytes(300_000, 7)).unwrap();
    let fw = fw.to_str().unwrap();

    // Two-stage CI flow: the record first, the binary when the build is done.
    let rec = cli.json(&[
        "image",
        "upload",
        "--record-only",
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "2.0",
        "--description",
        "nightly",
    ]);
    assert_eq!(field(&rec, "url"), "");
    let vn = field(&rec, "versionNumber");
    let attached = cli.json(&["image", "upload", fw, "--type", "3", "--attach", &vn]);
    assert_eq!(field(&attached, "versionNumber"), vn);
    assert_eq!(field(&attached, "description"), "nightly");
    assert_eq!(field(&attached, "sha256"), sha256_hex(&bytes(300_000, 7)));
    assert!(field(&attached, "url").ends_with(&field(&attached, "sha256")));
    cli.run(&["image", "upload", fw, "--type", "3", "--attach", &vn])
        .fails(4, &["already has a binary"]);
    cli.run(&["image", "upload", fw, "--type", "3", "--attach", "999"])
        .fails(3, &["3/999"]);
    assert_eq!(
        cli.run(&["image", "upload", "--type", "3", "--attach", &vn])
            .code,
        2
    );

    // A typo in --associate is caught before the binary is sent.
    cli.run(&[
        "image",
        "upload",
        fw,
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "2.9",
        "--associate",
        "00000000-0000-0000-0000-00000000dead",
    ])
    .fails(3, &["--associate 00000000-0000-0000-0000-00000000dead"]);

    // A second image with a tag, for the filters.
    let second = cli.json(&[
        "image",
        "upload",
        fw,
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "2.1",
        "--tag",
        "beta",
    ]);
    let vn2 = field(&second, "versionNumber");
    assert!(vn2.parse::<u64>().unwrap() > vn.parse::<u64>().unwrap());

    let all = array(&cli.json(&["image", "list"]));
    assert_eq!(all.len(), 2);
    let beta = array(&cli.json(&["image", "list", "--tag", "beta"]));
    assert_eq!(beta.len(), 1);
    assert_eq!(field(&beta[0], "version"), "2.1");
    assert_eq!(array(&cli.json(&["image", "list", "--type", "1"])).len(), 0);
    let table = cli.text(&["image", "list", "--type", "3"]);
    assert!(table.starts_with("TYPE"), "{table}");
    assert!(
        table.contains("2.0") && table.contains("2.1") && table.contains("beta"),
        "{table}"
    );

    // exists: exit 0 and true, exit 3 and false.
    let yes = cli.run(&[
        "image",
        "exists",
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "2.0",
        "--json",
    ]);
    yes.ok();
    assert_eq!(yes.json()["exists"], true);
    let no = cli.run(&[
        "image",
        "exists",
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "9.9",
    ]);
    no.code(3);
    assert_eq!(no.stdout.trim(), "false");
    assert!(no.stderr.is_empty(), "{no:?}");

    // update: tags replaced, the binary stays.
    let updated = cli.json(&[
        "image",
        "update",
        "3",
        &vn,
        "--tag",
        "stable",
        "--description",
        "ga",
    ]);
    assert_eq!(updated["tags"], serde_json::json!(["stable"]));
    assert_eq!(field(&updated, "description"), "ga");
    assert_eq!(updated["url"], attached["url"]);
    cli.run(&["image", "update", "3", &vn2, "--version", "2.0"])
        .fails(4, &["version_exists"]);
    let cleared = cli.json(&["image", "update", "3", &vn, "--clear-tags"]);
    assert_eq!(cleared["tags"], serde_json::json!([]));

    // associate / dissociate.
    let image = cli.json(&["image", "associate", "3", &vn, &dt]);
    assert_eq!(field(&image, "deviceTypeId"), dt);
    cli.run(&["image", "associate", "3", &vn, &dt])
        .fails(4, &["already_associated"]);
    cli.run(&["image", "associate", "3", "999", &dt])
        .fails(3, &["3/999"]);
    let shown = cli.json(&["image", "show", "3", &vn]);
    let assoc = array(&shown["associations"]);
    assert_eq!(assoc.len(), 1);
    assert_eq!(field(&assoc[0], "deviceTypeName"), "Kettle");
    let text = cli.text(&["image", "show", "3", &vn]);
    assert!(text.contains("Kettle") && text.contains(&dt), "{text}");
    let under = array(&cli.json(&["image", "list", "--device-type", &dt]));
    assert_eq!(under.len(), 1);
    cli.run(&["image", "associate", "3", &vn2, &other_dt]).ok();
    cli.run(&["image", "dissociate", "3", &vn2, &other_dt]).ok();
    cli.run(&["image", "dissociate", "3", &vn2, &other_dt])
        .fails(3, &[]);

    // push: pending for the device; a device of another type conflicts; unknown device 404.
    let pushed = cli.json(&["image", "push", "3", &vn, "k-1"]);
    assert_eq!(pushed["state"], "pending");
    assert_eq!(field(&pushed, "deviceId"), "k-1");
    assert_eq!(field(&pushed, "firmwareImageId"), field(&rec, "id"));
    let device = cli.json(&["device", "show", "k-1"]);
    assert_eq!(
        device["pushes"][0]["firmwareImageId"], rec["id"],
        "{device}"
    );
    assert_eq!(device["pushes"][0]["version"], "2.0", "{device}");
    let shown = cli.text(&["device", "show", "k-1"]);
    assert!(shown.contains(&format!("{vn} (main 2.0)")), "{shown}");
    cli.run(&["image", "push", "3", &vn, "nobody"])
        .fails(3, &["nobody"]);
    cli.run(&["device", "register", "t-1", "--device-type", &other_dt])
        .ok();
    cli.run(&["image", "push", "3", &vn, "t-1"])
        .fails(3, &["not associated", "otad image associate"]);
    // The device is offered the pushed image over OCP/1.
    let check = cli.run(&[
        "device",
        "check",
        "--device-id",
        "k-1",
        "--token",
        &token,
        "--installed",
        "3=0",
        "--json",
    ]);
    check.ok();
    let offers: Value = check.json();
    let offer = &offers["offers"][0];
    assert_eq!(offer["versionNumber"], vn.as_str(), "{offers}");
    assert_eq!(offer["pushed"], true, "{offers}");
    assert_eq!(offer["sha256"], attached["sha256"], "{offers}");

    // The device runs it now: lists and the fleet summary name the version string beside
    // the number, and the list filter takes the version string.
    cli.run(&[
        "device",
        "check",
        "--device-id",
        "k-1",
        "--token",
        &token,
        "--installed",
        &format!("3={vn}"),
    ])
    .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let on_2 = loop {
        let list = array(&cli.json(&["device", "list", "--type", "3", "--installed", "2.0"]));
        if !list.is_empty() {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the check-in never showed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(field(&on_2[0], "deviceId"), "k-1");
    assert_eq!(on_2[0]["installed"][0]["version"], "2.0");
    let label = format!("3={vn} (main 2.0)");
    let table = cli.text(&["device", "list", "--search", "K-"]);
    assert!(table.contains(&label) && !table.contains("t-1"), "{table}");
    assert!(cli.text(&["device", "show", "k-1"]).contains(&label));
    assert!(array(&cli.json(&["device", "list", "--type", "3", "--installed", "9.9"])).is_empty());
    let status = cli.text(&["fleet", "status", "--device-type", &dt]);
    assert!(
        status.contains("type 3 installed") && status.contains(&format!("{vn} (main 2.0)")),
        "{status}"
    );

    // delete: refused while associated, then gone.
    cli.run(&["image", "delete", "3", &vn]).fails(4, &[]);
    cli.run(&["image", "dissociate", "3", &vn, &dt]).ok();
    cli.run(&["image", "delete", "3", &vn]).ok();
    cli.run(&["image", "show", "3", &vn]).fails(3, &[]);
    cli.run(&["image", "delete", "3", &vn]).fails(3, &[]);
    assert_eq!(array(&cli.json(&["image", "list"])).len(), 1);

    // Type 4 (device description): created under one device type, never in the pool.
    let desc = cli.json(&[
        "image",
        "upload",
        fw,
        "--type",
        "4",
        "--name",
        "kettle",
        "--version",
        "3",
        "--associate",
        &dt,
        "--device-description-id",
        "dd-1",
        "--device-profile-id",
        "prof-9",
    ]);
    assert_eq!(field(&desc, "deviceTypeId"), dt);
    assert_eq!(field(&desc, "deviceDescriptionId"), "dd-1");
    assert_eq!(field(&desc, "deviceProfileId"), "prof-9");
    assert_eq!(field(&desc, "sha256"), sha256_hex(&bytes(300_000, 7)));
    let under = array(&cli.json(&["image", "list", "--device-type", &dt, "--type", "4"]));
    assert_eq!(under.len(), 1);
    assert_eq!(under[0]["id"], desc["id"]);
    assert_eq!(array(&cli.json(&["image", "list", "--type", "4"])).len(), 0);
    cli.run(&[
        "image",
        "upload",
        fw,
        "--type",
        "4",
        "--name",
        "k",
        "--version",
        "4",
    ])
    .fails(2, &["--associate"]);
}

#[test]
fn an_upload_over_the_limit_is_refused_without_hanging() {
    let server = Server::start_with_config("[storage]\nmax_binary_size = 1048576\n");
    let cli = Cli::local(&server.data);
    let file = cli.dir().join("too-big.bin");
    std::fs::write(&file, bytes(16 << 20, 3)).unwrap();
    let started = Instant::now();
    cli.run(&[
        "image",
        "upload",
        file.to_str().unwrap(),
        "--type",
        "3",
        "--name",
        "big",
        "--version",
        "1",
    ])
    .fails(1, &["cannot upload", "413"]);
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    // Nothing was created, and the next upload works.
    assert!(array(&cli.json(&["image", "list"])).is_empty());
    let small = cli.dir().join("small.bin");
    std::fs::write(&small, bytes(1000, 4)).unwrap();
    cli.run(&[
        "image",
        "upload",
        small.to_str().unwrap(),
        "--type",
        "3",
        "--name",
        "big",
        "--version",
        "1",
    ])
    .ok();
}
