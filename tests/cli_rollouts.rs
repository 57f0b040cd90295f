//! `otad rollout` as an operator uses it: the real binary against a real server. Create
//! (scheduled), list with filters, show (table and `--json`), the moves and their refusals
//! (exit 4), and `show --watch` printing plain lines off a terminal until the rollout ends.

mod api_common;
mod cli_common;

use api_common::{Server, bytes};
use cli_common::{Cli, array, field};

#[test]
fn create_list_show_moves_and_watch() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let dt = field(&cli.json(&["device-type", "create", "Kettle"]), "id");
    cli.json(&["device", "register", "k-1", "--device-type", &dt]);
    let fw = cli.dir().join("fw.bin");
    std::fs::write(&fw, bytes(10_000, 3)).unwrap();
    let rec = cli.json(&[
        "image",
        "upload",
        fw.to_str().unwrap(),
        "--type",
        "3",
        "--name",
        "main",
        "--version",
        "2.0",
    ]);
    let image = field(&rec, "id");

    let r = cli.json(&[
        "rollout",
        "create",
        "--device-type",
        &dt,
        "--image",
        &image,
        "--groups",
        "10,100",
        "--error-threshold",
        "0.2",
        "--window-days",
        "sat,sun",
        "--window-start",
        "02:00",
        "--window-minutes",
        "180",
        "--start-at",
        "4102444800000",
    ]);
    let id = field(&r, "id");
    assert_eq!(field(&r, "state"), "scheduled");
    assert_eq!(r["errorThreshold"], 0.2);
    assert_eq!(r["window"]["days"], serde_json::json!(["sat", "sun"]));
    assert_eq!(array(&r["groups"]).len(), 2);
    cli.run(&[
        "rollout",
        "create",
        "--device-type",
        &dt,
        "--image",
        &image,
        "--groups",
        "50",
    ])
    .fails(1, &["groups_not_ending_at_100"]);
    cli.run(&["rollout", "create", "--device-type", &dt, "--image", &image])
        .fails(4, &["rollout_unfinished"]);

    let listed = array(&cli.json(&["rollout", "list", "--state", "scheduled"]));
    assert_eq!(listed.len(), 1);
    assert!(array(&cli.json(&["rollout", "list", "--state", "running"])).is_empty());
    let table = cli.text(&["rollout", "show", &id]);
    assert!(
        table.contains("scheduled") && table.contains("CONFIRMED"),
        "{table}"
    );

    assert_eq!(
        field(&cli.json(&["rollout", "pause", &id]), "state"),
        "paused"
    );
    cli.run(&["rollout", "pause", &id])
        .fails(4, &["cannot pause"]);
    assert_eq!(
        field(&cli.json(&["rollout", "resume", &id]), "state"),
        "scheduled"
    );
    assert_eq!(
        field(&cli.json(&["rollout", "advance", &id]), "state"),
        "running"
    );
    assert_eq!(
        field(&cli.json(&["rollout", "cancel", &id]), "state"),
        "cancelled"
    );
    cli.run(&["rollout", "show", "999"])
        .fails(3, &["rollout 999"]);

    // Off a terminal, --watch prints plain lines and ends with the finished rollout.
    let watched = cli.run(&["rollout", "show", &id, "--watch", "--interval-ms", "100"]);
    watched.ok();
    assert!(
        watched.stderr.contains("rollout cancelled"),
        "{}",
        watched.stderr
    );
    assert!(watched.stderr.contains("group 0 10%"), "{}", watched.stderr);
    assert!(watched.stdout.contains("cancelled"), "{}", watched.stdout);
}
