//! `otad device download`: a verified, resumable download of the offered image into a file.
//!
//! The steps, each a function below: CHECK and pick the offer, find where to resume,
//! open the output and write the state that vouches for it, fetch the rest (saving the
//! state every `--save-every` MiB, telling the server the progress every 10 %), finish the
//! file, check it whole against the offer's hashes, REPORT DOWNLOADED, and with `--install`
//! the install step (`client/install.rs`). Not here: the state file's format (`state.rs`),
//! the progress line (`progress.rs`) and the printed result (`report.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sha2::Digest;

use super::progress::Meter;
use super::report::{note, print_downloaded};
use super::state::{DownloadState, load_state, save_state};
use super::target::{Target, check_identity, client_config, resolve};
use super::{DownloadArgs, Fail, InstalledArg, single_runtime};
use crate::cli::output::size;
use crate::client::device::{
    Client, ClientConfig, ClientError, Progress, ProgressReports, verify_offer,
};
use crate::client::install::{self, Ending};
use crate::ids::now_ms;
use crate::model::hex;
use crate::ocp::report;
use crate::ocp::wire::{self, OfferItem};
use crate::signing::{self, PublicKey};

/// The --trust-key values: 64 hex digits each, or a file whose text is them.
fn trusted_keys(args: &[String]) -> Result<Vec<PublicKey>, Fail> {
    args.iter()
        .map(|a| {
            let text = match signing::from_hex::<32>(a.trim()) {
                Some(k) => return Ok(k),
                None => fs::read_to_string(a).map_err(|e| {
                    Fail::Usage(format!(
                        "--trust-key {a}: neither 64 hex digits nor a readable file ({e})"
                    ))
                })?,
            };
            signing::from_hex::<32>(text.trim()).ok_or_else(|| {
                Fail::Usage(format!(
                    "--trust-key {a}: the file does not hold a public key (64 hex digits)"
                ))
            })
        })
        .collect()
}

/// The CHECK list of `download`: the TYPE=VN values plus --type with its VN (default 0).
fn download_check_list(args: &DownloadArgs) -> Result<Vec<(u16, u64)>, Fail> {
    let mut list: Vec<(u16, u64)> = Vec::new();
    let mut plain = None;
    for i in &args.installed {
        match *i {
            InstalledArg::Typed(t) => {
                list.retain(|(ft, _)| *ft != t.fw_type);
                list.push((t.fw_type, t.version_number));
            }
            InstalledArg::Plain(vn) => {
                if plain.replace(vn).is_some() {
                    return Err(Fail::Usage(
                        "--installed VN may be given once (use TYPE=VN for more types)".into(),
                    ));
                }
            }
        }
    }
    match args.fw_type {
        Some(t) => {
            if let Some(vn) = plain {
                list.retain(|(ft, _)| *ft != t);
                list.push((t, vn));
            } else if !list.iter().any(|(ft, _)| *ft == t) {
                list.push((t, 0));
            }
        }
        None if plain.is_some() => {
            return Err(Fail::Usage(
                "--installed VN needs --type T (or write it as --installed TYPE=VN)".into(),
            ));
        }
        None => {}
    }
    if list.is_empty() {
        return Err(Fail::Usage(
            "say which firmware to download: --type T [--installed VN], or --installed TYPE=VN"
                .into(),
        ));
    }
    if list.len() > wire::CHECK_MAX_ITEMS {
        return Err(Fail::Usage(format!(
            "at most {} firmware types per CHECK",
            wire::CHECK_MAX_ITEMS
        )));
    }
    Ok(list)
}

fn pick_offer(offers: Vec<OfferItem>, fw_type: Option<u16>) -> Result<OfferItem, Fail> {
    if let Some(t) = fw_type {
        return offers.into_iter().find(|o| o.fw_type == t).ok_or_else(|| {
            Fail::Error(format!(
                "nothing to download: no update offered for type {t}"
            ))
        });
    }
    if offers.len() > 1 {
        let types: Vec<String> = offers.iter().map(|o| o.fw_type.to_string()).collect();
        return Err(Fail::Usage(format!(
            "updates are offered for types {}; pick one with --type T",
            types.join(", ")
        )));
    }
    offers.into_iter().next().ok_or_else(|| {
        Fail::Error("nothing to download: no update offered for the reported types".into())
    })
}

/// BLAKE3 and SHA-256 of a whole file.
fn hash_file(path: &Path) -> std::io::Result<([u8; 32], [u8; 32], u64)> {
    let mut f = fs::File::open(path)?;
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        b3.update(&buf[..n]);
        sha.update(&buf[..n]);
        len += n as u64;
    }
    Ok((*b3.finalize().as_bytes(), sha.finalize().into(), len))
}

pub(super) fn download(args: &DownloadArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    let check_list = download_check_list(args)?;
    if args.state == args.out {
        return Err(Fail::Usage(
            "--state and --out must be different files".into(),
        ));
    }
    check_identity(&args.identity)?;
    let target = resolve(&args.endpoint, data_dir)?;
    let cfg = client_config(&target, &args.identity);
    let saved = load_state(&args.state, args.json);
    let rt = single_runtime()?;
    // Blocking file I/O inside the runtime is deliberate: this runtime serves exactly this
    // one download, so a write or fsync only delays the next frame, which is the point.
    rt.block_on(download_async(args, &target, &cfg, &check_list, saved))
}

async fn download_async(
    args: &DownloadArgs,
    target: &Target,
    cfg: &ClientConfig,
    check_list: &[(u16, u64)],
    saved: Option<DownloadState>,
) -> Result<ExitCode, Fail> {
    let addr = target.addr.as_str();
    let net = |e: ClientError| Fail::Error(e.explain(addr));

    let trusted = trusted_keys(&args.trust_keys)?;
    let features = (!trusted.is_empty()).then_some(wire::FEATURE_SIGNED_OFFERS);
    let mut client = Client::connect_with_features(cfg, None, features)
        .await
        .map_err(net)?;
    let offers = client.check(check_list).await.map_err(net)?;
    let offer = pick_offer(offers, args.fw_type)?;
    let accepted = saved
        .as_ref()
        .map(|s| s.accepted.clone())
        .unwrap_or_default();
    if !trusted.is_empty() {
        let floor = accepted.get(&offer.fw_type).copied().unwrap_or(0);
        if let Err(e) = verify_offer(&offer, &trusted, floor, now_ms() / 1000) {
            // The server hears of it (FAILED, integrity); nothing is written locally.
            let _ = client
                .report(offer.fw_type, offer.version_number, 5, 5, 0)
                .await;
            return Err(Fail::Error(format!("refused: {}", e.explain(addr))));
        }
    }
    let resume_from = resume_point(args, saved.as_ref(), &offer, client.granted.chunk_log);
    let mut sink = Sink::open(args, &offer, resume_from, accepted)?;
    client
        .report(
            offer.fw_type,
            offer.version_number,
            report::DOWNLOADING,
            report::RESULT_INITIAL,
            resume_from,
        )
        .await
        .map_err(net)?;

    let started = Instant::now();
    fetch_rest(&mut client, &mut sink, &offer, resume_from, args.json, addr).await?;
    let state = sink.complete(offer.size)?;
    check_whole(&mut client, args, &offer, &state).await?;
    if !trusted.is_empty() {
        let mut state = state;
        state.accepted.insert(offer.fw_type, offer.version_number);
        save_state(&args.state, &state).map_err(|e| file_err("write", &args.state, e))?;
    }
    client
        .report(
            offer.fw_type,
            offer.version_number,
            report::DOWNLOADED,
            report::RESULT_INITIAL,
            offer.size,
        )
        .await
        .map_err(net)?;
    let elapsed = started.elapsed();
    let confirmed = if args.install {
        let end = install::install(
            client,
            cfg,
            &offer,
            check_list,
            Duration::ZERO,
            Ending::Confirm,
        )
        .await
        .map_err(|(step, e)| {
            let when = match step {
                install::Step::Install => "the install report",
                install::Step::Confirm => "the confirming check after the install",
            };
            Fail::Error(format!(
                "downloaded {}, but {when} failed: {}",
                args.out.display(),
                e.explain(addr)
            ))
        })?;
        Some(end.map_or_else(Vec::new, |c| c.offers))
    } else {
        None
    };
    print_downloaded(
        args.json,
        &args.out,
        &offer,
        resume_from,
        elapsed,
        confirmed.as_deref(),
    );
    Ok(ExitCode::SUCCESS)
}

fn file_err(what: &str, p: &Path, e: std::io::Error) -> Fail {
    Fail::Error(format!("cannot {what} {}: {e}", p.display()))
}

/// Where to start: resume only the very same image (content-addressed: same BLAKE3, same
/// bytes) into an output file that is still there; anything else starts over.
fn resume_point(
    args: &DownloadArgs,
    saved: Option<&DownloadState>,
    offer: &OfferItem,
    chunk_log: u8,
) -> u64 {
    let blake3_hex = hex(&offer.blake3);
    match saved {
        Some(s) if s.blake3 == blake3_hex && s.size == offer.size && args.out.is_file() => {
            // GETs start on group boundaries; a finished download needs none.
            let g = crate::hashtree::group_size(chunk_log);
            match s.verified_upto.min(offer.size) {
                done if done == offer.size => done,
                part => part - part % g,
            }
        }
        Some(s) if s.blake3 != blake3_hex => {
            note(
                args.json,
                &format!(
                    "the offer changed since {} was written (image {} now, was {}); starting over",
                    args.state.display(),
                    blake3_hex.get(..16).unwrap_or(&blake3_hex),
                    s.blake3.get(..16).unwrap_or(&s.blake3)
                ),
            );
            0
        }
        _ => 0,
    }
}

/// The output file and the state that vouches for it, written as verified data arrives.
struct Sink<'a> {
    file: fs::File,
    out: &'a Path,
    state_path: &'a Path,
    state: DownloadState,
    /// Bytes of verified data between two saves of the state.
    save_every: u64,
    last_saved: u64,
    written: u64,
}

impl<'a> Sink<'a> {
    /// Opens `--out` (emptied unless resuming) and writes the state for this image before
    /// any new byte, so a stale state can never vouch for the new image.
    fn open(
        args: &'a DownloadArgs,
        offer: &OfferItem,
        resume_from: u64,
        accepted: BTreeMap<u16, u64>,
    ) -> Result<Self, Fail> {
        let out = args.out.as_path();
        let state = DownloadState {
            blake3: hex(&offer.blake3),
            size: offer.size,
            verified_upto: resume_from,
            version_number: offer.version_number,
            fw_type: offer.fw_type,
            accepted,
        };
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(out)
            .map_err(|e| file_err("open", out, e))?;
        if resume_from == 0 {
            file.set_len(0).map_err(|e| file_err("truncate", out, e))?;
        }
        save_state(&args.state, &state).map_err(|e| file_err("write", &args.state, e))?;
        if resume_from > 0 {
            note(
                args.json,
                &format!(
                    "resuming at {} of {} ({})",
                    size(resume_from),
                    size(offer.size),
                    args.state.display()
                ),
            );
        }
        Ok(Self {
            file,
            out,
            state_path: &args.state,
            state,
            save_every: args.save_every << 20,
            last_saved: resume_from,
            written: resume_from,
        })
    }

    /// Writes one verified piece; every `save_every` bytes the data is made durable first,
    /// then the state that vouches for it.
    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(data)?;
        let upto = offset + data.len() as u64;
        if upto - self.last_saved >= self.save_every {
            self.file.sync_data()?;
            self.state.verified_upto = upto;
            save_state(self.state_path, &self.state)?;
            self.last_saved = upto;
        }
        self.written = upto;
        Ok(())
    }

    /// After a failed fetch: keeps what verified so the next run continues from there.
    fn keep(&mut self, verified_upto: u64) -> bool {
        self.file
            .sync_data()
            .and_then(|()| {
                self.state.verified_upto = verified_upto;
                save_state(self.state_path, &self.state)
            })
            .is_ok()
    }

    /// The whole image is on disk: its final length, durable, and the state saying so.
    fn complete(self, size: u64) -> Result<DownloadState, Fail> {
        let Self {
            file,
            out,
            state_path,
            mut state,
            ..
        } = self;
        file.set_len(size)
            .and_then(|()| file.sync_all())
            .map_err(|e| file_err("write", out, e))?;
        drop(file);
        state.verified_upto = size;
        save_state(state_path, &state).map_err(|e| file_err("write", state_path, e))?;
        Ok(state)
    }
}

/// Fetches everything from `resume_from` on into `sink`, drawing the progress line. On a
/// failure, what verified is kept and the message says how to resume.
async fn fetch_rest(
    client: &mut Client,
    sink: &mut Sink<'_>,
    offer: &OfferItem,
    resume_from: u64,
    json_mode: bool,
    addr: &str,
) -> Result<(), Fail> {
    let mut progress = Progress {
        blake3: offer.blake3,
        size: offer.size,
        verified_upto: resume_from,
    };
    let mut meter = Meter::new(offer.size, resume_from, json_mode);
    let mut reports = ProgressReports::new(offer, resume_from);
    let mut sink_error: Option<Fail> = None;
    let result = if progress.verified_upto == offer.size {
        Ok(())
    } else {
        client
            .download_reporting(&mut progress, None, Some(&mut reports), |offset, data| {
                if let Err(e) = sink.write(offset, data) {
                    let message = format!(
                        "cannot write {} or {}: {e}",
                        sink.out.display(),
                        sink.state_path.display()
                    );
                    sink_error = Some(Fail::Error(message));
                    return Err(std::io::Error::other("local write failed"));
                }
                meter.update(sink.written);
                Ok(())
            })
            .await
    };
    meter.finish();
    let Err(e) = result else {
        return Ok(());
    };
    if let Some(local) = sink_error {
        return Err(local);
    }
    let how = if sink.keep(progress.verified_upto) {
        format!(
            "; run the same command again to resume from {}",
            size(progress.verified_upto)
        )
    } else {
        String::new()
    };
    Err(Fail::Error(format!(
        "download stopped at {} of {}: {}{how}",
        size(progress.verified_upto),
        size(offer.size),
        e.explain(addr)
    )))
}

/// Hashes the finished file against the offer. The chunks verified, so a mismatch means
/// the file was changed underneath (or resumed from a file that was): the progress is
/// forgotten so the next run starts clean, and the server hears of the failure.
async fn check_whole(
    client: &mut Client,
    args: &DownloadArgs,
    offer: &OfferItem,
    state: &DownloadState,
) -> Result<(), Fail> {
    let out_path = &args.out;
    let (b3, sha, len) = hash_file(out_path).map_err(|e| file_err("read", out_path, e))?;
    if b3 == offer.blake3 && sha == offer.sha256 && len == offer.size {
        return Ok(());
    }
    // The progress goes; the anti-rollback floor stays.
    if state.accepted.is_empty() {
        let _ = fs::remove_file(&args.state);
    } else {
        let reset = DownloadState {
            blake3: String::new(),
            size: 0,
            verified_upto: 0,
            ..state.clone()
        };
        let _ = save_state(&args.state, &reset);
    }
    let _ = client
        .report(
            offer.fw_type,
            offer.version_number,
            report::FAILED,
            report::RESULT_INTEGRITY_FAILURE,
            offer.size,
        )
        .await;
    Err(Fail::Error(format!(
        "{} does not match the offered image's BLAKE3/SHA-256 (was it changed while downloading?); progress reset, run again to download it anew",
        out_path.display()
    )))
}
