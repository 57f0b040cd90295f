//! Which server the admin commands talk to, as whom, and for which partner.
//!
//! Lives here: `otad login` / `otad logout`, the saved session (a 0600 JSON file under
//! `$XDG_CONFIG_HOME/otad/` or `~/.config/otad/` holding the URL, the CA certificate, the
//! token and its partner), the environment overrides (`OTAD_URL`, `OTAD_TOKEN`, `OTAD_CA`,
//! `OTAD_PARTNER`), local-server discovery (the data directory's `listen.json`,
//! `tls/cert.pem` and `initial-credentials.json`, for an admin on the appliance host who has
//! not logged in), and [`Ctx`], the connected client every command gets.
//! Not here: the HTTP client itself (`client/http.rs`) or any command (one file per noun).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{CliError, Kind, Result, api_error};
use super::output::Output;
use crate::client::http::{Client, ServerUrl, seg};
use crate::datadir::{
    Credentials, DataDir, LISTEN_FILE, create_private_dir, local_address, write_private_file,
};
use crate::ids::now_ms;
use crate::model::PUBLIC_CLIENT_ID;

/// File name of the saved session inside the config directory.
pub const SESSION_FILE: &str = "session.json";

/// Flags every admin command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Partner to act on (appliance admins; default: the partner you logged in as).
    #[arg(long, global = true, value_name = "ID", env = "OTAD_PARTNER")]
    pub partner: Option<String>,
}

/// What `otad login` saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub url: String,
    /// PEM of the CA to trust (absent: the system's CA bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    pub token: String,
    /// The OAuth client id, which is the partner id.
    pub partner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub expires_timestamp: u64,
    /// Signed in as the public client (a user without the client secret).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_client: bool,
    /// The partner commands act on unless `--partner`/`OTAD_PARTNER` say otherwise (an
    /// admin's `otad login --partner ID`); absent: the logged-in partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_partner: Option<String>,
}

/// The config directory: `$XDG_CONFIG_HOME/otad`, else `$HOME/.config/otad`.
pub fn config_dir() -> Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(x).join("otad"));
    }
    var("HOME")
        .map(|h| PathBuf::from(h).join(".config").join("otad"))
        .ok_or_else(|| {
            CliError::fail("neither XDG_CONFIG_HOME nor HOME is set: cannot place the session file")
        })
}

fn session_path() -> Result<PathBuf> {
    Ok(config_dir()?.join(SESSION_FILE))
}

fn load_saved() -> Result<Option<Saved>> {
    let path = session_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::fail(format!(
                "{} is damaged ({e}); run `otad logout` and log in again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::fail(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn save(saved: &Saved) -> Result<PathBuf> {
    let dir = config_dir()?;
    create_private_dir(&dir)
        .map_err(|e| CliError::fail(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(SESSION_FILE);
    let text = serde_json::to_vec_pretty(saved).unwrap_or_default();
    write_private_file(&path, &text)
        .map_err(|e| CliError::fail(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn read_ca(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| CliError::usage(format!("cannot read the CA file {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------------------
// Local server discovery

/// A server found in a data directory.
struct Local {
    url: ServerUrl,
    ca: Option<Vec<u8>>,
    /// The first-start credentials of the appliance's first admin.
    admin: Option<Credentials>,
}

/// Reads `listen.json` (and the certificate and first-start credentials beside it) from
/// `data_dir`; `None` when no server ever listened there.
fn discover(data_dir: &Path) -> Result<Option<Local>> {
    let dir = DataDir::new(data_dir);
    if !dir.listen_file().exists() {
        return Ok(None);
    }
    let listen = dir.read_listen().ok().flatten().ok_or_else(|| {
        CliError::fail(format!(
            "{} does not name the API address; restart otad serve",
            dir.listen_file().display()
        ))
    })?;
    let addr = local_address(listen.api);
    let url = ServerUrl {
        host: addr.ip().to_string(),
        port: addr.port(),
        prefix: String::new(),
    };
    let ca = std::fs::read(dir.tls_cert()).ok();
    let admin = dir.read_credentials().ok().flatten();
    Ok(Some(Local { url, ca, admin }))
}

// ---------------------------------------------------------------------------------------
// OAuth

/// `POST /oauth/token` with client Basic auth; returns (token, lifetime in seconds).
fn grant(
    client: &mut Client,
    client_id: &str,
    secret: &str,
    user: Option<(&str, &str)>,
) -> Result<(String, u64)> {
    let form = match user {
        Some((u, p)) => format!(
            "grant_type=password&username={}&password={}",
            seg(u),
            seg(p)
        ),
        None => "grant_type=client_credentials".to_string(),
    };
    let answer = oauth_call(client, "/oauth/token", Some((client_id, secret)), form)?;
    token_of(&answer)
}

/// The password grant as the public client: for a user who has no client secret (a partner's
/// staff), as the OTA Manager signs in. Returns (token, lifetime, partner id).
fn public_grant(
    client: &mut Client,
    username: &str,
    password: &str,
) -> Result<(String, u64, String)> {
    let form = format!(
        "grant_type=password&username={}&password={}&client_id={}",
        seg(username),
        seg(password),
        seg(PUBLIC_CLIENT_ID)
    );
    let answer = oauth_call(client, "/oauth/token", None, form)?;
    let (token, ttl) = token_of(&answer)?;
    client.set_token(Some(token.clone()));
    let me = client.get("/v1/me")?;
    client.set_token(None);
    let partner = me
        .get("partnerId")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::fail("the server's /v1/me answer has no partnerId"))?;
    Ok((token, ttl, partner.to_string()))
}

/// Revokes a public-client token (which needs no secret, as the OTA Manager's sign-out).
fn revoke_public(client: &mut Client, token: &str) -> Result<Bytes> {
    let form = format!("token={}&client_id={}", seg(token), seg(PUBLIC_CLIENT_ID));
    oauth_call(client, "/oauth/revoke", None, form)
}

fn token_of(answer: &[u8]) -> Result<(String, u64)> {
    let v: Value = serde_json::from_slice(answer)
        .map_err(|e| CliError::fail(format!("the token answer is not JSON: {e}")))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::fail("the token answer has no access_token"))?;
    let ttl = v.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
    Ok((token.to_string(), ttl))
}

/// An OAuth call with client Basic auth, or none for the public client.
fn oauth_call(
    client: &mut Client,
    path: &str,
    credentials: Option<(&str, &str)>,
    form: String,
) -> Result<Bytes> {
    const FORM: &str = "application/x-www-form-urlencoded";
    client.set_token(None);
    let answer = match credentials {
        Some((client_id, secret)) => {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
            let auth = format!("Basic {basic}");
            client.send_with_auth(Method::POST, path, &auth, FORM, Bytes::from(form))?
        }
        None => client.send(Method::POST, path, Some(FORM), Bytes::from(form))?,
    };
    if answer.status.is_success() {
        return Ok(answer.body);
    }
    // Refused credentials are a login problem (exit 5), whatever status OAuth gives them.
    let mut e = api_error(answer.status, &answer.body);
    if matches!(answer.status.as_u16(), 400 | 401) {
        e.kind = Kind::Auth;
        e.message = format!("login refused: {}", e.message);
    }
    Err(e)
}

// ---------------------------------------------------------------------------------------
// login / logout

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  otad login                      (on the appliance: logs in as the first admin)
  otad login --server https://otad.example:8443 --ca ca.pem --client-id $PARTNER \\
             --username alice --password-stdin < pw.txt
  OTAD_CLIENT_SECRET=... otad login --server https://otad.example:8443 --client-id $PARTNER")]
pub struct LoginArgs {
    /// Server URL, https://HOST[:PORT] (default: the local server of --data-dir).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// CA certificate (PEM) to trust; saved with the session (default: the local server's
    /// certificate, else the system's CA bundle).
    #[arg(long, value_name = "FILE", env = "OTAD_CA")]
    ca: Option<PathBuf>,
    /// OAuth client id = the partner id (default on the appliance: the platform partner).
    #[arg(long, value_name = "ID", env = "OTAD_CLIENT_ID")]
    client_id: Option<String>,
    /// OAuth client secret.
    #[arg(
        long,
        value_name = "SECRET",
        env = "OTAD_CLIENT_SECRET",
        hide_env_values = true
    )]
    client_secret: Option<String>,
    /// Log in as this user (password grant); without it, as the partner's machine client.
    #[arg(long, value_name = "NAME")]
    username: Option<String>,
    /// Read the password from the first line of standard input (else OTAD_PASSWORD, else a
    /// prompt on a terminal).
    #[arg(long)]
    password_stdin: bool,
    /// Partner the later commands act on (appliance admins), kept with the session;
    /// `--partner` or OTAD_PARTNER on a command still win.
    #[arg(long, value_name = "ID")]
    partner: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The client secret, to also revoke the token on the server (else it is only
    /// forgotten here and expires on its own).
    #[arg(
        long,
        value_name = "SECRET",
        env = "OTAD_CLIENT_SECRET",
        hide_env_values = true
    )]
    client_secret: Option<String>,
}

fn read_password(username: &str, from_stdin: bool) -> Result<String> {
    if !from_stdin && let Some(p) = env("OTAD_PASSWORD") {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if !from_stdin && !tty {
        return Err(CliError::usage(format!(
            "no password for {username}: pass --password-stdin or set OTAD_PASSWORD"
        )));
    }
    if tty {
        eprint!("password for {username}: ");
        // Hide the typed password; stty acts on the terminal our stdin is.
        let _ = std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty")
            .arg("echo")
            .stdin(std::process::Stdio::inherit())
            .status();
        eprintln!();
    }
    read.map_err(|e| CliError::fail(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn login(args: &LoginArgs, data_dir: &Path) -> Result<()> {
    let (url, local) = match &args.server {
        Some(s) => (ServerUrl::parse(s)?, None),
        None => {
            let l = discover(data_dir)?.ok_or_else(|| {
                CliError::usage(format!(
                    "no --server given and no local otad server in {} (no {LISTEN_FILE}); pass --server URL or --data-dir DIR",
                    data_dir.display()
                ))
            })?;
            (l.url.clone(), Some(l))
        }
    };
    let ca = match &args.ca {
        Some(p) => Some(read_ca(p)?),
        None => local.as_ref().and_then(|l| l.ca.clone()),
    };
    let first = local.as_ref().and_then(|l| l.admin.clone());
    // A named user without a client secret (a partner's staff, or an admin elsewhere than
    // as the first admin on the appliance) signs in through the public client.
    let first_admin =
        |u: &String| args.client_id.is_none() && first.as_ref().is_some_and(|f| &f.username == u);
    if let Some(username) = args.username.as_ref().filter(|u| !first_admin(u))
        && args.client_secret.is_none()
    {
        let password = read_password(username, args.password_stdin)?;
        let mut client = Client::new(url.clone(), ca.as_deref(), None)?;
        let (token, ttl, partner_id) = public_grant(&mut client, username, &password)?;
        if let Some(id) = &args.client_id
            && id != &partner_id
        {
            // The token is not kept: withdraw it rather than leave it valid for hours.
            let _ = revoke_public(&mut client, &token);
            return Err(CliError::usage(format!(
                "{username} belongs to partner {partner_id}, not to --client-id {id}"
            )));
        }
        let saved = Saved {
            url: url.display(),
            ca: ca.map(|b| String::from_utf8_lossy(&b).into_owned()),
            token,
            partner_id,
            username: Some(username.clone()),
            expires_timestamp: now_ms().saturating_add(ttl.saturating_mul(1000)),
            public_client: true,
            acting_partner: args.partner.clone(),
        };
        return report_login(&saved, args.json);
    }
    let client_id = args
        .client_id
        .clone()
        .or_else(|| first.as_ref().map(|f| f.client_id.clone()))
        .ok_or_else(|| CliError::usage("pass --client-id ID (your partner id)"))?;
    let same_client = first.as_ref().filter(|f| f.client_id == client_id);
    let secret = args
        .client_secret
        .clone()
        .or_else(|| same_client.map(|f| f.client_secret.clone()))
        .ok_or_else(|| CliError::usage("pass --client-secret or set OTAD_CLIENT_SECRET"))?;
    // On the appliance with no user named, log in as the first admin (a person, audited by
    // name) rather than as the platform's machine client.
    let username = args.username.clone().or_else(|| {
        (args.client_id.is_none() && args.server.is_none())
            .then(|| same_client.map(|f| f.username.clone()))
            .flatten()
    });
    let password = match &username {
        None => None,
        Some(u) => match same_client.filter(|f| &f.username == u && !args.password_stdin) {
            Some(f) if env("OTAD_PASSWORD").is_none() => Some(f.password.clone()),
            _ => Some(read_password(u, args.password_stdin)?),
        },
    };
    let mut client = Client::new(url.clone(), ca.as_deref(), None)?;
    let user = username.as_deref().zip(password.as_deref());
    let (token, ttl) = grant(&mut client, &client_id, &secret, user)?;
    let saved = Saved {
        url: url.display(),
        ca: ca.map(|b| String::from_utf8_lossy(&b).into_owned()),
        token,
        partner_id: client_id.clone(),
        username: username.clone(),
        expires_timestamp: now_ms().saturating_add(ttl.saturating_mul(1000)),
        public_client: false,
        acting_partner: args.partner.clone(),
    };
    report_login(&saved, args.json)
}

/// Saves the session and says who is logged in where.
fn report_login(saved: &Saved, json: bool) -> Result<()> {
    let path = save(saved)?;
    let client_id = &saved.partner_id;
    let who = saved
        .username
        .clone()
        .unwrap_or_else(|| format!("client {client_id}"));
    let out = Output { json };
    let mut doc = json!({
        "url": saved.url,
        "partnerId": saved.partner_id,
        "expiresTimestamp": saved.expires_timestamp,
        "sessionFile": path.display().to_string(),
    });
    if let Some(p) = &saved.acting_partner {
        doc["actingPartner"] = json!(p);
    }
    if let Some(u) = &saved.username {
        doc["username"] = json!(u);
    }
    out.show(&doc, || {
        let acting = saved
            .acting_partner
            .as_ref()
            .map(|p| format!("; commands act on partner {p}"))
            .unwrap_or_default();
        format!(
            "logged in to {} as {who} (partner {client_id}); the token expires {} UTC{acting}",
            saved.url,
            super::output::utc(saved.expires_timestamp)
        )
    });
    Ok(())
}

pub fn logout(args: &LogoutArgs) -> Result<()> {
    let path = session_path()?;
    let Some(saved) = load_saved()? else {
        eprintln!("otad: not logged in");
        return Ok(());
    };
    if let Some(secret) = &args.client_secret {
        let url = ServerUrl::parse(&saved.url)?;
        let mut client = Client::new(url, saved.ca.as_ref().map(String::as_bytes), None)?;
        oauth_call(
            &mut client,
            "/oauth/revoke",
            Some((&saved.partner_id, secret)),
            format!("token={}", seg(&saved.token)),
        )
        .map_err(|e| e.context("cannot revoke the token (the session file is kept)"))?;
    } else if saved.public_client {
        // A user's public-client token is revoked as the OTA Manager revokes its own.
        let url = ServerUrl::parse(&saved.url)?;
        let mut client = Client::new(url, saved.ca.as_ref().map(String::as_bytes), None)?;
        revoke_public(&mut client, &saved.token)
            .map_err(|e| e.context("cannot revoke the token (the session file is kept)"))?;
    }
    std::fs::remove_file(&path)
        .map_err(|e| CliError::fail(format!("cannot remove {}: {e}", path.display())))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The connected context of a command

/// A connected client, the partner the command acts on, and the output mode.
pub struct Ctx {
    pub client: Client,
    pub out: Output,
    partner: Option<String>,
}

impl Ctx {
    /// Connects as: OTAD_URL + OTAD_TOKEN; else the saved login (OTAD_TOKEN and OTAD_CA
    /// override its parts); else the local server of `data_dir` as its first admin.
    pub fn connect(common: &Common, data_dir: &Path) -> Result<Ctx> {
        let out = Output { json: common.json };
        let ca_env = match env("OTAD_CA") {
            Some(p) => Some(read_ca(Path::new(&p))?),
            None => None,
        };
        let not_logged_in = || {
            CliError::auth(format!(
                "not logged in: run `otad login --server URL --ca FILE --client-id ID` (on the appliance: `otad login`), or set OTAD_URL and OTAD_TOKEN; no local server in {} either",
                data_dir.display()
            ))
        };
        if let Some(url) = env("OTAD_URL") {
            let token = env("OTAD_TOKEN").ok_or_else(|| {
                CliError::auth(
                    "OTAD_URL is set but OTAD_TOKEN is not: set both, or run `otad login`",
                )
            })?;
            let client = Client::new(ServerUrl::parse(&url)?, ca_env.as_deref(), Some(token))?;
            return Ok(Ctx {
                client,
                out,
                partner: common.partner.clone(),
            });
        }
        if let Some(saved) = load_saved()? {
            let token = match env("OTAD_TOKEN") {
                Some(t) => t,
                // Say so here rather than send a token the server will refuse.
                None if saved.expires_timestamp <= now_ms() => {
                    return Err(CliError::auth(format!(
                        "the login to {} expired at {} UTC; run `otad login` again",
                        saved.url,
                        super::output::utc(saved.expires_timestamp)
                    )));
                }
                None => saved.token,
            };
            let ca = ca_env.or_else(|| saved.ca.map(String::into_bytes));
            let client = Client::new(ServerUrl::parse(&saved.url)?, ca.as_deref(), Some(token))?;
            return Ok(Ctx {
                client,
                out,
                partner: common
                    .partner
                    .clone()
                    .or(saved.acting_partner)
                    .or(Some(saved.partner_id)),
            });
        }
        let local = discover(data_dir)?.ok_or_else(not_logged_in)?;
        let ca = ca_env.or(local.ca);
        let mut client = Client::new(local.url, ca.as_deref(), None)?;
        let partner = if let Some(token) = env("OTAD_TOKEN") {
            client.set_token(Some(token));
            common.partner.clone()
        } else {
            let admin = local.admin.ok_or_else(not_logged_in)?;
            let (token, _) = grant(
                &mut client,
                &admin.client_id,
                &admin.client_secret,
                Some((&admin.username, &admin.password)),
            )
            .map_err(|e| {
                e.context("cannot log in with the data directory's initial credentials")
            })?;
            client.set_token(Some(token));
            common.partner.clone().or(Some(admin.client_id))
        };
        Ok(Ctx {
            client,
            out,
            partner,
        })
    }

    /// Acts on `partner` from here on (a command that has just found or made it).
    pub fn set_partner(&mut self, partner: &str) {
        self.partner = Some(partner.to_string());
    }

    /// The partner the command acts on.
    pub fn partner(&self) -> Result<&str> {
        self.partner
            .as_deref()
            .ok_or_else(|| CliError::usage("which partner? pass --partner ID or set OTAD_PARTNER"))
    }

    /// `/v1/ota/partners/{partner}`.
    pub fn base(&self) -> Result<String> {
        Ok(format!("/v1/ota/partners/{}", seg(self.partner()?)))
    }

    /// Every item of a paged list: `path` (which may carry a query) is asked page by page,
    /// 1000 at a time, until the envelope's `totalPages` is reached.
    pub fn pages(&mut self, path: &str) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        self.each_item(path, |item| all.push(item))?;
        Ok(all)
    }

    /// Like [`Ctx::pages`], handing each item to `f` instead of keeping them all.
    pub fn each_item(&mut self, path: &str, mut f: impl FnMut(Value)) -> Result<()> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut page = 0u64;
        loop {
            let mut v = self
                .client
                .get(&format!("{path}{sep}page={page}&size={PAGE_SIZE}"))?;
            let total_pages = v.get("totalPages").and_then(Value::as_u64).unwrap_or(0);
            let Some(Value::Array(content)) = v.get_mut("content").map(Value::take) else {
                return Err(CliError::fail(format!("{path}: the answer is not a page")));
            };
            let empty = content.is_empty();
            content.into_iter().for_each(&mut f);
            page += 1;
            if page >= total_pages || empty {
                return Ok(());
            }
        }
    }
}

/// Items per page when listing everything (the API's maximum).
const PAGE_SIZE: usize = 1000;
