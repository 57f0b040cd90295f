//! The delivery cache: published blob rows and outboard rows kept in memory as shared
//! [`Bytes`], so that a download or a device GET of a hot image is a map lookup and a
//! zero-copy slice instead of a read transaction that copies a whole 64 KiB row out of the
//! database file.
//!
//! Rows of a data id never change once published and data ids are never reused, so entries
//! need no invalidation; rows of deleted blobs simply age out. Eviction is CLOCK (second
//! chance) over insertion order, bounded by `storage.delivery_cache_mib`. What reads rows
//! on a miss lives in `blobs.rs`; this file only holds them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// Which table a cached row came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RowKind {
    Data,
    Outboard,
}

/// (data id, row index, table).
pub type RowKey = (u64, u32, RowKind);

pub struct RowCache {
    capacity: usize,
    shelf: Mutex<Shelf>,
}

#[derive(Default)]
struct Shelf {
    rows: HashMap<RowKey, Entry>,
    order: VecDeque<RowKey>,
    bytes: usize,
}

struct Entry {
    row: Bytes,
    used: bool,
}

impl RowCache {
    /// A cache holding at most `capacity` bytes of rows; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            shelf: Mutex::new(Shelf::default()),
        }
    }

    pub fn get(&self, key: RowKey) -> Option<Bytes> {
        let mut shelf = self.shelf.lock().ok()?;
        let entry = shelf.rows.get_mut(&key)?;
        entry.used = true;
        Some(entry.row.clone())
    }

    pub fn insert(&self, key: RowKey, row: Bytes) {
        if row.len() > self.capacity {
            return;
        }
        let Ok(mut shelf) = self.shelf.lock() else {
            return;
        };
        if shelf.rows.contains_key(&key) {
            return;
        }
        while shelf.bytes + row.len() > self.capacity {
            let Some(oldest) = shelf.order.pop_front() else {
                break;
            };
            let keep = match shelf.rows.get_mut(&oldest) {
                Some(entry) if entry.used => {
                    entry.used = false;
                    true
                }
                _ => false,
            };
            if keep {
                shelf.order.push_back(oldest);
            } else if let Some(gone) = shelf.rows.remove(&oldest) {
                shelf.bytes -= gone.row.len();
            }
        }
        shelf.bytes += row.len();
        shelf.order.push_back(key);
        shelf.rows.insert(key, Entry { row, used: false });
    }

    /// Bytes of rows held now (what the tests check the budget against).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.shelf.lock().map(|s| s.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn holds_rows_until_capacity_then_evicts_unused_first() {
        let cache = RowCache::new(300);
        cache.insert((1, 0, RowKind::Data), row(100, 1));
        cache.insert((1, 1, RowKind::Data), row(100, 2));
        cache.insert((1, 2, RowKind::Data), row(100, 3));
        assert_eq!(cache.bytes(), 300);
        // Row 0 was used since insertion, so it gets a second chance and row 1 goes.
        assert!(cache.get((1, 0, RowKind::Data)).is_some());
        cache.insert((1, 3, RowKind::Data), row(100, 4));
        assert_eq!(cache.bytes(), 300);
        assert!(cache.get((1, 1, RowKind::Data)).is_none());
        assert_eq!(cache.get((1, 0, RowKind::Data)).map(|r| r[0]), Some(1));
        assert_eq!(cache.get((1, 3, RowKind::Data)).map(|r| r[0]), Some(4));
    }

    #[test]
    fn kinds_are_separate_and_oversize_or_disabled_is_ignored() {
        let cache = RowCache::new(150);
        cache.insert((7, 0, RowKind::Data), row(100, 1));
        assert!(cache.get((7, 0, RowKind::Outboard)).is_none());
        cache.insert((7, 1, RowKind::Data), row(200, 2));
        assert!(cache.get((7, 1, RowKind::Data)).is_none());
        let off = RowCache::new(0);
        off.insert((7, 0, RowKind::Data), row(1, 1));
        assert_eq!(off.bytes(), 0);
        assert!(off.get((7, 0, RowKind::Data)).is_none());
    }
}
