//! The fuzz targets on stable Rust, without libFuzzer, as part of every `cargo test`:
//! replays the checked-in corpus (`fuzz/corpus/<target>/`) and the saved crash inputs
//! (`fuzz/regressions/<target>/`) through the target bodies of `fuzz/targets.rs`, then runs
//! each target on a fixed, seeded stream of inputs mutated from them (the CI-scale fuzz run).
//! Also keeps the target list, `fuzz/Cargo.toml` and the config seed from drifting apart.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Target = fn(&[u8]);

/// Declares every target once: `TARGETS` (name, body, mutated inputs per `cargo test`) and
/// one `mutated::<target>` test each, so the targets run in parallel and fail by name.
macro_rules! targets {
    ($($name:ident: $budget:expr),* $(,)?) => {
        /// Every target of `fuzz/Cargo.toml`; a target missing here has no replay.
        const TARGETS: &[(&str, Target, usize)] = &[
            $((stringify!($name), targets::$name, $budget)),*
        ];

        mod mutated {
            $(
                #[test]
                fn $name() {
                    super::run_mutated(stringify!($name));
                }
            )*
        }
    };
}

// Budgets: about 2 s of one core each in the test build (dependencies are optimized, otad is
// not), from 200,000 inputs for the cheap parsers down to 1,500 for outboard_builder, which
// hashes up to 256 KiB per input. See fuzz/README.md for the measured time.
targets! {
    hashtree_range: 20_000,
    outboard_builder: 1_500,
    record_codec: 200_000,
    config_toml: 200_000,
    model_validate: 50_000,
    wire_frames: 200_000,
    session_sequence: 100_000,
    http_json: 200_000,
    multipart: 20_000,
    query_paging: 30_000,
}

/// A mutated stream stops early past this, so a loaded machine cannot stretch the suite
/// past a minute; how far it got is printed either way.
const TIME_CAP: Duration = Duration::from_secs(10);
/// Longest mutated input, as libFuzzer's default `-max_len`.
const MAX_LEN: usize = 4096;

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

/// The corpus files of `name`, failing if there are none.
fn corpus(name: &str) -> Vec<PathBuf> {
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
    files
}

/// The saved crash inputs of `name`; a target may have none yet.
fn regressions(name: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("regressions").join(name);
    if dir.is_dir() {
        inputs(&dir)
    } else {
        Vec::new()
    }
}

fn target(name: &str) -> (Target, usize) {
    TARGETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, body, budget)| (body, budget))
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// Runs `target` on `data`; the panic message if it panics.
fn run(target: Target, data: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| target(data)).map_err(|cause| {
        cause
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(non-text panic)".into())
    })
}

/// Runs `target` on one file, naming the file if it panics.
fn replay(name: &str, target: Target, path: &Path) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Err(message) = run(target, &data) {
        panic!("fuzz target {name} panics on {}: {message}", path.display());
    }
}

#[test]
fn every_target_has_a_corpus_and_passes_it() {
    for &(name, target, _) in TARGETS {
        for path in corpus(name) {
            replay(name, target, &path);
        }
    }
}

#[test]
fn saved_regressions_pass() {
    // The directory, when present, holds crash inputs that must stay fixed.
    for &(name, target, _) in TARGETS {
        for path in regressions(name) {
            replay(name, target, &path);
        }
    }
}

#[test]
fn every_fuzz_binary_is_replayed() {
    // The replay list and the cargo-fuzz binaries must not drift apart.
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(rest) = line.strip_prefix("name = \"") {
            bins.push(rest.trim_end_matches('"'));
        }
    }
    bins.sort_unstable();
    let mut replayed: Vec<&str> = TARGETS.iter().map(|(name, _, _)| *name).collect();
    replayed.sort_unstable();
    assert_eq!(
        bins, replayed,
        "fuzz/Cargo.toml [[bin]] targets vs. TARGETS"
    );
}

#[test]
fn config_seed_sets_every_key() {
    // config_toml's corpus must reach every section: one seed sets every key that
    // src/config.rs declares, and it must be accepted (so no key is refused as unknown).
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
            .unwrap();
    let seed_path = fuzz_dir().join("corpus/config_toml/every_key.toml");
    let seed = std::fs::read_to_string(&seed_path).unwrap();
    let sections = ["Config", "ApiConfig", "DeviceConfig", "StorageConfig"];
    let mut keys = Vec::new();
    let mut section = None;
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            section = sections.iter().find(|s| rest.starts_with(&format!("{s} ")));
        } else if line == "}" {
            section = None;
        } else if let (Some(_), Some(field)) = (section, line.trim().strip_prefix("pub "))
            && let Some((key, _)) = field.split_once(':')
        {
            keys.push(key.to_string());
        }
    }
    assert!(keys.len() > 30, "found only {keys:?} in src/config.rs");
    for key in keys {
        // Section fields are tables; every other field is a `key = value` line.
        if ["api", "device", "storage", "ddi"].contains(&key.as_str()) {
            assert!(
                seed.contains(&format!("[{key}]")),
                "no [{key}] in {}",
                seed_path.display()
            );
        } else {
            assert!(
                seed.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "{} does not set {key}",
                seed_path.display()
            );
        }
    }
    otad::config::Config::from_toml(&seed, &seed_path)
        .unwrap_or_else(|e| panic!("{} is refused: {e}", seed_path.display()));
}

/// SplitMix64: a small, fixed generator, so a failing input is named by its index alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough below `n` (which must not be 0) for picking mutations.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that matter to the parsers under test: delimiters of JSON, forms, paths, TOML,
/// multipart and the wire format, and the edges of byte values.
const INTERESTING_BYTES: &[u8] = b"\x00\x01\x7f\x80\xff\r\n\t \"'%+-=&/,;:{}[]0129aAfFzZ\\.#@";
/// Integers at the edges of their types, written little-endian over the input.
const INTERESTING_INTS: &[u64] = &[
    0,
    1,
    2,
    63,
    64,
    127,
    128,
    255,
    256,
    1023,
    1024,
    4095,
    4096,
    65535,
    65536,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
    u64::MAX - 4095,
];

/// The inputs a stream mutates: `named` are the hand-written seeds and saved regressions,
/// `all` adds the inputs libFuzzer found (named by their SHA-1). Those are mostly tiny, so
/// half the picks come from the named ones to keep whole, realistic documents in play.
struct Seeds {
    named: Vec<Vec<u8>>,
    all: Vec<Vec<u8>>,
}

impl Seeds {
    fn load(name: &str) -> Self {
        let mut seeds = Seeds {
            named: Vec::new(),
            all: Vec::new(),
        };
        for path in corpus(name).into_iter().chain(regressions(name)) {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
            let found = file.len() == 40 && file.bytes().all(|c| c.is_ascii_hexdigit());
            if !found {
                seeds.named.push(data.clone());
            }
            seeds.all.push(data);
        }
        seeds
    }

    fn pick(&self, rng: &mut Rng) -> &[u8] {
        let from = if !self.named.is_empty() && rng.below(2) == 0 {
            &self.named
        } else {
            &self.all
        };
        &from[rng.below(from.len())]
    }
}

/// One input derived from the corpus by one to four mutations: bit flips, byte sets,
/// inserts, deletes, duplications, splices with and insertions from other inputs, and
/// interesting integers.
fn mutate(seeds: &Seeds, rng: &mut Rng) -> Vec<u8> {
    let mut data = seeds.pick(rng).to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => {
                data[at.min(len - 1)] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| match rng.below(2) {
                        0 => INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())],
                        _ => rng.next() as u8,
                    })
                    .collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let start = at.min(len - 1);
                let end = (start + 1 + rng.below(16)).min(len);
                data.drain(start..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let chunk = data[start..end].to_vec();
                data.splice(at..at, chunk);
            }
            5 => {
                // Splice: this input up to `at`, another from its own cut on.
                let other = seeds.pick(rng);
                let cut = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[cut..]);
            }
            6 => {
                let other = seeds.pick(rng);
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(64)).min(other.len());
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
            7 => {
                let value = INTERESTING_INTS[rng.below(INTERESTING_INTS.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let bytes = &value.to_le_bytes()[..width];
                for (i, &b) in bytes.iter().enumerate() {
                    match data.get_mut(at + i) {
                        Some(slot) => *slot = b,
                        None => data.push(b),
                    }
                }
            }
            _ => {
                // An ASCII digit run: numbers in text formats are where limits are checked.
                let digits: Vec<u8> = (0..=rng.below(20))
                    .map(|_| b'0' + rng.below(10) as u8)
                    .collect();
                data.splice(at..at, digits);
            }
        }
    }
    data.truncate(MAX_LEN);
    data
}

/// The seed of a target's stream: FNV-1a of its name, so each target gets its own stream
/// and adding a target changes no other. `FUZZ_CI_SEED` adds to it, to explore further.
fn stream_seed(name: &str) -> u64 {
    let extra = std::env::var("FUZZ_CI_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    name.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        .wrapping_add(extra)
}

/// The CI-scale fuzz run of one target: its budget of mutated inputs (`FUZZ_CI_INPUTS`
/// overrides it), derived from its corpus and regressions. A failing input is written under
/// the test's temporary directory and named with its seed and index.
fn run_mutated(name: &str) {
    let (target, budget) = target(name);
    let budget = std::env::var("FUZZ_CI_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(budget);
    let seeds = Seeds::load(name);
    let seed = stream_seed(name);
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut ran = 0;
    while ran < budget && started.elapsed() < TIME_CAP {
        let data = mutate(&seeds, &mut rng);
        if let Err(message) = run(target, &data) {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_ci");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{seed}-{ran}"));
            std::fs::write(&path, &data).unwrap();
            panic!(
                "fuzz target {name} panics on mutated input {ran} of stream {seed} \
                 (saved as {}): {message}",
                path.display()
            );
        }
        ran += 1;
    }
    eprintln!(
        "{name}: {ran} mutated inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
