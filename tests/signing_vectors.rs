//! The golden vectors of docs/signing.md, checked by an independent verifier.
//!
//! The verifier is written from docs/signing.md alone: it rebuilds every manifest's bytes
//! from the documented field values by the layout table of section 3 (not with otad's
//! encoder), derives keys from their seeds and checks every signature with `ed25519-dalek`,
//! a different Ed25519 implementation than otad's (ring). Then otad's own encoder, decoder,
//! key handling and verifier must agree with it on every vector, and the signed OFFER of
//! docs/protocol.md must carry exactly the documented manifest and signature.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use sha2::{Digest, Sha256};

use otad::signing::{self, Manifest};

#[derive(Debug)]
struct Vector {
    name: String,
    fields: BTreeMap<String, String>,
    bytes: Vec<u8>,
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Reads the ```` ```vector ```` blocks of a document (docs/protocol.md 16's format).
fn vectors(doc: &str) -> Vec<Vector> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing ({e})", path.display()));
    let mut out = Vec::new();
    let mut current: Option<(Vector, bool)> = None;
    for raw in text.lines() {
        let line = raw.trim();
        let Some((v, in_bytes)) = current.as_mut() else {
            if line == "```vector" {
                let v = Vector {
                    name: String::new(),
                    fields: BTreeMap::new(),
                    bytes: Vec::new(),
                };
                current = Some((v, false));
            }
            continue;
        };
        if line.starts_with("```") {
            out.push(current.take().expect("in a block").0);
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if *in_bytes {
            let digits: String = line
                .split('#')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            v.bytes.extend(hex(&digits));
            continue;
        }
        let (k, value) = line.split_once(':').expect("key: value");
        match k.trim() {
            "bytes" => *in_bytes = true,
            "name" => v.name = value.trim().to_string(),
            key => {
                v.fields.insert(key.to_string(), value.trim().to_string());
            }
        }
    }
    out
}

impl Vector {
    fn raw(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
    }

    fn text(&self, key: &str) -> String {
        let raw = self.raw(key);
        raw.strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{}: {key} is not quoted", self.name))
            .to_string()
    }

    fn num(&self, key: &str) -> u64 {
        self.raw(key).parse().expect("a number")
    }

    fn bytes_of<const N: usize>(&self, key: &str) -> [u8; N] {
        hex(self.raw(key)).try_into().expect("length")
    }
}

/// docs/signing.md section 3, transliterated: the manifest bytes from the field values.
fn rebuild_manifest(v: &Vector) -> Vec<u8> {
    fn short(out: &mut Vec<u8>, s: &[u8]) {
        out.push(u8::try_from(s.len()).expect("short field"));
        out.extend_from_slice(s);
    }
    let mut out = b"OTAM".to_vec();
    out.push(1);
    short(&mut out, v.text("partner_id").as_bytes());
    out.extend_from_slice(&u16::try_from(v.num("fw_type")).unwrap().to_be_bytes());
    out.extend_from_slice(&v.num("version_number").to_be_bytes());
    short(&mut out, v.text("version").as_bytes());
    out.extend_from_slice(&v.num("size").to_be_bytes());
    out.extend_from_slice(&v.bytes_of::<32>("sha256"));
    out.extend_from_slice(&v.bytes_of::<32>("blake3"));
    out.extend_from_slice(&v.num("not_before").to_be_bytes());
    out.extend_from_slice(&v.num("expires").to_be_bytes());
    let types = v.text("device_types");
    let types: Vec<&str> = types.split(',').filter(|t| !t.is_empty()).collect();
    out.push(u8::try_from(types.len()).unwrap());
    for t in types {
        short(&mut out, t.as_bytes());
    }
    out
}

fn manifest_values(v: &Vector) -> Manifest {
    let types = v.text("device_types");
    Manifest {
        partner_id: v.text("partner_id"),
        fw_type: u16::try_from(v.num("fw_type")).unwrap(),
        version_number: v.num("version_number"),
        version: v.text("version"),
        size: v.num("size"),
        sha256: v.bytes_of("sha256"),
        blake3: v.bytes_of("blake3"),
        not_before: v.num("not_before"),
        expires: v.num("expires"),
        device_types: types
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

#[test]
fn an_independent_verifier_agrees_on_every_vector() {
    let all = vectors("docs/signing.md");
    let by_name: BTreeMap<&str, &Vector> = all.iter().map(|v| (v.name.as_str(), v)).collect();
    let (mut keys, mut manifests, mut sigs) = (0, 0, 0);
    for v in &all {
        match v.name.split('.').next() {
            Some("key") => {
                keys += 1;
                let seed: [u8; 32] = v.bytes_of("seed");
                let dalek = SigningKey::from_bytes(&seed);
                let public = dalek.verifying_key().to_bytes();
                assert_eq!(public, v.bytes_of::<32>("public_key"), "{}", v.name);
                let id = &Sha256::digest(public)[..8];
                assert_eq!(id, v.bytes_of::<8>("key_id"), "{}: key id", v.name);
                let mut pkcs8 = hex("302e020100300506032b657004220420");
                pkcs8.extend_from_slice(&seed);
                assert_eq!(v.bytes, pkcs8, "{}: the key file bytes", v.name);
                // otad reads the same file bytes, also in PEM, to the same key.
                let ours = signing::SigningKey::from_pkcs8(&v.bytes).unwrap();
                assert_eq!(ours.public_key(), public);
                assert_eq!(ours.key_id(), signing::key_id(&public));
                let pem = signing::pem_from_pkcs8(&v.bytes);
                let again = signing::SigningKey::from_file_bytes(pem.as_bytes()).unwrap();
                assert_eq!(again.public_key(), public);
            }
            Some("manifest") => {
                manifests += 1;
                let rebuilt = rebuild_manifest(v);
                assert_eq!(rebuilt, v.bytes, "{}: the documented layout", v.name);
                let values = manifest_values(v);
                assert_eq!(
                    values.encode().unwrap(),
                    v.bytes,
                    "{}: otad's encoder",
                    v.name
                );
                assert_eq!(Manifest::decode(&v.bytes).unwrap(), values, "{}", v.name);
            }
            Some("sig") => {
                sigs += 1;
                let key = by_name[v.raw("key")];
                let manifest = &by_name[v.raw("manifest")].bytes;
                let seed: [u8; 32] = key.bytes_of("seed");
                let dalek = SigningKey::from_bytes(&seed);
                let sig: [u8; 64] = v.bytes.clone().try_into().expect("64 bytes");
                // Ed25519 is deterministic: the same key and message give these bytes.
                assert_eq!(dalek.sign(manifest).to_bytes(), sig, "{}", v.name);
                let vk = dalek.verifying_key();
                vk.verify_strict(manifest, &Signature::from_bytes(&sig))
                    .unwrap_or_else(|e| panic!("{}: dalek refuses: {e}", v.name));
                let public = vk.to_bytes();
                assert!(signing::verify(&public, manifest, &sig), "{}", v.name);
                let ours = signing::SigningKey::from_pkcs8(&key.bytes).unwrap();
                assert_eq!(ours.sign(manifest), sig, "{}: otad's signer", v.name);
                // One flipped bit anywhere: both implementations refuse.
                for i in [0, manifest.len() / 2, manifest.len() - 1] {
                    let mut bad = manifest.clone();
                    bad[i] ^= 1;
                    assert!(vk.verify(&bad, &Signature::from_bytes(&sig)).is_err());
                    assert!(!signing::verify(&public, &bad, &sig));
                }
                let mut bad_sig = sig;
                bad_sig[63] ^= 0x10;
                assert!(!signing::verify(&public, manifest, &bad_sig));
            }
            other => panic!("{}: unknown vector kind {other:?}", v.name),
        }
    }
    assert!(
        keys >= 2 && manifests >= 2 && sigs >= 3,
        "vectors are missing"
    );
}

#[test]
fn the_signed_offer_carries_the_documented_manifest_and_signature() {
    let signing_doc = vectors("docs/signing.md");
    let find = |name: &str| {
        signing_doc
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("docs/signing.md: no {name}"))
    };
    let protocol = vectors("docs/protocol.md");
    let offer = protocol
        .iter()
        .find(|v| v.name == "msg.offer_signed")
        .expect("docs/protocol.md: msg.offer_signed");
    let manifest = hex(offer.raw("item.0.manifest"));
    assert_eq!(manifest, find("manifest.minimal").bytes);
    assert_eq!(
        hex(offer.raw("item.0.signature.0.signature")),
        find("sig.minimal.a").bytes
    );
    assert_eq!(
        hex(offer.raw("item.0.signature.0.key_id")),
        hex(find("key.a").raw("key_id"))
    );
    // The item's own fields are the manifest's, as a device checks (docs/signing.md 7.2).
    let m = Manifest::decode(&manifest).unwrap();
    assert_eq!(u64::from(m.fw_type), offer.num("item.0.fw_type"));
    assert_eq!(m.version_number, offer.num("item.0.version_number"));
    assert_eq!(m.size, offer.num("item.0.size"));
    assert_eq!(m.blake3, offer.bytes_of::<32>("item.0.blake3"));
    assert_eq!(m.sha256, offer.bytes_of::<32>("item.0.sha256"));
    assert_eq!(m.version, offer.text("item.0.version"));
}
