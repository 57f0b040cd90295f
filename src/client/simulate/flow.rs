//! What one simulated device does: connect + HELLO + CHECK, then (once) the reference
//! client's verified download and REPORT, and the install step if asked, or (repeat,
//! hold) a pipelined download loop or an idle connection, each step against a deadline.
//!
//! Not here: the protocol client (`client/device.rs`), the install step itself
//! (`client/install.rs`) and the drivers (`fleet.rs`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use sha2::Digest;
use tokio::sync::watch;

use super::options::{DeviceCreds, Mode, Options};
use super::report::{Outcome, Stage, Tally, count};
use super::together::{Together, settle};
use crate::client::device::{Client, ClientConfig, ClientError, Progress};
use crate::client::install;
use crate::hashtree;
use crate::ocp::report;
use crate::ocp::wire::{Message, OfferItem, PROOF_ROOM};

/// Runs one step against a deadline.
async fn within<T>(
    deadline: tokio::time::Instant,
    stage: Stage,
    addr: &str,
    step: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, (Stage, String)> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((stage, e.explain(addr))),
        Err(_) => Err((stage, "timed out".to_string())),
    }
}

/// How `device` connects.
fn client_config(opts: &Options, device: &DeviceCreds) -> ClientConfig {
    let get = opts.get_bytes();
    ClientConfig {
        addr: opts.addr.clone(),
        server_name: opts.server_name.clone(),
        ca_file: opts.ca_file.clone(),
        device_id: device.id.clone(),
        token: device.token.clone(),
        // Room for the largest DATA a GET may bring (the server grants no more than its own
        // limit, and answers TOO_LARGE past it).
        max_frame: opts
            .max_frame
            .max(u32::try_from(get + u64::from(PROOF_ROOM)).unwrap_or(u32::MAX)),
        max_inflight: opts.max_inflight,
        chunk_log: opts.chunk_log,
    }
}

/// Connect + HELLO, then CHECK for the simulated firmware type; returns the offer, if any.
async fn connect_and_check(
    opts: &Options,
    device: &DeviceCreds,
    deadline: tokio::time::Instant,
    out: &mut Outcome,
) -> Result<(Client, Option<OfferItem>), (Stage, String)> {
    let addr = opts.addr.as_str();
    let cfg = client_config(opts, device);
    let t = Instant::now();
    let mut client = within(deadline, Stage::Connect, addr, Client::connect(&cfg)).await?;
    out.connect = Some(t.elapsed());

    let t = Instant::now();
    let offers = within(
        deadline,
        Stage::Check,
        addr,
        client.check(&[(opts.fw_type, opts.installed_of(&device.id))]),
    )
    .await?;
    out.check = Some(t.elapsed());
    let offer = offers.into_iter().find(|o| o.fw_type == opts.fw_type);
    Ok((client, offer))
}

/// A device offered nothing is a failure, unless the options accept it.
fn required(
    opts: &Options,
    device: &DeviceCreds,
    offer: Option<OfferItem>,
) -> Result<OfferItem, (Stage, String)> {
    offer.ok_or_else(|| {
        (
            Stage::Check,
            format!(
                "nothing offered for type {} at installed version {}; associate an image with the device's type",
                opts.fw_type,
                opts.installed_of(&device.id)
            ),
        )
    })
}

/// Once: connect, CHECK, download the image, check it, REPORT DOWNLOADED; then the
/// install step if asked.
pub(super) async fn once_flow(
    opts: &Options,
    device: &DeviceCreds,
    out: &mut Outcome,
) -> Result<(), (Stage, String)> {
    // The install's delay is the simulated device's own time, not the server's.
    let install_time = opts.install.map_or(Duration::ZERO, |i| i.delay);
    let deadline = tokio::time::Instant::now() + opts.timeout + install_time;
    let addr = opts.addr.as_str();
    let (mut client, offer) = connect_and_check(opts, device, deadline, out).await?;
    if offer.is_none() && opts.no_offer_ok {
        out.not_offered = true;
        return Ok(());
    }
    let offer = required(opts, device, offer)?;
    let t = Instant::now();
    let mut tally = Tally::default();
    if opts.raw || opts.get_size.is_some() || !opts.hash_image {
        let fetch = Fetch::new(opts, &client);
        let end = fetch_image(&mut client, &offer, &fetch, None, deadline, &mut tally).await?;
        debug_assert!(matches!(end, PassEnd::Complete));
    } else {
        reference_download(&mut client, &offer, deadline, addr, &mut tally).await?;
    }
    out.download = Some(t.elapsed());
    within(
        deadline,
        Stage::Report,
        addr,
        client.report(
            opts.fw_type,
            offer.version_number,
            report::DOWNLOADED,
            report::RESULT_INITIAL,
            offer.size,
        ),
    )
    .await?;
    out.tally = tally;
    let Some(plan) = opts.install else {
        return Ok(());
    };
    let ending = plan.ending(&device.id);
    let cfg = client_config(opts, device);
    let installed = [(opts.fw_type, opts.installed_of(&device.id))];
    let step = install::install(client, &cfg, &offer, &installed, plan.delay, ending);
    match tokio::time::timeout_at(deadline, step).await {
        Ok(Ok(_)) => {
            out.ending = Some((ending, offer.version_number));
            Ok(())
        }
        Ok(Err((step, e))) => Err((Stage::from(step), e.explain(addr))),
        Err(_) => Err((Stage::Install, "timed out".to_string())),
    }
}

impl From<install::Step> for Stage {
    fn from(step: install::Step) -> Self {
        match step {
            install::Step::Install => Stage::Install,
            install::Step::Confirm => Stage::Confirm,
        }
    }
}

/// The reference client's verified download, and both hashes of the whole image on top.
async fn reference_download(
    client: &mut Client,
    offer: &OfferItem,
    deadline: tokio::time::Instant,
    addr: &str,
    tally: &mut Tally,
) -> Result<(), (Stage, String)> {
    let mut progress = Progress {
        blake3: offer.blake3,
        size: offer.size,
        verified_upto: 0,
    };
    // The client verified every chunk against the root already; hashing the delivered
    // stream as well checks the whole image against both hashes of the offer, end to end.
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut chunks = 0u64;
    within(
        deadline,
        Stage::Download,
        addr,
        client.download(&mut progress, None, |_, data| {
            b3.update(data);
            sha.update(data);
            chunks += 1;
            Ok(())
        }),
    )
    .await?;
    let sha: [u8; 32] = sha.finalize().into();
    if progress.verified_upto != offer.size
        || b3.finalize().as_bytes() != &offer.blake3
        || sha != offer.sha256
    {
        return Err((
            Stage::Verify,
            format!(
                "the image ({} of {} bytes) does not match the offer's hashes",
                progress.verified_upto, offer.size
            ),
        ));
    }
    tally.bytes += offer.size;
    tally.chunks += chunks;
    tally.images += 1;
    Ok(())
}

/// Repeat and hold: connect (bounded by the semaphore), settle, then stream or idle.
pub(super) async fn together_flow(
    opts: &Options,
    index: usize,
    device: &DeviceCreds,
    shared: &Together,
    started: Instant,
    out: &mut Outcome,
) -> Result<(), (Stage, String)> {
    let connected = {
        let _permit = shared.connecting.acquire().await;
        let deadline = tokio::time::Instant::now() + opts.timeout;
        connect_and_check(opts, device, deadline, out)
            .await
            .and_then(|(client, offer)| Ok((client, required(opts, device, offer)?)))
    };
    settle(opts, shared, connected.is_ok(), started);
    let (mut client, offer) = connected?;
    let mut times = shared.times.subscribe();
    match opts.mode {
        Mode::Repeat { .. } => {
            let fetch = Fetch::new(opts, &client);
            let mut window = Window {
                rx: times,
                known: None,
            };
            let mut tally = Tally::default();
            loop {
                let deadline = tokio::time::Instant::now() + opts.timeout;
                let end = fetch_image(
                    &mut client,
                    &offer,
                    &fetch,
                    Some(&mut window),
                    deadline,
                    &mut tally,
                )
                .await;
                match end {
                    Ok(PassEnd::Complete) => continue,
                    Ok(PassEnd::WindowOver) => break,
                    Err(e) => {
                        out.tally = tally;
                        return Err(e);
                    }
                }
            }
            out.tally = tally;
            Ok(())
        }
        Mode::Hold { ping_every, .. } => {
            let addr = opts.addr.as_str();
            // Spread the PINGs of a fleet that connected at once over half an interval.
            let spread = ping_every.mul_f64(0.5 + 0.5 * ((index * 7919) % 1000) as f64 / 1000.0);
            let mut next_ping = tokio::time::Instant::now() + spread;
            loop {
                let end = times
                    .borrow()
                    .map(|(_, end)| tokio::time::Instant::from(end));
                let wake = end.map_or(next_ping, |e| e.min(next_ping));
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    changed = times.changed(), if end.is_none() => {
                        if changed.is_err() {
                            // The run is over (should not happen before settling).
                            break;
                        }
                        continue;
                    }
                }
                let now = tokio::time::Instant::now();
                if end.is_some_and(|e| now >= e) {
                    break;
                }
                if now >= next_ping {
                    within(now + opts.timeout, Stage::Hold, addr, client.ping()).await?;
                    out.pings += 1;
                    next_ping += ping_every;
                }
            }
            out.held = true;
            Ok(())
        }
        Mode::Once => Ok(()),
    }
}

/// The measuring window of a repeat run, as the device learns it.
struct Window {
    rx: watch::Receiver<Option<(Instant, Instant)>>,
    known: Option<(Instant, Instant)>,
}

impl Window {
    fn times(&mut self) -> Option<(Instant, Instant)> {
        if self.known.is_none() {
            self.known = *self.rx.borrow();
        }
        self.known
    }
}

/// How a device asks for an image.
struct Fetch {
    with_proof: bool,
    get_len: u32,
    chunk_log: u8,
    max_inflight: usize,
    hash_image: bool,
    timeout: Duration,
    addr: String,
}

impl Fetch {
    fn new(opts: &Options, client: &Client) -> Self {
        Self {
            with_proof: !opts.raw,
            get_len: u32::try_from(opts.get_bytes()).unwrap_or(u32::MAX),
            chunk_log: client.granted.chunk_log,
            max_inflight: usize::from(client.granted.max_inflight.max(1)),
            hash_image: opts.hash_image,
            timeout: opts.timeout,
            addr: opts.addr.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassEnd {
    /// Every byte of the image arrived (and, with `hash_image`, matched the offer).
    Complete,
    /// The measuring window closed; the remaining requests are abandoned.
    WindowOver,
}

/// Hashes of the image as its bytes come in, in order.
struct ImageHash {
    b3: blake3::Hasher,
    sha: sha2::Sha256,
    upto: u64,
    ready: BTreeMap<u64, Vec<u8>>,
}

impl ImageHash {
    fn add(&mut self, offset: u64, data: Vec<u8>) {
        self.ready.insert(offset, data);
        while let Some(data) = self.ready.remove(&self.upto) {
            self.b3.update(&data);
            self.sha.update(&data);
            self.upto += data.len() as u64;
        }
    }
}

/// Downloads the whole image once with pipelined GETs of `fetch.get_len` bytes, verifying
/// each slice (with proof) and checking offsets and lengths (always). Counts DATA frames in
/// `tally`: all of them without a window, else those received inside it. Stops early when
/// the window closed. `deadline` bounds the whole pass without a window; with one, each
/// round of GETs and the next answer must come within `fetch.timeout`.
async fn fetch_image(
    client: &mut Client,
    offer: &OfferItem,
    fetch: &Fetch,
    mut window: Option<&mut Window>,
    deadline: tokio::time::Instant,
    tally: &mut Tally,
) -> Result<PassEnd, (Stage, String)> {
    let addr = fetch.addr.as_str();
    let size = offer.size;
    let get_len = u64::from(fetch.get_len);
    let protocol = |text: String| {
        (
            Stage::Download,
            format!("protocol error from {addr}: {text}"),
        )
    };
    let refused = |code, retry_after_ms, message| {
        let e = ClientError::Server {
            code,
            retry_after_ms,
            message,
        };
        (Stage::Download, e.explain(addr))
    };
    let mut hash = fetch.hash_image.then(|| ImageHash {
        b3: blake3::Hasher::new(),
        sha: sha2::Sha256::new(),
        upto: 0,
        ready: BTreeMap::new(),
    });
    let mut pending: HashMap<u32, (u64, Instant)> = HashMap::with_capacity(fetch.max_inflight);
    let (mut next, mut received) = (0u64, 0u64);
    while received < size {
        // Without a window the deadline bounds the whole pass; with one, each step.
        let step_by = if window.is_some() {
            tokio::time::Instant::now() + fetch.timeout
        } else {
            deadline
        };
        // Refill the pipeline once half of it is answered, all in one write: fewer and
        // larger writes on both sides, as a device that pipelines should.
        if pending.len() <= fetch.max_inflight / 2 && next < size {
            let sent = Instant::now();
            while next < size && pending.len() < fetch.max_inflight {
                let rid = client.queue(&Message::Get {
                    blake3: offer.blake3,
                    offset: next,
                    length: fetch.get_len,
                    with_proof: fetch.with_proof,
                });
                pending.insert(rid, (next, sent));
                next += get_len;
            }
            within(step_by, Stage::Download, addr, client.send_queued()).await?;
        }
        let (rid, msg) = within(step_by, Stage::Download, addr, client.recv()).await?;
        let now = Instant::now();
        if rid == 0 {
            match msg {
                // A push while downloading: not an answer; the simulation ignores it.
                Message::Offer { .. } => continue,
                Message::Error {
                    code,
                    retry_after_ms,
                    message,
                } => return Err(refused(code, retry_after_ms, message)),
                other => return Err(protocol(format!("unexpected {:?}", other.msg_type()))),
            }
        }
        let Some((offset, sent)) = pending.remove(&rid) else {
            return Err(protocol(format!("answer to unknown request {rid}")));
        };
        let expected = get_len.min(size - offset);
        let (length, payload) = match msg {
            Message::Data {
                offset: o,
                length,
                with_proof,
                payload,
            } if o == offset && with_proof == fetch.with_proof => (length, payload),
            Message::Error {
                code,
                retry_after_ms,
                message,
            } => return Err(refused(code, retry_after_ms, message)),
            other => {
                return Err(protocol(format!(
                    "unexpected answer {:?} to the GET at {offset}",
                    other.msg_type()
                )));
            }
        };
        if u64::from(length) != expected {
            return Err(protocol(format!(
                "DATA at {offset} has {length} bytes, expected {expected}"
            )));
        }
        let data = if fetch.with_proof {
            hashtree::verify_slice(
                &offer.blake3,
                size,
                fetch.chunk_log,
                offset,
                fetch.get_len,
                &payload,
            )
            .map_err(|e| {
                (
                    Stage::Verify,
                    format!(
                        "verification failed at {offset}: {e}: the server sent data that does not match the offered image"
                    ),
                )
            })?
        } else {
            if payload.len() as u64 != expected {
                return Err(protocol(format!(
                    "raw DATA at {offset} carries {} bytes, expected {expected}",
                    payload.len()
                )));
            }
            payload
        };
        received += expected;
        match window.as_deref_mut().map(Window::times) {
            // No window: count everything.
            None => count(tally, expected, None),
            // The window is not fixed yet (devices still connecting): warm-up.
            Some(None) => {}
            Some(Some((start, end))) => {
                if now >= end {
                    return Ok(PassEnd::WindowOver);
                }
                if now >= start {
                    count(tally, expected, Some(now - sent));
                }
            }
        }
        if let Some(h) = hash.as_mut() {
            h.add(offset, data);
        }
    }
    if let Some(h) = hash {
        let sha: [u8; 32] = h.sha.finalize().into();
        if h.upto != size || h.b3.finalize().as_bytes() != &offer.blake3 || sha != offer.sha256 {
            return Err((
                Stage::Verify,
                format!(
                    "the image ({} of {size} bytes) does not match the offer's hashes",
                    h.upto
                ),
            ));
        }
    }
    tally.images += 1;
    Ok(PassEnd::Complete)
}
