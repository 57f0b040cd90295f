//! The `otad` command line: flags, subcommands and their exit codes, in one place.
//!
//! Commands: `serve` (the service) and the offline database tools (`db verify`, `db compact`),
//! which open the redb file directly and refuse while a server holds it. Exit codes:
//! 0 success, 1 error (or problems found), 2 usage.

pub mod device;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
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
    /// Offline database tools (refuse to run while a server holds the database).
    #[command(subcommand)]
    Db(DbCommand),
    /// Act as a device over OCP/1: check for updates, download an image, simulate a fleet.
    #[command(subcommand)]
    Device(device::DeviceCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("otad: {message}");
            ExitCode::FAILURE
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

fn run(cli: Cli) -> Result<ExitCode, String> {
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
            crate::serve::run(config).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Verify) => db_verify(&config),
        Command::Db(DbCommand::Compact) => db_compact(&config),
        Command::Device(cmd) => device::run(cmd, &config.data_dir),
    }
}

fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn open_existing(config: &Config) -> Result<redb::Database, String> {
    let path = config::db_path(&config.data_dir);
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
    let report = verify::verify(&db).map_err(|e| e.to_string())?;
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
    let path = config::db_path(&config.data_dir);
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
