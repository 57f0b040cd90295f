//! The OCP/1 wire codec: the 12-byte frame header and every message body, both directions.
//!
//! Pure: no I/O, no panics on any input, and nothing is allocated for a body before its
//! length was checked against the limit in force. Bodies must be exactly as long as their
//! layout; trailing or missing bytes are `BadFrame`. docs/protocol.md is the normative text;
//! its golden vectors are checked against this file by `tests/protocol_vectors.rs`.

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 12;
/// Largest body accepted before HELLO_OK.
pub const PRE_HELLO_MAX_BODY: u32 = 1024;
pub const DEVICE_ID_MAX: usize = 64;
pub const TOKEN_MAX: usize = 512;
pub const CHECK_MAX_ITEMS: usize = 32;
pub const VERSION_STRING_MAX: usize = 64;
pub const ERROR_MESSAGE_MAX: usize = 128;
pub const MAX_INFLIGHT_LIMIT: u8 = 64;
pub const CHUNK_LOG_MIN: u8 = 2;
pub const CHUNK_LOG_MAX: u8 = 6;
/// Bytes of a parent pair in a verified slice.
pub const PAIR_LEN: u32 = 64;
/// Room a device's max_frame must leave beside one group for its proof.
pub const PROOF_ROOM: u32 = 4096;
/// HELLO / HELLO_OK features bit 0: OFFER items carry the signed manifest (docs/signing.md).
pub const FEATURE_SIGNED_OFFERS: u8 = 1;
/// Every feature bit this release knows.
pub const FEATURES_KNOWN: u8 = FEATURE_SIGNED_OFFERS;
/// OFFER item flags bit 1: the signature block follows the version string.
const OFFER_FLAG_SIGNED: u8 = 2;
/// Longest manifest an OFFER item may carry (`signing::MANIFEST_MAX`).
pub const OFFER_MANIFEST_MAX: usize = 1274;
/// Signatures one OFFER item carries at the most.
pub const OFFER_SIGNATURES_MAX: usize = 8;

/// Writes a wire enum once: each variant beside its number, and the decoding from the
/// number (`None` for a number the protocol does not define). With `=> "NAME"` per variant
/// it also writes `name()`, the variant's name in docs/protocol.md.
macro_rules! wire_enum {
    (
        $(#[$attr:meta])*
        pub enum $name:ident: $repr:ident, fn $from:ident {
            $($variant:ident = $number:literal),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr($repr)]
        pub enum $name {
            $($variant = $number),+
        }

        impl $name {
            pub fn $from(v: $repr) -> Option<Self> {
                match v {
                    $($number => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
    (
        $(#[$attr:meta])*
        pub enum $name:ident: $repr:ident, fn $from:ident {
            $($variant:ident = $number:literal => $text:literal),+ $(,)?
        }
    ) => {
        wire_enum! {
            $(#[$attr])*
            pub enum $name: $repr, fn $from {
                $($variant = $number),+
            }
        }

        impl $name {
            /// The protocol name (docs/protocol.md), e.g. `BAD_FRAME`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }
    };
}

wire_enum! {
    pub enum MsgType: u8, fn from_u8 {
        Hello = 0x01,
        HelloOk = 0x02,
        Check = 0x03,
        Offer = 0x04,
        Get = 0x05,
        Data = 0x06,
        Report = 0x07,
        ReportOk = 0x08,
        Ping = 0x09,
        Pong = 0x0A,
        Error = 0x7F,
    }
}

wire_enum! {
    /// OCP error codes (ERROR frame).
    pub enum ErrorCode: u16, fn from_u16 {
        BadFrame = 1 => "BAD_FRAME",
        UnsupportedVersion = 2 => "UNSUPPORTED_VERSION",
        AuthFailed = 3 => "AUTH_FAILED",
        Forbidden = 4 => "FORBIDDEN",
        NotFound = 5 => "NOT_FOUND",
        BadRange = 6 => "BAD_RANGE",
        TooLarge = 7 => "TOO_LARGE",
        TooManyInflight = 8 => "TOO_MANY_INFLIGHT",
        Busy = 9 => "BUSY",
        BadState = 10 => "BAD_STATE",
        Internal = 11 => "INTERNAL",
    }
}

impl ErrorCode {
    /// Whether the server closes the connection after sending this error in answer to a
    /// request (BUSY refusing a connection also closes; that is decided by the server).
    pub fn closes(self) -> bool {
        matches!(
            self,
            ErrorCode::BadFrame
                | ErrorCode::UnsupportedVersion
                | ErrorCode::AuthFailed
                | ErrorCode::BadState
        )
    }
}

/// Why bytes could not be decoded; maps onto an ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("bad frame: {0}")]
    BadFrame(&'static str),
}

impl WireError {
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            WireError::BadFrame(_) => ErrorCode::BadFrame,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub msg_type: MsgType,
    pub request_id: u32,
    pub body_len: u32,
}

/// Decodes and checks a frame header. `max_body` is the limit in force for this direction.
pub fn decode_header(bytes: &[u8; HEADER_LEN], max_body: u32) -> Result<Header, WireError> {
    let [version, t, f0, f1, r0, r1, r2, r3, l0, l1, l2, l3] = *bytes;
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let msg_type = MsgType::from_u8(t).ok_or(WireError::BadFrame("unknown message type"))?;
    if u16::from_be_bytes([f0, f1]) != 0 {
        return Err(WireError::BadFrame("reserved frame flags set"));
    }
    let body_len = u32::from_be_bytes([l0, l1, l2, l3]);
    if body_len > max_body {
        return Err(WireError::BadFrame("body longer than the frame limit"));
    }
    Ok(Header {
        msg_type,
        request_id: u32::from_be_bytes([r0, r1, r2, r3]),
        body_len,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferItem {
    pub fw_type: u16,
    pub version_number: u64,
    pub size: u64,
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
    pub pushed: bool,
    pub version: String,
    /// Only in sessions that asked for signed offers, and only for signed images.
    pub signed: Option<SignedManifest>,
}

/// The signature block of an OFFER item: the manifest bytes as signed, and one or more
/// (key id, Ed25519 signature) pairs over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    pub manifest: Vec<u8>,
    pub signatures: Vec<([u8; 8], [u8; 64])>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello {
        device_id: String,
        token: Vec<u8>,
        max_frame: u32,
        max_inflight: u8,
        chunk_log: u8,
        /// The optional trailing features byte; `None`: the HELLO of docs/protocol.md 5.1.
        features: Option<u8>,
    },
    HelloOk {
        max_frame: u32,
        max_inflight: u8,
        chunk_log: u8,
        poll_interval_s: u32,
        /// Granted features; present exactly when the HELLO carried its features byte.
        features: Option<u8>,
    },
    Check {
        items: Vec<(u16, u64)>,
    },
    Offer {
        items: Vec<OfferItem>,
    },
    Get {
        blake3: [u8; 32],
        offset: u64,
        length: u32,
        with_proof: bool,
    },
    Data {
        offset: u64,
        length: u32,
        with_proof: bool,
        payload: Vec<u8>,
    },
    Report {
        fw_type: u16,
        version_number: u64,
        state: u8,
        result: u8,
        bytes_done: u64,
    },
    ReportOk,
    Ping,
    Pong,
    Error {
        code: u16,
        retry_after_ms: u32,
        message: String,
    },
}

impl Message {
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Hello { .. } => MsgType::Hello,
            Message::HelloOk { .. } => MsgType::HelloOk,
            Message::Check { .. } => MsgType::Check,
            Message::Offer { .. } => MsgType::Offer,
            Message::Get { .. } => MsgType::Get,
            Message::Data { .. } => MsgType::Data,
            Message::Report { .. } => MsgType::Report,
            Message::ReportOk => MsgType::ReportOk,
            Message::Ping => MsgType::Ping,
            Message::Pong => MsgType::Pong,
            Message::Error { .. } => MsgType::Error,
        }
    }
}

/// A cursor over a body that never reads past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::BadFrame("body too short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// The optional trailing features byte of HELLO and HELLO_OK.
    fn features(&mut self) -> Result<Option<u8>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let f = self.u8()?;
        if f & !FEATURES_KNOWN != 0 {
            return Err(WireError::BadFrame("reserved feature bits set"));
        }
        Ok(Some(f))
    }

    fn signed_manifest(&mut self) -> Result<SignedManifest, WireError> {
        let len = usize::from(self.u16()?);
        if len == 0 || len > OFFER_MANIFEST_MAX {
            return Err(WireError::BadFrame("manifest length must be 1-1274"));
        }
        let manifest = self.take(len)?.to_vec();
        let n = usize::from(self.u8()?);
        if n == 0 || n > OFFER_SIGNATURES_MAX {
            return Err(WireError::BadFrame("signature count must be 1-8"));
        }
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push((self.array()?, self.array()?));
        }
        Ok(SignedManifest {
            manifest,
            signatures,
        })
    }

    fn end(&self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::BadFrame("trailing bytes after the body"))
        }
    }
}

fn is_device_id(id: &[u8]) -> bool {
    (1..=DEVICE_ID_MAX).contains(&id.len())
        && id
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Smallest max_frame a device may announce for a chunk_log: one group plus its proof room.
pub fn min_device_frame(chunk_log: u8) -> u32 {
    (1024u32 << chunk_log.min(CHUNK_LOG_MAX)) + PROOF_ROOM
}

/// Decodes a body of the given type. Value ranges that make a message invalid as such
/// (HELLO fields, string charsets, flag bits) are checked here too.
pub fn decode_body(msg_type: MsgType, body: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { rest: body };
    let msg = match msg_type {
        MsgType::Hello => {
            let id_len = usize::from(r.u8()?);
            let id = r.take(id_len)?;
            if !is_device_id(id) {
                return Err(WireError::BadFrame(
                    "device id must be 1-64 of [A-Za-z0-9._-]",
                ));
            }
            let token_len = usize::from(r.u16()?);
            if token_len > TOKEN_MAX {
                return Err(WireError::BadFrame("token longer than 512 bytes"));
            }
            let token = r.take(token_len)?.to_vec();
            let max_frame = r.u32()?;
            let max_inflight = r.u8()?;
            let chunk_log = r.u8()?;
            if max_inflight == 0 || max_inflight > MAX_INFLIGHT_LIMIT {
                return Err(WireError::BadFrame("max_inflight must be 1-64"));
            }
            if !(CHUNK_LOG_MIN..=CHUNK_LOG_MAX).contains(&chunk_log) {
                return Err(WireError::BadFrame("chunk_log must be 2-6"));
            }
            if max_frame < min_device_frame(chunk_log) {
                return Err(WireError::BadFrame("max_frame too small for the chunk_log"));
            }
            let features = r.features()?;
            Message::Hello {
                device_id: String::from_utf8_lossy(id).into_owned(),
                token,
                max_frame,
                max_inflight,
                chunk_log,
                features,
            }
        }
        MsgType::HelloOk => Message::HelloOk {
            max_frame: r.u32()?,
            max_inflight: r.u8()?,
            chunk_log: r.u8()?,
            poll_interval_s: r.u32()?,
            features: r.features()?,
        },
        MsgType::Check => {
            let n = usize::from(r.u8()?);
            if n > CHECK_MAX_ITEMS {
                return Err(WireError::BadFrame("CHECK lists at most 32 types"));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push((r.u16()?, r.u64()?));
            }
            Message::Check { items }
        }
        MsgType::Offer => {
            let n = usize::from(r.u8()?);
            let mut items = Vec::with_capacity(n.min(CHECK_MAX_ITEMS));
            for _ in 0..n {
                let fw_type = r.u16()?;
                let version_number = r.u64()?;
                let size = r.u64()?;
                let blake3 = r.array()?;
                let sha256 = r.array()?;
                let flags = r.u8()?;
                if flags & !(1 | OFFER_FLAG_SIGNED) != 0 {
                    return Err(WireError::BadFrame("reserved OFFER flags set"));
                }
                let vs_len = usize::from(r.u8()?);
                if vs_len > VERSION_STRING_MAX {
                    return Err(WireError::BadFrame("version string longer than 64 bytes"));
                }
                let version = std::str::from_utf8(r.take(vs_len)?)
                    .map_err(|_| WireError::BadFrame("version string is not UTF-8"))?
                    .to_string();
                let signed = if flags & OFFER_FLAG_SIGNED != 0 {
                    Some(r.signed_manifest()?)
                } else {
                    None
                };
                items.push(OfferItem {
                    fw_type,
                    version_number,
                    size,
                    blake3,
                    sha256,
                    pushed: flags & 1 == 1,
                    version,
                    signed,
                });
            }
            Message::Offer { items }
        }
        MsgType::Get => {
            let blake3 = r.array()?;
            let offset = r.u64()?;
            let length = r.u32()?;
            let flags = r.u8()?;
            if flags & !1 != 0 {
                return Err(WireError::BadFrame("reserved GET flags set"));
            }
            Message::Get {
                blake3,
                offset,
                length,
                with_proof: flags & 1 == 1,
            }
        }
        MsgType::Data => {
            let offset = r.u64()?;
            let length = r.u32()?;
            let flags = r.u8()?;
            if flags & !1 != 0 {
                return Err(WireError::BadFrame("reserved DATA flags set"));
            }
            let payload = std::mem::take(&mut r.rest).to_vec();
            Message::Data {
                offset,
                length,
                with_proof: flags & 1 == 1,
                payload,
            }
        }
        MsgType::Report => Message::Report {
            fw_type: r.u16()?,
            version_number: r.u64()?,
            state: r.u8()?,
            result: r.u8()?,
            bytes_done: r.u64()?,
        },
        MsgType::ReportOk => Message::ReportOk,
        MsgType::Ping => Message::Ping,
        MsgType::Pong => Message::Pong,
        MsgType::Error => {
            let code = r.u16()?;
            let retry_after_ms = r.u32()?;
            let len = usize::from(r.u8()?);
            if len > ERROR_MESSAGE_MAX {
                return Err(WireError::BadFrame("error message longer than 128 bytes"));
            }
            let text = r.take(len)?;
            if !text.is_ascii() {
                return Err(WireError::BadFrame("error message must be ASCII"));
            }
            Message::Error {
                code,
                retry_after_ms,
                message: String::from_utf8_lossy(text).into_owned(),
            }
        }
    };
    r.end()?;
    Ok(msg)
}

/// Appends the encoded frame (header + body) to `out`.
pub fn encode(request_id: u32, msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[VERSION, msg.msg_type() as u8, 0, 0]);
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    let body_start = out.len();
    match msg {
        Message::Hello {
            device_id,
            token,
            max_frame,
            max_inflight,
            chunk_log,
            features,
        } => {
            let id = &device_id.as_bytes()[..device_id.len().min(DEVICE_ID_MAX)];
            out.push(id.len() as u8);
            out.extend_from_slice(id);
            let token = &token[..token.len().min(TOKEN_MAX)];
            out.extend_from_slice(&(token.len() as u16).to_be_bytes());
            out.extend_from_slice(token);
            out.extend_from_slice(&max_frame.to_be_bytes());
            out.push(*max_inflight);
            out.push(*chunk_log);
            out.extend(features);
        }
        Message::HelloOk {
            max_frame,
            max_inflight,
            chunk_log,
            poll_interval_s,
            features,
        } => {
            out.extend_from_slice(&max_frame.to_be_bytes());
            out.push(*max_inflight);
            out.push(*chunk_log);
            out.extend_from_slice(&poll_interval_s.to_be_bytes());
            out.extend(features);
        }
        Message::Check { items } => {
            let items = &items[..items.len().min(CHECK_MAX_ITEMS)];
            out.push(items.len() as u8);
            for (t, vn) in items {
                out.extend_from_slice(&t.to_be_bytes());
                out.extend_from_slice(&vn.to_be_bytes());
            }
        }
        Message::Offer { items } => {
            let items = &items[..items.len().min(usize::from(u8::MAX))];
            out.push(items.len() as u8);
            for item in items {
                out.extend_from_slice(&item.fw_type.to_be_bytes());
                out.extend_from_slice(&item.version_number.to_be_bytes());
                out.extend_from_slice(&item.size.to_be_bytes());
                out.extend_from_slice(&item.blake3);
                out.extend_from_slice(&item.sha256);
                // A block the decoder would refuse is left out (the item reads as unsigned).
                let signed = item.signed.as_ref().filter(|s| {
                    (1..=OFFER_MANIFEST_MAX).contains(&s.manifest.len())
                        && (1..=OFFER_SIGNATURES_MAX).contains(&s.signatures.len())
                });
                let flags = u8::from(item.pushed)
                    | if signed.is_some() {
                        OFFER_FLAG_SIGNED
                    } else {
                        0
                    };
                out.push(flags);
                let vs = truncate_utf8(&item.version, VERSION_STRING_MAX);
                out.push(vs.len() as u8);
                out.extend_from_slice(vs.as_bytes());
                if let Some(s) = signed {
                    out.extend_from_slice(&(s.manifest.len() as u16).to_be_bytes());
                    out.extend_from_slice(&s.manifest);
                    out.push(s.signatures.len() as u8);
                    for (key_id, sig) in &s.signatures {
                        out.extend_from_slice(key_id);
                        out.extend_from_slice(sig);
                    }
                }
            }
        }
        Message::Get {
            blake3,
            offset,
            length,
            with_proof,
        } => {
            out.extend_from_slice(blake3);
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&length.to_be_bytes());
            out.push(u8::from(*with_proof));
        }
        Message::Data {
            offset,
            length,
            with_proof,
            payload,
        } => {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&length.to_be_bytes());
            out.push(u8::from(*with_proof));
            out.extend_from_slice(payload);
        }
        Message::Report {
            fw_type,
            version_number,
            state,
            result,
            bytes_done,
        } => {
            out.extend_from_slice(&fw_type.to_be_bytes());
            out.extend_from_slice(&version_number.to_be_bytes());
            out.push(*state);
            out.push(*result);
            out.extend_from_slice(&bytes_done.to_be_bytes());
        }
        Message::ReportOk | Message::Ping | Message::Pong => {}
        Message::Error {
            code,
            retry_after_ms,
            message,
        } => {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&retry_after_ms.to_be_bytes());
            let text: String = message
                .chars()
                .filter(char::is_ascii)
                .take(ERROR_MESSAGE_MAX)
                .collect();
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        }
    }
    let body_len = (out.len() - body_start) as u32;
    out[start + 8..start + 12].copy_from_slice(&body_len.to_be_bytes());
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Body bytes of a DATA frame carrying `payload_len` payload bytes.
pub fn data_body_len(payload_len: u64) -> u64 {
    13 + payload_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(msg: Message) {
        let mut out = Vec::new();
        encode(77, &msg, &mut out);
        let header: [u8; HEADER_LEN] = out[..HEADER_LEN].try_into().unwrap();
        let h = decode_header(&header, u32::MAX).unwrap();
        assert_eq!(h.request_id, 77);
        assert_eq!(h.body_len as usize, out.len() - HEADER_LEN);
        assert_eq!(decode_body(h.msg_type, &out[HEADER_LEN..]).unwrap(), msg);
        // Any shorter or longer body is refused (HELLO and HELLO_OK without their features
        // byte read one more byte as that byte).
        let optional_tail = matches!(
            msg,
            Message::Hello { features: None, .. } | Message::HelloOk { features: None, .. }
        );
        assert!(
            decode_body(h.msg_type, &[&out[HEADER_LEN..], &[0u8][..]].concat()).is_err()
                || h.msg_type == MsgType::Data
                || optional_tail
        );
        // A features byte is optional: without it the body is still whole.
        let features_last = matches!(
            msg,
            Message::Hello {
                features: Some(_),
                ..
            } | Message::HelloOk {
                features: Some(_),
                ..
            }
        );
        if out.len() > HEADER_LEN {
            assert!(
                decode_body(h.msg_type, &out[HEADER_LEN..out.len() - 1]).is_err()
                    || h.msg_type == MsgType::Data
                    || features_last
            );
        }
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::Hello {
            device_id: "dev-1".into(),
            token: b"secret".to_vec(),
            max_frame: 70_000,
            max_inflight: 8,
            chunk_log: 4,
            features: None,
        });
        round_trip(Message::Hello {
            device_id: "dev-1".into(),
            token: b"secret".to_vec(),
            max_frame: 70_000,
            max_inflight: 8,
            chunk_log: 4,
            features: Some(FEATURE_SIGNED_OFFERS),
        });
        round_trip(Message::HelloOk {
            max_frame: 70_000,
            max_inflight: 8,
            chunk_log: 4,
            poll_interval_s: 3600,
            features: None,
        });
        round_trip(Message::HelloOk {
            max_frame: 70_000,
            max_inflight: 8,
            chunk_log: 4,
            poll_interval_s: 3600,
            features: Some(0),
        });
        round_trip(Message::Check {
            items: vec![(3, 17), (101, 2)],
        });
        round_trip(Message::Offer {
            items: vec![OfferItem {
                fw_type: 3,
                version_number: 18,
                size: 5000,
                blake3: [1; 32],
                sha256: [2; 32],
                pushed: true,
                version: "1.2.3".into(),
                signed: None,
            }],
        });
        round_trip(Message::Offer {
            items: vec![OfferItem {
                fw_type: 3,
                version_number: 18,
                size: 5000,
                blake3: [1; 32],
                sha256: [2; 32],
                pushed: false,
                version: "1.2.3".into(),
                signed: Some(SignedManifest {
                    manifest: vec![7; 120],
                    signatures: vec![([3; 8], [4; 64]), ([5; 8], [6; 64])],
                }),
            }],
        });
        round_trip(Message::Get {
            blake3: [9; 32],
            offset: 4096,
            length: 8192,
            with_proof: true,
        });
        round_trip(Message::Data {
            offset: 4096,
            length: 3,
            with_proof: false,
            payload: vec![1, 2, 3],
        });
        round_trip(Message::Report {
            fw_type: 3,
            version_number: 18,
            state: 1,
            result: 0,
            bytes_done: 4096,
        });
        round_trip(Message::ReportOk);
        round_trip(Message::Ping);
        round_trip(Message::Pong);
        round_trip(Message::Error {
            code: 9,
            retry_after_ms: 500,
            message: "busy".into(),
        });
    }

    #[test]
    fn header_checks() {
        let ok = [1, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(decode_header(&ok, 1024).unwrap().msg_type, MsgType::Ping);
        let mut v = ok;
        v[0] = 2;
        assert_eq!(
            decode_header(&v, 1024),
            Err(WireError::UnsupportedVersion(2))
        );
        let mut t = ok;
        t[1] = 0x33;
        assert!(matches!(
            decode_header(&t, 1024),
            Err(WireError::BadFrame(_))
        ));
        let mut f = ok;
        f[3] = 1;
        assert!(matches!(
            decode_header(&f, 1024),
            Err(WireError::BadFrame(_))
        ));
        let mut l = ok;
        l[8..12].copy_from_slice(&1025u32.to_be_bytes());
        assert!(matches!(
            decode_header(&l, 1024),
            Err(WireError::BadFrame(_))
        ));
    }

    #[test]
    fn hello_ranges() {
        let hello = |id: &str, max_frame: u32, inflight: u8, log: u8| {
            let mut out = Vec::new();
            encode(
                1,
                &Message::Hello {
                    device_id: id.into(),
                    token: vec![],
                    max_frame,
                    max_inflight: inflight,
                    chunk_log: log,
                    features: None,
                },
                &mut out,
            );
            decode_body(MsgType::Hello, &out[HEADER_LEN..])
        };
        assert!(hello("d", min_device_frame(2), 1, 2).is_ok());
        assert!(hello("d", min_device_frame(2) - 1, 1, 2).is_err());
        assert!(hello("d", 1 << 20, 0, 2).is_err());
        assert!(hello("d", 1 << 20, 65, 2).is_err());
        assert!(hello("d", 1 << 20, 1, 1).is_err());
        assert!(hello("d", 1 << 20, 1, 7).is_err());
        assert!(hello("bad id", 1 << 20, 1, 2).is_err());
        assert!(hello("", 1 << 20, 1, 2).is_err());
    }

    #[test]
    fn reserved_bits_and_lengths() {
        let mut get = Vec::new();
        encode(
            1,
            &Message::Get {
                blake3: [0; 32],
                offset: 0,
                length: 1,
                with_proof: false,
            },
            &mut get,
        );
        let mut body = get[HEADER_LEN..].to_vec();
        body[44] = 2;
        assert!(decode_body(MsgType::Get, &body).is_err());
        assert!(decode_body(MsgType::Check, &[33]).is_err());
        assert!(decode_body(MsgType::Ping, &[0]).is_err());
        assert!(decode_body(MsgType::Error, &[0, 1, 0, 0, 0, 0, 1, 0xff]).is_err());
    }
}
