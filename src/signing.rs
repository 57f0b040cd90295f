//! Signed images: the canonical manifest a partner signs, key ids, and Ed25519 signing and
//! verification.
//!
//! Pure: no I/O, no clock, no randomness (a new key's seed and the time are passed in).
//! docs/signing.md is the normative text of the manifest bytes; its golden vectors are
//! checked against this file by `tests/signing_vectors.rs`. Not here: where keys and
//! signatures are stored (`store/signing.rs`), the device's anti-rollback state
//! (`client/device.rs`, `cli/device/`).

use ring::signature::{self, Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// The first bytes of every manifest: "OTAM".
pub const MAGIC: [u8; 4] = *b"OTAM";
/// The manifest layout this file writes and reads.
pub const FORMAT: u8 = 1;
pub const PARTNER_ID_MAX: usize = 64;
pub const VERSION_STRING_MAX: usize = 64;
/// Device types a manifest may name at the most.
pub const DEVICE_TYPES_MAX: usize = 16;
pub const DEVICE_TYPE_ID_MAX: usize = 64;
/// The longest manifest: every field at its limit.
pub const MANIFEST_MAX: usize =
    106 + PARTNER_ID_MAX + VERSION_STRING_MAX + DEVICE_TYPES_MAX * (1 + DEVICE_TYPE_ID_MAX);
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of a key id: the first 8 bytes of SHA-256 of the public key.
pub const KEY_ID_LEN: usize = 8;

pub type PublicKey = [u8; PUBLIC_KEY_LEN];
pub type Signature = [u8; SIGNATURE_LEN];
pub type KeyId = [u8; KEY_ID_LEN];

/// Why manifest bytes or a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("manifest: {0}")]
    Manifest(&'static str),
    #[error("key: {0}")]
    Key(&'static str),
}

/// What a partner signs for one image. Times are Unix seconds; 0 means "no bound".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub partner_id: String,
    pub fw_type: u16,
    pub version_number: u64,
    pub version: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub blake3: [u8; 32],
    /// Not to be installed before this time.
    pub not_before: u64,
    /// Not to be installed at or after this time.
    pub expires: u64,
    /// The device types this image is for; empty: any of the partner's.
    pub device_types: Vec<String>,
}

fn is_id_text(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

impl Manifest {
    /// The field rules of docs/signing.md, which `encode` and `decode` both apply.
    pub fn check(&self) -> Result<(), SigningError> {
        if !is_id_text(&self.partner_id, PARTNER_ID_MAX) {
            return Err(SigningError::Manifest(
                "partner id must be 1-64 of [A-Za-z0-9._-]",
            ));
        }
        if self.version.len() > VERSION_STRING_MAX {
            return Err(SigningError::Manifest(
                "version string longer than 64 bytes",
            ));
        }
        if self.size == 0 {
            return Err(SigningError::Manifest("size must be at least 1"));
        }
        if self.expires != 0 && self.expires <= self.not_before {
            return Err(SigningError::Manifest("expires must be after not_before"));
        }
        if self.device_types.len() > DEVICE_TYPES_MAX {
            return Err(SigningError::Manifest("at most 16 device types"));
        }
        if !self
            .device_types
            .iter()
            .all(|d| is_id_text(d, DEVICE_TYPE_ID_MAX))
        {
            return Err(SigningError::Manifest(
                "device type id must be 1-64 of [A-Za-z0-9._-]",
            ));
        }
        if !self.device_types.windows(2).all(|w| w[0] < w[1]) {
            return Err(SigningError::Manifest(
                "device type ids must be sorted and distinct",
            ));
        }
        Ok(())
    }

    /// The canonical bytes: the only encoding of these values.
    pub fn encode(&self) -> Result<Vec<u8>, SigningError> {
        self.check()?;
        let mut out = Vec::with_capacity(128 + self.version.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        push_short(&mut out, self.partner_id.as_bytes());
        out.extend_from_slice(&self.fw_type.to_be_bytes());
        out.extend_from_slice(&self.version_number.to_be_bytes());
        push_short(&mut out, self.version.as_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&self.blake3);
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.push(self.device_types.len() as u8);
        for d in &self.device_types {
            push_short(&mut out, d.as_bytes());
        }
        Ok(out)
    }

    /// Reads manifest bytes; anything but the canonical encoding of valid values is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, SigningError> {
        if bytes.len() > MANIFEST_MAX {
            return Err(SigningError::Manifest("longer than the largest manifest"));
        }
        let mut r = Reader { rest: bytes };
        if r.array::<4>()? != MAGIC {
            return Err(SigningError::Manifest("not a manifest (magic)"));
        }
        if r.u8()? != FORMAT {
            return Err(SigningError::Manifest("unknown manifest format"));
        }
        let partner_id = r.text(PARTNER_ID_MAX)?;
        let fw_type = u16::from_be_bytes(r.array()?);
        let version_number = u64::from_be_bytes(r.array()?);
        let version = r.text(VERSION_STRING_MAX)?;
        let size = u64::from_be_bytes(r.array()?);
        let sha256 = r.array()?;
        let blake3 = r.array()?;
        let not_before = u64::from_be_bytes(r.array()?);
        let expires = u64::from_be_bytes(r.array()?);
        let n = usize::from(r.u8()?);
        if n > DEVICE_TYPES_MAX {
            return Err(SigningError::Manifest("at most 16 device types"));
        }
        let mut device_types = Vec::with_capacity(n);
        for _ in 0..n {
            device_types.push(r.text(DEVICE_TYPE_ID_MAX)?);
        }
        if !r.rest.is_empty() {
            return Err(SigningError::Manifest("trailing bytes"));
        }
        let m = Manifest {
            partner_id,
            fw_type,
            version_number,
            version,
            size,
            sha256,
            blake3,
            not_before,
            expires,
            device_types,
        };
        m.check()?;
        Ok(m)
    }

    /// Whether the manifest lets a device of `device_type_id` install the image at `now_s`.
    pub fn admits(&self, device_type_id: &str, now_s: u64) -> bool {
        let for_type =
            self.device_types.is_empty() || self.device_types.iter().any(|d| d == device_type_id);
        for_type && self.admits_time(now_s)
    }

    /// Whether `now_s` is within the manifest's time bounds.
    pub fn admits_time(&self, now_s: u64) -> bool {
        let started = self.not_before == 0 || now_s >= self.not_before;
        let live = self.expires == 0 || now_s < self.expires;
        started && live
    }
}

fn push_short(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths were checked against their limits (all below 256) by `check`.
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// A cursor that never reads past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], SigningError> {
        if self.rest.len() < n {
            return Err(SigningError::Manifest("too short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SigningError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SigningError> {
        Ok(self.array::<1>()?[0])
    }

    fn text(&mut self, max: usize) -> Result<String, SigningError> {
        let len = usize::from(self.u8()?);
        if len > max {
            return Err(SigningError::Manifest("text field longer than its limit"));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| SigningError::Manifest("text field is not UTF-8"))
    }
}

/// The key id of a public key: the first 8 bytes of its SHA-256.
pub fn key_id(public: &PublicKey) -> KeyId {
    let digest = Sha256::digest(public);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Whether `sig` is `public`'s Ed25519 signature (RFC 8032) of exactly `message`.
pub fn verify(public: &PublicKey, message: &[u8], sig: &Signature) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, sig)
        .is_ok()
}

/// Whether 32 bytes can be an Ed25519 public key at all: not all zero, and the encoded y
/// coordinate below p = 2^255 - 19 (RFC 8032 5.1.3). A key that passes may still never
/// verify; this refuses obvious typing mistakes at registration.
pub fn public_key_usable(public: &PublicKey) -> bool {
    let mut y = *public;
    y[31] &= 0x7f;
    let at_or_above_p = y[0] >= 0xed && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    !at_or_above_p && public.iter().any(|&b| b != 0)
}

/// The PKCS#8 v1 (RFC 8410) DER of an Ed25519 private key from its 32-byte seed.
pub fn pkcs8_from_seed(seed: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// A private key file's text: PKCS#8 DER in PEM (the form `openssl genpkey` writes too).
pub fn pem_from_pkcs8(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("{PEM_BEGIN}\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// A signing key, read from a PEM or DER PKCS#8 file's bytes.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, SigningError> {
        let der = match std::str::from_utf8(bytes) {
            Ok(text) if text.contains(PEM_BEGIN) => pem_body(text)?,
            _ => bytes.to_vec(),
        };
        Self::from_pkcs8(&der)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SigningError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|pair| SigningKey { pair })
            .map_err(|_| SigningError::Key("not an Ed25519 private key (PKCS#8)"))
    }

    pub fn public_key(&self) -> PublicKey {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn key_id(&self) -> KeyId {
        key_id(&self.public_key())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

fn pem_body(text: &str) -> Result<Vec<u8>, SigningError> {
    use base64::Engine;
    let start = text
        .find(PEM_BEGIN)
        .map(|i| i + PEM_BEGIN.len())
        .ok_or(SigningError::Key("no BEGIN PRIVATE KEY line"))?;
    let end = text[start..]
        .find(PEM_END)
        .map(|i| start + i)
        .ok_or(SigningError::Key("no END PRIVATE KEY line"))?;
    let b64: String = text[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| SigningError::Key("the PEM body is not base64"))
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from hex (either case).
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            partner_id: "p-1".into(),
            fw_type: 101,
            version_number: 7,
            version: "1.4.2".into(),
            size: 4100,
            sha256: [1; 32],
            blake3: [2; 32],
            not_before: 0,
            expires: 0,
            device_types: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn round_trip_and_canonical() {
        let m = sample();
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::decode(&longer).is_err());
        for cut in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn field_rules() {
        let mut m = sample();
        m.device_types = vec!["b".into(), "a".into()];
        assert!(m.encode().is_err());
        let mut m = sample();
        m.size = 0;
        assert!(m.encode().is_err());
        let mut m = sample();
        m.not_before = 10;
        m.expires = 10;
        assert!(m.encode().is_err());
        let mut m = sample();
        m.partner_id = String::new();
        assert!(m.encode().is_err());
    }

    #[test]
    fn admits_by_type_and_time() {
        let mut m = sample();
        assert!(m.admits("a", 5));
        assert!(!m.admits("c", 5));
        m.device_types.clear();
        m.not_before = 10;
        m.expires = 20;
        assert!(!m.admits("c", 9));
        assert!(m.admits("c", 10));
        assert!(!m.admits("c", 20));
    }

    #[test]
    fn sign_and_verify() {
        let key = SigningKey::from_pkcs8(&pkcs8_from_seed(&[9; 32])).unwrap();
        let pem = pem_from_pkcs8(&pkcs8_from_seed(&[9; 32]));
        let again = SigningKey::from_file_bytes(pem.as_bytes()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let msg = sample().encode().unwrap();
        let sig = key.sign(&msg);
        assert!(verify(&key.public_key(), &msg, &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!verify(&key.public_key(), &msg, &bad));
        assert!(public_key_usable(&key.public_key()));
        assert!(!public_key_usable(&[0; 32]));
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(from_hex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(from_hex::<2>("0a"), None);
        assert_eq!(from_hex::<1>("zz"), None);
        assert_eq!(to_hex(&[0x0a, 0xff]), "0aff");
    }
}
