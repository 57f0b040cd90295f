//! Content-addressed binaries inside the redb file.
//!
//! Life of a binary: [`Ingest`] streams bytes into chunk rows under a fresh data id, hashing
//! BLAKE3 (identity), SHA-256 (index) and the BLAKE3 outboard in the same pass (SHA-1 and MD5
//! beside it on their own threads, `digests.rs`), committing
//! every few MiB without fsync so no write transaction spans the upload. `finish` makes it a
//! *staged* upload of one partner in one durable commit. [`Store::publish`]
//! (moveToRepository) turns it into a blob in one small transaction, or — when the same
//! bytes are already stored — adds a reference and leaves the duplicate rows to the sweep.
//! Reference counts: one per partner that moved the bytes (`OWNED`) plus one per record
//! whose binary it is. [`Store::sweep`] deletes rows of abandoned, expired and duplicate
//! uploads in bounded transactions.
//!
//! Reads: any byte range, and the verified slice of a group-aligned range (`hashtree`).
//! Not here: who may read what (API/device layers) and record bookkeeping (`catalog.rs`).

use bytes::Bytes;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::digests::{SideDigests, drop_digests_unless_published, put_digests};
use super::rowcache::RowKind;
use super::tables::{
    BINARY_NAMES, BLOB_BY_SHA, BLOBS, CHUNKS, DIGESTS, OUTBOARDS, OWNED, STAGED, UPLOADS, next_seq,
};
use super::{Result, Store, StoreError, audit, codec};
use crate::hashtree::{self, OutboardBuilder, PAIR, SlicePart};
use crate::ids::now_ms;

/// Bytes per chunk row. redb stores a value this large alone in a leaf whose allocation is
/// rounded up to a power of two of 4 KiB pages; the row plus the leaf's header and key must
/// fit 64 KiB exactly (chosen by `bench/storage.rs --row-sizes`, which measures file growth).
pub const ROW_BYTES: usize = 65_536 - 64;
/// Outboard pairs per outboard row: 1023 × 64 = 65,472 bytes, the same allocation class.
pub const OUTBOARD_ROW_PAIRS: usize = 1023;
/// Staged bytes committed per (non-durable) transaction during an upload.
const FLUSH_BYTES: usize = 16 * ROW_BYTES;

/// Whether a row read from the file goes into the delivery cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CacheUse {
    Keep,
    Peek,
}

/// Rows deleted per sweep transaction.
const SWEEP_ROWS: usize = 64;

/// A published blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub data_id: u64,
    pub size: u64,
    pub sha256: [u8; 32],
    pub refs: u64,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadState {
    /// Bytes are arriving.
    Receiving { received: u64 },
    /// Complete and hashed; waiting for moveToRepository.
    Staged {
        size: u64,
        blake3: [u8; 32],
        sha256: [u8; 32],
    },
    /// To be deleted by the sweep (abandoned, expired, or a duplicate of a stored blob).
    Discard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub partner_id: String,
    pub state: UploadState,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The result of a finished upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    pub size: u64,
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub uploads_removed: u64,
    pub rows_removed: u64,
}

pub(crate) fn get_upload(txn: &WriteTransaction, data_id: u64) -> Result<Option<Upload>> {
    codec::get(&txn.open_table(UPLOADS)?, data_id)
}

/// The upload `data_id` while it is still receiving; 404 `upload_expired` otherwise.
fn receiving_upload(txn: &WriteTransaction, data_id: u64) -> Result<Upload> {
    get_upload(txn, data_id)?
        .filter(|u| matches!(u.state, UploadState::Receiving { .. }))
        .ok_or_else(|| StoreError::not_found("upload", "upload_expired"))
}

fn put_upload(txn: &WriteTransaction, data_id: u64, upload: &Upload) -> Result<()> {
    let bytes = codec::encode(upload)?;
    txn.open_table(UPLOADS)?.insert(data_id, bytes.as_slice())?;
    Ok(())
}

fn discard_upload(txn: &WriteTransaction, data_id: u64) -> Result<()> {
    if let Some(mut upload) = get_upload(txn, data_id)? {
        upload.state = UploadState::Discard;
        upload.updated_ms = now_ms();
        put_upload(txn, data_id, &upload)?;
    }
    Ok(())
}

/// A published blob's metadata, from the `BLOBS` table of either transaction kind.
pub(crate) fn get_blob(
    blobs: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    blake3: &[u8; 32],
) -> Result<Option<BlobMeta>> {
    codec::get(blobs, blake3)
}

fn put_blob(txn: &WriteTransaction, blake3: &[u8; 32], meta: &BlobMeta) -> Result<()> {
    let bytes = codec::encode(meta)?;
    txn.open_table(BLOBS)?.insert(blake3, bytes.as_slice())?;
    Ok(())
}

/// Adds one reference to a published blob.
pub(crate) fn add_ref(txn: &WriteTransaction, blake3: &[u8; 32]) -> Result<()> {
    let mut meta = get_blob(&txn.open_table(BLOBS)?, blake3)?.ok_or_else(|| {
        StoreError::Corrupt(format!("blob {} missing", crate::model::hex(blake3)))
    })?;
    meta.refs += 1;
    put_blob(txn, blake3, &meta)
}

/// Drops one reference; at zero the blob is unpublished and its rows left to the sweep.
pub(crate) fn release(txn: &WriteTransaction, blake3: &[u8; 32]) -> Result<()> {
    let mut meta = get_blob(&txn.open_table(BLOBS)?, blake3)?.ok_or_else(|| {
        StoreError::Corrupt(format!("blob {} missing", crate::model::hex(blake3)))
    })?;
    meta.refs = meta.refs.saturating_sub(1);
    if meta.refs > 0 {
        return put_blob(txn, blake3, &meta);
    }
    txn.open_table(BLOBS)?.remove(blake3)?;
    txn.open_table(BLOB_BY_SHA)?.remove(&meta.sha256)?;
    txn.open_table(DIGESTS)?.remove(blake3)?;
    let now = now_ms();
    put_upload(
        txn,
        meta.data_id,
        &Upload {
            partner_id: String::new(),
            state: UploadState::Discard,
            created_ms: now,
            updated_ms: now,
        },
    )
}

/// A binary being received. Feed it with [`Ingest::write`], then [`Ingest::finish`]; dropping
/// it unfinished marks the upload for the sweep.
pub struct Ingest {
    store: Store,
    data_id: u64,
    partner_id: String,
    limit: u64,
    tree: OutboardBuilder,
    sha: Sha256,
    /// SHA-1 and MD5, until `finish` takes them.
    side: Option<SideDigests>,
    filename: Option<String>,
    row: Vec<u8>,
    next_row: u32,
    rows: Vec<(u32, Vec<u8>)>,
    pairs: Vec<u8>,
    next_outboard_row: u32,
    outboard_rows: Vec<(u32, Vec<u8>)>,
    rows_bytes: usize,
    inflight: Option<std::sync::mpsc::Receiver<Result<()>>>,
    done: bool,
}

impl Store {
    /// Starts receiving a binary for `partner_id`.
    pub fn begin_ingest(&self, partner_id: &str) -> Result<Ingest> {
        let partner = partner_id.to_string();
        let data_id = self.write(false, move |txn| {
            let data_id = next_seq(txn, "next_data_id")?;
            let now = now_ms();
            put_upload(
                txn,
                data_id,
                &Upload {
                    partner_id: partner,
                    state: UploadState::Receiving { received: 0 },
                    created_ms: now,
                    updated_ms: now,
                },
            )?;
            Ok(data_id)
        })?;
        Ok(Ingest {
            store: self.clone(),
            data_id,
            partner_id: partner_id.to_string(),
            limit: self.config().max_binary_size,
            tree: OutboardBuilder::new(),
            sha: Sha256::new(),
            side: Some(SideDigests::start()?),
            filename: None,
            row: Vec::with_capacity(ROW_BYTES),
            next_row: 0,
            rows: Vec::new(),
            pairs: Vec::new(),
            next_outboard_row: 0,
            outboard_rows: Vec::new(),
            rows_bytes: 0,
            inflight: None,
            done: false,
        })
    }

    /// Ingests a whole byte slice (tests, tools).
    pub fn ingest_bytes(&self, partner_id: &str, bytes: &[u8]) -> Result<Staged> {
        let mut ingest = self.begin_ingest(partner_id)?;
        ingest.write(bytes)?;
        ingest.finish()
    }
}

impl Ingest {
    pub fn data_id(&self) -> u64 {
        self.data_id
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.tree.len()
    }

    /// The filename the binary was uploaded under (already cleaned), kept when it is staged.
    pub fn set_filename(&mut self, name: String) {
        self.filename = Some(name);
    }

    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if self.tree.len() + data.len() as u64 > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        if let Some(side) = &self.side {
            side.feed(data)?;
        }
        self.tree.update(data);
        self.sha.update(data);
        while !data.is_empty() {
            let take = (ROW_BYTES - self.row.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.row.extend_from_slice(head);
            data = rest;
            if self.row.len() == ROW_BYTES {
                self.seal_row();
            }
        }
        self.pairs.extend_from_slice(&self.tree.take_pairs());
        self.seal_outboard_rows(false);
        if self.rows_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn seal_row(&mut self) {
        let row = std::mem::replace(&mut self.row, Vec::with_capacity(ROW_BYTES));
        self.rows_bytes += row.len();
        self.rows.push((self.next_row, row));
        self.next_row += 1;
    }

    fn seal_outboard_rows(&mut self, last: bool) {
        let full = OUTBOARD_ROW_PAIRS * PAIR;
        while self.pairs.len() >= full || (last && !self.pairs.is_empty()) {
            let take = full.min(self.pairs.len());
            let rest = self.pairs.split_off(take);
            let row = std::mem::replace(&mut self.pairs, rest);
            self.rows_bytes += row.len();
            self.outboard_rows.push((self.next_outboard_row, row));
            self.next_outboard_row += 1;
        }
    }

    /// Waits for the previous batch, then hands the sealed rows to the writer.
    fn flush(&mut self) -> Result<()> {
        if let Some(wait) = self.inflight.take() {
            wait.recv().map_err(|_| StoreError::Closed)??;
        }
        self.store.check_space(self.rows_bytes as u64)?;
        let rows = std::mem::take(&mut self.rows);
        let outboard_rows = std::mem::take(&mut self.outboard_rows);
        self.rows_bytes = 0;
        let data_id = self.data_id;
        let received = self.tree.len();
        let wait = self.store.submit(false, move |txn| {
            let mut upload = receiving_upload(txn, data_id)?;
            {
                let mut chunks = txn.open_table(CHUNKS)?;
                for (index, row) in &rows {
                    chunks.insert((data_id, *index), row.as_slice())?;
                }
                let mut outboards = txn.open_table(OUTBOARDS)?;
                for (index, row) in &outboard_rows {
                    outboards.insert((data_id, *index), row.as_slice())?;
                }
            }
            upload.state = UploadState::Receiving { received };
            upload.updated_ms = now_ms();
            put_upload(txn, data_id, &upload)
        })?;
        self.inflight = Some(wait);
        Ok(())
    }

    /// Completes the upload: the bytes become a staged binary of the partner, durably.
    /// An empty upload is refused and discarded.
    pub fn finish(mut self) -> Result<Staged> {
        if self.tree.is_empty() {
            return Err(StoreError::Empty);
        }
        let blake3 = *self.tree.finalize().as_bytes();
        self.pairs.extend_from_slice(&self.tree.take_pairs());
        if !self.row.is_empty() {
            self.seal_row();
        }
        self.seal_outboard_rows(true);
        self.flush()?;
        if let Some(wait) = self.inflight.take() {
            wait.recv().map_err(|_| StoreError::Closed)??;
        }
        let staged = Staged {
            size: self.tree.len(),
            blake3,
            sha256: self.sha.clone().finalize().into(),
        };
        let digests = self
            .side
            .take()
            .ok_or_else(|| StoreError::Db("upload digests already taken".into()))?
            .finish()?;
        let data_id = self.data_id;
        let partner = self.partner_id.clone();
        let filename = self.filename.take();
        self.store.write(true, move |txn| {
            put_digests(txn, &staged.blake3, &digests)?;
            if let Some(name) = &filename {
                txn.open_table(BINARY_NAMES)?
                    .insert((partner.as_str(), &staged.sha256), name.as_str())?;
            }
            let mut upload = receiving_upload(txn, data_id)?;
            upload.state = UploadState::Staged {
                size: staged.size,
                blake3: staged.blake3,
                sha256: staged.sha256,
            };
            upload.updated_ms = now_ms();
            put_upload(txn, data_id, &upload)?;
            let previous = txn
                .open_table(STAGED)?
                .insert((partner.as_str(), &staged.sha256), data_id)?
                .map(|v| v.value());
            // The same bytes staged twice by one partner: keep the newer rows.
            if let Some(old) = previous {
                discard_upload(txn, old)?;
            }
            Ok(())
        })?;
        self.done = true;
        Ok(staged)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(wait) = self.inflight.take() {
            let _ = wait.recv();
        }
        let data_id = self.data_id;
        // Best effort: if this fails the upload stays "receiving" and the sweep's
        // abandoned-upload timeout (or the next start) removes it.
        let _ = self
            .store
            .write(false, move |txn| discard_upload(txn, data_id));
    }
}

/// The answer to moveToRepository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Store {
    /// moveToRepository: makes a partner's staged binary a permanent, content-addressed blob.
    /// Idempotent for a sha the partner already moved.
    pub fn publish(&self, actor: &str, partner_id: &str, sha256: [u8; 32]) -> Result<Published> {
        let partner = partner_id.to_string();
        let actor = actor.to_string();
        self.write(true, move |txn| {
            let owned = txn
                .open_table(OWNED)?
                .get((partner.as_str(), &sha256))?
                .map(|v| *v.value());
            if let Some(blake3) = owned {
                let meta = get_blob(&txn.open_table(BLOBS)?, &blake3)?
                    .ok_or_else(|| StoreError::Corrupt("owned blob missing".into()))?;
                return Ok(Published {
                    blake3,
                    sha256,
                    size: meta.size,
                });
            }
            let data_id = txn
                .open_table(STAGED)?
                .get((partner.as_str(), &sha256))?
                .map(|v| v.value())
                .ok_or_else(|| StoreError::not_found("staged binary", "unknown_binary"))?;
            let upload = get_upload(txn, data_id)?
                .ok_or_else(|| StoreError::Corrupt("staged upload missing".into()))?;
            let UploadState::Staged { size, blake3, .. } = upload.state else {
                return Err(StoreError::Corrupt("staged entry is not complete".into()));
            };
            // Bound first: the table must be closed again before `put_blob` opens it.
            let published = get_blob(&txn.open_table(BLOBS)?, &blake3)?;
            match published {
                Some(mut meta) => {
                    meta.refs += 1;
                    put_blob(txn, &blake3, &meta)?;
                    discard_upload(txn, data_id)?;
                }
                None => {
                    put_blob(
                        txn,
                        &blake3,
                        &BlobMeta {
                            data_id,
                            size,
                            sha256,
                            refs: 1,
                            created_ms: now_ms(),
                        },
                    )?;
                    txn.open_table(BLOB_BY_SHA)?.insert(&sha256, &blake3)?;
                    txn.open_table(UPLOADS)?.remove(data_id)?;
                }
            }
            txn.open_table(STAGED)?
                .remove((partner.as_str(), &sha256))?;
            txn.open_table(OWNED)?
                .insert((partner.as_str(), &sha256), &blake3)?;
            audit::append(
                txn,
                &actor,
                "binary.move",
                &format!("partner/{partner}/binaries/{}", crate::model::hex(&sha256)),
                &format!("{size} bytes"),
            )?;
            Ok(Published {
                blake3,
                sha256,
                size,
            })
        })
    }

    /// The blob a partner moved to its repository under this sha, if any.
    pub fn owned_blob(
        &self,
        partner_id: &str,
        sha256: &[u8; 32],
    ) -> Result<Option<([u8; 32], BlobMeta)>> {
        let txn = self.read()?;
        let Some(blake3) = txn
            .open_table(OWNED)?
            .get((partner_id, sha256))?
            .map(|v| *v.value())
        else {
            return Ok(None);
        };
        Ok(get_blob(&txn.open_table(BLOBS)?, &blake3)?.map(|m| (blake3, m)))
    }

    pub fn blob_meta(&self, blake3: &[u8; 32]) -> Result<Option<BlobMeta>> {
        get_blob(&self.read()?.open_table(BLOBS)?, blake3)
    }

    /// The upload state of a data id (tests and diagnostics).
    pub fn upload(&self, data_id: u64) -> Result<Option<Upload>> {
        let txn = self.read()?;
        let table = txn.open_table(UPLOADS)?;
        let value = table.get(data_id)?;
        value.map(|v| codec::decode(v.value())).transpose()
    }

    /// Bytes `[start, end)` of a published blob (`end` clipped to its size). A range
    /// inside one row is a zero-copy slice of the cached row; rows read from the file stay
    /// in the delivery cache.
    pub fn read_range(&self, meta: &BlobMeta, start: u64, end: u64) -> Result<Bytes> {
        let end = end.min(meta.size);
        if start >= end {
            return Ok(Bytes::new());
        }
        let row_bytes = ROW_BYTES as u64;
        let mut txn = None;
        if start / row_bytes == (end - 1) / row_bytes {
            let index = row_index(start / row_bytes)?;
            let row = self.row(&mut txn, RowKind::Data, meta.data_id, index, CacheUse::Keep)?;
            let base = start - start % row_bytes;
            let (from, to) = (to_usize(start - base), to_usize(end - base));
            if to > row.len() {
                return Err(StoreError::Corrupt("blob row too short".into()));
            }
            return Ok(row.slice(from..to));
        }
        let mut out = Vec::with_capacity(to_usize(end - start));
        self.append_range(&mut txn, meta, start, end, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// Bytes `[start, end)` of a published blob as zero-copy slices of its rows, in order,
    /// for streams of large ranges. The delivery cache is only looked at: one sequential read
    /// of a whole image would otherwise evict the hot rows of small ranges and grow the heap
    /// by the image's size, and the first reader of a new image would pay for both.
    pub fn read_rows(&self, meta: &BlobMeta, start: u64, end: u64) -> Result<Vec<Bytes>> {
        let mut rows = Vec::new();
        let end = end.min(meta.size);
        self.each_row(&mut None, meta, start, end, CacheUse::Peek, |piece| {
            rows.push(piece);
        })?;
        Ok(rows)
    }

    /// The verified slice (device-protocol.md) of a group-aligned range at `chunk_log`,
    /// and the clipped data length. The range is checked first.
    pub fn slice(
        &self,
        meta: &BlobMeta,
        chunk_log: u8,
        offset: u64,
        length: u32,
    ) -> Result<(u32, Vec<u8>), SliceError> {
        let clipped = hashtree::check_range(meta.size, chunk_log, offset, length)?;
        let plan = hashtree::slice_plan(meta.size, chunk_log, offset, clipped);
        let mut txn = None;
        let mut out = Vec::with_capacity(usize::try_from(hashtree::slice_len(&plan)).unwrap_or(0));
        for part in plan {
            match part {
                SlicePart::Pair(index) => {
                    let row = row_index(index / OUTBOARD_ROW_PAIRS as u64)?;
                    let at = to_usize(index % OUTBOARD_ROW_PAIRS as u64) * PAIR;
                    let value = self.row(
                        &mut txn,
                        RowKind::Outboard,
                        meta.data_id,
                        row,
                        CacheUse::Keep,
                    )?;
                    let pair = value
                        .get(at..at + PAIR)
                        .ok_or_else(|| StoreError::Corrupt("outboard row too short".into()))?;
                    out.extend_from_slice(pair);
                }
                SlicePart::Data { start, end } => {
                    self.append_range(&mut txn, meta, start, end, &mut out)?;
                }
            }
        }
        Ok((clipped, out))
    }

    /// Appends bytes `[start, end)` (within the blob) row by row.
    fn append_range(
        &self,
        txn: &mut Option<ReadTransaction>,
        meta: &BlobMeta,
        start: u64,
        end: u64,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.each_row(txn, meta, start, end, CacheUse::Keep, |piece| {
            out.extend_from_slice(&piece);
        })
    }

    /// Calls `f` with the part of each row that bytes `[start, end)` (within the blob)
    /// cover, in order, as zero-copy slices.
    fn each_row(
        &self,
        txn: &mut Option<ReadTransaction>,
        meta: &BlobMeta,
        start: u64,
        end: u64,
        cache: CacheUse,
        mut f: impl FnMut(Bytes),
    ) -> Result<()> {
        let row_bytes = ROW_BYTES as u64;
        let mut pos = start - start % row_bytes;
        while pos < end {
            let index = row_index(pos / row_bytes)?;
            let row = self.row(txn, RowKind::Data, meta.data_id, index, cache)?;
            let from = to_usize(start.saturating_sub(pos));
            let to = to_usize((end - pos).min(row_bytes));
            if to > row.len() || from > to {
                return Err(StoreError::Corrupt("blob row too short".into()));
            }
            f(row.slice(from..to));
            pos += row_bytes;
        }
        Ok(())
    }

    /// One row of a published blob, from the delivery cache or else the file (opening the
    /// read transaction only on the first miss); `cache` says whether a row read from the
    /// file is kept.
    fn row(
        &self,
        txn: &mut Option<ReadTransaction>,
        kind: RowKind,
        data_id: u64,
        index: u32,
        cache: CacheUse,
    ) -> Result<Bytes> {
        let key = (data_id, index, kind);
        if let Some(row) = self.inner.rows.get(key) {
            return Ok(row);
        }
        let txn = match txn {
            Some(t) => t,
            None => txn.insert(self.read()?),
        };
        let table = txn.open_table(match kind {
            RowKind::Data => CHUNKS,
            RowKind::Outboard => OUTBOARDS,
        })?;
        let value = table.get((data_id, index))?.ok_or_else(|| {
            StoreError::Corrupt(format!("{kind:?} row {index} of data {data_id} missing"))
        })?;
        let row = Bytes::copy_from_slice(value.value());
        if cache == CacheUse::Keep {
            self.inner.rows.insert(key, row.clone());
        }
        Ok(row)
    }

    /// Marks expired and abandoned uploads for removal, then deletes the rows of every
    /// discarded upload in bounded transactions.
    pub fn sweep(&self, now: u64) -> Result<SweepReport> {
        let staging_ttl = self.config().staging_ttl_secs.saturating_mul(1000);
        let abandoned = self.config().abandoned_upload_secs.saturating_mul(1000);
        self.write(true, move |txn| {
            let mut expired = Vec::new();
            for entry in txn.open_table(UPLOADS)?.iter()? {
                let (k, v) = entry?;
                let upload: Upload = codec::decode(v.value())?;
                let age = now.saturating_sub(upload.updated_ms);
                let stale = match upload.state {
                    UploadState::Receiving { .. } => age > abandoned,
                    UploadState::Staged { .. } => age > staging_ttl,
                    UploadState::Discard => false,
                };
                if stale {
                    expired.push((k.value(), upload));
                }
            }
            for (data_id, upload) in expired {
                if let UploadState::Staged { sha256, blake3, .. } = upload.state {
                    let pid = upload.partner_id.as_str();
                    let mut staged = txn.open_table(STAGED)?;
                    let current = staged.get((pid, &sha256))?.map(|v| v.value());
                    if current == Some(data_id) {
                        staged.remove((pid, &sha256))?;
                        drop(staged);
                        if txn.open_table(OWNED)?.get((pid, &sha256))?.is_none() {
                            txn.open_table(BINARY_NAMES)?.remove((pid, &sha256))?;
                        }
                    }
                    drop_digests_unless_published(txn, &blake3)?;
                }
                discard_upload(txn, data_id)?;
            }
            Ok(())
        })?;
        self.delete_discarded()
    }

    /// At open: nothing can still be receiving, so every such upload is discarded and swept.
    pub(crate) fn sweep_interrupted_uploads(&self) -> Result<SweepReport> {
        self.write(true, |txn| {
            let mut receiving = Vec::new();
            for entry in txn.open_table(UPLOADS)?.iter()? {
                let (k, v) = entry?;
                let upload: Upload = codec::decode(v.value())?;
                if matches!(upload.state, UploadState::Receiving { .. }) {
                    receiving.push(k.value());
                }
            }
            for data_id in receiving {
                discard_upload(txn, data_id)?;
            }
            Ok(())
        })?;
        self.delete_discarded()
    }

    fn delete_discarded(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        loop {
            let (rows, uploads, more) = self.write(true, |txn| {
                let mut discarded = Vec::new();
                for entry in txn.open_table(UPLOADS)?.iter()? {
                    let (k, v) = entry?;
                    let upload: Upload = codec::decode(v.value())?;
                    if upload.state == UploadState::Discard {
                        discarded.push(k.value());
                    }
                }
                let mut budget = SWEEP_ROWS;
                let mut rows = 0u64;
                let mut uploads = 0u64;
                for &data_id in &discarded {
                    let mut finished = true;
                    for table in [CHUNKS, OUTBOARDS] {
                        let mut t = txn.open_table(table)?;
                        let keys: Vec<u32> = t
                            .range((data_id, 0)..=(data_id, u32::MAX))?
                            .take(budget + 1)
                            .map(|e| e.map(|(k, _)| k.value().1))
                            .collect::<std::result::Result<_, _>>()?;
                        if keys.len() > budget {
                            finished = false;
                        }
                        for index in keys.into_iter().take(budget) {
                            t.remove((data_id, index))?;
                            rows += 1;
                            budget -= 1;
                        }
                    }
                    if finished {
                        txn.open_table(UPLOADS)?.remove(data_id)?;
                        uploads += 1;
                    }
                    if budget == 0 {
                        break;
                    }
                }
                let more = uploads < discarded.len() as u64;
                Ok((rows, uploads, more))
            })?;
            report.rows_removed += rows;
            report.uploads_removed += uploads;
            if !more {
                return Ok(report);
            }
        }
    }
}

/// Why a slice could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("bad range: {0}")]
    Range(#[from] hashtree::RangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redb::TableError> for SliceError {
    fn from(e: redb::TableError) -> Self {
        SliceError::Store(e.into())
    }
}

impl From<redb::StorageError> for SliceError {
    fn from(e: redb::StorageError) -> Self {
        SliceError::Store(e.into())
    }
}

impl From<redb::TransactionError> for SliceError {
    fn from(e: redb::TransactionError) -> Self {
        SliceError::Store(e.into())
    }
}

fn row_index(row: u64) -> Result<u32> {
    u32::try_from(row).map_err(|_| StoreError::Corrupt("row index".into()))
}

/// Offsets inside one row or one bounded answer always fit.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
