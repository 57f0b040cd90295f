//! The `--state` file of `device download`: what it holds, its atomic replacement, and a
//! tolerant load (an unreadable file only costs a restart).
//!
//! Not here: when it is written during a download (`download.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::report::note;

/// The `--state` file: enough to resume the same image, and to notice a different one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DownloadState {
    /// BLAKE3 of the image, lowercase hex: the image's identity.
    pub(super) blake3: String,
    pub(super) size: u64,
    /// Bytes from offset 0 that were verified and are on disk in --out.
    pub(super) verified_upto: u64,
    pub(super) version_number: u64,
    pub(super) fw_type: u16,
    /// Per firmware type, the highest version number of a signed image downloaded and
    /// verified whole: the anti-rollback floor (absent in states written before signing).
    #[serde(default)]
    pub(super) accepted: BTreeMap<u16, u64>,
}

/// Replaces the state file atomically (temporary file, fsync, rename), so a kill at any
/// moment leaves either the old or the new state, never a torn one.
pub(super) fn save_state(path: &Path, state: &DownloadState) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let text = serde_json::to_string(state).map_err(std::io::Error::other)?;
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    // Losing the rename itself in a power cut leaves the older state: resume then redoes
    // a little more, which is safe, so the directory is not fsynced.
    fs::rename(&tmp, path)
}

/// The saved state, if there is a readable one (an unreadable one only costs a restart).
pub(super) fn load_state(path: &Path, json_mode: bool) -> Option<DownloadState> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            note(
                json_mode,
                &format!("cannot read {} ({e}); starting over", path.display()),
            );
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            note(
                json_mode,
                &format!(
                    "{} is not a download state ({e}); starting over",
                    path.display()
                ),
            );
            None
        }
    }
}
