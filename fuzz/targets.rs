//! The fuzz target bodies, one plain function per target.
//!
//! Shared by the libFuzzer binaries in `fuzz_targets/` and by the stable-Rust replay test
//! `tests/fuzz_corpus.rs`, so this file may use only `otad`, `blake3` and std.

use std::path::Path;

use otad::hashtree::{self, OutboardBuilder, SlicePart};
use otad::model;
use otad::store::blobs::{BlobMeta, Upload};
use otad::store::codec;
use otad::store::tokens::Token;

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
    use otad::device::wire::{self, HEADER_LEN, PRE_HELLO_MAX_BODY};
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
    use otad::device::session::{Admission, Session};
    use otad::device::wire::{ErrorCode, MsgType};
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
