//! The DDI commands of the real `otad` binary against a real server: an admin sets a
//! partner's tenant, the partner's gateway token is created (to a 0600 file), rotated and
//! withdrawn, and a DDI agent's attributes and failure reason show in `device show`.

mod api_common;
mod cli_common;

use serde_json::json;

use api_common::Server;
use cli_common::{Cli, field, mode};

#[test]
fn tenant_gateway_token_and_ddi_devices_from_the_command_line() {
    let server = Server::start();
    let cli = Cli::local(&server.data);
    let acme = field(&cli.json(&["partner", "create", "Acme"]), "partnerId");
    let other = field(&cli.json(&["partner", "create", "Other"]), "partnerId");
    let v = cli.json(&["partner", "ddi-tenant", &acme, "acme-fleet"]);
    assert_eq!(field(&v, "ddiTenant"), "acme-fleet");
    cli.run(&["partner", "ddi-tenant", &other, "ACME-fleet"])
        .fails(4, &["ddi_tenant_taken"]);
    cli.run(&["partner", "ddi-tenant", &other, "no spaces"])
        .fails(1, &["ddiTenant"]);

    let show = cli.json(&["ddi", "show", "--partner", &acme]);
    assert_eq!(
        show,
        json!({"ddiTenant": "acme-fleet", "gatewayToken": false})
    );
    let file = cli.dir().join("gw.txt");
    let shown = cli.text(&[
        "ddi",
        "gateway-token",
        "--partner",
        &acme,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(mode(&file), 0o600);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 40);
    assert!(!shown.contains(&token), "{shown}");
    cli.run(&[
        "ddi",
        "gateway-token",
        "--partner",
        &acme,
        "--out",
        file.to_str().unwrap(),
    ])
    .fails(4, &["exists"]);
    assert_eq!(
        cli.json(&["ddi", "show", "--partner", &acme])["gatewayToken"],
        true
    );

    // A device polled with the gateway token, then sent its attributes.
    let dt = field(
        &cli.json(&["device-type", "create", "gw", "--partner", &acme]),
        "id",
    );
    cli.json(&[
        "device",
        "register",
        "gw-1",
        "--device-type",
        &dt,
        "--partner",
        &acme,
    ]);
    let api = &server.api;
    let url = format!("{}/acme-fleet/controller/v1/gw-1/configData", api.base);
    let r = api
        .client
        .put(&url)
        .header("authorization", format!("GatewayToken {token}"))
        .json(&json!({"data": {"board": "imx8", "rev": "3"}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = cli.text(&["device", "show", "gw-1", "--partner", &acme]);
    assert!(text.contains("board=imx8 rev=3"), "{text}");

    let rotated = field(
        &cli.json(&["ddi", "gateway-token", "--partner", &acme]),
        "gatewayToken",
    );
    assert_ne!(rotated, token);
    let r = api
        .client
        .get(format!("{}/acme-fleet/controller/v1/gw-1", api.base))
        .header("authorization", format!("GatewayToken {token}"))
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "the rotated-out token stops working"
    );
    cli.json(&["ddi", "gateway-token", "--delete", "--partner", &acme]);
    assert_eq!(
        cli.json(&["ddi", "show", "--partner", &acme])["gatewayToken"],
        false
    );
}
