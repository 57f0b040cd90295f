//! The `otad` command line: flags, subcommands and their exit codes, in one place.
//!
//! Commands: `serve` (the service); the offline database tools (`db verify|compact|
//! restore`) and the offline recovery (`admin reset-password`, `recovery.rs`), which open
//! the redb file directly and refuse while a server holds it;
//! `device check|download|simulate` (a device over OCP/1, `device/`); and the admin
//! commands, clients of a running server's HTTP API: `login`/`logout` (`session.rs`),
//! `partner`/`user` (`partners.rs`), `type`/`device-type` (`types.rs`), `image`
//! (`images.rs`), `keygen` and `signing-key` (`signing.rs`),
//! `device register|import|list|show|label|rotate-token|delete` (`devices.rs`), `rollout`
//! (`rollouts.rs`), `fleet status` (`fleet.rs`), `audit` (`audit.rs`), `backup`
//! (`backup.rs`), `demo` (sample data, `demo.rs`) and `completions`. The error type and its
//! exit codes are in `client.rs`, printing in `output.rs`; the HTTPS transport is the API's
//! client, `client/http.rs`.
//!
//! Exit codes: 0 success, 1 error (or problems found, or a server holds the data directory
//! of an offline tool), 2 usage, 3 not found, 4 conflict (exists already, or in use),
//! 5 authentication (not logged in, token expired or revoked, not allowed).

mod audit;
mod backup;
mod client;
mod ddi;
mod demo;
mod device;
mod devices;
mod fleet;
mod images;
mod output;
mod partners;
mod recovery;
mod rollouts;
mod session;
mod signing;
mod types;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use self::client::CliError;
use self::session::{Common, Ctx};
use crate::config::Config;
use crate::store::{self, StoreError, verify};

#[derive(Debug, Parser)]
#[command(
    name = "otad",
    version,
    about = "On-premise over-the-air firmware update service"
)]
pub struct Cli {
    /// Configuration file (TOML); see config.example.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config file's data_dir).
    #[arg(long, global = true, value_name = "DIR", env = "OTAD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the partner HTTP API and the OCP/1 device protocol, over TLS.
    ///
    /// With no configuration it creates ./otad-data with a self-signed certificate and the
    /// first admin's credentials (written to a file readable only by you).
    ///
    /// Example: otad serve --data-dir /var/lib/otad --api-listen 0.0.0.0:8443
    Serve {
        /// Address of the HTTPS listener (overrides api.listen); port 0 = any free port.
        #[arg(long, value_name = "ADDR:PORT")]
        api_listen: Option<String>,
        /// Address of the OCP/1 device listener (overrides device.listen); port 0 = any.
        #[arg(long, value_name = "ADDR:PORT")]
        device_listen: Option<String>,
        /// Log line format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Offline recovery (refuses to run while a server holds the database).
    ///
    /// Example: otad admin reset-password admin --data-dir /var/lib/otad
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Offline database tools (refuse to run while a server holds the database).
    ///
    /// Example: otad db verify --data-dir /var/lib/otad
    #[command(subcommand)]
    Db(DbCommand),
    /// Devices: act as one over OCP/1 (check, download, simulate), or manage the registry
    /// over the API (register, import, list, show, rotate-token, delete).
    ///
    /// Example: otad device list
    #[command(subcommand)]
    Device(DeviceGroup),
    /// Log in to a server and keep the token (0600) for the admin commands.
    Login(session::LoginArgs),
    /// Forget the saved login (and revoke its token when the client secret is given).
    ///
    /// Example: otad logout
    Logout(session::LogoutArgs),
    /// Partner organisations (appliance admins).
    ///
    /// Example: otad partner list
    Partner {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: partners::PartnerCommand,
    },
    /// Users of a partner (appliance admins).
    ///
    /// Example: otad user list --partner $PARTNER_ID
    User {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: partners::UserCommand,
    },
    /// Firmware types.
    ///
    /// Example: otad type list
    Type {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: types::TypeCommand,
    },
    /// Device types.
    ///
    /// Example: otad device-type list
    DeviceType {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: types::DeviceTypeCommand,
    },
    /// Firmware images: upload, list, associate with device types, push.
    ///
    /// Example: otad image upload fw.bin --type 101 --name main --version 1.0.0 --associate $DT
    Image {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: images::ImageCommand,
    },
    /// Create an Ed25519 signing key pair on this machine (offline): the private key goes
    /// to KEY (mode 0600), the public key is printed.
    ///
    /// Example: otad keygen --out ci-signing.key
    Keygen(signing::KeygenArgs),
    /// Public keys that sign the partner's images (register, list, revoke).
    ///
    /// Example: otad signing-key add ci-2026 ci-signing.key
    SigningKey {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: signing::SigningKeyCommand,
    },
    /// Staged rollouts: release an image group by group, stopping on failures.
    ///
    /// Example: otad rollout show 3 --watch
    Rollout {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: rollouts::RolloutCommand,
    },
    /// hawkBit DDI settings of the partner: tenant name and gateway token (docs/ddi.md).
    ///
    /// Example: otad ddi gateway-token --out gateway-token.txt
    Ddi {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: ddi::DdiCommand,
    },
    /// Fleet overview.
    ///
    /// Example: otad fleet status
    Fleet {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: FleetCommand,
    },
    /// The audit log, newest first (appliance admins).
    ///
    /// Example: otad audit --since 24h
    Audit {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: audit::AuditArgs,
    },
    /// Stream a consistent copy of the server's database to FILE (appliance admins);
    /// restore it with `otad db restore FILE`.
    ///
    /// Example: otad backup otad-2026-11-27.redb
    Backup {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: backup::BackupArgs,
    },
    /// Sample data on a running server for a first look (appliance admins): the partner
    /// "Demo Kettles", firmware types 101 and 102, the device type "Demo Kettle", one image
    /// of each type and a few devices, whose tokens go to DIR/devices.csv (0600). Running
    /// it again creates only what is missing.
    ///
    /// Example: otad demo --out otad-demo --devices 5
    Demo {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: demo::DemoArgs,
    },
    /// Print a shell completion script.
    ///
    /// Example: otad completions bash > /etc/bash_completion.d/otad
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `otad device ...`: the OCP/1 device commands and the registry commands side by side.
#[derive(Debug, Subcommand)]
pub enum DeviceGroup {
    #[command(flatten)]
    Protocol(device::DeviceCommand),
    #[command(flatten)]
    Registry(devices::DeviceAdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// How many devices run which version of each firmware type, per device type, and
    /// their OTA states. Counted client-side from the device list API (paged through), as
    /// the server has no summary endpoint.
    ///
    /// Example: otad fleet status --device-type $DEVICE_TYPE_ID --json
    Status(fleet::StatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Give a user a new random password, written to a file only you can read, and sign
    /// out its sessions: for an operator who lost the first admin's credentials.
    ///
    /// Example: otad admin reset-password admin --data-dir /var/lib/otad
    ResetPassword(recovery::ResetPasswordArgs),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Re-hash every binary and check every reference, counter and index.
    ///
    /// Example: otad db verify --data-dir /var/lib/otad
    Verify,
    /// Rewrite the database file to release free space.
    ///
    /// Example: otad db compact --data-dir /var/lib/otad
    Compact,
    /// Place a backup (from `otad backup`) as the data directory's database, after
    /// verifying it. Refuses while a server holds the directory.
    ///
    /// Example: otad db restore otad-2026-11-27.redb --data-dir /var/lib/otad
    Restore(backup::RestoreArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // An empty message: the command printed its answer and only the code speaks.
            if !e.message.is_empty() {
                eprintln!("otad: {e}");
            }
            e.exit_code()
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let mut config = load_config(&cli)?;
    match cli.command {
        Command::Serve {
            api_listen,
            device_listen,
            log_format,
        } => {
            if let Some(listen) = api_listen {
                config.api.listen = listen;
            }
            if let Some(listen) = device_listen {
                config.device.listen = listen;
            }
            config.validate().map_err(|e| e.to_string())?;
            init_logging(log_format);
            let served = crate::serve::run(config).map_err(|e| e.to_string());
            crate::logsink::flush();
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(AdminCommand::ResetPassword(args)) => {
            recovery::reset_password(&args, &config).map(|()| ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Verify) => Ok(db_verify(&config)?),
        Command::Db(DbCommand::Compact) => Ok(db_compact(&config)?),
        Command::Db(DbCommand::Restore(args)) => {
            backup::restore(&args, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Device(DeviceGroup::Protocol(cmd)) => Ok(device::run(cmd, &config.data_dir)?),
        Command::Device(DeviceGroup::Registry(cmd)) => {
            let common = cmd.common().clone();
            admin(&common, &config, |ctx| devices::run(cmd, ctx))
        }
        Command::Login(args) => session::login(&args, &config.data_dir).map(|()| ExitCode::SUCCESS),
        Command::Logout(args) => session::logout(&args).map(|()| ExitCode::SUCCESS),
        Command::Partner { common, cmd } => admin(&common, &config, |c| partners::partner(cmd, c)),
        Command::User { common, cmd } => admin(&common, &config, |c| partners::user(cmd, c)),
        Command::Type { common, cmd } => admin(&common, &config, |c| types::fw_type(cmd, c)),
        Command::DeviceType { common, cmd } => {
            admin(&common, &config, |c| types::device_type(cmd, c))
        }
        Command::Image { common, cmd } => admin(&common, &config, |c| images::run(cmd, c)),
        Command::Keygen(args) => signing::keygen(&args).map(|()| ExitCode::SUCCESS),
        Command::SigningKey { common, cmd } => admin(&common, &config, |c| signing::run(cmd, c)),
        Command::Rollout { common, cmd } => admin(&common, &config, |c| rollouts::run(cmd, c)),
        Command::Ddi { common, cmd } => admin(&common, &config, |c| ddi::run(cmd, c)),
        Command::Fleet {
            common,
            cmd: FleetCommand::Status(args),
        } => admin(&common, &config, |c| fleet::status(args, c)),
        Command::Audit { common, args } => admin(&common, &config, |c| audit::run(args, c)),
        Command::Backup { common, args } => admin(&common, &config, |c| backup::backup(args, c)),
        Command::Demo { common, args } => admin(&common, &config, |c| demo::run(args, c)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "otad", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs an admin command on a client connected as `common` and the environment say.
fn admin(
    common: &Common,
    config: &Config,
    command: impl FnOnce(&mut Ctx) -> client::Result<()>,
) -> Result<ExitCode, CliError> {
    let mut ctx = Ctx::connect(common, &config.data_dir)?;
    command(&mut ctx).map(|()| ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(crate::logsink::LogSink::start())
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn open_existing(config: &Config) -> Result<redb::Database, String> {
    let path = config.data_dir().db();
    if !path.exists() {
        return Err(format!(
            "no database at {} (pass --data-dir to point at the data directory)",
            path.display()
        ));
    }
    store::open_database(&path, config.storage.cache_mib).map_err(|e| match e {
        StoreError::AlreadyOpen(_) => format!(
            "otad is already running on this data directory ({}); stop it before running offline tools",
            config.data_dir.display()
        ),
        other => other.to_string(),
    })
}

fn db_verify(config: &Config) -> Result<ExitCode, String> {
    let db = open_existing(config)?;
    let report = verify(&db).map_err(|e| e.to_string())?;
    println!(
        "checked {} blobs ({} bytes), {} records, {} devices",
        report.blobs, report.blob_bytes, report.records, report.devices
    );
    if report.is_clean() {
        println!("database is consistent");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!("{} problems found", report.problems.len());
    Ok(ExitCode::FAILURE)
}

fn db_compact(config: &Config) -> Result<ExitCode, String> {
    let path = config.data_dir().db();
    let mut db = open_existing(config)?;
    let before = file_len(&path);
    let compacted = db
        .compact()
        .map_err(|e| format!("compaction failed: {e}"))?;
    drop(db);
    let after = file_len(&path);
    if compacted {
        println!("compacted {}: {before} -> {after} bytes", path.display());
    } else {
        println!("{} is already compact ({after} bytes)", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` of every command, groups included, shows an example.
    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() == "help" {
                    continue;
                }
                let texts = [
                    sub.get_long_about(),
                    sub.get_about(),
                    sub.get_after_help(),
                    sub.get_after_long_help(),
                ];
                if !texts
                    .iter()
                    .flatten()
                    .any(|t| t.to_string().contains("Example"))
                {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "otad", &mut missing);
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
