//! Free space on the filesystem holding the database, and the guard that keeps a reserve.
//!
//! redb treats a failed write (ENOSPC) as fatal for the open database: every later call
//! answers "previous I/O error" until the file is reopened. So otad never lets an upload run
//! the disk dry: before an upload and before each ~1 MiB of its rows, the free space must
//! exceed what is about to be written plus `storage.min_free_mib`, or the upload stops with
//! [`StoreError::Full`] (HTTP 507) and nothing already stored is touched. Small writes
//! (records, check-ins) are not guarded; the reserve is there for them.

use std::path::Path;

use super::{Result, Store, StoreError};

/// Bytes available to an unprivileged writer on the filesystem holding `path`.
// The project's one FFI call: std has no statvfs.
#[allow(unsafe_code)]
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut c_path = path.as_os_str().as_bytes().to_vec();
    c_path.push(0);
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `stat` is a valid out-pointer
    // that statvfs fills completely when it returns 0 (checked before reading it).
    let rc = unsafe { libc::statvfs(c_path.as_ptr().cast(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the structure is initialised.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

impl Store {
    /// Refuses with [`StoreError::Full`] unless `bytes` more can be written and the reserve
    /// (`storage.min_free_mib`) still remains.
    pub fn check_space(&self, bytes: u64) -> Result<()> {
        self.check_reserve(bytes, (self.config().min_free_mib as u64) << 20)
    }

    /// Like [`Store::check_space`] for nothing more, with `1 / divisor` of the reserve.
    pub fn check_space_fraction(&self, divisor: u64) -> Result<()> {
        self.check_reserve(
            0,
            ((self.config().min_free_mib as u64) << 20) / divisor.max(1),
        )
    }

    fn check_reserve(&self, bytes: u64, reserve: u64) -> Result<()> {
        if reserve == 0 {
            return Ok(());
        }
        let dir = self.path().parent().unwrap_or(Path::new("."));
        let free = free_bytes(dir).map_err(|e| {
            StoreError::Db(format!("cannot read free space of {}: {e}", dir.display()))
        })?;
        let needed = bytes.saturating_add(reserve);
        if free < needed {
            return Err(StoreError::Full { free, needed });
        }
        Ok(())
    }
}
