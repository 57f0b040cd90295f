//! Storage benchmark: `cargo bench --bench storage [-- --quick] [-- --row-sizes]`.
//!
//! Measures, on real files in the temporary directory (`$TMPDIR`, else `/tmp`):
//!
//! - ingest throughput of one 256 MiB binary through the public store API (`Ingest::write`
//!   in 1 MiB pieces, `finish`, `publish`), next to the external `b3sum` on the same file,
//!   with its default threads and with `--num-threads 1`; otad's BLAKE3 must match b3sum's;
//! - database bytes per blob byte: the redb file's size after that ingest and `close`,
//!   divided by the blob size, with redb's own page statistics;
//! - durable pool-record creations per second from 16 threads, checking that the version
//!   numbers handed out are distinct and contiguous, in the returned records and on disk;
//! - with `--row-sizes`: file bytes per data byte for candidate chunk-row sizes written to a
//!   scratch redb table, the measurement behind `ROW_BYTES`.
//!
//! Not measured: reads and verified slices, the sweep, compaction, HTTP, cold-cache input
//! (the input file sits in the page cache, for otad and b3sum alike) and disks other than
//! the one holding the temporary directory.
//!
//! `cargo bench` passes `--bench`; without it (`cargo test --benches`) this runs a tiny
//! smoke pass that keeps the harness working but skips b3sum and reports no goals.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use otad::config::StorageConfig;
use otad::model::RecordFields;
use otad::store::NewRecord;
use otad::store::ROW_BYTES;
use otad::store::Store;
use redb::{Database, DatabaseStats, TableDefinition};

const MIB: u64 = 1 << 20;
/// Piece size handed to `Ingest::write`, like an HTTP body read loop would.
const PIECE: usize = 1 << 20;
const CREATE_THREADS: usize = 16;
/// An MCU type (101–200), so the version counter is scoped to the bench partner.
const MCU_TYPE: u16 = 150;
/// Goals from the storage design.
const GOAL_BYTES_PER_BYTE: f64 = 1.10;
const GOAL_CREATES_PER_SEC: f64 = 1000.0;
/// Bytes per transaction in the row-size experiment (the ingest commits ~1 MiB at a time;
/// 4 MiB keeps transaction count low without changing how leaves are allocated).
const ROW_TXN_BYTES: usize = 4 << 20;
const ROWS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("rows");

#[derive(Clone, Copy)]
struct Scale {
    name: &'static str,
    blob_bytes: u64,
    /// otad ingest repetitions; the median is reported.
    runs: usize,
    /// b3sum invocations (of each kind) per otad run: a b3sum run is short, so noisier.
    b3sum_reps: usize,
    row_data_bytes: u64,
    create_for: Duration,
    b3sum: bool,
    goals: bool,
}

const FULL: Scale = Scale {
    name: "full",
    blob_bytes: 256 * MIB,
    runs: 3,
    b3sum_reps: 3,
    row_data_bytes: 64 * MIB,
    create_for: Duration::from_secs(5),
    b3sum: true,
    goals: true,
};

const QUICK: Scale = Scale {
    name: "quick",
    blob_bytes: 64 * MIB,
    runs: 1,
    b3sum_reps: 3,
    row_data_bytes: 16 * MIB,
    create_for: Duration::from_secs(2),
    b3sum: true,
    goals: true,
};

const SMOKE: Scale = Scale {
    name: "smoke (not run by cargo bench: no b3sum, no goals)",
    blob_bytes: 4 * MIB,
    runs: 1,
    b3sum_reps: 0,
    row_data_bytes: 2 * MIB,
    create_for: Duration::from_millis(300),
    b3sum: false,
    goals: false,
};

const USAGE: &str = "usage: cargo bench --bench storage [-- [--quick] [--row-sizes]]\n  \
    --quick      smaller run (64 MiB blob, 2 s of record creations)\n  \
    --row-sizes  also run the chunk-row size experiment";

fn main() {
    let mut bench_mode = false;
    let mut quick = false;
    let mut row_sizes = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench_mode = true,
            "--quick" => quick = true,
            "--row-sizes" => row_sizes = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("storage bench: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let scale = match (bench_mode, quick) {
        (false, _) => SMOKE,
        (true, true) => QUICK,
        (true, false) => FULL,
    };
    // Checked before any work so a missing tool costs nothing.
    let b3sum_version = scale.b3sum.then(require_b3sum);
    // Other work on the machine skews every figure; the report shows it.
    let load_before = loadavg();

    let tmp = tempfile::Builder::new()
        .prefix("otad-bench-")
        .tempdir()
        .expect("cannot create a temporary directory (set TMPDIR to a writable disk)");
    let input = tmp.path().join("input.bin");
    progress(&format!(
        "writing {} MiB of pseudo-random input",
        scale.blob_bytes / MIB
    ));
    write_input(&input, scale.blob_bytes);

    let ingest = bench_ingest(tmp.path(), &input, scale);
    let creates = bench_creates(tmp.path(), scale.create_for);
    let rows = row_sizes.then(|| bench_row_sizes(tmp.path(), scale.row_data_bytes));

    print_report(&Report {
        scale,
        tmp: tmp.path(),
        b3sum_version,
        load: [load_before, loadavg()],
        ingest,
        creates,
        rows,
    });
}

fn progress(what: &str) {
    eprintln!("storage bench: {what}");
}

// ---------------------------------------------------------------------------------------
// Input

/// Deterministic xorshift bytes: incompressible enough, identical on every run.
fn write_input(path: &Path, len: u64) {
    let file = File::create(path).expect("cannot create the input file");
    let mut out = BufWriter::with_capacity(PIECE, file);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = len;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let take = left.min(8) as usize;
        out.write_all(&bytes[..take])
            .expect("cannot write the input file");
        left -= take as u64;
    }
    out.flush().expect("cannot write the input file");
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match file
            .read(&mut buf[n..])
            .expect("cannot read the input file")
        {
            0 => break,
            got => n += got,
        }
    }
    n
}

// ---------------------------------------------------------------------------------------
// Ingest vs b3sum, bytes per byte

struct OtadRun {
    secs: f64,
    blake3: String,
    file_bytes: u64,
    /// Blocks the file occupies on disk: redb grows the file with holes.
    disk_bytes: u64,
    /// The file after `Database::compact`, as `otad db compact` leaves it.
    compacted_bytes: u64,
    stats: DatabaseStats,
}

struct B3Run {
    secs: f64,
    hash: String,
}

struct IngestResult {
    otad: Vec<OtadRun>,
    b3sum: Vec<B3Run>,
    b3sum_single: Vec<B3Run>,
    blob_bytes: u64,
}

fn require_b3sum() -> String {
    match Command::new("b3sum").arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => {
            eprintln!(
                "storage bench: `b3sum --version` failed ({}); the ingest comparison needs a \
                 working b3sum: apt-get install b3sum",
                out.status
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!(
                "storage bench: b3sum is not on PATH ({e}); the ingest comparison needs it.\n\
                 Install it with: apt-get install b3sum"
            );
            std::process::exit(1);
        }
    }
}

fn bench_ingest(dir: &Path, input: &Path, scale: Scale) -> IngestResult {
    let mut result = IngestResult {
        otad: Vec::new(),
        b3sum: Vec::new(),
        b3sum_single: Vec::new(),
        blob_bytes: scale.blob_bytes,
    };
    // Interleaved so slow drift (thermal, background writeback) hits all three alike.
    for run in 0..scale.runs {
        progress(&format!("ingest run {}/{}: otad", run + 1, scale.runs));
        let otad = otad_ingest(&dir.join(format!("ingest-{run}")), input, scale.blob_bytes);
        if scale.b3sum {
            progress(&format!("ingest run {}/{}: b3sum", run + 1, scale.runs));
            for _ in 0..scale.b3sum_reps {
                for (threads, runs) in [
                    (None, &mut result.b3sum),
                    (Some(1), &mut result.b3sum_single),
                ] {
                    let b3 = b3sum(input, threads);
                    assert_eq!(
                        b3.hash, otad.blake3,
                        "otad's BLAKE3 of the input differs from b3sum's"
                    );
                    runs.push(b3);
                }
            }
        }
        result.otad.push(otad);
    }
    result
}

fn otad_ingest(dir: &Path, input: &Path, len: u64) -> OtadRun {
    let db_path = otad::datadir::DataDir::new(dir).db();
    let store = Store::open(&db_path, &StorageConfig::default()).expect("cannot open the store");
    store.bootstrap().expect("bootstrap failed");
    let (partner, _) = store
        .create_partner("bench", "bench partner", None)
        .expect("create_partner failed");
    let mut buf = vec![0u8; PIECE];

    let start = Instant::now();
    let mut file = File::open(input).expect("cannot open the input file");
    let mut ingest = store
        .begin_ingest(&partner.id)
        .expect("begin_ingest failed");
    loop {
        let n = fill(&mut file, &mut buf);
        if n == 0 {
            break;
        }
        ingest.write(&buf[..n]).expect("Ingest::write failed");
    }
    let staged = ingest.finish().expect("Ingest::finish failed");
    let published = store
        .publish("bench", &partner.id, staged.sha256)
        .expect("publish failed");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(published.size, len, "published size differs from the input");

    let stats = db_stats(&store.database().expect("database open"));
    store.close();
    // redb may still write when the Database drops, so size the file after that.
    drop(store);
    let (file_bytes, disk_bytes) = file_sizes(&db_path);
    let mut db = otad::store::open_database(&db_path, StorageConfig::default().cache_mib)
        .expect("cannot reopen the database for compaction");
    db.compact().expect("compaction failed");
    drop(db);
    let (compacted_bytes, _) = file_sizes(&db_path);
    // Keeps the temporary directory from holding every run's 256 MiB at once.
    std::fs::remove_dir_all(dir).expect("cannot remove the run's data directory");
    OtadRun {
        secs,
        blake3: otad::model::hex(&staged.blake3),
        file_bytes,
        disk_bytes,
        compacted_bytes,
        stats,
    }
}

/// The file's length and the bytes of disk blocks allocated to it.
fn file_sizes(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(path).unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
    (meta.len(), meta.blocks() * 512)
}

fn b3sum(input: &Path, threads: Option<usize>) -> B3Run {
    let mut cmd = Command::new("b3sum");
    if let Some(n) = threads {
        cmd.arg("--num-threads").arg(n.to_string());
    }
    cmd.arg("--no-names").arg(input);
    let start = Instant::now();
    let out = cmd.output().expect("cannot run b3sum");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "b3sum failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    B3Run {
        secs,
        hash: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    }
}

/// Page statistics as a write transaction sees them; aborted, so nothing changes.
fn db_stats(db: &Database) -> DatabaseStats {
    let txn = db
        .begin_write()
        .expect("cannot begin a write transaction for stats");
    let stats = txn.stats().expect("redb stats failed");
    txn.abort().expect("cannot abort the stats transaction");
    stats
}

// ---------------------------------------------------------------------------------------
// Durable record creations

struct CreateResult {
    threads: usize,
    total: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn bench_creates(dir: &Path, run_for: Duration) -> CreateResult {
    let db_path = dir.join("creates").join("otad.redb");
    let config = StorageConfig::default();
    let store = Store::open(&db_path, &config).expect("cannot open the store");
    store.bootstrap().expect("bootstrap failed");
    let (partner, _) = store
        .create_partner("bench", "bench partner", None)
        .expect("create_partner failed");
    store
        .create_type(
            "bench",
            false,
            &partner.id,
            i64::from(MCU_TYPE),
            "bench mcu",
            "",
        )
        .expect("create_type failed");
    progress(&format!(
        "record creations: {CREATE_THREADS} threads for {:.1} s",
        run_for.as_secs_f64()
    ));

    let stop = AtomicBool::new(false);
    let go = Barrier::new(CREATE_THREADS + 1);
    let (per_thread, secs) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CREATE_THREADS)
            .map(|t| {
                let (store, partner_id, stop, go) = (&store, partner.id.as_str(), &stop, &go);
                s.spawn(move || {
                    let mut done = Vec::new();
                    go.wait();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let new = NewRecord {
                            partner_id: partner_id.to_string(),
                            fw_type: i64::from(MCU_TYPE),
                            fields: RecordFields {
                                name: format!("bench-{t}"),
                                description: String::new(),
                                version: format!("1.0.{i}"),
                                tags: Vec::new(),
                            },
                            binary: None,
                            associations: Vec::new(),
                        };
                        let began = Instant::now();
                        let record = store
                            .create_pool_record("bench", new)
                            .expect("create_pool_record failed");
                        done.push((record.version_number, began.elapsed()));
                        i += 1;
                    }
                    done
                })
            })
            .collect();
        go.wait();
        let start = Instant::now();
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
        let per_thread: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("a record-creating thread panicked"))
            .collect();
        (per_thread, start.elapsed().as_secs_f64())
    });

    let mut numbers: Vec<u64> = per_thread.iter().flatten().map(|&(vn, _)| vn).collect();
    let mut latencies: Vec<Duration> = per_thread.iter().flatten().map(|&(_, d)| d).collect();
    numbers.sort_unstable();
    latencies.sort_unstable();
    let total = numbers.len() as u64;
    check_contiguous("returned records", &numbers);

    // The same numbers must be in the file after a close and reopen.
    store.close();
    drop(store);
    let store = Store::open(&db_path, &config).expect("cannot reopen the store");
    let mut stored: Vec<u64> = store
        .pool_records(&partner.id, Some(MCU_TYPE))
        .expect("pool_records failed")
        .iter()
        .map(|r| r.version_number)
        .collect();
    stored.sort_unstable();
    check_contiguous("records read back after reopen", &stored);
    assert_eq!(
        stored.len() as u64,
        total,
        "the reopened database holds a different number of records than were created"
    );
    store.close();

    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    CreateResult {
        threads: CREATE_THREADS,
        total,
        secs,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Panics unless the sorted `numbers` are exactly 1..=len.
fn check_contiguous(what: &str, numbers: &[u64]) {
    assert!(!numbers.is_empty(), "{what}: no records were created");
    if let Some(i) = (0..numbers.len()).find(|&i| numbers[i] != i as u64 + 1) {
        let dups = numbers.windows(2).filter(|w| w[0] == w[1]).count();
        panic!(
            "{what}: version numbers are not 1..={} without gaps: position {i} holds {} \
             ({dups} duplicates, largest {})",
            numbers.len(),
            numbers[i],
            numbers[numbers.len() - 1]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Row-size experiment

struct RowResult {
    size: usize,
    rows: u64,
    data_bytes: u64,
    file_bytes: u64,
    disk_bytes: u64,
    allocated_bytes: u64,
    secs: f64,
}

fn row_candidates() -> Vec<usize> {
    let mut sizes = Vec::new();
    for base in [16usize << 10, 32 << 10, 64 << 10, 128 << 10, 1 << 20] {
        for minus in [256, 64, 16, 0] {
            sizes.push(base - minus);
        }
    }
    if !sizes.contains(&ROW_BYTES) {
        sizes.push(ROW_BYTES);
        sizes.sort_unstable();
    }
    sizes
}

fn bench_row_sizes(dir: &Path, data_bytes: u64) -> Vec<RowResult> {
    let pattern: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cache_mib = StorageConfig::default().cache_mib;
    row_candidates()
        .into_iter()
        .map(|size| {
            progress(&format!("row size {size}"));
            let path = dir.join(format!("rows-{size}.redb"));
            // The store's own opener, so the cache setting matches otad's.
            let db = otad::store::open_database(&path, cache_mib).expect("cannot open scratch db");
            let rows = data_bytes.div_ceil(size as u64);
            let per_txn = (ROW_TXN_BYTES / size).max(1) as u64;
            let start = Instant::now();
            let mut next = 0u64;
            while next < rows {
                let txn = db.begin_write().expect("begin_write failed");
                {
                    let mut table = txn.open_table(ROWS).expect("open_table failed");
                    let end = (next + per_txn).min(rows);
                    for i in next..end {
                        let index = u32::try_from(i).expect("row index fits u32");
                        table
                            .insert((1, index), &pattern[..size])
                            .expect("row insert failed");
                    }
                    next = end;
                }
                txn.commit().expect("commit failed");
            }
            let secs = start.elapsed().as_secs_f64();
            let stats = db_stats(&db);
            drop(db);
            let (file_bytes, disk_bytes) = file_sizes(&path);
            std::fs::remove_file(&path).expect("cannot remove the scratch db");
            RowResult {
                size,
                rows,
                data_bytes: rows * size as u64,
                file_bytes,
                disk_bytes,
                allocated_bytes: stats.allocated_pages() * stats.page_size() as u64,
                secs,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Report

struct Report<'a> {
    scale: Scale,
    tmp: &'a Path,
    b3sum_version: Option<String>,
    load: [String; 2],
    ingest: IngestResult,
    creates: CreateResult,
    rows: Option<Vec<RowResult>>,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no model name in /proc/cpuinfo)".to_string())
}

/// The 1/5/15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

fn nproc() -> String {
    Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn median(mut secs: Vec<f64>) -> (f64, f64, f64) {
    secs.sort_by(f64::total_cmp);
    (secs[secs.len() / 2], secs[0], secs[secs.len() - 1])
}

/// "123.4 MB/s" from the median time, with the spread when there were several runs.
fn throughput(bytes: u64, secs: Vec<f64>) -> (f64, String) {
    let runs = secs.len();
    let (mid, fast, slow) = median(secs);
    let rate = |s: f64| bytes as f64 / s / 1e6;
    let text = if runs > 1 {
        format!(
            "{:.1} MB/s (median of {runs}, {:.1}-{:.1})",
            rate(mid),
            rate(slow),
            rate(fast)
        )
    } else {
        format!("{:.1} MB/s", rate(mid))
    };
    (rate(mid), text)
}

fn verdict(goals: bool, met: bool) -> &'static str {
    match (goals, met) {
        (false, _) => "-",
        (true, true) => "met",
        (true, false) => "MISSED",
    }
}

fn row(measure: &str, value: &str, goal: &str, status: &str) {
    let line = format!("{measure:<44} {value:<46} {goal:<9} {status}");
    println!("{}", line.trim_end());
}

fn print_report(r: &Report) {
    let ing = &r.ingest;
    let mib = ing.blob_bytes / MIB;
    let defaults = StorageConfig::default();
    println!();
    println!("otad storage benchmark, {} run", r.scale.name);
    println!("machine   nproc {}, CPU {}", nproc(), cpu_model());
    println!(
        "b3sum     {}",
        r.b3sum_version.as_deref().unwrap_or("not run")
    );
    println!("temp dir  {}", r.tmp.display());
    println!(
        "load avg  {} at start, {} at end (1/5/15 min)",
        r.load[0], r.load[1]
    );
    println!(
        "otad      ROW_BYTES {ROW_BYTES}, cache {} MiB, commit batch {}",
        defaults.cache_mib, defaults.commit_batch_max
    );
    println!();
    row("measure", "value", "goal", "status");
    println!("{}", "-".repeat(110));

    let (otad_rate, otad_text) =
        throughput(ing.blob_bytes, ing.otad.iter().map(|x| x.secs).collect());
    row(
        &format!("ingest {mib} MiB: otad write+finish+publish"),
        &otad_text,
        "",
        "",
    );
    if r.scale.b3sum {
        let (b3_rate, b3_text) =
            throughput(ing.blob_bytes, ing.b3sum.iter().map(|x| x.secs).collect());
        let (b3s_rate, b3s_text) = throughput(
            ing.blob_bytes,
            ing.b3sum_single.iter().map(|x| x.secs).collect(),
        );
        row(
            &format!("ingest {mib} MiB: b3sum (default threads)"),
            &b3_text,
            "",
            "",
        );
        row(
            &format!("ingest {mib} MiB: b3sum --num-threads 1"),
            &b3s_text,
            "",
            "",
        );
        row(
            "ratio otad / b3sum",
            &format!("{:.3}", otad_rate / b3_rate),
            "",
            "",
        );
        row(
            "ratio otad / b3sum --num-threads 1",
            &format!("{:.3}", otad_rate / b3s_rate),
            "",
            "",
        );
    } else {
        row("b3sum comparison", "not run in smoke mode", "", "");
    }

    let worst = ing
        .otad
        .iter()
        .max_by_key(|x| x.file_bytes)
        .expect("at least one ingest run");
    let per_byte = worst.file_bytes as f64 / ing.blob_bytes as f64;
    let same = ing.otad.iter().all(|x| x.file_bytes == worst.file_bytes);
    row(
        "db bytes per blob byte (file after close)",
        &format!(
            "{per_byte:.4} ({} / {} B{})",
            worst.file_bytes,
            ing.blob_bytes,
            if same { "" } else { ", worst run" }
        ),
        &format!("<= {GOAL_BYTES_PER_BYTE:.2}"),
        verdict(r.scale.goals, per_byte <= GOAL_BYTES_PER_BYTE),
    );
    let disk = worst.disk_bytes as f64 / ing.blob_bytes as f64;
    row(
        "  disk blocks per blob byte (same file)",
        &format!("{disk:.4} ({} B)", worst.disk_bytes),
        "",
        "",
    );
    let compacted = worst.compacted_bytes as f64 / ing.blob_bytes as f64;
    row(
        "  file after Database::compact (db compact)",
        &format!("{compacted:.4} ({} B)", worst.compacted_bytes),
        "",
        "",
    );
    let s = &worst.stats;
    let page = s.page_size() as u64;
    println!(
        "  redb stats before close: stored {} B, metadata {} B, fragmented {} B,",
        s.stored_bytes(),
        s.metadata_bytes(),
        s.fragmented_bytes()
    );
    println!(
        "  allocated {} pages x {page} B = {} B ({:.4} per blob byte), leaf {} / branch {} pages",
        s.allocated_pages(),
        s.allocated_pages() * page,
        (s.allocated_pages() * page) as f64 / ing.blob_bytes as f64,
        s.leaf_pages(),
        s.branch_pages()
    );

    let c = &r.creates;
    let rate = c.total as f64 / c.secs;
    row(
        &format!("durable record creations, {} threads", c.threads),
        &format!("{rate:.0} /s ({} in {:.2} s)", c.total, c.secs),
        &format!(">= {GOAL_CREATES_PER_SEC:.0}/s"),
        verdict(r.scale.goals, rate >= GOAL_CREATES_PER_SEC),
    );
    println!(
        "  version numbers 1..={} distinct and contiguous (returned and after reopen): ok",
        c.total
    );
    println!(
        "  latency per creation: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        c.p50.as_secs_f64() * 1e3,
        c.p99.as_secs_f64() * 1e3,
        c.max.as_secs_f64() * 1e3
    );

    if let Some(rows) = &r.rows {
        print_rows(rows);
    }
}

fn print_rows(rows: &[RowResult]) {
    let data_mib = rows.first().map_or(0, |x| x.data_bytes / MIB);
    println!();
    println!(
        "row-size experiment: ~{data_mib} MiB of rows per size into a fresh redb table \
         (u64,u32) -> &[u8], ~{} MiB per durable commit",
        ROW_TXN_BYTES as u64 / MIB
    );
    println!(
        "{:>9} {:>7} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "row B",
        "rows",
        "data B",
        "file B",
        "file/data",
        "disk/data",
        "alloc/data",
        "alloc/row B",
        "MB/s"
    );
    for x in rows {
        let alloc_per_row = x.allocated_bytes / x.rows;
        println!(
            "{:>9} {:>7} {:>12} {:>12} {:>10.4} {:>10.4} {:>10.4} {:>12} {:>9.1}{}",
            x.size,
            x.rows,
            x.data_bytes,
            x.file_bytes,
            x.file_bytes as f64 / x.data_bytes as f64,
            x.disk_bytes as f64 / x.data_bytes as f64,
            x.allocated_bytes as f64 / x.data_bytes as f64,
            alloc_per_row,
            x.data_bytes as f64 / x.secs / 1e6,
            if x.size == ROW_BYTES {
                "  <- ROW_BYTES"
            } else {
                ""
            }
        );
    }
    let Some(ours) = rows.iter().find(|x| x.size == ROW_BYTES) else {
        return;
    };
    let file = |x: &RowResult| x.file_bytes as f64 / x.data_bytes as f64;
    let disk = |x: &RowResult| x.disk_bytes as f64 / x.data_bytes as f64;
    let alloc = |x: &RowResult| x.allocated_bytes as f64 / x.data_bytes as f64;
    for (what, ratio) in [
        ("file/data", &file as &dyn Fn(&RowResult) -> f64),
        ("disk/data", &disk),
        ("alloc/data", &alloc),
    ] {
        if let Some(best) = rows.iter().min_by(|a, b| ratio(a).total_cmp(&ratio(b))) {
            println!(
                "lowest {what}: {} B rows at {:.4}; ROW_BYTES ({ROW_BYTES} B) at {:.4}",
                best.size,
                ratio(best),
                ratio(ours)
            );
        }
    }
}
