//! What the device commands print: offers (a table or JSON), the result of a download,
//! the totals of a simulation, and notes beside a result.
//!
//! Not here: the progress line of a download (`progress.rs`) and the simulator's JSON form
//! (`client/simulate/`'s `Report::to_json`, stable for scripts).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::output::{size, table};
use crate::client::simulate;
use crate::model::hex;
use crate::ocp::wire::OfferItem;

pub(super) fn offer_json(o: &OfferItem) -> Value {
    // versionNumber is a string, as everywhere in the API (u64 does not fit a JS number).
    let mut v = json!({
        "type": o.fw_type,
        "versionNumber": o.version_number.to_string(),
        "version": o.version,
        "size": o.size,
        "sha256": hex(&o.sha256),
        "blake3": hex(&o.blake3),
        "pushed": o.pushed,
    });
    if let (Some(s), Some(m)) = (&o.signed, v.as_object_mut()) {
        let ids: Vec<String> = s.signatures.iter().map(|(id, _)| hex(id)).collect();
        m.insert("signedBy".into(), json!(ids));
    }
    v
}

/// `device check --json`: the device, its poll interval and the offers.
pub(super) fn print_check_json(device_id: &str, poll_interval_s: u32, offers: &[OfferItem]) {
    let v = json!({
        "deviceId": device_id,
        "pollIntervalSeconds": poll_interval_s,
        "offers": offers.iter().map(offer_json).collect::<Vec<_>>(),
    });
    println!("{v}");
}

/// `device check`: the offers as a table, or why there are none.
pub(super) fn print_offers(offers: &[OfferItem], installed_empty: bool) {
    if offers.is_empty() {
        if installed_empty {
            println!(
                "no offers: the server offers only for reported types; pass --installed TYPE=VN"
            );
        } else {
            println!("up to date: nothing offered for the reported types");
        }
        return;
    }
    let rows: Vec<Vec<String>> = offers
        .iter()
        .map(|o| {
            vec![
                o.fw_type.to_string(),
                o.version_number.to_string(),
                o.version.clone(),
                o.size.to_string(),
                hex(&o.sha256),
                if o.pushed { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TYPE",
                "VERSION_NUMBER",
                "VERSION",
                "SIZE",
                "SHA256",
                "PUSHED"
            ],
            &rows
        )
    );
}

/// `device download`: what was downloaded, from where on, and how fast; with `--install`,
/// `confirmed` holds what the confirming CHECK offered next.
pub(super) fn print_downloaded(
    json_mode: bool,
    out_path: &Path,
    offer: &OfferItem,
    resume_from: u64,
    elapsed: Duration,
    confirmed: Option<&[OfferItem]>,
) {
    let fetched = offer.size - resume_from;
    if json_mode {
        let mut v = offer_json(offer);
        if let Some(m) = v.as_object_mut() {
            m.insert("out".into(), json!(out_path.display().to_string()));
            m.insert("resumedFrom".into(), json!(resume_from));
            m.insert("fetched".into(), json!(fetched));
            m.insert(
                "elapsedSeconds".into(),
                json!((elapsed.as_secs_f64() * 1000.0).round() / 1000.0),
            );
            if let Some(next) = confirmed {
                m.insert("installed".into(), json!(true));
                m.insert(
                    "nextOffers".into(),
                    Value::Array(next.iter().map(offer_json).collect()),
                );
            }
        }
        println!("{v}");
    } else {
        println!(
            "downloaded {}: type {} version {} (versionNumber {}), {} bytes, sha256 {}",
            out_path.display(),
            offer.fw_type,
            offer.version,
            offer.version_number,
            offer.size,
            hex(&offer.sha256)
        );
        println!(
            "fetched {} in {:.2} s{}; reported DOWNLOADED",
            size(fetched),
            elapsed.as_secs_f64(),
            if resume_from > 0 {
                format!(" (resumed at {})", size(resume_from))
            } else {
                String::new()
            }
        );
        if let Some(next) = confirmed {
            println!(
                "installed: reported INSTALLING and INSTALLED, reconnected and checked in with versionNumber {}",
                offer.version_number
            );
            for o in next {
                println!(
                    "next offer: type {} version {} (versionNumber {})",
                    o.fw_type, o.version, o.version_number
                );
            }
        }
    }
}

pub(super) fn print_report(r: &simulate::Report) {
    let secs = r.elapsed.as_secs_f64();
    let how = match r.mode {
        simulate::Mode::Once => format!("{} at a time", r.concurrency),
        _ => format!("all at once, {} connecting at a time", r.concurrency),
    };
    println!(
        "devices     {} ok, {} failed (of {}, {how})",
        r.ok, r.failed, r.devices
    );
    if r.not_offered > 0 {
        println!("not offered {} (counted as up to date)", r.not_offered);
    }
    println!(
        "elapsed     {secs:.2} s: {:.1} devices/s",
        r.devices_per_sec()
    );
    match r.mode {
        simulate::Mode::Hold { hold, ping_every } => println!(
            "held        {} devices for {:.0} s after the last connected, {} PINGs (every {:.0} s)",
            r.held,
            hold.as_secs_f64(),
            r.pings,
            ping_every.as_secs_f64()
        ),
        simulate::Mode::Repeat { warmup, .. } => println!(
            "window      {:.2} s after {:.0} s of warm-up; {} whole images (all passes)",
            r.measured().as_secs_f64(),
            warmup.as_secs_f64(),
            r.images
        ),
        simulate::Mode::Once => {}
    }
    if let Some(i) = r.installs {
        println!(
            "installs    {} installed: {} confirmed, {} never confirmed; {} failed (injected)",
            i.installed, i.confirmed, i.never_confirmed, i.failed
        );
    }
    let what = if r.raw { "raw, unverified" } else { "verified" };
    println!(
        "data        {:.2} MB {what}: {:.2} MB/s",
        r.bytes as f64 / 1e6,
        r.mb_per_sec()
    );
    println!(
        "chunks      {} {what} ({} bytes per GET, groups of {}): {:.0} chunks/s",
        r.chunks,
        r.get_bytes,
        r.chunk_bytes,
        r.chunks_per_sec()
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let rows: Vec<Vec<String>> = [
        ("connect+HELLO", r.connect),
        ("CHECK→OFFER", r.check),
        ("download", r.download),
        ("GET→DATA", r.chunk),
    ]
    .iter()
    .filter(|(_, p)| p.count > 0)
    .map(|(name, p)| {
        vec![
            (*name).to_string(),
            p.count.to_string(),
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max),
        ]
    })
    .collect();
    print!(
        "{}",
        table(&["LATENCY", "N", "P50", "P90", "P99", "MAX"], &rows)
    );
    if !r.errors.is_empty() {
        println!("first {} errors:", r.errors.len());
        for f in &r.errors {
            println!("  {} ({}): {}", f.device_id, f.stage.as_str(), f.error);
        }
    }
}

/// A message beside the result: stdout normally, stderr when stdout carries JSON.
pub(super) fn note(json_mode: bool, text: &str) {
    if json_mode {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}
