//! `otad image ...`: firmware images of the partner in scope: the one-shot upload (binary →
//! moveToRepository → pool record → associations) and its two-stage CI form
//! (`--record-only`, then `--attach VN`), listing, showing, updating and deleting pool
//! records, associating them with device types and pushing one to a device.
//! Not here: firmware and device types (`types.rs`), devices (`devices.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use super::client::{CliError, Context, Kind, Result, record_mut};
use super::output::{Progress, fields, items, table, text, time};
use super::session::Ctx;
use super::signing::{
    BinaryFacts, ManifestBounds, load_key, show_signatures, sign_record, signature_fields,
};
use crate::client::http::seg;
use crate::model::hex;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload a firmware binary and create its pool record (and associations) in one go.
    ///
    /// Two-stage CI flow: create the record before the build with --record-only, then
    /// attach the built binary with --attach VN.
    ///
    /// Type 4 (device descriptions) never enters the pool: it is created under the one
    /// device type named by --associate.
    ///
    /// Example: otad image upload fw.bin --type 101 --name main --version 1.4.2 --tag beta --associate $DT
    ///
    /// Example: otad image upload --record-only --type 101 --name main --version 1.4.3
    ///
    /// Example: otad image upload fw.bin --type 101 --attach 7
    ///
    /// Example: otad image upload desc.bin --type 4 --name kettle --version 3 --associate $DT
    Upload(UploadArgs),
    /// List images: the pool, or those associated with --device-type.
    ///
    /// Example: otad image list --type 101 --tag beta
    List {
        /// Only this firmware type.
        #[arg(long = "type", value_name = "T")]
        fw_type: Option<u16>,
        /// Only images with all these tags.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// The images associated with this device type (instead of the whole pool).
        #[arg(long, value_name = "ID")]
        device_type: Option<String>,
    },
    /// Show one pool record and its associations.
    ///
    /// Example: otad image show 101 7
    Show(Which),
    /// Does a (type, name, version) exist? Prints true/false; exit code 0 if it does, 3 if not.
    ///
    /// Example: otad image exists --type 101 --name main --version 1.4.2
    Exists {
        #[arg(long = "type", value_name = "T")]
        fw_type: u16,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
    },
    /// Change a pool record's name, version, description or tags (the binary stays).
    ///
    /// Example: otad image update 101 7 --tag stable --tag eu
    Update {
        #[command(flatten)]
        which: Which,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// New description ("" clears it).
        #[arg(long)]
        description: Option<String>,
        /// Replace the tags with these (repeat).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Remove every tag.
        #[arg(long, conflicts_with = "tags")]
        clear_tags: bool,
    },
    /// Delete a pool record (refused while it is associated with a device type).
    ///
    /// Example: otad image delete 101 7
    Delete(Which),
    /// Offer an image to a device type's devices.
    ///
    /// Example: otad image associate 101 7 $DEVICE_TYPE_ID
    Associate {
        #[command(flatten)]
        which: Which,
        /// Device type id.
        device_type: String,
    },
    /// Stop offering an image to a device type (the pool record stays).
    ///
    /// Example: otad image dissociate 101 7 $DEVICE_TYPE_ID
    Dissociate {
        #[command(flatten)]
        which: Which,
        device_type: String,
    },
    /// Push an image to one device now (never a downgrade).
    ///
    /// Example: otad image push 101 7 kettle-0001
    Push {
        #[command(flatten)]
        which: Which,
        /// Device id.
        device: String,
    },
    /// Sign a pool record's attached binary with a private key and submit the signature
    /// (the two-stage CI flow; `upload --sign-key` does it in one go). FILE must be the
    /// attached binary: it is hashed here, and the server checks the manifest against the
    /// record.
    ///
    /// Example: otad image sign 101 7 --sign-key ci-signing.key --file build/kettle.bin
    Sign {
        #[command(flatten)]
        which: Which,
        /// Private key file (as `otad keygen` writes it).
        #[arg(long, value_name = "KEY")]
        sign_key: PathBuf,
        /// The binary attached to the record.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        bounds: ManifestBounds,
    },
    /// List a pool record's signatures and whether each still counts.
    ///
    /// Example: otad image signatures 101 7
    Signatures(Which),
}

/// A pool record by firmware type and version number.
#[derive(Debug, Args)]
pub struct Which {
    /// Firmware type.
    #[arg(value_name = "TYPE")]
    fw_type: u16,
    /// Version number (the server's, not the version string).
    #[arg(value_name = "VN")]
    vn: u64,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Firmware binary (not with --record-only).
    #[arg(value_name = "FILE", required_unless_present = "record_only")]
    file: Option<PathBuf>,
    /// Firmware type.
    #[arg(long = "type", value_name = "T")]
    fw_type: u16,
    /// Image name.
    #[arg(long, required_unless_present = "attach")]
    name: Option<String>,
    /// The partner's version string, e.g. 1.4.2+7d.
    #[arg(long, required_unless_present = "attach")]
    version: Option<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Tag (repeat for several).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Associate with this device type (repeat for several).
    #[arg(long, value_name = "DEVICE_TYPE")]
    associate: Vec<String>,
    /// Only create the pool record, without a binary (attach one later with --attach).
    #[arg(long, conflicts_with_all = ["file", "attach"])]
    record_only: bool,
    /// Type 4 (device description) only: stored with the image as given.
    #[arg(long, value_name = "ID")]
    device_description_id: Option<String>,
    /// Type 4 (device description) only: stored with the image as given.
    #[arg(long, value_name = "ID")]
    device_profile_id: Option<String>,
    /// Attach FILE to the existing pool record with this version number.
    #[arg(long, value_name = "VN",
          conflicts_with_all = ["name", "version", "description", "tags", "associate"])]
    attach: Option<u64>,
    /// Sign the image with this private key (as `otad keygen` writes it): the record is
    /// created first for its version number, the binary hashed while it is sent, and the
    /// signature submitted before any association.
    #[arg(long, value_name = "KEY", conflicts_with = "record_only")]
    sign_key: Option<PathBuf>,
    #[command(flatten)]
    bounds: ManifestBounds,
}

fn record_path(base: &str, w: &Which) -> String {
    format!("{base}/pool/types/{}/versionNumbers/{}", w.fw_type, w.vn)
}

fn label(w: &Which) -> String {
    format!("image {}/{}", w.fw_type, w.vn)
}

/// The SHA-256 at the end of a repository URL, shortened for tables.
fn binary_of(r: &Value) -> String {
    let url = text(r, "url");
    match url.rsplit('/').next() {
        Some(sha) if !url.is_empty() => sha.chars().take(12).collect(),
        _ => "-".into(),
    }
}

fn record_row(r: &Value) -> Vec<String> {
    vec![
        text(r, "type"),
        text(r, "versionNumber"),
        text(r, "name"),
        text(r, "version"),
        text(r, "tags"),
        binary_of(r),
        time(r, "updatedTimestamp"),
    ]
}

const RECORD_HEADER: &[&str] = &["TYPE", "VN", "NAME", "VERSION", "TAGS", "BINARY", "UPDATED"];

fn record_fields(r: &Value) -> String {
    fields(&[
        ("id", text(r, "id")),
        ("type", text(r, "type")),
        ("versionNumber", text(r, "versionNumber")),
        ("name", text(r, "name")),
        ("version", text(r, "version")),
        ("description", text(r, "description")),
        ("tags", text(r, "tags")),
        ("url", text(r, "url")),
        ("sha256", text(r, "sha256")),
        ("deviceTypeId", text(r, "deviceTypeId")),
        ("deviceDescriptionId", text(r, "deviceDescriptionId")),
        ("deviceProfileId", text(r, "deviceProfileId")),
        ("created", time(r, "createdTimestamp")),
        ("updated", time(r, "updatedTimestamp")),
    ])
}

/// What `send_binary` sent: the SHA-256 (hex) the server confirmed, the repository URL,
/// and the facts a manifest needs (BLAKE3 only when asked for).
struct Sent {
    sha: String,
    url: String,
    facts: Option<BinaryFacts>,
}

/// Streams `file` to `.../binaries`, checks the server hashed what was sent, and moves it
/// into the repository. Returns (sha256 hex, repository URL).
pub(super) fn send_binary(
    ctx: &mut Ctx,
    base: &str,
    file: &std::path::Path,
) -> Result<(String, String)> {
    send_binary_hashing(ctx, base, file, false).map(|s| (s.sha, s.url))
}

/// `send_binary`, computing the BLAKE3 in the same pass when `blake3` (for signing).
fn send_binary_hashing(
    ctx: &mut Ctx,
    base: &str,
    file: &std::path::Path,
    blake3: bool,
) -> Result<Sent> {
    let shown = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let progress = Progress::new(&format!("uploading {shown}"));
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let sent = ctx.client.upload_file_hashing(
        Method::POST,
        &format!("{base}/binaries?filename={}", seg(&shown)),
        file,
        "application/octet-stream",
        &progress,
        blake3,
    );
    progress.finish();
    let sent = sent.map_err(|e| e.context(&format!("cannot upload {}", file.display())))?;
    let v: Value = serde_json::from_slice(&sent.body).unwrap_or(Value::Null);
    let sha = text(&v, "value");
    let local = hex(&sent.sha256);
    if sha != local {
        return Err(CliError::fail(format!(
            "the server stored SHA-256 {sha:?} but {} has {local}; upload again",
            file.display()
        )));
    }
    let moved = ctx
        .client
        .json(
            Method::POST,
            &format!("{base}/binaries/moveToRepository"),
            Some(&json!({ "value": sha })),
        )
        .map_err(|e| e.context("cannot move the binary into the repository"))?;
    let facts = sent.blake3.map(|b3| BinaryFacts {
        size,
        sha256: sent.sha256,
        blake3: b3,
    });
    Ok(Sent {
        sha,
        url: text(&moved, "value"),
        facts,
    })
}

fn upload(mut args: UploadArgs, ctx: &mut Ctx) -> Result<()> {
    let base = ctx.base()?;
    let t = args.fw_type;
    if let Some(vn) = args.attach {
        let file = args
            .file
            .ok_or_else(|| CliError::usage("--attach needs the FILE to attach"))?;
        let which = Which { fw_type: t, vn };
        let path = record_path(&base, &which);
        let mut record = ctx
            .client
            .get(&path)
            .map_err(|e| e.context(&label(&which)))?;
        if !text(&record, "url").is_empty() {
            return Err(CliError::conflict(format!(
                "{} already has a binary ({}); upload a new version instead",
                label(&which),
                text(&record, "url")
            )));
        }
        let key = args.sign_key.as_deref().map(load_key).transpose()?;
        let sent = send_binary_hashing(ctx, &base, &file, key.is_some())?;
        record_mut(&mut record)?.insert("url".into(), Value::String(sent.url.clone()));
        ctx.client
            .json(Method::PUT, &path, Some(&record))
            .map_err(|e| e.context(&format!("cannot attach the binary to {}", label(&which))))?;
        let mut r = ctx.client.get(&path)?;
        let signed = match (&key, &sent.facts) {
            (Some(key), Some(facts)) => {
                Some(sign_record(ctx, &path, &r, facts, key, &args.bounds)?)
            }
            _ => None,
        };
        record_mut(&mut r)?.insert("sha256".into(), Value::String(sent.sha));
        show_uploaded(ctx, r, signed)?;
        return Ok(());
    }
    let (Some(name), Some(version)) = (args.name.take(), args.version.take()) else {
        return Err(CliError::usage("pass --name and --version"));
    };
    let what = format!("image {name} {version} (type {t})");
    if t == DEVICE_DESCRIPTION {
        return upload_device_description(args, name, version, ctx);
    }
    // Refuse before sending a large binary for a record that cannot be created.
    let exists = ctx.client.get(&format!(
        "{base}/pool/types/{t}/names/{}/versions/{}/exists",
        seg(&name),
        seg(&version)
    ))?;
    if exists.get("value").and_then(Value::as_bool) == Some(true) {
        return Err(CliError::conflict(format!(
            "{what} exists already (version_exists); upload it under a new --version"
        )));
    }
    for dt in &args.associate {
        ctx.client
            .get(&format!("{base}/deviceTypes/{}", seg(dt)))
            .map_err(|e| e.context(&format!("--associate {dt}")))?;
    }
    if let Some(key_path) = args.sign_key.clone() {
        return upload_signed(args, name, version, &key_path, ctx);
    }
    let (sha, url) = match &args.file {
        Some(file) if !args.record_only => {
            let (sha, url) = send_binary(ctx, &base, file)?;
            (Some(sha), url)
        }
        _ => (None, String::new()),
    };
    let mut body = json!({
        "name": name,
        "type": t,
        "version": version,
        "url": url,
        "tags": args.tags,
    });
    if let Some(d) = args.description {
        body["description"] = Value::String(d);
    }
    if !args.associate.is_empty() {
        let mut assoc = Map::new();
        assoc.insert(ctx.partner()?.to_string(), json!(args.associate));
        body["associations"] = Value::Object(assoc);
    }
    let mut r = ctx
        .client
        .json(Method::POST, &format!("{base}/pool"), Some(&body))
        .map_err(|e| e.context(&format!("cannot create {what}")))?;
    if let Some(sha) = sha {
        record_mut(&mut r)?.insert("sha256".into(), Value::String(sha));
    }
    ctx.out.show(&r, || record_fields(&r));
    Ok(())
}

/// The record with the signature's fields beside it, when there is one.
fn show_uploaded(ctx: &mut Ctx, mut r: Value, signed: Option<Value>) -> Result<()> {
    let extra = signed.as_ref().map(signature_fields);
    if let Some(s) = signed {
        record_mut(&mut r)?.insert("signature".into(), s);
    }
    ctx.out.show(&r, || {
        let mut t = record_fields(&r);
        if let Some(e) = &extra {
            t.push_str(e);
        }
        t
    });
    Ok(())
}

/// `upload --sign-key`: record (for its version number) → binary, hashed while it is sent
/// → attach → sign and submit → associate. Associations come last so that a device type
/// that requires signatures never holds the image unsigned.
fn upload_signed(
    args: UploadArgs,
    name: String,
    version: String,
    key_path: &std::path::Path,
    ctx: &mut Ctx,
) -> Result<()> {
    let base = ctx.base()?;
    let key = load_key(key_path)?;
    let file = args
        .file
        .as_deref()
        .ok_or_else(|| CliError::usage("--sign-key needs the FILE to sign"))?;
    let t = args.fw_type;
    let mut body = json!({
        "name": name,
        "type": t,
        "version": version,
        "url": "",
        "tags": args.tags,
    });
    if let Some(d) = &args.description {
        body["description"] = Value::String(d.clone());
    }
    let what = format!("image {name} {version} (type {t})");
    let mut record = ctx
        .client
        .json(Method::POST, &format!("{base}/pool"), Some(&body))
        .map_err(|e| e.context(&format!("cannot create {what}")))?;
    let vn = text(&record, "versionNumber");
    let path = format!("{base}/pool/types/{t}/versionNumbers/{vn}");
    // From here on the record exists: a failure says how to finish it.
    let resume = |e: CliError| {
        e.context(&format!(
            "record {t}/{vn} was created; finish with `otad image upload FILE --type {t} --attach {vn} --sign-key KEY`"
        ))
    };
    let sent = send_binary_hashing(ctx, &base, file, true).map_err(resume)?;
    let facts = sent
        .facts
        .ok_or_else(|| CliError::fail("the upload did not compute the BLAKE3"))?;
    record_mut(&mut record)?.insert("url".into(), Value::String(sent.url));
    ctx.client
        .json(Method::PUT, &path, Some(&record))
        .map_err(|e| resume(e.into()))?;
    let mut r = ctx.client.get(&path)?;
    let signed = sign_record(ctx, &path, &r, &facts, &key, &args.bounds).map_err(|e| {
        e.context(&format!(
            "record {t}/{vn} has its binary; sign it with `otad image sign {t} {vn} --sign-key KEY --file FILE`"
        ))
    })?;
    for dt in &args.associate {
        ctx.client
            .json(
                Method::POST,
                &format!("{base}/deviceTypes/{}/firmwareImages", seg(dt)),
                Some(&r),
            )
            .map_err(|e| {
                e.context(&format!(
                    "{what} is uploaded and signed but not associated with {dt}"
                ))
            })?;
    }
    record_mut(&mut r)?.insert("sha256".into(), Value::String(sent.sha));
    show_uploaded(ctx, r, Some(signed))
}

/// `image sign`: hashes FILE, checks it is the record's binary, signs and submits.
fn sign_existing(
    ctx: &mut Ctx,
    which: &Which,
    key_path: &std::path::Path,
    file: &std::path::Path,
    bounds: &ManifestBounds,
) -> Result<()> {
    let base = ctx.base()?;
    let key = load_key(key_path)?;
    let path = record_path(&base, which);
    let record = ctx
        .client
        .get(&path)
        .map_err(|e| e.context(&label(which)))?;
    let url = text(&record, "url");
    let (b3, sha, size) = hash_file(file)
        .map_err(|e| CliError::fail(format!("cannot read {}: {e}", file.display())))?;
    if url.is_empty() {
        return Err(CliError::conflict(format!(
            "{} has no binary yet; attach it first (otad image upload FILE --type {} --attach {})",
            label(which),
            which.fw_type,
            which.vn
        )));
    }
    if !url.ends_with(&hex(&sha)) {
        return Err(CliError::fail(format!(
            "{} is not the binary attached to {} (its SHA-256 {} is not in {url})",
            file.display(),
            label(which),
            hex(&sha)
        )));
    }
    let facts = BinaryFacts {
        size,
        sha256: sha,
        blake3: b3,
    };
    let signed = sign_record(ctx, &path, &record, &facts, &key, bounds)?;
    ctx.out.show(&signed, || signature_fields(&signed));
    Ok(())
}

/// BLAKE3, SHA-256 and length of a file, in one pass.
fn hash_file(path: &std::path::Path) -> std::io::Result<([u8; 32], [u8; 32], u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((*b3.finalize().as_bytes(), sha.finalize().into(), len));
        }
        b3.update(&buf[..n]);
        sha.update(&buf[..n]);
        len += n as u64;
    }
}

/// The firmware type of device descriptions, which live under one device type and never in
/// the pool.
const DEVICE_DESCRIPTION: u16 = 4;

/// Type 4: the binary, then the record and its association in one call
/// (`POST .../deviceTypes/{DT}/firmwareImages`).
fn upload_device_description(
    args: UploadArgs,
    name: String,
    version: String,
    ctx: &mut Ctx,
) -> Result<()> {
    let base = ctx.base()?;
    let ([dt], Some(file), false) = (args.associate.as_slice(), &args.file, args.record_only)
    else {
        return Err(CliError::usage(
            "a type 4 (device description) image belongs to one device type and needs its binary: pass FILE and exactly one --associate DEVICE_TYPE",
        ));
    };
    let (sha, url) = send_binary(ctx, &base, file)?;
    let mut body = json!({
        "name": name,
        "type": DEVICE_DESCRIPTION,
        "version": version,
        "url": url,
        "tags": args.tags,
    });
    for (key, value) in [
        ("description", args.description),
        ("deviceDescriptionId", args.device_description_id),
        ("deviceProfileId", args.device_profile_id),
    ] {
        if let Some(v) = value {
            body[key] = Value::String(v);
        }
    }
    let mut r = ctx
        .client
        .json(
            Method::POST,
            &format!("{base}/deviceTypes/{}/firmwareImages", seg(dt)),
            Some(&body),
        )
        .map_err(|e| {
            e.context(&format!(
                "cannot create image {name} {version} (type 4) under device type {dt}"
            ))
        })?;
    record_mut(&mut r)?.insert("sha256".into(), Value::String(sha));
    ctx.out.show(&r, || record_fields(&r));
    Ok(())
}

pub fn run(cmd: ImageCommand, ctx: &mut Ctx) -> Result<()> {
    let base = ctx.base()?;
    match cmd {
        ImageCommand::Upload(args) => upload(args, ctx)?,
        ImageCommand::List {
            fw_type,
            tags,
            device_type,
        } => {
            let mut path = match &device_type {
                Some(dt) => format!("{base}/deviceTypes/{}/firmwareImages", seg(dt)),
                None => format!("{base}/pool"),
            };
            if let Some(t) = fw_type {
                path.push_str(&format!("/types/{t}"));
            }
            if !tags.is_empty() {
                path.push_str(&format!("?tags={}", seg(&tags.join(","))));
            }
            let list = ctx.pages(&path)?;
            let rows: Vec<Vec<String>> = list.iter().map(record_row).collect();
            let value = Value::Array(list);
            ctx.out.show(&value, || table(RECORD_HEADER, &rows));
        }
        ImageCommand::Show(which) => {
            let path = record_path(&base, &which);
            let mut r = ctx
                .client
                .get(&path)
                .map_err(|e| e.context(&label(&which)))?;
            let assoc = ctx.client.get(&format!("{path}/associations"))?;
            let rows: Vec<Vec<String>> = items(&assoc)
                .iter()
                .map(|a| {
                    vec![
                        text(a, "deviceTypeId"),
                        text(a, "deviceTypeName"),
                        text(a, "name"),
                    ]
                })
                .collect();
            record_mut(&mut r)?.insert("associations".into(), assoc);
            ctx.out.show(&r, || {
                let mut t = record_fields(&r);
                if !rows.is_empty() {
                    t.push('\n');
                    t.push_str(&table(&["DEVICE TYPE", "NAME", "PARTNER"], &rows));
                }
                t
            });
        }
        ImageCommand::Exists {
            fw_type,
            name,
            version,
        } => {
            let v = ctx.client.get(&format!(
                "{base}/pool/types/{fw_type}/names/{}/versions/{}/exists",
                seg(&name),
                seg(&version)
            ))?;
            let exists = v.get("value").and_then(Value::as_bool) == Some(true);
            ctx.out
                .show(&json!({ "exists": exists }), || exists.to_string());
            if !exists {
                // The answer is printed already; only the exit code says "no".
                return Err(CliError::new(Kind::NotFound, ""));
            }
        }
        ImageCommand::Update {
            which,
            name,
            version,
            description,
            tags,
            clear_tags,
        } => {
            let path = record_path(&base, &which);
            let mut r = ctx
                .client
                .get(&path)
                .map_err(|e| e.context(&label(&which)))?;
            let fields = record_mut(&mut r)?;
            if let Some(n) = name {
                fields.insert("name".into(), Value::String(n));
            }
            if let Some(v) = version {
                fields.insert("version".into(), Value::String(v));
            }
            if let Some(d) = description {
                fields.insert("description".into(), Value::String(d));
            }
            if clear_tags {
                fields.insert("tags".into(), json!([]));
            } else if !tags.is_empty() {
                fields.insert("tags".into(), json!(tags));
            }
            ctx.client
                .json(Method::PUT, &path, Some(&r))
                .map_err(|e| e.context(&format!("cannot update {}", label(&which))))?;
            let r = ctx.client.get(&path)?;
            ctx.out.show(&r, || record_fields(&r));
        }
        ImageCommand::Delete(which) => {
            ctx.client
                .json(Method::DELETE, &record_path(&base, &which), None)
                .map_err(|e| e.context(&format!("cannot delete {}", label(&which))))?;
            if ctx.out.json {
                ctx.out.show(
                    &json!({ "type": which.fw_type, "versionNumber": which.vn.to_string(), "deleted": true }),
                    String::new,
                );
            }
        }
        ImageCommand::Associate { which, device_type } => {
            let record = ctx
                .client
                .get(&record_path(&base, &which))
                .map_err(|e| e.context(&label(&which)))?;
            let r = ctx
                .client
                .json(
                    Method::POST,
                    &format!("{base}/deviceTypes/{}/firmwareImages", seg(&device_type)),
                    Some(&record),
                )
                .map_err(|e| {
                    e.context(&format!(
                        "cannot associate {} with device type {device_type}",
                        label(&which)
                    ))
                })?;
            ctx.out.show(&r, || record_fields(&r));
        }
        ImageCommand::Dissociate { which, device_type } => {
            ctx.client
                .json(
                    Method::DELETE,
                    &format!(
                        "{base}/deviceTypes/{}/firmwareImages/types/{}/versionNumbers/{}",
                        seg(&device_type),
                        which.fw_type,
                        which.vn
                    ),
                    None,
                )
                .map_err(|e| {
                    e.context(&format!(
                        "cannot dissociate {} from device type {device_type}",
                        label(&which)
                    ))
                })?;
            if ctx.out.json {
                ctx.out.show(
                    &json!({ "type": which.fw_type, "versionNumber": which.vn.to_string(), "deviceTypeId": device_type, "associated": false }),
                    String::new,
                );
            }
        }
        ImageCommand::Sign {
            which,
            sign_key,
            file,
            bounds,
        } => sign_existing(ctx, &which, &sign_key, &file, &bounds)?,
        ImageCommand::Signatures(which) => {
            let path = record_path(&base, &which);
            show_signatures(ctx, &path)?;
        }
        ImageCommand::Push { which, device } => {
            let d = ctx
                .client
                .get(&format!("{base}/devices/{}", seg(&device)))
                .map_err(|e| e.context(&format!("device {device}")))?;
            let record = ctx
                .client
                .get(&record_path(&base, &which))
                .map_err(|e| e.context(&label(&which)))?;
            let dt = text(&d, "deviceTypeId");
            let id = text(&record, "id");
            let v = ctx
                .client
                .json(
                    Method::PUT,
                    &format!(
                        "{base}/deviceTypes/{}/firmwareImages/{}/push",
                        seg(&dt),
                        seg(&id)
                    ),
                    Some(&json!({ "value": device })),
                )
                .map_err(|e| {
                    let e = CliError::from(e);
                    // The push goes through the device's own device type, so "no such
                    // image" there means the image is not associated with it.
                    if e.kind == Kind::NotFound && e.message.contains("unknown_image") {
                        CliError::not_found(format!(
                            "cannot push {} to {device}: it is not associated with the device's type {dt}; run `otad image associate {} {} {dt}` first",
                            label(&which),
                            which.fw_type,
                            which.vn
                        ))
                    } else {
                        e.context(&format!("cannot push {} to {device}", label(&which)))
                    }
                })?;
            ctx.out.show(&v, || {
                format!(
                    "{} is {} for {device}; it is offered at the device's next check",
                    label(&which),
                    text(&v, "state")
                )
            });
        }
    }
    Ok(())
}
