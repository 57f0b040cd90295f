//! `otad partner create|list|rotate-secret|ddi-tenant` and `otad user create|list|remove`: the
//! appliance admin's management of partner organisations and their users
//! (`/v1/admin/...`). Not here: logging in (`session.rs`).

use std::io::Read;

use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::client::{CliError, Context, Result, record_mut};
use super::output::{fields, items, table, text, time};
use super::session::Ctx;
use crate::client::http::seg;

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Create a partner organisation; prints its id and client secret (shown only once).
    ///
    /// Example: otad partner create "Acme Kettles" --email ops@acme.example
    Create {
        /// Display name.
        name: String,
        /// Contact email.
        #[arg(long)]
        email: Option<String>,
        /// Write the answer, client secret included, to FILE (mode 0600; refused if FILE
        /// exists) instead of showing the secret.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// List every partner.
    ///
    /// Example: otad partner list --json
    List,
    /// Issue a new client secret for a partner (the old one stops working).
    ///
    /// Example: otad partner rotate-secret 6f1c2f7e-...
    RotateSecret {
        /// Partner id.
        partner_id: String,
    },
    /// Set the partner's hawkBit DDI tenant name (1-64 of A-Z a-z 0-9 _ -, unique without
    /// regard to case; the partner id until set). docs/ddi.md.
    ///
    /// Example: otad partner ddi-tenant 6f1c2f7e-... acme-fleet
    DdiTenant {
        /// Partner id.
        partner_id: String,
        /// The tenant name DDI agents are configured with.
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user of the partner (--partner, default: your own).
    ///
    /// Without --password-stdin a random password is generated and shown once.
    ///
    /// Example: otad user create alice --partner 6f1c2f7e-...
    Create {
        /// Login name (unique on the appliance).
        username: String,
        /// `partner` (a user of that partner) or `admin` (appliance admin; platform
        /// partner only).
        #[arg(long, default_value = "partner", value_parser = ["partner", "admin"])]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the partner's users.
    ///
    /// Example: otad user list --partner 6f1c2f7e-...
    List,
    /// Remove a user (their tokens stop working).
    ///
    /// Example: otad user remove alice --partner 6f1c2f7e-...
    Remove { username: String },
}

pub fn partner(cmd: PartnerCommand, ctx: &mut Ctx) -> Result<()> {
    match cmd {
        PartnerCommand::Create { name, email, out } => {
            if let Some(path) = &out
                && path.exists()
            {
                return Err(CliError::conflict(format!(
                    "{} exists; the client secret is written only to a new file",
                    path.display()
                )));
            }
            let mut body = json!({ "name": name });
            if let Some(e) = email {
                body["email"] = Value::String(e);
            }
            let p = ctx
                .client
                .json(Method::POST, "/v1/admin/partners", Some(&body))
                .map_err(|e| e.context(&format!("cannot create partner {name:?}")))?;
            if let Some(path) = &out {
                let doc =
                    serde_json::to_vec_pretty(&p).map_err(|e| CliError::fail(e.to_string()))?;
                crate::datadir::write_private_file(path, &doc).map_err(|e| {
                    CliError::fail(format!(
                        "partner created, but {} cannot be written ({e}); issue a new secret with `otad partner rotate-secret {}`",
                        path.display(),
                        text(&p, "partnerId")
                    ))
                })?;
                let shown = json!({
                    "partnerId": p.get("partnerId"),
                    "name": p.get("name"),
                    "file": path.display().to_string(),
                });
                ctx.out.show(&shown, || {
                    fields(&[
                        ("partnerId", text(&p, "partnerId")),
                        ("name", text(&p, "name")),
                    ]) + &format!(
                        "(the client secret is in {}, readable only by you)",
                        path.display()
                    )
                });
                return Ok(());
            }
            ctx.out.show(&p, || {
                fields(&[
                    ("partnerId", text(&p, "partnerId")),
                    ("name", text(&p, "name")),
                    ("email", text(&p, "email")),
                    ("clientSecret", text(&p, "clientSecret")),
                ]) + "(the client secret is shown only this once)"
            });
        }
        PartnerCommand::List => {
            let list = ctx.client.get("/v1/admin/partners")?;
            let rows: Vec<Vec<String>> = items(&list)
                .iter()
                .map(|p| {
                    vec![
                        text(p, "partnerId"),
                        text(p, "name"),
                        text(p, "email"),
                        if p.get("platform").and_then(Value::as_bool) == Some(true) {
                            "platform".into()
                        } else {
                            String::new()
                        },
                        time(p, "createdTimestamp"),
                    ]
                })
                .collect();
            ctx.out.show(&list, || {
                table(&["PARTNER ID", "NAME", "EMAIL", "KIND", "CREATED"], &rows)
            });
        }
        PartnerCommand::RotateSecret { partner_id } => {
            let path = format!("/v1/admin/partners/{}/secret", seg(&partner_id));
            let v = ctx
                .client
                .json(Method::POST, &path, None)
                .map_err(|e| e.context(&format!("cannot rotate the secret of {partner_id}")))?;
            let v = json!({ "partnerId": partner_id, "clientSecret": text(&v, "clientSecret") });
            ctx.out.show(&v, || {
                fields(&[
                    ("partnerId", text(&v, "partnerId")),
                    ("clientSecret", text(&v, "clientSecret")),
                ]) + "(the client secret is shown only this once)"
            });
        }
        PartnerCommand::DdiTenant { partner_id, tenant } => {
            let path = format!("/v1/admin/partners/{}/ddiTenant", seg(&partner_id));
            let v = ctx
                .client
                .json(Method::PUT, &path, Some(&json!({ "ddiTenant": tenant })))
                .map_err(|e| e.context(&format!("cannot set the DDI tenant of {partner_id}")))?;
            ctx.out.show(&v, || {
                fields(&[
                    ("partnerId", text(&v, "partnerId")),
                    ("ddiTenant", text(&v, "ddiTenant")),
                ])
            });
        }
    }
    Ok(())
}

pub fn user(cmd: UserCommand, ctx: &mut Ctx) -> Result<()> {
    let partner = ctx.partner()?.to_string();
    let base = format!("/v1/admin/partners/{}/users", seg(&partner));
    match cmd {
        UserCommand::Create {
            username,
            role,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| CliError::fail(format!("cannot read the password: {e}")))?;
                let line = text.lines().next().unwrap_or("").to_string();
                if line.is_empty() {
                    return Err(CliError::usage("the password on standard input is empty"));
                }
                (line, false)
            } else {
                (crate::secrets::new_secret(), true)
            };
            let body = json!({ "username": username, "password": password, "role": role });
            let mut u = ctx
                .client
                .json(Method::POST, &base, Some(&body))
                .map_err(|e| e.context(&format!("cannot create user {username:?}")))?;
            if generated {
                record_mut(&mut u)?.insert("password".into(), Value::String(password));
            }
            ctx.out.show(&u, || {
                let mut t = fields(&[
                    ("username", text(&u, "username")),
                    ("role", text(&u, "role")),
                    ("partnerId", text(&u, "partnerId")),
                    ("password", text(&u, "password")),
                ]);
                if generated {
                    t.push_str("(the password is shown only this once)");
                }
                t
            });
        }
        UserCommand::List => {
            let list = ctx.client.get(&base)?;
            let rows: Vec<Vec<String>> = items(&list)
                .iter()
                .map(|u| {
                    vec![
                        text(u, "username"),
                        text(u, "role"),
                        time(u, "createdTimestamp"),
                    ]
                })
                .collect();
            ctx.out
                .show(&list, || table(&["USERNAME", "ROLE", "CREATED"], &rows));
        }
        UserCommand::Remove { username } => {
            ctx.client
                .json(Method::DELETE, &format!("{base}/{}", seg(&username)), None)
                .map_err(|e| e.context(&format!("cannot remove user {username:?}")))?;
            if ctx.out.json {
                ctx.out.show(
                    &json!({ "username": username, "removed": true }),
                    String::new,
                );
            }
        }
    }
    Ok(())
}
