//! The release rule of signed images on a real redb file: `Store::may_release` (the call
//! rollouts make), eligibility and push agree on it: no policy releases everything; with
//! `requireSignature` only an image with a signature by an unrevoked key of its partner,
//! whose manifest admits the device type now (its device type list, its expiry), is
//! released.

mod common;

use std::collections::BTreeMap;

use otad::model::{Record, RecordFields};
use otad::secrets::token_hash;
use otad::signing::{self, Manifest, SigningKey};
use otad::store::{NewRecord, Store, StoreError, SubmittedSignature};

use common::*;

fn record(store: &Store, p: &str, dt: &str) -> Record {
    let (sha, url) = upload(store, p, &bytes(6000, 4));
    store
        .create_pool_record(
            "test",
            NewRecord {
                partner_id: p.to_string(),
                fw_type: 3,
                fields: RecordFields {
                    name: "app".into(),
                    description: String::new(),
                    version: "1.0".into(),
                    tags: vec![],
                },
                binary: Some((sha, url)),
                associations: vec![dt.to_string()],
            },
        )
        .unwrap()
}

fn manifest(r: &Record) -> Manifest {
    let b = r.binary.as_ref().unwrap();
    Manifest {
        partner_id: r.partner_id.clone(),
        fw_type: r.fw_type,
        version_number: r.version_number,
        version: r.version.clone(),
        size: b.size,
        sha256: b.sha256,
        blake3: b.blake3,
        ..Default::default()
    }
}

fn sign(store: &Store, key: &SigningKey, r: &Record, m: &Manifest) -> Result<(), StoreError> {
    let bytes = m.encode().unwrap();
    store
        .add_signature(
            "test",
            &r.partner_id,
            r.fw_type,
            r.version_number,
            SubmittedSignature {
                signature: key.sign(&bytes),
                manifest: bytes,
                key_id: signing::to_hex(&key.key_id()),
            },
        )
        .map(|_| ())
}

fn refused(result: Result<(), StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::Conflict {
            trace: "signature_required",
            ..
        })
    )
}

#[test]
fn may_release_eligibility_and_push_follow_the_signature_policy() {
    let t = temp_store();
    let s = &t.store;
    let (p, dt) = partner_with_device_type(s, "p");
    s.register_device("test", &p, "dev-1", &dt, token_hash("tok"))
        .unwrap();
    let r = record(s, &p, &dt);
    let offered = || s.check_in("dev-1", BTreeMap::from([(3u16, 0u64)])).unwrap();

    // No policy: released, offered unsigned.
    s.may_release(r.id, &dt).unwrap();
    assert_eq!(offered().len(), 1);
    assert!(offered()[0].signatures.is_empty());

    s.set_signature_policy("test", &p, &dt, true).unwrap();
    assert!(refused(s.may_release(r.id, &dt)));
    assert!(offered().is_empty());
    assert!(refused(s.push("test", &p, &dt, r.id, "dev-1").map(|_| ())));

    let key = SigningKey::from_pkcs8(&signing::pkcs8_from_seed(&[3; 32])).unwrap();
    s.add_signing_key("test", &p, "k", key.public_key())
        .unwrap();
    // A manifest for other device types, or one that has expired, does not release it.
    let mut other = manifest(&r);
    other.device_types = vec!["someone-else".into()];
    sign(s, &key, &r, &other).unwrap();
    assert!(refused(s.may_release(r.id, &dt)));
    let mut expired = manifest(&r);
    expired.expires = 1;
    sign(s, &key, &r, &expired).unwrap();
    assert!(refused(s.may_release(r.id, &dt)));
    assert!(offered().is_empty());

    // A manifest that admits it: released, offered with its signature, pushable.
    sign(s, &key, &r, &manifest(&r)).unwrap();
    s.may_release(r.id, &dt).unwrap();
    let o = offered();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].signatures.len(), 1);
    s.push("test", &p, &dt, r.id, "dev-1").unwrap();

    // Revoked: withdrawn at once; the signature stays stored but no longer counts.
    s.revoke_signing_key("test", &p, &signing::to_hex(&key.key_id()))
        .unwrap();
    assert!(refused(s.may_release(r.id, &dt)));
    assert!(offered().is_empty());
    let views = s.signatures(&p, 3, r.version_number).unwrap();
    assert_eq!(views.len(), 1);
    assert!(views[0].key_revoked);

    // The policy off again: released, whatever the signatures.
    s.set_signature_policy("test", &p, &dt, false).unwrap();
    s.may_release(r.id, &dt).unwrap();
    assert!(
        otad::store::verify(&t.store.database().unwrap())
            .unwrap()
            .is_clean()
    );
}
