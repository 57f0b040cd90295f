//! `otad ddi show|gateway-token`: a partner's hawkBit DDI settings (docs/ddi.md) — its
//! tenant name and its gateway token, which is shown once or written to a new private file.
//! Not here: setting the tenant name (an admin's `otad partner ddi-tenant`).

use clap::Subcommand;
use http::Method;
use serde_json::json;

use super::client::{CliError, Context, Result};
use super::output::{fields, text, time};
use super::session::Ctx;

#[derive(Debug, Subcommand)]
pub enum DdiCommand {
    /// The partner's DDI tenant and whether it has a gateway token.
    ///
    /// Example: otad ddi show --json
    Show,
    /// Create or rotate the partner's gateway token (the old one stops working), or
    /// withdraw it with --delete.
    ///
    /// Example: otad ddi gateway-token --out gateway-token.txt
    GatewayToken {
        /// Write the token to FILE (mode 0600; refused if FILE exists) instead of showing it.
        #[arg(long, value_name = "FILE", conflicts_with = "delete")]
        out: Option<std::path::PathBuf>,
        /// Withdraw the gateway token.
        #[arg(long)]
        delete: bool,
    },
}

pub fn run(cmd: DdiCommand, ctx: &mut Ctx) -> Result<()> {
    let base = format!("{}/ddi", ctx.base()?);
    match cmd {
        DdiCommand::Show => {
            let v = ctx.client.get(&base)?;
            ctx.out.show(&v, || {
                let gateway = if v["gatewayToken"].as_bool() == Some(true) {
                    format!("yes, since {}", time(&v, "gatewayTokenCreatedTimestamp"))
                } else {
                    "none".to_string()
                };
                fields(&[
                    ("ddiTenant", text(&v, "ddiTenant")),
                    ("gatewayToken", gateway),
                ])
            });
        }
        DdiCommand::GatewayToken { delete: true, .. } => {
            ctx.client
                .json(Method::DELETE, &format!("{base}/gatewayToken"), None)
                .map_err(|e| e.context("cannot withdraw the gateway token"))?;
            let v = json!({ "gatewayToken": false });
            ctx.out
                .show(&v, || "the gateway token is withdrawn\n".to_string());
        }
        DdiCommand::GatewayToken { out, .. } => {
            if let Some(path) = &out
                && path.exists()
            {
                return Err(CliError::conflict(format!(
                    "{} exists; the gateway token is written only to a new file",
                    path.display()
                )));
            }
            let v = ctx
                .client
                .json(Method::POST, &format!("{base}/gatewayToken"), None)
                .map_err(|e| e.context("cannot create the gateway token"))?;
            let token = text(&v, "gatewayToken");
            if let Some(path) = &out {
                crate::datadir::write_private_file(path, format!("{token}\n").as_bytes())
                    .map_err(|e| {
                        CliError::fail(format!(
                            "token created, but {} cannot be written ({e}); run this again to rotate it",
                            path.display()
                        ))
                    })?;
                let shown = json!({ "file": path.display().to_string() });
                ctx.out.show(&shown, || {
                    format!(
                        "the gateway token is in {}, readable only by you\n",
                        path.display()
                    )
                });
                return Ok(());
            }
            ctx.out.show(&v, || {
                fields(&[("gatewayToken", token.clone())]) + "(the token is shown only this once)"
            });
        }
    }
    Ok(())
}
