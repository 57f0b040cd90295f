//! Binary upload (raw or multipart, streamed into the store), moveToRepository, and download
//! with Range / ETag / Repr-Digest for the owning partner and entitled devices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::Principal;
use super::body::{Body, ChannelBody, full, json_response, next_chunk};
use super::errors::ApiError;
use super::extract::Fields;
use super::multipart::{MultipartReader, SNIFF_BYTES, boundary_from_content_type, sniff_boundary};
use super::{Answer, App, Ctx};
use crate::model::{hex, parse_hash_hex};
use crate::store::BlobMeta;

/// Multipart framing allowed on top of the binary size limit before Content-Length alone
/// refuses an upload.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Ranges up to this size are read on the connection's own thread (from the delivery cache).
const DOWNLOAD_PIECE: u64 = 256 * 1024;
/// Bytes read per blocking step (one read transaction) of a streamed range.
const STREAM_PIECE: u64 = 1 << 20;
/// Rows a stream has read ahead of the client.
const STREAM_ROWS_QUEUED: usize = 8;

enum Piece {
    Data(Bytes),
    /// The body is complete; the filename it was uploaded under, if any.
    End(Option<String>),
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "binary_too_large",
        format!("the binary is larger than the limit of {limit} bytes"),
    )
}

/// `POST .../binaries`: streams the body into a staged binary; answers its SHA-256. The
/// filename kept with it is `?filename=`, else the multipart part's filename.
pub async fn upload(app: &Arc<App>, ctx: &Ctx, partner: String, body: Incoming) -> Answer {
    let answer = receive(app, ctx, partner, body).await;
    match &answer {
        Ok((_, bytes)) => app.metrics.upload_stored(*bytes),
        Err(_) => app.metrics.upload_failed(),
    }
    answer.map(|(resp, _)| resp)
}

/// The upload itself; answers the response and the binary bytes stored.
async fn receive(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    mut body: Incoming,
) -> Result<(Response<Body>, u64), ApiError> {
    let limit = app.config.storage.max_binary_size;
    let explicit = match super::extract::query_form(ctx.query.as_deref())
        .into_iter()
        .find(|(k, _)| k == "filename")
    {
        Some((_, raw)) => Some(
            crate::store::clean_filename(&raw)
                .map_err(|m| ApiError::bad_request("bad_filename", m))?,
        ),
        None => None,
    };
    let declared = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut boundary = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary_from_content_type);
    let slack = if boundary.is_some() {
        MULTIPART_OVERHEAD
    } else {
        0
    };
    if declared.is_some_and(|n| n > limit.saturating_add(slack)) {
        super::body::drain(&mut body, app.request_timeout()).await;
        return Err(too_large(limit));
    }
    if let Some(n) = declared
        && let Err(e) = app.store.check_space(n)
    {
        super::body::drain(&mut body, app.request_timeout()).await;
        return Err(e.into());
    }
    let timeout = app.request_timeout();
    // Sniff the head of a non-multipart body for the multipart-under-octet-stream quirk.
    let mut head = Vec::new();
    let mut ended = false;
    if boundary.is_none() {
        while head.len() < SNIFF_BYTES {
            match next_chunk(&mut body, timeout).await? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        boundary = sniff_boundary(&head);
    }
    let mut multipart = boundary.as_deref().map(MultipartReader::new);

    let (tx, mut rx) = mpsc::channel::<Piece>(8);
    let store = app.store.clone();
    let owner = partner.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut ingest = store.begin_ingest(&owner)?;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Data(bytes) => ingest.write(&bytes)?,
                Piece::End(name) => {
                    if let Some(name) = name {
                        ingest.set_filename(name);
                    }
                    return ingest.finish().map(Some);
                }
            }
        }
        // The sender went away without End: the upload failed; dropping discards it.
        Ok(None)
    });

    let mut received = 0u64;
    let mut send = |bytes: Bytes| {
        received += bytes.len() as u64;
        let tx = tx.clone();
        async move { tx.send(Piece::Data(bytes)).await.is_ok() }
    };
    // A plain body's chunks go to the writer as hyper received them, without a copy.
    let feed = |chunk: Bytes, multipart: &mut Option<MultipartReader>| -> Result<Bytes, ApiError> {
        match multipart {
            Some(m) => {
                let mut out = Vec::with_capacity(chunk.len());
                m.feed(&chunk, &mut out)
                    .map_err(|e| ApiError::bad_request("bad_multipart", e.to_string()))?;
                Ok(Bytes::from(out))
            }
            None => Ok(chunk),
        }
    };
    let mut outcome: Result<(), ApiError> = Ok(());
    let first = feed(Bytes::from(head), &mut multipart);
    match first {
        Ok(bytes) => {
            if !bytes.is_empty() && !send(bytes).await {
                outcome = Err(ApiError::internal("upload writer stopped"));
            }
        }
        Err(e) => outcome = Err(e),
    }
    while outcome.is_ok() && !ended {
        match next_chunk(&mut body, timeout).await {
            Ok(Some(chunk)) => match feed(chunk, &mut multipart) {
                Ok(bytes) => {
                    if !bytes.is_empty() && !send(bytes).await {
                        // The writer refused (e.g. over the limit); its error is reported below.
                        super::body::drain(&mut body, timeout).await;
                        break;
                    }
                }
                Err(e) => outcome = Err(e),
            },
            Ok(None) => ended = true,
            Err(e) => outcome = Err(e),
        }
    }
    if outcome.is_ok()
        && let Some(m) = &multipart
        && let Err(e) = m.finish()
    {
        outcome = Err(ApiError::bad_request("bad_multipart", e.to_string()));
    }
    let filename = match (explicit, multipart.as_ref().and_then(|m| m.filename())) {
        (Some(name), _) => Some(name),
        (None, Some(raw)) => match crate::store::clean_filename(raw) {
            Ok(name) => Some(name),
            Err(m) => {
                outcome = outcome.and(Err(ApiError::bad_request("bad_filename", m)));
                None
            }
        },
        (None, None) => None,
    };
    if outcome.is_ok() && ended {
        let _ = tx.send(Piece::End(filename)).await;
    }
    drop(tx);
    let staged = writer
        .await
        .map_err(|e| ApiError::internal(format!("upload worker failed: {e}")))?;
    outcome?;
    let staged = staged?.ok_or_else(|| ApiError::internal("upload ended without a result"))?;
    Ok((
        json_response(StatusCode::OK, &json!({ "value": hex(&staged.sha256) })),
        received,
    ))
}

fn parse_sha(raw: &str) -> Result<[u8; 32], ApiError> {
    parse_hash_hex(raw).ok_or_else(|| {
        ApiError::bad_request("bad_sha256", "value must be a SHA-256 in 64 hex digits")
    })
}

/// `POST .../binaries/moveToRepository`.
pub async fn move_to_repository(
    app: &Arc<App>,
    ctx: &Ctx,
    partner: String,
    body: Incoming,
) -> Answer {
    let f = Fields::read(app, body).await?;
    let sha = parse_sha(&f.req_str("value")?)?;
    let actor = ctx.principal.actor();
    let owner = partner.clone();
    let published = app
        .blocking(move |s| Ok(s.publish(&actor, &owner, sha)?))
        .await?;
    app.metrics.published(published.size);
    let url = app.binary_url(&partner, &published.sha256);
    Ok(json_response(StatusCode::OK, &json!({ "value": url })))
}

/// A single byte range of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a `Range` header: one range → its bounds; several, or syntax we ignore → whole.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeAnswer::Unsatisfiable,
            Ok(n) => (size.saturating_sub(n), size),
            Err(_) => return RangeAnswer::Whole,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeAnswer::Whole;
            };
            let end = if b.is_empty() {
                size
            } else {
                match b.parse::<u64>() {
                    Ok(last) if last >= start => last.saturating_add(1).min(size),
                    _ => return RangeAnswer::Whole,
                }
            };
            (start, end)
        }
        (true, true) => return RangeAnswer::Whole,
    };
    if range.0 >= size {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Part(range.0, range.1)
    }
}

/// `GET|HEAD .../binaries/{sha256}`: the caller is the path's partner (or an admin) or a
/// device, by the route's access rule; a device's entitlement is checked here.
pub async fn download(app: &Arc<App>, ctx: &Ctx, partner: String, raw_sha: String) -> Answer {
    let sha = parse_sha(&raw_sha)?;
    deliver(app, ctx, &ctx.principal, &partner, &sha)
}

/// Answers a GET or HEAD of the binary `sha` on `partner`'s path for `principal` (a device
/// is checked for entitlement): Range, If-Range, If-None-Match, ETag. The DDI artifact
/// download is this same answer.
pub fn deliver(
    app: &Arc<App>,
    ctx: &Ctx,
    principal: &Principal,
    partner: &str,
    sha: &[u8; 32],
) -> Answer {
    let head = ctx.method == Method::HEAD;
    let header_str = |name: header::HeaderName| {
        ctx.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let range = header_str(header::RANGE);
    let if_range = header_str(header::IF_RANGE);
    let if_none_match = ctx
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Entitlement, conditional check, range and the bytes themselves when they are few
    // (most device and CDN-style requests), on this reactor thread: these are index
    // lookups and cached rows (`storage.delivery_cache_mib`) costing a few microseconds,
    // less than the two thread switches of a blocking-pool hop, which dominated the
    // profile of small range requests. Larger ranges stream from the blocking pool.
    let found = lookup(
        app,
        principal,
        partner,
        sha,
        Conditions {
            range: range.as_deref(),
            if_range: if_range.as_deref(),
            if_none_match: if_none_match.as_deref(),
        },
        head,
    )?;
    let Lookup {
        blob,
        not_modified,
        answer,
        small,
    } = found.ok_or_else(|| ApiError::not_found("unknown_binary", "no such binary"))?;
    let meta = &blob.meta;
    let resp = |status: StatusCode, body: Body, len: Option<u64>| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::ETAG, blob.etag.clone());
        h.insert("repr-digest", blob.digest.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        );
        if let Some(len) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        r
    };
    if not_modified {
        return Ok(resp(StatusCode::NOT_MODIFIED, super::body::empty(), None));
    }
    let (status, start, end) = match answer {
        RangeAnswer::Whole => (StatusCode::OK, 0, meta.size),
        RangeAnswer::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        RangeAnswer::Unsatisfiable => {
            let mut e = super::error_response(
                &ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "bad_range",
                    "the range is outside the binary",
                ),
                &ctx.path,
                head,
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                e.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(e);
        }
    };
    let len = end - start;
    let body = match (head, small) {
        (true, _) => super::body::empty(),
        (false, Some(bytes)) => full(bytes),
        (false, None) => stream_range(app, meta.clone(), start, end),
    };
    let mut r = resp(status, body, Some(len));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{}", end - 1, meta.size))
    {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// Finds what a download answers (None = no such binary for this caller).
fn lookup(
    app: &App,
    principal: &Principal,
    partner: &str,
    sha: &[u8; 32],
    conditions: Conditions<'_>,
    head: bool,
) -> Result<Option<Lookup>, ApiError> {
    let Conditions {
        range,
        if_range,
        if_none_match,
    } = conditions;
    let s = &app.store;
    let scope = match principal {
        Principal::Device { device_id } => Scope::Device(device_id.clone(), partner.to_string()),
        _ => Scope::Owner(partner.to_string()),
    };
    let key = (scope, *sha);
    // Read before the store: a write in between makes the entry stale at once.
    let generation = s.generation();
    let blob = match app.downloads.get(&key, generation) {
        Some(blob) => blob,
        None => {
            let found = match &key.0 {
                Scope::Device(device_id, _) => match s.device_entitled(device_id, partner, sha)? {
                    Some(found) => Some(found),
                    None => {
                        return Err(ApiError::forbidden(
                            "not_entitled",
                            "this device is not entitled to this binary",
                        ));
                    }
                },
                Scope::Owner(_) => s.owned_blob(partner, sha)?,
            };
            let Some((blake3, meta)) = found else {
                return Ok(None);
            };
            let blob = Arc::new(Resolved::new(blake3, meta)?);
            app.downloads.put(key, generation, Arc::clone(&blob));
            blob
        }
    };
    let not_modified = if_none_match.is_some_and(|v| {
        v.trim() == "*"
            || v.split(',')
                .any(|t| t.trim().as_bytes() == blob.etag.as_bytes())
    });
    // A Range whose If-Range names another representation gets the whole binary (RFC 9110
    // 13.1.5); dates are never equal to a strong ETag, so they do too.
    let range =
        range.filter(|_| if_range.is_none_or(|v| v.trim().as_bytes() == blob.etag.as_bytes()));
    let answer = parse_range(range, blob.meta.size);
    let (a, b) = match answer {
        RangeAnswer::Whole => (0, blob.meta.size),
        RangeAnswer::Part(a, b) => (a, b),
        RangeAnswer::Unsatisfiable => (0, 0),
    };
    let small = if !not_modified && !head && b > a && b - a <= DOWNLOAD_PIECE {
        Some(s.read_range(&blob.meta, a, b)?)
    } else {
        None
    };
    Ok(Some(Lookup {
        blob,
        not_modified,
        answer,
        small,
    }))
}

/// The request headers that decide which bytes a download answers.
struct Conditions<'a> {
    range: Option<&'a str>,
    if_range: Option<&'a str>,
    if_none_match: Option<&'a str>,
}

/// What a download needs to answer.
struct Lookup {
    blob: Arc<Resolved>,
    not_modified: bool,
    answer: RangeAnswer,
    /// The bytes, when the range is small enough to read at once.
    small: Option<Bytes>,
}

/// Whose view of the binaries a download is resolved in.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Scope {
    /// The owning partner's path (its users and clients, or an admin).
    Owner(String),
    /// A device (id) on a partner's path.
    Device(String, String),
}

/// A binary a caller may download, with its validators rendered once.
pub struct Resolved {
    meta: BlobMeta,
    etag: HeaderValue,
    digest: HeaderValue,
}

impl Resolved {
    fn new(blake3: [u8; 32], meta: BlobMeta) -> Result<Resolved, ApiError> {
        let etag = HeaderValue::from_str(&format!("\"{}\"", hex(&blake3)))
            .map_err(|e| ApiError::internal(format!("etag: {e}")))?;
        let digest = HeaderValue::from_str(&format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(meta.sha256)
        ))
        .map_err(|e| ApiError::internal(format!("repr-digest: {e}")))?;
        Ok(Resolved { meta, etag, digest })
    }
}

/// Downloads resolved recently: (scope, sha256) → the binary, tagged with the store
/// generation it was read at and used only while that generation is current, i.e. until
/// the next write of any kind. Saves the read transaction and two index lookups of every
/// repeated range request; small, because a fleet downloads few binaries at a time.
#[derive(Default)]
pub struct DownloadCache {
    entries: Mutex<HashMap<DownloadKey, (u64, Arc<Resolved>)>>,
}

/// Who downloads which sha256.
type DownloadKey = (Scope, [u8; 32]);

/// Entries kept at most; the cache is emptied when full and refills from busy callers.
const DOWNLOAD_CACHE_MAX: usize = 4096;

impl DownloadCache {
    fn get(&self, key: &DownloadKey, generation: u64) -> Option<Arc<Resolved>> {
        let entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((at, blob)) if *at == generation => Some(Arc::clone(blob)),
            _ => None,
        }
    }

    fn put(&self, key: DownloadKey, generation: u64, blob: Arc<Resolved>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= DOWNLOAD_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, (generation, blob));
    }
}

/// Streams a large range piece by piece, each read only when the client has taken what came
/// before (the channel holds a few rows). A piece is one read transaction, so a slow client
/// never keeps one open; its rows go out as they are, without being joined.
fn stream_range(app: &Arc<App>, meta: BlobMeta, start: u64, end: u64) -> Body {
    let (tx, body) = ChannelBody::channel(STREAM_ROWS_QUEUED);
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut at = start;
        while at < end {
            let to = (at + STREAM_PIECE).min(end);
            match store.read_rows(&meta, at, to) {
                Ok(rows) => {
                    for row in rows {
                        if tx.blocking_send(Ok(row)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
            at = to;
        }
    });
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), RangeAnswer::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-99"), 1000),
            RangeAnswer::Part(0, 100)
        );
        assert_eq!(
            parse_range(Some("bytes=900-"), 1000),
            RangeAnswer::Part(900, 1000)
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 1000),
            RangeAnswer::Part(990, 1000)
        );
        assert_eq!(
            parse_range(Some("bytes=-5000"), 1000),
            RangeAnswer::Part(0, 1000)
        );
        assert_eq!(
            parse_range(Some("bytes=990-5000"), 1000),
            RangeAnswer::Part(990, 1000)
        );
        assert_eq!(
            parse_range(Some("bytes=1000-"), 1000),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 1000),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 1000), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("bytes=5-1"), 1000), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 1000), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 1000), RangeAnswer::Whole);
    }
}
