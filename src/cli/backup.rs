//! `otad backup FILE` (streams the server's online backup, `GET /v1/admin/backup`, to a
//! file) and `otad db restore FILE` (offline: places a backup as the database of a data
//! directory after verifying it, refusing while a server holds that directory).
//! Not here: how the server makes the copy (`store/backup.rs`), `db verify|compact`
//! (`cli/mod.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::client::{CliError, Result};
use super::output::{Output, Progress, size};
use super::session::Ctx;
use crate::config::Config;
use crate::store::{self, StoreError, verify};

/// A backup of a large database is written server-side before its first byte is sent.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// File to write (must not exist; written as FILE.part, then renamed).
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Backup file written by `otad backup`.
    file: PathBuf,
    /// Replace an existing database (it is kept beside as otad.redb.before-restore-<ms>).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn private_create(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

pub fn backup(args: BackupArgs, ctx: &mut Ctx) -> Result<()> {
    let file = &args.file;
    if file.exists() {
        return Err(CliError::conflict(format!(
            "{} exists already; name a new file",
            file.display()
        )));
    }
    let mut part = file.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut out = private_create(&part)
        .map_err(|e| CliError::fail(format!("cannot create {}: {e}", part.display())))?;
    let progress = Progress::new("backup");
    let result = ctx
        .client
        .download_to("/v1/admin/backup", &mut out, &progress, BACKUP_TIMEOUT)
        .map_err(CliError::from)
        .and_then(|n| {
            out.sync_all()
                .map_err(|e| CliError::fail(format!("cannot write {}: {e}", part.display())))?;
            Ok(n)
        });
    progress.finish();
    let written = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e.context("backup failed"));
        }
    };
    std::fs::rename(&part, file)
        .map_err(|e| CliError::fail(format!("cannot rename {}: {e}", part.display())))?;
    ctx.out.show(
        &json!({ "file": file.display().to_string(), "bytes": written }),
        || format!("backup written to {} ({})", file.display(), size(written)),
    );
    Ok(())
}

pub fn restore(args: &RestoreArgs, config: &Config) -> Result<()> {
    let dir = &config.data_dir;
    let target = config.data_dir().db();
    if !args.file.is_file() {
        return Err(CliError::not_found(format!(
            "no backup file at {}",
            args.file.display()
        )));
    }
    let mut replaced = None;
    if target.exists() {
        // Opening the database is how a running server is detected: redb locks the file.
        match store::open_database(&target, config.storage.cache_mib) {
            // Exit 1, like `db verify` and `db compact` in the same situation.
            Err(StoreError::AlreadyOpen(_)) => {
                return Err(CliError::fail(format!(
                    "otad is already running on this data directory ({}); stop it before restoring",
                    dir.display()
                )));
            }
            Err(e) => {
                if !args.force {
                    return Err(CliError::fail(format!(
                        "{} cannot be opened ({e}); pass --force to replace it",
                        target.display()
                    )));
                }
            }
            Ok(db) => drop(db),
        }
        if !args.force {
            return Err(CliError::conflict(format!(
                "{} already holds a database; pass --force to replace it (the old file is kept beside it)",
                dir.display()
            )));
        }
        replaced = Some(dir.join(format!("otad.redb.before-restore-{}", crate::ids::now_ms())));
    } else {
        crate::datadir::create_private_dir(dir)
            .map_err(|e| CliError::fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Verify a copy, never the backup itself (redb may write to a file it opens).
    let staged = dir.join("otad.redb.restoring");
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(&args.file, &staged).map_err(|e| {
        CliError::fail(format!(
            "cannot copy {} into {}: {e}",
            args.file.display(),
            dir.display()
        ))
    })?;
    let checked = (|| {
        let db = store::open_database(&staged, config.storage.cache_mib).map_err(|e| {
            CliError::fail(format!(
                "{} is not an otad database: {e}",
                args.file.display()
            ))
        })?;
        let report =
            verify(&db).map_err(|e| CliError::fail(format!("cannot verify the backup: {e}")))?;
        drop(db);
        if !report.is_clean() {
            return Err(CliError::fail(format!(
                "the backup has {} problems (first: {}); nothing restored",
                report.problems.len(),
                report.problems.first().cloned().unwrap_or_default()
            )));
        }
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(|e| CliError::fail(format!("cannot sync {}: {e}", staged.display())))?;
        Ok(report)
    })();
    let report = match checked {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    if let Some(old) = &replaced {
        std::fs::rename(&target, old)
            .map_err(|e| CliError::fail(format!("cannot move the old database aside: {e}")))?;
    }
    std::fs::rename(&staged, &target)
        .map_err(|e| CliError::fail(format!("cannot place {}: {e}", target.display())))?;
    let out = Output { json: args.json };
    let mut doc = json!({
        "dataDir": dir.display().to_string(),
        "blobs": report.blobs,
        "records": report.records,
        "devices": report.devices,
    });
    if let Some(old) = &replaced {
        doc["replaced"] = json!(old.display().to_string());
    }
    out.show(&doc, || {
        let mut t = format!(
            "restored {} into {}: {} blobs, {} records, {} devices; database is consistent",
            args.file.display(),
            dir.display(),
            report.blobs,
            report.records,
            report.devices
        );
        if let Some(old) = &replaced {
            t.push_str(&format!(
                "\nthe previous database is kept as {}",
                old.display()
            ));
        }
        t
    });
    Ok(())
}
