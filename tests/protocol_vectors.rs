//! The golden vectors of docs/protocol.md, checked against the code.
//!
//! docs/protocol.md is the normative OCP/1 specification that device firmware is written
//! from. Its fenced ```` ```vector ```` blocks are the one source of the golden bytes; this
//! test reads them and checks each one against otad:
//!
//! - `msg.*`: the frame decodes (`wire::decode_header`, `wire::decode_body`) to exactly the
//!   documented field values, and `wire::encode` of those values gives the same bytes.
//! - `blob.*`: a test blob (size, the byte formula, BLAKE3 root, SHA-256).
//! - `cv.*`: the chaining value of one subtree of a test blob.
//! - `slice.*`: a verified slice equals what `hashtree::slice_plan` + the blob's outboard
//!   (`hashtree::OutboardBuilder`) produce, and it verifies with three decoders: bao-tree's
//!   (independent of otad), `hashtree::verify_slice`, and the document's own algorithm,
//!   transliterated below (`mod doc`) from the pseudocode of docs/protocol.md.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use otad::hashtree::{self, OutboardBuilder, SlicePart};
use otad::ocp::wire::{self, HEADER_LEN, Message, MsgType, OfferItem, SignedManifest};

/// The document holding the vectors, relative to the crate root.
const DOC: &str = "docs/protocol.md";
/// How every test blob's bytes are defined (the `formula:` line of each `blob.*` vector).
const FORMULA: &str = "byte[i] = (i * 31 + 7) mod 251";

fn blob_bytes(size: u64) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// Reading the vectors
// ---------------------------------------------------------------------------------------

/// One ```` ```vector ```` block: `key: value` lines, then `bytes:` and hex lines.
#[derive(Debug)]
struct Vector {
    name: String,
    /// Line of the opening fence in the document (1-based), for error messages.
    line: usize,
    fields: BTreeMap<String, String>,
    bytes: Vec<u8>,
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", text.len()));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .map_err(|_| format!("not hex: {:?}", &text[i..i + 2]))
        })
        .collect()
}

fn parse_vectors(text: &str) -> Vec<Vector> {
    let mut out: Vec<Vector> = Vec::new();
    let mut current: Option<(Vector, bool)> = None;
    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let line = raw.trim();
        let Some((v, in_bytes)) = current.as_mut() else {
            if line == "```vector" {
                current = Some((
                    Vector {
                        name: String::new(),
                        line: lineno,
                        fields: BTreeMap::new(),
                        bytes: Vec::new(),
                    },
                    false,
                ));
            }
            continue;
        };
        if line.starts_with("```") {
            let (v, _) = current.take().expect("inside a block");
            assert!(
                !v.name.is_empty(),
                "{DOC}:{}: vector block without `name:`",
                v.line
            );
            assert!(
                out.iter().all(|o| o.name != v.name),
                "{DOC}:{}: vector {} defined twice",
                v.line,
                v.name
            );
            out.push(v);
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if *in_bytes {
            let hex: String = line
                .split('#')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let bytes = decode_hex(&hex)
                .unwrap_or_else(|e| panic!("{DOC}:{lineno}: vector {}: {e}", v.name));
            v.bytes.extend_from_slice(&bytes);
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{DOC}:{lineno}: expected `key: value`, got {line:?}"));
        let (key, value) = (key.trim(), value.trim());
        if key == "bytes" {
            assert!(
                value.is_empty(),
                "{DOC}:{lineno}: `bytes:` stands alone on its line"
            );
            *in_bytes = true;
        } else if key == "name" {
            v.name = value.to_string();
        } else {
            assert!(
                v.fields
                    .insert(key.to_string(), value.to_string())
                    .is_none(),
                "{DOC}:{lineno}: key {key} given twice"
            );
        }
    }
    if let Some((v, _)) = current {
        panic!("{DOC}:{}: vector block never closed", v.line);
    }
    out
}

fn load_vectors() -> Vec<Vector> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): the OCP/1 specification with its golden vectors is missing",
            path.display()
        )
    });
    parse_vectors(&text)
}

impl Vector {
    fn raw(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("vector {} (line {}): no `{key}:`", self.name, self.line))
    }

    fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> T {
        let raw = self.raw(key);
        raw.parse().unwrap_or_else(|_| {
            panic!(
                "vector {}: `{key}: {raw}` is not a number of the right size",
                self.name
            )
        })
    }

    fn string(&self, key: &str) -> String {
        let raw = self.raw(key);
        raw.strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or_else(|| panic!("vector {}: `{key}` must be a quoted string", self.name))
            .to_string()
    }

    fn flag(&self, key: &str) -> bool {
        match self.raw(key) {
            "true" => true,
            "false" => false,
            other => panic!("vector {}: `{key}: {other}` is not true/false", self.name),
        }
    }

    fn hash(&self, key: &str) -> [u8; 32] {
        self.fixed(key)
    }

    fn bytes_field(&self, key: &str) -> Vec<u8> {
        decode_hex(self.raw(key)).unwrap_or_else(|e| panic!("vector {}: `{key}`: {e}", self.name))
    }

    fn fixed<const N: usize>(&self, key: &str) -> [u8; N] {
        self.bytes_field(key)
            .try_into()
            .unwrap_or_else(|_| panic!("vector {}: `{key}` is not {N} bytes", self.name))
    }
}

// ---------------------------------------------------------------------------------------
// The document's algorithm: BLAKE3 from the compression function up, and the slice walk.
// Written the way docs/protocol.md describes it for C, so the pseudocode is checked too.
// ---------------------------------------------------------------------------------------

mod doc {
    pub const CHUNK_LEN: u64 = 1024;
    const CHUNK_START: u32 = 1;
    const CHUNK_END: u32 = 2;
    const PARENT: u32 = 4;
    const ROOT: u32 = 8;
    const IV: [u32; 8] = [
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
        0x5BE0CD19,
    ];
    const SCHEDULE: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];

    pub type Cv = [u8; 32];

    #[allow(clippy::too_many_arguments)]
    fn mix(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
        v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
        v[d] = (v[d] ^ v[a]).rotate_right(16);
        v[c] = v[c].wrapping_add(v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(12);
        v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
        v[d] = (v[d] ^ v[a]).rotate_right(8);
        v[c] = v[c].wrapping_add(v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(7);
    }

    /// The BLAKE3 compression function; returns the first 8 output words (a CV or a hash).
    fn compress(cv: &[u32; 8], block: &[u8; 64], counter: u64, len: u32, flags: u32) -> [u32; 8] {
        let mut m = [0u32; 16];
        for (i, w) in m.iter_mut().enumerate() {
            *w = u32::from_le_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        let mut v = [0u32; 16];
        v[..8].copy_from_slice(cv);
        v[8..12].copy_from_slice(&IV[..4]);
        v[12] = counter as u32;
        v[13] = (counter >> 32) as u32;
        v[14] = len;
        v[15] = flags;
        for round in 0..7 {
            mix(&mut v, 0, 4, 8, 12, m[0], m[1]);
            mix(&mut v, 1, 5, 9, 13, m[2], m[3]);
            mix(&mut v, 2, 6, 10, 14, m[4], m[5]);
            mix(&mut v, 3, 7, 11, 15, m[6], m[7]);
            mix(&mut v, 0, 5, 10, 15, m[8], m[9]);
            mix(&mut v, 1, 6, 11, 12, m[10], m[11]);
            mix(&mut v, 2, 7, 8, 13, m[12], m[13]);
            mix(&mut v, 3, 4, 9, 14, m[14], m[15]);
            if round < 6 {
                let old = m;
                for (i, w) in m.iter_mut().enumerate() {
                    *w = old[SCHEDULE[i]];
                }
            }
        }
        let mut out = [0u32; 8];
        for (i, w) in out.iter_mut().enumerate() {
            *w = v[i] ^ v[i + 8];
        }
        out
    }

    fn to_bytes(words: &[u32; 8]) -> Cv {
        let mut out = [0u8; 32];
        for (i, w) in words.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// CV of one chunk (1–1024 bytes; 0 only for an empty input) at chunk counter `counter`.
    pub fn chunk_cv(data: &[u8], counter: u64, root: bool) -> Cv {
        let blocks = data.len().div_ceil(64).max(1);
        let mut cv = IV;
        for i in 0..blocks {
            let piece = &data[i * 64..((i + 1) * 64).min(data.len())];
            let mut block = [0u8; 64];
            block[..piece.len()].copy_from_slice(piece);
            let mut flags = 0;
            if i == 0 {
                flags |= CHUNK_START;
            }
            if i == blocks - 1 {
                flags |= CHUNK_END;
                if root {
                    flags |= ROOT;
                }
            }
            cv = compress(&cv, &block, counter, piece.len() as u32, flags);
        }
        to_bytes(&cv)
    }

    /// CV of a parent node: compress(IV, left ‖ right, counter 0, 64, PARENT [| ROOT]).
    pub fn parent_cv(left: &[u8], right: &[u8], root: bool) -> Cv {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(left);
        block[32..].copy_from_slice(right);
        let flags = PARENT | if root { ROOT } else { 0 };
        to_bytes(&compress(&IV, &block, 0, 64, flags))
    }

    /// Streaming CV of a subtree that starts at chunk `first_chunk` (a group): chunks are
    /// hashed as they complete and merged with the "merge while the count is even" rule;
    /// the last chunk stays buffered until `finalize`.
    pub struct GroupHasher {
        first_chunk: u64,
        chunks_done: u64,
        stack: Vec<Cv>,
        buf: Vec<u8>,
    }

    impl GroupHasher {
        pub fn new(first_chunk: u64) -> Self {
            Self {
                first_chunk,
                chunks_done: 0,
                stack: Vec::new(),
                buf: Vec::new(),
            }
        }

        pub fn update(&mut self, mut data: &[u8]) {
            while !data.is_empty() {
                if self.buf.len() == CHUNK_LEN as usize {
                    let mut cv = chunk_cv(&self.buf, self.first_chunk + self.chunks_done, false);
                    self.buf.clear();
                    self.chunks_done += 1;
                    let mut total = self.chunks_done;
                    while total & 1 == 0 {
                        let left = self.stack.pop().expect("a left sibling");
                        cv = parent_cv(&left, &cv, false);
                        total >>= 1;
                    }
                    self.stack.push(cv);
                }
                let take = (CHUNK_LEN as usize - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
            }
        }

        pub fn finalize(mut self, root: bool) -> Cv {
            let counter = self.first_chunk + self.chunks_done;
            let mut cv = chunk_cv(&self.buf, counter, root && self.stack.is_empty());
            while let Some(left) = self.stack.pop() {
                cv = parent_cv(&left, &cv, root && self.stack.is_empty());
            }
            cv
        }
    }

    /// Chaining value (or, with `root`, the hash) of the subtree of `data` starting at byte
    /// `start` of the blob: the recursive definition (`subtree_cv` in the document).
    pub fn subtree(data: &[u8], start: u64, root: bool) -> Cv {
        let chunks = (data.len() as u64).div_ceil(CHUNK_LEN).max(1);
        if chunks == 1 {
            return chunk_cv(data, start / CHUNK_LEN, root);
        }
        let left = (CHUNK_LEN * left_count(chunks)) as usize;
        let l = subtree(&data[..left], start, false);
        let r = subtree(&data[left..], start + left as u64, false);
        parent_cv(&l, &r, root)
    }

    /// The same value computed while streaming (the incremental method of the document).
    pub fn subtree_streaming(data: &[u8], start: u64, root: bool) -> Cv {
        let mut h = GroupHasher::new(start / CHUNK_LEN);
        for piece in data.chunks(100) {
            h.update(piece);
        }
        h.finalize(root)
    }

    /// Largest power of two strictly below n (n ≥ 2).
    fn left_count(n: u64) -> u64 {
        let mut p = 1;
        while p * 2 < n {
            p *= 2;
        }
        p
    }

    /// The document's verification walk over a DATA payload; returns the verified bytes.
    pub fn verify(
        root: &Cv,
        size: u64,
        chunk_log: u8,
        offset: u64,
        length: u32,
        slice: &[u8],
    ) -> Result<Vec<u8>, String> {
        let g = CHUNK_LEN << chunk_log;
        let end = (offset + u64::from(length)).min(size);
        let groups = size.div_ceil(g);
        // (first group, end group, expected CV, is the root)
        let mut stack: Vec<(u64, u64, Cv, bool)> = vec![(0, groups, *root, true)];
        let mut pos = 0usize;
        let mut out = Vec::new();
        while let Some((s, e, expected, is_root)) = stack.pop() {
            if e - s == 1 {
                let a = s * g;
                let b = (e * g).min(size);
                let n = (b - a) as usize;
                let data = slice.get(pos..pos + n).ok_or("slice ends inside a group")?;
                pos += n;
                if subtree(data, a, is_root) != expected {
                    return Err(format!("group at byte {a} does not match"));
                }
                out.extend_from_slice(data);
                continue;
            }
            let pair = slice.get(pos..pos + 64).ok_or("slice ends inside a pair")?;
            pos += 64;
            if parent_cv(&pair[..32], &pair[32..], is_root) != expected {
                return Err(format!("pair of node at group {s} does not match"));
            }
            let mid = s + left_count(e - s);
            let left: Cv = pair[..32].try_into().expect("32 bytes");
            let right: Cv = pair[32..].try_into().expect("32 bytes");
            if mid * g < end {
                stack.push((mid, e, right, false));
            }
            if mid * g > offset {
                stack.push((s, mid, left, false));
            }
        }
        if pos != slice.len() {
            return Err(format!("{} bytes left over", slice.len() - pos));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

fn msg_type_named(name: &str) -> MsgType {
    match name {
        "HELLO" => MsgType::Hello,
        "HELLO_OK" => MsgType::HelloOk,
        "CHECK" => MsgType::Check,
        "OFFER" => MsgType::Offer,
        "GET" => MsgType::Get,
        "DATA" => MsgType::Data,
        "REPORT" => MsgType::Report,
        "REPORT_OK" => MsgType::ReportOk,
        "PING" => MsgType::Ping,
        "PONG" => MsgType::Pong,
        "ERROR" => MsgType::Error,
        other => panic!("unknown message name {other}"),
    }
}

fn from_device(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::Hello | MsgType::Check | MsgType::Get | MsgType::Report | MsgType::Ping
    )
}

/// The message a `msg.*` vector documents, built from its field lines. A DATA payload is
/// not repeated as a field: it is the answer to the GET the vector names (`blob`,
/// `chunk_log`, `get_length`), built here from otad's slice plan or the raw blob bytes.
fn documented_message(v: &Vector, blobs: &BTreeMap<String, Blob>) -> Message {
    let t = msg_type_named(v.raw("message"));
    let count = |v: &Vector| v.num::<usize>("n");
    match t {
        MsgType::Hello => Message::Hello {
            device_id: v.string("device_id"),
            token: v.string("token").into_bytes(),
            max_frame: v.num("max_frame"),
            max_inflight: v.num("max_inflight"),
            chunk_log: v.num("chunk_log"),
            features: v.has("features").then(|| v.num("features")),
        },
        MsgType::HelloOk => Message::HelloOk {
            max_frame: v.num("max_frame"),
            max_inflight: v.num("max_inflight"),
            chunk_log: v.num("chunk_log"),
            poll_interval_s: v.num("poll_interval_s"),
            features: v.has("features").then(|| v.num("features")),
        },
        MsgType::Check => Message::Check {
            items: (0..count(v))
                .map(|i| {
                    (
                        v.num(&format!("item.{i}.fw_type")),
                        v.num(&format!("item.{i}.installed_version_number")),
                    )
                })
                .collect(),
        },
        MsgType::Offer => Message::Offer {
            items: (0..count(v))
                .map(|i| {
                    let k = |f: &str| format!("item.{i}.{f}");
                    OfferItem {
                        fw_type: v.num(&k("fw_type")),
                        version_number: v.num(&k("version_number")),
                        size: v.num(&k("size")),
                        blake3: v.hash(&k("blake3")),
                        sha256: v.hash(&k("sha256")),
                        pushed: v.flag(&k("pushed")),
                        version: v.string(&k("version")),
                        signed: v.has(&k("manifest")).then(|| SignedManifest {
                            manifest: v.bytes_field(&k("manifest")),
                            signatures: (0..v.num::<usize>(&k("signatures")))
                                .map(|j| {
                                    let s = |f: &str| k(&format!("signature.{j}.{f}"));
                                    (v.fixed(&s("key_id")), v.fixed(&s("signature")))
                                })
                                .collect(),
                        }),
                    }
                })
                .collect(),
        },
        MsgType::Get => Message::Get {
            blake3: v.hash("blake3"),
            offset: v.num("offset"),
            length: v.num("length"),
            with_proof: v.flag("with_proof"),
        },
        MsgType::Data => {
            let blob = blob_of(blobs, v);
            let offset: u64 = v.num("offset");
            let length: u32 = v.num("length");
            let with_proof = v.flag("with_proof");
            let payload = if with_proof {
                served_slice(blob, v.num("chunk_log"), offset, length)
            } else {
                let end = (offset + u64::from(length)) as usize;
                blob.bytes[offset as usize..end].to_vec()
            };
            Message::Data {
                offset,
                length,
                with_proof,
                payload,
            }
        }
        MsgType::Report => Message::Report {
            fw_type: v.num("fw_type"),
            version_number: v.num("version_number"),
            state: v.num("state"),
            result: v.num("result"),
            bytes_done: v.num("bytes_done"),
        },
        MsgType::ReportOk => Message::ReportOk,
        MsgType::Ping => Message::Ping,
        MsgType::Pong => Message::Pong,
        MsgType::Error => Message::Error {
            code: v.num("code"),
            retry_after_ms: v.num("retry_after_ms"),
            message: v.string("text"),
        },
    }
}

struct Blob {
    bytes: Vec<u8>,
    blake3: [u8; 32],
    sha256: [u8; 32],
    pairs: Vec<u8>,
}

fn check_blob(v: &Vector) -> Blob {
    use sha2::Digest;
    assert_eq!(
        v.raw("formula"),
        FORMULA,
        "vector {}: the test builds blobs with {FORMULA}",
        v.name
    );
    let size: u64 = v.num("size");
    let bytes = blob_bytes(size);
    let blake3 = v.hash("blake3");
    let sha256 = v.hash("sha256");
    assert_eq!(
        blake3::hash(&bytes).as_bytes(),
        &blake3,
        "vector {}: BLAKE3",
        v.name
    );
    let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    assert_eq!(sha, sha256, "vector {}: SHA-256", v.name);
    let mut builder = OutboardBuilder::new();
    builder.update(&bytes);
    assert_eq!(
        builder.finalize().as_bytes(),
        &blake3,
        "vector {}: OutboardBuilder root",
        v.name
    );
    assert_eq!(
        doc::subtree(&bytes, 0, true),
        blake3,
        "vector {}: the document's algorithm (whole blob as root)",
        v.name
    );
    Blob {
        pairs: builder.take_pairs(),
        bytes,
        blake3,
        sha256,
    }
}

fn blob_of<'a>(blobs: &'a BTreeMap<String, Blob>, v: &Vector) -> &'a Blob {
    let name = v.raw("blob");
    blobs
        .get(&format!("blob.{name}"))
        .unwrap_or_else(|| panic!("vector {}: no vector blob.{name}", v.name))
}

fn bao_decode(
    root: [u8; 32],
    size: u64,
    chunk_log: u8,
    offset: u64,
    length: u64,
    slice: &[u8],
) -> Result<Vec<u8>, String> {
    let tree = BaoTree::new(size, BlockSize::from_chunk_log(chunk_log));
    let ranges =
        ChunkRanges::from(ChunkNum(offset / 1024)..ChunkNum((offset + length).div_ceil(1024)));
    let mut cursor = Cursor::new(slice);
    let mut data = Vec::new();
    for item in DecodeResponseIter::new(blake3::Hash::from(root), tree, &mut cursor, &ranges) {
        match item.map_err(|e| e.to_string())? {
            BaoContentItem::Leaf(leaf) => {
                if leaf.offset != offset + data.len() as u64 {
                    return Err(format!("leaf at {} out of order", leaf.offset));
                }
                data.extend_from_slice(&leaf.data);
            }
            BaoContentItem::Parent(_) => {}
        }
    }
    if cursor.position() != slice.len() as u64 {
        return Err(format!(
            "bao-tree used {} of {} slice bytes",
            cursor.position(),
            slice.len()
        ));
    }
    Ok(data)
}

/// Verifies a slice of `blob` three ways and checks the data; `what` names the vector.
fn verify_three_ways(
    what: &str,
    blob: &Blob,
    chunk_log: u8,
    offset: u64,
    length: u32,
    clipped: u32,
    slice: &[u8],
) {
    let size = blob.bytes.len() as u64;
    let want = &blob.bytes[offset as usize..(offset + u64::from(clipped)) as usize];
    let bao = bao_decode(
        blob.blake3,
        size,
        chunk_log,
        offset,
        u64::from(clipped),
        slice,
    )
    .unwrap_or_else(|e| panic!("{what}: bao-tree rejects the slice: {e}"));
    assert_eq!(bao, want, "{what}: bao-tree decoded other bytes");
    let ours = hashtree::verify_slice(&blob.blake3, size, chunk_log, offset, length, slice)
        .unwrap_or_else(|e| panic!("{what}: hashtree::verify_slice rejects the slice: {e}"));
    assert_eq!(ours, want, "{what}: verify_slice returned other bytes");
    let documented = doc::verify(&blob.blake3, size, chunk_log, offset, length, slice)
        .unwrap_or_else(|e| panic!("{what}: the document's walk rejects the slice: {e}"));
    assert_eq!(
        documented, want,
        "{what}: the document's walk returned other bytes"
    );
    // A flipped bit anywhere is caught by all three.
    for at in [0, slice.len() / 2, slice.len() - 1] {
        let mut bad = slice.to_vec();
        bad[at] ^= 0x01;
        assert!(
            bao_decode(
                blob.blake3,
                size,
                chunk_log,
                offset,
                u64::from(clipped),
                &bad
            )
            .is_err(),
            "{what}: bao-tree missed a flip at {at}"
        );
        assert!(
            hashtree::verify_slice(&blob.blake3, size, chunk_log, offset, length, &bad).is_err(),
            "{what}: verify_slice missed a flip at {at}"
        );
        assert!(
            doc::verify(&blob.blake3, size, chunk_log, offset, length, &bad).is_err(),
            "{what}: the document's walk missed a flip at {at}"
        );
    }
}

/// The slice otad serves: `slice_plan` filled from the outboard pairs and the blob bytes.
fn served_slice(blob: &Blob, chunk_log: u8, offset: u64, clipped: u32) -> Vec<u8> {
    let size = blob.bytes.len() as u64;
    let mut out = Vec::new();
    for part in hashtree::slice_plan(size, chunk_log, offset, clipped) {
        match part {
            SlicePart::Pair(i) => {
                let at = i as usize * hashtree::PAIR;
                out.extend_from_slice(&blob.pairs[at..at + hashtree::PAIR]);
            }
            SlicePart::Data { start, end } => {
                out.extend_from_slice(&blob.bytes[start as usize..end as usize]);
            }
        }
    }
    out
}

fn check_message(v: &Vector, blobs: &BTreeMap<String, Blob>) -> MsgType {
    let what = format!("vector {} ({DOC}:{})", v.name, v.line);
    let expected = documented_message(v, blobs);
    let t = expected.msg_type();
    let direction = if from_device(t) {
        "device-to-server"
    } else {
        "server-to-device"
    };
    assert_eq!(v.raw("direction"), direction, "{what}: direction");
    let rid: u32 = v.num("request_id");
    assert!(
        v.bytes.len() >= HEADER_LEN,
        "{what}: shorter than a frame header"
    );
    let header: [u8; HEADER_LEN] = v.bytes[..HEADER_LEN].try_into().expect("12 bytes");
    let h = wire::decode_header(&header, u32::MAX)
        .unwrap_or_else(|e| panic!("{what}: header does not decode: {e}"));
    assert_eq!(h.msg_type, t, "{what}: type byte");
    assert_eq!(h.request_id, rid, "{what}: request_id");
    assert_eq!(
        h.body_len as usize,
        v.bytes.len() - HEADER_LEN,
        "{what}: body_len"
    );
    if t == MsgType::Hello {
        wire::decode_header(&header, wire::PRE_HELLO_MAX_BODY)
            .unwrap_or_else(|e| panic!("{what}: HELLO over the pre-HELLO limit: {e}"));
    }
    let decoded = wire::decode_body(h.msg_type, &v.bytes[HEADER_LEN..])
        .unwrap_or_else(|e| panic!("{what}: body does not decode: {e}"));
    assert_eq!(decoded, expected, "{what}: decoded fields");
    let mut encoded = Vec::new();
    wire::encode(rid, &expected, &mut encoded);
    assert_same_bytes(&what, "wire::encode", &encoded, &v.bytes);
    if v.has("blob") {
        let blob = blob_of(blobs, v);
        match &expected {
            Message::Offer { items } => {
                for item in items {
                    assert_eq!(item.blake3, blob.blake3, "{what}: blake3 of the blob");
                    assert_eq!(item.sha256, blob.sha256, "{what}: sha256 of the blob");
                    assert_eq!(item.size, blob.bytes.len() as u64, "{what}: size");
                }
            }
            Message::Get { blake3, .. } => {
                assert_eq!(blake3, &blob.blake3, "{what}: blake3 of the blob");
            }
            Message::Data {
                offset,
                length,
                with_proof,
                payload,
            } => {
                let size = blob.bytes.len() as u64;
                let chunk_log: u8 = v.num("chunk_log");
                let get_length: u32 = v.num("get_length");
                let clipped = hashtree::check_range(size, chunk_log, *offset, get_length)
                    .unwrap_or_else(|e| panic!("{what}: GET range refused: {e}"));
                assert_eq!(
                    clipped, *length,
                    "{what}: DATA length is the clipped length"
                );
                if *with_proof {
                    verify_three_ways(
                        &what, blob, chunk_log, *offset, get_length, clipped, payload,
                    );
                } else {
                    assert_eq!(
                        payload.as_slice(),
                        &blob.bytes[*offset as usize..(*offset + u64::from(clipped)) as usize],
                        "{what}: raw payload"
                    );
                }
            }
            _ => panic!("{what}: `blob:` means nothing for this message"),
        }
    }
    t
}

fn check_cv(v: &Vector, blobs: &BTreeMap<String, Blob>) {
    use blake3::hazmat::HasherExt;
    let what = format!("vector {} ({DOC}:{})", v.name, v.line);
    let blob = blob_of(blobs, v);
    let start: u64 = v.num("start");
    let end: u64 = v.num("end");
    let root = v.flag("root");
    let want = v.hash("cv");
    let bytes = &blob.bytes[start as usize..end as usize];
    let reference: [u8; 32] = if root {
        assert!(
            start == 0 && end == blob.bytes.len() as u64,
            "{what}: only the whole blob is a root"
        );
        *blake3::hash(bytes).as_bytes()
    } else {
        blake3::Hasher::new()
            .set_input_offset(start)
            .update(bytes)
            .finalize_non_root()
    };
    assert_eq!(hex(&reference), hex(&want), "{what}: blake3 (hazmat) value");
    assert_eq!(
        hex(&doc::subtree(bytes, start, root)),
        hex(&want),
        "{what}: the document's subtree_cv"
    );
    assert_eq!(
        hex(&doc::subtree_streaming(bytes, start, root)),
        hex(&want),
        "{what}: the document's incremental method"
    );
}

fn check_slice(v: &Vector, blobs: &BTreeMap<String, Blob>) {
    let what = format!("vector {} ({DOC}:{})", v.name, v.line);
    let blob = blob_of(blobs, v);
    let size = blob.bytes.len() as u64;
    let chunk_log: u8 = v.num("chunk_log");
    let offset: u64 = v.num("offset");
    let length: u32 = v.num("length");
    let data_length: u32 = v.num("data_length");
    let pairs: usize = v.num("pairs");
    let clipped = hashtree::check_range(size, chunk_log, offset, length)
        .unwrap_or_else(|e| panic!("{what}: the GET range is refused: {e}"));
    assert_eq!(clipped, data_length, "{what}: data_length");
    assert_eq!(
        v.bytes.len(),
        pairs * 64 + data_length as usize,
        "{what}: slice length = 64 * pairs + data_length"
    );
    let plan = hashtree::slice_plan(size, chunk_log, offset, clipped);
    assert_eq!(
        plan.iter()
            .filter(|p| matches!(p, SlicePart::Pair(_)))
            .count(),
        pairs,
        "{what}: pairs"
    );
    assert_same_bytes(
        &what,
        "otad's slice_plan",
        &served_slice(blob, chunk_log, offset, clipped),
        &v.bytes,
    );
    verify_three_ways(&what, blob, chunk_log, offset, length, clipped, &v.bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails with the first differing byte (not two walls of hex) when `got` differs from the
/// document's bytes.
fn assert_same_bytes(what: &str, source: &str, got: &[u8], documented: &[u8]) {
    if got == documented {
        return;
    }
    let at = got
        .iter()
        .zip(documented)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(documented.len()));
    let around = |b: &[u8]| hex(&b[at.saturating_sub(8).min(b.len())..(at + 8).min(b.len())]);
    panic!(
        "{what}: {source} gives {} bytes, the document has {}; first difference at byte {at}: \
         {source} …{}…, document …{}…",
        got.len(),
        documented.len(),
        around(got),
        around(documented)
    );
}

#[test]
fn golden_vectors_match_the_code() {
    let vectors = load_vectors();
    let mut blobs = BTreeMap::new();
    for v in vectors.iter().filter(|v| v.name.starts_with("blob.")) {
        blobs.insert(v.name.clone(), check_blob(v));
    }
    let mut types = Vec::new();
    let (mut messages, mut cvs, mut slices) = (0, 0, 0);
    for v in &vectors {
        let kind = v.name.split('.').next().unwrap_or("");
        match kind {
            "blob" => {}
            "msg" => {
                types.push(check_message(v, &blobs));
                messages += 1;
            }
            "cv" => {
                check_cv(v, &blobs);
                cvs += 1;
            }
            "slice" => {
                check_slice(v, &blobs);
                slices += 1;
            }
            _ => panic!(
                "vector {} (line {}): names start with msg., blob., cv. or slice.",
                v.name, v.line
            ),
        }
    }
    println!(
        "checked {} vectors: {messages} messages, {} blobs, {cvs} chaining values, {slices} slices",
        vectors.len(),
        blobs.len()
    );
    for t in [
        MsgType::Hello,
        MsgType::HelloOk,
        MsgType::Check,
        MsgType::Offer,
        MsgType::Get,
        MsgType::Data,
        MsgType::Report,
        MsgType::ReportOk,
        MsgType::Ping,
        MsgType::Pong,
        MsgType::Error,
    ] {
        assert!(types.contains(&t), "{DOC} has no golden vector for {t:?}");
    }
    assert!(messages >= 15, "only {messages} message vectors found");
    assert!(blobs.len() >= 3, "only {} blob vectors found", blobs.len());
    assert!(cvs >= 4, "only {cvs} chaining-value vectors found");
    assert!(slices >= 8, "only {slices} slice vectors found");
}

#[test]
fn the_vector_parser_reads_what_it_should() {
    let text = "intro\n```vector\nname: msg.x\n# comment\nmessage: PING\nbytes:\n01 09 0000  # header\n00000007 00000000\n```\n```rust\nname: not.a.vector\n```\n";
    let vectors = parse_vectors(text);
    assert_eq!(vectors.len(), 1);
    assert_eq!(vectors[0].name, "msg.x");
    assert_eq!(vectors[0].raw("message"), "PING");
    assert_eq!(hex(&vectors[0].bytes), "010900000000000700000000");
}

#[test]
fn the_documents_blake3_matches_the_blake3_crate() {
    // The compression-function-level algorithm of the document, against the reference,
    // across chunk, block and subtree boundaries.
    for size in [
        0u64, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3000, 4097, 9000, 16_385,
    ] {
        let bytes = blob_bytes(size);
        let want = blake3::hash(&bytes);
        assert_eq!(
            &doc::subtree(&bytes, 0, true),
            want.as_bytes(),
            "size {size}"
        );
        assert_eq!(
            &doc::subtree_streaming(&bytes, 0, true),
            want.as_bytes(),
            "size {size}, streaming"
        );
    }
}
