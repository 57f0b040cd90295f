//! The SHA-1 and MD5 of every binary, which hawkBit DDI clients check (docs/ddi.md), and the
//! filename a binary was uploaded under.
//!
//! Digests are computed while an upload streams in, each on its own thread so that the
//! ingest path (BLAKE3, SHA-256 and the outboard on the receiving thread) is not slowed; they
//! are stored per content (`DIGESTS`, keyed by BLAKE3) when the upload is staged. A binary
//! stored before this table existed, or whose row was dropped with a duplicate upload, gets
//! its digests on first need ([`Store::digests`]) by one read of its bytes, recorded then.
//!
//! Not here: the upload itself (`blobs.rs`), who may read a binary (API and device layers).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{BINARY_NAMES, BLOBS, DIGESTS};
use super::{BlobMeta, Result, Store, StoreError, codec};
use crate::model::Record;

/// The SHA-1 and MD5 of one binary's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    pub sha1: [u8; 20],
    pub md5: [u8; 16],
}

impl Digests {
    /// Both digests of `bytes` in one go (tests, verification, the lazy path).
    pub fn of(bytes: &[u8]) -> Digests {
        let mut both = DigestPair::default();
        both.update(bytes);
        both.finish()
    }
}

/// Both digests computed side by side on one thread (the lazy and verifying paths).
#[derive(Default)]
pub(crate) struct DigestPair {
    sha1: sha1::Sha1,
    md5: md5::Md5,
}

impl DigestPair {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        use sha1::Digest;
        self.sha1.update(bytes);
        self.md5.update(bytes);
    }

    pub(crate) fn finish(self) -> Digests {
        use sha1::Digest;
        Digests {
            sha1: self.sha1.finalize().into(),
            md5: self.md5.finalize().into(),
        }
    }
}

/// Pieces queued per digest thread before the upload waits for it.
const QUEUE_PIECES: usize = 32;

/// One digest running on its own thread over the pieces sent to it.
struct Worker<const N: usize> {
    tx: Option<SyncSender<Bytes>>,
    handle: Option<JoinHandle<[u8; N]>>,
}

impl<const N: usize> Worker<N> {
    fn spawn<D>(name: &str) -> Result<Self>
    where
        D: sha1::Digest + Default + Send + 'static,
        [u8; N]: From<sha1::digest::Output<D>>,
    {
        let (tx, rx): (SyncSender<Bytes>, Receiver<Bytes>) = sync_channel(QUEUE_PIECES);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut d = D::default();
                while let Ok(piece) = rx.recv() {
                    d.update(&piece);
                }
                d.finalize().into()
            })
            .map_err(|e| StoreError::Db(format!("cannot start a digest thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    fn feed(&self, piece: Bytes) -> Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send(piece)
                .map_err(|_| StoreError::Db("a digest thread stopped".into())),
            None => Err(StoreError::Db("digest already finished".into())),
        }
    }

    fn finish(&mut self) -> Result<[u8; N]> {
        self.tx = None;
        self.handle
            .take()
            .ok_or_else(|| StoreError::Db("digest already finished".into()))?
            .join()
            .map_err(|_| StoreError::Db("a digest thread panicked".into()))
    }
}

impl<const N: usize> Drop for Worker<N> {
    fn drop(&mut self) {
        // Closing the channel ends the thread; an abandoned upload does not wait for it.
        self.tx = None;
    }
}

/// SHA-1 and MD5 of an upload, each on its own thread.
pub(crate) struct SideDigests {
    sha1: Worker<20>,
    md5: Worker<16>,
}

impl SideDigests {
    pub(crate) fn start() -> Result<Self> {
        Ok(Self {
            sha1: Worker::spawn::<sha1::Sha1>("otad-sha1")?,
            md5: Worker::spawn::<md5::Md5>("otad-md5")?,
        })
    }

    pub(crate) fn feed(&self, piece: &[u8]) -> Result<()> {
        let piece = Bytes::copy_from_slice(piece);
        self.sha1.feed(piece.clone())?;
        self.md5.feed(piece)
    }

    pub(crate) fn finish(mut self) -> Result<Digests> {
        Ok(Digests {
            sha1: self.sha1.finish()?,
            md5: self.md5.finish()?,
        })
    }
}

/// Records the digests of the content `blake3` unless they are already known.
pub(crate) fn put_digests(txn: &WriteTransaction, blake3: &[u8; 32], d: &Digests) -> Result<()> {
    let mut table = txn.open_table(DIGESTS)?;
    if table.get(blake3)?.is_none() {
        table.insert(blake3, codec::encode(d)?.as_slice())?;
    }
    Ok(())
}

/// Forgets the digests of `blake3` unless a published blob still has these bytes.
pub(crate) fn drop_digests_unless_published(
    txn: &WriteTransaction,
    blake3: &[u8; 32],
) -> Result<()> {
    if txn.open_table(BLOBS)?.get(blake3)?.is_none() {
        txn.open_table(DIGESTS)?.remove(blake3)?;
    }
    Ok(())
}

/// The largest filename kept for a binary.
pub const MAX_FILENAME: usize = 255;

/// A filename as given at upload: its last path component, 1–255 characters, no control
/// characters, not `.` or `..`.
pub fn clean_filename(raw: &str) -> std::result::Result<String, String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    if base.is_empty() || base == "." || base == ".." {
        return Err(format!("filename {raw:?} names no file"));
    }
    if base.chars().count() > MAX_FILENAME {
        return Err(format!("a filename has at most {MAX_FILENAME} characters"));
    }
    if base.chars().any(char::is_control) {
        return Err("a filename may not hold control characters".into());
    }
    Ok(base.to_string())
}

/// A record's binary as a download: its filename and every digest clients check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub filename: String,
    pub size: u64,
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
    pub digests: Digests,
}

/// The filename of a record's binary when none was given at upload.
pub fn default_filename(record: &Record) -> String {
    let name: String = format!("{}-{}.bin", record.name, record.version)
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    name
}

impl Store {
    /// The binary of `record` with its filename and digests (computed now if unknown);
    /// `None` when the record has no binary.
    pub fn artifact(&self, record: &Record) -> Result<Option<Artifact>> {
        let Some(b) = &record.binary else {
            return Ok(None);
        };
        let Some(digests) = self.digests(&b.blake3)? else {
            return Ok(None);
        };
        let filename = self
            .binary_name(&record.partner_id, &b.sha256)?
            .unwrap_or_else(|| default_filename(record));
        Ok(Some(Artifact {
            filename,
            size: b.size,
            blake3: b.blake3,
            sha256: b.sha256,
            digests,
        }))
    }

    /// The SHA-1 and MD5 of a published blob, computed (and recorded) now if they are not
    /// yet known; `None` for no such blob.
    pub fn digests(&self, blake3: &[u8; 32]) -> Result<Option<Digests>> {
        let txn = self.read()?;
        if let Some(d) = codec::get(&txn.open_table(DIGESTS)?, blake3)? {
            return Ok(Some(d));
        }
        let found: Option<BlobMeta> = codec::get(&txn.open_table(BLOBS)?, blake3)?;
        let Some(meta) = found else {
            return Ok(None);
        };
        drop(txn);
        let mut pair = DigestPair::default();
        let piece = 1 << 20;
        let mut at = 0;
        while at < meta.size {
            let to = (at + piece).min(meta.size);
            for row in self.read_rows(&meta, at, to)? {
                pair.update(&row);
            }
            at = to;
        }
        let digests = pair.finish();
        let key = *blake3;
        self.write(false, move |txn| {
            // Unpublished meanwhile: nothing to record.
            if txn.open_table(BLOBS)?.get(&key)?.is_some() {
                put_digests(txn, &key, &digests)?;
            }
            Ok(())
        })?;
        Ok(Some(digests))
    }

    /// The filename the partner gave when uploading these bytes, if it gave one.
    pub fn binary_name(&self, partner_id: &str, sha256: &[u8; 32]) -> Result<Option<String>> {
        let txn = self.read()?;
        let table = txn.open_table(BINARY_NAMES)?;
        let value = table.get((partner_id, sha256))?;
        Ok(value.map(|v| v.value().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_digests_match_one_pass() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let side = SideDigests::start().unwrap();
        for piece in data.chunks(7_777) {
            side.feed(piece).unwrap();
        }
        let d = side.finish().unwrap();
        assert_eq!(d, Digests::of(&data));
        // Known answers for "abc".
        let abc = Digests::of(b"abc");
        assert_eq!(
            crate::model::hex(&abc.sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            crate::model::hex(&abc.md5),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn filenames() {
        assert_eq!(clean_filename("fw.swu").unwrap(), "fw.swu");
        assert_eq!(clean_filename("C:\\build\\out/fw.bin").unwrap(), "fw.bin");
        assert!(clean_filename("dir/").is_err());
        assert!(clean_filename("..").is_err());
        assert!(clean_filename("a\nb").is_err());
        assert!(clean_filename(&"x".repeat(256)).is_err());
    }
}
