//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) and any saved crash inputs
//! (`fuzz/regressions/<target>/`) through the fuzz target bodies on stable Rust, so every
//! `cargo test` re-checks what the fuzzers once explored without needing libFuzzer.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

/// Every target of `fuzz/Cargo.toml`; a target missing here has no replay.
const TARGETS: [(&str, Target); 10] = [
    ("hashtree_range", targets::hashtree_range),
    ("outboard_builder", targets::outboard_builder),
    ("record_codec", targets::record_codec),
    ("config_toml", targets::config_toml),
    ("model_validate", targets::model_validate),
    ("wire_frames", targets::wire_frames),
    ("session_sequence", targets::session_sequence),
    ("http_json", targets::http_json),
    ("multipart", targets::multipart),
    ("query_paging", targets::query_paging),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The regular files of `dir`, sorted so that failures name the same input every run.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read fuzz inputs in {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on one file, naming the file if it panics.
fn replay(name: &str, target: Target, path: &Path) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let outcome = std::panic::catch_unwind(|| target(&data));
    if let Err(cause) = outcome {
        let message = cause
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| cause.downcast_ref::<&str>().copied())
            .unwrap_or("(non-text panic)");
        panic!("fuzz target {name} panics on {}: {message}", path.display());
    }
}

#[test]
fn every_target_has_a_corpus_and_passes_it() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        assert!(
            dir.is_dir(),
            "fuzz corpus {} is missing: every target needs a seed corpus",
            dir.display()
        );
        let files = inputs(&dir);
        assert!(
            !files.is_empty(),
            "fuzz corpus {} is empty: every target needs a seed corpus",
            dir.display()
        );
        for path in &files {
            replay(name, target, path);
        }
    }
}

#[test]
fn saved_regressions_pass() {
    // A target may have no regressions yet; the directory, when present, holds crash inputs
    // that must stay fixed.
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("regressions").join(name);
        if !dir.is_dir() {
            continue;
        }
        for path in inputs(&dir) {
            replay(name, target, &path);
        }
    }
}

#[test]
fn every_fuzz_binary_is_replayed() {
    // The replay list and the cargo-fuzz binaries must not drift apart.
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins: Vec<&str> = manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "otad-fuzz")
        .collect();
    bins.sort_unstable();
    let mut replayed: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    replayed.sort_unstable();
    assert_eq!(
        bins, replayed,
        "fuzz/Cargo.toml [[bin]] targets vs. TARGETS"
    );
}
