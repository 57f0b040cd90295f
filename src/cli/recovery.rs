//! Offline recovery of the appliance: `otad admin reset-password`, for an operator who lost
//! the first admin's password (or any user's). It opens the database file directly, so it
//! refuses while a server holds the data directory, like the `db` tools.
//!
//! Not here: the admin commands that go through a running server (`partners.rs`).

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::client::CliError;
use crate::config::Config;
use crate::datadir::write_private_file;
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    /// The user whose password is replaced (the first admin is "admin").
    pub username: String,
    /// Where to write the new password, readable only by you (default:
    /// <data-dir>/reset-credentials.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// What the file holds: enough to sign in.
#[derive(Serialize)]
struct NewPassword<'a> {
    username: &'a str,
    password: &'a str,
}

pub fn reset_password(args: &ResetPasswordArgs, config: &Config) -> Result<(), CliError> {
    let data_dir = config.data_dir();
    let db = data_dir.db();
    if !db.exists() {
        return Err(CliError::not_found(format!(
            "no database at {} (pass --data-dir to point at the data directory)",
            db.display()
        )));
    }
    let store = Store::open(&db, &config.storage).map_err(|e| match e {
        StoreError::AlreadyOpen(_) => CliError::fail(format!(
            "otad is already running on this data directory ({}); stop it before resetting a password",
            data_dir.root().display()
        )),
        other => CliError::fail(other.to_string()),
    })?;
    let password = crate::secrets::new_secret();
    let reset = store.reset_password("cli:reset-password", &args.username, &password);
    store.close();
    reset.map_err(|e| match e {
        StoreError::NotFound { .. } => {
            CliError::not_found(format!("no user {:?} in this database", args.username))
        }
        other => CliError::fail(other.to_string()),
    })?;
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| data_dir.reset_credentials_file());
    let text = serde_json::to_vec_pretty(&NewPassword {
        username: &args.username,
        password: &password,
    })
    .map_err(|e| CliError::fail(e.to_string()))?;
    write_private_file(&path, &text).map_err(|e| {
        CliError::fail(format!(
            "the password of {:?} was reset but {} cannot be written ({e}); run this again",
            args.username,
            path.display()
        ))
    })?;
    println!(
        "new password for {} written to {} (readable by this user only); its old sessions are signed out",
        args.username,
        path.display()
    );
    Ok(())
}
