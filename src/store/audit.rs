//! The append-only audit log: who changed what, when.
//!
//! Every mutating store operation appends its entry inside its own write transaction, so a
//! change and its audit line commit together or not at all. Nothing here deletes entries.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::tables::{AUDIT, next_seq};
use super::{Result, Store, codec};
use crate::ids::now_ms;
use crate::model::AuditEntry;

/// Appends one entry inside `txn`.
pub fn append(
    txn: &WriteTransaction,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<u64> {
    let seq = next_seq(txn, "next_audit_seq")?;
    let entry = AuditEntry {
        seq,
        at_ms: now_ms(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
    };
    let bytes = codec::encode(&entry)?;
    txn.open_table(AUDIT)?.insert(seq, bytes.as_slice())?;
    Ok(seq)
}

impl Store {
    /// Entries with `seq > after`, oldest first, at most `limit`.
    pub fn audit_since(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let txn = self.read()?;
        let table = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for entry in table.range(after.saturating_add(1)..)?.take(limit) {
            let (_, v) = entry?;
            out.push(codec::decode(v.value())?);
        }
        Ok(out)
    }

    /// One page of the log, newest first, of the entries written at or after `since_ms`:
    /// the number of such entries and the `take` after skipping `skip`. Entries are written
    /// by the one writer thread in time order, so the walk stops at the first older entry;
    /// only the page is kept in memory.
    pub fn audit_page(
        &self,
        since_ms: u64,
        skip: usize,
        take: usize,
    ) -> Result<(usize, Vec<AuditEntry>)> {
        let txn = self.read()?;
        let table = txn.open_table(AUDIT)?;
        let mut total = 0usize;
        let mut page = Vec::new();
        for entry in table.iter()?.rev() {
            let (_, v) = entry?;
            let e: AuditEntry = codec::decode(v.value())?;
            if e.at_ms < since_ms {
                break;
            }
            if total >= skip && page.len() < take {
                page.push(e);
            }
            total += 1;
        }
        Ok((total, page))
    }

    /// Number of audit entries.
    pub fn audit_len(&self) -> Result<u64> {
        let txn = self.read()?;
        Ok(txn.open_table(AUDIT)?.len()?)
    }
}
