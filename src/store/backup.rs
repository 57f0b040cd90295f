//! Online backup: a consistent copy of every table into a new redb file while the server
//! keeps serving.
//!
//! The copy reads one read-transaction snapshot (so it is the database at one moment) and
//! writes the new file in transactions of bounded size, so neither a long write transaction
//! nor the whole database is ever held in memory. The result is an ordinary otad database:
//! restoring is placing it as `otad.redb` in a data directory.

use std::path::Path;

use redb::{Database, Durability, ReadableTable};

use super::tables::*;
use super::{Result, Store, StoreError};

/// Rows copied per transaction of the backup file: at most 512 × 64 KiB chunk rows = 32 MiB.
const BATCH_ROWS: usize = 512;

impl Store {
    /// Writes a consistent copy of the database to `dest` (which must not exist).
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let snapshot = self.read()?;
        let out = Database::builder()
            .create(dest)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dest.display())))?;
        let mut txn = out.begin_write()?;
        txn.set_durability(Durability::None)?;
        let mut pending = 0usize;
        macro_rules! copy {
            ($($t:ident),*) => {$(
                {
                    let source = snapshot.open_table($t)?;
                    for entry in source.iter()? {
                        let (k, v) = entry?;
                        pending += 1;
                        txn.open_table($t)?.insert(k.value(), v.value())?;
                        if pending >= BATCH_ROWS {
                            txn.commit()?;
                            txn = out.begin_write()?;
                            txn.set_durability(Durability::None)?;
                            pending = 0;
                        }
                    }
                    // Empty tables exist in the copy too.
                    txn.open_table($t)?;
                }
            )*};
        }
        crate::for_all_tables!(copy);
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }
}
