//! How admin commands print: aligned tables or one JSON document on stdout, the fields and
//! lists read from an answer for them, and progress on stderr (an indicatif bar on a
//! terminal, a plain line every few seconds otherwise; it is the HTTP client's `Meter`).
//!
//! Not here: what each command prints (its noun file) and errors (`client.rs`, printed by
//! `cli/mod.rs`).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::http::Meter;

/// How a command prints its result.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or the human text.
    pub fn show(&self, value: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end_matches('\n'));
            }
        }
    }
}

/// An aligned table: a header line and one line per row, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut header.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// Key/value lines for one record; empty values are left out.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        if !v.is_empty() {
            out.push_str(&format!("{k:width$}  {v}\n"));
        }
    }
    out
}

/// The array of a list answer (an empty slice for anything else).
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A string field of a JSON object, "" when absent; numbers are shown as written.
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

/// A millisecond timestamp field as UTC `YYYY-MM-DD HH:MM:SS`, "" when absent.
pub fn time(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_u64)
        .map_or_else(String::new, utc)
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = crate::ids::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Bytes as a short human size.
pub fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.2} GiB", b / (1024.0 * MIB))
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// How often the plain (non-terminal) progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

enum Draw {
    Bar(indicatif::ProgressBar),
    Plain {
        label: String,
        total: Option<u64>,
        done: u64,
        started: Instant,
        last: Instant,
    },
}

/// Progress of a transfer, shareable with the thread that does it.
#[derive(Clone)]
pub struct Progress {
    draw: Arc<Mutex<Draw>>,
}

impl Progress {
    /// Progress labelled `label`: a bar when stderr is a terminal, else periodic lines.
    pub fn new(label: &str) -> Self {
        let draw = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_string());
            Draw::Bar(bar)
        } else {
            let now = Instant::now();
            Draw::Plain {
                label: label.to_string(),
                total: None,
                done: 0,
                started: now,
                last: now,
            }
        };
        Self {
            draw: Arc::new(Mutex::new(draw)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Draw) -> R) -> R {
        let mut guard = self.draw.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Ends the display; plain mode prints a last line only if it printed any before.
    pub fn finish(&self) {
        self.with(|d| match d {
            Draw::Bar(bar) => bar.finish_and_clear(),
            Draw::Plain {
                label,
                total,
                done,
                started,
                last,
            } => {
                if *last != *started {
                    eprintln!("{}", plain_line(label, *done, *total, started.elapsed()));
                }
            }
        });
        let _ = std::io::stderr().flush();
    }
}

/// The bar counts what the HTTP client sends or receives.
impl Meter for Progress {
    fn set_total(&self, bytes: Option<u64>) {
        self.with(|d| match d {
            Draw::Bar(bar) => {
                if let Some(n) = bytes {
                    bar.set_length(n);
                }
            }
            Draw::Plain { total, .. } => *total = bytes,
        });
    }

    fn inc(&self, n: u64) {
        self.with(|d| match d {
            Draw::Bar(bar) => bar.inc(n),
            Draw::Plain {
                label,
                total,
                done,
                started,
                last,
            } => {
                *done += n;
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", plain_line(label, *done, *total, started.elapsed()));
                }
            }
        });
    }
}

fn plain_line(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(t) if t > 0 => format!(
            "{label}: {} of {} ({}%), {}/s",
            size(done),
            size(t),
            done.saturating_mul(100) / t,
            size(rate as u64)
        ),
        _ => format!("{label}: {}, {}/s", size(done), size(rate as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "alpha".into()],
                vec!["100".into(), "b".into()],
            ],
        );
        assert_eq!(t, "ID   NAME\n1    alpha\n100  b\n");
    }

    #[test]
    fn fields_align_on_what_is_shown() {
        let t = fields(&[
            ("id", "1".into()),
            ("deviceDescriptionId", String::new()),
            ("name", "main".into()),
        ]);
        assert_eq!(t, "id    1\nname  main\n");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_798_372_280_000), "2026-12-27 11:51:20");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn plain_progress_lines() {
        assert_eq!(
            plain_line(
                "uploading fw.bin",
                25 << 20,
                Some(50 << 20),
                Duration::from_secs(5)
            ),
            "uploading fw.bin: 25.0 MiB of 50.0 MiB (50%), 5.0 MiB/s"
        );
        assert_eq!(
            plain_line("backup", 2048, None, Duration::from_secs(1)),
            "backup: 2.0 KiB, 2.0 KiB/s"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(size(10), "10 B");
        assert_eq!(size(50 << 20), "50.0 MiB");
    }
}
