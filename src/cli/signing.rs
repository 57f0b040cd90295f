//! Signing on the partner's side: `otad keygen` (a new Ed25519 key file, offline),
//! `otad signing-key add|list|revoke` (public keys registered with the server), and the
//! manifest building and signature submission that `otad image upload --sign-key` and
//! `otad image sign` share. The private key never leaves this process.
//!
//! Not here: the manifest bytes and Ed25519 (`signing.rs`), the upload itself
//! (`images.rs`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use super::client::{CliError, Context, Result};
use super::output::{fields, items, table, text, time};
use super::session::Ctx;
use crate::client::http::seg;
use crate::datadir::write_private_file;
use crate::ids::random_bytes;
use crate::signing::{self, Manifest, SigningKey};

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Private key file to create (PKCS#8 PEM, mode 0600); refused if it exists.
    #[arg(long, value_name = "KEY")]
    out: PathBuf,
    /// Print the public key and key id as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Register a public key; images signed with its private key can then be submitted.
    ///
    /// PUBLIC_KEY is 64 hex digits (as `otad keygen` prints), or a file holding them, or
    /// the private key file itself (only its public half is sent).
    ///
    /// Example: otad signing-key add ci-2026 ci-signing.key
    Add {
        /// A name for people (e.g. where the private key lives).
        name: String,
        #[arg(value_name = "PUBLIC_KEY")]
        public_key: String,
    },
    /// List the partner's keys, revoked ones included.
    ///
    /// Example: otad signing-key list
    List,
    /// Revoke a key: its signatures stop counting at once and it can sign nothing new.
    ///
    /// Example: otad signing-key revoke 56475aa75463474c
    Revoke {
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

/// Optional bounds written into the signed manifest (docs/signing.md 3).
#[derive(Debug, Args, Clone, Default)]
pub struct ManifestBounds {
    /// Devices must not install the image before this Unix time (seconds).
    #[arg(long, value_name = "UNIX_SECONDS")]
    not_before: Option<u64>,
    /// Devices must not install the image from this Unix time on (seconds).
    #[arg(long, value_name = "UNIX_SECONDS")]
    expires: Option<u64>,
    /// Only devices of this device type may install it (repeat; default: any).
    #[arg(long = "for-device-type", value_name = "DEVICE_TYPE")]
    device_types: Vec<String>,
}

fn keygen_failed(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::fail(format!("cannot write {}: {e}", path.display()))
}

pub fn keygen(args: &KeygenArgs) -> std::result::Result<(), CliError> {
    if args.out.exists() {
        return Err(CliError::conflict(format!(
            "{} exists already; keygen never overwrites a key",
            args.out.display()
        )));
    }
    let der = signing::pkcs8_from_seed(&random_bytes::<32>());
    let key = SigningKey::from_pkcs8(&der).map_err(|e| CliError::fail(e.to_string()))?;
    let pem = signing::pem_from_pkcs8(&der);
    write_private_file(&args.out, pem.as_bytes()).map_err(|e| keygen_failed(&args.out, e))?;
    let public = signing::to_hex(&key.public_key());
    let key_id = signing::to_hex(&key.key_id());
    if args.json {
        println!(
            "{}",
            json!({ "publicKey": public, "keyId": key_id, "file": args.out.display().to_string() })
        );
    } else {
        println!("{public}");
        eprintln!(
            "key id {key_id}; private key in {} (mode 0600): keep it secret, register the public key with `otad signing-key add NAME {public}`",
            args.out.display()
        );
    }
    Ok(())
}

/// A private key file (PEM or DER PKCS#8), as `--sign-key` names it.
pub fn load_key(path: &Path) -> Result<SigningKey> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::fail(format!("cannot read {}: {e}", path.display())))?;
    SigningKey::from_file_bytes(&bytes)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// PUBLIC_KEY of `signing-key add`: hex, a file of hex, or a private key file.
fn public_key_arg(arg: &str) -> Result<signing::PublicKey> {
    if let Some(k) = signing::from_hex::<32>(arg.trim()) {
        return Ok(k);
    }
    let bytes = std::fs::read(arg).map_err(|e| {
        CliError::usage(format!(
            "{arg}: neither 64 hex digits nor a readable file ({e})"
        ))
    })?;
    if let Some(k) = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| signing::from_hex::<32>(t.trim()))
    {
        return Ok(k);
    }
    SigningKey::from_file_bytes(&bytes)
        .map(|k| k.public_key())
        .map_err(|_| CliError::usage(format!("{arg}: not a public key nor a private key file")))
}

fn key_row(k: &Value) -> Vec<String> {
    let revoked = k.get("revoked").and_then(Value::as_bool) == Some(true);
    vec![
        text(k, "keyId"),
        text(k, "name"),
        if revoked {
            format!("revoked {}", time(k, "revokedTimestamp"))
        } else {
            "active".into()
        },
        time(k, "createdTimestamp"),
        text(k, "publicKey"),
    ]
}

const KEY_HEADER: &[&str] = &["KEY ID", "NAME", "STATE", "CREATED", "PUBLIC KEY"];

pub fn run(cmd: SigningKeyCommand, ctx: &mut Ctx) -> Result<()> {
    let base = format!("{}/signingKeys", ctx.base()?);
    match cmd {
        SigningKeyCommand::Add { name, public_key } => {
            let public = public_key_arg(&public_key)?;
            let k = ctx
                .client
                .json(
                    Method::POST,
                    &base,
                    Some(&json!({ "name": name, "publicKey": signing::to_hex(&public) })),
                )
                .map_err(|e| e.context(&format!("cannot register signing key {name:?}")))?;
            ctx.out.show(&k, || table(KEY_HEADER, &[key_row(&k)]));
        }
        SigningKeyCommand::List => {
            let list = ctx.client.get(&base)?;
            let rows: Vec<Vec<String>> = items(&list).iter().map(key_row).collect();
            ctx.out.show(&list, || table(KEY_HEADER, &rows));
        }
        SigningKeyCommand::Revoke { key_id } => {
            let k = ctx
                .client
                .json(Method::DELETE, &format!("{base}/{}", seg(&key_id)), None)
                .map_err(|e| e.context(&format!("cannot revoke signing key {key_id}")))?;
            ctx.out.show(&k, || table(KEY_HEADER, &[key_row(&k)]));
        }
    }
    Ok(())
}

/// What the manifest says about the binary.
pub struct BinaryFacts {
    pub size: u64,
    pub sha256: [u8; 32],
    pub blake3: [u8; 32],
}

/// Builds the manifest of pool record `record` (as the API renders it) with `binary`,
/// signs it with `key` and submits the signature to `record_path`/signatures.
pub fn sign_record(
    ctx: &mut Ctx,
    record_path: &str,
    record: &Value,
    binary: &BinaryFacts,
    key: &SigningKey,
    bounds: &ManifestBounds,
) -> Result<Value> {
    let number = |field: &str| -> Result<u64> {
        text(record, field)
            .parse()
            .map_err(|_| CliError::fail(format!("the server's record has no {field}")))
    };
    let mut device_types = bounds.device_types.clone();
    device_types.sort();
    device_types.dedup();
    let manifest = Manifest {
        partner_id: text(record, "partnerId"),
        fw_type: u16::try_from(number("type")?)
            .map_err(|_| CliError::fail("the server's record has a bad type"))?,
        version_number: number("versionNumber")?,
        version: text(record, "version"),
        size: binary.size,
        sha256: binary.sha256,
        blake3: binary.blake3,
        not_before: bounds.not_before.unwrap_or(0),
        expires: bounds.expires.unwrap_or(0),
        device_types,
    }
    .encode()
    .map_err(|e| CliError::usage(format!("cannot build the manifest: {e}")))?;
    let body = json!({
        "keyId": signing::to_hex(&key.key_id()),
        "manifest": signing::to_hex(&manifest),
        "signature": signing::to_hex(&key.sign(&manifest)),
    });
    ctx.client
        .json(
            Method::POST,
            &format!("{record_path}/signatures"),
            Some(&body),
        )
        .map_err(|e| e.context("cannot submit the signature"))
}

fn signature_row(s: &Value) -> Vec<String> {
    let state = if s.get("valid").and_then(Value::as_bool) == Some(true) {
        "valid"
    } else if s.get("keyRevoked").and_then(Value::as_bool) == Some(true) {
        "key revoked"
    } else {
        "stale"
    };
    vec![text(s, "keyId"), state.into(), time(s, "createdTimestamp")]
}

/// `otad image signatures`: the table of a record's signatures.
pub fn show_signatures(ctx: &mut Ctx, record_path: &str) -> Result<()> {
    let list = ctx.client.get(&format!("{record_path}/signatures"))?;
    let rows: Vec<Vec<String>> = items(&list).iter().map(signature_row).collect();
    ctx.out
        .show(&list, || table(&["KEY ID", "STATE", "SIGNED"], &rows));
    Ok(())
}

/// The fields of a submitted signature, for the upload's answer.
pub fn signature_fields(s: &Value) -> String {
    fields(&[
        ("signedBy", text(s, "keyId")),
        ("signed", time(s, "createdTimestamp")),
    ])
}
