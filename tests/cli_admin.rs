//! The admin CLI as an appliance admin and a partner's CI use it: the real `otad` binary
//! against a real server. Connection (local discovery, `login`/`logout`, the env
//! overrides), partners, users, firmware and device types, the device registry with a
//! 10,000-device import, `fleet status`, `audit`, completions, and the documented exit
//! codes and one-line messages for usage, not-found, conflict, auth and unreachable.

mod api_common;
mod cli_common;

use std::time::{Duration, Instant};

use serde_json::Value;

use api_common::Server;
use cli_common::{Cli, array, field, mode};

#[test]
fn partners_and_users_as_the_local_admin() {
    let server = Server::start();
    let cli = Cli::local(&server.data);

    let p = cli.json(&[
        "partner",
        "create",
        "Acme Kettles",
        "--email",
        "ops@acme.example",
    ]);
    let partner = field(&p, "partnerId");
    assert_eq!(field(&p, "name"), "Acme Kettles");
    assert_eq!(field(&p, "email"), "ops@acme.example");
    assert!(field(&p, "clientSecret").len() >= 32, "{p}");

    // --out: the answer with its secret goes to a new 0600 file, never to the terminal.
    let out = cli.dir().join("bravo.json");
    let shown = cli.text(&["partner", "create", "Bravo", "--out", out.to_str().unwrap()]);
    assert_eq!(mode(&out), 0o600);
    let saved: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let secret = field(&saved, "clientSecret");
    assert!(secret.len() >= 32, "{saved}");
    assert!(!shown.contains(&secret), "the secret is not shown: {shown}");
    assert!(shown.contains(&field(&saved, "partnerId")), "{shown}");
    cli.run(&[
        "partner",
        "create",
        "Charlie",
        "--out",
        out.to_str().unwrap(),
    ])
    .fails(4, &["exists"]);
    let unchanged: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(unchanged, saved, "an existing file is never overwritten");

    let list = array(&cli.json(&["partner", "list"]));
    assert!(
        !list.iter().any(|x| x["name"] == "Charlie"),
        "a refused --out creates no partner: {list:?}"
    );
    assert!(
        list.iter().any(|x| x["partnerId"] == partner.as_str()),
        "{list:?}"
    );
    assert!(list.iter().any(|x| x["platform"] == true), "{list:?}");
    let table = cli.text(&["partner", "list"]);
    assert!(table.starts_with("PARTNER ID"), "{table}");
    assert!(
        table.contains("Acme Kettles") && table.contains(&partner),
        "{table}"
    );

    let rotated = cli.json(&["partner", "rotate-secret", &partner]);
    assert_eq!(field(&rotated, "partnerId"), partner);
    assert_ne!(field(&rotated, "clientSecret"), field(&p, "clientSecret"));
    // The new secret works, the old one no more.
    server
        .api
        .client_token(&partner, &field(&rotated, "clientSecret"));
    server
        .api
        .token_request(
            &partner,
            &field(&p, "clientSecret"),
            &[("grant_type", "client_credentials")],
        )
        .expect(401);
    cli.run(&[
        "partner",
        "rotate-secret",
        "00000000-0000-0000-0000-000000000000",
    ])
    .fails(3, &["00000000-0000-0000-0000-000000000000"]);

    // Users: a generated password (shown once) that logs in; one from stdin.
    let u = cli.json(&["user", "create", "alice", "--partner", &partner]);
    assert_eq!(field(&u, "username"), "alice");
    assert_eq!(field(&u, "role"), "partner");
    let password = field(&u, "password");
    server.api.login(
        &partner,
        &field(&rotated, "clientSecret"),
        "alice",
        &password,
    );
    let u = cli
        .run_stdin(
            &[
                "user",
                "create",
                "bob",
                "--partner",
                &partner,
                "--password-stdin",
                "--json",
            ],
            Some("bob's secret\n"),
        )
        .ok()
        .json();
    assert!(
        u.get("password").is_none(),
        "a chosen password is not echoed: {u}"
    );
    server.api.login(
        &partner,
        &field(&rotated, "clientSecret"),
        "bob",
        "bob's secret",
    );

    let users = array(&cli.json(&["user", "list", "--partner", &partner]));
    let names: Vec<String> = users.iter().map(|u| field(u, "username")).collect();
    assert_eq!(names.len(), 2, "{users:?}");
    assert!(names.contains(&"alice".into()) && names.contains(&"bob".into()));
    let table = cli.text(&["user", "list", "--partner", &partner]);
    assert!(table.contains("alice") && table.contains("bob"), "{table}");

    cli.run(&["user", "create", "alice", "--partner", &partner])
        .fails(4, &["alice"]);
    cli.run(&[
        "user",
        "create",
        "carol",
        "--partner",
        &partner,
        "--role",
        "admin",
    ])
    .fails(1, &["400"]);
    let r = cli.run(&["user", "remove", "alice", "--partner", &partner]);
    r.ok();
    assert!(r.stdout.is_empty(), "quiet success: {}", r.stdout);
    cli.run(&["user", "remove", "alice", "--partner", &partner])
        .fails(3, &["alice"]);
    let users = array(&cli.json(&["user", "list", "--partner", &partner]));
    assert_eq!(users.len(), 1, "{users:?}");
}

#[test]
fn an_admin_login_remembers_the_partner_to_act_on() {
    let server = Server::start();
    let admin = Cli::local(&server.data);
    let acme = field(&admin.json(&["partner", "create", "Acme"]), "partnerId");
    let bravo = field(&admin.json(&["partner", "create", "Bravo"]), "partnerId");

    // The partner given at login is kept in the session file, for every later process.
    let login = admin.json(&["login", "--partner", &acme]);
    assert_eq!(field(&login, "actingPartner"), acme);
    let t = admin.json(&["type", "create", "150", "MCU_MAIN"]);
    assert_eq!(
        field(&t, "partnerId"),
        acme,
        "the remembered partner, in a new process"
    );
    // A command's own --partner still wins, and so does OTAD_PARTNER.
    let t = admin.json(&["type", "create", "151", "MCU_AUX", "--partner", &bravo]);
    assert_eq!(field(&t, "partnerId"), bravo);
    let mut env = Cli::local(&server.data);
    std::fs::create_dir_all(env.config_home().join("otad")).unwrap();
    std::fs::copy(
        admin.config_home().join("otad").join("session.json"),
        env.config_home().join("otad").join("session.json"),
    )
    .unwrap();
    env.env("OTAD_PARTNER", &bravo);
    let t = env.json(&["type", "create", "152", "MCU_ENV"]);
    assert_eq!(field(&t, "partnerId"), bravo);
}

#[test]
fn partner_staff_log_in_with_their_own_password_only() {
    let server = Server::start();
    let admin = Cli::local(&server.data);
    let p = admin.json(&["partner", "create", "Acme"]);
    let partner = field(&p, "partnerId");
    let u = admin.json(&["user", "create", "alice", "--partner", &partner]);
    let password = field(&u, "password");

    // On the appliance host, without the organisation's client secret.
    let alice = Cli::local(&server.data);
    alice
        .run_stdin(
            &["login", "--username", "alice", "--password-stdin"],
            Some("wrong\n"),
        )
        .fails(5, &["login refused"]);
    let login = alice
        .run_stdin(
            &["login", "--username", "alice", "--password-stdin", "--json"],
            Some(&format!("{password}\n")),
        )
        .ok()
        .json();
    assert_eq!(field(&login, "partnerId"), partner);
    assert_eq!(field(&login, "username"), "alice");
    let t = alice.json(&["type", "create", "150", "MCU_MAIN"]);
    assert_eq!(field(&t, "partnerId"), partner, "acts for her own partner");
    alice.run(&["partner", "list"]).fails(5, &["admin"]);

    // From elsewhere: --server and --ca, still no client secret; a --client-id that is not
    // her partner's is refused before anything is saved.
    let remote = Cli::remote();
    let ca = server.data.join("tls").join("cert.pem");
    let base = [
        "login",
        "--server",
        server.api.base.as_str(),
        "--ca",
        ca.to_str().unwrap(),
        "--username",
        "alice",
        "--password-stdin",
    ];
    let mut wrong_id = base.to_vec();
    wrong_id.extend(["--client-id", "someone-else"]);
    remote
        .run_stdin(&wrong_id, Some(&format!("{password}\n")))
        .fails(2, &["belongs to partner"]);
    remote.run_stdin(&base, Some(&format!("{password}\n"))).ok();
    let session = remote.config_home().join("otad").join("session.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&session).unwrap()).unwrap();
    let token = field(&saved, "token");
    remote.json(&["type", "list"]);

    // Logout revokes the public-client token without any secret.
    remote.run(&["logout"]).ok();
    assert!(!session.exists());
    server
        .api
        .get(&format!("/v1/ota/partners/{partner}/types"), &token)
        .expect(401);
}

#[test]
fn login_logout_and_the_environment_overrides() {
    let server = Server::start();
    let admin = Cli::local(&server.data);
    let p = admin.json(&["partner", "create", "Acme"]);
    let (partner, secret) = (field(&p, "partnerId"), field(&p, "clientSecret"));
    let u = admin.json(&["user", "create", "ci-bot", "--partner", &partner]);
    let password = field(&u, "password");
    let url = server.api.base.clone();
    let ca = server.data.join("tls").join("cert.pem");
    let ca = ca.to_str().unwrap();

    // Nobody logged in, no local server: exit 5 with what to do.
    let user = Cli::remote();
    user.run(&["type", "list"])
        .fails(5, &["not logged in", "otad login"]);

    // A wrong password is an auth failure; the right one saves a 0600 session.
    user.run_stdin(
        &[
            "login",
            "--server",
            &url,
            "--ca",
            ca,
            "--client-id",
            &partner,
            "--client-secret",
            &secret,
            "--username",
            "ci-bot",
            "--password-stdin",
        ],
        Some("wrong\n"),
    )
    .fails(5, &["login refused"]);
    let login = user
        .run_stdin(
            &[
                "login",
                "--server",
                &url,
                "--ca",
                ca,
                "--client-id",
                &partner,
                "--client-secret",
                &secret,
                "--username",
                "ci-bot",
                "--password-stdin",
                "--json",
            ],
            Some(&format!("{password}\n")),
        )
        .ok()
        .json();
    assert_eq!(field(&login, "partnerId"), partner);
    let session = user.config_home().join("otad").join("session.json");
    assert_eq!(field(&login, "sessionFile"), session.to_str().unwrap());
    assert_eq!(mode(&session), 0o600, "the session file holds a token");
    let saved: Value = serde_json::from_slice(&std::fs::read(&session).unwrap()).unwrap();
    assert!(field(&saved, "ca").contains("BEGIN CERTIFICATE"), "{saved}");

    // Commands now act on the logged-in partner without --partner.
    let t = user.json(&["type", "create", "150", "MCU_MAIN"]);
    assert_eq!(field(&t, "partnerId"), partner);
    // A partner may not use admin commands: exit 5, saying so.
    user.run(&["partner", "list"]).fails(5, &["admin"]);

    // An expired login is reported as such, without asking the server.
    let expired = Cli::remote();
    std::fs::create_dir_all(expired.config_home().join("otad")).unwrap();
    let mut old = saved.clone();
    old["expiresTimestamp"] = serde_json::json!(1_000);
    std::fs::write(
        expired.config_home().join("otad").join("session.json"),
        old.to_string(),
    )
    .unwrap();
    expired
        .run(&["type", "list"])
        .fails(5, &["expired", "1970-01-01 00:00:01 UTC", "otad login"]);

    // Env overrides: OTAD_TOKEN replaces the saved token.
    let mut env_user = Cli::remote();
    std::fs::create_dir_all(env_user.config_home().join("otad")).unwrap();
    std::fs::copy(
        &session,
        env_user.config_home().join("otad").join("session.json"),
    )
    .unwrap();
    env_user.env("OTAD_TOKEN", "not-a-valid-token");
    env_user.run(&["type", "list"]).fails(5, &["otad login"]);

    // Logout forgets (and, with the client secret, revokes) the token.
    let token = field(&saved, "token");
    user.run(&["logout", "--client-secret", &secret]).ok();
    assert!(!session.exists());
    user.run(&["type", "list"]).fails(5, &["not logged in"]);
    server
        .api
        .get(&format!("/v1/ota/partners/{partner}/types"), &token)
        .expect(401);
    user.run(&["logout"]).ok();

    // CI style: OTAD_URL + OTAD_TOKEN + OTAD_CA + OTAD_PARTNER (a bare token does not say
    // whose it is), no session file at all.
    let token = server.api.client_token(&partner, &secret);
    let mut ci = Cli::remote();
    ci.env("OTAD_URL", &url)
        .env("OTAD_TOKEN", &token)
        .env("OTAD_CA", ca);
    ci.run(&["type", "list"]).fails(2, &["OTAD_PARTNER"]);
    ci.env("OTAD_PARTNER", &partner);
    let types = array(&ci.json(&["type", "list"]));
    assert!(types.iter().any(|t| t["type"] == 150), "{types:?}");
    assert!(!ci.config_home().join("otad").join("session.json").exists());

    // An admin token through the env needs the partner named: usage (2) until it is.
    let admin_token = server.admin_token();
    let mut ci_admin = Cli::remote();
    ci_admin
        .env("OTAD_URL", &url)
        .env("OTAD_TOKEN", &admin_token)
        .env("OTAD_CA", ca);
    ci_admin
        .run(&["type", "list"])
        .fails(2, &["--partner", "OTAD_PARTNER"]);
    let types = array(&ci_admin.json(&["type", "list", "--partner", &partner]));
    assert!(types.iter().any(|t| t["type"] == 150), "{types:?}");
    ci_admin.env("OTAD_PARTNER", &partner);
    let types = array(&ci_admin.json(&["type", "list"]));
    assert!(types.iter().any(|t| t["type"] == 150), "{types:?}");

    // `otad login` alone on the appliance: the first admin, from the data directory.
    let local = Cli::local(&server.data);
    let l = local.json(&["login"]);
    assert_eq!(l["username"], "admin", "{l}");
    // The saved session works without the data directory.
    let elsewhere = Cli::remote();
    std::fs::create_dir_all(elsewhere.config_home().join("otad")).unwrap();
    std::fs::copy(
        local.config_home().join("otad").join("session.json"),
        elsewhere.config_home().join("otad").join("session.json"),
    )
    .unwrap();
    let partners = array(&elsewhere.json(&["partner", "list"]));
    assert!(partners.iter().any(|x| x["partnerId"] == partner.as_str()));
}

#[test]
fn connection_failures_say_what_to_do() {
    let server = Server::start();
    let url = server.api.base.clone();
    let token = server.admin_token();

    // Nothing listening there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("https://127.0.0.1:{}", free.local_addr().unwrap().port());
    drop(free);
    let mut c = Cli::remote();
    c.env("OTAD_URL", &dead)
        .env("OTAD_TOKEN", &token)
        .env("OTAD_PARTNER", "x");
    c.run(&["type", "list"]).fails(1, &["cannot reach", &dead]);

    // The self-signed certificate is not trusted without --ca / OTAD_CA.
    let mut c = Cli::remote();
    c.env("OTAD_URL", &url)
        .env("OTAD_TOKEN", &token)
        .env("OTAD_PARTNER", "x");
    let r = c.run(&["type", "list"]);
    assert!(r.code == 1 || r.code == 2, "{r:?}");
    r.fails(r.code, &["--ca", "OTAD_CA"]);

    // A CA file that is something else.
    let bogus = c.dir().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    c.env("OTAD_CA", bogus.to_str().unwrap());
    c.run(&["type", "list"]).fails(1, &["certificate"]);

    // Plain http is refused as usage.
    let user = Cli::remote();
    user.run(&[
        "login",
        "--server",
        "http://127.0.0.1:1",
        "--client-id",
        "x",
        "--client-secret",
        "y",
    ])
    .fails(2, &["https"]);
    // clap's own usage errors are 2 too.
    assert_eq!(user.run(&["type", "create"]).code, 2);
    assert_eq!(user.run(&["image", "upload", "--type", "3"]).code, 2);
    assert_eq!(user.run(&["partner", "frobnicate"]).code, 2);
}

#[test]
fn firmware_and_device_types() {
    let server = Server::start();
    let cli = Cli::local(&server.data);

    let t = cli.json(&[
        "type",
        "create",
        "150",
        "MCU_MAIN",
        "--description",
        "main board",
    ]);
    assert_eq!(t["type"], 150);
    assert_eq!(t["versionAttributeId"], 2150);
    assert_eq!(field(&t, "name"), "MCU_MAIN");
    cli.run(&["type", "create", "150", "AGAIN"])
        .fails(4, &["type 150"]);
    cli.run(&["type", "create", "250", "BAD"])
        .fails(1, &["400"]);
    let list = array(&cli.json(&["type", "list"]));
    assert!(list.iter().any(|t| t["type"] == 150) && list.iter().any(|t| t["type"] == 3));
    let table = cli.text(&["type", "list"]);
    assert!(
        table.contains("MCU_MAIN") && table.contains("APPLICATION"),
        "{table}"
    );
    cli.run(&["type", "update", "150", "--name", "MCU_MAIN_V2"])
        .ok();
    let shown = cli.json(&["type", "show", "150"]);
    assert_eq!(field(&shown, "name"), "MCU_MAIN_V2");
    assert!(
        shown.get("description").is_none(),
        "omitted description clears: {shown}"
    );
    cli.run(&["type", "show", "160"]).fails(3, &["type 160"]);
    cli.run(&["type", "update", "160", "--name", "X"])
        .fails(3, &["type 160"]);
    assert!(cli.text(&["type", "show", "150"]).contains("MCU_MAIN_V2"));

    let d = cli.json(&[
        "device-type",
        "create",
        "Kettle v2",
        "--description",
        "2025",
    ]);
    let id = field(&d, "id");
    assert_eq!(field(&d, "name"), "Kettle v2");
    let list = array(&cli.json(&["device-type", "list"]));
    assert_eq!(list.len(), 1);
    assert_eq!(field(&list[0], "id"), id);
    assert!(cli.text(&["device-type", "list"]).contains("Kettle v2"));
    assert_eq!(
        field(&cli.json(&["device-type", "show", &id]), "description"),
        "2025"
    );
    cli.run(&[
        "device-type",
        "show",
        "00000000-0000-0000-0000-000000000000",
    ])
    .fails(3, &["device type"]);
}

#[test]
fn devices_import_of_ten_thousand_fleet_status_and_audit() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let dt = field(&cli.json(&["device-type", "create", "Kettle"]), "id");
    let other = field(&cli.json(&["device-type", "create", "Toaster"]), "id");

    // One device by hand, checked in over OCP/1 reporting type 3 at version 1.
    let reg = cli.json(&["device", "register", "kettle-0", "--device-type", &dt]);
    let token = field(&reg, "token");
    cli.run(&["device", "register", "kettle-0", "--device-type", &dt])
        .fails(4, &["kettle-0"]);
    cli.run(&[
        "device",
        "register",
        "kettle-x",
        "--device-type",
        "00000000-0000-0000-0000-000000000000",
    ])
    .code(1);
    cli.run(&[
        "device",
        "check",
        "--device-id",
        "kettle-0",
        "--token",
        &token,
        "--installed",
        "3=1",
    ])
    .ok();

    // 10,000 devices from CSV (header line included), tokens written 0600.
    let csv = cli.dir().join("fleet.csv");
    let mut text = String::from("deviceId,deviceTypeId\n");
    for i in 0..10_000 {
        let t = if i % 4 == 0 { &other } else { &dt };
        text.push_str(&format!("dev-{i:05},{t}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = cli.dir().join("tokens.csv");
    let started = Instant::now();
    let r = cli.json(&[
        "device",
        "import",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    eprintln!("import of 10,000 devices through the CLI: {took:?}");
    assert_eq!(r["imported"], 10_000, "{r}");
    assert_eq!(mode(&out), 0o600);
    let tokens = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = tokens.lines().collect();
    assert_eq!(lines.len(), 10_001);
    assert_eq!(lines[0], "deviceId,token");
    assert!(lines[1].starts_with("dev-00000,"), "{}", lines[1]);
    // All or nothing: a second import of the same file conflicts and names the line.
    cli.run(&["device", "import", csv.to_str().unwrap()])
        .fails(4, &["line 2"]);
    // Without --out the token CSV goes to stdout.
    let small = cli.dir().join("small.csv");
    std::fs::write(&small, format!("extra-1,{dt}\nextra-2,{dt}\n")).unwrap();
    let csv_out = cli.text(&["device", "import", small.to_str().unwrap()]);
    assert!(csv_out.starts_with("deviceId,token\nextra-1,"), "{csv_out}");
    // NDJSON is recognised and sent as such; with --json and no --out, tokens come as JSON.
    let nd = cli.dir().join("more.ndjson");
    std::fs::write(
        &nd,
        format!("{{\"deviceId\":\"nd-1\",\"deviceTypeId\":\"{dt}\"}}\n"),
    )
    .unwrap();
    let imported = array(&cli.json(&["device", "import", nd.to_str().unwrap()]));
    assert_eq!(imported.len(), 1);
    assert_eq!(field(&imported[0], "deviceId"), "nd-1");
    assert!(field(&imported[0], "token").len() >= 32);

    let all = array(&cli.json(&["device", "list"]));
    assert_eq!(all.len(), 10_004);
    let toasters = array(&cli.json(&["device", "list", "--device-type", &other]));
    assert_eq!(toasters.len(), 2_500);
    assert!(toasters.iter().all(|d| d["deviceTypeId"] == other.as_str()));
    let table = cli.text(&["device", "list", "--device-type", &other]);
    assert_eq!(table.lines().count(), 2_501, "header + one line per device");
    assert!(table.contains("dev-00000") && table.contains("dev-09996"));

    // The check-in's report is group-committed: wait (bounded) until it is visible.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let d = cli.json(&["device", "show", "kettle-0"]);
        if d["installed"].as_array().is_some_and(|a| !a.is_empty()) {
            break d;
        }
        assert!(Instant::now() < deadline, "the check-in never showed: {d}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shown["installed"][0]["type"], 3);
    assert_eq!(shown["installed"][0]["versionNumber"], "1");
    assert!(shown.get("lastSeenTimestamp").is_some());
    let on_v1 = array(&cli.json(&["device", "list", "--type", "3", "--installed", "1"]));
    assert_eq!(on_v1.len(), 1);
    assert_eq!(field(&on_v1[0], "deviceId"), "kettle-0");
    assert_eq!(cli.run(&["device", "list", "--type", "3"]).code, 2);

    // Labels: set, show, filter, refuse over the bounds.
    let labelled = cli.json(&[
        "device", "label", "kettle-0", "--tag", "beta", "--tag", "eu", "--attr", "hw=rev2",
    ]);
    assert_eq!(labelled["tags"], serde_json::json!(["beta", "eu"]));
    assert_eq!(labelled["attributes"]["hw"], "rev2");
    let shown = cli.text(&["device", "show", "kettle-0"]);
    assert!(
        shown.contains("beta,eu") && shown.contains("hw=rev2"),
        "{shown}"
    );
    let tagged = array(&cli.json(&["device", "list", "--tag", "eu", "--attr", "hw=rev2"]));
    assert_eq!(tagged.len(), 1);
    assert_eq!(field(&tagged[0], "deviceId"), "kettle-0");
    let long_key = format!("{}=v", "k".repeat(65));
    cli.run(&["device", "label", "kettle-0", "--attr", &long_key])
        .fails(1, &["attribute key"]);
    assert_eq!(cli.run(&["device", "label", "kettle-0"]).code, 2);
    let cleared = cli.json(&["device", "label", "kettle-0", "--no-tags"]);
    assert_eq!(cleared["tags"], serde_json::json!([]));
    assert_eq!(cleared["attributes"]["hw"], "rev2");

    let status = cli.json(&["fleet", "status"]);
    assert_eq!(status["devices"], 10_004);
    let types = array(&status["deviceTypes"]);
    let kettle = types
        .iter()
        .find(|t| t["deviceTypeId"] == dt.as_str())
        .unwrap();
    assert_eq!(kettle["name"], "Kettle");
    assert_eq!(kettle["devices"], 7_504);
    assert_eq!(kettle["neverSeen"], 7_503);
    assert_eq!(
        kettle["versions"],
        serde_json::json!([{"type": 3, "versionNumber": "1", "devices": 1}])
    );
    let only = cli.json(&["fleet", "status", "--device-type", &other]);
    assert_eq!(only["devices"], 2_500);
    let text = cli.text(&["fleet", "status"]);
    assert!(text.starts_with("10004 devices"), "{text}");
    assert!(
        text.contains("Kettle") && text.contains("installed 1"),
        "{text}"
    );

    // Token rotation: the old device token stops working over OCP/1.
    let rotated = cli.json(&["device", "rotate-token", "kettle-0"]);
    assert_ne!(field(&rotated, "token"), token);
    let old = cli.run(&[
        "device",
        "check",
        "--device-id",
        "kettle-0",
        "--token",
        &token,
        "--installed",
        "3=1",
    ]);
    assert_ne!(old.code, 0, "the old token still works: {old:?}");
    cli.run(&[
        "device",
        "check",
        "--device-id",
        "kettle-0",
        "--token",
        &field(&rotated, "token"),
        "--installed",
        "3=1",
    ])
    .ok();

    cli.run(&["device", "delete", "dev-00001"]).ok();
    cli.run(&["device", "show", "dev-00001"])
        .fails(3, &["dev-00001"]);
    cli.run(&["device", "delete", "dev-00001"])
        .fails(3, &["dev-00001"]);

    // The audit log names what was done, newest first.
    let audit = array(&cli.json(&["audit", "--since", "1h", "--limit", "5"]));
    assert_eq!(audit.len(), 5);
    assert_eq!(field(&audit[0], "action"), "device.delete", "{audit:?}");
    for e in &audit {
        for k in ["seq", "actor", "action", "target"] {
            field(e, k);
        }
    }
    let seqs: Vec<u64> = audit
        .iter()
        .map(|e| field(e, "seq").parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let future = format!("{}", u64::MAX / 2);
    assert!(array(&cli.json(&["audit", "--since", &future])).is_empty());
    let table = cli.text(&["audit", "--limit", "3"]);
    assert!(
        table.starts_with("SEQ") && table.contains("device.delete"),
        "{table}"
    );
    assert_eq!(cli.run(&["audit", "--since", "yesterday"]).code, 2);
}

#[test]
fn completions_and_help() {
    let cli = Cli::remote();
    for shell in ["bash", "zsh", "fish"] {
        let script = cli.text(&["completions", shell]);
        assert!(script.contains("otad"), "{shell}: {script}");
        assert!(
            script.contains("rotate-secret"),
            "{shell} completes subcommands"
        );
    }
    assert_eq!(cli.run(&["completions", "tcsh"]).code, 2);
    for cmd in [
        &["login"][..],
        &["partner", "create"],
        &["image", "upload"],
        &["device", "import"],
        &["fleet", "status"],
        &["db", "restore"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = cli.text(&args);
        assert!(help.contains("Example"), "{cmd:?}: {help}");
    }
}
