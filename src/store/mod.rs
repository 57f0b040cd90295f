//! The one redb file: opening it, the store's error type, and the group-committing writer.
//!
//! redb allows one write transaction at a time. Every mutation is sent to one writer thread
//! that takes whatever operations are queued (up to `storage.commit_batch_max`), applies them
//! in one transaction and commits once, so concurrent callers share an fsync. An operation
//! either writes everything or nothing: each validates before it writes, and an internal
//! error aborts the whole batch. Reads open their own short read transactions.
//!
//! What lives where:
//! - `tables.rs`: every table definition, with its key and value layout; named sequences.
//! - `codec.rs`: value encoding, and the one getter that reads a value from either kind of
//!   transaction.
//! - `catalog/`: partners, users and the first-start bootstrap (`partners.rs`), firmware and
//!   device types (`types.rs`), records and their version counters (`records.rs`),
//!   associations with device types (`associations.rs`); shared row access in `mod.rs`.
//! - `blobs.rs`: binaries (uploads, published blobs, their rows and references);
//!   `digests.rs`: their SHA-1 and MD5 (computed beside the upload) and upload filenames;
//!   `rowcache.rs`: the in-memory delivery cache of their rows; `space.rs`: the free-space
//!   guard for uploads.
//! - `devices.rs`: devices, check-ins, pushes and OTA state; `labels.rs`: their tags and
//!   attributes; `fleet.rs`: the fleet summary and version labels; `rollouts.rs`: staged
//!   rollouts, their outcomes and the timer pass; `tokens.rs`: API access tokens; `ddi.rs`:
//!   hawkBit DDI tenants, gateway tokens and the actions advertised to DDI agents.
//! - `signing.rs`: signing keys, verified image signatures, device types' signature policy
//!   and the release rule.
//! - `audit.rs`: the audit log; `backup.rs`: online backup; `stats.rs`: what `/metrics`
//!   reads (sizes, OTA state counts, commit times);
//!   `verify.rs`: the offline consistency check; `schema.rs`: the file format version,
//!   recorded in the file and checked at every open.
//!
//! Not here: secret creation and hashing (`secrets.rs`), clocks and ids (`ids.rs`).

mod audit;
mod backup;
mod blobs;
mod catalog;
mod ddi;
// The file format, public for the offline tools' tests that build or damage rows by hand.
pub mod codec;
mod devices;
mod digests;
mod fleet;
mod labels;
mod rollouts;
mod rowcache;
// Public for the upgrade tests, which write a future version into a file.
pub mod schema;
mod signing;
mod space;
mod stats;
pub mod tables;
mod tokens;
mod verify;

pub use blobs::{
    BlobMeta, Ingest, OUTBOARD_ROW_PAIRS, Published, ROW_BYTES, SliceError, Staged, SweepReport,
    Upload, UploadState,
};
pub use catalog::{AssociationView, FirstStart, NewDeviceDescription, NewRecord};
pub use ddi::{
    ConfigMode, DdiAction, DdiChunk, DdiCredential, DdiOutcome, DdiPoll, DdiPollPlan, DdiSlot,
    DdiState, GatewayToken, action_id,
};
pub use devices::{BlobAccess, DeviceFilter, ImportRow, OfferedImage};
pub use digests::{Artifact, Digests, MAX_FILENAME, clean_filename, default_filename};
pub use fleet::{
    DeviceTypeFleet, Failure, FleetSummary, FwTypeFleet, Labels, StateCount, VersionCount,
    VersionLabel,
};
pub use labels::AttributeUpdate;
pub use rollouts::{Feedback, NewRollout, OutcomeFilter, TickReport};
pub use signing::{
    ImageSignature, SignaturePolicy, SignatureView, SigningKeyInfo, SubmittedSignature,
};
pub use space::free_bytes;
pub use stats::{COMMIT_BUCKETS, CommitHistogram, StoreStats};
pub use tokens::Token;
pub use verify::{Report as VerifyReport, verify};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};

use crate::config::StorageConfig;
use crate::model::ModelError;

/// Errors of the storage layer. The API maps each kind to a status and `trace` in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(#[from] ModelError),
    /// A referenced object does not exist (a 400 when it came from a body, 404 in a path).
    #[error("{what} not found")]
    NotFound { what: String, trace: &'static str },
    #[error("{message}")]
    Conflict {
        trace: &'static str,
        message: String,
    },
    #[error("{message}")]
    Forbidden {
        trace: &'static str,
        message: String,
    },
    #[error("binary is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("binary is empty")]
    Empty,
    #[error("otad is already running on this data directory ({0}); stop it first")]
    AlreadyOpen(PathBuf),
    #[error("database is corrupt: {0}")]
    Corrupt(String),
    /// The file was written by a newer release (its format version is above this one's).
    #[error(
        "{} has database format version {found}, but this otad reads versions up to {supported}: run the otad release that wrote it (or a newer one), or restore a backup made by this release",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("storage error: {0}")]
    Db(String),
    #[error("storage is shutting down")]
    Closed,
    /// The database file is being reopened after an I/O error.
    #[error("storage is recovering from an I/O error")]
    Reopening,
    /// The disk is too full to take this write and keep the reserve.
    #[error(
        "the disk holding the database is full: {free} bytes free, {needed} needed (storage.min_free_mib keeps a reserve)"
    )]
    Full { free: u64, needed: u64 },
}

impl StoreError {
    pub fn not_found(what: impl Into<String>, trace: &'static str) -> Self {
        StoreError::NotFound {
            what: what.into(),
            trace,
        }
    }

    pub fn conflict(trace: &'static str, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            trace,
            message: message.into(),
        }
    }

    pub fn forbidden(trace: &'static str, message: impl Into<String>) -> Self {
        StoreError::Forbidden {
            trace,
            message: message.into(),
        }
    }

    /// Errors that may leave a transaction half-written: the batch must be aborted.
    fn aborts_batch(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt(_) | StoreError::Db(_) | StoreError::Closed
        )
    }
}

macro_rules! db_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_error_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One queued mutation and the channel its caller waits on.
trait Op: Send {
    fn durable(&self) -> bool;
    /// Runs the mutation; returns whether it failed in a way that taints the transaction.
    fn apply(&mut self, txn: &WriteTransaction) -> bool;
    fn finish(self: Box<Self>, commit: Result<()>);
}

struct Pending<T, F> {
    f: Option<F>,
    durable: bool,
    result: Option<Result<T>>,
    reply: Reply<T>,
}

/// Where a mutation's committed result goes: a thread blocked on it, or an async task.
enum Reply<T> {
    Thread(mpsc::SyncSender<Result<T>>),
    Task(tokio::sync::oneshot::Sender<Result<T>>),
}

impl<T, F> Op for Pending<T, F>
where
    T: Send,
    F: FnOnce(&WriteTransaction) -> Result<T> + Send,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn apply(&mut self, txn: &WriteTransaction) -> bool {
        let Some(f) = self.f.take() else { return false };
        let result = f(txn);
        let taints = matches!(&result, Err(e) if e.aborts_batch());
        self.result = Some(result);
        taints
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let outcome = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            // Its own refusal wrote nothing; that is the more useful answer.
            (Err(_), Some(Err(own))) if !own.aborts_batch() => Err(own),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::Db("operation was not applied".into())),
        };
        // The caller may have given up waiting; nothing to do then.
        match self.reply {
            Reply::Thread(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Task(tx) => {
                let _ = tx.send(outcome);
            }
        }
    }
}

type Queue = mpsc::Sender<Box<dyn Op>>;

/// Handle to the open database. Cheap to clone; the writer stops when the last clone drops
/// or [`Store::close`] is called.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while [`Store::reopen`] swaps the file.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    config: StorageConfig,
    queue: Mutex<Option<Queue>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    rows: rowcache::RowCache,
    /// Bumped after every write batch: a value read before a lookup that is still current
    /// afterwards proves nothing was written in between (see [`Store::generation`]).
    generation: Arc<AtomicU64>,
    /// How long the writer's commits take, for `/metrics`.
    commits: Arc<stats::CommitTimes>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        if let Ok(mut w) = self.writer.lock()
            && let Some(handle) = w.take()
        {
            let _ = handle.join();
        }
    }
}

/// Opens (creating if needed) the redb file, mapping "held by another process" to a plain
/// [`StoreError::AlreadyOpen`], and refuses a file of a newer format
/// ([`StoreError::TooNew`]).
pub fn open_database(path: &Path, cache_mib: usize) -> Result<Database> {
    let mut builder = Database::builder();
    builder.set_cache_size(cache_mib << 20);
    let db = builder.create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen(path.to_path_buf()),
        other => StoreError::Db(format!("cannot open {}: {other}", path.display())),
    })?;
    schema::check(&db, path)?;
    Ok(db)
}

impl Store {
    /// Opens the store at `path`, creates missing tables and starts the writer thread.
    pub fn open(path: &Path, config: &StorageConfig) -> Result<Store> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Arc::new(open_database(path, config.cache_mib)?);
        {
            let txn = db.begin_write()?;
            tables::create_all(&txn)?;
            schema::record(&txn)?;
            txn.commit()?;
        }
        let generation = Arc::new(AtomicU64::new(0));
        let commits = Arc::new(stats::CommitTimes::default());
        let (tx, writer) = start_writer(&db, config.commit_batch_max, &generation, &commits)?;
        let store = Store {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                path: path.to_path_buf(),
                config: config.clone(),
                queue: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                rows: rowcache::RowCache::new(config.delivery_cache_mib << 20),
                generation,
                commits,
            }),
        };
        // Uploads cannot survive a restart: whatever was receiving is abandoned now.
        store.sweep_interrupted_uploads()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    /// The open database; an error only while [`Store::reopen`] swaps the file.
    pub fn database(&self) -> Result<Arc<Database>> {
        let db = self
            .inner
            .db
            .read()
            .map_err(|_| StoreError::Db("database handle poisoned".into()))?;
        db.clone().ok_or(StoreError::Reopening)
    }

    pub fn read(&self) -> Result<ReadTransaction> {
        Ok(self.database()?.begin_read()?)
    }

    /// Counts committed write batches. Read it before a lookup: if it is unchanged later,
    /// nothing was written since, so a result cached with it is still the database's answer.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// A real table read and a write transaction begun and aborted (nothing is written):
    /// fails once redb refuses the file after an I/O error (it answers "previous I/O error"
    /// until the file is reopened; reads served from its cache may still succeed, so the
    /// write side is what tells).
    pub fn probe(&self) -> Result<()> {
        let db = self.database()?;
        db.begin_read()?.open_table(tables::META)?.first()?;
        db.begin_write()?.abort()?;
        Ok(())
    }

    /// Closes and reopens the database file, for when an I/O error (such as a full disk
    /// that another program filled) made redb refuse it. The writer is stopped first (what
    /// it still had queued fails), then the file is reopened (waiting up to 10 s for reads
    /// in flight to let go of it) and a new writer started. Callers see
    /// [`StoreError::Reopening`] meanwhile: the handle is taken first, which is what tells
    /// readers and writers alike that the file is being reopened.
    pub fn reopen(&self) -> Result<()> {
        let old = self.inner.db.write().map_err(|_| poisoned())?.take();
        drop(self.inner.queue.lock().map_err(|_| poisoned())?.take());
        if let Some(handle) = self.inner.writer.lock().map_err(|_| poisoned())?.take() {
            let _ = handle.join();
        }
        drop(old);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match open_database(&self.inner.path, self.inner.config.cache_mib) {
                Ok(db) => break Arc::new(db),
                Err(StoreError::AlreadyOpen(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        let (tx, writer) = start_writer(
            &db,
            self.inner.config.commit_batch_max,
            &self.inner.generation,
            &self.inner.commits,
        )?;
        *self.inner.writer.lock().map_err(|_| poisoned())? = Some(writer);
        *self.inner.queue.lock().map_err(|_| poisoned())? = Some(tx);
        *self.inner.db.write().map_err(|_| poisoned())? = Some(db);
        Ok(())
    }

    /// Runs `f` in the writer's next transaction and waits until it is committed.
    /// `durable = false` lets the commit skip the fsync (only for data that a later durable
    /// commit publishes, such as staged upload rows).
    pub fn write<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        self.submit(durable, f)?
            .recv()
            .map_err(|_| StoreError::Closed)?
    }

    /// Queues `f` for the writer and returns at once; the receiver yields its committed
    /// result. Lets a caller prepare the next batch while the writer commits this one.
    pub fn submit<T, F>(&self, durable: bool, f: F) -> Result<mpsc::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let (reply, wait) = mpsc::sync_channel(1);
        self.enqueue(Box::new(Pending {
            f: Some(f),
            durable,
            result: None,
            reply: Reply::Thread(reply),
        }))?;
        Ok(wait)
    }

    /// [`Store::write`] for async callers: the task waits for the commit without holding a
    /// thread, so a request whose reads were cheap enough for the reactor needs no
    /// blocking-pool hop for its write either.
    pub async fn write_async<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.enqueue(Box::new(Pending {
            f: Some(f),
            durable,
            result: None,
            reply: Reply::Task(reply),
        }))?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    fn enqueue(&self, op: Box<dyn Op>) -> Result<()> {
        let queue = self
            .inner
            .queue
            .lock()
            .map_err(|_| StoreError::Db("writer queue poisoned".into()))?;
        let Some(queue) = queue.as_ref() else {
            // No writer: being reopened (no handle either), or closed for good.
            return Err(match self.database() {
                Err(StoreError::Reopening) => StoreError::Reopening,
                _ => StoreError::Closed,
            });
        };
        queue.send(op).map_err(|_| StoreError::Closed)
    }

    /// Stops the writer after the queued operations and waits for it.
    pub fn close(&self) {
        if let Ok(mut q) = self.inner.queue.lock() {
            q.take();
        }
        if let Ok(mut w) = self.inner.writer.lock()
            && let Some(handle) = w.take()
        {
            let _ = handle.join();
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Db("store lock poisoned".into())
}

fn start_writer(
    db: &Arc<Database>,
    batch_max: usize,
    generation: &Arc<AtomicU64>,
    commits: &Arc<stats::CommitTimes>,
) -> Result<(Queue, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Box<dyn Op>>();
    let writer_db = Arc::clone(db);
    let generation = Arc::clone(generation);
    let commits = Arc::clone(commits);
    let batch_max = batch_max.max(1);
    let writer = std::thread::Builder::new()
        .name("otad-writer".into())
        .spawn(move || writer_loop(&writer_db, &rx, batch_max, &generation, &commits))
        .map_err(|e| StoreError::Db(format!("cannot start writer thread: {e}")))?;
    Ok((tx, writer))
}

/// Non-durable commits become durable within this delay (group commit of check-ins).
const DURABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

fn writer_loop(
    db: &Database,
    rx: &mpsc::Receiver<Box<dyn Op>>,
    batch_max: usize,
    generation: &AtomicU64,
    commits: &stats::CommitTimes,
) {
    // Set while a non-durable commit is waiting for the next durable one.
    let mut dirty_since: Option<std::time::Instant> = None;
    loop {
        let first = match dirty_since {
            None => match rx.recv() {
                Ok(op) => op,
                Err(_) => return,
            },
            Some(since) => {
                let left = DURABLE_WITHIN.saturating_sub(since.elapsed());
                match rx.recv_timeout(left) {
                    Ok(op) => op,
                    Err(timeout_or_closed) => {
                        let started = std::time::Instant::now();
                        if sync(db).is_ok() {
                            commits.observe(true, started.elapsed());
                            dirty_since = None;
                        }
                        if matches!(timeout_or_closed, mpsc::RecvTimeoutError::Disconnected) {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|op| op.durable());
        let started = std::time::Instant::now();
        let outcome = run_batch(db, &mut batch, durable);
        if outcome.is_ok() {
            commits.observe(durable, started.elapsed());
        }
        // After the commit is visible, before anyone hears of it.
        generation.fetch_add(1, Ordering::AcqRel);
        if outcome.is_ok() {
            dirty_since = match (durable, dirty_since) {
                (true, _) => None,
                (false, None) => Some(std::time::Instant::now()),
                (false, since) => since,
            };
        }
        for op in batch {
            op.finish(outcome.clone());
        }
    }
}

/// An empty durable commit: makes every earlier non-durable commit durable.
fn sync(db: &Database) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

fn run_batch(db: &Database, batch: &mut [Box<dyn Op>], durable: bool) -> Result<()> {
    let mut txn = db.begin_write()?;
    let durability = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    txn.set_durability(durability)?;
    let mut tainted = false;
    for op in batch.iter_mut() {
        tainted |= op.apply(&txn);
    }
    if tainted {
        txn.abort()?;
        return Err(StoreError::Db(
            "transaction aborted after a storage error".into(),
        ));
    }
    txn.commit()?;
    Ok(())
}
