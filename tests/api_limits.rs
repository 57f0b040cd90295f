//! Bad input and limits against a real `otad serve`: malformed JSON and wrong field types
//! (400), oversize JSON bodies (413 `body_too_large`, readable by the client), binaries over
//! `max_binary_size` (413, nothing staged), truncated uploads (nothing staged, server fine),
//! garbage and invalid UTF-8 in paths (400/404 with the JSON error body, never 500), unknown
//! routes and methods, slow header senders (cut off after `header_read_timeout_secs`),
//! oversize headers, the connection cap, the login rate limit (429 with Retry-After), token expiry and
//! revocation, and the RFC 6749 OAuth error codes. Every test ends by checking that the
//! server still answers `/healthz`.

mod api_common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use api_common::{Server, Tenant, s, sha256_hex};
use reqwest::Method;
use reqwest::blocking::Body;
use serde_json::json;

const MIB: usize = 1 << 20;

fn still_serving(server: &mut Server) {
    server.assert_alive();
    let v = server.api.get("/healthz", "").ok_json(200);
    assert_eq!(v, json!({ "status": "ok" }));
}

fn setup(config: &str) -> (Server, String, Tenant) {
    let server = Server::start_with_config(config);
    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, "Limits");
    (server, admin, tenant)
}

const RELAXED: &str = "[api]\nlogin_attempts_per_minute = 1000\n";

#[test]
fn malformed_json_and_wrong_types_are_400() {
    let (mut server, _admin, a) = setup(RELAXED);
    let api = server.api.clone();
    let tok = &a.token;
    api.fw_type(&a.id, tok, 101, "MCU");
    let pool = format!("{}/pool", a.base());
    let raw = |ctype: &str, body: &str| api.post_bytes(&pool, tok, ctype, body.as_bytes().to_vec());
    for body in [
        "{\"name\":",
        "",
        "   ",
        "not json",
        "[1,2,3]",
        "\"a string\"",
        "null",
        "{\"name\":\"x\",\"type\":101,\"version\":\"1\",\"url\":\"\"} trailing",
        "{\"name\":\"x\",\"type\":101,\"version\":\"1\",\"url\":\"\",}",
    ] {
        let r = raw("application/json", body);
        assert_eq!(r.status, 400, "body {body:?}: {}", r.text());
        r.expect_error(400, None);
    }
    // no type coercion
    for body in [
        json!({ "name": "x", "type": "161", "version": "1", "url": "" }),
        json!({ "name": "x", "type": "101", "version": "1", "url": "" }),
        json!({ "name": "x", "type": 101.5, "version": "1", "url": "" }),
        json!({ "name": "x", "type": 1e30, "version": "1", "url": "" }),
        json!({ "name": "x", "type": 101, "version": 1, "url": "" }),
        json!({ "name": 5, "type": 101, "version": "1", "url": "" }),
        json!({ "name": null, "type": 101, "version": "1", "url": "" }),
        json!({ "name": "x", "type": 101, "version": "1", "url": "", "tags": "a" }),
        json!({ "name": "x", "type": 101, "version": "1", "url": "", "tags": [1] }),
        json!({ "name": "x", "type": 101, "version": "1", "url": 7 }),
    ] {
        let r = api.post_json(&pool, tok, &body);
        assert_eq!(r.status, 400, "body {body}: {}", r.text());
        r.expect_error(400, None);
    }
    // invalid UTF-8 inside a JSON string
    let mut bad = b"{\"name\":\"".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"\",\"type\":101,\"version\":\"1\",\"url\":\"\"}");
    api.post_bytes(&pool, tok, "application/json", bad)
        .expect_error(400, None);
    // JSON is parsed as JSON whatever the Content-Type says; unknown fields are ignored
    let ok = "{\"name\":\"plain\",\"type\":101,\"version\":\"1\",\"url\":\"\",\"color\":\"blue\"}";
    let r = raw("text/plain", ok);
    let v = r.ok_json(201);
    assert_eq!(s(&v, "name"), "plain");
    assert!(v.get("color").is_none());
    let ok2 = ok.replace("plain", "misspelled");
    raw("application/jsn", &ok2).expect(201);
    let ok3 = ok.replace("plain", "noheader");
    api.send(api.req(Method::POST, &pool, tok).body(ok3))
        .expect(201);
    // the failed requests allocated nothing
    let listed = api
        .get(
            &format!("{}/pool/types/101?sort=versionNumber,asc", a.base()),
            tok,
        )
        .ok_json(200);
    let numbers: Vec<String> = api_common::content(&listed)
        .iter()
        .map(|r| s(r, "versionNumber"))
        .collect();
    assert_eq!(numbers, ["1", "2", "3"]);
    still_serving(&mut server);
}

#[test]
fn oversize_json_body_is_413_and_readable() {
    let (mut server, _admin, a) = setup(RELAXED);
    let api = server.api.clone();
    let tok = &a.token;
    let pool = format!("{}/pool", a.base());
    let big = json!({ "name": "big", "type": 101, "version": "1", "url": "", "description": "x".repeat(2 * MIB) });
    let r = api
        .try_send(api.req(Method::POST, &pool, tok).json(&big))
        .unwrap_or_else(|e| {
            panic!(
                "the client must be able to read the 413 answer, got a transport error: {e}\n{}",
                server.stderr_tail()
            )
        });
    r.expect_error(413, Some("body_too_large"));
    // chunked (no Content-Length) too
    let bytes = serde_json::to_vec(&big).unwrap();
    let r = api
        .try_send(
            api.req(Method::POST, &pool, tok)
                .header("Content-Type", "application/json")
                .body(Body::new(io::Cursor::new(bytes))),
        )
        .unwrap_or_else(|e| panic!("chunked oversize JSON: transport error: {e}"));
    r.expect_error(413, Some("body_too_large"));
    // other JSON endpoints share the bound
    let r = api
        .try_send(
            api.req(Method::POST, &format!("{}/deviceTypes", a.base()), tok)
                .json(&json!({ "name": "x", "description": "y".repeat(2 * MIB) })),
        )
        .unwrap_or_else(|e| panic!("oversize device type JSON: transport error: {e}"));
    r.expect_error(413, Some("body_too_large"));
    // just under 1 MiB is read (and then refused by validation, not by size)
    let under = json!({ "name": "x", "description": "z".repeat(MIB - 200) });
    let r = api.post_json(&format!("{}/deviceTypes", a.base()), tok, &under);
    assert_ne!(
        r.status,
        413,
        "a body under max_json_body must not be 413: {}",
        r.text()
    );
    still_serving(&mut server);
}

// api.md says "over the configured size limit: 413, nothing kept" and, for JSON bodies,
// that the 413 is "answered cleanly (read/discard or close after the response) so the
// client can read it". We read the binary case the same way (the Afero-compatible reading: a
// partner script that streams a too-big file must see the 413, not a broken pipe), so every
// way of sending the bytes — whole with Content-Length, streamed with Content-Length,
// chunked, multipart — must give the client a readable 413. All cases run before the test
// fails, so the report names each one.
#[test]
fn binaries_over_the_size_limit_are_413_and_not_kept() {
    let config = format!("{RELAXED}\n[storage]\nmax_binary_size = {MIB}\n");
    let (mut server, _admin, a) = setup(&config);
    let api = server.api.clone();
    let tok = &a.token;
    let binaries = format!("{}/binaries", a.base());
    let moved = |sha: &str| {
        api.post_json(
            &format!("{binaries}/moveToRepository"),
            tok,
            &json!({ "value": sha }),
        )
    };
    let over = api_common::bytes(MIB + 1, 5);
    let over2 = api_common::bytes(2 * MIB, 6);
    let (mp_type, mp_body) = api_common::multipart_body(&over);
    let octet = "application/octet-stream";
    let cases: Vec<(&str, &str, Body, &[u8])> = vec![
        (
            "whole body, Content-Length",
            octet,
            Body::from(over.clone()),
            &over,
        ),
        (
            "streamed body, Content-Length",
            octet,
            Body::sized(io::Cursor::new(over.clone()), over.len() as u64),
            &over,
        ),
        (
            "chunked body",
            octet,
            Body::new(io::Cursor::new(over2.clone())),
            &over2,
        ),
        (
            "multipart, Content-Length",
            &mp_type,
            Body::from(mp_body.clone()),
            &over,
        ),
        (
            "multipart under octet-stream, chunked",
            octet,
            Body::new(io::Cursor::new(mp_body.clone())),
            &over,
        ),
    ];
    let mut failures = Vec::new();
    for (what, ctype, body, data) in cases {
        let result = api.try_send(
            api.req(Method::POST, &binaries, tok)
                .header("Content-Type", ctype)
                .body(body),
        );
        match result {
            Ok(r) if r.status == 413 => {
                r.expect_error(413, None);
            }
            Ok(r) => failures.push(format!(
                "{what}: expected 413, got {}: {}",
                r.status,
                r.text()
            )),
            Err(e) => failures.push(format!("{what}: the client could not read a 413: {e}")),
        }
        // whatever the client saw, nothing was kept
        moved(&sha256_hex(data)).expect_error(404, None);
        server.assert_alive();
    }

    // exactly the limit is fine; empty is 400
    let exact = api_common::bytes(MIB, 7);
    let (sha, _) = api.publish(&a.id, tok, &exact);
    assert_eq!(sha, sha256_hex(&exact));
    api.post_bytes(&binaries, tok, octet, Vec::new())
        .expect_error(400, None);
    still_serving(&mut server);
    assert!(
        failures.is_empty(),
        "oversize uploads:\n{}",
        failures.join("\n")
    );
}

/// Gives `stop` bytes of `data`, then fails: reqwest aborts the request mid-body and drops
/// the connection, as a client whose network went away would.
struct GiveUpHalfway {
    data: Vec<u8>,
    pos: usize,
    stop: usize,
}

impl Read for GiveUpHalfway {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.stop {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "test client gives up",
            ));
        }
        let n = buf.len().min(self.stop - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn truncated_upload_keeps_nothing() {
    let config = format!("{RELAXED}\n[storage]\nmax_binary_size = {}\n", 4 * MIB);
    let (mut server, _admin, a) = setup(&config);
    let api = server.api.clone();
    let tok = &a.token;
    let binaries = format!("{}/binaries", a.base());
    let data = api_common::bytes(MIB, 9);
    let reader = GiveUpHalfway {
        data: data.clone(),
        pos: 0,
        stop: MIB / 2,
    };
    let result = api.try_send(
        api.req(Method::POST, &binaries, tok)
            .header("Content-Type", "application/octet-stream")
            .body(Body::sized(reader, MIB as u64)),
    );
    if let Ok(r) = &result {
        assert_ne!(
            r.status,
            200,
            "a truncated upload must not succeed: {}",
            r.text()
        );
    }
    for sha in [sha256_hex(&data), sha256_hex(&data[..MIB / 2])] {
        api.post_json(
            &format!("{binaries}/moveToRepository"),
            tok,
            &json!({ "value": sha }),
        )
        .expect_error(404, None);
    }
    still_serving(&mut server);
    // the same bytes, sent whole, are accepted
    let (sha, _) = api.publish(&a.id, tok, &data);
    assert_eq!(sha, sha256_hex(&data));
}

#[test]
fn garbage_paths_unknown_routes_and_methods() {
    let (mut server, _admin, a) = setup(RELAXED);
    let api = server.api.clone();
    let tok = &a.token;
    let base = a.base();
    api.fw_type(&a.id, tok, 101, "MCU");
    let long = "x".repeat(8000);
    let paths = [
        format!("{base}/pool/types/%FF%FE/versionNumbers/1"),
        format!("{base}/pool/types/101/versionNumbers/%FF"),
        format!("{base}/pool/types/101/names/%FF%FE/versions/1/exists"),
        format!("{base}/pool/types/101/names/%C3%28/versions/%E2%82/exists"),
        format!("{base}/pool/types/101/names/%ZZ/versions/%/exists"),
        format!("{base}/pool/types/99999999999999999999/versionNumbers/1"),
        format!("{base}/pool/types/-1/versionNumbers/1"),
        format!("{base}/pool/types/101/versionNumbers/18446744073709551616"),
        format!("{base}/pool/types/101/versionNumbers/-5"),
        format!("{base}/pool/types/abc"),
        format!("{base}/types/%00"),
        format!("{base}/deviceTypes/%00/firmwareImages"),
        format!("{base}/deviceTypes/%FF/firmwareImages/types/101/versionNumbers/1"),
        format!("{base}/devices/%C3%28"),
        format!("{base}/devices/{long}"),
        format!("{base}/binaries/%FF"),
        format!("{base}/binaries/{}", "g".repeat(64)),
        format!("{base}/nope"),
        "/v1/nope".to_string(),
        "/v1".to_string(),
        "/nope/%FF".to_string(),
        "/v1/ota/partners".to_string(),
    ];
    for path in &paths {
        let r = api.get(path, tok);
        assert!(
            r.status == 400 || r.status == 404,
            "GET {path}: expected 400 or 404, got {}: {}",
            r.status,
            r.text()
        );
        r.expect_error_in(&[400, 404]);
    }
    // query garbage on a list
    for q in [
        "page=%FF",
        "size=x",
        "page=-1",
        "sort=%FF",
        "sort=name,sideways",
    ] {
        api.get(&format!("{base}/pool?{q}"), tok)
            .expect_error(400, None);
    }
    // an undecodable partner id is someone else's path (or a bad request), never a 500
    api.get("/v1/ota/partners/%FF/pool", tok)
        .expect_error_in(&[400, 403, 404]);
    // unknown routes without a token still get the JSON body
    let r = api.get("/nope", "");
    r.expect_error_in(&[401, 404]);
    // known routes, wrong method: 405 with the body
    for (method, path) in [
        (Method::DELETE, format!("{base}/types")),
        (Method::PATCH, format!("{base}/pool")),
        (Method::PUT, format!("{base}/pool")),
        (Method::DELETE, "/healthz".to_string()),
        (Method::GET, "/oauth/token".to_string()),
    ] {
        let r = api.send(api.req(method.clone(), &path, tok));
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        r.expect_error(405, None);
    }
    still_serving(&mut server);
}

#[test]
fn plain_http_on_the_https_port_gets_a_readable_answer() {
    let mut server = Server::start();
    let addr = server.api.addr;
    for request in [
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
        // A head larger than what is read before answering, and a body behind it.
        format!(
            "POST /v1/admin/partners HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\nContent-Length: 2\r\n\r\n{{}}",
            "p".repeat(10_000)
        ),
    ] {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(request.as_bytes()).expect("send plain HTTP");
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "answer: {answer:?}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.contains("Connection: close"), "{head}");
        assert_eq!(
            body,
            format!("This port speaks HTTPS only: use {}/\n", server.api.base),
            "the body names the HTTPS URL"
        );
    }
    still_serving(&mut server);
}

#[test]
fn slow_header_senders_are_cut_off() {
    let config = format!("{RELAXED}header_read_timeout_secs = 2\nmax_header_bytes = 8192\n");
    let (mut server, _admin, a) = setup(&config);
    let addr = server.api.addr;
    let deadline = Duration::from_secs(2 + 5);

    // (1) a connection that sends nothing at all
    let mut idle = TcpStream::connect(addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // (2) a connection that trickles a TLS ClientHello record one byte at a time
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // record header: handshake, TLS 1.0 record version, 512 bytes; then a ClientHello header
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.resize(517, 0);
    let started = Instant::now();
    let mut idle_closed = None;
    let mut slow_closed = None;
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    while (idle_closed.is_none() || slow_closed.is_none()) && started.elapsed() < deadline {
        if slow_closed.is_none() {
            let wrote = slow.write(&hello[sent..sent + 1]);
            match wrote {
                Ok(_) => sent = (sent + 1).min(hello.len() - 1),
                Err(_) => slow_closed = Some(started.elapsed()),
            }
            match slow.read(&mut buf) {
                Ok(0) => slow_closed = Some(started.elapsed()),
                Ok(_) => {} // an alert may precede the close
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => slow_closed = Some(started.elapsed()),
            }
        }
        if idle_closed.is_none() {
            match idle.read(&mut buf) {
                Ok(0) => idle_closed = Some(started.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => idle_closed = Some(started.elapsed()),
            }
        }
    }
    let idle_closed = idle_closed.unwrap_or_else(|| {
        panic!(
            "a silent connection was still open after {deadline:?} (header_read_timeout_secs = 2)"
        )
    });
    let slow_closed = slow_closed.unwrap_or_else(|| {
        panic!("a trickling connection ({sent} bytes sent) was still open after {deadline:?} (header_read_timeout_secs = 2)")
    });
    println!("silent connection closed after {idle_closed:?}, trickling one after {slow_closed:?}");
    assert!(
        slow_closed >= Duration::from_millis(1500),
        "the trickling connection was closed after {slow_closed:?}, before the timeout: it was refused, not timed out"
    );

    // oversize headers are refused and the server goes on
    let result = server.api.try_send(
        server
            .api
            .req(Method::GET, &format!("{}/pool", a.base()), &a.token)
            .header("X-Padding", "p".repeat(16 * 1024)),
    );
    match result {
        Ok(r) => assert!(
            r.status == 431 || r.status == 400,
            "a 16 KiB header over max_header_bytes = 8192: expected 431 (or 400), got {}",
            r.status
        ),
        // closing the connection is also a refusal; the server must go on either way
        Err(e) => println!("oversize header: connection closed without an answer: {e}"),
    }
    // too many header lines (max_headers defaults to 64)
    let mut rb = server
        .api
        .req(Method::GET, &format!("{}/pool", a.base()), &a.token);
    for i in 0..200 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    match server.api.try_send(rb) {
        Ok(r) => assert!(
            r.status == 431 || r.status == 400,
            "200 header lines: expected 431 (or 400), got {}",
            r.status
        ),
        Err(e) => println!("200 header lines: connection closed without an answer: {e}"),
    }
    still_serving(&mut server);
}

#[test]
fn login_rate_limit_answers_429_with_retry_after() {
    let (mut server, admin, a) = setup("[api]\nlogin_attempts_per_minute = 5\n");
    let api = server.api.clone();
    let wrong = [
        ("grant_type", "password"),
        ("username", a.user.as_str()),
        ("password", "wrong-password"),
    ];
    let mut first_429 = None;
    for attempt in 1..=10 {
        let r = api.token_request(&a.id, &a.secret, &wrong);
        if r.status == 429 {
            first_429 = Some(attempt);
            let e = r.expect_error(429, None);
            let retry = r
                .header("retry-after")
                .unwrap_or_else(|| panic!("429 without Retry-After: {e}"));
            let secs: u64 = retry
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("Retry-After {retry:?} is not delay-seconds"));
            assert!((1..=60).contains(&secs), "Retry-After {secs}");
            break;
        }
        let e = r.expect_error(400, Some("invalid_grant"));
        assert_eq!(e["error"], json!("invalid_grant"));
    }
    let first = first_429.expect("no 429 within 10 failed logins at login_attempts_per_minute = 5");
    assert!(first >= 3, "429 came after only {first} attempts");
    // while limited, even the right password is refused
    let r = api.token_request(
        &a.id,
        &a.secret,
        &[
            ("grant_type", "password"),
            ("username", a.user.as_str()),
            ("password", a.password.as_str()),
        ],
    );
    r.expect_error(429, None);
    assert!(r.header("retry-after").is_some());
    // another partner's client and user are not affected
    let b = api.tenant(&admin, "Other");
    api.client_token(&b.id, &b.secret);
    // per client id: wrong client secrets are limited too
    let mut limited = false;
    for _ in 0..10 {
        let r = api.token_request(
            &b.id,
            "wrong-secret",
            &[("grant_type", "client_credentials")],
        );
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            r.expect_error(429, None);
            limited = true;
            break;
        }
        r.expect_error(401, Some("invalid_client"));
    }
    assert!(limited, "wrong client secrets were never rate limited");
    // the already-issued token still works
    api.get(&format!("{}/pool", a.base()), &a.token).expect(200);
    still_serving(&mut server);
}

#[test]
fn tokens_expire() {
    // token_ttl_secs = 2 (not 1): the token must be shown to work before it expires, and a
    // 1 s margin is too thin on a loaded 2-core machine.
    let mut server =
        Server::start_with_config("[api]\ntoken_ttl_secs = 2\nlogin_attempts_per_minute = 1000\n");
    let api = server.api.clone();
    let creds = server.creds();
    let resp = api
        .token_request(
            &creds.client_id,
            &creds.client_secret,
            &[
                ("grant_type", "password"),
                ("username", &creds.username),
                ("password", &creds.password),
            ],
        )
        .ok_json(200);
    let issued = Instant::now();
    assert_eq!(
        resp["expires_in"],
        json!(2),
        "expires_in follows token_ttl_secs: {resp}"
    );
    let token = s(&resp, "access_token");
    let r = api.get("/v1/admin/partners", &token);
    if issued.elapsed() < Duration::from_millis(1500) {
        r.expect(200);
    }
    // the documented expiry: wait until well past it, then the token is refused
    let until = Duration::from_millis(3500);
    std::thread::sleep(until.saturating_sub(issued.elapsed()));
    api.get("/v1/admin/partners", &token)
        .expect_error(401, None);
    still_serving(&mut server);
}

#[test]
fn revoked_tokens_are_401() {
    let (mut server, _admin, a) = setup(RELAXED);
    let api = server.api.clone();
    let ci = api.client_token(&a.id, &a.secret);
    let pool = format!("{}/pool", a.base());
    api.get(&pool, &ci).expect(200);
    api.get(&pool, &a.token).expect(200);
    let revoke = |secret: &str, token: &str| {
        api.send(
            api.client
                .post(format!("{}/oauth/revoke", api.base))
                .basic_auth(&a.id, Some(secret))
                .form(&[("token", token)]),
        )
    };
    revoke(&a.secret, &ci).expect(200);
    api.get(&pool, &ci).expect_error(401, None);
    // the other token of the same partner is unaffected
    api.get(&pool, &a.token).expect(200);
    // unknown tokens: 200 (RFC 7009); a wrong client secret: 401 invalid_client
    revoke(&a.secret, "no-such-token-0123456789abcdef").expect(200);
    let e = revoke("wrong-secret", &a.token).expect_error(401, Some("invalid_client"));
    assert_eq!(e["error"], json!("invalid_client"));
    api.get(&pool, &a.token).expect(200);
    revoke(&a.secret, &a.token).expect(200);
    api.get(&pool, &a.token).expect_error(401, None);
    still_serving(&mut server);
}

#[test]
fn oauth_errors_follow_rfc_6749() {
    let (mut server, _admin, a) = setup(RELAXED);
    let api = server.api.clone();
    let check = |r: api_common::Resp, status: u16, code: &str| {
        let e = r.expect_error(status, Some(code));
        assert_eq!(e["error"], json!(code), "error = the RFC 6749 code: {e}");
        assert!(
            e["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "error_description: {e}"
        );
        assert_eq!(e["path"], json!("/oauth/token"));
    };
    let user = a.user.as_str();
    let pw = a.password.as_str();
    check(
        api.token_request(
            &a.id,
            "wrong-secret",
            &[("grant_type", "client_credentials")],
        ),
        401,
        "invalid_client",
    );
    check(
        api.token_request(
            &a.id,
            "wrong-secret",
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", pw),
            ],
        ),
        401,
        "invalid_client",
    );
    check(
        api.token_request(
            "0f0e0d0c-0b0a-4908-8706-050403020100",
            &a.secret,
            &[("grant_type", "client_credentials")],
        ),
        401,
        "invalid_client",
    );
    check(
        api.send(
            api.client
                .post(format!("{}/oauth/token", api.base))
                .form(&[("grant_type", "client_credentials")]),
        ),
        401,
        "invalid_client",
    );
    check(
        api.token_request(
            &a.id,
            &a.secret,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", "wrong-password"),
            ],
        ),
        400,
        "invalid_grant",
    );
    check(
        api.token_request(
            &a.id,
            &a.secret,
            &[
                ("grant_type", "password"),
                ("username", "nobody"),
                ("password", pw),
            ],
        ),
        400,
        "invalid_grant",
    );
    check(
        api.token_request(&a.id, &a.secret, &[("grant_type", "foo_bar")]),
        400,
        "unsupported_grant_type",
    );
    check(
        api.token_request(&a.id, &a.secret, &[("username", user), ("password", pw)]),
        400,
        "invalid_request",
    );
    check(
        api.token_request(
            &a.id,
            &a.secret,
            &[("grant_type", "password"), ("username", user)],
        ),
        400,
        "invalid_request",
    );
    // after all that, the right credentials still work
    api.login(&a.id, &a.secret, user, pw);
    api.client_token(&a.id, &a.secret);
    still_serving(&mut server);
}

#[test]
fn connections_over_max_connections_wait_for_a_free_slot() {
    // Four silent TCP connections take all the slots; a real request has to wait until the
    // header read timeout (2 s) frees them, and is then served.
    let config = "[api]\nmax_connections = 4\nheader_read_timeout_secs = 2\n";
    let mut server = Server::start_with_config(config);
    // a fresh client, so that no pooled connection from the start-up check is reused
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(server.data.join("tls").join("cert.pem")).unwrap(),
            )
            .unwrap(),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // the start-up check's pooled keep-alive connection holds a slot: replacing (dropping)
    // that client closes it
    server.api.client = client;
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.api.addr).expect("connect"))
        .collect();
    let started = Instant::now();
    let r = server.api.get("/healthz", "");
    let waited = started.elapsed();
    r.expect(200);
    println!("with 4 of 4 slots held, /healthz was answered after {waited:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "answered after {waited:?} although max_connections = 4 were all held"
    );
    assert!(waited < Duration::from_secs(2 + 5), "waited {waited:?}");
    drop(held);
    still_serving(&mut server);
}
