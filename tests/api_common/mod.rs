//! Harness shared by the HTTP API tests (`api_*.rs`): starts a real `otad serve` process in
//! its own temporary data directory, waits for `listen.json`, talks to it over real TLS
//! (trusting exactly the server's self-signed certificate) with reqwest's blocking client,
//! and offers small helpers for the contract's recurring steps (logins, partners, uploads,
//! error-body checks). Each test starts its own server, so tests run in parallel.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

#[path = "../common/seeded.rs"]
mod seeded;
#[allow(unused_imports)] // not every test file that includes this module uses it
pub use seeded::bytes;

/// How long a server may take to start listening or to stop.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Polling interval for bounded waits.
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------
// Small pure helpers

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

/// SHA-256 of `data`, raw.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for path segments.
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The multipart/form-data body of one file part named `file`; returns (content type, body).
pub fn multipart_body(data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "otadTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"firmware.bin\"\r\n",
    );
    body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A string field of a JSON object (panics with the object when missing).
pub fn s(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field {field:?} missing or not a string in {v}"))
        .to_string()
}

/// An integer-in-a-string field (`id`, `versionNumber`).
pub fn num(v: &Value, field: &str) -> u64 {
    let text = s(v, field);
    text.parse()
        .unwrap_or_else(|_| panic!("field {field:?} = {text:?} is not an integer string in {v}"))
}

/// An integer field.
pub fn int(v: &Value, field: &str) -> i64 {
    v.get(field)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("field {field:?} missing or not an integer in {v}"))
}

/// The `content` array of a page envelope.
pub fn content(page: &Value) -> Vec<Value> {
    page.get("content")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no content array in {page}"))
        .clone()
}

/// Checks a page envelope's shape and returns its `content`.
pub fn check_page(page: &Value) -> Vec<Value> {
    for key in [
        "number",
        "size",
        "totalPages",
        "numberOfElements",
        "totalElements",
    ] {
        assert!(
            page.get(key).and_then(Value::as_u64).is_some(),
            "page envelope lacks integer {key:?}: {page}"
        );
    }
    assert!(
        page.get("sort").and_then(Value::as_str).is_some(),
        "page envelope lacks the sort string: {page}"
    );
    let items = content(page);
    assert_eq!(
        items.len() as i64,
        int(page, "numberOfElements"),
        "numberOfElements != content length: {page}"
    );
    items
}

/// Checks a UUID string shape (8-4-4-4-12 hex).
pub fn assert_uuid(id: &str) {
    let parts: Vec<&str> = id.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert!(
        lens == [8, 4, 4, 4, 12]
            && parts
                .iter()
                .all(|p| p.bytes().all(|c| c.is_ascii_hexdigit())),
        "{id:?} is not a UUID string"
    );
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        text = String::from_utf8_lossy(&buf).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "----- {} (last {} lines) -----\n{}\n-----",
        path.display(),
        all.len() - start,
        all[start..].join("\n")
    )
}

// ---------------------------------------------------------------------------------------
// Responses

/// A fully read HTTP response, with the request it answers (for messages and `path` checks).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub method: String,
    /// The raw request path as sent (no query string).
    pub path: String,
    stderr: PathBuf,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    fn context(&self) -> String {
        let mut body = self.text();
        if body.len() > 2000 {
            let mut cut = 2000;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push('…');
        }
        format!(
            "{} {} → {}\nbody: {}\n{}",
            self.method,
            self.path,
            self.status,
            body,
            tail(&self.stderr, 30)
        )
    }

    /// The body as JSON (panics with the request and body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.context()))
    }

    /// Asserts the status; returns self for chaining.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {}", self.context());
        self
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn ok_json(&self, status: u16) -> Value {
        self.expect(status);
        let v = self.json();
        assert_no_nulls(&v, &self.context());
        v
    }

    /// Asserts the status and the contract's error body; `trace` is checked when given.
    /// Returns the error body.
    #[track_caller]
    pub fn expect_error(&self, status: u16, trace: Option<&str>) -> Value {
        self.expect(status);
        let v = self.json();
        assert_no_nulls(&v, &self.context());
        assert_error_body(&v, status, &self.path);
        if let Some(t) = trace {
            assert_eq!(
                v["trace"].as_str(),
                Some(t),
                "wrong trace: {}",
                self.context()
            );
        }
        v
    }

    /// Asserts an error status that is one of `statuses`, with the error body.
    #[track_caller]
    pub fn expect_error_in(&self, statuses: &[u16]) -> Value {
        assert!(
            statuses.contains(&self.status),
            "expected one of {statuses:?}: {}",
            self.context()
        );
        let v = self.json();
        assert_error_body(&v, self.status, &self.path);
        v
    }
}

/// Optional fields are omitted, never `null` (api.md, Conventions).
#[track_caller]
pub fn assert_no_nulls(v: &Value, context: &str) {
    match v {
        Value::Null => panic!("a JSON null in an answer (omit instead): {context}"),
        Value::Array(items) => items.iter().for_each(|x| assert_no_nulls(x, context)),
        Value::Object(map) => map.values().for_each(|x| assert_no_nulls(x, context)),
        _ => {}
    }
}

/// The shape of a pool or image record: `id` and `versionNumber` are strings holding
/// integers, `type` an integer, timestamps integers, `tags` always present, no
/// `versionAttributeId`.
#[track_caller]
pub fn check_record(v: &Value) {
    num(v, "id");
    num(v, "versionNumber");
    let t = int(v, "type");
    assert!((1..=200).contains(&t), "type {t} out of range: {v}");
    for field in ["name", "version", "url", "partnerId"] {
        s(v, field);
    }
    assert!(
        v["tags"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "tags must be an array of strings: {v}"
    );
    assert!(int(v, "createdTimestamp") > 1_600_000_000_000, "{v}");
    assert!(
        int(v, "updatedTimestamp") >= int(v, "createdTimestamp"),
        "{v}"
    );
    assert!(
        v.get("versionAttributeId").is_none(),
        "pool and image records carry no versionAttributeId: {v}"
    );
    if let Some(d) = v.get("description") {
        assert!(
            d.as_str().is_some_and(|d| !d.is_empty()),
            "description, when present, is a non-empty string: {v}"
        );
    }
}

/// The error body of api.md: `{"timestamp","status","error","message","path","trace"}`.
#[track_caller]
pub fn assert_error_body(v: &Value, status: u16, path: &str) {
    assert!(
        v.get("timestamp")
            .and_then(Value::as_u64)
            .is_some_and(|t| t > 1_600_000_000_000),
        "error body: timestamp must be integer ms since the epoch: {v}"
    );
    assert_eq!(
        v.get("status").and_then(Value::as_u64),
        Some(u64::from(status)),
        "error body: status: {v}"
    );
    let error = v
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error body: no error string: {v}"));
    if path.starts_with("/oauth/") {
        assert!(!error.is_empty(), "error body: empty error: {v}");
    } else {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        assert_eq!(
            error, reason,
            "error body: error must be the reason phrase: {v}"
        );
    }
    assert!(
        v.get("message").and_then(Value::as_str).is_some(),
        "error body: no message: {v}"
    );
    assert_eq!(
        v.get("path").and_then(Value::as_str),
        Some(path),
        "error body: path must be the raw request path: {v}"
    );
    let trace = v
        .get("trace")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error body: no trace: {v}"));
    assert!(
        !trace.is_empty()
            && trace.len() <= 64
            && trace
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
        "error body: trace must be 1-64 of [a-z0-9_]: {v}"
    );
    let text = v.to_string();
    assert!(
        !text.contains("panicked") && !text.contains("src/") && !text.contains(".rs:"),
        "error body looks like a stack trace: {v}"
    );
}

// ---------------------------------------------------------------------------------------
// HTTP client bound to one server instance

/// A client for one running server: base URL plus a TLS client trusting its certificate.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: Client,
    stderr: PathBuf,
}

impl Api {
    /// A request to `path` (which may carry a query string) with an optional bearer token
    /// (`""` = no Authorization header).
    pub fn req(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if token.is_empty() {
            rb
        } else {
            rb.bearer_auth(token)
        }
    }

    /// A request to an absolute URL (e.g. one moveToRepository returned).
    pub fn req_url(&self, method: Method, url: &str, token: &str) -> RequestBuilder {
        let rb = self.client.request(method, url);
        if token.is_empty() {
            rb
        } else {
            rb.bearer_auth(token)
        }
    }

    /// Sends and reads the whole answer; a transport error fails with the server's log.
    #[track_caller]
    pub fn send(&self, rb: RequestBuilder) -> Resp {
        match self.try_send(rb) {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e}\n{}", tail(&self.stderr, 40)),
        }
    }

    /// Sends and reads the whole answer; transport errors are returned.
    pub fn try_send(&self, rb: RequestBuilder) -> Result<Resp, String> {
        let req = rb.build().map_err(|e| format!("build: {e:?}"))?;
        let method = req.method().to_string();
        let path = req.url().path().to_string();
        let resp = self
            .client
            .execute(req)
            .map_err(|e| format!("{method} {path}: {e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .map_err(|e| format!("{method} {path}: reading body: {e:?}"))?
            .to_vec();
        Ok(Resp {
            status,
            headers,
            body,
            method,
            path,
            stderr: self.stderr.clone(),
        })
    }

    #[track_caller]
    pub fn get(&self, path: &str, token: &str) -> Resp {
        self.send(self.req(Method::GET, path, token))
    }

    #[track_caller]
    pub fn delete(&self, path: &str, token: &str) -> Resp {
        self.send(self.req(Method::DELETE, path, token))
    }

    #[track_caller]
    pub fn post_json(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(self.req(Method::POST, path, token).json(body))
    }

    #[track_caller]
    pub fn put_json(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(self.req(Method::PUT, path, token).json(body))
    }

    /// POST of raw bytes with a given Content-Type.
    #[track_caller]
    pub fn post_bytes(&self, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Resp {
        self.send(
            self.req(Method::POST, path, token)
                .header("Content-Type", content_type)
                .body(body),
        )
    }

    /// `POST /oauth/token` with client Basic auth and a form body.
    #[track_caller]
    pub fn token_request(&self, client_id: &str, secret: &str, form: &[(&str, &str)]) -> Resp {
        self.send(
            self.client
                .post(format!("{}/oauth/token", self.base))
                .basic_auth(client_id, Some(secret))
                .form(form),
        )
    }

    /// Password grant; returns the access token (asserts 200 and the token shape).
    #[track_caller]
    pub fn login(&self, client_id: &str, secret: &str, user: &str, password: &str) -> String {
        let v = self
            .token_request(
                client_id,
                secret,
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                ],
            )
            .ok_json(200);
        check_token_response(&v)
    }

    /// Client-credentials grant (the partner's CI identity); returns the access token.
    #[track_caller]
    pub fn client_token(&self, client_id: &str, secret: &str) -> String {
        let v = self
            .token_request(client_id, secret, &[("grant_type", "client_credentials")])
            .ok_json(200);
        check_token_response(&v)
    }

    // --- domain helpers -------------------------------------------------------------

    /// Creates a partner as admin: returns (partnerId, clientSecret, whole answer).
    #[track_caller]
    pub fn create_partner(
        &self,
        admin: &str,
        name: &str,
        email: Option<&str>,
    ) -> (String, String, Value) {
        let mut body = json!({ "name": name });
        if let Some(e) = email {
            body["email"] = json!(e);
        }
        let v = self
            .post_json("/v1/admin/partners", admin, &body)
            .ok_json(201);
        let id = s(&v, "partnerId");
        assert_uuid(&id);
        let secret = s(&v, "clientSecret");
        assert!(!secret.is_empty(), "empty client secret: {v}");
        (id, secret, v)
    }

    /// Creates a user of a partner as admin (201).
    #[track_caller]
    pub fn create_user(
        &self,
        admin: &str,
        partner: &str,
        username: &str,
        password: &str,
        role: &str,
    ) -> Value {
        self.post_json(
            &format!("/v1/admin/partners/{partner}/users"),
            admin,
            &json!({ "username": username, "password": password, "role": role }),
        )
        .ok_json(201)
    }

    /// A new partner with one partner user, logged in with the password grant.
    #[track_caller]
    pub fn tenant(&self, admin: &str, name: &str) -> Tenant {
        let email = format!("ops@{}.test", name.to_lowercase());
        let (id, secret, _) = self.create_partner(admin, name, Some(&email));
        let user = format!("{}-user", name.to_lowercase());
        let password = format!("{name}-password-123");
        self.create_user(admin, &id, &user, &password, "partner");
        let token = self.login(&id, &secret, &user, &password);
        Tenant {
            id,
            name: name.to_string(),
            email,
            secret,
            user,
            password,
            token,
        }
    }

    /// Creates a device type; returns its id.
    #[track_caller]
    pub fn device_type(&self, partner: &str, token: &str, name: &str) -> String {
        let v = self
            .post_json(
                &format!("/v1/ota/partners/{partner}/deviceTypes"),
                token,
                &json!({ "name": name, "description": format!("{name} test device type") }),
            )
            .ok_json(201);
        s(&v, "id")
    }

    /// Creates an MCU (or, for an admin, platform) firmware type (201).
    #[track_caller]
    pub fn fw_type(&self, partner: &str, token: &str, number: i64, name: &str) -> Value {
        self.post_json(
            &format!("/v1/ota/partners/{partner}/types"),
            token,
            &json!({ "name": name, "type": number, "description": "test type" }),
        )
        .ok_json(201)
    }

    /// Stages bytes as octet-stream; returns the sha256 hex the server answered (checked).
    #[track_caller]
    pub fn upload(&self, partner: &str, token: &str, data: &[u8]) -> String {
        let v = self
            .post_bytes(
                &format!("/v1/ota/partners/{partner}/binaries"),
                token,
                "application/octet-stream",
                data.to_vec(),
            )
            .ok_json(200);
        let sha = s(&v, "value");
        assert_eq!(sha, sha256_hex(data), "upload answered a different sha256");
        sha
    }

    /// moveToRepository; returns the URL (asserts 200).
    #[track_caller]
    pub fn move_to_repo(&self, partner: &str, token: &str, sha: &str) -> String {
        let v = self
            .post_json(
                &format!("/v1/ota/partners/{partner}/binaries/moveToRepository"),
                token,
                &json!({ "value": sha }),
            )
            .ok_json(200);
        s(&v, "value")
    }

    /// Upload + moveToRepository; returns (sha256 hex, url).
    #[track_caller]
    pub fn publish(&self, partner: &str, token: &str, data: &[u8]) -> (String, String) {
        let sha = self.upload(partner, token, data);
        let url = self.move_to_repo(partner, token, &sha);
        assert_eq!(
            url,
            format!("{}/v1/ota/partners/{partner}/binaries/{sha}", self.base),
            "moveToRepository URL"
        );
        (sha, url)
    }

    /// Creates a pool record (asserts 201); returns the record.
    #[track_caller]
    pub fn pool_create(&self, partner: &str, token: &str, body: &Value) -> Value {
        let v = self
            .post_json(&format!("/v1/ota/partners/{partner}/pool"), token, body)
            .ok_json(201);
        check_record(&v);
        v
    }

    /// Registers a device (asserts 201); returns its token.
    #[track_caller]
    pub fn register_device(
        &self,
        partner: &str,
        token: &str,
        device_id: &str,
        device_type: &str,
    ) -> String {
        let v = self
            .post_json(
                &format!("/v1/ota/partners/{partner}/devices"),
                token,
                &json!({ "deviceId": device_id, "deviceTypeId": device_type }),
            )
            .ok_json(201);
        assert_eq!(s(&v, "deviceId"), device_id, "{v}");
        assert_eq!(s(&v, "deviceTypeId"), device_type, "{v}");
        let tok = s(&v, "token");
        assert!(!tok.is_empty(), "empty device token: {v}");
        tok
    }

    /// Associates a pool record with a device type (asserts 201); returns the image record.
    #[track_caller]
    pub fn associate(
        &self,
        partner: &str,
        token: &str,
        device_type: &str,
        record: &Value,
    ) -> Value {
        let v = self
            .post_json(
                &format!("/v1/ota/partners/{partner}/deviceTypes/{device_type}/firmwareImages"),
                token,
                record,
            )
            .ok_json(201);
        check_record(&v);
        assert!(
            v["deviceTypeId"].is_string(),
            "image record without deviceTypeId: {v}"
        );
        v
    }
}

/// Checks the token response of api.md and returns the access token.
#[track_caller]
pub fn check_token_response(v: &Value) -> String {
    let token = s(v, "access_token");
    assert!(
        token.len() >= 22,
        "access token too short for 128 bits: {v}"
    );
    assert_eq!(
        v["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("bearer"),
        "{v}"
    );
    assert!(v["expires_in"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(v["scope"].as_str(), Some("partner account"), "{v}");
    token
}

/// A partner organisation with one partner user and its token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub email: String,
    pub secret: String,
    pub user: String,
    pub password: String,
    pub token: String,
}

impl Tenant {
    /// `/v1/ota/partners/{id}`
    pub fn base(&self) -> String {
        format!("/v1/ota/partners/{}", self.id)
    }
}

/// First-start credentials (`initial-credentials.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
}

// ---------------------------------------------------------------------------------------
// The server process

/// One `otad serve` process on a temporary data directory; killed on drop.
pub struct Server {
    root: tempfile::TempDir,
    pub data: PathBuf,
    config: Option<PathBuf>,
    child: Option<Child>,
    starts: usize,
    stderr: PathBuf,
    pub api: Api,
}

impl Server {
    /// Starts a server with the default configuration.
    pub fn start() -> Server {
        Self::start_with(None)
    }

    /// Starts a server with a TOML configuration file of the given text.
    pub fn start_with_config(toml: &str) -> Server {
        Self::start_with(Some(toml))
    }

    /// Starts a server whose data directory begins with `backup` as its database (what
    /// restoring a backup amounts to).
    pub fn start_from_backup(backup: &Path, toml: Option<&str>) -> Server {
        Self::start_prepared(toml, |data| {
            fs::copy(backup, data.join("otad.redb")).expect("copy the backup into place");
        })
    }

    /// Starts a server whose temporary directory (data, logs) is made inside `parent`, e.g.
    /// on a small filesystem.
    pub fn start_in(parent: &Path, toml: Option<&str>) -> Server {
        let root = tempfile::Builder::new()
            .prefix("otad-api-test")
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("temp dir in {}: {e}", parent.display()));
        Self::start_rooted(root, toml, |_| {})
    }

    fn start_with(toml: Option<&str>) -> Server {
        Self::start_prepared(toml, |_| {})
    }

    /// Starts a server after `prepare` has had the (empty) data directory, e.g. for a failed
    /// start of its own first.
    pub fn start_prepared(toml: Option<&str>, prepare: impl FnOnce(&Path)) -> Server {
        let root = tempfile::Builder::new()
            .prefix("otad-api-test")
            .tempdir()
            .expect("temp dir");
        Self::start_rooted(root, toml, prepare)
    }

    fn start_rooted(
        root: tempfile::TempDir,
        toml: Option<&str>,
        prepare: impl FnOnce(&Path),
    ) -> Server {
        let data = root.path().join("data");
        fs::create_dir_all(&data).expect("data dir");
        prepare(&data);
        let config = toml.map(|text| {
            let p = root.path().join("otad.toml");
            fs::write(&p, text).expect("write config");
            p
        });
        let stderr = root.path().join("stderr-0.log");
        let placeholder = Api {
            base: String::new(),
            addr: "127.0.0.1:1".parse().expect("addr"),
            client: Client::new(),
            stderr: stderr.clone(),
        };
        let mut server = Server {
            root,
            data,
            config,
            child: None,
            starts: 0,
            stderr,
            api: placeholder,
        };
        server.spawn();
        server
    }

    /// Starts the process (again, after `stop`) and waits (bounded) until it listens and
    /// answers `/healthz`.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let listen = self.data.join("listen.json");
        let _ = fs::remove_file(&listen);
        let n = self.starts;
        self.starts += 1;
        let out =
            fs::File::create(self.root.path().join(format!("stdout-{n}.log"))).expect("stdout log");
        self.stderr = self.root.path().join(format!("stderr-{n}.log"));
        let err = fs::File::create(&self.stderr).expect("stderr log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_otad"));
        cmd.arg("serve").arg("--data-dir").arg(&self.data).args([
            "--api-listen",
            "127.0.0.1:0",
            "--device-listen",
            "127.0.0.1:0",
        ]);
        if let Some(cfg) = &self.config {
            cmd.arg("--config").arg(cfg);
        }
        cmd.env_remove("OTAD_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = cmd.spawn().expect("spawn otad serve");
        let started = Instant::now();
        let addr: std::net::SocketAddr = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "otad serve exited before listening ({status})\n{}\n{}",
                    tail(&self.stderr, 60),
                    tail(&self.root.path().join(format!("stdout-{n}.log")), 30)
                );
            }
            if let Ok(text) = fs::read_to_string(&listen)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && let Some(a) = v.get("api").and_then(Value::as_str)
            {
                break a
                    .parse()
                    .unwrap_or_else(|e| panic!("listen.json api {a:?} is not host:port: {e}"));
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "otad serve did not write {} within {START_TIMEOUT:?}\n{}",
                    listen.display(),
                    tail(&self.stderr, 60)
                );
            }
            std::thread::sleep(POLL);
        };
        self.child = Some(child);
        assert!(
            addr.ip().is_loopback(),
            "listen.json names a non-loopback address {addr}"
        );
        let cert_pem = fs::read(self.data.join("tls").join("cert.pem")).unwrap_or_else(|e| {
            panic!(
                "no tls/cert.pem in the data dir: {e}\n{}",
                tail(&self.stderr, 40)
            )
        });
        let cert = reqwest::Certificate::from_pem(&cert_pem).expect("cert.pem parses");
        let client = Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");
        self.api = Api {
            base: format!("https://127.0.0.1:{}", addr.port()),
            addr,
            client,
            stderr: self.stderr.clone(),
        };
        let health = self.api.get("/healthz", "").ok_json(200);
        assert_eq!(health, json!({ "status": "ok" }), "/healthz body");
    }

    /// The temporary directory holding data, logs and config.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr, 60)
    }

    /// The whole log (stderr) of the current or last run.
    pub fn stderr_log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Reads and checks `initial-credentials.json` (mode 0600).
    pub fn creds(&self) -> Creds {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data.join("initial-credentials.json");
        let meta = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.stderr_tail()));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "initial-credentials.json must be mode 0600"
        );
        let v: Value =
            serde_json::from_slice(&fs::read(&path).expect("read credentials")).expect("JSON");
        let creds = Creds {
            username: s(&v, "username"),
            password: s(&v, "password"),
            client_id: s(&v, "clientId"),
            client_secret: s(&v, "clientSecret"),
        };
        assert_eq!(creds.username, "admin", "first admin username");
        creds
    }

    /// Logs in as the first-start admin; returns the token.
    pub fn admin_token(&self) -> String {
        let c = self.creds();
        self.api
            .login(&c.client_id, &c.client_secret, &c.username, &c.password)
    }

    /// SIGTERM and a bounded wait; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server not running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "otad serve did not exit within {START_TIMEOUT:?} of SIGTERM\n{}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Graceful stop (asserting exit code 0) and a new start on the same data directory.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert_eq!(
            status.code(),
            Some(0),
            "otad serve must exit 0 on SIGTERM ({status})\n{}",
            self.stderr_tail()
        );
        self.spawn();
    }

    /// SIGKILL: no shutdown, no flush; waits until the process is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server not running");
        child.kill().expect("SIGKILL otad serve");
        child.wait().expect("wait for the killed server");
    }

    /// Starts the server again on the same data directory (after `stop` or `kill9`).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// The server's process id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    /// `host:port` of the device (OCP/1) listener, from listen.json.
    pub fn device_addr(&self) -> String {
        let path = self.data.join("listen.json");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).expect("listen.json is JSON");
        s(&v, "device")
    }

    /// Asserts the process is still running (it has not crashed).
    pub fn assert_alive(&mut self) {
        let child = self.child.as_mut().expect("server not running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("otad serve died ({status})\n{}", tail(&self.stderr, 60));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", tail(&self.stderr, 80));
        }
    }
}

// ---------------------------------------------------------------------------------------
// A device over OCP/1

/// A device speaking OCP/1 through the reference client, for states the `otad device`
/// commands do not produce on their own (progress part-way, a failure).
pub struct RawDevice {
    rt: tokio::runtime::Runtime,
    client: otad::client::device::Client,
}

impl RawDevice {
    pub fn connect(server: &Server, device_id: &str, token: &str) -> RawDevice {
        let listen: Value = serde_json::from_str(
            &std::fs::read_to_string(server.data.join("listen.json")).expect("listen.json"),
        )
        .expect("listen.json is JSON");
        let cfg = otad::client::device::ClientConfig {
            addr: s(&listen, "device"),
            server_name: "localhost".into(),
            ca_file: server.data.join("tls").join("cert.pem"),
            device_id: device_id.into(),
            token: token.into(),
            max_frame: 256 * 1024,
            max_inflight: 16,
            chunk_log: 4,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt
            .block_on(otad::client::device::Client::connect(&cfg))
            .unwrap_or_else(|e| panic!("device {device_id} cannot connect: {e}"));
        RawDevice { rt, client }
    }

    pub fn check(&mut self, installed: &[(u16, u64)]) -> Vec<otad::ocp::wire::OfferItem> {
        self.rt
            .block_on(self.client.check(installed))
            .unwrap_or_else(|e| panic!("CHECK failed: {e}"))
    }

    pub fn report(&mut self, fw_type: u16, vn: u64, state: u8, result: u8, bytes_done: u64) {
        self.rt
            .block_on(self.client.report(fw_type, vn, state, result, bytes_done))
            .unwrap_or_else(|e| panic!("REPORT {state}/{result} failed: {e}"));
    }
}
