//! Withdrawing credentials takes effect at once, even for tokens the server has seen moments
//! before (it caches checked tokens briefly): removing a user ends that user's tokens,
//! rotating a partner's secret ends its client-credentials tokens, rotating or deleting a
//! device ends its token. And the one long-lived credential, the configured metrics token,
//! reads `/metrics` and nothing else.

mod api_common;

use api_common::*;
use reqwest::Method;
use serde_json::json;

#[test]
fn withdrawn_credentials_stop_working_immediately() {
    let server = Server::start();
    let api = &server.api;
    let admin = server.admin_token();
    let t = api.tenant(&admin, "Tok");
    let client = api.client_token(&t.id, &t.secret);
    let types = format!("{}/types", t.base());
    // Both tokens work (and are now cached by the server).
    api.get(&types, &t.token).expect(200);
    api.get(&types, &client).expect(200);

    // Rotating the secret ends client-credentials tokens, not the user's.
    let rotated = api
        .post_json(
            &format!("/v1/admin/partners/{}/secret", t.id),
            &admin,
            &json!({}),
        )
        .ok_json(200);
    api.get(&types, &client).expect_error(401, None);
    api.get(&types, &t.token).expect(200);
    let new_secret = s(&rotated, "clientSecret");
    let client = api.client_token(&t.id, &new_secret);
    api.get(&types, &client).expect(200);

    // Removing the user ends the user's tokens.
    api.send(api.req(
        Method::DELETE,
        &format!("/v1/admin/partners/{}/users/{}", t.id, t.user),
        &admin,
    ))
    .expect(204);
    api.get(&types, &t.token).expect_error(401, None);
    api.get(&types, &client).expect(200);

    // A device token: works for an entitled download check, then rotation and deletion end it.
    let dt = api.device_type(&t.id, &client, "kettle");
    let reg = api
        .post_json(
            &format!("{}/devices", t.base()),
            &client,
            &json!({"deviceId": "tok-dev", "deviceTypeId": dt}),
        )
        .ok_json(201);
    let device_token = s(&reg, "token");
    // A device token on a partner path is 403 (valid token, wrong role), not 401.
    api.get(&types, &device_token).expect_error(403, None);
    let rotated = api
        .post_json(
            &format!("{}/devices/tok-dev/token", t.base()),
            &client,
            &json!({}),
        )
        .ok_json(200);
    api.get(&types, &device_token).expect_error(401, None);
    let device_token = s(&rotated, "token");
    api.get(&types, &device_token).expect_error(403, None);
    api.send(api.req(
        Method::DELETE,
        &format!("{}/devices/tok-dev", t.base()),
        &client,
    ))
    .expect(204);
    api.get(&types, &device_token).expect_error(401, None);
}

#[test]
fn the_metrics_token_reads_metrics_and_nothing_else() {
    const SCRAPE: &str = "scrape-0123456789abcdef0123456789abcdef";
    let server = Server::start_with_config(&format!("[api]\nmetrics_token = \"{SCRAPE}\"\n"));
    let api = &server.api;
    let admin = server.admin_token();
    let t = api.tenant(&admin, "Scraped");

    let r = api.get("/metrics", SCRAPE);
    r.expect(200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
    assert!(r.text().contains("otad_"), "{}", r.text());
    // Admins still read it; anything else with the scrape token is 403, a near miss is 401.
    api.get("/metrics", &admin).expect(200);
    api.get("/metrics", &t.token).expect_error(403, None);
    api.get("/v1/admin/partners", SCRAPE)
        .expect_error(403, None);
    api.get(&format!("{}/types", t.base()), SCRAPE)
        .expect_error(403, None);
    api.get("/v1/me", SCRAPE).expect_error(403, None);
    api.get("/metrics", &format!("{SCRAPE}x"))
        .expect_error(401, None);
}

#[test]
fn without_a_configured_metrics_token_there_is_none() {
    let server = Server::start();
    server
        .api
        .get("/metrics", "scrape-0123456789abcdef0123456789abcdef")
        .expect_error(401, None);
}
