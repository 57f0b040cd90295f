//! `otad demo` as a new user runs it on a fresh appliance: it creates the sample partner,
//! types, images and devices through the API, writes the device tokens to a 0600 CSV that
//! the device commands read, and running it again creates nothing new and keeps a working
//! CSV (rotating the tokens of devices the CSV no longer lists).

mod api_common;
mod cli_common;

use std::process::{Command, Stdio};

use api_common::Server;
use cli_common::{Cli, field, mode};

fn device_check(server: &Server, device: &str, token: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otad"))
        .arg("--data-dir")
        .arg(&server.data)
        .args(["device", "check", "--device-id", device, "--token", token])
        .args(["--installed", "101=0", "--json"])
        .env_remove("OTAD_DATA_DIR")
        .env_remove("OTAD_DEVICE_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run otad device check")
}

fn tokens(csv: &str) -> Vec<(String, String)> {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect()
}

#[test]
fn demo_creates_sample_data_once_and_its_tokens_work() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let out = cli.dir().join("demo");
    let out_arg = out.to_str().expect("utf-8 path");

    let first = cli.json(&["demo", "--out", out_arg, "--devices", "3"]);
    assert_eq!(first["created"]["partner"], true, "{first}");
    assert_eq!(first["created"]["types"], 2, "{first}");
    assert_eq!(first["created"]["images"], 2, "{first}");
    assert_eq!(first["created"]["devices"], 3, "{first}");
    let partner = field(&first, "partnerId");
    assert_eq!(mode(&out.join("partner.json")), 0o600);
    assert_eq!(mode(&out.join("devices.csv")), 0o600);
    let partner_doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("partner.json")).expect("partner.json"))
            .expect("partner.json is JSON");
    assert_eq!(field(&partner_doc, "partnerId"), partner);
    assert!(!field(&partner_doc, "clientSecret").is_empty());
    let csv = std::fs::read_to_string(out.join("devices.csv")).expect("devices.csv");
    let first_tokens = tokens(&csv);
    assert_eq!(first_tokens.len(), 3, "{csv}");
    assert_eq!(first_tokens[0].0, "demo-kettle-0001");

    // What it made is there through the API, and a device is offered both images.
    let images = cli.json(&["image", "list", "--partner", &partner]);
    assert_eq!(images.as_array().map(Vec::len), Some(2), "{images}");
    let (id, token) = &first_tokens[0];
    let check = device_check(&server, id, token);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let offer = String::from_utf8_lossy(&check.stdout);
    assert!(offer.contains("1.0.0"), "{offer}");

    // Again: nothing new, the same partner, the same tokens.
    let again = cli.json(&["demo", "--out", out_arg, "--devices", "3"]);
    assert_eq!(again["created"]["partner"], false, "{again}");
    assert_eq!(again["created"]["types"], 0, "{again}");
    assert_eq!(again["created"]["images"], 0, "{again}");
    assert_eq!(again["created"]["devices"], 0, "{again}");
    assert_eq!(field(&again, "partnerId"), partner);
    let csv_again = std::fs::read_to_string(out.join("devices.csv")).expect("devices.csv");
    assert_eq!(tokens(&csv_again), first_tokens);
    let partners = cli.json(&["partner", "list"]);
    let demo_partners = partners
        .as_array()
        .expect("array")
        .iter()
        .filter(|p| p["name"] == "Demo Kettles")
        .count();
    assert_eq!(demo_partners, 1, "{partners}");

    // With the CSV lost, the devices get new tokens and the new CSV works.
    std::fs::remove_file(out.join("devices.csv")).expect("remove devices.csv");
    let third = cli.json(&["demo", "--out", out_arg, "--devices", "3"]);
    assert_eq!(third["created"]["devices"], 0, "{third}");
    let fresh = tokens(&std::fs::read_to_string(out.join("devices.csv")).expect("devices.csv"));
    assert_eq!(fresh.len(), 3);
    assert_ne!(fresh[0].1, first_tokens[0].1, "a lost token is replaced");
    let check = device_check(&server, &fresh[0].0, &fresh[0].1);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let old = device_check(&server, &first_tokens[0].0, &first_tokens[0].1);
    assert!(!old.status.success(), "the replaced token is refused");
}

#[test]
fn demo_needs_an_appliance_admin() {
    let server = Server::start();
    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, "Plain");
    let mut cli = Cli::remote();
    cli.env("OTAD_URL", &server.api.base)
        .env("OTAD_TOKEN", &tenant.token)
        .env(
            "OTAD_CA",
            server
                .data
                .join("tls/cert.pem")
                .to_str()
                .expect("utf-8 path"),
        );
    cli.run(&["demo", "--out", "demo"])
        .fails(5, &["appliance admin"]);
}
