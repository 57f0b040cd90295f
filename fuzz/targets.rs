//! The fuzz target bodies, one plain function per target.
//!
//! Shared by the libFuzzer binaries in `fuzz_targets/` and by the stable-Rust replay test
//! `tests/fuzz_corpus.rs`, so this file may use only `otad`, std and crates otad itself
//! depends on at the same versions (`blake3`, `http`, `serde_json`).

use std::path::Path;

use otad::hashtree::{self, OutboardBuilder, SlicePart};
use otad::model;
use otad::store::Token;
use otad::store::codec;
use otad::store::{BlobMeta, Upload};

/// Reads `N` bytes at `at`; bytes past the end of the input count as zeros, so every input,
/// however short, decodes to some value.
fn read<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = data.get(at + i).copied().unwrap_or(0);
    }
    out
}

/// Most groups a planned range may span: keeps a plan (and one execution) small.
const MAX_PLAN_GROUPS: u64 = 4096;

/// Input: size u64 LE, chunk_log u8, offset u64 LE, length u32 LE (21 bytes).
///
/// `check_range` runs on the raw values; the plan runs with the length capped to
/// `MAX_PLAN_GROUPS` groups. Capping the length rather than the size keeps every blob size
/// reachable with any offset: the tree's top nodes span the whole blob whatever the range.
pub fn hashtree_range(data: &[u8]) {
    let size = u64::from_le_bytes(read(data, 0));
    let [chunk_log] = read(data, 8);
    let offset = u64::from_le_bytes(read(data, 9));
    let length = u32::from_le_bytes(read(data, 17));

    let raw = checked_range(size, chunk_log, offset, length);
    // group_size shifts by chunk_log, so it is only asked for valid ones.
    if !(hashtree::CHUNK_LOG_MIN..=hashtree::CHUNK_LOG_MAX).contains(&chunk_log) {
        assert!(raw.is_none(), "chunk_log {chunk_log} accepted");
        return;
    }
    let most = MAX_PLAN_GROUPS * hashtree::group_size(chunk_log);
    let plan_length = length.min(u32::try_from(most).unwrap_or(u32::MAX));
    let clipped = if plan_length == length {
        raw
    } else {
        checked_range(size, chunk_log, offset, plan_length)
    };
    if let Some(clipped) = clipped {
        check_plan(size, chunk_log, offset, clipped);
    }
}

/// `check_range` plus its contract on success: an aligned, non-empty range inside the blob,
/// of whole groups unless it was clipped to the end.
fn checked_range(size: u64, chunk_log: u8, offset: u64, length: u32) -> Option<u32> {
    let clipped = hashtree::check_range(size, chunk_log, offset, length).ok()?;
    let g = hashtree::group_size(chunk_log);
    let end = offset + u64::from(clipped);
    let what = format!("size {size} chunk_log {chunk_log} offset {offset} length {length}");
    assert!(
        clipped >= 1 && clipped <= length,
        "{what}: clipped to {clipped}"
    );
    assert_eq!(offset % g, 0, "{what}: unaligned offset accepted");
    assert!(end <= size, "{what}: range ends past the blob");
    if end < size {
        assert_eq!(clipped, length, "{what}: clipped before the end");
        assert_eq!(u64::from(clipped) % g, 0, "{what}: partial group accepted");
    }
    Some(clipped)
}

/// The verified-slice plan of an accepted range: its data parts are exactly the range, in
/// order, merged; its pairs are distinct stored pairs; its wire length adds up.
fn check_plan(size: u64, chunk_log: u8, offset: u64, clipped: u32) {
    let plan = hashtree::slice_plan(size, chunk_log, offset, clipped);
    let what = format!("size {size} chunk_log {chunk_log} offset {offset} clipped {clipped}");
    let pair_count = hashtree::pair_count(size);
    let mut pairs = Vec::new();
    let mut next = offset;
    let mut previous_was_data = false;
    for part in &plan {
        match *part {
            SlicePart::Pair(index) => {
                assert!(index < pair_count, "{what}: pair {index} of {pair_count}");
                pairs.push(index);
                previous_was_data = false;
            }
            SlicePart::Data { start, end } => {
                assert_eq!(start, next, "{what}: data part {start}..{end} leaves a gap");
                assert!(start < end, "{what}: empty data part at {start}");
                assert!(!previous_was_data, "{what}: adjacent data parts not merged");
                next = end;
                previous_was_data = true;
            }
        }
    }
    assert_eq!(
        next,
        offset + u64::from(clipped),
        "{what}: data parts end at {next}"
    );
    let sent = pairs.len() as u64;
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len() as u64, sent, "{what}: a pair is sent twice");
    assert_eq!(
        hashtree::slice_len(&plan),
        hashtree::PAIR as u64 * sent + u64::from(clipped),
        "{what}: slice_len"
    );
}

/// Most piece lengths read from the input header.
const MAX_PIECES: usize = 8;
/// Bytes per unit of the extension, so that a short input can describe a blob of many 4 KiB
/// blocks (libFuzzer keeps inputs at a few KiB by default); at most 256 KiB, 64 blocks.
const EXTEND_UNIT: usize = 4;

/// Input: piece count (byte 0, mod 9), extension (u16 LE × 4 bytes), that many piece
/// lengths (u16 LE), then the payload. The blob is the payload followed by `extension` more
/// bytes repeating it (zeros if it is empty); it is fed in pieces cycling through the
/// lengths, taking the pairs out every other piece as the store does.
///
/// Checks the root against `blake3::hash`, the pair count, and every stored pair against the
/// chaining values recomputed from the blob.
pub fn outboard_builder(data: &[u8]) {
    let [count] = read(data, 0);
    let count = usize::from(count) % (MAX_PIECES + 1);
    let extension = usize::from(u16::from_le_bytes(read(data, 1))) * EXTEND_UNIT;
    let lengths: Vec<usize> = (0..count)
        .map(|i| usize::from(u16::from_le_bytes(read(data, 3 + 2 * i))))
        .collect();
    let payload = data.get(3 + 2 * count..).unwrap_or(&[]);
    let blob: Vec<u8> = if payload.is_empty() {
        vec![0; extension]
    } else {
        payload
            .iter()
            .copied()
            .cycle()
            .take(payload.len() + extension)
            .collect()
    };

    let mut builder = OutboardBuilder::new();
    let mut pairs = Vec::new();
    if lengths.iter().all(|&n| n == 0) {
        // No usable lengths: zero-length updates, then everything in one piece.
        for _ in &lengths {
            builder.update(&[]);
        }
        builder.update(&blob);
    } else {
        let mut fed = 0;
        for (i, &n) in lengths.iter().cycle().enumerate() {
            if fed == blob.len() {
                break;
            }
            let n = n.min(blob.len() - fed);
            builder.update(&blob[fed..fed + n]);
            fed += n;
            assert_eq!(builder.len(), fed as u64, "len after {fed} bytes");
            assert_eq!(builder.is_empty(), fed == 0);
            if i % 2 == 1 {
                pairs.extend(builder.take_pairs());
            }
        }
    }
    assert_eq!(builder.len(), blob.len() as u64);
    let root = builder.finalize();
    pairs.extend(builder.take_pairs());

    let size = blob.len() as u64;
    assert_eq!(root, blake3::hash(&blob), "root of {size} bytes");
    assert_eq!(
        pairs.len() as u64,
        hashtree::pair_count(size) * hashtree::PAIR as u64,
        "outboard length of {size} bytes"
    );
    check_pairs(&blob, &pairs);
}

/// Walks the tree top-down: each stored pair must hold the chaining values of the node's
/// two children, recomputed from the blob (a child of one block) or merged from the child's
/// own stored pair. The root pair must merge to the root hash.
fn check_pairs(blob: &[u8], pairs: &[u8]) {
    use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root};

    let block = hashtree::BLOCK;
    let size = blob.len() as u64;
    let pair_at = |s: u64, e: u64| {
        let at = hashtree::pair_index(s, e) as usize * hashtree::PAIR;
        let left: [u8; 32] = pairs[at..at + 32].try_into().unwrap();
        let right: [u8; 32] = pairs[at + 32..at + 64].try_into().unwrap();
        (left, right)
    };
    let cv = |s: u64, e: u64| {
        if e - s >= 2 {
            let (left, right) = pair_at(s, e);
            merge_subtrees_non_root(&left, &right, Mode::Hash)
        } else {
            let start = (s * block) as usize;
            let end = ((e * block) as usize).min(blob.len());
            blake3::Hasher::new()
                .set_input_offset(s * block)
                .update(&blob[start..end])
                .finalize_non_root()
        }
    };
    let blocks = hashtree::block_count(size);
    if blocks >= 2 {
        let (left, right) = pair_at(0, blocks);
        let merged = blake3::hazmat::merge_subtrees_root(&left, &right, Mode::Hash);
        assert_eq!(merged, blake3::hash(blob), "root pair of {size} bytes");
    }
    let mut todo = vec![(0u64, blocks)];
    while let Some((s, e)) = todo.pop() {
        if e - s < 2 {
            continue;
        }
        // BLAKE3 splits n units at the largest power of two below n.
        let mid = s + (1u64 << (63 - (e - s - 1).leading_zeros()));
        let (left, right) = pair_at(s, e);
        assert_eq!(left, cv(s, mid), "size {size}: left of [{s},{e})");
        assert_eq!(right, cv(mid, e), "size {size}: right of [{s},{e})");
        todo.push((s, mid));
        todo.push((mid, e));
    }
}

/// Decodes the bytes as every stored value type; a value that decodes must survive a
/// re-encode and decode unchanged. Covers every type the store writes through `codec`.
pub fn record_codec(data: &[u8]) {
    // A macro rather than a generic function: naming the serde bounds would need serde,
    // which the fuzz package does not depend on.
    macro_rules! round_trip {
        ($($t:ty),*) => {$(
            if let Ok(value) = codec::decode::<$t>(data) {
                let name = stringify!($t);
                let bytes = codec::encode(&value)
                    .unwrap_or_else(|e| panic!("{name}: decoded value does not encode: {e}"));
                let again = codec::decode::<$t>(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: re-encoded value does not decode: {e}"));
                assert_eq!(again, value, "{name}: round trip changed the value");
            }
        )*};
    }
    round_trip!(
        model::Record,
        model::Device,
        model::AuditEntry,
        Upload,
        BlobMeta,
        model::Partner,
        model::User,
        model::DeviceType,
        model::FirmwareType,
        Token
    );
}

/// Parses the bytes (lossy UTF-8) as a config file; errors must render.
pub fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match otad::config::Config::from_toml(&text, Path::new("fuzz.toml")) {
        Ok(config) => assert!(config.validate().is_ok(), "accepted config fails validate"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Splits the bytes at 0xFF (never part of UTF-8, so any text can appear in a piece) into
/// lossy-UTF-8 strings and runs every validator of `model` on each, plus the tag list, with
/// a few cross-checks between rules that must agree.
pub fn model_validate(data: &[u8]) {
    let strings: Vec<String> = data
        .split(|&b| b == 0xFF)
        .map(|piece| String::from_utf8_lossy(piece).into_owned())
        .collect();
    for s in &strings {
        let len = s.len();
        for max in [0, len.saturating_sub(1), len, model::NAME_MAX] {
            let text = model::validate_text("fuzz", s, max);
            let optional = model::validate_optional_text("fuzz", s, max);
            if text.is_ok() {
                assert!(optional.is_ok(), "{s:?}: required text ok, optional not");
            }
        }
        let _ = model::validate_name(s);
        let _ = model::validate_description(s);
        let _ = model::validate_version_string(s);
        let device_id = model::validate_device_id(s);
        // Device ids are a subset of usernames: same length bound, fewer characters.
        if device_id.is_ok() {
            assert!(
                model::validate_username(s).is_ok(),
                "{s:?}: device id, not username"
            );
        }
        let _ = model::validate_username(s);
        let _ = model::validate_password(s);
        let _ = model::validate_email(s);
        let _ = model::validate_tags(std::slice::from_ref(s));
        if let Ok(role) = model::Role::parse(s) {
            assert_eq!(role.as_str(), s);
        }
        if let Some(hash) = model::parse_hash_hex(s) {
            assert_eq!(model::hex(&hash), s.to_ascii_lowercase(), "hex round trip");
        }
        if let Ok(n) = s.trim().parse::<i64>() {
            check_type_class(n);
        }
    }
    let _ = model::validate_tags(&strings);
    let fields = model::RecordFields {
        name: strings.first().cloned().unwrap_or_default(),
        description: strings.get(1).cloned().unwrap_or_default(),
        version: strings.get(2).cloned().unwrap_or_default(),
        tags: strings.iter().skip(3).cloned().collect(),
    };
    let _ = fields.validate();

    for chunk in data.chunks(8) {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        check_type_class(i64::from_le_bytes(raw));
    }
    let [a, b] = read(data, 0);
    let _ = model::OtaState::from_report(a, b);
    let partner = model::Partner {
        id: String::new(),
        name: String::new(),
        email: None,
        secret_hash: String::new(),
        platform: a & 1 == 1,
        created_ms: 0,
    };
    for role in [model::Role::Admin, model::Role::Partner] {
        let ok = model::validate_role_for(role, &partner).is_ok();
        assert_eq!(
            ok,
            role == model::Role::Partner || partner.platform,
            "{role:?}"
        );
    }
}

fn check_type_class(n: i64) {
    match model::type_class(n) {
        Ok((t, class)) => {
            assert_eq!(i64::from(t), n);
            let expected = if n <= i64::from(model::PLATFORM_TYPE_MAX) {
                model::TypeClass::Platform
            } else {
                model::TypeClass::Mcu
            };
            assert_eq!(class, expected, "type {n}");
            assert!(
                (1..=i64::from(model::MCU_TYPE_MAX)).contains(&n),
                "type {n}"
            );
        }
        Err(e) => assert!(!(1..=200).contains(&n), "type {n} refused: {e}"),
    }
}

/// Input: a byte stream as a device would send it. Frames are decoded one after another with
/// the pre-HELLO limit for the first and 256 KiB after, exactly as the server reads them:
/// header first (checked before any body is taken), then exactly body_len bytes. Every frame
/// that decodes must re-encode to the same bytes.
pub fn wire_frames(data: &[u8]) {
    use otad::ocp::wire::{self, HEADER_LEN, PRE_HELLO_MAX_BODY};
    let mut rest = data;
    let mut limit = PRE_HELLO_MAX_BODY;
    while let Some(head) = rest.get(..HEADER_LEN) {
        let header: [u8; HEADER_LEN] = read(head, 0);
        let Ok(h) = wire::decode_header(&header, limit) else {
            return;
        };
        assert!(h.body_len <= limit, "header accepted a body over the limit");
        let end = HEADER_LEN + h.body_len as usize;
        let Some(body) = rest.get(HEADER_LEN..end) else {
            return;
        };
        if let Ok(msg) = wire::decode_body(h.msg_type, body) {
            let mut again = Vec::new();
            wire::encode(h.request_id, &msg, &mut again);
            assert_eq!(
                &again[..],
                &rest[..end],
                "decode/encode round trip changed bytes"
            );
        }
        rest = &rest[end..];
        limit = 256 * 1024;
    }
}

/// Input: a sequence of (request_id u32 LE, message type u8, complete? u8) steps run against
/// the session admission rules: in-flight never exceeds max_inflight, accepted ids are
/// unique among those in flight, and refusals/closes follow the documented codes.
pub fn session_sequence(data: &[u8]) {
    use otad::ocp::session::{Admission, Session};
    use otad::ocp::wire::{ErrorCode, MsgType};
    let [max] = read::<1>(data, 0);
    let max_inflight = max % 65;
    let mut session = Session::new(max_inflight);
    let cap = usize::from(max_inflight.max(1));
    let mut model: Vec<u32> = Vec::new();
    for step in data.get(1..).unwrap_or_default().chunks(6) {
        let rid = u32::from_le_bytes(read(step, 0));
        let [t] = read::<1>(step, 4);
        let [done] = read::<1>(step, 5);
        if done & 1 == 1 && !model.is_empty() {
            let id = model.remove(usize::from(done >> 1) % model.len());
            session.complete(id);
            continue;
        }
        let Some(msg_type) = MsgType::from_u8(t) else {
            continue;
        };
        let request = matches!(
            msg_type,
            MsgType::Check | MsgType::Get | MsgType::Report | MsgType::Ping
        );
        match session.admit(rid, msg_type) {
            Admission::Accept => {
                assert!(rid != 0 && request && !model.contains(&rid) && model.len() < cap);
                model.push(rid);
            }
            Admission::Refuse(code, _) => {
                assert_eq!(code, ErrorCode::TooManyInflight);
                assert!(model.len() >= cap && request && rid != 0 && !model.contains(&rid));
            }
            Admission::Close(code, _) => {
                let expected = if rid == 0 || model.contains(&rid) {
                    ErrorCode::BadFrame
                } else if msg_type == MsgType::Hello {
                    ErrorCode::BadState
                } else {
                    ErrorCode::BadFrame
                };
                assert_eq!(code, expected);
                return;
            }
        }
        assert_eq!(session.in_flight(), model.len());
    }
}

/// A request body as a handler reads it, field by field (`api::catalog`, `api::devices`,
/// `api::admin`, `api::binaries`). Equality after a re-serialization is the round-trip check.
#[derive(Debug, PartialEq)]
enum JsonRequest {
    /// `POST .../types`.
    CreateType {
        fw_type: i64,
        name: String,
        description: String,
    },
    /// `PUT .../types/{type}`, `POST .../deviceTypes`, `PUT .../deviceTypes/{id}`.
    NameDescription { name: String, description: String },
    /// `POST .../pool`.
    PoolCreate {
        fw_type: i64,
        fields: model::RecordFields,
        url: String,
        binary: Option<[u8; 32]>,
        associations: Vec<(String, String)>,
    },
    /// `PUT .../pool/types/{type}/versionNumbers/{vn}`.
    PoolUpdate {
        fields: model::RecordFields,
        url: String,
        binary: Option<[u8; 32]>,
    },
    /// `POST .../firmwareImages` with `"type": 4`.
    DeviceDescription {
        fields: model::RecordFields,
        url: String,
        binary: [u8; 32],
        description_id: Option<String>,
        profile_id: Option<String>,
    },
    /// `POST .../firmwareImages` with any other type: an association.
    Associate { fw_type: u16, version_number: u64 },
    /// `PUT .../push` (a device id) and `POST .../moveToRepository` (a SHA-256).
    Value {
        value: String,
        sha: Option<[u8; 32]>,
    },
    /// `POST .../devices`.
    Register {
        device_id: String,
        device_type: String,
    },
    /// `POST /v1/admin/partners`.
    CreatePartner { name: String, email: Option<String> },
    /// `POST /v1/admin/partners/{id}/users`.
    CreateUser {
        username: String,
        password: String,
        role: model::Role,
    },
    /// `POST .../devices/import`, CSV or NDJSON: (deviceId, deviceTypeId) rows.
    Import { rows: Vec<(String, String)> },
}

/// Kinds of body `http_json` picks from with its first byte.
const JSON_KINDS: u8 = 11;
/// The partner in the path of every `http_json` request.
const JSON_PARTNER: &str = "6f1c2a9e-partner";

/// Reads `body` the way the handler of `kind` does, stopping at the first error as it does.
/// `admin` is whether the caller is an appliance admin; `import_as` is the Content-Type
/// choice of the import (0: text/csv, 1: application/x-ndjson, else sniffed).
fn read_json_request(
    kind: u8,
    admin: bool,
    import_as: u8,
    body: &[u8],
) -> Result<JsonRequest, otad::api::ApiError> {
    use otad::api::ApiError;
    use otad::api::Fields;
    use otad::api::binary_from_url;
    let binary =
        |url: &str| binary_from_url(JSON_PARTNER, url).map(|found| found.map(|(sha, _)| sha));
    if kind == 10 {
        // api::devices::import: UTF-8, then CSV or NDJSON by Content-Type, else by the first
        // character.
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("bad_import", "the import is not UTF-8 text"))?;
        let ndjson = match import_as {
            0 => false,
            1 => true,
            _ => text.trim_start().starts_with('{'),
        };
        let rows = otad::api::parse_import(text, ndjson)?;
        // Errors name lines, so the line numbers must be those of the text, in order.
        let lines = text.lines().count();
        for pair in rows.windows(2) {
            assert!(pair[0].line < pair[1].line, "import lines out of order");
        }
        assert!(
            rows.iter().all(|r| (1..=lines).contains(&r.line)),
            "import line past the {lines} of the text"
        );
        return Ok(JsonRequest::Import {
            rows: rows
                .into_iter()
                .map(|r| (r.device_id, r.device_type_id))
                .collect(),
        });
    }
    let f = Fields::parse(body)?;
    Ok(match kind {
        0 => JsonRequest::CreateType {
            fw_type: f.req_int("type")?,
            name: f.req_str("name")?,
            description: f.opt_str("description")?.unwrap_or_default(),
        },
        1 => JsonRequest::NameDescription {
            name: f.req_str("name")?,
            description: f.opt_str("description")?.unwrap_or_default(),
        },
        2 => {
            let fw_type = f.req_int("type")?;
            let fields = f.record_fields()?;
            let url = f.opt_str("url")?.unwrap_or_default();
            let binary = binary(&url)?;
            let associations = f.associations(JSON_PARTNER, admin)?;
            JsonRequest::PoolCreate {
                fw_type,
                fields,
                url,
                binary,
                associations,
            }
        }
        3 => {
            let fields = f.record_fields()?;
            let url = f.req_str("url")?;
            let binary = binary(&url)?;
            JsonRequest::PoolUpdate {
                fields,
                url,
                binary,
            }
        }
        4 | 5 => {
            let fw_type = f.req_int("type")?;
            if fw_type == i64::from(model::DEVICE_DESCRIPTION_TYPE) {
                let fields = f.record_fields()?;
                let url = f.req_str("url")?;
                let binary = binary(&url)?.ok_or_else(|| {
                    ApiError::bad_request("missing_binary", "a device description needs a url")
                })?;
                JsonRequest::DeviceDescription {
                    fields,
                    url,
                    binary,
                    description_id: f.opt_str("deviceDescriptionId")?,
                    profile_id: f.opt_str("deviceProfileId")?,
                }
            } else {
                let fw_type = u16::try_from(fw_type).map_err(|_| {
                    ApiError::bad_request("type_out_of_range", "firmware type is outside 1-200")
                })?;
                let version_number = f.opt_id("versionNumber")?.ok_or_else(|| {
                    ApiError::bad_request("missing_field", "versionNumber is required")
                })?;
                JsonRequest::Associate {
                    fw_type,
                    version_number,
                }
            }
        }
        6 => {
            let value = f.req_str("value")?;
            let sha = model::parse_hash_hex(&value);
            JsonRequest::Value { value, sha }
        }
        7 => JsonRequest::Register {
            device_id: f.req_str("deviceId")?,
            device_type: f.req_str("deviceTypeId")?,
        },
        8 => JsonRequest::CreatePartner {
            name: f.req_str("name")?,
            email: f.opt_str("email")?.filter(|e| !e.is_empty()),
        },
        _ => {
            let username = f.req_str("username")?;
            let password = f.req_str("password")?;
            let role = model::Role::parse(&f.opt_str("role")?.unwrap_or_else(|| "partner".into()))
                .map_err(|e| ApiError::bad_request(e.trace, e.to_string()))?;
            JsonRequest::CreateUser {
                username,
                password,
                role,
            }
        }
    })
}

/// The body a client would send for `request`: JSON, or NDJSON for an import. Ids are sent
/// as strings, as the API renders them.
fn write_json_request(request: &JsonRequest) -> Vec<u8> {
    use serde_json::{Value, json};
    let fields = |f: &model::RecordFields, value: &mut Value| {
        value["name"] = json!(f.name);
        value["description"] = json!(f.description);
        value["version"] = json!(f.version);
        value["tags"] = json!(f.tags);
    };
    let value = match request {
        JsonRequest::CreateType {
            fw_type,
            name,
            description,
        } => json!({"type": fw_type, "name": name, "description": description}),
        JsonRequest::NameDescription { name, description } => {
            json!({"name": name, "description": description})
        }
        JsonRequest::PoolCreate {
            fw_type,
            fields: f,
            url,
            associations,
            ..
        } => {
            let mut grouped = serde_json::Map::new();
            for (owner, id) in associations {
                let list = grouped
                    .entry(owner.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = list {
                    items.push(json!(id));
                }
            }
            let mut value = json!({"type": fw_type, "url": url, "associations": grouped});
            fields(f, &mut value);
            value
        }
        JsonRequest::PoolUpdate { fields: f, url, .. } => {
            let mut value = json!({ "url": url });
            fields(f, &mut value);
            value
        }
        JsonRequest::DeviceDescription {
            fields: f,
            url,
            description_id,
            profile_id,
            ..
        } => {
            let mut value = json!({
                "type": model::DEVICE_DESCRIPTION_TYPE,
                "url": url,
                "deviceDescriptionId": description_id,
                "deviceProfileId": profile_id,
            });
            fields(f, &mut value);
            value
        }
        JsonRequest::Associate {
            fw_type,
            version_number,
        } => json!({"type": fw_type, "versionNumber": version_number.to_string()}),
        JsonRequest::Value { value, .. } => json!({ "value": value }),
        JsonRequest::Register {
            device_id,
            device_type,
        } => json!({"deviceId": device_id, "deviceTypeId": device_type}),
        JsonRequest::CreatePartner { name, email } => json!({"name": name, "email": email}),
        JsonRequest::CreateUser {
            username,
            password,
            role,
        } => json!({"username": username, "password": password, "role": role.as_str()}),
        JsonRequest::Import { rows } => {
            let mut out = Vec::new();
            for (device_id, device_type) in rows {
                let line = json!({"deviceId": device_id, "deviceTypeId": device_type});
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            return out;
        }
    };
    value.to_string().into_bytes()
}

/// The input checks the store makes on `request` before touching the database (see
/// `store::catalog` and `store::devices`), in the same order.
fn validate_json_request(request: &JsonRequest) -> Result<(), model::ModelError> {
    match request {
        JsonRequest::CreateType {
            fw_type,
            name,
            description,
        } => {
            model::type_class(*fw_type)?;
            model::validate_name(name)?;
            model::validate_description(description)
        }
        JsonRequest::NameDescription { name, description } => {
            model::validate_name(name)?;
            model::validate_description(description)
        }
        JsonRequest::PoolCreate {
            fw_type, fields, ..
        } => {
            model::type_class(*fw_type)?;
            fields.validate()
        }
        JsonRequest::PoolUpdate { fields, .. } => fields.validate(),
        JsonRequest::DeviceDescription {
            fields,
            description_id,
            profile_id,
            ..
        } => {
            fields.validate()?;
            for (field, value) in [
                ("deviceDescriptionId", description_id),
                ("deviceProfileId", profile_id),
            ] {
                if let Some(v) = value {
                    model::validate_optional_text(field, v, model::ID_MAX)?;
                }
            }
            Ok(())
        }
        JsonRequest::Associate { fw_type, .. } => {
            model::type_class(i64::from(*fw_type)).map(|_| ())
        }
        JsonRequest::Value { .. } => Ok(()),
        JsonRequest::Register { device_id, .. } => model::validate_device_id(device_id),
        JsonRequest::CreatePartner { name, email } => {
            model::validate_name(name)?;
            email.as_deref().map_or(Ok(()), model::validate_email)
        }
        JsonRequest::CreateUser {
            username, password, ..
        } => {
            model::validate_username(username)?;
            model::validate_password(password)
        }
        JsonRequest::Import { rows } => rows
            .iter()
            .try_for_each(|(device_id, _)| model::validate_device_id(device_id)),
    }
}

/// An error the API answers with must be a client error with a short machine code, and its
/// body must render.
fn check_api_error(e: &otad::api::ApiError, what: &str) {
    assert!(
        e.status.is_client_error(),
        "{what}: {e:?} is not a 4xx answer"
    );
    assert!(
        !e.trace.is_empty()
            && e.trace.len() <= 64
            && e.trace
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
        "{what}: trace {:?}",
        e.trace
    );
    let body = e.body("/fuzz");
    assert_eq!(
        body["status"],
        e.status.as_u16(),
        "{what}: error body status"
    );
}

/// Input: byte 0 mod 11 picks the body kind, its bit 7 says whether the caller is an
/// appliance admin and its bits 5-6 (mod 3) the import's Content-Type; the rest is the body.
///
/// Reads the body as the handler does; never panics, errors are 4xx with a machine code (403
/// only for another partner's association by a non-admin). A body that reads must read the
/// same again after being re-serialized, and its store validation must not panic.
pub fn http_json(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = selector % JSON_KINDS;
    let admin = selector & 0x80 != 0;
    let import_as = (selector >> 5) % 3;
    let request = match read_json_request(kind, admin, import_as, body) {
        Ok(request) => request,
        Err(e) => {
            check_api_error(&e, "http_json");
            if e.status.as_u16() == 403 {
                assert!(kind == 2 && !admin, "403 for kind {kind}, admin {admin}");
            }
            return;
        }
    };
    let again = write_json_request(&request);
    // The re-serialized import is NDJSON whatever the original was.
    let reread = read_json_request(kind, admin, 1, &again).unwrap_or_else(|e| {
        panic!(
            "kind {kind}: {request:?} re-serialized as {} does not read: {e:?}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(
        reread, request,
        "kind {kind}: round trip changed the request"
    );
    if let Err(e) = validate_json_request(&request) {
        assert!(!e.trace.is_empty() && !e.reason.is_empty(), "{e:?}");
    }
    // A URL as moveToRepository hands it out (any base) names the same binary.
    if let JsonRequest::PoolCreate {
        binary: Some(sha), ..
    }
    | JsonRequest::PoolUpdate {
        binary: Some(sha), ..
    }
    | JsonRequest::DeviceDescription { binary: sha, .. } = &request
    {
        let url = format!(
            "https://ota.example/v1/ota/partners/{JSON_PARTNER}/binaries/{}",
            model::hex(sha)
        );
        let found = otad::api::binary_from_url(JSON_PARTNER, &url);
        assert_eq!(found.ok().flatten().map(|(s, _)| s), Some(*sha));
    }
}

/// The characters RFC 2046 allows in a boundary besides the space (`bcharsnospace`).
const BOUNDARY_CHARS: &[u8] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=?";

/// Runs a multipart reader over `body` fed in pieces whose lengths cycle through `lengths`
/// (the whole body at once if there are none or all are zero, after the zero-length feeds).
fn read_multipart(
    boundary: &str,
    body: &[u8],
    lengths: &[usize],
) -> Result<Vec<u8>, otad::api::MultipartError> {
    let mut reader = otad::api::MultipartReader::new(boundary);
    let mut out = Vec::new();
    if lengths.iter().all(|&n| n == 0) {
        for _ in lengths {
            reader.feed(&[], &mut out)?;
        }
        reader.feed(body, &mut out)?;
    } else {
        let mut fed = 0;
        for &n in lengths.iter().cycle() {
            if fed == body.len() {
                break;
            }
            let n = n.min(body.len() - fed);
            reader.feed(&body[fed..fed + n], &mut out)?;
            fed += n;
            assert!(
                out.len() <= fed,
                "{} file bytes out of {fed} fed",
                out.len()
            );
        }
    }
    reader.finish()?;
    Ok(out)
}

/// Input: byte 0 flags; byte 1 the boundary length (mod 72); the boundary; a piece count
/// (mod 9) and that many u16 LE piece lengths; then the body.
///
/// Raw: the body is read with the boundary (lossy UTF-8) fed whole and fed in the pieces;
/// both must give the same answer, and the file bytes are a contiguous part of the body.
/// Built: the same bytes, with the boundary mapped onto RFC 2046 characters, become the file
/// of a well-formed body (a note part first, an optional preamble and an epilogue); that body
/// must yield exactly the file in any pieces, and its Content-Type and first line must name
/// the boundary.
pub fn multipart(data: &[u8]) {
    use otad::api::{boundary_from_content_type, sniff_boundary};
    let [flags, boundary_len] = read(data, 0);
    let boundary_len = usize::from(boundary_len) % 72;
    let raw_boundary = data
        .get(2..(2 + boundary_len).min(data.len()))
        .unwrap_or(&[]);
    let at = 2 + raw_boundary.len();
    let [count] = read(data, at);
    let count = usize::from(count) % (MAX_PIECES + 1);
    let lengths: Vec<usize> = (0..count)
        .map(|i| usize::from(u16::from_le_bytes(read(data, at + 1 + 2 * i))))
        .collect();
    let body = data.get(at + 1 + 2 * count..).unwrap_or(&[]);

    // Raw: whatever the bytes, streaming must not change the answer.
    let boundary = String::from_utf8_lossy(raw_boundary);
    let whole = read_multipart(&boundary, body, &[]);
    let pieces = read_multipart(&boundary, body, &lengths);
    assert_eq!(
        pieces, whole,
        "boundary {boundary:?}: pieces {lengths:?} vs whole"
    );
    if let Ok(file) = &whole {
        assert!(
            file.is_empty() || body.windows(file.len()).any(|w| w == file.as_slice()),
            "the file is not a part of the body"
        );
    }
    let _ = sniff_boundary(body);

    // Built: a well-formed body around the same bytes.
    let boundary: String = if raw_boundary.is_empty() {
        "b".to_string()
    } else {
        raw_boundary
            .iter()
            .take(70)
            .map(|&c| char::from(BOUNDARY_CHARS[usize::from(c) % BOUNDARY_CHARS.len()]))
            .collect()
    };
    let file = body;
    let delimiter = format!("\r\n--{boundary}");
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    // A boundary must not occur in the content (RFC 2046 §5.1.1); such bodies are not built.
    if contains(file, delimiter.as_bytes()) {
        return;
    }
    let mut built = Vec::new();
    if flags & 1 == 1 {
        built.extend_from_slice(b"This is the preamble.\r\n");
        // The delimiter after a preamble starts with CRLF.
        built.extend_from_slice(b"\r\n");
    }
    built.extend_from_slice(format!("--{boundary}").as_bytes());
    if flags & 2 == 2 {
        // Transport padding after a boundary is allowed.
        built.extend_from_slice(b" \t ");
    }
    built.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello");
    built.extend_from_slice(delimiter.as_bytes());
    let disposition = if flags & 4 == 4 {
        "content-disposition: Form-Data; name=\"file\"\r\n"
    } else {
        "Content-Disposition: form-data; name=\"upload\"; filename=\"fw.bin\"\r\n"
    };
    built.extend_from_slice(b"\r\n");
    built.extend_from_slice(disposition.as_bytes());
    built.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
    built.extend_from_slice(file);
    built.extend_from_slice(delimiter.as_bytes());
    built.extend_from_slice(b"--\r\n");
    if flags & 8 == 8 {
        built.extend_from_slice(b"epilogue, ignored");
    }
    for steps in [&[][..], &lengths[..]] {
        let out = read_multipart(&boundary, &built, steps)
            .unwrap_or_else(|e| panic!("boundary {boundary:?}, pieces {steps:?}: {e}"));
        assert!(
            out == file,
            "boundary {boundary:?}, pieces {steps:?}: file changed"
        );
    }
    let content_type = format!("multipart/form-data; charset=utf-8; boundary=\"{boundary}\"");
    assert_eq!(
        boundary_from_content_type(&content_type).as_deref(),
        Some(boundary.as_str()),
        "{content_type}"
    );
    // Sniffing reads the boundary from the first line, which padding would end differently.
    if flags & 3 == 0 {
        assert_eq!(
            sniff_boundary(&built).as_deref(),
            Some(boundary.as_str()),
            "first line of {boundary:?}"
        );
    }
}

/// Percent-decodes as RFC 3986 does: a `%` must be followed by two hex digits.
fn strict_percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let digit = |c: u8| char::from(c).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(hex[0]) * 16 + digit(hex[1]));
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// `application/x-www-form-urlencoded` decoding of one key or value: `+` is a space, `%`
/// with two hex digits a byte, any other `%` itself; then lossy UTF-8.
fn form_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, strict_percent_decode(bytes.get(i..i + 3).unwrap_or(&[]))) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(decoded)) if decoded.len() == 1 => {
                out.extend_from_slice(&decoded);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes every byte except RFC 3986's unreserved characters.
fn percent_encode(text: &str, every_byte: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if !every_byte && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The methods whose routing `query_paging` compares; an extension method stands for the rest.
fn fuzz_methods() -> [http::Method; 8] {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::from_bytes(b"PURGE").unwrap_or(Method::TRACE),
    ]
}

/// Input: byte 0 picks the method; the rest splits at 0xFF into a query string, a path, a
/// `Range` header and a seed for a list of records and a blob size.
///
/// Checks: `parse_form` decodes as the form encoding says and re-encodes to the same pairs;
/// an accepted `PageQuery` has a size in 1..=1000 and the page and size of the last pairs
/// given, any decimal size ≥ 1 is accepted and clamped, and its page of the records is the
/// oracle's (filter by every tag, sort by the field then id, slice the window); `route`
/// decodes segments strictly, recognises a path whatever the method (400 and 404 alike for
/// all methods, otherwise 405 or a route), matches its template literally and routes the
/// fully re-encoded path the same; `parse_range` answers a range inside the blob.
pub fn query_paging(data: &[u8]) {
    let [selector] = read(data, 0);
    let mut parts = data.get(1..).unwrap_or(&[]).split(|&b| b == 0xFF);
    let query = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let path = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let range = parts
        .next()
        .map(|r| String::from_utf8_lossy(r).into_owned());
    let seed = parts.next().unwrap_or(&[]);
    check_form(&query);
    check_page_query(&query, seed);
    check_route(selector, &path);
    check_range_header(range.as_deref(), seed);
}

fn check_form(query: &str) {
    use otad::api::parse_form;
    let pairs = parse_form(query.as_bytes());
    let expected: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect();
    assert_eq!(pairs, expected, "parse_form({query:?})");
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k, false), percent_encode(v, false)))
        .collect();
    assert_eq!(
        parse_form(encoded.join("&").as_bytes()),
        pairs,
        "re-encoded {query:?}"
    );
}

/// A record of the page oracle, from 4 seed bytes.
fn seed_record(id: u64, b: [u8; 4]) -> model::Record {
    model::Record {
        id,
        partner_id: "p".into(),
        fw_type: u16::from(b[2] % 3) + 1,
        version_number: u64::from(b[0]),
        name: format!("n{}", b[1] % 4),
        description: format!("d{}", b[3] % 2),
        version: format!("1.{}", b[1] % 3),
        tags: ["a", "b", "c"]
            .iter()
            .enumerate()
            .filter(|(i, _)| b[2] >> (2 + i) & 1 == 1)
            .map(|(_, t)| t.to_string())
            .collect(),
        binary: None,
        device_type_id: None,
        device_description_id: None,
        device_profile_id: None,
        created_ms: u64::from(b[0] ^ b[3]),
        updated_ms: u64::from(b[3]),
    }
}

fn check_page_query(query: &str, seed: &[u8]) {
    use otad::api::parse_form;
    use otad::api::{DEFAULT_SIZE, MAX_SIZE, PageQuery, SortField};
    // The documented size rule, on its own: a decimal size ≥ 1 is accepted, clamped to 1000.
    for (k, v) in parse_form(query.as_bytes()) {
        if k == "size" && !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) {
            let alone = PageQuery::parse(Some(&format!("size={v}")));
            if v.bytes().all(|c| c == b'0') {
                assert!(alone.is_err(), "size={v} accepted");
            } else {
                let size = alone
                    .unwrap_or_else(|e| panic!("size={v} refused: {}", e.message))
                    .window
                    .size;
                let expected = v.trim_start_matches('0');
                let expected = if expected.len() > 4 {
                    MAX_SIZE
                } else {
                    expected.parse::<usize>().unwrap_or(MAX_SIZE).min(MAX_SIZE)
                };
                assert_eq!(size, expected, "size={v}");
            }
        }
    }
    let q = match PageQuery::parse(Some(query)) {
        Ok(q) => q,
        Err(e) => {
            check_api_error(&e, "PageQuery::parse");
            assert!(
                ["bad_page", "bad_size", "bad_sort"].contains(&e.trace),
                "{query:?}: {e:?}"
            );
            return;
        }
    };
    let pairs = parse_form(query.as_bytes());
    let last = |key: &str| pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    assert!((1..=MAX_SIZE).contains(&q.window.size), "{query:?}: {q:?}");
    if last("size").is_none() {
        assert_eq!(q.window.size, DEFAULT_SIZE, "{query:?}");
    }
    assert_eq!(
        q.window.page,
        last("page").map_or(0, |v| v.parse().unwrap_or(usize::MAX)),
        "{query:?}"
    );
    for tag in &q.tags {
        assert!(
            !tag.is_empty() && tag.trim() == tag && !tag.contains(','),
            "tag {tag:?}"
        );
    }

    let records: Vec<model::Record> = seed
        .chunks(4)
        .take(16)
        .zip(0u64..)
        .map(|(b, id)| seed_record(id, read(b, 0)))
        .collect();
    let page = q.apply(records.clone(), |r| serde_json::json!(r.id));
    let mut matching: Vec<model::Record> = records
        .into_iter()
        .filter(|r| q.tags.iter().all(|t| r.tags.contains(t)))
        .collect();
    matching.sort_by(|a, b| {
        let by_field = match q.sort {
            SortField::UpdatedTimestamp => a.updated_ms.cmp(&b.updated_ms),
            SortField::CreatedTimestamp => a.created_ms.cmp(&b.created_ms),
            SortField::Description => a.description.cmp(&b.description),
            SortField::Name => a.name.cmp(&b.name),
            SortField::VersionNumber => a.version_number.cmp(&b.version_number),
            SortField::Version => a.version.cmp(&b.version),
            SortField::Type => a.fw_type.cmp(&b.fw_type),
        };
        let order = by_field.then(a.id.cmp(&b.id));
        if q.descending { order.reverse() } else { order }
    });
    let (size, total) = (q.window.size, matching.len());
    let expected: Vec<u64> = matching
        .iter()
        .skip(q.window.page.saturating_mul(size))
        .take(size)
        .map(|r| r.id)
        .collect();
    let what = format!("{query:?} over {total} records");
    assert_eq!(page["content"], serde_json::json!(expected), "{what}");
    assert_eq!(page["numberOfElements"], expected.len(), "{what}");
    assert_eq!(page["totalElements"], total, "{what}");
    assert_eq!(page["totalPages"], total.div_ceil(size), "{what}");
    assert_eq!(page["size"], size, "{what}");
    assert_eq!(page["number"], q.window.page, "{what}");
    let direction = if q.descending { ": DESC" } else { ": ASC" };
    assert!(
        page["sort"]
            .as_str()
            .is_some_and(|s| s.ends_with(direction)),
        "{what}: sort {}",
        page["sort"]
    );
}

fn check_route(selector: u8, path: &str) {
    use otad::api::decode_segment;
    use otad::api::route;
    let methods = fuzz_methods();
    let method = &methods[usize::from(selector) % methods.len()];
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut decoded = Some(Vec::with_capacity(raw.len()));
    for segment in &raw {
        let strict =
            strict_percent_decode(segment.as_bytes()).and_then(|b| String::from_utf8(b).ok());
        let got = decode_segment(segment);
        if let Err(e) = &got {
            check_api_error(e, "decode_segment");
        }
        assert_eq!(
            got.as_ref().ok(),
            strict.as_ref(),
            "decode_segment({segment:?})"
        );
        match (&mut decoded, strict) {
            (Some(list), Some(s)) => list.push(s),
            _ => decoded = None,
        }
    }

    // The answer as compared across methods and encodings: the route, or the status.
    let answer = |m: &http::Method, p: &str| match route(m, p) {
        Ok((r, template)) => Ok((r, template)),
        Err(e) => {
            check_api_error(&e, "route");
            Err(e.status.as_u16())
        }
    };
    let result = answer(method, path);
    let statuses: Vec<Option<u16>> = methods.iter().map(|m| answer(m, path).err()).collect();
    match &decoded {
        None => assert!(
            statuses.iter().all(|s| *s == Some(400)),
            "{path:?}: {statuses:?}"
        ),
        Some(_) if statuses.contains(&Some(404)) => {
            assert!(
                statuses.iter().all(|s| *s == Some(404)),
                "{path:?}: {statuses:?}"
            );
        }
        Some(_) => {
            assert!(
                statuses.iter().all(|s| matches!(s, None | Some(405))),
                "{path:?}: {statuses:?}"
            );
            assert!(statuses.contains(&None), "{path:?}: 405 for every method");
        }
    }
    let Some(segments) = decoded else {
        return;
    };
    if let Ok((r, template)) = &result {
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        assert_eq!(parts.len(), segments.len(), "{path:?} vs {template}");
        for (part, segment) in parts.iter().zip(&segments) {
            if !part.starts_with('{') {
                assert_eq!(part, segment, "{path:?} vs {template}");
            }
        }
        let partner_route = template.starts_with("/v1/ota/partners/{partnerId}/");
        assert_eq!(
            r.partner(),
            partner_route.then(|| segments[3].as_str()),
            "{template}"
        );
    }
    let encoded: Vec<String> = segments.iter().map(|s| percent_encode(s, true)).collect();
    let encoded = format!("/{}", encoded.join("/"));
    assert_eq!(
        answer(method, &encoded),
        result,
        "{path:?} re-encoded as {encoded:?}"
    );
}

fn check_range_header(range: Option<&str>, seed: &[u8]) {
    use otad::api::{RangeAnswer, parse_range};
    let size = u64::from_le_bytes(read(seed, 0));
    // Small blobs are where the edges are; every other seed keeps the full width.
    let size = if size & 1 == 0 { size % 4096 } else { size };
    assert_eq!(parse_range(None, size), RangeAnswer::Whole);
    let answer = parse_range(range, size);
    if let RangeAnswer::Part(start, end) = answer {
        assert!(
            start < end && end <= size,
            "{range:?} of {size}: {start}..{end}"
        );
    }
    // The plain forms, exactly: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
    let Some((a, b)) = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|spec| spec.split_once('-'))
    else {
        return;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let expected = match (a.is_empty(), number(a), b.is_empty(), number(b)) {
        (true, _, false, Some(0)) => RangeAnswer::Unsatisfiable,
        (true, _, false, Some(n)) if size > 0 => RangeAnswer::Part(size.saturating_sub(n), size),
        (true, _, false, Some(_)) => RangeAnswer::Unsatisfiable,
        (false, Some(start), true, _) if start < size => RangeAnswer::Part(start, size),
        (false, Some(_), true, _) => RangeAnswer::Unsatisfiable,
        (false, Some(start), false, Some(last)) if last >= start && start < size => {
            RangeAnswer::Part(start, last.saturating_add(1).min(size))
        }
        (false, Some(start), false, Some(last)) if last >= start => RangeAnswer::Unsatisfiable,
        (false, Some(_), false, Some(_)) => RangeAnswer::Whole,
        _ => return,
    };
    assert_eq!(answer, expected, "{range:?} of {size}");
}
