//! A signed-in user's own password change (`POST /v1/me/password`) and the rule that the
//! last admin cannot be removed, against a real server.

mod api_common;

use api_common::*;
use serde_json::json;

#[test]
fn a_user_changes_its_password_and_its_other_sessions_end() {
    let server = Server::start();
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Acct");
    let other_session = api.login(&a.id, &a.secret, &a.user, &a.password);
    let change = |token: &str, current: &str, new: &str| {
        api.post_json(
            "/v1/me/password",
            token,
            &json!({ "currentPassword": current, "newPassword": new }),
        )
    };
    // Wrong current password, missing field, a new password the rules refuse: nothing changes.
    change(&a.token, "not-the-password", "a-new-password-456")
        .expect_error(403, Some("wrong_password"));
    api.post_json("/v1/me/password", &a.token, &json!({ "newPassword": "x" }))
        .expect_error(400, Some("missing_field"));
    change(&a.token, &a.password, "short").expect_error(400, None);
    api.get("/v1/me", &other_session).expect(200);

    change(&a.token, &a.password, "a-new-password-456").expect(204);
    // This session stays, the other one ends; the old password no longer signs in.
    api.get("/v1/me", &a.token).expect(200);
    api.get("/v1/me", &other_session).expect(401);
    api.token_request(
        &a.id,
        &a.secret,
        &[
            ("grant_type", "password"),
            ("username", &a.user),
            ("password", &a.password),
        ],
    )
    .expect(400);
    api.login(&a.id, &a.secret, &a.user, "a-new-password-456");

    // A machine client has no password to change.
    let client = api.client_token(&a.id, &a.secret);
    change(&client, "x", "a-new-password-789").expect_error(403, Some("no_password"));

    // The change is audited under the user's name.
    let audit = api.get("/v1/admin/audit?size=50", &admin).ok_json(200);
    assert!(
        content(&audit)
            .iter()
            .any(|e| e["action"] == "user.password_change" && e["actor"] == a.user.as_str()),
        "{audit}"
    );
}

#[test]
fn wrong_current_passwords_are_rate_limited() {
    let server = Server::start_with_config("[api]\nlogin_attempts_per_minute = 3\n");
    let api = &server.api;
    let admin = server.admin_token();
    let a = api.tenant(&admin, "Limit");
    for _ in 0..3 {
        api.post_json(
            "/v1/me/password",
            &a.token,
            &json!({ "currentPassword": "guess", "newPassword": "a-new-password-456" }),
        )
        .expect_error(403, Some("wrong_password"));
    }
    let r = api.post_json(
        "/v1/me/password",
        &a.token,
        &json!({ "currentPassword": &a.password, "newPassword": "a-new-password-456" }),
    );
    r.expect_error(429, Some("slow_down"));
    assert!(r.header("retry-after").is_some());
}

#[test]
fn the_last_admin_cannot_be_removed() {
    let server = Server::start();
    let api = &server.api;
    let admin = server.admin_token();
    let platform = s(&api.get("/v1/me", &admin).ok_json(200), "partnerId");
    let users = format!("/v1/admin/partners/{platform}/users");
    // The only admin: 409, and it still signs in.
    api.delete(&format!("{users}/admin"), &admin)
        .expect_error(409, Some("last_admin"));
    server.admin_token();
    // With a second admin the first may go; then the second is the last one.
    api.create_user(&admin, &platform, "second", "second-password-123", "admin");
    let c = server.creds();
    let second = api.login(
        &c.client_id,
        &c.client_secret,
        "second",
        "second-password-123",
    );
    api.delete(&format!("{users}/admin"), &second).expect(204);
    api.delete(&format!("{users}/second"), &second)
        .expect_error(409, Some("last_admin"));
    api.get("/v1/admin/partners", &second).expect(200);
}
