//! The content-addressed blob store: ingest, dedup, reference counts, the sweep, byte ranges
//! and verified slices checked with an independent decoder (bao-tree's), all on real files.

mod common;

use std::io::Cursor;

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use otad::hashtree::{check_range, group_size};
use otad::store::{BlobMeta, ROW_BYTES, UploadState};
use otad::store::{StoreError, verify};
use proptest::prelude::*;
use redb::ReadableTable;

use common::*;

/// Decodes a slice with bao-tree and returns the verified data bytes, or the decode error.
fn decode_slice(
    root: [u8; 32],
    size: u64,
    chunk_log: u8,
    offset: u64,
    length: u64,
    slice: &[u8],
) -> Result<Vec<u8>, String> {
    let tree = BaoTree::new(size, BlockSize::from_chunk_log(chunk_log));
    let start = ChunkNum(offset / 1024);
    let end = ChunkNum((offset + length).div_ceil(1024));
    let ranges = ChunkRanges::from(start..end);
    let mut cursor = Cursor::new(slice);
    let mut data = Vec::new();
    {
        let iter = DecodeResponseIter::new(blake3::Hash::from(root), tree, &mut cursor, &ranges);
        for item in iter {
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
    }
    if cursor.position() != slice.len() as u64 {
        return Err(format!(
            "decoder used {} of {} slice bytes",
            cursor.position(),
            slice.len()
        ));
    }
    Ok(data)
}

fn meta_of(store: &otad::store::Store, partner: &str, sha: &[u8; 32]) -> BlobMeta {
    store.owned_blob(partner, sha).unwrap().expect("owned").1
}

/// Checks every group-aligned start, a middle and the end at every chunk_log.
fn check_slices(store: &otad::store::Store, meta: &BlobMeta, blake3: [u8; 32], data: &[u8]) {
    let size = data.len() as u64;
    for chunk_log in 2..=6u8 {
        let g = group_size(chunk_log);
        let groups = size.div_ceil(g);
        let mut starts = vec![0, groups / 2, groups.saturating_sub(1)];
        starts.dedup();
        for group in starts {
            let offset = group * g;
            for length in [g as u32, 2 * g as u32, u32::MAX] {
                let Ok(clipped) = check_range(size, chunk_log, offset, length) else {
                    continue;
                };
                let (got_len, slice) = store.slice(meta, chunk_log, offset, length).unwrap();
                assert_eq!(got_len, clipped);
                let end = offset + u64::from(clipped);
                let decoded =
                    decode_slice(blake3, size, chunk_log, offset, u64::from(clipped), &slice)
                        .unwrap_or_else(|e| {
                            panic!("size {size} log {chunk_log} off {offset}: {e}")
                        });
                assert_eq!(decoded, &data[offset as usize..end as usize]);
                // Our own device-side verifier agrees with bao-tree's decoder.
                let ours =
                    otad::hashtree::verify_slice(&blake3, size, chunk_log, offset, length, &slice)
                        .unwrap_or_else(|e| {
                            panic!("verify_slice size {size} log {chunk_log} off {offset}: {e}")
                        });
                assert_eq!(ours, decoded);
                // Any flipped bit must be caught by the decoder.
                let mut bad = slice.clone();
                let at = (offset as usize * 7 + 13) % bad.len();
                bad[at] ^= 0x10;
                let result =
                    decode_slice(blake3, size, chunk_log, offset, u64::from(clipped), &bad);
                assert!(
                    result.is_err(),
                    "flip at {at} of {} not detected",
                    bad.len()
                );
                assert!(
                    otad::hashtree::verify_slice(&blake3, size, chunk_log, offset, length, &bad)
                        .is_err(),
                    "verify_slice missed the flip at {at}"
                );
            }
        }
    }
}

fn check_blob(data: &[u8]) {
    let t = temp_store();
    let (partner, _) = partner_with_device_type(&t.store, "acme");
    let staged = t.store.ingest_bytes(&partner, data).unwrap();
    assert_eq!(staged.blake3, *blake3::hash(data).as_bytes());
    let published = t.store.publish("test", &partner, staged.sha256).unwrap();
    let meta = meta_of(&t.store, &partner, &published.sha256);
    assert_eq!(meta.size, data.len() as u64);
    // Byte ranges around row boundaries and the ends.
    let size = data.len() as u64;
    let row = ROW_BYTES as u64;
    for (a, b) in [
        (0, size),
        (0, 1),
        (size - 1, size),
        (row.min(size - 1), (row + 1).min(size)),
        ((row - 1).min(size - 1), (2 * row + 5).min(size)),
        (size / 3, size / 2 + 1),
    ] {
        let got = t.store.read_range(&meta, a, b).unwrap();
        assert_eq!(got, &data[a as usize..b as usize], "range {a}..{b}");
    }
    check_slices(&t.store, &meta, staged.blake3, data);
    let report = verify(&t.store.database().unwrap()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn sizes_around_chunk_group_and_row_boundaries() {
    let edges = [
        1usize,
        1023,
        1024,
        1025,
        4095,
        4096,
        4097,
        16_384,
        16_385,
        65_536 + 1,
        ROW_BYTES - 1,
        ROW_BYTES,
        ROW_BYTES + 1,
        2 * ROW_BYTES + 4096 * 3 + 7,
        1 << 20,
    ];
    for (i, n) in edges.into_iter().enumerate() {
        check_blob(&bytes(n, i as u64));
    }
}

#[test]
fn forty_mebibyte_blob_with_partial_last_group() {
    check_blob(&bytes(40 * 1024 * 1024 - 777, 99));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_read_back_and_verify(len in 1usize..3_000_000, seed in any::<u64>()) {
        check_blob(&bytes(len, seed));
    }
}

#[test]
fn same_bytes_are_stored_once_and_counted() {
    let t = temp_store();
    let (a, _) = partner_with_device_type(&t.store, "a");
    let (b, _) = partner_with_device_type(&t.store, "b");
    let data = bytes(300_000, 5);
    let (sha, _) = upload(&t.store, &a, &data);
    // Moving again is idempotent and adds no reference.
    let again = t.store.publish("test", &a, sha).unwrap();
    assert_eq!(again.sha256, sha);
    let meta = meta_of(&t.store, &a, &sha);
    assert_eq!(meta.refs, 1);
    // Another partner uploading the same bytes shares the blob.
    let (sha_b, _) = upload(&t.store, &b, &data);
    assert_eq!(sha_b, sha);
    let meta_b = meta_of(&t.store, &b, &sha);
    assert_eq!(meta_b.data_id, meta.data_id);
    assert_eq!(meta_b.refs, 2);
    // The duplicate rows are swept, leaving one copy.
    let report = t.store.sweep(otad::ids::now_ms()).unwrap();
    assert!(report.rows_removed >= 5, "{report:?}");
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    assert_eq!(v.blobs, 1);
}

#[test]
fn empty_and_oversize_uploads_are_refused_and_swept() {
    let mut config = storage_config();
    config.max_binary_size = 100_000;
    let t = temp_store_with(config);
    let (p, _) = partner_with_device_type(&t.store, "p");
    assert_eq!(t.store.ingest_bytes(&p, b""), Err(StoreError::Empty));
    let mut ingest = t.store.begin_ingest(&p).unwrap();
    ingest.write(&bytes(90_000, 1)).unwrap();
    assert_eq!(
        ingest.write(&bytes(20_000, 2)),
        Err(StoreError::TooLarge { limit: 100_000 })
    );
    let data_id = ingest.data_id();
    drop(ingest);
    assert_eq!(
        t.store.upload(data_id).unwrap().map(|u| u.state),
        Some(UploadState::Discard)
    );
    t.store.sweep(otad::ids::now_ms()).unwrap();
    assert_eq!(t.store.upload(data_id).unwrap(), None);
    // Exactly at the limit is fine.
    t.store.ingest_bytes(&p, &bytes(100_000, 3)).unwrap();
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

#[test]
fn staging_is_per_partner_and_expires() {
    let mut config = storage_config();
    config.staging_ttl_secs = 60;
    let t = temp_store_with(config);
    let (a, _) = partner_with_device_type(&t.store, "a");
    let (b, _) = partner_with_device_type(&t.store, "b");
    let staged = t.store.ingest_bytes(&a, &bytes(5000, 8)).unwrap();
    // Partner b cannot move what a staged.
    assert!(matches!(
        t.store.publish("test", &b, staged.sha256),
        Err(StoreError::NotFound {
            trace: "unknown_binary",
            ..
        })
    ));
    // An hour later the staged upload has expired and is gone.
    let later = otad::ids::now_ms() + 3_600_000;
    let report = t.store.sweep(later).unwrap();
    assert_eq!(report.uploads_removed, 1);
    assert!(matches!(
        t.store.publish("test", &a, staged.sha256),
        Err(StoreError::NotFound { .. })
    ));
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

#[test]
fn interrupted_upload_is_swept_at_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = otad::datadir::DataDir::new(dir.path()).db();
    let data_id;
    {
        let store = otad::store::Store::open(&path, &storage_config()).unwrap();
        store.bootstrap().unwrap();
        let (p, _) = partner_with_device_type(&store, "p");
        // What a killed process leaves: an upload still "receiving", with some rows.
        data_id = 777;
        let upload = otad::store::Upload {
            partner_id: p,
            state: UploadState::Receiving {
                received: 2 * ROW_BYTES as u64,
            },
            created_ms: 1,
            updated_ms: 1,
        };
        store
            .write(true, move |txn| {
                let encoded = otad::store::codec::encode(&upload)?;
                txn.open_table(otad::store::tables::UPLOADS)?
                    .insert(data_id, encoded.as_slice())?;
                let mut chunks = txn.open_table(otad::store::tables::CHUNKS)?;
                for i in 0..2u32 {
                    chunks.insert((data_id, i), bytes(ROW_BYTES, u64::from(i)).as_slice())?;
                }
                Ok(())
            })
            .unwrap();
        assert!(store.upload(data_id).unwrap().is_some());
        store.close();
    }
    let store = otad::store::Store::open(&path, &storage_config()).unwrap();
    assert_eq!(store.upload(data_id).unwrap(), None);
    let v = verify(&store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
}

#[test]
fn slice_refuses_bad_ranges() {
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "p");
    let data = bytes(50_000, 6);
    let (sha, _) = upload(&t.store, &p, &data);
    let meta = meta_of(&t.store, &p, &sha);
    for (log, off, len) in [
        (1u8, 0u64, 4096u32),
        (7, 0, 4096),
        (2, 100, 4096),
        (2, 0, 100),
        (2, 53_248, 4096),
        (2, 0, 0),
    ] {
        assert!(
            matches!(
                t.store.slice(&meta, log, off, len),
                Err(otad::store::SliceError::Range(_))
            ),
            "({log},{off},{len})"
        );
    }
}

#[test]
fn verify_detects_a_flipped_byte_in_a_chunk_row() {
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "p");
    let (sha, _) = upload(&t.store, &p, &bytes(200_000, 7));
    let meta = meta_of(&t.store, &p, &sha);
    let data_id = meta.data_id;
    t.store
        .write(true, move |txn| {
            let mut chunks = txn.open_table(otad::store::tables::CHUNKS)?;
            let mut row = chunks
                .get((data_id, 1))?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            row[10] ^= 1;
            chunks.insert((data_id, 1), row.as_slice())?;
            Ok(())
        })
        .unwrap();
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert!(v.problems[0].contains("BLAKE3"), "{:?}", v.problems);
}

#[test]
fn sha1_md5_and_filename_are_kept_and_computed_for_older_binaries() {
    use otad::store::Digests;
    use otad::store::tables::{BINARY_NAMES, DIGESTS};
    let mut config = storage_config();
    config.staging_ttl_secs = 60;
    let t = temp_store_with(config);
    let (p, _) = partner_with_device_type(&t.store, "p");
    let data = bytes(700_000, 11);
    let mut ingest = t.store.begin_ingest(&p).unwrap();
    ingest.set_filename("kettle.swu".into());
    for piece in data.chunks(65_000) {
        ingest.write(piece).unwrap();
    }
    let staged = ingest.finish().unwrap();
    let published = t.store.publish("test", &p, staged.sha256).unwrap();
    assert_eq!(
        t.store.digests(&published.blake3).unwrap(),
        Some(Digests::of(&data))
    );
    assert_eq!(
        t.store.binary_name(&p, &staged.sha256).unwrap().as_deref(),
        Some("kettle.swu")
    );
    // A binary stored before digests existed: its row is missing; the first need computes
    // and records it.
    let key = published.blake3;
    t.store
        .write(true, move |txn| {
            txn.open_table(DIGESTS)?.remove(&key)?;
            Ok(())
        })
        .unwrap();
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    assert_eq!(t.store.digests(&key).unwrap(), Some(Digests::of(&data)));
    let recorded = t
        .store
        .read()
        .unwrap()
        .open_table(DIGESTS)
        .unwrap()
        .get(&key)
        .unwrap()
        .is_some();
    assert!(recorded, "lazily computed digests are recorded");
    // A wrong digest row is found by db verify.
    t.store
        .write(true, move |txn| {
            let bad = otad::store::codec::encode(&Digests::of(b"other"))?;
            txn.open_table(DIGESTS)?.insert(&key, bad.as_slice())?;
            Ok(())
        })
        .unwrap();
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert!(v.problems[0].contains("SHA-1 or MD5"), "{:?}", v.problems);
    // A staged upload that expires takes its filename and digests with it.
    let other = bytes(5_000, 12);
    let mut ingest = t.store.begin_ingest(&p).unwrap();
    ingest.set_filename("never-moved.bin".into());
    ingest.write(&other).unwrap();
    let staged = ingest.finish().unwrap();
    t.store.sweep(otad::ids::now_ms() + 3_600_000).unwrap();
    assert_eq!(t.store.binary_name(&p, &staged.sha256).unwrap(), None);
    let txn = t.store.read().unwrap();
    assert!(
        txn.open_table(DIGESTS)
            .unwrap()
            .get(&staged.blake3)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        txn.open_table(BINARY_NAMES)
            .unwrap()
            .iter()
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn verify_reads_a_database_from_before_the_digest_and_ddi_tables() {
    use otad::store::tables::{
        BINARY_NAMES, DDI_ACTIONS, DDI_TENANTS, DIGESTS, GATEWAY_BY_PARTNER, GATEWAY_TOKENS,
        PARTNER_TENANTS,
    };
    let t = temp_store();
    let (p, _) = partner_with_device_type(&t.store, "p");
    upload(&t.store, &p, &bytes(100_000, 4));
    // What an older release's file (or backup) holds: none of these tables.
    t.store
        .write(true, |txn| {
            txn.delete_table(DIGESTS)?;
            txn.delete_table(BINARY_NAMES)?;
            txn.delete_table(DDI_TENANTS)?;
            txn.delete_table(PARTNER_TENANTS)?;
            txn.delete_table(GATEWAY_TOKENS)?;
            txn.delete_table(GATEWAY_BY_PARTNER)?;
            txn.delete_table(DDI_ACTIONS)?;
            Ok(())
        })
        .unwrap();
    let v = verify(&t.store.database().unwrap()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    assert_eq!(v.blobs, 1);
}
