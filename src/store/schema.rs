//! The database file's format version: recorded in the `meta` table under `schema` and
//! checked every time the file is opened, so that an otad older than the file refuses it
//! with a message naming both versions instead of misreading rows it does not know.
//!
//! A file without the key was made before the version was recorded; its layout is
//! version 1, and [`record`] writes that down the first time a server opens it.
//! Not here: the per-value schema byte of `codec.rs` (a value's layout, not the file's).

use redb::{Database, ReadableDatabase, ReadableTable, TableError, WriteTransaction};

use super::tables::META;
use super::{Result, StoreError};

/// The file format this release writes and the newest it reads.
pub const FILE_SCHEMA: u64 = 1;

/// The `meta` key holding the file format version.
pub const SCHEMA_KEY: &str = "schema";

/// The version recorded in the file; `None` for a new file or one made before versions
/// were recorded.
pub fn recorded(db: &Database) -> Result<Option<u64>> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        // A file just created has no tables yet.
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(meta.get(SCHEMA_KEY)?.map(|v| v.value()))
}

/// Refuses a file written by a newer release.
pub fn check(db: &Database, path: &std::path::Path) -> Result<()> {
    match recorded(db)? {
        Some(found) if found > FILE_SCHEMA => Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: FILE_SCHEMA,
        }),
        _ => Ok(()),
    }
}

/// Records this release's version in a file that has none (inside `txn`).
pub fn record(txn: &WriteTransaction) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    if meta.get(SCHEMA_KEY)?.is_none() {
        meta.insert(SCHEMA_KEY, FILE_SCHEMA)?;
    }
    Ok(())
}
